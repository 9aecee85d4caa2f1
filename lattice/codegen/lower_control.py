"""Lowerings of structured control flow and of calls of sub-Funcs: ``loop`` (serial, or split
across threads for ``prange``), ``while``, ``cond``, and ``custom_vjp_call`` (its primal
function).

The IR's loops and branches become blocks and phis here: a carried tensor is a phi of its data
pointer and shape, always a fresh C-contiguous buffer the body owns; a cond hands an operand
that dies at it to the branch that runs (the ownership rules of :mod:`.lower_core`).  A
``prange`` loop that ``P.prange_plan`` accepts runs its iterations in chunks on the thread pool
(:mod:`.parallel`) when it counts up from ``i >= 0``, each chunk reducing its carried numbers
into a partial, the partials combined in chunk order.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Optional, Sequence

import llvmlite.ir as ir

from ..errors import CompileError
from ..ir import primitives as P
from ..ir.core import Eqn, Func
from ..ir.types import DType, f16
from .lltypes import I64, PTR, c64
from .lower_core import (Buf, Lowerer, TensorVal, Value, combine, lowering,
                         reduce_init, round_f16)
from .parallel import MAX_CHUNKS, emit_parallel_for, par_chunks, stack_buffer

__all__ = ["PRANGE_ITERATION_WORK"]


# ---- calls
@lowering(P.custom_vjp_call_p)
def _lower_custom_vjp_call(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    # the primal function; the custom rule only matters to automatic differentiation
    outs, scope = lw.lower_body(e.params["fun"], ins)
    return lw.finish_outputs(scope, outs)


@lowering(P.custom_lin_p)
def _lower_custom_lin(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    raise CompileError("custom_lin (a custom_vjp rule's linear map) cannot be evaluated "
                       "forwards; transpose it (grad/vjp) instead", lw.loc)


# ---- control flow
def _carry_phis(lw: Lowerer, vals: list[Value], pre: ir.Block) -> list[Any]:
    """Header phis for carried values: scalars, or (data, shape) of whole C tensors."""
    phis: list[Any] = []
    for v in vals:
        if isinstance(v, TensorVal):
            data = lw.b.phi(PTR)
            data.add_incoming(v.data, pre)
            shp = []
            for s in v.shape:
                ph = lw.b.phi(I64)
                ph.add_incoming(s, pre)
                shp.append(ph)
            phis.append((v.dtype, data, shp))
        else:
            ph = lw.b.phi(v.type)
            ph.add_incoming(v, pre)
            phis.append(ph)
    return phis


def _phi_values(lw: Lowerer, phis: list[Any]) -> list[Value]:
    out: list[Value] = []
    for ph in phis:
        if isinstance(ph, tuple):
            dtype, data, shp = ph
            out.append(TensorVal(dtype, data, list(shp), lw.c_strides(shp), Buf(data), True))
        else:
            out.append(ph)
    return out


def _phi_incoming(phis: list[Any], vals: list[Value], block: ir.Block) -> None:
    for ph, v in zip(phis, vals):
        if isinstance(ph, tuple):
            assert isinstance(v, TensorVal)
            ph[1].add_incoming(v.data, block)
            for p, s in zip(ph[2], v.shape):
                p.add_incoming(s, block)
        else:
            ph.add_incoming(v, block)


@lowering(P.loop_p)
def _lower_loop(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    body: Func = e.params["body"]
    n_carry: int = e.params["n_carry"]
    start, stop, step, *rest = ins
    b = lw.b
    lw.check(b.icmp_signed("!=", step, c64(0)), "ValueError", "range() arg 3 must not be zero")
    init = _take_carries(lw, rest[:n_carry], 3)
    consts = rest[n_carry:]
    pos_step = b.icmp_signed(">", step, c64(0))
    dist = b.select(pos_step, b.sub(stop, start), b.sub(start, stop))  # type: ignore[arg-type]
    astep = b.select(pos_step, step, b.sub(c64(0), step))  # type: ignore[arg-type]
    trips = b.select(b.icmp_signed(">", dist, c64(0)),
                     b.add(b.sdiv(b.sub(dist, c64(1)), astep), c64(1)), c64(0))
    if e.params.get("parallel") and lw.parallel:
        kinds, problem = P.prange_plan(body, n_carry)
        if problem is None:
            return _lower_prange(lw, body, kinds, start, step, trips, init, consts)
    return _serial_loop(lw, body, start, step, trips, init, consts)


def _take_carries(lw: Lowerer, vals: Sequence[Value], first_pos: int) -> list[Value]:
    """A loop's initial carried values (operands ``first_pos``, ...): a tensor is moved in
    when it dies here (owned and whole), else copied; the loop's body then owns it."""
    init: list[Value] = []
    with lw.held():  # until the body owns them, the loop does
        for pos, v in enumerate(vals):
            if isinstance(v, TensorVal):
                if lw.movable(first_pos + pos, need_whole=True):
                    lw.scope.release(v.buf)  # type: ignore[union-attr,arg-type]
                else:
                    v = lw.copy(v)
                lw.hold(v)
            init.append(v)
    return init


