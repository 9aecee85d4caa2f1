"""The LLVM-generated CPython entry (codegen/pyentry.py): same results and errors as the Python
dispatcher, no reference leaks, the GIL released for big inputs."""
from __future__ import annotations

import sys
import threading

import os

import numpy as np
import pytest

import lattice as lt
from lattice.frontend.kernel import BaseKernel

from conftest import assert_same


def _entry_installed(k) -> bool:
    return type(k).__dict__.get("_lt_own_class") is True and type(k).__call__ is not BaseKernel._dispatch


def _python_path(k, *args):
    return BaseKernel._dispatch(k, *args)


@lt.kernel
def dot(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
    return lt.sum(a * b)


@lt.kernel
def affine(X: lt.f64["n", "d"], w: lt.f64["d"], c: lt.f64, k: lt.i32, flag: lt.bool_
           ) -> (lt.f64["n"], lt.f64, lt.i32, lt.bool_):
    y = X @ w * c + k
    return y, lt.sum(y), k + 1, not flag


@lt.kernel
def fixed(x: lt.f64["n", 3]) -> lt.f64["n"]:
    return lt.sum(x, axis=1)


@lt.kernel
def tail(x: lt.f64["n"]):  # result size n-1: a max(0, n-1) allocation
    return x[1:] - x[:-1]


@lt.kernel
def first_of(x: lt.f64["n"]) -> tuple[lt.i64]:
    return (lt.argmax(x),)


@lt.kernel(boundscheck=True)
def pick(x: lt.f64["n"], i: lt.i64) -> lt.f64:
    return x[i]


def test_entry_is_installed_and_matches_the_python_path():
    a = np.arange(8, dtype=np.float32)
    assert dot(a, a) == 140.0
    assert _entry_installed(dot)
    assert isinstance(dot, lt.Kernel) and repr(dot) == "<lattice kernel dot>"
    got = dot(a, a[::-1].copy())
    assert_same(got, _python_path(dot, a, a[::-1].copy()))
    assert type(got) is np.float32


def test_multi_results_scalars_of_every_kind():
    rng = np.random.default_rng(0)
    X, w = rng.standard_normal((5, 3)), rng.standard_normal(3)
    ref = _python_path(affine, X, w, 2.0, 3, True)
    assert _entry_installed(affine)
    for c in (2.0, 2, np.float64(2.0), np.float32(2.0)):
        for k in (3, np.int64(3), np.int32(3)):
            assert_same(affine(X, w, c, k, True), ref)
    assert affine(X, w, 2.0, 3, False)[3] == np.True_
    # kinds and ranges the entry does not take go to the Python path, which decides
    assert_same(affine(X, w, True, 3, np.True_), _python_path(affine, X, w, True, 3, np.True_))
    with pytest.raises(ValueError, match="does not fit i32"):
        affine(X, w, 2.0, 2**40, True)
    with pytest.raises(ValueError, match="does not fit i32"):
        affine(X, w, 2.0, 2**80, True)
    with pytest.raises(TypeError, match="expected a i32 scalar"):
        affine(X, w, 2.0, 3.5, True)
    with pytest.raises(TypeError, match="expected a f64 scalar"):
        affine(X, w, "2", 3, True)


def test_one_result_declared_as_a_tuple_stays_a_tuple():
    x = np.array([1.0, 5.0, 2.0])
    assert first_of(x) == (1,)
    assert _entry_installed(first_of)
    assert first_of(x) == (1,) and type(first_of(x)[0]) is np.int64


def test_errors_are_the_python_paths_errors():
    a = np.ones(4, np.float32)
    dot(a, a)
    cases = [
        ((a, np.ones(5, np.float32)), ValueError, "dim 'n' is 4 in argument 'a' but 5 in argument 'b'"),
        ((a, np.ones(4)), TypeError, "expected a float32 array, got float64"),
        ((a,), TypeError, "takes 2 arguments"),
        ((a, np.ones((4, 1), np.float32)), TypeError, "expected a 1-D float32 array"),
    ]
    for args, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            dot(*args)
    with pytest.raises(TypeError):
        dot(a, b=a)
    fixed(np.ones((2, 3)))
    assert _entry_installed(fixed)
    with pytest.raises(ValueError, match="axis 1 must have size 3, got 4"):
        fixed(np.ones((2, 4)))


def test_kernel_errors_raise_from_the_entry():
    x = np.arange(4.0)
    assert pick(x, 2) == 2.0 and pick(x, -1) == 3.0
    assert _entry_installed(pick)
    with pytest.raises(IndexError, match="index out of range"):
        pick(x, 4)
    with pytest.raises(ValueError, match="argmax of an empty sequence"):
        first_of(np.ones(0))


def test_strided_lists_and_subclasses_take_the_python_path():
    x = np.arange(10.0)
    assert_same(tail(x), np.diff(x))
    assert _entry_installed(tail)
    assert_same(tail(x[::2]), np.diff(x[::2]))
    assert_same(tail([1.0, 4.0, 9.0]), np.array([3.0, 5.0]))
    assert_same(tail(np.ones(0)), np.diff(np.ones(0)))  # n-1 < 0: empty, as NumPy clips

    class Sub(np.ndarray):
        pass
    assert_same(tail(x.view(Sub)), np.diff(x))
    big_endian = x.astype(">f8")
    with pytest.raises(TypeError):
        tail(big_endian)


def test_no_reference_leaks():
    x = np.arange(10.0)
    X, w = np.ones((4, 3)), np.ones(3)
    tail(x)
    affine(X, w, 1.0, 1, True)
    before = (sys.getrefcount(x), sys.getrefcount(X), sys.getrefcount(w))
    for _ in range(1000):
        r = tail(x)
        t = affine(X, w, 1.0, 1, True)
    assert sys.getrefcount(r) == 2 and sys.getrefcount(t) == 2
    assert (sys.getrefcount(x), sys.getrefcount(X), sys.getrefcount(w)) == before
    for _ in range(100):
        with pytest.raises(IndexError):
            pick(x, 10)
    assert sys.getrefcount(x) == before[0]


def test_big_inputs_run_concurrently_without_the_gil():
    a = np.ones(1 << 20, np.float32)
    dot(a, a)
    results = []

    def work():
        for _ in range(20):
            results.append(dot(a, a))
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [np.float32(1 << 20)] * 80


def test_entry_survives_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATTICE_CACHE_DIR", str(tmp_path))

    def make():
        @lt.kernel(cache=True)
        def scaled(x: lt.f64["n"], s: lt.f64) -> lt.f64["n"]:
            return x * s
        return scaled

    first = make()
    x = np.arange(3.0)
    assert_same(first(x, 2.0), x * 2.0)
    second = make()  # a fresh kernel: loads the object from disk
    assert_same(second(x, 3.0), x * 3.0)
    assert _entry_installed(second)


@lt.kernel
def small_types(x: lt.u8["n"], h: lt.f16["n"], k: lt.i64):
    return x >> k, h * 2


@lt.kernel
def small_scalars(x: lt.u8["n"], a: lt.u8, b: lt.i16, c: lt.u64, h: lt.f16, w: lt.u32):
    return lt.sum(x) + a, b - 1, c >> 1, h * 3, w * 2, x[0]


def test_arrays_and_scalars_of_every_dtype_take_the_entry():
    x = np.array([0, 7, 255], np.uint8)
    h = np.array([0.5, -1.5, 65504], np.float16)
    got = small_types(x, h, 1)
    assert _entry_installed(small_types)
    assert_same(small_types(x, h, 1), _python_path(small_types, x, h, 1))
    with np.errstate(over="ignore"):  # 65504 * 2 overflows f16 to inf, as in NumPy
        want = (x >> np.int64(1), h * 2)  # (k is a strong i64: u8 >> i64 is i64)
    assert_same(got, want)
    with pytest.raises(TypeError, match="argument 'x'.*uint8.*got int8"):
        small_types(x.astype(np.int8), h, 1)  # another dtype falls back to the dispatcher

    args = (x, 200, -32768, 2**63 - 1, 0.1, 2**32 - 1)
    first = small_scalars(*args)
    assert _entry_installed(small_scalars)
    want = (np.uint64(462), np.int16(32767), np.uint64(2**62 - 1),
            np.float16(np.float16(0.1) * np.float16(3)), np.uint32(2**32 - 2), np.uint8(0))
    for got in (first, small_scalars(*args), _python_path(small_scalars, *args)):
        assert_same(got, want)
    big = (x, 200, -32768, 2**64 - 1, 0.1, 2**32 - 1)  # a u64 above 2**63: the dispatcher's
    assert_same(small_scalars(*big)[2], np.uint64(2**63 - 1))
    for bad, msg in (((x, 256, 0, 0, 0.0, 0), "'a'.*256 does not fit u8"),
                     ((x, 0, 0, -1, 0.0, 0), "'c'.*-1 does not fit u64"),
                     ((x, 0, 2**15, 0, 0.0, 0), "'b'.*32768 does not fit i16")):
        with pytest.raises(ValueError, match=msg):
            small_scalars(*bad)


_OUTLIVE = '''
import gc, sys
import numpy as np
import lattice as lt

def f(x: lt.f64["n"]) -> lt.f64["n"]:
    return x * 2.0

def g(x: lt.f64["n"]):
    return x[x > 0.5]

x = np.linspace(0.0, 1.0, 1001)
k, k2 = lt.kernel(f), lt.kernel(g)
y, z = k(x), k2(x)
del k, k2
gc.collect()  # the kernels and their machine code are gone; their results are not
assert np.array_equal(y, x * 2.0) and np.array_equal(z, x[x > 0.5])
del y
gc.collect()
keep = lt.kernel(f)(x)  # freed during interpreter shutdown
print("done")
'''


def test_results_outlive_their_kernel_and_the_interpreter(tmp_path):
    # every tensor result is a buffer the kernel allocated, freed by its array's base; that
    # destructor must not live in the kernel's own (freed) machine code
    import subprocess
    import sys
    script = tmp_path / "outlive.py"
    script.write_text(_OUTLIVE)
    env = dict(os.environ, LATTICE_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "done", r.stderr[-2000:]
