"""Reductions, scans and their methods: ``sum mean max min prod any all var std`` (with
``axis`` an int, a negative int, a tuple or None, ``keepdims``, ``ddof``), ``nansum nanmax
nanmin nanmean``, ``average``, ``np.linalg.norm``, ``logical_and/or/xor/not``, ``cumsum`` and
``cumprod`` along any axis, the array methods and ``.size``.

Every kernel runs compiled and through the interpreter (``run_both``) and is checked against
NumPy: random shapes (empty axes included) and values (NaN where it matters), NumPy's result
dtypes.  Gradients are checked against central finite differences and against autograd.
"""
import contextlib
import functools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lattice as lt

from conftest import assert_same, run_both
from test_control_flow import central_difference

ag = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")

#: every axis form NumPy accepts for a 3-D array
AXES = [None, 0, 1, 2, -1, (0, 2), (-1, 0), (1,), (0, 1, 2)]


@contextlib.contextmanager
def quiet():
    """NumPy's answers for empty and all-NaN lanes come with RuntimeWarnings."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def shapes(min_side: int = 0) -> st.SearchStrategy:
    return st.tuples(*(st.integers(min_side, 4),) * 3)


def data_of(shape, dtype, rng, nan=False):
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    if np.dtype(dtype).kind in "iu":
        return rng.integers(-3, 4, size=shape).astype(dtype)
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.15] = 0.0
    if nan:
        x[rng.random(shape) < 0.25] = np.nan
    return x


# --------------------------------------------------------------------------- every axis form
def _every_axis(fn, x, **kw):
    """``fn`` over every axis form, with and without keepdims (a Python helper: traced)."""
    out = []
    for ax in AXES:
        for kd in (False, True):
            out.append(fn(x, axis=ax, keepdims=kd, **kw))
    return tuple(out)


def _np_every_axis(fn, x, **kw):
    with quiet():
        return tuple(np.asarray(fn(x, axis=ax, keepdims=kd, **kw))
                     for ax in AXES for kd in (False, True))


# name -> (lattice op, NumPy op, the dtypes checked, whether lanes may be empty, NaNs in data)
REDUCERS = {
    "sum": (lt.sum, np.sum, (np.float64, np.float32, np.int32, np.bool_), True, False),
    "mean": (lt.mean, np.mean, (np.float64, np.int64), True, False),
    "max": (lt.max, np.max, (np.float64, np.int32, np.bool_), False, True),
    "min": (lt.min, np.min, (np.float32, np.int64), False, True),
    "prod": (lt.prod, np.prod, (np.float64, np.int32, np.bool_, np.uint8), True, False),
    "any": (lt.any, np.any, (np.float64, np.int64, np.bool_), True, True),
    "all": (lt.all, np.all, (np.float64, np.int32, np.bool_), True, True),
    "var": (lt.var, np.var, (np.float64, np.int32, np.float32), True, False),
    "std": (lt.std, np.std, (np.float64, np.bool_), True, False),
    "nansum": (lt.nansum, np.nansum, (np.float64, np.int64), True, True),
    "nanmax": (lt.nanmax, np.nanmax, (np.float64,), False, True),
    "nanmin": (lt.nanmin, np.nanmin, (np.float32, np.int32), False, True),
    "nanmean": (lt.nanmean, np.nanmean, (np.float64,), True, True),
    "nanprod": (lt.nanprod, np.nanprod, (np.float64, np.int32), True, True),
    "nanvar": (lt.nanvar, np.nanvar, (np.float64, np.float32, np.int64), True, True),
    "nanstd": (lt.nanstd, np.nanstd, (np.float64,), True, True),
    "ptp": (lt.ptp, np.ptp, (np.float64, np.int32, np.uint8), False, True),
    "count_nonzero": (lt.count_nonzero, np.count_nonzero, (np.float64, np.bool_), True, True),
}
_ANN = {np.float64: lt.f64, np.float32: lt.f32, np.int32: lt.i32, np.int64: lt.i64,
        np.bool_: lt.bool_, np.uint8: lt.u8}
_KERNELS: dict = {}


def _reducer(name, dtype, **kw):
    key = (name, dtype, tuple(sorted(kw.items())))
    if key not in _KERNELS:
        fn = functools.partial(REDUCERS[name][0], **kw)
        T = _ANN[dtype]

        @lt.kernel
        def k(x: T["a", "b", "c"]):
            return _every_axis(fn, x)
        _KERNELS[key] = k
    return _KERNELS[key]


@pytest.mark.parametrize("name", list(REDUCERS))
@settings(max_examples=6, deadline=None)
@given(shape=shapes(), seed=st.integers(0, 2**31), which=st.integers(0, 3))
def test_reductions_over_every_axis_form_match_numpy(name, shape, seed, which):
    _, npfn, dtypes, empty_ok, nan = REDUCERS[name]
    dtype = dtypes[which % len(dtypes)]
    if not empty_ok:
        shape = tuple(builtins_max(s, 1) for s in shape)
    x = data_of(shape, dtype, np.random.default_rng(seed), nan=nan)
    k = _reducer(name, dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    got = run_both(k, x, rtol=rtol)
    assert_same(got, _np_every_axis(npfn, x), rtol=rtol, atol=1e-6 if rtol > 1e-9 else 1e-12)


def builtins_max(a, b):
    return a if a > b else b


@settings(max_examples=8, deadline=None)
@given(shape=shapes(), seed=st.integers(0, 2**31), ddof=st.sampled_from([0, 1, 2]))
def test_var_std_ddof(shape, seed, ddof):
    x = data_of(shape, np.float64, np.random.default_rng(seed))
    for name, npfn in (("var", np.var), ("std", np.std)):
        got = run_both(_reducer(name, np.float64, ddof=ddof), x)
        assert_same(got, _np_every_axis(npfn, x, ddof=ddof))


def test_empty_reductions_take_numpys_values():
    @lt.kernel
    def k(x: lt.f64["n"]):
        return (np.prod(x), np.any(x), np.all(x), np.sum(x), np.std(x), np.var(x), x.mean(),
                np.nansum(x), np.cumsum(x), np.cumprod(x), np.linalg.norm(x))
    e = np.zeros(0)
    with quiet():
        want = (np.prod(e), np.any(e), np.all(e), np.sum(e), np.std(e), np.var(e), e.mean(),
                np.nansum(e), np.cumsum(e), np.cumprod(e), np.linalg.norm(e))
    assert_same(run_both(k, e), tuple(np.asarray(w) for w in want))

    @lt.kernel
    def m(x: lt.f64["n"]):
        return np.max(x)
    with pytest.raises(ValueError):
        m(e)
    with pytest.raises(ValueError):
        m.interpret(e)


# --------------------------------------------------------------------------- NumPy spellings
def test_methods_and_numpy_calls_mirror_numpy():
    @lt.kernel
    def k(x: lt.f64["n", 3], i: lt.i32["n", 3]):
        return (x.sum(axis=1, keepdims=True), x.mean(axis=-1, keepdims=True), x.max(0),
                x.min(axis=(0, 1), keepdims=True), x.prod(axis=1), i.prod(), x.any(axis=0),
                x.all(keepdims=True), x.std(axis=0, ddof=1), x.var(axis=1), x.cumsum(axis=0),
                x.cumprod(axis=-1), i.cumsum(axis=1), i.cumprod(axis=0), x.size,
                np.amax(x, axis=1, keepdims=True), np.argmax(x, axis=0, keepdims=True),
                x.argmin(axis=1, keepdims=True), np.logical_and(x > 0, i),
                np.logical_or(x, i > 1), np.logical_xor(x > 0, i > 0), np.logical_not(i),
                np.average(x, axis=0), np.average(x, axis=1, weights=np.arange(3) * 0.5),
                np.average(x, weights=x * x))
    rng = np.random.default_rng(3)
    x = data_of((4, 3), np.float64, rng)
    i = data_of((4, 3), np.int32, rng)
    want = (x.sum(axis=1, keepdims=True), x.mean(axis=-1, keepdims=True), x.max(0),
            x.min(axis=(0, 1), keepdims=True), x.prod(axis=1), i.prod(), x.any(axis=0),
            x.all(keepdims=True), x.std(axis=0, ddof=1), x.var(axis=1), x.cumsum(axis=0),
            x.cumprod(axis=-1), i.cumsum(axis=1), i.cumprod(axis=0), np.int64(x.size),
            np.amax(x, axis=1, keepdims=True), np.argmax(x, axis=0, keepdims=True),
            x.argmin(axis=1, keepdims=True), np.logical_and(x > 0, i),
            np.logical_or(x, i > 1), np.logical_xor(x > 0, i > 0), np.logical_not(i),
            np.average(x, axis=0), np.average(x, axis=1, weights=np.arange(3) * 0.5),
            np.average(x, weights=x * x))
    assert_same(run_both(k, x, i), tuple(np.asarray(w) for w in want))


def test_size_of_literal_shapes_is_a_python_int():
    @lt.kernel
    def k(x: lt.f64[3, 4]):
        return lt.zeros(x.size) + x.ndim
    assert_same(run_both(k, np.ones((3, 4))), np.zeros(12) + 2)


NORMS = [(None, None), (2, None), (1, None), (math.inf, None), (-math.inf, None), (0, None),
         (3, None), (0.5, None), (None, 0), (1, -1), (math.inf, 1), (None, (0, 1)),
         ("fro", (1, 0)), (1, (0, 1)), (-1, (1, 0)), (math.inf, (0, 1)), (-math.inf, (1, 0))]


def _norms(x):
    out = []
    for ordv, ax in NORMS:
        src = x if ax is not None or ordv is None else x[0]
        for kd in (False, True):
            out.append(lt.norm(src, ordv, ax, kd))
    out.append(lt.norm(x, "fro"))
    out.append(lt.norm(x, math.inf))
    return tuple(out)


@settings(max_examples=8, deadline=None)
@given(shape=st.tuples(st.integers(1, 5), st.integers(1, 5)), seed=st.integers(0, 2**31))
def test_linalg_norm_matches_numpy(shape, seed):
    @lt.kernel
    def k(x: lt.f64["n", "m"]):
        return _norms(x)
    x = data_of(shape, np.float64, np.random.default_rng(seed))
    want = []
    for ordv, ax in NORMS:
        src = x if ax is not None or ordv is None else x[0]
        for kd in (False, True):
            want.append(np.asarray(np.linalg.norm(src, ordv, ax, kd)))
    want += [np.asarray(np.linalg.norm(x, "fro")), np.asarray(np.linalg.norm(x, np.inf))]
    assert_same(run_both(k, x), tuple(want), rtol=1e-12, atol=1e-15)


def test_linalg_norm_of_integers_and_through_np():
    @lt.kernel
    def k(v: lt.i64["k"], x: lt.f32["n", "m"]):
        return np.linalg.norm(v), np.linalg.norm(x, axis=1), np.linalg.norm(x, keepdims=True)
    v, x = np.arange(5), np.ones((2, 3), np.float32)
    want = (np.linalg.norm(v), np.linalg.norm(x, axis=1), np.linalg.norm(x, keepdims=True))
    assert_same(run_both(k, v, x), want, rtol=1e-6)


# --------------------------------------------------------------------------- scans
SCAN_DTYPES = (np.float64, np.float32, np.int32, np.int64, np.bool_, np.uint16)


@pytest.mark.parametrize("dtype", SCAN_DTYPES)
@settings(max_examples=6, deadline=None)
@given(shape=shapes(), seed=st.integers(0, 2**31))
def test_cumsum_cumprod_along_each_axis(dtype, shape, seed):
    T = _ANN.get(dtype, lt.u16)
    key = ("scan", dtype)
    if key not in _KERNELS:
        @lt.kernel
        def k(x: T["a", "b", "c"]):
            return (np.cumsum(x, axis=0), np.cumsum(x, axis=1), x.cumsum(axis=-1),
                    np.cumprod(x, axis=0), x.cumprod(1), np.cumprod(x, axis=2),
                    np.cumsum(x[0, 0]), np.cumprod(x[0, 0]))
        _KERNELS[key] = k
    k = _KERNELS[key]
    shape = (builtins_max(shape[0], 1), builtins_max(shape[1], 1), shape[2])
    x = data_of(shape, dtype, np.random.default_rng(seed))
    want = (np.cumsum(x, axis=0), np.cumsum(x, axis=1), x.cumsum(axis=-1),
            np.cumprod(x, axis=0), x.cumprod(1), np.cumprod(x, axis=2),
            np.cumsum(x[0, 0]), np.cumprod(x[0, 0]))
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    assert_same(run_both(k, x, rtol=rtol), want, rtol=rtol)


@settings(max_examples=8, deadline=None)
@given(shape=st.tuples(st.integers(1, 4), st.integers(0, 5)), seed=st.integers(0, 2**31))
def test_nan_scans_and_cumulative_sum(shape, seed):
    @lt.kernel
    def k(x: lt.f64["n", "m"], i: lt.i32["n", "m"]):
        return (np.nancumsum(x, axis=1), np.nancumprod(x, axis=0), np.nancumsum(i, axis=0),
                np.cumulative_sum(x, axis=1), np.cumulative_prod(x, axis=0, include_initial=True),
                np.cumulative_sum(i[0], include_initial=True), np.nanvar(x, axis=1, ddof=1),
                np.nanstd(x, axis=0, keepdims=True))
    rng = np.random.default_rng(seed)
    x, i = data_of(shape, np.float64, rng, nan=True), data_of(shape, np.int32, rng)
    with quiet():
        want = (np.nancumsum(x, axis=1), np.nancumprod(x, axis=0), np.nancumsum(i, axis=0),
                np.cumulative_sum(x, axis=1), np.cumulative_prod(x, axis=0, include_initial=True),
                np.cumulative_sum(i[0], include_initial=True), np.nanvar(x, axis=1, ddof=1),
                np.nanstd(x, axis=0, keepdims=True))
    assert_same(run_both(k, x, i), want)


def test_scan_of_a_strided_view_and_a_scalar():
    @lt.kernel
    def k(x: lt.f64["n", "m"], s: lt.f64):
        return np.cumsum(x.T, axis=1), np.sum(np.cumprod(x[::2], axis=0), axis=0), np.cumsum(s)
    x = np.arange(12.0).reshape(4, 3) / 7
    assert_same(run_both(k, x, 2.5),
                (np.cumsum(x.T, axis=1), np.sum(np.cumprod(x[::2], axis=0), axis=0),
                 np.cumsum(2.5)))


def test_cumsum_f16_rounds_each_step_like_numpy():
    @lt.kernel
    def k(x: lt.f16["n"]):
        return np.cumsum(x)
    x = (np.random.default_rng(0).random(300) * 10).astype(np.float16)
    assert_same(run_both(k, x, rtol=0), np.cumsum(x), rtol=0)


# --------------------------------------------------------------------------- gradients
def _k_cumprod(x: lt.f64["n", "m"], w: lt.f64["n", "m"]):
    return np.sum(w * np.cumprod(x, axis=0)) + np.sum(w * x.cumprod(axis=1))


def _k_prod(x: lt.f64["n", "m"], w: lt.f64["n", "m"]):
    return np.sum(np.prod(x, axis=0) * w[0]) + np.prod(x) + np.sum(x.prod(axis=1, keepdims=True) * w)


def _k_cumsum(x: lt.f64["n", "m"], w: lt.f64["n", "m"]):
    return np.sum(w * np.cumsum(x, axis=1) ** 2) + np.sum(w * x.cumsum(0))


def _k_stats(x: lt.f64["n", "m"], w: lt.f64["n", "m"]):
    return (np.sum(np.std(x, axis=0, ddof=1) * w[0]) + x.var() + np.linalg.norm(x)
            + np.sum(np.linalg.norm(x, axis=1) * w[:, 0]) + np.linalg.norm(x, 1)
            + np.sum(np.mean(x, axis=1, keepdims=True) * w) + np.average(x, weights=w * w)
            + np.nanmean(x) + np.sum(np.max(x, axis=1, keepdims=True) * w))


def _ag_running(x, axis):
    """Running products by repeated multiplication (autograd has no cumprod, and its prod
    divides by x, which is NaN at zeros): the oracle stays right through zeros."""
    lanes = [x[i] if axis == 0 else x[:, i] for i in range(x.shape[axis])]
    out = [lanes[0]]
    for v in lanes[1:]:
        out.append(out[-1] * v)
    return anp.stack(out, axis=axis)


def _ag_cumprod(x, w):
    return anp.sum(w * _ag_running(x, 0)) + anp.sum(w * _ag_running(x, 1))


def _ag_prod(x, w):
    p0, p1 = _ag_running(x, 0)[-1], _ag_running(x, 1)[:, -1:]
    return anp.sum(p0 * w[0]) + _ag_running(anp.reshape(p0, (1, -1)), 1)[0, -1] \
        + anp.sum(p1 * w)


def _ag_stats(x, w):
    return (anp.sum(anp.std(x, axis=0, ddof=1) * w[0]) + anp.var(x) + anp.sqrt(anp.sum(x * x))
            + anp.sum(anp.sqrt(anp.sum(x * x, axis=1)) * w[:, 0])
            + anp.max(anp.sum(anp.abs(x), axis=0))
            + anp.sum(anp.mean(x, axis=1, keepdims=True) * w)
            + anp.sum(x * w * w) / anp.sum(w * w) + anp.mean(x)
            + anp.sum(anp.max(x, axis=1, keepdims=True) * w))


GRADS = {
    "cumprod": (_k_cumprod, _ag_cumprod),
    "prod": (_k_prod, _ag_prod),
    "cumsum": (_k_cumsum, lambda x, w: anp.sum(w * anp.cumsum(x, axis=1) ** 2)
               + anp.sum(w * anp.cumsum(x, axis=0))),
    "stats": (_k_stats, _ag_stats),
}


# std and the norms have no derivative at a zero spread: their case runs without zeros
@pytest.mark.parametrize("name, zeros", [(n, z) for n in GRADS for z in (False, True)
                                         if not (n == "stats" and z)])
def test_gradients_match_finite_differences_and_autograd(name, zeros):
    kfn, agfn = GRADS[name]
    f = lt.kernel(kfn)
    g = lt.grad(f)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3))
    w = rng.standard_normal((4, 3))
    if zeros:  # products through exact zeros (one lane with two): no division by x
        x[1, 2] = x[2, 0] = x[3, 0] = 0.0
    got = g(x, w)
    assert_same(got, g.interpret(x, w), rtol=1e-10)
    fd = central_difference(lambda v: f.interpret(v, w), x)
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got, ag.grad(agfn)(x, w), rtol=1e-10, atol=1e-12)


def test_second_derivative_through_cumprod():
    @lt.kernel
    def f(x: lt.f64["n"]):
        return np.sum(np.cumprod(x))

    @lt.kernel
    def gsum(x: lt.f64["n"], v: lt.f64["n"]):
        return np.sum(lt.grad(f)(x) * v)
    x = np.array([0.5, 0.0, 2.0, -1.5])
    v = np.array([1.0, -2.0, 0.5, 3.0])
    hv = lt.grad(gsum)(x, v)
    fd = central_difference(lambda z: gsum.interpret(z, v), x)
    np.testing.assert_allclose(hv, fd, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- errors
def _e_out(x: lt.f64["n", "m"]):
    return np.sum(x, out=x)


def _e_cumsum_tuple(x: lt.f64["n", "m"]):
    return np.cumsum(x, axis=(0, 1))


def _e_nuc(x: lt.f64["n", "m"]):
    return np.linalg.norm(x, "nuc")


def _e_fro_one_axis(x: lt.f64["n", "m"]):
    return np.linalg.norm(x, "fro", axis=0)


def _e_traced_ddof(x: lt.f64["n", "m"]):
    return np.std(x, ddof=x[0, 0])


def _e_weights(x: lt.f64["n", "m"]):
    return np.average(x, axis=0, weights=x[0])


def _e_axis(x: lt.f64["n", "m"]):
    return np.sum(x, axis=2)


def _e_argmax_tuple(x: lt.f64["n", "m"]):
    return np.argmax(x, axis=(0, 1))


def _e_ptp_bool(x: lt.f64["n", "m"]):
    return np.ptp(x > 0)


@pytest.mark.parametrize("fn, words", [
    (_e_out, "out= is not supported"),
    (_e_cumsum_tuple, "one int"), (_e_nuc, "singular values"), (_e_fro_one_axis, "two axes"),
    (_e_traced_ddof, "ddof must be a number"), (_e_weights, "weights"),
    (_e_axis, "out of range"), (_e_argmax_tuple, "one int"), (_e_ptp_bool, "ptp: of a bool"),
])
def test_unsupported_forms_are_clear_compile_errors(fn, words):
    with pytest.raises(lt.CompileError, match=words) as info:
        lt.kernel(fn)(np.ones((2, 3)))
    assert "test_reductions_scans.py:" in str(info.value)  # the user's file:line


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (1, 1)])
def test_gradients_through_empty_and_single_lanes(shape):
    @lt.kernel
    def f(x: lt.f64["n", "m"]):
        return np.sum(np.cumprod(x, axis=0)) + np.sum(np.prod(x, axis=1)) + np.sum(x.cumsum(1))
    x = np.full(shape, 0.7)
    got = lt.grad(f)(x)
    assert_same(got, lt.grad(f).interpret(x))
    np.testing.assert_allclose(got, central_difference(f.interpret, x), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("opts", [{"parallel": True}, {"fastmath": False}])
def test_prod_and_scans_in_parallel_and_strict_kernels(opts):
    # big enough for the parallel split of the full product (partials combined in order)
    @lt.kernel(**opts)
    def k(x: lt.f64["n", "m"]):
        return np.prod(x), np.prod(x, axis=0), np.cumsum(x, axis=0), np.cumprod(x, axis=1)
    x = 1 + 1e-4 * np.random.default_rng(1).standard_normal((700, 300))
    want = (np.prod(x), np.prod(x, axis=0), np.cumsum(x, axis=0), np.cumprod(x, axis=1))
    assert_same(run_both(k, x, rtol=1e-10), want, rtol=1e-10)


@pytest.mark.parametrize("opts", [{}, {"parallel": True}])
def test_prod_of_an_elementwise_map_is_fused(opts):
    @lt.kernel(**opts)
    def k(x: lt.f64["n", "m"]):
        return (np.prod(1 + 0.001 * x), np.prod(x * 2, axis=0),
                np.prod(np.exp(x), axis=1, keepdims=True))
    x = np.random.default_rng(2).random((400, 300))
    want = (np.prod(1 + 0.001 * x), np.prod(x * 2, axis=0),
            np.prod(np.exp(x), axis=1, keepdims=True))
    assert_same(run_both(k, x, rtol=1e-11), want, rtol=1e-11)
    assert "reduce='prod'" in k.inspect_ir(x)  # one loop nest, no temporary map


def test_average_returned_keepdims_and_integer_weights():
    @lt.kernel
    def k(x: lt.i32["n", "m"], w: lt.i64["n", "m"], v: lt.f32["n"]):
        a, sw = np.average(x, axis=1, weights=w, returned=True)
        b, n = np.average(x, axis=0, returned=True)
        return (a, sw, b, n, np.average(x, weights=w, keepdims=True),
                np.average(v, weights=v * v), np.average(x, axis=0, weights=v))
    rng = np.random.default_rng(5)
    x = rng.integers(-5, 6, (4, 3)).astype(np.int32)
    w = rng.integers(1, 4, (4, 3))
    v = rng.random(4).astype(np.float32) + 0.5
    a, sw = np.average(x, axis=1, weights=w, returned=True)
    b, n = np.average(x, axis=0, returned=True)
    want = (a, sw.astype(np.float64), b, n, np.average(x, weights=w, keepdims=True),
            np.average(v, weights=v * v), np.average(x, axis=0, weights=v))
    assert_same(run_both(k, x, w, v, rtol=1e-6), want, rtol=1e-6)


# name -> (op(x, axis, keepdims), whether the inputs may have exact zeros)
GRAD_OPS = {
    "sum": (lambda x, ax, kd: lt.sum(x, ax, keepdims=kd), True),
    "prod": (lambda x, ax, kd: lt.prod(x, ax, keepdims=kd), True),
    "mean": (lambda x, ax, kd: lt.mean(x, ax, keepdims=kd), True),
    "var": (lambda x, ax, kd: lt.var(x, ax, ddof=1, keepdims=kd), True),
    "std": (lambda x, ax, kd: lt.std(x, ax, keepdims=kd), False),
    "norm": (lambda x, ax, kd: lt.norm(x, None, ax, kd), False),
    "nanmean": (lambda x, ax, kd: lt.nanmean(x, ax, keepdims=kd), True),
    "max": (lambda x, ax, kd: lt.max(x, ax, keepdims=kd), False),
    "ptp": (lambda x, ax, kd: lt.ptp(x, ax, keepdims=kd), False),
    "cumsum": (lambda x, ax, kd: lt.cumsum(x, ax if isinstance(ax, int) else 0), True),
    "cumprod": (lambda x, ax, kd: lt.cumprod(x, ax if isinstance(ax, int) else -1), True),
}


@pytest.mark.parametrize("name", list(GRAD_OPS))
@settings(max_examples=8, deadline=None)
@given(ax=st.sampled_from([a for a in AXES if a is not None and a != (0, 1, 2)] + [None]),
       kd=st.booleans(), seed=st.integers(0, 2**31))
def test_gradient_over_every_axis_form_matches_finite_differences(name, ax, kd, seed):
    op, zeros_ok = GRAD_OPS[name]
    if name == "norm" and isinstance(ax, tuple) and len(ax) != 2:
        ax = (0, 2)  # (a norm over one or two axes only)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 2))
    if zeros_ok:
        x[rng.random(x.shape) < 0.2] = 0.0

    @lt.kernel
    def f(x: lt.f64["a", "b", "c"]):
        return lt.sum(op(x, ax, kd) * lt.sin(op(x, ax, kd) + 1.0))
    got = lt.grad(f).interpret(x)
    np.testing.assert_allclose(got, central_difference(f.interpret, x), rtol=1e-6, atol=1e-7)


@lt.kernel
def _scans_flattened(X: lt.f64["n", "m"]):
    return np.cumsum(X), np.cumprod(X), X.cumsum()


def test_scans_without_an_axis_run_over_the_flattened_array():
    X = np.random.default_rng(3).uniform(0.5, 1.5, (3, 4))
    for k in (_scans_flattened, _scans_flattened.interpret):
        for g, w in zip(k(X), (np.cumsum(X), np.cumprod(X), X.cumsum())):
            assert g.shape == w.shape == (12,)
            np.testing.assert_allclose(g, w, rtol=1e-13)
