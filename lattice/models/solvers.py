"""Pluggable solvers behind one small protocol.

A solver minimises an :class:`Objective` -- a smooth function of a parameter vector that an
estimator builds from its data -- and knows nothing about models::

    class Solver(Protocol):
        def minimize(self, objective, x0, *, tol, max_iter, verbose) -> SolverResult

An objective provides (every call is one pass over the data in a compiled kernel):

``loss_grad(x) -> (f, g)``                     all rows
``loss_grad_hess(x) -> (f, g, H)``             all rows, with the (Fisher) Hessian; only
                                               objectives with ``has_hessian``
``loss_grad_rows(x, rows) -> (f, g)``          the rows listed, scaled up to estimate the
                                               full-data loss (mini-batches)
``start(x0) -> x0``                            optionally improve a start point (IRLS from
                                               the family's starting mean)
``n_samples``, ``n_params``

Solvers: :class:`Newton` (IRLS for GLMs: the Fisher information makes Newton's method and
iteratively reweighted least squares the same iteration; Cholesky on the d x d system, with
step halving), :class:`LBFGS`, :class:`GradientDescent` (backtracking), :class:`SGD`
(mini-batches, optional averaging, progress bar over epochs).  A solver is chosen by name or
passed as an instance: ``GLM(solver=LBFGS(memory=20))``.
"""
from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

import numpy as np

__all__ = ["Objective", "Solver", "SolverResult", "Newton", "LBFGS", "GradientDescent", "SGD",
           "get_solver", "SingularHessianWarning"]


class _Repr:
    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class SingularHessianWarning(UserWarning):
    """X^T W X (plus penalty) is singular: the solver fell back to a pseudo-inverse."""


class Objective(Protocol):
    n_samples: int
    n_params: int
    has_hessian: bool

    def loss_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]: ...

    def loss_grad_hess(self, x: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]: ...

    def loss_grad_rows(self, x: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray]: ...

    def start(self, x0: np.ndarray) -> np.ndarray: ...

    def report(self, f: float) -> str: ...


@dataclass
class SolverResult:
    x: np.ndarray
    fun: float
    grad: np.ndarray
    n_iter: int
    converged: bool
    message: str = ""
    history: list[tuple[float, float]] = field(default_factory=list)

    @property
    def grad_norm(self) -> float:
        return float(np.max(np.abs(self.grad))) if self.grad.size else 0.0


class Solver(Protocol):
    name: str

    def minimize(self, objective: Objective, x0: np.ndarray, *, tol: float, max_iter: int,
                 verbose: bool = False) -> SolverResult: ...


def _gnorm(g: np.ndarray) -> float:
    return float(np.max(np.abs(g))) if g.size else 0.0


def _report(obj: Objective, f: float) -> str:
    return obj.report(f) if hasattr(obj, "report") else f"loss {f:.10g}"


def _print_iter(obj: Objective, it: int, f: float, g: np.ndarray, extra: str = "") -> None:
    rep = _report(obj, f)
    print(f"  iter {it:4d}  {rep}  |grad|_inf {_gnorm(g):.3e}{extra}", flush=True)


def _check_start(f: float) -> None:
    if not np.isfinite(f):
        raise ValueError("the loss is not finite at the start point: some fitted means fall "
                         "outside the family's domain (e.g. a negative mean with an inverse "
                         "or identity link). Pass start_params, or use a link that maps every "
                         "linear predictor to a valid mean (e.g. Log).")


def _jacobi(H: np.ndarray) -> np.ndarray:
    """1/sqrt(diag H) (1 where the diagonal is not positive): scaling by it makes the
    conditioning tests below independent of the units of the features."""
    dg = np.diag(H)
    return np.where(dg > 0, 1.0 / np.sqrt(np.where(dg > 0, dg, 1.0)), 1.0)


