"""Forward mode: :func:`jvp_emit` / :func:`jvp_func`, a read/write loop over equations applying
``jvp_rules[prim]``.

The table ``jvp_rules`` lives here, with every rule, in the order of :mod:`lattice.ir.primitives`;
the rules for ``loop`` and ``cond`` JVP their sub-functions with :func:`jvp_emit`.
``NON_DIFFERENTIABLE`` lists the primitives that need no rule.  ``reduce_max``/``reduce_min``
(and ``maximum``/``minimum`` at ties) split the tangent evenly between the tied positions, as
JAX does.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence

from .. import primitives as P
from ..core import Atom, Builder, Eqn, Func, Lit, Primitive, Var, bind, building
from ..inline import clone_func, inline
from ..types import DType, i64, scalar
from .common import (ONE, ADError, _at, _b1, _broadcast_to, _dt, _emit_copy, _is_float, _lit,
                     _sizes_of, _zeros_like, take_along_axis)

__all__ = ["jvp_rules", "NON_DIFFERENTIABLE", "jvp_emit", "jvp_func"]


JvpRule = Callable[[list[Atom], list[Optional[Atom]], Eqn, str],
                   tuple[list[Atom], list[Optional[Atom]]]]

#: prim -> rule(primal ins, tangent ins (None = zero), eqn, mode) -> (primal outs, tangent outs)
jvp_rules: dict[Primitive, JvpRule] = {}

#: primitives whose outputs are never floats: no tangent flows through them
NON_DIFFERENTIABLE = frozenset([*P.COMPARE.values(), *P.BITWISE.values(), P.not_p, P.and_p,
                                P.or_p, P.argmax_p, P.argmin_p, P.dim_p, P.iota_p, P.argsort_p,
                                P.searchsorted_p, P.nonzero_p, P.signbit_p])


def _fit(t: Optional[Atom], ref: Atom) -> Optional[Atom]:
    """A tangent of exactly ``ref``'s type (broadcasting a smaller one)."""
    if t is None or t.type.shape == ref.type.shape:
        return t
    return _broadcast_to(t, ref.type, _sizes_of(ref))


def jvp_emit(func: Func, primals: Sequence[Atom], tangents: Sequence[Optional[Atom]],
             mode: str = "jvp") -> tuple[list[Atom], list[Optional[Atom]]]:
    """Emit the JVP of ``func`` into the current builder: returns (primal outs, tangent outs).

    ``tangents[k]`` is None for a zero (or absent) tangent.  ``mode`` is "jvp" (a forward-mode
    derivative that is evaluated) or "linearize" (it will be partially evaluated and transposed:
    custom rules then use the user's reverse rule)."""
    env: dict[Var, Atom] = dict(zip(func.params, primals))
    tenv: dict[Var, Atom] = {p: t for p, t in zip(func.params, tangents) if t is not None}

    def read(a: Atom) -> Atom:
        return env[a] if isinstance(a, Var) else a

    for e in func.eqns:
        ins = [read(a) for a in e.inputs]
        tins = [tenv.get(a) if isinstance(a, Var) else None for a in e.inputs]
        if e.prim in P.POST_PASS:  # fused, rowpass: made by the passes, after AD
            raise ADError(f"cannot differentiate a `{e.prim.name}` equation: differentiate the "
                          "traced IR (kernel.ir), then run the optimisation passes")
        if all(t is None for t in tins) or not any(_is_float(v) for v in e.outs):
            outs: list[Atom] = list(_emit_copy(e, ins))
            touts: list[Optional[Atom]] = [None] * len(outs)
        else:
            rule = jvp_rules.get(e.prim)
            if rule is None:
                raise ADError(f"primitive {e.prim.name} has no differentiation rule")
            with _at(e.loc):
                outs, touts = rule(ins, tins, e, mode)
        env.update(zip(e.outs, outs))
        for v, t in zip(e.outs, touts):
            if t is not None:
                assert t.type == v.type, (e.prim, t.type, v.type)
                tenv[v] = t
    return [read(a) for a in func.outs], [tenv.get(a) if isinstance(a, Var) else None
                                         for a in func.outs]


def _float_mask(func: Func, which: Optional[Sequence[bool]]) -> list[bool]:
    which = [True] * len(func.params) if which is None else list(which)
    if len(which) != len(func.params):
        raise ValueError(f"{func.name}: {len(which)} flags for {len(func.params)} params")
    return [w and _is_float(p) for w, p in zip(which, func.params)]


def jvp_func(func: Func, which: Optional[Sequence[bool]] = None, *, mode: str = "jvp") -> Func:
    """Forward mode: params = primals + one tangent per float param with ``which`` set; outs =
    primal outs + one tangent per float out (zeros materialised)."""
    mask = _float_mask(func, which)
    b = Builder()
    with building(b):
        ps = [Var(p.type) for p in func.params]
        ts = [Var(p.type) if m else None for p, m in zip(func.params, mask)]
        outs, touts = jvp_emit(func, ps, ts, mode)
        tout_atoms = [t if t is not None else _zeros_like(o)
                      for o, t in zip(outs, touts) if _is_float(o)]
    return b.build(ps + [t for t in ts if t is not None], list(outs) + tout_atoms,
                   f"jvp_{func.name}")


