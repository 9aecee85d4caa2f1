"""Large float products through NumPy's BLAS (codegen/blas.py, codegen/blascall.py).

The oracle is NumPy: shapes straddle the thresholds, operands come C-contiguous, transposed
(a BLAS ``Trans``), sliced with a leading dimension larger than the row, stepped and
reversed (lattice's own code), and empty.  ``LATTICE_BLAS=none`` gives lattice's own code,
which must agree; strict math never calls the library; the disk-cache key names it.
"""

import contextlib
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, strategies as st

import lattice as lt
from lattice.codegen import blas, blascall, cache

from conftest import assert_same

BLAS = blas.find()
needs_blas = pytest.mark.skipif(BLAS is None, reason="NumPy ships no BLAS lattice can call")


def _kernels(dt):
    @lt.kernel
    def mm(a: dt["m", "k"], b: dt["k", "n"]) -> dt["m", "n"]:
        return a @ b

    # matrix-vector products call ?gemv in serial kernels only (a default kernel splits its
    # own loops across the threads): these are serial so that the ?gemv path is tested
    @lt.kernel(parallel=False)
    def mv(a: dt["m", "k"], x: dt["k"]) -> dt["m"]:
        return a @ x

    @lt.kernel(parallel=False)
    def vm(x: dt["m"], a: dt["m", "k"]) -> dt["k"]:
        return x @ a

    @lt.kernel
    def gram(x: dt["n", "d"]) -> dt["d", "d"]:
        return x.T @ x
    return mm, mv, vm, gram


K = {np.float64: _kernels(lt.f64), np.float32: _kernels(lt.f32)}
# the same kernels, compiled only under forced(): every product then calls the library
KF = {np.float64: _kernels(lt.f64), np.float32: _kernels(lt.f32)}


def forced():
    """Every float product large enough for the library while kernels compile inside."""
    return blascall.thresholds(1, 1)


def _pick(dtype, force):
    return (KF if force else K)[dtype], (forced() if force else contextlib.nullcontext())


def _tol(dtype, k):
    """Both sums are accurate to about sqrt(k) rounding errors of the summands' size."""
    eps = np.finfo(dtype).eps
    return dict(rtol=20 * eps * max(1, k) ** 0.5, atol=20 * eps * max(1, k) ** 0.5)


def _view(rng, dtype, rows, cols, kind):
    """A (rows, cols) operand: C-contiguous, a transposed C array, a slice of a wider array
    (leading dimension > cols), stepped along its rows, or reversed."""
    if kind == "C":
        return rng.standard_normal((rows, cols)).astype(dtype)
    if kind == "T":
        return rng.standard_normal((cols, rows)).astype(dtype).T
    if kind == "wide":
        return rng.standard_normal((rows, cols + 3)).astype(dtype)[:, 1:cols + 1]
    if kind == "step":
        return rng.standard_normal((rows, 2 * cols)).astype(dtype)[:, ::2]
    assert kind == "rev"
    return rng.standard_normal((rows, cols)).astype(dtype)[::-1]


KINDS = st.sampled_from(["C", "T", "wide", "step", "rev"])
DTYPES = st.sampled_from([np.float64, np.float32])
# around the gemm thresholds (32^3 work, 64^2 results): sizes up to 90 cross them
SIZE = st.integers(0, 90)


FORCE = st.booleans()  # the thresholds as they are, or every product through the library


@given(m=SIZE, k=SIZE, n=SIZE, ka=KINDS, kb=KINDS, dtype=DTYPES, force=FORCE,
       seed=st.integers(0, 2**31))
def test_matmul_matches_numpy(m, k, n, ka, kb, dtype, force, seed):
    rng = np.random.default_rng(seed)
    a, b = _view(rng, dtype, m, k, ka), _view(rng, dtype, k, n, kb)
    kernels, mode = _pick(dtype, force)
    with mode:
        got = kernels[0](a, b)
    assert_same(got, a @ b, **_tol(dtype, k))


@given(m=st.integers(0, 600), k=st.integers(0, 300), kind=KINDS, dtype=DTYPES, force=FORCE,
       seed=st.integers(0, 2**31), stride=st.sampled_from([1, 2]))
def test_matvec_and_vecmat_match_numpy(m, k, kind, dtype, force, seed, stride):
    rng = np.random.default_rng(seed)
    a = _view(rng, dtype, m, k, kind)
    x = rng.standard_normal(k * stride).astype(dtype)[::stride]
    y = rng.standard_normal(m * stride).astype(dtype)[::stride]
    (mm, mv, vm, _), mode = _pick(dtype, force)
    with mode:
        got_mv, got_vm = mv(a, x), vm(y, a)
    assert_same(got_mv, a @ x, **_tol(dtype, k))
    assert_same(got_vm, y @ a, **_tol(dtype, m))


