"""The rowpass pass: x.T @ f(x @ w, ...) becomes one pass over the rows of x."""
from __future__ import annotations

import numpy as np
import pytest

import lattice as lt
from lattice.ir import primitives as P


def _prims(k, *args):
    return [e.prim for e in k.optimized_ir.eqns]


@lt.kernel
def grad_hand(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64["d"]:
    return X.T @ (lt.sigmoid(X @ w) - y) / X.shape[0]


@lt.kernel(parallel=True)
def grad_par(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64["d"]:
    return X.T @ (lt.sigmoid(X @ w) - y) / X.shape[0]


@lt.kernel
def vec_form(X: lt.f32["n", "d"], w: lt.f32["d"]) -> lt.f32["d"]:
    return lt.tanh(X @ w) @ X  # r @ X is X.T @ r


@lt.kernel
def loss(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64:
    z = X @ w
    return lt.sum(lt.softplus(z) - y * z) / X.shape[0]


@lt.kernel
def r_escapes(X: lt.f64["n", "d"], w: lt.f64["d"]) -> (lt.f64["d"], lt.f64["n"]):
    r = lt.exp(X @ w)
    return X.T @ r, r


@lt.kernel
def other_matrix(X: lt.f64["n", "d"], Y: lt.f64["n", "d"], w: lt.f64["d"]) -> lt.f64["d"]:
    return Y.T @ lt.exp(X @ w)


def _data(n=500, d=7, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    y = (rng.random(n) > 0.5).astype(dtype)
    w = (rng.standard_normal(d) * 0.3).astype(dtype)
    return X, y, w


def _ref_grad(X, y, w):
    return X.T @ (1 / (1 + np.exp(-(X @ w))) - y) / X.shape[0]


def test_hand_written_gradient_is_one_row_pass():
    X, y, w = _data()
    prims = _prims(grad_hand)
    assert P.rowpass_p in prims and P.matmul_p not in prims
    np.testing.assert_allclose(grad_hand(X, y, w), _ref_grad(X, y, w), rtol=1e-12)
    np.testing.assert_allclose(grad_hand.interpret(X, y, w), _ref_grad(X, y, w), rtol=1e-12)
    before = lt.get_num_threads()
    try:
        for threads in (1, 2):
            lt.set_num_threads(threads)
            for n in (3, 100_000):
                X, y, w = _data(n=n)
                np.testing.assert_allclose(grad_par(X, y, w), _ref_grad(X, y, w), rtol=1e-10)
    finally:
        lt.set_num_threads(before)


def test_vector_matrix_form_and_f32():
    X, _, w = _data(dtype=np.float32)
    assert P.rowpass_p in _prims(vec_form)
    want = np.tanh(X.astype(np.float64) @ w) @ X
    np.testing.assert_allclose(vec_form(X, w), want, rtol=1e-4, atol=1e-4)


def test_gradients_from_ad_fuse():
    X, y, w = _data()
    g = lt.grad(loss, argnums=2)
    assert P.rowpass_p in [e.prim for e in g.optimized_ir.eqns]
    np.testing.assert_allclose(g(X, y, w), _ref_grad(X, y, w), rtol=1e-10)
    vg = lt.value_and_grad(loss, argnums=2)
    rp = [e for e in vg.optimized_ir.eqns if e.prim is P.rowpass_p]
    assert len(rp) == 1 and rp[0].params["keep_z"]  # z also feeds the loss
    val, grad = vg(X, y, w)
    z = X @ w
    np.testing.assert_allclose(val, np.mean(np.logaddexp(0, z) - y * z), rtol=1e-12)
    np.testing.assert_allclose(grad, _ref_grad(X, y, w), rtol=1e-10)


@pytest.mark.parametrize("k", [r_escapes, other_matrix])
def test_not_fused_when_the_pattern_does_not_hold(k):
    assert P.rowpass_p not in _prims(k)
    rng = np.random.default_rng(1)
    X, Y, w = rng.standard_normal((50, 4)), rng.standard_normal((50, 4)), rng.standard_normal(4)
    args = (X, w) if k is r_escapes else (X, Y, w)
    got, want = k(*args), k.interpret(*args)
    for g_, w_ in zip(got if isinstance(got, tuple) else (got,),
                      want if isinstance(want, tuple) else (want,)):
        np.testing.assert_allclose(g_, w_, rtol=1e-12)


@lt.kernel
def descend(X: lt.f64["n", "d"], y: lt.f64["n"], w0: lt.f64["d"], steps: lt.i64) -> lt.f64["d"]:
    w = w0
    for _ in range(steps):  # the gradient inside a loop body, nothing to fuse outside it
        w = w - 0.5 * (X.T @ (lt.sigmoid(X @ w) - y)) / X.shape[0]
    return w


def test_a_gradient_inside_a_loop_body_fuses():
    """The pass rewrote the loop body but returned the function unchanged when nothing
    matched at the top level, dropping the rewrite."""
    text = descend.inspect_ir(*_data(), 3).split("# after passes")[1]
    assert "rowpass" in text and "matmul" not in text
    X, y, w = _data()
    want = w.copy()
    for _ in range(3):
        want = want - 0.5 * _ref_grad(X, y, want)
    np.testing.assert_allclose(descend(X, y, w, 3), want, rtol=1e-12)
