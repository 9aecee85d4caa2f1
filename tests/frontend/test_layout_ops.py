"""Shape/layout operations and products (reshape, ravel, transposes, broadcast_to, tile,
repeat, roll, outer products, inner/vdot/kron, einsum, N-D matmul/dot, diag/trace/tri,
eye/linspace/arange): compiled against NumPy and against the interpreter over hypothesis-drawn
sizes, derivatives against finite differences and the inner-product identity, and the errors
bad input gets."""
from __future__ import annotations

import importlib.util
import os
import tempfile
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lattice as lt
from lattice.ir import ad
from lattice.ir.interpret import eval_func
from lattice.ir.verify import verify

from conftest import assert_same

#: parameter name -> (annotation, shape over the drawn sizes n, d, m)
PARAMS: dict[str, tuple[str, Any]] = {
    "x": ('lt.f64["n"]', lambda n, d, m: (n,)),
    "y": ('lt.f64["m"]', lambda n, d, m: (m,)),
    "v": ('lt.f64["d"]', lambda n, d, m: (d,)),
    "X": ('lt.f64["n", "d"]', lambda n, d, m: (n, d)),
    "Z": ('lt.f64["m", "d"]', lambda n, d, m: (m, d)),
    "W": ('lt.f64["d", "m"]', lambda n, d, m: (d, m)),
    "S": ('lt.f64["n", "n"]', lambda n, d, m: (n, n)),
    "T": ('lt.f64["n", "d", "m"]', lambda n, d, m: (n, d, m)),
    "U": ('lt.f64["n", "m", "d"]', lambda n, d, m: (n, m, d)),
    "Y": ('lt.f64["m", "n"]', lambda n, d, m: (m, n)),
    "X6": ('lt.f64["n", 6]', lambda n, d, m: (n, 6)),
    "q": ("lt.f64[5]", lambda n, d, m: (5,)),
}

