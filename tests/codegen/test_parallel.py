"""@lt.kernel(parallel=True): same results as the serial kernel, deterministic (the chunks depend
on the sizes only), thread count from lt.set_num_threads / $LATTICE_NUM_THREADS.  The automatic
mode (the default) is tested in test_parallel_default.py."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import lattice as lt
from lattice.codegen.pool import THRESHOLD

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def _restore_threads():
    n = lt.get_num_threads()
    yield
    lt.set_num_threads(n)


@lt.kernel(parallel=True)
def psum(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(x)


@lt.kernel(parallel=True)
def pdot32(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
    return lt.sum(a * b)


@lt.kernel(parallel=True)
def pextremes(x: lt.f64["n", "d"]) -> (lt.f64, lt.f64, lt.i64):
    return lt.max(x), lt.min(x * 2.0), lt.sum((x > 0.5).astype(lt.i64))


@lt.kernel(parallel=True)
def pmap(X: lt.f64["n", "d"], s: lt.f64) -> lt.f64["n", "d"]:
    return lt.exp(X) * s + 1.0


@lt.kernel(parallel=True)
def prows(X: lt.f64["n", "d"]) -> (lt.f64["n"], lt.f64["n"]):
    return lt.sqrt(lt.sum(X * X, axis=1)), lt.max(X, axis=1)


@lt.kernel(parallel=True)
def pmid(X: lt.f64["a", "b", "c"]) -> lt.f64["a", "c"]:
    return lt.sum(X * 2.0, axis=1)


@lt.kernel(parallel=True)
def pcols(X: lt.f64["n", "d"]) -> lt.f64["d"]:
    return lt.sum(X * 2.0, axis=0)


@lt.kernel(parallel=True)
def best_match(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


@lt.kernel(parallel=True)
def pmatmul(A: lt.f64["n", "k"], B: lt.f64["k", "m"]) -> lt.f64["n", "m"]:
    return A @ B


@lt.kernel(parallel=True)
def pstrided(X: lt.f64["n", "d"]) -> lt.f64:
    return lt.sum(X.T * 3.0)


def _both_counts(fn, *args):
    out = {}
    for n in (1, 2, 3):
        lt.set_num_threads(n)
        out[n] = fn(*args)
    return out


@pytest.mark.parametrize("n", [10, THRESHOLD + 7, 3 * THRESHOLD + 1])
def test_reductions_match_numpy(n):
    rng = np.random.default_rng(n)
    x = rng.standard_normal(n)
    for k, got in _both_counts(psum, x).items():
        np.testing.assert_allclose(got, x.sum(), rtol=1e-12)
    a, b = rng.standard_normal((2, n)).astype(np.float32)
    for got in _both_counts(pdot32, a, b).values():
        np.testing.assert_allclose(got, np.dot(a.astype(np.float64), b), rtol=1e-3, atol=1e-2)
        assert type(got) is np.float32
    X = rng.random((n, 3))
    for got in _both_counts(pextremes, X).values():
        assert got == (X.max(), (X * 2.0).min(), np.int64((X > 0.5).sum()))


def test_maps_rows_and_matmuls_match_numpy():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((THRESHOLD // 8 + 5, 16))
    for got in _both_counts(pmap, X, 0.5).values():
        np.testing.assert_allclose(got, np.exp(X) * 0.5 + 1.0, rtol=1e-14)
    for got in _both_counts(prows, X).values():
        np.testing.assert_allclose(got[0], np.linalg.norm(X, axis=1), rtol=1e-13)
        np.testing.assert_array_equal(got[1], X.max(axis=1))
    Y = rng.standard_normal((600, 40, 7))
    for got in _both_counts(pmid, Y).values():
        np.testing.assert_allclose(got, (Y * 2.0).sum(axis=1), rtol=1e-12)
    for got in _both_counts(pcols, X).values():
        np.testing.assert_allclose(got, (X * 2.0).sum(axis=0), rtol=1e-12)
    E = rng.standard_normal((10_000, 128)).astype(np.float32)
    q = rng.standard_normal(128).astype(np.float32)
    for got in _both_counts(best_match, E, q).values():
        assert got == np.argmax(E.astype(np.float64) @ q)
    A, B = rng.standard_normal((300, 200)), rng.standard_normal((200, 50))
    for got in _both_counts(pmatmul, A, B).values():
        np.testing.assert_allclose(got, A @ B, rtol=1e-10, atol=1e-10)
    F = np.asfortranarray(X)  # a strided specialisation splits too
    for got in _both_counts(pstrided, F).values():
        np.testing.assert_allclose(got, X.sum() * 3.0, rtol=1e-12)


def test_deterministic_for_a_thread_count():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(5 * THRESHOLD) * 1e6
    lt.set_num_threads(2)
    first = psum(x)
    assert all(psum(x) == first for _ in range(50))
    X = rng.standard_normal((THRESHOLD, 8))
    first = prows(X)[0]
    for _ in range(20):
        np.testing.assert_array_equal(prows(X)[0], first)


def test_concurrent_python_threads():
    rng = np.random.default_rng(2)
    x = rng.standard_normal(1 << 20)
    lt.set_num_threads(2)
    want = psum(x)
    got = []

    def work():
        for _ in range(20):
            got.append(psum(x))
    ts = [threading.Thread(target=work) for _ in range(3)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    # a caller that finds the pool busy runs the same chunks serially: same bits
    assert got == [want] * 60


def test_set_num_threads_validates():
    for bad in (0, -1, 1.5, "2", True, 10_000):
        with pytest.raises(ValueError):
            lt.set_num_threads(bad)
    lt.set_num_threads(1)
    assert lt.get_num_threads() == 1


def test_env_variable_sets_the_thread_count():
    code = "import lattice as lt; print(lt.get_num_threads())"
    env = dict(os.environ, LATTICE_NUM_THREADS="3",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "3"


def test_serial_kernels_do_not_touch_the_pool():
    @lt.kernel(parallel=False)
    def ssum(x: lt.f64["n"]) -> lt.f64:
        return lt.sum(x)
    x = np.ones(4 * THRESHOLD)
    assert ssum(x) == x.size
    assert "lt_parallel_for" not in ssum.inspect_llvm(x)
    assert "lt_parallel_for" in psum.inspect_llvm(x)
