"""Kernels that write into their array arguments (``out[i] = ...``, ``y[i] += ...``, slice,
mask and index-array stores, ``np.add.at``, ``y += x``), with or without a return.

The oracle is the same Python function run by NumPy on copies of the arguments: after a call,
the result and every argument must agree with it, for the compiled kernel and for the
reference interpreter.  Bad calls (read-only, overlapping, converted or mistyped arrays) must
raise an exception naming the argument."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lattice as lt


def _copies(args):
    return [a.copy() if isinstance(a, np.ndarray) else a for a in args]


def _same(got, want, what):
    if want is None:
        assert got is None, what
        return
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), what
        for g, w in zip(got, want):
            _same(g, w, what)
        return
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape and g.dtype == w.dtype, f"{what}: {g.shape} {g.dtype} vs {w.shape} {w.dtype}"
    np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=what)


def check(fn, *args, reference=None):
    """Compile ``fn``; its compiled and interpreted calls must leave the result and the
    arguments as ``reference`` (by default ``fn`` itself, run by NumPy) does."""
    k = lt.kernel(fn)
    want_args = _copies(args)
    want = (reference or fn)(*want_args)
    for how, call in (("compiled", k), ("interpreted", k.interpret)):
        got_args = _copies(args)
        got = call(*got_args)
        _same(got, want, f"{how} result")
        for j, (g, w) in enumerate(zip(got_args, want_args)):
            if isinstance(w, np.ndarray):
                _same(g, w, f"{how}: argument {j}")
    return k


RNG = np.random.default_rng(7)
X = RNG.standard_normal(9)
Y = RNG.standard_normal(9)
M = RNG.standard_normal((5, 6))


# ---------------------------------------------------------------- the forms of a write
def element_store(x: lt.f64["n"], out: lt.f64["n"]):
    for i in range(x.shape[0]):
        out[i] = 2.0 * x[i] + 1.0


def slice_store(x: lt.f64["n"], out: lt.f64["n"]):
    out[1:] = x[:-1]
    out[0] = 0.0


def saxpy(a: lt.f64, x: lt.f64["n"], y: lt.f64["n"]):
    for i in range(x.shape[0]):
        y[i] += a * x[i]


def slice_update(x: lt.f64["n"], y: lt.f64["n"]):
    y[1:4] += x[:3]
    y[-2:] *= 3.0


def whole_array_operators(x: lt.f64["n"], y: lt.f64["n"]):
    y += x
    y *= 2.0
    y -= 1.0


def row_store(M: lt.f64["n", "m"], v: lt.f64["m"]):
    M[0] = v
    M[2, 1:3] = 0.0
    M[:, 0] += 1.0


def mask_store(x: lt.f64["n"]):
    x[x > 0.5] = 0.5


def prefix_in_place(x: lt.f64["n"]):
    for i in range(1, x.shape[0]):
        x[i] += x[i - 1]


@pytest.mark.parametrize("fn, args", [
    (element_store, (X, np.zeros(9))),
    (slice_store, (X, np.zeros(9))),
    (saxpy, (1.5, X, Y)),
    (slice_update, (X, Y)),
    (whole_array_operators, (X, Y)),
    (row_store, (M, X[:6])),
    (mask_store, (X,)),
    (prefix_in_place, (X,)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_a_write_lands_in_the_argument(fn, args):
    check(fn, *args)


def index_array_update(idx: lt.i64["k"], v: lt.f64["k"], h: lt.f64["n"]):
    h[idx] += v


def add_at(idx: lt.i64["k"], v: lt.f64["k"], h: lt.f64["n"]):
    np.add.at(h, idx, v)
    np.subtract.at(h, idx[:2], 1.0)


def _add_at_reference(idx, v, h):
    np.add.at(h, idx, v)


def test_index_array_updates_add_every_repeat():
    """``h[idx] += v`` adds every repeat of an index, as np.add.at (NumPy's own ``+=`` would
    add a repeated index once: this is the documented difference)."""
    idx = np.array([0, 3, 3, 1, 3])
    v = np.arange(1.0, 6.0)
    check(index_array_update, idx, v, np.zeros(4), reference=_add_at_reference)
    check(add_at, idx, v, np.ones(4))


def index_array_store(idx: lt.i64["k"], x: lt.f64["n"]):
    x[idx] = -1.0


def test_index_array_store():
    check(index_array_store, np.array([4, 0, 2]), X)


# ---------------------------------------------------------------- under control flow
def store_in_while(x: lt.f64["n"]):
    i = 0
    while i < x.shape[0] and x[i] < 1.0:
        x[i] = -x[i]
        i += 1


def store_in_if(t: lt.f64, x: lt.f64["n"], y: lt.f64["n"]):
    for i in range(x.shape[0]):
        if x[i] > t:
            y[i] = x[i]
        else:
            y[i] -= 1.0


def store_after_break(x: lt.f64["n"], out: lt.f64["n"]):
    for i in range(x.shape[0]):
        if x[i] > 1.0:
            out[0] = x[i]
            break
        out[i] = x[i] * 2.0


def nested_loops(A: lt.f64["n", "m"], C: lt.f64["n", "n"]):
    for i in range(A.shape[0]):
        for j in range(i + 1):
            for k in range(A.shape[1]):
                C[i, j] += A[i, k] * A[j, k]


def early_return(x: lt.f64["n"]) -> lt.i64:
    for i in range(x.shape[0]):
        if x[i] > 0.5:
            x[i] = 0.0
            return i
        x[i] = 1.0
    return -1


@pytest.mark.parametrize("fn, args", [
    (store_in_while, (X,)),
    (store_in_if, (0.0, X, Y)),
    (store_after_break, (X, np.zeros(9))),
    (nested_loops, (M, np.ones((5, 5)))),
    (early_return, (X,)),
    (early_return, (-np.abs(X),)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_writes_under_control_flow(fn, args):
    check(fn, *args)


# ---------------------------------------------------------------- results beside writes
def result_and_write(x: lt.f64["n"], out: lt.f64["n"]) -> lt.f64:
    out[:] = x * x
    return np.sum(out)


def two_results_two_writes(x: lt.f64["n"], a: lt.f64["n"], b: lt.f64["n"]):
    a[0] = 1.0
    b[1:] = x[1:]
    return np.sum(a), b[0]


def returns_the_argument(x: lt.f64["n"]):
    x[0] = 5.0
    return x


def test_results_beside_writes():
    check(result_and_write, X, np.zeros(9))
    check(two_results_two_writes, X, Y.copy(), np.zeros(9))
    k = check(returns_the_argument, X)
    x = X.copy()
    assert k(x) is x  # as in NumPy: the very array passed in, updated


# ---------------------------------------------------------------- names of one array
def alias_of_argument(x: lt.f64["n"], v: lt.f64):
    a = x
    a[0] = v


def alias_in_loop(x: lt.f64["n"], y: lt.f64["n"]):
    a = y
    for i in range(x.shape[0]):
        a[i] = x[i] + 1.0


def aug_on_aliased_local(a: lt.f64["n"]):
    a = a.copy()
    b = a
    a += 1.0
    return b


def aliases_across_if(t: lt.f64, x: lt.f64["n"], y: lt.f64["n"]):
    a = y
    if t > 0.0:
        a[0] = t
    else:
        a = x * 2.0
        a[1] = 7.0
    return a


def rebound_alias_is_not_written(x: lt.f64["n"], y: lt.f64["n"]):
    prev = y
    for i in range(3):
        y = y + x
    return prev, y


@pytest.mark.parametrize("fn, args", [
    (alias_of_argument, (X, 3.0)),
    (alias_in_loop, (X, Y)),
    (aug_on_aliased_local, (X,)),
    (aliases_across_if, (1.0, X, Y)),
    (aliases_across_if, (-1.0, X, Y)),
    (rebound_alias_is_not_written, (X, Y)),
], ids=lambda v: getattr(v, "__name__", ""))
def test_names_of_one_array_see_each_others_writes(fn, args):
    check(fn, *args)


def store_and_rebind_in_loop(x: lt.f64["n"], y: lt.f64["n"]):
    a = y
    for i in range(x.shape[0]):
        a[i] = x[i]
        a = a * 2.0
    return a


def test_a_loop_that_stores_into_a_shared_array_and_rebinds_it_is_refused():
    with pytest.raises(lt.CompileError) as info:
        lt.kernel(store_and_rebind_in_loop)(X, Y.copy())
    msg = str(info.value)
    assert "'a'" in msg and "test_argument_writes.py:" in msg


def store_after_path_dependent_alias(t: lt.f64, x: lt.f64["n"], y: lt.f64["n"]):
    a = y
    if t > 0.0:
        a = x * 2.0
    a[1] = 7.0  # NumPy: into y when t <= 0, into the new array otherwise


def test_a_store_through_names_aliased_on_one_path_only_is_refused():
    with pytest.raises(lt.CompileError) as info:
        lt.kernel(store_after_path_dependent_alias)(1.0, X, Y.copy())
    msg = str(info.value)
    assert "'a', 'y'" in msg and "one path" in msg
    assert msg.count("test_argument_writes.py:") == 2  # the if, and the store


def test_in_place_operator_errors():
    # (v += 1.0 on a view v = x[1:] updates x: tests/frontend/test_stores_through_views.py)
    def truncating(k: lt.i64["n"]):
        k += 1.5

    def grows(x: lt.f64["n"], M: lt.f64["m", "n"]):
        x += M

    for fn, args, words in ((truncating, (np.arange(3),), "truncated"),
                            (grows, (X.copy(), np.ones((2, 9))), "shape")):
        with pytest.raises(lt.CompileError) as info:
            lt.kernel(fn)(*args)
        assert words in str(info.value) and "test_argument_writes.py:" in str(info.value)


def test_scalars_are_rebound_not_written():
    def running(x: lt.f64["n"]) -> lt.f64:
        s = x[0]
        for i in range(1, x.shape[0]):
            s += x[i]
        return s

    check(running, X)


# ---------------------------------------------------------------- calls that cannot write
def test_read_only_written_argument_names_it():
    k = lt.kernel(saxpy)
    y = Y.copy()
    y.flags.writeable = False
    with pytest.raises(ValueError, match=r"argument 'y'.*read-only"):
        k(2.0, X, y)
    x = X.copy()
    x.flags.writeable = False  # a read-only argument the kernel only reads is fine
    y = Y.copy()
    k(2.0, x, y)
    np.testing.assert_allclose(y, Y + 2.0 * X)


def test_overlapping_arguments_are_refused():
    k = lt.kernel(saxpy)
    y = Y.copy()
    with pytest.raises(ValueError, match=r"'y' and 'x'.*share memory"):
        k(2.0, y, y)
    base = np.arange(10.0)
    with pytest.raises(ValueError, match="share memory"):
        k(2.0, base[:-1], base[1:])
    # interleaved views of one buffer share no element: allowed
    base = np.arange(10.0)
    want = base[1::2] + 2.0 * base[::2]
    k(2.0, base[::2], base[1::2])
    np.testing.assert_allclose(base[1::2], want)


def test_written_argument_must_not_be_converted():
    k = lt.kernel(saxpy)
    with pytest.raises(TypeError, match=r"argument 'y'.*float64"):
        k(2.0, X, Y.astype(np.float32))
    with pytest.raises(TypeError, match=r"argument 'y'.*NumPy array"):
        k(2.0, X, list(Y))


def test_strided_and_fortran_written_arguments_are_written_back():
    k = lt.kernel(saxpy)
    big = np.zeros(18)
    y = big[::2]
    k(2.0, X, y)
    np.testing.assert_allclose(big[::2], 2.0 * X)
    assert not big[1::2].any()

    k2 = lt.kernel(row_store)
    want = np.asfortranarray(M)
    row_store(want, X[:6])
    got = np.asfortranarray(M)
    k2(got, X[:6])
    np.testing.assert_allclose(got, want)
    reversed_view = M.copy()[::-1, ::-1]
    want = reversed_view.copy()
    row_store(want, X[:6])
    k2(reversed_view, X[:6])
    np.testing.assert_allclose(reversed_view, want)


def test_a_kernel_computing_nothing_is_refused():
    def nothing(x: lt.f64["n"]):
        y = x + 1.0

    with pytest.raises(lt.CompileError, match="returns nothing and writes into none"):
        lt.kernel(nothing)(X)


_saxpy_kernel = lt.kernel(saxpy)
_result_and_write_kernel = lt.kernel(result_and_write)


def calls_writing_kernels(x: lt.f64["n"], y: lt.f64["n"]):
    z = y.copy()
    w = z
    for t in range(2):
        _saxpy_kernel(0.5, x, z)  # writes z (and so w), a local array
    _saxpy_kernel(2.0, z, y)  # writes the caller's argument y
    s = _result_and_write_kernel(w, y)  # y = w * w; returns its sum
    return s, w


def _calls_writing_kernels_numpy(x, y):
    z = y.copy()
    for t in range(2):
        z += 0.5 * x
    y += 2.0 * z
    y[:] = z * z
    return np.sum(y), z


def test_a_writing_kernel_called_from_a_kernel_writes_the_callers_arrays():
    check(calls_writing_kernels, X, Y, reference=_calls_writing_kernels_numpy)


def test_calls_of_writing_kernels_that_cannot_write_are_refused():
    def twice(x: lt.f64["n"], y: lt.f64["n"]):
        _saxpy_kernel(2.0, y, y)

    def through_view(x: lt.f64["n"], y: lt.f64["n"]):
        v = y[1:]
        _saxpy_kernel(2.0, x[1:], v)

    def helper(x, y):
        _saxpy_kernel(2.0, x, y)

    def from_helper(x: lt.f64["n"], y: lt.f64["n"]):
        helper(x, y)

    for fn, words in ((twice, "same array"), (through_view, "view"),
                      (from_helper, "Python helper")):
        with pytest.raises(lt.CompileError, match=words):
            lt.kernel(fn)(X.copy(), Y.copy())


# ---------------------------------------------------------------- autodiff
def decay(x: lt.f64["n"], y: lt.f64["n"]) -> lt.f64:
    for i in range(x.shape[0]):
        y[i] = np.sin(x[i]) * y[i] + x[i] * x[i]
    return np.sum(y * x)


def _decay_outputs(x, y):
    """decay's outputs as NumPy computes them: (result, new y)."""
    y = y.copy()
    r = decay(x, y)
    return r, y


