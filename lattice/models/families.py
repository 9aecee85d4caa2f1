"""Distribution families for :class:`lattice.models.GLM`.

An exponential-dispersion family is described by methods written with lattice operations and
traced into the compiled per-(family, link) kernels (see :mod:`lattice.models._kernels`):

``variance(mu, t)``            V(mu)
``unit_deviance(y, mu, t)``    the deviance of one observation with unit prior weight
``start_mu(y, ybar)``          the starting mean of IRLS for one observation (``ybar``: the
                               mean of y); the first pass computes ``link(start_mu)`` per row

``t`` is the family's run-time parameter (``NegativeBinomial.alpha``, ``Tweedie.var_power``;
ignored by the others), passed as a kernel argument so that a new value reuses the compiled
kernel.  The rest is NumPy, run once per fit: ``check_y`` (the domain of the
response) and ``loglike_obs`` (the log-likelihood needs ``lgamma`` and, for Tweedie, Wright's
Bessel function, taken from SciPy).

Definitions -- deviance, log-likelihood, which families estimate the scale -- follow
statsmodels' ``genmod.families``, so that results agree with it.

A family can also be given by its log-likelihood alone, as a kernel: see :class:`LogLikelihood`.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np

import lattice as lt

from . import links as L

__all__ = ["Family", "Gaussian", "Binomial", "Poisson", "Gamma", "InverseGaussian",
           "NegativeBinomial", "Tweedie", "LogLikelihood"]

_EPS = 2.220446049250313e-16


_NAN = float("nan")


def _positive_mu(mu, dev):
    """The deviance where mu is in the domain (mu > 0), NaN elsewhere: an invalid mean makes
    the loss NaN, which the solvers' step halving steers away from."""
    return lt.where(mu > 0.0, dev, _NAN)


def _xlogy_ratio(y, mu):
    """y * log(y / mu), taken as 0 where y == 0."""
    return lt.where(y > 0.0, y * lt.log(lt.maximum(y, 1e-300) / mu), 0.0)


class Family:
    """Base class of the exponential-dispersion families."""

    #: links this family accepts (None: any)
    links: Optional[tuple[type, ...]] = None
    #: the dispersion is fixed at 1 (Binomial, Poisson, NegativeBinomial) rather than estimated
    fixed_scale = False
    #: the family's run-time parameter (see the module docstring)
    param = 0.0
    #: None for EDM families; a log-likelihood kernel for :class:`LogLikelihood`
    loglik = None
    #: the canonical link's class, for which g'(mu) = 1 / V(mu) (the IRLS weights simplify)
    canonical_link: Optional[type] = None

    def __init__(self, link: Optional[L.Link] = None) -> None:
        if link is None:
            link = self.default_link()
        if isinstance(link, type):
            raise TypeError(f"{type(self).__name__}: pass a link instance, e.g. link={link.__name__}()")
        if not isinstance(link, L.Link):
            raise TypeError(f"{type(self).__name__}: link must be a lattice.models.links.Link, "
                            f"got {type(link).__name__}")
        self.link = link

    def default_link(self) -> L.Link:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def kernel_key(self) -> str:
        return type(self).__qualname__

    @property
    def name(self) -> str:
        return type(self).__name__

    # --- traced (kernel) methods
    def variance(self, mu, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def unit_deviance(self, y, mu, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def start_mu(self, y, ybar):
        """IRLS's starting mean for a response y (``ybar``: the mean of all y), as statsmodels."""
        return (y + ybar) / 2.0

    # --- NumPy methods
    def starting_mu(self, y: np.ndarray) -> np.ndarray:
        """The starting means of all responses (NumPy; the fit computes them in its first pass)."""
        return self.start_mu(y, y.mean())

    def check_y(self, y: np.ndarray, weighted: bool) -> None:
        """Raise ValueError when y is outside the family's domain."""

    def loglike_obs(self, y: np.ndarray, mu: np.ndarray, pw: np.ndarray,
                    scale: float) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}(link={self.link!r})"

    def __eq__(self, other: Any) -> bool:
        return (type(self) is type(other) and self.link == other.link
                and self.param == other.param)

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.link, self.param))


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


