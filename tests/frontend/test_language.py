"""The kernel language end to end: compiled vs the interpreter vs NumPy."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import lattice as lt
from conftest import assert_same, run_both

SCALE = 2.5  # a global constant a kernel reads (folded at compile time)


# the README/demo kernels, tested here against NumPy
from lattice.demo import best_match, dot, dot_loop, row_norms  # noqa: E402


sizes = st.integers(0, 40)


def _rand(rng, shape, dtype=np.float64):
    return rng.standard_normal(shape).astype(dtype)


@given(n=sizes, seed=st.integers(0, 2**32 - 1))
def test_dot_matches_numpy(n, seed):
    rng = np.random.default_rng(seed)
    a, b = _rand(rng, n, np.float32), _rand(rng, n, np.float32)
    got = run_both(dot, a, b, rtol=1e-5, atol=1e-5)
    assert isinstance(got, np.float32)
    np.testing.assert_allclose(got, np.dot(a.astype(np.float64), b), rtol=1e-4, atol=1e-4)


@given(n=st.integers(1, 60), d=st.integers(1, 20), seed=st.integers(0, 2**32 - 1))
def test_best_match_matches_numpy(n, d, seed):
    rng = np.random.default_rng(seed)
    E, q = _rand(rng, (n, d), np.float32), _rand(rng, d, np.float32)
    scores = E.astype(np.float64) @ q
    top = np.sort(scores)[-2:]
    if n > 1 and top[1] - top[0] < 1e-4:
        return  # a near tie: float32 rounding may legitimately pick either
    assert run_both(best_match, E, q) == np.argmax(scores)


@given(n=sizes, seed=st.integers(0, 2**32 - 1))
def test_dot_loop(n, seed):
    rng = np.random.default_rng(seed)
    a, b = _rand(rng, n), _rand(rng, n)
    np.testing.assert_allclose(run_both(dot_loop, a, b), np.dot(a, b), rtol=1e-12, atol=1e-12)


@given(n=sizes, d=sizes, seed=st.integers(0, 2**32 - 1))
def test_row_norms(n, d, seed):
    X = _rand(np.random.default_rng(seed), (n, d))
    np.testing.assert_allclose(run_both(row_norms, X), np.linalg.norm(X, axis=1), rtol=1e-12)


def test_layouts_strided_fortran_negative():
    rng = np.random.default_rng(0)
    X = _rand(rng, (30, 12))
    for view in (X, np.asfortranarray(X), X[::2], X[:, ::3], X[::-1], X[::-2, ::-1], X[:0]):
        np.testing.assert_allclose(run_both(row_norms, view), np.linalg.norm(view, axis=1),
                                   rtol=1e-12)
    a = rng.standard_normal(50).astype(np.float32)
    np.testing.assert_allclose(dot(a[::-3], a[1::3][::-1][:17]),
                               np.dot(a[::-3].astype(np.float64), a[1::3][::-1][:17]), rtol=1e-5)


# ---------------------------------------------------------------- arithmetic and promotion
@lt.kernel
def mixed(a: lt.f32["n"], k: lt.i32["n"], s: lt.f64):
    return a * 2.0, a + k, k / 2, k // 3, k % 3, a ** 2, -k, abs(k), a > 0.5, s * a


def test_promotion_follows_numpy():
    rng = np.random.default_rng(1)
    a = rng.standard_normal(9).astype(np.float32)
    k = rng.integers(-7, 7, 9).astype(np.int32)
    s = 1.5
    want = (a * 2.0, a + k, k / 2, k // 3, k % 3, a ** 2, -k, np.abs(k), a > 0.5,
            np.float64(s) * a)
    got = run_both(mixed, a, k, s, rtol=1e-6)
    assert_same(got, want, rtol=1e-6)


@lt.kernel
def unary_math(x: lt.f64["n"]):
    return (lt.exp(x), lt.log(lt.abs(x) + 1), lt.log1p(lt.abs(x)), lt.expm1(x),
            lt.sqrt(lt.abs(x)), lt.tanh(x), lt.sigmoid(x), lt.softplus(x), lt.abs(x),
            lt.maximum(x, 0.0), lt.minimum(x, 0.0), lt.logaddexp(x, 1.0), lt.where(x > 0, x, 0.0))


def test_unary_and_binary_math():
    x = np.linspace(-30, 30, 41)
    sig = 1 / (1 + np.exp(-x))
    want = (np.exp(x), np.log(np.abs(x) + 1), np.log1p(np.abs(x)), np.expm1(x),
            np.sqrt(np.abs(x)), np.tanh(x), sig, np.logaddexp(0, x), np.abs(x),
            np.maximum(x, 0), np.minimum(x, 0), np.logaddexp(x, 1.0), np.where(x > 0, x, 0.0))
    assert_same(run_both(unary_math, x, rtol=1e-13), want, rtol=1e-13)


def test_stable_functions_at_extremes():
    x = np.array([-1e3, -745.0, -50.0, 0.0, 50.0, 745.0, 1e3])
    out = run_both(unary_math, x)
    for name, v in zip(("sigmoid", "softplus", "logaddexp"), (out[6], out[7], out[11])):
        assert np.all(np.isfinite(v)), name
    np.testing.assert_allclose(out[7], np.logaddexp(0, x), rtol=1e-15)


# ---------------------------------------------------------------- broadcasting and reductions
@lt.kernel
def reductions(X: lt.f64["n", "d"], v: lt.f64["d"]):
    Y = X * v - 1.0
    return (lt.sum(Y, axis=0), lt.sum(Y, axis=1), lt.mean(Y), Y.mean(axis=0), lt.max(Y, axis=1),
            lt.min(Y, axis=0), lt.argmax(Y, axis=1), lt.argmin(Y, axis=0), lt.argmax(Y), Y.sum())


@given(n=st.integers(1, 12), d=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_reductions_with_axes(n, d, seed):
    rng = np.random.default_rng(seed)
    X, v = _rand(rng, (n, d)), _rand(rng, d)
    Y = X * v - 1.0
    want = (Y.sum(0), Y.sum(1), Y.mean(), Y.mean(0), Y.max(1), Y.min(0), Y.argmax(1),
            Y.argmin(0), np.int64(Y.argmax()), Y.sum())
    assert_same(run_both(reductions, X, v, rtol=1e-12), want, rtol=1e-12, atol=1e-13)


@lt.kernel
def linalg(A: lt.f64["n", "k"], B: lt.f64["k", "m"], x: lt.f64["k"], y: lt.f64["n"]):
    return A @ B, A @ x, y @ A, x @ x, A.T @ y, lt.dot(A, x), B.T


@given(n=st.integers(0, 9), k=st.integers(0, 9), m=st.integers(0, 9), seed=st.integers(0, 99))
def test_matmul_variants(n, k, m, seed):
    rng = np.random.default_rng(seed)
    A, B, x, y = _rand(rng, (n, k)), _rand(rng, (k, m)), _rand(rng, k), _rand(rng, n)
    want = (A @ B, A @ x, y @ A, np.float64(x @ x), A.T @ y, A @ x, B.T.copy())
    assert_same(run_both(linalg, A, B, x, y), want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- indexing and stores
@lt.kernel
def diffs(x: lt.f64["n"], M: lt.f64["n", "d"]):
    d = x[1:] - x[:-1]
    return d, M[0], M[:, 1], M[-1, -1], lt.sum(x[::2]), M[1:, :2]


def test_slices_and_integer_indexing():
    rng = np.random.default_rng(3)
    x, M = _rand(rng, 7), _rand(rng, (7, 4))
    want = (x[1:] - x[:-1], M[0], M[:, 1], M[-1, -1], x[::2].sum(), M[1:, :2])
    assert_same(run_both(diffs, x, M), want)


@lt.kernel
def _tails(x: lt.f64["n"]):
    return x[1:] - x[:-1], x[:-2] * 2.0


@pytest.mark.parametrize("n", [0, 1, 2])
def test_short_arrays_give_empty_slices(n):
    """x[1:] - x[:-1] of an empty x, x[:-2] of a shorter one: a size below 0 is an empty
    slice, as NumPy clips."""
    x = np.arange(float(n))
    for run in (_tails, _tails.interpret):
        got = run(x)
        np.testing.assert_array_equal(got[0], x[1:] - x[:-1])
        np.testing.assert_array_equal(got[1], x[:-2] * 2.0)


@lt.kernel
def stores(X: lt.f64["n", "d"], t: lt.f64):
    out = lt.zeros((X.shape[0], X.shape[1]))
    counts = lt.zeros(X.shape[1], dtype=lt.i64)
    for i in range(X.shape[0]):
        out[i] = X[i] * 2.0
        out[i, 0] += 1.0
        for j in range(X.shape[1]):
            if X[i, j] > t:
                counts[j] += 1
    before = out
    out2 = lt.copy(out)
    out2[0, 0] = -100.0
    return out2, counts, before


def test_stores_in_loops_and_value_semantics():
    rng = np.random.default_rng(4)
    X = _rand(rng, (6, 5))
    out = X * 2.0
    out[:, 0] += 1.0
    out2 = out.copy()
    out2[0, 0] = -100.0
    counts = (X > 0.1).sum(0).astype(np.int64)
    assert_same(run_both(stores, X, 0.1), (out2, counts, out))


@lt.kernel
def loop_forms(n: lt.i64, x: lt.f64["m"]):
    a = 0
    for i in range(n):
        a += i
    b = 0
    for i in range(10, n, -3):
        b = b * 2 + i
    c = 0.0
    for i in range(2, x.shape[0] - 1, 2):
        c += x[i]
    return a, b, c


@pytest.mark.parametrize("n", [-3, 0, 1, 7, 23])
def test_range_forms(n):
    x = np.arange(11.0)
    b = 0
    for i in range(10, n, -3):
        b = b * 2 + i
    want = (np.int64(sum(range(n))), np.int64(b), np.float64(sum(x[2:10:2])))
    assert_same(run_both(loop_forms, n, x), want)


@lt.kernel
def branches(x: lt.f64["n"], t: lt.f64):
    pos = 0.0
    neg = 0
    for i in range(x.shape[0]):
        v = x[i]
        if v > t:
            pos += v
        elif v < -t:
            neg += 1
        else:
            pos = pos * 1.0
    flag = 1 if pos > 2.0 else 0
    big = 3.0 if SCALE > 2 else 0.0  # a static condition: folded
    return pos, neg, flag, big


@given(n=sizes, seed=st.integers(0, 2**32 - 1))
def test_traced_branches(n, seed):
    x = _rand(np.random.default_rng(seed), n)
    t = 0.3
    pos = float(x[x > t].sum())
    neg = int(((x < -t)).sum())
    want = (np.float64(pos), np.int64(neg), np.int64(1 if pos > 2.0 else 0), np.float64(3.0))
    assert_same(run_both(branches, x, t), want, rtol=1e-12)


@lt.kernel
def tensor_carry(X: lt.f64["n", "d"]):
    acc = lt.zeros(X.shape[1])
    for i in range(X.shape[0]):
        acc = acc + X[i] * SCALE
    return acc


def test_tensor_loop_carry_and_global_constant():
    X = _rand(np.random.default_rng(5), (13, 4))
    assert_same(run_both(tensor_carry, X), (X * SCALE).sum(0), rtol=1e-12)


def make_scaled(factor):
    @lt.kernel
    def scaled(x: lt.f64["n"]):
        return x * factor
    return scaled


def test_closure_constants_fold():
    k = make_scaled(3.0)
    x = np.arange(4.0)
    assert_same(run_both(k, x), x * 3.0)
    assert "3.0" in k.inspect_ir(x)


@lt.kernel
def sq_norm(v: lt.f64["d"]) -> lt.f64:
    return lt.sum(v * v)


@lt.kernel
def calls_kernel(X: lt.f64["n", "d"]):
    out = lt.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = sq_norm(X[i])
    return out


def test_kernel_calls_are_inlined():
    X = _rand(np.random.default_rng(6), (5, 3))
    assert_same(run_both(calls_kernel, X), (X * X).sum(1), rtol=1e-12)
    # the callee's body (a fused sum of squares) appears inside the caller's loop
    text = calls_kernel.inspect_ir(X).split("# after passes")[1]
    assert "loop[" in text and "reduce='sum'" in text


@lt.kernel
def inferred(a: lt.f64["n"], k: lt.i64):
    return a[k], k * 2, a.shape[0]


def test_inferred_return_types_and_negative_index():
    a = np.arange(5.0)
    assert_same(run_both(inferred, a, -1), (np.float64(4.0), np.int64(-2), np.int64(5)))


@lt.kernel
def creation(n: lt.i64, x: lt.f32["m"]):
    return lt.full((2, 3), 1.5), lt.ones(3, lt.i32), lt.arange(n), lt.zeros_like(x), x.astype(lt.f64)


def test_creation_ops():
    x = np.arange(4, dtype=np.float32)
    # lt.arange(n) of an int argument n has the size n (the argument's value)
    got = run_both(creation, 4, x)
    assert_same(got, (np.full((2, 3), 1.5), np.ones(3, np.int32), np.arange(4),
                      np.zeros_like(x), x.astype(np.float64)))


# ---------------------------------------------------------------- errors
def test_wrong_dtype_names_argument():
    with pytest.raises(TypeError, match=r"argument 'a' of kernel 'dot'.*float32.*float64"):
        dot(np.zeros(3), np.zeros(3, np.float32))


def test_wrong_rank_names_argument():
    with pytest.raises(TypeError, match=r"argument 'E'.*2-D"):
        best_match(np.zeros(3, np.float32), np.zeros(3, np.float32))


def test_dim_mismatch_names_both_arguments():
    with pytest.raises(ValueError, match=r"dim 'n' is 3 in argument 'a' but 4 in argument 'b'"):
        dot(np.zeros(3, np.float32), np.zeros(4, np.float32))


def test_wrong_arg_count_and_scalars():
    with pytest.raises(TypeError, match="takes 2 arguments"):
        dot(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="argument 'k'"):
        inferred(np.zeros(3), 1.5)
    with pytest.raises(TypeError, match="object"):
        dot(np.array([object()] * 3), np.zeros(3, np.float32))


def test_lists_are_accepted():
    assert dot_loop([1.0, 2.0], [3, 4]) == 11.0


def _error_of(fn, *args):
    with pytest.raises(lt.CompileError) as info:
        lt.kernel(fn)(*args)
    return str(info.value)


def _line_of(fn, text):
    import inspect
    lines, first = inspect.getsourcelines(fn)
    return first + next(k for k, l in enumerate(lines) if text in l)


def test_compile_errors_name_file_and_line():
    def uses_try(x: lt.f64["n"]):
        try:
            x = x + 1.0
        finally:
            pass
        return x

    msg = _error_of(uses_try, np.zeros(2))
    assert "unsupported syntax: try statement" in msg
    assert f"test_language.py:{_line_of(uses_try, 'try:')}" in msg

    def shape_mismatch(a: lt.f64["n"], b: lt.f64["m"]):
        return a + b

    msg = _error_of(shape_mismatch, np.zeros(2), np.zeros(2))
    assert "do not broadcast" in msg and f":{_line_of(shape_mismatch, 'a + b')}" in msg

    def store_into_a_copy(a: lt.f64["n"], idx: lt.i64["k"]):
        a[idx][0] = 1.0  # NumPy stores into a copy and discards it

    msg = _error_of(store_into_a_copy, np.zeros(2), np.zeros(1, np.int64))
    assert "is a copy" in msg and f":{_line_of(store_into_a_copy, 'a[idx][0] = 1.0')}" in msg

    def no_annotation(a):
        return a

    assert "needs a type annotation" in _error_of(no_annotation, np.zeros(2))

    def undefined_after_loop(a: lt.f64["n"]):
        for i in range(3):
            t = a[i]
        return t

    assert "not defined" in _error_of(undefined_after_loop, np.zeros(4))


def test_disable_jit_env_runs_interpreter(tmp_path):
    import subprocess
    import sys
    code = (
        "import numpy as np, lattice as lt, lattice.codegen.compiled as c\n"
        "c.compile_func = None  # any attempt to compile would fail\n"
        "@lt.kernel\n"
        "def f(a: lt.f64['n']):\n"
        "    return lt.sum(a * a)\n"
        "print(f(np.arange(4.0)))\n")
    script = tmp_path / "k.py"
    script.write_text(code)
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, LATTICE_DISABLE_JIT="1",
               PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "14.0"


@lt.kernel(boundscheck=True)
def checked_get(x: lt.f64["n"], i: lt.i64) -> lt.f64:
    return x[i] * 2.0


def test_boundscheck_raises_index_error_naming_the_line():
    x = np.arange(5.0)
    assert checked_get(x, 4) == 8.0 and checked_get(x, -5) == 0.0
    line = _line_of(checked_get.fn, "return x[i]")
    for bad in (5, -6, 1 << 40):
        with pytest.raises(IndexError, match=rf"test_language.py:{line}"):
            checked_get(x, bad)
    with pytest.raises(IndexError):
        checked_get.interpret(x, 5)


@lt.kernel
def dyn_slices(x: lt.f64["n"], k: lt.i64):
    a = x[:k] * x[:k]            # equal traced slices share one run-time size
    out = lt.zeros(x.shape[0])
    out[:k] = x[:k] * 2.0
    out[1:k + 1] = x[:k] + 1.0   # sizes only known to agree at run time: checked then
    return lt.sum(a), out


@pytest.mark.parametrize("k", [0, 1, 3, 6])
def test_traced_slices(k):
    x = np.arange(1.0, 8.0)
    out = np.zeros(7)
    out[:k] = x[:k] * 2.0
    out[1:k + 1] = x[:k] + 1.0
    assert_same(run_both(dyn_slices, x, k), (np.float64((x[:k] ** 2).sum()), out))


def test_traced_slices_that_disagree_at_run_time_raise():
    with pytest.raises(ValueError):
        dyn_slices(np.arange(1.0, 8.0), 7)  # out[1:8] has 6 elements, x[:7] has 7
    with pytest.raises(ValueError):
        dyn_slices.interpret(np.arange(1.0, 8.0), 7)


@lt.kernel
def newaxis_forms(X: lt.f64["n", "d"], a: lt.f64["n"], b: lt.f64["d"]):
    m = lt.max(X, axis=1)
    e = lt.exp(X - m[:, None])
    softmax = e / lt.sum(e, axis=1)[:, None]
    lse = m + lt.log(lt.sum(e, axis=1))
    outer = a[:, None] * b[None, :]
    centred = X - lt.mean(X, axis=0)[None, :]
    return softmax, lse, outer, centred, a[..., None], X[0][None]


@given(n=st.integers(1, 9), d=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_newaxis_softmax_outer_centring(n, d, seed):
    rng = np.random.default_rng(seed)
    X, a, b = _rand(rng, (n, d)) * 3, _rand(rng, n), _rand(rng, d)
    m = X.max(1)
    e = np.exp(X - m[:, None])
    want = (e / e.sum(1)[:, None], m + np.log(e.sum(1)), a[:, None] * b[None, :],
            X - X.mean(0)[None, :], a[..., None], X[0][None])
    assert_same(run_both(newaxis_forms, X, a, b), want, rtol=1e-12, atol=1e-15)


def test_newaxis_in_store_target_is_an_error():
    def bad(x: lt.f64["n"]):
        y = lt.zeros((x.shape[0], 1))
        y[:, None] = x
        return y
    assert "cannot appear in the target" in _error_of(bad, np.zeros(3))


def _norm_via_helper(v):
    return lt.sqrt(sq_norm(v))  # a plain Python function calling a kernel with traced values


@lt.kernel
def helper_calls_kernel(X: lt.f64["n", "d"]):
    out = lt.empty(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = _norm_via_helper(X[i])
    return out


def test_python_helper_may_call_a_kernel():
    X = _rand(np.random.default_rng(8), (4, 3))
    assert_same(run_both(helper_calls_kernel, X), np.linalg.norm(X, axis=1), rtol=1e-12)


def test_unary_math_on_constants_folds_eagerly():
    assert lt.exp(1.0) == np.exp(1.0) and isinstance(lt.exp(1.0), np.float64)
    assert lt.log1p(np.float32(0.5)).dtype == np.float32
    np.testing.assert_allclose(lt.softplus(3), np.logaddexp(0, 3.0), rtol=1e-15)


@lt.kernel
def numpy_scalars_are_strong(x: lt.f32["n"]):
    return x * np.float64(2.0), x * 2.0, x + np.int32(1), x * lt.sigmoid(0.5)


def test_numpy_scalars_keep_their_dtype_in_promotion():
    """NEP 50: Python numbers are weak, NumPy scalars are not (found by the fuzzer)."""
    x = np.arange(3, dtype=np.float32)
    want = (x * np.float64(2.0), x * 2.0, x + np.int32(1), x * np.float64(1 / (1 + np.exp(-0.5))))
    assert_same(run_both(numpy_scalars_are_strong, x), want, rtol=1e-6)


def _numpy_store_after_call(a):
    w = a[:, None] - a
    h = w  # what _pass_through returns
    w[0] = a
    return h


@lt.kernel
def _pass_through(x: lt.f64["n"], y: lt.f64["n", "n"]):
    v = y
    return v


def test_a_called_kernel_returning_its_argument_returns_that_array():
    """Fuzzer seed 700207: ``h = k(a, w)`` where k returns w itself makes ``h`` and ``w`` one
    array, as in Python; a store through ``w`` is seen through ``h`` (not a silent copy that
    keeps the old values in ``h``)."""
    def store_after_call(a: lt.f64["n"]):
        w = a[:, None] - a
        h = _pass_through(a, w)
        w[0] = a
        return h

    a = np.arange(3.0) + 0.5
    np.testing.assert_array_equal(lt.kernel(store_after_call)(a), _numpy_store_after_call(a))

    @lt.kernel
    def read_only_after_call(a: lt.f64["n"]):
        h = _pass_through(a, a[:, None] + a)  # a fresh array: no alias of a named array
        return h

    a = np.arange(3.0)
    np.testing.assert_array_equal(read_only_after_call(a), a[:, None] + a)


# ---- dtypes called as conversions: lt.f32(x) as np.float32(x)
@lt.kernel
def f32_running_sum(x: lt.f32["n"]) -> lt.f32:
    s = lt.f32(0.0)  # an f32 start: the carried sum stays f32
    for i in range(x.shape[0]):
        s = s + x[i]
    return s


@lt.kernel
def dtype_calls(x: lt.f64["n"], t: lt.f64) -> (lt.f32["n"], lt.i64, lt.i32, lt.bool_):
    return lt.f32(x) * 2, lt.i64(t) + lt.i64(2.7), lt.i32(lt.sum(x)), lt.bool_(t)


def test_dtypes_convert_when_called():
    x = np.array([0.1, 0.2, 0.3, 0.4, 1.5], np.float32)
    got = run_both(f32_running_sum, x, rtol=1e-6)
    assert got.dtype == np.float32 and abs(got - np.sum(x, dtype=np.float32)) < 1e-6
    assert "f64" not in f32_running_sum.inspect_ir(x)
    xd = np.array([1.25, -2.5, 3.75])
    got = run_both(dtype_calls, xd, -3.9)
    assert_same(got, (np.float32(xd) * np.float32(2), np.int64(-3) + np.int64(2),
                      np.int32(np.sum(xd)), np.bool_(-3.9)))
    # outside a kernel: NumPy's conversions
    assert type(lt.f32(1.5)) is np.float32 and lt.i64(2.7) == 2 and lt.bool_(0) is np.False_
    assert lt.f64(np.arange(3, dtype=np.int32)).dtype == np.float64
