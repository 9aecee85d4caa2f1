"""The rowreduce pass: a full reduction or arg-reduction of f(x @ w, ...) becomes one equation."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from lattice.ir import primitives as P
from lattice.ir.core import Func, Lit, Var, bind, building
from lattice.ir.interpret import eval_func
from lattice.ir.passes import DEFAULT_PASSES, rowreduce, run
from lattice.ir.printer import print_func
from lattice.ir.types import Dim, ShapeError, TensorType, bool_, f32, f64, i32, i64, scalar
from lattice.ir.verify import verify
from test_passes import T, build, op  # IR-building helpers

n, d = Dim.named("n"), Dim.named("d")


def golden(func, text):
    assert print_func(func) == textwrap.dedent(text).lstrip("\n")


def prims(func):
    return [e.prim for e in func.eqns]


def same(before, after, *args):
    for w, g in zip(eval_func(before, *args), eval_func(after, *args)):
        w, g = np.asarray(w), np.asarray(g)
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_allclose(g, w, rtol=1e-13, equal_nan=True)


def best_match(dtype=f32):
    return build([T(dtype, n, d), T(dtype, d)],
                 lambda E, q: op(P.argmax_p, op(P.matmul_p, E, q), axis=None), "best_match")


def _data(rows=37, cols=5, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return (rng.integers(-3, 4, (rows, cols)).astype(dtype),
            rng.integers(-3, 4, cols).astype(dtype), rng.standard_normal(rows))


def test_golden_argmax_of_a_matvec():
    after = run(best_match())
    golden(after, """
        func best_match
        lambda %a:f32[n,d], %b:f32[d] ->
          %d:i64 = rowreduce[body={
            lambda %c:f32 ->
              return %c
          }, reduce='argmax'] %a %b
          return %d
        """)
    E, q, _ = _data(dtype=np.float32)
    same(best_match(), after, E, q)


def test_golden_fused_sum_takes_its_body_and_extras():
    f = build([T(f64, n, d), T(f64, d), T(f64, n)],
              lambda E, q, b: op(P.reduce_sum_p, op(P.exp_p, op(P.sub_p, op(P.matmul_p, E, q),
                                                                 b)), axes=(0,)), "lse")
    after = run(f)
    golden(after, """
        func lse
        lambda %a:f64[n,d], %b:f64[d], %c:f64[n] ->
          %h:f64 = rowreduce[body={
            lambda %d:f64, %e:f64 ->
              %f:f64 = sub %d %e
              %g:f64 = exp %f
              return %g
          }, reduce='sum'] %a %b %c
          return %h
        """)
    E, q, b = _data()
    same(f, after, E, q, b)


@pytest.mark.parametrize("prim,kw,kind", [
    (P.argmax_p, {"axis": 0}, "argmax"), (P.argmin_p, {"axis": None}, "argmin"),
    (P.reduce_max_p, {"axes": (0,)}, "max"), (P.reduce_min_p, {"axes": (0,)}, "min"),
    (P.reduce_sum_p, {"axes": (0,)}, "sum")])
def test_every_reduction_directly_and_after_one_op(prim, kw, kind):
    direct = build([T(f64, n, d), T(f64, d)], lambda E, q: op(prim, op(P.matmul_p, E, q), **kw))
    scaled = build([T(f64, n, d), T(f64, d), T(f64, n)],
                   lambda E, q, s: op(prim, op(P.mul_p, op(P.matmul_p, E, q), s), **kw))
    E, q, s = _data()
    for f, args in ((direct, (E, q)), (scaled, (E, q, s))):
        after = run(f)
        (e,) = after.eqns
        assert e.prim is P.rowreduce_p and e.params["reduce"] == kind
        same(f, after, *args)


def test_integer_sum_keeps_its_i64_result():
    f = build([T(i32, n, d), T(i32, d)],
              lambda E, q: op(P.reduce_sum_p, op(P.matmul_p, E, q), axes=(0,)))
    after = run(f)
    assert prims(after) == [P.rowreduce_p] and after.out_types == (scalar(i64),)
    E = np.arange(12, dtype=np.int32).reshape(4, 3)
    q = np.array([1, -2, 3], np.int32)
    same(f, after, E, q)


def test_left_alone():
    # z returned as well, z reduced twice, v used twice, a row count of literal 1 broadcast,
    # matrix @ matrix, a row-wise argmax, a reduction over a fused map it is not part of
    cases = [
        build([T(f64, n, d), T(f64, d)],
              lambda E, q: (lambda z: (op(P.argmax_p, z, axis=None), z))(op(P.matmul_p, E, q))),
        build([T(f64, n, d), T(f64, d)],
              lambda E, q: (lambda z: (op(P.reduce_max_p, z, axes=(0,)),
                                       op(P.argmax_p, z, axis=None)))(op(P.matmul_p, E, q))),
        build([T(f64, n, d), T(f64, d)],
              lambda E, q: (lambda v: (op(P.argmax_p, v, axis=None), v))(
                  op(P.exp_p, op(P.matmul_p, E, q)))),
        build([T(f64, 1, d), T(f64, d), T(f64, n)],
              lambda A, q, b: op(P.argmax_p, op(P.add_p, op(P.matmul_p, A, q), b), axis=None)),
        build([T(f64, n, d), T(f64, d, n)],
              lambda A, B: op(P.argmax_p, op(P.matmul_p, A, B), axis=None)),
        build([T(f64, n, d), T(f64, d, n)],
              lambda A, B: op(P.argmax_p, op(P.matmul_p, A, B), axis=1)),
    ]
    for f in cases:
        after = run(f)
        assert P.rowreduce_p not in prims(after), print_func(f)


def test_inside_loop_bodies():
    def outer(E, q):
        i, acc = Var(scalar(i64)), Var(scalar(i64))
        Ec, qc = Var(T(f64, n, d)), Var(T(f64, d))
        with building() as bb:
            s = op(P.add_p, acc, op(P.argmax_p, op(P.matmul_p, Ec, qc), axis=None))
        body = bb.build([i, acc, Ec, qc], [s], "body")
        return op(P.loop_p, Lit.of(0, i64), Lit.of(3, i64), Lit.of(1, i64), Lit.of(0, i64), E, q,
                  body=body, n_carry=1)
    f = build([T(f64, n, d), T(f64, d)], outer)
    after = run(f)
    (loop,) = after.eqns
    assert prims(loop.params["body"]) == [P.rowreduce_p, P.add_p]
    E, q, _ = _data()
    same(f, after, E, q)


def test_every_prefix_of_the_pipeline_verifies():
    f = best_match()
    for k in range(len(DEFAULT_PASSES) + 1):
        run(f, DEFAULT_PASSES[:k])  # verifies after every pass
    assert print_func(rowreduce(run(f))) == print_func(run(f))  # nothing left to do


def test_shape_rule_rejects_malformed_equations():
    z = Var(scalar(f64))
    ident = Func((z,), (), (z,), "body")
    zb = Var(scalar(f64))
    to_bool = Func((zb,), (), (Lit.of(True, bool_),), "body")
    x, w = Var(T(f64, n, d)), Var(T(f64, d))
    bad = [
        ((Var(T(f64, n)), w), dict(body=ident, reduce="argmax")),       # x not 2-D
        ((x, Var(T(f32, d))), dict(body=ident, reduce="argmax")),       # dtypes differ
        ((Var(T(bool_, n, d)), Var(T(bool_, d))), dict(body=ident, reduce="sum")),
        ((x, w), dict(body=ident, reduce="mean")),                      # unknown reduction
        ((x, w, Var(T(f64, d, n))), dict(body=ident, reduce="sum")),     # extra without param
        ((x, w), dict(body=to_bool, reduce="argmax")),                  # argmax of bool
    ]
    for ins, params in bad:
        with pytest.raises(ShapeError):
            with building():
                bind(P.rowreduce_p, *ins, **params)
    with building():
        (r,) = bind(P.rowreduce_p, x, w, body=to_bool, reduce="sum")
    assert r.type == scalar(i64)
