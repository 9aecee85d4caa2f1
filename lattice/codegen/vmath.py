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
  ``exp, log, log1p, expm1, tanh, sigmoid, softplus, logaddexp, erf, erfc, lgamma, digamma`` x
  ``f32, f64``.  Each emitter
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
* The special functions (erf, erfc, lgamma, digamma) are written in f64; their f32 forms widen,
  compute in f64 and round once (correctly rounded on the test grids).  f64 maxima measured
  against mpmath (``tests/codegen/test_vmath_special.py``): erf 0.93 ULP, erfc 4.1, lgamma 3.1
  for x > 0; below 0 lgamma, and digamma everywhere, are accurate to a few ULPs of the terms
  their reflection/recurrence subtracts (relative accuracy is lost only where those cancel:
  lgamma's zeros below -2, digamma's root 1.4616... and its zeros below 0; digamma is within
  7.9 ULP where |psi| >= 1).  Special values as libm / :mod:`lattice.ir.special`: NaN in -> NaN,
  erf(+-inf) = +-1, erfc(-inf) = 2, lgamma = +inf at the poles and at +-inf, digamma(+-0) =
  -+inf, NaN at the negative integers.
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

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import llvmlite.ir as ir

__all__ = ["EMITTERS", "ENABLED", "fast_ops", "FUNCTIONS"]

#: Master switch (benchmarks flip it to time the libm lowering in the same process).
ENABLED = True

from ..ir import special
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

    def cv(self, v: Any) -> ir.Value:
        return v if isinstance(v, ir.Value) else self.c(v)

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

    def horner(self, x: ir.Value, coeffs: Sequence[Any]) -> ir.Value:
        """The polynomial by Estrin's scheme: about log2(degree) dependent FMAs instead of
        degree, which matters where the code runs scalar (a call per row of a loop).
        Coefficients are floats or values (chosen per lane by :func:`_select_coeffs`)."""
        powers = [x]
        while 2 ** len(powers) < len(coeffs):
            powers.append(self.mul(powers[-1], powers[-1]))

        def est(cs: Sequence[float]) -> ir.Value:
            if len(cs) == 1:
                return self.cv(cs[0])
            if len(cs) == 2:
                return self.fma(self.cv(cs[1]), x, self.cv(cs[0]))
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


# --------------------------------------------------------------------------- special functions
# erf, erfc, lgamma, digamma: the bodies are written in f64 (the f32 forms widen, call them and
# round once, so their error is that rounding).  Pieces of an argument range are chosen per lane
# by selects (of a result, or of a polynomial's coefficients, so one Horner evaluation serves
# several pieces): no branches, so a loop over them vectorises.  Coefficients: near-minimax
# Chebyshev fits at 50 digits (tools/vmath_coeffs.py); errors measured in tests/codegen/test_vmath.py.

#: erf(x)/x - 1 in z = x^2 on [0, 1] (erf = x + x P: P's rounding errors are scaled by P ~ 0.13)
_ERF_P = tuple(map(_H, (
    "0x1.06eba8214db69p-3", "-0x1.812746b0379e6p-2", "0x1.ce2f21a042b30p-4",
    "-0x1.b82ce31284e00p-6", "0x1.565bcd0dbaa38p-8", "-0x1.c02db3dac435fp-11",
    "0x1.f9a321d5b8e1ep-14", "-0x1.f4d1e3183f7aep-17", "0x1.b9df224ca4b97p-20",
    "-0x1.5f1ecb6f0764cp-23", "0x1.f7b4bf3b13964p-27", "-0x1.389d4f2641625p-30",
    "0x1.05ffd737fb32ep-34")))