def solve_spd(H: np.ndarray, b: np.ndarray, scaled: bool = True) -> tuple[np.ndarray, bool]:
    """Solve H x = b for symmetric positive (semi)definite H by Cholesky (on the Jacobi-scaled
    system); if H is singular or indefinite, fall back to the pseudo-inverse (the
    minimum-norm solution).  Returns (x, ok)."""
    if H.size == 0:
        return np.zeros_like(b), True
    s = _jacobi(H)
    Hs = H * s[:, None] * s[None, :]
    try:
        c = np.linalg.cholesky(Hs)
        dg = np.abs(np.diag(c))
        # a numerically singular factor (cond(Hs) beyond ~1e14) is refused
        if dg.min() > 1e-7 * dg.max():
            z = np.linalg.solve(c.T, np.linalg.solve(c, s * b))
            x = s * z
            if np.all(np.isfinite(x)):
                return x, True
    except np.linalg.LinAlgError:
        pass
    return _pinv_solve(H, b, scaled), False


def spd_rank(H: np.ndarray) -> int:
    """Numerical rank of a symmetric PSD matrix, invariant to the scale of each variable."""
    if H.size == 0:
        return 0
    s = _jacobi(H)
    ev = np.linalg.eigvalsh(H * s[:, None] * s[None, :])
    return int(np.sum(ev > max(ev.max(), 0.0) * 1e-13 * H.shape[0]))


def _pinv_solve(H: np.ndarray, b: np.ndarray, scaled: bool = True) -> np.ndarray:
    """Pseudo-inverse solution.  ``scaled``: minimum norm in Jacobi-scaled coordinates (unit
    free); otherwise the Euclidean minimum-norm solution, as ``numpy.linalg.lstsq``."""
    s = _jacobi(H) if scaled else np.ones(H.shape[0])
    vals, vecs = np.linalg.eigh(H * s[:, None] * s[None, :])
    keep = vals > max(vals.max(), 0.0) * H.shape[0] * 1e-13
    inv = np.where(keep, 1.0 / np.where(keep, vals, 1.0), 0.0)
    sb = s * b if b.ndim == 1 else s[:, None] * b
    z = vecs @ (inv[:, None] * (vecs.T @ sb)) if sb.ndim == 2 else vecs @ (inv * (vecs.T @ sb))
    return s * z if z.ndim == 1 else s[:, None] * z


