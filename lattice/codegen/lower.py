"""Lowering of a lattice IR :class:`~lattice.ir.core.Func` to LLVM IR text (llvmlite.ir).

Entry point: :func:`lower_func` -> :class:`Lowered` (IR text + :class:`~lattice.codegen.abi.Abi`).
Values, buffer ownership, the rule tables and the :class:`~.lower_core.Lowerer` live in
:mod:`.lower_core`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, replace
from itertools import count
from typing import Any, Callable, Optional, Sequence, Union

import llvmlite.ir as ir

from ..errors import CompileError
from ..ir import primitives as P
from ..ir.core import Eqn, Func, Lit, Var
from ..ir.types import Dim, DType, TensorType, f32, i64
from .abi import Abi, OutSpec, ParamSpec, find_dim_sources
from .lltypes import F32, F64, I1, I32, I64, PTR, c64
from . import lower_control  # noqa: F401  (registers its lowerings)
from .lower_arrays import index_view
from .lower_core import (LOWERINGS, SCALAR_OPS, Lowerer, Lowering, TensorVal, Value,
                         combine, const_of, convert_scalar, defining_eqn, fconst, is_float,
                         lowering, mem_type, reduce_init, reg_type)

__all__ = ["lower_func", "Lowered"]


@dataclass
class Lowered:
    """Result of lowering: LLVM IR text (unoptimized) and the calling convention."""

    ir_text: str
    abi: Abi


# --------------------------------------------------------------------------- scalar ops
def _arith(fop: Optional[str], iop: Optional[str]):
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        if a[0].type in (F32, F64):
            return getattr(lw.b, fop)(a[0], a[1], flags=lw.fm)  # type: ignore[arg-type]
        return getattr(lw.b, iop)(a[0], a[1])  # type: ignore[arg-type]
    return fn


SCALAR_OPS.update({
    P.add_p: _arith("fadd", "add"),
    P.sub_p: _arith("fsub", "sub"),
    P.mul_p: _arith("fmul", "mul"),
    P.div_p: _arith("fdiv", None),
    P.and_p: _arith(None, "and_"),
    P.or_p: _arith(None, "or_"),
})




def _neg(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    if is_float(a[0]):
        return lw.b.fneg(a[0], flags=lw.fm)
    return lw.b.sub(ir.Constant(a[0].type, 0), a[0])


def _abs(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    if is_float(a[0]):
        return lw.intrinsic("fabs", a[0].type, a, flags=lw.fm)
    f = lw.declare(f"llvm.abs.i{a[0].type.width}", a[0].type, [a[0].type, I1])
    return lw.b.call(f, [a[0], ir.Constant(I1, 0)])  # INT_MIN wraps, like NumPy


def _intrinsic1(name: str):
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        return lw.intrinsic(name, a[0].type, a, flags=lw.fm)
    return fn


def _libm1(name: str):
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        return lw.libm(name, a[0].type, a)
    return fn


def _sigmoid(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    # same formula as the reference: e = exp(-|x|); x>=0 ? 1/(1+e) : e/(1+e)
    b, x, fm = lw.b, a[0], lw.fm
    ex = lw.intrinsic("exp", x.type, [b.fneg(lw.intrinsic("fabs", x.type, [x]))], flags=fm)
    den = b.fadd(fconst(x, 1.0), ex, flags=fm)
    pos = b.fdiv(fconst(x, 1.0), den, flags=fm)
    neg = b.fdiv(ex, den, flags=fm)
    return b.select(b.fcmp_ordered(">=", x, fconst(x, 0.0)), pos, neg)


def _softplus(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    # max(x, 0) + log1p(exp(-|x|)), NaN-propagating max as np.maximum
    b, x, fm = lw.b, a[0], lw.fm
    ex = lw.intrinsic("exp", x.type, [b.fneg(lw.intrinsic("fabs", x.type, [x]))], flags=fm)
    m = lw.intrinsic("maximum", x.type, [x, fconst(x, 0.0)])
    return b.fadd(m, lw.libm("log1p", x.type, [ex]), flags=fm)


def _logaddexp(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    # NumPy's npy_logaddexp: x==y -> x+ln2; else max + log1p(exp(-|x-y|)); NaN -> x-y
    b, (x, y), fm = lw.b, a, lw.fm
    d = b.fsub(x, y, flags=fm)
    gt = b.fcmp_ordered(">", d, fconst(x, 0.0))
    big = b.select(gt, x, y)
    negabs = b.select(gt, b.fneg(d), d)
    ex = lw.intrinsic("exp", x.type, [negabs], flags=fm)
    r = b.fadd(big, lw.libm("log1p", x.type, [ex]), flags=fm)
    r = b.select(b.fcmp_unordered("uno", d, d), d, r)
    same = b.fadd(x, fconst(x, 0.6931471805599453), flags=fm)
    return b.select(b.fcmp_ordered("==", x, y), same, r)


def _minmax(fname: str, iname: str):
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        if is_float(a[0]):
            return lw.intrinsic(fname, a[0].type, a, flags=lw.fm)  # NaN-propagating
        return lw.intrinsic(iname, a[0].type, a)
    return fn


def _float_divmod(lw: Lowerer, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """NumPy's npy_divmod for floats: (floor quotient, Python-style remainder)."""
    b = lw.b
    zero = fconst(x, 0.0)
    mod = b.frem(x, y)
    div = b.fdiv(b.fsub(x, mod), y)
    mod_nz = b.fcmp_unordered("!=", mod, zero)  # true for NaN too (C truthiness)
    sign_differs = b.xor(b.fcmp_ordered("<", y, zero), b.fcmp_ordered("<", mod, zero))
    adjust = b.and_(mod_nz, sign_differs)
    mod = b.select(adjust, b.fadd(mod, y), mod)
    div = b.select(adjust, b.fsub(div, fconst(x, 1.0)), div)
    copysign_b = lw.intrinsic("copysign", x.type, [zero, y])
    mod = b.select(mod_nz, mod, copysign_b)
    fl = lw.intrinsic("floor", x.type, [div])
    fl = b.select(b.fcmp_ordered(">", b.fsub(div, fl), fconst(x, 0.5)),
                  b.fadd(fl, fconst(x, 1.0)), fl)
    q_zero = lw.intrinsic("copysign", x.type, [zero, b.fdiv(x, y)])
    div_nz = b.fcmp_unordered("!=", div, zero)
    fl = b.select(div_nz, fl, q_zero)
    y_zero = b.fcmp_ordered("==", y, zero)
    # b == 0: quotient a/b, remainder fmod(a, 0) (NaN), as NumPy
    return b.select(y_zero, b.fdiv(x, y), fl), b.select(y_zero, b.frem(x, y), mod)


