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


def _ndtr(x):
    """Standard normal CDF, Phi(x) = erfc(-x / sqrt 2) / 2, accurate in both tails."""
    return 0.5 * lt.erfc(-x / _SQRT2)


def _npdf(eta):
    """The standard normal density."""
    return _INV_SQRT_2PI * lt.exp(-0.5 * eta * eta)


class Probit(Link):
    """eta = Phi^-1(mu), the standard normal quantile.

    The normal CDF is ``erfc(-eta / sqrt 2) / 2`` (``lt.erfc``, libm's, within a few ulp in
    both tails).  The quantile of mu (clipped to [1e-15, 1 - 1e-15]): for q = min(mu, 1 - mu)
    (exact), Abramowitz & Stegun's rational approximation 26.2.23 (absolute error below
    4.5e-4), then three Halley steps on Phi(eta) = q, each of which at least triples the
    correct digits (the Python loop unrolls when traced); the upper half by symmetry.
    """

    def link(self, mu, p):
        m = lt.clip(mu, 1e-15, 1.0 - 1e-15)
        q = lt.minimum(m, 1.0 - m)
        t = lt.sqrt(-2.0 * lt.log(q))
        eta = (2.515517 + t * (0.802853 + t * 0.010328)) / (
            1.0 + t * (1.432788 + t * (0.189269 + t * 0.001308))) - t
        for _ in range(3):
            u = (_ndtr(eta) - q) / _npdf(eta)
            eta = eta - u / (1.0 + 0.5 * eta * u)
        return lt.where(m > 0.5, -eta, eta)

    def inverse(self, eta, p):
        return lt.clip(_ndtr(eta), _EPS, 1.0 - _EPS)

    def deriv(self, mu, p):
        return 1.0 / lt.maximum(_npdf(self.link(mu, p)), 1e-300)

    def eta_deriv(self, mu, eta, p):
        return 1.0 / lt.maximum(_npdf(eta), 1e-300)

    def inverse_deriv(self, eta, p):
        return _npdf(eta)


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