class Newton(_Repr):
    """Newton's method with step halving; with a GLM's Fisher information this is IRLS.

    Each iteration is one pass over X computing the loss, gradient and d x d Hessian in one
    kernel, then a Cholesky solve.  Converged when the relative change of the loss is below
    ``tol`` (R's ``glm`` rule: |f - f_old| / (|f| + 0.1) < tol) and the Newton decrement is
    small, or when the gradient is zero to rounding.

    When the decrease the next full step predicts is already below the tolerance and the
    objective allows it (``can_end_first_order``), that step is checked with a first-order
    pass (loss and gradient only, no Hessian): the fit ends there when it converges.
    """

    name = "newton"

    def __init__(self, max_halvings: int = 30) -> None:
        self.max_halvings = max_halvings

    def minimize(self, objective: Objective, x0: np.ndarray, *, tol: float, max_iter: int,
                 verbose: bool = False) -> SolverResult:
        if not getattr(objective, "has_hessian", False):
            raise ValueError(f"solver 'newton' needs a Hessian, which {type(objective).__name__} "
                             "does not provide; use 'lbfgs'")
        if hasattr(objective, "expect_hessian"):
            objective.expect_hessian = True
        x = objective.start(np.array(x0, dtype=np.float64))
        f, g, H = objective.loss_grad_hess(x)
        _check_start(f)
        history = [(f, _gnorm(g))]
        if verbose:
            _print_iter(objective, 0, f, g)
        warned = False
        converged = False
        it = 0
        for it in range(1, max_iter + 1):
            step, ok = solve_spd(H, -g)
            if not ok and not warned and not getattr(objective, "singular_ok", False):
                warned = True
                warnings.warn("X^T W X is singular or indefinite (collinear features, or a "
                              "feature constant over the data): using the pseudo-inverse, which "
                              "gives the minimum-norm step. Remove collinear columns or add an "
                              "L2 penalty for a unique solution.", SingularHessianWarning,
                              stacklevel=4)
            # the Newton decrement: the decrease a full step predicts is decrement / 2
            decrement = float(-(g @ step))
            noise = 1e-13 * (abs(f) + 0.1)  # accept a loss increase this small (rounding)
            if decrement <= 1e-15 * (abs(f) + 0.1) or _gnorm(g) == 0.0:
                converged = True
                break
            if decrement <= tol * (abs(f) + 0.1) and getattr(objective, "can_end_first_order",
                                                             False):
                # the full step is predicted to converge (its decrease, decrement / 2, is below
                # the tolerance): check it with a first-order pass, no X^T W X
                xn = x + step
                fn, gn = objective.loss_grad(xn)
                if np.isfinite(fn) and fn <= f + noise and abs(f - fn) <= tol * (abs(fn) + 0.1):
                    x, f, g = xn, fn, gn
                    history.append((f, _gnorm(g)))
                    if verbose:
                        _print_iter(objective, it, f, g, "  (first-order check)")
                    converged = True
                    break
            t = 1.0
            for _ in range(self.max_halvings):
                xn = x + t * step
                fn, gn, Hn = objective.loss_grad_hess(xn)
                if np.isfinite(fn) and fn <= f + noise:
                    break
                t *= 0.5
            else:
                break
            df = abs(f - fn)
            x, f, g, H = xn, fn, gn, Hn
            history.append((f, _gnorm(g)))
            if verbose:
                _print_iter(objective, it, f, g, "" if t == 1.0 else f"  step {t:g}")
            if (df <= tol * (abs(f) + 0.1) and t * decrement <= tol * (abs(f) + 0.1)) \
                    or _gnorm(g) == 0.0:
                converged = True
                break
        return SolverResult(x, f, g, it, converged, history=history)


class LBFGS(_Repr):
    """Limited-memory BFGS with a backtracking (Armijo) line search.

    Converged when ``|grad|_inf <= tol * max(1, |f|) / scale`` -- a relative gradient test --
    or when the relative loss change over an iteration is below machine precision.
    """

    name = "lbfgs"

    def __init__(self, memory: int = 10) -> None:
        self.memory = memory

    def minimize(self, objective: Objective, x0: np.ndarray, *, tol: float, max_iter: int,
                 verbose: bool = False) -> SolverResult:
        x = objective.start(np.array(x0, dtype=np.float64))
        f, g = objective.loss_grad(x)
        _check_start(f)
        S: list[np.ndarray] = []
        Y: list[np.ndarray] = []
        history = [(f, _gnorm(g))]
        if verbose:
            _print_iter(objective, 0, f, g)
        converged = _gnorm(g) <= tol * max(1.0, abs(f))
        it = 0
        stall = 0
        while not converged and it < max_iter:
            it += 1
            # two-loop recursion
            q = -g.copy()
            alphas = []
            for s, y in zip(reversed(S), reversed(Y)):
                a = (s @ q) / (y @ s)
                alphas.append(a)
                q -= a * y
            if S:
                q *= (S[-1] @ Y[-1]) / (Y[-1] @ Y[-1])
            else:
                q /= max(1.0, _gnorm(g))  # a first step of unit length at most
            for (s, y), a in zip(zip(S, Y), reversed(alphas)):
                b = (y @ q) / (y @ s)
                q += (a - b) * s
            d = q
            gd = float(g @ d)
            if not gd < 0:
                S.clear()
                Y.clear()
                d = -g / max(1.0, _gnorm(g))
                gd = float(g @ d)
            t = 1.0
            for _ in range(60):
                xn = x + t * d
                fn, gn = objective.loss_grad(xn)
                if np.isfinite(fn) and fn <= f + 1e-4 * t * gd:
                    break
                t *= 0.5
            else:
                # no decrease along a descent direction: the rounding limit
                converged = True
                break
            s, y = xn - x, gn - g
            if y @ s > 1e-12 * (s @ s) * max(1.0, _gnorm(y)):
                S.append(s)
                Y.append(y)
                if len(S) > self.memory:
                    S.pop(0)
                    Y.pop(0)
            df = f - fn
            x, f, g = xn, fn, gn
            history.append((f, _gnorm(g)))
            if verbose:
                _print_iter(objective, it, f, g)
            # at the rounding limit (no relative decrease above a few ulps, twice running)
            # nothing more can be gained: that is convergence to the attainable precision
            stall = stall + 1 if df <= 4e-16 * max(1.0, abs(f)) else 0
            if _gnorm(g) <= tol * max(1.0, abs(f)) or stall >= 2:
                converged = True
        return SolverResult(x, f, g, it, converged, history=history)


