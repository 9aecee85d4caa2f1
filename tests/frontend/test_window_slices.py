"""Windows ``x[i:i + c]`` with a traced start: a slice of constant length c.

The frontend sees that both bounds are the same traced value plus constants (``a*i + b``), so
the slice gets the literal size c instead of a fresh run-time size, and blocks of different
arrays taken with the same window combine elementwise.  A window that does not fit the axis is
an IndexError (NumPy would return a shorter slice), in the compiled code and the interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest

import lattice as lt

from conftest import assert_same

B = 8


@lt.kernel
def blocked_weighted_gram(X: lt.f64["n", "d"], w: lt.f64["n"]) -> lt.f64["d", "d"]:
    d = X.shape[1]
    H = lt.zeros((d, d))
    nb = X.shape[0] // B
    for b in range(nb):
        Xb = X[b * B:b * B + B]
        wb = w[b * B:b * B + B]
        H = H + Xb.T @ (Xb * wb[:, None])
    lo = nb * B
    Xr = X[lo:]
    H = H + Xr.T @ (Xr * w[lo:][:, None])
    return H


@lt.kernel
def window_sum(x: lt.f64["n"], y: lt.f64["n"], i: lt.i64) -> lt.f64:
    j = i + 1
    return lt.sum(x[j:j + 3] * y[i + 1:i + 4])


@lt.kernel
def window_store(x: lt.f64["n"], i: lt.i64) -> lt.f64["n"]:
    out = x.copy()
    out[2 * i:2 * i + 2] = x[2 * i:2 * i + 2] * 10.0
    return out


@lt.kernel
def not_a_window(x: lt.f64["n"], i: lt.i64, j: lt.i64) -> lt.f64:
    return lt.sum(x[i:j])


def test_the_window_has_a_literal_size_in_the_ir() -> None:
    X = np.zeros((20, 3))
    text = blocked_weighted_gram.inspect_ir(X, np.zeros(20))
    assert "f64[8,d] = index" in text and "size=8" in text


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 16, 21])
def test_blocks_and_remainder_match_numpy(n: int) -> None:
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 5))
    w = rng.random(n)
    got = blocked_weighted_gram(X, w)
    np.testing.assert_allclose(got, (X.T * w) @ X, rtol=1e-12, atol=1e-12)
    assert_same(got, blocked_weighted_gram.interpret(X, w), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("i", [0, 3, 5, -6, -11])
def test_offsets_of_one_root_form_a_window(i: int) -> None:
    x = np.arange(10.0)
    y = np.arange(10.0) ** 2
    want = float(np.sum(x[i + 1:i + 4] * y[i + 1:i + 4]))
    assert window_sum(x, y, i) == want
    assert window_sum.interpret(x, y, i) == want


@pytest.mark.parametrize("i", [7, 9, -4, -3, -12, 100])
def test_a_window_past_the_end_is_an_index_error(i: int) -> None:
    x = np.arange(10.0)
    with pytest.raises(IndexError, match="does not fit"):
        window_sum(x, x, i)
    with pytest.raises(IndexError, match="does not fit"):
        window_sum.interpret(x, x, i)


@pytest.mark.parametrize("i", [0, 2, 4, -3])
def test_store_into_a_window(i: int) -> None:
    x = np.arange(10.0)
    want = x.copy()
    want[2 * i:2 * i + 2] *= 10.0
    assert_same(window_store(x, i), want)
    assert_same(window_store.interpret(x, i), want)


def test_bounds_from_two_values_stay_a_run_time_slice() -> None:
    x = np.arange(10.0)
    assert not_a_window(x, 2, 7) == float(np.sum(x[2:7]))
    assert not_a_window(x, 7, 2) == 0.0  # NumPy's empty slice, no error
    assert "size=" not in not_a_window.inspect_ir(x, 2, 7)


def test_gradient_through_windows() -> None:
    @lt.kernel
    def f(x: lt.f64["n"]) -> lt.f64:
        t = 0.0
        for b in range(x.shape[0] // 4):
            xb = x[4 * b:4 * b + 4]
            t += lt.sum(xb * xb) * (b + 1.0)
        return t
    x = np.linspace(-1.0, 1.0, 10)
    g = lt.grad(f)(x)
    want = np.zeros(10)
    for b in range(2):
        want[4 * b:4 * b + 4] = 2.0 * x[4 * b:4 * b + 4] * (b + 1.0)
    np.testing.assert_allclose(g, want, rtol=1e-14)


@lt.kernel
def gram_doc_example(X: lt.f64["n", "d"], w: lt.f64["n"]) -> lt.f64["d", "d"]:
    H = lt.zeros((X.shape[1], X.shape[1]))
    nb = X.shape[0] // 128
    for b in range(nb):
        Xb = X[128 * b:128 * b + 128]
        H = H + Xb.T @ (Xb * w[128 * b:128 * b + 128][:, None])
    Xr = X[128 * nb:]  # 128 * nb computed twice: the same bound, so the same fresh size
    return H + Xr.T @ (Xr * w[128 * nb:][:, None])


@pytest.mark.parametrize("n", [0, 100, 128, 300])
def test_bounds_written_twice_share_a_size(n: int) -> None:
    """The blocked example of docs/getting-started.md."""
    rng = np.random.default_rng(n)
    X = rng.standard_normal((n, 7))
    w = rng.random(n)
    np.testing.assert_allclose(gram_doc_example(X, w), (X.T * w) @ X, rtol=1e-12, atol=1e-12)
