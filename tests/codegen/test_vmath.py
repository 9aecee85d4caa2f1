"""Vectorisable exp/log family (codegen/vmath.py): ULP error sweeps, special values, strict mode
staying libm, and the vectorised loop.

The reference is NumPy in ``np.longdouble`` (x87 extended: 11 more bits than f64), so errors
are measured in ULPs of the exact result, not against another rounded f64 implementation.
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

import lattice as _lt

from lattice.codegen import vmath
from lattice.codegen.compiled import CompiledFunc, compile_func
from lattice.ir import primitives as P
from lattice.ir.core import Var, bind, building
from lattice.ir.types import DType, TensorType, f32, f64
from lattice.ir.verify import verify
from test_lower import T, _tol, mkfunc, run, values

LD = np.longdouble
needs_ld = pytest.mark.skipif(np.finfo(LD).nmant < 63, reason="needs x87 extended longdouble")

_KERNELS: dict[tuple[str, str, bool], CompiledFunc] = {}
UNARY = ("exp", "log", "log1p", "expm1", "tanh", "sigmoid", "softplus")
DTYPES = {"f64": (f64, np.float64), "f32": (f32, np.float32)}

#: measured on x86-64 (znver4) with the grids below; the contract is <= 2
MAX_ULP = 2.0


def kernel(name: str, dtype: DType, fastmath: bool = True) -> CompiledFunc:
    key = (name, dtype.name, fastmath)
    if key not in _KERNELS:
        arity = 2 if name == "logaddexp" else 1
        params = [Var(TensorType(dtype, ("n",))) for _ in range(arity)]
        with building() as b:
            out = bind(getattr(P, f"{name}_p"), *params)[0]
        func = verify(b.build(params, (out,), f"vm_{name}"))
        _KERNELS[key] = compile_func(func, layouts=("C",) * arity, fastmath=fastmath,
                                     boundscheck=False, name=f"vm_{name}")
    return _KERNELS[key]


def truth(name: str, *args: np.ndarray) -> np.ndarray:
    a = [x.astype(LD) for x in args]
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return 1 / (1 + np.exp(-a[0]))
        if name == "softplus":
            return np.logaddexp(LD(0), a[0])
        if name == "logaddexp":
            return np.logaddexp(a[0], a[1])
        return getattr(np, name)(a[0])


def ulp_errors(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in ULPs of the exact result ``want`` (0 when both NaN or equal infinities)."""
    fi = np.finfo(got.dtype)
    with np.errstate(all="ignore"):
        rounded = want.astype(got.dtype)
        _, ex = np.frexp(want)
        ulp = np.ldexp(LD(1), np.maximum(ex.astype(np.int64) - fi.nmant - 1,
                                         fi.minexp - fi.nmant))
        err = np.abs(got.astype(LD) - want) / ulp
    same = (got == rounded) | (np.isnan(got) & np.isnan(rounded))
    err = np.where(same, 0.0, err)
    return np.where(~same & ~(np.isfinite(got) & np.isfinite(rounded)), np.inf, err)


def grid(name: str, nd: type) -> tuple[np.ndarray, ...]:
    """Dense grids over the whole domain plus the edge regions of each function."""
    with np.errstate(over="ignore"):  # geomspace up to the largest finite value
        return _grid(name, nd)