def _jvp_open(func: Func, mask: Sequence[bool], mode: str, instantiate: Sequence[bool]
              ) -> tuple[Builder, list[Var], list[Optional[Var]], list[Atom], list[Optional[Atom]]]:
    """JVP of a sub-function into a new builder (not yet a Func): fresh primal params, tangent
    params where ``mask``, outs, and tangent outs (zeros where ``instantiate`` and zero)."""
    b = Builder()
    with building(b):
        ps = [Var(p.type) for p in func.params]
        ts = [Var(p.type) if m else None for p, m in zip(func.params, mask)]
        outs, touts = jvp_emit(func, ps, ts, mode)
        touts = [t if t is not None or not inst else _zeros_like(o)
                 for o, t, inst in zip(outs, touts, instantiate)]
    return b, ps, ts, outs, touts


# --------------------------------------------------------------------------- tangent helpers
def _tadd(a: Optional[Atom], b: Optional[Atom]) -> Optional[Atom]:
    if a is None:
        return b
    if b is None:
        return a
    return _b1(P.add_p, a, b)


def _tsub(a: Optional[Atom], b: Optional[Atom]) -> Optional[Atom]:
    if b is None:
        return a
    if a is None:
        return _b1(P.neg_p, b)
    return _b1(P.sub_p, a, b)


def _tmul(t: Optional[Atom], x: Atom) -> Optional[Atom]:
    return None if t is None else _b1(P.mul_p, t, x)


def _or0(t: Optional[Atom], dtype: DType) -> Atom:
    return _lit(0, dtype) if t is None else t


def _defjvp(*prims: Primitive) -> Callable[[Callable[..., list[Optional[Atom]]]], Any]:
    """Register a rule that re-emits the primal equation and computes tangents from
    ``fn(ins, outs, tangents, eqn)``."""
    def deco(fn: Callable[..., list[Optional[Atom]]]) -> Any:
        def rule(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
                 ) -> tuple[list[Atom], list[Optional[Atom]]]:
            outs = _emit_copy(e, ins)
            return list(outs), list(fn(ins, outs, tins, e))
        for p in prims:
            jvp_rules[p] = rule
        return fn
    return deco


def _unary(prim: Primitive, deriv: Callable[[Atom, Atom], Optional[Atom]]) -> None:
    """``t_out = t * deriv(x, y)``; deriv None means a zero derivative."""
    @_defjvp(prim)
    def _(ins: list[Atom], outs: list[Var], tins: list[Optional[Atom]], e: Eqn) -> list:
        (x,), (y,), (t,) = ins, outs, tins
        d = deriv(x, y)
        return [None if d is None or t is None else _b1(P.mul_p, t, d)]


def _one(x: Atom) -> Lit:
    return _lit(1, _dt(x))


# d/dx of each unary elementwise primitive, in terms of x and y = f(x)
_unary(P.exp_p, lambda x, y: y)
_unary(P.log_p, lambda x, y: _b1(P.div_p, _one(x), x))
_unary(P.log1p_p, lambda x, y: _b1(P.div_p, _one(x), _b1(P.add_p, x, _one(x))))
_unary(P.expm1_p, lambda x, y: _b1(P.add_p, y, _one(x)))
_unary(P.sqrt_p, lambda x, y: _b1(P.div_p, _lit(0.5, _dt(x)), y))
_unary(P.tanh_p, lambda x, y: _b1(P.sub_p, _one(x), _b1(P.mul_p, y, y)))
_unary(P.sin_p, lambda x, y: _b1(P.cos_p, x))
_unary(P.cos_p, lambda x, y: _b1(P.neg_p, _b1(P.sin_p, x)))
_unary(P.floor_p, lambda x, y: None)


def _gauss(x: Atom, c: float) -> Var:
    """``c * exp(-x * x)``: erf' with c = 2/sqrt(pi), erfc' with c = -2/sqrt(pi)."""
    return _b1(P.mul_p, _lit(c, _dt(x)), _b1(P.exp_p, _b1(P.neg_p, _b1(P.mul_p, x, x))))


_unary(P.erf_p, lambda x, y: _gauss(x, 2.0 / math.sqrt(math.pi)))
_unary(P.erfc_p, lambda x, y: _gauss(x, -2.0 / math.sqrt(math.pi)))
# sigmoid' = s(x) s(-x): both factors from the stable sigmoid, so no 1 - s cancellation
_unary(P.sigmoid_p, lambda x, y: _b1(P.mul_p, y, _b1(P.sigmoid_p, _b1(P.neg_p, x))))
# softplus' = sigmoid (stable for every x)
_unary(P.softplus_p, lambda x, y: _b1(P.sigmoid_p, x))
# |x|' = sign(x), taking +1 at 0
_unary(P.abs_p, lambda x, y: _b1(P.select_p, _b1(P.ge_p, x, _lit(0, _dt(x))), _one(x),
                                 _lit(-1, _dt(x))))


