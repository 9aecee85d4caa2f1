"""Compiler-core figures, each measured side by side in one run.

    python bench/core.py            # all figures
    python bench/core.py --json     # machine-readable

* compile time of ``dot``: in a cold process (nothing compiled yet, empty disk cache), in a warm
  process (LLVM already initialised by an earlier compile), and in a process whose disk cache
  already holds the kernel (``cache=True``);
* call overhead of ``dot`` on 8 elements vs ``np.dot`` and vs a numba ``@njit`` equivalent;
* ``best_match`` (argmax of E @ q, 10,000 x 128 float32) vs ``np.argmax(E @ q)`` and numba.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import timeit

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # measure this checkout even when it is not installed

_CHILD = textwrap.dedent("""
    import time, json, sys
    t0 = time.perf_counter()
    import numpy as np
    import lattice as lt
    t_import = time.perf_counter() - t0

    @lt.kernel(cache=CACHE)
    def dot(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
        return lt.sum(a * b)

    @lt.kernel(cache=CACHE)
    def dot2(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
        return lt.sum(a * b * 2.0)

    a = np.ones(8, np.float32)
    t0 = time.perf_counter(); dot2(a, a) if WARM else None; t_first = time.perf_counter() - t0
    t0 = time.perf_counter(); dot(a, a); t_dot = time.perf_counter() - t0
    print(json.dumps({"import": t_import, "dot": t_dot}))
""")


def _child(cache: bool, warm: bool, cache_dir: str) -> dict:
    code = _CHILD.replace("CACHE", str(cache)).replace("WARM", str(warm))
    env = dict(os.environ, LATTICE_CACHE_DIR=cache_dir,
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    # one script path per configuration: the file name is part of the cache key
    script = os.path.join(cache_dir, f"kernels_{int(cache)}{int(warm)}.py")
    with open(script, "w") as f:
        f.write(code)
    out = subprocess.run([sys.executable, script], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def compile_times(repeat: int = 5) -> dict:
    cold, warm, cached, imports = [], [], [], []
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            r = _child(cache=False, warm=False, cache_dir=d)
            cold.append(r["dot"])
            imports.append(r["import"])
            warm.append(_child(cache=False, warm=True, cache_dir=d)["dot"])
            _child(cache=True, warm=False, cache_dir=d)           # fills the disk cache
            cached.append(_child(cache=True, warm=False, cache_dir=d)["dot"])
    med = lambda xs: float(np.median(xs))
    return {"import_s": med(imports), "cold_s": med(cold), "warm_s": med(warm),
            "disk_cached_s": med(cached)}


def _per_call(stmt, number: int = 20000, repeat: int = 15) -> float:
    return float(np.median(timeit.repeat(stmt, number=number, repeat=repeat))) / number


def call_overhead() -> dict:
    from lattice.demo import dot
    a = np.random.default_rng(0).standard_normal(8).astype(np.float32)
    b = a[::-1].copy()
    dot(a, b)
    out = {"lattice_s": _per_call(lambda: dot(a, b)), "numpy_s": _per_call(lambda: np.dot(a, b))}
    try:
        import numba

        @numba.njit(fastmath=True)
        def nb_dot(x, y):
            s = np.float32(0)
            for i in range(x.shape[0]):
                s += x[i] * y[i]
            return s
        nb_dot(a, b)
        out["numba_s"] = _per_call(lambda: nb_dot(a, b))
    except ImportError:
        pass
    return out


def best_match_times() -> dict:
    from lattice.demo import best_match
    rng = np.random.default_rng(0)
    E = rng.standard_normal((10_000, 128)).astype(np.float32)
    q = rng.standard_normal(128).astype(np.float32)
    assert best_match(E, q) == np.argmax(E @ q)
    out = {"lattice_s": _per_call(lambda: best_match(E, q), number=200),
           "numpy_s": _per_call(lambda: np.argmax(E @ q), number=200)}
    try:
        import numba

        @numba.njit(fastmath=True, parallel=False)
        def nb_best(E, q):
            best, arg = -np.inf, 0
            for i in range(E.shape[0]):
                s = np.float32(0)
                for j in range(E.shape[1]):
                    s += E[i, j] * q[j]
                if s > best:
                    best, arg = s, i
            return arg
        nb_best(E, q)
        out["numba_s"] = _per_call(lambda: nb_best(E, q), number=200)
    except ImportError:
        pass
    return out


def main() -> None:
    res = {"compile": compile_times(), "call_overhead": call_overhead(),
           "best_match": best_match_times()}
    if "--json" in sys.argv:
        print(json.dumps(res, indent=2))
        return
    c = res["compile"]
    print(f"import lattice            {c['import_s'] * 1e3:8.1f} ms")
    print(f"dot first call, cold      {c['cold_s'] * 1e3:8.1f} ms")
    print(f"dot first call, warm      {c['warm_s'] * 1e3:8.1f} ms")
    print(f"dot first call, cached    {c['disk_cached_s'] * 1e3:8.1f} ms")
    o = res["call_overhead"]
    for k, v in o.items():
        print(f"dot(8) per call {k[:-2]:9s} {v * 1e6:8.2f} us  ({v / o['lattice_s']:.2f}x lattice)")
    bm = res["best_match"]
    for k, v in bm.items():
        print(f"best_match {k[:-2]:14s} {v * 1e6:8.1f} us  ({v / bm['lattice_s']:.2f}x lattice)")


if __name__ == "__main__":
    main()
