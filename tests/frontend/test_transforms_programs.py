"""Gradients of whole programs (loops, branches, stores, indexing, broadcasting, matmul) against
an independent AD (the ``autograd`` package) and finite differences, compiled and interpreted.

Hypothesis draws sizes and values; each kernel compiles once (the gradient kernels are cached on
the kernel object and a new size never recompiles).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lattice as lt

autograd = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")


# --------------------------------------------------------------------------- the programs
@lt.kernel
def prod_loop(x: lt.f64["n"]) -> lt.f64:
    p = 1.0
    for i in range(x.shape[0]):
        p = p * x[i]
    return p


def prod_loop_ag(x):
    p = 1.0
    for i in range(len(x)):
        p = p * x[i]
    return p


@lt.kernel
def cumsum_store(x: lt.f64["n"]) -> lt.f64:
    out = lt.zeros(x.shape[0])
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
        out[i] = s
    return lt.sum(lt.sin(out))


def cumsum_store_ag(x):
    return anp.sum(anp.sin(anp.cumsum(x * x)))


@lt.kernel
def nested(A: lt.f64["n", "m"], v: lt.f64["m"]) -> lt.f64:
    t = 0.0
    for i in range(A.shape[0]):
        r = 0.0
        for j in range(A.shape[1]):
            r += A[i, j] * v[j]
        t += lt.tanh(r)
    return t


def nested_ag(A, v):
    return anp.sum(anp.tanh(A @ v))


@lt.kernel
def nested_tape(A: lt.f64["n", "m"], v: lt.f64["m"]) -> lt.f64:
    # the inner carry is multiplicative (taped), the outer one a carried array
    acc = lt.zeros(A.shape[1])
    for i in range(A.shape[0]):
        r = 1.0
        for j in range(A.shape[1]):
            r = r * lt.cos(A[i, j] * v[j])
        acc = acc * 0.5 + A[i] * r
    return lt.sum(acc * acc)


def nested_tape_ag(A, v):
    acc = anp.zeros(A.shape[1])
    for i in range(A.shape[0]):
        r = anp.prod(anp.cos(A[i] * v))
        acc = acc * 0.5 + A[i] * r
    return anp.sum(acc * acc)


@lt.kernel
def branchy(x: lt.f64["n"], a: lt.f64) -> lt.f64:
    s = 0.0
    for i in range(x.shape[0]):
        if x[i] > 0:
            s += x[i] * a
        else:
            s -= lt.exp(x[i] * a)
    return s


def branchy_ag(x, a):
    s = 0.0
    for i in range(len(x)):
        s = s + x[i] * a if x[i] > 0 else s - anp.exp(x[i] * a)
    return s


@lt.kernel
def recur(x: lt.f64["n"], w: lt.f64) -> lt.f64:
    h = 0.0
    for i in range(x.shape[0]):
        h = lt.tanh(w * h + x[i])
    return h


def recur_ag(x, w):
    h = 0.0
    for i in range(len(x)):
        h = anp.tanh(w * h + x[i])
    return h


@lt.kernel
def vec_rnn(W: lt.f64["d", "d"], xs: lt.f64["n", "d"]) -> lt.f64:
    h = lt.zeros(W.shape[0])
    for i in range(xs.shape[0]):
        h = lt.tanh(W @ h + xs[i])
    return lt.sum(h * h)


def vec_rnn_ag(W, xs):
    h = anp.zeros(W.shape[0])
    for i in range(xs.shape[0]):
        h = anp.tanh(W @ h + xs[i])
    return anp.sum(h * h)


@lt.kernel
def mlp(W1: lt.f64["h", "d"], b1: lt.f64["h"], w2: lt.f64["h"], X: lt.f64["n", "d"]) -> lt.f64:
    Z = lt.tanh(X @ W1.T + b1)
    return lt.mean(lt.softplus(Z @ w2))


def mlp_ag(W1, b1, w2, X):
    return anp.mean(anp.logaddexp(0.0, anp.tanh(X @ W1.T + b1) @ w2))


@lt.kernel
def reductions(X: lt.f64["n", "d"]) -> lt.f64:
    return (lt.sum(lt.max(X, axis=1)) + lt.sum(lt.logaddexp(X[1:, :], X[:-1, :]))
            + lt.min(X) * 0.5 + lt.sum(lt.mean(X, axis=0) ** 2))


def reductions_ag(X):
    return (anp.sum(anp.max(X, axis=1)) + anp.sum(anp.logaddexp(X[1:], X[:-1]))
            + anp.min(X) * 0.5 + anp.sum(anp.mean(X, axis=0) ** 2))


@lt.kernel
def where_stores(x: lt.f64["n"], k: lt.i64) -> lt.f64:
    y = lt.where(x > 0, x * x, lt.sin(x))
    z = lt.copy(y)
    z[0] = 2.0 * x[k]          # a store (the old z[0] gets no gradient)
    z[1:] += x[:-1] * 0.5      # an augmented store into a slice
    head = x[:k]               # a slice with a traced bound
    return lt.sum(z * z) + lt.sum(head * head)


def where_stores_ag(x, k):
    y = anp.where(x > 0, x * x, anp.sin(x))
    z = anp.concatenate([anp.array([2.0 * x[k]]), y[1:] + x[:-1] * 0.5])
    return anp.sum(z * z) + anp.sum(x[:k] * x[:k])


@lt.kernel
def rev_step_loop(x: lt.f64["n"]) -> lt.f64:
    s = 1.0
    for i in range(x.shape[0] - 1, -1, -2):
        s = s * lt.cos(x[i]) + x[i]
    return s


def rev_step_loop_ag(x):
    s = 1.0
    for i in range(len(x) - 1, -1, -2):
        s = s * anp.cos(x[i]) + x[i]
    return s


@lt.kernel
def array_tape(x: lt.f64["n"], w: lt.f64) -> lt.f64:
    h = lt.copy(x)
    for i in range(3):
        h = lt.sin(h) * w + lt.sum(h) * 0.1
    return lt.sum(h)


def array_tape_ag(x, w):
    h = x
    for i in range(3):
        h = anp.sin(h) * w + anp.sum(h) * 0.1
    return anp.sum(h)


@lt.kernel
def matmul_ranks(A: lt.f64["n", "d"], B: lt.f64["d", "m"], v: lt.f64["d"], u: lt.f64["n"]) -> lt.f64:
    return lt.sum(lt.tanh(A @ B)) + u @ (A @ v) + lt.sum((v @ B) ** 2) + v @ v


def matmul_ranks_ag(A, B, v, u):
    return anp.sum(anp.tanh(A @ B)) + u @ (A @ v) + anp.sum((v @ B) ** 2) + v @ v


@lt.kernel
def strided_from(x: lt.f64["n"], k: lt.i64) -> lt.f64:
    p = 1.0
    for i in range(k, x.shape[0], 2):   # a traced start, a step of 2: the tape's trip count
        p = p * lt.sin(x[i]) + 0.5
    return p


def strided_from_ag(x, k):
    p = 1.0
    for i in range(k, len(x), 2):
        p = p * anp.sin(x[i]) + 0.5
    return p


# name, kernel, autograd twin, argument maker (rng, n) -> args, argnums
PROGRAMS: list[tuple[str, Any, Callable, Callable, tuple]] = [
    ("prod_loop", prod_loop, prod_loop_ag, lambda r, n: (r.uniform(0.5, 1.5, n),), (0,)),
    ("cumsum_store", cumsum_store, cumsum_store_ag, lambda r, n: (r.normal(size=n) * 0.5,), (0,)),
    ("nested", nested, nested_ag, lambda r, n: (r.normal(size=(n, 3)), r.normal(size=3)), (0, 1)),
    ("nested_tape", nested_tape, nested_tape_ag,
     lambda r, n: (r.normal(size=(n, 3)), r.normal(size=3)), (0, 1)),
    ("branchy", branchy, branchy_ag, lambda r, n: (r.normal(size=n), 0.7), (0, 1)),
    ("recur", recur, recur_ag, lambda r, n: (r.normal(size=n), 0.8), (0, 1)),
    ("vec_rnn", vec_rnn, vec_rnn_ag,
     lambda r, n: (r.normal(size=(3, 3)) * 0.5, r.normal(size=(n, 3))), (0, 1)),
    ("mlp", mlp, mlp_ag, lambda r, n: (r.normal(size=(4, 3)), r.normal(size=4),
                                       r.normal(size=4), r.normal(size=(n, 3))), (0, 1, 2, 3)),
    ("reductions", reductions, reductions_ag, lambda r, n: (r.normal(size=(n, 3)),), (0,)),
    ("where_stores", where_stores, where_stores_ag,
     lambda r, n: (r.normal(size=n), min(2, n - 1)), (0,)),
    ("rev_step_loop", rev_step_loop, rev_step_loop_ag, lambda r, n: (r.normal(size=n),), (0,)),
    ("array_tape", array_tape, array_tape_ag, lambda r, n: (r.normal(size=n), 0.9), (0, 1)),
    ("matmul_ranks", matmul_ranks, matmul_ranks_ag,
     lambda r, n: (r.normal(size=(n, 3)), r.normal(size=(3, 2)), r.normal(size=3),
                   r.normal(size=n)), (0, 1, 2, 3)),
    ("strided_from", strided_from, strided_from_ag,
     lambda r, n: (r.normal(size=n), int(r.integers(0, n + 2))), (0,)),
]


def _fd_grad(k: Any, args: Sequence[Any], a: int, h: float = 1e-5) -> np.ndarray:
    """Central differences of the interpreted kernel along each coordinate of argument a."""
    x = np.asarray(args[a], dtype=np.float64)
    g = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        vals = []
        for s in (h, -h):
            xs = x.copy()
            xs[idx] += s
            new = list(args)
            new[a] = xs if x.shape else float(xs)
            vals.append(float(k.interpret(*new)))
        g[idx] = (vals[0] - vals[1]) / (2 * h)
    return g


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.parametrize("name,k,ag,make,nums", PROGRAMS, ids=[p[0] for p in PROGRAMS])
@settings(max_examples=6)
@given(n=st.integers(2, 7), seed=st.integers(0, 2**31))
def test_gradient_matches_autograd_and_fd(name: str, k: Any, ag: Callable, make: Callable,
                                          nums: tuple, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    args = make(rng, n)
    want = autograd.grad(ag, nums)(*args)
    g = lt.grad(k, nums)
    got = g(*args)
    got_i = g.interpret(*args)
    for a, gw, gc, gi in zip(nums, want, got, got_i):
        np.testing.assert_allclose(gc, gw, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gi, gw, rtol=1e-9, atol=1e-12)
    if seed % 3 == 0:  # finite differences too (slower: two evaluations per coordinate)
        for a, gc in zip(nums, got):
            np.testing.assert_allclose(gc, _fd_grad(k, args, a), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name,k,ag,make,nums",
                         [p for p in PROGRAMS if p[0] in ("branchy", "recur", "nested_tape",
                                                          "vec_rnn", "mlp")],
                         ids=["branchy", "recur", "nested_tape", "vec_rnn", "mlp"])
def test_hvp_matches_autograd(name: str, k: Any, ag: Callable, make: Callable,
                              nums: tuple) -> None:
    rng = np.random.default_rng(7)
    args = make(rng, 4)
    a = nums[0]
    v = rng.normal(size=np.shape(args[a]))
    tangents = [None] * len(args)
    tangents[a] = v
    got = lt.hvp(k, args, tangents, argnums=a)
    f = lambda x: ag(*[x if j == a else args[j] for j in range(len(args))])  # noqa: E731
    want = autograd.hessian_vector_product(f)(np.asarray(args[a], dtype=np.float64), v)
    np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name,k,ag,make,nums", PROGRAMS, ids=[p[0] for p in PROGRAMS])
@settings(max_examples=3)
@given(n=st.integers(2, 6), seed=st.integers(0, 2**31))
def test_jvp_matches_finite_differences(name: str, k: Any, ag: Callable, make: Callable,
                                        nums: tuple, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    args = list(make(rng, n))
    ts = [rng.normal(size=np.shape(a)) if j in nums else None for j, a in enumerate(args)]
    out, t = lt.jvp(k, args, ts)
    h = 1e-5

    def at(s: float) -> float:
        return float(k.interpret(*[a + s * tt if tt is not None else a
                                   for a, tt in zip(args, ts)]))
    fd = (-at(2 * h) + 8 * at(h) - 8 * at(-h) + at(-2 * h)) / (12 * h)
    np.testing.assert_allclose(t, fd, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(out, k(*args), rtol=1e-12)


@pytest.mark.filterwarnings("ignore:Output seems independent of input")
@pytest.mark.parametrize("k,args", [
    (prod_loop, (np.zeros(0),)),
    (branchy, (np.zeros(0), 1.0)),
    (vec_rnn, (np.ones((2, 2)), np.zeros((0, 2)))),
    (strided_from, (np.ones(3), 5)),
], ids=["prod_loop", "branchy", "vec_rnn", "strided_from"])
def test_loops_without_iterations(k: Any, args: tuple) -> None:
    nums = tuple(j for j, a in enumerate(args) if not isinstance(a, int))
    got = lt.grad(k, nums)(*args)
    want = autograd.grad({prod_loop: prod_loop_ag, branchy: branchy_ag, vec_rnn: vec_rnn_ag,
                          strided_from: strided_from_ag}[k], nums)(*args)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w)


def test_linearize_and_transpose_as_separate_functions() -> None:
    """linearize_func -> (primal + residuals, linear); transpose_func(linear) is the VJP."""
    from lattice.ir import ad
    from lattice.ir.interpret import eval_func
    from lattice.ir.verify import verify
    known, lin, n_res = ad.linearize_func(branchy.ir, [True, True])
    tr = verify(ad.transpose_func(verify(lin), [False] * n_res + [True, True]))
    x, a = np.array([0.5, -1.0, 2.0, -0.2]), np.float64(0.3)
    out, *res = eval_func(verify(known), x, a)
    np.testing.assert_allclose(out, branchy(x, a))
    cx, ca = eval_func(tr, *res, np.float64(1.0))
    wx, wa = autograd.grad(branchy_ag, (0, 1))(x, a)
    np.testing.assert_allclose(cx, wx, rtol=1e-12)
    np.testing.assert_allclose(ca, wa, rtol=1e-12)
    tx, ta = np.ones(4), np.float64(2.0)
    (jt,) = eval_func(lin, *res, tx, ta)
    np.testing.assert_allclose(jt, cx @ tx + ca * ta, rtol=1e-12)
