"""Generalized linear models: :class:`GLM`."""
from __future__ import annotations

import warnings
from typing import Any, Optional

import numpy as np

from . import _kernels as K
from ._base import (BaseEstimator, ConvergenceWarning, PerfectSeparationWarning, RegressorMixin,
                    check_finite, check_is_fitted, convergence_warning, norm_ppf, norm_sf,
                    prepare_fit, summary_table, validate_data, vector_arg)
from ._objectives import GLMObjective
from .families import Binomial, Family, Gaussian, LogLikelihood, get_family
from .links import Identity, Log
from .solvers import Newton, _pinv_solve, get_solver, spd_rank

__all__ = ["GLM"]


def _offset(offset: Any, exposure: Any, family: Family, n: int) -> tuple[np.ndarray, bool]:
    off = vector_arg(offset, n, "offset", None)
    if exposure is not None:
        if not isinstance(family.link, Log):
            raise ValueError(f"exposure is only meaningful with a Log link (it enters as "
                             f"log(exposure) in the offset); the link is {family.link!r}. Pass "
                             "offset= instead.")
        ex = vector_arg(exposure, n, "exposure", None)
        if np.any(ex <= 0):
            raise ValueError("exposure must be positive")
        lo = np.log(ex)
        off = lo if off is None else off + lo
    if off is None:  # zeros as a read-only view (stride 0): nothing to allocate
        return np.broadcast_to(np.float64(0.0), (n,)), False
    return np.ascontiguousarray(off), True


#: fitted attributes computed on first access (see ``GLM.__getattr__``), in groups computed
#: together: the likelihood statistics (a pass for the fitted means, the null model's fit),
#: and the covariance when the fit ended on a first-order pass (a pass for X^T W X)
_LAZY_STATS = ("llf_", "aic_", "bic_", "null_deviance_")
_LAZY_COV = ("cov_params_", "bse_", "tvalues_", "pvalues_")