class Gaussian(Family):
    """Normal responses; V(mu) = 1; canonical link Identity."""

    canonical_link = L.Identity

    def default_link(self) -> L.Link:
        return L.Identity()

    def variance(self, mu, t):
        return 1.0 + 0.0 * mu

    def unit_deviance(self, y, mu, t):
        return (y - mu) * (y - mu)

    def loglike_obs(self, y, mu, pw, scale):
        return -0.5 * (pw * (y - mu) ** 2 / scale + np.log(scale / pw) + math.log(2 * math.pi))


class Binomial(Family):
    """Binary (or, with prior weights = trials, proportion) responses; V(mu) = mu (1 - mu);
    canonical link Logit."""

    fixed_scale = True

    canonical_link = L.Logit

    def default_link(self) -> L.Link:
        return L.Logit()

    def variance(self, mu, t):
        m = lt.clip(mu, _EPS, 1.0 - _EPS)
        return m * (1.0 - m)

    def unit_deviance(self, y, mu, t):
        m = lt.clip(mu, _EPS, 1.0 - _EPS)
        dev = 2.0 * (_xlogy_ratio(y, m) + _xlogy_ratio(1.0 - y, 1.0 - m))
        return lt.where((mu >= 0.0) & (mu <= 1.0), dev, _NAN)

    def start_mu(self, y, ybar):
        return (y + 0.5) / 2.0

    def check_y(self, y, weighted):
        _require(bool(np.all((y >= 0) & (y <= 1))),
                 "Binomial: y must lie in [0, 1] (0/1 labels, or proportions of successes with "
                 f"the number of trials as sample_weight); got values in [{y.min():g}, {y.max():g}]")
        if not weighted:
            _require(bool(np.all((y == 0) | (y == 1))),
                     "Binomial: y must be 0/1 labels; proportions in (0, 1) need the number of "
                     "trials as sample_weight")

    def loglike_obs(self, y, mu, pw, scale):
        m = mu
        return pw * (y * np.log((m + 1e-20) / (1 - m + 1e-20)) + np.log(1 - m + 1e-20))


class Poisson(Family):
    """Counts; V(mu) = mu; canonical link Log."""

    fixed_scale = True

    canonical_link = L.Log

    def default_link(self) -> L.Link:
        return L.Log()

    def variance(self, mu, t):
        return mu

    def unit_deviance(self, y, mu, t):
        return _positive_mu(mu, 2.0 * (_xlogy_ratio(y, mu) - (y - mu)))

    def check_y(self, y, weighted):
        _require(bool(np.all(y >= 0)), f"Poisson: y must be non-negative counts; got min "
                                       f"{y.min():g}")

    def loglike_obs(self, y, mu, pw, scale):
        from scipy.special import gammaln
        return pw / scale * (y * np.log(mu) - mu - gammaln(y + 1))


class Gamma(Family):
    """Positive continuous responses; V(mu) = mu^2; canonical link InversePower."""

    def default_link(self) -> L.Link:
        return L.InversePower()

    def variance(self, mu, t):
        return mu * mu

    def unit_deviance(self, y, mu, t):
        r = lt.maximum(y / mu, _EPS)
        return _positive_mu(mu, 2.0 * (-lt.log(r) + (y - mu) / mu))

    def check_y(self, y, weighted):
        _require(bool(np.all(y > 0)), f"Gamma: y must be positive; got min {y.min():g}")

    def loglike_obs(self, y, mu, pw, scale):
        from scipy.special import gammaln
        r = np.clip(y / mu, _EPS, np.inf)
        ws = pw / scale
        return ws * np.log(ws * r) - ws * r - gammaln(ws) - np.log(y)


