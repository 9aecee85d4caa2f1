"""Lowering of a lattice IR :class:`~lattice.ir.core.Func` to LLVM IR text (llvmlite.ir).

Entry point: :func:`lower_func` -> :class:`Lowered` (IR text + :class:`~lattice.codegen.abi.Abi`).
Values, buffer ownership, the rule tables and the :class:`~.lower_core.Lowerer` live in
:mod:`.lower_core`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import count
from typing import Any, Optional, Sequence

import llvmlite.ir as ir

from ..errors import CompileError
from ..ir import primitives as P
from ..ir.core import Eqn, Func, Var
from ..ir.types import Dim, DType, f32, i64
from . import lower_arrays, lower_control, lower_elementwise  # noqa: F401  (rules register)
from .abi import Abi, OutSpec, ParamSpec, find_dim_sources
from .lltypes import F32, F64, I1, I32, I64, PTR, c64
from .lower_core import (LOWERINGS, Lowerer, Lowering, TensorVal, Value, combine, const_of,
                         convert_scalar, defining_eqn, is_float, lowering, mem_type, reg_type)
from .lower_nest import broadcast_operand, emit_map_reduce, load_operand

__all__ = ["lower_func", "Lowered"]


@dataclass
class Lowered:
    """Result of lowering: LLVM IR text (unoptimized) and the calling convention."""

    ir_text: str
    abi: Abi


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


LOWERINGS[P.reduce_sum_p] = _lower_reduce("sum")
LOWERINGS[P.reduce_max_p] = _lower_reduce("max")
LOWERINGS[P.reduce_min_p] = _lower_reduce("min")


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
            hit = b.icmp_signed("==", v, ext)
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
                combine(lw, kind, acc[0], lw.load(x, full(kidx, j)))], name="m")
            (bi,) = lw.for_range(n, [n], lambda j, acc: [
                smin(lw, acc[0], first_match(lw, ext, lw.load(x, full(kidx, j)), j, n))],
                name="a")
            lw.store(out, kidx, bi)
            return []
        lw.nest(out.shape, [], kbody, name="k")
        return [out]
    return rule


LOWERINGS[P.argmax_p] = _lower_arg(True)
LOWERINGS[P.argmin_p] = _lower_arg(False)


@lowering(P.rowreduce_p)
def _lower_rowreduce(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    """``reduce(body(x @ w, *extras))`` inside the matrix-vector product's loop (matvec.py):
    the body and the reduction run in the product's chunks (in parallel kernels, on all
    threads), over each chunk's dot products while they are in cache.  Empty inputs fail with
    the messages of ``argmax``/``argmin`` and ``reduce_max``/``reduce_min``."""
    from .matvec import emit_rowreduce
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
    with lw.held():
        return [emit_rowreduce(lw, x, w, madd, const_of(d, 0),
                               reassociate=bool(lw.fm) or not d.is_float, kind=kind,
                               value=None if identity else value, vdtype=out_dt)]


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

    k = a.shape[-1]
    if a.ndim == 1 and bm.ndim == 1:  # dot
        (acc,) = lw.for_range(k, [zero], lambda j, c: [madd(c[0], lw.load(a, [j]),
                                                            lw.load(bm, [j]))], name="k")
        return [acc]
    if bm.ndim == 1:  # matrix @ vector: blocks of rows in registers (matvec.py)
        from .matvec import emit_matvec
        out = lw.alloc(d, [a.shape[0]])
        emit_matvec(lw, a, bm, out, madd, zero, reassociate=bool(lw.fm) or not d.is_float)
        return [out]
    # vector @ matrix and matrix @ matrix: register-tiled (gemm.py)
    from .gemm import emit_matmul
    out = lw.alloc(d, ([a.shape[0]] if a.ndim == 2 else []) + [bm.shape[1]])
    emit_matmul(lw, a, bm, out, madd, zero, symmetric=bool(lw.fm) and _is_gram(lw, e))
    return [out]


def _is_gram(lw: Lowerer, e: Eqn) -> bool:
    """``X.T @ X``, ``X.T @ (X * c)`` or ``X.T @ (c * X)`` with ``c`` a column ``(k, 1)`` or a
    scalar: a symmetric product (in exact arithmetic; under fastmath the lower triangle may
    be copied from the upper one, see gemm.py)."""
    scope = lw.scope
    if scope is None or len(e.inputs) != 2 or not all(isinstance(v, Var) for v in e.inputs):
        return False
    k = lw.eqn_index
    at, bv = e.inputs
    tr = defining_eqn(scope.func, k, at)  # type: ignore[arg-type]
    if tr is None or tr.prim is not P.transpose_p or tr.params["perm"] != (1, 0):
        return False
    x = tr.inputs[0]
    if bv is x:
        return True
    mul = defining_eqn(scope.func, k, bv)  # type: ignore[arg-type]
    if mul is None or mul.prim is not P.mul_p or x not in mul.inputs:
        return False
    c = mul.inputs[1] if mul.inputs[0] is x else mul.inputs[0]
    shape = c.type.shape
    return c is not x and (len(shape) == 0 or (len(shape) == 2 and shape[1] == Dim.of(1)))


_ROWPASS_BLOCK = 4  # rows per step of the row pass: g is updated once per block


@lowering(P.rowpass_p)
def _lower_rowpass(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    """One pass over the rows of x: ``z_i = x[i] @ w``, ``r_i = body(z_i, extras_i)``,
    ``g += r_i * x[i]`` while the row is in cache.  Chunks of rows (parallel kernels) each
    accumulate a partial g, summed in chunk order afterwards."""
    from .parallel import par_chunks
    x, w, *extras = ins
    assert isinstance(x, TensorVal) and isinstance(w, TensorVal)
    body: Func = e.params["body"]
    d = x.dtype
    n, k = x.shape
    space = (e.inputs[0].type.shape[0],)
    ops = [broadcast_operand(v, a.type, space) for v, a in zip(extras, e.inputs[2:])]
    with lw.held():  # until they are outputs, an error return frees them
        g = lw.hold(lw.alloc(d, [k]))
        z = lw.hold(lw.alloc(d, [n])) if e.params["keep_z"] else None
        n_chunks = par_chunks(lw, lw.mul(n, k), n)
        parts = lw.hold(lw.alloc(d, [n_chunks, k])) if lw.parallel else g
        _emit_rowpass(lw, x, w, ops, body, g, z, parts, n_chunks)
    return [g, z] if z is not None else [g]


def _emit_rowpass(lw: Lowerer, x: TensorVal, w: TensorVal, ops: list[Any], body: Func,
                  g: TensorVal, z: Optional[TensorVal], parts: TensorVal,
                  n_chunks: ir.Value) -> None:
    """The row pass of :func:`_lower_rowpass` into ``g`` (and ``z``), through the per-chunk
    partials ``parts`` (``g`` itself when not parallel), which it frees."""
    from .parallel import emit_parallel_for
    d = x.dtype
    n, k = x.shape
    zero = const_of(d, 0)
    work = lw.mul(n, k)

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


# --------------------------------------------------------------------------- the kernel
_NAME_RE = re.compile(r"[^A-Za-z0-9_]")


def _sanitize(name: str) -> str:
    s = _NAME_RE.sub("_", name) or "kernel"
    return s


def lower_func(func: Func, *, layouts: Sequence[str], fastmath: bool, boundscheck: bool,
               name: str, parallel: bool = False) -> Lowered:
    """Lower a verified ``func`` to an LLVM module implementing the ABI of :mod:`.abi`.

    ``layouts`` has one entry per param (ignored for scalars) or one per tensor param.
    ``parallel`` splits the outer loops of loop nests across threads (:mod:`.parallel`).
    Raises :class:`CompileError` for results whose size depends on values computed inside the
    kernel (fresh dims in an output type) and for layouts that are not "C"/"A"."""
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
    for k, t in enumerate(func.out_types):
        if any(d.is_fresh for d in t.shape):
            raise CompileError(
                f"the size of result {k} ({t}) depends on values computed inside the kernel; "
                "lattice allocates results before the kernel runs, so their sizes must follow "
                "from the argument shapes. Return a fixed-size array (e.g. pad to a bound and "
                "return the count separately) or compute the size outside the kernel.")
    param_shapes = [p.type.shape if p.type.shape else None for p in func.params]
    dim_sources = find_dim_sources(param_shapes)
    bound = {n for n, _, _ in dim_sources}
    for k, t in enumerate(func.out_types):
        for d in t.shape:
            missing = [n for n in d.names if n not in bound]
            if missing:
                raise CompileError(
                    f"the size of result {k} ({t}) uses dimension {missing[0]}, which no "
                    "argument shape defines")

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
        for ax in range(t.ndim):
            inner_args.append(I64)
            arg_names.append(f"out{k}.n{ax}")
    inner = ir.Function(module, ir.FunctionType(I32, inner_args), sym + ".body")
    inner.linkage = "internal"
    for a, nm in zip(inner.args, arg_names):
        a.name = nm
        if a.type == PTR:
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
        params.append(TensorVal(t.dtype, data, shape, strides, None, layouts[k] == "C"))
    # bind named dims, and check literal dims / repeated names against the slots
    for name_, pk, ax in dim_sources:
        lw.dims[name_] = params[pk].shape[ax]  # type: ignore[union-attr]
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
        shape = [next(args) for _ in range(t.ndim)]
        outs_slots.append((data, shape))

    results, scope = lw.lower_body(func, params)
    b = lw.b
    for k, (r, t) in enumerate(zip(results, func.out_types)):
        data, shape = outs_slots[k]
        if isinstance(r, TensorVal):
            ok = ir.Constant(I1, 1)
            for s, want in zip(r.shape, shape):
                ok = b.and_(ok, b.icmp_signed("==", s, want))
            lw.check(ok, "ValueError", f"result {k} has a different shape than allocated "
                     f"({t}): a dimension did not match its declared size")
            dst = TensorVal(t.dtype, data, shape, lw.c_strides(shape), None, True)
            lw.copy_into(dst, r)
        else:
            b.store(_scalar_to_slot(lw, r, t.dtype), data)
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
        if t.is_scalar:
            call_args.append(_scalar_from_slot(eb, eb.load(slot_ptr(), typ=I64), t.dtype))
            continue
        call_args.append(eb.load(slot_ptr(), typ=PTR))
        n_i64 = t.ndim * (2 if layouts[k] == "A" else 1)
        call_args.extend(eb.load(slot_ptr(), typ=I64) for _ in range(n_i64))
    for k, t in enumerate(func.out_types):
        if t.is_scalar:
            call_args.append(slot_ptr())
            continue
        call_args.append(eb.load(slot_ptr(), typ=PTR))
        call_args.extend(eb.load(slot_ptr(), typ=I64) for _ in range(t.ndim))
    eb.ret(eb.call(inner, call_args))

    abi = Abi(
        symbol=sym,
        params=tuple(ParamSpec(p.type.dtype.name, p.type.ndim, layouts[k] if p.type.ndim else "C")
                     for k, p in enumerate(func.params)),
        outs=tuple(OutSpec(t.dtype.name, tuple(t.shape)) for t in func.out_types),
        dim_sources=dim_sources,
        errors=tuple(lw.errors),
    )
    return Lowered(str(module), abi)


def _scalar_from_slot(b: ir.IRBuilder, v: ir.Value, d: DType) -> ir.Value:
    if d.is_float:
        x = b.bitcast(v, F64)
        return b.fptrunc(x, F32) if d is f32 else x
    if d.is_bool:
        return b.icmp_signed("!=", v, c64(0))
    return v if d is i64 else b.trunc(v, reg_type(d))


def _scalar_to_slot(lw: Lowerer, v: ir.Value, d: DType) -> ir.Value:
    b = lw.b
    if d.is_float:
        return b.bitcast(b.fpext(v, F64) if d is f32 else v, I64)
    if d.is_bool:
        return b.zext(v, I64)
    return v if d is i64 else b.sext(v, I64)
