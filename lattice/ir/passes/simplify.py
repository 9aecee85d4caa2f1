"""Algebraic simplification driven by a rule table.

``RULES[prim]`` is a list of rules tried in order on each equation of that primitive (after its
inputs have been rewritten and its sub-functions simplified).  A rule takes the equation and a
:class:`Ctx` (which equation defines each var seen so far) and returns one of:

* ``None``: no change;
* an ``Atom``: the equation's single output is replaced by it;
* an ``Eqn``: a replacement equation with the same outputs (simplified again in turn);
* a :class:`Rewrite`: new equations to splice in (simplified in turn) plus what each output
  becomes; used to inline loop bodies and cond branches.

The driver, not the rules, checks types: a replacement atom must have exactly the output's type
and a replacement equation must re-derive exactly its output types, else the rule does not fire.
So ``x * 1 -> x`` never fires when the ``1`` side broadcasts ``x`` to a bigger shape, and a rule
never changes a dtype.

Every rule preserves the interpreter's results bit for bit, up to the sign/payload of a NaN
(IEEE 754 leaves those unspecified for arithmetic).  Floats need care: ``x + 0.0`` is not ``x``
when ``x = -0.0`` (the sum is ``+0.0``), whereas ``x + (-0.0)`` and ``x - 0.0`` are exact.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Union

import numpy as np

from ..core import Atom, Eqn, Func, Lit, Primitive, Var, shape_rules
from ..primitives import (ELEMENTWISE, impls, abs_p, add_p, and_p, cond_p, convert_p, dim_p,
                          div_p, floordiv_p, loop_p, max_p, min_p, mod_p, mul_p, neg_p, not_p,
                          or_p, reduce_max_p, reduce_min_p, reduce_sum_p, select_p, sub_p,
                          transpose_p, while_p)
from ..types import Dim, DType, TensorType, f64, i32, i64
from .util import lit_equals, lit_key, map_subfuncs, resolve

__all__ = ["simplify", "RULES", "Rewrite", "Ctx"]


@dataclass
class Rewrite:
    """Splice ``eqns`` in place of the equation; ``bindings`` rename vars those eqns read
    (e.g. a branch's params to the cond's operands); output k of the equation becomes
    ``outs[k]``."""

    eqns: tuple[Eqn, ...]
    outs: tuple[Atom, ...]
    bindings: dict[Var, Atom] = field(default_factory=dict)


@dataclass
class Ctx:
    defs: dict[Var, Eqn]
    # a named dim -> the first (param, axis) of the function that has it
    dim_sources: dict[Dim, tuple[Var, int]] = field(default_factory=dict)

    def producer(self, a: Atom, prim: Primitive) -> Optional[Eqn]:
        """The equation of primitive ``prim`` that defines ``a``, if that is how it is made."""
        e = self.defs.get(a) if isinstance(a, Var) else None
        return e if e is not None and e.prim is prim else None


Result = Union[None, Atom, Eqn, Rewrite]
Rule = Callable[[Eqn, Ctx], Result]
RULES: dict[Primitive, list[Rule]] = {}


def rule(*prims: Primitive) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        for p in prims:
            RULES.setdefault(p, []).append(fn)
        return fn
    return register


def _same_eqn(e: Eqn, prim: Primitive, *inputs: Atom, **params) -> Eqn:
    return replace(e, prim=prim, inputs=tuple(inputs), params=dict(params))


def _either(e: Eqn, value: object) -> Optional[Atom]:
    """For a commutative binary eqn: the other operand when one side is the literal ``value``."""
    x, y = e.inputs
    if lit_equals(y, value):
        return x
    if lit_equals(x, value):
        return y
    return None


def _kind(e: Eqn) -> str:
    """'i' for any integer (the integer rules hold for unsigned dtypes too), else the kind."""
    d = e.outs[0].type.dtype
    return "i" if d.is_int else d.kind


def _lit(value: object, dtype: DType) -> Lit:
    return Lit.of(value, dtype)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- constant folding
# prim(Lit, ..., Lit) -> Lit   (scalar elementwise equations only)
# Evaluated with the primitive's own NumPy impl on 0-d arrays of the literal dtypes, which is
# exactly what the interpreter would compute.  No fold when the impl raises, when the result
# is not finite (keeps NaN/inf out of literals, whose text form and codegen constants are not
# worth the risk), or when the Lit would not hold the result bit for bit.
@rule(*sorted(ELEMENTWISE, key=lambda p: p.name))
def fold_constants(e: Eqn, ctx: Ctx) -> Result:
    if not all(isinstance(a, Lit) for a in e.inputs) or not e.outs[0].type.is_scalar:
        return None
    args = [np.asarray(a.value, dtype=a.type.dtype.np) for a in e.inputs]
    try:
        (val,) = impls[e.prim](*args, **e.params)
    except Exception:
        return None
    val = np.asarray(val)
    dt = e.outs[0].type.dtype
    if val.shape != () or val.dtype != dt.np:
        return None
    if dt.kind in "fc" and not np.isfinite(val):
        return None
    lit = _lit(val.item(), dt)
    if np.asarray(lit.value, dtype=dt.np).tobytes() != val.tobytes():
        return None
    return lit


# --------------------------------------------------------------------------- add / sub
@rule(add_p)
def add_zero(e: Eqn, ctx: Ctx) -> Result:
    # x + 0 -> x, 0 + x -> x        integers only (for floats -0.0 + 0.0 = +0.0)
    # x + -0.0 -> x, -0.0 + x -> x  floats: exact for every x, -0.0 included
    return _either(e, 0) if _kind(e) == "i" else _either(e, -0.0)


@rule(sub_p)
def sub_zero(e: Eqn, ctx: Ctx) -> Result:
    # x - 0 -> x   (floats too: x - (+0.0) = x for every x, -0.0 - 0.0 = -0.0)
    x, y = e.inputs
    return x if lit_equals(y, 0 if _kind(e) == "i" else 0.0) else None


@rule(sub_p)
def zero_sub(e: Eqn, ctx: Ctx) -> Result:
    # 0 - x -> neg(x)      integers (wrapping: 0 - MIN = MIN = neg(MIN))
    # -0.0 - x -> neg(x)   floats (exact, zeros included; 0.0 - x is not: 0.0 - 0.0 = +0.0)
    x, y = e.inputs
    zero = 0 if _kind(e) == "i" else -0.0
    return _same_eqn(e, neg_p, y) if lit_equals(x, zero) else None


@rule(sub_p)
def sub_self(e: Eqn, ctx: Ctx) -> Result:
    # x - x -> 0   integers only (inf - inf is NaN); scalar x only, since 0 is a scalar Lit
    x, y = e.inputs
    return _lit(0, e.outs[0].type.dtype) if x is y and isinstance(x, Var) and _kind(e) == "i" \
        else None


# --------------------------------------------------------------------------- mul / div
@rule(mul_p)
def mul_one(e: Eqn, ctx: Ctx) -> Result:
    # x * 1 -> x, 1 * x -> x   (floats too: x * 1.0 is exact, NaN and -0.0 included)
    return _either(e, 1 if _kind(e) == "i" else 1.0)


@rule(mul_p)
def mul_minus_one(e: Eqn, ctx: Ctx) -> Result:
    # x * -1 -> neg(x), -1 * x -> neg(x)   (exact; integers wrap the same way)
    x = _either(e, -1 if _kind(e) == "i" else -1.0)
    return None if x is None else _same_eqn(e, neg_p, x)


@rule(mul_p)
def mul_zero(e: Eqn, ctx: Ctx) -> Result:
    # x * 0 -> 0   integers only (NaN * 0 is NaN, -1.0 * 0 is -0.0); scalar x only
    if _kind(e) != "i" or _either(e, 0) is None:
        return None
    return _lit(0, e.outs[0].type.dtype)


@rule(div_p)
def div_one(e: Eqn, ctx: Ctx) -> Result:
    # x / 1.0 -> x   (exact)
    x, y = e.inputs
    return x if lit_equals(y, 1.0) else None


@rule(floordiv_p)
def floordiv_one(e: Eqn, ctx: Ctx) -> Result:
    # x // 1 -> x   integers only (for floats x // 1.0 is floor(x))
    x, y = e.inputs
    return x if _kind(e) == "i" and lit_equals(y, 1) else None


@rule(mod_p)
def mod_one(e: Eqn, ctx: Ctx) -> Result:
    # x % 1 -> 0   integers only; scalar x only
    x, y = e.inputs
    return _lit(0, e.outs[0].type.dtype) if _kind(e) == "i" and lit_equals(y, 1) else None


# --------------------------------------------------------------------------- unary involutions
@rule(neg_p)
def neg_neg(e: Eqn, ctx: Ctx) -> Result:
    # neg(neg(x)) -> x   (exact; integers: neg(neg(MIN)) = MIN)
    inner = ctx.producer(e.inputs[0], neg_p)
    return inner.inputs[0] if inner else None


@rule(not_p)
def not_not(e: Eqn, ctx: Ctx) -> Result:
    # not(not(x)) -> x
    inner = ctx.producer(e.inputs[0], not_p)
    return inner.inputs[0] if inner else None


@rule(abs_p)
def abs_abs(e: Eqn, ctx: Ctx) -> Result:
    # abs(abs(x)) -> abs(x)   (integers: abs(MIN) = MIN both times)
    inner = ctx.producer(e.inputs[0], abs_p)
    return inner.outs[0] if inner else None


@rule(abs_p)
def abs_neg(e: Eqn, ctx: Ctx) -> Result:
    # abs(neg(x)) -> abs(x)   (abs ignores the sign bit; integers: neg(MIN) = MIN)
    inner = ctx.producer(e.inputs[0], neg_p)
    return _same_eqn(e, abs_p, inner.inputs[0]) if inner else None


# --------------------------------------------------------------------------- min / max / logic
@rule(max_p, min_p)
def minmax_self(e: Eqn, ctx: Ctx) -> Result:
    # max(x, x) -> x, min(x, x) -> x
    x, y = e.inputs
    return x if x is y and isinstance(x, Var) else None


@rule(and_p)
def and_lit(e: Eqn, ctx: Ctx) -> Result:
    # x & True -> x, True & x -> x
    # x & False -> False   (scalar x only)
    # x & x -> x
    x, y = e.inputs
    if x is y and isinstance(x, Var):
        return x
    if _either(e, False) is not None:
        return _lit(False, e.outs[0].type.dtype)
    return _either(e, True)


@rule(or_p)
def or_lit(e: Eqn, ctx: Ctx) -> Result:
    # x | False -> x, False | x -> x
    # x | True -> True   (scalar x only)
    # x | x -> x
    x, y = e.inputs
    if x is y and isinstance(x, Var):
        return x
    if _either(e, True) is not None:
        return _lit(True, e.outs[0].type.dtype)
    return _either(e, False)


# --------------------------------------------------------------------------- select / convert
@rule(select_p)
def select_known(e: Eqn, ctx: Ctx) -> Result:
    # select(True, a, b) -> a, select(False, a, b) -> b
    # select(p, a, a) -> a
    p, a, b = e.inputs
    if lit_equals(p, True):
        return a
    if lit_equals(p, False):
        return b
    if a is b or (isinstance(a, Lit) and isinstance(b, Lit) and lit_key(a) == lit_key(b)):
        return a
    return None


@rule(select_p)
def select_not(e: Eqn, ctx: Ctx) -> Result:
    # select(not(p), a, b) -> select(p, b, a)
    p, a, b = e.inputs
    inner = ctx.producer(p, not_p)
    return _same_eqn(e, select_p, inner.inputs[0], b, a) if inner else None


@rule(convert_p)
def convert_same(e: Eqn, ctx: Ctx) -> Result:
    # convert(x, x.dtype) -> x
    return e.inputs[0] if e.params["dtype"] is e.inputs[0].type.dtype else None


def _lossless(src: DType, mid: DType) -> bool:
    """Every ``src`` value survives ``src -> mid -> src`` exactly."""
    if src.is_bool:
        return True  # 0/1 (or 0.0/1.0) converts back to False/True
    if src.kind == mid.kind:
        return mid.bits >= src.bits
    return src is i32 and mid is f64  # f64 holds every i32 exactly


@rule(convert_p)
def convert_roundtrip(e: Eqn, ctx: Ctx) -> Result:
    # convert(convert(x, wider), x.dtype) -> x   when the widening loses nothing
    inner = ctx.producer(e.inputs[0], convert_p)
    if inner is None:
        return None
    x = inner.inputs[0]
    src, mid = x.type.dtype, inner.params["dtype"]
    return x if e.params["dtype"] is src and _lossless(src, mid) else None


# --------------------------------------------------------------------------- shapes
@rule(transpose_p)
def transpose_compose(e: Eqn, ctx: Ctx) -> Result:
    # transpose(x, identity) -> x
    # transpose(transpose(x, p), q) -> transpose(x, [p[q[k]] for k])
    perm = tuple(e.params["perm"])
    if perm == tuple(range(len(perm))):
        return e.inputs[0]
    inner = ctx.producer(e.inputs[0], transpose_p)
    if inner is None:
        return None
    p = inner.params["perm"]
    return _same_eqn(e, transpose_p, inner.inputs[0], perm=tuple(p[k] for k in perm))


@rule(dim_p)
def dim_const(e: Eqn, ctx: Ctx) -> Result:
    # dim(x, k) -> Lit   when the k-th dim of x's type is a constant
    d = e.inputs[0].type.shape[e.params["axis"]]
    return _lit(d.const, i64) if d.is_const else None


@rule(dim_p)
def dim_from_param(e: Eqn, ctx: Ctx) -> Result:
    # dim(x, k) -> dim(p, j)   when x's k-th dim is p's j-th for a param p: the same size, read
    # from the function's input, so x is no longer needed just for its length (DCE can drop it
    # and passes see no false dependence on it)
    x, k = e.inputs[0], e.params["axis"]
    src = ctx.dim_sources.get(x.type.shape[k])
    if src is None or (src[0] is x and src[1] == k):
        return None
    return _same_eqn(e, dim_p, src[0], axis=src[1])


@rule(reduce_sum_p, reduce_max_p, reduce_min_p)
def reduce_nothing(e: Eqn, ctx: Ctx) -> Result:
    # reduce(x, axes=()) -> x   (the driver's type check keeps i32 sums, which widen)
    return e.inputs[0] if tuple(e.params["axes"]) == () else None


# --------------------------------------------------------------------------- control flow
def _trip_count(e: Eqn) -> Optional[int]:
    start, stop, step = e.inputs[:3]
    if not all(isinstance(a, Lit) for a in (start, stop, step)) or step.value == 0:
        return None
    return len(range(int(start.value), int(stop.value), int(step.value)))


@rule(loop_p)
def loop_short(e: Eqn, ctx: Ctx) -> Result:
    # loop with 0 iterations -> its initial carried values
    # loop with 1 iteration -> its body, inlined with i = start
    n = _trip_count(e)
    if n is None or n > 1:
        return None
    n_carry = e.params["n_carry"]
    init = tuple(e.inputs[3:3 + n_carry])
    if n == 0:
        return Rewrite((), init)
    body: Func = e.params["body"]
    bindings = dict(zip(body.params, (e.inputs[0],) + tuple(e.inputs[3:])))
    return Rewrite(body.eqns, body.outs, bindings)


@rule(loop_p)
def loop_invariant_carry(e: Eqn, ctx: Ctx) -> Result:
    # a carried value the body returns unchanged -> a constant input; the loop result is its
    # initial value (true for any trip count, 0 included)
    body: Func = e.params["body"]
    n_carry = e.params["n_carry"]
    fixed = [k for k in range(n_carry) if body.outs[k] is body.params[1 + k]]
    if not fixed:
        return None
    keep = [k for k in range(n_carry) if k not in fixed]
    carry_in = e.inputs[3:3 + n_carry]
    consts_in = tuple(e.inputs[3 + n_carry:])
    carry_p = body.params[1:1 + n_carry]
    consts_p = tuple(body.params[1 + n_carry:])
    new_body = replace(
        body,
        params=(body.params[0],) + tuple(carry_p[k] for k in keep) + consts_p
        + tuple(carry_p[k] for k in fixed),
        outs=tuple(body.outs[k] for k in keep))
    new_outs = tuple(Var(e.outs[k].type) for k in keep)
    new_eqn = replace(
        e, inputs=tuple(e.inputs[:3]) + tuple(carry_in[k] for k in keep) + consts_in
        + tuple(carry_in[k] for k in fixed),
        params={**e.params, "body": new_body, "n_carry": len(keep)}, outs=new_outs)
    result: list[Atom] = list(carry_in)
    for k, v in zip(keep, new_outs):
        result[k] = v
    return Rewrite((new_eqn,), tuple(result))


@rule(while_p)
def while_never(e: Eqn, ctx: Ctx) -> Result:
    # while with a condition that is the literal False -> its initial carried values
    out = e.params["cond_fn"].outs[0]
    if not (isinstance(out, Lit) and out.value is False):
        return None
    return Rewrite((), tuple(e.inputs[:e.params["n_carry"]]))


@rule(cond_p)
def cond_known(e: Eqn, ctx: Ctx) -> Result:
    # cond(True, ops, t, f) -> t(ops) inlined; cond(False, ...) -> f(ops) inlined
    pred = e.inputs[0]
    if not isinstance(pred, Lit):
        return None
    branch: Func = e.params["true_fn" if pred.value else "false_fn"]
    return Rewrite(branch.eqns, branch.outs, dict(zip(branch.params, e.inputs[1:])))


# --------------------------------------------------------------------------- driver
_MAX_REWRITES = 32  # per equation; rules shrink or canonicalise, this only guards a cycle


def _types_of(e: Eqn) -> Optional[list[TensorType]]:
    try:
        return list(shape_rules[e.prim](*(a.type for a in e.inputs), **e.params))
    except Exception:
        return None


def _accept(e: Eqn, res: Result) -> bool:
    """Type discipline of the driver: a rewrite never changes an output's type."""
    if isinstance(res, (Var, Lit)):
        return len(e.outs) == 1 and res.type == e.outs[0].type
    if isinstance(res, Eqn):
        return res.outs == e.outs and _types_of(res) == [v.type for v in e.outs]
    if isinstance(res, Rewrite):
        return len(res.outs) == len(e.outs) and all(
            a.type == v.type for a, v in zip(res.outs, e.outs))
    return False


