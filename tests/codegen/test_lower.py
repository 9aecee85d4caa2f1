"""Lowering of IR Funcs to machine code: the registry, elementwise ops, reductions, fused nests,
matmul and vectorization.  Oracles: the NumPy interpreter (``eval_func``) and NumPy itself.

Helpers here are imported by ``test_lower_control.py``.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import assert_same
from lattice.codegen.compiled import CompiledFunc, compile_func
from lattice.codegen import lower  # noqa: F401  (the entry: importing it registers every room)
from lattice.codegen.lower_core import LOWERINGS, SCALAR_OPS
from lattice.ir import primitives as P
from lattice.ir.core import Func, Lit, Var, bind, building, shape_rules
from lattice.ir.interpret import eval_func
from lattice.ir.printer import print_func
from lattice.ir.types import Dim, DType, TensorType, bool_, f32, f64, i32, i64
from lattice.ir.verify import verify

# --------------------------------------------------------------------------- helpers
_COMPILED: dict[tuple, CompiledFunc] = {}


def mkfunc(in_types: Sequence[TensorType], body: Callable[..., Any], name: str = "k") -> Func:
    params = [Var(t) for t in in_types]
    with building() as b:
        outs = body(*params)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    return verify(b.build(params, outs, name))


def T(dtype: DType, *shape: Any) -> TensorType:
    return TensorType(dtype, shape)


def compiled(func: Func, layouts: Optional[Sequence[str]] = None, *, fastmath: bool = False,
             boundscheck: bool = True) -> CompiledFunc:
    layouts = tuple(layouts or ("C",) * len(func.params))
    key = (print_func(func), layouts, fastmath, boundscheck)
    cf = _COMPILED.get(key)
    if cf is None:
        cf = _COMPILED[key] = compile_func(func, layouts=layouts, fastmath=fastmath,
                                           boundscheck=boundscheck, name=func.name)
    return cf


def tol_for(dtype: np.dtype) -> float:
    return 2e-6 if dtype == np.float32 else 1e-13


def assert_close(got: Any, want: Any, rtol: Optional[float] = None, atol: float = 0.0) -> None:
    """Same shape and dtype; floats within the dtype's default tolerance unless given."""
    g = np.asarray(got)
    assert_same(got, want, rtol=rtol if rtol is not None else tol_for(g.dtype), atol=atol)


def run(func: Func, *args: Any, layouts: Optional[Sequence[str]] = None, fastmath: bool = False,
        boundscheck: bool = True, rtol: Optional[float] = None, atol: float = 0.0
        ) -> tuple[Any, ...]:
    """Compiled result checked against the interpreter (and result kinds); returns it."""
    cf = compiled(func, layouts, fastmath=fastmath, boundscheck=boundscheck)
    got = cf(*args)
    want = eval_func(func, *args)
    assert len(got) == len(want)
    for g, w, t in zip(got, want, func.out_types):
        if t.is_scalar:
            assert isinstance(g, np.generic), type(g)
        else:
            assert isinstance(g, np.ndarray) and g.flags.c_contiguous
        assert_close(g, w, rtol, atol)
    return got


def values(rng: np.random.Generator, dtype: DType, shape: Sequence[int], *,
           special: bool = True) -> np.ndarray:
    """Random values of ``dtype`` with edge cases mixed in (NaN/inf/±0, int extremes)."""
    n = int(np.prod(shape, dtype=np.int64))
    if dtype.is_bool:
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.is_int:
        info = np.iinfo(dtype.np)
        x = rng.integers(-50, 50, size=n).astype(dtype.np)
        if special and n:
            pool = np.array([0, -1, 1, info.min, info.max, 7, -7], dtype=dtype.np)
            mask = rng.random(n) < 0.2
            x[mask] = rng.choice(pool, size=int(mask.sum()))
        return x.reshape(shape)
    x = (rng.standard_normal(n) * rng.choice([0.5, 3.0, 30.0], size=n)).astype(dtype.np)
    if special and n:
        pool = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e3, -1e3, 1.0, -1.0, 0.5],
                        dtype=dtype.np)
        mask = rng.random(n) < 0.15
        x[mask] = rng.choice(pool, size=int(mask.sum()))
    return x.reshape(shape)


