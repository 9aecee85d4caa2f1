"""Stores through views, as in NumPy and numba: ``row = out[i]; row[j] = v``, ``out[i][j] = v``,
``v = x[1:]; v[0] = v``, ``v += 1`` on a slice, ``A.T[j] = v``, views of views, in loops and
branches, ``np.add.at`` / ``fill`` / ``sort`` on a view.  Each kernel is checked against its own
Python function run by NumPy on copies of the same inputs (result and every argument after the
call), and against the interpreter; gradients against finite differences."""
from __future__ import annotations

import numpy as np
import pytest

import lattice as lt
from lattice.errors import CompileError
from test_views_follow_stores import _check


@lt.kernel
def slice_then_element(x: lt.f64["n"]) -> lt.f64["n"]:
    v = x[1:]
    v[0] = 7.0
    v[-1] = -1.0  # the view's last element: x's last
    return x * 1.0


@lt.kernel
def rows_filled_through_a_name(out: lt.f64["n", "d"]):
    for i in range(out.shape[0]):
        row = out[i]
        for j in range(out.shape[1]):
            row[j] = i * 10.0 + j


@lt.kernel
def chained_subscripts(out: lt.f64["n", "d"], x: lt.f64["d"]):
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i][j] = x[j] * i
        out[i][0] += 0.5


@lt.kernel
def strided_view_in_place(x: lt.f64["n"]) -> lt.f64:
    v = x[::2]
    v += 1.0
    v *= 3.0
    return np.sum(x)


@lt.kernel
def through_a_transpose(a: lt.f64["n", "m"]) -> lt.f64["n", "m"]:
    t = a.T
    t[0, 1] = 5.0  # a[1, 0]
    a.T[1] = -2.0  # a[:, 1]
    return a + 0.0


@lt.kernel
def view_of_a_view(a: lt.f64["n", "m"]) -> lt.f64:
    r = a[1:]
    s = r[0]  # a[1]
    s[2] = 9.0
    w = a[:2]  # another view sees it
    return np.sum(w) + np.sum(r)


@lt.kernel
def view_bound_before_the_loop(out: lt.f64["n", "d"], x: lt.f64["d"]) -> lt.f64:
    row = out[1]
    total = 0.0
    for j in range(out.shape[1]):
        row[j] += x[j]
        total += out[1, j]  # the array sees the store at once
    return total + np.sum(row)


@lt.kernel
def store_in_a_branch(x: lt.f64["n"], c: lt.f64) -> lt.f64["n"]:
    v = x[2:]
    if c > 0.0:
        v[0] = c
    else:
        v[1:] = -c
    return x + 0.0


@lt.kernel
def scatter_fill_sort_through_views(h: lt.f64["n", "k"], idx: lt.i64["m"]):
    row = h[0]
    np.add.at(row, idx % h.shape[1], 1.0)
    r1 = h[1]
    r1.fill(2.5)
    r2 = h[2]
    r2.sort()


@lt.kernel
def rows_of_a_loop_axpy(y: lt.f64["n", "d"], a: lt.f64, x: lt.f64["n", "d"]):
    for i in range(y.shape[0]):
        yi = y[i]
        xi = x[i]
        for j in range(y.shape[1]):
            yi[j] += a * xi[j]


def test_slice_then_element():
    _check(slice_then_element, np.arange(6.0))


@pytest.mark.parametrize("shape", [(1, 1), (3, 4), (5, 2)])
def test_rows_filled_through_a_name(shape):
    _check(rows_filled_through_a_name, np.zeros(shape))


def test_chained_subscripts():
    _check(chained_subscripts, np.zeros((4, 3)), np.array([1.0, 2.0, 3.0]))


def test_strided_view_in_place():
    _check(strided_view_in_place, np.arange(7.0))


def test_through_a_transpose():
    _check(through_a_transpose, np.arange(12.0).reshape(3, 4))


def test_view_of_a_view():
    _check(view_of_a_view, np.arange(12.0).reshape(3, 4))


def test_view_bound_before_the_loop():
    _check(view_bound_before_the_loop, np.arange(12.0).reshape(3, 4), np.array([1.0, -2.0, 3.0, 0.5]))


@pytest.mark.parametrize("c", [2.0, -3.0])
def test_store_in_a_branch(c):
    _check(store_in_a_branch, np.arange(6.0), c)


def test_scatter_fill_sort_through_views():
    rng = np.random.default_rng(0)
    _check(scatter_fill_sort_through_views, rng.standard_normal((3, 5)), rng.integers(-9, 9, 11))


def test_row_views_store_straight_into_the_array():
    """``yi = y[i]; yi[j] += ...`` compiles to the same loop as ``y[i, j] += ...``: no copy of
    the row per store (the combined key), so it runs as fast."""
    rng = np.random.default_rng(1)
    y, x = rng.standard_normal((50, 40)), rng.standard_normal((50, 40))
    _check(rows_of_a_loop_axpy, y, 0.5, x)
    text = rows_of_a_loop_axpy.inspect_ir(y, 0.5, x)
    assert "set[spec=(Int(), Int())]" in text  # y[i, j] = ...
    assert "set[spec=(Int(), Slice" not in text  # no write-back of a whole row


def test_a_copy_made_by_an_index_array_is_refused_as_a_store_target():
    @lt.kernel
    def lost(x: lt.f64["n"], idx: lt.i64["m"]):
        x[idx][0] = 1.0

    with pytest.raises(CompileError, match="is a copy"):
        lost(np.zeros(4), np.array([1, 2]))


def test_a_gather_bound_to_a_name_is_its_own_array():
    @lt.kernel
    def own(x: lt.f64["n"], idx: lt.i64["m"]) -> lt.f64["m"]:
        c = x[idx]  # a copy, as in NumPy: x is unchanged
        c[0] = 100.0
        return c

    _check(own, np.arange(5.0), np.array([3, 1]))


@lt.kernel
def fill_rows_from(x: lt.f64["d"], out: lt.f64["n", "d"]) -> lt.f64:
    for i in range(out.shape[0]):
        row = out[i]
        row[:] = x * (i + 1.0)
    return np.sum(out * out)


def test_gradient_through_stores_into_views_matches_finite_differences():
    x = np.array([0.3, -1.2, 2.0])
    out = np.zeros((4, 3))
    g = lt.grad(fill_rows_from, argnums=0)(x, out.copy())
    eps = 1e-6
    fd = np.array([(fill_rows_from(x + eps * e, out.copy()) - fill_rows_from(x - eps * e, out.copy()))
                   / (2 * eps) for e in np.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-7)


@lt.kernel
def through_the_loop_variable(X: lt.f64["n", "d"]) -> lt.f64:
    i = 0
    for row in X:
        row[0] = i * 1.0
        row *= 2.0
        if i + 1 < X.shape[0]:
            X[i + 1, 1] += row[1]  # the next row, as NumPy's iteration sees it
        i += 1
    return np.sum(X)


def test_stores_through_the_loop_variable_of_for_row_in_X():
    _check(through_the_loop_variable, np.arange(12.0).reshape(4, 3))


def test_rebinding_the_iterated_array_is_still_refused():
    @lt.kernel
    def rebinds(X: lt.f64["n", "d"]) -> lt.f64:
        t = 0.0
        for row in X:
            t += row[0]
            X = X * 2.0
        return t

    with pytest.raises(CompileError, match="iterates over 'X' and reassigns it"):
        rebinds(np.ones((2, 2)))
