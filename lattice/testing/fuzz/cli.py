"""The fuzzer's command line: a supervisor that runs programs in worker processes (so that a
crash is a recorded finding, not the end of the run), counts outcomes, and prints and logs
failures; ``--show`` and ``--replay`` for one seed."""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any, Optional, Sequence

from .generate import generate
from .run import describe, run_one

DESCRIPTION = "Random-program differential fuzzer for lattice."


def _worker(start: int, stride: int, deadline: float, count: int) -> None:
    seed = start
    done = 0
    while time.time() < deadline and (count <= 0 or done < count):
        print(json.dumps({"start": seed}), flush=True)
        rec = run_one(seed)
        print(json.dumps(rec), flush=True)
        seed += stride
        done += 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lattice.testing.fuzz", description=DESCRIPTION)
    ap.add_argument("--seconds", type=float, default=60.0, help="run time budget")
    ap.add_argument("--seed", type=int, default=0, help="first program seed")
    ap.add_argument("--count", type=int, default=0, help="stop after this many programs (0: no limit)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--replay", type=int, default=None, help="run one program seed verbosely")
    ap.add_argument("--show", type=int, default=None, help="print one program's source")
    ap.add_argument("--worker", nargs=4, type=float, help=argparse.SUPPRESS)
    ap.add_argument("--log", default=None, help="append JSON records of failures here")
    ap.add_argument("--progress", type=float, default=0.0,
                    help="print a progress line every this many seconds")
    a = ap.parse_args(argv)
    if a.worker:
        start, stride, deadline, count = a.worker
        _worker(int(start), int(stride), deadline, int(count))
        return 0
    if a.show is not None:
        print(describe(generate(a.show)))
        return 0
    if a.replay is not None:
        rec = run_one(a.replay, verbose=True)
        print(rec.pop("source"))
        print(json.dumps(rec, indent=2))
        return 0 if rec["status"] in ("ok", "skip") else 1
    return _supervise(a)


def _supervise(a: Any) -> int:
    """Run workers in subprocesses (a segfault is a recorded crash, not the end of the run)."""
    deadline = time.time() + a.seconds
    counts = {"ok": 0, "skip": 0, "mismatch": 0, "grad_fail": 0, "error": 0, "crash": 0}
    grads = {"checked": 0, "unsupported": 0, "skip": 0}
    failures: list[dict[str, Any]] = []
    per_worker = (a.count + a.workers - 1) // a.workers if a.count else 0
    t0 = time.time()
    procs = {}
    next_start = {w: a.seed + w for w in range(a.workers)}
    remaining = {w: per_worker for w in range(a.workers)}

    def spawn(w: int) -> None:
        cmd = [sys.executable, "-m", "lattice.testing.fuzz", "--worker", str(next_start[w]),
               str(a.workers), str(deadline), str(remaining[w] if a.count else 0)]
        procs[w] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)

    import selectors
    sel = selectors.DefaultSelector()
    for w in range(a.workers):
        spawn(w)
        sel.register(procs[w].stdout, selectors.EVENT_READ, w)
    current: dict[int, Optional[int]] = {w: None for w in range(a.workers)}
    alive = set(range(a.workers))
    last_report = time.time()
    while alive:
        if a.progress and time.time() - last_report >= a.progress:
            last_report = time.time()
            print(f"[{time.time() - t0:.0f} s] {sum(counts.values())} programs: "
                  + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
        for key, _ in sel.select(timeout=5):
            w = key.data
            line = key.fileobj.readline()
            if line:
                rec = json.loads(line)
                if "start" in rec:
                    current[w] = rec["start"]
                    continue
                current[w] = None
                counts[rec["status"]] += 1
                g = rec.get("grad", "")
                if g:
                    grads["unsupported" if g.startswith("unsupported") else g] = grads.get(
                        "unsupported" if g.startswith("unsupported") else g, 0) + 1
                next_start[w] = rec["seed"] + a.workers
                if a.count:
                    remaining[w] -= 1
                if rec["status"] in ("mismatch", "grad_fail", "error"):
                    failures.append(rec)
                    _report_failure(rec, a.log)
                continue
            # the worker ended: normally, or by a crash in the middle of a program
            sel.unregister(key.fileobj)
            p = procs[w]
            p.wait()
            if current[w] is not None:
                seed = current[w]
                counts["crash"] += 1
                rec = {"seed": seed, "status": "crash", "detail": f"worker exit code {p.returncode}",
                       "source": describe(generate(seed))}
                failures.append(rec)
                _report_failure(rec, a.log)
                next_start[w] = seed + a.workers
                current[w] = None
                if a.count:
                    remaining[w] -= 1
                if time.time() < deadline and (not a.count or remaining[w] > 0):
                    spawn(w)
                    sel.register(procs[w].stdout, selectors.EVENT_READ, w)
                    continue
            alive.discard(w)
    total = sum(counts.values())
    dt = time.time() - t0
    print(f"programs run: {total} in {dt:.0f} s (seeds from {a.seed}, {a.workers} worker(s))")
    print(f"  ok {counts['ok']}, skipped (ill-conditioned for every input) {counts['skip']}")
    print(f"  mismatches {counts['mismatch']}, gradient failures {counts['grad_fail']}, "
          f"errors {counts['error']}, crashes {counts['crash']}")
    checked = {g: v for g, v in sorted(grads.items()) if g.startswith("checked ")}
    print(f"  AD checks: {sum(checked.values())} ("
          + ", ".join(f"{g[8:]} {v}" for g, v in checked.items()) + f"), unsupported "
          f"{grads.get('unsupported', 0)}, not smooth at the point {grads.get('skip', 0)}")
    return 1 if failures else 0


def _report_failure(rec: dict[str, Any], log: Optional[str]) -> None:
    print(f"\n=== {rec['status'].upper()} seed {rec['seed']}: {rec['detail']}", flush=True)
    if rec.get("source"):
        print(rec["source"])
    if rec.get("trace"):
        print(rec["trace"])
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")
