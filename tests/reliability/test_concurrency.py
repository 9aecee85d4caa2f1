"""Kernels called and compiled from many threads at once."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

import lattice as lt
import lattice.codegen.compiled as compiled_mod

N_THREADS = 8


def _run_threads(fn, n=N_THREADS):
    """Run fn(k) in n threads released together; re-raise the first exception."""
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    results: list = [None] * n

    def body(k):
        try:
            barrier.wait()
            results[k] = fn(k)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if errors:
        raise errors[0]
    return results


@lt.kernel
def affine_norm(X: lt.f64["n", "d"], w: lt.f64["d"], b: lt.f64) -> lt.f64["n"]:
    out = lt.zeros(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = lt.sqrt(lt.sum((X[i] * w + b) ** 2))
    return out


def test_eight_threads_calling_one_kernel_get_their_own_results():
    rng = np.random.default_rng(0)
    data = [(rng.standard_normal((50 + k, 7)), rng.standard_normal(7), float(k))
            for k in range(N_THREADS)]
    want = [np.sqrt((((X * w) + b) ** 2).sum(1)) for X, w, b in data]
    affine_norm(*data[0])  # compiled; now hammer it

    def work(k):
        X, w, b = data[k]
        for _ in range(300):
            got = affine_norm(X, w, b)
            if not np.allclose(got, want[k], rtol=1e-12):
                return False
        # strided views take the other specialisation, concurrently too
        return bool(np.allclose(affine_norm(X[::2], w, b), want[k][::2], rtol=1e-12))

    assert all(_run_threads(work))


@lt.kernel
def spin(x: lt.f64["n"], reps: lt.i64) -> lt.f64:
    acc = 0.0
    for r in range(reps):
        for i in range(x.shape[0]):
            acc = acc + lt.sin(x[i] + r)
    return acc


def test_the_gil_is_released_while_a_kernel_runs():
    """Another Python thread keeps running while a long kernel call is in machine code."""
    x = np.linspace(0.0, 1.0, 1000)
    spin(x, 1)  # compile first
    t0 = time.perf_counter()
    spin(x, 200)
    single = time.perf_counter() - t0
    reps = max(200, int(200 * 0.3 / max(single, 1e-4)))  # a call of ~0.3 s
    done = threading.Event()
    started = threading.Event()
    ticks = [0]

    def other():
        started.set()
        while not done.is_set():
            ticks[0] += 1

    t = threading.Thread(target=other)
    t.start()
    started.wait()
    before = ticks[0]
    t0 = time.perf_counter()
    spin(x, reps)
    during = ticks[0] - before
    elapsed = time.perf_counter() - t0
    done.set()
    t.join()
    # holding the GIL for the whole call would leave the other thread ~nothing (at most a few
    # switch intervals); released, it counts on the order of millions per second
    assert elapsed > 0.1
    assert during > 20_000, (during, elapsed)


SRC_TEMPLATE = '''
import lattice as lt

@lt.kernel
def k{n}(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for i in range(x.shape[0]):
        s = s + x[i] * {n} + lt.exp(x[i] * 0.{n})
    return s
'''


def _load(tmp_path, n):
    import importlib.util
    path = tmp_path / f"conc_mod_{n}.py"
    path.write_text(SRC_TEMPLATE.format(n=n))
    spec = importlib.util.spec_from_file_location(f"conc_mod_{n}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, f"k{n}")


def test_one_kernel_compiled_from_eight_threads_compiles_once(tmp_path, monkeypatch):
    calls = []
    real = compiled_mod.compile_func

    def counting(*a, **kw):
        calls.append(threading.get_ident())
        time.sleep(0.05)  # widen the window in which the other threads arrive
        return real(*a, **kw)

    monkeypatch.setattr(compiled_mod, "compile_func", counting)
    k = _load(tmp_path, 3)
    x = np.linspace(0, 1, 33)
    want = float(np.sum(x * 3 + np.exp(x * 0.3)))
    got = _run_threads(lambda _: k(x))
    assert len(calls) == 1
    assert all(abs(g - want) <= 1e-12 * abs(want) for g in got)


def test_different_kernels_compiled_from_eight_threads_at_once(tmp_path):
    """LLVM work is serialized where it must be: no corruption when every thread compiles."""
    kernels = [_load(tmp_path, n) for n in range(1, N_THREADS + 1)]
    x = np.linspace(0, 1, 17)

    def work(k):
        n = k + 1
        got = kernels[k](x)
        want = float(np.sum(x * n + np.exp(x * float(f"0.{n}"))))
        return abs(got - want) <= 1e-12 * abs(want)

    assert all(_run_threads(work))