class GradientDescent(_Repr):
    """Steepest descent with a backtracking line search that also grows the step after
    successful iterations.  Slow on ill-conditioned problems: a baseline and a teaching aid."""

    name = "gd"

    def minimize(self, objective: Objective, x0: np.ndarray, *, tol: float, max_iter: int,
                 verbose: bool = False) -> SolverResult:
        x = objective.start(np.array(x0, dtype=np.float64))
        f, g = objective.loss_grad(x)
        _check_start(f)
        history = [(f, _gnorm(g))]
        t = 1.0 / max(1.0, float(np.linalg.norm(g)))
        converged = _gnorm(g) <= tol * max(1.0, abs(f))
        it = 0
        while not converged and it < max_iter:
            it += 1
            gg = float(g @ g)
            for _ in range(60):
                xn = x - t * g
                fn, gn = objective.loss_grad(xn)
                if np.isfinite(fn) and fn <= f - 0.5 * t * gg:
                    break
                t *= 0.5
            else:
                break
            x, f, g = xn, fn, gn
            t *= 2.0
            history.append((f, _gnorm(g)))
            if verbose:
                _print_iter(objective, it, f, g, f"  step {t / 2:.3g}")
            converged = _gnorm(g) <= tol * max(1.0, abs(f))
        return SolverResult(x, f, g, it, converged, history=history)