class InverseGaussian(Family):
    """Positive continuous responses; V(mu) = mu^3; canonical link InverseSquared."""

    def default_link(self) -> L.Link:
        return L.InverseSquared()

    def variance(self, mu, t):
        return mu * mu * mu

    def unit_deviance(self, y, mu, t):
        return _positive_mu(mu, (y - mu) * (y - mu) / (y * mu * mu))

    def check_y(self, y, weighted):
        _require(bool(np.all(y > 0)), f"InverseGaussian: y must be positive; got min {y.min():g}")

    def loglike_obs(self, y, mu, pw, scale):
        return -0.5 * (pw * (y - mu) ** 2 / (scale * y * mu ** 2)
                       + np.log(scale * y ** 3 / pw) + math.log(2 * math.pi))


class NegativeBinomial(Family):
    """Overdispersed counts with known ``alpha``: V(mu) = mu + alpha mu^2; default link Log
    (as statsmodels; the canonical link log(mu / (mu + 1/alpha)) is rarely used)."""

    fixed_scale = True

    def __init__(self, alpha: float = 1.0, link: Optional[L.Link] = None) -> None:
        alpha = float(alpha)
        if not alpha > 0:
            raise ValueError(f"NegativeBinomial: alpha must be positive, got {alpha}")
        self.alpha = alpha
        super().__init__(link)

    @property
    def param(self) -> float:  # type: ignore[override]
        return self.alpha

    def default_link(self) -> L.Link:
        return L.Log()

    def variance(self, mu, t):
        return mu + t * mu * mu

    def unit_deviance(self, y, mu, t):
        ia = 1.0 / t
        return _positive_mu(mu, 2.0 * (_xlogy_ratio(y, mu)
                                       - (y + ia) * lt.log((y + ia) / (mu + ia))))

    def check_y(self, y, weighted):
        _require(bool(np.all(y >= 0)), f"NegativeBinomial: y must be non-negative counts; got "
                                       f"min {y.min():g}")

    def loglike_obs(self, y, mu, pw, scale):
        from scipy.special import gammaln
        a = self.alpha
        ll = (y * np.log(a * mu) - (y + 1 / a) * np.log(1 + a * mu) + gammaln(y + 1 / a)
              - gammaln(1 / a) - gammaln(y + 1))
        return pw / scale * ll

    def __repr__(self) -> str:
        return f"NegativeBinomial(alpha={self.alpha:g}, link={self.link!r})"


class Tweedie(Family):
    """Tweedie family with variance power ``var_power`` (V(mu) = mu^p; p = 0 normal, 1 Poisson,
    2 Gamma, 1 < p < 2 compound Poisson-Gamma); default link Log (as statsmodels)."""

    def __init__(self, var_power: float = 1.5, link: Optional[L.Link] = None) -> None:
        p = float(var_power)
        if 0 < p < 1:
            raise ValueError(f"Tweedie: no distribution has 0 < var_power < 1 (got {p})")
        self.var_power = p
        super().__init__(link)

    @property
    def param(self) -> float:  # type: ignore[override]
        return self.var_power

    def default_link(self) -> L.Link:
        return L.Log()

    def variance(self, mu, t):
        return mu ** t

    def unit_deviance(self, y, mu, t):
        # the general formula has poles at p = 1 and p = 2: select the limits there
        poisson = 2.0 * (_xlogy_ratio(y, mu) - (y - mu))
        gamma = 2.0 * (-lt.log(lt.maximum(y / mu, _EPS)) + (y - mu) / mu)
        q1 = 1.0 - t
        q2 = 2.0 - t
        yp = lt.where(y > 0.0, lt.maximum(y, 1e-300) ** q2, 0.0)
        general = 2.0 * (yp / (q1 * q2) - y * mu ** q1 / q1 + mu ** q2 / q2)
        dev = lt.where(t == 1.0, poisson, lt.where(t == 2.0, gamma, general))
        return lt.where((t <= 0.0) | (mu > 0.0), dev, _NAN)

    def check_y(self, y, weighted):
        p = self.var_power
        if p >= 2:
            _require(bool(np.all(y > 0)), f"Tweedie(var_power={p:g}): y must be positive; got "
                                          f"min {y.min():g}")
        elif p >= 1:
            _require(bool(np.all(y >= 0)), f"Tweedie(var_power={p:g}): y must be non-negative; "
                                           f"got min {y.min():g}")

    def loglike_obs(self, y, mu, pw, scale):
        p = self.var_power
        if p == 1:
            return Poisson().loglike_obs(y, mu, pw, scale)
        if p == 2:
            return Gamma().loglike_obs(y, mu, pw, scale)
        if p < 1 or p > 2:
            return np.full_like(y, np.nan)
        # the series density of Dunn & Smyth through Wright's generalized Bessel function
        from scipy.special import log_wright_bessel
        phi = scale / pw
        theta = mu ** (1 - p) / (1 - p)
        kappa = mu ** (2 - p) / (2 - p)
        a = (2 - p) / (1 - p)
        ll = (y * theta - kappa) / phi
        pos = y > 0
        yp, php = y[pos], phi[pos] if np.ndim(phi) else phi
        x = ((p - 1) * php / yp) ** a / ((2 - p) * php)
        ll[pos] += -np.log(yp) + log_wright_bessel(-a, 0, x)
        return ll

    def __repr__(self) -> str:
        return f"Tweedie(var_power={self.var_power:g}, link={self.link!r})"