CASES: dict[str, str] = {
    # reshape / ravel / flatten
    "reshape_minus1": "X.reshape(-1)",
    "reshape_of_transpose": "X.T.reshape(X.shape[1], -1)",
    "reshape_tuple": "np.reshape(X6, (X6.shape[0], 3, 2)) + np.reshape(X6, shape=(-1, 3, 2))",
    "reshape_minus1_middle": "X6.reshape(2, -1, 3).sum(axis=0)",
    "reshape_round_trip": "X.reshape(-1).reshape(X.shape[0], X.shape[1]) * X",
    "reshape_to_literal": "q.reshape(5, 1) * q",
    "ravel_strided": "X6[:, ::2].ravel()",
    "flatten_both_orders": "X.flatten() + X.T.flatten().sum()",
    # axis permutations and size-1 axes
    "swapaxes": "np.swapaxes(T, 0, 2) + 1.0",
    "swapaxes_method": "T.swapaxes(-1, 1)",
    "moveaxis": "np.moveaxis(T, 0, -1)",
    "moveaxis_tuple": "np.moveaxis(T, [0, 1], [-1, 0])",
    "transpose_axes": "T.transpose(2, 0, 1) * 2.0",
    "transpose_tuple_negative": "np.transpose(T, (1, -1, 0))",
    "transpose_method_tuple": "T.transpose((0, 2, 1))",
    "permute_dims": "np.permute_dims(T, (2, 0, 1)) * 3.0",
    "matrix_transpose": "np.matrix_transpose(T) - 1.0",
    "expand_dims": "np.expand_dims(x, 0) + np.expand_dims(x, -1)",
    "expand_dims_tuple": "np.expand_dims(X, (0, 2))",
    "squeeze": "X[:, :1].squeeze() + X[:1].squeeze(axis=0).sum()",
    "squeeze_all": "np.squeeze(T[:1, :, :1])",
    "atleast_2d": "np.atleast_2d(x)",
    "atleast_3d": "np.atleast_3d(X)",
    # copies
    "broadcast_to": "np.broadcast_to(x, (3, x.shape[0]))",
    "broadcast_to_column": "np.broadcast_to(X[:, :1], (X.shape[0], 4))",
    "tile": "np.tile(x, 2)",
    "tile_2d": "np.tile(X, (2, 3))",
    "tile_new_axes": "np.tile(x, (2, 1, 2))",
    "repeat": "np.repeat(x, 3)",
    "repeat_axis": "np.repeat(X, 2, axis=-1)",
    "repeat_method_flat": "X.repeat(2)",
    "roll": "np.roll(x, 2)",
    "roll_negative": "np.roll(x, -7)",
    "roll_axis": "np.roll(X, 1, axis=1)",
    "roll_flat": "np.roll(X, 3)",
    "roll_literal": "np.roll(q, 7) + np.roll(q, -1)",
    "roll_axes": "np.roll(X, (1, -2), axis=(0, 1))",
    "flip": "np.flip(X, axis=-1)",
    # products
    "outer": "np.outer(x, y)",
    "outer_flattens": "np.outer(X, y)",
    "ufunc_outer": "np.add.outer(x, y) + np.multiply.outer(x, y)",
    "ufunc_outer_2d": "np.subtract.outer(X, y) + np.maximum.outer(X, y)",
    "inner_1d": "np.inner(x, x)",
    "inner_2d": "np.inner(X, Z)",
    "inner_3d": "np.inner(T, W)",
    "vdot": "np.vdot(X, X)",
    "kron": "np.kron(x, y)",
    "kron_2d": "np.kron(X, Z)",
    "kron_mixed_rank": "np.kron(x, Z)",
    "tensordot": "np.tensordot(T, W, 2) + np.tensordot(T, Z, axes=([2, 1], [0, 1])).sum()",
    "tensordot_outer": "np.tensordot(x, y, 0)",
    "dot_3d": "np.dot(T, Y)",
    "dot_3d_vector": "np.dot(T, y)",
    "matmul_batched": "T @ T.transpose(0, 2, 1)",
    "matmul_batched_2d": "T @ Y",
    "matmul_2d_batched": "X @ U.swapaxes(1, 2)",
    "matmul_batched_vector": "T @ y",
    "matmul_vector_batched": "np.matmul(v, T)",
    "matmul_broadcast_batch": "T[:1] @ U",
    "einsum_matmul": "np.einsum('ij,jk->ik', X, W)",
    "einsum_dot": "np.einsum('i,i->', x, x)",
    "einsum_matvec": "np.einsum('ij,j->i', X, v)",
    "einsum_batched": "np.einsum('bij,bjk->bik', T, U)",
    "einsum_trace": "np.einsum('ii->', S)",
    "einsum_diagonal": "np.einsum('ii->i', S)",
    "einsum_transpose": "np.einsum('ij->ji', X)",
    "einsum_outer": "np.einsum('i,j->ij', x, y)",
    "einsum_sums": "np.einsum('ijk->', T) + np.einsum('ijk->j', T).sum()",
    "einsum_implicit": "np.einsum('ij,jk', X, W)",
    "einsum_three": "np.einsum('ij,jk,k->i', X, W, y)",
    "einsum_two_contracted": "np.einsum('ijk,jk->i', T, W)",
    "einsum_elementwise": "np.einsum('ij,ij->i', X, X)",
    "einsum_free_sum": "np.einsum('ij,k->i', X, y)",
    "einsum_ellipsis": "np.einsum('...ij,...jk->...ik', T, U)",
    "einsum_ellipsis_broadcast": "np.einsum('...j,j', X, v) + np.einsum('i...->...', T).sum()",
    # matrix helpers
    "trace": "np.trace(S) + np.trace(X, 1) + S.trace(-1)",
    "diag_of_square": "np.diag(S) + np.diag(S, 1).sum()",
    "diag_of_rectangle": "np.diag(X).sum() + np.diag(X, -1).sum() + X.diagonal(1).sum()",
    "diagonal": "np.diagonal(S, -1) * 2.0",
    "diag_build": "np.diag(x)",
    "diag_build_offset": "np.diag(x, 2) + np.diag(x, -2)",
    "tril_triu": "np.tril(X) + np.triu(X, 1)",
    "tril_batched": "np.tril(T, -1) + np.triu(T, 2)",
    "eye": "np.eye(3) + np.identity(3)",
    "tri": "np.tri(3) + np.tri(3, 4, -1)[:, :3] + np.tri(x.shape[0], dtype=np.int64).sum()",
    "eye_sized": "np.eye(x.shape[0], 4, k=1) + x[:, None]",
    "linspace": "np.linspace(0.0, 1.0, 5)",
    "linspace_traced_ends": "np.linspace(x[0], x[-1], 7)",
    "linspace_open": "np.linspace(0, 2, 4, endpoint=False)",
    "linspace_traced_num": "np.linspace(-1.0, 1.0, x.shape[0]) * x",
    "arange_step": "np.arange(1, 10, 2)",
    "arange_float": "np.arange(0.5, 3.0, 0.25)",
    "arange_down": "np.arange(10, 1, -3)",
    "arange_from_one": "np.arange(1, x.shape[0]) * x[1:]",
    "arange_traced": "np.arange(2, x.shape[0] + 5, 3).sum() + np.arange(x.shape[0], 0, -2).sum()",
}