@given(n=st.integers(0, 300), d=st.integers(0, 70), kind=KINDS, dtype=DTYPES, force=FORCE,
       seed=st.integers(0, 2**31))
def test_gram_is_symmetric_and_matches_numpy(n, d, kind, dtype, force, seed):
    x = _view(np.random.default_rng(seed), dtype, n, d, kind)
    kernels, mode = _pick(dtype, force)
    with mode:
        g = kernels[3](x)
    assert_same(g, x.T @ x, **_tol(dtype, n))
    np.testing.assert_array_equal(g, g.T)  # the mirrored triangle is exact


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("shape", [(0, 100, 100), (100, 0, 100), (100, 100, 0), (0, 0, 0)])
def test_empty_dims_give_zeros(shape, force):
    m, k, n = shape
    a, b = np.ones((m, k)), np.ones((k, n))
    (mm, mv, vm, gram), mode = _pick(np.float64, force)
    with mode:
        got = mm(a, b)
        assert got.shape == (m, n)
        np.testing.assert_array_equal(got, np.zeros((m, n)))
        assert_same(mv(a, np.ones(k)), a @ np.ones(k))
        assert_same(vm(np.ones(m), a), np.ones(m) @ a)
        assert_same(gram(b), b.T @ b)


@needs_blas
def test_inspect_llvm_shows_the_calls():
    a = np.ones((100, 100))
    mm, mv, vm, gram = _kernels(lt.f64)
    assert BLAS.symbol("dgemm") in mm.inspect_llvm(a, a)
    assert BLAS.symbol("dsyrk") in gram.inspect_llvm(a)
    with forced():  # (fresh kernels: compiled here)
        vm, mv = _kernels(lt.f64)[2], _kernels(lt.f64)[1]
        assert BLAS.symbol("dgemv") in vm.inspect_llvm(a[0], a)
        assert BLAS.symbol("dgemv") in mv.inspect_llvm(a, a[0])
    assert BLAS.symbol("sgemm") in K[np.float32][0].inspect_llvm(a.astype("f4"), a.astype("f4"))
    assert "cblas_dgemm" in BLAS.symbol("dgemm")