def _int_divmod(lw: Lowerer, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Python floor division/modulo; 0 for division by zero; MIN // -1 wraps (no trap)."""
    b = lw.b
    zero, one, mone = (ir.Constant(x.type, v) for v in (0, 1, -1))
    bad = b.or_(b.icmp_signed("==", y, zero), b.icmp_signed("==", y, mone))
    ys = b.select(bad, one, y)
    q = b.sdiv(x, ys)
    r = b.srem(x, ys)
    fix = b.and_(b.icmp_signed("!=", r, zero), b.icmp_signed("<", b.xor(r, ys), zero))
    q = b.select(fix, b.sub(q, one), q)
    r = b.select(fix, b.add(r, ys), r)
    is_m1 = b.icmp_signed("==", y, mone)
    q = b.select(is_m1, b.sub(zero, x), q)
    q = b.select(b.icmp_signed("==", y, zero), zero, q)
    r = b.select(bad, zero, r)
    return q, r


def _floordiv(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    return (_float_divmod if is_float(a[0]) else _int_divmod)(lw, a[0], a[1])[0]


def _mod(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    return (_float_divmod if is_float(a[0]) else _int_divmod)(lw, a[0], a[1])[1]


def _not(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    return lw.b.not_(a[0])


def _compare(fop: str, iop: str, unordered: bool = False):
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        if is_float(a[0]):
            cmp = lw.b.fcmp_unordered if unordered else lw.b.fcmp_ordered
            return cmp(fop, a[0], a[1])
        if a[0].type == I1:  # False < True
            return lw.b.icmp_unsigned(iop, a[0], a[1])
        return lw.b.icmp_signed(iop, a[0], a[1])
    return fn


def _select(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    return lw.b.select(a[0], a[1], a[2])



def _convert(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    return convert_scalar(lw, a[0], e.inputs[0].type.dtype, e.params["dtype"])


SCALAR_OPS.update({
    P.neg_p: _neg,
    P.abs_p: _abs,
    P.exp_p: _intrinsic1("exp"),
    P.log_p: _intrinsic1("log"),
    P.sqrt_p: _intrinsic1("sqrt"),
    P.sin_p: _intrinsic1("sin"),
    P.cos_p: _intrinsic1("cos"),
    P.floor_p: _intrinsic1("floor"),
    P.log1p_p: _libm1("log1p"),
    P.expm1_p: _libm1("expm1"),
    P.tanh_p: _libm1("tanh"),
    P.erf_p: _libm1("erf"),
    P.erfc_p: _libm1("erfc"),
    P.sigmoid_p: _sigmoid,
    P.softplus_p: _softplus,
    P.not_p: _not,
    P.floordiv_p: _floordiv,
    P.mod_p: _mod,
    P.pow_p: lambda lw, e, a: lw.intrinsic("pow", a[0].type, a, flags=lw.fm),
    P.max_p: _minmax("maximum", "smax"),
    P.min_p: _minmax("minimum", "smin"),
    P.logaddexp_p: _logaddexp,
    P.lt_p: _compare("<", "<"),
    P.le_p: _compare("<=", "<="),
    P.gt_p: _compare(">", ">"),
    P.ge_p: _compare(">=", ">="),
    P.eq_p: _compare("==", "=="),
    P.ne_p: _compare("!=", "!=", unordered=True),  # NaN != NaN is True
    P.select_p: _select,
    P.convert_p: _convert,
})

# fastmath=True: exp/log and the functions built on them as straight-line IR the loop vectoriser
# can widen (codegen/vmath.py); fastmath=False keeps the libm calls / intrinsics above.
from . import vmath  # noqa: E402

SCALAR_OPS.update(vmath.fast_ops(SCALAR_OPS, {n: getattr(P, f"{n}_p") for n in vmath.FUNCTIONS}))


# --------------------------------------------------------------------------- loop nests
Operand = tuple[Union[ir.Value, TensorVal], list[ir.Value]]  # value, strides aligned to space


def _broadcast_operand(val: Value, t: TensorType, space: Sequence[Dim]) -> Operand:
    """Strides of ``val`` aligned right against ``space``: 0 for missing or literal-1 axes."""
    if not isinstance(val, TensorVal):
        return val, []
    lead = len(space) - val.ndim
    strides: list[ir.Value] = [c64(0)] * len(space)
    for j in range(val.ndim):
        if t.shape[j] != Dim.of(1) or space[lead + j] == Dim.of(1):
            strides[lead + j] = val.strides[j]
    return val, strides


def _space_sizes(lw: Lowerer, space: Sequence[Dim],
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


def _load_operand(lw: Lowerer, op: Operand, idx: list[ir.Value]) -> ir.Value:
    val, strides = op
    if not isinstance(val, TensorVal):
        return val
    view = TensorVal(val.dtype, val.data, [], strides)
    return lw.load(view, idx)



def emit_map_reduce(lw: Lowerer, sizes: list[ir.Value], operands: list[Operand],
                    elem: Callable[[list[ir.Value]], ir.Value], out_dtype: DType,
                    reduce: Optional[str] = None, axes: Sequence[int] = (),
                    dest: Optional[TensorVal] = None) -> Value:
    """One loop nest over ``sizes``: ``elem(loaded operands)`` per position, stored or reduced.

    ``dest`` (maps only): write into this tensor of shape ``sizes`` instead of a new one (see
    :func:`_map_dest`).

    ``elem`` receives the scalars of ``operands`` at the position and returns a value of
    ``out_dtype`` (already converted for reductions).  With ``reduce`` the result keeps the
    non-reduced axes; a full reduction returns a scalar.  When the innermost space axis is
    reduced (or everything is), the accumulator is an SSA phi and the reduced axes are the
    inner loops, so a contiguous reduction vectorizes; otherwise the output buffer accumulates
    in space order, which vectorizes over the kept innermost axis.
    """
    rank = len(sizes)
    if reduce is not None and not axes:
        reduce = None  # a reduction over no axes is the identity (after the dtype conversion)

    def value_at(idx: list[ir.Value]) -> ir.Value:
        if not idx:
            return elem([_load_operand(lw, op, idx) for op in operands])
        lw.in_nest += 1  # inside a loop nest that may vectorise (see vmath.fast_ops)
        try:
            return elem([_load_operand(lw, op, idx) for op in operands])
        finally:
            lw.in_nest -= 1

    if reduce is None:
        if rank == 0:
            return value_at([])
        out = dest if dest is not None else lw.alloc(out_dtype, sizes)

        def body(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            lw.store(out, idx, value_at(idx))
            return []
        lw.split_nest(sizes, body)
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
            if lw.parallel:
                return _parallel_full_reduce(lw, reduce, init, red_sizes, axes, rank, value_at)
            return reduce_at([])
        out = lw.alloc(out_dtype, kept_sizes)

        def kbody(kidx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            lw.store(out, kidx, reduce_at(kidx))
            return []
        lw.split_nest(kept_sizes, kbody, name="k", work=lw.product(sizes))
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
        lw.split_nest(sizes, abody)
    else:
        lw.nest(sizes, [], abody)
    return out


def _parallel_full_reduce(lw: Lowerer, kind: str, init: ir.Value, red_sizes: list[ir.Value],
                          axes: Sequence[int], rank: int,
                          value_at: Callable[[list[ir.Value]], ir.Value]) -> ir.Value:
    """A full reduction split over its outermost axis: one partial per chunk, combined in chunk
    order (so the result depends on the thread count, not on timing)."""
    from .parallel import MAX_CHUNKS, emit_parallel_for, stack_buffer
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

    n_chunks = emit_parallel_for(lw, red_sizes[0], lw.product(red_sizes), chunk)
    (acc,) = lw.for_range(n_chunks, [init], lambda c, a: [combine(
        lw, kind, a[0], lw.b.load(lw.b.gep(partials, [c], inbounds=True, source_etype=init.type),
                                  typ=init.type))], name="part")
    return acc



def _map_dest(lw: Lowerer, e: Eqn, ins: list[Value], sizes: list[ir.Value]
              ) -> Optional[TensorVal]:
    """Where an elementwise map (``e``, the current equation) may write its result without a
    new buffer, or None.  Each output element depends only on the inputs at the same position,
    so writing over an input read at that same position is safe:

    * ``acc = acc + ...`` -- an owned, whole input of the output's type that dies here is
      overwritten (a loop-carried accumulator is updated in place);
    * ``H[j] = H[j] + ...`` -- when the next equation is ``set`` of this map (its only use) into
      a region of an owned array that dies at that ``set``, the map writes the region directly
      (no temporary and no copy); every input that is a view of that array must be the same
      region (``index`` with the same spec and index operands).  The ``set`` is then skipped.
    """
    scope = lw.scope
    assert scope is not None
    (out,) = e.outs
    out_t = out.type
    if out_t.ndim == 0:
        return None
    for pos, (a, v) in enumerate(zip(e.inputs, ins)):
        if (isinstance(a, Var) and isinstance(v, TensorVal) and a.type == out_t
                and lw.movable(pos, need_whole=True)):
            return v
    k = lw.eqn_index
    eqns = scope.func.eqns
    if k + 1 >= len(eqns):
        return None
    nxt = eqns[k + 1]
    if (nxt.prim is not P.set_p or nxt.inputs[-1] is not out or scope.last_use.get(out) != k + 1
            or not isinstance(nxt.inputs[0], Var)):
        return None
    xvar = nxt.inputs[0]
    x = lw.env.get(xvar)
    if not isinstance(x, TensorVal) or not scope.owns(x.buf) or x.dtype != out_t.dtype:
        return None
    assert x.buf is not None
    if not scope.dead_after(x.buf, k + 1):
        return None
    spec = nxt.params["spec"]
    region_dims = P.index_out_dims(xvar.type.shape, spec)
    if len(region_dims) != out_t.ndim or any(
            rd != od or rd.is_fresh or od.is_fresh for rd, od in zip(region_dims, out_t.shape)):
        return None
    idx_atoms = nxt.inputs[1:-1]
    for a, v in zip(e.inputs, ins):
        if isinstance(v, TensorVal) and v.buf is x.buf:
            src = defining_eqn(scope.func, k, a) if isinstance(a, Var) else None
            if (src is None or src.prim is not P.index_p or src.inputs[0] is not xvar
                    or src.params["spec"] != spec or len(src.inputs) != len(nxt.inputs) - 1
                    or any(not (p is q or (isinstance(p, Lit) and isinstance(q, Lit)
                                           and p == q))
                           for p, q in zip(src.inputs[1:], idx_atoms))):
                return None
    region, scalar_ = index_view(lw, x, [lw.read(a) for a in idx_atoms], spec, "an indexed store")
    if scalar_:
        return None
    lw.prestored.add(id(nxt))
    return replace(region, buf=None)  # borrowed: the set that follows keeps x


def _lower_elementwise(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    op = SCALAR_OPS[e.prim]
    if not any(isinstance(v, TensorVal) for v in ins):
        return [op(lw, e, list(ins))]  # type: ignore[arg-type]
    (out_t,) = [v.type for v in e.outs]
    space = out_t.shape
    typed = [(v, a.type) for v, a in zip(ins, e.inputs)]
    sizes = _space_sizes(lw, space, typed)
    operands = [_broadcast_operand(v, t, space) for v, t in typed]
    return [emit_map_reduce(lw, sizes, operands, lambda xs: op(lw, e, xs), out_t.dtype,
                            dest=_map_dest(lw, e, ins, sizes))]


for _p in P.ELEMENTWISE:
    LOWERINGS[_p] = _lower_elementwise


@lowering(P.fused_p)
def _lower_fused(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    body: Func = e.params["body"]
    space: tuple[Dim, ...] = tuple(Dim.of(d) for d in e.params["space"])
    reduce: Optional[str] = e.params.get("reduce")
    axes = tuple(e.params.get("axes") or ())
    (out_t,) = [v.type for v in e.outs]
    body_dt = body.out_types[0].dtype
    typed = [(v, a.type) for v, a in zip(ins, e.inputs)]
    sizes = _space_sizes(lw, space, typed)
    operands = [_broadcast_operand(v, t, space) for v, t in typed]
    out_dt = out_t.dtype

    def elem(xs: list[ir.Value]) -> ir.Value:
        (r,), scope = lw.lower_body(body, xs)
        assert not scope.owned
        return convert_scalar(lw, r, body_dt, out_dt)  # type: ignore[arg-type]
    dest = _map_dest(lw, e, ins, sizes) if reduce is None or not axes else None
    return [emit_map_reduce(lw, sizes, operands, elem, out_dt, reduce, axes, dest=dest)]


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
    ops = [_broadcast_operand(v, a.type, space) for v, a in zip(extras, e.inputs[2:])]

    def value(i: ir.Value, z: ir.Value) -> ir.Value:  # called in loops that may vectorise
        (r,), scope = lw.lower_body(body, [z] + [_load_operand(lw, op, [i]) for op in ops])
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
    ops = [_broadcast_operand(v, a.type, space) for v, a in zip(extras, e.inputs[2:])]
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
                (ri,), scope = lw.lower_body(body, [zi] + [_load_operand(lw, op, [i])
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
