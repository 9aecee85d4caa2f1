"""Parallel by default: a kernel without options splits loop nests big enough to pay.

Oracles: NumPy, the same kernel with ``parallel=False``, and the same kernel on one thread (the
chunks depend on the sizes only, so any thread count gives the same bits).  The pool's job
counter (``pool.jobs_run``) shows whether a call handed work to the workers."""
from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lattice as lt
from lattice.codegen import pool
from lattice.codegen.pool import GRAIN, MAX_CHUNKS, THRESHOLD

from conftest import assert_same
from test_parallel import _restore_threads  # noqa: F401  (autouse: restores the thread count)


def _both(fn, **kw):
    """The plain (automatic) kernel and its ``parallel=False`` twin."""
    return lt.kernel(**kw)(fn), lt.kernel(parallel=False, **kw)(fn)


def _sum(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(x)


def _affine(x: lt.f64["n"], a: lt.f64) -> lt.f64["n"]:
    return lt.exp(x * a) + 1.0


def _rows(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    return lt.sqrt(lt.sum(X * X, axis=1))


def _best(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


def _matvec(A: lt.f64["n", "d"], x: lt.f64["d"]) -> lt.f64["n"]:
    return A @ x


def _loss(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64:
    z = X @ w
    return lt.sum(lt.softplus(z) - y * z) / X.shape[0]


def _isum(x: lt.i64["n"]) -> lt.i64:
    return lt.sum(x * 3)


sum_auto, sum_ser = _both(_sum)
affine_auto, affine_ser = _both(_affine)
rows_auto, rows_ser = _both(_rows)
best_auto, best_ser = _both(_best)
mv_auto, mv_ser = _both(_matvec)
loss_auto, loss_ser = _both(_loss)
grad_auto, grad_ser = lt.grad(loss_auto, argnums=2), lt.grad(loss_ser, argnums=2)
isum_auto, isum_ser = _both(_isum)
strict_sum, strict_sum_ser = _both(_sum, fastmath=False)
strict_affine, strict_affine_ser = _both(_affine, fastmath=False)
strict_loss, strict_loss_ser = _both(_loss, fastmath=False)
strict_grad = lt.grad(strict_loss, argnums=2)
strict_grad_ser = lt.grad(strict_loss_ser, argnums=2)
strict_best, strict_best_ser = _both(_best, fastmath=False)


def _per_thread_count(f, *args, counts=(1, 2, 4)):
    out = {}
    for n in counts:
        lt.set_num_threads(n)
        out[n] = f(*args)
    return out


def _jobs(f, *args):
    """``f(*args)`` and how many jobs the pool's workers were given during the call."""
    before = pool.jobs_run()
    got = f(*args)
    return got, pool.jobs_run() - before


def _logistic(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d) * 0.3
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w)))).astype(float)
    return X, y, w


def _np_grad(X, y, w):
    return X.T @ (1 / (1 + np.exp(-(X @ w))) - y) / X.shape[0]


def test_the_default_is_automatic_and_options_are_checked():
    assert sum_auto.parallel is None and sum_ser.parallel is False
    assert grad_auto.parallel is None and grad_ser.parallel is False  # derived kernels follow
    assert lt.kernel(parallel=True)(_sum).parallel is True
    with pytest.raises(TypeError, match="parallel"):
        lt.kernel(parallel="yes")(_sum)