def _lit_of(x: Atom, v: float) -> Lit:
    return _lit(v, _dt(x))


def _inv(x: Atom) -> Var:
    return _b1(P.div_p, _one(x), x)


def _one_minus_x2(x: Atom) -> Var:
    """``(1 - x)(1 + x)``: 1 - x^2 without the cancellation near |x| = 1."""
    return _b1(P.mul_p, _b1(P.sub_p, _one(x), x), _b1(P.add_p, _one(x), x))


_unary(P.tan_p, lambda x, y: _b1(P.add_p, _one(x), _b1(P.mul_p, y, y)))
_unary(P.arcsin_p, lambda x, y: _inv(_b1(P.sqrt_p, _one_minus_x2(x))))
_unary(P.arccos_p, lambda x, y: _b1(P.neg_p, _inv(_b1(P.sqrt_p, _one_minus_x2(x)))))
_unary(P.arctan_p, lambda x, y: _inv(_b1(P.add_p, _one(x), _b1(P.mul_p, x, x))))
_unary(P.sinh_p, lambda x, y: _b1(P.cosh_p, x))
_unary(P.cosh_p, lambda x, y: _b1(P.sinh_p, x))
# 1/sqrt(x^2 + 1) as 1/hypot(x, 1): no overflow of x^2 for huge |x|
_unary(P.arcsinh_p, lambda x, y: _inv(_b1(P.hypot_p, x, _one(x))))
# 1/sqrt(x^2 - 1) as 1/sqrt((x - 1)(x + 1)): inf at the edge x = 1, NaN below it
_unary(P.arccosh_p, lambda x, y: _inv(_b1(P.sqrt_p, _b1(
    P.mul_p, _b1(P.sub_p, x, _one(x)), _b1(P.add_p, x, _one(x))))))
_unary(P.arctanh_p, lambda x, y: _inv(_one_minus_x2(x)))
_unary(P.exp2_p, lambda x, y: _b1(P.mul_p, y, _lit_of(x, math.log(2.0))))
_unary(P.log2_p, lambda x, y: _inv(_b1(P.mul_p, x, _lit_of(x, math.log(2.0)))))
_unary(P.log10_p, lambda x, y: _inv(_b1(P.mul_p, x, _lit_of(x, math.log(10.0)))))
# cbrt' = 1/(3 cbrt(x)^2): +inf at 0, as JAX
_unary(P.cbrt_p, lambda x, y: _inv(_b1(P.mul_p, _lit_of(x, 3.0), _b1(P.mul_p, y, y))))
# piecewise constant: zero derivative (also at the steps, as JAX)
for _p in (P.trunc_p, P.ceil_p, P.rint_p, P.sign_p):
    _unary(_p, lambda x, y: None)
_unary(P.gamma_p, lambda x, y: _b1(P.mul_p, y, _b1(P.digamma_p, x)))
_unary(P.lgamma_p, lambda x, y: _b1(P.digamma_p, x))
_unary(P.digamma_p, lambda x, y: _b1(P.trigamma_p, x))


@_defjvp(P.trigamma_p)
def _jvp_trigamma(ins, outs, tins, e):
    raise ADError("the derivative of trigamma (polygamma(2, x), the third derivative of lgamma) "
                  "is not implemented: differentiate lgamma at most twice, digamma once")


@_defjvp(P.neg_p)
def _jvp_neg(ins, outs, tins, e):
    return [_b1(P.neg_p, tins[0])]


@_defjvp(P.add_p)
def _jvp_add(ins, outs, tins, e):
    return [_fit(_tadd(*tins), outs[0])]


@_defjvp(P.sub_p)
def _jvp_sub(ins, outs, tins, e):
    return [_fit(_tsub(*tins), outs[0])]


@_defjvp(P.mul_p)
def _jvp_mul(ins, outs, tins, e):
    (a, b), (ta, tb) = ins, tins
    return [_fit(_tadd(_tmul(ta, b), None if tb is None else _b1(P.mul_p, a, tb)), outs[0])]


@_defjvp(P.div_p)
def _jvp_div(ins, outs, tins, e):
    # (a/b)' = (ta - tb * y) / b
    (a, b), (y,), (ta, tb) = ins, outs, tins
    num = _tsub(ta, _tmul(tb, y))
    return [_fit(_b1(P.div_p, num, b), y)]


@_defjvp(P.pow_p)
def _jvp_pow(ins, outs, tins, e):
    # (a^b)' = ta * b * a^(b-1) + tb * log(a) * y; log(a) is taken as 0 at a = 0 (y is 0
    # or 1 there), so a zero base gives no NaN
    (a, b), (y,), (ta, tb) = ins, outs, tins
    d = _dt(a)
    t = None
    if ta is not None:
        # b a^(b-1), taken as 0 where b = 0 (a^0 is constant; 0 * 0^-1 would be NaN), as JAX
        da = _b1(P.mul_p, b, _b1(P.pow_p, a, _b1(P.sub_p, b, _lit(1, d))))
        da = _b1(P.select_p, _b1(P.eq_p, b, _lit(0, d)), _lit(0, d), da)
        t = _b1(P.mul_p, ta, da)
    if tb is not None:
        safe = _b1(P.select_p, _b1(P.eq_p, a, _lit(0, d)), _lit(1, d), a)
        t = _tadd(t, _b1(P.mul_p, tb, _b1(P.mul_p, _b1(P.log_p, safe), y)))
    return [_fit(t, y)]


