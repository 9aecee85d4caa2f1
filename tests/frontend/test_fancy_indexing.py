"""Indexing with arrays: integer-array gathers, boolean masks, scatter-set and scatter-add
(np.add.at), take / take_along_axis / nonzero and friends, their gradients and bounds checks.

Every form runs compiled and through the interpreter (``run_both``) and is compared with
NumPy on hypothesis-drawn shapes and index arrays (negative, repeated and empty ones, masks
that are all false); gradients against autograd and central finite differences.
"""
from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lattice as lt
from tests.conftest import assert_same, run_both


# --------------------------------------------------------------------------- strategies
@st.composite
def vec_and_idx(draw, max_n: int = 7, max_m: int = 7):
    """(x, idx): a float vector and indices into it, negative and repeated ones included."""
    n = draw(st.integers(1, max_n))
    m = draw(st.integers(0, max_m))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    return rng.standard_normal(n), rng.integers(-n, n, size=m)


@st.composite
def mat_and_idx(draw, axis: int):
    """(X, idx): a matrix and indices into its axis ``axis``."""
    n, d = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    m = draw(st.integers(0, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    size = (n, d)[axis]
    return rng.standard_normal((n, d)), rng.integers(-size, size, size=m)


def _mask(rng, shape, p):
    return rng.random(shape) < p


masks = st.tuples(st.integers(0, 7), st.sampled_from([0.0, 0.3, 0.7, 1.0]),
                  st.integers(0, 2**31 - 1))


# --------------------------------------------------------------------------- gathers
@lt.kernel
def gather_vec(x: lt.f64["n"], idx: lt.i64["m"]):
    return x[idx]


@lt.kernel
def gather_vec_i32(x: lt.f64["n"], idx: lt.i32["m"]):
    return x[idx] + 1.0


@lt.kernel
def gather_rows(X: lt.f64["n", "d"], idx: lt.i64["m"]):
    return X[idx], X[idx, 1:], X[idx, -1]


@lt.kernel
def gather_cols(X: lt.f64["n", "d"], idx: lt.i64["m"], i: lt.i64):
    return X[:, idx], X[i, idx], X[..., idx] * 2.0


@given(vec_and_idx())
@settings(max_examples=25)
def test_gather_vector(case):
    x, idx = case
    assert_same(run_both(gather_vec, x, idx), x[idx])
    assert_same(run_both(gather_vec_i32, x, idx.astype(np.int32)), x[idx] + 1.0)


@given(mat_and_idx(axis=0))
@settings(max_examples=20)
def test_gather_rows(case):
    X, idx = case
    assert_same(run_both(gather_rows, X, idx), (X[idx], X[idx, 1:], X[idx, -1]))


@given(mat_and_idx(axis=1), st.integers(-5, 4))
@settings(max_examples=20)
def test_gather_columns(case, i):
    X, idx = case
    i = i % X.shape[0]
    assert_same(run_both(gather_cols, X, idx, i), (X[:, idx], X[i, idx], X[..., idx] * 2.0))


@lt.kernel
def gather_pairs(X: lt.f64["n", "d"], r: lt.i64["m"], c: lt.i64["m"], c1: lt.i64["k"]):
    # two index arrays broadcast together; a column of row indices against a row of columns
    rows = lt.arange(X.shape[0])
    return X[r, c], X[rows[:, None], c1[None, :]], X[r[:, None], c1]


@lt.kernel
def gather_3d(A: lt.f64["a", "b", "c"], idx: lt.i64["m"], I: lt.i64["p", "q"]):
    # X[0, :, idx]: the advanced entries are separated by a slice, so NumPy puts their axis
    # first; A[:, I] puts a 2-D index array's axes in place
    return A[0, :, idx], A[:, 0, idx], A[:, I], A[idx, :, idx]


@given(st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_broadcast_index_arrays_and_numpy_axis_placement(seed):
    rng = np.random.default_rng(seed)
    n, d, m, k = (int(v) for v in rng.integers(1, 5, size=4))
    X = rng.standard_normal((n, d))
    r, c = rng.integers(-n, n, m), rng.integers(-d, d, m)
    c1 = rng.integers(-d, d, k)
    assert_same(run_both(gather_pairs, X, r, c, c1),
                (X[r, c], X[np.arange(n)[:, None], c1[None, :]], X[r[:, None], c1]))
    a, b = 3, 4
    A = rng.standard_normal((a, b, a))
    idx = rng.integers(-a, a, m)
    I = rng.integers(-b, b, (2, k))
    assert_same(run_both(gather_3d, A, idx, I),
                (A[0, :, idx], A[:, 0, idx], A[:, I], A[idx, :, idx]))


@lt.kernel
def gather_is_a_copy(x: lt.f64["n"], idx: lt.i64["m"]):
    y = x[idx]
    y[0] = -1.0  # a gather may be stored into (it is not a view of the argument)
    return y


def test_a_gather_is_a_local_copy():
    x, idx = np.arange(5.0), np.array([3, 1])
    want = x[idx].copy()
    want[0] = -1.0
    assert_same(run_both(gather_is_a_copy, x, idx), want)
    assert_same(x, np.arange(5.0))


# --------------------------------------------------------------------------- scatters
@lt.kernel
def scatter_add(h0: lt.f64["n"], idx: lt.i64["m"], v: lt.f64["m"]):
    h = lt.copy(h0)
    h[idx] += v
    g = lt.copy(h0)
    g[idx] -= v
    a = lt.copy(h0)
    np.add.at(a, idx, v * 2.0)
    s = lt.copy(h0)
    s[idx] += 1.0  # a scalar adds once per occurrence
    return h, g, a, s


@given(vec_and_idx())
@settings(max_examples=25)
def test_scatter_add_follows_np_add_at(case):
    h0, idx = case
    v = np.linspace(-1, 2, idx.size)
    want = [h0.copy() for _ in range(4)]
    np.add.at(want[0], idx, v)
    np.subtract.at(want[1], idx, v)
    np.add.at(want[2], idx, v * 2.0)
    np.add.at(want[3], idx, 1.0)
    assert_same(run_both(scatter_add, h0, idx, v), tuple(want))


def test_augmented_add_differs_from_numpys_buffered_one_on_repeats():
    # NumPy's ``h[idx] += v`` reads every position first, so a repeated index adds once;
    # lattice accumulates every repeat, as np.add.at does (documented)
    h0, idx, v = np.zeros(3), np.array([1, 1, 1]), np.ones(3)
    buffered = h0.copy()
    buffered[idx] += v
    assert buffered[1] == 1.0
    h, *_ = scatter_add(h0, idx, v)
    assert h[1] == 3.0


@lt.kernel
def histogram(x: lt.f64["n"], counts0: lt.i64["b"]):
    counts = lt.copy(counts0)
    b = lt.floor(x * counts0.shape[0]).astype(lt.i64)
    counts[b] += 1
    return counts


@given(st.integers(0, 50), st.integers(1, 6), st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_histogram_by_scatter_add(n, nbins, seed):
    x = np.random.default_rng(seed).random(n)
    want = np.zeros(nbins, np.int64)
    np.add.at(want, np.floor(x * nbins).astype(np.int64), 1)
    assert_same(run_both(histogram, x, np.zeros(nbins, np.int64)), want)


@lt.kernel
def scatter_rows(X0: lt.f64["n", "d"], idx: lt.i64["m"], V: lt.f64["m", "d"], w: lt.f64["d"],
                 cols: lt.i64["k"]):
    A = lt.copy(X0)
    A[idx] += V
    B = lt.copy(X0)
    B[idx] += w          # a row broadcast into every selected row
    C = lt.copy(X0)
    C[:, cols] += 1.0
    return A, B, C


@given(mat_and_idx(axis=0), st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_scatter_add_rows_and_columns(case, seed):
    X0, idx = case
    n, d = X0.shape
    V = np.arange(idx.size * d, dtype=float).reshape(idx.size, d)
    w = np.linspace(0, 1, d)
    cols = np.random.default_rng(seed).integers(-d, d, 3)
    A, B, C = X0.copy(), X0.copy(), X0.copy()
    np.add.at(A, idx, V)
    np.add.at(B, idx, w)
    np.add.at(C, (slice(None), cols), 1.0)
    assert_same(run_both(scatter_rows, X0, idx, V, w, cols), (A, B, C))


@lt.kernel
def scatter_set(x0: lt.f64["n"], idx: lt.i64["m"], v: lt.f64["m"]):
    x = lt.copy(x0)
    x[idx] = v
    y = lt.copy(x0)
    y[idx] = 0.0
    return x, y


@given(vec_and_idx())
@settings(max_examples=25)
def test_scatter_set_keeps_the_last_write(case):
    x0, idx = case
    v = np.arange(idx.size, dtype=float) + 10.0
    x, y = x0.copy(), x0.copy()
    x[idx] = v  # NumPy: the last of repeated indices wins
    y[idx] = 0.0
    assert_same(run_both(scatter_set, x0, idx, v), (x, y))


# --------------------------------------------------------------------------- masks
@lt.kernel
def mask_reductions(x: lt.f64["n"]):
    pos = x[x > 0]
    return pos.sum(), x[x < 0.5].shape[0], np.count_nonzero(x > 0)


@lt.kernel
def mask_mean(x: lt.f64["n"]) -> lt.f64:
    return x[x > 0].mean()


@lt.kernel
def mask_max(x: lt.f64["n"]) -> lt.f64:
    return x[x > 0].max()


@given(masks)
@settings(max_examples=25)
def test_mask_selections_and_their_reductions(case):
    n, _, seed = case
    x = np.random.default_rng(seed).standard_normal(n)
    got = run_both(mask_reductions, x)
    assert_same(got, (x[x > 0].sum(), np.int64(x[x < 0.5].shape[0]),
                      np.int64(np.count_nonzero(x > 0))))
    if (x > 0).any():
        assert_same(run_both(mask_mean, x), x[x > 0].mean())
        assert_same(run_both(mask_max, x), x[x > 0].max())
    else:
        with pytest.raises(ValueError):
            np.max(x[x > 0])
        with pytest.raises(ValueError):
            mask_max(x)
        with pytest.raises(ValueError):
            mask_max.interpret(x)
        with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):
            want = x[x > 0].mean()
        assert np.isnan(want) and np.isnan(mask_mean(x))


@lt.kernel
def mask_matrix(X: lt.f64["n", "d"], keep: lt.bool_["n"]):
    rows = X[keep]
    return rows.sum(axis=0), X[X > 0].sum(), X[keep, 1:].sum(axis=0), X[:, X[0] > 0].sum(axis=1)


@given(st.integers(1, 5), st.integers(1, 4), st.sampled_from([0.0, 0.5, 1.0]),
       st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_masks_over_rows_and_whole_matrices(n, d, p, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    keep = _mask(rng, n, p)
    assert_same(run_both(mask_matrix, X, keep),
                (X[keep].sum(axis=0), X[X > 0].sum(), X[keep, 1:].sum(axis=0),
                 X[:, X[0] > 0].sum(axis=1)))


@lt.kernel
def mask_stores(x0: lt.f64["n"], lo: lt.f64):
    x = lt.copy(x0)
    x[x0 < lo] = lo          # clip from below
    y = lt.copy(x0)
    y[x0 > 0] += 10.0
    z = lt.zeros(x0.shape[0])
    z[x0 > 0] = x0[x0 > 0] * 2.0  # a value of the selection's run-time size
    return x, y, z


@given(masks, st.floats(-1, 1))
@settings(max_examples=25)
def test_mask_stores(case, lo):
    n, _, seed = case
    x0 = np.random.default_rng(seed).standard_normal(n)
    x, y, z = x0.copy(), x0.copy(), np.zeros(n)
    x[x0 < lo] = lo
    y[x0 > 0] += 10.0
    z[x0 > 0] = x0[x0 > 0] * 2.0
    assert_same(run_both(mask_stores, x0, lo), (x, y, z))


@lt.kernel
def mask_store_wrong_size(x0: lt.f64["n"], v: lt.f64["m"]):
    x = lt.copy(x0)
    x[x0 > 0] = v
    return x


def test_mask_store_of_a_mismatching_size_raises():
    x0, v = np.array([1.0, -1.0, 2.0]), np.array([5.0, 6.0])
    want = x0.copy()
    want[x0 > 0] = v
    assert_same(run_both(mask_store_wrong_size, x0, v), want)
    with pytest.raises(ValueError):
        mask_store_wrong_size(x0, np.ones(3))
    with pytest.raises(ValueError):
        mask_store_wrong_size.interpret(x0, np.ones(3))


# --------------------------------------------------------------------------- selections
@lt.kernel
def selections(X: lt.f64["n", "d"]):
    r, c = np.nonzero(X > 0)
    w = np.where(X < 0)
    f = np.flatnonzero(X > 0)
    return ((r * 10 + c).sum(), r.shape[0], (w[0] - w[1]).sum(), f.sum(), np.count_nonzero(X),
            np.count_nonzero(X > 0, axis=0), np.extract(X > 0, X).sum(),
            np.compress(X[:, 0] > 0, X, axis=0).sum(axis=0),
            (X > 0).nonzero()[1].sum(), (np.argwhere(X > 0) * lt.arange(2)).sum(axis=0))


@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_nonzero_where_argwhere_flatnonzero_count_extract_compress(n, d, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < 0.6)
    r, c = np.nonzero(X > 0)
    w = np.where(X < 0)
    want = (np.int64((r * 10 + c).sum()), np.int64(r.shape[0]), np.int64((w[0] - w[1]).sum()),
            np.int64(np.flatnonzero(X > 0).sum()), np.int64(np.count_nonzero(X)),
            np.count_nonzero(X > 0, axis=0).astype(np.int64), np.extract(X > 0, X).sum(),
            np.compress(X[:, 0] > 0, X, axis=0).sum(axis=0),
            np.int64((X > 0).nonzero()[1].sum()),
            (np.argwhere(X > 0) * np.arange(2)).sum(axis=0))
    assert_same(run_both(selections, X), want)


@lt.kernel
def takes(X: lt.f64["n", "d"], idx: lt.i64["m"], x: lt.f64["n"]):
    return np.take(X, idx, axis=1), np.take(X, idx % X.shape[0], 0), np.take(x, idx % x.shape[0])


@lt.kernel
def take_flat(X: lt.f64["n", "d"], idx: lt.i64["m"]):
    return np.take(X, idx)


@given(mat_and_idx(axis=1))
@settings(max_examples=20)
def test_take(case):
    X, idx = case
    x = X[:, 0].copy()
    assert_same(run_both(takes, X, idx, x),
                (np.take(X, idx, axis=1), np.take(X, idx % X.shape[0], 0),
                 np.take(x, idx % x.shape[0])))
    flat = np.random.default_rng(idx.size).integers(-X.size, X.size, idx.size)
    assert_same(run_both(take_flat, X, flat), np.take(X, flat))


@lt.kernel
def along(X: lt.f64["n", "d"], I: lt.i64["n", "k"], J: lt.i64["p", "d"], c: lt.i64["n", 1]):
    return (np.take_along_axis(X, I, axis=1), np.take_along_axis(X, J, axis=0),
            np.take_along_axis(X, c, -1), np.take_along_axis(X, lt.argmax(X, axis=1)[:, None], 1))


@given(st.integers(1, 5), st.integers(1, 4), st.integers(0, 4), st.integers(0, 2**31 - 1))
@settings(max_examples=20)
def test_take_along_axis(n, d, k, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    I = rng.integers(-d, d, (n, k))
    J = rng.integers(-n, n, (3, d))
    c = rng.integers(0, d, (n, 1))
    want = (np.take_along_axis(X, I, 1), np.take_along_axis(X, J, 0), np.take_along_axis(X, c, -1),
            np.take_along_axis(X, X.argmax(axis=1)[:, None], 1))
    assert_same(run_both(along, X, I, J, c), want)


# --------------------------------------------------------------------------- gradients
def _fd_grad(f, args, k, eps=1e-6):
    """Central differences of the scalar ``f`` in argument ``k``."""
    args = [np.array(a, dtype=float) if j == k else a for j, a in enumerate(args)]
    g = np.zeros_like(args[k])
    for pos in np.ndindex(g.shape):
        hi = [a.copy() if j == k else a for j, a in enumerate(args)]
        lo = [a.copy() if j == k else a for j, a in enumerate(args)]
        hi[k][pos] += eps
        lo[k][pos] -= eps
        g[pos] = (f(*hi) - f(*lo)) / (2 * eps)
    return g


@lt.kernel
def loss_gather(X: lt.f64["n", "d"], r: lt.i64["m"], c: lt.i64["k"]) -> lt.f64:
    return (lt.sin(X[r]) * X[r]).sum() + (X[:, c] ** 2).sum() + X[r[:, None], c].sum() \
        + X[X > 0.5].sum() * 3.0


def _loss_gather_np(X, r, c):
    return (anp.sin(X[r]) * X[r]).sum() + (X[:, c] ** 2).sum() + X[r[:, None], c].sum() \
        + X[X > 0.5].sum() * 3.0


@given(st.integers(1, 4), st.integers(1, 4), st.integers(0, 5), st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_gather_and_mask_gradients_match_autograd(n, d, m, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    r, c = rng.integers(-n, n, m), rng.integers(-d, d, m)
    want = autograd.grad(_loss_gather_np)(X, r, c)
    np.testing.assert_allclose(lt.grad(loss_gather)(X, r, c), want, rtol=1e-12, atol=1e-12)


@lt.kernel
def loss_along(X: lt.f64["n", "d"], I: lt.i64["n", "k"], idx: lt.i64["m"]) -> lt.f64:
    return (np.take_along_axis(X, I, axis=1) ** 3).sum() + lt.exp(np.take(X, idx, 1)).sum()


def test_take_along_axis_gradient_matches_autograd():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4, 3))
    I = rng.integers(-3, 3, (4, 5))
    idx = np.array([0, 2, 2, -1])

    def ref(X):
        return (X[np.arange(4)[:, None], I] ** 3).sum() + anp.exp(X[:, idx]).sum()
    np.testing.assert_allclose(lt.grad(loss_along)(X, I, idx), autograd.grad(ref)(X),
                               rtol=1e-12, atol=1e-12)


@lt.kernel
def loss_scatter(h0: lt.f64["n"], idx: lt.i64["m"], v: lt.f64["m"]) -> lt.f64:
    h = h0 * 1.0
    h[idx] += v * v
    g = lt.zeros(h0.shape[0])
    g[idx] = lt.sin(v)      # a repeated index: only the last write reaches the result
    m = h0 * 1.0
    m[h0 > 0] = v[:1] * 2.0
    return (h * h).sum() + (g * h0).sum() + (m * m).sum()


@given(vec_and_idx(max_m=6))
@settings(max_examples=15)
def test_scatter_gradients_match_finite_differences(case):
    h0, idx = case
    if idx.size == 0:
        idx = np.array([0])
    v = np.linspace(-0.7, 1.3, idx.size)
    grad = lt.grad(loss_scatter, argnums=(0, 2))
    gh, gv = grad(h0, idx, v)
    f = loss_scatter.interpret
    np.testing.assert_allclose(gh, _fd_grad(f, (h0, idx, v), 0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gv, _fd_grad(f, (h0, idx, v), 2), rtol=1e-6, atol=1e-6)


@lt.kernel
def loss_in_loop(X: lt.f64["n", "d"], idx: lt.i64["m"], steps: lt.i64) -> lt.f64:
    s = 0.0
    for t in range(steps):
        s += (X[idx] * X[idx]).sum() * (t + 1)
    return s


def test_gather_gradient_inside_a_loop():
    X = np.random.default_rng(1).standard_normal((4, 3))
    idx = np.array([1, 1, -1])
    want = autograd.grad(lambda X: sum((X[idx] * X[idx]).sum() * (t + 1) for t in range(3)))(X)
    np.testing.assert_allclose(lt.grad(loss_in_loop)(X, idx, 3), want, rtol=1e-12)


# --------------------------------------------------------------------------- bounds checks
@lt.kernel(boundscheck=True)
def checked_gather(values: lt.f64["n"], idx: lt.i64["m"]) -> lt.f64:
    return values[idx].sum()


@lt.kernel(boundscheck=True)
def checked_scatter(bins: lt.i64["n"], idx: lt.i64["m"]):
    h = lt.copy(bins)
    h[idx] += 1
    g = lt.copy(bins)
    g[idx] = 0
    return h, g


@lt.kernel(boundscheck=True)
def checked_take(X: lt.f64["n", "d"], idx: lt.i64["m"]):
    return np.take(X, idx).sum()


def _line(fn, text):
    import inspect
    lines, first = inspect.getsourcelines(fn)
    return first + next(k for k, s in enumerate(lines) if text in s)


@pytest.mark.parametrize("bad", [5, -6, 1 << 40, -(1 << 40)])
def test_out_of_range_index_arrays_raise_index_error_naming_the_array(bad):
    x = np.arange(5.0)
    assert checked_gather(x, np.array([-5, 4, 0])) == x[[-5, 4, 0]].sum()
    idx = np.array([0, bad, 1])
    line = _line(checked_gather.fn, "return values[idx]")
    with pytest.raises(IndexError, match=rf"'values'.*test_fancy_indexing.py:{line}"):
        checked_gather(x, idx)
    with pytest.raises(IndexError, match="'values'"):
        checked_gather.interpret(x, idx)
    line = _line(checked_scatter.fn, "h[idx] += 1")
    with pytest.raises(IndexError, match=rf"'h'.*test_fancy_indexing.py:{line}"):
        checked_scatter(np.zeros(5, np.int64), idx)
    with pytest.raises(IndexError, match="'h'"):
        checked_scatter.interpret(np.zeros(5, np.int64), idx)


def test_take_without_axis_checks_the_flat_position():
    X = np.arange(6.0).reshape(2, 3)
    assert checked_take(X, np.array([-6, 5])) == np.take(X, [-6, 5]).sum()
    for bad in (6, -7, 100):
        with pytest.raises(IndexError):
            np.take(X, [bad])
        with pytest.raises(IndexError):
            checked_take(X, np.array([bad]))


def test_index_errors_free_the_temporaries():
    import json
    import os
    import pathlib
    import subprocess
    import sys
    here = pathlib.Path(__file__).parent
    env = dict(os.environ, PYTHONPATH=str(here.parent.parent))
    p = subprocess.run([sys.executable, str(here / "fancy_indexing_leaks.py")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {
        "gather": 0, "scatter": 0, "store": 0, "gather malloc faults": 0,
        "masked malloc faults": 0}


# --------------------------------------------------------------------------- compile errors
def _compile_error(src_fn, *args):
    with pytest.raises(lt.CompileError) as info:
        lt.kernel(src_fn)(*args)
    return str(info.value)


def _float_index(x: lt.f64["n"], w: lt.f64["n"]):
    return x[w]


def _mask_mismatch(X: lt.f64["n", "d"], keep: lt.bool_["d"]):
    return X[keep].sum()


def _newaxis_with_array(x: lt.f64["n"], idx: lt.i64["m"]):
    return x[idx, None]


def _constant_list(x: lt.f64["n"]):
    return x[[0, 1]]


def _no_broadcast(X: lt.f64["n", "d"], a: lt.i64["m"], b: lt.i64["k"]):
    return X[a, b]


def _multiply_at(x: lt.f64["n"], idx: lt.i64["m"]):
    y = lt.copy(x)
    np.multiply.at(y, idx, 2.0)
    return y


@pytest.mark.parametrize("fn, args, match", [
    (_float_index, (np.ones(3), np.ones(3)), "must hold integers or bools"),
    (_mask_mismatch, (np.ones((2, 3)), np.ones(3, bool)), "does not match the indexed axes"),
    (_newaxis_with_array, (np.ones(3), np.array([0])), "None .* index array"),
    (_constant_list, (np.ones(3),), "pass the indices as an integer array argument"),
    (_no_broadcast, (np.ones((2, 3)), np.array([0, 1]), np.array([0, 1, 2])), "broadcast"),
    (_multiply_at, (np.ones(3), np.array([0])), "np.multiply.at is not supported"),
])
def test_unsupported_forms_are_clear_compile_errors(fn, args, match):
    msg = _compile_error(fn, *args)
    assert __file__.split("/")[-1] in msg or "test_fancy_indexing" in msg
    import re
    assert re.search(match, msg), msg


@lt.kernel
def one_mask_two_arrays(x: lt.f64["n"], w: lt.f64["n"]) -> lt.f64:
    m = x > 0
    return (x[m] * w[m]).sum() / lt.maximum(np.count_nonzero(m), 1)


def test_selections_by_one_mask_share_their_size():
    rng = np.random.default_rng(5)
    for n in (0, 1, 9):
        x, w = rng.standard_normal(n), rng.standard_normal(n)
        m = x > 0
        assert_same(run_both(one_mask_two_arrays, x, w),
                    (x[m] * w[m]).sum() / max(np.count_nonzero(m), 1))


def _two_masks(x: lt.f64["n"], w: lt.f64["n"]):
    return (x[x > 0] * w[w > 0]).sum()


def test_selections_by_different_masks_do_not_combine():
    # two masks may select different counts: their sizes are different run-time dims
    msg = _compile_error(_two_masks, np.ones(3), np.ones(3))
    assert "test_fancy_indexing" in msg and "do not broadcast" in msg
    # the message says why equal-looking counts are refused, and what to write instead
    assert "counts of two boolean masks are independent sizes" in msg
    assert "cannot be proven equal" in msg and "x[m] * w[m]" in msg and "lt.where" in msg


def _mask_and_full(x: lt.f64["n"], w: lt.f64["n"]):
    return (x[x > 0] * w).sum()


def _mask_and_slice(x: lt.f64["n"]):
    k = lt.argmax(x)  # a bound computed inside the kernel (an lt.i64 argument is a size)
    return (x[x > 0] * x[:k]).sum()


def _two_slices(x: lt.f64["n"]):
    k = lt.argmax(x)
    return (x[:k] * x[1:k + 1]).sum()


@pytest.mark.parametrize("fn,args,words", [
    (_mask_and_full, (np.ones(3), np.ones(3)), ["the count of a boolean mask and the size n",
                                                "lt.where"]),
    (_mask_and_slice, (np.ones(3),), ["the count of a boolean mask and a size known only "
                                        "when the kernel runs"]),
    (_two_slices, (np.ones(3),), ["two sizes known only when the kernel runs are independent",
                                    "slice both with the same bounds"]),
])
def test_run_time_sizes_that_cannot_be_proven_equal_are_explained(fn, args, words):
    msg = _compile_error(fn, *args)
    assert "test_fancy_indexing" in msg and "cannot be proven equal" in msg
    for w in words:
        assert w in msg, msg


@lt.kernel
def gather_dtypes(b: lt.bool_["n"], k: lt.i32["n"], f: lt.f32["n"], idx: lt.i64["m"]):
    bb = lt.copy(b)
    bb[idx] = ~b[idx]
    kk = lt.copy(k)
    kk[idx] += k[idx]
    return b[idx], k[idx], f[idx], bb, kk


@given(vec_and_idx())
@settings(max_examples=15)
def test_gathers_and_scatters_of_bool_int_and_f32_arrays(case):
    x, idx = case
    b, k, f = x > 0, (x * 10).astype(np.int32), x.astype(np.float32)
    bb, kk = b.copy(), k.copy()
    bb[idx] = ~b[idx]
    np.add.at(kk, idx, k[idx])
    assert_same(run_both(gather_dtypes, b, k, f, idx), (b[idx], k[idx], f[idx], bb, kk))


@given(st.integers(0, 2**31 - 1))
@settings(max_examples=10)
def test_strided_arrays_and_index_arrays(seed):
    rng = np.random.default_rng(seed)
    big = rng.standard_normal((8, 10))
    X = big[::2, 1::3]                # a strided argument
    idx = rng.integers(-4, 4, 12)[::3]  # a strided index array
    assert_same(run_both(gather_rows, X, idx), (X[idx], X[idx, 1:], X[idx, -1]))
    cols = rng.integers(-X.shape[1], X.shape[1], 4)[::-1]
    assert_same(run_both(gather_cols, X.T, cols, 1), (X.T[:, cols], X.T[1, cols], X.T[..., cols] * 2.0))


@lt.kernel(parallel=True)
def rows_by_neighbours(X: lt.f64["n", "d"], nb: lt.i64["n", "k"]):
    out = lt.empty((X.shape[0], X.shape[1]))
    for i in lt.prange(X.shape[0]):
        out[i] = X[nb[i]].sum(axis=0)
    return out


def test_gathers_in_a_prange_loop():
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 5))
    nb = rng.integers(-300, 300, (300, 4))
    want = X[nb].sum(axis=1)
    assert_same(run_both(rows_by_neighbours, X, nb), want)


@lt.kernel
def put(x0: lt.f64["n"], idx: lt.i64["m"], v: lt.f64["m"]):
    x = lt.copy(x0)
    np.put(x, idx, v)
    y = lt.copy(x0)
    np.put(y, idx, -1.0)
    return x, y


@given(vec_and_idx())
@settings(max_examples=15)
def test_np_put_on_vectors(case):
    x0, idx = case
    v = np.arange(idx.size, dtype=float)
    x, y = x0.copy(), x0.copy()
    np.put(x, idx, v)
    np.put(y, idx, -1.0)
    assert_same(run_both(put, x0, idx, v), (x, y))


@lt.kernel(parallel=True)
def mark_neighbours(nb: lt.i64["n", "k"], Z: lt.f64["n", "m"]):
    out = lt.zeros_like(Z)
    for i in lt.prange(Z.shape[0]):
        out[i, nb[i]] = 1.0  # a scatter into row i only: iterations stay independent
    return out


@lt.kernel(parallel=True)
def count_neighbours(nb: lt.i64["n", "k"], Z: lt.f64["n", "m"]):
    out = lt.zeros_like(Z)
    for i in lt.prange(Z.shape[0]):
        out[i, nb[i]] += 1.0  # a scatter-add into row i only
    return out


def test_scatter_add_into_row_i_in_a_prange_loop():
    rng = np.random.default_rng(1)
    nb = rng.integers(-50, 50, (3000, 6))
    Z = np.zeros((3000, 50))
    want = np.zeros_like(Z)
    np.add.at(want, (np.arange(3000)[:, None], nb), 1.0)
    assert_same(run_both(count_neighbours, nb, Z), want)


def test_scatter_set_into_row_i_in_a_prange_loop():
    rng = np.random.default_rng(0)
    nb = rng.integers(-50, 50, (3000, 3))
    Z = np.zeros((3000, 50))
    want = np.zeros_like(Z)
    want[np.arange(3000)[:, None], nb] = 1.0
    assert_same(run_both(mark_neighbours, nb, Z), want)


@lt.kernel
def set_masked_rows(X0: lt.f64["n", "d"], keep: lt.bool_["n"], w: lt.f64["d"]):
    X = lt.copy(X0)
    X[keep] = w      # a row broadcast into every selected row
    Y = lt.copy(X0)
    Y[~keep, 1:] += 1.0
    return X, Y


@given(st.integers(0, 6), st.integers(1, 4), st.integers(0, 2**31 - 1))
@settings(max_examples=15)
def test_masked_row_stores(n, d, seed):
    rng = np.random.default_rng(seed)
    X0, w = rng.standard_normal((n, d)), rng.standard_normal(d)
    keep = X0[:, 0] > 0
    X, Y = X0.copy(), X0.copy()
    X[keep] = w
    Y[~keep, 1:] += 1.0
    assert_same(run_both(set_masked_rows, X0, keep, w), (X, Y))


@lt.kernel
def scatter_then_gather(x: lt.f64["n"], idx: lt.i64["m"], keep: lt.bool_["n"]) -> lt.f64:
    h = lt.zeros_like(x)
    h[idx] += lt.sin(x[idx]) * x[idx]
    return (h * h).sum() + (x[keep] ** 3).sum()


def test_jvp_and_hessian_through_gathers_and_scatters():
    rng = np.random.default_rng(4)
    x = rng.standard_normal(6)
    idx = np.array([0, 3, 3, -1, 2])
    keep = x > 0

    def ref(x):
        h = anp.zeros(6)
        for i in idx:  # np.add.at, written so that autograd can follow it
            h = h + anp.sin(x[i]) * x[i] * (anp.arange(6) == i % 6)
        return (h * h).sum() + (x[keep] ** 3).sum()
    t = rng.standard_normal(6)
    val, tan = lt.jvp(scatter_then_gather, (x, idx, keep), (t, None, None))
    np.testing.assert_allclose(val, ref(x), rtol=1e-12)
    np.testing.assert_allclose(tan, autograd.grad(ref)(x) @ t, rtol=1e-10)
    np.testing.assert_allclose(lt.hessian(scatter_then_gather)(x, idx, keep),
                               autograd.hessian(ref)(x), rtol=1e-9, atol=1e-12)


@lt.kernel
def loss_neighbours(X: lt.f64["n", "d"], nb: lt.i64["n", "k"], w: lt.f64["d"]) -> lt.f64:
    s = 0.0
    for i in range(X.shape[0]):
        z = X[nb[i]] @ w          # a gather whose index array changes per iteration
        if z.sum() > 0:
            s += (z * z).sum()
        else:
            s += X[nb[i], 0].sum()
    return s


def test_gradient_of_gathers_in_a_loop_and_a_branch():
    rng = np.random.default_rng(8)
    X, w = rng.standard_normal((6, 3)), rng.standard_normal(3)
    nb = rng.integers(-6, 6, (6, 4))

    def ref(X, w):
        s = 0.0
        for i in range(6):
            z = X[nb[i]] @ w
            s = s + ((z * z).sum() if z.sum() > 0 else X[nb[i], 0].sum())
        return s
    gX, gw = lt.grad(loss_neighbours, argnums=(0, 2))(X, nb, w)
    np.testing.assert_allclose(gX, autograd.grad(ref, 0)(X, w), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gw, autograd.grad(ref, 1)(X, w), rtol=1e-12, atol=1e-12)


def test_take_along_axis_ir_builder_for_derivative_rules():
    # the IR-level builder a derivative rule uses (a sort's tangent reorders the input's)
    from lattice.ir.ad.common import take_along_axis as build
    from lattice.ir.core import Builder, Var, building
    from lattice.ir.interpret import eval_func
    from lattice.ir.types import Dim, TensorType, f64, i64
    from lattice.ir.verify import verify
    n, d = Dim.of("n"), Dim.of("d")
    b = Builder()
    with building(b):
        x, i = Var(TensorType(f64, (n, d))), Var(TensorType(i64, (n, d)))
        out = build(x, i, 1)
    func = verify(b.build([x, i], [out], "along"))
    X = np.random.default_rng(0).standard_normal((4, 3))
    order = np.argsort(X, axis=1)
    (got,) = eval_func(func, X, order)
    assert_same(got, np.take_along_axis(X, order, axis=1))


def _along_mismatch(X: lt.f64["n", "d"], I: lt.i64["m", "d"]):
    return np.take_along_axis(X, I, axis=1)


def test_take_along_axis_with_indices_that_do_not_broadcast():
    msg = _compile_error(_along_mismatch, np.ones((2, 3)), np.zeros((4, 3), np.int64))
    assert "take_along_axis" in msg and "test_fancy_indexing" in msg
