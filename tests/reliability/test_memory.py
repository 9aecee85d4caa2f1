"""Memory: RSS stays flat over many calls; machine code lives as long as it can be called.

The probe runs in a child process (rss_probe.py) so the test process's own allocations do not
blur the figure.  The issue's full-size figures (10**6 calls, 1000 compilations) come from
running the probe by hand; see docs/testing.md.
"""
from __future__ import annotations

import gc
import json
import os
import pathlib
import subprocess
import sys

import numpy as np

import lattice as lt

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent


def probe(mode: str, n: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(HERE / "rss_probe.py"), mode, str(n)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_rss_flat_over_many_calls():
    r = probe("calls", 200_000)
    assert r["growth_mib"] < 2.0, r


def test_rss_over_compilations_is_bounded():
    # llvmlite's new-pass-manager bindings leak ~75 KiB per optimised module (measured with
    # llvmlite 0.50; lattice frees every module, engine and target machine it creates), so
    # this bounds the growth rather than asserting it is zero: 40 compilations < 8 MiB.
    r = probe("compiles", 40)
    assert r["growth_mib"] < 8.0, r


def _kernel():
    @lt.kernel
    def twice(x: lt.f64["n"]) -> lt.f64["n"]:
        return x * 2.0
    return twice


def test_compiled_code_outlives_the_kernel_object():
    x = np.arange(5.0)
    k = _kernel()
    k(x)
    compiled = k._compiled_for((x,))
    bound = k.__call__
    del k
    for _ in range(3):
        gc.collect()
    # the specialisation and a bound call keep their machine code alive
    np.testing.assert_array_equal(compiled(x)[0], x * 2)
    np.testing.assert_array_equal(bound(x), x * 2)
    np.testing.assert_array_equal(bound(x[::2]), x[::2] * 2)


def test_many_short_lived_kernels_free_cleanly():
    x = np.arange(3.0)
    for _ in range(5):
        k = _kernel()
        assert k(x)[2] == 4.0
        del k
        gc.collect()
