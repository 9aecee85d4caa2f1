"""Link functions ``eta = g(mu)`` for generalized linear models.

A link is a small object whose methods are written with lattice operations, so that the same
code runs in two places:

* inside the compiled per-(family, link) kernels, where ``mu``/``eta`` are traced scalars and
  the method calls are inlined into the row loop;
* on NumPy arrays and numbers, through ``link(mu)`` and ``link.inverse_of(eta)``, which run a
  compiled elementwise kernel built from the same methods.

Every method takes the link's run-time parameter ``p`` (the exponent of :class:`Power`,
ignored by the others) as an argument instead of reading ``self``: a parameter read from
``self`` would be folded into the machine code as a constant, and a new value would compile a
new kernel.  Passed as an argument, ``Power(0.5)`` and ``Power(2)`` share one kernel.

Methods (all elementwise):

``link(mu, p)``          eta = g(mu)
``inverse(eta, p)``      mu = g^-1(eta)
``deriv(mu, p)``         g'(mu) = d eta / d mu
``inverse_deriv(eta, p)`` d mu / d eta

Names and conventions follow statsmodels' ``genmod.families.links`` (``InversePower`` is
1/mu, ``InverseSquared`` is 1/mu**2), so that results can be compared with it directly.
"""
from __future__ import annotations

import math

import lattice as lt

__all__ = ["Link", "Identity", "Log", "Logit", "Probit", "CLogLog", "InversePower",
           "InverseSquared", "Sqrt", "Power"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_EPS = 2.220446049250313e-16  # clip probabilities away from 0 and 1 before taking logs


class Link:
    """Base class. Subclasses define the four methods; ``param`` is the run-time parameter."""

    #: the run-time parameter passed as ``p`` (see the module docstring)
    param: float = 0.0

    def link(self, mu, p):  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse(self, eta, p):  # pragma: no cover - abstract
        raise NotImplementedError

    def deriv(self, mu, p):  # pragma: no cover - abstract
        raise NotImplementedError

    def inverse_deriv(self, eta, p):
        return 1.0 / self.deriv(self.inverse(eta, p), p)

    def eta_deriv(self, mu, eta, p):
        """g'(mu) where both mu and eta = g(mu) are known (the kernels call this one)."""
        return self.deriv(mu, p)

    # the kernel cache is keyed by this: one compiled kernel per (family class, link class)
    @property
    def kernel_key(self) -> str:
        return type(self).__qualname__

    def __call__(self, mu):
        """g(mu) for an array or a number (through a compiled elementwise kernel)."""
        from ._kernels import apply_link
        return apply_link(self, mu, inverse=False)

    def inverse_of(self, eta):
        """g^-1(eta) for an array or a number (through a compiled elementwise kernel)."""
        from ._kernels import apply_link
        return apply_link(self, eta, inverse=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.param == other.param

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.param))


class Identity(Link):
    """eta = mu."""

    def link(self, mu, p):
        return mu

    def inverse(self, eta, p):
        return eta

    def deriv(self, mu, p):
        return 1.0 + 0.0 * mu

    def inverse_deriv(self, eta, p):
        return 1.0 + 0.0 * eta


class Log(Link):
    """eta = log(mu)."""

    def link(self, mu, p):
        return lt.log(mu)

    def inverse(self, eta, p):
        return lt.exp(eta)

    def deriv(self, mu, p):
        return 1.0 / mu

    def inverse_deriv(self, eta, p):
        return lt.exp(eta)


class Logit(Link):
    """eta = log(mu / (1 - mu))."""

    def link(self, mu, p):
        m = lt.clip(mu, _EPS, 1.0 - _EPS)
        return lt.log(m / (1.0 - m))

    def inverse(self, eta, p):
        return lt.sigmoid(eta)

    def deriv(self, mu, p):
        m = lt.clip(mu, _EPS, 1.0 - _EPS)
        return 1.0 / (m * (1.0 - m))

    def inverse_deriv(self, eta, p):
        s = lt.sigmoid(eta)
        return s * (1.0 - s)


@lt.kernel
def _erfc_pos(z: lt.f64) -> lt.f64:
    """erfc(z) for z >= 0 to about 1e-13 relative, from exp and arithmetic only (lattice has
    no erf primitive).

    z < 2: the positive series erf(z) = 2/sqrt(pi) exp(-z^2) sum_k (2z^2)^k z / (2k+1)!!
    (no cancellation in the sum; 40 terms); z >= 2: the continued fraction
    erfc(z) = exp(-z^2)/sqrt(pi) / (z + (1/2)/(z + 1/(z + (3/2)/(z + ...)))) evaluated backwards
    from depth 50.  Both run (branch-free) on clipped arguments and one is selected.  A kernel,
    so that calling it inlines two compiled loops rather than 90 unrolled steps.
    """
    zs = lt.minimum(z, 2.0)
    t = zs
    s = zs
    for k in range(40):
        t = t * (2.0 * zs * zs) / (2.0 * k + 3.0)
        s = s + t
    small = 1.0 - _TWO_OVER_SQRT_PI * lt.exp(-zs * zs) * s
    zl = lt.maximum(z, 2.0)
    f = zl
    for k in range(50, 0, -1):
        f = zl + (0.5 * k) / f
    large = lt.exp(-zl * zl) * _INV_SQRT_PI / f
    return lt.where(z < 2.0, small, large)