def as_layout(x: np.ndarray, kind: str) -> np.ndarray:
    """The same values in a different memory layout (for layout "A" params)."""
    if kind == "C":
        return np.ascontiguousarray(x)
    if kind == "F":
        return np.asfortranarray(x)
    if kind == "strided":
        big = np.repeat(x[..., None], 2, axis=-1) if x.ndim else x
        idx = (Ellipsis, 0) if x.ndim else ()
        return big[idx]
    if kind == "neg":
        y = np.ascontiguousarray(x[tuple(slice(None, None, -1) for _ in range(x.ndim))])
        return y[tuple(slice(None, None, -1) for _ in range(x.ndim))]
    if kind == "zero":  # stride 0 along axis 0 (a broadcast view) when all rows equal
        return np.broadcast_to(x[:1], x.shape) if x.ndim and x.shape[0] else x
    raise ValueError(kind)


shapes2 = st.tuples(st.integers(0, 7), st.integers(0, 19))

# --------------------------------------------------------------------------- registry


def test_every_primitive_has_a_lowering() -> None:
    missing = [p.name for p in shape_rules if p not in LOWERINGS]
    assert not missing, f"primitives without a lowering: {missing}"


def test_every_elementwise_primitive_has_a_scalar_op() -> None:
    missing = [p.name for p in P.ELEMENTWISE if p not in SCALAR_OPS]
    assert not missing, f"elementwise primitives without a scalar op: {missing}"


# --------------------------------------------------------------------------- elementwise
FLOATS = (f32, f64)
NUMS = (i32, i64, f32, f64)
ANY = (bool_, i32, i64, f32, f64)


def _kinds(p: P.Primitive) -> tuple[DType, ...]:
    out = []
    for d in ANY:
        try:
            shape_rules[p](*([T(d)] * (3 if p is P.select_p else 1)))
            out.append(d)
        except Exception:
            pass
    return tuple(out)


def _binary_kinds(p: P.Primitive) -> tuple[DType, ...]:
    out = []
    for d in ANY:
        try:
            shape_rules[p](T(d), T(d))
            out.append(d)
        except Exception:
            pass
    return tuple(out)


UNARY_CASES = [(name, d) for name, p in sorted(P.UNARY.items()) for d in _kinds(p)]
BINARY_CASES = [(name, d) for name, p in sorted({**P.BINARY, **P.COMPARE}.items())
                for d in _binary_kinds(p)]


def _tol(name: str, d: DType) -> float:
    if d is f32:
        return 5e-6
    return 1e-13 if name not in ("pow", "logaddexp", "softplus", "sigmoid", "tanh") else 1e-12


@pytest.mark.parametrize("name,dtype", UNARY_CASES, ids=[f"{n}-{d}" for n, d in UNARY_CASES])
@settings(max_examples=8, deadline=None)
@given(shape=shapes2, seed=st.integers(0, 2**32 - 1))
def test_unary(name: str, dtype: DType, shape: tuple[int, int], seed: int) -> None:
    p = P.UNARY[name]
    f = mkfunc([T(dtype, "n", "m")], lambda x: bind(p, x)[0], f"u_{name}")
    x = values(np.random.default_rng(seed), dtype, shape)
    (got,) = run(f, x, rtol=_tol(name, dtype))
    with np.errstate(all="ignore"):
        want = {"sigmoid": lambda v: 1 / (1 + np.exp(-v.astype(np.float64))),
                "softplus": lambda v: np.logaddexp(0, v.astype(np.float64))}.get(name)
    if want is not None and dtype is f64:  # the formula agrees with the naive one
        with np.errstate(all="ignore"):
            np.testing.assert_allclose(got, want(x), rtol=1e-12, atol=1e-300, equal_nan=True)


