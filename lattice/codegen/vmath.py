"""Vectorisable elementary functions as straight-line LLVM IR (the ``fastmath=True`` lowering).

Why
---
``llvm.exp``/``llvm.log`` and libm calls are opaque to the loop vectoriser on this toolchain
(the backend scalarises ``llvm.exp.v8f64`` into eight ``exp`` calls), so any loop containing one
ran scalar.  The functions here are built from ``fadd``/``fmul``/``fdiv``, ``llvm.fmuladd``,
integer ops on the bit pattern (``bitcast``) and ``select`` only: no branches, no tables, no
calls, so a loop that uses them vectorises like any arithmetic loop.

Contract
--------
* :data:`EMITTERS` maps ``(name, dtype name)`` -> ``emit(module, builder, args) -> value``, for
  ``exp, log, log1p, expm1, tanh, sigmoid, softplus, logaddexp`` x ``f32, f64``.  Each emitter
  defines (once per module) an ``internal alwaysinline`` function ``lattice.vm.<name>.<dtype>``
  and calls it; the O3 pipeline inlines it before the loop vectoriser runs.
* :func:`fast_ops` wraps the entries of a ``SCALAR_OPS`` table: with ``lw.fastmath`` (and
  :data:`ENABLED`) the function here is used, otherwise the original lowering (libm calls /
  LLVM intrinsics, bit-identical to libm).  ``lower_elementwise.py`` installs it in one place.
* Accuracy: at most 2 ULP over the whole domain for f32 and f64, measured against a higher
  precision reference (``tests/codegen/test_vmath.py``; the measured maxima are in
  ``docs/performance.md``).  Special values follow NumPy: NaN in -> NaN out; exp: +inf -> inf,
  -inf -> 0, overflow -> inf, underflow -> (sub)normals then 0; log: 0 -> -inf, negative -> NaN,
  +inf -> inf, subnormals exact-range; log1p(-1) = -inf; expm1(-inf) = -1; -0.0 is kept by
  log1p, expm1 and tanh; sigmoid, softplus, logaddexp stay finite and stable for any finite
  input (same formulas as the NumPy reference in ``ir/primitives.py``).
* The bodies carry no fast-math flags (``reassoc`` would undo the Cody-Waite reduction);
  ``llvm.fmuladd`` lets the backend fuse Horner steps, and the error analysis holds fused or not.

Techniques (classic, coefficients derived here)
-----------------------------------------------
* exp: ``k = round(x/ln2)`` by the 1.5*2^p shifter trick (its bit pattern minus the shifter's is
  ``k`` as an integer); ``r = x - k*ln2_hi - k*ln2_lo`` (Cody-Waite: ``ln2_hi`` has few enough
  bits that ``k*ln2_hi`` is exact); ``exp(r) = 1 + (r + r*r*g(r))``; ``2^k`` applied as
  ``2^(k>>1) * 2^(k - k>>1)`` so results next to overflow and in the subnormal range are right
  with a single rounding at the end.  Inputs are clamped to a range that already over/underflows.
* log: ``x = 2^k * m`` with ``m`` in ``[sqrt(1/2), sqrt(2))`` by integer arithmetic on the bits
  (subnormals are pre-scaled by 2^54 / 2^25); with ``f = m - 1``, ``s = f/(2+f)``,
  ``log1p(f) = f - f*f/2 + s*(f*f/2 + s*s*h(s*s))`` (exact identity, ``h`` a polynomial for the
  odd atanh series); ``log(x) = k*ln2_hi + (that + k*ln2_lo)``.
* log1p: ``u = 1 + x`` and the rounding error ``c = (x - (u - 1))/u`` is fed to the log of ``u``.
* expm1: exp's reduction with the reduction error kept; ``expm1(r)`` as a hi+lo pair; result
  ``((2^k - 1) + 2^k*hi) + 2^k*lo`` (``2^k - 1`` exact for the k used), ``(1 + hi + lo) * 2^k``
  for large k.
* tanh: ``e = expm1(2|x|)``; ``e/(e+2)`` below atanh(1/2), ``1 - 2/(e+2)`` above; sign copied.
* sigmoid, softplus, logaddexp: the reference formulas over the functions above.

Polynomials ``g`` and ``h`` are near-minimax Chebyshev fits made with mpmath at 60 digits by
``tools/vmath_coeffs.py`` (which prints them as the hex floats below, with their fit error).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import llvmlite.ir as ir

__all__ = ["EMITTERS", "ENABLED", "fast_ops", "FUNCTIONS"]

#: Master switch (benchmarks flip it to time the libm lowering in the same process).
ENABLED = True

from .lltypes import F32, F64, I32, I64


@dataclass(frozen=True)
class _Spec:
    """Per-precision constants."""

    ft: ir.Type
    it: ir.Type
    mant: int  # explicit mantissa bits
    bias: int
    shifter: float  # 1.5 * 2^mant: x + shifter rounds x to an integer in the low bits
    log2e: float
    ln2_hi: float  # ln 2 with trailing zero bits: k*ln2_hi is exact for every k used here
    ln2_lo: float  # ln 2 - ln2_hi
    exp_hi: float  # exp/expm1 inputs above this overflow anyway
    exp_lo: float  # exp inputs below this underflow to 0
    expm1_lo: float  # expm1 inputs below this give -1
    expm1_big_k: int  # for k above, expm1 = exp (the -1 is below 1/16 ULP)
    tiny: float  # |x| below: log1p(x) = expm1(x) = x
    sqrt_half_bits: int  # bit pattern of ~sqrt(1/2)
    sub_scale: int  # log: subnormals are multiplied by 2^sub_scale first
    tanh_clamp: float  # tanh(x) rounds to 1 above
    g: tuple[float, ...]  # (exp(r) - 1 - r)/r^2 on [-ln2/2, ln2/2], ascending
    h: tuple[float, ...]  # (2 atanh(s)/s - 2)/s^2 in z = s^2 on [0, 0.0295], ascending
    t: tuple[float, ...]  # (tanh(x)/x - 1)/x^2 in z = x^2 on [0, atanh(1/2)^2], ascending


_H = float.fromhex
_F64 = _Spec(
    ft=F64, it=I64, mant=52, bias=1023, shifter=_H("0x1.8p52"), log2e=_H("0x1.71547652b82fep+0"),
    ln2_hi=_H("0x1.62e42fefa3800p-1"), ln2_lo=_H("0x1.ef35793c76730p-45"),
    exp_hi=710.0, exp_lo=-746.0, expm1_lo=-60.0, expm1_big_k=56, tiny=2.0 ** -54,
    sqrt_half_bits=0x3FE6A09E667F3BCD, sub_scale=54, tanh_clamp=22.0,
    g=tuple(map(_H, (
        "0x1.0000000000000p-1", "0x1.5555555555557p-3", "0x1.5555555555556p-5",
        "0x1.11111111100dfp-7", "0x1.6c16c16c162d6p-10", "0x1.a01a01abe62ddp-13",
        "0x1.a01a01a6d7808p-16", "0x1.71de02375656cp-19", "0x1.27e4db67b4303p-22",
        "0x1.af4ddd84882fep-26", "0x1.1f72fc730b4ffp-29"))),
    h=tuple(map(_H, (
        "0x1.5555555555555p-1", "0x1.9999999999a3ap-2", "0x1.249249247670ap-2",
        "0x1.c71c7201fc0e6p-3", "0x1.745cf8c09a9d4p-3", "0x1.3b1c43c68eb6dp-3",
        "0x1.0fbd140544b63p-3", "0x1.0c135adcf3011p-3"))),
    t=tuple(map(_H, (
        "-0x1.5555555555555p-2", "0x1.1111111111035p-3", "-0x1.ba1ba1b9ff262p-5",
        "0x1.664f487734ba1p-6", "-0x1.226e32f618123p-7", "0x1.d6d33a7242007p-9",
        "-0x1.7d97e3c1d9a44p-10", "0x1.34c66d6b67e70p-11", "-0x1.ec19b43069910p-13",
        "0x1.651b833c3e9cbp-14", "-0x1.59fb97dd96cc1p-16"))),
)
_F32 = _Spec(
    ft=F32, it=I32, mant=23, bias=127, shifter=_H("0x1.8p23"), log2e=_H("0x1.715476p+0"),
    ln2_hi=_H("0x1.62e4p-1"), ln2_lo=_H("0x1.7f7d1cp-20"),
    exp_hi=89.0, exp_lo=-105.0, expm1_lo=-20.0, expm1_big_k=28, tiny=2.0 ** -25,
    sqrt_half_bits=0x3F3504F3, sub_scale=25, tanh_clamp=10.0,
    g=tuple(map(_H, ("0x1p-1", "0x1.555556p-3", "0x1.5554eap-5", "0x1.1110ep-7",
                     "0x1.6d4316p-10", "0x1.a124e4p-13"))),
    h=tuple(map(_H, ("0x1.55555cp-1", "0x1.997c10p-2", "0x1.2eebdap-2"))),
    t=tuple(map(_H, ("-0x1.555554p-2", "0x1.110fecp-3", "-0x1.b9a0c8p-5", "0x1.5d285cp-6",
                     "-0x1.b164b6p-8"))),
)
_SPECS = {"f64": _F64, "f32": _F32}


class _E:
    """Builder helpers for one precision (all ops without fast-math flags)."""

    def __init__(self, module: ir.Module, b: ir.IRBuilder, spec: _Spec) -> None:
        self.m, self.b, self.s = module, b, spec
        self.ft, self.it = spec.ft, spec.it

    def c(self, v: float) -> ir.Constant:
        return ir.Constant(self.ft, v)

    def ci(self, v: int) -> ir.Constant:
        return ir.Constant(self.it, v)

    def intrinsic(self, name: str, args: Sequence[ir.Value]) -> ir.Value:
        sfx = "f64" if self.ft == F64 else "f32"
        full = f"llvm.{name}.{sfx}"
        f = self.m.globals.get(full)
        if f is None:
            f = ir.Function(self.m, ir.FunctionType(self.ft, [self.ft] * len(args)), full)
        return self.b.call(f, list(args))

    def fma(self, a: ir.Value, x: ir.Value, c: ir.Value) -> ir.Value:
        return self.intrinsic("fmuladd", [a, x, c])

    def horner(self, x: ir.Value, coeffs: Sequence[float]) -> ir.Value:
        """The polynomial by Estrin's scheme: about log2(degree) dependent FMAs instead of
        degree, which matters where the code runs scalar (a call per row of a loop)."""
        powers = [x]
        while 2 ** len(powers) < len(coeffs):
            powers.append(self.mul(powers[-1], powers[-1]))

        def est(cs: Sequence[float]) -> ir.Value:
            if len(cs) == 1:
                return self.c(cs[0])
            if len(cs) == 2:
                return self.fma(self.c(cs[1]), x, self.c(cs[0]))
            half = 1 << ((len(cs) - 1).bit_length() - 1)  # largest power of two < len(cs)
            return self.fma(est(cs[half:]), powers[half.bit_length() - 1], est(cs[:half]))
        return est(coeffs)

    def add(self, a, b):  # noqa: ANN001 - tiny helpers
        return self.b.fadd(a, b)

    def sub(self, a, b):  # noqa: ANN001
        return self.b.fsub(a, b)

    def mul(self, a, b):  # noqa: ANN001
        return self.b.fmul(a, b)

    def div(self, a, b):  # noqa: ANN001
        return self.b.fdiv(a, b)

    def sel(self, c, a, b):  # noqa: ANN001
        return self.b.select(c, a, b)

    def lt(self, a, b):  # noqa: ANN001
        return self.b.fcmp_ordered("<", a, b)

    def gt(self, a, b):  # noqa: ANN001
        return self.b.fcmp_ordered(">", a, b)

    def isnan(self, a):  # noqa: ANN001
        return self.b.fcmp_unordered("uno", a, a)

    def fabs(self, a):  # noqa: ANN001
        return self.intrinsic("fabs", [a])

    def clamp(self, x, lo: float, hi: float):  # noqa: ANN001 - NaN passes through
        x = self.sel(self.gt(x, self.c(hi)), self.c(hi), x)
        return self.sel(self.lt(x, self.c(lo)), self.c(lo), x)

    def bits(self, x):  # noqa: ANN001
        return self.b.bitcast(x, self.it)

    def from_bits(self, i):  # noqa: ANN001
        return self.b.bitcast(i, self.ft)

    def pow2(self, k):  # noqa: ANN001 - 2^k for k in the normal exponent range
        return self.from_bits(self.b.shl(self.b.add(k, self.ci(self.s.bias)), self.ci(self.s.mant)))

    def scale(self, p, k):  # noqa: ANN001 - p * 2^k for k in [-2*bias+2, 2*bias], one rounding
        k1 = self.b.ashr(k, self.ci(1))
        return self.mul(self.mul(p, self.pow2(k1)), self.pow2(self.b.sub(k, k1)))

    # ---- shared cores
    def reduce_exp(self, x):  # noqa: ANN001 - x clamped; returns (k int, kf, r_hi exact, k*ln2_lo)
        s = self.s
        t = self.fma(x, self.c(s.log2e), self.c(s.shifter))
        kf = self.sub(t, self.c(s.shifter))
        k = self.b.sub(self.bits(t), self.bits(self.c(s.shifter)))
        rh = self.sub(x, self.mul(kf, self.c(s.ln2_hi)))
        return k, kf, rh, self.mul(kf, self.c(s.ln2_lo))

    def exp_parts(self, x):  # noqa: ANN001 - x clamped
        """(k, hi, lo) with e^x = 2^k (1 + hi + lo): e^r - 1 for the reduced argument r, as an
        unevaluated sum (exp and expm1 finish it differently)."""
        k, _, rh, rl = self.reduce_exp(x)
        r = self.sub(rh, rl)
        rerr = self.sub(self.sub(rh, r), rl)  # r + rerr = rh - rl exactly (|rh| >= |rl| then)
        t = self.mul(self.mul(r, r), self.horner(r, self.s.g))
        hi = self.add(r, t)
        lo = self.add(self.add(self.sub(r, hi), t), self.fma(rerr, r, rerr))  # d/dr e^r = 1 + r
        return k, hi, lo

    def log_core(self, x, corr=None, subnormals: bool = True):  # noqa: ANN001
        """log(x) for finite x > 0 (garbage elsewhere); ``corr`` is added to log1p(f)."""
        s, b = self.s, self.b
        adj = None
        if subnormals:
            sub = self.lt(x, self.c(2.0 ** (1 - s.bias)))
            x = self.sel(sub, self.mul(x, self.c(2.0 ** s.sub_scale)), x)
            adj = self.sel(sub, self.ci(s.sub_scale), self.ci(0))
        ix = self.bits(x)
        k = b.ashr(b.sub(ix, self.ci(s.sqrt_half_bits)), self.ci(s.mant))
        m = self.from_bits(b.sub(ix, b.shl(k, self.ci(s.mant))))
        if adj is not None:
            k = b.sub(k, adj)
        f = self.sub(m, self.c(1.0))
        sv = self.div(f, self.add(self.c(2.0), f))
        z = self.mul(sv, sv)
        r = self.mul(z, self.horner(z, s.h))
        hfsq = self.mul(self.c(0.5), self.mul(f, f))
        kf = b.sitofp(k, self.ft)
        lo = self.mul(kf, self.c(s.ln2_lo))
        if corr is not None:
            lo = self.add(lo, corr)
        inner = self.sub(f, self.sub(hfsq, self.fma(sv, self.add(hfsq, r), lo)))
        return self.add(self.mul(kf, self.c(s.ln2_hi)), inner)


# --------------------------------------------------------------------------- the functions
def _exp(e: _E, x: ir.Value) -> ir.Value:
    s = e.s
    k, hi, lo = e.exp_parts(e.clamp(x, s.exp_lo, s.exp_hi))
    # p = 1 + hi + lo with a single rounding (fast two-sum of 1 + hi, then the low parts)
    p_hi = e.add(e.c(1.0), hi)
    p = e.add(p_hi, e.add(e.add(e.sub(e.c(1.0), p_hi), hi), lo))
    return e.sel(e.isnan(x), x, e.scale(p, k))


def _log(e: _E, x: ir.Value) -> ir.Value:
    r = e.log_core(x)
    ok = e.b.and_(e.gt(x, e.c(0.0)), e.lt(x, e.c(float("inf"))))
    special = e.sel(e.b.fcmp_ordered("==", x, e.c(0.0)), e.c(float("-inf")),
                    e.sel(e.lt(x, e.c(0.0)), e.c(float("nan")), x))
    return e.sel(ok, r, special)


def _log1p(e: _E, x: ir.Value) -> ir.Value:
    u = e.add(e.c(1.0), x)
    corr = e.div(e.sub(x, e.sub(u, e.c(1.0))), u)  # the rounding error of u, relative to u
    r = e.log_core(u, corr, subnormals=False)  # u >= 2^-53 when x > -1
    ok = e.b.and_(e.gt(x, e.c(-1.0)), e.lt(x, e.c(float("inf"))))
    special = e.sel(e.b.fcmp_ordered("==", x, e.c(-1.0)), e.c(float("-inf")),
                    e.sel(e.lt(x, e.c(-1.0)), e.c(float("nan")), x))
    r = e.sel(ok, r, special)
    return e.sel(e.lt(e.fabs(x), e.c(e.s.tiny)), x, r)  # keeps -0.0 and subnormals


def _expm1(e: _E, x: ir.Value) -> ir.Value:
    s, b = e.s, e.b
    k, hi, lo = e.exp_parts(e.clamp(x, s.expm1_lo, s.exp_hi))
    pk = e.pow2(k)
    small = e.add(e.add(e.sub(pk, e.c(1.0)), e.mul(pk, hi)), e.mul(pk, lo))
    big = e.scale(e.add(e.add(e.c(1.0), hi), lo), k)
    res = e.sel(b.icmp_signed(">", k, e.ci(s.expm1_big_k)), big, small)
    res = e.sel(e.lt(e.fabs(x), e.c(s.tiny)), x, res)
    return e.sel(e.isnan(x), x, res)


def _tanh(e: _E, x: ir.Value) -> ir.Value:
    a = e.fabs(x)
    ac = e.sel(e.gt(a, e.c(e.s.tanh_clamp)), e.c(e.s.tanh_clamp), a)
    em = _expm1(e, e.add(ac, ac))
    d = e.add(em, e.c(2.0))
    large = e.sub(e.c(1.0), e.div(e.c(2.0), d))
    z = e.mul(a, a)
    poly = e.fma(a, e.mul(z, e.horner(z, e.s.t)), a)  # tanh(a) = a + a*z*t(z) below atanh(1/2)
    r = e.sel(e.lt(ac, e.c(0.5493061443340549)), poly, large)  # atanh(1/2): result >= 1/2
    return e.intrinsic("copysign", [r, x])


def _sigmoid(e: _E, x: ir.Value) -> ir.Value:
    # the reference formula: ex = exp(-|x|); x >= 0 ? 1/(1+ex) : ex/(1+ex), with 1/(1+ex)
    # refined: den + dlo = 1 + ex exactly, q' = q + q*((1 - q*den) - q*dlo) (one fdiv, not two)
    ex = _exp(e, e.b.fneg(e.fabs(x)))
    den = e.add(e.c(1.0), ex)
    dlo = e.add(e.sub(e.c(1.0), den), ex)
    q = e.div(e.c(1.0), den)
    res = e.fma(e.b.fneg(q), den, e.c(1.0))
    q = e.fma(q, e.sub(res, e.mul(q, dlo)), q)
    return e.sel(e.b.fcmp_ordered(">=", x, e.c(0.0)), q, e.mul(ex, q))


def _softplus(e: _E, x: ir.Value) -> ir.Value:
    # max(x, 0) + log1p(exp(-|x|)), NaN-propagating max as np.maximum
    ex = _exp(e, e.b.fneg(e.fabs(x)))
    return e.add(e.intrinsic("maximum", [x, e.c(0.0)]), _log1p(e, ex))


def _logaddexp(e: _E, x: ir.Value, y: ir.Value) -> ir.Value:
    # NumPy's npy_logaddexp: x==y -> x+ln2; else max + log1p(exp(-|x-y|)); NaN -> x-y
    b = e.b
    d = e.sub(x, y)
    gt = e.gt(d, e.c(0.0))
    big = e.sel(gt, x, y)
    negabs = e.sel(gt, b.fneg(d), d)
    r = e.add(big, _log1p(e, _exp(e, negabs)))
    r = e.sel(e.isnan(d), d, r)
    same = e.add(x, e.c(0.6931471805599453))
    return e.sel(b.fcmp_ordered("==", x, y), same, r)


#: name -> (arity, body builder)
FUNCTIONS: dict[str, tuple[int, Callable[..., ir.Value]]] = {
    "exp": (1, _exp), "log": (1, _log), "log1p": (1, _log1p), "expm1": (1, _expm1),
    "tanh": (1, _tanh), "sigmoid": (1, _sigmoid), "softplus": (1, _softplus),
    "logaddexp": (2, _logaddexp),
}


def _emitter(name: str, dtype: str) -> Callable[[ir.Module, ir.IRBuilder, list[ir.Value]],
                                                 ir.Value]:
    arity, body = FUNCTIONS[name]
    spec = _SPECS[dtype]

    def emit(module: ir.Module, builder: ir.IRBuilder, args: list[ir.Value]) -> ir.Value:
        fname = f"lattice.vm.{name}.{dtype}"
        fn = module.globals.get(fname)
        if fn is None:
            fn = ir.Function(module, ir.FunctionType(spec.ft, [spec.ft] * arity), fname)
            fn.linkage = "internal"
            fn.attributes.add("alwaysinline")
            fn.attributes.add("nounwind")
            fb = ir.IRBuilder(fn.append_basic_block("entry"))
            fb.ret(body(_E(module, fb, spec), *fn.args))
        return builder.call(fn, list(args))
    return emit


#: (function, dtype name) -> emit(module, builder, args) -> value
EMITTERS: dict[tuple[str, str], Callable[[ir.Module, ir.IRBuilder, list[ir.Value]], ir.Value]] = {
    (n, d): _emitter(n, d) for n in FUNCTIONS for d in _SPECS
}

_DTYPE_OF = {F64: "f64", F32: "f32"}


def fast_ops(scalar_ops: dict[Any, Callable[..., ir.Value]], prims: dict[str, Any]
             ) -> dict[Any, Callable[..., ir.Value]]:
    """Wrapped ``SCALAR_OPS`` entries for ``prims`` (name -> Primitive): the emitters above under
    ``lw.fastmath`` inside the loop nests codegen emits (``lw.in_nest``), the original lowering
    otherwise (strict mode stays libm; so do scalar bodies of user loops)."""
    out: dict[Any, Callable[..., ir.Value]] = {}
    for name, prim in prims.items():
        strict = scalar_ops[prim]

        def op(lw: Any, e: Any, a: list[ir.Value], _n: str = name, _strict=strict) -> ir.Value:
            emit = EMITTERS.get((_n, _DTYPE_OF.get(a[0].type, "")))
            # only where the loop around may vectorise: in a user loop's scalar body the
            # libm call is shorter than the straight-line code (about 30% faster there)
            if emit is None or not (lw.fastmath and ENABLED and lw.in_nest):
                return _strict(lw, e, a)
            return emit(lw.module, lw.b, a)
        out[prim] = op
    return out