#: Q(a) = erfc(a) exp(a^2) in s = a - centre on [1/2, 1), [1, 2), [2, 7/2); a Q(a) in u = 1/a^2 on
#: [7/2, 28]
_ERFC_A = tuple(map(_H, (
    "0x1.038d54ea3d834p-1", "-0x1.78cdd551ee51ap-2", "0x1.d90093ae10928p-3",
    "-0x1.09e77d40e0239p-3", "0x1.1192f5bd6877dp-4", "-0x1.054d68295b17ep-5",
    "0x1.d43a7c7a660cep-7", "-0x1.8c97dd4ecb603p-8", "0x1.3f81897cfee82p-9",
    "-0x1.ec0cf4a29082dp-11", "0x1.6b982bf7cc122p-12", "-0x1.02b17ec58f27cp-13",
    "0x1.637258c508aeep-15", "-0x1.d89a2e82658dbp-17", "0x1.30d9b679ab763p-18",
    "-0x1.879bb4360f29bp-20", "0x1.dd537718ef76cp-22")))
_ERFC_B = tuple(map(_H, (
    "0x1.494daffa2ad68p-2", "-0x1.4f1988444caf6p-3", "0x1.37ea271bc54bdp-4",
    "-0x1.0dc51d2941fe8p-5", "0x1.b65944f34f932p-7", "-0x1.513ed75fe3aa1p-8",
    "0x1.ee705e7339ea0p-10", "-0x1.5b0ac006ded44p-11", "0x1.d4509d2e96628p-13",
    "-0x1.30c0deef7e30bp-14", "0x1.7f996b47b4062p-16", "-0x1.d41bcf828a13dp-18",
    "0x1.156fd6fb88da9p-19", "-0x1.3f2aec68e0ef9p-21", "0x1.66efcc06ca710p-23",
    "-0x1.a998623712d22p-25", "0x1.c702a07f72a49p-27")))
_ERFC_C = tuple(map(_H, (
    "0x1.8c9eb68ff27d7p-3", "-0x1.0305781330095p-4", "0x1.43b98bac83820p-6",
    "-0x1.84e9ab30e7d97p-8", "0x1.c2c72fd72862cp-10", "-0x1.f99e41eadb01dp-12",
    "0x1.131bb1605f58ep-13", "-0x1.2312b2fd05ab4p-15", "0x1.2bfb5b98b7037p-17",
    "-0x1.2da2ed60d2934p-19", "0x1.2856c7c23201dp-21", "-0x1.1cdc394369dbcp-23",
    "0x1.0c20a45da3a28p-25", "-0x1.ebc9e63604badp-28", "0x1.bd80ed135ad53p-30",
    "-0x1.be0b7fa1543f8p-32", "0x1.846f065667fc6p-34")))
_ERFC_D = tuple(map(_H, (
    "0x1.20dd750429b6dp-1", "-0x1.20dd750429982p-2", "0x1.b14c2f85f1a42p-2",
    "-0x1.0ecf9d9ac06e0p+0", "0x1.d9eb4a154fd9fp+1", "-0x1.0a93bbb21e08fp+4",
    "0x1.6e7d538acd084p+6", "-0x1.295763c70d76dp+9", "0x1.143a07b99ae5ap+12",
    "-0x1.1a6c1688fffa3p+15", "0x1.2af9ab3182509p+18", "-0x1.2e41fef2d0604p+21",
    "0x1.0b72a8ed8a759p+24", "-0x1.7bf86ef30b268p+26", "0x1.8a59ef910520fp+28",
    "-0x1.051b36a5d6a1ap+30", "0x1.47b5920e5f890p+30")))
#: lgamma(2 + t) / t on [-3/4, 1/2]
_LG_R = tuple(map(_H, (
    "0x1.b0ee6072093cep-2", "0x1.4a34cc4a60fa7p-2", "-0x1.13e001a557688p-4",
    "0x1.51322ac7d78d7p-6", "-0x1.e404fc215f01bp-8", "0x1.7add6eaf2045bp-9",
    "-0x1.38ac5c4774c6fp-10", "0x1.0b36aedce2e86p-11", "-0x1.d3fd3d1a89e04p-13",
    "0x1.a1280aa66f561p-14", "-0x1.78e0b12948136p-15", "0x1.57ff8172348afp-16",
    "-0x1.3c8b21a9730bcp-17", "0x1.26fc3dbdab015p-18", "-0x1.13960c8b933a1p-19",
    "0x1.d77a62aeea05fp-21", "-0x1.e509451540b0ep-22", "0x1.898ec57886ec7p-22",
    "-0x1.2a5b20e239869p-26", "-0x1.4be2dd5dc10bcp-24", "-0x1.35d5612e63f91p-23")))