@pytest.mark.parametrize("name,dtype", BINARY_CASES, ids=[f"{n}-{d}" for n, d in BINARY_CASES])
@settings(max_examples=8, deadline=None)
@given(shape=shapes2, seed=st.integers(0, 2**32 - 1))
def test_binary(name: str, dtype: DType, shape: tuple[int, int], seed: int) -> None:
    p = {**P.BINARY, **P.COMPARE}[name]
    f = mkfunc([T(dtype, "n", "m"), T(dtype, "n", "m")], lambda x, y: bind(p, x, y)[0],
               f"b_{name}")
    rng = np.random.default_rng(seed)
    x, y = values(rng, dtype, shape), values(rng, dtype, shape)
    if name in ("floordiv", "mod", "fmod") and dtype.is_int:
        y[rng.random(shape) < 0.3] = 0  # division by zero gives 0
    if name == "pow" and dtype.is_int:
        y = np.abs(y % 70).astype(y.dtype)  # (a negative exponent is NumPy's ValueError)
    run(f, x, y, rtol=_tol(name, dtype))


def test_binary_with_scalar_and_literal_operands() -> None:
    f = mkfunc([T(f64, "n"), T(f64)],
               lambda x, s: bind(P.sub_p, bind(P.mul_p, x, s)[0], Lit.of(1.5, f64))[0])
    run(f, np.arange(6.0), np.float64(2.0))
    g = mkfunc([T(i64), T(i64)], lambda a, b: (bind(P.floordiv_p, a, b)[0],
                                               bind(P.mod_p, a, b)[0]))
    for a in (-7, 7, 0, -2**63):
        for b in (3, -3, 0, -1, 1):
            run(g, np.int64(a), np.int64(b))


def test_float_floordiv_mod_edge_cases() -> None:
    f = mkfunc([T(f64, "n"), T(f64, "n")],
               lambda x, y: (bind(P.floordiv_p, x, y)[0], bind(P.mod_p, x, y)[0]))
    vals = np.array([5.5, -5.5, 0.0, -0.0, 1.0, -1.0, 1e300, np.inf, -np.inf, np.nan, 3.0])
    x, y = np.meshgrid(vals, vals)
    q, r = run(f, x.ravel(), y.ravel())
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(np.signbit(q), np.signbit(np.floor_divide(x.ravel(), y.ravel())))
        np.testing.assert_array_equal(np.signbit(r), np.signbit(np.mod(x.ravel(), y.ravel())))


@pytest.mark.parametrize("src", ANY, ids=str)
@pytest.mark.parametrize("dst", ANY, ids=str)
def test_convert(src: DType, dst: DType) -> None:
    f = mkfunc([T(src, "n")], lambda x: bind(P.convert_p, x, dtype=dst)[0], f"cv_{src}_{dst}")
    x = values(np.random.default_rng(1), src, (200,))
    if src.is_float:
        x[:8] = [np.nan, np.inf, -np.inf, 3e9, -3e9, 9.3e18, -9.3e18, 2.0**63]
    run(f, x, rtol=0)


def test_select_broadcasts_condition() -> None:
    f = mkfunc([T(bool_, "n", 1), T(f32, "m"), T(f32, "n", "m")],
               lambda p, a, b: bind(P.select_p, p, a, b)[0])
    rng = np.random.default_rng(0)
    run(f, rng.random((4, 1)) < 0.5, values(rng, f32, (5,)), values(rng, f32, (4, 5)))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(0, 6), m=st.integers(0, 9), seed=st.integers(0, 2**32 - 1),
       kinds=st.tuples(*[st.sampled_from(["C", "F", "strided", "neg", "zero"])] * 3))
def test_broadcasting_and_layouts(n: int, m: int, seed: int, kinds: tuple[str, ...]) -> None:
    # x[n,m] * y[m] + z[n,1] - w (scalar), every tensor param with layout "A"
    f = mkfunc([T(f64, "n", "m"), T(f64, "m"), T(f64, "n", 1), T(f64)],
               lambda x, y, z, w: bind(P.sub_p, bind(P.add_p, bind(P.mul_p, x, y)[0], z)[0],
                                       w)[0])
    rng = np.random.default_rng(seed)
    x, y, z = values(rng, f64, (n, m)), values(rng, f64, (m,)), values(rng, f64, (n, 1))
    args = [as_layout(x, kinds[0]), as_layout(y, kinds[1]), as_layout(z, kinds[2]), 0.25]
    (got,) = run(f, *args, layouts=("A", "A", "A", "C"))
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(got, args[0] * args[1] + args[2] - 0.25, rtol=1e-15,
                                   equal_nan=True)


