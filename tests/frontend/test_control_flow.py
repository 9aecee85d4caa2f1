"""Control flow in kernels: ``while``, ``break``/``continue``, early ``return``, ``for`` over
arrays, ``enumerate``, ``zip``, ``reversed`` and negative-step ranges; automatic
differentiation through ``while`` loops.

Every kernel here is also a plain Python function (NumPy and ``math`` only), and that function
run on the same NumPy data is the oracle (``k.fn``); the compiled kernel is checked against
the interpreter as well.  Derivatives are checked against finite differences and, for
Newton's square root, against ``1 / (2 sqrt(a))``.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lattice as lt
from conftest import run_both


def check(k, *args, rtol=1e-12):
    """Compiled == interpreter == the plain Python function; returns the compiled result."""
    got = run_both(k, *args, rtol=rtol)
    want = k.fn(*(a.copy() if isinstance(a, np.ndarray) else a for a in args))
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=rtol)
    else:
        np.testing.assert_allclose(got, want, rtol=rtol)
    return got


def line_of(fn, text: str) -> int:
    lines, first = inspect.getsourcelines(fn)
    return first + next(k for k, line in enumerate(lines) if text in line)


def compile_error(fn, *args) -> str:
    with pytest.raises(lt.CompileError) as info:
        lt.kernel(fn)(*args)
    return str(info.value)


def assert_error_at(fn, args: tuple, message: str, at: str) -> None:
    """Compiling ``fn`` fails with ``message``, naming the line that contains ``at``."""
    msg = compile_error(fn, *args)
    assert message in msg, msg
    assert f"test_control_flow.py:{line_of(fn, at)}" in msg, msg


def central_difference(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros_like(x)
    for k in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[k] = eps
        g[k] = (f(x + e) - f(x - e)) / (2 * eps)
    return g


# --------------------------------------------------------------------------- while
@lt.kernel
def newton_sqrt(a: lt.f64) -> lt.f64:
    x = a
    while abs(x * x - a) > 1e-12 * a:
        x = 0.5 * (x + a / x)
    return x


@lt.kernel
def halvings(x: lt.f64, t: lt.f64) -> lt.i64:
    n = 0
    while x > t:
        x = x / 2
        n += 1
    return n


@lt.kernel
def shrink(x: lt.f64["n"], t: lt.f64) -> lt.f64:
    y = x * 1.0
    while np.sum(y * y) > t:
        y = y * 0.5 + np.sin(y) * 0.1
    return np.sum(y)


@lt.kernel(boundscheck=True)
def leading_positives(x: lt.f64["n"]) -> lt.i64:
    i = 0
    while i < len(x) and x[i] > 0:  # x[len(x)] is never read
        i += 1
    return i


@lt.kernel
def unrolled_while(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    k = 0
    while k < 3:  # known at compile time: unrolled
        s += x[k] * (k + 1)
        k += 1
    return s


@given(st.floats(1e-3, 1e6))
@settings(max_examples=25)
def test_newton_sqrt(a):
    got = check(newton_sqrt, a)
    assert got == pytest.approx(math.sqrt(a), rel=1e-12)


@given(st.floats(0.5, 1e5), st.floats(1e-3, 1e3))
@settings(max_examples=25)
def test_while_trip_count_depends_on_data(x, t):
    check(halvings, x, t)


def test_while_with_an_array_carry_and_no_trips():
    x = np.array([1.0, -2.0, 3.0])
    check(shrink, x, 0.5)
    check(shrink, x, 100.0)  # the condition is false at once: zero trips
    check(shrink, np.zeros(0), 0.0)


def test_short_circuit_and_in_a_while_condition():
    for x in (np.array([1.0, 2.0, 3.0]), np.array([1.0, -2.0, 3.0]), np.zeros(0),
              np.array([-1.0])):
        check(leading_positives, x)


def test_while_on_a_known_condition_unrolls():
    check(unrolled_while, np.arange(4.0))
    assert "= while[" not in unrolled_while.inspect_ir()


def test_endless_known_while_is_a_compile_error():
    def endless(x: lt.f64):
        k = 0
        while k >= 0:
            k += 1
        return x

    assert_error_at(endless, (1.0,), "still holds after 10000 iterations", 'while k')


def test_inspect_ir_prints_a_while():
    text = newton_sqrt.inspect_ir()
    assert "= while[" in text and "cond_fn=" in text and "body_fn=" in text


# --------------------------------------------------------------------------- break/continue
@lt.kernel
def sum_until_negative(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for i in range(len(x)):
        if x[i] < 0:
            break
        s += x[i]
    return s


@lt.kernel
def sum_skipping_negatives(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    seen = 0
    for v in x:
        seen += 1
        if v < 0:
            continue
        s += v * v * seen
    return s


@lt.kernel(boundscheck=True)
def while_true_with_break_and_continue(x: lt.f64["n"], stop: lt.f64) -> lt.f64:
    s = 0.0
    i = 0
    while True:
        if i >= len(x):
            break
        v = x[i]
        i += 1
        if v < 0:
            continue
        s += v
        if s > stop:
            break
    return s


@lt.kernel
def first_row_over(X: lt.f64["n", "d"], t: lt.f64) -> lt.i64:
    found = -1
    for i in range(X.shape[0]):
        hit = False
        for j in range(X.shape[1]):
            if X[i, j] > t:
                hit = True
                break  # leaves the inner loop only
        if hit:
            found = i
            break
    return found


@lt.kernel
def break_under_a_known_if(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for k in (1.0, 2.0, 3.0, 4.0):
        if k > 2.5:  # a Python condition: the loop stops at compile time
            break
        s += k * x[0]
    for i in range(len(x)):
        if True:
            continue
        s += 100.0  # never reached
    return s


@given(st.lists(st.floats(-10, 10), max_size=12), st.floats(-5, 40))
@settings(max_examples=30)
def test_break_and_continue(xs, stop):
    x = np.array(xs, dtype=np.float64)
    check(sum_until_negative, x)
    check(sum_skipping_negatives, x)
    check(while_true_with_break_and_continue, x, stop)


@given(st.integers(0, 5), st.integers(1, 4), st.floats(-1, 1))
@settings(max_examples=20)
def test_break_out_of_nested_loops(n, d, t):
    X = np.random.default_rng(n * 7 + d).uniform(-1, 1, (n, d))
    check(first_row_over, X, t)


def test_break_and_continue_under_known_ifs():
    check(break_under_a_known_if, np.array([2.0, 5.0]))


@lt.kernel
def prange_with_continue(x: lt.f64["n"]) -> lt.f64["n"]:
    out = np.zeros(len(x))
    for i in lt.prange(len(x)):
        if x[i] < 0:
            continue
        out[i] = np.sqrt(x[i])
    return out


def test_continue_in_prange():
    x = np.array([4.0, -1.0, 9.0, 0.25])
    got = run_both(prange_with_continue, x)
    np.testing.assert_allclose(got, np.where(x < 0, 0.0, np.sqrt(np.abs(x))))


# --------------------------------------------------------------------------- early return
@lt.kernel
def index_of_first_over(x: lt.f64["n"], t: lt.f64) -> lt.i64:
    for i in range(len(x)):
        if x[i] > t:
            return i
    return -1


@lt.kernel
def first_match_in_while(x: lt.f64["n"], t: lt.f64):
    i = 0
    while i < len(x):
        if x[i] > t:
            return x[i] * 2, i
        i += 1
    return 0.0, -1


@lt.kernel
def return_from_nested(X: lt.f64["n", "d"], t: lt.f64) -> lt.f64:
    for i in range(X.shape[0]):
        for j in range(X.shape[1]):
            if X[i, j] > t:
                return X[i, j] + i * 10 + j
    return -1.0


@lt.kernel
def return_in_branch(x: lt.f64) -> lt.f64:
    if x > 0:
        return x * 2  # a Python int times a float: the returns unify to f64
    y = x - 1
    return y * y


@lt.kernel
def row_or_zeros(X: lt.f64["n", "d"], t: lt.f64) -> lt.f64["d"]:
    for row in X:
        if np.sum(row) > t:
            return row * 1.0
    return np.zeros(X.shape[1])


@given(st.lists(st.floats(-10, 10), max_size=10), st.floats(-10, 10))
@settings(max_examples=30)
def test_early_return(xs, t):
    x = np.array(xs, dtype=np.float64)
    check(index_of_first_over, x, t)
    check(first_match_in_while, x, t)
    check(return_in_branch, t)


@given(st.integers(0, 4), st.integers(1, 3), st.floats(-2, 2))
@settings(max_examples=20)
def test_early_return_from_nested_loops_and_arrays(n, d, t):
    X = np.random.default_rng(n * 5 + d).uniform(-1, 1, (n, d))
    check(return_from_nested, X, t)
    check(row_or_zeros, X, t)


def test_returns_that_cannot_unify_name_the_line():
    def two_ranks(x: lt.f64["n"]):
        for i in range(len(x)):
            if x[i] > 0:
                return x
        return x[0]

    assert_error_at(two_ranks, (np.zeros(3),), "the returned value has shape", 'return x[0]')


def test_a_return_in_a_loop_needs_one_at_the_end():
    def falls_off(x: lt.f64["n"]):
        for i in range(len(x)):
            if x[i] > 0:
                return x[i]

    assert_error_at(falls_off, (np.zeros(3),),
                    "may also reach its end without a return", 'def falls_off')


@lt.kernel
def known_while_left_by_a_traced_break(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    k = 0
    while k < 4:  # known at first; after a traced break, the rest is a traced while
        if x[k] < 0:
            break
        s += x[k]
        k += 1
    return s + k


@lt.kernel
def return_in_an_unrolled_loop(x: lt.f64["n"]) -> lt.f64:
    for w in (1.0, 2.0, 3.0):
        if x[0] * w > 2.5:
            return w
    return -1.0


@lt.kernel(boundscheck=True)
def while_true_left_by_returns(x: lt.f64["n"], t: lt.f64) -> lt.f64:
    i = 0
    s = 0.0
    while True:  # no return after it is needed: only the returns leave it
        if i >= len(x):
            return s
        if x[i] > t:
            return s * 10
        s += x[i]
        i += 1


@lt.kernel(boundscheck=True)
def nested_whiles(x: lt.f64["n"], t: lt.f64) -> lt.f64:
    i = 0
    tot = 0.0
    while i < len(x):
        i += 1
        if x[i - 1] < 0:
            continue
        j = 0
        while j < i:
            if x[j] > t:
                return -tot
            tot += x[j]
            j += 1
    return tot


@lt.kernel(parallel=True)
def newton_per_row(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    out = np.zeros(X.shape[0])
    for i in lt.prange(X.shape[0]):  # a while inside: serial within the iteration
        a = np.sum(X[i] * X[i]) + 1.0
        y = a
        while abs(y * y - a) > 1e-12 * a:
            y = 0.5 * (y + a / y)
        out[i] = y
    return out


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=8), st.floats(-10, 10))
@settings(max_examples=30)
def test_jumps_mixing_known_and_traced_control_flow(xs, t):
    x = np.array(xs + [0.0] * (4 - len(xs)), dtype=np.float64)
    check(known_while_left_by_a_traced_break, x)
    check(return_in_an_unrolled_loop, x)
    check(while_true_left_by_returns, x, t)
    check(nested_whiles, x, t)


def test_a_while_inside_prange():
    X = np.random.default_rng(3).standard_normal((40, 3))
    got = check(newton_per_row, X)
    np.testing.assert_allclose(got, np.sqrt((X * X).sum(1) + 1.0), rtol=1e-12)


# --------------------------------------------------------------------------- for forms
@lt.kernel
def iterate_arrays(x: lt.f64["n"], X: lt.f64["m", "d"]) -> lt.f64:
    s = 0.0
    for v in x:
        s += v * v
    for row in X:
        s += np.sum(row) * 0.5
    for i, v in enumerate(x):
        s += i * v
    for k, i in enumerate(range(7, 1, -2), start=5):
        s += k * i
    return s


@lt.kernel
def zips(x: lt.f64["n"], y: lt.f64["m"], z: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for a, b in zip(x, y):  # stops at the shorter one (known at run time)
        s += a * b
    for a, c in zip(x, z):  # one dim: the same length
        s += a - c
    for i, v in zip(range(2, 20, 3), x):
        s += i * v
    for k, (a, b) in enumerate(zip(x, y)):
        s += k * (a + b)
    return s


@lt.kernel
def reversals(x: lt.f64["n"], n: lt.i64) -> lt.f64:
    s = 0.0
    for i in reversed(range(n)):
        s = s * 1.5 + i
    for v in reversed(x):
        s = s * 0.5 + v
    return s


@lt.kernel
def stepped(a: lt.i64, b: lt.i64, c: lt.i64) -> lt.i64:
    s = 0
    for i in range(a, b, c):  # a traced step, of either sign
        s = s * 3 + i
    for i in range(b, a, -2):
        s = s - i
    return s


@lt.kernel
def stepped_with_break(a: lt.i64, b: lt.i64, c: lt.i64, t: lt.i64) -> lt.i64:
    s = 0
    for i in range(a, b, c):  # a traced step, left by break
        if s > t:
            break
        s = s + i * i
    return s


@given(st.integers(0, 6), st.integers(0, 4), st.integers(1, 3))
@settings(max_examples=20)
def test_for_over_arrays_and_enumerate(n, m, d):
    rng = np.random.default_rng(n * 11 + m)
    check(iterate_arrays, rng.standard_normal(n), rng.standard_normal((m, d)))


@given(st.integers(0, 6), st.integers(0, 6))
@settings(max_examples=20)
def test_zip(n, m):
    rng = np.random.default_rng(n * 13 + m)
    check(zips, rng.standard_normal(n), rng.standard_normal(m), rng.standard_normal(n))


@given(st.integers(0, 6), st.integers(-2, 6))
@settings(max_examples=20)
def test_reversed(n, k):
    check(reversals, np.random.default_rng(n).standard_normal(n), k)


@given(st.integers(-8, 8), st.integers(-8, 8), st.integers(-4, 4).filter(bool),
       st.integers(-5, 50))
@settings(max_examples=40)
def test_ranges_with_negative_and_traced_steps(a, b, c, t):
    check(stepped, a, b, c)
    check(stepped_with_break, a, b, c, t)


def test_range_step_zero_is_an_error_at_run_time():
    for k in (stepped, stepped.interpret):
        with pytest.raises(ValueError, match="must not be zero"):
            k(0, 3, 0)
    for k in (stepped_with_break, stepped_with_break.interpret):
        with pytest.raises(ValueError, match="must not be zero"):
            k(0, 3, 0, 5)


# --------------------------------------------------------------------------- unsupported
def test_for_else_while_else_and_jumps_in_prange_are_compile_errors():
    def for_else(x: lt.f64["n"]):
        for i in range(3):
            pass
        else:
            x = x + 1.0
        return x

    assert_error_at(for_else, (np.zeros(2),), "for ... else is not supported", 'for i')

    def while_else(x: lt.f64):
        while x > 0:
            x = x - 1.0
        else:
            x = 2.0
        return x

    msg = compile_error(while_else, 1.0)
    assert "while ... else is not supported" in msg

    def break_in_prange(x: lt.f64["n"]):
        out = np.zeros(len(x))
        for i in lt.prange(len(x)):
            if x[i] < 0:
                break
            out[i] = x[i]
        return out

    assert_error_at(break_in_prange, (np.zeros(3),),
                    "`break` inside a prange loop", ' break' + chr(10))

    def return_in_prange(x: lt.f64["n"]):
        for i in lt.prange(len(x)):
            if x[i] < 0:
                return x
        return x

    assert "`return` inside a prange loop" in compile_error(return_in_prange, np.zeros(3))


# --------------------------------------------------------------------------- autodiff
@given(st.floats(0.01, 1e4))
@settings(max_examples=15)
def test_grad_and_jvp_of_newton_sqrt(a):
    want = 1 / (2 * math.sqrt(a))
    g = lt.grad(newton_sqrt)
    assert g(a) == pytest.approx(want, rel=1e-9)
    assert g.interpret(a) == pytest.approx(want, rel=1e-9)
    out, tangent = lt.jvp(newton_sqrt, (a,), (1.0,))
    assert out == pytest.approx(math.sqrt(a), rel=1e-12)
    assert tangent == pytest.approx(want, rel=1e-9)
    fd = central_difference(lambda v: newton_sqrt(float(v)), np.array(a), eps=1e-6 * a)
    assert g(a) == pytest.approx(float(fd), rel=1e-5)


def test_hessian_of_newton_sqrt():
    a = 2.0
    assert lt.hessian(newton_sqrt)(a) == pytest.approx(-0.25 * a ** -1.5, rel=1e-8)


@pytest.mark.parametrize("t", [0.5, 3.0, 100.0])  # 100: the while runs zero times
def test_grad_through_a_while_with_an_array_carry(t):
    x = np.array([1.0, -2.0, 3.0])
    g = lt.grad(shrink)
    got = run_both(g, x, t)
    fd = central_difference(lambda v: shrink(v, t), x)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-9)
    if t == 100.0:
        np.testing.assert_allclose(got, np.ones(3))


def test_jvp_through_a_while_with_an_array_carry():
    x = np.array([1.0, -2.0, 3.0])
    d = np.array([0.3, -0.1, 0.7])
    out, tangent = lt.jvp(shrink, (x, 0.5), (d, None))
    assert out == pytest.approx(shrink(x, 0.5), rel=1e-12)
    fd = (shrink(x + 1e-6 * d, 0.5) - shrink(x - 1e-6 * d, 0.5)) / 2e-6
    assert tangent == pytest.approx(fd, rel=1e-6)


@lt.kernel
def weighted_until_negative(x: lt.f64["n"], w: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for i in range(len(x)):
        if x[i] < 0:
            break
        s += w[i] * x[i] * x[i]
    return s


@lt.kernel
def first_over_scaled(x: lt.f64["n"], t: lt.f64) -> lt.f64:
    for i in range(len(x)):
        if x[i] > t:
            return x[i] * x[i] * t
    return np.sum(x) * 2.0


def test_grad_through_break_and_early_return():
    x = np.array([0.5, 1.5, -1.0, 2.0])
    w = np.array([2.0, -1.0, 3.0, 4.0])
    g = lt.grad(weighted_until_negative, argnums=(0, 1))
    gx, gw = run_both(g, x, w)
    np.testing.assert_allclose(gx, central_difference(lambda v: weighted_until_negative(v, w),
                                                      x), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(gw, central_difference(lambda v: weighted_until_negative(x, v),
                                                      w), rtol=1e-6, atol=1e-9)
    for t in (1.0, 5.0):  # returns inside the loop; falls through to the end
        gr = lt.grad(first_over_scaled, argnums=(0, 1))
        gx, gt = run_both(gr, x, t)
        np.testing.assert_allclose(gx, central_difference(lambda v: first_over_scaled(v, t), x),
                                   rtol=1e-6, atol=1e-9)
        fd_t = central_difference(lambda v: first_over_scaled(x, float(v)), np.array(t))
        assert gt == pytest.approx(float(fd_t), rel=1e-6, abs=1e-9)


# --------------------------------------------------------------------------- the while equation
@lt.kernel
def fill_until(x: lt.f64["n"], t: lt.f64) -> lt.f64["n"]:
    out = np.zeros(len(x))
    acc = 0.0
    for i in range(len(x)):
        acc += x[i]
        if acc > t:
            break
        out[i] = acc  # stored in place in the while's carried buffer
    return out


@lt.kernel(boundscheck=True)
def read_past_the_end(x: lt.f64["n"]) -> lt.f64["n"]:
    y = x * 2.0
    i = 0
    while y[i] < 100.0:  # no bound in the condition: an IndexError when all are small
        y[i] = y[i] + 1000.0
        i += 2
    return y


def test_while_carrying_a_stored_array():
    for t in (-1.0, 2.0, 100.0):
        check(fill_until, np.array([1.0, 0.5, 2.0, -4.0, 3.0]), t)


def test_an_index_error_in_the_condition_is_raised():
    x = np.array([1.0, 2.0, 200.0, 4.0])
    check(read_past_the_end, x)
    with pytest.raises(IndexError):
        read_past_the_end(np.array([1.0, 2.0, 3.0]))
    with pytest.raises(IndexError):
        read_past_the_end.interpret(np.array([1.0, 2.0, 3.0]))


def test_dce_keeps_what_the_condition_reads_and_drops_the_rest():
    from lattice.ir import primitives as P
    from lattice.ir.core import Builder, Lit, Var, bind, building
    from lattice.ir.interpret import eval_func
    from lattice.ir.passes.dce import dce
    from lattice.ir.types import f64, i64, scalar
    from lattice.ir.verify import verify

    def func(params, body):
        b = Builder()
        ps = [Var(t) for t in params]
        with building(b):
            outs = body(*ps)
        return b.build(ps, list(outs))

    F, I = scalar(f64), scalar(i64)
    # carries (n, s, junk), const lim: while n < lim: n += 1; s += n; junk *= 2
    cond = func([I, F, F, I], lambda n, s, j, lim: bind(P.lt_p, n, lim))
    body = func([I, F, F, I], lambda n, s, j, lim: (
        bind(P.add_p, n, Lit.of(1, i64))[0],
        bind(P.add_p, s, bind(P.convert_p, n, dtype=f64)[0])[0],
        bind(P.mul_p, j, Lit.of(2.0, f64))[0]))
    f = func([I], lambda lim: bind(P.while_p, Lit.of(0, i64), Lit.of(0.0, f64),
                                   Lit.of(1.0, f64), lim, cond_fn=cond, body_fn=body,
                                   n_carry=3)[1:2])
    g = verify(dce(f))
    (e,) = g.eqns
    assert e.params["n_carry"] == 2  # n (read by the condition) and s; junk is gone
    for lim in (0, 1, 5):
        assert eval_func(g, np.int64(lim)) == eval_func(f, np.int64(lim))
        assert float(eval_func(g, np.int64(lim))[0]) == sum(range(lim))


@lt.kernel
def newton_in_a_loop(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for i in range(len(x)):
        a = x[i] * x[i] + 1.0
        y = a
        while abs(y * y - a) > 1e-12 * a:
            y = 0.5 * (y + a / y)
        s += y * x[i]
    return s


@lt.kernel
def whiles_in_a_while(a: lt.f64, b: lt.f64) -> lt.f64:
    s = 0.0
    while s < b:
        y = s + a
        while y > 1.0:
            y = y * 0.5
        s = s + y * y + 0.1
    return s * a


def test_grad_of_whiles_nested_in_loops():
    x = np.array([0.5, -1.2, 2.0])
    got = run_both(lt.grad(newton_in_a_loop), x)
    r = np.sqrt(x * x + 1)
    np.testing.assert_allclose(got, r + x * x / r, rtol=1e-9)
    for a, b in ((0.7, 3.0), (1.6, 2.0), (0.3, -1.0)):
        ga, gb = run_both(lt.grad(whiles_in_a_while, argnums=(0, 1)), a, b)
        fd = central_difference(lambda v: whiles_in_a_while(float(v), b), np.array(a))
        assert ga == pytest.approx(float(fd), rel=1e-6)
        assert gb == 0.0  # b only decides the trip count


@lt.kernel(parallel=True)
def rows_until_negative(X: lt.f64["n", "d"]) -> lt.f64:
    Y = np.zeros((X.shape[0], X.shape[1]))
    total = 0.0
    for i in lt.prange(X.shape[0]):
        for j in range(X.shape[1]):  # left by break: a while carrying Y and total
            if X[i, j] < 0:
                break
            Y[i, j] = X[i, j] * 2.0
            total += X[i, j]
    return total + np.sum(Y * Y)


def test_prange_over_inner_loops_with_break():
    X = np.random.default_rng(4).standard_normal((300, 5))
    got = check(rows_until_negative, X)
    assert got > 0
    assert rows_until_negative.inspect_ir().count("parallel=True") >= 1


def test_prange_refuses_a_while_whose_condition_reads_the_carried_sum():
    def reads_sum(x: lt.f64["n"]):
        s = 0.0
        for i in lt.prange(len(x)):
            j = 0
            while j < 3 and s < 10.0:
                s += x[i]
                j += 1
        return s

    assert "'s' is a number carried" in compile_error(reads_sum, np.ones(4))


def test_a_break_makes_one_while_and_one_guard():
    from lattice.ir import primitives as P
    from lattice.ir.core import subfuncs

    def count(func, prim):
        return sum((e.prim is prim) + sum(count(f, prim) for _, f in subfuncs(e))
                   for e in func.eqns)
    f = sum_until_negative.optimized_ir
    # the flag is the comparison itself; only the statements after the break are guarded
    assert count(f, P.while_p) == 1 and count(f, P.cond_p) == 1 and count(f, P.loop_p) == 0


@lt.kernel
def sum_of_first_indices(X: lt.f64["n", "d"], t: lt.f64) -> lt.i64:
    total = 0
    for row in X:
        total += index_of_first_over(row, t)  # a kernel with an early return, inlined
    return total


def test_calling_a_kernel_with_an_early_return():
    X = np.random.default_rng(9).uniform(-1, 1, (6, 4))
    for t in (-2.0, 0.0, 0.5, 2.0):
        got = run_both(sum_of_first_indices, X, t)
        assert got == sum(index_of_first_over.fn(row, t) for row in X)



def test_simplify_removes_a_while_that_never_runs():
    from lattice.ir import primitives as P
    from lattice.ir.core import Builder, Lit, Var, bind, building
    from lattice.ir.interpret import eval_func
    from lattice.ir.passes.simplify import simplify
    from lattice.ir.types import bool_, f64, scalar

    F = scalar(f64)
    x, c, y = Var(F), Var(F), Var(F)
    never = Builder().build([c], [Lit.of(False, bool_)], "cond")
    body = Builder()
    with building(body):
        (twice,) = bind(P.mul_p, y, Lit.of(2.0, f64))
    b = Builder()
    with building(b):
        (r,) = bind(P.while_p, x, cond_fn=never, body_fn=body.build([y], [twice]), n_carry=1)
    f = b.build([x], [r])
    g = simplify(f)
    assert g.eqns == () and g.outs == (x,)
    assert eval_func(g, np.float64(3.0)) == eval_func(f, np.float64(3.0))


def test_iterating_over_an_array_the_loop_stores_into_sees_the_stores_as_numpy():
    """NumPy's ``for v in y`` indexes ``y`` afresh each step: a store into a later element is
    what the iteration reaches (stores through row views: test_stores_through_views.py)."""
    def stores(x: lt.f64["n"]):
        y = x * 1.0
        for v in y:
            y[0] = v
            y[-1] = y[-1] + v
        return y

    x = np.array([1.0, 2.0, 3.0, 4.0])
    np.testing.assert_array_equal(lt.kernel(stores)(x), stores(x))


def test_iterating_over_an_array_the_loop_rebinds_is_refused():
    def rebinds(x: lt.f64["n"]):
        y = x * 1.0
        for v in y:
            y = y + v
        return y

    assert_error_at(rebinds, (np.zeros(3),), "iterates over 'y' and reassigns it", 'for v in y')


def test_conditions_and_iterables_of_the_wrong_kind_name_the_line():
    def array_condition(x: lt.f64["n"]):
        while x > 0:
            x = x - 1.0
        return x

    assert_error_at(array_condition, (np.zeros(3),),
                    "the condition of a while must be a scalar", 'while x')

    def over_a_scalar(x: lt.f64["n"]):
        s = 0.0
        for v in x[0]:
            s += v
        return s

    assert_error_at(over_a_scalar, (np.zeros(3),),
                    "cannot iterate over a traced scalar", 'for v in')

    def zip_with_a_list(x: lt.f64["n"]):
        s = 0.0
        for a, b in zip(x, [1.0, 2.0]):
            s += a * b
        return s

    msg = compile_error(zip_with_a_list, np.zeros(2))
    assert "zip() of a traced array and a Python sequence" in msg


def test_a_traced_loop_variable_is_not_bound_after_the_loop():
    def stale(x: lt.f64["n"]):
        i = 5
        for i in range(len(x)):
            x = x * 1.0
        return x[i]  # Python: the last index; here the loop's variable does not survive

    assert "name 'i' is not defined" in compile_error(stale, np.zeros(3))

    def stale_after_break(x: lt.f64["n"]):
        v = 0.0
        for v in x:
            if v > 0:
                break
        return v

    assert "name 'v' is not defined" in compile_error(stale_after_break, np.zeros(3))


@lt.kernel
def unrolled_loop_left_by_a_traced_break(x: lt.f64["n"]) -> lt.f64:
    w = 0.0
    for w in (1.0, 2.0, 3.0):  # unrolled; the break depends on x
        if x[0] < w:
            break
    return w * 10 + x[0]


def test_the_target_of_an_unrolled_loop_keeps_the_value_a_traced_break_left():
    for v in (0.5, 1.5, 2.5, 3.5):
        check(unrolled_loop_left_by_a_traced_break, np.array([v]))


def test_hessian_and_vjp_through_a_while_with_an_array_carry():
    x = np.array([1.0, -2.0, 3.0])
    g = lt.grad(shrink)
    H = run_both(lt.hessian(shrink), x, 0.5)
    fd = np.stack([central_difference(lambda v: g(v, 0.5)[k], x) for k in range(3)])
    np.testing.assert_allclose(H, fd, rtol=1e-5, atol=1e-8)
    out, pullback = lt.vjp(shrink, x, 0.5)
    ct_x, ct_t = pullback(2.0)
    np.testing.assert_allclose(ct_x, 2.0 * g(x, 0.5), rtol=1e-12)
    assert out == pytest.approx(shrink(x, 0.5), rel=1e-12)


@lt.kernel
def and_of_arrays(x: lt.f64["n"]) -> lt.f64["n"]:
    m = (x > 0) and (x[::1] < 2)  # arrays: elementwise, never a branch
    return np.where(m, x, 0.0)


def test_and_of_arrays_stays_elementwise():
    x = np.array([-1.0, 0.5, 3.0, 1.5])
    np.testing.assert_array_equal(run_both(and_of_arrays, x), np.where((x > 0) & (x < 2), x, 0))


# --------------------------------------------------------------------------- random jump programs
def _jump_program(r, name: str) -> str:
    """A kernel of nested for/while loops over ``x`` with ifs holding break, continue and
    return, drawn from ``r`` (a ``random.Random``); every loop terminates (a while's counter
    moves first thing in its body, so a continue cannot skip it)."""
    counter = iter(range(100))

    def block(depth: int, reads: list[str], in_loop: bool, ind: str) -> list[str]:
        lines: list[str] = []
        for _ in range(r.randint(1, 3)):
            kind = r.choice(["update"] * 3 + (["if"] * 3 if depth < 3 else [])
                            + (["loop"] if depth < 2 else []))
            if kind == "update":
                lines.append(f"{ind}s = s * {r.choice(['0.5', '1.0', '-1.0'])} + "
                             f"{r.choice(reads)} * {r.choice(['1.0', '2.0', '0.25'])}")
            elif kind == "if":
                test = f"{r.choice(reads + ['s'])} {r.choice(['>', '<'])} " \
                       f"{r.choice(['t', '0.0', '1.5', '-1.0'])}"
                lines.append(f"{ind}if {test}:")
                jumps = ["break", "continue"] * in_loop + ["return s + 100.0", "nested"]
                jump = r.choice(jumps)
                if jump == "nested":
                    lines += block(depth + 1, reads, in_loop, ind + "    ")
                else:
                    lines.append(f"{ind}    {jump}")
                if r.random() < 0.3:
                    lines.append(f"{ind}else:")
                    lines += block(depth + 1, reads, in_loop, ind + "    ")
            else:
                k = next(counter)
                form = r.choice(["range", "array", "while", "enumerate"])
                if form == "range":
                    lines.append(f"{ind}for i{k} in range(len(x) - 1, -1, -{r.choice([1, 2])}):")
                    new = [f"x[i{k}]"]
                elif form == "array":
                    lines.append(f"{ind}for v{k} in x:")
                    new = [f"v{k}"]
                elif form == "enumerate":
                    lines.append(f"{ind}for i{k}, v{k} in enumerate(x):")
                    new = [f"v{k}", f"v{k} * i{k}"]
                else:
                    lines.append(f"{ind}j{k} = 0")
                    lines.append(f"{ind}while j{k} < len(x):")
                    lines.append(f"{ind}    j{k} += 1")
                    new = [f"x[j{k} - 1]"]
                lines += block(depth + 1, reads + new, True, ind + "    ")
        return lines

    body = block(0, ["t"], False, "    ")
    return "\n".join([f"def {name}(x: lt.f64['n'], t: lt.f64) -> lt.f64:", "    s = 0.0",
                      *body, "    return s", ""])


@given(st.integers(0, 2 ** 32 - 1), st.lists(st.floats(-3, 3), max_size=6), st.floats(-2, 2))
@settings(max_examples=25)
def test_random_programs_of_loops_and_jumps(tmp_path_factory, seed, xs, t):
    import importlib.util
    import random

    src = _jump_program(random.Random(seed), "jumps")
    path = tmp_path_factory.mktemp("jumps") / "jumps_program.py"
    path.write_text("import lattice as lt\n\n\n" + src)
    spec = importlib.util.spec_from_file_location(f"jumps_{seed}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    k = lt.kernel(fastmath=False)(mod.jumps)
    x = np.array(xs, dtype=np.float64)
    got = run_both(k, x, t)
    assert got == mod.jumps(x, t), src  # the same operations in the same order: exactly