def test_results_match_numpy_and_the_serial_kernel():
    rng = np.random.default_rng(0)
    lt.set_num_threads(2)
    x = rng.standard_normal(3 * THRESHOLD + 11)
    assert_same(sum_auto(x), sum_ser(x), rtol=1e-12)
    assert_same(sum_auto(x), np.sum(x), rtol=1e-12)
    # a map does not reorder anything: bitwise the serial kernel's
    np.testing.assert_array_equal(affine_auto(x, 0.5), affine_ser(x, 0.5))
    assert_same(affine_auto(x, 0.5), np.exp(x * 0.5) + 1.0, rtol=1e-14)
    X = rng.standard_normal((THRESHOLD // 4 + 3, 16))
    np.testing.assert_array_equal(rows_auto(X), rows_ser(X))  # rows reduced in order
    assert_same(rows_auto(X), np.sqrt((X * X).sum(axis=1)), rtol=1e-13)
    assert_same(mv_auto(X, X[0]), X @ X[0], rtol=1e-11, atol=1e-11)
    E = rng.standard_normal((10_000, 128)).astype(np.float32)
    q = rng.standard_normal(128).astype(np.float32)
    assert best_auto(E, q) == best_ser(E, q) == np.argmax(E.astype(np.float64) @ q)
    xi = rng.integers(-1000, 1000, 3 * THRESHOLD)
    assert isum_auto(xi) == isum_ser(xi) == (xi * 3).sum()  # integers: exact in any order
    X, y, w = _logistic(50_000, 32, 1)
    assert_same(grad_auto(X, y, w), _np_grad(X, y, w), rtol=1e-10, atol=1e-13)
    assert_same(grad_auto(X, y, w), grad_ser(X, y, w), rtol=1e-10, atol=1e-13)


def test_big_loops_use_the_pool_and_small_ones_do_not():
    rng = np.random.default_rng(3)
    lt.set_num_threads(2)
    small = rng.standard_normal(THRESHOLD // 2)
    big = rng.standard_normal(4 * THRESHOLD)
    X, y, w = _logistic(THRESHOLD // 16, 32, 2)  # a row pass of 2 * 4096 * 32 operations
    Xs, ys, ws = _logistic(THRESHOLD // 256, 32, 2)
    for f, args in ((sum_auto, (small,)), (affine_auto, (small[:THRESHOLD // 16], 0.3)),
                    (grad_auto, (Xs, ys, ws)), (rows_auto, (small.reshape(-1, 8),))):
        f(*args)  # compile first: the counter is the pool's, whoever calls it
        _, jobs = _jobs(f, *args)
        assert jobs == 0, f
    # an exp costs several operations: fewer elements than the threshold already pay
    for f, args in ((sum_auto, (big,)), (affine_auto, (small[:THRESHOLD // 4], 0.3)),
                    (grad_auto, (X, y, w))):
        f(*args)
        _, jobs = _jobs(f, *args)
        assert jobs == 1, f
    lt.set_num_threads(1)  # one thread: the chunks run on the caller, no job
    _, jobs = _jobs(sum_auto, big)
    assert jobs == 0
    assert ".chunk" not in sum_ser.inspect_llvm(big)


sizes = st.one_of(st.integers(0, 300), st.integers(THRESHOLD - 50, THRESHOLD + 50),
                  st.integers(THRESHOLD, 40 * THRESHOLD))


@given(n=sizes, seed=st.integers(0, 2**16))
@settings(deadline=None, max_examples=25)
def test_bitwise_the_same_on_any_number_of_threads(n, seed):
    x = np.random.default_rng(seed).standard_normal(n) * 1e3
    got = _per_thread_count(sum_auto, x)
    assert got[1] == got[2] == got[4]
    maps = _per_thread_count(affine_auto, x, -0.01)
    np.testing.assert_array_equal(maps[1], maps[4])
    np.testing.assert_array_equal(maps[2], affine_ser(x, -0.01))


@given(n=st.integers(1, 30_000), d=st.integers(1, 40), seed=st.integers(0, 2**16))
@settings(deadline=None, max_examples=20)
def test_gradients_and_row_reductions_bitwise_on_any_number_of_threads(n, d, seed):
    X, y, w = _logistic(n, d, seed)
    g = _per_thread_count(grad_auto, X, y, w)
    np.testing.assert_array_equal(g[1], g[2])
    np.testing.assert_array_equal(g[1], g[4])
    assert_same(g[2], _np_grad(X, y, w), rtol=1e-9, atol=1e-12)
    E = X.astype(np.float32)
    b = _per_thread_count(best_auto, E, w.astype(np.float32))
    assert b[1] == b[2] == b[4] == best_ser(E, w.astype(np.float32))


def test_a_chunk_count_is_a_function_of_the_sizes():
    # below the threshold one chunk, else min(rows, work / GRAIN, MAX_CHUNKS); the counts a
    # thread count never enters (results above are bitwise equal across thread counts)
    assert THRESHOLD >= 4 * GRAIN and MAX_CHUNKS * GRAIN >= THRESHOLD


def test_strict_math_reductions_keep_the_plain_loops_order():
    rng = np.random.default_rng(4)
    lt.set_num_threads(2)
    x = rng.standard_normal(6 * THRESHOLD) * 1e8  # large terms: a reordered sum differs
    assert strict_sum(x) == strict_sum_ser(x)
    assert ".chunk" not in strict_sum.inspect_llvm(x)
    np.testing.assert_array_equal(strict_affine(x, 0.1), strict_affine_ser(x, 0.1))
    assert ".chunk" in strict_affine.inspect_llvm(x, 0.1)  # maps still split
    X, y, w = _logistic(20_000, 32, 5)
    np.testing.assert_array_equal(strict_grad(X, y, w), strict_grad_ser(X, y, w))
    assert strict_loss(X, y, w) == strict_loss_ser(X, y, w)
    E = rng.standard_normal((20_000, 64)).astype(np.float32)
    q = rng.standard_normal(64).astype(np.float32)
    # an argmax combines chunks exactly: it may split, and agrees
    assert strict_best(E, q) == strict_best_ser(E, q) == np.argmax(E @ q)
    # an explicit parallel=True still splits strict float sums (rounded per chunk)
    forced = lt.kernel(parallel=True, fastmath=False)(_sum)
    assert ".chunk" in forced.inspect_llvm(x)
    assert_same(forced(x), strict_sum_ser(x), rtol=1e-12)


def _threads_of_process():
    """The process's threads (Linux), by name."""
    if not os.path.isdir("/proc/self/task"):
        return None
    names = []
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                names.append(f.read().strip())
        except OSError:  # a thread that just ended
            pass
    return sorted(names)


def test_many_python_threads_call_one_kernel():
    rng = np.random.default_rng(6)
    x = rng.standard_normal(1 << 19)
    X, y, w = _logistic(40_000, 16, 6)
    lt.set_num_threads(2)
    want_s, want_g = sum_auto(x), grad_auto(X, y, w)
    before = _threads_of_process()
    got, errors = [], []

    def work():
        try:
            for _ in range(10):
                got.append((sum_auto(x), grad_auto(X, y, w)))
        except Exception as exc:  # reported below: an assertion in a thread is lost
            errors.append(exc)
    ts = [threading.Thread(target=work) for _ in range(6)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert len(got) == 60
    for s, g in got:  # whoever got the pool, and whoever ran its chunks alone: same bits
        assert s == want_s
        np.testing.assert_array_equal(g, want_g)
    if before is not None:  # no worker was started for the extra callers
        deadline = time.monotonic() + 5.0
        while _threads_of_process() != before and time.monotonic() < deadline:
            time.sleep(0.01)  # a joined thread may take a moment to leave the process
        assert _threads_of_process() == before


@lt.kernel
def _total(v: lt.f64["m"]) -> lt.f64:
    return lt.sum(v * v)


@lt.kernel
def nested(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    out = lt.empty(X.shape[0])
    for i in lt.prange(X.shape[0]):  # each row's reduction runs inside a chunk
        out[i] = _total(X[i])
    return out


def test_a_kernel_called_inside_a_chunk_runs_serially_there():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((64, 3 * THRESHOLD))  # rows big enough to split on their own
    got = _per_thread_count(nested, X)
    np.testing.assert_array_equal(got[1], got[2])
    np.testing.assert_array_equal(got[1], got[4])
    assert_same(got[2], (X * X).sum(axis=1), rtol=1e-12)
    lt.set_num_threads(2)
    _, jobs = _jobs(nested, X)
    assert jobs == 1  # the prange loop's; the rows' sums ran in its chunks


@lt.kernel
def cscale(z: lt.c128["n"], a: lt.c128) -> lt.c128["n"]:
    return z * a + a


@lt.kernel
def csum(z: lt.c64["n"], a: lt.c64) -> lt.c64:
    return lt.sum(z * a)


def test_complex_values_in_chunks():
    rng = np.random.default_rng(8)
    n = 2 * THRESHOLD + 5
    z = rng.standard_normal(n) + 1j * rng.standard_normal(n)
    a = 0.25 - 1.5j
    lt.set_num_threads(2)
    maps = _per_thread_count(cscale, z, a)
    np.testing.assert_array_equal(maps[1], maps[4])
    # fastmath contracts to fused multiply-adds in the vector loop, not always in the scalar
    # one, and a chunk's vector loop starts at its own first row: an ulp of |z * a| apart
    scale = 1e-15 * np.abs(z * a).max()
    assert_same(maps[2], lt.kernel(parallel=False)(cscale.fn)(z, a), rtol=1e-13, atol=scale)
    assert_same(maps[2], z * a + a, rtol=1e-13, atol=scale)
    lt.set_num_threads(2)
    assert ".chunk" in cscale.inspect_llvm(z, a)  # a complex argument captured by the chunk
    z32 = z.astype(np.complex64)
    got = _per_thread_count(csum, z32, np.complex64(a))
    assert got[1] == got[2] == got[4]
    assert_same(got[1], (z32.astype(np.complex128) * a).sum().astype(np.complex64), rtol=1e-4)


def _add_into(y: lt.f64["n"], x: lt.f64["n"]):
    y[:] += 2.0 * x


def _shift(y: lt.f64["n"]):
    y[1:] = y[:-1] + 1.0


def _scatter(y: lt.f64["m"], idx: lt.i64["n"], v: lt.f64["n"]):
    for i in range(idx.shape[0]):
        y[idx[i]] += v[i]


@pytest.mark.parametrize("fn", [_add_into, _shift, _scatter])
def test_argument_writes_stay_correct(fn):
    rng = np.random.default_rng(9)
    n = 3 * THRESHOLD
    args = {_add_into: lambda: (rng.standard_normal(n), rng.standard_normal(n)),
            _shift: lambda: (rng.standard_normal(n),),
            _scatter: lambda: (np.zeros(100), rng.integers(0, 100, n), rng.standard_normal(n))}[fn]()
    auto, ser = _both(fn)
    lt.set_num_threads(2)
    want = [a.copy() for a in args]
    fn(*want)  # NumPy runs the function itself (an overlapping slice store reads first)
    mine, theirs = [a.copy() for a in args], [a.copy() for a in args]
    auto(*mine)
    ser(*theirs)
    np.testing.assert_array_equal(mine[0], theirs[0])
    assert_same(mine[0], want[0], rtol=1e-12, atol=1e-12)


def test_the_disk_cache_keys_the_parallel_mode(tmp_path, monkeypatch):
    monkeypatch.setenv("LATTICE_CACHE_DIR", str(tmp_path))
    x = np.ones(4 * THRESHOLD)
    a = lt.kernel(cache=True)(_sum)
    b = lt.kernel(cache=True, parallel=False)(_sum)
    c = lt.kernel(cache=True, parallel=True, fastmath=False)(_sum)
    d = lt.kernel(cache=True, fastmath=False)(_sum)
    assert a(x) == b(x) == c(x) == d(x) == x.size
    assert ".chunk" in a.inspect_llvm(x) and ".chunk" not in b.inspect_llvm(x)
    assert ".chunk" in c.inspect_llvm(x) and ".chunk" not in d.inspect_llvm(x)
    fresh = lt.kernel(cache=True, parallel=False)(_sum)  # loaded from disk: b's, not a's
    assert fresh(x) == x.size and ".chunk" not in fresh.inspect_llvm(x)