#: y (lgamma(y) - (y - 1/2) log y + y - log(2 pi)/2) in w = 1/y^2 on [0, 1/144]
_LG_S = tuple(map(_H, (
    "0x1.5555555555555p-4", "-0x1.6c16c16c14e36p-9", "0x1.a01a016ef901fp-11",
    "-0x1.38130ac360d5cp-11", "0x1.b8d03cffbb4eep-11", "-0x1.d5a2c8180fe46p-10")))
#: sin(pi v)/v and cos(pi v) in z = v^2 on [0, 1/16]
_SINPI = tuple(map(_H, (
    "0x1.921fb54442d18p+1", "-0x1.4abbce625be41p+2", "0x1.466bc677587f8p+1",
    "-0x1.32d2cce2e5b19p-1", "0x1.50782fda12d96p-4", "-0x1.e30071afc3e59p-8",
    "0x1.e3f38399551bfp-12")))
_COSPI = tuple(map(_H, (
    "0x1.0000000000000p+0", "-0x1.3bd3cc9be45dep+2", "0x1.03c1f081b5aacp+2",
    "-0x1.55d3c7e3c90f8p+0", "0x1.e1f5068355e15p-3", "-0x1.a6d1ec7906c20p-6",
    "0x1.f9cc41140bb60p-10", "-0x1.b264ba152378ap-14")))
#: breakpoints of erfc's pieces (on a = |x|) and the centre s = a - c of the first three
_ERFC_PIECES = ((0.5, 0.75, _ERFC_A), (1.0, 1.5, _ERFC_B), (2.0, 2.75, _ERFC_C))
_ERFC_TAIL = 3.5  # from here a*Q(a) as a polynomial in u = 1/a^2 (_ERFC_D)
_ERFC_MAX = 28.0  # erfc underflows to 0 below this; larger arguments are clamped to it
_LG_STIRLING = 12.0  # Stirling's series from here: lgamma(y) = (y - 1/2)(log y - 1) + K + S(1/y^2)/y
_LG_K = 0.5 * math.log(2 * math.pi) - 0.5


def _wide(body: Callable[..., ir.Value]) -> Callable[..., ir.Value]:
    """``body`` (written for f64) for either precision: f32 arguments are widened first."""
    def run(e: _E, *xs: ir.Value) -> ir.Value:
        if e.ft == F64:
            return body(e, *xs)
        w = _E(e.m, e.b, _F64)
        return e.b.fptrunc(body(w, *(e.b.fpext(x, F64) for x in xs)), F32)
    return run


def _select_coeffs(e: _E, conds: Sequence[ir.Value], tables: Sequence[Sequence[float]]
                   ) -> list[ir.Value]:
    """Per lane, the coefficients of the first table whose condition holds (the last table
    where none does); all tables have the same length."""
    out = []
    for k in range(len(tables[-1])):
        v: ir.Value = e.c(tables[-1][k])
        for cond, tab in zip(reversed(conds), reversed(tables[:-1])):
            v = e.sel(cond, e.c(tab[k]), v)
        out.append(v)
    return out


def _exp_neg_square(e: _E, a: ir.Value) -> ir.Value:
    """exp(-a*a) with the rounding error of a*a accounted for (a few ulp up to a = 28)."""
    h = e.mul(a, a)
    lo = e.fma(a, a, e.b.fneg(h))  # a*a - h exactly
    return e.mul(_exp(e, e.b.fneg(h)), e.sub(e.c(1.0), lo))


