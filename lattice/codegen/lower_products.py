"""Lowerings of matrix products and of the row passes built on them: ``matmul`` (a dot, a
register-blocked matrix @ vector of :mod:`.matvec`, or a register-tiled product of
:mod:`.gemm`, computing half of a symmetric ``X.T @ X`` under fastmath; stacks of matrices as
one tiled product per batch index), ``rowreduce`` (a
reduction of ``body(x @ w)`` inside matvec's row loop) and ``rowpass`` (``x.T @ body(x @ w)``
in one pass over the rows of ``x``).

Strict-math float sums keep the order of the plain loops (results bitwise those of one row at a
time); integers, and floats under fastmath, may be regrouped.
"""
from __future__ import annotations

from typing import Any, Optional

import llvmlite.ir as ir

from ..ir import primitives as P
from ..ir.core import Eqn, Func, Var
from ..ir.types import Dim
from .blascall import emit_gemm, emit_gemv
from .gemm import emit_matmul
from .lltypes import c64
from .lower_core import (Lowerer, TensorVal, Value, const_of, convert_scalar, defining_eqn,
                         lowering, mem_type)
from .lower_nest import broadcast_operand, load_operand
from .matvec import emit_matvec, emit_rowreduce
from .parallel import emit_parallel_for, par_chunks


