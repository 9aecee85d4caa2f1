"""Least squares: :class:`LinearRegression` and :class:`Ridge`."""
from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels as K
from ._base import (BaseEstimator, RegressorMixin, check_is_fitted, prepare_fit, validate_data)
from .solvers import solve_spd

__all__ = ["LinearRegression", "Ridge"]


class _LeastSquares(RegressorMixin, BaseEstimator):
    """Weighted least squares with an optional L2 penalty, from one compiled pass over X.

    The pass (:func:`~lattice.models._kernels.gram_pass`) accumulates the weighted Gram matrix
    of the *centred* data, ``sum w (x - xbar)(x - xbar)^T``, and ``sum w (x - xbar)(y - ybar)``
    (centring avoids the cancellation of forming ``X^T X`` first); the d x d system is then
    solved by Cholesky, or by the pseudo-inverse (the minimum-norm solution, as
    ``numpy.linalg.lstsq``) when it is singular.  The intercept is not penalized.
    """

    _alpha = 0.0

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "_LeastSquares":
        X, y, sw, _ = prepare_fit(self, X, y, sample_weight)
        n, d = X.shape
        alpha = float(self._penalty())
        sws = float(sw.sum())
        if self.fit_intercept and sws > 0:
            mx = (sw @ X) / sws
            my = float(sw @ y) / sws
        else:
            mx, my = np.zeros(d), 0.0
        G, c, _ = K.run_rows(K.gram_pass(), X, (y, sw), (np.ascontiguousarray(mx), my),
                             has_rows=False)
        coef, ok = solve_spd(G + alpha * np.eye(d), c, scaled=False)
        self.coef_ = coef
        self.intercept_ = float(my - mx @ coef) if self.fit_intercept else 0.0
        self.rank_ = int(np.linalg.matrix_rank(G + alpha * np.eye(d))) if d else 0
        self.n_iter_ = 1
        return self

    def _penalty(self) -> float:
        return 0.0

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, order="C", reset=False)
        return X @ self.coef_ + self.intercept_


class LinearRegression(_LeastSquares):
    """Ordinary (weighted) least squares, as ``sklearn.linear_model.LinearRegression``.

    For standard errors, p-values and a summary, fit ``GLM(family="gaussian")``: the same
    model with statsmodels-style inference.
    """

    def __init__(self, fit_intercept: bool = True) -> None:
        self.fit_intercept = fit_intercept


class Ridge(_LeastSquares):
    """L2-penalized least squares, as ``sklearn.linear_model.Ridge``: minimizes
    ``sum_i w_i (y_i - x_i.coef - b)^2 + alpha |coef|^2`` (``alpha`` not scaled by n)."""

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True) -> None:
        self.alpha = alpha
        self.fit_intercept = fit_intercept

    def _penalty(self) -> float:
        a = float(self.alpha)
        if not a >= 0:
            raise ValueError(f"alpha must be non-negative, got {self.alpha!r}")
        return a
