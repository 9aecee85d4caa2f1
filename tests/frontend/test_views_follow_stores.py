"""A basic slice is a view, as in NumPy: a view bound before a store into its array shows the
store (straight-line code, after a loop or a branch that stores, inside a loop body in later
iterations, views of views). Every kernel is checked against its own Python function run by
NumPy on copies of the same inputs, and against the interpreter."""
from __future__ import annotations

import numpy as np
import pytest

import lattice as lt


def _check(kern, *args):
    want_args = [np.array(a) if isinstance(a, np.ndarray) else a for a in args]
    want = kern.fn(*want_args)
    for run in (kern, kern.interpret):
        got_args = [np.array(a) if isinstance(a, np.ndarray) else a for a in args]
        got = run(*got_args)
        if want is not None:  # (a kernel that only writes into its arguments)
            np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-13, atol=0)
        for g, w in zip(got_args, want_args):
            np.testing.assert_array_equal(g, w)


@lt.kernel
def after_store(a: lt.f64["n"]) -> lt.f64:
    v = a[1:]
    a[2] = 100.0
    return np.sum(v)


@lt.kernel
def row_after_store(a: lt.f64["n", "m"]) -> lt.f64["m"]:
    r = a[0]
    a[0, 1] = 100.0
    return r * 2.0


@lt.kernel
def view_of_view(a: lt.f64["n", "m"]) -> lt.f64:
    r = a[1:]
    c = r[:, 0]
    a[1, 0] = -7.0
    a[2:, 0] += 1.0
    return np.sum(c)


@lt.kernel
def local_array(x: lt.f64["n"]) -> lt.f64:
    h = x * 2.0
    w = h[::2]
    h[0] = 50.0
    h += 1.0
    return np.sum(w)


@lt.kernel
def after_loop(a: lt.f64["n", "m"]) -> lt.f64["m"]:
    r = a[0]
    for i in range(a.shape[1]):
        a[0, i] = a[0, i] * 3.0 + i
    return r + 0.0


@lt.kernel
def inside_loop(a: lt.f64["n"]) -> lt.f64:
    head = a[:3]
    s = 0.0
    for i in range(5):
        s += np.sum(head)       # sees the stores of the iterations before
        a[i % 3] = s
    return s


@lt.kernel
def inside_while(a: lt.f64["n"]) -> lt.f64:
    t = a[1:]
    k = 0
    while t[0] < 10.0 and k < 100:
        a[1] += 1.5
        k += 1
    return t[0] + k


@lt.kernel
def after_branch(a: lt.f64["n"], c: lt.f64) -> lt.f64:
    v = a[:2]
    if c > 0:
        a[0] = c
    else:
        a[1] = -c
    return v[0] * 10.0 + v[1]


@lt.kernel
def rebinding_is_not_a_store(a: lt.f64["n"]) -> lt.f64:
    v = a[:2]
    a = a * 5.0          # a new array: v still shows the old one
    a[0] = 1.0
    return np.sum(v)


@lt.kernel
def kernel_writes(out: lt.f64["n"]) -> None:
    out[0] = 42.0


@lt.kernel
def through_a_call(a: lt.f64["n"]) -> lt.f64:
    v = a[:1]
    kernel_writes(a)
    return v[0]


@lt.kernel
def view_in_body(a: lt.f64["n", "m"]) -> lt.f64:
    s = 0.0
    for i in range(a.shape[0]):
        r = a[i]
        a[i, 0] = 9.0
        s += np.sum(r)
    return s


@lt.kernel
def transpose_view(a: lt.f64["n", "m"]) -> lt.f64["m", "n"]:
    t = a.T
    a[0, 1] = -3.0
    return t * 1.0


@pytest.mark.parametrize("kern,args", [
    (transpose_view, (np.arange(6.0).reshape(2, 3),)),
    (after_store, (np.arange(5.0),)),
    (row_after_store, (np.arange(12.0).reshape(3, 4),)),
    (view_of_view, (np.arange(12.0).reshape(4, 3),)),
    (local_array, (np.arange(7.0),)),
    (after_loop, (np.arange(12.0).reshape(3, 4),)),
    (inside_loop, (np.arange(6.0),)),
    (inside_while, (np.arange(6.0),)),
    (after_branch, (np.arange(4.0), 2.5)),
    (after_branch, (np.arange(4.0), -2.5)),
    (rebinding_is_not_a_store, (np.arange(4.0),)),
    (through_a_call, (np.arange(3.0),)),
    (view_in_body, (np.arange(12.0).reshape(3, 4),)),
])
def test_a_view_shows_later_stores(kern, args):
    _check(kern, *args)


def test_gradient_through_a_view_that_follows_a_store():
    @lt.kernel
    def f(x: lt.f64["n"]) -> lt.f64:
        h = x * x
        v = h[1:]
        h[1] = 3.0 * x[0]
        return np.sum(v * v)

    x = np.array([0.5, -1.25, 2.0, 0.75])
    g = lt.grad(f)(x)

    def num(x):
        h = x * x
        h[1] = 3.0 * x[0]
        return np.sum(h[1:] ** 2)
    eps = 1e-6
    fd = np.array([(num(x + eps * e) - num(x - eps * e)) / (2 * eps) for e in np.eye(4)])
    np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)
    assert f(x) == pytest.approx(num(x), rel=1e-15)


def test_a_view_of_an_array_both_stored_and_rebound_in_a_branch_is_refused():
    @lt.kernel
    def f(a: lt.f64["n"], c: lt.f64) -> lt.f64:
        v = a[:2]
        if c > 0:
            a[0] = 1.0
            a = a * 2.0
        return np.sum(v)

    with pytest.raises(lt.CompileError, match=r"'v' is a view of 'a'.*test_views_follow"):
        f(np.arange(3.0), 1.0)


def test_a_view_of_an_array_both_stored_and_rebound_in_a_loop_is_refused():
    @lt.kernel
    def f(a: lt.f64["n"]) -> lt.f64:
        v = a[:2]
        s = 0.0
        for i in range(3):
            s += v[0]            # which array v shows depends on the iteration
            a[0] = s
            a = a * 2.0
        return s

    with pytest.raises(lt.CompileError, match=r"'v' is a view of 'a'"):
        f(np.arange(3.0))
