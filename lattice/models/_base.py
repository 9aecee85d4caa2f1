"""Shared pieces of the estimators: input validation, warnings, statistics, the summary table."""
from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Sequence

import numpy as np

from . import _kernels as K

try:  # scikit-learn gives the estimator protocol (get_params/set_params/clone, tags, checks)
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "lattice.models needs scikit-learn (>= 1.6) and SciPy: install them with "
        "`pip install 'lattice[models]'` (or `pip install scikit-learn scipy`)") from exc

__all__ = ["BaseEstimator", "ClassifierMixin", "RegressorMixin", "ConvergenceWarning",
           "PerfectSeparationWarning", "check_is_fitted", "validate_data",
           "check_classification_targets", "prepare_fit", "vector_arg", "check_finite"]


class PerfectSeparationWarning(UserWarning):
    """The classes are (quasi-)separable: the unpenalized MLE does not exist."""


def check_finite(X: np.ndarray, what: str = "X") -> None:
    """ValueError naming the first non-finite entry (checked with one compiled pass)."""
    if X.size == 0:
        return
    X2 = X if X.ndim == 2 else X.reshape(-1, 1)
    if np.isfinite(K.all_finite()(np.ascontiguousarray(X2))):
        return
    bad = np.argwhere(~np.isfinite(X2))[0]
    v = X2[tuple(bad)]
    where = f"row {bad[0]}, column {bad[1]}" if X.ndim == 2 else f"index {bad[0]}"
    raise ValueError(f"{what} contains {'NaN' if np.isnan(v) else 'infinity'} at {where}: "
                     "remove or impute non-finite values before fitting")


def vector_arg(v: Any, n: int, name: str, default: Optional[float]) -> Optional[np.ndarray]:
    """A length-n float64 vector from an optional argument, with a clear error."""
    if v is None:
        return None if default is None else np.full(n, float(default))
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 0:
        a = np.full(n, float(a))
    if a.ndim != 1 or a.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array with one value per sample ({n}), got shape "
                         f"{a.shape}")
    check_finite(a, name)
    return np.ascontiguousarray(a)


def prepare_fit(est: Any, X: Any, y: Any, sample_weight: Any, *, classifier: bool = False,
                finite_X: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Validate X, y, sample_weight through scikit-learn (feature names, n_features_in_, the
    errors its checks expect), as C-contiguous float64.  Returns (X, y, sw, weighted).

    ``finite_X=False`` leaves X's NaN/infinity check to the caller, whose own pass over X
    reveals a non-finite entry (then :func:`check_finite` names it): one read of X less."""
    X, y = validate_data(est, X, y, dtype=np.float64, order="C", y_numeric=not classifier,
                         ensure_min_samples=1, ensure_all_finite=bool(finite_X))
    if not classifier:
        y = np.ascontiguousarray(y, dtype=np.float64)
        check_finite(y, "y")
    weighted = sample_weight is not None
    if not weighted:
        # all ones as a read-only view (stride 0): no n-sized array to allocate and fault in
        return X, y, np.broadcast_to(np.float64(1.0), (X.shape[0],)), False
    sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
    return X, y, np.ascontiguousarray(sw), weighted


def convergence_warning(what: str, res: Any, max_iter: int) -> None:
    warnings.warn(f"{what} did not converge in {max_iter} iterations: last |gradient|_inf = "
                  f"{res.grad_norm:.3e}, loss = {res.fun:.10g}. Increase max_iter, loosen tol, "
                  "or standardize the features.", ConvergenceWarning, stacklevel=3)


# ---------------------------------------------------------------------------- statistics
def norm_sf(z: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr
    return ndtr(-np.asarray(z, dtype=np.float64))


def norm_ppf(q: float) -> float:
    from scipy.special import ndtri
    return float(ndtri(q))


def _fmt(v: float, w: int = 10) -> str:
    if not np.isfinite(v):
        return f"{v!s:>{w}}"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:>{w}.3e}"
    return f"{v:>{w}.4f}"


def summary_table(title: str, info: Sequence[tuple[str, str]], names: Sequence[str],
                  params: np.ndarray, bse: np.ndarray, stat: np.ndarray, pvals: np.ndarray,
                  ci: np.ndarray, stat_name: str = "z") -> str:
    width = 78
    lines = [title.center(width), "=" * width]
    half = (len(info) + 1) // 2
    left, right = info[:half], info[half:]
    for k in range(half):
        a = f"{left[k][0] + ':':<18}{left[k][1]:>19}"
        b = f"{right[k][0] + ':':<20}{right[k][1]:>19}" if k < len(right) else ""
        lines.append(f"{a}   {b}".rstrip())
    lines.append("=" * width)
    nw = max([12] + [len(n) for n in names])
    lines.append(f"{'':<{nw}}{'coef':>11}{'std err':>11}{stat_name:>9}{'P>|' + stat_name + '|':>9}"
                 f"{'[0.025':>11}{'0.975]':>11}")
    lines.append("-" * max(width, nw + 62))
    for k, n in enumerate(names):
        p = pvals[k]
        pv = f"{p:>9.3f}" if np.isfinite(p) else f"{'nan':>9}"
        lines.append(f"{n:<{nw}}{_fmt(params[k], 11)}{_fmt(bse[k], 11)}{stat[k]:>9.3f}{pv}"
                     f"{_fmt(ci[k, 0], 11)}{_fmt(ci[k, 1], 11)}")
    lines.append("=" * max(width, nw + 62))
    return "\n".join(lines)
