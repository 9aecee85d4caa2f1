"""Derivatives of the sort family: ``np.sort``, ``partition``, ``median``, ``quantile``,
``percentile``, the max taken as the last sorted element, and the piecewise-constant order
functions (``argsort``, ``searchsorted``, ``nonzero``) whose derivatives are zero.

The tangent of a sorted array is the input's tangent gathered in the sorted order, and its
transpose scatters the cotangent back.  Inputs have distinct values (a sort is then locally a
fixed permutation, so finite differences apply).  Oracles: ``autograd`` (whose ``sort`` is 1-D
only, so lanes are sorted one at a time there), central differences of the interpreter, and the
inner-product identity <J t, c> = <t, J^T c> between ``lt.jvp`` and ``lt.vjp``; compiled and
interpreted.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lattice as lt
from test_transforms_programs import _fd_grad  # central differences of the interpreter

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")
getval = pytest.importorskip("autograd.tracer").getval  # a traced value's plain array


def lanes(fn: Callable[[Any], Any], x: Any, axis: int) -> Any:
    """``fn`` applied to every 1-D lane of ``x`` along ``axis`` (autograd sorts 1-D only);
    the lane results take the place of the axis."""
    if x.ndim == 1:
        return fn(x)
    moved = anp.moveaxis(x, axis, -1)
    rows = [fn(moved[i]) for i in range(moved.shape[0])] if moved.ndim == 2 else \
        [lanes(fn, moved[i], moved.ndim - 2) for i in range(moved.shape[0])]
    out = anp.stack(rows)
    if moved.ndim == 2 and anp.ndim(out) == 2:
        return anp.moveaxis(out, -1, axis)
    return out


def ag_quantile(s: Any, q: float) -> Any:
    """NumPy's "linear" quantile of a sorted 1-D lane."""
    n = s.shape[0]
    vi = (n - 1) * q
    lo = int(np.floor(vi))
    hi = min(lo + 1, n - 1)
    g = vi - lo
    return s[lo] + (s[hi] - s[lo]) * g


