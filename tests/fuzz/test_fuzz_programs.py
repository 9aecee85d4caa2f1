"""The CI share of the random-program fuzzer (about half a minute on two cores).

* ``test_random_programs``: hypothesis draws programs (in-process; see strategies.py);
* ``test_fuzz_cli_short_run``: ``python -m lattice.testing.fuzz`` with two worker processes on a fixed
  seed range, so a crash (segfault) is caught and attributed to its program.

The long runs (10,000+ programs) are by hand: docs/testing.md.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from lattice.testing import fuzz
from lattice.testing.oracle import IllConditioned, Tracked, run_oracle
from strategies import programs

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(prog=programs)
def test_random_programs(prog):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fuzz.run_program(prog)
    assert out.status in ("ok", "skip"), f"{out.detail}\n{fuzz.describe(prog)}"


def test_fuzz_cli_short_run():
    """All 44 programs must run, however loaded the machine: the count ends the run, and the
    time budget is only a guard against a hang (a busy machine takes minutes, not the ~20 s of
    an idle one), so the run is not cut short at a load-dependent program count."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, "-m", "lattice.testing.fuzz", "--seconds", "1500",
                        "--count", "44", "--seed", "7000", "--workers", "2"],
                       capture_output=True, text=True, env=env, timeout=1800)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]
    assert "programs run: 44" in p.stdout, p.stdout[-2000:]
    assert "mismatches 0, gradient failures 0, errors 0, crashes 0" in p.stdout, p.stdout[-2000:]


def test_generation_is_deterministic():
    assert fuzz.generate(123).source == fuzz.generate(123).source
    assert fuzz.generate(123).source != fuzz.generate(124).source


# ---------------------------------------------------------------- the oracle's error model
def _run(src_fn, *args, fastmath=False):
    return run_oracle(src_fn, list(args), fastmath)


def test_oracle_sum_bound_covers_any_order():
    import lattice.testing.oracle as o
    x = np.random.default_rng(0).standard_normal(1000)
    t = o.sum(Tracked(x))
    # (n-1) eps sum|x|: covers sequential, pairwise and reversed summation
    seq = 0.0
    for v in x[::-1]:
        seq += v
    assert abs(seq - float(t.v)) <= float(t.e)
    assert float(t.e) <= 1000 * np.finfo(float).eps * np.abs(x).sum() * 1.01 + 1e-300


def test_oracle_flags_comparisons_within_rounding():
    import lattice.testing.oracle as o
    a = o.sum(Tracked(np.array([0.1, 0.2])))       # 0.30000000000000004, inexact
    with pytest.raises(IllConditioned):
        _ = a > 0.3
    exact = Tracked(np.array([0.5, 0.25]))          # inputs are exact: ties are decided
    assert bool((exact[0] > 0.5).v) is False
    with pytest.raises(IllConditioned):
        o.argmax(Tracked(np.array([1.0, 1.0 + 1e-17])) * 3.0)


def test_oracle_keeps_numpy2_promotion():
    import lattice.testing.oracle as o
    x = Tracked(np.ones(3, np.float32))
    assert (x * 2.0).v.dtype == np.float32          # Python numbers are weak
    assert (x * Tracked(np.int64(2))).v.dtype == np.float64
    assert o.sum(Tracked(np.ones(3, np.int32))).v.dtype == np.int64
    assert (Tracked(np.array([7, -7])) // Tracked(np.array([0, 2]))).v.tolist() == [0, -4]