def _jvp_minmax(first_wins: Primitive, nan_loses: bool = False
                ) -> Callable[..., list[Optional[Atom]]]:
    # the tangent of the chosen operand; at ties the mean of both (as JAX does); with
    # ``nan_loses`` (fmax/fmin) a NaN operand is not chosen: the other one's tangent
    def fn(ins, outs, tins, e):
        (a, b), (y,), (ta, tb) = ins, outs, tins
        d = _dt(y)
        ta0, tb0 = _or0(ta, d), _or0(tb, d)
        tie = _b1(P.mul_p, _b1(P.add_p, ta0, tb0), _lit(0.5, d))
        a_wins, b_wins = _b1(first_wins, a, b), _b1(first_wins, b, a)
        if nan_loses:
            a_wins = _b1(P.or_p, a_wins, _b1(P.ne_p, b, b))
            b_wins = _b1(P.or_p, b_wins, _b1(P.ne_p, a, a))
        inner = _b1(P.select_p, b_wins, tb0, tie)
        return [_fit(_b1(P.select_p, a_wins, ta0, inner), y)]
    return fn


_defjvp(P.max_p)(_jvp_minmax(P.gt_p))
_defjvp(P.min_p)(_jvp_minmax(P.lt_p))
_defjvp(P.fmax_p)(_jvp_minmax(P.gt_p, nan_loses=True))
_defjvp(P.fmin_p)(_jvp_minmax(P.lt_p, nan_loses=True))


def _jvp_logaddexp(exp: Primitive) -> Callable[..., list[Optional[Atom]]]:
    # y = log(e^a + e^b): dy = ta e^(a-y) + tb e^(b-y); a - y <= 0, so no overflow (and the
    # same with 2 for e: logaddexp2)
    def fn(ins, outs, tins, e):
        (a, b), (y,), (ta, tb) = ins, outs, tins
        t = _tadd(_tmul(ta, _b1(exp, _b1(P.sub_p, a, y))),
                  _tmul(tb, _b1(exp, _b1(P.sub_p, b, y))))
        return [_fit(t, y)]
    return fn


_defjvp(P.logaddexp_p)(_jvp_logaddexp(P.exp_p))
_defjvp(P.logaddexp2_p)(_jvp_logaddexp(P.exp2_p))


@_defjvp(P.floordiv_p)
def _jvp_floordiv(ins, outs, tins, e):
    return [None]  # piecewise constant


@_defjvp(P.mod_p)
def _jvp_mod(ins, outs, tins, e):
    # a mod b = a - floor(a/b) b
    (a, b), (y,), (ta, tb) = ins, outs, tins
    q = None if tb is None else _b1(P.floordiv_p, a, b)
    return [_fit(_tsub(ta, None if tb is None else _b1(P.mul_p, tb, q)), y)]


@_defjvp(P.fmod_p)
def _jvp_fmod(ins, outs, tins, e):
    # fmod(a, b) = a - trunc(a/b) b
    (a, b), (y,), (ta, tb) = ins, outs, tins
    q = None if tb is None else _b1(P.trunc_p, _b1(P.div_p, a, b))
    return [_fit(_tsub(ta, None if tb is None else _b1(P.mul_p, tb, q)), y)]


def _safe_den(d: Atom) -> Var:
    """``d`` with 0 replaced by 1: a quotient whose numerator is then 0 becomes 0."""
    return _b1(P.select_p, _b1(P.eq_p, d, _lit(0, _dt(d))), _one(d), d)


@_defjvp(P.arctan2_p)
def _jvp_arctan2(ins, outs, tins, e):
    # atan2(y, x)' = (x ty - y tx) / (x^2 + y^2); 0 at the origin (where it has no limit)
    (yy, xx), (out,), (ty, tx) = ins, outs, tins
    den = _safe_den(_b1(P.add_p, _b1(P.mul_p, xx, xx), _b1(P.mul_p, yy, yy)))
    t = _tsub(_tmul(ty, _b1(P.div_p, xx, den)), _tmul(tx, _b1(P.div_p, yy, den)))
    return [_fit(t, out)]


@_defjvp(P.hypot_p)
def _jvp_hypot(ins, outs, tins, e):
    # hypot(a, b)' = (a ta + b tb) / h; 0 at the origin (a subgradient)
    (a, b), (h,), (ta, tb) = ins, outs, tins
    hs = _safe_den(h)
    t = _tadd(_tmul(ta, _b1(P.div_p, a, hs)), _tmul(tb, _b1(P.div_p, b, hs)))
    return [_fit(t, h)]