def _uses(expr: str) -> list[str]:
    import ast
    names = {n.id for n in ast.walk(ast.parse(expr)) if isinstance(n, ast.Name)}
    return [p for p in PARAMS if p in names]


@pytest.fixture(scope="module")
def kernels():
    lines = ["import numpy as np", "import lattice as lt", ""]
    for name, expr in CASES.items():
        sig = ", ".join(f"{p}: {PARAMS[p][0]}" for p in _uses(expr))
        lines += [f"def {name}({sig}):", f"    return {expr}", ""]
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "layout_cases.py")
        with open(path, "w") as f:
            f.write("\n".join(lines))
        spec = importlib.util.spec_from_file_location("layout_cases", path)
        mod = importlib.util.module_from_spec(spec)
        assert spec.loader is not None
        spec.loader.exec_module(mod)
        yield {name: (getattr(mod, name), lt.kernel(getattr(mod, name))) for name in CASES}


def _args(name: str, sizes: tuple[int, int, int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(PARAMS[p][1](*sizes)) for p in _uses(CASES[name])]


_SIZES = st.tuples(st.integers(2, 5), st.integers(2, 5), st.integers(2, 5))


@pytest.mark.parametrize("name", list(CASES))
@settings(max_examples=4, deadline=None)
@given(sizes=_SIZES, seed=st.integers(0, 2**31))
def test_matches_numpy_and_the_interpreter(kernels, name, sizes, seed):
    fn, k = kernels[name]
    args = _args(name, sizes, seed)
    want = fn(*args)
    got = k(*args)
    assert_same(got, want, rtol=1e-12, atol=1e-13)
    assert_same(got, k.interpret(*args), rtol=1e-12, atol=1e-13)


def _jvp_fd(func, args, rng, h=1e-4):
    ts = [rng.standard_normal(np.shape(a)) for a in args]
    jf = verify(ad.jvp_func(func, [True] * len(args)))
    got = eval_func(jf, *args, *ts)[len(func.outs):]

    def f(s):
        return eval_func(func, *(a + s * t for a, t in zip(args, ts)))
    fd = [(-a + 8 * b - 8 * c + d) / (12 * h)
          for a, b, c, d in zip(f(2 * h), f(h), f(-h), f(-2 * h))]
    for g, w in zip(got, fd):
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-6, atol=1e-7)
    return ts, got


def _vjp_dot(func, args, ts, jt, rng):
    cs = [rng.standard_normal(np.shape(v)) for v in jt]
    vf = verify(ad.vjp_func(func, [True] * len(args)))
    cts = eval_func(vf, *args, *cs)[len(func.outs):]
    lhs = sum(float(np.sum(np.asarray(a) * c)) for a, c in zip(jt, cs))
    rhs = sum(float(np.sum(np.asarray(g) * t)) for g, t in zip(cts, ts))
    assert abs(lhs - rhs) <= 1e-9 * (1 + abs(lhs) + abs(rhs)), (lhs, rhs)


_DIFFERENTIABLE = [n for n in CASES if _uses(CASES[n]) and not n.startswith("arange")
                   and n not in ("eye_sized",)]