def ag_median(s: Any) -> Any:
    n = s.shape[0]
    return (s[(n - 1) // 2] + s[n // 2]) / 2


# ------------------------------------------------------------------------- the kernels
@lt.kernel
def sort1(x: lt.f64["n"], w: lt.f64["n"]) -> lt.f64:
    return lt.sum(np.sort(x) * w)


@lt.kernel
def sort_ax0(x: lt.f64["n", "d"], w: lt.f64["n", "d"]) -> lt.f64:
    return lt.sum(np.sort(x, axis=0) * w)


@lt.kernel
def sort_ax1(x: lt.f64["n", "d"], w: lt.f64["n", "d"]) -> lt.f64:
    return lt.sum(np.sort(x, axis=1) * w)


@lt.kernel
def partition1(x: lt.f64["n"], w: lt.f64["n"]) -> lt.f64:
    return lt.sum(np.partition(x, 1) * w)


@lt.kernel
def median1(x: lt.f64["n"], w: lt.f64["n"]) -> lt.f64:
    return np.median(x * w)


@lt.kernel
def median_ax0(x: lt.f64["n", "d"], w: lt.f64["n", "d"]) -> lt.f64:
    return lt.sum(np.median(x, axis=0) * w[0])


@lt.kernel
def quantile_ax1(x: lt.f64["n", "d"], w: lt.f64["n", "d"]) -> lt.f64:
    return lt.sum(np.quantile(x, 0.3, axis=1) * w[:, 0])


@lt.kernel
def percentile1(x: lt.f64["n"], w: lt.f64["n"]) -> lt.f64:
    p = np.percentile(x + w, [10.0, 50.0, 95.0])
    return p[0] - 2.0 * p[1] + 0.5 * p[2]


@lt.kernel
def max_by_sort(x: lt.f64["n"], w: lt.f64["n"]) -> lt.f64:
    s = np.sort(x * w)
    return s[-1] - s[0] * 2.0


def sort1_ag(x, w):
    return anp.sum(anp.sort(x) * w)


def sort_ax0_ag(x, w):
    return anp.sum(lanes(anp.sort, x, 0) * w)


def sort_ax1_ag(x, w):
    return anp.sum(lanes(anp.sort, x, 1) * w)


def median1_ag(x, w):
    return ag_median(anp.sort(x * w))


def median_ax0_ag(x, w):
    return anp.sum(lanes(lambda v: ag_median(anp.sort(v)), x, 0) * w[0])


def quantile_ax1_ag(x, w):
    return anp.sum(lanes(lambda v: ag_quantile(anp.sort(v), 0.3), x, 1) * w[:, 0])


def percentile1_ag(x, w):
    s = anp.sort(x + w)
    return ag_quantile(s, 0.1) - 2.0 * ag_quantile(s, 0.5) + 0.5 * ag_quantile(s, 0.95)


def max_by_sort_ag(x, w):
    s = anp.sort(x * w)
    return s[-1] - s[0] * 2.0


# name, kernel, autograd twin, rank of the inputs
CASES: list[tuple[str, Any, Callable, int]] = [
    ("sort1", sort1, sort1_ag, 1),
    ("sort_ax0", sort_ax0, sort_ax0_ag, 2),
    ("sort_ax1", sort_ax1, sort_ax1_ag, 2),
    ("partition1", partition1, sort1_ag, 1),
    ("median1", median1, median1_ag, 1),
    ("median_ax0", median_ax0, median_ax0_ag, 2),
    ("quantile_ax1", quantile_ax1, quantile_ax1_ag, 2),
    ("percentile1", percentile1, percentile1_ag, 1),
    ("max_by_sort", max_by_sort, max_by_sort_ag, 1),
]


def distinct(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """Values at least 0.2 apart (no ties within FD's reach), in random order."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.2 + 0.05 * rng.random(n) - 0.1 * n).reshape(shape)


def make(rng: np.random.Generator, rank: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    shape = (n,) if rank == 1 else (n, 3)
    # w > 0.5 keeps x * w distinct too
    return distinct(rng, shape), 0.5 + rng.random(shape)


@pytest.mark.parametrize("name,k,ag,rank", CASES, ids=[c[0] for c in CASES])
@settings(max_examples=4, deadline=None)
@given(n=st.integers(2, 6), seed=st.integers(0, 2**31))
def test_gradient_matches_autograd_and_fd(name: str, k: Any, ag: Callable, rank: int, n: int,
                                          seed: int) -> None:
    args = make(np.random.default_rng(seed), rank, n)
    g = lt.grad(k, (0, 1))
    got, got_i = g(*args), g.interpret(*args)
    want = autograd.grad(ag, (0, 1))(*args)
    for j in (0, 1):
        np.testing.assert_allclose(got[j], want[j], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got_i[j], want[j], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[j], _fd_grad(k, args, j, h=1e-6), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,k,ag,rank", CASES, ids=[c[0] for c in CASES])
def test_jvp_and_vjp_agree(name: str, k: Any, ag: Callable, rank: int) -> None:
    rng = np.random.default_rng(len(name))
    args = make(rng, rank, 5)
    ts = [rng.standard_normal(a.shape) for a in args]
    _, jt = lt.jvp(k, args, ts)
    c = float(rng.standard_normal())
    _, pullback = lt.vjp(k, *args)
    cts = pullback(c)
    lhs = float(jt) * c
    rhs = sum(float(np.sum(ct * t)) for ct, t in zip(cts, ts))
    assert abs(lhs - rhs) <= 1e-10 * (1 + abs(lhs) + abs(rhs))
    h = 1e-6
    fd = (k.interpret(*(a + h * t for a, t in zip(args, ts)))
          - k.interpret(*(a - h * t for a, t in zip(args, ts)))) / (2 * h)
    assert abs(float(jt) - float(fd)) <= 1e-6 * (1 + abs(float(fd)))


@lt.kernel
def sorted_rows(x: lt.f64["n", "d"]) -> lt.f64["n", "d"]:
    return np.sort(x, axis=0) * 2.0 + np.sort(x, axis=-1)


def test_vjp_of_an_array_valued_sort() -> None:
    # the pullback is the scatter-add of the cotangent along the axis, per sort
    rng = np.random.default_rng(3)
    x = distinct(rng, (4, 3))
    ct = rng.standard_normal((4, 3))
    _, pullback = lt.vjp(sorted_rows, x)
    (got,) = pullback(ct)
    want = np.zeros_like(x)
    o0, o1 = np.argsort(x, axis=0, kind="stable"), np.argsort(x, axis=1, kind="stable")
    np.put_along_axis(want, o0, 2.0 * ct, axis=0)
    w1 = np.zeros_like(x)
    np.put_along_axis(w1, o1, ct, axis=1)
    np.testing.assert_allclose(got, want + w1, rtol=1e-12)


@lt.kernel
def sort_of_ties(x: lt.f64["n"]) -> lt.f64["n"]:
    return np.sort(x)


def test_tangent_at_ties_follows_the_stable_order() -> None:
    # equal values: the k-th of them in sorted order takes the k-th equal input's tangent
    x = np.array([2.0, 1.0, 2.0, 1.0, 0.0])
    t = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    _, jt = lt.jvp(sort_of_ties, [x], [t])
    np.testing.assert_array_equal(jt, t[np.argsort(x, kind="stable")])


@lt.kernel
def order_stats(x: lt.f64["n"], v: lt.f64["m"]) -> lt.f64:
    o = np.argsort(x)
    p = np.searchsorted(np.sort(x), v)
    nz = np.count_nonzero(x > 0.0)
    return lt.sum(x[o[0]] * 0.0 + lt.astype(o, lt.f64)) + lt.sum(lt.astype(p, lt.f64)) + \
        lt.astype(nz, lt.f64)


def test_order_functions_have_zero_gradient() -> None:
    rng = np.random.default_rng(5)
    x, v = distinct(rng, (6,)), distinct(rng, (4,))
    gx, gv = lt.grad(order_stats, (0, 1))(x, v)
    np.testing.assert_array_equal(gx, np.zeros(6))
    np.testing.assert_array_equal(gv, np.zeros(4))
    np.testing.assert_array_equal(gx, _fd_grad(order_stats, (x, v), 0, h=1e-6))


@lt.kernel
def sorted_energy(x: lt.f64["n"], w: lt.f64["n"]) -> lt.f64:
    s = np.sort(x)
    return lt.sum(w * s * s * s) + np.median(x) ** 2


def sorted_energy_ag(x, w):
    s = anp.sort(x)
    return anp.sum(w * s * s * s) + ag_median(s) ** 2


def test_hessian_vector_product_through_sort() -> None:
    # second order: the JVP of the gather is again a gather by the same argsort
    rng = np.random.default_rng(11)
    x, w = distinct(rng, (6,)), rng.standard_normal(6)
    v = rng.standard_normal(6)
    got = lt.hvp(sorted_energy, (x, w), [v, None], argnums=0)
    want = autograd.hessian_vector_product(lambda xx: sorted_energy_ag(xx, w))(x, v)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------- gathers, scatters
# repeated indices on purpose: a gather's transpose must add every repeat's cotangent
@lt.kernel
def take_sq(x: lt.f64["n"], idx: lt.i64["m"]) -> lt.f64:
    return lt.sum(np.take(x, idx) ** 2)


@lt.kernel
def take_along_sq(x: lt.f64["n", "d"], idx: lt.i64["n", 1]) -> lt.f64:
    return lt.sum(np.take_along_axis(x, idx, axis=1) ** 2)


@lt.kernel
def fancy_cube(x: lt.f64["n"], idx: lt.i64["m"]) -> lt.f64:
    return lt.sum(x[idx] ** 3)


@lt.kernel
def add_repeats(x: lt.f64["n"], v: lt.f64["m"], idx: lt.i64["m"]) -> lt.f64:
    h = x * 1.0
    h[idx] += v * v  # adds every repeat (np.add.at), see the language guide
    return lt.sum(h ** 2)


def take_sq_ag(x, idx):
    return anp.sum(x[idx] ** 2)


def take_along_sq_ag(x, idx):
    return anp.sum(x[np.arange(x.shape[0])[:, None], idx] ** 2)


def fancy_cube_ag(x, idx):
    return anp.sum(x[idx] ** 3)


def add_repeats_ag(x, v, idx):
    onehot = (np.arange(x.shape[0])[:, None] == idx[None, :]).astype(float)
    return anp.sum((x + anp.dot(onehot, v * v)) ** 2)


GATHERS = [("take", take_sq, take_sq_ag, (0,)),
           ("take_along_axis", take_along_sq, take_along_sq_ag, (0,)),
           ("x[idx]", fancy_cube, fancy_cube_ag, (0,)),
           ("h[idx]+=v", add_repeats, add_repeats_ag, (0, 1))]


@pytest.mark.parametrize("name,k,ag,nums", GATHERS, ids=[c[0] for c in GATHERS])
def test_gather_and_scatter_gradients_with_repeated_indices(name: str, k: Any, ag: Callable,
                                                           nums: tuple) -> None:
    rng = np.random.default_rng(len(name))
    x = rng.standard_normal(5)
    if k is take_along_sq:
        args: tuple = (rng.standard_normal((4, 3)), np.array([[0], [2], [2], [1]]))
    elif k is add_repeats:
        args = (x, rng.standard_normal(4), np.array([1, 3, 1, 1]))
    else:
        args = (x, np.array([1, 3, 1, 1, -1]))
    g = lt.grad(k, nums)(*args)
    want = autograd.grad(ag, nums)(*args)
    for j, gj, wj in zip(nums, g, want):
        np.testing.assert_allclose(gj, wj, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gj, _fd_grad(k, args, j, h=1e-6), rtol=1e-6, atol=1e-7)


@lt.kernel
def rows_in_a_loop(x: lt.f64["n", "d"]) -> lt.f64:
    # a sort per iteration: reverse mode replays the argsort of each row
    s = 0.0
    for i in range(x.shape[0]):
        ranks = lt.arange(x.shape[1]).astype(lt.f64)
        s = s + np.median(x[i] * x[i]) + lt.sum(np.sort(x[i]) * ranks)
    return s


def rows_in_a_loop_ag(x):
    ranks = np.arange(x.shape[1], dtype=float)
    return sum(ag_median(anp.sort(x[i] * x[i])) + anp.sum(anp.sort(x[i]) * ranks)
               for i in range(x.shape[0]))


def test_gradient_of_sorts_inside_a_loop() -> None:
    x = distinct(np.random.default_rng(2), (3, 5)) + 0.05  # |x| distinct too: no zero
    g = lt.grad(rows_in_a_loop)
    want = autograd.grad(rows_in_a_loop_ag)(x)
    np.testing.assert_allclose(g(x), want, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(g.interpret(x), want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------- histogram edges
@lt.kernel
def edges_auto(x: lt.f64["n"], w: lt.f64[6]) -> lt.f64:
    c, e = np.histogram(x * x, bins=5)
    return lt.sum(e * w) + lt.sum(c.astype(lt.f64) * e[1:])


@lt.kernel
def edges_range(x: lt.f64["n"], lo: lt.f64, hi: lt.f64) -> lt.f64:
    c, e = np.histogram(x, bins=4, range=(lo * lo, hi))
    return lt.sum(e * e) + lt.sum(c.astype(lt.f64) * x[0])


@lt.kernel
def counts_only(x: lt.f64["n"]) -> lt.f64:
    c, _ = np.histogram(x, bins=3)
    return lt.sum(c.astype(lt.f64) * x[:3])


def edges_auto_ag(x, w):
    y = x * x
    lo, hi = anp.min(y), anp.max(y)
    e = lo + (hi - lo) * np.arange(6) / 5.0
    c = np.histogram(getval(y), bins=5)[0].astype(float)  # integers: no derivative
    return anp.sum(e * w) + anp.sum(c * e[1:])


def edges_range_ag(x, lo, hi):
    e = lo * lo + (hi - lo * lo) * np.arange(5) / 4.0
    c = np.histogram(getval(x), bins=4, range=(getval(lo) ** 2, getval(hi)))[0].astype(float)
    return anp.sum(e * e) + anp.sum(c * x[0])


def counts_only_ag(x):
    c = np.histogram(getval(x), bins=3)[0].astype(float)
    return anp.sum(c * x[:3])


# no value on a bin edge: the counts do not change under FD's steps
HISTS = [("auto", edges_auto, edges_auto_ag,
          (np.array([0.3, -1.7, 2.2, 0.9, -0.4, 1.35]), np.linspace(-1.0, 1.5, 6)), (0, 1)),
         ("range", edges_range, edges_range_ag,
          (np.array([0.3, -1.7, 2.2, 0.9, -0.4, 1.35]), 0.8, 2.0), (0, 1, 2)),
         ("counts", counts_only, counts_only_ag, (np.array([0.3, -1.7, 2.2, 0.8, -0.5, 1.35]),),
          (0,))]


@pytest.mark.parametrize("name,k,ag,args,nums", HISTS, ids=[c[0] for c in HISTS])
def test_histogram_edges_are_differentiable(name: str, k: Any, ag: Callable, args: tuple,
                                            nums: tuple) -> None:
    # edges = linspace(lo, hi, bins + 1) with lo, hi the range or the data's min and max
    g = lt.grad(k, nums)
    got, got_i = g(*args), g.interpret(*args)
    want = autograd.grad(ag, nums)(*args)
    for j, gc, gi, gw in zip(nums, got, got_i, want):
        np.testing.assert_allclose(gc, gw, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gi, gw, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(gc, _fd_grad(k, args, j, h=1e-6), rtol=1e-6, atol=1e-7)


@lt.kernel
def edges_of(x: lt.f64["n"], w: lt.f64[4]) -> lt.f64:
    _, e = np.histogram(x, bins=3)
    return lt.sum(e * w)


def test_histogram_edges_at_ties_and_when_empty() -> None:
    # all values equal: NumPy widens the range by 0.5 each way; both ends move with the mean
    # tangent, so every edge's derivative is 1/n per value (not differentiable there: a
    # one-sided choice, like the ties of reduce_max); an empty array has fixed edges [0, 1]
    w = np.array([1.0, -2.0, 0.5, 3.0])
    g = lt.grad(edges_of)
    np.testing.assert_allclose(g(np.full(4, 2.0), w), np.full(4, w.sum() / 4), rtol=1e-12)
    np.testing.assert_array_equal(g(np.zeros(0), w), np.zeros(0))
    np.testing.assert_array_equal(g.interpret(np.zeros(0), w), np.zeros(0))
    # two values tied at the minimum share its tangent evenly
    x = np.array([0.0, 1.0, 0.0, 3.0])
    lo_share = np.array([0.5, 0.0, 0.5, 0.0]) * np.sum(w * (1 - np.arange(4) / 3))
    hi_share = np.array([0.0, 0.0, 0.0, 1.0]) * np.sum(w * np.arange(4) / 3)
    np.testing.assert_allclose(g(x, w), lo_share + hi_share, rtol=1e-12)


@lt.kernel
def three_d(x: lt.f64["a", "b", "c"], w: lt.f64["a", "b", "c"]) -> lt.f64:
    return (lt.sum(np.sort(x, axis=1) * w) + lt.sum(np.median(x, axis=2) ** 2)
            + lt.sum(np.quantile(x, [0.25, 0.8], axis=0)))


def test_gradient_of_order_statistics_of_a_3d_array() -> None:
    # a middle, a last and a first axis; compiled, interpreted and FD agree
    x = distinct(np.random.default_rng(4), (2, 3, 4))
    w = np.random.default_rng(5).standard_normal((2, 3, 4))
    g = lt.grad(three_d)
    got = g(x, w)
    np.testing.assert_allclose(got, g.interpret(x, w), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(got, _fd_grad(three_d, (x, w), 0, h=1e-6), rtol=1e-6, atol=1e-7)
