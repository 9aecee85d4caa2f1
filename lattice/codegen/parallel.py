"""Codegen for parallel kernels: loop chunks outlined into functions the thread pool runs.

:func:`emit_parallel_for` outlines a loop over ``[0, n)`` into a function ``F(ctx, chunk,
n_chunks) -> i32`` that runs rows ``[n*chunk/n_chunks, n*(chunk+1)/n_chunks)``, and calls
``lt_parallel_for`` of :mod:`.pool` with it.  The caller's code generator emits the chunk body
with the usual builders, referring to values of the enclosing function freely; afterwards every
such foreign value used inside ``F`` is *captured*: stored into a context array of 8-byte slots
on the caller's stack (a complex number takes one or two) and loaded at ``F``'s entry.  So any loop nest the lowering emits (the ``lower_*``
rooms, :mod:`.matvec`, :mod:`.gemm`) can be split without changing how it is written.  (A
value the capture misses would make LLVM's verifier reject the module: a mistake here fails
loudly at compile time.)
"""
from __future__ import annotations

from itertools import count
from typing import Any, Callable

import llvmlite.ir as ir

from .pool import MAX_CHUNKS

__all__ = ["emit_parallel_for", "par_chunks", "stack_buffer", "MAX_CHUNKS"]

from .lltypes import I32, I64, PTR, c64



_outlined = count()


def par_chunks(lw: Any, work: ir.Value, n: ir.Value) -> ir.Value:
    """The runtime chunk count for a loop of ``n`` outer iterations and ``work`` elements
    (1 unless ``lw.parallel``)."""
    if not getattr(lw, "parallel", False):
        return c64(1)
    return lw.b.call(lw.declare("lt_par_chunks", I64, [I64, I64]), [work, n])


def emit_parallel_for(lw: Any, n: ir.Value, work: ir.Value,
                      chunk_body: Callable[[ir.Value, ir.Value, ir.Value], None],
                      n_chunks: Any = None) -> ir.Value:
    """Emit a loop over ``[0, n)`` split into chunks run by the pool; returns ``n_chunks``.

    ``chunk_body(chunk, lo, hi)`` emits, with ``lw.b``, the code for rows ``[lo, hi)`` of
    chunk ``chunk``; it may use any value of the enclosing function (they are captured) and
    ``lw.check`` (a failing chunk's status becomes the kernel's).  Without ``lw.parallel`` the
    body is emitted inline once for ``[0, n)`` (chunk 0 of 1).  ``n_chunks``: a count from
    :func:`par_chunks` the caller already needed (e.g. to size per-chunk buffers).  When a
    chunk fails, the enclosing function frees what its scopes own and what the lowering holds
    (``lw.free_on_error``) before returning the chunk's status.
    """
    if not getattr(lw, "parallel", False):
        chunk_body(c64(0), c64(0), n)
        return c64(1)
    if n_chunks is None:
        n_chunks = par_chunks(lw, work, n)
    outer_fn, outer_b = lw.fn, lw.b
    module = lw.module
    F = ir.Function(module, ir.FunctionType(I32, [PTR, I64, I64]),
                    f"{outer_fn.name}.chunk{next(_outlined)}")
    F.linkage = "internal"
    ctx_arg, chunk, nch = F.args
    cap_bb = F.append_basic_block("captures")
    body_bb = F.append_basic_block("body")
    lw.fn, lw.b, lw.parallel = F, ir.IRBuilder(body_bb), False
    lw.in_chunk = getattr(lw, "in_chunk", 0) + 1  # (no library calls that run threads here)
    try:
        b = lw.b
        lo = b.sdiv(b.mul(n, chunk), nch)
        hi = b.sdiv(b.mul(n, b.add(chunk, c64(1))), nch)
        chunk_body(chunk, lo, hi)
        b.ret(ir.Constant(I32, 0))
    finally:
        lw.fn, lw.b, lw.parallel = outer_fn, outer_b, True
        lw.in_chunk -= 1
    captured, n_slots = _capture(F, cap_bb, body_bb, ctx_arg)
    with outer_b.goto_entry_block():
        ctx = outer_b.alloca(ir.ArrayType(I64, max(n_slots, 1)))
    ctx.type = PTR  # llvmlite types allocas as typed pointers; all pointers are opaque here
    for v, k in captured:
        outer_b.store(v, outer_b.gep(ctx, [c64(k)], inbounds=True, source_etype=I64))
    run = lw.declare("lt_parallel_for", I32, [PTR, PTR, I64])
    rc = outer_b.call(run, [_AsPtr(F), ctx, n_chunks])
    fail = outer_fn.append_basic_block("par.fail")
    cont = outer_fn.append_basic_block("par.ok")
    outer_b.cbranch(outer_b.icmp_signed("==", rc, ir.Constant(I32, 0)), cont, fail)
    outer_b.position_at_end(fail)
    lw.free_on_error()
    outer_b.ret(rc)
    outer_b.position_at_end(cont)
    return n_chunks


