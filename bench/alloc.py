"""A new result costs what NumPy's costs: ``a + c`` (f64) returning a fresh array, lattice's plain
kernel against NumPy, from 1k to 100M elements, side by side in rounds (medians of per-round
ratios, with quartiles).  A third column compiles the same kernel without the huge-page advice
(codegen/lower_core.py ``HUGE_PAGES``) to show what the advice is worth.

    python bench/alloc.py [--repeat 7] [--max 100000000]
"""
from __future__ import annotations

import argparse

import numpy as np

import lattice as lt
import lattice.codegen.lower_core as lower_core
from lattice.testing.timing import median_times, round_ratio


def _add_kernel(huge: bool):
    @lt.kernel(cache=False)
    def add(a: lt.f64["n"], c: lt.f64["n"]):
        return a + c

    old = lower_core.HUGE_PAGES
    lower_core.HUGE_PAGES = huge and old
    try:
        add(np.zeros(1), np.zeros(1))  # compile now, with the setting asked for
    finally:
        lower_core.HUGE_PAGES = old
    return add


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--max", type=int, default=100_000_000)
    args = ap.parse_args()
    add, add_plain = _add_kernel(True), _add_kernel(False)
    print(f"threads {lt.get_num_threads()}; huge-page advice "
          f"{'on' if lower_core.HUGE_PAGES else 'unavailable'} for blocks >= "
          f"{lower_core.HUGE_BLOCK >> 20} MiB")
    print("| elements | NumPy ms | lattice ms | lattice / NumPy (q1-q3) | without advice / NumPy |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    rng = np.random.default_rng(0)
    for n in (1_000, 10_000, 100_000, 400_000, 1_000_000, 4_000_000, 16_000_000, 100_000_000):
        if n > args.max:
            break
        a, c = rng.standard_normal(n), rng.standard_normal(n)
        np.testing.assert_array_equal(add(a, c), a + c)
        rounds: dict = {}
        t = median_times({"NumPy": lambda: a + c, "lattice": lambda: add(a, c),
                          "plain": lambda: add_plain(a, c)},
                         repeat=args.repeat if n < 10**8 else 3, rounds=rounds)
        r, q1, q3 = round_ratio(rounds["lattice"], rounds["NumPy"])
        rp, _, _ = round_ratio(rounds["plain"], rounds["NumPy"])
        print(f"| {n:,} | {t['NumPy'] * 1e3:.3f} | {t['lattice'] * 1e3:.3f} | "
              f"{r:.2f} ({q1:.2f}-{q3:.2f}) | {rp:.2f} |", flush=True)
        del a, c


if __name__ == "__main__":
    main()
