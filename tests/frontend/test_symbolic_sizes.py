"""Sizes as symbolic expressions, and results sized at run time.

* An ``lt.i64`` parameter used as a size is the dim of its own name: ``lt.zeros(n)`` has the
  size ``n``, a return annotation naming it means its value, a new value never recompiles, a
  negative one is a ValueError naming the argument.
* A slice whose traced bounds are sums of sizes has the affine size ``stop - start``
  (``x[1:I + 3]``: ``I + 2``), so such slices broadcast against each other; a bound that would
  make NumPy clip is an IndexError naming the array and the kernel's line.
* A result whose size is computed inside the kernel (``x[mask]``, ``np.unique``, ...) is
  allocated by the kernel and handed to NumPy without a copy.

Oracles: NumPy, the IR interpreter (``run_both``), finite differences for the gradient.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lattice as lt
from lattice.ir.types import Dim
from tests.conftest import assert_same, run_both


# --------------------------------------------------------------------------- int parameters
@lt.kernel
def ramp(n: lt.i64, step: lt.f64) -> lt.f64["n"]:
    out = lt.zeros(n)
    for i in range(n):
        out[i] = i * step
    return out


@lt.kernel
def grid(height: lt.i64, width: lt.i64) -> lt.i64["height", "width"]:
    out = np.zeros((height, width), np.int64)
    for r in range(height):
        for c in range(width):
            out[r, c] = r * 10 + c
    return out


@lt.kernel
def scaled(x: lt.f64["m"], n: lt.i64) -> lt.f64["n"]:
    return np.ones(n) * x.sum()


@settings(max_examples=15, deadline=None)
@given(n=st.integers(0, 40), step=st.floats(-3.0, 3.0))
def test_zeros_of_an_int_argument_is_sized_by_its_value(n, step):
    got = run_both(ramp, n, step)
    assert_same(got, np.arange(n) * step)
    assert ramp.ir.out_types[0].shape == (Dim.named("n"),)


@settings(max_examples=10, deadline=None)
@given(h=st.integers(0, 6), w=st.integers(0, 6))
def test_a_return_annotation_names_int_parameters(h, w):
    want = np.arange(h)[:, None] * 10 + np.arange(w)[None, :]
    assert_same(run_both(grid, h, w), want.astype(np.int64))


def test_a_new_value_of_a_size_argument_does_not_recompile(monkeypatch):
    import lattice.codegen.lower as lower
    calls = []
    real = lower.lower_func
    monkeypatch.setattr(lower, "lower_func", lambda *a, **k: calls.append(1) or real(*a, **k))

    @lt.kernel
    def fresh_ramp(n: lt.i64) -> lt.f64["n"]:
        return lt.zeros(n) + 2.0
    for n in (3, 0, 17, 5, 1000):
        assert_same(fresh_ramp(n), np.full(n, 2.0))
        assert_same(fresh_ramp(np.int64(n)), np.full(n, 2.0))
    assert len(calls) == 1


@pytest.mark.parametrize("value", [-1, np.int64(-5)])
def test_a_negative_size_argument_is_a_value_error_naming_it(value):
    with pytest.raises(ValueError, match="argument 'n' of kernel 'ramp' is used as a size"):
        ramp(value, 1.0)
    with pytest.raises(ValueError, match="argument 'n'"):
        ramp.interpret(value, 1.0)


def test_an_int_argument_not_used_as_a_size_may_be_negative():
    @lt.kernel
    def count(x: lt.f64["n"], k: lt.i64) -> lt.f64:
        s = 0.0
        for i in range(k):
            s += x[i % 3]
        return s
    assert count(np.ones(3), -4) == 0.0
    assert count.size_params == {}


def test_an_int_parameter_named_like_an_array_dim_is_not_a_size():
    # the array's dim wins: n may differ from len(x), as before
    @lt.kernel
    def f(x: lt.f64["n"], n: lt.i64):
        return lt.zeros(n) + x.sum()
    assert_same(f(np.ones(3), 5), np.full(5, 3.0))
    assert f.size_params == {}


def test_a_prefix_of_an_int_size_is_checked_against_the_array():
    @lt.kernel
    def head(x: lt.f64["m"], n: lt.i64) -> lt.f64["n"]:
        return x[:n] * 2.0
    x = np.arange(5.0)
    for n in range(6):
        assert_same(run_both(head, x, n), x[:n] * 2.0)
    with pytest.raises(IndexError, match="slice of 'x'"):
        head(x, 6)  # NumPy would clip to 5 elements; the annotation promises 6


# --------------------------------------------------------------------------- affine slices
@lt.kernel
def blocks(w: lt.f64["m"], b: lt.i64):
    return w[0:b] + w[b:2 * b] * w[2 * b:3 * b]


@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 14), b=st.integers(0, 6))
def test_blocks_of_an_int_size_broadcast_and_check_their_bounds(m, b):
    w = np.linspace(-1.0, 2.0, m)
    if 3 * b <= m:
        assert_same(run_both(blocks, w, b), w[0:b] + w[b:2 * b] * w[2 * b:3 * b])
    else:  # NumPy would clip the last block: an error naming the array and the line
        with pytest.raises(IndexError, match=r"slice of 'w' .* at .*test_symbolic_sizes\.py:\d+"):
            blocks(w, b)
        with pytest.raises(IndexError, match="slice of 'w'"):
            blocks.interpret(w, b)
    assert blocks.ir.out_types[0].shape == (Dim.named("b"),)


@lt.kernel
def stencil(inp: lt.f64["i4", "k"], coeff: lt.f64["i", "k"]) -> lt.f64["i", "k"]:
    I = coeff.shape[0]
    lap = 4.0 * inp[1:I + 3, :] - (inp[2:I + 4, :] + inp[0:I + 2, :])
    flux = lap[1:I + 2, :] - lap[0:I + 1, :]
    return inp[2:I + 2, :] - coeff * (flux[1:, :] - flux[:-1, :])


def _stencil_ref(inp, coeff):
    I = coeff.shape[0]
    lap = 4.0 * inp[1:I + 3, :] - (inp[2:I + 4, :] + inp[0:I + 2, :])
    flux = lap[1:I + 2, :] - lap[0:I + 1, :]
    return inp[2:I + 2, :] - coeff * (flux[1:, :] - flux[:-1, :])


@settings(max_examples=15, deadline=None)
@given(i=st.integers(0, 7), extra=st.integers(0, 3), k=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_slices_offset_from_a_shape_agree_with_numpy(i, extra, k, seed):
    rng = np.random.default_rng(seed)
    inp, coeff = rng.standard_normal((i + 4 + extra, k)), rng.standard_normal((i, k))
    assert_same(run_both(stencil, inp, coeff), _stencil_ref(inp, coeff))


def test_a_stencil_slice_past_the_end_is_an_index_error():
    with pytest.raises(IndexError, match="slice of 'inp'"):
        stencil(np.zeros((5, 2)), np.zeros((3, 2)))  # inp needs i + 4 = 7 rows


@lt.kernel
def shifted(x: lt.f64["n"]):
    n = x.shape[0]
    return x[:n - 1] * x[1:]


@lt.kernel
def joined(a: lt.f64["n"], b: lt.f64["m"]):
    return np.concatenate([a, b]) - np.concatenate([b, a])


def test_shifted_and_concatenated_sizes_are_symbolic():
    n, m = Dim.named("n"), Dim.named("m")
    assert shifted.ir.out_types[0].shape == (n - 1,)
    assert joined.ir.out_types[0].shape == (n + m,)
    x, y = np.arange(1.0, 6.0), np.arange(2.0)
    assert_same(run_both(shifted, x), x[:-1] * x[1:])
    assert_same(run_both(joined, x, y), np.concatenate([x, y]) - np.concatenate([y, x]))


def test_two_traced_bounds_keep_numpys_clipping():
    # the length j - i may be negative: a run-time size, clipped as NumPy does
    @lt.kernel
    def between(x: lt.f64["n"], i: lt.i64, j: lt.i64):
        return x[i:j] * 2.0
    x = np.arange(6.0)
    for i, j in ((1, 4), (4, 1), (-3, 10), (2, 2)):
        assert_same(between(x, i, j), x[i:j] * 2.0)


def test_gradient_through_affine_blocks():
    # blocks sized by another argument's shape (an lt.grad traces its base without integer
    # size parameters: autodiff finds every size on an array in scope)
    @lt.kernel
    def f(w: lt.f64["m"], z: lt.f64["b"]) -> lt.f64:
        b = z.shape[0]
        return lt.sum(w[0:b] * w[b:2 * b] * z + w[2 * b:3 * b] ** 2)
    rng = np.random.default_rng(3)
    w, z = rng.standard_normal(10), rng.standard_normal(3)
    gw, gz = lt.grad(f, (0, 1))(w, z)
    eps = 1e-6
    for _ in range(3):  # finite-difference JVP along random directions
        t, s = rng.standard_normal(10), rng.standard_normal(3)
        fd = (f(w + eps * t, z + eps * s) - f(w - eps * t, z - eps * s)) / (2 * eps)
        np.testing.assert_allclose(gw @ t + gz @ s, fd, rtol=1e-6)


def test_gradient_of_a_kernel_with_a_size_argument():
    @lt.kernel
    def f(x: lt.f64["m"], k: lt.i64) -> lt.f64:
        return lt.sum(lt.sin(x) * 2.0) + lt.sum(lt.zeros(k) + 1.0)
    x = np.linspace(-1.0, 1.0, 4)
    np.testing.assert_allclose(lt.grad(f)(x, 3), 2.0 * np.cos(x), rtol=1e-14)
    assert f(x, 3) == pytest.approx(np.sum(np.sin(x) * 2.0) + 3.0)


# --------------------------------------------------------------------------- run-time sizes
@lt.kernel
def selections(x: lt.f64["n"], k: lt.i64["m"], t: lt.f64):
    m = x > t
    return (x[m], np.nonzero(m)[0], np.where(x < t)[0], np.unique(k), np.bincount(k),
            np.argwhere(m))


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 30), m=st.integers(0, 20), t=st.floats(-1.5, 1.5),
       seed=st.integers(0, 2**16))
def test_results_sized_inside_the_kernel_agree_with_numpy(n, m, t, seed):
    rng = np.random.default_rng(seed)
    x, k = rng.standard_normal(n), rng.integers(0, 9, m)
    got = run_both(selections, x, k, t)
    want = (x[x > t], np.nonzero(x > t)[0], np.where(x < t)[0], np.unique(k),
            np.bincount(k), np.argwhere(x > t))
    assert_same(got, tuple(w.astype(g.dtype) if w.dtype.kind == "i" else w
                           for g, w in zip(got, want)))
    for g in got:
        assert g.flags.c_contiguous and g.flags.writeable and g.flags.owndata is (g.base is None)


def test_zeros_of_a_computed_size():
    @lt.kernel
    def upto(x: lt.f64["n"]):
        k = lt.count_nonzero(x > 0.0) * 2 + 1
        return lt.zeros(k) + 1.0
    x = np.array([1.0, -1.0, 3.0])
    assert_same(upto(x), np.ones(5))
    assert upto.ir.out_types[0].shape[0].is_fresh


def test_a_result_sized_at_run_time_returned_twice_or_as_a_view_is_its_own_array():
    @lt.kernel
    def twice(x: lt.f64["n"]):
        y = x[x > 0.0]
        return y, y, y[1:], x[x.shape[0] - lt.count_nonzero(x > 0.0):]
    x = np.array([1.0, -2.0, 3.0, 4.0])
    a, b, c, d = twice(x)
    assert_same(a, x[x > 0.0])
    assert_same(b, a)
    assert_same(c, a[1:])
    assert_same(d, x[1:])
    a[0] = 99.0  # every result owns its memory
    assert b[0] == 1.0 and c[0] == 3.0 and x[0] == 1.0 and d[0] == -2.0


def test_run_time_sized_results_do_not_leak():
    import subprocess
    import sys
    import json
    import os
    import pathlib
    here = pathlib.Path(__file__).resolve().parent.parent / "reliability"
    env = dict(os.environ, PYTHONPATH=str(here.parent.parent))
    p = subprocess.run([sys.executable, str(here / "rss_probe.py"), "sized", "20000"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    # each call hands over ~100 KB of kernel-allocated results: a leak would be ~2 GB
    assert r["growth_mib"] < 4.0, r
    if r["heap_growth_mib"] is not None:
        assert r["heap_growth_mib"] < 1.0, r


# --------------------------------------------------------------------------- cache keys
def _pick(x: lt.f64["n"], k: lt.i64):
    return x[k:][x[k:] > 0.0]


def test_cache_keys_do_not_depend_on_the_fresh_dim_counter():
    from lattice.codegen import cache
    keys, texts = [], []
    for _ in range(2):
        k = lt.kernel(_pick, cache=True)  # traced anew: new fresh dims
        assert_same(k(np.array([1.0, -1.0, 2.0]), 1), np.array([2.0]))
        texts.append(k.inspect_ir())
        keys.append(cache.make_key(*k._cache_parts(k.optimized_ir, ("C",))))
        for _ in range(5):
            Dim.fresh()  # as other kernels traced in between would
    assert texts[0] != texts[1]  # the fresh names differ...
    assert keys[0] == keys[1]  # ...the keys do not


def test_a_kernel_allocated_result_survives_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LATTICE_CACHE_DIR", str(tmp_path / "cache"))
    x = np.array([3.0, -1.0, 2.0, 5.0])
    first = lt.kernel(_pick, cache=True)
    assert_same(first(x, 1), np.array([2.0, 5.0]))
    assert list((tmp_path / "cache").iterdir())  # stored
    import lattice.codegen.lower as lower
    calls = []
    real = lower.lower_func
    monkeypatch.setattr(lower, "lower_func", lambda *a, **k: calls.append(1) or real(*a, **k))
    for _ in range(3):
        Dim.fresh()
    second = lt.kernel(_pick, cache=True)
    assert_same(second(x, 0), np.array([3.0, 2.0, 5.0]))
    (compiled,) = second._compiled.values()
    assert compiled.abi.outs[0].alloc and not calls  # loaded from disk, not lowered again


def test_the_fast_entry_hands_over_kernel_allocated_results():
    @lt.kernel
    def pos(x: lt.f64["n"], k: lt.i64["m"]):
        return x[x > 0.0], np.unique(k), lt.sum(x)
    rng = np.random.default_rng(5)
    pos(np.ones(2), np.ones(1, np.int64))  # compiles and installs the CPython entry
    assert type(type(pos).__call__).__name__ == "builtin_function_or_method"
    for n in (0, 1, 7, 50):
        x, k = rng.standard_normal(n), rng.integers(-3, 3, n)
        a, u, s = pos(x, k)
        assert_same((a, u, s), (x[x > 0.0], np.unique(k), np.float64(np.sum(x))))
        view = a[1:]
        del a  # the view keeps the buffer alive
        assert_same(view, x[x > 0.0][1:])
        assert view.base is not None and view.flags.writeable


def test_the_interpreter_refuses_a_clipped_symbolic_slice_too():
    w = np.arange(7.0)
    with pytest.raises(IndexError, match="slice of 'w'"):
        blocks.interpret(w, 3)
    with pytest.raises(IndexError, match="slice of 'x'"):
        shifted.interpret(np.zeros(0))  # x[:n - 1] of an empty x: NumPy gives size 0, not -1
    with pytest.raises(IndexError):
        shifted(np.zeros(0))
    assert_same(shifted.interpret(np.arange(1.0)), np.zeros(0))


def test_symbolic_slices_in_a_parallel_loop():
    @lt.kernel(parallel=True)
    def halves(X: lt.f64["r", "m"], b: lt.i64):
        out = lt.zeros((X.shape[0], b))
        for i in lt.prange(X.shape[0]):
            out[i] = X[i, 0:b] + X[i, b:2 * b]
        return out
    X = np.random.default_rng(2).standard_normal((40_000, 6))  # big enough to split
    assert_same(halves(X, 3), X[:, 0:3] + X[:, 3:6])
    assert_same(halves(X, 0), np.zeros((40_000, 0)))
    with pytest.raises(IndexError, match="slice of 'X' on axis 1"):
        halves(X, 4)


@lt.kernel
def _shifted(x: lt.f64["n"]):
    d = x[1:] - x[:-1]
    x[1:] = x[:-1] * 0.5
    return d, np.sum(x[:-2] * 2.0), np.diff(x)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5])
def test_slices_shorter_than_their_offset_are_empty_as_in_numpy(n):
    """``x[:-1]`` of an empty ``x`` is empty (NumPy clips; its size n - 1 is then below 0),
    and so is ``x[:-2]`` of a 1-element one: compiled and interpreted, results and the
    argument written through such a slice."""
    x = np.arange(1.0, n + 1)
    want_x = x.copy()
    want = _shifted.fn(want_x)
    for run in (_shifted, _shifted.interpret):
        got_x = x.copy()
        got = run(got_x)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
        np.testing.assert_array_equal(got_x, want_x)
