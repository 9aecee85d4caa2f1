"""Parallel by default: a plain ``@lt.kernel`` vs the same kernel with ``parallel=False``, NumPy
and numba, for a map, a reduction, ``argmax(E @ q)`` and the gradient of the logistic loss, at
sizes from 1,000 to 10,000,000 elements.

    python bench/parallel.py                 # every row, 7 rounds
    python bench/parallel.py --rounds 5 --max 1000000 --json
    python bench/parallel.py --issue         # argmax 10,000 x 128, grad 1,000,000 x 32, floor

Each round times every contestant of a row once, in turn (interleaved), each time as the mean
of enough back-to-back calls to take about 20 ms; a row reports the median over the rounds, in
microseconds, and the ratios ``auto / parallel=False`` and ``auto / NumPy`` (below 1: the plain
kernel is faster).  numba appears when it is installed: ``@njit`` for one core, and
``@njit(parallel=True)`` with ``prange`` for all of them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Optional

# NumPy's BLAS threads poll for about 0.1 s after each call unless told otherwise, and numba's
# OpenMP threads spin in their barriers: polling, they take the cores from the contestant
# timed next, and on a busy machine their own next call waits for them (measured here:
# numba parallel took 8 ms a call at every size, NumPy's E @ q 8-12 ms at 10,000 x 128).  The
# shortest polling and passive waits, unless the caller chose: lattice's pool polls 0.1 ms.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # measure this checkout even when not installed

import lattice as lt  # noqa: E402


def _kernels(parallel: Optional[bool]) -> dict[str, Any]:
    @lt.kernel(parallel=parallel)
    def axpb(x: lt.f64["n"]) -> lt.f64["n"]:
        return x * 2.5 + 1.0

    @lt.kernel(parallel=parallel)
    def total(x: lt.f64["n"]) -> lt.f64:
        return lt.sum(x)

    @lt.kernel(parallel=parallel)
    def best(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
        return lt.argmax(E @ q)

    @lt.kernel(parallel=parallel)
    def loss(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64:
        z = X @ w
        return lt.sum(lt.softplus(z) - y * z) / X.shape[0]

    return {"map": axpb, "sum": total, "argmax": best, "grad": lt.grad(loss, argnums=2)}


def _numba() -> dict[str, Callable[..., Any]]:
    try:
        import numba as nb
    except ImportError:
        return {}
    out: dict[str, Callable[..., Any]] = {}
    for par in (False, True):
        rng = nb.prange if par else range
        tag = "numba parallel" if par else "numba"

        @nb.njit(fastmath=True, parallel=par)
        def axpb(x):  # type: ignore[no-untyped-def]
            out = np.empty_like(x)
            for i in rng(x.shape[0]):
                out[i] = x[i] * 2.5 + 1.0
            return out

        @nb.njit(fastmath=True, parallel=par)
        def total(x):  # type: ignore[no-untyped-def]
            s = 0.0
            for i in rng(x.shape[0]):
                s += x[i]
            return s

        @nb.njit(fastmath=True, parallel=par)
        def best(E, q):  # type: ignore[no-untyped-def]
            s = np.empty(E.shape[0], np.float32)
            for i in rng(E.shape[0]):
                acc = np.float32(0.0)
                for j in range(E.shape[1]):
                    acc += E[i, j] * q[j]
                s[i] = acc
            return np.argmax(s)

        @nb.njit(fastmath=True, parallel=par)
        def grad(X, y, w):  # type: ignore[no-untyped-def]
            n, d = X.shape
            g = np.zeros(d)
            for i in rng(n):
                z = 0.0
                for j in range(d):
                    z += X[i, j] * w[j]
                r = 1.0 / (1.0 + np.exp(-z)) - y[i]
                g += r * X[i]  # a reduction numba's prange recognises
            return g / n

        for name, f in (("map", axpb), ("sum", total), ("argmax", best), ("grad", grad)):
            out[f"{name}|{tag}"] = f
    return out


def _numpy() -> dict[str, Callable[..., Any]]:
    def grad(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        z = X @ w
        return X.T @ (1.0 / (1.0 + np.exp(-z)) - y) / X.shape[0]
    return {"map": lambda x: x * 2.5 + 1.0, "sum": np.sum,
            "argmax": lambda E, q: np.argmax(E @ q), "grad": grad}


#: the rows of the issue: E 10,000 x 128 for argmax, X 1,000,000 x 32 for the gradient
ISSUE_SIZES = {"argmax": 10_000 * 128, "grad": 1_000_000 * 32}


def _args(name: str, size: int, rng: np.random.Generator) -> tuple[Any, ...]:
    """Arguments of about ``size`` elements (the matrix's, for argmax and grad)."""
    if name in ("map", "sum"):
        return (rng.standard_normal(size),)
    if name == "argmax":
        n = max(1, size // 128)
        return (rng.standard_normal((n, 128)).astype(np.float32),
                rng.standard_normal(128).astype(np.float32))
    n = max(1, size // 32)
    X = rng.standard_normal((n, 32))
    w = rng.standard_normal(32) * 0.1
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ w)))).astype(float)
    return X, y, w


