"""Lowerings of the reductions: ``reduce_sum``/``reduce_prod``/``reduce_max``/``reduce_min`` over some axes, and
``argmax``/``argmin`` (the first extreme position; a NaN counts as extreme), in loops that
vectorise (the nests of :mod:`.lower_nest`; arg-reductions in two passes, see ``_lower_arg``).
Reductions fused with a matrix-vector product (``rowreduce``) are in :mod:`.lower_products`.
Empty max/min/arg reductions fail with NumPy's messages.  The scans (``cumsum``, ``cumprod``,
``linrec``) are here too, in :func:`_lower_scan`.
"""
from __future__ import annotations

import llvmlite.ir as ir

from ..ir import primitives as P
from ..ir.core import Eqn
from ..ir.types import f16, i64
from .lltypes import c64
from .lower_core import (Lowerer, Lowering, TensorVal, Value, combine, const_of, convert_scalar,
                         is_float, lowering, round_f16)
from .lower_nest import emit_map_reduce


def _lower_reduce(kind: str) -> Lowering:
    def rule(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
        (x,) = ins
        src = e.inputs[0].type.dtype
        dst = e.outs[0].type.dtype
        if not isinstance(x, TensorVal):  # reduction of a scalar over no axes
            return [convert_scalar(lw, x, src, dst)]
        ops = [(x, list(x.strides))]
        return [emit_map_reduce(lw, list(x.shape), ops,
                                lambda xs: convert_scalar(lw, xs[0], src, dst), dst, kind,
                                tuple(e.params["axes"]))]
    return rule


lowering(P.reduce_sum_p)(_lower_reduce("sum"))
lowering(P.reduce_max_p)(_lower_reduce("max"))
lowering(P.reduce_min_p)(_lower_reduce("min"))
lowering(P.reduce_prod_p)(_lower_reduce("prod"))


def _lower_arg(is_max: bool) -> Lowering:
    """argmax/argmin in two vectorisable passes over the reduced elements.

    Pass 1 is the NaN-propagating max (min) reduction; pass 2 finds the first position whose
    value equals it (or is NaN when the extreme is NaN) as an integer min-reduction of
    ``match ? position : n``.  A single pass with a compare-and-select per element is a serial
    dependence chain that does not vectorise (about 25x slower on 10,000 floats).
    """
    name = "argmax" if is_max else "argmin"
    kind = "max" if is_max else "min"

    def first_match(lw: Lowerer, ext: ir.Value, v: ir.Value, pos: ir.Value,
                    n: ir.Value) -> ir.Value:
        b = lw.b
        if is_float(v):
            ext_nan = b.fcmp_unordered("uno", ext, ext)
            hit = b.or_(b.fcmp_ordered("==", v, ext),
                        b.and_(ext_nan, b.fcmp_unordered("uno", v, v)))
        else:
            hit = b.icmp_unsigned("==", v, ext)  # (equality: signedness does not matter)
        return b.select(hit, pos, n)

    def smin(lw: Lowerer, a: ir.Value, c: ir.Value) -> ir.Value:
        return lw.intrinsic("smin", a.type, [a, c])

    def rule(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
        (x,) = ins
        axis = e.params["axis"]
        b = lw.b
        if not isinstance(x, TensorVal):
            return [c64(0)]
        dt = e.inputs[0].type.dtype
        if axis is None or x.ndim == 1:  # a 1-D argmax with an axis is a scalar too
            n = lw.product(x.shape)
            lw.check(b.icmp_signed(">", n, c64(0)), "ValueError", f"{name} of an empty sequence")
            ext = emit_map_reduce(lw, list(x.shape), [(x, list(x.strides))], lambda xs: xs[0],
                                  dt, kind, tuple(range(x.ndim)))

            def body(idx: list[ir.Value], acc: list[ir.Value]) -> list[ir.Value]:
                flat = idx[0]
                for k in range(1, x.ndim):  # C-order position of idx
                    flat = b.add(b.mul(flat, x.shape[k]), idx[k])
                return [smin(lw, acc[0], first_match(lw, ext, lw.load(x, idx), flat, n))]
            (bi,) = lw.nest(x.shape, [n], body, name="a")
            return [bi]
        n = x.shape[axis]
        lw.check(b.icmp_signed(">", n, c64(0)), "ValueError", f"{name} of an empty sequence")
        kept = [k for k in range(x.ndim) if k != axis]
        out = lw.alloc(i64, [x.shape[k] for k in kept])

        def full(kidx: list[ir.Value], j: ir.Value) -> list[ir.Value]:
            idx = list(kidx)
            idx.insert(axis, j)
            return idx

        def kbody(kidx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            first = lw.load(x, full(kidx, c64(0)))
            (ext,) = lw.for_range(n, [first], lambda j, acc: [
                combine(lw, kind, acc[0], lw.load(x, full(kidx, j)), unsigned=dt.is_unsigned)],
                name="m")
            (bi,) = lw.for_range(n, [n], lambda j, acc: [
                smin(lw, acc[0], first_match(lw, ext, lw.load(x, full(kidx, j)), j, n))],
                name="a")
            lw.store(out, kidx, bi)
            return []
        lw.nest(out.shape, [], kbody, name="k")
        return [out]
    return rule


lowering(P.argmax_p)(_lower_arg(True))
lowering(P.argmin_p)(_lower_arg(False))


def _lower_scan(kind: str) -> Lowering:
    """A scan along one axis.  Along the last axis each lane is one serial loop carrying the
    running value in a register.  Along another axis it is one C-ordered nest over the
    result in which each element combines with the previous one along the axis (read back
    from the result): the innermost loop then runs over independent lanes and vectorises.
    The first element of each lane is peeled off (a loop of at most one trip), so no
    position outside the lane is ever read."""
    def rule(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
        axis, reverse = e.params["axis"], e.params["reverse"]
        x = ins[-1]
        a = ins[0] if kind == "linrec" else None
        assert isinstance(x, TensorVal)
        b = lw.b
        n = x.shape[axis]
        floating = e.outs[0].type.dtype.is_float
        out = lw.alloc(x.dtype, list(x.shape))

        def at(idx: list[ir.Value], pos: ir.Value) -> list[ir.Value]:
            return idx[:axis] + [pos] + idx[axis + 1:]

        def positions(j: ir.Value) -> tuple[ir.Value, ir.Value]:
            """(the position step j writes, the one before it in scan order)."""
            if reverse:  # position n-2-j, after the one at n-1-j
                p = b.sub(b.sub(n, c64(2)), j)
                return p, b.add(p, c64(1))
            return b.add(j, c64(1)), j

        def step(idx: list[ir.Value], prev: ir.Value, p: ir.Value, q: ir.Value) -> ir.Value:
            v = lw.load(x, at(idx, p))
            if kind == "linrec":  # the coefficient of the later position of the two
                assert isinstance(a, TensorVal)
                c = lw.load(a, at(idx, q if reverse else p))
                prev = b.fmul(c, prev, flags=lw.fm) if floating else b.mul(c, prev)
            elif kind == "cumprod":
                return b.fmul(prev, v, flags=lw.fm) if floating else b.mul(prev, v)
            return b.fadd(prev, v, flags=lw.fm) if floating else b.add(prev, v)

        first = c64(0) if not reverse else b.sub(n, c64(1))
        peel = lw.intrinsic("smin", n.type, [n, c64(1)])
        rest = b.sub(n, c64(1))  # (-1 for an empty axis: the loop does not run)
        if axis == x.ndim - 1:
            zero = const_of(e.outs[0].type.dtype, 0)

            def lane(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
                def head(j: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                    v = lw.load(x, idx + [first])
                    lw.store(out, idx + [first], v)
                    return [v]
                (acc,) = lw.for_range(peel, [zero], head, name="s0")

                def body(j: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                    p, q = positions(j)
                    r = step(idx, acc[0], p, q)
                    lw.store(out, idx + [p], r)
                    return [round_f16(lw, r) if x.dtype is f16 else r]
                lw.for_range(rest, [acc], body, name="s")
                return []
            lw.nest(list(x.shape[:-1]), [], lane, name="l")
            return [out]

        sizes = list(x.shape)
        sizes[axis] = peel

        def copy_first(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            lw.store(out, at(idx, first), lw.load(x, at(idx, first)))
            return []
        lw.nest(sizes, [], copy_first, name="s0")

        def outer_step(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            p, q = positions(idx[axis])
            lw.store(out, at(idx, p), step(idx, lw.load(out, at(idx, q)), p, q))
            return []
        sizes[axis] = rest
        lw.nest(sizes, [], outer_step, name="s")
        return [out]
    return rule


lowering(P.cumsum_p)(_lower_scan("cumsum"))
lowering(P.cumprod_p)(_lower_scan("cumprod"))
lowering(P.linrec_p)(_lower_scan("linrec"))
