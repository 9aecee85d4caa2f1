"""RSS over many kernel calls or compilations: ``python rss_probe.py calls|compiles N``.

Prints one JSON line: RSS (MiB) after a warm-up and after the N operations, and the time.
test_memory.py runs it with small N; the issue's figures (10**6 calls, 1000 compilations) come
from running it by hand (docs/testing.md).
"""
from __future__ import annotations

import gc
import json
import sys
import time

import numpy as np

import lattice as lt


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def small(x: lt.f64["n"], s: lt.f64) -> lt.f64["n"]:
    return x * s + 1.0


def reduce_(x: lt.f64["n"], y: lt.f64["n"]) -> lt.f64:
    acc = 0.0
    for i in range(x.shape[0]):
        acc = acc + x[i] * y[i]
    return acc + lt.sum(lt.exp(x))


def main(mode: str, n: int) -> None:
    x = np.linspace(0.0, 1.0, 16)
    if mode == "calls":
        k = lt.kernel(small)
        for _ in range(20_000):  # warm-up: compile, fill allocator pools
            k(x, 2.0)
        gc.collect()
        r0, t0 = rss_mib(), time.perf_counter()
        for _ in range(n):
            k(x, 2.0)
        gc.collect()
        r1, t1 = rss_mib(), time.perf_counter()
    elif mode == "compiles":
        def one():
            k = lt.kernel(reduce_)  # a fresh kernel: trace, optimise, lower, JIT
            k(x, x)
        for _ in range(30):
            one()
        gc.collect()
        r0, t0 = rss_mib(), time.perf_counter()
        for _ in range(n):
            one()
        gc.collect()
        r1, t1 = rss_mib(), time.perf_counter()
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps({"mode": mode, "n": n, "rss_before_mib": round(r0, 1),
                      "rss_after_mib": round(r1, 1), "growth_mib": round(r1 - r0, 2),
                      "seconds": round(t1 - t0, 2)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
