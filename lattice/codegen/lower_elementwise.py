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

import math
from dataclasses import replace
from typing import Optional

import llvmlite.ir as ir

from ..ir import primitives as P
from ..ir import special
from ..ir.core import Eqn, Func, Lit, Var
from ..ir.types import Dim, DType, f16
from . import vmath
from .lltypes import F32, F64, I1, I32, PTR
from .lower_arrays import index_view
from .lower_core import (SCALAR_OPS, Lowerer, TensorVal, Value, complex_parts, convert_scalar,
                         defining_eqn, fconst, is_complex, is_float, lowering, make_complex,
                         round_f16)
from .lower_nest import COSTLY, COSTLY_WEIGHT, body_cost, broadcast_operand, emit_map_reduce, \
    space_sizes


# --------------------------------------------------------------------------- scalar ops
def _arith(fop: Optional[str], iop: Optional[str]):
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        if a[0].type in (F32, F64):
            return getattr(lw.b, fop)(a[0], a[1], flags=lw.fm)  # type: ignore[arg-type]
        if is_complex(a[0]):  # add and sub only (the IR has no other complex arithmetic)
            (xr, xi), (yr, yi) = complex_parts(lw, a[0]), complex_parts(lw, a[1])
            op = getattr(lw.b, fop)  # type: ignore[arg-type]
            return make_complex(lw, op(xr, yr, flags=lw.fm), op(xi, yi, flags=lw.fm))
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
    if is_complex(a[0]):
        re, im = complex_parts(lw, a[0])
        return make_complex(lw, lw.b.fneg(re, flags=lw.fm), lw.b.fneg(im, flags=lw.fm))
    return lw.b.sub(ir.Constant(a[0].type, 0), a[0])


SCALAR_OPS.update({
    P.complex_p: lambda lw, e, a: make_complex(lw, a[0], a[1]),
    P.real_p: lambda lw, e, a: complex_parts(lw, a[0])[0],
    P.imag_p: lambda lw, e, a: complex_parts(lw, a[0])[1],
})


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


def _logaddexp_base(exp: str, log_scale: float, same: float):
    """NumPy's npy_logaddexp (``exp`` = "exp", natural log) and npy_logaddexp2 ("exp2", the
    log1p scaled by log2(e)): x==y -> x + same; else max + scale*log1p(exp(-|x-y|)); NaN ->
    x-y."""
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        b, (x, y), fm = lw.b, a, lw.fm
        d = b.fsub(x, y, flags=fm)
        gt = b.fcmp_ordered(">", d, fconst(x, 0.0))
        big = b.select(gt, x, y)
        negabs = b.select(gt, b.fneg(d), d)
        ex = lw.intrinsic(exp, x.type, [negabs], flags=fm)
        l1p = lw.libm("log1p", x.type, [ex])
        if log_scale != 1.0:
            l1p = b.fmul(fconst(x, log_scale), l1p, flags=fm)
        r = b.fadd(big, l1p, flags=fm)
        r = b.select(b.fcmp_unordered("uno", d, d), d, r)
        return b.select(b.fcmp_ordered("==", x, y), b.fadd(x, fconst(x, same), flags=fm), r)
    return fn


_logaddexp = _logaddexp_base("exp", 1.0, 0.6931471805599453)


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


def _int_divmod_scalar(lw: Lowerer, x: ir.Value, y: ir.Value) -> tuple[ir.Value, ir.Value]:
    """:func:`_int_divmod` in a scalar context (a user loop's body): a branch skips the
    division when ``-y <= x < y`` with ``y > 0`` (the wrap-around index of a periodic stencil,
    ``(j + 1) % m``, ``(j - 1) % m``), where the quotient is 0 or -1.  In the loop nests
    codegen emits, the select form stays (a branch would keep the loop from vectorising)."""
    b = lw.b
    zero = ir.Constant(x.type, 0)
    quick = b.and_(b.icmp_signed(">", y, zero),
                   b.and_(b.icmp_signed(">=", x, b.neg(y)), b.icmp_signed("<", x, y)))
    with b.if_else(quick, likely=True) as (then, otherwise):
        with then:
            neg = b.icmp_signed("<", x, zero)
            q1 = b.select(neg, ir.Constant(x.type, -1), zero)
            r1 = b.select(neg, b.add(x, y), x)
            fast = b.block
        with otherwise:
            q2, r2 = _int_divmod(lw, x, y)
            slow = b.block
    q, r = b.phi(x.type), b.phi(x.type)
    q.add_incoming(q1, fast)
    q.add_incoming(q2, slow)
    r.add_incoming(r1, fast)
    r.add_incoming(r2, slow)
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
    if _in_dtype(e).is_unsigned:
        return _uint_divmod(lw, a[0], a[1])
    return (_int_divmod if lw.in_nest else _int_divmod_scalar)(lw, a[0], a[1])


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


