"""RSS over many kernel calls or compilations: ``python rss_probe.py calls|compiles N``.

Prints one JSON line: RSS (MiB) after a warm-up and after the N operations, and the time.
``calls`` calls one small kernel N times; ``compiles`` defines and calls N distinct kernels
(each closes over its own constant, so every one is traced, lowered, optimised and JIT-compiled
and none is served from a cache), alternating an elementwise map and a reduction; ``errors``
makes N rounds of calls that raise after allocating temporaries; ``sized`` calls a kernel whose
results are sized at run time (allocated by the kernel, freed with the NumPy arrays) N times.
test_memory.py runs ``compiles 1000`` and ``calls 200000``; the issue's call figure (10**6
calls) comes from running it by hand (docs/testing.md).
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


def heap_mib() -> float:
    """Bytes the C allocator has handed out and not had back (glibc's mallinfo2), in MiB;
    -1.0 where that is not available.  Unlike RSS it ignores allocator slack and fragmentation,
    so it shows a leak of a few KiB per operation."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]
    try:
        mallinfo2 = ctypes.CDLL(None).mallinfo2
    except AttributeError:
        return -1.0
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20


_JIT_IR = """
define double @sum_plus(ptr noalias %x, i64 %n) {{
entry:
  br label %head
head:
  %i = phi i64 [0, %entry], [%i1, %body]
  %acc = phi double [{c}, %entry], [%acc1, %body]
  %more = icmp slt i64 %i, %n
  br i1 %more, label %body, label %exit
body:
  %p = getelementptr inbounds double, ptr %x, i64 %i
  %v = load double, ptr %p
  %acc1 = fadd fast double %acc, %v
  %i1 = add nuw nsw i64 %i, 1
  br label %head
exit:
  ret double %acc
}}
"""


def small(x: lt.f64["n"], s: lt.f64) -> lt.f64["n"]:
    return x * s + 1.0


def make_map(c: float):
    @lt.kernel
    def scale(x: lt.f64["n"], s: lt.f64) -> lt.f64["n"]:
        return x * s + c
    return scale


def make_reduction(c: float):
    @lt.kernel
    def dot(a: lt.f64["n"], b: lt.f64["n"]) -> lt.f64:
        return lt.sum(a * b) + c
    return dot


# kernels that raise after making temporaries: at the top level, in a loop, in a branch, in
# an lt.prange loop (mode "errors"; every error return frees what the kernel owns)
@lt.kernel(boundscheck=True)
def fail_top(x: lt.f64["n"], j: lt.i64) -> lt.f64["n"]:
    t = lt.exp(x) * 2.0
    return t * t[j]


@lt.kernel(boundscheck=True)
def fail_loop(x: lt.f64["n"], j: lt.i64) -> lt.f64["n"]:
    acc = lt.zeros(x.shape[0])
    for i in range(3):
        t = lt.exp(x) * i
        acc = acc + t * t[j + i]
    return acc


@lt.kernel(boundscheck=True)
def fail_cond(x: lt.f64["n"], j: lt.i64) -> lt.f64["n"]:
    t = lt.exp(x)
    if j > 0:
        u = t * 2.0
        r = u * u[j]
    else:
        r = t
    return r


@lt.kernel(boundscheck=True, parallel=True)
def fail_prange(X: lt.f64["n", "d"], col: lt.i64["n"]) -> lt.f64["n"]:
    t = lt.exp(X) * 2.0
    out = lt.empty(X.shape[0])
    for i in lt.prange(X.shape[0]):
        out[i] = t[i, col[i]]
    return out + t[:, 0]


def sized(x: lt.f64["n"], k: lt.i64["m"]):
    return x[x > 0.0], np.unique(k), np.nonzero(x < 0.5)[0]


def _measure(one, warm: int, n: int) -> tuple:
    """``one(i)`` for ``warm`` warm-up values (imports, first use, allocator pools), then
    ``n`` measured ones: (rss, C heap, time) before and after the measured ones."""
    for i in range(warm):
        one(-1 - i)
    gc.collect()
    r0, h0, t0 = rss_mib(), heap_mib(), time.perf_counter()
    for i in range(n):
        one(i)
    gc.collect()
    return r0, h0, t0, rss_mib(), heap_mib(), time.perf_counter()


def main(mode: str, n: int) -> None:
    x = np.linspace(0.0, 1.0, 16)
    if mode == "calls":
        k = lt.kernel(small)
        r0, h0, t0, r1, h1, t1 = _measure(lambda i: k(x, 2.0), 20_000, n)
    elif mode == "compiles":
        def one(i: int) -> None:
            # a new kernel with a constant of its own: trace, optimise, lower, JIT, call, drop
            if i % 2:
                assert make_reduction(float(i))(x, x) == np.dot(x, x) + i
            else:
                assert make_map(float(i))(x, 2.0)[0] == i
        r0, h0, t0, r1, h1, t1 = _measure(one, 30, n)
    elif mode == "jit":
        # the JIT layer alone: LLVM IR text -> O3 -> object -> MCJIT engine, N distinct modules
        import ctypes

        from lattice.codegen import jit
        sum_plus = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_int64)

        def one(i: int) -> None:
            mod = jit.compile_ir(_JIT_IR.format(c=f"{float(i):e}"))
            got = sum_plus(mod.address("sum_plus"))(x.ctypes.data, x.size)
            assert abs(got - (x.sum() + i)) <= 1e-9 * (1 + abs(i)), (got, i)
            mod.close()
        r0, h0, t0, r1, h1, t1 = _measure(one, 30, n)
    elif mode == "errors":
        # each call raises IndexError after allocating temporaries (80-160 KB each)
        xs = np.linspace(0.0, 1.0, 10_000)
        X = np.linspace(0.0, 1.0, 2000 * 8).reshape(2000, 8)
        col = np.zeros(2000, np.int64)
        col[1500] = 99
        calls = [lambda: fail_top(xs, 10**7), lambda: fail_loop(xs, 10**7),
                 lambda: fail_cond(xs, 10**7), lambda: fail_prange(X, col)]

        def one(i: int) -> None:
            for c in calls:
                try:
                    c()
                except IndexError:
                    continue
                raise AssertionError("no IndexError")
        r0, h0, t0, r1, h1, t1 = _measure(one, 20, n)
    elif mode == "sized":
        xs = np.linspace(-1.0, 1.0, 8000)
        ks = np.arange(4000) % 1000
        k = lt.kernel(sized)

        def one(i: int) -> None:
            a, u, nz = k(xs, ks)
            assert a.size == 4000 and u.size == 1000 and nz.size == 6000
        r0, h0, t0, r1, h1, t1 = _measure(one, 200, n)
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps({"mode": mode, "n": n, "rss_before_mib": round(r0, 1),
                      "rss_after_mib": round(r1, 1), "growth_mib": round(r1 - r0, 2),
                      "growth_kib_per_op": round((r1 - r0) * 1024 / max(n, 1), 3),
                      "heap_growth_mib": round(h1 - h0, 2) if h0 >= 0 else None,
                      "seconds": round(t1 - t0, 2)}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