@_defjvp(P.copysign_p)
def _jvp_copysign(ins, outs, tins, e):
    # copysign(a, b) = |a| sgn(b): ta times +1 where a's and b's sign bits agree, else -1
    (a, b), (y,), (ta, tb) = ins, outs, tins
    if ta is None:
        return [None]
    d = _dt(a)
    same = _b1(P.eq_p, _b1(P.signbit_p, a), _b1(P.signbit_p, b))
    return [_fit(_b1(P.mul_p, ta, _b1(P.select_p, same, _lit(1, d), _lit(-1, d))), y)]


@_defjvp(P.select_p)
def _jvp_select(ins, outs, tins, e):
    (p, a, b), (y,), (_, ta, tb) = ins, outs, tins
    d = _dt(y)
    return [_fit(_b1(P.select_p, p, _or0(ta, d), _or0(tb, d)), y)]


@_defjvp(P.convert_p)
def _jvp_convert(ins, outs, tins, e):
    (x,), (t,) = ins, tins
    if t is None or not _is_float(x) or not _is_float(outs[0]):
        return [None]
    return [_b1(P.convert_p, t, dtype=e.params["dtype"])]


@_defjvp(P.reduce_sum_p)
def _jvp_reduce_sum(ins, outs, tins, e):
    return [_b1(P.reduce_sum_p, tins[0], axes=e.params["axes"])]


def _keepdims(y: Atom, x: Atom, axes: Sequence[int]) -> Atom:
    """``y = reduce(x, axes)`` with the reduced axes restored as literal 1s (only when they
    are not leading, since NumPy broadcasting adds leading axes by itself)."""
    if tuple(axes) == tuple(range(len(axes))):
        return y
    dims = tuple(ONE if k in axes else d for k, d in enumerate(x.type.shape))
    kept = tuple(k for k in range(x.type.ndim) if k not in axes)
    sizes = [_lit(1, i64) if k in axes else s for k, s in enumerate(_sizes_of(x))]
    return _b1(P.broadcast_in_dim_p, y, *sizes, dims=dims, axes=kept)


def _tied(x: Atom, v: Atom, t: Atom, axes: Sequence[int]) -> tuple[Atom, Atom]:
    """The sum of the tangents ``t`` at the positions where ``x`` equals ``v`` (``x`` reduced
    over ``axes``, broadcasting against it), and how many there are (in ``x``'s dtype)."""
    d = _dt(x)
    hit = _b1(P.eq_p, x, v)
    count = _b1(P.reduce_sum_p, _b1(P.select_p, hit, _lit(1, d), _lit(0, d)), axes=axes)
    total = _b1(P.reduce_sum_p, _b1(P.select_p, hit, t, _lit(0, d)), axes=axes)
    return total, count


def _jvp_reduce_extreme(ins, outs, tins, e):
    # the mean of the tangents at the positions equal to the extreme (ties share evenly)
    (x,), (y,), (t,) = ins, outs, tins
    axes = e.params["axes"]
    total, count = _tied(x, _keepdims(y, x, axes), t, axes)
    return [_b1(P.div_p, total, count)]


_defjvp(P.reduce_max_p)(_jvp_reduce_extreme)
_defjvp(P.reduce_min_p)(_jvp_reduce_extreme)


# sorting: the tangent of a sorted array is the input's tangent in the sorted order, a gather
# along the axis by the argsort.  Both sort stably (NaN last), so at ties the tangent of the
# k-th sorted element is that of the k-th equal input in input order: a consistent choice of
# one of the (equal) one-sided derivatives, not an average.  Its transpose is the scatter-add
# of the gather (the index rule), so reverse mode needs nothing more.
@_defjvp(P.sort_p)
def _jvp_sort(ins, outs, tins, e):
    (x,), (t,) = ins, tins
    axis = e.params["axis"]
    order = _b1(P.argsort_p, x, axis=axis)
    return [take_along_axis(_fit(t, x), order, axis)]


@_defjvp(P.unique_p)
def _jvp_unique(ins, outs, tins, e):
    raise ADError("unique is not differentiable (its size depends on the values); "
                  "differentiate a computation on the sorted array instead")


def _jvp_bincount(ins, outs, tins, e):
    # linear in the weights; the counts themselves are integers
    if len(ins) == 1 or tins[1] is None:
        return [None]
    return [_b1(P.bincount_p, ins[0], tins[1], minlength=e.params["minlength"],
                out_dim=outs[0].type.shape[0])]


def _bincount_rule(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
                   ) -> tuple[list[Atom], list[Optional[Atom]]]:
    outs = _emit_copy(e, ins)
    if mode == "linearize" and len(tins) > 1 and tins[1] is not None:
        # for reverse mode, the same sums as a scatter-add of the weights' tangent into zeros
        # (bincount is not in LINEAR): its transpose gathers the cotangent at the values.
        # The values are non-negative (the primal bincount checked), so none wraps around.
        x, t = ins[0], tins[1]
        return list(outs), [_b1(P.add_at_p, _zeros_like(outs[0]), x, t,
                                spec=(P.Arr(x.type.shape),))]
    return list(outs), list(_jvp_bincount(ins, outs, tins, e))


