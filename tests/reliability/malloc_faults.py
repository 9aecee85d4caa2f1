"""Fault injection for kernels' allocations: for every k, the k-th malloc of a call fails.

Run as a child process (test_memory.py): ``malloc`` and ``free`` are replaced, for the code
lattice compiles in this process only, by counting wrappers registered with LLVM's symbol
table before any kernel is compiled.  For every kernel below and every k up to the number of
mallocs a good call makes, the call with malloc k failing must raise MemoryError and leave
no buffer of its own allocated: what the k-1 earlier mallocs returned is freed on the error
path (scopes' buffers, loop-carried arrays, a row pass's partial sums, a fused reduction's
row buffer).  Prints one JSON line: the kernels, mallocs checked and the failures found.
"""
from __future__ import annotations

import ctypes
import json
import sys

import llvmlite.binding as llvm

_libc = ctypes.CDLL(None)
_malloc = _libc.malloc
_malloc.restype, _malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
_free = _libc.free
_free.restype, _free.argtypes = None, [ctypes.c_void_p]
live: dict[int, int] = {}  # pointer -> size, of what the kernel allocated and did not free
state = {"count": 0, "fail_at": 0}


@ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_size_t)
def counting_malloc(size: int) -> int | None:
    state["count"] += 1
    if state["count"] == state["fail_at"]:
        return None
    p = _malloc(size)
    live[p] = size
    return p


@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def counting_free(p: int | None) -> None:
    if p is not None:
        live.pop(p, None)
        _free(p)


llvm.add_symbol("malloc", ctypes.cast(counting_malloc, ctypes.c_void_p).value)
llvm.add_symbol("free", ctypes.cast(counting_free, ctypes.c_void_p).value)

import numpy as np  # noqa: E402

import lattice as lt  # noqa: E402


def logistic(X: lt.f64["n", "d"], w: lt.f64["d"], y: lt.f64["n"]) -> lt.f64["d"]:
    z = X @ w
    p = 1.0 / (1.0 + lt.exp(-z))
    return X.T @ (p - y)


def grad_and_z(X: lt.f64["n", "d"], w: lt.f64["d"], y: lt.f64["n"]) -> lt.f64["d"]:
    z = X @ w  # kept: the row pass also writes z
    p = 1.0 / (1.0 + lt.exp(-z))
    return (X.T @ (p - y)) * lt.sum(z * z)


def best(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(lt.exp(E @ q) * 2.0)


def carried(x: lt.f64["n"]) -> lt.f64["n"]:
    a = lt.exp(x)
    b = a * 2.0
    c = b  # b is live after the loop: the loop carries a copy
    for i in range(3):
        a = a * 0.5 + b
        b = b + a
    return a + b + c


def branches(x: lt.f64["n"], j: lt.i64) -> lt.f64["n"]:
    t = lt.exp(x)
    if j > 0:
        u = t * 2.0
        r = u * u + t
    else:
        v = t + 1.0
        r = v * t
    return r * t


def nested(X: lt.f64["n", "d"]) -> lt.f64["d"]:
    acc = lt.zeros(X.shape[1])
    for i in range(X.shape[0] // 50):
        r = lt.exp(X[i]) + acc
        for k in range(2):
            r = r * 0.5 + lt.tanh(r)
        acc = acc + r
    return acc


def rows(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    out = lt.empty(X.shape[0])
    s = 0.0
    for i in lt.prange(X.shape[0]):
        r = lt.exp(X[i]) * 2.0
        out[i] = lt.sum(r)
        s = s + r[0]
    return out * s


def rows_if(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    out = lt.empty(X.shape[0])
    s = 0.0
    for i in lt.prange(X.shape[0]):
        r = lt.exp(X[i])
        if r[0] > 1.0:
            u = r * 2.0
            out[i] = lt.sum(u * r)
            s = s + u[1]
        else:
            out[i] = lt.sum(r)
    return out * s


def rows_inner(X: lt.f64["n", "d"]) -> lt.f64["n", "d"]:
    Y = lt.zeros((X.shape[0], X.shape[1]))
    for i in lt.prange(X.shape[0] // 10):
        for k in range(2):
            r = lt.exp(X[i]) * (k + 1.0)
            if r[0] > 1.0:
                Y[i] = r * r
    return Y


def shrinking(x: lt.f64["n"]) -> lt.f64["n"]:
    y = lt.exp(x)
    z = y * 1.0
    while lt.sum(lt.concatenate((y, y * y))) > 1.0:  # the condition allocates too
        y = y * 0.5 + lt.tanh(y) * 0.1
    return y + z


def gram(X: lt.f64["n", "d"], w: lt.f64["n"]) -> lt.f64["d", "d"]:
    return X.T @ (X * w[:, None]) + lt.exp(X.T @ X)


def softmax(X: lt.f64["n", "d"]) -> lt.f64["n", "d"]:
    e = lt.exp(X - lt.max(X, axis=1)[:, None])
    return e / lt.sum(e, axis=1)[:, None]


def sized(x: lt.f64["n"], k: lt.i64["m"]):
    # results the kernel allocates and hands over (x[mask]; a copy for the repeated one)
    y = x[x > 0.0]
    return y, y, np.unique(k), y[1:]


def writes(X: lt.f64["n", "d"], out: lt.f64["n"]):
    # a written argument (its memory the kernel's, never freed) beside temporaries in a loop
    for i in range(X.shape[0]):
        r = lt.exp(X[i])
        out[i] = lt.sum(r * r)
    out += lt.tanh(out * 2.0)


def main() -> None:
    lt.set_num_threads(1)  # the wrappers call into Python: keep them on the calling thread
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 8))
    w, y, x = rng.standard_normal(8), rng.random(300), X[:, 0].copy()
    E = rng.standard_normal((300, 16)).astype(np.float32)
    q = rng.standard_normal(16).astype(np.float32)
    cases = [(logistic, (X, w, y)), (grad_and_z, (X, w, y)), (best, (E, q)), (carried, (x,)),
             (branches, (x, 1)), (branches, (x, -1)), (nested, (X,)), (rows, (X,)), (rows_if, (X,)), (rows_inner, (X,)),
             (shrinking, (x,)), (gram, (X, y)), (softmax, (X,)),
             (sized, (x, (x * 10).astype(np.int64))), (writes, (X, y.copy()))]
    failures: list[str] = []
    checked = 0
    for parallel in (False, True):
        for fn, args in cases:
            name = f"{fn.__name__}{args[1:] if fn is branches else ''} parallel={parallel}"
            k = lt.kernel(parallel=parallel)(fn)
            live.clear()
            state.update(count=0, fail_at=0)
            k(*args)  # compiles, and counts the mallocs of a good call
            n = state["count"]
            for at in range(1, n + 1):
                live.clear()
                state.update(count=0, fail_at=at)
                try:
                    k(*args)
                    failures.append(f"{name}: malloc {at} of {n} failed, the call returned")
                except MemoryError:
                    pass
                if live:
                    failures.append(f"{name}: malloc {at} of {n} failed, {len(live)} buffers "
                                    f"not freed ({sorted(live.values())} bytes)")
                checked += 1
    print(json.dumps({"kernels": 2 * len(cases), "checked": checked, "failures": failures}))


if __name__ == "__main__":
    main()
    sys.exit(0)
