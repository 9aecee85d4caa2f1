"""Objectives (see :mod:`lattice.models.solvers`) built from data and a compiled kernel.

Parameters are laid out ``[coef..., intercept]`` (the intercept last, when fitted); the
estimators reorder them for ``params_`` (intercept first).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from . import _kernels as K
from .solvers import solve_spd


class GLMObjective:
    """Half the (prior-weighted) deviance plus an L2 penalty on the coefficients:

        f(beta) = sum_i pw_i dev(y_i, mu_i) / 2 + l2 / 2 * |coef|^2

    (for a :class:`~lattice.models.families.LogLikelihood` family, ``-loglik`` instead of
    ``dev/2``).  ``loss_grad_hess`` returns the Fisher information as the Hessian, which makes
    Newton's method IRLS.  Each evaluation is one :func:`~lattice.models._kernels.glm_pass` call.
    """

    has_hessian = True

    def __init__(self, X: np.ndarray, y: np.ndarray, pw: np.ndarray, off: np.ndarray,
                 family: Any, fit_intercept: bool, l2: float) -> None:
        self.X, self.y, self.pw, self.off = X, y, pw, off
        self.family, self.link = family, family.link
        self.fit_intercept = bool(fit_intercept)
        self.l2 = float(l2)
        self.n_samples, self.d = X.shape
        self.n_params = self.d + int(self.fit_intercept)
        self.kernel = K.glm_pass(family, family.link)
        self._batched: Any = None
        self._grad_kernels: dict[bool, Any] = {}
        self.theta = float(family.param)
        self.lp = float(family.link.param)
        # the mean of y, for the family's starting means (computed per row by the start pass)
        self.ybar = float(np.mean(y)) if len(y) else 0.0
        self.use_start_mu = True
        self.expect_hessian = False  # set by Newton: its first evaluation needs X^T W X
        self.last: Optional[tuple[np.ndarray, tuple]] = None
        self.last_counts: Optional[np.ndarray] = None
        self.last_first: Optional[tuple[np.ndarray, tuple]] = None  # the last first-order pass
        self.n_passes = 0
        pen = np.full(self.n_params, self.l2)
        if self.fit_intercept:
            pen[-1] = 0.0
        self.pen = pen

    # -- kernel plumbing
    def _split(self, x: np.ndarray) -> tuple[np.ndarray, float]:
        if self.fit_intercept:
            return np.ascontiguousarray(x[:-1]), float(x[-1])
        return np.ascontiguousarray(x), 0.0

    def _raw(self, x: np.ndarray, start: int = 0, rows: Optional[np.ndarray] = None) -> tuple:
        beta, b0 = self._split(x)
        kern = self.kernel
        if rows is not None:
            if self._batched is None:
                self._batched = K.glm_pass(self.family, self.link, batched=True)
            kern = self._batched
        self.n_passes += 1
        return K.run_rows(kern, self.X, (self.y, self.pw, self.off),
                          (beta, b0, self.theta, self.lp, start, self.ybar), rows=rows)

    def _raw_grad(self, x: np.ndarray, rows: Optional[np.ndarray] = None) -> tuple:
        """(sx, s1, dev) at x: the first-order pass (no X^T W X), about one read of X.  Over
        all rows it also keeps the whole result (chi2, separation counts) for
        :meth:`first_order_stats`."""
        beta, b0 = self._split(x)
        batched = rows is not None
        got = self._grad_kernels.get(batched)
        if got is None:
            got = self._grad_kernels[batched] = K.glm_first_order(self.family, self.link,
                                                                  batched)
        kern, part = got
        self.n_passes += 1
        raw = K.run_rows(kern, self.X, (self.y, self.pw, self.off),
                         (beta, b0, self.theta, self.lp, 0, self.ybar), rows=rows)
        if not batched:
            self.last_first = (x.copy(), raw)
        return raw[part]

    def _score(self, sx: np.ndarray, s1: float) -> np.ndarray:
        return np.append(sx, s1) if self.fit_intercept else np.asarray(sx)

    def _assemble(self, raw: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """(H, r, s, dev, chi2) over the full parameter vector."""
        H, hx, h1, rx, r1, sx, s1, dev, chi2 = raw[:9]
        if not self.fit_intercept:
            return H, rx, sx, float(dev), float(chi2)
        p = self.n_params
        Hf = np.empty((p, p))
        Hf[:-1, :-1] = H
        Hf[:-1, -1] = hx
        Hf[-1, :-1] = hx
        Hf[-1, -1] = h1
        return Hf, np.append(rx, r1), np.append(sx, s1), float(dev), float(chi2)

    def evaluate(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
        """(H without penalty, r, s, dev, chi2) at x, reusing the last pass when x matches."""
        if self.last is not None and np.array_equal(self.last[0], x):
            return self.last[1]
        raw = self._raw(x)
        out = self._assemble(raw)
        self.last = (x.copy(), out)
        # the blocked pass also counts large / zero residuals (see glm_block_pass)
        self.last_counts = np.asarray(raw[9]) if len(raw) > 9 else None
        self._xlast = self.last[0]
        return out

    def first_order_stats(self, x: np.ndarray) -> Optional[tuple[float, float, np.ndarray]]:
        """``(dev, chi2, separation counts)`` at ``x`` when the last first-order pass was made
        there over all rows by the blocked kernel (which gives them), else None."""
        lf = self.last_first
        if lf is None or not np.array_equal(lf[0], x) or len(lf[1]) < 10:
            return None
        raw = lf[1]
        return float(raw[7]), float(raw[8]), np.asarray(raw[9])

    @property
    def can_end_first_order(self) -> bool:
        """Whether a fit may end at a point known from its first-order pass only (Newton's
        last step): the blocked pass gives the statistics there, and a full pass was made
        (its X^T W X, near that point, gives the rank; the covariance at the point itself is
        computed when asked for)."""
        return self.last is not None and K.elementwise(self.family, self.link)

    def _loss(self, x: np.ndarray, dev: float) -> float:
        return 0.5 * dev + 0.5 * float(np.sum(self.pen * x * x))

    # -- the Objective protocol
    def loss_grad_hess(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        H, _, s, dev, _ = self.evaluate(x)
        return self._loss(x, dev), -s + self.pen * x, H + np.diag(self.pen)

    def loss_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        if self.last is not None and np.array_equal(self.last[0], x):
            _, _, s, dev, _ = self.last[1]
        else:
            sx, s1, dev = self._raw_grad(x)
            s, dev = self._score(sx, s1), float(dev)
        self._xlast = x
        return self._loss(x, dev), -s + self.pen * x

    def loss_grad_rows(self, x: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
        sx, s1, dev = self._raw_grad(x, rows)
        s, dev = self._score(sx, s1), float(dev)
        scale = self.n_samples / max(1, len(rows))
        return scale * 0.5 * dev + 0.5 * float(np.sum(self.pen * x * x)), \
            -scale * s + self.pen * x

    def start(self, x0: np.ndarray) -> np.ndarray:
        """One IRLS step from the family's starting mean (as statsmodels and R do), unless
        start parameters were given."""
        if not self.use_start_mu or getattr(self.family, "loglik", None) is not None:
            # (a log-likelihood family has no starting mean: Newton's step halving from x0)
            return x0
        raw = self._raw(x0, start=1)
        H, r, _, _, _ = self._assemble(raw)
        if not (np.all(np.isfinite(H)) and np.all(np.isfinite(r))):
            return x0  # a NaN/inf in X or y: the solver's first evaluation reports it
        x, _ = solve_spd(H + np.diag(self.pen), r)
        # Newton's first step needs the Hessian at x: check with the full pass it then reuses
        check = self.loss_grad_hess if self.expect_hessian else self.loss_grad
        if np.all(np.isfinite(x)) and np.isfinite(check(x)[0]):
            return x
        # the IRLS step left the link's domain for some rows (e.g. eta < 0 with an inverse
        # link): start from the intercept-only model, whose mean is valid for any link
        if self.fit_intercept and getattr(self.family, "loglik", None) is None:
            ybar = float(np.sum(self.pw * self.y) / max(np.sum(self.pw), 1e-300))
            x = np.zeros_like(x0)
            x[-1] = float(self.link(np.array([ybar]))[0]) - float(np.mean(self.off))
            if np.isfinite(self.loss_grad(x)[0]):
                return x
        return x0

    def report(self, f: float) -> str:
        xl = getattr(self, "_xlast", None)
        if xl is None and self.last is not None:
            xl = self.last[0]
        dev = 2.0 * (f - 0.5 * float(np.sum(self.pen * xl ** 2))) if xl is not None else 2 * f
        return f"deviance {dev:.10g}"


class MultinomialObjective:
    """Multinomial logistic loss ``sum_i pw_i (logsumexp(z_i) - z_i[y_i])`` with
    ``z_i = W x_i + b`` plus ``l2 / 2 * |W|^2``; parameters ``[W.ravel(), b]``."""

    has_hessian = True

    def __init__(self, X: np.ndarray, y: np.ndarray, pw: np.ndarray, n_classes: int,
                 fit_intercept: bool, l2: float) -> None:
        self.X, self.y, self.pw = X, y.astype(np.int64), pw
        self.k = n_classes
        self.n_samples, self.d = X.shape
        self.fit_intercept = bool(fit_intercept)
        self.l2 = float(l2)
        self.n_params = self.k * self.d + (self.k if self.fit_intercept else 0)
        self.kernel = K.multinomial_pass()
        self._batched: Any = None
        self.n_passes = 0

    def unpack(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kd = self.k * self.d
        W = x[:kd].reshape(self.k, self.d)
        b = x[kd:] if self.fit_intercept else np.zeros(self.k)
        return np.ascontiguousarray(W), np.ascontiguousarray(b)

    def _eval(self, x: np.ndarray, rows: Optional[np.ndarray]) -> tuple[float, np.ndarray]:
        W, b = self.unpack(x)
        kern = self.kernel
        if rows is not None:
            if self._batched is None:
                self._batched = K.multinomial_pass(batched=True)
            kern = self._batched
        self.n_passes += 1
        loss, GW, gb = K.run_rows(kern, self.X, (self.y, self.pw), (W, b), rows=rows)
        g = GW.ravel()
        if self.fit_intercept:
            g = np.concatenate([g, gb])
        return float(loss), g

    def _pen(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """The L2 penalty on W, plus (with an intercept) (sum_k b_k)^2 / 2: the loss does not
        change when every intercept moves by the same amount, and this term picks the centred
        intercepts among the equivalent ones without moving the optimum, so the Hessian is
        positive definite (Cholesky, not a pseudo-inverse)."""
        kd = self.k * self.d
        pg = np.zeros_like(x)
        pg[:kd] = self.l2 * x[:kd]
        pf = 0.5 * self.l2 * float(x[:kd] @ x[:kd])
        if self.fit_intercept:
            sb = float(np.sum(x[kd:]))
            pf += 0.5 * sb * sb
            pg[kd:] += sb
        return pf, pg

    def loss_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = self._eval(x, None)
        pf, pg = self._pen(x)
        return f + pf, g + pg

    def loss_grad_rows(self, x: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]:
        f, g = self._eval(x, rows)
        scale = self.n_samples / max(1, len(rows))
        pf, pg = self._pen(x)
        return scale * f + pf, scale * g + pg

    def loss_grad_hess(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """With the full (K d + K)^2 Hessian: K^2 d^2 work per row, for moderate K and d."""
        W, b = self.unpack(x)
        self.n_passes += 1
        loss, GW, gb, HW, HWb, Hb = K.run_rows(K.multinomial_hess(), self.X, (self.y, self.pw),
                                               (W, b), has_rows=False)
        k, d = self.k, self.d
        kd = k * d
        H = np.zeros((self.n_params, self.n_params))
        H[:kd, :kd] = HW.transpose(0, 2, 1, 3).reshape(kd, kd)
        g = GW.ravel()
        if self.fit_intercept:
            cross = HWb.transpose(0, 2, 1).reshape(kd, k)
            H[:kd, kd:] = cross
            H[kd:, :kd] = cross.T
            H[kd:, kd:] = Hb
            g = np.concatenate([g, gb])
        pf, pg = self._pen(x)
        H[:kd, :kd] += self.l2 * np.eye(kd)
        if self.fit_intercept:
            H[kd:, kd:] += 1.0
        return float(loss) + pf, g + pg, H

    def start(self, x0: np.ndarray) -> np.ndarray:
        return x0

    def report(self, f: float) -> str:
        return f"loss {f:.10g}"