jvp_rules[P.bincount_p] = _bincount_rule


@_defjvp(P.histogram_p)
def _jvp_histogram(ins, outs, tins, e):
    # The counts are integers.  The edges are linspace(lo, hi, bins + 1), so edge k moves by
    # t_lo + (t_hi - t_lo) k / bins.  With no range, lo and hi are x's min and max, whose
    # tangents are shared evenly between tied positions (as reduce_min/reduce_max's); when
    # every value is equal NumPy widens the range by 0.5 each way and both take the mean
    # tangent.  Edges computed on the primal (edges[0] == min(x) exactly unless widened)
    # avoid a min over an empty array.
    (x, *rng), (_, edges), (tx, *trng) = ins, outs, tins
    d = _dt(edges)
    bins = e.params["bins"]
    if rng:
        t_lo, t_hi = (None if t is None else _b1(P.convert_p, t, dtype=d) for t in trng)
        if t_lo is None and t_hi is None:
            return [None, None]
    else:
        if tx is None:
            return [None, None]
        tx = _fit(tx, x)
        n = _b1(P.convert_p, _sizes_of(x)[0], dtype=d)
        mean = _b1(P.div_p, _b1(P.reduce_sum_p, tx, axes=(0,)), _b1(P.max_p, n, _lit(1, d)))

        def at(k: int) -> Atom:
            v = _b1(P.index_p, edges, _lit(k, i64), spec=(P.Int(),))
            total, count = _tied(x, v, tx, (0,))
            some = _b1(P.gt_p, count, _lit(0, d))
            return _b1(P.select_p, some, _b1(P.div_p, total, _b1(P.max_p, count, _lit(1, d))),
                       mean)
        t_lo, t_hi = at(0), at(bins)
    size = _lit(bins + 1, i64)
    frac = _b1(P.div_p, _b1(P.convert_p, _b1(P.iota_p, size, dim=edges.type.shape[0], dtype=i64),
                            dtype=d), _lit(bins, d))
    lo = _or0(t_lo, d)
    step = _tsub(t_hi, t_lo)
    t = lo if step is None else _b1(P.add_p, lo, _b1(P.mul_p, step, frac))
    return [None, _fit(t, edges)]


@_defjvp(P.matmul_p)
def _jvp_matmul(ins, outs, tins, e):
    (a, b), (ta, tb) = ins, tins
    return [_tadd(None if ta is None else _b1(P.matmul_p, ta, b),
                  None if tb is None else _b1(P.matmul_p, a, tb))]


@_defjvp(P.transpose_p)
def _jvp_transpose(ins, outs, tins, e):
    return [_b1(P.transpose_p, tins[0], perm=e.params["perm"])]


def _jvp_concat(ins, outs, tins, e):
    if all(t is None for t in tins):
        return [None]
    return [_b1(P.concat_p, *(_zeros_like(x) if t is None else t for x, t in zip(ins, tins)),
                axis=e.params["axis"])]


def _concat_rule(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
                 ) -> tuple[list[Atom], list[Optional[Atom]]]:
    outs = _emit_copy(e, ins)
    if mode != "linearize" or not any(d.is_fresh for x in ins for d in x.type.shape):
        return list(outs), list(_jvp_concat(ins, outs, tins, e))
    # A part sized at run time (``x[:k]``, k traced): the transpose must cut the cotangent at
    # that size, which no value of the linear function carries.  So for reverse mode each
    # tangent is added into zeros of the result at its offset, with the offsets computed
    # from the primal parts here; the transpose of each ``add_at`` then reads its part of the
    # cotangent through those (primal) bounds.
    axis = e.params["axis"]
    acc: Atom = _zeros_like(outs[0])
    start: Atom = _lit(0, i64)
    for x, t in zip(ins, tins):
        stop = _b1(P.add_p, start, _sizes_of(x)[axis])
        if t is not None:
            spec = (P.Slice(),) * axis + (P.Slice(start="dyn", stop="dyn"),) + \
                (P.Slice(),) * (x.type.ndim - axis - 1)
            acc = _b1(P.add_at_p, acc, start, stop, _fit(t, x), spec=spec)
        start = stop
    return list(outs), [acc]


jvp_rules[P.concat_p] = _concat_rule


@_defjvp(P.full_p)
def _jvp_full(ins, outs, tins, e):
    t = tins[0]
    if t is None:
        return [None]
    return [_b1(P.full_p, t, *ins[1:], **e.params)]


@_defjvp(P.empty_p)
def _jvp_empty(ins, outs, tins, e):
    return [None]


def _index_params(e: Eqn, out: Atom) -> dict[str, Any]:
    """Params for an ``index`` whose result must have exactly ``out``'s type (traced slice
    bounds give fresh dims, which a re-derived type would not share)."""
    params = {"spec": e.params["spec"]}
    if e.params.get("out_dims") is not None or any(d.is_fresh for d in out.type.shape):
        params["out_dims"] = out.type.shape  # (given: e.g. a concatenate's transpose's)
    return params


