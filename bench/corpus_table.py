"""The ported-program corpus (``bench/corpus``): which programs lattice compiles, whether
they agree with NumPy, and how fast they run beside NumPy and numba, measured in one run.

    python bench/corpus_table.py              # status + timing table (markdown)
    python bench/corpus_table.py --status     # compile and check only (fast)
    python bench/corpus_table.py --only gemm,atax --json

Each program is one function: ``lt.kernel`` compiles it as written (the plain decorator, no
options) and numba's ``njit`` compiles the same function object when numba is installed.  The
NumPy column times the program's vectorised NumPy reference, or the function itself run by
Python when it has no vectorised form (marked "Python").  Times are medians of repeated
batches on fresh copies of the inputs (copying is outside the timed region only for the
programs that update their arguments, whose copy is part of every peer's time alike).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # measure this checkout even when not installed
sys.path.insert(0, HERE)

import lattice as lt  # noqa: E402
from corpus import call, load  # noqa: E402
from lattice.testing.timing import median_time  # noqa: E402


def _agree(got: tuple, want: tuple, rtol: float) -> str:
    if len(got) != len(want):
        return f"{len(got)} outputs, expected {len(want)}"
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        if g.shape != w.shape:
            return f"shape {g.shape}, expected {w.shape}"
        scale = max(float(np.max(np.abs(w), initial=0.0)), 1e-300) if w.dtype.kind in "fc" else 1
        if not np.allclose(g, w, rtol=rtol, atol=rtol * scale, equal_nan=True):
            return f"values differ (max abs diff {float(np.max(np.abs(g - w))):.3g})"
    return ""


def status(prog, rng_seed: int = 0) -> dict:
    """Compile ``prog`` with lattice and check it on test-size data against its oracle."""
    rng = np.random.default_rng(rng_seed)
    args = prog.data("test", rng)
    row = {"name": prog.name, "origin": prog.origin, "features": list(prog.features)}
    try:
        k = lt.kernel(prog.fn)
        got = call(k, args, prog.writes)
    except lt.CompileError as exc:
        row["status"] = "rejected"
        row["why"] = str(exc).splitlines()[0]
        return row
    except Exception as exc:  # noqa: BLE001 - the table reports it
        row["status"] = "error"
        row["why"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return row
    bad = _agree(got, prog.expected(args), prog.rtol)
    row["status"] = "wrong" if bad else "ok"
    if bad:
        row["why"] = bad
    row["kernel"] = k
    return row


def _timer(fn, args, writes):
    return lambda: call(fn, args, writes)


def timing(prog, row: dict, numba) -> None:
    rng = np.random.default_rng(1)
    args = prog.data("bench", rng)
    fns = {}
    if prog.reference is not None:
        fns["NumPy"] = _timer(prog.reference, args, ())
    else:
        fns["Python"] = _timer(prog.fn, args, prog.writes)
    if numba is not None:
        try:
            nj = numba.njit(prog.fn)
            call(nj, prog.data("test", np.random.default_rng(0)), prog.writes)
            fns["numba"] = _timer(nj, args, prog.writes)
        except Exception as exc:  # noqa: BLE001
            row["numba_error"] = f"{type(exc).__name__}".splitlines()[0]
    if row.get("status") == "ok":
        fns["lattice"] = _timer(row["kernel"], args, prog.writes)
    for name, fn in fns.items():
        fn()  # compile / warm up
        row[name] = median_time(fn, repeat=5, min_time=0.05, max_batch=1 << 12)


def _fmt(t):
    if t is None:
        return "-"
    return f"{t * 1e3:.3g} ms" if t >= 1e-4 else f"{t * 1e6:.3g} µs"


def table(rows: list[dict]) -> str:
    lines = ["| program | origin | NumPy | numba | lattice | lattice / best peer |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ref = r.get("NumPy")
        ref_txt = _fmt(ref) if ref is not None else (
            f"{_fmt(r.get('Python'))} (Python)" if "Python" in r else "-")
        peers = [t for t in (ref, r.get("numba")) if t is not None]
        lat = r.get("lattice")
        ratio = f"{lat / min(peers):.2f}x" if lat is not None and peers else "-"
        if r["status"] != "ok":
            lat_txt = f"{r['status']}: {r.get('why', '')}".replace("|", "/")
        else:
            lat_txt = _fmt(lat)
        numba_txt = _fmt(r.get("numba")) if "numba" in r else (
            "rejected" if "numba_error" in r else "-")
        lines.append(f"| {r['name']} | {r['origin']} | {ref_txt} | {numba_txt} | {lat_txt} | "
                     f"{ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--status", action="store_true", help="compile and check only")
    ap.add_argument("--only", default="", help="comma-separated program names")
    ap.add_argument("--json", action="store_true")
    opts = ap.parse_args(argv)
    progs = load()
    names = [n for n in opts.only.split(",") if n] or list(progs)
    try:
        import numba
    except ImportError:
        numba = None
    rows = []
    for n in names:
        prog = progs[n]
        try:
            row = status(prog)
            if not opts.status:
                timing(prog, row, numba)
        except Exception:  # noqa: BLE001 - one program must not stop the table
            traceback.print_exc()
            continue
        row.pop("kernel", None)
        rows.append(row)
        print(f"{n}: {row['status']} {row.get('why', '')}", file=sys.stderr, flush=True)
    ok = sum(r["status"] == "ok" for r in rows)
    if opts.json:
        print(json.dumps(rows, indent=1))
    else:
        print(table(rows))
        print(f"\n{ok} of {len(rows)} programs compile and agree with their oracle.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
