"""Timing helpers shared by the comparison harness (:mod:`.bench`), the asv suite in ``bench/``
and ``python -m lattice demo``: medians over batches, several callables timed side by side in
rounds, and the per-round ratio of two of them."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

import numpy as np


def _batch_size(fn: Callable[[], Any], min_time: float, max_batch: int) -> int:
    """Calls per batch so that a batch lasts at least ``min_time``."""
    n = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        if time.perf_counter() - t0 >= min_time or n >= max_batch:
            return n
        n *= 2


def _batch(fn: Callable[[], Any], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def median_time(fn: Callable[[], Any], repeat: int = 9, min_time: float = 0.02,
                max_batch: int = 1 << 18) -> float:
    """Median seconds per call over ``repeat`` batches, each at least ``min_time`` long."""
    n = _batch_size(fn, min_time, max_batch)
    return float(np.median([_batch(fn, n) for _ in range(repeat)]))


def median_times(fns: dict[str, Callable[[], Any]], repeat: int = 9, min_time: float = 0.02,
                 max_batch: int = 1 << 18, settle: float = 0.15,
                 rounds: Optional[dict[str, list[float]]] = None) -> dict[str, float]:
    """Median seconds per call of several callables, measured in ``repeat`` rounds: each round
    times one batch of every callable in turn, so a slow spell of the (shared) machine hits all
    of them alike and their ratios stay side by side.  Each batch follows ``settle`` seconds of
    idleness and a discarded batch: the runtimes measured (numba's and JAX's thread pools,
    lattice's) keep their worker threads polling for a while after a call, and on a 2-core
    machine those would otherwise slow down whichever peer runs next.  ``rounds``: a dict to
    receive every callable's per-round times (for :func:`round_ratio`)."""
    sizes = {k: _batch_size(f, min_time, max_batch) for k, f in fns.items()}
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeat):
        for k, f in fns.items():
            time.sleep(settle)
            _batch(f, sizes[k])
            times[k].append(_batch(f, sizes[k]))
    if rounds is not None:
        rounds.update(times)
    return {k: float(np.median(v)) for k, v in times.items()}


def round_ratio(num: list[float], den: list[float]) -> tuple[float, float, float]:
    """The median and quartiles of ``num[i] / den[i]`` over rounds: two callables' ratio when
    each round timed them back to back.  A slow spell of the machine then moves a round's
    numerator and denominator together; the ratio of the two medians can instead pair one
    callable's fast rounds with the other's slow ones."""
    r = np.asarray(num) / np.asarray(den)
    q1, med, q3 = np.percentile(r, [25, 50, 75])
    return float(med), float(q1), float(q3)