def test_elementwise_rank0_and_size1_dims() -> None:
    f = mkfunc([T(f32, 1, "n"), T(f32, 1, 1)], lambda x, y: bind(P.add_p, x, y)[0])
    run(f, np.ones((1, 3), np.float32), np.full((1, 1), 2, np.float32))
    run(f, np.ones((1, 0), np.float32), np.full((1, 1), 2, np.float32))
    g = mkfunc([T(f64), T(bool_)], lambda x, b: bind(P.select_p, b, x, bind(P.neg_p, x)[0])[0])
    run(g, np.float64(3.0), np.bool_(False))
    run(g, np.array(3.0), True)


def test_strict_sums_of_special_values() -> None:
    f = mkfunc([T(f64, "n"), T(f64, "n")], lambda x, y: bind(P.add_p, x, y)[0])
    (got,) = run(f, np.array([np.inf, -np.inf, np.nan, 1e308]),
                 np.array([-np.inf, -np.inf, 1.0, 1e308]))
    assert np.isnan(got[0]) and got[1] == -np.inf and np.isnan(got[2]) and got[3] == np.inf


def test_transcendentals_stay_finite_for_large_inputs() -> None:
    x = np.array([-1e3, -700.0, -30.0, 0.0, 30.0, 700.0, 1e3])
    for name in ("sigmoid", "softplus"):
        f = mkfunc([T(f64, "n")], lambda v: bind(P.UNARY[name], v)[0], name)
        (got,) = run(f, x)
        assert np.all(np.isfinite(got))
    g = mkfunc([T(f64, "n"), T(f64, "n")], lambda a, b: bind(P.logaddexp_p, a, b)[0])
    (got,) = run(g, x, x[::-1].copy())
    assert np.all(np.isfinite(got))


# --------------------------------------------------------------------------- reductions
RED_AXES = [(), (0,), (1,), (0, 1)]


@pytest.mark.parametrize("kind", ["sum", "max", "min", "prod"])
@pytest.mark.parametrize("dtype", NUMS + (bool_,), ids=str)
@pytest.mark.parametrize("axes", RED_AXES, ids=str)
@settings(max_examples=6, deadline=None)
@given(shape=shapes2, seed=st.integers(0, 2**32 - 1), fastmath=st.booleans())
def test_reduce(kind: str, dtype: DType, axes: tuple[int, ...], shape: tuple[int, int],
                seed: int, fastmath: bool) -> None:
    if kind != "sum" and dtype.is_bool:
        return
    p = P.REDUCTIONS[kind]
    f = mkfunc([T(dtype, "n", "m")], lambda x: bind(p, x, axes=axes)[0], f"r_{kind}")
    x = values(np.random.default_rng(seed), dtype, shape, special=kind != "sum" or dtype.is_int)
    empty = any(shape[a] == 0 for a in axes)
    cf = compiled(f, fastmath=fastmath)
    if kind in ("max", "min") and empty:
        with pytest.raises(ValueError, match="empty"):
            cf(x)
        return
    scale = float(np.sum(np.abs(x.astype(np.float64)))) if kind == "sum" else 0.0
    eps = 1e-6 if dtype is f32 else 1e-15
    # a product's rounding depends on its order (vectorised lanes multiply separately)
    rtol = (1e-5 if dtype.bits < 64 else 1e-12) if kind == "prod" and dtype.is_float else \
        0 if kind != "sum" or not dtype.is_float else 1e-6
    run(f, x, fastmath=fastmath, rtol=rtol, atol=scale * eps * 4)


def test_reduce_max_min_propagate_nan_and_inf() -> None:
    x = np.array([[1.0, np.nan, 3.0], [-np.inf, -1.0, np.inf]])
    for kind in ("max", "min"):
        for axes in RED_AXES:
            f = mkfunc([T(f64, "n", "m")],
                       lambda v: bind(P.REDUCTIONS[kind], v, axes=axes)[0], kind)
            run(f, x)


def test_strict_sum_is_sequential() -> None:
    f = mkfunc([T(f64, "n")], lambda x: bind(P.reduce_sum_p, x, axes=(0,))[0], "seqsum")
    x = np.random.default_rng(3).standard_normal(10001) * np.logspace(0, 12, 10001)
    (got,) = compiled(f)(x)
    acc = 0.0
    for v in x.tolist():
        acc += v
    assert got == acc  # bitwise: strict IEEE order