@_defjvp(P.index_p)
def _jvp_index(ins, outs, tins, e):
    return [_b1(P.index_p, tins[0], *ins[1:], **_index_params(e, outs[0]))]


@_defjvp(P.set_p)
def _jvp_set(ins, outs, tins, e):
    x, *idx, v = ins
    tx, tv = tins[0], tins[-1]
    if tx is None and tv is None:
        return [None]
    tx = tx if tx is not None else _zeros_like(x)
    return [_b1(P.set_p, tx, *idx, _or0(tv, _dt(x)), spec=e.params["spec"])]


@_defjvp(P.add_at_p)
def _jvp_add_at(ins, outs, tins, e):
    x, *idx, v = ins
    tx, tv = tins[0], tins[-1]
    if tv is None:
        return [tx]
    tx = tx if tx is not None else _zeros_like(x)
    return [_b1(P.add_at_p, tx, *idx, tv, spec=e.params["spec"])]


@_defjvp(P.broadcast_in_dim_p)
def _jvp_broadcast_in_dim(ins, outs, tins, e):
    return [_b1(P.broadcast_in_dim_p, tins[0], *ins[1:], **e.params)]


@_defjvp(P.custom_lin_p)
def _jvp_custom_lin(ins, outs, tins, e):
    n_res = e.params["n_res"]
    if any(t is not None for t in tins[:n_res]):
        raise ADError("cannot differentiate a custom_vjp rule's linear map with respect to "
                      "its residuals (differentiate the primal function instead)")
    ts = [t if t is not None else _zeros_like(x) for t, x in zip(tins[n_res:], ins[n_res:])]
    return list(bind(P.custom_lin_p, *ins[:n_res], *ts, **e.params))


def _jvp_carrying(body: Func, lead: list[bool], tcarry: Sequence[Optional[Atom]],
                  tconsts: Sequence[Optional[Atom]], mode: str
                  ) -> tuple[Builder, list[Var], list[Optional[Var]], list[Atom],
                             list[Optional[Atom]], list[bool]]:
    """The JVP of a loop body (params: ``lead`` ones without tangents, carries, constants):
    ``_jvp_open``'s results and which carries have tangents -- those whose start or whose
    update has one (a fixed point), their tangent outs made zeros where absent."""
    n = len(tcarry)
    kmask = [t is not None for t in tconsts]
    cmask = [t is not None for t in tcarry]
    while True:
        b, ps, ts, outs, touts = _jvp_open(body, lead + cmask + kmask, mode, [False] * n)
        grown = [c or (t is not None) for c, t in zip(cmask, touts)]
        if grown == cmask:
            break
        cmask = grown
    with building(b):
        touts = [t if t is not None or not m else _zeros_like(o)
                 for o, t, m in zip(outs, touts, cmask)]
    return b, ps, ts, outs, touts, cmask


def _jvp_loop(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
              ) -> tuple[list[Atom], list[Optional[Atom]]]:
    # a loop carrying primal and tangent values, with the JVP'd body
    body: Func = e.params["body"]
    n = e.params["n_carry"]
    carry, consts = ins[3:3 + n], ins[3 + n:]
    tcarry, tconsts = tins[3:3 + n], tins[3 + n:]
    b, ps, ts, outs, touts, cmask = _jvp_carrying(body, [False], tcarry, tconsts, mode)
    tc_params = [t for t, m in zip(ts[1:1 + n], cmask) if m]
    tk_params = [t for t in ts[1 + n:] if t is not None]
    new_body = b.build([ps[0], *ps[1:1 + n], *tc_params, *ps[1 + n:], *tk_params],
                       [*outs, *(t for t, m in zip(touts, cmask) if m)], body.name)
    tc_init = [t if t is not None else _zeros_like(c)
               for c, t, m in zip(carry, tcarry, cmask) if m]
    res = bind(P.loop_p, *ins[:3], *carry, *tc_init, *consts,
               *(t for t in tconsts if t is not None), body=new_body, n_carry=n + len(tc_init))
    prim_outs = list(res[:n])
    it = iter(res[n:])
    return prim_outs, [next(it) if m else None for m in cmask]


jvp_rules[P.loop_p] = _jvp_loop


