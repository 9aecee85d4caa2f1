"""Child process of test_fancy_indexing: gathers, scatters, indexed stores and masks free what
they allocated when a call fails, by an IndexError in the middle of the loop or by any one of
its mallocs failing.  Uses the counting ``malloc``/``free`` of
tests/reliability/malloc_faults.py (installed when it is imported, before any kernel is
compiled).  Prints one JSON line: per case, the buffers left allocated or what went wrong.
"""
from __future__ import annotations

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "reliability"))
import malloc_faults as mf  # noqa: E402  (installs the counting allocator)

import numpy as np  # noqa: E402

import lattice as lt  # noqa: E402


@lt.kernel(boundscheck=True)
def gather(x: lt.f64["n"], idx: lt.i64["m"]) -> lt.f64:
    t = lt.exp(x)
    return t[idx].sum()


@lt.kernel(boundscheck=True)
def scatter(x: lt.f64["n"], idx: lt.i64["m"]) -> lt.f64:
    t = lt.exp(x)
    h = t * 1.0
    h[idx] += 1.0
    return h.sum() + t.sum()


@lt.kernel(boundscheck=True)
def store(x: lt.f64["n"], i: lt.i64) -> lt.f64:
    t = lt.exp(x)
    h = t * 1.0
    h[i] = 2.0
    return h.sum() + t.sum()


@lt.kernel
def masked(X: lt.f64["n", "d"]) -> lt.f64:
    r, c = np.nonzero(X > 0)
    return X[X > 0].sum() + (r * c).sum()


def main() -> None:
    lt.set_num_threads(1)
    x = np.ones(1000)
    out: dict[str, object] = {}
    for name, k, good, bad in (("gather", gather, np.array([0, 5]), np.array([0, 5000])),
                               ("scatter", scatter, np.array([0, 5]), np.array([0, 5000])),
                               ("store", store, 5, 5000)):
        k(x, good)
        mf.live.clear()
        try:
            k(x, bad)
            out[name] = "no IndexError"
        except IndexError:
            out[name] = len(mf.live)
    X = np.random.default_rng(0).standard_normal((30, 4))
    for name, k, args in (("gather", gather, (x, np.array([0, 5]))), ("masked", masked, (X,))):
        mf.state.update(count=0, fail_at=0)
        k(*args)
        left = 0
        for at in range(1, mf.state["count"] + 1):
            mf.live.clear()
            mf.state.update(count=0, fail_at=at)
            try:
                k(*args)
                left += 1000  # the call must fail
            except MemoryError:
                left += len(mf.live)
        mf.state.update(count=0, fail_at=0)
        out[f"{name} malloc faults"] = left
    print(json.dumps(out))


if __name__ == "__main__":
    main()
