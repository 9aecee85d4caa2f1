"""Matrix products: lattice (calling NumPy's BLAS for large products), lattice with
``LATTICE_BLAS=none`` (its own tiled code everywhere), NumPy and numba, side by side.

    python bench/blas.py [--repeat 7]        # the comparison rows
    python bench/blas.py --sweep             # where a BLAS call starts to pay (the thresholds)

Each row times every peer in rounds (one batch of each in turn, after a pause; see
``lattice.testing.timing.median_times``); a time is the median over rounds, a ratio the median
of the per-round ratios ``peer / lattice``, with the quartiles in brackets.
"""

import argparse
import contextlib
import os
import sys
from typing import Any, Callable, Iterator

import numpy as np

import lattice as lt
from lattice.codegen import blascall
from lattice.testing.timing import median_times, round_ratio

try:
    import numba
except ImportError:  # the comparison runs without it
    numba = None


@contextlib.contextmanager
def blas_setting(value: str) -> Iterator[None]:
    """``LATTICE_BLAS`` set to ``value`` while kernels compile inside the block."""
    old = os.environ.get("LATTICE_BLAS")
    os.environ["LATTICE_BLAS"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LATTICE_BLAS", None)
        else:
            os.environ["LATTICE_BLAS"] = old


def compiled(make: Callable[[], Any], args: tuple[Any, ...], setting: str = "auto",
             limit: int | None = None) -> Callable[[], Any]:
    """A fresh kernel from ``make()``, compiled for ``args`` under ``setting`` (and with
    every threshold at most ``limit``, see ``blascall.thresholds``)."""
    k = make()
    limits = blascall.thresholds(limit, limit) if limit else contextlib.nullcontext()
    with blas_setting(setting), limits:
        k(*args)
    return lambda: k(*args)


# ---------------------------------------------------------------------------- kernels


def k_matmul(dt: Any) -> Callable[[], Any]:
    def make() -> Any:
        @lt.kernel
        def matmul(a: dt["m", "k"], b: dt["k", "n"]) -> dt["m", "n"]:
            return a @ b
        return matmul
    return make


def k_matvec(dt: Any) -> Callable[[], Any]:
    def make() -> Any:
        @lt.kernel
        def matvec(a: dt["m", "k"], x: dt["k"]) -> dt["m"]:
            return a @ x
        return matvec
    return make


def k_vecmat(dt: Any) -> Callable[[], Any]:
    def make() -> Any:
        @lt.kernel
        def vecmat(x: dt["m"], a: dt["m", "k"]) -> dt["k"]:
            return x @ a
        return vecmat
    return make


def k_atax() -> Any:
    @lt.kernel
    def atax(A: lt.f64["m", "n"], x: lt.f64["n"]) -> lt.f64["n"]:
        return (A @ x) @ A
    return atax


def k_best_match() -> Any:
    @lt.kernel(parallel=True)
    def best_match(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
        return np.argmax(E @ q)
    return best_match


def k_gram() -> Any:
    @lt.kernel
    def gram(x: lt.f64["n", "d"]) -> lt.f64["d", "d"]:
        return x.T @ x
    return gram


def k_mlp() -> Any:
    @lt.kernel
    def mlp(x: lt.f32["n", "d"], w1: lt.f32["d", "h1"], b1: lt.f32["h1"],
            w2: lt.f32["h1", "h2"], b2: lt.f32["h2"], w3: lt.f32["h2", "k"],
            b3: lt.f32["k"]) -> lt.f32["n", "k"]:
        h = np.maximum(x @ w1 + b1, 0)
        h = np.maximum(h @ w2 + b2, 0)
        z = h @ w3 + b3
        e = np.exp(z - np.max(z, axis=-1, keepdims=True))
        return e / np.sum(e, axis=-1, keepdims=True)
    return mlp


def np_mlp(x: Any, w1: Any, b1: Any, w2: Any, b2: Any, w3: Any, b3: Any) -> Any:
    h = np.maximum(x @ w1 + b1, 0)
    h = np.maximum(h @ w2 + b2, 0)
    z = h @ w3 + b3
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def numba_peers() -> dict[str, Any]:
    if numba is None:
        return {}

    @numba.njit(cache=False)
    def matmul(a: Any, b: Any) -> Any:
        return a @ b

    @numba.njit(cache=False)
    def atax(A: Any, x: Any) -> Any:
        return (A @ x) @ A

    @numba.njit(parallel=True, cache=False)
    def best_match(E: Any, q: Any) -> Any:
        s = np.empty(E.shape[0], dtype=E.dtype)
        for i in numba.prange(E.shape[0]):
            acc = E.dtype.type(0)
            for j in range(E.shape[1]):
                acc += E[i, j] * q[j]
            s[i] = acc
        return np.argmax(s)

    @numba.njit(cache=False)
    def mlp(x: Any, w1: Any, b1: Any, w2: Any, b2: Any, w3: Any, b3: Any) -> Any:
        h = np.maximum(x @ w1 + b1, 0)
        h = np.maximum(h @ w2 + b2, 0)
        z = h @ w3 + b3
        out = np.empty_like(z)
        for i in range(z.shape[0]):  # (no axis= for max in numba)
            e = np.exp(z[i] - z[i].max())
            out[i] = e / e.sum()
        return out

    return {"matmul": matmul, "atax": atax, "best_match": best_match, "mlp": mlp}


# ---------------------------------------------------------------------------- rows


def rows(rng: np.random.Generator) -> list[tuple[str, Callable[[], Any], tuple[Any, ...],
                                                 Callable[..., Any], str]]:
    """(label, kernel maker, args, NumPy callable, numba peer name)."""
    f32, f64 = np.float32, np.float64
    a64 = rng.standard_normal((1024, 1024))
    b64 = rng.standard_normal((1024, 1024))
    a32, b32 = a64.astype(f32), b64.astype(f32)
    E = rng.standard_normal((10_000, 128)).astype(f32)
    q = rng.standard_normal(128).astype(f32)
    A = rng.standard_normal((4000, 5000))
    x = rng.standard_normal(5000)
    X = rng.standard_normal((100_000, 32))
    mlp_args = (rng.standard_normal((8, 1000)).astype(f32),
                (rng.standard_normal((1000, 3000)) * 0.05).astype(f32),
                rng.standard_normal(3000).astype(f32),
                (rng.standard_normal((3000, 2000)) * 0.05).astype(f32),
                rng.standard_normal(2000).astype(f32),
                (rng.standard_normal((2000, 10)) * 0.05).astype(f32),
                rng.standard_normal(10).astype(f32))
    return [
        ("A @ B 1024x1024 f64", k_matmul(lt.f64), (a64, b64), np.matmul, "matmul"),
        ("A @ B 1024x1024 f32", k_matmul(lt.f32), (a32, b32), np.matmul, "matmul"),
        ("MLP 8x1000 -> 3000 -> 2000 -> 10 f32", k_mlp, mlp_args, np_mlp, "mlp"),
        ("(A @ x) @ A 4000x5000 f64", k_atax, (A, x), lambda A, x: (A @ x) @ A, "atax"),
        ("argmax(E @ q) 10,000x128 f32 (parallel)", k_best_match, (E, q),
         lambda E, q: np.argmax(E @ q), "best_match"),
        ("X.T @ X 100,000x32 f64", k_gram, (X,), lambda X: X.T @ X, ""),
    ]


def compare(repeat: int) -> None:
    rng = np.random.default_rng(0)
    nb = numba_peers()
    print("| product | lattice | lattice, LATTICE_BLAS=none | NumPy | numba |")
    print("| --- | --- | --- | --- | --- |")
    for label, make, args, ref, nb_name in rows(rng):
        fns = {"lattice": compiled(make, args), "own": compiled(make, args, "none"),
               "numpy": lambda ref=ref, args=args: ref(*args)}
        if nb_name in nb:
            nb[nb_name](*args)
            fns["numba"] = lambda f=nb[nb_name], args=args: f(*args)
        want = ref(*args)
        for name in ("lattice", "own"):
            got = fns[name]()
            assert np.allclose(got, want, rtol=1e-3, atol=1e-3), (label, name)
        per: dict[str, list[float]] = {}
        med = median_times(fns, repeat=repeat, min_time=0.05, rounds=per)
        cells = [f"{med['lattice'] * 1e3:.3g} ms"]
        for name in ("own", "numpy", "numba"):
            if name not in med:
                cells.append("-")
                continue
            r, q1, q3 = round_ratio(per[name], per["lattice"])
            cells.append(f"{med[name] * 1e3:.3g} ms ({r:.2f}x [{q1:.2f}-{q3:.2f}])")
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def sweep(repeat: int, part: str = "both") -> None:
    """Own code against a forced BLAS call, by shape: where the thresholds belong."""
    rng = np.random.default_rng(1)
    never, always = 1 << 62, 1
    if part != "gemv":
        _sweep_gemm(rng, repeat, never, always)
    if part != "gemm":
        _sweep_gemv(rng, repeat, never, always)


def _sweep_gemm(rng: np.random.Generator, repeat: int, never: int, always: int) -> None:
    print("| shape (m, k, n) | dtype | work | own | BLAS | own / BLAS |")
    print("| --- | --- | --- | --- | --- | --- |")
    shapes = [(n, n, n) for n in (16, 24, 32, 40, 48, 64, 96, 128)]
    shapes += [(8, k, k) for k in (32, 64, 128, 256)] + [(1000, 8, 8), (64, 1000, 8)]
    for dt, np_dt in ((lt.f32, np.float32), (lt.f64, np.float64)):
        for m, k, n in shapes:
            args = (rng.standard_normal((m, k)).astype(np_dt),
                    rng.standard_normal((k, n)).astype(np_dt))
            fns = {"own": compiled(k_matmul(dt), args, limit=never),
                   "blas": compiled(k_matmul(dt), args, limit=always)}
            _sweep_row(fns, f"({m}, {k}, {n})", np_dt, m * k * n, repeat)
    print()


def _sweep_gemv(rng: np.random.Generator, repeat: int, never: int, always: int) -> None:
    print("| matrix @ vector (m, k) | dtype | work | own | BLAS | own / BLAS |")
    print("| --- | --- | --- | --- | --- | --- |")
    for dt, np_dt in ((lt.f32, np.float32), (lt.f64, np.float64)):
        for m, k in ((64, 64), (128, 128), (256, 256), (512, 512), (1024, 1024), (4000, 5000),
                     (10_000, 128), (100_000, 32)):
            a = rng.standard_normal((m, k)).astype(np_dt)
            for label, make, args in (("A @ x", k_matvec(dt), (a, a[0].copy())),
                                      ("x @ A", k_vecmat(dt), (a[:, 0].copy(), a))):
                fns = {"own": compiled(make, args, limit=never),
                       "blas": compiled(make, args, limit=always)}
                _sweep_row(fns, f"{label} ({m}, {k})", np_dt, m * k, repeat)


def _sweep_row(fns: dict[str, Callable[[], Any]], label: str, np_dt: Any, work: int,
               repeat: int) -> None:
    per: dict[str, list[float]] = {}
    med = median_times(fns, repeat=repeat, min_time=0.02, settle=0.05, rounds=per)
    r, q1, q3 = round_ratio(per["own"], per["blas"])
    print(f"| {label} | {np.dtype(np_dt).name} | {work} | {med['own'] * 1e6:.3g} µs | "
          f"{med['blas'] * 1e6:.3g} µs | {r:.2f} [{q1:.2f}-{q3:.2f}] |", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="rounds per row (default 7)")
    ap.add_argument("--sweep", choices=("both", "gemm", "gemv"), nargs="?", const="both",
                    help="own code vs BLAS call by shape (matrix products, matrix-vector)")
    opts = ap.parse_args(argv)
    if opts.sweep:
        sweep(opts.repeat, opts.sweep)
    else:
        compare(opts.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
