"""Vectorised erf, erfc, lgamma and digamma (codegen/vmath.py, the ``fastmath=True`` lowering):
errors against mpmath at 40 digits, in ULPs of the exact result where the function does not
cancel, and in ULPs of the cancelled terms where it does (lgamma's zeros below 0, digamma's
root and its zeros below 0); special values against the libm/scipy reference of the
interpreter; the loop vectorises; strict mode keeps the libm call.

The bounds are the measured maxima (docs/performance.md), rounded up: erf 1 ULP, erfc 4.5,
lgamma 4 (x > 0), digamma 8 where |psi| >= 1; f32 is the f64 result rounded once, so 0.5 ULP.
"""
from __future__ import annotations

import re

import mpmath as mp
import numpy as np
import pytest

import lattice as lt
from lattice.ir import primitives as P
from test_vmath import DTYPES, kernel

mp.mp.dps = 40

#: measured maxima (f64, ULPs of the result), rounded up
BOUND = {"erf": 1.0, "erfc": 4.5, "lgamma": 4.0, "digamma": 8.0}
ROOT = 1.4616321449683623  # digamma's positive root


def _exact(name: str, x: float) -> mp.mpf:
    v = mp.mpf(x)
    if name == "erf":
        return mp.erf(v)
    if name == "erfc":
        return mp.erfc(v)
    if name == "lgamma":
        return mp.loggamma(v).real if v > 0 else mp.log(abs(mp.gamma(v)))
    return mp.psi(0, v)


def _errors(name: str, x: np.ndarray, got: np.ndarray, scale: np.ndarray | None = None
            ) -> np.ndarray:
    """|got - exact| in ULPs of the exact result, or of ``scale`` (per element) where given."""
    nd = got.dtype.type
    out = np.empty(len(x))
    for k, (xv, g) in enumerate(zip(x.tolist(), got.tolist())):
        t = _exact(name, xv)
        if nd(float(t)) == g:  # (an overflow to inf as the exact result rounds)
            out[k] = 0.0
            continue
        ref = abs(float(t)) if scale is None else float(scale[k])
        ulp = float(np.spacing(nd(max(ref, float(np.finfo(nd).smallest_subnormal)))))
        out[k] = float(abs(mp.mpf(g) - t)) / ulp
    return out


def _grid(name: str, negative: bool = False) -> np.ndarray:
    rng = np.random.default_rng(17)
    tiny = np.geomspace(1e-300, 1.0, 400)
    if name == "erf":
        xs = [rng.uniform(-6.5, 6.5, 3000), tiny, -tiny, np.linspace(0.9, 1.1, 300),
              np.linspace(-1.1, -0.9, 300)]
    elif name == "erfc":
        xs = [rng.uniform(-6.5, 28.0, 3000), tiny, -tiny,
              *(np.linspace(b - 0.02, b + 0.02, 200) for b in (0.5, 1.0, 2.0, 3.5, 26.5))]
    elif negative:  # non-integers below 0
        x = -rng.uniform(0.0, 30.0, 3000)
        xs = [x[np.abs(x - np.rint(x)) > 1e-9], -np.geomspace(1e-300, 0.5, 300)]
    elif name == "lgamma":
        xs = [rng.uniform(0.0, 15.0, 3000), np.geomspace(1e-300, 1e300, 600),
              *(np.linspace(b - 1e-3, b + 1e-3, 200) for b in (0.5, 1.0, 1.5, 2.0, 2.5, 12.0))]
    else:
        xs = [rng.uniform(0.0, 15.0, 3000), np.geomspace(1e-300, 1e300, 600),
              np.linspace(ROOT - 1e-3, ROOT + 1e-3, 200)]
    return np.concatenate(xs)


def _cast(x: np.ndarray, nd: type, negative: bool = False) -> np.ndarray:
    """``x`` in the dtype, without what the cast made infinite or (below 0) a pole."""
    with np.errstate(over="ignore"):
        y = x.astype(nd)
    keep = np.isfinite(y) & (y != 0)
    if negative:
        keep &= (y != np.rint(y))
    return y[keep]


def _run(name: str, dt: str, x: np.ndarray) -> np.ndarray:
    dtype, nd = DTYPES[dt]
    (got,) = kernel(name, dtype)(x.astype(nd))
    return got


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", ["erf", "erfc", "lgamma"])
def test_ulp_sweep_where_the_function_does_not_cancel(name: str, dt: str) -> None:
    x = _cast(_grid(name), DTYPES[dt][1])
    err = _errors(name, x, _run(name, dt, x))
    k = int(np.argmax(err))
    bound = BOUND[name] if dt == "f64" else 0.5 + 1e-6
    assert err[k] <= bound, (name, dt, x[k], err[k])


