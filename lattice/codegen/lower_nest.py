"""The loop nest every map and reduction over an index space compiles to.

A *space* is the output shape of an elementwise op or a ``fused`` body (its input shapes
broadcast).  Each input becomes an :data:`Operand`: its value and its strides aligned right
against the space (0 on broadcast axes), so one index reads every operand.
:func:`emit_map_reduce` emits the nest: a value per position, stored (a map) or reduced over
some axes (sum, prod, max, min; a full reduction may be split across threads and its partials
combined in chunk order).  Callers: the maps of :mod:`.lower_elementwise`, the reductions of
:mod:`.lower_reduce`, the row passes of :mod:`.lower_products`.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Union

import llvmlite.ir as ir

from functools import partial

from ..ir import primitives as P
from ..ir.core import Func
from ..ir.types import Dim, DType, TensorType, f16
from .lltypes import I1, c64
from .lower_core import Lowerer, TensorVal, Value, combine as _combine, reduce_init, round_f16
from .parallel import MAX_CHUNKS, emit_parallel_for, stack_buffer

__all__ = ["Operand", "broadcast_operand", "space_sizes", "load_operand", "emit_map_reduce",
           "body_cost"]

#: what a position of a map costs in the pool's units (``work`` of :mod:`.parallel`: about one
#: addition): a transcendental function or a division by vector math costs about eight
#: (measured: ``exp`` of 16k f64 takes 13 times as long as their sum)
COSTLY = frozenset({
    P.exp_p, P.log_p, P.log1p_p, P.expm1_p, P.tanh_p, P.sin_p, P.cos_p, P.tan_p, P.erf_p,
    P.erfc_p, P.sigmoid_p, P.softplus_p, P.pow_p, P.logaddexp_p, P.logaddexp2_p, P.arcsin_p,
    P.arccos_p, P.arctan_p, P.arctan2_p, P.sinh_p, P.cosh_p, P.arcsinh_p, P.arccosh_p,
    P.arctanh_p, P.exp2_p, P.log2_p, P.log10_p, P.cbrt_p, P.gamma_p, P.lgamma_p, P.digamma_p,
    P.trigamma_p, P.hypot_p, P.fmod_p})
COSTLY_WEIGHT = 8


def body_cost(body: Func) -> int:
    """Operations one evaluation of ``body`` (a fused map's scalar body) costs, at least 1."""
    return max(1, sum(COSTLY_WEIGHT if e.prim in COSTLY else 1 for e in body.eqns))


Operand = tuple[Union[ir.Value, TensorVal], list[ir.Value]]  # value, strides aligned to space


def broadcast_operand(val: Value, t: TensorType, space: Sequence[Dim]) -> Operand:
    """Strides of ``val`` aligned right against ``space``: 0 for missing or literal-1 axes."""
    if not isinstance(val, TensorVal):
        return val, []
    lead = len(space) - val.ndim
    strides: list[ir.Value] = [c64(0)] * len(space)
    for j in range(val.ndim):
        if t.shape[j] != Dim.of(1) or space[lead + j] == Dim.of(1):
            strides[lead + j] = val.strides[j]
    return val, strides


def space_sizes(lw: Lowerer, space: Sequence[Dim],
                ins: Sequence[tuple[Value, TensorType]]) -> list[ir.Value]:
    """Runtime sizes of ``space``: from an input spanning the axis, else from the dims env."""
    sizes = []
    for k, d in enumerate(space):
        if d.is_const:
            sizes.append(c64(d.const))
            continue
        for val, t in ins:
            if isinstance(val, TensorVal):
                j = k - (len(space) - val.ndim)
                if j >= 0 and t.shape[j] == d:
                    sizes.append(val.shape[j])
                    break
        else:
            sizes.append(lw.dim_value(d))
    return sizes


def load_operand(lw: Lowerer, op: Operand, idx: list[ir.Value]) -> ir.Value:
    """The element of ``op`` at space index ``idx`` (a scalar operand is its own value)."""
    val, strides = op
    if not isinstance(val, TensorVal):
        return val
    view = TensorVal(val.dtype, val.data, [], strides)
    return lw.load(view, idx)



def emit_map_reduce(lw: Lowerer, sizes: list[ir.Value], operands: list[Operand],
                    elem: Callable[[list[ir.Value]], ir.Value], out_dtype: DType,
                    reduce: Optional[str] = None, axes: Sequence[int] = (),
                    dest: Optional[TensorVal] = None, cost: int = 1) -> Value:
    """One loop nest over ``sizes``: ``elem(loaded operands)`` per position, stored or reduced.

    ``cost``: operations per position (:func:`body_cost`), for the pool's threshold and chunk
    count: the nest is split into chunks of about the same work, whatever it computes.

    ``dest`` (maps only): write into this tensor of shape ``sizes`` instead of a new one (see
    ``_map_dest`` in :mod:`.lower_elementwise`).

    ``elem`` receives the scalars of ``operands`` at the position and returns a value of
    ``out_dtype`` (already converted for reductions).  With ``reduce`` the result keeps the
    non-reduced axes; a full reduction returns a scalar.  When the innermost space axis is
    reduced (or everything is), the accumulator is an SSA phi and the reduced axes are the
    inner loops, so a contiguous reduction vectorizes; otherwise the output buffer accumulates
    in space order, which vectorizes over the kept innermost axis.  An f16 full reduction
    accumulates in f32 and rounds once at the end.
    """
    rank = len(sizes)
    combine = partial(_combine, unsigned=out_dtype.is_unsigned)
    work = lw.product(sizes) if cost == 1 else lw.mul(lw.product(sizes), c64(cost))
    if reduce is not None and not axes:
        reduce = None  # a reduction over no axes is the identity (after the dtype conversion)

    def value_at(idx: list[ir.Value]) -> ir.Value:
        if not idx:
            return elem([load_operand(lw, op, idx) for op in operands])
        lw.in_nest += 1  # inside a loop nest that may vectorise (see vmath.fast_ops)
        try:
            return elem([load_operand(lw, op, idx) for op in operands])
        finally:
            lw.in_nest -= 1

    if reduce is None:
        if rank == 0:
            return value_at([])
        out = dest if dest is not None else lw.alloc(out_dtype, sizes)

        def body(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            lw.store(out, idx, value_at(idx))
            return []
        lw.split_nest(sizes, body, work=work)
        return out

    axes = tuple(axes)
    if reduce in ("max", "min") and axes:
        empty = ir.Constant(I1, 0)
        for a in axes:
            empty = lw.b.or_(empty, lw.b.icmp_signed("==", sizes[a], c64(0)))
        lw.check(lw.b.not_(empty), "ValueError",
                 f"reduce_{reduce} over an empty axis (a {reduce}imum of no elements)")
    kept = [k for k in range(rank) if k not in axes]
    init = reduce_init(reduce, out_dtype)
    if not kept or (rank - 1) in axes:
        kept_sizes = [sizes[k] for k in kept]
        red_sizes = [sizes[k] for k in axes]

        def merge(kidx: list[ir.Value], ridx: list[ir.Value]) -> list[ir.Value]:
            full: list[ir.Value] = [c64(0)] * rank
            for k, i in zip(kept, kidx):
                full[k] = i
            for k, i in zip(axes, ridx):
                full[k] = i
            return full

        def reduce_at(kidx: list[ir.Value]) -> ir.Value:
            (acc,) = lw.nest(red_sizes, [init],
                             lambda ridx, a: [combine(lw, reduce, a[0],
                                                       value_at(merge(kidx, ridx)))],
                             name="r")
            return acc

        if not kept:
            if lw.parallel and lw.may_reorder(out_dtype):
                r = _parallel_full_reduce(lw, reduce, init, red_sizes, axes, rank, value_at,
                                          out_dtype.is_unsigned, work)
            else:
                r = reduce_at([])
            return round_f16(lw, r) if out_dtype is f16 else r
        out = lw.alloc(out_dtype, kept_sizes)

        def kbody(kidx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            lw.store(out, kidx, reduce_at(kidx))
            return []
        lw.split_nest(kept_sizes, kbody, name="k", work=work)
        return out

    kept_sizes = [sizes[k] for k in kept]
    out = lw.alloc(out_dtype, kept_sizes)
    lw.nest(kept_sizes, [], lambda kidx, _: (lw.store(out, kidx, init), [])[1], name="z")

    def abody(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        kidx = [idx[k] for k in kept]
        v = value_at(idx)
        lw.store(out, kidx, combine(lw, reduce, lw.load(out, kidx), v))
        return []
    if 0 in kept:  # chunks of the outer (kept) axis write disjoint rows of out
        lw.split_nest(sizes, abody, work=work)
    else:
        lw.nest(sizes, [], abody)
    return out


def _parallel_full_reduce(lw: Lowerer, kind: str, init: ir.Value, red_sizes: list[ir.Value],
                          axes: Sequence[int], rank: int,
                          value_at: Callable[[list[ir.Value]], ir.Value],
                          unsigned: bool, work: ir.Value) -> ir.Value:
    """A full reduction split over its outermost axis: one partial per chunk, combined in chunk
    order (the chunk count depends on the sizes only: so does the result)."""
    combine = partial(_combine, unsigned=unsigned)
    partials = stack_buffer(lw, init.type, MAX_CHUNKS)

    def chunk(c: ir.Value, lo: ir.Value, hi: ir.Value) -> None:
        def full(ridx: list[ir.Value]) -> list[ir.Value]:
            idx: list[ir.Value] = [c64(0)] * rank
            for k, i in zip(axes, ridx):
                idx[k] = i
            return idx

        def outer(i: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
            i = lw.b.add(i, lo)
            return lw.nest(red_sizes[1:], acc, lambda ridx, a: [
                combine(lw, kind, a[0], value_at(full([i] + ridx)))], name="r")
        (acc,) = lw.for_range(lw.b.sub(hi, lo), [init], outer, name="rc")
        lw.b.store(acc, lw.b.gep(partials, [c], inbounds=True, source_etype=init.type))

    n_chunks = emit_parallel_for(lw, red_sizes[0], work, chunk)
    (acc,) = lw.for_range(n_chunks, [init], lambda c, a: [combine(
        lw, kind, a[0], lw.b.load(lw.b.gep(partials, [c], inbounds=True, source_etype=init.type),
                                  typ=init.type))], name="part")
    return acc