@pytest.mark.parametrize("name", ["argmax", "argmin"])
@pytest.mark.parametrize("dtype", NUMS, ids=str)
@pytest.mark.parametrize("axis", [None, 0, 1], ids=str)
@settings(max_examples=8, deadline=None)
@given(shape=shapes2, seed=st.integers(0, 2**32 - 1))
def test_argmax_argmin(name: str, dtype: DType, axis: Optional[int], shape: tuple[int, int],
                       seed: int) -> None:
    p = P.REDUCTIONS[name]
    f = mkfunc([T(dtype, "n", "m")], lambda x: bind(p, x, axis=axis)[0], name)
    rng = np.random.default_rng(seed)
    x = values(rng, dtype, shape)
    if x.size:
        x.flat[rng.integers(0, x.size, size=3)] = x.flat[0]  # ties
    empty = x.size == 0 if axis is None else shape[axis] == 0
    if empty:
        with pytest.raises(ValueError, match=f"{name} of an empty sequence"):
            compiled(f)(x)
        return
    run(f, x)


def test_argmax_ties_and_nan_first() -> None:
    f = mkfunc([T(f64, "n")], lambda x: (bind(P.argmax_p, x, axis=None)[0],
                                         bind(P.argmin_p, x, axis=0)[0]))
    for x in ([1.0, 3.0, 3.0, 2.0], [1.0, np.nan, 5.0, np.nan], [np.nan, 1.0],
              [-np.inf, -np.inf], [2.0, 1.0, 1.0]):
        run(f, np.array(x))


# --------------------------------------------------------------------------- fused
def _fused(in_types: Sequence[TensorType], body: Callable[..., Any], space: tuple,
           reduce: Optional[str] = None, axes: tuple[int, ...] = ()) -> Func:
    def outer(*xs: Var) -> Var:
        sub = mkfunc([T(t.dtype) for t in in_types], body, "body")
        return bind(P.fused_p, *xs, body=sub, space=tuple(Dim.of(d) for d in space),
                    reduce=reduce, axes=axes)[0]
    return mkfunc(in_types, outer, f"fused_{reduce}")


@pytest.mark.parametrize("reduce,axes", [(None, ()), ("sum", (0, 1)), ("sum", (0,)),
                                         ("sum", (1,)), ("max", (1,)), ("min", (0,)),
                                         ("max", (0, 1))])
@settings(max_examples=10, deadline=None)
@given(shape=shapes2, seed=st.integers(0, 2**32 - 1), fastmath=st.booleans())
def test_fused(reduce: Optional[str], axes: tuple[int, ...], shape: tuple[int, int], seed: int,
               fastmath: bool) -> None:
    # exp(x) * y + c with y broadcast along rows and c a scalar
    f = _fused([T(f64, "n", "m"), T(f64, "m"), T(f64)],
               lambda x, y, c: bind(P.add_p, bind(P.mul_p, bind(P.exp_p, x)[0], y)[0], c)[0],
               ("n", "m"), reduce, axes)
    rng = np.random.default_rng(seed)
    x, y = rng.standard_normal(shape), rng.standard_normal(shape[1])
    if reduce in ("max", "min") and any(shape[a] == 0 for a in axes):
        with pytest.raises(ValueError):
            compiled(f, fastmath=fastmath)(x, y, 0.5)
        return
    scale = float(np.sum(np.abs(np.exp(x) * y))) + 1
    run(f, x, y, np.float64(0.5), fastmath=fastmath, rtol=1e-12, atol=scale * 1e-14)


def test_fused_bool_sum_and_int_accumulation() -> None:
    f = _fused([T(i32, "n"), T(i32, "n")], lambda a, b: bind(P.lt_p, a, b)[0], ("n",), "sum",
               (0,))
    rng = np.random.default_rng(0)
    (got,) = run(f, rng.integers(-5, 5, 100, dtype=np.int32),
                 rng.integers(-5, 5, 100, dtype=np.int32))
    assert got.dtype == np.int64
    g = _fused([T(i32, "n")], lambda a: bind(P.mul_p, a, a)[0], ("n",), "sum", (0,))
    run(g, np.full(10, 2**16, np.int32))  # i32 products wrap, the sum accumulates in i64