def _fd_jvp(f, primals, tangents, eps=1e-6):
    plus = f(*(p + eps * t for p, t in zip(primals, tangents)))
    minus = f(*(p - eps * t for p, t in zip(primals, tangents)))
    return tuple((np.asarray(a) - np.asarray(b)) / (2 * eps) for a, b in zip(plus, minus))


def test_jvp_and_vjp_see_the_new_contents_as_results():
    rng = np.random.default_rng(11)
    k = lt.kernel(decay)
    x, y = rng.standard_normal(6), rng.standard_normal(6)
    tx, ty = rng.standard_normal(6), rng.standard_normal(6)
    x0, y0 = x.copy(), y.copy()
    outs, touts = lt.jvp(k, (x, y), (tx, ty))
    np.testing.assert_array_equal(y, y0)  # the transforms write into no argument
    want = _decay_outputs(x, y)
    for got, w in zip(outs, want):
        np.testing.assert_allclose(got, w, rtol=1e-12)
    for got, w in zip(touts, _fd_jvp(_decay_outputs, (x, y), (tx, ty))):
        np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-8)

    outs_v, pullback = lt.vjp(k, x, y)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)
    for got, w in zip(outs_v, want):
        np.testing.assert_allclose(got, w, rtol=1e-12)
    c_r, c_y = rng.standard_normal(), rng.standard_normal(6)
    gx, gy = pullback(c_r, c_y)
    # <J t, c> = <t, J^T c>
    lhs = touts[0] * c_r + np.dot(touts[1], c_y)
    rhs = np.dot(tx, gx) + np.dot(ty, gy)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-10)


