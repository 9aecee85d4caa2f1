"""Sorting and order statistics: ``np.sort``, ``argsort``, ``searchsorted``, ``bincount``,
``unique``, ``histogram``, ``median``, ``quantile``, ``percentile`` inside kernels.

Every case runs compiled and through the interpreter (``run_both``) and is checked against
NumPy itself: values with duplicates, NaN, ±inf and -0.0, empty arrays, every axis, f32/f64/
i32/i64/bool.  Run-time-sized results (``bincount``, ``unique``) are checked through what a
kernel can return: their length, reductions, and a copy into a fixed-size buffer.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lattice as lt

from conftest import assert_same, run_both

DTYPES = {"f32": (lt.f32, np.float32), "f64": (lt.f64, np.float64),
          "i32": (lt.i32, np.int32), "i64": (lt.i64, np.int64), "bool": (lt.bool_, np.bool_)}
SPECIAL = [0.0, -0.0, 1.0, -1.0, 2.5, math.nan, math.inf, -math.inf, 1e30, -3.0]


def values(dtype: str, max_size: int = 60) -> st.SearchStrategy:
    """Lists of values of ``dtype`` with many duplicates (and NaN, ±inf, -0.0 for floats)."""
    if dtype == "bool":
        el = st.booleans()
    elif dtype.startswith("i"):
        el = st.integers(-4, 4) | st.integers(-2**31, 2**31 - 1)
    else:
        el = st.sampled_from(SPECIAL) | st.integers(-3, 3).map(float)
    return st.lists(el, max_size=max_size).map(lambda v: np.array(v, dtype=DTYPES[dtype][1]))


def same_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal values, NaN where NaN, and the same sign of every zero (a stable sort keeps the
    input order of -0.0 and 0.0)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got, want, equal_nan=want.dtype.kind == "f")
    if want.dtype.kind == "f":
        assert np.array_equal(np.signbit(got), np.signbit(want))


# --------------------------------------------------------------------------- sort, argsort
def _sorter(T):
    @lt.kernel
    def srt(x: T["n"]):
        return np.sort(x), np.argsort(x, kind="stable")
    return srt


SORTERS = {name: _sorter(T) for name, (T, _) in DTYPES.items()}


@pytest.mark.parametrize("dtype", list(DTYPES))
@settings(max_examples=25)
@given(data=st.data())
def test_sort_argsort_1d(dtype, data):
    x = data.draw(values(dtype))
    s, a = run_both(SORTERS[dtype], x)
    same_bits(s, np.sort(x, kind="stable"))
    assert np.array_equal(s, np.sort(x), equal_nan=True)  # NumPy's default kind: same values
    assert_same(a, np.argsort(x, kind="stable").astype(np.int64))


@pytest.mark.parametrize("dtype", ["f64", "f32", "i64"])
def test_sort_long_with_ties_is_stable(dtype):
    # long enough for many merge passes; few distinct keys, so stability decides the order
    rng = np.random.default_rng(1)
    x = rng.integers(-5, 5, 40000).astype(DTYPES[dtype][1])  # blocks of 16384 and merges
    if dtype != "i64":
        x[rng.integers(0, 40000, 300)] = np.nan
    s, a = run_both(SORTERS[dtype], x)
    same_bits(s, np.sort(x, kind="stable"))
    assert_same(a, np.argsort(x, kind="stable").astype(np.int64))
    same_bits(x[a], s)


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_long_lanes_every_dtype(dtype):
    # lanes past the radix threshold: full-range integers, every special float value
    rng = np.random.default_rng(4)
    n = 6000
    if dtype.startswith("f"):
        x = np.concatenate([rng.choice(np.array(SPECIAL), n // 2), rng.standard_normal(n // 2)])
        x = rng.permutation(x).astype(DTYPES[dtype][1])
    elif dtype == "bool":
        x = rng.integers(0, 2, n).astype(bool)
    else:
        info = np.iinfo(DTYPES[dtype][1])
        x = rng.integers(info.min, info.max, n, endpoint=True, dtype=DTYPES[dtype][1])
        x[:100] = info.min
        x[100:200] = info.max
        x = rng.permutation(x)
    s, a = run_both(SORTERS[dtype], x)
    same_bits(s, np.sort(x, kind="stable"))
    assert_same(a, np.argsort(x, kind="stable").astype(np.int64))


@lt.kernel
def sort_axes(x: lt.f64["a", "b", "c"]):
    return (np.sort(x, axis=0), np.sort(x, axis=1), np.sort(x), np.argsort(x, axis=0),
            np.argsort(x, axis=-2), lt.argsort(x, axis=2))


@settings(max_examples=20)
@given(shape=st.tuples(st.integers(0, 5), st.integers(0, 20), st.integers(0, 19)),
       seed=st.integers(0, 2**32 - 1))
def test_sort_every_axis(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.choice(np.array(SPECIAL), size=shape)
    got = run_both(sort_axes, x)
    want = [np.sort(x, axis=k, kind="stable") for k in (0, 1, 2)] + [
        np.argsort(x, axis=k, kind="stable") for k in (0, 1, 2)]
    for g, w in zip(got, want):
        same_bits(g, w)


def test_sort_strided_and_fortran_inputs():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((30, 40))
    for x in (base[::2, ::-3], np.asfortranarray(base), base.T):
        got = run_both(sort_axes, x[:, :, None] * np.ones(3))
        xx = x[:, :, None] * np.ones(3)
        same_bits(got[0], np.sort(xx, axis=0, kind="stable"))
        same_bits(got[3], np.argsort(xx, axis=0, kind="stable"))


def test_long_lanes_along_the_first_axis():
    # lanes gathered from a strided axis, long enough for the radix sort
    rng = np.random.default_rng(7)
    x = rng.choice(np.array(SPECIAL), size=(900, 3, 2)) * rng.integers(1, 4, (900, 3, 2))
    got = run_both(sort_axes, x)
    same_bits(got[0], np.sort(x, axis=0, kind="stable"))
    same_bits(got[3], np.argsort(x, axis=0, kind="stable"))


@lt.kernel
def sort_method(x: lt.f64["n"]):
    return x.argsort(), np.sort(x, kind="quicksort")


def test_methods_and_kinds():
    x = np.array([3.0, 1.0, np.nan, 1.0, -0.0, 0.0])
    a, s = run_both(sort_method, x)
    assert_same(a, np.argsort(x, kind="stable"))
    same_bits(s, np.sort(x, kind="stable"))


# --------------------------------------------------------------------------- searchsorted
@lt.kernel
def search(a: lt.f64["n"], v: lt.f64["p", "q"], s: lt.f64):
    return (np.searchsorted(a, v), np.searchsorted(a, v, side="right"),
            np.searchsorted(a, s), a.searchsorted(s, side="right"))


@lt.kernel
def search_mixed(a: lt.i32["n"], v: lt.f32["m"]):
    return np.searchsorted(a, v), np.searchsorted(a, 2)


@settings(max_examples=30)
@given(a=values("f64", 40), v=values("f64", 12), s=st.sampled_from(SPECIAL))
def test_searchsorted(a, v, s):
    a = np.sort(a)
    v2 = np.stack([v, v[::-1]])
    got = run_both(search, a, v2, s)
    want = (np.searchsorted(a, v2), np.searchsorted(a, v2, side="right"),
            np.searchsorted(a, s), np.searchsorted(a, s, side="right"))
    for g, w in zip(got, want):
        assert_same(g, np.asarray(w, dtype=np.int64))


@settings(max_examples=20)
@given(a=values("i32", 30), v=values("f32", 10))
def test_searchsorted_promotes(a, v):
    a = np.sort(a)
    got = run_both(search_mixed, a, v)
    assert_same(got[0], np.searchsorted(a, v).astype(np.int64))
    assert_same(got[1], np.int64(np.searchsorted(a, 2)))


# --------------------------------------------------------------------------- bincount, unique
@lt.kernel
def counts(x: lt.i64["n"], w: lt.f64["n"]):
    c = np.bincount(x)
    cm = np.bincount(x, minlength=7)
    cw = np.bincount(x, weights=w)
    pad = lt.zeros(x.shape[0] + 13, lt.i64)
    pad[:cm.shape[0]] = cm
    padw = lt.zeros(x.shape[0] + 13)
    padw[:cw.shape[0]] = cw
    return c.shape[0], cm.shape[0], c.max(), pad, padw


def _padded(v, n, dtype):
    out = np.zeros(n, dtype=dtype)
    out[:len(v)] = v
    return out


@settings(max_examples=30)
@given(x=st.lists(st.integers(0, 12), min_size=1, max_size=40), seed=st.integers(0, 99))
def test_bincount(x, seed):
    x = np.array(x, dtype=np.int64)
    w = np.random.default_rng(seed).standard_normal(len(x))
    n, nm, mx, pad, padw = run_both(counts, x, w)
    assert n == len(np.bincount(x)) and nm == len(np.bincount(x, minlength=7))
    assert mx == np.bincount(x).max()
    assert_same(pad, _padded(np.bincount(x, minlength=7), len(x) + 13, np.int64))
    assert_same(padw, _padded(np.bincount(x, weights=w), len(x) + 13, np.float64), rtol=1e-14)


@lt.kernel
def count_small(x: lt.i32["n"]):
    c = np.bincount(x, minlength=3)
    return c.shape[0], c.sum()


def test_bincount_empty_negative_and_i32():
    assert run_both(count_small, np.zeros(0, np.int32)) == (3, 0)
    assert run_both(count_small, np.array([5, 0, 5], np.int32)) == (6, 3)
    for run in (count_small, count_small.interpret):
        with pytest.raises(ValueError, match="non-negative"):
            run(np.array([1, -1], np.int32))


def _uniquer(T):
    @lt.kernel
    def uq(x: T["n"]):
        u = np.unique(x)
        pad = lt.zeros(x.shape[0], u.dtype)
        pad[:u.shape[0]] = u
        return u.shape[0], pad
    return uq


UNIQUERS = {name: _uniquer(T) for name, (T, _) in DTYPES.items()}


@pytest.mark.parametrize("dtype", list(DTYPES))
@settings(max_examples=25)
@given(data=st.data())
def test_unique(dtype, data):
    x = data.draw(values(dtype))
    m, pad = run_both(UNIQUERS[dtype], x)
    u = np.unique(x)
    assert m == len(u)
    assert np.array_equal(pad[:m], u, equal_nan=True)  # (-0.0 and 0.0 are one value)


# --------------------------------------------------------------------------- histogram
@lt.kernel
def hist_auto(x: lt.f64["n"]):
    return np.histogram(x, bins=7)


@lt.kernel
def hist_range(x: lt.f64["n"]):
    return np.histogram(x, bins=5, range=(-1.5, 2.0))


@lt.kernel
def hist_f32(x: lt.f32["n"]):
    c, e = np.histogram(x, 4)
    c2, e2 = np.histogram(x, bins=3, range=(0.1, 0.7))
    return c, e, c2, e2


@lt.kernel
def hist_int(x: lt.i64["n"], lo: lt.f64, hi: lt.f64):
    c, e = np.histogram(x, bins=3)
    c2, e2 = np.histogram(x, bins=4, range=(lo, hi))
    return c, e, c2, e2


def _hist_close(got, x, bins, rng=None):
    c, e = np.histogram(x, bins=bins, range=rng)
    assert_same(got[0], c.astype(np.int64))
    assert got[1].dtype == e.dtype
    np.testing.assert_array_equal(got[1], e)  # the edges exactly: counts depend on them


finite = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.0, 0.5, -1.5, 1e-300]) | st.floats(
    -10, 10, allow_nan=False)


@settings(max_examples=30)
@given(x=st.lists(finite, max_size=50))
def test_histogram_auto_and_range(x):
    x = np.array(x)
    _hist_close(run_both(hist_auto, x), x, 7)
    _hist_close(run_both(hist_range, x), x, 5, (-1.5, 2.0))


@settings(max_examples=30)
@given(x=st.lists(finite, max_size=50))
def test_histogram_f32(x):
    x = np.array(x, dtype=np.float32)
    got = run_both(hist_f32, x)
    _hist_close(got[:2], x, 4)
    _hist_close(got[2:], x, 3, (0.1, 0.7))


@settings(max_examples=20)
@given(x=st.lists(st.integers(-20, 20), max_size=40),
       lo=st.integers(-25, 5), width=st.integers(0, 30))
def test_histogram_int(x, lo, width):
    x = np.array(x, dtype=np.int64)
    got = run_both(hist_int, x, float(lo), float(lo + width))
    _hist_close(got[:2], x, 3)
    _hist_close(got[2:], x, 4, (float(lo), float(lo + width)))


def test_histogram_nan_inf_and_bad_range():
    x = np.array([0.0, np.nan, 1.0, np.inf, -np.inf, 2.0, 2.0])
    _hist_close(run_both(hist_range, x), x, 5, (-1.5, 2.0))  # outside and NaN: not counted
    for run in (hist_auto, hist_auto.interpret):
        with pytest.raises(ValueError, match="not finite"):
            run(x)
    for run in (hist_int, hist_int.interpret):
        with pytest.raises(ValueError, match="max must be larger than min"):
            run(np.arange(3), 2.0, 1.0)
        with pytest.raises(ValueError, match="not finite"):
            run(np.arange(3), 0.0, np.inf)


# --------------------------------------------------------------------------- order statistics
def check_stats(kern, args, want):
    """The interpreter is NumPy to the last bit; the compiled kernel agrees with it as every
    float kernel does (fastmath may contract ``b - d * w`` into one fused multiply-add)."""
    single = any(np.asarray(a).dtype == np.float32 for a in args)
    run_both(kern, *args, rtol=1e-6 if single else 1e-12)  # one contraction: an ulp or two
    for g, w in zip(kern.interpret(*args), want):
        assert_same(g, np.asarray(w), rtol=0)


@lt.kernel
def stats(x: lt.f64["n", "m"]):
    return (np.median(x, axis=0), np.median(x, axis=1, keepdims=True),
            np.percentile(x, 37.5, axis=0), np.quantile(x, 0.9, axis=-1, keepdims=True),
            np.quantile(x, [0.0, 0.25, 0.5, 1.0], axis=0), lt.percentile(x, (10, 99), axis=1))


def _stats_want(x):
    return (np.median(x, axis=0), np.median(x, axis=1, keepdims=True),
            np.percentile(x, 37.5, axis=0), np.quantile(x, 0.9, axis=-1, keepdims=True),
            np.quantile(x, [0.0, 0.25, 0.5, 1.0], axis=0), np.percentile(x, (10, 99), axis=1))


@settings(max_examples=25)
@given(shape=st.tuples(st.integers(1, 9), st.integers(1, 8)), seed=st.integers(0, 2**32 - 1),
       nans=st.booleans())
def test_median_quantile_percentile(shape, seed, nans):
    rng = np.random.default_rng(seed)
    x = rng.choice([-2.0, -0.0, 0.0, 1.0, 3.5, 7.25], size=shape) + rng.standard_normal(shape)
    if nans:
        x[rng.integers(0, shape[0]), rng.integers(0, shape[1])] = np.nan
    check_stats(stats, [x], _stats_want(x))


QS = np.array([0.05, 0.5, 0.95])


@lt.kernel
def stats_global_q(x: lt.f64["n", "m"]):
    return np.quantile(x, QS, axis=1, keepdims=True), np.percentile(x, 100 * QS[1], axis=0)


def test_quantiles_from_a_global_array_with_keepdims():
    x = np.random.default_rng(6).standard_normal((5, 8))
    check_stats(stats_global_q, [x], (np.quantile(x, QS, axis=1, keepdims=True),
                                      np.percentile(x, 100 * QS[1], axis=0)))


@lt.kernel
def stats_f32(x: lt.f32["n"]):
    return np.median(x), np.quantile(x, 0.3), np.percentile(x, [5, 50])


@lt.kernel
def stats_i32(x: lt.i32["n"]):
    return np.median(x), np.quantile(x, 0.3), np.percentile(x, [5, 50])


@lt.kernel
def stats_fixed(x: lt.f64[5]):
    return np.median(x), np.quantile(x, 0.3), np.percentile(x, [5, 50])


@pytest.mark.parametrize("kern,dt", [(stats_f32, np.float32), (stats_i32, np.int32)])
@settings(max_examples=25)
@given(n=st.integers(1, 30), seed=st.integers(0, 2**32 - 1))
def test_statistics_dtypes(kern, dt, n, seed):
    x = (np.random.default_rng(seed).standard_normal(n) * 100).astype(dt)
    check_stats(kern, [x], (np.median(x), np.quantile(x, 0.3), np.percentile(x, [5, 50])))


def test_statistics_static_size_and_empty():
    x = np.array([4.0, -1.0, 2.5, 2.5, 9.0])
    check_stats(stats_fixed, [x], (np.median(x), np.quantile(x, 0.3), np.percentile(x, [5, 50])))
    # an empty lane: NaN (NumPy's median warns and gives NaN; its quantile raises IndexError)
    m, q, p = run_both(stats_f32, np.zeros(0, np.float32))
    assert np.isnan(m) and np.isnan(q) and np.isnan(p).all()


# --------------------------------------------------------------------------- derivatives
@lt.kernel
def weighted_counts(x: lt.i64["n"], w: lt.f64["n"]) -> lt.f64:
    c = np.bincount(x, weights=w * w)
    return lt.sum(c * c)


def test_bincount_weights_forward_mode_matches_finite_differences():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, 12)
    w, t = rng.standard_normal(12), rng.standard_normal(12)
    _, dv = lt.jvp(weighted_counts, (x, w), (None, t))
    h = 1e-6
    fd = (weighted_counts(x, w + h * t) - weighted_counts(x, w - h * t)) / (2 * h)
    assert abs(dv - fd) <= 1e-6 * (1 + abs(fd))
    # reverse mode: the inner-product identity with the forward-mode tangent, and the closed
    # form d/dw_i sum(c^2) = 4 w_i c[x_i]
    g = lt.grad(weighted_counts, argnums=1)
    for gw in (g(x, w), g.interpret(x, w)):
        assert abs(float(np.dot(gw, t)) - dv) <= 1e-9 * (1 + abs(dv))
        np.testing.assert_allclose(gw, 4 * w * np.bincount(x, weights=w * w)[x], rtol=1e-12)


@lt.kernel
def sort_loss(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(np.sort(x) * lt.arange(x.shape[0]).astype(lt.f64))


@lt.kernel
def rank_loss(x: lt.f64["n"]) -> lt.f64:
    # argsort and searchsorted are integer-valued: no derivative flows through them
    r = np.argsort(x).astype(lt.f64)
    return lt.sum(x * r) + lt.sum(np.searchsorted(x, x).astype(lt.f64))


def test_derivatives_of_integer_results_and_sort():
    x = np.array([0.3, -1.0, 2.0, 0.5])
    g = lt.grad(rank_loss)(x)
    np.testing.assert_array_equal(g, np.argsort(x, kind="stable").astype(float))
    # sum(sort(x) * k): x_i gets the rank it sorts to
    want = np.empty(4)
    want[np.argsort(x, kind="stable")] = np.arange(4.0)
    np.testing.assert_array_equal(lt.grad(sort_loss)(x), want)


# --------------------------------------------------------------------------- errors
def _compile_error(fn, *args, match):
    with pytest.raises(lt.CompileError, match=match) as info:
        fn(*args)
    assert "test_sorting.py:" in str(info.value)


@lt.kernel
def bad_bins(x: lt.f64["n"]):
    return np.histogram(x, bins=0)


@lt.kernel
def bad_bins_edges(x: lt.f64["n"]):
    return np.histogram(x, bins=x)


@lt.kernel
def bad_range(x: lt.f64["n"]):
    return np.histogram(x, bins=3, range=(2.0, 1.0))


@lt.kernel
def bad_q(x: lt.f64["n"]):
    return np.quantile(x, 1.5)


@lt.kernel
def bad_pct(x: lt.f64["n"]):
    return np.percentile(x, -1)


@lt.kernel
def in_place_sort(x: lt.f64["n"]):
    y = lt.copy(x)
    y[1:].sort()  # through a view (y.sort() itself sorts y: test_argument_writes.py)
    return y


@lt.kernel
def bad_unique(x: lt.f64["n", "m"]):
    return np.unique(x).shape[0]


@lt.kernel
def bad_bincount(x: lt.f64["n"]):
    return np.bincount(x).shape[0]


@lt.kernel
def bad_side(x: lt.f64["n"]):
    return np.searchsorted(x, 1.0, side="middle")


@lt.kernel
def bad_scalar_sort(s: lt.f64):
    return np.sort(s)


V, M = np.zeros(3), np.zeros((3, 2))


@pytest.mark.parametrize("kern,args,match", [
    (bad_bins, V, "bins. must be positive"), (bad_bins_edges, V, "bins must be a positive"),
    (bad_range, V, "max must be larger than min"),
    (bad_q, V, r"Quantiles must be in the range \[0, 1\]"),
    (bad_pct, V, r"Percentiles must be in the range \[0, 100\]"),
    (in_place_sort, V, r"x = np.sort\(x\)"),
    (bad_unique, M, "unique: takes a 1-D array"), (bad_bincount, V, "bincount: takes a 1-D"),
    (bad_side, V, "side must be 'left' or 'right'"), (bad_scalar_sort, 1.0, "needs an array"),
])
def test_errors(kern, args, match):
    _compile_error(kern, args, match=match)


# --------------------------------------------------------------------------- partition
@lt.kernel
def parts(x: lt.f64["n", "m"]):
    return np.partition(x, 2, axis=0), np.argpartition(x, (1, 3)), lt.partition(x[0], -1)


def _is_partition(p, x, k, axis):
    """NumPy's contract: element k in its sorted place, nothing larger before it, nothing
    smaller after it, and a permutation of the input."""
    s = np.sort(x, axis=axis)
    pk = np.take(p, [k], axis=axis)
    assert np.array_equal(pk, np.take(s, [k], axis=axis), equal_nan=True)
    n = x.shape[axis]
    before = np.take(p, range(0, k % n), axis=axis)
    after = np.take(p, range(k % n + 1, n), axis=axis)
    assert not (before > pk).any() and not (after < pk).any()
    assert np.array_equal(np.sort(p, axis=axis), s, equal_nan=True)


@settings(max_examples=20)
@given(shape=st.tuples(st.integers(4, 9), st.integers(4, 12)), seed=st.integers(0, 2**32 - 1))
def test_partition_and_argpartition(shape, seed):
    x = np.random.default_rng(seed).integers(-3, 3, shape).astype(float)
    p0, a1, p2 = run_both(parts, x)
    _is_partition(p0, x, 2, 0)
    for k in (1, 3):
        _is_partition(np.take_along_axis(x, a1, axis=1), x, k, 1)
    _is_partition(p2, x[0], -1, 0)


@lt.kernel
def bad_kth(x: lt.f64[4]):
    return np.partition(x, 4)


def test_partition_kth_out_of_bounds():
    _compile_error(bad_kth, np.zeros(4), match=r"kth\(=4\) out of bounds")


@lt.kernel
def prefix_stats(x: lt.f64["n"], k: lt.i64):
    # lanes whose length is known only when the kernel runs (a slice with a traced bound)
    head = x[:k]
    return (np.median(head), np.percentile(head, 75), np.sort(head).max(),
            np.unique(head).shape[0])


@pytest.mark.parametrize("k", [1, 2, 7, 30])
def test_statistics_of_a_run_time_sized_lane(k):
    x = np.random.default_rng(k).integers(0, 5, 30).astype(float)
    h = x[:k]
    m, p, mx, nu = run_both(prefix_stats, x, k)
    assert_same(prefix_stats.interpret(x, k)[:2], (np.median(h), np.percentile(h, 75)), rtol=0)
    assert mx == h.max() and nu == len(np.unique(h))


@lt.kernel(parallel=True)
def row_medians(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    out = lt.empty(X.shape[0])
    for i in lt.prange(X.shape[0]):
        out[i] = np.median(X[i]) + np.sort(X[i])[0] + np.searchsorted(np.sort(X[i]), 0.0)
    return out


def test_sorting_inside_a_parallel_loop():
    X = np.random.default_rng(5).standard_normal((300, 5000))  # radix-length rows
    s = np.sort(X, axis=1)
    want = np.median(X, axis=1) + s[:, 0] + np.array([np.searchsorted(r, 0.0) for r in s])
    got = run_both(row_medians, X)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@lt.kernel
def _stats_of_everything(X: lt.f64["n", "m"]):
    return (np.median(X), np.median(X, keepdims=True), np.quantile(X, 0.3, keepdims=True),
            np.percentile(X, [10.0, 50.0], keepdims=True), np.sort(X, axis=None),
            np.argsort(X, axis=None))


def test_order_statistics_without_an_axis_use_the_flattened_array():
    X = np.random.default_rng(8).standard_normal((3, 4))
    want = (np.median(X), np.median(X, keepdims=True), np.quantile(X, 0.3, keepdims=True),
            np.percentile(X, [10.0, 50.0], keepdims=True), np.sort(X, axis=None),
            np.argsort(X, axis=None, kind="stable"))
    for k in (_stats_of_everything, _stats_of_everything.interpret):
        for g, w in zip(k(X), want):
            assert np.shape(g) == np.shape(w)
            np.testing.assert_allclose(g, w, rtol=1e-13)