@pytest.mark.parametrize("name", _DIFFERENTIABLE)
def test_derivatives_finite_differences_and_inner_product(kernels, name):
    """<J t, c> = <t, J^T c>, and J t against a fourth-order finite difference."""
    _, k = kernels[name]
    rng = np.random.default_rng(abs(hash(name)) % 2**31)
    args = _args(name, (3, 4, 2), 1)
    ts, jt = _jvp_fd(k.ir, args, rng)
    _vjp_dot(k.ir, args, ts, jt, rng)


@settings(max_examples=10, deadline=None)
@given(perm=st.permutations([0, 1, 2]), neg=st.booleans(), sizes=_SIZES,
       seed=st.integers(0, 2**31))
def test_transposes_over_drawn_axes(perm, neg, sizes, seed):
    axes = tuple(a - 3 if neg else a for a in perm)
    src, dst = perm[0], (perm[1] - 3 if neg else perm[1])

    @lt.kernel
    def k(T: lt.f64["n", "d", "m"]):
        return np.transpose(T, axes), np.moveaxis(T, src, dst), np.swapaxes(T, src, dst)

    T = np.random.default_rng(seed).standard_normal(sizes)
    assert_same(k(T), (np.transpose(T, axes), np.moveaxis(T, src, dst),
                       np.swapaxes(T, src, dst)))


@settings(max_examples=10, deadline=None)
@given(axis=st.integers(-3, 2), shift=st.integers(-9, 9), reps=st.integers(1, 3),
       sizes=_SIZES, seed=st.integers(0, 2**31))
def test_copies_over_drawn_axes_and_counts(axis, shift, reps, sizes, seed):
    @lt.kernel
    def k(T: lt.f64["n", "d", "m"]):
        return (np.roll(T, shift, axis=axis), np.repeat(T, reps, axis=axis),
                np.expand_dims(T, axis), np.tile(T, (reps, 1, 2)),
                T.reshape(-1, T.shape[axis]).sum(axis=0))

    T = np.random.default_rng(seed).standard_normal(sizes)
    assert_same(k(T), (np.roll(T, shift, axis=axis), np.repeat(T, reps, axis=axis),
                       np.expand_dims(T, axis), np.tile(T, (reps, 1, 2)),
                       T.reshape(-1, T.shape[axis]).sum(axis=0)), rtol=1e-12, atol=1e-13)


def test_layout_operations_in_a_parallel_kernel():
    @lt.kernel(parallel=True)
    def k(X: lt.f64["n", "d"], w: lt.f64["d"]):
        z = np.tanh(X.reshape(-1)) * 2.0
        return z.reshape(X.shape[0], -1) @ w + np.roll(X, 1, axis=0).sum(axis=1), \
            np.tile(w, (2, 1)) @ np.repeat(w, 2).reshape(w.shape[0], 2)

    rng = np.random.default_rng(6)
    X, w = rng.standard_normal((3000, 40)), rng.standard_normal(40)
    want = ((np.tanh(X.reshape(-1)) * 2.0).reshape(3000, -1) @ w + np.roll(X, 1, axis=0).sum(1),
            np.tile(w, (2, 1)) @ np.repeat(w, 2).reshape(40, 2))
    assert_same(k(X, w), want, rtol=1e-10, atol=1e-12)


def test_a_diagonal_past_the_corner_is_empty():
    @lt.kernel
    def k(S: lt.f64["n", "n"]):
        return np.diag(S, 3), np.diag(S, -3).sum()

    for n in (2, 3, 5):
        S = np.arange(float(n * n)).reshape(n, n)
        assert_same(k(S), (np.diag(S, 3), np.diag(S, -3).sum()))


def test_integer_and_bool_arrays_keep_their_dtypes():
    @lt.kernel
    def k(a: lt.i64["n"], b: lt.bool_["n"]):
        return (np.tile(a, 2), a.reshape(-1, 1), np.roll(a, 1), np.einsum("i,i->", a, a),
                np.outer(b, b), np.repeat(b, 2), np.kron(a, a), np.eye(3, dtype=np.int64),
                np.tril(np.outer(a, a)), a @ np.broadcast_to(a, (2, a.shape[0])).T)

    a = np.arange(5) - 2
    b = a > 0
    want = (np.tile(a, 2), a.reshape(-1, 1), np.roll(a, 1), np.einsum("i,i->", a, a),
            np.outer(b, b), np.repeat(b, 2), np.kron(a, a), np.eye(3, dtype=np.int64),
            np.tril(np.outer(a, a)), a @ np.broadcast_to(a, (2, 5)).T)
    assert_same(k(a, b), want)


