"""The thread pool (codegen/pool.py) through its paths: jobs back to back (workers polling),
after the workers went to sleep, with the thread count changed in between (workers sitting out
and coming back), more threads than CPUs, and every thread on one CPU (a worker that finds
itself on its caller's CPU and cannot move)."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

import lattice as lt
from lattice.codegen.pool import SPIN_TICKS, THRESHOLD

from test_parallel import _restore_threads, psum  # noqa: F401  (autouse fixture, kernel)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@lt.kernel(parallel=True)
def prow(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    return lt.sum(X * X, axis=1)


def _data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(8 * THRESHOLD)
    X = rng.standard_normal((THRESHOLD // 4, 16))
    return x, X


def test_back_to_back_and_after_sleeping():
    x, X = _data()
    lt.set_num_threads(2)
    want_s, want_r = psum(x), prow(X)
    for pause in (0.0, 0.0, 2e-3, 0.0, 20e-3, 1e-4, 0.0, 50e-3):
        time.sleep(pause)  # longer than the polling budget (~0.1 ms): workers sleep
        assert psum(x) == want_s
        np.testing.assert_array_equal(prow(X), want_r)
    np.testing.assert_allclose(want_r, (X * X).sum(axis=1), rtol=1e-13)
    assert SPIN_TICKS > 0
    if hasattr(os, "sched_getaffinity") and os.path.isdir("/proc/self/task"):
        # a worker that moved off its caller's CPU restored its affinity
        allowed = os.sched_getaffinity(0)
        for tid in os.listdir("/proc/self/task"):
            try:
                assert os.sched_getaffinity(int(tid)) == allowed
            except ProcessLookupError:  # a thread that just ended
                pass


def test_thread_count_changes_between_jobs():
    x, X = _data()
    want = {}
    for n in (1, 3, 2, 4, 1, 2, 3):
        lt.set_num_threads(n)
        got = psum(x)
        want.setdefault(n, got)
        assert got == want[n]  # deterministic for a thread count, whichever workers sit out
        np.testing.assert_allclose(got, x.sum(), rtol=1e-12)
        np.testing.assert_allclose(prow(X), (X * X).sum(axis=1), rtol=1e-13)


def test_more_threads_than_cpus():
    x, X = _data()
    lt.set_num_threads(2)
    want = psum(x)
    lt.set_num_threads(8)
    t0 = time.perf_counter()
    for _ in range(200):
        np.testing.assert_allclose(psum(x), want, rtol=1e-12)
    # oversubscribed: polling threads share CPUs, jobs still finish and agree
    assert time.perf_counter() - t0 < 60.0


_ONE_CPU = r"""
import os, numpy as np, lattice as lt
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
lt.set_num_threads(2)

@lt.kernel(parallel=True)
def psum(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(x)

x = np.random.default_rng(0).standard_normal(1 << 20)
want = psum(x)
assert all(psum(x) == want for _ in range(300))
assert os.sched_getaffinity(0) == {min(os.sched_getaffinity(0))}
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs sched_setaffinity")
def test_every_thread_on_one_cpu(tmp_path):
    script = tmp_path / "one_cpu.py"
    script.write_text(_ONE_CPU)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