def test_grad_differentiates_the_returned_scalar():
    rng = np.random.default_rng(12)
    k = lt.kernel(decay)
    x, y = rng.standard_normal(5), rng.standard_normal(5)
    y0 = y.copy()
    gx, gy = lt.grad(k, argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(y, y0)
    eps = 1e-6
    for g, which in ((gx, 0), (gy, 1)):
        for i in range(5):
            e = np.zeros(5)
            e[i] = eps
            args_p = [x.copy(), y.copy()]
            args_m = [x.copy(), y.copy()]
            args_p[which] += e
            args_m[which] -= e
            fd = (decay(*args_p) - decay(*args_m)) / (2 * eps)
            np.testing.assert_allclose(g[i], fd, rtol=1e-6, atol=1e-8)


def test_grad_of_a_kernel_returning_nothing_names_the_argument():
    k = lt.kernel(saxpy)
    with pytest.raises(TypeError, match=r"returns nothing \(it writes into 'y'\)"):
        lt.grad(k, argnums=1)(2.0, X, Y.copy())


# ---------------------------------------------------------------- a stencil, random sizes
def jacobi_step(A: lt.f64["n"], B: lt.f64["n"]):
    for t in range(3):
        for i in range(1, A.shape[0] - 1):
            B[i] = (A[i - 1] + A[i] + A[i + 1]) / 3.0
        for i in range(1, A.shape[0] - 1):
            A[i] = (B[i - 1] + B[i] + B[i + 1]) / 3.0


@settings(max_examples=15, deadline=None)
@given(n=st.integers(3, 40), seed=st.integers(0, 2**16))
def test_stencil_updates_match_numpy(n, seed):
    rng = np.random.default_rng(seed)
    check(jacobi_step, rng.standard_normal(n), rng.standard_normal(n))


# ---------------------------------------------------------------- in place, in the caller's memory
@pytest.mark.parametrize("fn", [saxpy, whole_array_operators, store_in_while, prefix_in_place],
                         ids=lambda f: f.__name__)
def test_a_contiguous_written_argument_is_updated_in_its_own_memory(fn):
    """The stores go straight into the argument (through loops, whiles and ifs): the compiled
    code allocates nothing, and the interpreter agrees with the result."""
    k = lt.kernel(fn)
    args = {saxpy: (1.5, X, Y.copy()), whole_array_operators: (X, Y.copy()),
            store_in_while: (X.copy(),), prefix_in_place: (X.copy(),)}[fn]
    k(*_copies(args))
    assert "@malloc" not in k.inspect_llvm(*args)
    check(fn, *args)


def test_donated_results_that_sit_in_each_others_memory_are_moved_safely():
    """The codegen contract under the frontend: a donated result may end up in another
    donated param's memory (here: the new x is y's old contents and vice versa, a swap with
    no stores); copying one into place must not overwrite the other first."""
    from lattice.codegen.compiled import compile_func
    from lattice.ir.core import Func, Var
    from lattice.ir.types import Dim, TensorType, f64

    t = TensorType(f64, (Dim.named("n"),))
    x, y = Var(t), Var(t)
    swap = Func((x, y), (), (y, x), "swap")
    cf = compile_func(swap, layouts=("C", "C"), fastmath=False, boundscheck=True, name="swap",
                      donate={0: 0, 1: 1})
    a, b = X.copy(), Y.copy()
    new_a, new_b = cf(a, b)
    assert new_a is a and new_b is b
    np.testing.assert_array_equal(a, Y)
    np.testing.assert_array_equal(b, X)


def rows_into(X: lt.f64["n", "d"], out: lt.f64["n"]):
    for i in lt.prange(X.shape[0]):
        s = 0.0
        for j in range(X.shape[1]):
            s += X[i, j] * X[i, j]
        out[i] = s


def test_a_prange_loop_writes_the_argument_from_every_thread():
    X = np.random.default_rng(3).standard_normal((3000, 7))
    k = lt.kernel(rows_into, parallel=True)
    out = np.full(3000, np.nan)
    k(X, out)
    np.testing.assert_allclose(out, (X * X).sum(1), rtol=1e-12)
    assert "@malloc" not in k.inspect_llvm(X, out)
    check(rows_into, X[:50], np.zeros(50))


# ---------------------------------------------------------------- declared aliases
def shift_add(x: lt.f64["n"], y: lt.f64["n"]):
    for i in range(1, x.shape[0]):
        y[i] = x[i - 1] + y[i]


def test_declared_aliases_run_as_the_python_loop_on_one_array():
    """``aliases=[("x", "y")]``: passed one array, the kernel reads its own stores through
    the other name, as the Python loop on a NumPy array does (here a prefix sum)."""
    k = lt.kernel(shift_add, aliases=[("x", "y")])
    for n in (1, 2, 9, 40):
        v = np.random.default_rng(n).standard_normal(n)
        want = v.copy()
        shift_add(want, want)
        got = v.copy()
        k(got, got)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        same = v.copy()
        k.interpret(same, same)
        np.testing.assert_allclose(same, want, rtol=1e-12)
        view = v.copy()
        k(view, view[:])  # another view of the same memory and layout is the same array
        np.testing.assert_allclose(view, want, rtol=1e-12)
    np.testing.assert_allclose(np.cumsum(v), want, rtol=1e-12)
    assert "@malloc" not in k.inspect_llvm(got, got)


def test_declared_aliases_must_be_passed_one_array():
    k = lt.kernel(shift_add, aliases=[("x", "y")])
    with pytest.raises(ValueError, match=r"'x' and 'y'.*declared aliases"):
        k(X.copy(), Y.copy())
    base = np.arange(10.0)
    with pytest.raises(ValueError, match="declared aliases"):
        k(base[:-1], base[1:])
    with pytest.raises(TypeError, match="not an argument"):
        lt.kernel(shift_add, aliases=[("x", "z")])
    # without the declaration, one array for both is refused (see above), and the kernel
    # reads x as it was at the call
    plain = lt.kernel(shift_add)
    x, y = X.copy(), Y.copy()
    plain(x, y)
    np.testing.assert_allclose(y[1:], Y[1:] + X[:-1], rtol=1e-12)


def test_derivatives_of_a_kernel_with_aliases_are_refused():
    k = lt.kernel(shift_add, aliases=[("x", "y")])
    v = X.copy()
    with pytest.raises(TypeError, match="aliases"):
        lt.jvp(k, (v, v), (v, v))


# ---------------------------------------------------------------- the machine-code entry
def test_repeated_calls_through_the_fast_entry_keep_every_check():
    """After the first call, a kernel's calls go through its machine-code CPython entry; it
    writes in place and hands every call it does not accept to the checks above."""
    k = lt.kernel(saxpy)
    k2 = lt.kernel(result_and_write)
    for _ in range(3):
        y = Y.copy()
        assert k(1.5, X, y) is None
        np.testing.assert_allclose(y, Y + 1.5 * X, rtol=1e-12)
        out = np.zeros(9)
        np.testing.assert_allclose(k2(X, out), np.sum(X * X), rtol=1e-12)
        np.testing.assert_allclose(out, X * X, rtol=1e-12)
    assert type(k).__call__ is not type(k).__mro__[1].__call__  # the entry is installed
    y = Y.copy()
    y.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        k(1.5, X, y)
    y = Y.copy()
    with pytest.raises(ValueError, match="share memory"):
        k(1.5, y, y)
    base = np.arange(10.0)
    with pytest.raises(ValueError, match="share memory"):
        k(1.5, base[:-1], base[1:])
    with pytest.raises(TypeError, match="float64"):
        k(1.5, X, Y.astype(np.float32))
    empty = np.zeros(0)
    assert k(1.5, empty, np.zeros(0)) is None
    strided = np.zeros(18)
    k(1.0, X, strided[::2])
    np.testing.assert_allclose(strided[::2], X, rtol=1e-12)


# ---------------------------------------------------------------- in-place methods
def sort_and_fill(X: lt.f64["n", "m"], v: lt.f64["n"], t: lt.f64):
    X.sort(axis=1)
    for i in range(v.shape[0]):
        if X[i, 0] > t:
            v.sort()
    a = X[:, 0].copy()
    a.fill(t)
    v[:1] = a[:1]


def test_in_place_methods_update_the_array():
    rng = np.random.default_rng(5)
    for t in (-0.5, 5.0):
        check(sort_and_fill, rng.standard_normal((4, 6)), rng.standard_normal(4), t)