def _jvp_while(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
               ) -> tuple[list[Atom], list[Optional[Atom]]]:
    # forward mode: a while carrying tangents beside the primals (the condition reads only
    # primals, so the trip count is the primal one).  Under linearize (reverse mode), a while
    # that also counts its trips, then the counted loop over its body, whose JVP the loop
    # rules of partial evaluation and transposition know (one extra primal pass).
    if mode == "linearize":
        n_trips = _while_trips(ins, e)
        body = _while_as_loop_body(e.params["body_fn"])
        bounds = [_lit(0, i64), n_trips, _lit(1, i64)]
        loop = Eqn(P.loop_p, (*bounds, *ins), {"body": body, "n_carry": e.params["n_carry"]},
                   tuple(Var(v.type) for v in e.outs), e.loc)
        return _jvp_loop([*bounds, *ins], [None, None, None, *tins], loop, mode)
    test: Func = e.params["cond_fn"]
    body = e.params["body_fn"]
    n = e.params["n_carry"]
    carry, consts = ins[:n], ins[n:]
    tcarry, tconsts = tins[:n], tins[n:]
    b, ps, ts, outs, touts, cmask = _jvp_carrying(body, [], tcarry, tconsts, mode)
    tc_params = [t for t, m in zip(ts[:n], cmask) if m]
    tk_params = [t for t in ts[n:] if t is not None]
    params = [*ps[:n], *tc_params, *ps[n:], *tk_params]
    new_body = b.build(params, [*outs, *(t for t, m in zip(touts, cmask) if m)], body.name)
    tb = Builder()
    with building(tb):
        tparams = [Var(p.type) for p in params]
        it = iter(tparams)
        cps = [next(it) for _ in range(n)]
        for _ in tc_params:
            next(it)
        kps = [next(it) for _ in range(len(consts))]
        go = inline(test, *cps, *kps)
    new_test = tb.build(tparams, list(go), test.name)
    tc_init = [t if t is not None else _zeros_like(c)
               for c, t, m in zip(carry, tcarry, cmask) if m]
    res = bind(P.while_p, *carry, *tc_init, *consts, *(t for t in tconsts if t is not None),
               cond_fn=new_test, body_fn=new_body, n_carry=n + len(tc_init))
    it2 = iter(res[n:])
    return list(res[:n]), [next(it2) if m else None for m in cmask]


def _while_trips(ins: list[Atom], e: Eqn) -> Atom:
    """Emit the ``while`` of ``e`` carrying a trip counter too; returns the trip count."""
    test: Func = e.params["cond_fn"]
    body: Func = e.params["body_fn"]
    n = e.params["n_carry"]
    cb, bb = Builder(), Builder()
    cparams = [Var(p.type) for p in body.params]
    count = Var(scalar(i64))
    with building(cb):
        go = inline(test, *cparams)
    bparams = [Var(p.type) for p in body.params]
    bcount = Var(scalar(i64))
    with building(bb):
        nxt = inline(body, *bparams)
        more = _b1(P.add_p, bcount, _lit(1, i64))
    res = bind(P.while_p, *ins[:n], _lit(0, i64), *ins[n:],  # the counter: the last carry
               cond_fn=cb.build([*cparams[:n], count, *cparams[n:]], list(go), test.name),
               body_fn=bb.build([*bparams[:n], bcount, *bparams[n:]], [*nxt, more], body.name),
               n_carry=n + 1)
    return res[n]


def _while_as_loop_body(body: Func) -> Func:
    """``body`` as the body of a counted ``loop``: an index param first, unused."""
    b = Builder()
    i = Var(scalar(i64))
    ps = [Var(p.type) for p in body.params]
    with building(b):
        outs = inline(body, *ps)
    return b.build([i, *ps], list(outs), body.name)


jvp_rules[P.while_p] = _jvp_while


def _jvp_cond(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
              ) -> tuple[list[Atom], list[Optional[Atom]]]:
    # a cond of the JVP'd branches (zeros where one branch has a tangent and the other not)
    pred, ops, tops = ins[0], ins[1:], tins[1:]
    mask = [t is not None for t in tops]
    fs = [e.params["true_fn"], e.params["false_fn"]]
    n_out = len(fs[0].outs)
    first = [_jvp_open(f, mask, mode, [False] * n_out)[4] for f in fs]
    need = [any(t[k] is not None for t in first) for k in range(n_out)]
    branches = []
    for f in fs:
        b, ps, ts, outs, touts = _jvp_open(f, mask, mode, need)
        branches.append(b.build([*ps, *(t for t in ts if t is not None)],
                                [*outs, *(t for t, m in zip(touts, need) if m)], f.name))
    res = bind(P.cond_p, pred, *ops, *(t for t in tops if t is not None),
               true_fn=branches[0], false_fn=branches[1])
    it = iter(res[n_out:])
    return list(res[:n_out]), [next(it) if m else None for m in need]


jvp_rules[P.cond_p] = _jvp_cond


def _jvp_custom_vjp(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
                    ) -> tuple[list[Atom], list[Optional[Atom]]]:
    fun: Func = e.params["fun"]
    if mode != "linearize":
        # forward mode has no user rule to use: differentiate the primal function
        return jvp_emit(fun, ins, tins, mode)
    fwd: Func = e.params["fwd"]
    bwd: Func = e.params["bwd"]
    n_out = len(fun.outs)
    outs_res = list(inline(fwd, *ins))
    outs, res = outs_res[:n_out], outs_res[n_out:]
    ts = [t if t is not None else _zeros_like(x)
          for x, t in zip(ins, tins) if _is_float(x)]
    touts = bind(P.custom_lin_p, *res, *ts, bwd=clone_func(bwd), n_res=len(res),
                 out_types=tuple(o.type for o in outs))
    return outs, [t if _is_float(t) else None for t in touts]


jvp_rules[P.custom_vjp_call_p] = _jvp_custom_vjp
