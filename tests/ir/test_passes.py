"""Passes: golden printed IR, rule-by-rule checks, counting, differential checks vs the interpreter.

Golden texts are written from what each pass should produce (the oracle), then compared with
``print_func`` exactly.
"""
from __future__ import annotations

import textwrap
from dataclasses import replace

import numpy as np
import pytest

from lattice.ir import primitives as P
from lattice.ir.core import Eqn, Func, Lit, Var, bind, building
from lattice.ir.interpret import eval_func
from lattice.ir.passes import (DEFAULT_PASSES, PassError, cse, dce, fusion, run, simplify)
from lattice.ir.printer import print_func
from lattice.ir.types import Dim, TensorType, bool_, f32, f64, i32, i64, scalar
from lattice.ir.verify import verify

n, m = Dim.named("n"), Dim.named("m")


def T(dtype, *shape):
    return TensorType(dtype, tuple(shape))


def build(in_types, body, name="f"):
    """``body(*params)`` binds equations and returns the outputs (an atom or a tuple)."""
    params = [Var(t) for t in in_types]
    with building() as b:
        outs = body(*params)
    outs = outs if isinstance(outs, tuple) else (outs,)
    return verify(b.build(params, outs, name))


def op(prim, *xs, **kw):
    (v,) = bind(prim, *xs, **kw)
    return v


def lit(v, d=f64):
    return Lit.of(v, d)


def golden(func, text):
    assert print_func(func) == textwrap.dedent(text).lstrip("\n")


def same(before, after, *args):
    want = eval_func(before, *args)
    got = eval_func(after, *args)
    assert len(want) == len(got)
    for w, g in zip(want, got):
        w, g = np.asarray(w), np.asarray(g)
        assert w.dtype == g.dtype and w.shape == g.shape
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=0, equal_nan=True)
        else:
            np.testing.assert_array_equal(g, w)


def nonscalar_intermediates(func):
    outs = {a for a in func.outs if isinstance(a, Var)}
    return [v for e in func.eqns for v in e.outs if v.type.shape and v not in outs]


def dot():
    return build([T(f64, n), T(f64, n)],
                 lambda a, b: op(P.reduce_sum_p, op(P.mul_p, a, b), axes=(0,)), "dot")


def row_norms_loop():
    """for i in range(m): out[i] = sqrt(sum(X[i] * X[i]))"""
    def outer(X):
        k = op(P.dim_p, X, axis=0)
        out = op(P.empty_p, k, dims=(m,), dtype=f64)
        i, oc, Xc = Var(scalar(i64)), Var(T(f64, m)), Var(T(f64, m, n))
        with building() as bb:
            row = op(P.index_p, Xc, i, spec=(P.Int(), P.Slice()))
            s = op(P.reduce_sum_p, op(P.mul_p, row, row), axes=(0,))
            o2 = op(P.set_p, oc, i, op(P.sqrt_p, s), spec=(P.Int(),))
        body = bb.build([i, oc, Xc], [o2], "body")
        return op(P.loop_p, lit(0, i64), k, lit(1, i64), out, X, body=body, n_carry=1)
    return build([T(f64, m, n)], outer, "row_norms")


# --------------------------------------------------------------------------- golden: fusion
def test_golden_dot_fuses_to_one_eqn():
    after = run(dot())
    golden(after, """
        func dot
        lambda %a:f64[n], %b:f64[n] ->
          %f:f64 = fused[axes=(0,), body={
            lambda %c:f64, %d:f64 ->
              %e:f64 = mul %c %d
              return %e
          }, reduce='sum', space=(n,)] %a %b
          return %f
        """)
    assert len(after.eqns) == 1 and not nonscalar_intermediates(after)
    x, y = np.arange(7.0), np.linspace(-1, 1, 7)
    same(dot(), after, x, y)


