"""``for i in lt.prange(...)``: loops whose iterations fill disjoint rows run across threads.

Compiled (parallel, and serial) vs the interpreter vs NumPy; fills and reductions inside
``if``s; the loops the trace-time check refuses, with the name and the reason; the serial
fallback for loops that count down or from a negative start; errors raised inside iterations;
gradients through such a loop."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lattice as lt
from lattice.ir import primitives as P

from conftest import assert_same
from test_parallel import _restore_threads  # noqa: F401  (autouse: restores the thread count)


def _lse_rows(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    out = lt.empty(X.shape[0])
    for i in lt.prange(X.shape[0]):
        m = lt.max(X[i])
        out[i] = m + lt.log(lt.sum(lt.exp(X[i] - m)))
    return out


lse_par = lt.kernel(parallel=True)(_lse_rows)
lse_ser = lt.kernel(parallel=False)(_lse_rows)


def _np_lse(X):
    m = X.max(axis=1)
    return m + np.log(np.exp(X - m[:, None]).sum(axis=1))


@lt.kernel(parallel=True)
def two_outputs(X: lt.f64["n", "d"], w: lt.f64["d"], c: lt.i64) -> (lt.f64["n", "d"], lt.f64["n"]):
    Y = lt.zeros((X.shape[0], X.shape[1]))
    s = lt.zeros(X.shape[0])
    for i in lt.prange(X.shape[0]):
        Y[i] = X[i] * w
        Y[i, 0] = -1.0
        s[i] = lt.sum(X[i, 1:] * w[1:]) + c
    return Y, s


@lt.kernel(parallel=True)
def strided(X: lt.f64["n", "d"], a: lt.i64, b: lt.i64, k: lt.i64) -> lt.f64["n"]:
    out = lt.zeros(X.shape[0])
    for i in lt.prange(a, b, k):
        out[i] = lt.sum(X[i] * X[i]) + i
    return out


@lt.kernel(parallel=True, boundscheck=True)
def gather(X: lt.f64["n", "d"], col: lt.i64["n"]) -> lt.f64["n"]:
    out = lt.empty(X.shape[0])
    for i in lt.prange(X.shape[0]):
        out[i] = X[i, col[i]]
    return out


@given(n=st.integers(0, 300), d=st.integers(1, 9), seed=st.integers(0, 2**16))
@settings(deadline=None, max_examples=60)
def test_rows_any_shape(n, d, seed):
    X = np.random.default_rng(seed).standard_normal((n, d)) * 3
    want = _np_lse(X)
    assert_same(lse_ser(X), want, rtol=1e-12)
    for threads in (1, 2, 3):
        lt.set_num_threads(threads)
        got = lse_par(X)
        assert_same(got, want, rtol=1e-12)
        np.testing.assert_array_equal(got, lse_ser(X))  # rows are independent: bitwise equal
    assert_same(lse_par.interpret(X), want, rtol=1e-12)


def test_empty_rows_raise_in_every_thread_count():
    for threads in (1, 2):
        lt.set_num_threads(threads)
        with pytest.raises(ValueError, match="empty"):
            lse_par(np.zeros((5000, 0)))
        assert lse_par(np.zeros((0, 0))).shape == (0,)


def test_many_rows_are_split_across_threads():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((100_003, 16))
    want = lse_ser(X)
    for threads in (1, 2, 4):
        lt.set_num_threads(threads)
        np.testing.assert_array_equal(lse_par(X), want)
    assert "parallel=True" in lse_par.inspect_ir(X)
    assert ".chunk" in lse_par.inspect_llvm(X)  # the loop is outlined for the pool
    assert ".chunk" not in lse_ser.inspect_llvm(X)


def test_several_arrays_and_partial_rows():
    rng = np.random.default_rng(2)
    for n in (0, 1, 5, 2000):
        X = rng.standard_normal((n, 6))
        w = rng.standard_normal(6)
        Y = X * w
        Y[:, 0] = -1.0
        s = (X[:, 1:] * w[1:]).sum(axis=1) + 3
        for threads in (1, 2):
            lt.set_num_threads(threads)
            assert_same(two_outputs(X, w, 3), (Y, s), rtol=1e-12)
        assert_same(two_outputs.interpret(X, w, 3), (Y, s), rtol=1e-12)


@pytest.mark.parametrize("a,b,k", [(0, 1000, 1), (3, 997, 7), (0, 1000, 1000), (5, 5, 1),
                                   (999, -1, -1), (998, 0, -3), (-1000, 0, 1), (-500, 300, 2),
                                   (10, 0, 1), (-1000, 1000, 1)])
def test_any_range_runs_as_the_serial_loop(a, b, k):
    # counting down or through negative indices the rows are the serial loop's (in parallel
    # kernels the serial loop runs then); counting up from 0 or more, across the threads
    X = np.random.default_rng(3).standard_normal((1000, 4))
    want = strided.interpret(X, a, b, k)
    ref = np.zeros(1000)
    for i in range(a, b, k):
        ref[i] = (X[i] * X[i]).sum() + i
    assert_same(want, ref, rtol=1e-12)
    for threads in (1, 2):
        lt.set_num_threads(threads)
        assert_same(strided(X, a, b, k), ref, rtol=1e-12)


def test_an_error_inside_an_iteration_is_raised():
    X = np.arange(12.0).reshape(4, 3)
    assert_same(gather(X, np.array([0, 2, 1, 0])), np.array([0.0, 5.0, 7.0, 9.0]))
    for threads in (1, 2):
        lt.set_num_threads(threads)
        with pytest.raises(IndexError, match="index out of range for axis 1"):
            gather(X, np.array([0, 3, 1, 0]))
        big = np.zeros((5000, 3))
        col = np.zeros(5000, np.int64)
        col[4321] = -4
        with pytest.raises(IndexError, match="index out of range for axis 1"):
            gather(big, col)


@lt.kernel(parallel=True)
def reductions(X: lt.f64["n", "d"], a: lt.i64) -> (lt.f64, lt.f64, lt.i64, lt.f64, lt.f64,
                                                    lt.f64, lt.f64["n"]):
    s = 0.5
    p = 1.0
    c = 0
    hi = -1e300
    lo = 1e300
    neg = 2.0
    out = lt.zeros(X.shape[0])
    for i in lt.prange(a, X.shape[0]):
        v = lt.sum(X[i])
        s = s + v
        p *= 1.0 + v * 1e-3
        c += i * i
        hi = lt.maximum(hi, v)
        lo = lt.minimum(v, lo)
        neg = neg - v
        out[i] = v
    return s, p, c, hi, lo, neg, out


def _reductions_ref(X, a):
    n = X.shape[0]
    idx = np.arange(a, n) if a >= 0 else np.arange(a, n) % n  # serial order, negative wraps
    v = X.sum(axis=1)
    vs = v[idx]
    out = np.zeros(n)
    out[idx] = vs
    return (0.5 + vs.sum(), np.prod(1.0 + vs * 1e-3), int((np.arange(a, n) ** 2).sum()),
            max(-1e300, vs.max(initial=-np.inf)), min(1e300, vs.min(initial=np.inf)),
            2.0 - vs.sum(), out)


@pytest.mark.parametrize("n,a", [(0, 0), (1, 0), (7, 2), (9, 9), (100_000, 0), (100_000, 17),
                                 (3000, -3000), (3000, -1500)])
def test_numbers_reduced_across_iterations(n, a):
    # sums, products, max/min, an integer sum and s = s - v: against NumPy (floats to rounding:
    # chunks add up in their own grouping), the same on every call for a thread count
    X = np.random.default_rng(n).standard_normal((n, 6))
    want = _reductions_ref(X, a)
    if n <= 3000:  # the interpreter runs the loop in Python
        assert_same(reductions.interpret(X, a), want, rtol=1e-9, atol=1e-9)
    for threads in (1, 2, 3):
        lt.set_num_threads(threads)
        got = reductions(X, a)
        assert_same(got, want, rtol=1e-9, atol=1e-9)
        again = reductions(X, a)
        for g, h in zip(got, again):
            np.testing.assert_array_equal(g, h)  # deterministic for a thread count


@lt.kernel(parallel=True, boundscheck=True)
def branchy(X: lt.f64["n", "d"], j: lt.i64, t: lt.f64) -> (lt.f64["n"], lt.f64["n", "d"], lt.f64,
                                                            lt.f64, lt.i64):
    out = lt.empty(X.shape[0])
    Y = lt.zeros((X.shape[0], X.shape[1]))
    s = 0.0
    hi = -1e300
    c = 0
    for i in lt.prange(X.shape[0]):
        v = lt.sum(X[i])
        if v > t:
            out[i] = v + X[i, j]
            s = s + v
            if v > 2.0 * t:
                Y[i] = X[i] * 2.0
                c += 1
            s += 1.0
        else:
            out[i] = 0.01 * v
            hi = lt.maximum(hi, v)
        Y[i, 0] = v
    return out, Y, s, hi, c


def _branchy_ref(X, j, t):
    v = X.sum(axis=1)
    up, top = v > t, v > 2 * t
    Y = np.where((up & top)[:, None], X * 2.0, 0.0)
    Y[:, 0] = v
    return (np.where(up, v + X[:, j], 0.01 * v), Y, (v[up] + 1.0).sum(),
            max(-1e300, v[~up].max(initial=-np.inf)), int((up & top).sum()))


@pytest.mark.parametrize("n", [0, 1, 7, 3000, 100_003])
def test_fills_and_updates_inside_ifs(n):
    # arrays filled and numbers updated in branches (nested ones too) run across the threads:
    # rows bitwise equal to the serial loop's, numbers to rounding, vs NumPy and the interpreter
    X = np.random.default_rng(n).standard_normal((n, 5))
    want = _branchy_ref(X, 3, 0.5)
    if n <= 3000:
        assert_same(branchy.interpret(X, 3, 0.5), want, rtol=1e-9, atol=1e-9)
    lt.set_num_threads(1)
    serial = branchy(X, 3, 0.5)
    for threads in (1, 2, 3):
        lt.set_num_threads(threads)
        got = branchy(X, 3, 0.5)
        assert_same(got, want, rtol=1e-9, atol=1e-9)
        for g, h in zip(got[:2], serial[:2]):
            np.testing.assert_array_equal(g, h)
    if n > 3000:
        assert ".chunk" in branchy.inspect_llvm(X, 3, 0.5)
        loops = [e for e in branchy.optimized_ir.eqns if e.prim is P.loop_p]
        kinds, problem = P.prange_plan(loops[0].params["body"], loops[0].params["n_carry"])
        assert problem is None and sorted(map(str, kinds)) == ["None", "None", "max", "sum", "sum"]


def test_an_error_inside_a_branch_of_an_iteration_is_raised():
    # the shared arrays survive the error path: raised again, then a good call
    X = np.random.default_rng(5).standard_normal((50_000, 4))
    for threads in (1, 2):
        lt.set_num_threads(threads)
        for _ in range(3):
            with pytest.raises(IndexError, match="index out of range for axis 1"):
                branchy(X, 4, 0.0)
        assert_same(branchy(X, 3, 0.0), _branchy_ref(X, 3, 0.0), rtol=1e-9, atol=1e-9)


def test_gradient_through_a_prange_loop():
    def loss(X: lt.f64["n", "d"]) -> lt.f64:
        return lt.sum(lse_par(X) * lse_par(X))
    g = lt.grad(lt.kernel(parallel=True)(loss))
    X = np.random.default_rng(4).standard_normal((500, 5))
    lse = _np_lse(X)
    soft = np.exp(X - lse[:, None])
    assert_same(g(X), 2 * lse[:, None] * soft, rtol=1e-10)


@lt.kernel(parallel=True, boundscheck=True)
def inner_loops(X: lt.f64["n", "d"], j: lt.i64) -> (lt.f64["n", "d"], lt.f64, lt.f64["n"]):
    Y = lt.empty((X.shape[0], X.shape[1]))
    last = lt.zeros(X.shape[0])
    s = 0.0
    for i in lt.prange(X.shape[0]):
        for k in range(X.shape[1]):
            Y[i, k] = X[i, k] * 2.0 + X[i, j]
            s = s + X[i, k]
            if X[i, k] > 0.0:
                last[i] = X[i, k]  # the last positive entry of the row
        for k in range(2):
            s += 1.0
    return Y, s, last


def _inner_loops_ref(X, j):
    last = np.zeros(len(X))
    for k in range(X.shape[1]):
        last = np.where(X[:, k] > 0, X[:, k], last)
    return X * 2.0 + X[:, j:j + 1], X.sum() + 2.0 * len(X), last


@pytest.mark.parametrize("n,d", [(0, 3), (1, 1), (9, 4), (2000, 3), (100_003, 5)])
def test_fills_and_updates_inside_inner_loops(n, d):
    # inner loops run serially inside each iteration, carrying the shared arrays in place
    X = np.random.default_rng(n + d).standard_normal((n, d))
    want = _inner_loops_ref(X, d - 1)
    if n <= 2000:
        assert_same(inner_loops.interpret(X, d - 1), want, rtol=1e-9, atol=1e-9)
    lt.set_num_threads(1)
    serial = inner_loops(X, d - 1)
    for threads in (1, 2, 3):
        lt.set_num_threads(threads)
        got = inner_loops(X, d - 1)
        assert_same(got, want, rtol=1e-9, atol=1e-9)
        for g, h in zip((got[0], got[2]), (serial[0], serial[2])):
            np.testing.assert_array_equal(g, h)
        if n:  # column d is out of range, read in every inner iteration
            with pytest.raises(IndexError, match="index out of range for axis 1"):
                inner_loops(X, d)
    if n > 2000:
        assert ".chunk" in inner_loops.inspect_llvm(X, d - 1)


@lt.kernel(parallel=True)
def size_after_fill(X: lt.f64["n", "d"]) -> (lt.f64["n"], lt.i64):
    out = lt.empty(X.shape[0])
    c = 0
    for i in lt.prange(X.shape[0]):
        out[i] = X[i, 0] * 2.0
        c = c + out.shape[0]  # a size read after the store: not a use of the buffer
    return out, c


def test_reading_a_size_after_a_fill_keeps_the_loop_parallel():
    X = np.random.default_rng(8).standard_normal((100_000, 3))
    for threads in (1, 2):
        lt.set_num_threads(threads)
        out, c = size_after_fill(X)
        np.testing.assert_array_equal(out, X[:, 0] * 2.0)
        assert c == 100_000 * 100_000
    assert ".chunk" in size_after_fill.inspect_llvm(X)


def test_gradient_through_updates_inside_ifs():
    def loss(X: lt.f64["n", "d"]) -> lt.f64:
        s = 0.0
        for i in lt.prange(X.shape[0]):
            v = lt.sum(X[i] * X[i])
            if X[i, 0] > 0.0:
                s = s + v
            else:
                s = s + 0.5 * v
        return s
    X = np.random.default_rng(6).standard_normal((1000, 3))
    scale = np.where(X[:, 0] > 0, 1.0, 0.5)
    assert_same(lt.kernel(parallel=True)(loss)(X), (scale * (X * X).sum(axis=1)).sum(),
                rtol=1e-12)
    assert_same(lt.grad(lt.kernel(parallel=True)(loss))(X), 2 * scale[:, None] * X, rtol=1e-12)


def _trace_error(src: str):
    """The CompileError tracing ``src`` (a kernel named k) raises, or None."""
    import importlib.util
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write("import lattice as lt\n" + src)
    spec = importlib.util.spec_from_file_location("prange_case", f.name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    try:
        mod.k(np.ones((4, 3)))
    except lt.CompileError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("body,name,why", [
    ("s = 0.0\n    out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0]):\n"
     "        s = s + lt.sum(X[i])\n        out[i] = s\n    return out", "s",
     "is a number carried from one iteration to the next other than as a running sum"),
    ("s = 1.0\n    for i in lt.prange(X.shape[0]):\n        s = lt.sum(X[i]) - s\n"
     "    return lt.zeros(X.shape[0]) + s", "s", "other than as a running sum"),
    ("s = 1.0\n    for i in lt.prange(X.shape[0]):\n        s = s / 2.0\n"
     "    return lt.zeros(X.shape[0]) + s", "s", "other than as a running sum"),
    ("out = lt.zeros(X.shape[0])\n    for i in lt.prange(1, X.shape[0]):\n"
     "        out[i] = out[i - 1] + lt.sum(X[i])\n    return out", "out", "is read in the loop"),
    ("out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0] - 1):\n"
     "        out[i + 1] = lt.sum(X[i])\n    return out", "out", "assigned other than at [i"),
    ("out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0]):\n"
     "        for j in range(3):\n            out[j] = X[i, j]\n    return out", "out",
     "assigned other than at [i"),
    ("out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0]):\n"
     "        for j in range(3):\n            out[i] = out[i] + X[i, j]\n    return out", "out",
     "is read in the loop"),
    ("s = 0.0\n    for i in lt.prange(X.shape[0]):\n        for j in range(3):\n"
     "            s = s * 0.5 + X[i, j]\n    return lt.zeros(X.shape[0]) + s", "s",
     "other than as a running sum"),
    ("out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0]):\n"
     "        if X[i, 0] > 0:\n            out[i] = out[i] + 1.0\n    return out", "out",
     "is read in the loop"),
    ("out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0] - 1):\n"
     "        if X[i, 0] > 0:\n            out[i] = 1.0\n        else:\n"
     "            out[i + 1] = 2.0\n    return out", "out", "assigned other than at [i"),
    ("out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0]):\n"
     "        if X[i, 0] > 0:\n            out = lt.ones(X.shape[0])\n    return out", "out",
     "assigned other than at [i"),
    ("s = 1.0\n    for i in lt.prange(X.shape[0]):\n        if X[i, 0] > 0:\n"
     "            s = s + X[i, 1]\n        else:\n            s = s * X[i, 1]\n"
     "    return lt.zeros(X.shape[0]) + s", "s", "other than as a running sum"),
    ("s = 1.0\n    for i in lt.prange(X.shape[0]):\n        if X[i, 0] > 0:\n"
     "            s = X[i, 1]\n    return lt.zeros(X.shape[0]) + s", "s",
     "other than as a running sum"),
    ("s = 1.0\n    out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0]):\n"
     "        if X[i, 0] > 0:\n            s = s + X[i, 1]\n            out[i] = s\n"
     "    return out", "s", "other than as a running sum"),
    ("out = lt.zeros(X.shape[0])\n    for i in lt.prange(X.shape[0]):\n"
     "        out = out * 2.0\n    return out", "out", "assigned other than at [i"),
])
def test_loops_whose_iterations_depend_on_each_other_are_refused(body, name, why):
    msg = _trace_error("@lt.kernel(parallel=True)\ndef k(X: lt.f64['n', 'd']) -> lt.f64['n']:\n"
                       "    " + body + "\n")
    assert msg is not None and "prange loop" in msg and repr(name) in msg and why in msg, msg
    assert "prange_case" in msg or ".py:" in msg  # names the kernel's file:line


def test_prange_outside_a_kernel_is_range():
    assert list(lt.prange(2, 9, 3)) == [2, 5, 8]
    msg = _trace_error("@lt.kernel\ndef k(X: lt.f64['n', 'd']) -> lt.f64['n']:\n"
                       "    r = lt.prange(3)\n    return X[:, 0]\n")
    assert msg is not None and "prange() is only supported as the iterable" in msg


def test_the_flag_survives_passes_and_is_dropped_by_autodiff():
    X = np.ones((3, 2))
    loops = [e for e in lse_par.optimized_ir.eqns if e.prim is P.loop_p]
    assert [e.params.get("parallel") for e in loops] == [True]
    assert P.prange_problem(loops[0].params["body"], loops[0].params["n_carry"]) is None
    lse_par(X)