def _erfc_tail(e: _E, a: ir.Value) -> ir.Value:
    """erfc(a) for a >= 1/2 (any value below is treated as 1/2's piece): exp(-a^2) Q(a)."""
    a = e.sel(e.gt(a, e.c(_ERFC_MAX)), e.c(_ERFC_MAX), a)
    tail = e.b.fcmp_ordered(">=", a, e.c(_ERFC_TAIL))
    conds = [e.lt(a, e.c(_ERFC_PIECES[k + 1][0] if k + 1 < len(_ERFC_PIECES) else _ERFC_TAIL))
             for k in range(len(_ERFC_PIECES))]
    (centre,) = _select_coeffs(e, conds[:-1], [(p[1],) for p in _ERFC_PIECES])
    var = e.sel(tail, e.div(e.c(1.0), e.mul(a, a)), e.sub(a, centre))
    q = e.horner(var, _select_coeffs(e, conds, [p[2] for p in _ERFC_PIECES] + [_ERFC_D]))
    q = e.sel(tail, e.div(q, a), q)
    return e.mul(_exp_neg_square(e, a), q)


@_wide
def _erf(e: _E, x: ir.Value) -> ir.Value:
    a = e.fabs(x)
    small = e.fma(x, e.horner(e.mul(x, x), _ERF_P), x)
    big = e.intrinsic("copysign", [e.sub(e.c(1.0), _erfc_tail(e, a)), x])
    r = e.sel(e.lt(a, e.c(1.0)), small, big)
    return e.sel(e.isnan(x), x, r)


@_wide
def _erfc(e: _E, x: ir.Value) -> ir.Value:
    a = e.fabs(x)
    small = e.sub(e.c(1.0), e.fma(x, e.horner(e.mul(x, x), _ERF_P), x))
    t = _erfc_tail(e, a)
    big = e.sel(e.lt(x, e.c(0.0)), e.sub(e.c(2.0), t), t)
    r = e.sel(e.lt(a, e.c(0.5)), small, big)
    return e.sel(e.isnan(x), x, r)


def _sinpi_cospi(e: _E, r: ir.Value) -> tuple[ir.Value, ir.Value]:
    """sin(pi r) and cos(pi r) for r in [-1/2, 1/2]: odd/even polynomials on |r| <= 1/4, and the
    complementary ones at 1/2 - |r| (exact) above."""
    a = e.fabs(r)
    c = e.sub(e.c(0.5), a)
    near = e.b.fcmp_ordered("<=", a, e.c(0.25))
    v = e.sel(near, a, c)
    z = e.mul(v, v)
    s_v = e.mul(v, e.horner(z, _SINPI))  # sin(pi v)
    c_v = e.horner(z, _COSPI)  # cos(pi v)
    sin = e.intrinsic("copysign", [e.sel(near, s_v, c_v), r])
    cos = e.sel(near, c_v, s_v)
    return sin, cos


def _lgamma_pos(e: _E, y: ir.Value) -> ir.Value:
    """lgamma(y) for y >= 0 (+inf at 0).  Below _LG_STIRLING, y is moved by exact unit steps
    into [5/4, 5/2) and lgamma(2 + t) = t R(t) there (t = y - 2 exact, so the zero at 2 keeps
    its relative accuracy); below 5/4, lgamma(y) = lgamma(y + 1) - log1p(y - 1) (the zero at 1
    likewise), below 1/2 lgamma(y + 2) - log1p(y) - log(y).  The logarithms are one log1p (of
    the product of the down-steps minus 1, exact, or of y - 1, or of y) and one log (of y,
    shared with Stirling's series above _LG_STIRLING)."""
    b = e.b
    z, prod = y, e.c(1.0)
    for _ in range(int(_LG_STIRLING) - 2):  # down from [5/2, 12) to [3/2, 5/2)
        down = b.fcmp_ordered(">=", z, e.c(2.5))
        z = e.sel(down, e.sub(z, e.c(1.0)), z)
        prod = e.sel(down, e.mul(prod, z), prod)
    low = e.lt(y, e.c(1.25))  # from here t = y - 2 >= -3/4: lgamma(y) = t R(t) directly
    tiny = e.lt(y, e.c(0.5))
    # t: the core's variable; below 3/2 lgamma(y) = lgamma(y + 1 or 2) - log1p(u) [- log y]
    t = e.sel(tiny, y, e.sel(low, e.sub(y, e.c(1.0)), e.sub(z, e.c(2.0))))
    core = e.mul(t, e.horner(t, _LG_R))
    u = e.sel(low, t, e.sub(prod, e.c(1.0)))
    l1 = _log1p(e, u)
    stirling = e.b.fcmp_ordered(">=", y, e.c(_LG_STIRLING))
    ly = _log(e, y)
    res = e.sel(low, e.sub(core, l1), e.add(core, l1))
    res = e.sel(tiny, e.sub(res, ly), res)
    w = e.div(e.c(1.0), e.mul(y, y))
    st = e.add(e.mul(e.sub(y, e.c(0.5)), e.sub(ly, e.c(1.0))),
               e.add(e.c(_LG_K), e.div(e.horner(w, _LG_S), y)))
    return e.sel(stirling, st, res)


