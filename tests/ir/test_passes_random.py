"""Random elementwise/reduction programs: every pass keeps the IR valid and the results equal.

A program is drawn as a *recipe* (a list of steps over value indices), so the same program can
be bound more than once: plain, as both branches of a ``cond``, or as a ``loop`` body.
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from lattice.ir import primitives as P
from lattice.ir.core import Lit, Var, bind, building
from lattice.ir.interpret import eval_func
from lattice.ir.passes import DEFAULT_PASSES, run
from lattice.ir.types import Dim, TensorType, bool_, f64, i64, scalar
from lattice.ir.verify import verify

m, n = Dim.named("m"), Dim.named("n")
SHAPES = [(), (n,), (Dim.of(1), n), (m, Dim.of(1)), (m, n)]
SIZES = {"m": 2, "n": 3}

FLOAT_UNARY = ["neg", "abs", "exp", "log", "sqrt", "tanh", "sin", "floor", "sigmoid"]
FLOAT_BINARY = ["add", "sub", "mul", "div", "maximum", "minimum"]
INT_UNARY = ["neg", "abs"]
INT_BINARY = ["add", "sub", "mul", "floordiv", "mod", "maximum", "minimum"]
FLOAT_LITS = [0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 2.5]  # zeros twice: their sign is the subtle part
INT_LITS = [0, 1, -1, 3]


@st.composite
def recipes(draw):
    is_float = draw(st.booleans())
    n_in = draw(st.integers(1, 3))
    shapes = [draw(st.sampled_from(SHAPES)) for _ in range(n_in)]
    steps = []
    n_vals = n_in
    for _ in range(draw(st.integers(1, 9))):
        kind = draw(st.sampled_from(["unary", "binary", "binary", "lit", "lit", "select",
                                     "convert", "reduce", "rowreduce"]))
        a = draw(st.integers(0, n_vals - 1))
        b = draw(st.integers(0, n_vals - 1))
        c = draw(st.integers(0, n_vals - 1))
        name = draw(st.sampled_from(
            {"unary": FLOAT_UNARY if is_float else INT_UNARY}.get(
                kind, FLOAT_BINARY if is_float else INT_BINARY)))
        value = draw(st.sampled_from(FLOAT_LITS if is_float else INT_LITS))
        flip = draw(st.booleans())
        red = draw(st.sampled_from(["sum", "max", "min"]))
        steps.append((kind, name, a, b, c, value, flip, red))
        n_vals += kind != "rowreduce"  # a row reduction is an output only (its shape is [m])
    outs = [n_vals - 1] + draw(st.lists(st.integers(0, n_vals - 1), max_size=2))
    mode = draw(st.sampled_from(["plain", "plain", "cond", "loop"]))
    seed = draw(st.integers(0, 2**16))
    return is_float, shapes, steps, outs, mode, seed


def _bind1(prim, *xs, **kw):
    (v,) = bind(prim, *xs, **kw)
    return v


def materialize(recipe, params):
    """Bind the recipe's equations over ``params``; returns the output atoms."""
    is_float, _, steps, outs, _, _ = recipe
    dt = f64 if is_float else i64
    vals = list(params)
    extra = []
    for kind, name, a, b, c, value, flip, red in steps:
        x, y, z = vals[a], vals[b], vals[c]
        if kind == "unary":
            v = _bind1(P.UNARY[name], x)
        elif kind == "binary":
            v = _bind1(P.BINARY[name], x, y)
        elif kind == "lit":
            lit = Lit.of(value, dt)
            v = _bind1(P.BINARY[name], *((lit, x) if flip else (x, lit)))
        elif kind == "select":
            p = _bind1(P.COMPARE["lt" if flip else "eq"], x, y)
            v = _bind1(P.select_p, p, y, z)
        elif kind == "convert":
            mid = bool_ if flip else (i64 if is_float else f64)
            v = _bind1(P.convert_p, _bind1(P.convert_p, x, dtype=mid), dtype=dt)
        elif kind == "reduce":
            axes = (0,) if x.type.ndim == 2 and flip else tuple(range(x.type.ndim))
            v = _bind1(P.REDUCTIONS[red], x, axes=axes)
            if v.type.dtype is not dt:
                v = _bind1(P.convert_p, v, dtype=dt)
        else:  # rowreduce: reduce the last axis of a rank-2 value, kept as an output
            if x.type.ndim == 2:
                extra.append(_bind1(P.REDUCTIONS[red], x, axes=(1,)))
            continue
        vals.append(v)
    return [vals[k] for k in outs] + extra