def test_golden_row_norms_loop_body():
    f = row_norms_loop()
    after = run(f)
    golden(after, """
        func row_norms
        lambda %a:f64[m,n] ->
          %b:i64 = dim[axis=0] %a
          %c:f64[m] = empty[dims=(m,), dtype=f64] %b
          %m:f64[m] = loop[body={
            lambda %d:i64, %e:f64[m], %f:f64[m,n] ->
              %g:f64[n] = index[spec=(Int(), Slice(start=None, stop=None, step=1))] %f %d
              %j:f64 = fused[axes=(0,), body={
                lambda %h:f64 ->
                  %i:f64 = mul %h %h
                  return %i
              }, reduce='sum', space=(n,)] %g
              %k:f64 = sqrt %j
              %l:f64[m] = set[spec=(Int(),)] %e %d %k
              return %l
          }, n_carry=1] 0:i64 %b 1:i64 %c %a
          return %m
        """)
    body = after.eqns[-1].params["body"]
    # the only array left in the body is the row X[i] (an index, i.e. a view for codegen)
    assert [e.prim for e in body.eqns] == [P.index_p, P.fused_p, P.sqrt_p, P.set_p]
    assert [v.type for v in nonscalar_intermediates(body)] == [T(f64, n)]
    same(f, after, np.random.default_rng(0).normal(size=(5, 3)))


def test_golden_row_norms_vectorized():
    f = build([T(f64, m, n)], lambda X: op(P.sqrt_p, op(
        P.reduce_sum_p, op(P.mul_p, X, X), axes=(1,))), "row_norms")
    after = run(f)
    golden(after, """
        func row_norms
        lambda %a:f64[m,n] ->
          %d:f64[m] = fused[axes=(1,), body={
            lambda %b:f64 ->
              %c:f64 = mul %b %b
              return %c
          }, reduce='sum', space=(m, n)] %a
          %e:f64[m] = sqrt %d
          return %e
        """)
    # no [m,n] temporary; the row sums [m] remain, since ``fused`` has no epilogue after the
    # reduction to put the sqrt in
    assert [v.type for v in nonscalar_intermediates(after)] == [T(f64, m)]
    same(f, after, np.random.default_rng(1).normal(size=(4, 6)))


def test_golden_norm_scalar_tail_stays():
    # sqrt(sum(x*x)): fused reduction, then a plain scalar sqrt
    f = build([T(f32, n)], lambda x: op(P.sqrt_p, op(P.reduce_sum_p, op(P.mul_p, x, x),
                                                       axes=(0,))), "norm")
    golden(fusion(f), """
        func norm
        lambda %a:f32[n] ->
          %d:f32 = fused[axes=(0,), body={
            lambda %b:f32 ->
              %c:f32 = mul %b %b
              return %c
          }, reduce='sum', space=(n,)] %a
          %e:f32 = sqrt %d
          return %e
        """)


def test_golden_fusion_broadcast_literals_select_convert():
    # where(x > 0, x * 2, convert(k)) - y[None, :]  with k:i32[n], y:f64[n], x:f64[m,n]
    def body(x, y, k):
        pos = op(P.gt_p, x, lit(0.0))
        sel = op(P.select_p, pos, op(P.mul_p, x, lit(2.0)), op(P.convert_p, k, dtype=f64))
        return op(P.sub_p, sel, y)
    f = build([T(f64, m, n), T(f64, n), T(i32, n)], body, "g")
    after = fusion(f)
    # convert(k) has shape [n], smaller than the space [m,n]: it stays outside, an input
    golden(after, """
        func g
        lambda %a:f64[m,n], %b:f64[n], %c:i32[n] ->
          %d:f64[n] = convert[dtype=f64] %c
          %l:f64[m,n] = fused[axes=(), body={
            lambda %e:f64, %f:f64, %g:f64 ->
              %h:bool = gt %e 0.0:f64
              %i:f64 = mul %e 2.0:f64
              %j:f64 = select %h %i %f
              %k:f64 = sub %j %g
              return %k
          }, reduce=None, space=(m, n)] %a %d %b
          return %l
        """)
    rng = np.random.default_rng(2)
    same(f, after, rng.normal(size=(3, 4)), rng.normal(size=4), rng.integers(-5, 5, 4, np.int32))