def _fmod(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    """C's fmod (``frem``: the sign of the dividend); integers: truncated remainder, 0 for a
    zero divisor (and for -1, where ``srem`` of the minimum would trap), as np.fmod."""
    b, (x, y) = lw.b, a
    if is_float(x):
        return b.frem(x, y)
    zero, one = ir.Constant(x.type, 0), ir.Constant(x.type, 1)
    bad = b.or_(b.icmp_signed("==", y, zero), b.icmp_signed("==", y, ir.Constant(x.type, -1)))
    return b.select(bad, zero, b.srem(x, b.select(bad, one, y)))


#: NumPy's message for an integer to a negative integer power
NEGATIVE_INT_POWER = "Integers to negative integer powers are not allowed."


def _pow(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    """``llvm.pow`` for floats; for integers, exponentiation by squaring (wrapping, as NumPy),
    a loop over the exponent's bits, and NumPy's ValueError for a negative exponent."""
    b, (x, y) = lw.b, a
    if is_float(x):
        return lw.intrinsic("pow", x.type, a, flags=lw.fm)
    zero, one = ir.Constant(y.type, 0), ir.Constant(y.type, 1)
    lw.check(b.icmp_signed(">=", y, zero), "ValueError", NEGATIVE_INT_POWER)
    pre = b.block
    head, step, done = (b.append_basic_block(f"ipow.{n}") for n in ("head", "step", "done"))
    b.branch(head)
    b.position_at_end(head)
    acc, base, ex = b.phi(x.type), b.phi(x.type), b.phi(y.type)
    acc.add_incoming(one, pre)
    base.add_incoming(x, pre)
    ex.add_incoming(y, pre)
    b.cbranch(b.icmp_signed("!=", ex, zero), step, done)
    b.position_at_end(step)
    odd = b.icmp_signed("!=", b.and_(ex, one), zero)
    acc.add_incoming(b.select(odd, b.mul(acc, base), acc), step)
    base.add_incoming(b.mul(base, base), step)
    ex.add_incoming(b.lshr(ex, one), step)
    b.branch(head)
    b.position_at_end(done)
    return acc


def _sign(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    # NumPy: 1 above 0, -1 below, 0 at +-0 (positive zero), NaN for NaN
    b, x = lw.b, a[0]
    if is_float(x):
        z = fconst(x, 0.0)
        r = b.select(b.fcmp_ordered("==", x, z), z, x)  # NaN stays
        r = b.select(b.fcmp_ordered("<", x, z), fconst(x, -1.0), r)
        return b.select(b.fcmp_ordered(">", x, z), fconst(x, 1.0), r)
    z = ir.Constant(x.type, 0)
    return b.sub(b.zext(b.icmp_signed(">", x, z), x.type), b.zext(b.icmp_signed("<", x, z), x.type))


def _signbit(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    # the sign bit itself (-0.0 and negative NaNs included), as np.signbit
    x = a[0]
    it = ir.IntType(64 if x.type == F64 else 32)
    return lw.b.icmp_signed("<", lw.b.bitcast(x, it), ir.Constant(it, 0))


def _lgamma(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
    # lgamma_r: glibc's lgamma writes the sign of Gamma to the global signgam, a data race
    # between the threads of a parallel kernel; the reentrant form writes to a stack slot
    x = a[0]
    with lw.b.goto_entry_block():  # (once per call site, not per iteration of a loop)
        sign = lw.b.alloca(I32, name="lgamma_sign")
    sign.type = PTR  # llvmlite types allocas as typed pointers; all pointers are opaque here
    f = lw.declare("lgammaf_r" if x.type == F32 else "lgamma_r", x.type, [x.type, PTR])
    return lw.b.call(f, [x, sign])


def _special(which: str):
    """digamma / trigamma: the algorithm of :mod:`lattice.ir.special`, in double precision.
    The recurrence is a loop and the reflection a branch taken only for x < 0: the libm calls
    keep such a map from vectorising anyway, and skipping the unneeded steps and the ``tan``
    measured several times faster than straight-line selects."""
    def fn(lw: Lowerer, e: Eqn, a: list[ir.Value]) -> ir.Value:
        b = lw.b
        x = a[0] if a[0].type == F64 else b.fpext(a[0], F64)

        def c(v: float) -> ir.Constant:
            return ir.Constant(F64, v)
        neg = b.fcmp_ordered("<", x, c(0.0))
        # z = x (or 1 - x), raised by the recurrence to >= SHIFT; acc: its sum of terms
        z0 = b.select(neg, b.fsub(c(1.0), x), x)
        pre = b.block
        head, step, done = (b.append_basic_block(f"{which}.{n}") for n in ("head", "step", "done"))
        b.branch(head)
        b.position_at_end(head)
        z, acc = b.phi(F64), b.phi(F64)
        z.add_incoming(z0, pre)
        acc.add_incoming(c(0.0), pre)
        b.cbranch(b.fcmp_ordered("<", z, c(float(special.SHIFT))), step, done)
        b.position_at_end(step)
        inv = b.fdiv(c(1.0), z)
        acc.add_incoming(b.fadd(acc, inv if which == "digamma" else b.fmul(inv, inv)), step)
        z.add_incoming(b.fadd(z, c(1.0)), step)
        b.branch(head)
        b.position_at_end(done)
        w = b.fdiv(c(1.0), b.fmul(z, z))
        coeffs = special.DIGAMMA_SERIES if which == "digamma" else special.TRIGAMMA_SERIES
        poly = c(coeffs[0])
        for k in coeffs[1:]:
            poly = b.fadd(b.fmul(poly, w), c(k))
        if which == "digamma":
            series = b.fadd(b.fsub(lw.intrinsic("log", F64, [z]), b.fdiv(c(0.5), z)),
                            b.fneg(b.fmul(w, poly)))
            val = b.fsub(series, acc)
        else:
            inv = b.fdiv(c(1.0), z)
            val = b.fadd(b.fadd(b.fadd(inv, b.fmul(c(0.5), w)), b.fmul(b.fmul(w, inv), poly)),
                         acc)
        before = b.block
        with b.if_then(neg):
            r = b.fsub(x, lw.intrinsic("roundeven", F64, [x]))  # exact reduction of pi x
            pir = b.fmul(c(math.pi), r)
            if which == "digamma":
                refl = b.fdiv(c(math.pi), lw.libm("tan", F64, [pir]))
                at_pole = b.fcmp_ordered("==", r, c(0.0))
                rval = b.select(at_pole, c(math.nan), b.fsub(val, refl))
            else:
                s = lw.intrinsic("sin", F64, [pir])
                rval = b.fsub(b.fdiv(c(math.pi * math.pi), b.fmul(s, s)), val)
            reflected = b.block
        out = b.phi(F64)
        out.add_incoming(val, before)
        out.add_incoming(rval, reflected)
        if which == "digamma":
            res = b.select(b.fcmp_ordered("==", x, c(0.0)), b.fdiv(c(-1.0), x), out)
        else:
            res = b.select(b.fcmp_ordered("==", x, c(-math.inf)), c(math.inf), out)
        return res if a[0].type == F64 else b.fptrunc(res, F32)
    return fn


SCALAR_OPS.update({
    P.tan_p: _libm1("tan"),
    P.arcsin_p: _libm1("asin"),
    P.arccos_p: _libm1("acos"),
    P.arctan_p: _libm1("atan"),
    P.sinh_p: _libm1("sinh"),
    P.cosh_p: _libm1("cosh"),
    P.arcsinh_p: _libm1("asinh"),
    P.arccosh_p: _libm1("acosh"),
    P.arctanh_p: _libm1("atanh"),
    P.exp2_p: _intrinsic1("exp2"),
    P.log2_p: _intrinsic1("log2"),
    P.log10_p: _intrinsic1("log10"),
    P.cbrt_p: _libm1("cbrt"),
    P.trunc_p: _intrinsic1("trunc"),
    P.ceil_p: _intrinsic1("ceil"),
    P.rint_p: _intrinsic1("roundeven"),  # half to even whatever the rounding mode
    P.sign_p: _sign,
    P.signbit_p: _signbit,
    P.gamma_p: _libm1("tgamma"),
    P.lgamma_p: _lgamma,
    P.digamma_p: _special("digamma"),
    P.trigamma_p: _special("trigamma"),
    P.arctan2_p: _libm1("atan2"),
    P.hypot_p: _libm1("hypot"),
    P.copysign_p: lambda lw, e, a: lw.intrinsic("copysign", a[0].type, a),
    P.logaddexp2_p: _logaddexp_base("exp2", 1.4426950408889634, 1.0),
    P.fmod_p: _fmod,
})

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
    P.pow_p: _pow,
    P.max_p: _minmax("maximum", "max"),
    P.min_p: _minmax("minimum", "min"),
    P.fmax_p: _minmax("maxnum", "max"),  # NaN-ignoring (C's fmax)
    P.fmin_p: _minmax("minnum", "min"),
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
                            dest=_map_dest(lw, e, ins, sizes),
                            cost=COSTLY_WEIGHT if e.prim in COSTLY else 1)]


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
    return [emit_map_reduce(lw, sizes, operands, elem, out_dt, reduce, axes, dest=dest,
                            cost=body_cost(body))]
