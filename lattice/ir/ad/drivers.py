"""The drivers built from the stages: reverse mode (:func:`vjp_func` = transpose ∘ linearize,
all in one function: the primal part, then the transposed linear part), :func:`grad_func` (a
scalar output, seeded with 1), and forward over reverse (:func:`hvp_func`,
:func:`hessian_func`).  No rule table lives here.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Sequence, Union

from .. import primitives as P
from ..core import Atom, Builder, Func, Var, bind
from ..inline import close_over, inline
from ..types import i64, scalar
from .common import (ADError, _b1, _exact, _is_float, _lit, _scope, _shapes, _sizes_of,
                     _zeros_like, _zeros_t)
from .common import check_real_boundary
from .jvp import _float_mask, jvp_func
from .linearize import linearize_func
from .transpose import transpose_emit

__all__ = ["vjp_func", "grad_func", "hvp_func", "hessian_func"]


def _vjp_emit(func: Func, mask: list[bool], primals: Sequence[Atom],
              cts: Sequence[Optional[Atom]]) -> tuple[list[Atom], list[Optional[Atom]]]:
    """Emit primal outs and the (exact) cotangents of the masked params; ``cts`` has one
    entry per float out."""
    known, lin, n_res = linearize_func(func, mask)
    outs_res = list(inline(known, *primals))
    n_out = len(func.outs)
    outs, res = outs_res[:n_out], outs_res[n_out:]
    n_t = sum(mask)
    _shapes().note(*primals, *res)
    got = transpose_emit(lin, [False] * n_res + [True] * n_t, [*res, *([None] * n_t)], cts)
    it = iter(got[n_res:])
    result: list[Optional[Atom]] = []
    for p, m in zip(primals, mask):
        if not m:
            result.append(None)
            continue
        g = next(it)
        result.append(_exact(g, p.type) if g is not None else _zeros_t(p.type))
    return outs, result


def vjp_func(func: Func, which: Optional[Sequence[bool]] = None) -> Func:
    """Reverse mode: params = primals + one cotangent per float out; outs = primal outs + one
    cotangent per differentiated float param."""
    mask = _float_mask(func, which)
    b = Builder()
    with _scope(b) as sh:
        ps = [Var(p.type) for p in func.params]
        cts = [Var(a.type) for a in func.outs if _is_float(a)]
        sh.note(*ps, *cts)
        outs, got = _vjp_emit(func, mask, ps, cts)
    return b.build(ps + cts, outs + [g for g in got if g is not None], f"vjp_{func.name}")


def _check_argnums(func: Func, argnums: Sequence[int]) -> list[bool]:
    n = len(func.params)
    mask = [False] * n
    check_real_boundary(func)
    for a in argnums:
        if not -n <= a < n:
            raise ADError(f"argnums {a} is out of range for {func.name} with {n} arguments")
        if not _is_float(func.params[a]):
            raise ADError(f"cannot differentiate {func.name} with respect to argument {a % n}: "
                          f"it is {func.params[a].type}, and only float arguments have "
                          f"gradients")
        mask[a % n] = True
    return mask


def grad_func(func: Func, argnums: Union[int, Sequence[int]] = 0, *,
              has_value: bool = False) -> Func:
    """The gradient of a scalar float ``func`` with respect to the ``argnums`` params: outs are
    the gradients (with ``has_value``, the value first)."""
    nums = [argnums] if isinstance(argnums, int) else list(argnums)
    mask = _check_argnums(func, nums)
    if len(func.outs) != 1 or func.out_types[0].shape or not _is_float(func.outs[0]):
        got = ", ".join(str(t) for t in func.out_types)
        raise ADError(f"grad needs a function returning one float scalar; {func.name} returns "
                      f"{got or 'nothing'} (use vjp or jacobian-style transforms for others)")
    b = Builder()
    with _scope(b) as sh:
        ps = [Var(p.type) for p in func.params]
        sh.note(*ps)
        (out,), got = _vjp_emit(func, mask, ps, [_lit(1, func.out_types[0].dtype)])
        grads = [got[a % len(ps)] for a in nums]
    return b.build(ps, ([out] if has_value else []) + grads,  # type: ignore[arg-type]
                   f"grad_{func.name}")


def hvp_func(func: Func, argnums: Union[int, Sequence[int]] = 0,
             which: Optional[Sequence[bool]] = None) -> Func:
    """Forward over reverse: params = primals + tangents (for ``which``, default all float
    params); outs = the tangents of the gradient w.r.t. ``argnums`` (Hessian-vector
    products)."""
    g = grad_func(func, argnums)
    jf = jvp_func(g, which)
    n_g = len(g.outs)
    return replace(jf, outs=jf.outs[n_g:], name=f"hvp_{func.name}")


def hessian_func(func: Func, argnum: int = 0) -> Func:
    """The Hessian w.r.t. one float param x: out shape ``x.shape + x.shape``.

    Computed as one Hessian-vector product per basis vector e_j, in a compiled loop (cost:
    size(x) × (forward + reverse + tangent) passes; memory: the result plus one product)."""
    n = len(func.params)
    a = argnum % n
    hv = hvp_func(func, a, [k == a for k in range(n)])
    x = func.params[a]
    t = x.type
    b = Builder()
    with _scope(b) as sh:
        ps = [Var(p.type) for p in func.params]
        sh.note(*ps)
        xs = _sizes_of(ps[a])
        if not t.shape:
            (h,) = inline(hv, *ps, _lit(1, t.dtype))
            return b.build(ps, [h], f"hessian_{func.name}")
        total: Atom = _lit(1, i64)
        for s in xs:
            total = _b1(P.mul_p, total, s)
        H0 = _b1(P.empty_p, *xs, *xs, dims=t.shape + t.shape, dtype=t.dtype)
        zero_v = _zeros_like(ps[a])
        bb = Builder()
        with _scope(bb):
            j = Var(scalar(i64))
            Hp = Var(H0.type)
            # the multi-index of flat position j (C order)
            idx: list[Atom] = []
            rest: Atom = j
            for k in reversed(range(t.ndim)):
                idx.insert(0, _b1(P.mod_p, rest, xs[k]))
                rest = _b1(P.floordiv_p, rest, xs[k])
            e = _b1(P.set_p, zero_v, *idx, _lit(1, t.dtype), spec=(P.Int(),) * t.ndim)
            (col,) = inline(hv, *ps, e)
            newH = _b1(P.set_p, Hp, *idx, col, spec=(P.Slice(),) * t.ndim + (P.Int(),) * t.ndim)
        # H[..., j] = H e_j, which is row j as well: the Hessian is symmetric
        body, extra = close_over(bb, [j, Hp], [newH], "hessian_col")
        (H,) = bind(P.loop_p, _lit(0, i64), total, _lit(1, i64), H0, *extra, body=body,
                    n_carry=1)
    return b.build(ps, [H], f"hessian_{func.name}")
