"""matrix @ vector (codegen/matvec.py) and the fused row reductions (``rowreduce``):
compiled vs the interpreter vs NumPy, serial and parallel, any layout, NaNs and ties."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lattice as lt
from lattice.codegen.pool import THRESHOLD
from lattice.ir import primitives as P
from lattice.ir.interpret import eval_func

from conftest import assert_same
from test_parallel import _restore_threads  # noqa: F401  (autouse: restores the thread count)


@lt.kernel(parallel=True)
def best(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


@lt.kernel(parallel=True)
def worst(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmin(E @ q)


@lt.kernel
def best_serial(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


@lt.kernel(parallel=True)
def top(E: lt.f64["n", "d"], q: lt.f64["d"]) -> (lt.f64, lt.f64):
    return lt.max(E @ q), lt.min(E @ q)


@lt.kernel(parallel=True)
def lse(E: lt.f64["n", "d"], q: lt.f64["d"], b: lt.f64["n"]) -> lt.f64:
    return lt.sum(lt.exp(E @ q - b))


@lt.kernel(parallel=True)
def scaled_best(E: lt.f64["n", "d"], q: lt.f64["d"], s: lt.f64["n"]) -> lt.i64:
    return lt.argmax((E @ q) * s)


@lt.kernel(parallel=True)
def isum(E: lt.i32["n", "d"], q: lt.i32["d"]) -> lt.i64:
    return lt.sum(E @ q)


@lt.kernel(parallel=True)
def imax(E: lt.i64["n", "d"], q: lt.i64["d"]) -> (lt.i64, lt.i64):
    return lt.max(E @ q), lt.argmin(E @ q)


@lt.kernel(parallel=True)
def mv32(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.f32["n"]:
    return E @ q


@lt.kernel(parallel=True, fastmath=False)
def mv32_strict(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.f32["n"]:
    return E @ q


@lt.kernel(parallel=True, fastmath=False)
def best_strict(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


@lt.kernel(parallel=True)
def mv64(E: lt.f64["n", "d"], q: lt.f64["d"]) -> lt.f64["n"]:
    return E @ q


@lt.kernel(parallel=True)
def mvi(E: lt.i64["n", "d"], q: lt.i64["d"]) -> lt.i64["n"]:
    return E @ q


def _ints(rng, shape, dtype, lo=-4, hi=5):
    """Small integers: every dot product is exact in any order, so argmax is well defined."""
    return rng.integers(lo, hi, shape).astype(dtype)


def _layouts(E):
    """E itself, reversed rows, every other column, Fortran order (strided specialisations)."""
    yield E, slice(None)
    yield E[::-1], slice(None)
    if E.shape[1] >= 2:
        yield E[:, ::2], slice(None, None, 2)
    yield np.asfortranarray(E), slice(None)


def _optimized(k, *args):
    """The kernel's optimised IR (with its rowreduce equation) through the interpreter."""
    outs = eval_func(k.optimized_ir, *(np.asarray(a) for a in args))
    return outs[0][()] if len(outs) == 1 else tuple(o[()] for o in outs)