def test_gradient_through_reshape_and_einsum_matches_finite_differences():
    @lt.kernel
    def loss(X: lt.f64["n", "d"], W: lt.f64["d", "m"]) -> lt.f64:
        Z = np.einsum("ij,jk->ik", X, W).reshape(-1)
        return np.sum(np.tile(np.tanh(Z), 2) * np.repeat(np.roll(Z, 1), 2))

    rng = np.random.default_rng(3)
    X, W = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    gX, gW = lt.grad(loss, argnums=(0, 1))(X, W)
    for arg, g in ((X, gX), (W, gW)):
        num = np.zeros_like(arg)
        for idx in np.ndindex(arg.shape):
            old = arg[idx]
            arg[idx] = old + 1e-6
            up = loss(X, W)
            arg[idx] = old - 1e-6
            down = loss(X, W)
            arg[idx] = old
            num[idx] = (up - down) / 2e-6
        assert_same(g, num, rtol=1e-6, atol=1e-7)


def test_hessian_through_layout_operations_matches_autograd():
    import autograd
    import autograd.numpy as anp

    @lt.kernel
    def f(w: lt.f64["k"], T: lt.f64["b", "n", "m"]) -> lt.f64:
        W = np.tile(w, 2).reshape(T.shape[2], -1)        # (m, 2k / m)
        Z = np.einsum("bij,jk->bik", T, W)
        return np.sum(np.tanh(np.roll(Z, 1, axis=1)) * np.swapaxes(Z, 0, 2).sum())

    def ref(w, T):
        W = anp.reshape(anp.concatenate([w, w]), (T.shape[2], -1))
        Z = anp.einsum("bij,jk->bik", T, W)
        return anp.sum(anp.tanh(anp.roll(Z, 1, axis=1)) * anp.sum(anp.swapaxes(Z, 0, 2)))

    rng = np.random.default_rng(8)
    w, T = rng.standard_normal(3) * 0.5, rng.standard_normal((2, 4, 2)) * 0.5
    assert_same(f(w, T), ref(w, T), rtol=1e-12)
    assert_same(lt.hessian(f, 0)(w, T), autograd.hessian(ref)(w, T), rtol=1e-9, atol=1e-12)


def test_reshape_of_a_contiguous_array_is_a_view_in_the_lowering():
    @lt.kernel
    def flat(X: lt.f64["n", "d"]) -> lt.f64:
        return np.sum(X.reshape(-1) * np.arange(X.shape[0] * X.shape[1]))

    @lt.kernel
    def flat_t(X: lt.f64["n", "d"]) -> lt.f64:
        return np.sum(X.T.reshape(-1) * np.arange(X.shape[0] * X.shape[1]))

    X = np.random.default_rng(0).standard_normal((3, 4))
    assert_same(flat(X), np.sum(X.reshape(-1) * np.arange(12)))
    assert_same(flat_t(X), np.sum(X.T.reshape(-1) * np.arange(12)))
    # the arange is the only buffer of the first; the second copies the strided X.T too
    mallocs = [k.inspect_llvm(X).count("call ptr @malloc") for k in (flat, flat_t)]
    assert mallocs[0] + 1 == mallocs[1], mallocs


def test_broadcast_to_a_literal_size_is_checked_at_run_time():
    k, path = _module("np.broadcast_to(x, (3, 4))", 'x: lt.f64["n"]')
    x = np.arange(4.0)
    assert_same(k(x), np.broadcast_to(x, (3, 4)))
    with pytest.raises(ValueError, match="cannot broadcast .* size n vs 4 at run time") as info:
        k(np.arange(5.0))
    assert f"{os.path.basename(path)}:5" in str(info.value)