@lowering(P.matmul_p)
def _lower_matmul(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    a, bm = ins
    assert isinstance(a, TensorVal) and isinstance(bm, TensorVal)
    d = e.outs[0].type.dtype
    b = lw.b
    zero = const_of(d, 0)

    def madd(acc: ir.Value, x: ir.Value, y: ir.Value) -> ir.Value:
        b = lw.b  # may be an outlined chunk's builder (parallel kernels)
        if d.is_float:
            return b.fadd(acc, b.fmul(x, y, flags=lw.fm), flags=lw.fm)
        return b.add(acc, b.mul(x, y))

    if a.ndim >= 3:  # a stack of matrix products, one per batch index (equal batch dims)
        nb = a.ndim - 2
        out = lw.alloc(d, a.shape[:-1] + bm.shape[-1:])

        def at(t: TensorVal, idx: list[ir.Value]) -> TensorVal:
            # the matrix at batch index idx: a view from its first element
            return TensorVal(t.dtype, lw.addr(t, idx + [c64(0)] * (t.ndim - nb)), t.shape[nb:],
                             t.strides[nb:])

        def one(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            emit_matmul(lw, at(a, idx), at(bm, idx), at(out, idx), madd, zero)
            return []
        lw.nest(a.shape[:nb], [], one, name="bmm")
        return [out]
    k = a.shape[-1]
    if a.ndim == 1 and bm.ndim == 1:  # dot
        (acc,) = lw.for_range(k, [zero], lambda j, c: [madd(c[0], lw.load(a, [j]),
                                                            lw.load(bm, [j]))], name="k")
        return [acc]
    # large float products call the BLAS (blascall.py) when their strides suit it
    if bm.ndim == 1:  # matrix @ vector: blocks of rows in registers (matvec.py)
        out = lw.alloc(d, [a.shape[0]])
        emit_gemv(lw, a, bm, out, lambda: emit_matvec(
            lw, a, bm, out, madd, zero, reassociate=bool(lw.fm) or not d.is_float))
        return [out]
    # vector @ matrix and matrix @ matrix: register-tiled (gemm.py)
    out = lw.alloc(d, ([a.shape[0]] if a.ndim == 2 else []) + [bm.shape[1]])
    gram = _is_gram(lw, e) if lw.fm else None

    def own() -> None:
        emit_matmul(lw, a, bm, out, madd, zero, symmetric=gram is not None)
    if a.ndim == 1:
        emit_gemv(lw, bm, a, out, own, vector_first=True)
    else:
        emit_gemm(lw, a, bm, out, own, gram=gram == "self")
    return [out]


def _is_gram(lw: Lowerer, e: Eqn) -> Optional[str]:
    """``"self"`` for ``X.T @ X``, ``"scaled"`` for ``X.T @ (X * c)`` or ``X.T @ (c * X)`` with
    ``c`` a column ``(k, 1)`` or a scalar, else None: a symmetric product (in exact
    arithmetic; under fastmath the lower triangle may be copied from the upper one, see
    gemm.py and blascall.py)."""
    scope = lw.scope
    if scope is None or len(e.inputs) != 2 or not all(isinstance(v, Var) for v in e.inputs):
        return None
    k = lw.eqn_index
    at, bv = e.inputs
    tr = defining_eqn(scope.func, k, at)  # type: ignore[arg-type]
    if tr is None or tr.prim is not P.transpose_p or tr.params["perm"] != (1, 0):
        return None
    x = tr.inputs[0]
    if bv is x:
        return "self"
    mul = defining_eqn(scope.func, k, bv)  # type: ignore[arg-type]
    if mul is None or mul.prim is not P.mul_p or x not in mul.inputs:
        return None
    c = mul.inputs[1] if mul.inputs[0] is x else mul.inputs[0]
    shape = c.type.shape
    if c is not x and (len(shape) == 0 or (len(shape) == 2 and shape[1] == Dim.of(1))):
        return "scaled"
    return None


@lowering(P.rowreduce_p)
def _lower_rowreduce(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    """``reduce(body(x @ w, *extras))`` inside the matrix-vector product's loop (matvec.py):
    the body and the reduction run in the product's chunks (in parallel kernels, on all
    threads), over each chunk's dot products while they are in cache.  Empty inputs fail with
    the messages of ``argmax``/``argmin`` and ``reduce_max``/``reduce_min``."""
    x, w, *extras = ins
    assert isinstance(x, TensorVal) and isinstance(w, TensorVal)
    body: Func = e.params["body"]
    kind: str = e.params["reduce"]
    d = x.dtype
    arg = kind.startswith("arg")
    body_dt = body.out_types[0].dtype
    out_dt = body_dt if arg else e.outs[0].type.dtype
    if kind != "sum":
        msg = (f"{kind} of an empty sequence" if arg else
               f"reduce_{kind} over an empty axis (a {kind}imum of no elements)")
        lw.check(lw.b.icmp_signed(">", x.shape[0], c64(0)), "ValueError", msg)
    space = (e.inputs[0].type.shape[0],)
    ops = [broadcast_operand(v, a.type, space) for v, a in zip(extras, e.inputs[2:])]

    def value(i: ir.Value, z: ir.Value) -> ir.Value:  # called in loops that may vectorise
        (r,), scope = lw.lower_body(body, [z] + [load_operand(lw, op, [i]) for op in ops])
        assert not scope.owned
        return convert_scalar(lw, r, body_dt, out_dt)  # type: ignore[arg-type]

    def madd(acc: ir.Value, p: ir.Value, q: ir.Value) -> ir.Value:
        b = lw.b  # may be an outlined chunk's builder (parallel kernels)
        if d.is_float:
            return b.fadd(acc, b.fmul(p, q, flags=lw.fm), flags=lw.fm)
        return b.add(acc, b.mul(p, q))

    identity = not body.eqns and body.outs[0] is body.params[0] and out_dt is d
    # the chunks' extremes and first positions combine to the plain loop's; partial sums
    # (and the sign of a zero extreme) may not: those stay serial in strict math
    with lw.held(), lw.serial(not arg and not lw.may_reorder(out_dt)):
        return [emit_rowreduce(lw, x, w, madd, const_of(d, 0),
                               reassociate=bool(lw.fm) or not d.is_float, kind=kind,
                               value=None if identity else value, vdtype=out_dt)]


_ROWPASS_BLOCK = 4  # rows per step of the row pass: g is updated once per block


@lowering(P.rowpass_p)
def _lower_rowpass(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    """One pass over the rows of x: ``z_i = x[i] @ w``, ``r_i = body(z_i, extras_i)``,
    ``g += r_i * x[i]`` while the row is in cache.  Chunks of rows (parallel kernels) each
    accumulate a partial g, summed in chunk order afterwards."""
    x, w, *extras = ins
    assert isinstance(x, TensorVal) and isinstance(w, TensorVal)
    body: Func = e.params["body"]
    d = x.dtype
    n, k = x.shape
    space = (e.inputs[0].type.shape[0],)
    ops = [broadcast_operand(v, a.type, space) for v, a in zip(extras, e.inputs[2:])]
    # partial gs summed afterwards round differently from the plain loop: not in strict math
    with lw.held(), lw.serial(not lw.may_reorder(d)):  # held: an error return frees them
        g = lw.hold(lw.alloc(d, [k]))
        z = lw.hold(lw.alloc(d, [n])) if e.params["keep_z"] else None
        n_chunks = par_chunks(lw, lw.mul(n, lw.mul(k, c64(2))), n)  # a dot and an axpy
        parts = lw.hold(lw.alloc(d, [n_chunks, k])) if lw.parallel else g
        _emit_rowpass(lw, x, w, ops, body, g, z, parts, n_chunks)
    return [g, z] if z is not None else [g]


def _emit_rowpass(lw: Lowerer, x: TensorVal, w: TensorVal, ops: list[Any], body: Func,
                  g: TensorVal, z: Optional[TensorVal], parts: TensorVal,
                  n_chunks: ir.Value) -> None:
    """The row pass of :func:`_lower_rowpass` into ``g`` (and ``z``), through the per-chunk
    partials ``parts`` (``g`` itself when not parallel), which it frees."""
    d = x.dtype
    n, k = x.shape
    zero = const_of(d, 0)
    work = lw.mul(n, lw.mul(k, c64(2)))

    def chunk(c: ir.Value, lo: ir.Value, hi: ir.Value) -> None:
        b = lw.b
        gp = TensorVal(d, b.gep(parts.data, [lw.mul(c, k)], inbounds=True,
                                source_etype=mem_type(d)), [k], [c64(1)])
        lw.for_range(k, [], lambda j, _: (lw.store(gp, [j], zero), [])[1], name="gz")

        def rows(first: ir.Value, u: int) -> None:
            """Rows first .. first+u-1: u dot products in one loop over x's columns, u body
            evaluations, one update of g (loaded and stored once per u rows)."""
            bb = lw.b
            idx = [bb.add(first, c64(t)) if t else first for t in range(u)]

            def dots(j: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                wj = lw.load(w, [j])
                return [lw.b.fadd(a, lw.b.fmul(lw.load(x, [i, j]), wj, flags=lw.fm), flags=lw.fm)
                        for a, i in zip(acc, idx)]
            zs = lw.for_range(k, [zero] * u, dots, name="dot")
            rs = []
            for i, zi in zip(idx, zs):
                if z is not None:
                    lw.store(z, [i], zi)
                lw.in_nest += 1  # several rows side by side: straight-line code to widen
                (ri,), scope = lw.lower_body(body, [zi] + [load_operand(lw, op, [i])
                                                           for op in ops])
                lw.in_nest -= 1
                assert not scope.owned
                rs.append(ri)

            def axpy(j: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                acc = lw.load(gp, [j])
                for i, ri in zip(idx, rs):
                    acc = lw.b.fadd(acc, lw.b.fmul(ri, lw.load(x, [i, j]), flags=lw.fm),
                                    flags=lw.fm)
                lw.store(gp, [j], acc)
                return []
            lw.for_range(k, [], axpy, name="axpy")

        m = lw.b.sub(hi, lo)
        blocks = lw.b.sdiv(m, c64(_ROWPASS_BLOCK))
        lw.for_range(blocks, [], lambda t, _: (rows(lw.b.add(lo, lw.b.mul(t, c64(
            _ROWPASS_BLOCK))), _ROWPASS_BLOCK), [])[1], name="blk")
        rest = lw.b.add(lo, lw.b.mul(blocks, c64(_ROWPASS_BLOCK)))
        lw.for_range(lw.b.sub(hi, rest), [], lambda t, _: (rows(lw.b.add(rest, t), 1), [])[1],
                     name="row")

    emit_parallel_for(lw, n, work, chunk, n_chunks=n_chunks)
    if parts is not g:
        def combine(j: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            (acc,) = lw.for_range(n_chunks, [zero], lambda c, a: [lw.b.fadd(
                a[0], lw.load(parts, [c, j]), flags=lw.fm)], name="part")
            lw.store(g, [j], acc)
            return []
        lw.for_range(k, [], combine, name="comb")
        lw.free(parts.buf)  # type: ignore[arg-type]