class SGD(_Repr):
    """Mini-batch stochastic gradient descent over shuffled rows.

    Each epoch visits every row once in batches of ``batch_size`` (one kernel call per batch,
    gathering the rows by index: no copy of X).  The step on the mean loss is
    ``learning_rate / (1 + decay * epoch)``; ``learning_rate="auto"`` takes ``1 / L`` with
    ``L`` the largest curvature of the mean loss at the start, estimated by a few power
    iterations on finite-difference Hessian-vector products (one pass each).  With
    ``average`` the result is the running average of the iterates after the first epoch
    (Polyak-Ruppert), which removes most of the noise.  ``max_iter`` counts epochs; converged
    when the full-data loss (one extra pass per epoch) changes by less than ``tol``
    relative.  ``verbose`` draws a progress bar over epochs.
    """

    name = "sgd"

    def __init__(self, learning_rate: Any = "auto", batch_size: int = 256, decay: float = 0.1,
                 average: bool = True, random_state: Optional[int] = 0) -> None:
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.decay = decay
        self.average = average
        self.random_state = random_state

    @staticmethod
    def _auto_rate(objective: Objective, x: np.ndarray, g: np.ndarray, rng: Any) -> float:
        n = objective.n_samples
        v = rng.standard_normal(x.shape)
        lam = 0.0
        for _ in range(6):
            v /= max(np.linalg.norm(v), 1e-300)
            h = 1e-4 * (1.0 + float(np.linalg.norm(x)))
            _, g2 = objective.loss_grad(x + h * v)
            hv = (g2 - g) / h
            lam = float(np.linalg.norm(hv))
            v = hv
        return 1.0 / max(lam / max(n, 1), 1e-12)

    def minimize(self, objective: Objective, x0: np.ndarray, *, tol: float, max_iter: int,
                 verbose: bool = False) -> SolverResult:
        rng = np.random.default_rng(self.random_state)
        n = objective.n_samples
        x = objective.start(np.array(x0, dtype=np.float64))
        f, g = objective.loss_grad(x)
        _check_start(f)
        history = [(f, _gnorm(g))]
        lr0 = (self._auto_rate(objective, x, g, rng) if self.learning_rate == "auto"
               else float(self.learning_rate))
        avg = x.copy()
        n_avg = 0
        bs = max(1, min(int(self.batch_size), n))
        converged = False
        bar = _ProgressBar(max_iter, "SGD") if verbose else None
        epoch = 0
        for epoch in range(1, max_iter + 1):
            perm = rng.permutation(n).astype(np.int64)
            lr = lr0 / (1.0 + self.decay * (epoch - 1))
            for a in range(0, n, bs):
                rows = np.sort(perm[a:a + bs])
                _, gb = objective.loss_grad_rows(x, rows)
                x = x - (lr / n) * gb
                if self.average and epoch > 1:
                    n_avg += 1
                    avg += (x - avg) / n_avg
            xe = avg if (self.average and n_avg) else x
            fn, gn = objective.loss_grad(xe)
            if not (np.isfinite(fn) and np.all(np.isfinite(x))):
                if bar is not None:
                    bar.close()
                raise FloatingPointError(f"SGD diverged in epoch {epoch} (the loss is not "
                                         f"finite) with learning rate {lr0:.3g}: lower "
                                         "learning_rate, or standardize the features")
            change = abs(f - fn) / max(1.0, abs(fn))
            f, g = fn, gn
            history.append((f, _gnorm(g)))
            if bar is not None:
                bar.update(epoch, f"{_report(objective, f)}  |grad|_inf {_gnorm(g):.2e}")
            if epoch > 2 and change <= tol:
                converged = True
                break
        if bar is not None:
            bar.close()
        xe = avg if (self.average and n_avg) else x
        return SolverResult(xe, f, g, epoch, converged, history=history)


class _ProgressBar:
    def __init__(self, total: int, label: str, width: int = 30) -> None:
        self.total = max(1, total)
        self.label = label
        self.width = width
        self.t0 = time.perf_counter()

    def update(self, k: int, info: str = "") -> None:
        frac = min(1.0, k / self.total)
        full = int(round(frac * self.width))
        el = time.perf_counter() - self.t0
        sys.stderr.write(f"\r{self.label} [{'#' * full}{'.' * (self.width - full)}] "
                         f"epoch {k}/{self.total} {el:6.1f}s {info}")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


_SOLVERS = {"newton": Newton, "irls": Newton, "newton-cholesky": Newton, "lbfgs": LBFGS,
            "gd": GradientDescent, "gradient_descent": GradientDescent, "sgd": SGD}


def get_solver(solver: Any) -> Any:
    """A solver instance from a name ("irls"/"newton", "lbfgs", "gd", "sgd") or an instance."""
    if isinstance(solver, str):
        cls = _SOLVERS.get(solver.lower())
        if cls is None:
            raise ValueError(f"unknown solver {solver!r}; choose one of {sorted(_SOLVERS)} or "
                             "pass an object with a minimize(objective, x0, tol=, max_iter=, "
                             "verbose=) method")
        return cls()
    if hasattr(solver, "minimize"):
        return solver
    raise TypeError(f"solver must be a name or an object with a minimize method, got "
                    f"{type(solver).__name__}")