def test_golden_simplify():
    def body(x, s):
        a = op(P.mul_p, x, lit(1.0))            # x * 1 -> x
        b = op(P.sub_p, a, lit(0.0))            # - 0.0 -> a
        c = op(P.neg_p, op(P.neg_p, b))         # neg neg -> b
        d = op(P.add_p, c, lit(0.0))            # + 0.0 on floats: kept
        e = op(P.add_p, s, op(P.mul_p, lit(3, i64), lit(4, i64)))   # folds to s + 12
        return d, op(P.add_p, e, lit(0, i64))   # int + 0 -> e
    f = build([T(f64, n), scalar(i64)], body, "s")
    golden(dce(simplify(f)), """
        func s
        lambda %a:f64[n], %b:i64 ->
          %c:f64[n] = add %a 0.0:f64
          %d:i64 = add %b 12:i64
          return %c, %d
        """)


def test_golden_cse_and_dce():
    def body(x, y):
        a = op(P.mul_p, x, y)
        b = op(P.mul_p, y, x)                   # commutative: same as a
        c = op(P.add_p, a, b)
        op(P.exp_p, c)                          # dead
        return op(P.add_p, op(P.exp_p, a), op(P.exp_p, b))
    f = build([T(f64, n), T(f64, n)], body, "c")
    golden(dce(cse(f)), """
        func c
        lambda %a:f64[n], %b:f64[n] ->
          %c:f64[n] = mul %a %b
          %d:f64[n] = exp %c
          %e:f64[n] = add %d %d
          return %e
        """)


# --------------------------------------------------------------------------- run
def test_run_verifies_and_names_the_broken_pass():
    def broken(func):
        e = func.eqns[0]
        return replace(func, eqns=(replace(e, inputs=(Var(T(f64, n)),) + e.inputs[1:]),))
    with pytest.raises(PassError, match="broken"):
        run(dot(), [broken])
    assert run(dot(), ["simplify", "cse", "dce", "fusion"]).eqns[0].prim is P.fused_p


def test_passes_are_pure():
    f = dot()
    text = print_func(f)
    for p in DEFAULT_PASSES:
        p(f)
    assert print_func(f) == text


# --------------------------------------------------------------------------- simplify rules
def simp(in_types, body):
    f = build(in_types, body)
    g = dce(verify(simplify(f)))
    return f, verify(g)


@pytest.mark.parametrize("dtype,prim,const,side,fires", [
    (f64, P.mul_p, 1.0, 1, True), (f64, P.mul_p, 1.0, 0, True),
    (i64, P.mul_p, 1, 1, True), (i64, P.add_p, 0, 0, True), (i64, P.add_p, 0, 1, True),
    (f64, P.add_p, 0.0, 1, False), (f64, P.add_p, -0.0, 1, True), (f64, P.add_p, -0.0, 0, True),
    (f64, P.sub_p, 0.0, 1, True), (f64, P.sub_p, -0.0, 1, False), (i64, P.sub_p, 0, 1, True),
    (f64, P.div_p, 1.0, 1, True), (i64, P.floordiv_p, 1, 1, True),
    (f64, P.floordiv_p, 1.0, 1, False), (f64, P.max_p, 1.0, 1, False),
])
def test_identity_rules(dtype, prim, const, side, fires):
    c = lit(const, dtype)
    f, g = simp([T(dtype, n)], lambda x: op(prim, *((x, c) if side else (c, x))))
    assert (g.eqns == ()) == fires
    xs = np.array([-0.0, 0.0, 1.5, -2.0, np.nan, np.inf]) if dtype.is_float else \
        np.array([0, 1, -7, np.iinfo(np.int64).min])
    same(f, g, xs.astype(dtype.np))


def test_identity_rule_does_not_broadcast_away():
    # x:f64[] * ones-shaped y... the literal side cannot broadcast, but a var side can:
    # select(True, a, b) where b is bigger than a changes the shape -> must not fire
    f, g = simp([scalar(f64), T(f64, n)],
                lambda a, b: op(P.select_p, lit(True, bool_), a, b))
    assert [e.prim for e in g.eqns] == [P.select_p]
    f, g = simp([T(f64, n), T(f64, n)], lambda a, b: op(P.select_p, lit(False, bool_), a, b))
    assert g.eqns == () and g.outs == (g.params[1],)
    # mul by a broadcast *array* of ones is not a literal: nothing to do, but x * 1 on a
    # scalar x gives a scalar: fires
    f, g = simp([scalar(f64)], lambda a: op(P.mul_p, a, lit(1.0)))
    assert g.eqns == ()