@lt.kernel
def _ndtr(x: lt.f64) -> lt.f64:
    """Standard normal CDF, Phi(x) = erfc(-x / sqrt 2) / 2, accurate in both tails."""
    u = x / _SQRT2
    c = _erfc_pos(lt.abs(u))
    return lt.where(u < 0.0, 0.5 * c, 1.0 - 0.5 * c)


# Probit's methods are kernels (class attributes), so that a call from a kernel inlines them
# together with the erfc kernel they call.  (A plain Python helper cannot call a kernel while
# being traced: only calls written in a kernel's own source are inlined.)
@lt.kernel
def _probit_link(mu: lt.f64, p: lt.f64) -> lt.f64:
    # Newton's method on Phi(eta) = mu from the logistic approximation
    m = lt.clip(mu, 1e-15, 1.0 - 1e-15)
    eta = lt.log(m / (1.0 - m)) * 0.6266570686577501  # sqrt(pi/8)
    for _ in range(8):
        dens = lt.maximum(_INV_SQRT_2PI * lt.exp(-0.5 * eta * eta), 1e-300)
        eta = eta - (_ndtr(eta) - m) / dens
    return eta


@lt.kernel
def _probit_inverse(eta: lt.f64, p: lt.f64) -> lt.f64:
    return lt.clip(_ndtr(eta), _EPS, 1.0 - _EPS)


@lt.kernel
def _probit_eta_deriv(mu: lt.f64, eta: lt.f64, p: lt.f64) -> lt.f64:
    return 1.0 / lt.maximum(_INV_SQRT_2PI * lt.exp(-0.5 * eta * eta), 1e-300)


@lt.kernel
def _probit_deriv(mu: lt.f64, p: lt.f64) -> lt.f64:
    eta = _probit_link(mu, p)
    return 1.0 / lt.maximum(_INV_SQRT_2PI * lt.exp(-0.5 * eta * eta), 1e-300)


@lt.kernel
def _probit_inverse_deriv(eta: lt.f64, p: lt.f64) -> lt.f64:
    return _INV_SQRT_2PI * lt.exp(-0.5 * eta * eta)


class Probit(Link):
    """eta = Phi^-1(mu), the standard normal quantile.

    The normal CDF is computed inside the kernels from ``exp`` (series / continued fraction,
    about 1e-13 relative); the quantile (used for start values) by Newton's method on it.
    """

    link = _probit_link
    inverse = _probit_inverse
    deriv = _probit_deriv
    eta_deriv = _probit_eta_deriv
    inverse_deriv = _probit_inverse_deriv


class CLogLog(Link):
    """eta = log(-log(1 - mu)), the complementary log-log link."""

    def link(self, mu, p):
        m = lt.clip(mu, _EPS, 1.0 - _EPS)
        return lt.log(-lt.log1p(-m))

    def inverse(self, eta, p):
        return lt.clip(-lt.expm1(-lt.exp(eta)), _EPS, 1.0 - _EPS)

    def deriv(self, mu, p):
        m = lt.clip(mu, _EPS, 1.0 - _EPS)
        return 1.0 / ((m - 1.0) * lt.log1p(-m))

    def inverse_deriv(self, eta, p):
        return lt.exp(eta - lt.exp(eta))


class Power(Link):
    """eta = mu ** power (``Power(1)`` is the identity, ``Power(-1)`` the inverse)."""

    def __init__(self, power: float = 1.0) -> None:
        self.power = float(power)
        if self.power == 0.0:
            raise ValueError("Power(0) is not a link; use Log()")

    @property
    def param(self) -> float:  # type: ignore[override]
        return self.power

    def link(self, mu, p):
        return mu ** p

    def inverse(self, eta, p):
        return eta ** (1.0 / p)

    def deriv(self, mu, p):
        return p * mu ** (p - 1.0)

    def inverse_deriv(self, eta, p):
        return eta ** (1.0 / p - 1.0) / p

    def __repr__(self) -> str:
        return f"Power({self.power:g})"


class InversePower(Power):
    """eta = 1 / mu (the canonical link of the Gamma family)."""

    def __init__(self) -> None:
        super().__init__(-1.0)

    def link(self, mu, p):
        return 1.0 / mu

    def inverse(self, eta, p):
        return 1.0 / eta

    def deriv(self, mu, p):
        return -1.0 / (mu * mu)

    def inverse_deriv(self, eta, p):
        return -1.0 / (eta * eta)

    def __repr__(self) -> str:
        return "InversePower()"


class InverseSquared(Power):
    """eta = 1 / mu**2 (the canonical link of the inverse Gaussian family)."""

    def __init__(self) -> None:
        super().__init__(-2.0)

    def link(self, mu, p):
        return 1.0 / (mu * mu)

    def inverse(self, eta, p):
        return 1.0 / lt.sqrt(eta)

    def deriv(self, mu, p):
        return -2.0 / (mu * mu * mu)

    def inverse_deriv(self, eta, p):
        return -0.5 / (eta * lt.sqrt(eta))

    def __repr__(self) -> str:
        return "InverseSquared()"


class Sqrt(Power):
    """eta = sqrt(mu)."""

    def __init__(self) -> None:
        super().__init__(0.5)

    def link(self, mu, p):
        return lt.sqrt(mu)

    def inverse(self, eta, p):
        return eta * eta

    def deriv(self, mu, p):
        return 0.5 / lt.sqrt(mu)

    def inverse_deriv(self, eta, p):
        return 2.0 * eta

    def __repr__(self) -> str:
        return "Sqrt()"