def test_a_literal_contracted_size_against_a_symbolic_one_is_checked_at_run_time():
    k, path = _module("X @ x[:5] + (x[:5] @ X.T).sum()", 'X: lt.f64["n7", "n5"], x: lt.f64["n7"]')
    rng = np.random.default_rng(2)
    X, x = rng.standard_normal((7, 5)), rng.standard_normal(7)
    assert_same(k(X, x), X @ x[:5] + (x[:5] @ X.T).sum())
    with pytest.raises(ValueError, match=r"contracted dimensions differ .*n5 vs 5") as info:
        k(rng.standard_normal((7, 4)), x)
    assert f"{os.path.basename(path)}:5" in str(info.value)
    # and the derivative through the renamed operand
    g = lt.grad(lt.kernel(_module("np.sum(np.tanh(x[:5] @ X.T))",
                                  'X: lt.f64["n7", "n5"], x: lt.f64["n7"]')[0].fn),
                argnums=1)(X, x)
    num = np.array([(np.sum(np.tanh((x + 1e-6 * e)[:5] @ X.T)) -
                     np.sum(np.tanh((x - 1e-6 * e)[:5] @ X.T))) / 2e-6 for e in np.eye(7)])
    assert_same(g, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("parallel", [False, True])
def test_batched_matmul_is_one_tiled_product_per_batch_index(parallel):
    @lt.kernel(parallel=parallel)
    def bmm(A: lt.f64["b", "n", "k"], B: lt.f64["b", "k", "m"]):
        return A @ B

    assert [e.prim.name for e in bmm.optimized_ir.eqns] == ["matmul"]

    @lt.kernel(parallel=parallel)
    def one_batch(A: lt.f64["b", "n", "k"], B: lt.f64["b", "k", "m"]):
        return A[:1] @ B  # the size-1 batch is broadcast, then the same stacked product

    assert "matmul" in [e.prim.name for e in one_batch.optimized_ir.eqns]
    assert "reduce_sum" not in [e.prim.name for e in one_batch.optimized_ir.eqns]
    rng = np.random.default_rng(4)
    for shape in ((3, 2, 5, 4), (4, 67, 33, 41)):  # the second is split across threads
        b, n, k, m = shape
        A, B = rng.standard_normal((b, n, k)), rng.standard_normal((b, k, m))
        assert_same(bmm(A, B), A @ B, rtol=1e-12, atol=1e-12)
        assert_same(bmm(A[:, ::2], B[:, :, ::3]), A[:, ::2] @ B[:, :, ::3], rtol=1e-12,
                    atol=1e-12)
        assert_same(one_batch(A, B), A[:1] @ B, rtol=1e-12, atol=1e-12)


def _module(body: str, sig: str) -> Any:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False, prefix="layout_err") as f:
        f.write(f"import numpy as np\nimport lattice as lt\n@lt.kernel\ndef k({sig}):\n"
                f"    return {body}\n")
    spec = importlib.util.spec_from_file_location("layout_err", f.name)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod.k, f.name


def test_reshape_sizes_are_checked_at_run_time_naming_the_line():
    k, path = _module("X.reshape(4, 5)", 'X: lt.f64["n", "d"]')
    assert_same(k(np.ones((5, 4))), np.ones((4, 5)))
    with pytest.raises(ValueError, match="cannot reshape") as info:
        k(np.ones((3, 3)))
    assert f"{os.path.basename(path)}:5" in str(info.value)
    k2, _ = _module("X.reshape(-1, 4).sum(axis=0)", 'X: lt.f64["n", "d"]')
    assert_same(k2(np.arange(12.0).reshape(6, 2)), np.arange(12.0).reshape(-1, 4).sum(axis=0))
    with pytest.raises(ValueError, match="cannot reshape"):
        k2(np.ones((3, 3)))  # 9 elements do not divide into rows of 4