def _apply_rules(e: Eqn, ctx: Ctx) -> Result:
    for r in RULES.get(e.prim, ()):
        res = r(e, ctx)
        if res is not None and _accept(e, res):
            return res
    return None


def simplify(func: Func) -> Func:
    """Apply :data:`RULES` to every equation, recursively into sub-functions."""
    env: dict[Var, Atom] = {}
    ctx = Ctx({})
    for p in func.params:
        for axis, d in enumerate(p.type.shape):
            if not d.is_const:
                ctx.dim_sources.setdefault(d, (p, axis))
    out: list[Eqn] = []
    pending = deque(func.eqns)
    while pending:
        e = pending.popleft()
        e = replace(e, inputs=tuple(resolve(env, a) for a in e.inputs))
        e = map_subfuncs(e, simplify)
        for _ in range(_MAX_REWRITES):
            res = _apply_rules(e, ctx)
            if isinstance(res, Eqn):
                e = res
                continue
            if isinstance(res, (Var, Lit)):
                env[e.outs[0]] = res
            elif isinstance(res, Rewrite):
                env.update(res.bindings)
                env.update(zip(e.outs, res.outs))
                pending.extendleft(reversed(res.eqns))
            else:
                out.append(e)
                for v in e.outs:
                    ctx.defs[v] = e
            break
        else:
            out.append(e)
            for v in e.outs:
                ctx.defs[v] = e
    return replace(func, eqns=tuple(out), outs=tuple(resolve(env, a) for a in func.outs))