@given(n=st.integers(0, 40), d=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_argmax_argmin_of_matvec_any_shape(n, d, seed):
    rng = np.random.default_rng(seed)
    E = _ints(rng, (n, d), np.float32)
    q = _ints(rng, d, np.float32)
    for Ev, cols in _layouts(E):
        qv = q[cols]
        s = Ev @ qv
        if n == 0:
            with pytest.raises(ValueError, match="argmax of an empty sequence"):
                best(Ev, qv)
            with pytest.raises(ValueError, match="argmin of an empty sequence"):
                worst(Ev, qv)
            continue
        assert best(Ev, qv) == np.argmax(s) == best_serial(Ev, qv) == best_strict(Ev, qv)
        assert worst(Ev, qv) == np.argmin(s)
        assert best.interpret(Ev, qv) == _optimized(best, Ev, qv) == np.argmax(s)
        assert _optimized(worst, Ev, qv) == np.argmin(s)


@given(n=st.integers(0, 40), d=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_matvec_any_shape_and_dtype(n, d, seed):
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((n, d))
    q = rng.standard_normal(d)
    for Ev, cols in _layouts(E):
        qv = q[cols]
        assert_same(mv64(Ev, qv), Ev @ qv, rtol=1e-12, atol=1e-12)
        E32, q32 = Ev.astype(np.float32), qv.astype(np.float32)
        assert_same(mv32(E32, q32), E32 @ q32, rtol=1e-5, atol=1e-5)
        Ei, qi = _ints(rng, Ev.shape, np.int64, -1000, 1000), _ints(rng, qv.shape, np.int64)
        assert_same(mvi(Ei, qi), Ei @ qi)


def _sequential_dots(E, q):
    """Each row summed in column order from zero in float32, a product rounded before its add:
    what strict math (fastmath=False) promises."""
    acc = np.zeros(E.shape[0], np.float32)
    for j in range(E.shape[1]):
        acc = (acc + (E[:, j] * q[j]).astype(np.float32)).astype(np.float32)
    return acc


@pytest.mark.parametrize("n,d", [(0, 3), (1, 0), (7, 5), (9, 33), (1000, 129),
                                 (THRESHOLD // 8 + 3, 16)])
def test_strict_math_sums_each_row_in_order(n, d):
    rng = np.random.default_rng(n + d)
    E = (rng.standard_normal((n, d)) * 1e3).astype(np.float32)
    q = (rng.standard_normal(d) * 1e-3).astype(np.float32)
    want = _sequential_dots(E, q)
    for threads in (1, 2):
        lt.set_num_threads(threads)
        np.testing.assert_array_equal(mv32_strict(E, q), want)
        if n:
            assert best_strict(E, q) == np.argmax(want)


@pytest.mark.parametrize("n,d", [(THRESHOLD // 16 + 5, 32), (10_000, 128), (3 * THRESHOLD, 3)])
def test_parallel_sizes_split_across_threads(n, d):
    rng = np.random.default_rng(n)
    E = _ints(rng, (n, d), np.float32)
    q = _ints(rng, d, np.float32)
    s = E @ q
    E64, q64 = E.astype(np.float64), q.astype(np.float64)
    b = rng.standard_normal(n) * 0.1 + 3.0
    for threads in (1, 2, 3, 4):
        lt.set_num_threads(threads)
        assert best(E, q) == np.argmax(s)
        assert worst(E, q) == np.argmin(s)
        assert_same(top(E64, q64), (np.max(s).astype(np.float64), np.min(s).astype(np.float64)))
        assert_same(lse(E64 * 1e-2, q64, b), np.sum(np.exp((E64 * 1e-2) @ q64 - b)), rtol=1e-10)
        assert_same(mv32(E, q), s)


def test_ties_go_to_the_first_position_in_every_chunk_layout():
    # equal maxima in many places: at chunk boundaries, inside blocks, in the last rows
    rng = np.random.default_rng(5)
    n, d = 50_000, 4
    E = _ints(rng, (n, d), np.float32, -3, 3)
    q = np.ones(d, np.float32)
    s = E @ q
    peak = np.float32(100)
    for where in ([n - 1], [n - 2, n - 1], [3, 17, 40_000], [0, n - 1], list(range(8, 24))):
        Ew = E.copy()
        Ew[where] = peak / d
        lows = [p for p in (1, 2, n // 2 + 1, n - 3) if p not in where]
        Ew[lows] = -peak / d  # and equal minima
        sw = Ew @ q
        for threads in (1, 2, 3):
            lt.set_num_threads(threads)
            assert best(Ew, q) == np.argmax(sw) == min(where)
            assert worst(Ew, q) == np.argmin(sw) == lows[0]
    assert best(E, q) == np.argmax(s)


@pytest.mark.parametrize("n", [1, 9, 17, 50_000])
def test_nan_rows_first_nan_wins(n):
    rng = np.random.default_rng(n)
    d = 8
    E = _ints(rng, (n, d), np.float32)
    q = _ints(rng, d, np.float32)
    E64, q64 = E.astype(np.float64), q.astype(np.float64)
    for rows in ([n - 1], [0], [n // 2, n - 1], [n // 3, n // 2]):
        En = E.copy()
        En[rows, rng.integers(0, d)] = np.nan
        s = En @ q
        for threads in (1, 2):
            lt.set_num_threads(threads)
            assert best(En, q) == np.argmax(s) == min(rows)
            assert worst(En, q) == np.argmin(s) == min(rows)
            mx, mn = top(En.astype(np.float64), q64)
            assert np.isnan(mx) and np.isnan(mn)
    # an infinite row is a number, not a NaN
    Ei = E64.copy()
    Ei[n // 2] = np.inf
    qp = np.abs(q64) + 1
    assert scaled_best(Ei, qp, np.ones(n)) == np.argmax(Ei @ qp) == n // 2


def test_bodies_and_extras():
    rng = np.random.default_rng(7)
    for n in (1, 8, 9, 31, 40_000):
        E = rng.standard_normal((n, 12))
        q = rng.standard_normal(12)
        s = rng.standard_normal(n)
        b = rng.standard_normal(n)
        for threads in (1, 2):
            lt.set_num_threads(threads)
            assert scaled_best(E, q, s) == np.argmax((E @ q) * s)
            assert_same(lse(E, q, b), np.sum(np.exp(E @ q - b)), rtol=1e-10)
            assert scaled_best(E, q, s) == scaled_best.interpret(E, q, s) \
                == _optimized(scaled_best, E, q, s)
            assert_same(lse(E, q, b), _optimized(lse, E, q, b), rtol=1e-10)


def test_integer_reductions_are_exact():
    rng = np.random.default_rng(8)
    for n in (0, 1, 13, 70_000):
        E = rng.integers(-2**20, 2**20, (n, 5)).astype(np.int32)
        q = rng.integers(-3, 4, 5).astype(np.int32)
        Ei, qi = E.astype(np.int64), q.astype(np.int64)
        for threads in (1, 2):
            lt.set_num_threads(threads)
            assert isum(E, q) == np.sum((E @ q).astype(np.int64)) == _optimized(isum, E, q)
            if n:
                assert imax(Ei, qi) == (np.max(Ei @ qi), np.argmin(Ei @ qi))
            else:
                with pytest.raises(ValueError, match="reduce_max over an empty axis"):
                    imax(Ei, qi)


def test_empty_reductions():
    E = np.zeros((0, 3))
    q = np.ones(3)
    with pytest.raises(ValueError, match="reduce_max over an empty axis"):
        top(E, q)
    assert lse(E, q, np.zeros(0)) == 0.0
    assert lse(np.zeros((4, 0)), np.zeros(0), np.zeros(4)) == 4.0


def test_kernels_use_rowreduce_and_vector_matvec():
    E = np.ones((64, 16), np.float32)
    q = np.ones(16, np.float32)
    for k in (best, worst, lse, scaled_best, isum, best_strict):
        prims = [e.prim for e in k.optimized_ir.eqns]
        assert P.rowreduce_p in prims and P.matmul_p not in prims, k
    for k in (top, imax):  # E @ q computed once and reduced twice: stays a vector
        prims = [e.prim for e in k.optimized_ir.eqns]
        assert P.rowreduce_p not in prims and prims.count(P.matmul_p) == 1, k
    llvm = mv32.inspect_llvm(E, q)
    assert "x float>" in llvm and "shufflevector" in llvm  # vector form, lanes summed together
    strict = mv32_strict.inspect_llvm(E, q)
    assert "fadd float" in strict and "reassoc" not in strict