@needs_blas
def test_a_large_product_is_the_librarys(monkeypatch):
    """Above the threshold the call happens: lattice's result is bitwise the one NumPy gets
    from the same routine (it too calls ``gemm`` on these C-contiguous operands), and
    differs from lattice's own code, which sums in another order."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 2000)), rng.standard_normal((2000, 64))
    np.testing.assert_array_equal(K[np.float64][0](a, b), a @ b)
    monkeypatch.setenv(blas.ENV, "none")
    own = _kernels(lt.f64)[0](a, b)
    assert not np.array_equal(own, a @ b)
    np.testing.assert_allclose(own, a @ b, **_tol(np.float64, 2000))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lattice_blas_none_gives_own_code_and_same_results(monkeypatch, dtype):
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((90, 70)).astype(dtype), rng.standard_normal((70, 80)).astype(dtype)
    monkeypatch.setenv(blas.ENV, "none")
    mm, mv, vm, gram = _kernels(lt.f64 if dtype is np.float64 else lt.f32)
    assert "cblas" not in mm.inspect_llvm(a, b) and "cblas" not in gram.inspect_llvm(a)
    assert_same(mm(a, b), a @ b, **_tol(dtype, 70))
    assert_same(gram(a), a.T @ a, **_tol(dtype, 90))
    assert_same(vm(a[:, 0].copy(), a), a[:, 0] @ a, **_tol(dtype, 90))


def test_lattice_blas_none_in_a_fresh_process(tmp_path):
    code = ("import numpy as np, lattice as lt\n"
            "@lt.kernel\n"
            "def mm(a: lt.f64['m', 'k'], b: lt.f64['k', 'n']) -> lt.f64['m', 'n']:\n"
            "    return a @ b\n"
            "a = np.arange(120.0 * 130).reshape(120, 130) % 7\n"
            "b = np.arange(130.0 * 90).reshape(130, 90) % 5\n"
            "assert 'cblas' not in mm.inspect_llvm(a, b)\n"
            "assert np.array_equal(mm(a, b), a @ b)\n"  # small integers: exact either way
            "print('ok')\n")
    script = tmp_path / "product.py"
    script.write_text(code)
    env = dict(os.environ, LATTICE_BLAS="none")
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_cache_key_names_the_blas(monkeypatch):
    on = cache.make_key("same kernel")
    monkeypatch.setenv(blas.ENV, "none")
    off = cache.make_key("same kernel")
    assert blas.cache_tag() == "blas=none"
    assert (on != off) == (BLAS is not None)
    monkeypatch.setenv(blas.ENV, "auto")
    assert cache.make_key("same kernel") == on


def test_a_bad_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(blas.ENV, "mkl-please")
    with pytest.raises(ValueError, match="LATTICE_BLAS"):
        blas.find()


def test_strict_math_keeps_the_plain_loop_bitwise():
    @lt.kernel(fastmath=False)
    def mm_strict(a: lt.f64["m", "k"], b: lt.f64["k", "n"]) -> lt.f64["m", "n"]:
        return a @ b
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((70, 90)), rng.standard_normal((90, 60))
    assert "cblas" not in mm_strict.inspect_llvm(a, b)
    want = np.zeros((70, 60))
    for kk in range(90):  # each element summed in k order from zero, as the plain loop does
        want = want + a[:, kk, None] * b[None, kk, :]
    np.testing.assert_array_equal(mm_strict(a, b), want)


def test_no_library_call_inside_a_prange_chunk():
    @lt.kernel(parallel=True)
    def per_row(a: lt.f64["r", "m", "k"], b: lt.f64["k", "n"]) -> lt.f64["r", "m", "n"]:
        out = np.zeros((a.shape[0], a.shape[1], b.shape[1]))
        for i in lt.prange(a.shape[0]):
            out[i] = a[i] @ b
        return out
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((4, 60, 70)), rng.standard_normal((70, 50))
    assert "cblas" not in per_row.inspect_llvm(a, b)
    assert_same(per_row(a, b), a @ b, **_tol(np.float64, 70))


@needs_blas
def test_a_parallel_kernel_calls_the_library_outside_chunks():
    @lt.kernel(parallel=True)
    def mm_par(a: lt.f64["m", "k"], b: lt.f64["k", "n"]) -> lt.f64["m", "n"]:
        return a @ b
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((150, 80)), rng.standard_normal((80, 120))
    assert BLAS.symbol("dgemm") in mm_par.inspect_llvm(a, b)
    assert_same(mm_par(a, b), a @ b, **_tol(np.float64, 80))


def test_a_parallel_kernel_keeps_its_own_matrix_vector_loops():
    @lt.kernel(parallel=True)
    def mv_par(a: lt.f64["m", "k"], x: lt.f64["k"]) -> lt.f64["m"]:
        return a @ x
    rng = np.random.default_rng(7)
    a, x = rng.standard_normal((300, 200)), rng.standard_normal(200)
    with forced():
        assert "cblas" not in mv_par.inspect_llvm(a, x)
        assert_same(mv_par(a, x), a @ x, **_tol(np.float64, 200))


def test_gradient_of_a_large_product():
    """d/dA sum(sin(A @ B)) = cos(A @ B) @ B.T (its transposed products are large too),
    against NumPy's closed form and a central difference along a random direction."""
    @lt.kernel
    def loss(A: lt.f64["m", "k"], B: lt.f64["k", "n"]) -> lt.f64:
        return np.sum(np.sin(A @ B))
    g = lt.grad(loss, argnums=(0, 1))
    rng = np.random.default_rng(5)
    A, B = rng.standard_normal((80, 60)) * 0.3, rng.standard_normal((60, 70)) * 0.3
    gA, gB = g(A, B)
    C = np.cos(A @ B)
    assert_same(gA, C @ B.T, **_tol(np.float64, 70))
    assert_same(gB, A.T @ C, **_tol(np.float64, 80))
    t = rng.standard_normal(A.shape)
    h = 1e-6
    fd = (loss(A + h * t, B) - loss(A - h * t, B)) / (2 * h)
    assert abs(fd - np.sum(gA * t)) <= 1e-6 * max(1.0, abs(fd))


def test_complex_products_through_real_ones():
    rng = np.random.default_rng(6)
    a = rng.standard_normal((60, 50)) + 1j * rng.standard_normal((60, 50))
    b = rng.standard_normal((50, 70)) + 1j * rng.standard_normal((50, 70))

    @lt.kernel
    def cmm(a: lt.c128["m", "k"], b: lt.c128["k", "n"]) -> lt.c128["m", "n"]:
        return a @ b
    assert_same(cmm(a, b), a @ b, **_tol(np.float64, 100))


@needs_blas
def test_set_num_threads_sets_the_librarys():
    lib = ctypes.CDLL(BLAS.path)
    getter = getattr(lib, f"{BLAS.prefix}openblas_get_num_threads{BLAS.suffix}", None)
    if getter is None or not BLAS.set_threads:
        pytest.skip("the library exports no thread count")
    getter.restype = ctypes.c_int
    before, lattice_before = getter(), lt.get_num_threads()
    try:
        lt.set_num_threads(1)
        assert getter() == 1
        lt.set_num_threads(2)
        assert getter() == 2
    finally:
        lt.set_num_threads(lattice_before)
        blas._set_threads(BLAS, before)
    assert getter() == before