@_wide
def _lgamma(e: _E, x: ir.Value) -> ir.Value:
    """log|Gamma(x)|: x > 0 directly, x <= 0 by reflection, log(pi / |sin(pi x)|) -
    lgamma(1 - x); +inf at the poles (0, the negative integers, every |x| >= 2^52 below 0)."""
    neg = e.lt(x, e.c(0.0))
    y = e.sel(neg, e.sub(e.c(1.0), x), x)
    pos = _lgamma_pos(e, y)
    r = e.sub(x, e.intrinsic("roundeven", [x]))  # exact; 0 at the poles
    s, _ = _sinpi_cospi(e, r)
    refl = e.sub(e.sub(e.c(math.log(math.pi)), _log(e, e.fabs(s))), pos)
    pole = e.b.or_(e.b.fcmp_ordered("==", r, e.c(0.0)), e.b.fcmp_ordered(">=", e.fabs(x), e.c(2.0 ** 52)))
    refl = e.sel(pole, e.c(math.inf), refl)
    res = e.sel(neg, refl, pos)
    return e.sel(e.isnan(x), x, res)


@_wide
def _digamma(e: _E, x: ir.Value) -> ir.Value:
    """psi(x), the algorithm of :mod:`lattice.ir.special` as selects: the recurrence's sum of
    1/(z + k) kept as one fraction num/den (a single division), the asymptotic series from
    special.SHIFT, the reflection's pi cot(pi x) from sin/cos(pi r)."""
    neg = e.lt(x, e.c(0.0))
    z = e.sel(neg, e.sub(e.c(1.0), x), x)
    num, den = e.c(0.0), e.c(1.0)
    for _ in range(special.SHIFT):
        low = e.lt(z, e.c(float(special.SHIFT)))
        num = e.sel(low, e.fma(num, z, den), num)  # num/den + 1/z = (num z + den) / (den z)
        den = e.sel(low, e.mul(den, z), den)
        z = e.sel(low, e.add(z, e.c(1.0)), z)
    w = e.div(e.c(1.0), e.mul(z, z))
    series = e.sub(e.sub(_log(e, z), e.div(e.c(0.5), z)),
                   e.mul(w, e.horner(w, tuple(reversed(special.DIGAMMA_SERIES)))))
    psi = e.sub(series, e.div(num, den))
    r = e.sub(x, e.intrinsic("roundeven", [x]))
    s, c = _sinpi_cospi(e, r)
    refl = e.sub(psi, e.div(e.mul(e.c(math.pi), c), s))
    refl = e.sel(e.b.fcmp_ordered("==", r, e.c(0.0)), e.c(math.nan), refl)
    res = e.sel(neg, refl, psi)
    res = e.sel(e.b.fcmp_ordered("==", x, e.c(0.0)), e.div(e.c(-1.0), x), res)
    return e.sel(e.isnan(x), x, res)


#: name -> (arity, body builder)
FUNCTIONS: dict[str, tuple[int, Callable[..., ir.Value]]] = {
    "exp": (1, _exp), "log": (1, _log), "log1p": (1, _log1p), "expm1": (1, _expm1),
    "tanh": (1, _tanh), "sigmoid": (1, _sigmoid), "softplus": (1, _softplus),
    "logaddexp": (2, _logaddexp),
    "erf": (1, _erf), "erfc": (1, _erfc), "lgamma": (1, _lgamma), "digamma": (1, _digamma),
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
