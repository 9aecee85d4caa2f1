"""Reverse mode through a ``cond`` whose branch holds a ``loop`` (fuzzer finding, issue 3).

The loop's tape has a trip-count axis (a fresh dim ``?T``) defined inside the branch; it leaves
the primal cond as a residual slot that the other branch must fill with a value of the same type,
without knowing that size.  Variants: the loop in the then/else branch, its result dead or used,
the carried array sized by a named dim or by a run-time value, a scalar carry, grad w.r.t. the
array and the scalar; checked against ``autograd`` and finite differences, compiled and
interpreted, on both sides of the predicate.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import lattice as lt
from test_transforms_programs import _fd_grad  # central differences of the interpreter

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")


@lt.kernel
def dead_else(a: lt.f64, b: lt.f64["m"]) -> lt.f64:
    if a < 0.1:
        c = 1.0
    else:
        o = lt.zeros(b.shape[0])
        for i in range(b.shape[0]):
            o[i] = b[i] * o[i]
        c = 0.5
    return c * a + lt.sum(b)


def dead_else_ag(a, b):
    return (1.0 if a < 0.1 else 0.5) * a + anp.sum(b)


@lt.kernel
def dead_then(a: lt.f64, b: lt.f64["m"]) -> lt.f64:
    if a > 0.1:
        o = lt.zeros(b.shape[0])
        for i in range(b.shape[0]):
            o[i] = b[i] * o[i] + a
        c = a * 0.5
    else:
        c = a * a
    return c + lt.sum(b * b)


def dead_then_ag(a, b):
    return (a * 0.5 if a > 0.1 else a * a) + anp.sum(b * b)


@lt.kernel
def used_else(a: lt.f64, b: lt.f64["m"]) -> lt.f64:
    if a < 0.1:
        c = a * lt.sum(b)
    else:
        o = lt.zeros(b.shape[0])
        s = 1.0
        for i in range(b.shape[0]):
            s = lt.sin(s * b[i]) + a
            o[i] = s * o[i] + s
        c = lt.sum(o * o)
    return c


def used_else_ag(a, b):
    if a < 0.1:
        return a * anp.sum(b)
    s, c = 1.0, 0.0
    for i in range(len(b)):
        s = anp.sin(s * b[i]) + a
        c = c + s * s
    return c


@lt.kernel
def used_then_scalar(a: lt.f64, b: lt.f64["m"]) -> lt.f64:
    if a > 0.1:
        p = 1.0
        for i in range(b.shape[0]):
            p = p * lt.cos(b[i] * a)
        c = p
    else:
        c = a
    return c + lt.sum(b)


def used_then_scalar_ag(a, b):
    if a > 0.1:
        c = 1.0
        for i in range(len(b)):
            c = c * anp.cos(b[i] * a)
    else:
        c = a
    return c + anp.sum(b)


@lt.kernel
def runtime_then(a: lt.f64, b: lt.f64["m"], k: lt.i64) -> lt.f64:
    if a > 0.1:
        o = b[k:] * 1.0           # carried array of a run-time size
        for i in range(o.shape[0]):
            o[i] = o[i] * o[i] * a
        c = lt.sum(o)
    else:
        c = a
    return c + lt.sum(b)


def runtime_then_ag(a, b, k):
    c = anp.sum(b[k:] * b[k:] * a) if a > 0.1 else a
    return c + anp.sum(b)


@lt.kernel
def runtime_else_dead(a: lt.f64, b: lt.f64["m"], k: lt.i64) -> lt.f64:
    if a < 0.1:
        c = a * 2.0
    else:
        o = lt.zeros(k)           # carried array of a run-time size, result dead
        for i in range(k):
            o[i] = o[i] * b[i] + a
        c = a * 3.0
    return c + lt.sum(lt.sin(b))


def runtime_else_dead_ag(a, b, k):
    return (a * 2.0 if a < 0.1 else a * 3.0) + anp.sum(anp.sin(b))


@lt.kernel
def both_branches(a: lt.f64, b: lt.f64["m"]) -> lt.f64:
    if a > 0.1:
        p = 1.0
        for i in range(b.shape[0]):
            p = p * b[i] + a
        c = p
    else:
        o = lt.zeros(b.shape[0])
        for i in range(1, b.shape[0]):
            o[i] = o[i - 1] * b[i] + a
        c = lt.sum(o)
    return c


def both_branches_ag(a, b):
    if a > 0.1:
        p = 1.0
        for i in range(len(b)):
            p = p * b[i] + a
        return p
    prev, c = 0.0, 0.0
    for i in range(1, len(b)):
        prev = prev * b[i] + a
        c = c + prev
    return c


# name, kernel, twin, extra (non-differentiated) args
CASES: list[tuple[str, Any, Callable, tuple]] = [
    ("dead_else", dead_else, dead_else_ag, ()),
    ("dead_then", dead_then, dead_then_ag, ()),
    ("used_else", used_else, used_else_ag, ()),
    ("used_then_scalar", used_then_scalar, used_then_scalar_ag, ()),
    ("runtime_then", runtime_then, runtime_then_ag, (1,)),
    ("runtime_else_dead", runtime_else_dead, runtime_else_dead_ag, (3,)),
    ("both_branches", both_branches, both_branches_ag, ()),
]


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.parametrize("a", [-0.5, 0.7], ids=["a_low", "a_high"])
@pytest.mark.parametrize("nums", [(1,), (0,), (0, 1)], ids=["wrt_b", "wrt_a", "wrt_both"])
@pytest.mark.parametrize("name,k,ag,extra", CASES, ids=[c[0] for c in CASES])
def test_grad_through_a_branch_holding_a_loop(name: str, k: Any, ag: Callable, extra: tuple,
                                              nums: tuple, a: float) -> None:
    b = np.random.default_rng(len(name)).uniform(-0.9, 0.9, 5)
    args = (a, b, *extra)
    g = lt.grad(k, nums)
    got, got_i = g(*args), g.interpret(*args)
    want = autograd.grad(ag, nums)(*args)
    got, got_i, want = (x if isinstance(x, tuple) else (x,) for x in (got, got_i, want))
    for j, gc, gi, gw in zip(nums, got, got_i, want):
        np.testing.assert_allclose(gc, gw, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gi, gw, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gc, _fd_grad(k, args, j, h=1e-6), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,k,ag,extra", CASES, ids=[c[0] for c in CASES])
def test_vjp_and_hvp_through_a_branch_holding_a_loop(name: str, k: Any, ag: Callable,
                                                     extra: tuple) -> None:
    b = np.linspace(-0.6, 0.8, 4)
    for a in (-0.5, 0.7):
        args = (a, b, *extra)
        v = np.linspace(0.3, -0.4, 4)
        got = lt.hvp(k, args, [None, v] + [None] * len(extra), argnums=1)
        f = lambda x: ag(a, x, *extra)  # noqa: E731
        want = autograd.hessian_vector_product(f)(b, v)
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


# A loop carrying an array of a run-time size (no branch): the backward loop needs that size
# for the carry's cotangent (here a lazily broadcast scalar from ``sum``), so partial evaluation
# passes an array of that size as a residual.
@lt.kernel
def runtime_carry(a: lt.f64, b: lt.f64["m"], k: lt.i64) -> lt.f64:
    o = b[k:] * 1.0
    for i in range(o.shape[0]):
        o[i] = o[i] * o[i] * a
    return lt.sum(o) + lt.sum(b)


def runtime_carry_ag(a, b, k):
    return anp.sum(b[k:] * b[k:] * a) + anp.sum(b)


# the branch holding the loop inside an outer loop
@lt.kernel
def branch_in_loop(a: lt.f64, b: lt.f64["m"]) -> lt.f64:
    t = 0.0
    for j in range(3):
        if a * j > 0.5:
            p = 1.0
            for i in range(b.shape[0]):
                p = p * b[i] + a
            t = t + p
        else:
            t = t + a * lt.sum(b)
    return t


def branch_in_loop_ag(a, b):
    t = 0.0
    for j in range(3):
        if a * j > 0.5:
            p = 1.0
            for i in range(len(b)):
                p = p * b[i] + a
            t = t + p
        else:
            t = t + a * anp.sum(b)
    return t


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.parametrize("k,ag,extra", [(runtime_carry, runtime_carry_ag, (2,)),
                                        (branch_in_loop, branch_in_loop_ag, ())],
                         ids=["runtime_carry", "branch_in_loop"])
def test_grad_of_more_loops_with_runtime_sizes(k: Any, ag: Callable, extra: tuple) -> None:
    b = np.linspace(-0.6, 0.8, 5)
    for a in (-0.3, 0.4, 0.9):
        args = (a, b, *extra)
        got = lt.grad(k, (0, 1))(*args)
        got_i = lt.grad(k, (0, 1)).interpret(*args)
        want = autograd.grad(ag, (0, 1))(*args)
        for j, gc, gi, gw in zip((0, 1), got, got_i, want):
            np.testing.assert_allclose(gc, gw, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(gi, gw, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(gc, _fd_grad(k, args, j, h=1e-6), rtol=1e-6, atol=1e-7)


@lt.kernel
def _f64_carry_over_f32(x: lt.f32["n"]):
    s = 0.0  # a Python float: the loop carries s as f64, the data are f32
    for i in range(x.shape[0]):
        s = s + x[i] * x[i]
    return s


def test_grad_of_an_f64_loop_carry_over_f32_data() -> None:
    """Found by the fuzzer (seeds 500506, 500549, 500671): the one-pass loop gradient added an
    f32 contribution to the f64 carry's tangent (a dtype error while building the IR)."""
    x = np.arange(1, 6, dtype=np.float32)
    assert _f64_carry_over_f32(x) == float(np.sum(x.astype(np.float64) ** 2))
    g = lt.grad(_f64_carry_over_f32)(x)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, 2.0 * x, rtol=1e-6)
    _, t = lt.jvp(_f64_carry_over_f32, (x,), (np.ones(5, np.float32),))
    assert t == pytest.approx(float(np.sum(2.0 * x)), rel=1e-6)