class _AsPtr:
    """A function as an opaque ``ptr`` operand (llvmlite would print a typed function pointer,
    which LLVM no longer parses)."""

    def __init__(self, fn: ir.Function) -> None:
        self.fn = fn
        self.type = PTR

    def get_reference(self) -> str:
        return self.fn.get_reference()


def stack_buffer(lw: Any, ty: ir.Type, count: int) -> ir.Value:
    """A ``count``-element stack array in the entry block of the current function (as ptr)."""
    with lw.b.goto_entry_block():
        buf = lw.b.alloca(ir.ArrayType(ty, count))
    buf.type = PTR
    return buf


def _slots(t: ir.Type) -> int:
    """8-byte context slots a captured value of type ``t`` takes (0: it cannot be captured).
    A complex number (a struct of two floats) takes one or two."""
    if isinstance(t, ir.IntType):
        return 1 if t.width <= 64 else 0
    if isinstance(t, (ir.FloatType, ir.DoubleType, ir.PointerType)):
        return 1
    if isinstance(t, ir.LiteralStructType) and not t.packed:
        sizes = [4 if isinstance(e, ir.FloatType) else 8 if isinstance(e, ir.DoubleType) else 0
                 for e in t.elements]
        if sizes and all(sizes) and len(set(sizes)) == 1:
            return -(-sum(sizes) // 8)
    return 0


def _capture(F: ir.Function, cap_bb: ir.Block, body_bb: ir.Block,
             ctx: ir.Value) -> tuple[list[tuple[ir.Value, int]], int]:
    """Replace every value of another function used in ``F`` by a load from the context
    (emitted in ``cap_bb``); returns the captured values with their first slot, and the number
    of slots."""
    b = ir.IRBuilder(cap_bb)
    loads: dict[int, ir.Value] = {}
    order: list[tuple[ir.Value, int]] = []
    used = 0

    def foreign(v: Any) -> bool:
        if isinstance(v, ir.Argument):
            return v.parent is not F
        if isinstance(v, ir.Instruction):
            return v.parent.parent is not F
        return False

    def local(v: Any) -> Any:
        nonlocal used
        if not foreign(v):
            return v
        got = loads.get(id(v))
        if got is None:
            width = _slots(v.type)
            if not width:
                raise TypeError(f"a chunk function cannot capture {v.type} (slots are 8 bytes): "
                                "compute the value inside the chunk or make it a constant")
            order.append((v, used))
            p = b.gep(ctx, [c64(used)], inbounds=True, source_etype=I64)
            used += width
            got = loads[id(v)] = b.load(p, typ=v.type)
        return got

    for blk in F.blocks:
        if blk is cap_bb:
            continue
        for ins in blk.instructions:
            if isinstance(ins, ir.PhiInstr):
                ins.incomings = [(local(v), bb) for v, bb in ins.incomings]
            if isinstance(ins, ir.GEPInstr):
                ins.pointer = local(ins.pointer)
                ins.indices = [local(i) for i in ins.indices]
            if isinstance(ins, (ir.ExtractValue, ir.InsertValue)):  # (printed from these)
                ins.aggregate = local(ins.aggregate)
            if isinstance(ins, ir.InsertValue):
                ins.value = local(ins.value)
            ops = [local(o) for o in ins.operands]
            if any(o is not p for o, p in zip(ops, ins.operands)):
                ins.operands = ops if isinstance(ins.operands, list) else tuple(ops)
            ins._clear_string_cache()
    b.branch(body_bb)
    return order, used
