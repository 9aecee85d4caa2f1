"""Logistic regression, binary and multinomial: :class:`LogisticRegression`."""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from . import _kernels as K
from ._base import (BaseEstimator, ClassifierMixin, PerfectSeparationWarning,
                    check_classification_targets,
                    check_is_fitted, convergence_warning, prepare_fit, validate_data)
from ._objectives import GLMObjective, MultinomialObjective
from .families import Binomial
from .solvers import get_solver

__all__ = ["LogisticRegression"]


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """L2-penalized logistic regression, with scikit-learn's parametrization.

    Minimizes ``sum_i w_i logloss_i + |coef|^2 / (2 C)`` (the intercept is not penalized;
    ``C=np.inf`` for no penalty).  Two classes: the binomial model (one coefficient row);
    more: the multinomial (softmax) model with one row per class.

    Parameters: ``C`` (default 1.0), ``fit_intercept``, ``tol`` (relative gradient tolerance,
    default 1e-4), ``max_iter`` (default 100), ``solver`` ("lbfgs" default, "newton" -- IRLS,
    binary only --, "gd", "sgd", or a solver object), ``verbose``, ``warm_start``.

    Attributes: ``classes_``, ``coef_`` (n_rows x d), ``intercept_``, ``n_iter_``,
    ``converged_``.
    """

    def __init__(self, C: float = 1.0, fit_intercept: bool = True, tol: float = 1e-4,
                 max_iter: int = 100, solver: Any = "lbfgs", verbose: bool = False,
                 warm_start: bool = False) -> None:
        self.C = C
        self.fit_intercept = fit_intercept
        self.tol = tol
        self.max_iter = max_iter
        self.solver = solver
        self.verbose = verbose
        self.warm_start = warm_start

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> "LogisticRegression":
        C = float(self.C)
        if not C > 0:
            raise ValueError(f"C must be positive (np.inf for no penalty), got {self.C!r}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter!r}")
        X, y, sw, _ = prepare_fit(self, X, y, sample_weight, classifier=True)
        check_classification_targets(y)
        classes, yi = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError("LogisticRegression needs samples of at least 2 classes in the "
                             f"data, but the data contains only one class: {classes[0]!r}")
        self.classes_ = classes
        n, d = X.shape
        l2 = 0.0 if np.isinf(C) else 1.0 / C
        solver = get_solver(self.solver)
        k = len(classes)
        prev = self._previous(k, d)
        if k == 2:
            obj: Any = GLMObjective(X, yi.astype(np.float64), sw, np.broadcast_to(0.0, (n,)), Binomial(),
                                    bool(self.fit_intercept), l2)
            x0 = np.zeros(obj.n_params)
            if prev is not None:
                x0 = np.concatenate([prev[0].ravel(), prev[1].ravel()[:int(self.fit_intercept)]])
                obj.use_start_mu = False
        else:
            obj = MultinomialObjective(X, yi, sw, k, bool(self.fit_intercept), l2)
            x0 = np.zeros(obj.n_params)
            if prev is not None:
                x0 = np.concatenate([prev[0].ravel()] + ([prev[1]] if self.fit_intercept else []))
        res = solver.minimize(obj, x0, tol=float(self.tol), max_iter=int(self.max_iter),
                              verbose=bool(self.verbose))
        if not res.converged:
            convergence_warning(f"LogisticRegression (solver {getattr(solver, 'name', solver)!r})",
                                res, int(self.max_iter))
        x = res.x
        if k == 2:
            if self.fit_intercept:
                self.coef_, self.intercept_ = x[:-1].reshape(1, d), x[-1:].copy()
            else:
                self.coef_, self.intercept_ = x.reshape(1, d), np.zeros(1)
        else:
            W, b = obj.unpack(x)
            # softmax is unchanged by a common shift of the intercepts: report the centred one
            self.coef_, self.intercept_ = W.copy(), (b - b.mean()) if self.fit_intercept else b
        self.n_iter_ = np.array([max(1, int(res.n_iter))])
        self.converged_ = bool(res.converged)
        if l2 == 0.0:
            self._check_separation(X, yi, sw)
        return self

    def _check_separation(self, X: np.ndarray, yi: np.ndarray, sw: np.ndarray) -> None:
        """Without a penalty, a fit that classifies every training row correctly has found a
        separating hyperplane: then the likelihood has no maximum (it grows as the
        coefficients are scaled up)."""
        z = X @ self.coef_.T + self.intercept_
        pred = (z[:, 0] > 0).astype(int) if z.shape[1] == 1 else z.argmax(axis=1)
        keep = sw > 0
        if keep.any() and np.all(pred[keep] == yi[keep]):
            warnings.warn("Perfect separation: the classes are linearly separable, so with "
                          "C=inf the maximum-likelihood estimate does not exist (the loss keeps "
                          "decreasing as the coefficients grow) and the coefficients are not "
                          "meaningful. Use a finite C.", PerfectSeparationWarning, stacklevel=3)

    def _previous(self, k: int, d: int) -> Any:
        if not self.warm_start or not hasattr(self, "coef_"):
            return None
        rows = 1 if k == 2 else k
        if self.coef_.shape != (rows, d):
            return None
        return self.coef_, self.intercept_

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, order="C", reset=False)
        z = X @ self.coef_.T + self.intercept_
        return z.ravel() if z.shape[1] == 1 else z

    def predict_proba(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "coef_")
        X = validate_data(self, X, dtype=np.float64, order="C", reset=False)
        if len(self.classes_) == 2:
            z = X @ self.coef_[0] + self.intercept_[0]
            p1 = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic function without overflow
            return np.column_stack([1.0 - p1, p1])
        return K.multinomial_proba()(X, np.ascontiguousarray(self.coef_),
                                     np.ascontiguousarray(self.intercept_))

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        z = self.decision_function(X)
        idx = (z > 0).astype(int) if z.ndim == 1 else z.argmax(axis=1)
        return self.classes_[idx]
