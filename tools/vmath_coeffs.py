"""Derive the polynomial coefficients of lattice/codegen/vmath.py (needs mpmath).

    python tools/vmath_coeffs.py

Each kernel polynomial is a near-minimax (Chebyshev) fit computed at 60 decimal digits with
``mpmath.chebyfit``, then rounded to the target precision; the script prints the coefficients as
hex floats (the form pasted into vmath.py) with the fit error before and after rounding, measured
against the mpmath function on a dense grid.

Polynomials (r: reduced argument, z = s*s):
* ``g(r) = (exp(r) - 1 - r) / r**2`` on ``[-ln2/2, ln2/2]``  (exp and expm1: ``exp(r) = 1 + r +
  r*r*g(r)``).
* ``h(z) = (2*atanh(s)/s - 2) / z`` with ``s = f/(2+f)`` on ``z in [0, 0.0295]`` (log:
  ``log1p(f) = f - f*f/2 + s*(f*f/2 + z*h(z))``; |s| <= 3 - 2*sqrt(2) = 0.1716 for the mantissa
  normalised to [sqrt(1/2), sqrt(2))).
* ``t(z) = (tanh(x)/x - 1) / z`` with ``z = x*x`` on ``[0, atanh(1/2)**2]`` (tanh below 1/2:
  ``tanh(x) = x + x*z*t(z)``).

The special functions (f64 only: their f32 forms round the f64 result):

* ``erf(x)/x - 1`` in ``z = x*x`` on ``[0, 1]`` (degree 12);
* ``Q(a) = erfc(a) exp(a*a)`` in ``s = a - centre`` on ``[1/2, 1)``, ``[1, 2)``, ``[2, 7/2)``
  (centres 3/4, 3/2, 11/4) and ``a Q(a)`` in ``u = 1/a**2`` on ``[1/784, 4/49]`` (degree 16 each);
* ``lgamma(2 + t)/t`` on ``[-3/4, 1/2]`` (degree 20), Stirling's correction
  ``y (lgamma(y) - (y - 1/2) log y + y - log(2 pi)/2)`` in ``w = 1/y**2`` on ``[0, 1/144]`` (5);
* ``sin(pi v)/v`` and ``cos(pi v)`` in ``z = v*v`` on ``[0, 1/16]`` (6 and 7).

Degrees used in vmath.py: g 10 (f64) / 5 (f32), h 7 / 2, t 10 / 4.  The printed error is the
worst relative error of the rounded polynomial on a 2001-point grid; where it sits near the
target precision it is the rounding of the constant term (2/3, -1/3), which the evaluation
scheme multiplies by a term of at most ~10 % of the result.
"""
from __future__ import annotations

import mpmath as mp
import numpy as np

mp.mp.dps = 60
LN2H = mp.log(2) / 2


def g(r):
    return mp.mpf(1) / 2 if r == 0 else (mp.exp(r) - 1 - r) / r**2


def h(z):
    if z == 0:
        return mp.mpf(2) / 3
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) / s - 2) / z


def t(z):
    if z == 0:
        return -mp.mpf(1) / 3
    x = mp.sqrt(z)
    return (mp.tanh(x) / x - 1) / z


def fit(name, f, a, b, degree, ftype):
    poly = mp.chebyfit(f, [a, b], degree + 1)
    coeffs = list(reversed(poly))  # ascending powers
    rounded = [ftype(float(c)) for c in coeffs]
    worst = mp.mpf(0)
    for t in mp.linspace(a, b, 2001):
        p = mp.mpf(0)
        for c in reversed(rounded):
            p = p * t + mp.mpf(float(c))
        worst = max(worst, abs(p / f(t) - 1))
    print(f"{name} degree {degree} ({np.dtype(ftype).name}): max rel. error {float(worst):.3g}")
    print("    (" + ", ".join(repr(float(c).hex()) for c in rounded) + ")")


def _erf_m1(z):
    return 2 / mp.sqrt(mp.pi) - 1 if z == 0 else mp.erf(mp.sqrt(z)) / mp.sqrt(z) - 1


def _erfcx(a):
    return mp.erfc(a) * mp.exp(a * a)


def _lgamma_r(t):
    return mp.psi(0, 2) if t == 0 else mp.loggamma(2 + t) / t


def _stirling(w):
    if w == 0:
        return mp.mpf(1) / 12
    y = 1 / mp.sqrt(w)
    return (mp.loggamma(y) - ((y - mp.mpf(1) / 2) * mp.log(y) - y + mp.log(2 * mp.pi) / 2)) * y


def special_functions():
    fit("erf P", _erf_m1, mp.mpf(0), mp.mpf(1), 12, np.float64)
    for name, lo, hi in (("erfc A", 0.5, 1.0), ("erfc B", 1.0, 2.0), ("erfc C", 2.0, 3.5)):
        c = mp.mpf(lo + hi) / 2
        fit(name, lambda s, c=c: _erfcx(s + c), mp.mpf(lo) - c, mp.mpf(hi) - c, 16, np.float64)
    fit("erfc D", lambda u: _erfcx(1 / mp.sqrt(u)) / mp.sqrt(u), mp.mpf(1) / 784,
        mp.mpf(4) / 49, 16, np.float64)
    fit("lgamma R", _lgamma_r, -mp.mpf(3) / 4, mp.mpf(1) / 2, 20, np.float64)
    fit("lgamma S", _stirling, mp.mpf(0), mp.mpf(1) / 144, 5, np.float64)
    fit("sinpi", lambda z: mp.pi if z == 0 else mp.sin(mp.pi * mp.sqrt(z)) / mp.sqrt(z),
        mp.mpf(0), mp.mpf(1) / 16, 6, np.float64)
    fit("cospi", lambda z: mp.cos(mp.pi * mp.sqrt(z)), mp.mpf(0), mp.mpf(1) / 16, 7, np.float64)


if __name__ == "__main__":
    ZT = mp.atanh(mp.mpf(1) / 2) ** 2 * mp.mpf("1.001")
    fit("g", g, -LN2H, LN2H, 10, np.float64)
    fit("g", g, -LN2H, LN2H, 5, np.float32)
    fit("h", h, mp.mpf(0), mp.mpf("0.0295"), 7, np.float64)
    fit("h", h, mp.mpf(0), mp.mpf("0.0295"), 2, np.float32)
    fit("t", t, mp.mpf(0), ZT, 10, np.float64)
    fit("t", t, mp.mpf(0), ZT, 4, np.float32)
    special_functions()
