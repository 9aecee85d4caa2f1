"""The comparison harness's arithmetic (lattice/testing/bench.py, lattice/testing/timing.py): ratios of peers timed side by side
are medians of per-round ratios, so a slow spell that hits one round of both peers cancels."""
from __future__ import annotations

import numpy as np

from lattice.testing.bench import Row, table, targets
from lattice.testing.timing import median_times, round_ratio


def test_round_ratio_is_the_median_of_paired_ratios():
    rng = np.random.default_rng(0)
    num = rng.uniform(1, 2, 9)
    den = rng.uniform(1, 2, 9)
    med, q1, q3 = round_ratio(list(num), list(den))
    r = num / den
    assert med == np.median(r) and q1 == np.percentile(r, 25) and q3 == np.percentile(r, 75)


def _row(lattice, numpy, floor):
    r = Row("logistic grad", "w", {"lattice": None, "NumPy": None}, floor=lambda: None)
    r.rounds = {"lattice": lattice, "NumPy": numpy, "_floor": floor}
    r.times = {"lattice": float(np.median(lattice)), "NumPy": float(np.median(numpy))}
    r.floor_time = float(np.median(floor))
    return r


def test_a_slow_spell_moves_both_sides_of_a_round():
    # a slow spell hits both lattice and the floor in the last four rounds; lattice alone is
    # slowed in the first three.  lattice's median is then a slow round (1.68x the floor's
    # median), while the per-round ratio, 1.05x in six of nine rounds, cancels the shared spell.
    floor = 8.0 * np.array([1, 1, 1, 1, 1, 1.6, 1.6, 1.6, 1.6])
    lattice = 1.05 * floor * np.array([1.6, 1.6, 1.6, 1, 1, 1, 1, 1, 1])
    numpy = 3.0 * floor
    r = _row(list(lattice), list(numpy), list(floor))
    assert abs(r.times["lattice"] / r.floor_time - 1.68) < 1e-12  # the ratio of medians
    got = {t[0]: t for t in targets([r], [], {})}
    name, how, value, bound, spread = got["logistic grad <= 1.2x floor"]
    assert abs(value - 1.05) < 1e-12 and spread == "1.05–1.68"
    assert abs(got["logistic grad <= 0.5x NumPy"][2] - 1.05 / 3.0) < 1e-12
    assert "(lattice 1.05x floor)" in table([r]) and "(2.86x)" in table([r])


def test_median_times_reports_every_round():
    calls = {"a": 0, "b": 0}

    def a():
        calls["a"] += 1

    def b():
        calls["b"] += 1
    rounds: dict = {}
    med = median_times({"a": a, "b": b}, repeat=3, min_time=1e-4, settle=0.0, rounds=rounds)
    assert sorted(rounds) == ["a", "b"] and all(len(v) == 3 for v in rounds.values())
    assert med["a"] == float(np.median(rounds["a"])) and calls["a"] > 6
