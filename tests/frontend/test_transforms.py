"""The differentiation API: grad, value_and_grad, jvp, vjp, hessian, hvp, custom_vjp.

Oracles: the closed forms of the logistic loss (gradient ``Xᵀ(σ(Xw) - y)/n``, Hessian
``Xᵀ diag(s(1-s)) X / n``), finite differences, and the interpreter.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lattice as lt
from lattice.ir import primitives as P
from lattice.ir.core import subfuncs


@lt.kernel
def logistic_loss(w: lt.f64["d"], X: lt.f64["n", "d"], y: lt.f64["n"]) -> lt.f64:
    z = X @ w
    return lt.mean(lt.softplus(z) - y * z)


@lt.kernel
def logistic_loss_loop(w: lt.f64["d"], X: lt.f64["n", "d"], y: lt.f64["n"]) -> lt.f64:
    total = 0.0
    for i in range(X.shape[0]):
        z = lt.dot(X[i], w)
        total += lt.softplus(z) - y[i] * z
    return total / X.shape[0]


LOSSES = [logistic_loss, logistic_loss_loop]


def _sigmoid(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


def _data(seed: int, n: int, d: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    y = (rng.random(n) > 0.5).astype(np.float64)
    return rng, w, X, y


def _closed_forms(w, X, y):
    n = X.shape[0]
    z = X @ w
    s = _sigmoid(z)
    loss = np.mean(np.logaddexp(0, z) - y * z)
    g = X.T @ (s - y) / n
    H = X.T @ (X * (s * (1 - s))[:, None]) / n
    return loss, g, H


@pytest.mark.parametrize("loss", LOSSES, ids=lambda k: k.__name__)
@settings(max_examples=5)
@given(n=st.integers(1, 30), d=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_logistic_grad_value_and_grad_hessian(loss, n, d, seed):
    rng, w, X, y = _data(seed, n, d)
    v_ref, g_ref, H_ref = _closed_forms(w, X, y)
    g = lt.grad(loss)(w, X, y)
    np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-13)
    v, gw = lt.value_and_grad(loss)(w, X, y)
    np.testing.assert_allclose(v, v_ref, rtol=1e-12)
    np.testing.assert_allclose(gw, g_ref, rtol=1e-10, atol=1e-13)
    H = lt.hessian(loss)(w, X, y)
    assert H.shape == (d, d)
    np.testing.assert_allclose(H, H_ref, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(lt.hessian(loss).interpret(w, X, y), H_ref, rtol=1e-10,
                               atol=1e-13)


@pytest.mark.parametrize("loss", LOSSES, ids=lambda k: k.__name__)
def test_logistic_jvp_vjp_hvp(loss):
    rng, w, X, y = _data(3, 20, 4)
    v_ref, g_ref, H_ref = _closed_forms(w, X, y)
    dw, dX, dy = rng.normal(size=4), rng.normal(size=(20, 4)), rng.normal(size=20)
    out, t = lt.jvp(loss, (w, X, y), (dw, dX, dy))
    h = 1e-5
    fd = (loss(w + h * dw, X + h * dX, y + h * dy) - loss(w - h * dw, X - h * dX, y - h * dy)) / (2 * h)
    np.testing.assert_allclose(out, v_ref, rtol=1e-12)
    np.testing.assert_allclose(t, fd, rtol=1e-7)
    out, t_w = lt.jvp(loss, (w, X, y), (dw, None, None))
    np.testing.assert_allclose(t_w, g_ref @ dw, rtol=1e-10)
    out, pullback = lt.vjp(loss, w, X, y)
    cw, cX, cy = pullback(1.0)
    np.testing.assert_allclose(cw, g_ref, rtol=1e-10, atol=1e-13)
    # <J·t, c> = <t, Jᵀ·c>
    np.testing.assert_allclose(cw @ dw + np.sum(cX * dX) + cy @ dy, t, rtol=1e-10)
    hv = lt.hvp(loss, (w, X, y), (dw, np.zeros_like(X), np.zeros_like(y)))
    np.testing.assert_allclose(hv, H_ref @ dw, rtol=1e-10, atol=1e-13)
    hv = lt.hvp(loss, (w, X, y), (dw, None, None))
    np.testing.assert_allclose(hv, H_ref @ dw, rtol=1e-10, atol=1e-13)


def test_argnums_tuple_and_structure():
    _, w, X, y = _data(1, 8, 3)
    gw, gX = lt.grad(logistic_loss, argnums=(0, 1))(w, X, y)
    n = X.shape[0]
    s = _sigmoid(X @ w)
    np.testing.assert_allclose(gw, X.T @ (s - y) / n, rtol=1e-10)
    np.testing.assert_allclose(gX, np.outer(s - y, w) / n, rtol=1e-10)
    v, (gw2, gy) = lt.value_and_grad(logistic_loss_loop, argnums=(0, 2))(w, X, y)
    np.testing.assert_allclose(gw2, gw, rtol=1e-10)
    np.testing.assert_allclose(gy, -(X @ w) / n, rtol=1e-10)


def test_transformed_kernels_are_cached_and_inspectable():
    g = lt.grad(logistic_loss)
    assert lt.grad(logistic_loss) is g
    _, w, X, y = _data(0, 5, 2)
    text = g.inspect_ir(w, X, y)
    assert "func grad_logistic_loss" in text and "# after passes" in text
    g(w, X, y)
    assert g._compiled  # compiled once, reused
    n_before = len(g._compiled)
    g(*_data(1, 50, 2)[1:])  # a new size does not recompile
    assert len(g._compiled) == n_before
    assert "grad" in g._cache_source()[-1]


def _loops(func):
    out = []
    for e in func.eqns:
        if e.prim is P.loop_p:
            out.append(e)
        for _, sub in subfuncs(e):
            out.extend(_loops(sub))
    return out


def test_loop_gradient_is_one_pass_without_tape():
    """grad of the loop-style loss: one loop over the rows of X, no per-iteration storage."""
    opt = lt.grad(logistic_loss_loop).optimized_ir
    loops = _loops(opt)
    assert len(loops) == 1
    assert not any(e.prim in (P.empty_p, P.set_p) for e in opt.eqns)
    (loop,) = loops
    # the body reads X[i] once
    reads = [e for e in loop.params["body"].eqns if e.prim is P.index_p
             and e.inputs[0].type.ndim == 2]
    assert len(reads) == 1


def test_tensor_gradient_is_one_pass_over_x():
    """grad of the tensor-style loss: X is read by one row pass and nothing else."""
    opt = lt.grad(logistic_loss).optimized_ir
    readers = [e for e in opt.eqns
               if any(a is opt.params[1] for a in e.inputs) and e.prim is not P.dim_p]
    assert [e.prim for e in readers] == [P.rowpass_p]
    assert not any(e.prim in (P.matmul_p, P.fused_p) for e in opt.eqns)


def test_dce_removes_the_x_cotangent_path():
    """vjp w.r.t. everything, but only the w output used: no X-sized accumulator survives."""
    from lattice.ir import ad, passes
    from lattice.ir.core import Func
    func = logistic_loss_loop.ir
    v = ad.vjp_func(func)  # outs: loss, ct_w, ct_X, ct_y
    only_w = passes.run(Func(v.params, v.eqns, (v.outs[1],), v.name))

    def has_nd_array(f):
        for e in f.eqns:
            if any(o.type.ndim == 2 for o in e.outs):
                return True
            if any(has_nd_array(sub) for _, sub in subfuncs(e)):
                return True
        return False
    assert has_nd_array(passes.run(v))
    assert not has_nd_array(only_w)


def test_composition_grad_of_grad_and_jvp_of_grad():
    @lt.kernel
    def f(x: lt.f64) -> lt.f64:
        s = 0.0
        for i in range(4):
            s += lt.sin(x * (i + 1)) * lt.exp(-x)
        return s

    x = 0.7
    d1 = lt.grad(f)
    d2 = lt.grad(lt.grad(f))
    h = 1e-4
    np.testing.assert_allclose(d2(x), (d1(x + h) - d1(x - h)) / (2 * h), rtol=1e-7)
    d3 = lt.grad(lt.grad(lt.grad(f)))
    np.testing.assert_allclose(d3(x), (d2(x + h) - d2(x - h)) / (2 * h), rtol=1e-6)
    _, t = lt.jvp(lt.grad(f), (x,), (1.0,))
    np.testing.assert_allclose(t, d2(x), rtol=1e-12)
    _, w, X, y = _data(2, 9, 3)
    v = np.random.default_rng(0).normal(size=3)
    _, hv = lt.jvp(lt.grad(logistic_loss), (w, X, y), (v, None, None))
    np.testing.assert_allclose(hv, _closed_forms(w, X, y)[2] @ v, rtol=1e-10)


def test_transformed_kernel_called_inside_a_kernel():
    g = lt.grad(logistic_loss_loop)

    @lt.kernel
    def gd_step(w: lt.f64["d"], X: lt.f64["n", "d"], y: lt.f64["n"], lr: lt.f64) -> lt.f64["d"]:
        return w - lr * g(w, X, y)

    _, w, X, y = _data(4, 12, 3)
    np.testing.assert_allclose(gd_step(w, X, y, 0.1), w - 0.1 * _closed_forms(w, X, y)[1],
                               rtol=1e-10)


@pytest.mark.parametrize("z", [1e3, -1e3, 700.0, -745.0, 0.0, 40.0])
def test_stable_derivatives_at_large_arguments(z):
    @lt.kernel
    def f(x: lt.f64, y: lt.f64) -> lt.f64:
        return lt.softplus(x) + lt.sigmoid(x) + lt.logaddexp(x, y) + lt.logaddexp(y, x)

    g = lt.grad(f, (0, 1))
    H = lt.hessian(f)
    for args in ((z, 0.0), (z, z), (z, -z)):
        gx, gy = g(*args)
        h = H(*args)
        assert np.isfinite([gx, gy, h]).all(), (args, gx, gy, h)
        s = _sigmoid(args[0])
        np.testing.assert_allclose(gx, s + s * (1 - s) + 2 * _sigmoid(args[0] - args[1]),
                                   rtol=1e-12, atol=1e-300)
    gl = lt.grad(logistic_loss)(np.array([1.0]), np.array([[z]]), np.array([1.0]))
    assert np.isfinite(gl).all()


def test_integer_arguments_and_outputs():
    @lt.kernel
    def f(x: lt.f64["n"], k: lt.i64) -> lt.f64:
        j = lt.argmax(x)
        return x[j] * x[k] + lt.sum(x[:k]) * (x[0] > 0)

    x = np.array([0.5, 2.0, -1.0, 0.3])
    g = lt.grad(f)(x, 2)
    np.testing.assert_allclose(g, [1.0, x[2] + 1.0, x[1], 0.0])
    with pytest.raises(TypeError, match="argument 'k'"):
        lt.grad(f, argnums=1)
    out, t = lt.jvp(f, (x, 2), (np.ones(4), None))
    np.testing.assert_allclose(t, 0.0 + 2.0 + (-1.0) + 1.0 + 1.0)

    @lt.kernel
    def two(x: lt.f64["n"]) -> tuple[lt.f64, lt.i64]:
        return lt.sum(x * x), lt.argmax(x)

    (o1, o2), (t1, t2) = lt.jvp(two, (x,), (np.ones(4),))
    assert t2 is None and o2 == 1
    np.testing.assert_allclose(t1, 2 * np.sum(x))
    (_, _), pullback = lt.vjp(two, x)
    (cx,) = pullback(1.0)
    np.testing.assert_allclose(cx, 2 * x)


def test_grad_needs_a_scalar_float_output():
    @lt.kernel
    def vec(x: lt.f64["n"]) -> lt.f64["n"]:
        return x * 2.0

    with pytest.raises(TypeError, match="one float scalar"):
        lt.grad(vec)(np.ones(3))
    out, pullback = lt.vjp(vec, np.ones(3))
    np.testing.assert_allclose(pullback(np.arange(3.0))[0], 2 * np.arange(3.0))


@lt.kernel
def log_sigmoid_naive(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(lt.log(lt.sigmoid(x)))


@lt.custom_vjp
@lt.kernel
def log_sigmoid(x: lt.f64["n"]) -> lt.f64["n"]:
    return -lt.softplus(-x)


@lt.kernel
def _log_sigmoid_fwd(x: lt.f64["n"]) -> tuple[lt.f64["n"], lt.f64["n"]]:
    return -lt.softplus(-x), lt.sigmoid(-x)


@lt.kernel
def _log_sigmoid_bwd(s: lt.f64["n"], g: lt.f64["n"]) -> lt.f64["n"]:
    return g * s


log_sigmoid.defvjp(_log_sigmoid_fwd, _log_sigmoid_bwd)


def test_custom_vjp_log_sigmoid():
    @lt.kernel
    def total(x: lt.f64["n"]) -> lt.f64:
        return lt.sum(log_sigmoid(x) * 2.0)

    x = np.array([-1e3, -30.0, -1.0, 0.0, 2.0, 1e3])
    np.testing.assert_allclose(total(x), 2 * np.sum(-np.logaddexp(0, -x)))
    np.testing.assert_allclose(total.interpret(x), total(x))
    g = lt.grad(total)(x)
    np.testing.assert_allclose(g, 2 * _sigmoid(-x), rtol=1e-12)
    # the custom rule is used: its bwd shows up in the gradient's IR
    text = lt.grad(total).inspect_ir(x)
    assert "custom_vjp_call" in text.split("# after passes")[0] or "sigmoid" in text
    # forward mode differentiates the primal function
    _, t = lt.jvp(total, (x,), (np.ones(6),))
    np.testing.assert_allclose(t, 2 * np.sum(_sigmoid(-x)), rtol=1e-12)
    # second order through the user's bwd
    h = lt.hessian(total)(np.array([0.3, -0.2]))
    s = _sigmoid(-np.array([0.3, -0.2]))
    np.testing.assert_allclose(h, np.diag(-2 * s * (1 - s)), rtol=1e-12)


def test_custom_vjp_rule_is_really_used():
    @lt.custom_vjp
    @lt.kernel
    def f(x: lt.f64) -> lt.f64:
        return x * x

    @lt.kernel
    def fwd(x: lt.f64) -> tuple[lt.f64, lt.f64]:
        return x * x, x

    @lt.kernel
    def bwd(x: lt.f64, g: lt.f64) -> lt.f64:
        return 100.0 * g  # deliberately not the true derivative

    f.defvjp(fwd, bwd)
    assert f(3.0) == 9.0
    assert lt.grad(f)(3.0) == 100.0
    assert lt.jvp(f, (3.0,), (1.0,))[1] == 6.0  # forward mode: the primal's derivative


def test_custom_vjp_without_rule_is_an_error():
    @lt.custom_vjp
    @lt.kernel
    def f(x: lt.f64) -> lt.f64:
        return x

    with pytest.raises(lt.CompileError, match="defvjp"):
        f(1.0)
