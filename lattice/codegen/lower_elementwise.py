"""Elementwise ops: the scalar op of every elementwise primitive (the :data:`SCALAR_OPS` table:
integer and float arithmetic, comparisons, libm functions and their vectorisable forms), and the
lowerings that run them over whole tensors -- a lone elementwise op, or a ``fused`` body of
several (optionally reduced) -- as one loop nest of :mod:`.lower_nest`.

Scalar ops follow the NumPy reference bit for bit where NumPy defines the result (NaN
propagation, floor division and modulo signs, saturating float-to-int conversion, shift counts
out of range).  A scalar op reads the signedness of integer operands from the equation's input
dtype (registers do not carry it).  An op whose result is f16 computes in f32 and is rounded to
f16 by the elementwise lowering (``_rounded``), one rounding per op as NumPy's f16 loops do.
A map may write over a dying input or straight into the region of the ``set`` that follows it
(``_map_dest``; the ownership rules of :mod:`.lower_core`).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import llvmlite.ir as ir

from ..ir import primitives as P
from ..ir.core import Eqn, Func, Lit, Var
from ..ir.types import Dim, DType, f16
from . import vmath
from .lltypes import F32, F64, I1
from .lower_arrays import index_view
from .lower_core import (SCALAR_OPS, Lowerer, TensorVal, Value, convert_scalar, defining_eqn,
                         fconst, is_float, lowering, round_f16)
from .lower_nest import broadcast_operand, emit_map_reduce, space_sizes


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


def _in_dtype(e: Eqn) -> DType:
    """The dtype of the equation's first operand (where integer signedness lives)."""
    return e.inputs[0].type.dtype