def test_x_minus_x_and_times_zero_only_for_int_scalars():
    f, g = simp([scalar(i64)], lambda a: (op(P.sub_p, a, a), op(P.mul_p, a, lit(0, i64))))
    assert g.eqns == () and all(isinstance(o, Lit) and o.value == 0 for o in g.outs)
    f, g = simp([scalar(f64)], lambda a: (op(P.sub_p, a, a), op(P.mul_p, a, lit(0.0))))
    assert len(g.eqns) == 2
    same(f, g, np.float64(np.inf))
    f, g = simp([T(i64, n)], lambda a: op(P.sub_p, a, a))  # array: 0 is no array
    assert len(g.eqns) == 1


def test_involutions_and_neg_forms():
    f, g = simp([T(f64, n)], lambda x: op(P.neg_p, op(P.neg_p, x)))
    assert g.eqns == ()
    f, g = simp([T(bool_, n)], lambda x: op(P.not_p, op(P.not_p, x)))
    assert g.eqns == ()
    f, g = simp([T(i64, n)], lambda x: op(P.mul_p, x, lit(-1, i64)))
    assert [e.prim for e in g.eqns] == [P.neg_p]
    same(f, g, np.array([3, np.iinfo(np.int64).min, 0]))
    f, g = simp([T(f64, n)], lambda x: op(P.sub_p, lit(-0.0), x))
    assert [e.prim for e in g.eqns] == [P.neg_p]
    same(f, g, np.array([0.0, -0.0, 2.0]))
    f, g = simp([T(f64, n)], lambda x: op(P.sub_p, lit(0.0), x))  # 0.0 - 0.0 = +0.0 != -0.0
    assert [e.prim for e in g.eqns] == [P.sub_p]
    f, g = simp([T(f64, n)], lambda x: op(P.abs_p, op(P.abs_p, op(P.neg_p, x))))
    assert [e.prim for e in g.eqns] == [P.abs_p]


def test_select_and_logic_rules():
    f, g = simp([T(bool_, n), T(f64, n), T(f64, n)],
                lambda p, a, b: op(P.select_p, op(P.not_p, p), a, b))
    golden(g, """
        func f
        lambda %a:bool[n], %b:f64[n], %c:f64[n] ->
          %d:f64[n] = select %a %c %b
          return %d
        """)
    f, g = simp([T(bool_, n), T(f64, n)], lambda p, a: op(P.select_p, p, a, a))
    assert g.eqns == ()
    f, g = simp([T(bool_, n)], lambda p: (op(P.and_p, p, lit(True, bool_)),
                                          op(P.or_p, lit(False, bool_), p), op(P.and_p, p, p)))
    assert g.eqns == () and g.outs == (g.params[0],) * 3
    f, g = simp([scalar(bool_)], lambda p: (op(P.and_p, p, lit(False, bool_)),
                                            op(P.or_p, p, lit(True, bool_))))
    assert g.outs == (lit(False, bool_), lit(True, bool_))


def test_convert_rules():
    f, g = simp([T(f32, n)], lambda x: op(P.convert_p, x, dtype=f32))
    assert g.eqns == ()
    f, g = simp([T(i32, n)], lambda x: op(P.convert_p, op(P.convert_p, x, dtype=f64), dtype=i32))
    assert g.eqns == ()
    f, g = simp([T(f32, n)], lambda x: op(P.convert_p, op(P.convert_p, x, dtype=f64), dtype=f32))
    assert g.eqns == ()
    # narrowing first is lossy: kept
    f, g = simp([T(f64, n)], lambda x: op(P.convert_p, op(P.convert_p, x, dtype=f32), dtype=f64))
    assert len(g.eqns) == 2
    f, g = simp([T(i64, n)], lambda x: op(P.convert_p, op(P.convert_p, x, dtype=f64), dtype=i64))
    assert len(g.eqns) == 2
    same(f, g, np.array([2**62 + 1, -3]))


