"""``lt.concatenate``, ``lt.stack``, ``lt.vstack``, ``lt.hstack`` (and NumPy's names inside a
kernel): compiled vs the interpreter vs NumPy over shapes, axes and mixed dtypes; gradients
against finite differences; the errors NumPy raises, at trace or at run time."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lattice as lt

from conftest import assert_same, run_both


@lt.kernel
def cat0(a: lt.f64["n", "d"], b: lt.f32["m", "d"], c: lt.i64["k", "d"]):
    return lt.concatenate([a, b, c])


@lt.kernel
def cat1(a: lt.f64["n", "d"], b: lt.f32["n", "m"], c: lt.i64["n", "k"]):
    return lt.concatenate((a, b, c), axis=-1)


@lt.kernel
def cat_ints(a: lt.i32["n"], b: lt.i32["m"]):
    return np.concatenate([a, b * 2, a])  # NumPy's name, and an expression among the parts


@lt.kernel(parallel=True)
def stacks(a: lt.f64["n", "d"], b: lt.f64["n", "d"]):
    return lt.stack([a, b]), lt.stack([a, b], axis=1), np.stack((a, b), axis=-1)


@lt.kernel
def vh(a: lt.f64["d"], b: lt.f64["d"], X: lt.f64["n", "d"], Y: lt.f64["n", "k"]):
    return lt.vstack([a, X, b]), lt.hstack([a, b]), lt.hstack([X, Y]), np.vstack([a, b])


@given(n=st.integers(0, 5), m=st.integers(0, 5), k=st.integers(0, 5), d=st.integers(0, 4),
       seed=st.integers(0, 2**16))
@settings(deadline=None, max_examples=30)
def test_concatenate_any_sizes_and_dtypes(n, m, k, d, seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((n, d))
    b = rng.standard_normal((m, d)).astype(np.float32)
    c = rng.integers(-9, 9, (k, d))
    assert_same(run_both(cat0, a, b, c), np.concatenate([a, b, c]))
    b1, c1 = rng.standard_normal((n, m)).astype(np.float32), rng.integers(-9, 9, (n, k))
    assert_same(run_both(cat1, a, b1, c1), np.concatenate([a, b1, c1], axis=-1))


def test_integer_concatenation_keeps_the_dtype():
    a, b = np.arange(4, dtype=np.int32), np.arange(3, dtype=np.int32)
    assert_same(run_both(cat_ints, a, b), np.concatenate([a, b * 2, a]))


@given(n=st.integers(0, 4), d=st.integers(0, 4), seed=st.integers(0, 2**16))
@settings(deadline=None, max_examples=20)
def test_stack_vstack_hstack(n, d, seed):
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    assert_same(run_both(stacks, a, b),
                (np.stack([a, b]), np.stack([a, b], axis=1), np.stack((a, b), axis=-1)))
    u, v, Y = rng.standard_normal(d), rng.standard_normal(d), rng.standard_normal((n, 2))
    assert_same(run_both(vh, u, v, a, Y),
                (np.vstack([u, a, v]), np.hstack([u, v]), np.hstack([a, Y]), np.vstack([u, v])))


def _loss(a: lt.f64["n", "d"], b: lt.f64["m", "d"], w: lt.f64["d"]) -> lt.f64:
    c = lt.concatenate([a * 2.0, lt.exp(b)])
    s = lt.stack([c[0], c[-1]], axis=1)
    return lt.sum(c * c * w) + lt.sum(s * s)


def test_gradients_against_finite_differences():
    rng = np.random.default_rng(7)
    a, b, w = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)) * 0.3, rng.random(4)
    k = lt.kernel(_loss)
    ga, gb = lt.grad(k, argnums=(0, 1))(a, b, w)
    for arg, g in ((0, ga), (1, gb)):
        x = [a, b, w][arg]
        num = np.zeros_like(x)
        for idx in np.ndindex(x.shape):
            h = 1e-6
            xp, xm = x.copy(), x.copy()
            xp[idx] += h
            xm[idx] -= h
            args_p = [a, b, w]
            args_m = [a, b, w]
            args_p[arg], args_m[arg] = xp, xm
            num[idx] = (k(*args_p) - k(*args_m)) / (2 * h)
        assert_same(g, num, rtol=1e-7, atol=1e-7)


def _trace_error(body: str, sig: str = "a: lt.f64['n', 'd'], b: lt.f64['m', 'k']"):
    import importlib.util
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(f"import lattice as lt\n@lt.kernel\ndef k({sig}):\n    {body}\n")
    spec = importlib.util.spec_from_file_location("join_case", f.name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.k


@pytest.mark.parametrize("body,why", [
    ("return lt.concatenate([])", "need at least one array"),
    ("return lt.concatenate(a)", "expected a list or tuple"),
    ("return lt.concatenate([a, b[0]])", "same number of dimensions"),
    ("return lt.concatenate([a, 1.0])", "zero-dimensional arrays cannot be joined"),
    ("return lt.concatenate([a, b], axis=2)", "axis 2 is out of bounds"),
    ("return lt.concatenate([a[:, :2], b[:, :3]], axis=0)",
     "along dimension 1, the array at index 0 has size 2 and the array at index 1 has size 3"),
    ("return lt.stack([a[:2], b[:3]])", "must have the same shape"),
    ("return lt.stack([a, a], axis=-4)", "out of bounds for arrays of dimension 2"),
])
def test_errors_name_the_problem_and_the_line(body, why):
    k = _trace_error(body)
    with pytest.raises(lt.CompileError, match=why) as info:
        k(np.ones((3, 4)), np.ones((2, 5)))
    assert "join_case" in str(info.value) or ".py:4" in str(info.value)


def test_differently_named_sizes_are_different():
    # as for broadcasting: the other axes must be the same dims, or the trace fails
    k = _trace_error("return lt.concatenate([a, b])")
    with pytest.raises(lt.CompileError, match="along dimension 1, array 0 has size d and "
                                              "array 1 has size k"):
        k(np.ones((3, 4)), np.zeros((2, 4)))
    same = _trace_error("return lt.concatenate([a, b])",
                        "a: lt.f64['n', 'd'], b: lt.f64['m', 'd']")
    assert_same(same(np.ones((3, 4)), np.zeros((2, 4))),
                np.concatenate([np.ones((3, 4)), np.zeros((2, 4))]))
    with pytest.raises(ValueError, match="'d'"):  # the dispatcher's check of the shared dim
        same(np.ones((3, 4)), np.ones((2, 5)))


def _cubes(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(lt.concatenate([x, x * 2.0, lt.stack([x, x])[1]]) ** 3)


def test_hessian_through_concatenate():
    # sum(x^3 + 8 x^3 + x^3): the Hessian is diag(60 x)
    x = np.linspace(-1, 2, 5)
    assert_same(lt.hessian(lt.kernel(_cubes))(x), np.diag(60 * x), rtol=1e-12, atol=1e-12)
    assert_same(lt.grad(lt.kernel(_cubes))(x), 30 * x * x, rtol=1e-12)


# --------------------------------------------------------------------------- scalars
@lt.kernel
def stack_scalars(x: lt.f64["n"], a: lt.f64):
    return (lt.stack([x[0], a, 2.0]), np.stack([a, x[1]], axis=-1), np.vstack([a, x[0]]),
            np.hstack([a, x, 1.0]), lt.stack([lt.sum(x), a * a]))


def test_stack_of_scalars_is_one_dimensional():
    # NumPy stacks 0-d inputs into a 1-D array (vstack: 1x1 rows, hstack: 1-D pieces)
    x, a = np.array([1.0, -2.0, 3.5]), 0.25
    want = (np.stack([x[0], a, 2.0]), np.stack([a, x[1]], axis=-1), np.vstack([a, x[0]]),
            np.hstack([a, x, 1.0]), np.stack([np.sum(x), a * a]))
    assert_same(run_both(stack_scalars, x, a), want)
    with pytest.raises(lt.CompileError, match="axis 1 is out of bounds for arrays of dimension 0"):
        _trace_error("return lt.stack([a[0, 0], b[0, 0]], axis=1)")(np.ones((3, 4)),
                                                                    np.ones((2, 5)))


# ------------------------------------------------------------- parts sized when the kernel runs
@lt.kernel
def split_join(x: lt.f64["n"], k: lt.i64) -> lt.f64:
    return lt.sum(lt.concatenate([x[:k] * 3.0, x[k:], x[1:k]]) ** 2)


@lt.kernel
def split_join_traced(x: lt.f64["n", "d"]) -> lt.f64:
    k = lt.argmax(x[:, 0])  # a traced bound
    return lt.sum(lt.concatenate([x[k:] * x[k:], x[:k]], axis=0) ** 2) + \
        lt.sum(lt.concatenate([x[:, :1], x[:, 1:] * 2.0], axis=1) * x)


@pytest.mark.parametrize("k,args", [
    (split_join, (np.array([1.0, -2.0, 3.0, 0.5, 4.0]), 3)),
    # k = 1 leaves x[1:k] empty (k = 0 would make it a slice NumPy clips: an IndexError, see
    # "Sizes" in docs/getting-started.md, now that k is a size)
    (split_join, (np.array([1.0, -2.0, 3.0, 0.5, 4.0]), 1)),
    (split_join_traced, (np.array([[0.5, 1.0, -1.0], [2.0, 0.3, 0.2], [-1.0, 0.7, 1.5]]),)),
])
def test_gradient_through_parts_cut_at_traced_bounds(k, args):
    # the transpose cuts the cotangent at sizes known only when the kernel runs
    from test_transforms_programs import _fd_grad
    g = lt.grad(k)
    fd = _fd_grad(k, args, 0, h=1e-6)
    assert_same(g(*args), fd, rtol=1e-7, atol=1e-7)
    assert_same(g.interpret(*args), g(*args))
    # forward mode (a concat of tangents) agrees with reverse mode
    t = np.random.default_rng(1).standard_normal(args[0].shape)
    _, jt = lt.jvp(k, args, (t,) + (None,) * (len(args) - 1))
    assert abs(float(jt) - float(np.sum(g(*args) * t))) <= 1e-10 * (1 + abs(float(jt)))


@lt.kernel
def split_join_in_loop(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for i in range(x.shape[0]):
        s = s + lt.sum(lt.concatenate([x[:i] * 2.0, x[i:]]) ** 2)
    return s


def test_gradient_through_parts_cut_by_the_loop_index():
    # x_j is doubled in the n-1-j iterations after it: d/dx_j = 2 x_j (4 (n-1-j) + j + 1)
    x = np.array([1.0, -2.0, 3.0, 0.5, 0.25])
    n = len(x)
    want = np.array([2 * x[j] * (4 * (n - 1 - j) + j + 1) for j in range(n)])
    g = lt.grad(split_join_in_loop)
    assert_same(g(x), want, rtol=1e-12)
    assert_same(g.interpret(x), want, rtol=1e-12)