def _time(f: Callable[[], Any], budget: float) -> float:
    """Seconds per call: the mean of back-to-back calls taking about ``budget``."""
    t0 = time.perf_counter()
    f()
    once = max(time.perf_counter() - t0, 1e-7)
    reps = max(1, min(100_000, int(budget / once)))
    t0 = time.perf_counter()
    for _ in range(reps):
        f()
    return (time.perf_counter() - t0) / reps


def run(rounds: int, sizes: list[int], names: list[str], budget: float,
        issue: bool = False) -> list[dict]:
    """``issue``: only the issue's sizes of argmax and grad, with the floor (a plain
    ``lt.sum`` of the matrix: the time to stream it once)."""
    auto, serial, npf, nbf = _kernels(None), _kernels(False), _numpy(), _numba()
    floor = _kernels(None)["sum"]
    rng = np.random.default_rng(0)
    rows = []
    plan = ([(n, [ISSUE_SIZES[n]]) for n in names if n in ISSUE_SIZES] if issue
            else [(n, sizes) for n in names])
    for name, these in plan:
        for size in these:
            args = _args(name, size, rng)
            fns: dict[str, Callable[[], Any]] = {
                "auto": lambda f=auto[name]: f(*args),
                "parallel=False": lambda f=serial[name]: f(*args),
                "NumPy": lambda f=npf[name]: f(*args)}
            if issue and args[0].dtype == np.float64:  # (E is f32: no floor)
                flat = args[0].reshape(-1)
                fns["floor"] = lambda: floor(flat)
            for key, f in nbf.items():
                if key.startswith(name + "|"):
                    fns[key.split("|")[1]] = lambda f=f: f(*args)
            want = fns["NumPy"]()
            for label, f in fns.items():  # compile, and check the contestants agree
                got = f()
                if label == "floor":
                    continue
                if name == "argmax":
                    assert got == want, (label, got, want)
                else:
                    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9 * size,
                                               err_msg=label)
            times: dict[str, list[float]] = {k: [] for k in fns}
            for _ in range(rounds):
                for label, f in fns.items():
                    times[label].append(_time(f, budget))
            med = {k: float(np.median(v)) for k, v in times.items()}
            row = {"kernel": name, "size": size, "us": {k: v * 1e6 for k, v in med.items()},
                   "auto/serial": med["auto"] / med["parallel=False"],
                   "auto/NumPy": med["auto"] / med["NumPy"]}
            rows.append(row)
            _print_row(row)
    return rows


def _print_row(row: dict) -> None:
    us = "  ".join(f"{k} {v:10.1f}" for k, v in row["us"].items())
    print(f"{row['kernel']:7s} {row['size']:>10,}  {us}  auto/serial {row['auto/serial']:5.2f}"
          f"  auto/NumPy {row['auto/NumPy']:5.2f}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--max", type=int, default=10_000_000, help="largest size (elements)")
    ap.add_argument("--budget", type=float, default=0.02, help="seconds per measurement")
    ap.add_argument("--kernels", default="map,sum,argmax,grad")
    ap.add_argument("--issue", action="store_true",
                    help="argmax at 10,000 x 128 and grad at 1,000,000 x 32, with the floor")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    sizes = [s for s in (1_000, 10_000, 100_000, 1_000_000, 10_000_000) if s <= a.max]
    print(f"# threads {lt.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, "
          f"OPENBLAS_THREAD_TIMEOUT={os.environ['OPENBLAS_THREAD_TIMEOUT']}, "
          f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
          f"{a.rounds} rounds, medians in microseconds", flush=True)
    rows = run(a.rounds, sizes, a.kernels.split(","), a.budget, a.issue)
    if a.json:
        print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
