"""Lowering of a lattice IR :class:`~lattice.ir.core.Func` to LLVM IR text (llvmlite.ir): the
entry point.

:func:`lower_func` -> :class:`Lowered` (IR text + :class:`~lattice.codegen.abi.Abi`): it builds
the kernel's typed body function and the ABI entry that unpacks the argument slots, and lowers
the Func's equations through the rule table.

The rules live in one room per concept, each registering into ``LOWERINGS`` of
:mod:`.lower_core` (values, buffer ownership, the tables and the
:class:`~.lower_core.Lowerer`) as it is imported; this module imports every room, so the table
is complete once it is loaded:

* :mod:`.lower_elementwise` -- scalar ops (``SCALAR_OPS``), elementwise and fused maps;
* :mod:`.lower_reduce` -- reductions and arg-reductions;
* :mod:`.lower_products` -- matmul, ``rowreduce``, ``rowpass`` (over :mod:`.matvec`, :mod:`.gemm`);
* :mod:`.lower_arrays` -- array construction, views, indexing, indexed stores;
* :mod:`.lower_control` -- loops, ``prange``, ``cond``, calls of sub-Funcs;
* :mod:`.lower_sort` -- sorting, searching, counting (``sort``, ``argsort``, ``searchsorted``,
  ``bincount``, ``unique``, ``histogram``).

Imports point one way: this module -> the rooms -> :mod:`.lower_nest` (loop nests) ->
:mod:`.lower_core`; besides, :mod:`.lower_elementwise` imports the region view of
:mod:`.lower_arrays`, and :mod:`.lower_products` imports :mod:`.matvec` and :mod:`.gemm`, which
take their helpers from :mod:`.lower_core` alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import count
from typing import Any, Mapping, Optional, Sequence

import llvmlite.ir as ir

from ..errors import CompileError
from ..ir.core import Func
from ..ir.types import DType, f16, f32, product_factors
# every room, imported for its registrations into LOWERINGS / SCALAR_OPS
from . import (lower_arrays, lower_control, lower_elementwise,  # noqa: F401
               lower_products, lower_reduce, lower_sort)
from .abi import Abi, OutSpec, ParamSpec, find_dim_sources
from .lltypes import F16, F32, F64, I1, I32, I64, PTR, c64
from .lower_core import Buf, Lowerer, TensorVal, Value, reg_type

__all__ = ["lower_func", "Lowered"]


@dataclass
class Lowered:
    """Result of lowering: LLVM IR text (unoptimized) and the calling convention."""

    ir_text: str
    abi: Abi


# --------------------------------------------------------------------------- the kernel
_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


def _sanitize(name: str) -> str:
    s = _NAME_RE.sub("_", name) or "kernel"
    return s


def lower_func(func: Func, *, layouts: Sequence[str], fastmath: bool, boundscheck: bool,
               name: str, parallel: Optional[bool] = False,
               size_params: Optional[Mapping[str, int]] = None,
               donate: Optional[Mapping[int, int]] = None) -> Lowered:
    """Lower a verified ``func`` to an LLVM module implementing the ABI of :mod:`.abi`.

    ``layouts`` has one entry per param (ignored for scalars) or one per tensor param.
    ``parallel`` splits the outer loops of loop nests across threads (:mod:`.parallel`); None
    (automatic) too, except float reductions under strict math (``Lowerer.may_reorder``).
    ``size_params`` maps a dim name to the index of the integer scalar parameter whose value
    it is (``n: lt.i64`` used as a size: ``lt.zeros(n)``).  A result whose size the arguments
    do not determine (a fresh dim: ``x[mask]``, ``np.unique``) is allocated by the kernel and
    handed to the caller (``OutSpec.alloc``).
    ``donate`` maps results to params of their type (a written argument's new contents to the
    argument): a C-contiguous donated param's memory is owned by the kernel, so stores update
    it in place (through loops and branches too), it is never freed, and the result is left in
    it (the caller passes the argument as that result's slot: ``Abi.donated``).  Donations of
    other layouts are dropped (the result is then a fresh array).
    Raises :class:`CompileError` for layouts that are not "C"/"A"."""
    size_params = dict(size_params or {})
    n_tensors = sum(1 for p in func.params if p.type.shape)
    if len(layouts) == n_tensors != len(func.params):  # one layout per tensor param only
        it = iter(layouts)
        layouts = tuple(next(it) if p.type.shape else "C" for p in func.params)
    if len(layouts) != len(func.params):
        raise CompileError(f"{len(layouts)} layouts given for {len(func.params)} parameters "
                           f"({n_tensors} tensors)")
    for k, lay in enumerate(layouts):
        if lay not in ("C", "A"):
            raise CompileError(f"layout of parameter {k} must be 'C' or 'A', got {lay!r}")
    for dn, pk in size_params.items():
        t = func.params[pk].type
        if t.shape or not t.dtype.is_int:
            raise CompileError(f"dimension {dn} is bound to parameter {pk} ({t}), which is not "
                               "an integer scalar")
    param_shapes = [p.type.shape if p.type.shape else None for p in func.params]
    dim_sources = find_dim_sources(param_shapes, size_params)
    bound = {n for n, _, _ in dim_sources}
    donated = {j: k for j, k in (donate or {}).items()
               if layouts[k] == "C" and func.params[k].type == func.out_types[j]}
    # Tensor results are allocated by the kernel, which hands its buffers over (no copy into
    # a caller-allocated array: the buffer the last equation wrote is the result), except a
    # donated one, left in its argument's memory.
    kernel_alloc = [bool(t.shape) and k not in donated for k, t in enumerate(func.out_types)]
    sym = "lt_" + _sanitize(name)
    module = ir.Module(name=sym)
    # inner function: typed params (noalias: inputs are never written, outputs are fresh)
    inner_args: list[ir.Type] = []
    arg_names: list[str] = []
    for k, p in enumerate(func.params):
        t = p.type
        if t.is_scalar:
            inner_args.append(reg_type(t.dtype))
            arg_names.append(f"p{k}")
        else:
            inner_args.append(PTR)
            arg_names.append(f"p{k}.data")
            for ax in range(t.ndim):
                inner_args.append(I64)
                arg_names.append(f"p{k}.n{ax}")
            if layouts[k] == "A":
                for ax in range(t.ndim):
                    inner_args.append(I64)
                    arg_names.append(f"p{k}.s{ax}")
    for k, t in enumerate(func.out_types):
        inner_args.append(PTR)
        arg_names.append(f"out{k}")
        if kernel_alloc[k]:  # the slots the kernel fills with its buffer and shape
            continue
        for ax in range(t.ndim):
            inner_args.append(I64)
            arg_names.append(f"out{k}.n{ax}")
    inner = ir.Function(module, ir.FunctionType(I32, inner_args), sym + ".body")
    inner.linkage = "internal"
    shared = {f"p{k}.data" for k in donated.values()} | {f"out{j}" for j in donated}
    for a, nm in zip(inner.args, arg_names):
        a.name = nm
        if a.type == PTR and nm not in shared:  # (a donated param is its result's slot)
            a.add_attribute("noalias")

    lw = Lowerer(module, inner, fastmath=fastmath, boundscheck=boundscheck, parallel=parallel)
    args = iter(inner.args)
    params: list[Value] = []
    for k, p in enumerate(func.params):
        t = p.type
        if t.is_scalar:
            params.append(next(args))
            continue
        data = next(args)
        shape: list[ir.Value] = [next(args) for _ in range(t.ndim)]
        strides = ([next(args) for _ in range(t.ndim)] if layouts[k] == "A"
                   else lw.c_strides(shape))
        buf = None
        if k in donated.values():
            buf = Buf(data)  # the kernel's to update; Lowerer.free never frees it
            lw.donated.append(data)
        params.append(TensorVal(t.dtype, data, shape, strides, buf, layouts[k] == "C"))
    # bind named dims, and check literal dims / repeated names against the slots
    for name_, pk, ax in dim_sources:
        if ax >= 0:
            lw.dims[name_] = params[pk].shape[ax]  # type: ignore[union-attr]
    _bind_size_params(lw, func, params, size_params)
    for k, p in enumerate(func.params):
        for ax, d in enumerate(p.type.shape):
            try:
                want = lw.dim_value(d)
            except CompileError:
                continue
            got = params[k].shape[ax]  # type: ignore[union-attr]
            if want is not got:
                lw.check(lw.b.icmp_signed("==", got, want), "ValueError",
                         f"argument {k} has the wrong size on axis {ax} (expected {d})")
    outs_slots = []
    for k, t in enumerate(func.out_types):
        data = next(args)
        shape = [] if kernel_alloc[k] else [next(args) for _ in range(t.ndim)]
        outs_slots.append((data, shape))

    results, scope = lw.lower_body(func, params)
    b = lw.b
    _check_declared_shapes(lw, scope, results, func.out_types, kernel_alloc)
    _hand_over(lw, scope, results, [s for s, a in zip(outs_slots, kernel_alloc) if a],
               [k for k, a in enumerate(kernel_alloc) if a])
    for k, (r, t) in enumerate(zip(results, func.out_types)):
        data, shape = outs_slots[k]
        if kernel_alloc[k]:
            continue
        if isinstance(r, TensorVal):
            ok = ir.Constant(I1, 1)
            for s, want in zip(r.shape, shape):
                ok = b.and_(ok, b.icmp_signed("==", s, want))
            lw.check(ok, "ValueError", f"result {k} has a different shape than allocated "
                     f"({t}): a dimension did not match its declared size")
            if k in donated:
                continue  # after the other results, which may read the param's memory
            dst = TensorVal(t.dtype, data, shape, lw.c_strides(shape), None, True)
            lw.copy_into(dst, r)
        elif t.dtype.is_complex:
            for k_part in range(2):
                part = _scalar_to_slot(lw, b.extract_value(r, k_part), t.dtype.part)
                b.store(part, b.gep(data, [c64(k_part)], inbounds=True, source_etype=I64))
        else:
            b.store(_scalar_to_slot(lw, r, t.dtype), data)
    _leave_donated(lw, results, params, donated)
    lw.free_all(scope)
    b.ret(ir.Constant(I32, 0))

    # the ABI entry: unpack the slots, call the typed body
    entry = ir.Function(module, ir.FunctionType(I32, [PTR]), sym)
    entry.args[0].name = "slots"
    entry.args[0].add_attribute("noalias")
    eb = ir.IRBuilder(entry.append_basic_block("entry"))
    slot = count()

    def slot_ptr() -> ir.Value:
        return eb.gep(entry.args[0], [c64(next(slot))], inbounds=True, source_etype=I64)

    call_args: list[ir.Value] = []
    for k, p in enumerate(func.params):
        t = p.type
        if t.is_scalar and t.dtype.is_complex:  # two slots, re and im
            re, im = (_scalar_from_slot(eb, eb.load(slot_ptr(), typ=I64), t.dtype.part)
                      for _ in range(2))
            z = eb.insert_value(ir.Constant(reg_type(t.dtype), ir.Undefined), re, 0)
            call_args.append(eb.insert_value(z, im, 1))
            continue
        if t.is_scalar:
            call_args.append(_scalar_from_slot(eb, eb.load(slot_ptr(), typ=I64), t.dtype))
            continue
        call_args.append(eb.load(slot_ptr(), typ=PTR))
        n_i64 = t.ndim * (2 if layouts[k] == "A" else 1)
        call_args.extend(eb.load(slot_ptr(), typ=I64) for _ in range(n_i64))
    for k, t in enumerate(func.out_types):
        if t.is_scalar or kernel_alloc[k]:
            call_args.append(slot_ptr())
            if t.is_scalar and t.dtype.is_complex:
                next(slot)  # the imaginary part's slot, written through the same pointer
            for _ in range(t.ndim):  # a kernel-allocated result: its shape after the pointer
                next(slot)
            continue
        call_args.append(eb.load(slot_ptr(), typ=PTR))
        call_args.extend(eb.load(slot_ptr(), typ=I64) for _ in range(t.ndim))
    eb.ret(eb.call(inner, call_args))

    abi = Abi(
        donated=tuple(sorted(donated.items())),
        symbol=sym,
        params=tuple(ParamSpec(p.type.dtype.name, p.type.ndim, layouts[k] if p.type.ndim else "C")
                     for k, p in enumerate(func.params)),
        outs=tuple(OutSpec(t.dtype.name, tuple(t.shape), kernel_alloc[k])
                   for k, t in enumerate(func.out_types)),
        dim_sources=dim_sources,
        errors=tuple(lw.errors),
    )
    return Lowered(str(module), abi)


def _bind_size_params(lw: Lowerer, func: Func, params: Sequence[Value],
                      size_params: Mapping[str, int]) -> None:
    """Bind each dim named by an integer scalar parameter to its value: it must not be
    negative (the dispatcher reports that first, naming the argument) and must equal the same
    name's size in an argument shape."""
    b = lw.b
    for dn, pk in size_params.items():
        v = params[pk]
        assert not isinstance(v, TensorVal)
        d = func.params[pk].type.dtype
        v = v if d.bits == 64 else (b.zext(v, I64) if d.is_unsigned else b.sext(v, I64))
        lw.check(b.icmp_signed(">=", v, c64(0)), "ValueError",
                 f"argument {pk} is used as the size {dn} and must not be negative")
        have = lw.dims.get(dn)
        if have is None:
            lw.dims[dn] = v
        else:
            lw.check(b.icmp_signed("==", have, v), "ValueError",
                     f"argument {pk} is the size {dn}, which an argument shape gives otherwise")


def _check_declared_shapes(lw: Lowerer, scope: Any, results: Sequence[Value],
                           types: Sequence[Any], which: Sequence[bool]) -> None:
    """Each kernel-allocated result has the sizes its type declares wherever the arguments
    determine them (a ValueError before any buffer is handed over; the body's buffers are
    freed on that error return)."""
    b = lw.b
    lw.live_scopes.append(scope)
    try:
        for k, (r, t) in enumerate(zip(results, types)):
            if not which[k]:
                continue
            assert isinstance(r, TensorVal)
            ok: Optional[ir.Value] = None
            for ax, d in enumerate(t.shape):
                try:
                    want = lw.dim_value(d)
                except CompileError:
                    continue  # a size computed inside the kernel: nothing to compare
                if want is r.shape[ax]:
                    continue
                if d.const < 0 or any(c < 0 for _, c in d.terms):
                    # may be negative (n-3 for the diagonal past the corner of a 2 x 2): the
                    # size such an operation has is 0, as NumPy's, and an out-of-range slice
                    # that made it so has raised already
                    want = b.select(b.icmp_signed("<", want, c64(0)), c64(0), want)
                eq = b.icmp_signed("==", r.shape[ax], want)
                ok = eq if ok is None else b.and_(ok, eq)
            if ok is not None:
                lw.check(ok, "ValueError", f"result {k} has a different shape than its "
                         f"type declares ({t}): a dimension did not match its declared size")
    finally:
        lw.live_scopes.pop()


def _hand_over(lw: Lowerer, scope: Any, results: Sequence[Value],
               slots: Sequence[tuple[ir.Value, list[ir.Value]]], which: Sequence[int]) -> None:
    """Hand the results the kernel allocates to the caller: each an owned, whole, C-contiguous
    buffer of its own (copied when it is borrowed, a view, or another result's), taken out of
    ``scope`` so that it is not freed, its pointer and shape written to its slots.  Every copy
    is made before any buffer leaves the scope, so a failing allocation frees them all."""
    taken: set[int] = set()
    b = lw.b
    chosen: list[TensorVal] = []
    lw.live_scopes.append(scope)  # a failing copy frees the body's buffers too
    try:
        with lw.held():
            for k in which:
                r = results[k]
                assert isinstance(r, TensorVal)
                if scope.owns(r.buf) and r.whole and r.buf.id not in taken:
                    taken.add(r.buf.id)
                    if lw.donated:
                        r = _copy_if_donated(lw, r)
                else:
                    r = lw.hold(lw.copy(r))
                chosen.append(r)
    finally:
        lw.live_scopes.pop()
    for r, (ptr, _) in zip(chosen, slots):
        if r.buf is not None and r.buf.id in taken:
            scope.owned.pop(r.buf.id, None)
        b.store(r.data, ptr)
        for ax, n in enumerate(r.shape):
            b.store(n, b.gep(ptr, [c64(1 + ax)], inbounds=True, source_etype=I64))


def _copy_if_donated(lw: Lowerer, r: TensorVal) -> TensorVal:
    """``r``, or a copy of it when (at run time: a loop's carried buffer is a phi) its memory
    is a written argument's, which the caller must not receive as a new array to free."""
    b = lw.b
    mine = b.icmp_unsigned("==", r.data, lw.donated[0])
    for d in lw.donated[1:]:
        mine = b.or_(mine, b.icmp_unsigned("==", r.data, d))
    before = b.block
    with b.if_then(mine, likely=False):
        aside = lw.copy(r)
        then = b.block
    data = b.phi(PTR)
    data.add_incoming(aside.data, then)
    data.add_incoming(r.data, before)
    return TensorVal(r.dtype, data, list(r.shape), list(r.strides), r.buf, True)


def _leave_donated(lw: Lowerer, results: Sequence[Value], params: Sequence[Value],
                   donated: Mapping[int, int]) -> None:
    """Leave each donated result in its param's memory: nothing to do when the stores were
    done there in place (checked at run time: a loop's carried buffer is a phi), else a copy.
    A result sitting in another donated param's memory (that buffer reused once its own
    contents died) is first copied aside, so that no copy overwrites a result still to be
    copied."""
    b = lw.b
    temps: list[tuple[Buf, Optional[ir.Value]]] = []  # (a copy, made at run time when)
    moves: list[tuple[TensorVal, TensorVal]] = []
    with lw.held():
        for j, k in sorted(donated.items()):
            r, p = results[j], params[k]
            assert isinstance(r, TensorVal) and isinstance(p, TensorVal)
            if not r.whole:  # a view: copied, so that the checks below compare buffers
                r = lw.hold(lw.copy(r))
                assert r.buf is not None
                temps.append((r.buf, None))
            others = [params[i].data for i in donated.values() if i != k]  # type: ignore[union-attr]
            if others:
                elsewhere = b.icmp_unsigned("==", r.data, others[0])
                for d in others[1:]:
                    elsewhere = b.or_(elsewhere, b.icmp_unsigned("==", r.data, d))
                before = b.block
                with b.if_then(elsewhere, likely=False):
                    aside = lw.copy(r)
                    then = b.block
                data = b.phi(PTR)
                data.add_incoming(aside.data, then)
                data.add_incoming(r.data, before)
                temps.append((Buf(data), elsewhere))
                r = TensorVal(r.dtype, data, list(r.shape), list(r.strides), None, True)
            moves.append((r, p))
        for r, p in moves:
            with b.if_then(b.icmp_unsigned("!=", r.data, p.data)):
                lw.copy_into(p, r)
        for buf, made in temps:
            if made is None:
                lw.free(buf)
            else:
                with b.if_then(made):
                    lw.free(buf)


def _scalar_from_slot(b: ir.IRBuilder, v: ir.Value, d: DType) -> ir.Value:
    if d.is_float:
        x = b.bitcast(v, F64)
        if d is f16:  # the f16 value (exact in f64) in its f32 register
            return b.fpext(b.fptrunc(x, F16), F32)
        return b.fptrunc(x, F32) if d is f32 else x
    if d.is_bool:
        return b.icmp_signed("!=", v, c64(0))
    return v if d.bits == 64 else b.trunc(v, reg_type(d))


def _scalar_to_slot(lw: Lowerer, v: ir.Value, d: DType) -> ir.Value:
    b = lw.b
    if d.is_float:
        return b.bitcast(b.fpext(v, F64) if d.bits < 64 else v, I64)
    if d.is_bool:
        return b.zext(v, I64)
    if d.bits == 64:
        return v
    return b.zext(v, I64) if d.is_unsigned else b.sext(v, I64)