class _Header:
    """The header block of a serial loop: a phi per carried value, except for an array an
    enclosing prange loop's threads share, which is updated in place (no phi)."""

    def __init__(self, lw: Lowerer, init: list[Value], name: str) -> None:
        b = lw.b
        self.lw, self.init = lw, init
        self.pre = b.block
        self.block = lw.fn.append_basic_block(name + ".head")
        self.body = lw.fn.append_basic_block(name + ".body")
        self.exit = lw.fn.append_basic_block(name + ".exit")
        b.branch(self.block)
        b.position_at_end(self.block)
        self.shared = {n for n, v in enumerate(init)
                       if isinstance(v, TensorVal) and id(v.data) in lw.keep_on_error}
        self.phis = _carry_phis(lw, [v for n, v in enumerate(init) if n not in self.shared],
                                self.pre)

    def values(self) -> list[Value]:
        """The carried values in the loop (each call: owned by a new holder)."""
        it = iter(_phi_values(self.lw, self.phis))
        return [_shared_array(self.lw, v) if n in self.shared else next(it)  # type: ignore[arg-type]
                for n, v in enumerate(self.init)]

    def run_body(self, body: Func, lead: list[Value], consts: Sequence[Value],
                 latch: Optional[Callable[[], None]] = None) -> None:
        """Lower the body (at the end of the current block), then ``latch`` (in the block
        the body ends in), and branch back to the header."""
        lw = self.lw
        args = self.values()
        outs, scope = lw.lower_body(body, [*lead, *args, *consts])
        outs = lw.finish_outputs(scope, outs)
        for n in self.shared:
            _check_in_place(lw, outs[n], args[n])  # type: ignore[arg-type]
        _phi_incoming(self.phis, [o for n, o in enumerate(outs) if n not in self.shared],
                      lw.b.block)
        if latch is not None:
            latch()
        lw.b.branch(self.block)


def _serial_loop(lw: Lowerer, body: Func, start: ir.Value, step: ir.Value, trips: ir.Value,
                 init: list[Value], consts: Sequence[Value]) -> list[Value]:
    b = lw.b
    head = _Header(lw, init, "loop")
    k = b.phi(I64, name="trip")
    k.add_incoming(c64(0), head.pre)
    b.cbranch(b.icmp_signed("<", k, trips), head.body, head.exit)
    b.position_at_end(head.body)
    i = b.add(start, b.mul(k, step))  # type: ignore[arg-type]
    head.run_body(body, [i], consts, lambda: k.add_incoming(b.add(k, c64(1)), b.block))
    b.position_at_end(head.exit)
    return head.values()


