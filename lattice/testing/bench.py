"""``python -m lattice bench``: lattice against pure Python, NumPy, numba and JAX, side by side.

Every figure of a row is measured in the same process, one peer after the other, as the median
of several batches (:func:`median_time`); ratios are *peer time / lattice time* (above 1: lattice
is faster).  Peers that are not installed are left out.  The bandwidth floor of the big-matrix
rows is the time to stream X once with a lattice sum.  Start-up figures come from fresh
processes.  The lattice kernels are written as the README teaches, with the plain
``@lt.kernel`` (parallel by default, nothing tuned); "lattice serial" is the same kernel with
``parallel=False``.

The workloads (:func:`workloads`) are shared with the asv suite in ``bench/``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

import lattice as lt

from .timing import median_time, median_times, round_ratio

#: "lattice" is the plain ``@lt.kernel`` (parallel by default); "lattice serial" the same
#: kernel with ``parallel=False``
PEERS = ("Python", "NumPy", "numba", "JAX", "lattice serial", "lattice")


# --------------------------------------------------------------------------- lattice kernels
@lt.kernel
def dot(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
    return lt.sum(a * b)


@lt.kernel
def best_match(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


@lt.kernel
def stream(X: lt.f64["n", "d"]) -> lt.f64:
    """The bandwidth floor: read every element of X once."""
    return lt.sum(X)


@lt.kernel
def logistic_loss(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64:
    z = X @ w
    return lt.sum(lt.softplus(z) - y * z) / X.shape[0]


#: the gradient by automatic differentiation (one pass over X after the rowpass fusion)
logistic_grad = lt.grad(logistic_loss, argnums=2)


@lt.kernel
def logistic_grad_hand(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64["d"]:
    return X.T @ (lt.sigmoid(X @ w) - y) / X.shape[0]


@lt.kernel
def logsumexp_rows(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    out = lt.empty(X.shape[0])
    for i in lt.prange(X.shape[0]):  # independent rows: across the threads
        m = lt.max(X[i])
        out[i] = m + lt.log(lt.sum(lt.exp(X[i] - m)))
    return out


@lt.kernel
def row_norms(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    return lt.sqrt(lt.sum(X * X, axis=1))


def _serial(k: Any) -> Any:
    """The same kernel with ``parallel=False`` (the "lattice serial" column)."""
    return lt.kernel(parallel=False)(k.fn)


best_match_serial, logistic_loss_serial = _serial(best_match), _serial(logistic_loss)
logistic_grad_serial = lt.grad(logistic_loss_serial, argnums=2)
logistic_grad_hand_serial, logsumexp_rows_serial = _serial(logistic_grad_hand), \
    _serial(logsumexp_rows)


# --------------------------------------------------------------------------- peers
def _numba() -> Any:
    try:
        import numba
        return numba
    except ImportError:
        return None


def _jax() -> Any:
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        jax.config.update("jax_platforms", "cpu")
        return jax
    except Exception:  # not installed, or no usable backend
        return None


@dataclass
class Row:
    """One workload: a callable per peer (None: not applicable), optional floor and notes."""

    name: str
    what: str
    fns: dict[str, Optional[Callable[[], Any]]]
    floor: Optional[Callable[[], Any]] = None
    notes: dict[str, str] = field(default_factory=dict)
    repeat: int = 9
    times: dict[str, float] = field(default_factory=dict)
    floor_time: Optional[float] = None
    rounds: dict[str, list[float]] = field(default_factory=dict)  # per-round times ("_floor")


def _python_dot(a: list, b: list) -> float:
    s = 0.0
    for x, y in zip(a, b):
        s += x * y
    return s


def _python_best(E: list, q: list) -> int:
    best, arg = -float("inf"), 0
    for i, row in enumerate(E):
        s = 0.0
        for x, y in zip(row, q):
            s += x * y
        if s > best:
            best, arg = s, i
    return arg


def _python_grad(X: list, y: list, w: list) -> list:
    import math
    g = [0.0] * len(w)
    for row, yi in zip(X, y):
        z = 0.0
        for x, wj in zip(row, w):
            z += x * wj
        r = 1.0 / (1.0 + math.exp(-z)) - yi
        for j, x in enumerate(row):
            g[j] += r * x
    return [v / len(X) for v in g]


def workloads(quick: bool = False) -> list[Row]:
    """The rows of the table, with their data (smaller in ``quick`` mode)."""
    rng = np.random.default_rng(0)
    nb, jax = _numba(), _jax()
    rows: list[Row] = []

    # -- call overhead
    a = rng.standard_normal(8).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    al, bl = a.tolist(), b.tolist()
    fns: dict[str, Optional[Callable[[], Any]]] = {
        "Python": lambda: _python_dot(al, bl), "NumPy": lambda: np.dot(a, b),
        "lattice": lambda: dot(a, b)}
    if nb is not None:
        @nb.njit(fastmath=True)
        def nb_dot(x, y):
            s = np.float32(0)
            for i in range(x.shape[0]):
                s += x[i] * y[i]
            return s
        fns["numba"] = lambda: nb_dot(a, b)
    if jax is not None:
        jdot = jax.jit(lambda x, y: x @ y)
        ja, jb = jax.numpy.asarray(a), jax.numpy.asarray(b)
        fns["JAX"] = lambda: jdot(ja, jb).block_until_ready()
    rows.append(Row("dot(8) call", "tiny-kernel call overhead: dot of 8 f32", fns, repeat=15))

    # -- best_match
    n, d = (2_000, 128) if quick else (10_000, 128)
    E = rng.standard_normal((n, d)).astype(np.float32)
    q = rng.standard_normal(d).astype(np.float32)
    El, ql = E[: n // 10].tolist(), q.tolist()
    fns = {"Python": lambda: _python_best(El, ql), "NumPy": lambda: np.argmax(E @ q),
           "lattice": lambda: best_match(E, q), "lattice serial": lambda: best_match_serial(E, q)}
    notes = {"Python": "on 1/10 of the rows, x10", "_scale_Python": "10"}
    if nb is not None:
        @nb.njit(fastmath=True, parallel=True)
        def nb_best(E, q):
            s = np.empty(E.shape[0], np.float32)
            for i in nb.prange(E.shape[0]):
                acc = np.float32(0)
                for j in range(E.shape[1]):
                    acc += E[i, j] * q[j]
                s[i] = acc
            return np.argmax(s)
        fns["numba"] = lambda: nb_best(E, q)
        notes["numba"] = "parallel=True"
    if jax is not None:
        jbest = jax.jit(lambda E, q: jax.numpy.argmax(E @ q))
        jE, jq = jax.numpy.asarray(E), jax.numpy.asarray(q)
        fns["JAX"] = lambda: jbest(jE, jq).block_until_ready()
    rows.append(Row("best_match", f"argmax(E @ q), E {n:,} x {d} f32", fns, notes=notes))

    # -- logistic regression: gradient and loss
    n, d = (100_000, 32) if quick else (1_000_000, 32)
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X @ (rng.standard_normal(d) * 0.3))))).astype(float)
    w = rng.standard_normal(d) * 0.1
    m = n // 1000
    Xl, yl, wl = X[:m].tolist(), y[:m].tolist(), w.tolist()

    def np_grad() -> Any:
        z = X @ w
        return X.T @ (1.0 / (1.0 + np.exp(-z)) - y) / n

    def np_loss() -> Any:
        z = X @ w
        return np.mean(np.logaddexp(0.0, z) - y * z)

    gfns: dict[str, Optional[Callable[[], Any]]] = {
        "Python": lambda: _python_grad(Xl, yl, wl), "NumPy": np_grad,
        "lattice": lambda: logistic_grad(X, y, w),
        "lattice serial": lambda: logistic_grad_serial(X, y, w)}
    lfns: dict[str, Optional[Callable[[], Any]]] = {
        "NumPy": np_loss, "lattice": lambda: logistic_loss(X, y, w),
        "lattice serial": lambda: logistic_loss_serial(X, y, w)}
    gnotes = {"Python": "on 1/1000 of the rows, x1000", "_scale_Python": "1000",
              "lattice": "lt.grad of the loss kernel", "NumPy": "two passes (X @ w, X.T @ r)"}
    lnotes: dict[str, str] = {}
    if nb is not None:
        @nb.njit(fastmath=True, parallel=True)
        def nb_grad(X, y, w):
            n, d = X.shape
            nch = nb.get_num_threads() * 4
            parts = np.zeros((nch, d))
            for c in nb.prange(nch):
                for i in range(n * c // nch, n * (c + 1) // nch):
                    z = 0.0
                    for j in range(d):
                        z += X[i, j] * w[j]
                    r = 1.0 / (1.0 + np.exp(-z)) - y[i]
                    for j in range(d):
                        parts[c, j] += r * X[i, j]
            return parts.sum(axis=0) / n

        @nb.njit(fastmath=True, parallel=True)
        def nb_loss(X, y, w):
            n, d = X.shape
            s = 0.0
            for i in nb.prange(n):
                z = 0.0
                for j in range(d):
                    z += X[i, j] * w[j]
                s += max(z, 0.0) + np.log1p(np.exp(-abs(z))) - y[i] * z
            return s / n
        gfns["numba"] = lambda: nb_grad(X, y, w)
        lfns["numba"] = lambda: nb_loss(X, y, w)
        gnotes["numba"] = lnotes["numba"] = "parallel=True, one pass"
    if jax is not None:
        jnp = jax.numpy

        def jloss(w, X, y):
            z = X @ w
            return jnp.mean(jnp.logaddexp(0.0, z) - y * z)
        jgrad = jax.jit(jax.grad(jloss))
        jlossf = jax.jit(jloss)
        jX, jy, jw = jnp.asarray(X), jnp.asarray(y), jnp.asarray(w)
        gfns["JAX"] = lambda: jgrad(jw, jX, jy).block_until_ready()
        lfns["JAX"] = lambda: jlossf(jw, jX, jy).block_until_ready()
        gnotes["JAX"] = "jax.jit(jax.grad(loss))"
    size = f"{n:,} x {d} f64 ({X.nbytes / 2**20:.0f} MiB)"
    floor = (lambda: stream(X))
    rows.append(Row("logistic grad", f"gradient of the logistic loss, X {size}", gfns,
                    floor=floor, notes=gnotes, repeat=7))
    rows.append(Row("logistic loss", f"logistic loss (forward), X {size}", lfns, floor=floor,
                    notes=lnotes, repeat=7))
    rows.append(Row("grad (hand)", f"X.T @ (sigmoid(X @ w) - y) / n, X {size}",
                    {"lattice": lambda: logistic_grad_hand(X, y, w), "NumPy": np_grad,
                     "lattice serial": lambda: logistic_grad_hand_serial(X, y, w)},
                    floor=floor, repeat=7))

    # -- row-wise reductions
    Xr = X[: n // 4]

    def np_lse() -> Any:
        mx = Xr.max(axis=1)
        return mx + np.log(np.exp(Xr - mx[:, None]).sum(axis=1))
    rfns: dict[str, Optional[Callable[[], Any]]] = {
        "NumPy": np_lse, "lattice": lambda: logsumexp_rows(Xr),
        "lattice serial": lambda: logsumexp_rows_serial(Xr)}
    if jax is not None:
        jlse = jax.jit(lambda A: jax.scipy.special.logsumexp(A, axis=1))
        jXr = jax.numpy.asarray(Xr)
        rfns["JAX"] = lambda: jlse(jXr).block_until_ready()
    rows.append(Row("logsumexp rows", f"logsumexp of each row, {Xr.shape[0]:,} x {d} f64",
                    rfns, floor=lambda: stream(Xr), repeat=7))
    return rows


def measure(rows: list[Row], quick: bool = False) -> None:
    """Each row's peers and its floor timed one after the other, each after a pause
    (:func:`median_times`); pure Python, being slow, with fewer repeats."""
    min_time = 0.005 if quick else 0.02
    for row in rows:
        fns = {peer: row.fns[peer] for peer in PEERS if peer in row.fns and peer != "Python"}
        if row.floor is not None:
            fns["_floor"] = row.floor
        for fn in fns.values():
            fn()  # compile / warm up
        times = median_times(fns, repeat=3 if quick else row.repeat, min_time=min_time,
                             rounds=row.rounds)
        if "Python" in row.fns:
            row.fns["Python"]()
            times["Python"] = median_time(row.fns["Python"], repeat=3, min_time=min_time)
        row.floor_time = times.pop("_floor", None) if row.floor is not None else None
        for peer, t in times.items():
            row.times[peer] = t * float(row.notes.get(f"_scale_{peer}", 1))


def scaling(quick: bool = False) -> list[dict[str, Any]]:
    """Seconds with 1 and with 2 threads (interleaved, medians) for the parallel kernels."""
    rng = np.random.default_rng(1)
    n = (1 << 22) if quick else (1 << 25)
    x = rng.standard_normal((n // 32, 32))
    E = rng.standard_normal((10_000, 128)).astype(np.float32)
    q = rng.standard_normal(128).astype(np.float32)
    m = 100_000 if quick else 1_000_000
    X = rng.standard_normal((m, 32))
    y = (rng.random(m) < 0.5).astype(float)
    w = rng.standard_normal(32) * 0.1
    cases = [(f"sum over {x.nbytes / 2**20:.0f} MiB", lambda: stream(x)),
             ("best_match 10,000 x 128", lambda: best_match(E, q)),
             (f"row_norms {m:,} x 32", lambda: row_norms(X)),
             (f"logistic grad {m:,} x 32", lambda: logistic_grad(X, y, w))]
    before = lt.get_num_threads()
    out = []
    try:
        for name, fn in cases:
            fn()
            t: dict[int, list[float]] = {1: [], 2: []}
            for _ in range(2 if quick else 4):
                for k in (1, 2):
                    lt.set_num_threads(k)
                    t[k].append(median_time(fn, repeat=3 if quick else 5))
            out.append({"case": name, "1": float(np.median(t[1])), "2": float(np.median(t[2]))})
    finally:
        lt.set_num_threads(before)
    return out


_STARTUP = textwrap.dedent("""
    import time, json, sys
    which = sys.argv[1]
    t0 = time.perf_counter()
    import numpy as np
    t_np = time.perf_counter()
    if which == "lattice":
        import lattice as lt
        t1 = time.perf_counter()
        @lt.kernel(cache=CACHE)
        def dot(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
            return lt.sum(a * b)
    else:
        import numba
        t1 = time.perf_counter()
        @numba.njit(cache=CACHE)
        def dot(a, b):
            s = np.float32(0)
            for i in range(a.shape[0]):
                s += a[i] * b[i]
            return s
    a = np.ones(8, np.float32)
    t2 = time.perf_counter(); dot(a, a); t3 = time.perf_counter()
    print(json.dumps({"import": t1 - t_np, "first_call": t3 - t2}))
""")


def startup(repeat: int = 5) -> dict[str, dict[str, float]]:
    """Import time and first call of dot in fresh processes: lattice and numba, without and
    with their disk caches (a second process after one that filled the cache)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # would make every import compile from source
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join([root, env.get("PYTHONPATH", "")])
    res: dict[str, dict[str, list[float]]] = {}
    peers = ["lattice"] + (["numba"] if _numba() is not None else [])
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            env["LATTICE_CACHE_DIR"] = env["NUMBA_CACHE_DIR"] = tmp
            for peer in peers:
                for cached in (False, True):
                    script = os.path.join(tmp, f"k_{peer}_{int(cached)}.py")
                    with open(script, "w") as f:
                        f.write(_STARTUP.replace("CACHE", str(cached)))
                    if cached:  # fill the cache first
                        subprocess.run([sys.executable, script, peer], env=env, check=True,
                                       capture_output=True)
                    out = subprocess.run([sys.executable, script, peer], env=env, check=True,
                                         capture_output=True, text=True)
                    r = json.loads(out.stdout)
                    key = f"{peer}{' (disk cache)' if cached else ''}"
                    for k, v in r.items():
                        res.setdefault(key, {}).setdefault(k, []).append(v)
    return {k: {kk: float(np.median(vv)) for kk, vv in v.items()} for k, v in res.items()}


# --------------------------------------------------------------------------- report
def _fmt(t: Optional[float]) -> str:
    if t is None:
        return "-"
    if t < 1e-3:
        return f"{t * 1e6:.2f} µs"
    if t < 1:
        return f"{t * 1e3:.2f} ms"
    return f"{t:.2f} s"


def _row_ratio(r: Row, num: str, den: str) -> float:
    """``num``'s time over ``den``'s in row ``r``: the median per-round ratio when both were
    timed in the same rounds, else the ratio of their medians (pure Python)."""
    if num in r.rounds and den in r.rounds:
        return round_ratio(r.rounds[num], r.rounds[den])[0]
    t = {"_floor": r.floor_time}.get(num, r.times.get(num))
    return t / {"_floor": r.floor_time}.get(den, r.times.get(den))


def table(rows: list[Row]) -> str:
    """The comparison as a Markdown table: time (ratio to lattice) per peer, and the floor.
    Times are medians over rounds; ratios, medians of the per-round ratios."""
    head = "| workload | " + " | ".join(PEERS) + " | floor (stream X once) |"
    lines = [head, "|" + " --- |" * (len(PEERS) + 2)]
    for r in rows:
        lat = r.times.get("lattice")
        cells = []
        for p in PEERS:
            t = r.times.get(p)
            if t is None:
                cells.append("-")
            elif p == "lattice" or lat is None:
                cells.append(_fmt(t))
            else:
                cells.append(f"{_fmt(t)} ({_row_ratio(r, p, 'lattice'):.2f}x)")
        fl = "-"
        if r.floor_time is not None and lat is not None:
            fl = (f"{_fmt(r.floor_time)} "
                  f"(lattice {_row_ratio(r, 'lattice', '_floor'):.2f}x floor)")
        lines.append(f"| {r.name}: {r.what} | " + " | ".join(cells) + f" | {fl} |")
    notes = [f"* {r.name}, {p}: {n}" for r in rows for p, n in r.notes.items()
             if not p.startswith("_")]
    return "\n".join(lines) + ("\n\nNotes:\n" + "\n".join(notes) if notes else "")


def targets(rows: list[Row], scale: list[dict[str, Any]],
            start: dict[str, dict[str, float]]) -> list[tuple[str, str, float, float, str]]:
    """(target, measured as, value, bound, spread) for the issue's targets that this run
    covers.  Ratios within a row are medians of per-round ratios (:func:`round_ratio`), with
    their quartiles as the spread; ratios across rows or processes, of medians."""
    by = {r.name: r for r in rows}
    out: list[tuple[str, str, float, float, str]] = []

    def within(name: str, what: str, row: str, num: str, den: str, bound: float) -> None:
        r = by.get(row)
        if r is None or num not in r.rounds or den not in r.rounds:
            return
        med, q1, q3 = round_ratio(r.rounds[num], r.rounds[den])
        out.append((name, what, med, bound, f"{q1:.2f}–{q3:.2f}"))

    for peer in ("NumPy", "numba"):
        within(f"best_match <= 1.0x {peer}", "lattice / peer", "best_match", "lattice", peer,
               1.0)
    within("logistic grad <= 1.2x floor", "lattice / floor", "logistic grad", "lattice",
           "_floor", 1.2)
    for peer, bound in (("NumPy", 0.5), ("JAX", 0.4)):
        within(f"logistic grad <= {bound}x {peer}", "lattice / peer", "logistic grad",
               "lattice", peer, bound)
    g, lo = by.get("logistic grad"), by.get("logistic loss")
    if g is not None and lo is not None and "lattice" in g.times and "lattice" in lo.times:
        out.append(("gradient <= 1.5x forward loss", "grad / loss (medians)",
                    g.times["lattice"] / lo.times["lattice"], 1.5, "–"))
    within("call overhead <= 1.5x numba", "lattice / numba", "dot(8) call", "lattice", "numba",
           1.5)
    if "numba" in start and "lattice" in start:
        out.append(("import well under numba's", "lattice / numba",
                    start["lattice"]["import"] / start["numba"]["import"], 1.0, "–"))
        out.append(("first compile well under numba's", "lattice / numba",
                    start["lattice"]["first_call"] / start["numba"]["first_call"], 1.0, "–"))
    return out


def chart(rows: list[Row], path: str) -> Optional[str]:
    """Peers' times relative to lattice (log scale) as a PNG; None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    names = [r.name for r in rows]
    peers = [p for p in PEERS if p != "lattice" and any(p in r.times for r in rows)]
    fig, ax = plt.subplots(figsize=(9, 0.6 + 0.75 * len(rows)))
    h = 0.8 / max(len(peers), 1)
    for k, p in enumerate(peers):
        ys, xs = [], []
        for i, r in enumerate(rows):
            if p in r.times and "lattice" in r.times:
                ys.append(i + (k - (len(peers) - 1) / 2) * h)
                xs.append(_row_ratio(r, p, "lattice"))
        ax.barh(ys, xs, height=h, label=p)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xscale("log")
    ax.set_yticks(range(len(rows)), names)
    ax.invert_yaxis()
    ax.set_xlabel("peer time / lattice time (log scale; right of 1: lattice is faster)")
    ax.set_title("lattice vs peers (median per-round ratios, one run)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lattice bench", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller data, fewer repeats")
    ap.add_argument("--chart", default=os.path.join("docs", "performance.png"),
                    help="where to write the PNG chart ('' for none)")
    ap.add_argument("--json", default="", help="also write all figures as JSON here")
    ap.add_argument("--no-startup", action="store_true", help="skip the fresh-process figures")
    args = ap.parse_args(argv)

    print(f"lattice {lt.__version__}, {lt.get_num_threads()} threads; "
          f"numba {'yes' if _numba() else 'no'}, JAX {'yes' if _jax() else 'no'}\n", flush=True)
    rows = workloads(args.quick)
    measure(rows, args.quick)
    print(table(rows), flush=True)
    scale = scaling(args.quick)
    print("\n| parallel kernel | 1 thread | 2 threads | speed-up |\n| --- | --- | --- | --- |")
    for s in scale:
        print(f"| {s['case']} | {_fmt(s['1'])} | {_fmt(s['2'])} | {s['1'] / s['2']:.2f}x |")
    start: dict[str, dict[str, float]] = {}
    if not args.no_startup:
        start = startup(3 if args.quick else 5)
        print("\n| fresh process | import | first call of dot (compile) |\n| --- | --- | --- |")
        for k, v in start.items():
            print(f"| {k} | {_fmt(v['import'])} | {_fmt(v['first_call'])} |")
    print("\n| target | measured as | value | rounds' quartiles | bound | met |\n"
          "| --- | --- | --- | --- | --- | --- |")
    tg = targets(rows, scale, start)
    for name, how, v, bound, spread in tg:
        print(f"| {name} | {how} | {v:.2f} | {spread} | {bound} | "
              f"{'yes' if v <= bound else 'no'} |")
    if args.chart:
        os.makedirs(os.path.dirname(args.chart) or ".", exist_ok=True)
        got = chart(rows, args.chart)
        print(f"\nchart: {got}" if got else "\n(matplotlib not installed: no chart)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": [{"name": r.name, "what": r.what, "times": r.times,
                                 "floor": r.floor_time, "notes": r.notes,
                                 "rounds": r.rounds} for r in rows],
                       "scaling": scale, "startup": start,
                       "targets": [list(t) for t in tg]}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