def test_constant_folding_agrees_with_interpreter():
    cases = [
        (P.add_p, lit(2**62, i64), lit(2**62, i64)),      # wraps
        (P.floordiv_p, lit(7, i64), lit(0, i64)),          # x // 0 = 0
        (P.mod_p, lit(-7, i32), lit(3, i32)),
        (P.div_p, lit(1.0, f32), lit(3.0, f32)),           # rounded to f32
        (P.convert_p, lit(1e30), ),                        # saturating, needs dtype
        (P.lt_p, lit(1.0), lit(2.0)),
        (P.exp_p, lit(0.5, f32)),
        (P.sigmoid_p, lit(-3.0)),
    ]
    for prim, *ins in cases:
        kw = {"dtype": i32} if prim is P.convert_p else {}
        f = build([], lambda: op(prim, *ins, **kw))
        g = simplify(f)
        assert g.eqns == () and isinstance(g.outs[0], Lit), prim
        same(f, g)


def test_no_fold_to_nan_or_inf():
    for prim, ins in [(P.log_p, (lit(-1.0),)), (P.div_p, (lit(1.0), lit(0.0))),
                      (P.exp_p, (lit(1000.0),))]:
        g = simplify(build([], lambda: op(prim, *ins)))
        assert len(g.eqns) == 1


def test_transpose_and_dim_rules():
    f, g = simp([T(f64, 2, n, m)], lambda x: op(
        P.transpose_p, op(P.transpose_p, x, perm=(1, 2, 0)), perm=(2, 0, 1)))
    assert g.eqns == ()
    f, g = simp([T(f64, 2, n, m)], lambda x: op(
        P.transpose_p, op(P.transpose_p, x, perm=(1, 2, 0)), perm=(1, 0, 2)))
    assert [e.params["perm"] for e in g.eqns] == [(2, 1, 0)]
    same(f, g, np.arange(24.0).reshape(2, 3, 4))
    f, g = simp([T(f64, 3, n)], lambda x: (op(P.dim_p, x, axis=0), op(P.dim_p, x, axis=1)))
    assert g.outs[0] == lit(3, i64) and [e.prim for e in g.eqns] == [P.dim_p]


def _loop(start, stop, init, body_fn, consts=()):
    i = Var(scalar(i64))
    cs = [Var(a.type) for a in init]
    ks = [Var(a.type) for a in consts]
    with building() as bb:
        outs = body_fn(i, *cs, *ks)
    body = bb.build([i, *cs, *ks], outs, "body")
    return bind(P.loop_p, start, stop, lit(1, i64), *init, *consts, body=body, n_carry=len(cs))


def test_loop_trip_counts():
    def acc(i, c):
        return [op(P.add_p, c, op(P.convert_p, i, dtype=f64))]
    for stop, n_eqns in [(0, 0), (1, 1), (3, 1)]:
        f = build([scalar(f64)], lambda x: _loop(lit(0, i64), lit(stop, i64), [x], acc)[0])
        g = dce(simplify(f))
        verify(g)
        assert len(g.eqns) == n_eqns, stop
        same(f, g, np.float64(1.5))


def test_loop_invariant_carry_and_dead_carry():
    # carry 0 accumulates, carry 1 is returned unchanged, carry 2 is dead outside
    def b(i, a, inv, dead, k):
        return [op(P.add_p, a, inv), inv, op(P.mul_p, dead, k)]
    def prog(x, y, z, k):
        r = _loop(lit(0, i64), lit(4, i64), [x, y, z], b, consts=[k])
        return r[0], r[1]
    f = build([scalar(f64)] * 4, prog)
    g = run(f)
    (loop,) = g.eqns
    assert loop.params["n_carry"] == 1 and len(loop.inputs) == 3 + 1 + 1
    assert g.outs[1] is g.params[1]
    same(f, g, *map(np.float64, (1.0, 2.0, 3.0, 4.0)))