class LogLikelihood(Family):
    """A family given by its per-observation log-likelihood, written as a kernel.

    ``loglik`` is an ``@lt.kernel`` ``(y: lt.f64, eta: lt.f64) -> lt.f64`` (eta the linear
    predictor, offset included).  Fitting is Newton's method with the observed information:
    the first and second derivatives in eta come from ``lt.grad`` and ``lt.hessian`` of
    ``loglik``, compiled into the row loop -- nothing is differentiated by hand.  ``link``
    only maps eta to the mean for ``predict`` (default Identity: predict returns eta).

    The scale is fixed at 1, the reported deviance is ``-2 * llf`` and Pearson's chi2 is not
    defined.  Example (Poisson written by hand)::

        @lt.kernel
        def poisson_ll(y: lt.f64, eta: lt.f64) -> lt.f64:
            return y * eta - lt.exp(eta)

        GLM(family=LogLikelihood(poisson_ll, link=Log())).fit(X, y)
    """

    fixed_scale = True

    def __init__(self, loglik: Any, link: Optional[L.Link] = None, name: str = "") -> None:
        if not isinstance(loglik, lt.Kernel):
            loglik = lt.kernel(loglik)
        self.loglik = loglik
        self._name = name or getattr(loglik, "__name__", "LogLikelihood")
        super().__init__(link)

    def default_link(self) -> L.Link:
        return L.Identity()

    @property
    def name(self) -> str:
        return self._name

    @property
    def kernel_key(self) -> str:
        return f"LogLikelihood:{id(self.loglik)}"

    def start_mu(self, y, ybar):
        return y

    def loglike_obs(self, y, mu, pw, scale):
        raise NotImplementedError  # computed from the kernel pass (llf = -dev / 2)

    def __repr__(self) -> str:
        return f"LogLikelihood({self._name}, link={self.link!r})"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, LogLikelihood) and other.loglik is self.loglik

    def __hash__(self) -> int:
        return hash(id(self.loglik))


_BY_NAME = {
    "gaussian": Gaussian, "normal": Gaussian, "binomial": Binomial, "poisson": Poisson,
    "gamma": Gamma, "inverse_gaussian": InverseGaussian, "inversegaussian": InverseGaussian,
    "negative_binomial": NegativeBinomial, "negativebinomial": NegativeBinomial,
    "tweedie": Tweedie,
}


def get_family(family: Any) -> Family:
    """A Family from an instance or a name ("gaussian", "binomial", "poisson", ...)."""
    if isinstance(family, Family):
        return family
    if isinstance(family, type) and issubclass(family, Family):
        raise TypeError(f"pass a family instance, e.g. family={family.__name__}()")
    if isinstance(family, str):
        cls = _BY_NAME.get(family.lower())
        if cls is not None:
            return cls()
    raise ValueError(f"unknown family {family!r}: use a lattice.models.families instance or one "
                     f"of {sorted(set(_BY_NAME))}")
