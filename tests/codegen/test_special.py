"""``lt.erf`` and ``lt.erfc``: compiled (strict and fastmath), interpreted and constant-folded
values against a 70-digit decimal evaluation over the whole range (erfc's tail to its
underflow), for f64 and f32; derivatives to second order against the closed forms.

(SciPy's erfc is not the oracle in the tail: from x = 5 to 26.5 it is 5.7e-14 off in relative
terms, where libm's is within 3e-16 of the decimal value.)"""
from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest

import lattice as lt

from conftest import assert_same

_PI = Decimal("3.14159265358979323846264338327950288419716939937510582097494459230781640628")


def _ref(x: float) -> tuple[float, float]:
    """erf(x), erfc(x) to about 65 digits in decimal arithmetic, rounded to double: the Taylor
    series below 3, the continued fraction of erfc (2000 deep) above."""
    if math.isnan(x):
        return math.nan, math.nan
    if math.isinf(x):
        return math.copysign(1.0, x), (0.0 if x > 0 else 2.0)
    with localcontext() as ctx:
        ctx.prec = 70
        a = abs(Decimal(x))
        if a < 3:
            term, n, s = a, 0, Decimal(0)
            while True:
                add = term / (2 * n + 1)
                s += add
                if abs(add) < Decimal(10) ** -65:
                    break
                n += 1
                term = -term * a * a / n
            erf = 2 / _PI.sqrt() * s
            erfc = 1 - erf
        else:
            f = a
            for k in range(2000, 0, -1):
                f = a + (Decimal(k) / 2) / f
            erfc = (-(a * a)).exp() / _PI.sqrt() / f
            erf = 1 - erfc
        if x < 0:
            erf, erfc = -erf, 2 - erfc
    return (math.copysign(0.0, x) if x == 0 else float(erf)), float(erfc)


def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.array([_ref(float(v)) for v in np.ravel(x)]).reshape(np.shape(x) + (2,))
    return pairs[..., 0], pairs[..., 1]


def _both(x: lt.f64["n"]) -> (lt.f64["n"], lt.f64["n"]):
    return lt.erf(x), lt.erfc(x)


def _both32(x: lt.f32["n"]) -> (lt.f32["n"], lt.f32["n"]):
    return lt.erf(x), math.erfc(x)  # math.erf/erfc inside a kernel are lattice's


_X = np.concatenate([np.linspace(-30, 30, 601), np.linspace(-1e-3, 1e-3, 21),
                     [0.0, -0.0, 5e-324, 1e-300, 2.999, 3.0, 26.5, 27.2, -27.2,
                      np.inf, -np.inf, np.nan]])
_REF = reference(_X)
_ULP = np.finfo(np.float64).eps


@pytest.mark.parametrize("fastmath", [False, True])
def test_values_f64(fastmath):
    # libm's: within 4 ulp of the decimal values everywhere, erfc's tail included
    k = lt.kernel(fastmath=fastmath)(_both)
    erf, erfc = k(_X)
    assert_same(erf, _REF[0], rtol=4 * _ULP, atol=0)
    assert_same(erfc, _REF[1], rtol=4 * _ULP, atol=0)
    assert_same(k.interpret(_X), _REF, rtol=4 * _ULP, atol=0)
    assert np.signbit(erf[(_X == 0) & np.signbit(_X)]).all()  # erf(-0) = -0


def test_values_f32():
    k = lt.kernel(_both32)
    x = _X.astype(np.float32)
    erf, erfc = k(x)
    assert erf.dtype == erfc.dtype == np.float32
    want = reference(x.astype(np.float64))
    f32 = np.finfo(np.float32)
    assert_same(erf, want[0].astype(np.float32), rtol=4 * f32.eps, atol=0)
    assert_same(erfc, want[1].astype(np.float32), rtol=4 * f32.eps,
                atol=4 * f32.smallest_subnormal)


def test_python_scalars_fold_and_integers_convert():
    assert lt.erf(0.5) == pytest.approx(_ref(0.5)[0], rel=2 * _ULP)
    assert lt.erfc(np.float32(2.0)).dtype == np.float32

    @lt.kernel
    def on_ints(n: lt.i64["m"]) -> lt.f64["m"]:
        return lt.erfc(n)
    assert_same(on_ints(np.arange(-3, 4)), reference(np.arange(-3.0, 4.0))[1], rtol=4 * _ULP)


def _loss(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(lt.erf(x) * 3.0 + lt.erfc(x * 0.5))


def test_gradient_and_hessian():
    x = np.linspace(-3, 3, 13)
    g = lt.grad(lt.kernel(_loss))(x)
    gauss = 2 / np.sqrt(np.pi)
    want = 3 * gauss * np.exp(-x * x) - 0.5 * gauss * np.exp(-x * x / 4)
    assert_same(g, want, rtol=1e-13, atol=1e-15)
    h = lt.hessian(lt.kernel(_loss))(x)
    # d2/dx2 erf = -2x erf'(x); erfc(x/2)'' = (x/2) * gauss * exp(-x^2/4) / 2
    want_h = 3 * gauss * (-2 * x) * np.exp(-x * x) + 0.25 * x * gauss * np.exp(-x * x / 4)
    assert_same(h, np.diag(want_h), rtol=1e-12, atol=1e-14)
