"""The digamma and trigamma functions: the algorithm, in NumPy, that the compiled code repeats.

There is no libm digamma, so lattice evaluates psi = Gamma'/Gamma and psi' (``polygamma(1, x)``)
itself, in double precision (f32 inputs are widened, the result rounded back):

* reflection for ``x < 0``: ``psi(x) = psi(1 - x) - pi cot(pi x)``, ``psi'(x) = -psi'(1 - x) +
  pi^2 / sin^2(pi x)``; ``pi x`` is reduced first (``r = x - floor(x)``, exact, then into
  ``(-1/2, 1/2]``), so the poles and large ``|x|`` keep full accuracy;
* the recurrence ``psi(x) = psi(x + 1) - 1/x`` (``psi'(x) = psi'(x + 1) + 1/x^2``) up to
  ``z >= SHIFT`` (at most ``SHIFT`` steps: written as a fixed chain of selects, so the lowering is
  straight-line code the loop vectoriser can widen);
* the asymptotic series at ``z >= SHIFT``, where its first omitted term is below 1e-16 relative.

Special values (those of ``scipy.special``): ``psi(+-0) = -+inf``, ``psi`` is NaN at the negative
integers and at ``-inf``, ``psi(inf) = inf``; ``psi'`` is ``+inf`` at 0, at the negative
integers and at ``-inf``, and 0 at ``inf``.  Near psi's positive root (1.4616...) the result
carries an absolute, not relative, error of a few ulp of 1.
"""
from __future__ import annotations

import numpy as np

__all__ = ["SHIFT", "DIGAMMA_SERIES", "TRIGAMMA_SERIES", "digamma", "trigamma"]

#: the recurrence raises the argument to at least this before the asymptotic series
SHIFT = 10

#: psi(z) = log z - 1/(2z) - w * P(w), w = 1/z^2, P's coefficients B_2k / (2k) from the
#: highest power down (Horner order)
DIGAMMA_SERIES = (-3617 / 8160, 1 / 12, -691 / 32760, 1 / 132, -1 / 240, 1 / 252, -1 / 120,
                  1 / 12)

#: psi'(z) = 1/z + 1/(2 z^2) + w/z * Q(w), Q's coefficients B_2k from the highest power down
TRIGAMMA_SERIES = (43867 / 798, -3617 / 510, 7 / 6, -691 / 2730, 5 / 66, -1 / 30, 1 / 42,
                   -1 / 30, 1 / 6)


def _horner(coeffs: tuple[float, ...], w: np.ndarray) -> np.ndarray:
    acc = np.full_like(w, coeffs[0])
    for c in coeffs[1:]:
        acc = acc * w + c
    return acc


def _reduced(x: np.ndarray) -> np.ndarray:
    """``r`` in [-1/2, 1/2] with ``x - r`` an integer: ``x - rint(x)``, exact (``x`` itself
    below 1/2 in magnitude, else Sterbenz), where ``x - floor(x)`` would round tiny ``x < 0``."""
    return x - np.rint(x)


def _shifted(x: np.ndarray, power: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``x >= 0`` or ``x < 0`` reflected to ``1 - x``: (z, sum of (1/(x + k))^power over
    the steps taken, w = 1/z^2) with z = x + steps >= SHIFT, in the lowering's order of
    operations."""
    z = np.where(x < 0, 1.0 - x, x)
    acc = np.zeros_like(x)
    for _ in range(SHIFT):
        low = z < SHIFT
        inv = 1.0 / z
        acc = acc + np.where(low, inv if power == 1 else inv * inv, 0.0)
        z = np.where(low, z + 1.0, z)
    return z, acc, 1.0 / (z * z)


def digamma(x: np.ndarray) -> np.ndarray:
    """psi(x) elementwise, computed in float64 (the caller rounds to its dtype)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        z, acc, w = _shifted(x, 1)
        psi = np.log(z) - 0.5 / z - w * _horner(DIGAMMA_SERIES, w) - acc
        r = _reduced(x)
        refl = np.pi / np.tan(np.pi * r)
        out = np.where(x < 0, np.where(r == 0, np.nan, psi - refl), psi)
        return np.where(x == 0, -1.0 / x, out)


def trigamma(x: np.ndarray) -> np.ndarray:
    """psi'(x) = polygamma(1, x) elementwise, computed in float64."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        z, acc, w = _shifted(x, 2)
        inv = 1.0 / z
        psi1 = inv + 0.5 * w + w * inv * _horner(TRIGAMMA_SERIES, w) + acc
        s = np.sin(np.pi * _reduced(x))
        out = np.where(x < 0, np.pi * np.pi / (s * s) - psi1, psi1)
        return np.where(x == -np.inf, np.inf, out)