@pytest.mark.parametrize("body,sig,why", [
    ("q.reshape(2, 3)", "q: lt.f64[5]", "cannot reshape"),
    ("q.reshape(-1, -1)", "q: lt.f64[5]", "at most one -1"),
    ("q.reshape(5, order='F')", "q: lt.f64[5]", "order='C'"),
    ("np.reshape(q, 5, shape=(5,))", "q: lt.f64[5]", "give the new shape once"),
    ("X.squeeze(axis=1)", 'X: lt.f64["n", "d"]', "not a literal 1"),
    ("np.transpose(X, (0, 0))", 'X: lt.f64["n", "d"]', "permutation"),
    ("np.swapaxes(X, 0, 2)", 'X: lt.f64["n", "d"]', "out of bounds"),
    ("np.repeat(x, x.astype(np.int64))", 'x: lt.f64["n"]', "Python int count"),
    ("np.tile(x, x.shape[0])", 'x: lt.f64["n"]', "compile time"),
    ("np.einsum('i.j,j->i', X, x)", 'X: lt.f64["n", "d"], x: lt.f64["d"]', "only as one"),
    ("np.einsum('ij,j->k', X, x)", 'X: lt.f64["n", "d"], x: lt.f64["d"]', "appears in no"),
    ("np.einsum('ij->i', x)", 'x: lt.f64["n"]', "subscripts name 2"),
    ("np.einsum('ij->ij', X, X)", 'X: lt.f64["n", "d"]', "operand subscripts"),
    ("np.einsum('ii->i', X)", 'X: lt.f64["n", "d"]', "different sizes"),
    ("np.broadcast_to(q, (3, 4))", "q: lt.f64[5]", "cannot broadcast"),
    ("X @ x", 'X: lt.f64["n", "d"], x: lt.f64["n"]', "contracted"),
    ("np.trace(x)", 'x: lt.f64["n"]', "2-D"),
])
def test_bad_input_is_a_compile_error_naming_the_construct_and_line(body, sig, why):
    k, path = _module(body, sig)
    shapes = {"q": (5,), "X": (3, 4), "x": (4,) if "einsum('ij,j" in body or "i.j" in body
              else (3,)}
    names = [part.split(":")[0].strip() for part in sig.split("], ")]
    with pytest.raises(lt.CompileError, match=why) as info:
        k(*(np.ones(shapes[nm]) for nm in names))
    assert f"{os.path.basename(path)}:5" in str(info.value)


# ------------------------------------------------------ diff, digitize, np.array of values
def _diffs(x: lt.f64["n"], X: lt.f64["n", "m"], k: lt.i64["n"], b: lt.bool_["n"], a: lt.f64):
    return (np.diff(x), np.diff(x, 2), np.diff(X, axis=0), np.diff(X, prepend=0.0, append=X[:, :1]),
            np.diff(k), np.diff(b), np.diff(x, 0), np.digitize(x, np.array([0.2, 0.5, 0.8])),
            np.digitize(x, np.array([0.2, 0.5, 0.8]), right=True), np.array([a, 2.0 * a, 3.0]),
            np.array([[a, 1.0], [2.0, a]]), np.concatenate([X, X[:2]], axis=None))


@settings(max_examples=15, deadline=None)
@given(st.integers(3, 9), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_diff_digitize_and_array_of_values_match_numpy(n, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.random(n)
    x[: n // 3] = 0.5  # values on the bin edges
    args = (x, rng.random((n, m)), rng.integers(-9, 9, n), rng.random(n) > 0.5, 1.5)
    want = _diffs(*args)
    k = lt.kernel(_diffs)
    for run in (k, k.interpret):
        for g, w in zip(run(*args), want):
            g, w = np.asarray(g), np.asarray(w)
            assert g.dtype == w.dtype and g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=1e-14)


def test_diff_of_an_empty_axis_is_empty_as_in_numpy():
    # its size n - 1 would be negative: empty, as NumPy clips
    def f(x: lt.f64["n"]):
        return np.diff(x)

    k = lt.kernel(f)
    for run in (k, k.interpret):
        got = run(np.zeros(0))
        assert got.shape == (0,) and got.dtype == np.float64


def test_gradient_of_a_second_difference_is_its_transpose():
    def f(x: lt.f64["n"]) -> lt.f64:
        return np.sum(np.diff(x, 2) ** 2)

    x = np.random.default_rng(2).standard_normal(7)
    D = np.diff(np.eye(7), 2, axis=0)  # the second-difference matrix
    np.testing.assert_allclose(lt.grad(lt.kernel(f))(x), 2 * D.T @ (D @ x), rtol=1e-12)
