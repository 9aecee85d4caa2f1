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


def _best(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


best = lt.kernel(parallel=True)(_best)


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


def _mv32(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.f32["n"]:
    return E @ q


mv32 = lt.kernel(parallel=True)(_mv32)


@lt.kernel(parallel=True, fastmath=False)
def mv32_strict(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.f32["n"]:
    return E @ q


@lt.kernel(parallel=True, fastmath=False)
def best_strict(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


def _mv64(E: lt.f64["n", "d"], q: lt.f64["d"]) -> lt.f64["n"]:
    return E @ q


mv64 = lt.kernel(parallel=True)(_mv64)


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


# --------------------------------------------------------------------------- aligned-line path
# Rows of 1 .. REG_STEPS whole machine vectors are read by aligned lines: two masked loads
# merge a row's first and last partial lines (codegen/matvec.py, ``_RowDots._line_setup``).
# Every offset of the rows into a vector, every such row length and the one past it, each
# dtype of the vector form, and the lanes outside the rows holding NaN.

@lt.kernel(parallel=True)
def mvi32(E: lt.i32["n", "d"], q: lt.i32["d"]) -> lt.i32["n"]:
    return E @ q


# column windows ``[a : w - b]`` of wider rows: f32 rows 16 and f64 rows 8 elements wider
# (whole vectors apart with AVX and AVX-512) and, last, f32 rows 3 wider (not: the other path)
@lt.kernel(parallel=True)
def best_1_15(E: lt.f32["n", "w"], q: lt.f32["w"]) -> lt.i64:
    return lt.argmax(E[:, 1:-15] @ q[1:-15])


@lt.kernel(parallel=True)
def best_4_12(E: lt.f32["n", "w"], q: lt.f32["w"]) -> lt.i64:
    return lt.argmax(E[:, 4:-12] @ q[4:-12])


@lt.kernel(parallel=True)
def best_15_1(E: lt.f32["n", "w"], q: lt.f32["w"]) -> lt.i64:
    return lt.argmax(E[:, 15:-1] @ q[15:-1])


@lt.kernel(parallel=True)
def mv64_1_7(E: lt.f64["n", "w"], q: lt.f64["w"]) -> lt.f64["n"]:
    return E[:, 1:-7] @ q[1:-7]


@lt.kernel(parallel=True)
def mv64_5_3(E: lt.f64["n", "w"], q: lt.f64["w"]) -> lt.f64["n"]:
    return E[:, 5:-3] @ q[5:-3]


@lt.kernel(parallel=True)
def best_1_2(E: lt.f32["n", "w"], q: lt.f32["w"]) -> lt.i64:
    return lt.argmax(E[:, 1:-2] @ q[1:-2])


_WINDOWS = [(np.float32, best_1_15, 1, 15), (np.float32, best_4_12, 4, 12),
            (np.float32, best_15_1, 15, 1), (np.float64, mv64_1_7, 1, 7),
            (np.float64, mv64_5_3, 5, 3), (np.float32, best_1_2, 1, 2)]


def _at_offset(n, d, dtype, off, fill=np.nan):
    """An ``[n, d]`` C-contiguous array starting ``off`` elements past a 64-byte boundary,
    with ``fill`` in the elements just before and after it."""
    size = np.dtype(dtype).itemsize
    raw = np.empty(n * d * size + 256, np.uint8)
    start = (-raw.ctypes.data) % 64 + 64 + off * size
    whole = raw.view(np.uint8)[start - 64:start + n * d * size + 64]
    if np.dtype(dtype).kind == "f":
        whole.view(dtype)[:] = fill
    E = whole[64:64 + n * d * size].view(dtype).reshape(n, d)
    assert E.ctypes.data % 64 == off * size and E.flags.c_contiguous
    return E


def _line_lengths(dtype):
    from lattice.codegen.matvec import REG_STEPS, lanes_for
    from lattice.ir.types import dtype_of
    lanes = lanes_for(dtype_of(np.dtype(dtype)))
    return lanes, [s * lanes for s in range(1, REG_STEPS + 2)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64])
def test_every_offset_and_row_length_of_the_line_path(dtype):
    rng = np.random.default_rng(11)
    lanes, lengths = _line_lengths(dtype)
    mv = {np.float32: mv32, np.float64: mv64, np.int32: mvi32, np.int64: mvi}[dtype]
    for d in lengths:
        for off in range(lanes):
            for n in (1, 2, 3, 9, 300):
                E = _at_offset(n, d, dtype, off)
                if np.dtype(dtype).kind == "f":
                    E[:] = rng.standard_normal((n, d))
                    q = rng.standard_normal(d).astype(dtype)
                    want = (E.astype(np.float64) @ q.astype(np.float64)).astype(dtype)
                    tol = 1e-4 if dtype == np.float32 else 1e-12
                    for threads in (1, 2):
                        lt.set_num_threads(threads)
                        assert_same(mv(E, q), want, rtol=tol, atol=tol * np.sqrt(d))
                else:
                    E[:] = rng.integers(-1000, 1000, (n, d))
                    q = rng.integers(-5, 6, d).astype(dtype)
                    assert_same(mv(E, q), E @ q)
            if dtype == np.float32:  # and the fused argmax, on exact small integers
                E = _at_offset(4000, d, np.float32, off)
                E[:] = _ints(rng, E.shape, np.float32)
                q = _ints(rng, d, np.float32)
                for threads in (1, 2):
                    lt.set_num_threads(threads)
                    assert best(E, q) == np.argmax(E @ q) == best_serial(E, q)


def test_line_path_reads_only_the_rows_columns():
    # a column window of a wider matrix: the rows start inside a vector and NaN fills the
    # columns on either side, inside the lines the path loads (masked off, never summed)
    rng = np.random.default_rng(12)
    for dtype, k, a, b in _WINDOWS:
        lanes, lengths = _line_lengths(dtype)
        for d in lengths:
            w = a + d + b
            for off in (0, 1, lanes - 1):
                E = _at_offset(500, w, dtype, off)
                E[:] = np.nan
                sub = _ints(rng, (500, d), dtype)
                E[:, a:a + d] = sub
                q = np.full(w, np.nan, dtype)
                q[a:a + d] = _ints(rng, d, dtype)
                want = sub @ q[a:a + d]
                for threads in (1, 2):
                    lt.set_num_threads(threads)
                    got = k(E, q)
                    if dtype == np.float32:
                        assert got == np.argmax(want), (k.__name__, d, off)
                    else:
                        assert_same(got, want)


_GUARD_SCRIPT = r'''
import ctypes, mmap, sys
import numpy as np
import lattice as lt
from lattice.codegen.matvec import REG_STEPS, lanes_for
from lattice.ir.types import dtype_of
sys.path[:0] = sys.argv[1:]  # tests/ and tests/codegen/
from test_matvec import mv32, mv64

page = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
buf = mmap.mmap(-1, 4 * page)
base = np.frombuffer(buf, np.uint8).ctypes.data
for p in (0, 3):  # guard pages on either side of two readable pages
    assert libc.mprotect(base + p * page, page, 0) == 0, ctypes.get_errno()
body = np.frombuffer(buf, np.uint8)[page:3 * page]
rng = np.random.default_rng(0)
checked = 0
for dtype, k in ((np.float32, mv32), (np.float64, mv64)):
    size = np.dtype(dtype).itemsize
    lanes = lanes_for(dtype_of(np.dtype(dtype)))
    for s in range(1, REG_STEPS + 1):
        d = s * lanes
        n = (2 * page) // (d * size)
        for where in ("first", "last"):  # rows against the guard page before, or after
            nbytes = n * d * size
            start = 0 if where == "first" else 2 * page - nbytes
            E = body[start:start + nbytes].view(dtype).reshape(n, d)
            E[:] = rng.integers(-4, 5, (n, d))
            q = rng.integers(-4, 5, d).astype(dtype)
            for threads in (1, 2):
                lt.set_num_threads(threads)
                np.testing.assert_array_equal(k(E, q), E @ q)
                checked += 1
print("checked", checked)
'''


def test_line_path_never_touches_memory_outside_the_array(tmp_path):
    # the merged first/last lines of a row are masked loads: a line wholly outside the array
    # (the last row's, when rows end on a vector boundary) must not fault.  Arrays are placed
    # against PROT_NONE pages; a fault would kill the child process.
    import subprocess
    import sys
    from pathlib import Path
    script = tmp_path / "guard.py"
    script.write_text(_GUARD_SCRIPT)
    here = Path(__file__).resolve().parent
    r = subprocess.run([sys.executable, str(script), str(here.parent), str(here)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    assert "checked" in r.stdout


def test_line_path_is_taken_for_rows_of_whole_vectors():
    from lattice.codegen.gemm import vector_bytes
    if vector_bytes() < 32:
        pytest.skip("masked loads are not native below AVX: the line path is not generated")
    E = np.ones((64, 16), np.float32)
    q = np.ones(16, np.float32)
    assert "llvm.masked.load" in mv32.inspect_llvm(E, q)
    assert "llvm.masked.load" in best.inspect_llvm(E, q)
    assert "llvm.masked.load" not in mv32_strict.inspect_llvm(E, q)


# the same kernels, compiled apart (and not cached) for the 32-byte-vector test
mv32_avx2, mv64_avx2, best_avx2 = (lt.kernel(parallel=True, cache=False)(f)
                                   for f in (_mv32, _mv64, _best))


def test_line_path_with_32_byte_vectors(monkeypatch):
    # the lowering as for an AVX2 host (8 f32 / 4 f64 lanes), compiled here: every offset
    # and row length again.  Kernels of their own, not cached, so no other test sees them.
    import lattice.codegen.gemm as gemm
    import lattice.codegen.matvec as matvec
    # both names: matvec imports the function, so patching gemm's alone reached it only when
    # matvec was first imported inside this test (on a 64-byte-vector host the test then
    # depended on which tests ran before it)
    monkeypatch.setattr(gemm, "vector_bytes", lambda: 32)
    monkeypatch.setattr(matvec, "vector_bytes", lambda: 32)
    rng = np.random.default_rng(13)
    for dtype, lanes in ((np.float32, 8), (np.float64, 4)):
        for d in [s * lanes for s in range(1, 10)]:
            for off in range(lanes):
                E = _at_offset(700, d, dtype, off)
                E[:] = _ints(rng, E.shape, dtype)
                q = _ints(rng, d, dtype)
                for threads in (1, 2):
                    lt.set_num_threads(threads)
                    if dtype == np.float32:
                        assert_same(mv32_avx2(E, q), E @ q)
                        assert best_avx2(E, q) == np.argmax(E @ q)
                    else:
                        assert_same(mv64_avx2(E, q), E @ q)
    E = np.ones((64, 16), np.float32)
    llvm = mv32_avx2.inspect_llvm(E, np.ones(16, np.float32))
    assert "llvm.masked.load.v8f32" in llvm and "llvm.masked.load.v16f32" not in llvm