def test_cond_known_and_dce_of_branches():
    def prog(p, x, y):
        with building() as bt:
            t_ps = [Var(x.type), Var(y.type)]
            t_out = [op(P.exp_p, t_ps[0]), op(P.log_p, t_ps[1])]
        with building() as bf:
            f_ps = [Var(x.type), Var(y.type)]
            f_out = [op(P.sin_p, f_ps[0]), op(P.cos_p, f_ps[1])]
        t = bt.build(t_ps, t_out, "t")
        fl = bf.build(f_ps, f_out, "f")
        r = bind(P.cond_p, p, x, y, true_fn=t, false_fn=fl)
        return r[0]
    f = build([scalar(bool_), T(f64, n), T(f64, n)], prog)
    g = dce(f)
    (c,) = g.eqns
    assert len(c.outs) == 1 and len(c.inputs) == 2
    assert [e.prim for e in c.params["true_fn"].eqns] == [P.exp_p]
    x = np.array([0.5, 2.0])
    same(f, verify(g), np.bool_(True), x, x)
    same(f, g, np.bool_(False), x, x)
    # a literal predicate inlines the branch
    f2 = build([T(f64, n), T(f64, n)], lambda x, y: prog(lit(False, bool_), x, y))
    g2 = run(f2)
    assert [e.prim for e in g2.eqns] == [P.sin_p]
    same(f2, g2, x, x)


# --------------------------------------------------------------------------- cse
def test_cse_never_merges_empty_or_full_and_respects_literal_bits():
    def prog(k):
        e1 = op(P.empty_p, k, dims=(n,), dtype=f64)
        e2 = op(P.empty_p, k, dims=(n,), dtype=f64)
        f1 = op(P.full_p, lit(0.0), k, dims=(n,), dtype=f64)
        f2 = op(P.full_p, lit(0.0), k, dims=(n,), dtype=f64)
        return e1, e2, f1, f2
    f = build([scalar(i64)], prog)
    assert len(cse(f).eqns) == 4
    f = build([T(f64, n)], lambda x: (op(P.mul_p, x, lit(0.0)), op(P.mul_p, x, lit(-0.0)),
                                      op(P.mul_p, x, lit(0.0))))
    g = cse(f)
    assert len(g.eqns) == 2 and g.outs[0] is g.outs[2]
    same(f, g, np.array([-1.0, 2.0]))
    # max/min are not reordered (NumPy: max(-0.0, 0.0) = 0.0 but max(0.0, -0.0) = -0.0)
    f = build([T(f64, n), T(f64, n)], lambda x, y: (op(P.max_p, x, y), op(P.max_p, y, x)))
    assert len(cse(f).eqns) == 2


def test_cse_keeps_index_with_fresh_dims_apart():
    def prog(x, lo):
        a = op(P.index_p, x, lo, spec=(P.Slice("dyn", None),))
        b = op(P.index_p, x, lo, spec=(P.Slice("dyn", None),))
        return op(P.reduce_sum_p, op(P.exp_p, a), axes=(0,)), op(P.reduce_sum_p, b, axes=(0,))
    f = build([T(f64, n), scalar(i64)], prog)
    g = run(f)
    same(f, g, np.arange(5.0), np.int64(2))


def test_cse_merges_identical_fused_and_loops_structurally():
    f = build([T(f64, n), T(f64, n)], lambda a, b: (
        op(P.reduce_sum_p, op(P.mul_p, a, b), axes=(0,)),
        op(P.reduce_sum_p, op(P.mul_p, a, b), axes=(0,))))
    g = fusion(f)
    assert len(g.eqns) == 2
    h = cse(g)
    assert len(h.eqns) == 1 and h.outs[0] is h.outs[1]
    verify(h)
    f = build([scalar(f64)], lambda x: (
        _loop(lit(0, i64), lit(5, i64), [x], lambda i, c: [op(P.mul_p, c, c)])[0],
        _loop(lit(0, i64), lit(5, i64), [x], lambda i, c: [op(P.mul_p, c, c)])[0],
        _loop(lit(0, i64), lit(5, i64), [x], lambda i, c: [op(P.add_p, c, c)])[0]))
    g = cse(f)
    assert len(g.eqns) == 2
    same(f, verify(g), np.float64(1.01))