class GLM(RegressorMixin, BaseEstimator):
    """A generalized linear model fitted by maximum likelihood, with an optional L2 penalty.

    Parameters
    ----------
    family : Family instance or name, default "gaussian"
        The response distribution and its link, e.g. ``Poisson()``, ``Gamma(link=Log())``,
        ``Tweedie(var_power=1.5)``, or a :class:`~lattice.models.families.LogLikelihood` built
        from a log-likelihood kernel.  Names: "gaussian", "binomial", "poisson", "gamma",
        "inverse_gaussian", "negative_binomial", "tweedie" (each with its default link).
    alpha : float, default 0
        L2 penalty strength on the coefficients (not the intercept), on scikit-learn's scale:
        the objective is ``sum_i w_i dev_i / (2 sum_i w_i) + alpha/2 |coef|^2``, so
        ``GLM(Poisson(), alpha=a)`` matches ``PoissonRegressor(alpha=a)``.
    fit_intercept : bool, default True
    solver : "irls" (Newton with Fisher scoring), "lbfgs", "gd", "sgd", or a solver object
        (see :mod:`lattice.models.solvers`).
    tol : float, default 1e-8
        Convergence tolerance (for IRLS: relative change of the deviance, as R's ``glm``).
    max_iter : int, default 100
    verbose : bool, default False
        Print the deviance and gradient norm of every iteration (SGD: a progress bar).
    warm_start : bool, default False
        Start from the previous fit's parameters.

    Attributes after ``fit``: ``coef_``, ``intercept_``, ``params_`` (intercept first when
    fitted), ``bse_``, ``tvalues_``, ``pvalues_``, ``cov_params_``, ``deviance_``,
    ``null_deviance_``, ``pearson_chi2_``, ``llf_``, ``aic_``, ``bic_``, ``scale_``,
    ``df_model_``, ``df_resid_``, ``nobs_``, ``n_iter_``, ``converged_``, ``family_``.
    ``llf_``, ``aic_``, ``bic_`` and ``null_deviance_`` are computed on first access (each
    needs another pass over the data), as statsmodels computes them; so are ``cov_params_``,
    ``bse_``, ``tvalues_`` and ``pvalues_`` when IRLS checked its last step with a first-order
    pass (then ``X^T W X`` at the solution takes one more pass, when first asked for).
    Definitions follow statsmodels' ``GLM`` (``var_weights`` semantics for ``sample_weight``;
    Pearson scale for Gaussian, Gamma, InverseGaussian and Tweedie; normal-theory p-values).
    """

    def __init__(self, family: Any = "gaussian", alpha: float = 0.0, fit_intercept: bool = True,
                 solver: Any = "irls", tol: float = 1e-8, max_iter: int = 100,
                 verbose: bool = False, warm_start: bool = False) -> None:
        self.family = family
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.verbose = verbose
        self.warm_start = warm_start

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any, sample_weight: Any = None, offset: Any = None,
            exposure: Any = None, start_params: Any = None) -> "GLM":
        """Fit the model.

        ``sample_weight`` are prior weights (R's ``glm`` weights, statsmodels' ``var_weights``);
        ``offset`` is added to the linear predictor; ``exposure`` adds ``log(exposure)`` (Log
        link only); ``start_params`` (intercept first when fitted) replaces the default start.
        """
        family = get_family(self.family)
        if self.alpha is None or not float(self.alpha) >= 0:
            raise ValueError(f"alpha must be a non-negative number, got {self.alpha!r}")
        if int(self.max_iter) < 1:
            raise ValueError(f"max_iter must be at least 1, got {self.max_iter!r}")
        solver = get_solver(self.solver)
        # IRLS: a NaN or infinity anywhere in X makes the diagonal of X^T W X non-finite in
        # every pass, so the fit itself reveals it; X's separate finite check is left out
        defer = isinstance(solver, Newton)
        X, y, sw, weighted = prepare_fit(self, X, y, sample_weight, finite_X=not defer)
        n, d = X.shape
        family.check_y(y, weighted)
        off, has_off = _offset(offset, exposure, family, n)
        self.family_ = family
        p = d + int(bool(self.fit_intercept))
        l2 = float(self.alpha) * float(sw.sum())
        obj = GLMObjective(X, y, sw, off, family, bool(self.fit_intercept), l2)
        x0 = np.zeros(p)
        if start_params is not None:
            sp = np.asarray(start_params, dtype=np.float64).ravel()
            if sp.shape != (p,):
                raise ValueError(f"start_params must have {p} values (intercept first), got "
                                 f"{sp.shape[0]}")
            x0 = self._internal(sp)
            obj.use_start_mu = False
        elif self.warm_start and hasattr(self, "params_") and len(self.params_) == p:
            x0 = self._internal(self.params_)
            obj.use_start_mu = False
        if self.verbose:
            sname = self.solver if isinstance(self.solver, str) else getattr(solver, "name", solver)
            print(f"GLM({family!r}) on {n} x {d}, solver {sname}")
        try:
            res = solver.minimize(obj, x0, tol=float(self.tol), max_iter=int(self.max_iter),
                                  verbose=bool(self.verbose))
        except Exception:
            if defer:
                check_finite(X, "X")  # the clear error when X is the cause
            raise
        if defer:  # IRLS made X^T W X: any of them shows a non-finite X on its diagonal
            H_any = obj.last[1][0] if obj.last is not None else obj.evaluate(res.x)[0]
            if not np.all(np.isfinite(np.diag(H_any))):
                check_finite(X, "X")  # raises when X is the cause, else the fit goes on
        self.n_iter_ = max(1, int(res.n_iter))
        self.converged_ = bool(res.converged)
        self.grad_norm_ = res.grad_norm
        if not res.converged:
            convergence_warning(f"GLM({family!r}) with solver {getattr(solver, 'name', solver)!r}",
                                res, int(self.max_iter))
        self._finish(obj, res.x, X, y, sw, off, has_off, family)
        return self

    def _internal(self, params: np.ndarray) -> np.ndarray:
        """Public order (intercept first) -> internal (intercept last)."""
        if self.fit_intercept:
            return np.concatenate([params[1:], params[:1]])
        return params.copy()

    def _finish(self, obj: GLMObjective, x: np.ndarray, X: np.ndarray, y: np.ndarray,
                sw: np.ndarray, off: np.ndarray, has_off: bool, family: Family) -> None:
        n, d = X.shape
        if not np.all(np.isfinite(x)):
            raise FloatingPointError("the fit diverged (non-finite coefficients): check the "
                                     "family/link for this response, or standardize the features")
        first = obj.first_order_stats(x)
        if first is not None and obj.last is not None and not np.array_equal(obj.last[0], x):
            # the fit ended on a first-order pass at x: its statistics, and the rank of the last
            # X^T W X (near x, with positive weights on the same rows); cov at x when asked for
            dev, chi2, counts = first
            H, exact = obj.last[1][0], False
        else:
            H, _, _, dev, chi2 = obj.evaluate(x)
            counts, exact = obj.last_counts, True
        Hp = H + np.diag(obj.pen)
        p = len(x)
        rank = spd_rank(Hp)
        self.rank_ = rank
        self.df_model_ = float(rank - 1)
        self.df_resid_ = float(n - rank)
        self.nobs_ = n
        self.deviance_ = dev
        self.pearson_chi2_ = chi2
        if family.fixed_scale:
            scale = 1.0
        elif self.df_resid_ > 0:
            scale = chi2 / self.df_resid_
        else:
            scale = np.nan
        self.scale_ = float(scale)
        order = (np.r_[p - 1, 0:p - 1] if self.fit_intercept else np.arange(p)).astype(int)
        self.params_ = x[order].copy()
        for name in _LAZY_STATS + _LAZY_COV:
            self.__dict__.pop(name, None)
        self._lazy: dict[tuple, Any] = {}

        def covariance(Hp: np.ndarray) -> dict[str, Any]:
            cov = (_pinv_solve(Hp, np.eye(p)) if p else np.zeros((0, 0))) * self.scale_
            cov = cov[np.ix_(order, order)]
            with np.errstate(invalid="ignore", divide="ignore"):
                bse = np.sqrt(np.diag(cov))
                tv = self.params_ / bse
            return {"cov_params_": cov, "bse_": bse, "tvalues_": tv,
                    "pvalues_": 2.0 * norm_sf(np.abs(tv))}
        if exact:
            self.__dict__.update(covariance(Hp))
        else:
            self._lazy[_LAZY_COV] = lambda: covariance(obj.evaluate(x)[0] + np.diag(obj.pen))
        if self.fit_intercept:
            self.coef_ = x[:-1].copy()
            self.intercept_ = float(x[-1])
        else:
            self.coef_ = x.copy()
            self.intercept_ = 0.0
        coef, b0, lp = np.ascontiguousarray(self.coef_), self.intercept_, float(family.link.param)

        def fitted_mean() -> np.ndarray:  # one more compiled pass over X
            return K.glm_predict(family.link)(X, coef, b0, off, lp)

        def lazy_stats() -> dict[str, float]:
            llf = self._llf(family, y, fitted_mean(), sw, dev, n)
            return {"llf_": llf, "aic_": -2.0 * llf + 2.0 * rank,
                    "bic_": -2.0 * llf + rank * np.log(n),
                    "null_deviance_": self._null_deviance(y, sw, off, has_off, family)}
        self._lazy[_LAZY_STATS] = lazy_stats
        if isinstance(family, Binomial) and obj.l2 == 0.0 and n > 0:
            n_pos = int(np.count_nonzero(sw > 0))
            if counts is None:  # the row pass counts nothing: from the fitted means
                resid = np.abs(y - fitted_mean())[sw > 0]
                counts = np.array([np.sum(resid >= 0.5), np.sum(resid >= 1e-6),
                                   np.sum(resid == 0.0)], dtype=np.float64)
            n_half, n_big, n_zero = (int(c) for c in counts)
            if n_half == 0 and np.all((y == 0) | (y == 1)):
                n_big, n_zero = 0, n_pos  # every row on its label's side: linearly separable
            # complete separation: every fitted probability equals its label; quasi: some do
            # to the last bit (|eta| > ~36) and the iteration did not settle
            perfect = n_big == 0
            if n_pos and (perfect or (n_zero > 0 and not self.converged_)):
                kind = "Perfect" if perfect else "Quasi-perfect"
                warnings.warn(f"{kind} separation: some fitted probabilities are 0 or 1 to "
                              "rounding, so the maximum-likelihood estimate does not exist "
                              "(coefficients grow without bound) and the reported coefficients "
                              "and standard errors are not meaningful. Use an L2 penalty "
                              "(alpha > 0, or a finite C) for a finite answer.",
                              PerfectSeparationWarning, stacklevel=3)

    def _llf(self, family: Family, y: np.ndarray, mu: np.ndarray, sw: np.ndarray, dev: float,
             n: int) -> float:
        if isinstance(family, LogLikelihood):
            return -0.5 * dev
        scale = self.scale_
        if isinstance(family, Gaussian) and isinstance(family.link, Identity):
            scale = float(np.sum(sw * (y - mu) ** 2)) / n  # the profile (concentrated) llf
        with np.errstate(all="ignore"):
            return float(np.sum(family.loglike_obs(y, mu, sw, scale)))

    # statistics computed on first access, as statsmodels' results compute them: each needs
    # another pass over the data, which a fit that only wants coefficients should not pay for
    def __getattr__(self, name: str) -> Any:
        lazy = self.__dict__.get("_lazy", {})
        for group, compute in list(lazy.items()):
            if name in group:
                self.__dict__.update(compute())
                del lazy[group]
                return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getstate__(self) -> Any:
        for group in list(self.__dict__.get("_lazy", {})):
            getattr(self, group[0])  # closures do not pickle: compute the statistics
        return super().__getstate__()

    def _null_deviance(self, y: np.ndarray, sw: np.ndarray, off: np.ndarray, has_off: bool,
                       family: Family) -> float:
        """Deviance of the intercept-only model (with the offset), as statsmodels."""
        n = y.shape[0]
        if n == 0:
            return 0.0
        X0 = np.empty((n, 0))
        o0 = GLMObjective(X0, y, sw, off, family, True, 0.0)
        if not has_off and not isinstance(family, LogLikelihood) and sw.sum() > 0:
            # the intercept-only MLE is the weighted mean of y, for any link (off is 0)
            ybar = float(np.sum(sw * y) / np.sum(sw))
            b0 = float(family.link(np.array([ybar]))[0])
            _, _, _, dev0, _ = o0._assemble(o0._raw(np.array([b0])))
            return dev0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = Newton().minimize(o0, np.zeros(1), tol=1e-12, max_iter=100)
        return o0.evaluate(res.x)[3]

    # ------------------------------------------------------------------ results
    def conf_int(self, alpha: float = 0.05) -> np.ndarray:
        """Normal-theory confidence intervals, one row (lower, upper) per entry of params_."""
        check_is_fitted(self, "params_")
        q = norm_ppf(1.0 - alpha / 2.0)
        return np.column_stack([self.params_ - q * self.bse_, self.params_ + q * self.bse_])

    def param_names(self) -> list[str]:
        check_is_fitted(self, "params_")
        names = list(getattr(self, "feature_names_in_", [f"x{k + 1}" for k in range(len(self.coef_))]))
        return (["const"] + [str(s) for s in names]) if self.fit_intercept else [str(s) for s in names]

    def summary(self, alpha: float = 0.05, xname: Optional[list[str]] = None) -> str:
        """A statsmodels-style results table (as a string); ``xname`` names the parameters
        (default: "const" and the feature names seen in fit, or x1, x2, ...)."""
        check_is_fitted(self, "params_")
        names = list(xname) if xname is not None else self.param_names()
        if len(names) != len(self.params_):
            raise ValueError(f"xname has {len(names)} names for {len(self.params_)} parameters")
        fam = self.family_
        solver = self.solver if isinstance(self.solver, str) else getattr(self.solver, "name",
                                                                          type(self.solver).__name__)
        info = [("Model", "GLM"), ("Model Family", fam.name), ("Link Function",
                                                               type(fam.link).__name__),
                ("Method", str(solver).upper() if solver == "irls" else str(solver)),
                ("No. Observations", str(self.nobs_)), ("Df Residuals", f"{self.df_resid_:g}"),
                ("Df Model", f"{self.df_model_:g}"), ("Scale", f"{self.scale_:.6g}"),
                ("Log-Likelihood", f"{self.llf_:.6g}"), ("Deviance", f"{self.deviance_:.6g}"),
                ("Pearson chi2", f"{self.pearson_chi2_:.4g}"), ("AIC", f"{self.aic_:.6g}"),
                ("No. Iterations", str(self.n_iter_)), ("Converged", str(self.converged_))]
        if self.alpha:
            info.append(("L2 alpha", f"{self.alpha:g}"))
        return summary_table("Generalized Linear Model Regression Results", info,
                             names, self.params_, self.bse_, self.tvalues_,
                             self.pvalues_, self.conf_int(alpha))

    # ------------------------------------------------------------------ prediction
    def _linear(self, X: Any, offset: Any, exposure: Any) -> tuple[np.ndarray, np.ndarray]:
        check_is_fitted(self, "params_")
        X = validate_data(self, X, dtype=np.float64, order="C", reset=False)
        off, _ = _offset(offset, exposure, self.family_, X.shape[0])
        return X, off

    def predict(self, X: Any, offset: Any = None, exposure: Any = None) -> np.ndarray:
        """The mean response g^-1(X coef + intercept + offset [+ log exposure])."""
        X, off = self._linear(X, offset, exposure)
        link = self.family_.link
        return K.glm_predict(link)(X, np.ascontiguousarray(self.coef_), float(self.intercept_),
                                   off, float(link.param))

    def predict_linear(self, X: Any, offset: Any = None, exposure: Any = None) -> np.ndarray:
        """The linear predictor eta = X coef + intercept + offset."""
        X, off = self._linear(X, offset, exposure)
        return X @ self.coef_ + self.intercept_ + off