@lowering(P.while_p)
def _lower_while(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    """The header evaluates the condition on the carried values (borrowed: it only reads
    them); the body owns them, as a ``loop`` body does, and returns the next ones."""
    n_carry: int = e.params["n_carry"]
    b = lw.b
    init = _take_carries(lw, ins[:n_carry], 0)
    consts = ins[n_carry:]
    head = _Header(lw, init, "while")
    current = head.values()
    with lw.held():  # an error in the condition frees the carried buffers it borrows
        borrowed: list[Value] = []
        for n, v in enumerate(current):
            if isinstance(v, TensorVal):
                if n not in head.shared:
                    lw.hold(v)
                v = replace(v, buf=None)
            borrowed.append(v)
        (go,), scope = lw.lower_body(e.params["cond_fn"], [*borrowed, *consts])
        lw.free_all(scope)
    b.cbranch(go, head.body, head.exit)  # type: ignore[arg-type]
    b.position_at_end(head.body)
    head.run_body(e.params["body_fn"], [], consts)
    b.position_at_end(head.exit)
    return current


def _shared_array(lw: Lowerer, v: TensorVal) -> TensorVal:
    """``v``'s memory as a whole array of a buffer of its own (for a scope to adopt): an array
    a prange loop's threads share, passed to each iteration and to the loops inside it."""
    return TensorVal(v.dtype, v.data, list(v.shape), lw.c_strides(v.shape), Buf(v.data), True)


def _check_in_place(lw: Lowerer, out: Value, arg: TensorVal) -> None:
    if not (isinstance(out, TensorVal) and out.data is arg.data):
        raise CompileError("internal: an array of a prange loop was not updated in place", lw.loc)


#: element operations one iteration of a ``prange`` loop is assumed to cost, for the pool's
#: chunking (an explicit ``prange`` asks for threads: 64 iterations already reach its threshold)
PRANGE_ITERATION_WORK = 2048


def _lower_prange(lw: Lowerer, body: Func, kinds: list[Optional[str]], start: ir.Value,
                  step: ir.Value, trips: ir.Value, init: list[Value],
                  consts: Sequence[Value]) -> list[Value]:
    """A ``prange`` loop whose iterations are independent (``P.prange_plan``): each carried
    array is written in place at row ``i`` only; each carried number (``kinds[k]`` its
    reduction) is reduced.  Counting up from ``i >= 0`` the iterations are split across the
    pool's threads: every iteration updates the one shared buffer per array, and each chunk
    reduces its iterations' numbers from the reduction's identity into a partial, the partials
    then combined with the initial value in chunk order (so a float sum is rounded as for
    this thread count, not as the serial loop).  Otherwise (rows could repeat through
    negative indices) the serial loop runs.  A failing iteration's error becomes the kernel's
    (which one, when several fail, may differ from the serial loop's first)."""
    b = lw.b
    up = b.and_(b.icmp_signed(">=", start, c64(0)), b.icmp_signed(">", step, c64(0)))
    nums = [k for k, kind in enumerate(kinds) if kind is not None]
    ends = []
    with b.if_else(up) as (par, ser):
        with par:
            work = b.mul(trips, c64(PRANGE_ITERATION_WORK))
            n_chunks = par_chunks(lw, work, trips)
            parts = {k: stack_buffer(lw, init[k].type, MAX_CHUNKS) for k in nums}  # type: ignore[union-attr]
            dts = {k: body.params[1 + k].type.dtype for k in nums}
            ident = {k: _prange_identity(kinds[k], dts[k]) for k in nums}  # type: ignore[arg-type]

            def chunk(c: ir.Value, lo: ir.Value, hi: ir.Value) -> None:
                def iteration(t: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                    i = lw.b.add(start, lw.b.mul(lw.b.add(lo, t), step))
                    args: list[Value] = []
                    for k, v in enumerate(init):
                        if kinds[k] is not None:
                            args.append(acc[nums.index(k)])
                        else:
                            args.append(_shared_array(lw, v))  # type: ignore[arg-type]
                    outs, scope = lw.lower_body(body, [i, *args, *consts])
                    for k, (a, o) in enumerate(zip(args, outs)):
                        if kinds[k] is None:
                            _check_in_place(lw, o, a)  # type: ignore[arg-type]
                            scope.release(o.buf)  # type: ignore[union-attr,arg-type]
                    lw.free_all(scope)
                    return [outs[k] for k in nums]  # type: ignore[misc]
                got = lw.for_range(lw.b.sub(hi, lo), [ident[k] for k in nums], iteration,
                                   name="prange")
                for k, v in zip(nums, got):
                    lw.b.store(v, lw.b.gep(parts[k], [c], inbounds=True, source_etype=v.type))
            # the shared arrays: error returns in the chunks leave them to the one in this
            # function, which frees them; inner loops carry them without phis (_serial_loop)
            shared = {id(v.data): v.data for v in init if isinstance(v, TensorVal)}
            lw.keep_on_error.update(shared)
            try:
                with lw.held():
                    for v in init:
                        if isinstance(v, TensorVal):
                            lw.hold(v)
                    emit_parallel_for(lw, trips, work, chunk, n_chunks=n_chunks)
            finally:
                for key in shared:
                    del lw.keep_on_error[key]

            def gather(c: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                return [_prange_combine(lw, kinds[k], a, lw.b.load(  # type: ignore[arg-type]
                    lw.b.gep(parts[k], [c], inbounds=True, source_etype=a.type), typ=a.type),
                    dts[k]) for k, a in zip(nums, acc)]
            reduced = lw.for_range(n_chunks, [init[k] for k in nums], gather, name="prc")  # type: ignore[misc]
            out = list(init)
            for k, v in zip(nums, reduced):
                out[k] = v
            ends.append((lw.b.block, out))
        with ser:
            serial = _serial_loop(lw, body, start, step, trips, init, consts)
            ends.append((lw.b.block, serial))
    (blk0, vals0), (blk1, vals1) = ends
    phis = _carry_phis(lw, vals0, blk0)
    _phi_incoming(phis, vals1, blk1)
    return _phi_values(lw, phis)


def _prange_identity(kind: str, d: DType) -> ir.Constant:
    """The identity of ``kind`` (sum, prod, max, min) in dtype ``d``."""
    return reduce_init(kind, d)


def _prange_combine(lw: Lowerer, kind: str, acc: ir.Value, v: ir.Value, d: DType) -> ir.Value:
    """Partials combined as the loop body would: rounded to f16 for an f16 carry."""
    r = combine(lw, kind, acc, v, unsigned=d.is_unsigned)
    return round_f16(lw, r) if d is f16 else r


@lowering(P.cond_p)
def _lower_cond(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    pred, *ops = ins
    b = lw.b
    # An owned, whole operand that dies at the cond is handed to the branch that runs (only one
    # does, so each branch may adopt the same memory): the branch can then store into it in place
    # or return it without a copy. Borrowed operands stay borrowed.
    moved = [pos for pos, v in enumerate(ops)
             if isinstance(v, TensorVal) and lw.movable(1 + pos, need_whole=True)]
    for pos in moved:
        lw.scope.release(ops[pos].buf)  # type: ignore[union-attr,arg-type]
    then_bb = lw.fn.append_basic_block("cond.then")
    else_bb = lw.fn.append_basic_block("cond.else")
    merge_bb = lw.fn.append_basic_block("cond.end")
    b.cbranch(pred, then_bb, else_bb)  # type: ignore[arg-type]
    results = []
    for bb, f in ((then_bb, e.params["true_fn"]), (else_bb, e.params["false_fn"])):
        b.position_at_end(bb)
        args = list(ops)
        for pos in moved:
            v = ops[pos]
            assert isinstance(v, TensorVal) and v.buf is not None
            args[pos] = replace(v, buf=Buf(v.buf.ptr))  # adopted by this branch's scope
        outs, scope = lw.lower_body(f, args)
        outs = lw.finish_outputs(scope, outs)
        results.append((b.block, outs))
        b.branch(merge_bb)
    b.position_at_end(merge_bb)
    (blk0, outs0), (blk1, outs1) = results
    phis = _carry_phis(lw, outs0, blk0)
    _phi_incoming(phis, outs1, blk1)
    merged = _phi_values(lw, phis)
    for k, (o0, o1) in enumerate(zip(outs0, outs1)):
        # an operand both branches updated in place or returned: the same buffer, with no phi
        # (so a prange loop's shared array stays recognisably itself)
        if isinstance(o0, TensorVal) and isinstance(o1, TensorVal) and o0.data is o1.data \
                and any(o0.data is ops[pos].data for pos in moved) \
                and all(s0 is s1 for s0, s1 in zip(o0.shape, o1.shape)):
            merged[k] = TensorVal(o0.dtype, o0.data, list(o0.shape), lw.c_strides(o0.shape),
                                  Buf(o0.data), True)
    return merged