def _grid(name: str, nd: type) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(7)
    fi = np.finfo(nd)
    n = 200_000
    top = math.log(float(fi.max))  # 709.78 / 88.72
    bottom = math.log(float(fi.smallest_subnormal))  # -744.44 / -103.28
    small = -np.geomspace(float(fi.smallest_subnormal), 1.0, n // 4)
    if name == "exp":
        xs = [np.linspace(bottom - 3, top + 1, n), rng.uniform(-5, 5, n),
              np.linspace(top - 0.05, top + 0.05, n // 10),
              np.linspace(bottom - 1, bottom + 20, n // 10), small, -small]
    elif name == "expm1":
        xs = [np.linspace(-50, top + 1, n), rng.uniform(-3, 3, n), rng.uniform(-1e-3, 1e-3, n // 4),
              np.linspace(top - 0.05, top + 0.05, n // 10), small, -small]
    elif name == "log":
        xs = [np.geomspace(float(fi.smallest_subnormal), float(fi.max), n),
              rng.uniform(0.5, 2, n), rng.uniform(0.999, 1.001, n // 4),
              np.geomspace(float(fi.smallest_subnormal), float(fi.smallest_normal) * 4, n // 10)]
    elif name == "log1p":
        xs = [np.geomspace(float(fi.smallest_subnormal), float(fi.max), n), small,
              rng.uniform(-1, 3, n), rng.uniform(-1e-3, 1e-3, n // 4), -1 + np.geomspace(1e-7, 1, n // 4)]
    elif name == "tanh":
        xs = [np.linspace(-25, 25, n), rng.uniform(-1, 1, n), -small, small,
              np.geomspace(0.5, 30, n // 4)]
    elif name in ("sigmoid", "softplus"):
        xs = [np.linspace(-1000, 1000, n), rng.uniform(-40, 40, n), small, -small,
              -np.geomspace(1.0, 1000, n // 4)]
    else:
        raise AssertionError(name)
    return (np.concatenate(xs).astype(nd),)


def max_ulp(name: str, dtype: DType, nd: type, args: tuple[np.ndarray, ...]) -> float:
    (got,) = kernel(name, dtype)(*args)
    err = ulp_errors(got, truth(name, *args))
    k = int(np.argmax(err))
    assert err[k] <= MAX_ULP, (name, dtype.name, [a[k] for a in args], got[k], err[k])
    return float(err[k])


@needs_ld
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", UNARY)
def test_ulp_sweep(name: str, dt: str) -> None:
    dtype, nd = DTYPES[dt]
    max_ulp(name, dtype, nd, grid(name, nd))


@needs_ld
@pytest.mark.parametrize("dt", DTYPES)
def test_logaddexp_ulp(dt: str) -> None:
    """<= 2 ULP except where the result cancels (max(x, y) in (-ln 2, 0) and the result near 0):
    there, as in NumPy's own formula, the error is bounded by ULPs of max(|x|, |y|, 1)."""
    dtype, nd = DTYPES[dt]
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-1000, 1000, 200_000), rng.uniform(-10, 10, 200_000),
                        rng.uniform(-1, 1, 200_000), np.linspace(-1000, 1000, 1001)]).astype(nd)
    y = np.concatenate([rng.uniform(-1000, 1000, 200_000), rng.uniform(-10, 10, 200_000),
                        rng.uniform(-1, 1, 200_000), np.linspace(1000, -1000, 1001)]).astype(nd)
    (got,) = kernel("logaddexp", dtype)(x, y)
    want = truth("logaddexp", x, y)
    err = ulp_errors(got, want)
    calm = np.abs(want) >= 0.5
    assert err[calm].max() <= MAX_ULP
    scale = np.maximum(np.maximum(np.abs(x), np.abs(y)), 1).astype(LD)
    abs_err = np.abs(got.astype(LD) - want) / (scale * LD(np.finfo(nd).eps))
    assert abs_err.max() <= 2.0


_SPECIAL_INPUTS = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 2.0, 0.5, 1e-300, -1e-300,
                   5e-324, -5e-324, 1e-45, 1e-30, -1e-30, 709.78, 709.79, 710.0, -745.1, -745.2,
                   -746.0, 88.72, 88.73, 89.0, -103.9, -104.0, 1e300, -1e300, 3e38, -3e38, 1e3,
                   -1e3, 40.0, -40.0, 20.0, -20.0]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", UNARY)
def test_special_values(name: str, dt: str) -> None:
    """NaN, infinities, signed zeros, subnormals and the overflow/underflow edges as NumPy."""
    dtype, nd = DTYPES[dt]
    with np.errstate(all="ignore"):
        x = np.array(_SPECIAL_INPUTS, dtype=nd)
        (got,) = kernel(name, dtype)(x)
        (want,) = P.impls[getattr(P, f"{name}_p")](x)  # the NumPy reference
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    fin = np.isfinite(want)
    np.testing.assert_array_equal(np.signbit(got[~np.isnan(want)]), np.signbit(want[~np.isnan(want)]))
    np.testing.assert_allclose(got[fin], want[fin], rtol=4 * np.finfo(nd).eps, atol=0)
    np.testing.assert_array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)])


@pytest.mark.parametrize("dt", DTYPES)
def test_logaddexp_special_values(dt: str) -> None:
    dtype, nd = DTYPES[dt]
    v = [0.0, -0.0, 1.0, -1.0, 1e3, -1e3, 1e30, -1e30, np.inf, -np.inf, np.nan]
    x, y = (a.ravel().astype(nd) for a in np.meshgrid(v, v))
    (got,) = kernel("logaddexp", dtype)(x, y)
    with np.errstate(all="ignore"):
        want = np.logaddexp(x, y)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=4 * np.finfo(nd).eps, atol=0)


def test_huge_arguments_stay_finite() -> None:
    """sigmoid/softplus/logaddexp for |x| up to 1e3 (and beyond): finite, stable, no NaN."""
    x = np.linspace(-1e4, 1e4, 20001)
    for dtype, nd in DTYPES.values():
        xs = x.astype(nd)
        (s,) = kernel("sigmoid", dtype)(xs)
        (sp,) = kernel("softplus", dtype)(xs)
        (la,) = kernel("logaddexp", dtype)(xs, -xs)
        assert np.all(np.isfinite(s)) and np.all((s >= 0) & (s <= 1))
        assert np.all(np.isfinite(sp)) and np.all(sp >= 0)
        np.testing.assert_allclose(sp[xs > 50], xs[xs > 50], rtol=np.finfo(nd).eps)
        np.testing.assert_allclose(la, np.logaddexp(xs, -xs), rtol=4 * np.finfo(nd).eps)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", UNARY + ("logaddexp",))
def test_compiled_matches_interpreter_in_fastmath(name: str, dt: str) -> None:
    """The tolerances of test_lower's elementwise tests hold for the fastmath lowering too."""
    dtype, _ = DTYPES[dt]
    p = getattr(P, f"{name}_p")
    n_in = 2 if name == "logaddexp" else 1
    f = mkfunc([T(dtype, "n", "m")] * n_in, lambda *a: bind(p, *a)[0], f"fm_{name}")
    rng = np.random.default_rng(11)
    args = [values(rng, dtype, (37, 29)) for _ in range(n_in)]
    run(f, *args, fastmath=True, rtol=_tol(name, dtype))


def test_strict_mode_stays_libm() -> None:
    """fastmath=False: libm exp, bit-identical to math.exp (glibc) and no vmath function."""
    strict, fast = kernel("exp", f64, fastmath=False), kernel("exp", f64)
    assert "lattice.vm." not in strict.unoptimized_ir
    assert "lattice.vm.exp.f64" in fast.unoptimized_ir
    x = np.random.default_rng(0).uniform(-700, 700, 5000)
    (got,) = strict(x)
    assert got.tolist() == [math.exp(v) for v in x]


def test_switch_off_restores_libm_lowering(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vmath, "ENABLED", False)
    params = [Var(TensorType(f64, ("n",)))]
    with building() as b:
        out = bind(P.log_p, *params)[0]
    cf = compile_func(verify(b.build(params, (out,), "off")), layouts=("C",), fastmath=True,
                      boundscheck=False, name="off")
    assert "lattice.vm." not in cf.unoptimized_ir


def test_sum_exp_loop_is_vectorised() -> None:
    """lt.sum(lt.exp(x)) over f64 with fastmath: packed AVX/AVX-512 arithmetic, no exp call."""
    x = np.linspace(-3, 3, 1001)
    fast = _sum_exp_kernel.inspect_asm(x)
    strict = _sum_exp_kernel_strict.inspect_asm(x)
    np.testing.assert_allclose(_sum_exp_kernel(x), np.exp(x).sum(), rtol=1e-13)
    assert re.search(r"\$exp\b", strict), "the strict kernel should call libm exp"
    assert not re.search(r"\$exp\b|\bexp@", fast), "exp is still a call in the fastmath kernel"
    packed = re.findall(r"\bv(?:fmadd\d+|fmsub\d+|mul|add|sub)pd\s+[^\n]*%[yz]mm", fast)
    assert len(packed) >= 10, "no packed double arithmetic in the fastmath kernel"


@_lt.kernel
def _sum_exp_kernel(x: _lt.f64["n"]) -> _lt.f64:
    return _lt.sum(_lt.exp(x))


@_lt.kernel(fastmath=False)
def _sum_exp_kernel_strict(x: _lt.f64["n"]) -> _lt.f64:
    return _lt.sum(_lt.exp(x))