def test_fused_broadcast_space_axis_without_full_input() -> None:
    # inputs x[n,1] and y[m]: no input spans both axes; sizes come from each
    f = _fused([T(f32, "n", 1), T(f32, "m")], lambda a, b: bind(P.sub_p, a, b)[0],
               ("n", "m"), "max", (0,))
    run(f, np.arange(3, dtype=np.float32)[:, None], np.arange(4, dtype=np.float32))


def test_fused_sum_vectorizes() -> None:
    f = _fused([T(f32, "n"), T(f32, "n")], lambda a, b: bind(P.mul_p, a, b)[0], ("n",), "sum",
               (0,))
    cf = compiled(f, fastmath=True)
    asm = cf.asm
    assert re.search(r"\bv(fmadd|mul|add)\w*ps\s+.*%[yz]mm", asm), asm[:3000]
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    (got,) = cf(x, x)
    np.testing.assert_allclose(got, np.dot(x.astype(np.float64), x), rtol=1e-5)


def test_reduce_max_vectorizes() -> None:
    f = mkfunc([T(f64, "n")], lambda x: bind(P.reduce_max_p, x, axes=(0,))[0], "vmax")
    cf = compiled(f, fastmath=True)
    assert re.search(r"%[yz]mm", cf.asm)


def test_strict_mode_has_no_fast_flags_and_fastmath_has_no_nnan() -> None:
    f = mkfunc([T(f64, "n"), T(f64, "n")],
               lambda x, y: bind(P.reduce_sum_p, bind(P.mul_p, x, y)[0], axes=(0,))[0], "fl")
    strict = compiled(f, fastmath=False).unoptimized_ir
    fast = compiled(f, fastmath=True).unoptimized_ir
    assert "reassoc" not in strict and "fast" not in re.sub(r"\"[^\"]*\"", "", strict)
    assert "fmul reassoc contract nsz arcp" in fast
    assert "nnan" not in fast and "ninf" not in fast


# --------------------------------------------------------------------------- matmul
MATMUL_CASES = [((), ()), (("m",), ()), ((), ("p",)), (("m",), ("p",))]


@pytest.mark.parametrize("lead,trail", MATMUL_CASES, ids=["vv", "mv", "vm", "mm"])
@pytest.mark.parametrize("dtype", NUMS, ids=str)
@settings(max_examples=8, deadline=None)
@given(m=st.integers(0, 6), k=st.integers(0, 9), p=st.integers(0, 7),
       seed=st.integers(0, 2**32 - 1), fastmath=st.booleans(), layout=st.sampled_from("CA"))
def test_matmul(lead: tuple, trail: tuple, dtype: DType, m: int, k: int, p: int, seed: int,
                fastmath: bool, layout: str) -> None:
    a_t, b_t = T(dtype, *lead, "k"), T(dtype, "k", *trail)
    f = mkfunc([a_t, b_t], lambda a, b: bind(P.matmul_p, a, b)[0], "mm")
    rng = np.random.default_rng(seed)
    sa = (m, k)[2 - a_t.ndim:]
    sb = (k, p)[:b_t.ndim]
    a, b = values(rng, dtype, sa, special=False), values(rng, dtype, sb, special=False)
    if layout == "A":
        a, b = as_layout(a, "F"), as_layout(b, "neg")
    scale = (np.abs(a.astype(np.float64)) @ np.abs(b.astype(np.float64))).max(initial=0) + 1
    eps = 1e-6 if dtype is f32 else 1e-15
    run(f, a, b, layouts=(layout, layout), fastmath=fastmath, rtol=0 if dtype.is_int else 1e-6,
        atol=0 if dtype.is_int else scale * eps * 4)


def test_matvec_f32_vectorizes_and_agrees() -> None:
    f = mkfunc([T(f32, "n", 128), T(f32, 128)], lambda a, b: bind(P.matmul_p, a, b)[0], "mv")
    cf = compiled(f, fastmath=True)
    assert re.search(r"\bv(fmadd|mul)\w*ps\s+.*%[yz]mm", cf.asm)
    rng = np.random.default_rng(0)
    a = rng.standard_normal((10000, 128)).astype(np.float32)
    b = rng.standard_normal(128).astype(np.float32)
    (got,) = cf(a, b)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)