# --------------------------------------------------------------------------- fusion
def test_fusion_stops_at_intermediate_used_outside():
    def prog(a, b):
        t = op(P.mul_p, a, b)
        u = op(P.exp_p, t)
        return op(P.reduce_sum_p, op(P.add_p, u, a), axes=(0,)), t
    f = build([T(f64, n), T(f64, n)], prog)
    g = run(f)
    golden(g, """
        func f
        lambda %a:f64[n], %b:f64[n] ->
          %c:f64[n] = mul %a %b
          %h:f64 = fused[axes=(0,), body={
            lambda %d:f64, %e:f64 ->
              %f:f64 = exp %d
              %g:f64 = add %f %e
              return %g
          }, reduce='sum', space=(n,)] %c %a
          return %h, %c
        """)
    x = np.linspace(-1, 1, 5)
    same(f, g, x, x * 2)


def test_fusion_shared_intermediate_inside_group_and_diamond():
    # t used twice, both inside the group; the group order respects all users
    def prog(a, b):
        t = op(P.mul_p, a, b)
        u = op(P.add_p, t, op(P.exp_p, t))
        return op(P.reduce_max_p, op(P.mul_p, u, t), axes=(0, 1))
    f = build([T(f64, m, n), T(f64, n)], prog)
    g = run(f)
    assert [e.prim for e in g.eqns] == [P.fused_p]
    assert len(g.eqns[0].params["body"].eqns) == 4
    rng = np.random.default_rng(3)
    same(f, g, rng.normal(size=(3, 4)), rng.normal(size=4))


def test_fusion_reduction_of_value_also_used_elsewhere_is_not_absorbed():
    def prog(a):
        t = op(P.exp_p, op(P.neg_p, a))
        return op(P.reduce_sum_p, t, axes=(0,)), t
    f = build([T(f64, n)], prog)
    g = run(f)
    assert [e.prim for e in g.eqns] == [P.fused_p, P.reduce_sum_p]
    assert g.eqns[0].params["reduce"] is None
    same(f, g, np.arange(3.0))


def test_fusion_single_elementwise_stays_and_scalars_stay():
    f = build([T(f64, n), scalar(f64)], lambda a, s: op(P.mul_p, a, op(P.exp_p, op(P.neg_p, s))))
    g = fusion(f)
    assert [e.prim for e in g.eqns] == [P.neg_p, P.exp_p, P.mul_p]


def test_fusion_in_cond_branches_and_int_sum_widens():
    def prog(p, x):
        ps_t, ps_f = [Var(x.type)], [Var(x.type)]
        with building() as bt:
            t_out = op(P.reduce_sum_p, op(P.mul_p, ps_t[0], ps_t[0]), axes=(0,))
        with building() as bf:
            f_out = op(P.reduce_sum_p, op(P.add_p, ps_f[0], lit(1, i32)), axes=(0,))
        return bind(P.cond_p, p, x, true_fn=bt.build(ps_t, [t_out]),
                    false_fn=bf.build(ps_f, [f_out]))[0]
    f = build([scalar(bool_), T(i32, n)], prog)
    g = run(f)
    (c,) = g.eqns
    for k in ("true_fn", "false_fn"):
        (e,) = c.params[k].eqns
        assert e.prim is P.fused_p and e.outs[0].type == scalar(i64)
    x = np.array([2**20, 2**20, 7], np.int32)
    same(f, g, np.bool_(True), x)
    same(f, g, np.bool_(False), x)


def test_fusion_is_idempotent():
    f = run(row_norms_loop())
    assert print_func(run(f)) == print_func(f)


def test_dim_reads_the_param_so_an_unused_array_dies():
    """dim(exp(x), 0) -> dim(x, 0); then DCE removes exp(x), which was only measured."""
    def body(x):
        e = op(P.exp_p, x)
        k = op(P.dim_p, e, axis=0)
        return op(P.convert_p, k, dtype=f64)
    f = build([T(f64, n)], body)
    g = run(f)
    assert [e.prim for e in g.eqns] == [P.dim_p, P.convert_p]
    assert g.eqns[0].inputs[0] is g.params[0]
    same(f, g, np.arange(5.0))