def build(recipe):
    is_float, shapes, _, _, mode, _ = recipe
    dt = f64 if is_float else i64
    in_types = [TensorType(dt, s) for s in shapes]
    params = [Var(t) for t in in_types]
    with building() as b:
        if mode == "plain":
            outs = materialize(recipe, params)
            return b.build(params, outs, "prog"), False
        if mode == "cond":
            pred = Var(scalar(bool_))
            branches = []
            for _ in range(2):
                ps = [Var(t) for t in in_types]
                with building() as bb:
                    o = materialize(recipe, ps)
                branches.append(bb.build(ps, o, "branch"))
            outs = bind(P.cond_p, pred, *params, true_fn=branches[0], false_fn=branches[1])
            return b.build([pred] + params, outs, "prog"), True
        # loop: two iterations; the carried values are recomputed from the constants each time
        init = materialize(recipe, params)
        i = Var(scalar(i64))
        cs = [Var(a.type) for a in init]
        ks = [Var(t) for t in in_types]
        with building() as bb:
            o = materialize(recipe, ks)
        body = bb.build([i, *cs, *ks], o, "body")
        outs = bind(P.loop_p, Lit.of(0, i64), Lit.of(2, i64), Lit.of(1, i64), *init, *params,
                    body=body, n_carry=len(init))
        return b.build(params, outs, "prog"), False


def arrays(recipe):
    is_float, shapes, *_, seed = recipe
    rng = np.random.default_rng(seed)
    out = []
    for s in shapes:
        shape = tuple(d.evaluate(SIZES) for d in s)
        if is_float:
            x = rng.normal(size=shape) * 2
            special = np.array([0.0, -0.0, 1.0, np.nan, -1.5, np.inf])
            x = np.where(rng.random(shape) < 0.3, rng.choice(special, size=shape), x)
            if rng.random() < 0.5:
                x = np.where(rng.random(shape) < 0.5, -0.0, x)
        else:
            x = rng.integers(-4, 5, size=shape)
            if x.ndim and rng.random() < 0.3:
                x.flat[0] = np.iinfo(np.int64).min
        out.append(np.asarray(x, dtype=np.float64 if is_float else np.int64))
    return out


def check_equal(want, got):
    assert len(want) == len(got)
    for w, g in zip(want, got):
        w, g = np.asarray(w), np.asarray(g)
        assert w.dtype == g.dtype and w.shape == g.shape
        if w.dtype.kind == "f":
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=0, equal_nan=True)
            # signed zeros matter (x + 0.0 is not x for -0.0)
            np.testing.assert_array_equal(np.signbit(g) & (g == 0), np.signbit(w) & (w == 0))
        else:
            np.testing.assert_array_equal(g, w)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recipes())
def test_random_programs_survive_every_pass(recipe):
    func, has_pred = build(recipe)
    verify(func)
    args = arrays(recipe)
    preds = [np.bool_(True), np.bool_(False)] if has_pred else [None]
    for pred in preds:
        full = ([pred] if has_pred else []) + args
        with np.errstate(all="ignore"):
            want = eval_func(func, *full)
            f = func
            for p in DEFAULT_PASSES:  # each prefix of the pipeline, verified
                f = verify(p(f))
                check_equal(want, eval_func(f, *full))
            check_equal(want, eval_func(run(func), *full))


@settings(max_examples=60, deadline=None)
@given(recipes())
def test_fusion_leaves_no_fusable_temporaries(recipe):
    """After ``run``, no elementwise array result feeds only a reduction or one other
    elementwise equation of the same shape (those would have been fused)."""
    func, _ = build(recipe)
    after = run(func)
    users = {}
    for e in after.eqns:
        for a in e.inputs:
            if isinstance(a, Var):
                users.setdefault(a, []).append(e)
    outs = {a for a in after.outs if isinstance(a, Var)}
    fusable = {P.REDUCTIONS[k] for k in ("sum", "max", "min")}
    for e in after.eqns:
        if e.prim not in P.ELEMENTWISE or not e.outs[0].type.shape or e.outs[0] in outs:
            continue
        us = users.get(e.outs[0], [])
        if len(us) == 1 and (us[0].prim in fusable or (
                us[0].prim in P.ELEMENTWISE and us[0].outs[0].type == e.outs[0].type)):
            raise AssertionError(f"{e.prim} feeding {us[0].prim} was not fused")