@pytest.mark.parametrize("dt", DTYPES)
def test_lgamma_below_zero_is_accurate_to_the_terms_of_the_reflection(dt: str) -> None:
    """lgamma(x) = log(pi / |sin(pi x)|) - lgamma(1 - x): where the two cancel (lgamma's zeros
    at -2.457..., -2.747..., ...) the error is a few ULPs of the terms, not of the result."""
    nd = DTYPES[dt][1]
    x = _cast(_grid("lgamma", negative=True), nd, negative=True)
    xd = x.astype(np.float64)
    terms = np.abs(np.log(np.pi / np.abs(np.sin(np.pi * (xd - np.rint(xd)))))) + \
        np.abs(P.impls[P.lgamma_p](1.0 - xd)[0])
    err = _errors("lgamma", x, _run("lgamma", dt, x), scale=terms)
    assert err.max() <= 4.0, (x[int(np.argmax(err))], err.max())


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("negative", [False, True])
def test_digamma_is_accurate_to_the_terms_of_its_recurrence(dt: str, negative: bool) -> None:
    """psi(x) = psi(x + n) - sum 1/(x + k) [- pi cot(pi x)]: a few ULPs of the largest term, so
    relative accuracy everywhere but near the root 1.4616... and the zeros below 0."""
    nd = DTYPES[dt][1]
    x = _cast(_grid("digamma", negative), nd, negative)
    xd = x.astype(np.float64)
    with np.errstate(all="ignore"):
        z = np.where(xd < 0, 1.0 - xd, xd)
        scale = np.maximum(np.abs(np.log(z + 10)), 1.0) + np.where(z < 10, 1.0 / z, 0.0)
        scale += np.where(xd < 0, np.abs(np.pi / np.tan(np.pi * (xd - np.rint(xd)))), 0.0)
    err = _errors("digamma", x, _run("digamma", dt, x), scale=scale)
    assert err.max() <= 4.0, (x[int(np.argmax(err))], err.max())
    if not negative:  # relative accuracy where |psi| >= 1 (below 0.69 and above 3.2)
        (want,) = P.impls[P.digamma_p](xd)
        big = np.abs(want) >= 1.0
        rel = _errors("digamma", x[big], _run("digamma", dt, x[big]))
        assert rel.max() <= (BOUND["digamma"] if dt == "f64" else 0.5 + 1e-6), rel.max()


_SPECIAL = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, 2.0, -1.0, -2.0, -3.0, 0.5, -0.5, 1e-300,
            -1e-300, 5e-324, 1e-40, 6.0, -6.0, 26.5, 27.3, 28.0, 30.0, -30.0, 1e300, -1e300,
            4.5e15, -4.5e15, 1e17, -1e17, 2.5e305, 3e305, -2.5, 171.6, 1e38, 3e38]


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("name", ["erf", "erfc", "lgamma", "digamma"])
def test_special_values_as_the_reference(name: str, dt: str) -> None:
    """NaN, infinities, signed zeros, poles, subnormals and the under/overflow edges as the
    interpreter's reference (math.erf/erfc/lgamma; digamma: lattice.ir.special)."""
    dtype, nd = DTYPES[dt]
    with np.errstate(all="ignore"):
        x = np.array(_SPECIAL, dtype=nd)
        (got,) = kernel(name, dtype)(x)
        (want,) = P.impls[getattr(P, f"{name}_p")](x)
    want = np.asarray(want, dtype=nd)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=str(x))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want), err_msg=str(x))
    ok = ~np.isnan(want)
    np.testing.assert_array_equal(np.signbit(got[ok]), np.signbit(want[ok]))
    fin = np.isfinite(want)
    # (accuracy where the result cancels, as lgamma(-2.5), is the sweeps' business)
    eps = float(np.finfo(nd).eps)
    np.testing.assert_allclose(got[fin], want[fin], rtol=8 * eps, atol=8 * eps)
    np.testing.assert_array_equal(got[~fin & ok], want[~fin & ok])


@pytest.mark.parametrize("name", ["erf", "erfc", "lgamma", "digamma"])
def test_the_map_vectorises_and_strict_mode_keeps_libm(name: str) -> None:
    f = getattr(lt, name)

    @lt.kernel(cache=False)
    def fast(x: lt.f64["n"]):
        return f(x)

    @lt.kernel(cache=False, fastmath=False)
    def strict(x: lt.f64["n"]):
        return f(x)

    x = np.linspace(0.1, 9.0, 1001)
    asm = fast.inspect_asm(x)
    assert re.search(r"\b(ymm|zmm)\d+", asm), "the map did not vectorise"
    assert f"lattice.vm.{name}.f64" in fast.inspect_llvm(x, optimized=False)
    assert "lattice.vm." not in strict.inspect_llvm(x, optimized=False)
    (want,) = P.impls[getattr(P, f"{name}_p")](x)
    np.testing.assert_allclose(fast(x), want, rtol=1e-14, atol=2e-15)
    np.testing.assert_allclose(strict(x), want, rtol=1e-14, atol=2e-15)