def _abs(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    if _in_dtype(e).is_unsigned:
        return a[0]
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
        if _in_dtype(e).is_unsigned:
            return lw.intrinsic("u" + iname, a[0].type, a)
        return lw.intrinsic("s" + iname, a[0].type, a)
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


def _uint_divmod(lw: Lowerer, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """Unsigned division and remainder (floor = truncation); 0 for division by zero."""
    b = lw.b
    zero, one = ir.Constant(x.type, 0), ir.Constant(x.type, 1)
    by_zero = b.icmp_unsigned("==", y, zero)
    ys = b.select(by_zero, one, y)
    return (b.select(by_zero, zero, b.udiv(x, ys)), b.select(by_zero, zero, b.urem(x, ys)))


def _divmod(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> tuple[ir.Value, ir.Value]:
    if is_float(a[0]):
        return _float_divmod(lw, a[0], a[1])
    return (_uint_divmod if _in_dtype(e).is_unsigned else _int_divmod)(lw, a[0], a[1])


def _floordiv(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    return _divmod(lw, e, a)[0]


def _mod(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    return _divmod(lw, e, a)[1]


def _shift(left: bool):
    """``<<``/``>>`` as NumPy's npy_lshift/npy_rshift: a count outside [0, bits) (compared
    unsigned, so negative counts too) gives 0, or the sign fill for ``>>`` of a signed value;
    LLVM's shifts are poison there, hence the select."""
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        b, (x, c) = lw.b, a
        width = ir.Constant(x.type, x.type.width)
        ok = b.icmp_unsigned("<", c, width)
        safe = b.select(ok, c, ir.Constant(x.type, 0))
        if left:
            return b.select(ok, b.shl(x, safe), ir.Constant(x.type, 0))
        if _in_dtype(e).is_unsigned:
            return b.select(ok, b.lshr(x, safe), ir.Constant(x.type, 0))
        fill = b.ashr(x, ir.Constant(x.type, x.type.width - 1))  # 0 or -1
        return b.select(ok, b.ashr(x, safe), fill)
    return fn


def _popcount(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    x = a[0] if _in_dtype(e).is_unsigned else _abs(lw, e, a)  # NumPy counts |x|'s ones
    n = lw.intrinsic("ctpop", x.type, [x])
    return n if x.type.width == 8 else lw.b.trunc(n, ir.IntType(8))  # the u8 result


def _not(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    return lw.b.not_(a[0])


def _compare(fop: str, iop: str, unordered: bool = False):
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        if is_float(a[0]):
            cmp = lw.b.fcmp_unordered if unordered else lw.b.fcmp_ordered
            return cmp(fop, a[0], a[1])
        if a[0].type == I1 or _in_dtype(e).is_unsigned:  # False < True
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
    P.max_p: _minmax("maximum", "max"),
    P.min_p: _minmax("minimum", "min"),
    P.logaddexp_p: _logaddexp,
    P.lt_p: _compare("<", "<"),
    P.le_p: _compare("<=", "<="),
    P.gt_p: _compare(">", ">"),
    P.ge_p: _compare(">=", ">="),
    P.eq_p: _compare("==", "=="),
    P.ne_p: _compare("!=", "!=", unordered=True),  # NaN != NaN is True
    P.select_p: _select,
    P.convert_p: _convert,
    P.bitand_p: _arith(None, "and_"),
    P.bitor_p: _arith(None, "or_"),
    P.bitxor_p: _arith(None, "xor"),
    P.invert_p: lambda lw, e, a: lw.b.not_(a[0]),
    P.shl_p: _shift(left=True),
    P.shr_p: _shift(left=False),
    P.popcount_p: _popcount,
})

# fastmath=True: exp/log and the functions built on them as straight-line IR the loop vectoriser
# can widen (codegen/vmath.py); fastmath=False keeps the libm calls / intrinsics above.
SCALAR_OPS.update(vmath.fast_ops(SCALAR_OPS, {n: getattr(P, f"{n}_p") for n in vmath.FUNCTIONS}))


# --------------------------------------------------------------------------- maps
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
    if P.has_arrays(spec):
        return None  # a scatter's region is not a view to write through
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


def _rounded(op):
    """``op`` with its f32 result rounded to f16 (for an equation whose result is f16)."""
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        return round_f16(lw, op(lw, e, a))
    return fn


@lowering(*P.ELEMENTWISE)
def _lower_elementwise(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    op = SCALAR_OPS[e.prim]
    if e.outs[0].type.dtype is f16 and e.prim not in (P.convert_p, P.select_p):
        op = _rounded(op)  # convert rounds itself; select picks an f16 value
    if not any(isinstance(v, TensorVal) for v in ins):
        return [op(lw, e, list(ins))]  # type: ignore[arg-type]
    (out_t,) = [v.type for v in e.outs]
    space = out_t.shape
    typed = [(v, a.type) for v, a in zip(ins, e.inputs)]
    sizes = space_sizes(lw, space, typed)
    operands = [broadcast_operand(v, t, space) for v, t in typed]
    return [emit_map_reduce(lw, sizes, operands, lambda xs: op(lw, e, xs), out_t.dtype,
                            dest=_map_dest(lw, e, ins, sizes))]


@lowering(P.fused_p)
def _lower_fused(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    body: Func = e.params["body"]
    space: tuple[Dim, ...] = tuple(Dim.of(d) for d in e.params["space"])
    reduce: Optional[str] = e.params.get("reduce")
    axes = tuple(e.params.get("axes") or ())
    (out_t,) = [v.type for v in e.outs]
    body_dt = body.out_types[0].dtype
    typed = [(v, a.type) for v, a in zip(ins, e.inputs)]
    sizes = space_sizes(lw, space, typed)
    operands = [broadcast_operand(v, t, space) for v, t in typed]
    out_dt = out_t.dtype

    def elem(xs: list[ir.Value]) -> ir.Value:
        (r,), scope = lw.lower_body(body, xs)
        assert not scope.owned
        return convert_scalar(lw, r, body_dt, out_dt)  # type: ignore[arg-type]
    dest = _map_dest(lw, e, ins, sizes) if reduce is None or not axes else None
    return [emit_map_reduce(lw, sizes, operands, elem, out_dt, reduce, axes, dest=dest)]
