"""The compiled kernels behind the models, generated per (family, link) and cached.

Everything a solver does per iteration is one call of one of these kernels (split across
threads by rows, see :func:`run_rows`):

* :func:`glm_pass` -- one pass over ``X`` computing, at the current coefficients, the Fisher
  information ``X^T W X`` (as ``H``, ``hx``, ``h1`` for the intercept), the IRLS right-hand
  side ``X^T W z``, the score ``X^T s`` (minus the gradient of half the deviance), the
  deviance and Pearson's chi-squared.  The per-row statistics come from a *row kernel*
  generated for the (family, link) pair (:func:`edm_row`) or, for a family given by a
  log-likelihood, from ``lt.grad``/``lt.hessian`` of that log-likelihood (:func:`loglik_row`).
  ``H`` is accumulated with vector updates eight rows at a time, written in place: no
  ``n x d`` temporary is ever formed.
* :func:`glm_first_order` -- the same pass without ``H`` (score and deviance; no Gram
  product, so about one read of ``X``), for first-order solvers and Newton's last step: the
  blocked pass with ``hessian=False``, or :func:`glm_grad_pass` row by row.
* :func:`multinomial_pass` -- loss and gradient of the multinomial logistic loss.
* :func:`gram_pass` -- the centred, weighted Gram matrix for least squares.

Parameters of families and links (``NegativeBinomial(alpha)``, ``Tweedie(var_power)``,
``Power(p)``) are kernel *arguments*, so a new value reuses the compiled code.  Each factory
caches its kernels by the (family class, link class) key, so a kernel compiles once per process
(and, with lattice's disk cache, once per machine).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence

import numpy as np

import lattice as lt

_CACHE: dict[tuple, Any] = {}
_LOCK = threading.Lock()
# machine code is kept on disk (lattice's cache), so a later process skips code generation
_KOPTS: dict[str, Any] = {"cache": True}
#: the kernels :func:`run_rows` calls from several Python threads at once split the rows
#: themselves: inside they stay on their thread (parallel=False), or the thread that got the
#: pool would run beside the others with one worker more than there are threads
_ROWS_KOPTS: dict[str, Any] = {**_KOPTS, "parallel": False}


def _cached(key: tuple, make: Callable[[], Any]) -> Any:
    with _LOCK:
        k = _CACHE.get(key)
        if k is None:
            k = _CACHE[key] = make()
        return k


def compiled_kernel_keys() -> list[tuple]:
    """The keys of the kernels made so far (for tests that check reuse)."""
    return list(_CACHE)


# ---------------------------------------------------------------------------- row kernels
def edm_row(family: Any, link: Any) -> Any:
    """Per-row IRLS statistics of an exponential-dispersion family with a link.

    Arguments: ``y, pw`` (prior weight), ``off``, ``ybar`` (the mean of y), ``xb``
    (x.beta + intercept), ``start`` (1: eta from the family's starting mean, not from xb),
    family and link parameters.  Results: ``w`` (working weight), ``wz`` (w times the working
    response without offset), ``s`` (the score d(-dev/2)/d eta), the deviance contribution and
    the Pearson chi2 contribution.
    """
    STATS = edm_stats(family, link)
    START = start_eta(family, link)

    def make() -> Any:
        @lt.kernel(**_KOPTS)
        def edm_row_k(y: lt.f64, pw: lt.f64, off: lt.f64, ybar: lt.f64, xb: lt.f64,
                      start: lt.i64, theta: lt.f64, lp: lt.f64):
            if start > 0:
                eta = START(y, ybar, lp)
            else:
                eta = xb + off
            w, wz, s, dev, chi2, res = STATS(y, pw, off, eta, theta, lp)
            return w, wz, s, dev, chi2
        return edm_row_k
    return _cached(("edm_row", family.kernel_key, link.kernel_key), make)


def start_eta(family: Any, link: Any) -> Callable[..., Any]:
    """``eta = g(start_mu(y, ybar))``, the linear predictor IRLS starts from, as a traceable
    function (elementwise): the first pass computes it per row, so no array of it is made."""
    F, L = family, link

    def eta(y: Any, ybar: Any, lp: Any) -> Any:
        return L.link(F.start_mu(y, ybar), lp)
    return eta


def edm_stats(family: Any, link: Any) -> Callable[..., tuple]:
    """The statistics of :func:`edm_row` at the linear predictor ``eta``, and the residual
    ``y - mu``, as a traceable function: elementwise, so the same code serves one row
    (scalars) and a block of rows (vectors)."""
    F, L = family, link
    # with the canonical link g'(mu) V(mu) = 1: w = pw V(mu) and w (y - mu) g'(mu) = pw (y - mu)
    CANONICAL = F.canonical_link is not None and type(L) is F.canonical_link

    def stats(y: Any, pw: Any, off: Any, eta: Any, theta: Any, lp: Any) -> tuple:
        mu = L.inverse(eta, lp)
        var = F.variance(mu, theta)
        res = y - mu
        if CANONICAL:
            w = pw * var
            s = pw * res
        else:
            gp = L.eta_deriv(mu, eta, lp)
            w = pw / (gp * gp * var)
            s = w * res * gp
        wz = w * (eta - off) + s
        dev = pw * F.unit_deviance(y, mu, theta)
        chi2 = pw * res * res / var
        return w, wz, s, dev, chi2, res
    return stats


def loglik_row(family: Any) -> Any:
    """Per-row Newton statistics for a family given by a log-likelihood kernel
    ``ll(y, eta) -> f64``: the first and second derivatives in eta come from ``lt.grad`` and
    ``lt.hessian`` (observed information), so no derivative is written by hand."""
    LL = family.loglik
    D1 = lt.grad(LL, 1)
    D2 = lt.hessian(LL, 1)

    def make() -> Any:
        @lt.kernel(**_KOPTS)
        def loglik_row_k(y: lt.f64, pw: lt.f64, off: lt.f64, ybar: lt.f64, xb: lt.f64,
                         start: lt.i64, theta: lt.f64, lp: lt.f64):
            eta = lt.where(start > 0, off, xb + off)  # (no starting mean: start from off)
            g = D1(y, eta)
            h = D2(y, eta)
            w = -pw * h
            s = pw * g
            wz = w * (eta - off) + s
            dev = -2.0 * pw * LL(y, eta)
            return w, wz, s, dev, 0.0 * dev
        return loglik_row_k
    return _cached(("loglik_row", id(LL)), make)


_ROW_METHODS = ("link", "inverse", "eta_deriv", "variance", "unit_deviance")


def elementwise(*parts: Any) -> bool:
    """Whether the methods of these families/links take arrays as well as scalars: false
    when one of them is a kernel with scalar annotations (a user's link or family whose
    methods are ``@lt.kernel`` functions), or for a family given by a log-likelihood kernel."""
    for obj in parts:
        if getattr(obj, "loglik", None) is not None:
            return False
        for name in _ROW_METHODS:
            if isinstance(getattr(type(obj), name, None), lt.Kernel):
                return False
    return True


def row_kernel(family: Any, link: Any) -> Any:
    if getattr(family, "loglik", None) is not None:
        return loglik_row(family)
    return edm_row(family, link)


# ---------------------------------------------------------------------------- GLM pass
#: rows per step of the GLM passes: each load and store of a row of H then serves 8 FMAs
GLM_BLOCK = 8


def _glm_zero_sums(d: Any) -> tuple:
    """The initial ``H, hx, rx, sx, h1, r1, s1, dev, chi2`` of the GLM passes."""
    return (lt.zeros((d, d)), lt.zeros(d), lt.zeros(d), lt.zeros(d), 0.0, 0.0, 0.0, 0.0, 0.0)


#: rows per block of the blocked GLM pass: X's block (and its weighted copy) stay in L1/L2
GLM_ROWS = 128


def glm_pass(family: Any, link: Any, batched: bool = False) -> Any:
    """The per-iteration kernel of every GLM solver (see the module docstring): the blocked
    pass (:func:`glm_block_pass`) for all rows of a family with a closed-form row kernel, the
    row-by-row pass (:func:`glm_row_pass`) for mini-batches and families or links whose
    statistics are scalar kernels (:func:`elementwise`)."""
    if batched or not elementwise(family, link):
        return glm_row_pass(family, link, batched)
    return glm_block_pass(family, link)


def glm_block_pass(family: Any, link: Any, hessian: bool = True) -> Any:
    """:func:`glm_pass` over all rows, ``GLM_ROWS`` rows at a time, as array operations:

    * ``eta = Xb @ beta + b0`` and the row statistics (:func:`edm_stats`) on whole blocks, so
      exp/log run vectorised;
    * ``H += Xb.T @ (Xb * w[:, None])``: a register-tiled matrix product (codegen/gemm.py)
      instead of rank-1 updates, and ``hx, rx, sx += (w, wz, s) @ Xb``.

    Compiled with fastmath: sums may be reassociated and exp/log are the vectorised ones
    (within 2 ULP); the fitted coefficients agree with the strict pass to ~1e-12 relative.
    Same arguments and results as :func:`glm_row_pass` (``rows`` is ignored), plus ``q``:
    the number of rows with weight > 0 and ``|y - mu|`` >= 0.5, >= 1e-6, and == 0 (what the
    Binomial separation check needs, without another pass over ``X``).

    ``hessian=False``: the first-order pass (L-BFGS, and Newton's last step), the same
    results with ``H, hx, h1, rx, r1`` left 0: one read of ``X`` and no Gram product.
    """
    STATS = edm_stats(family, link)
    START = start_eta(family, link)
    B = GLM_ROWS
    HESS = bool(hessian)

    def block(Xb: Any, yb: Any, pwb: Any, offb: Any, eb: Any, theta: Any, lp: Any) -> tuple:
        w, wz, s, dv, c, res = STATS(yb, pwb, offb, eb, theta, lp)
        r = lt.arange(3)[:, None]
        # rows with weight > 0 and |y - mu| >= 0.5, >= 1e-6, == 0 (the separation checks)
        a = lt.abs(res)[None, :]
        hit = lt.where(r == 0, a >= 0.5, lt.where(r == 1, a >= 1e-6, a == 0.0))
        q = lt.sum(lt.where(hit & (pwb > 0.0)[None, :], 1.0, 0.0), axis=1)
        if not HESS:
            return 0.0, 0.0, 0.0, s @ Xb, 0.0, 0.0, lt.sum(s), lt.sum(dv), lt.sum(c), q
        # (w, wz, s) @ Xb as one 3-row product: one read of Xb
        R3 = lt.where(r == 0, w[None, :], lt.where(r == 1, wz[None, :], s[None, :])) @ Xb
        return (Xb.T @ (Xb * w[:, None]), R3[0], R3[1], R3[2], lt.sum(w), lt.sum(wz),
                lt.sum(s), lt.sum(dv), lt.sum(c), q)

    def make() -> Any:
        @lt.kernel(**_ROWS_KOPTS, fastmath=True)
        def glm_block_pass_k(X: lt.f64["n", "d"], y: lt.f64["n"], pw: lt.f64["n"],
                             off: lt.f64["n"], rows: lt.i64["m"], beta: lt.f64["d"],
                             b0: lt.f64, theta: lt.f64, lp: lt.f64, start: lt.i64,
                             ybar: lt.f64):
            H, hx, rx, sx, h1, r1, s1, dev, chi2 = _glm_zero_sums(X.shape[1])
            if not HESS:
                H = lt.zeros((0, 0))
                hx = lt.zeros(0)
                rx = lt.zeros(0)
            q = lt.zeros(3)
            nb = X.shape[0] // B
            for b in range(nb):
                lo = b * B
                if start > 0:
                    eb = START(y[lo:lo + B], ybar, lp)
                else:
                    eb = X[lo:lo + B] @ beta + b0 + off[lo:lo + B]
                Hb, hxb, rxb, sxb, h1b, r1b, s1b, dvb, cb, qb = block(
                    X[lo:lo + B], y[lo:lo + B], pw[lo:lo + B], off[lo:lo + B], eb, theta, lp)
                q = q + qb
                if HESS:
                    H = H + Hb
                    hx = hx + hxb
                    rx = rx + rxb
                    h1 += h1b
                    r1 += r1b
                sx = sx + sxb
                s1 += s1b
                dev += dvb
                chi2 += cb
            lo = nb * B  # the last rows, fewer than B (both sides of the where: cheap here)
            eb = lt.where(start > 0, START(y[lo:], ybar, lp), X[lo:] @ beta + b0 + off[lo:])
            Hb, hxb, rxb, sxb, h1b, r1b, s1b, dvb, cb, qb = block(
                X[lo:], y[lo:], pw[lo:], off[lo:], eb, theta, lp)
            return (H + Hb, hx + hxb, h1 + h1b, rx + rxb, r1 + r1b, sx + sxb, s1 + s1b,
                    dev + dvb, chi2 + cb, q + qb)
        return glm_block_pass_k
    return _cached(("glm_block_pass", family.kernel_key, link.kernel_key, HESS), make)


def glm_row_pass(family: Any, link: Any, batched: bool = False, hessian: bool = True) -> Any:
    """The row-by-row form of :func:`glm_pass` (mini-batches, log-likelihood families).

    ``glm_pass(X, y, pw, off, rows, beta, b0, theta, lp, start, ybar)`` returns
    ``(H, hx, h1, rx, r1, sx, s1, dev, chi2)``: ``H = sum w x x^T``, ``hx = sum w x``,
    ``h1 = sum w``, ``rx = sum wz x``, ``r1 = sum wz``, ``sx = sum s x``, ``s1 = sum s``.
    With ``batched`` the sums run over the rows listed in ``rows`` (mini-batches); otherwise
    over all rows (``rows`` is ignored).  ``hessian=False``: the first-order pass
    (:func:`glm_grad_pass`).

    The rows are taken eight at a time: ``H[j] = H[j] + sum_r (w_r x_r[j]) x_r`` reads and
    writes each row of ``H`` once per eight rank-1 updates (the map writes ``H[j]`` in place,
    no temporary), so the update runs at FMA throughput instead of load/store throughput.
    """
    ROW = row_kernel(family, link)
    BATCHED = bool(batched)
    HESS = bool(hessian)

    def make() -> Any:
        @lt.kernel(**_ROWS_KOPTS)
        def glm_pass_k(X: lt.f64["n", "d"], y: lt.f64["n"], pw: lt.f64["n"], off: lt.f64["n"],
                       rows: lt.i64["m"], beta: lt.f64["d"], b0: lt.f64, theta: lt.f64,
                       lp: lt.f64, start: lt.i64, ybar: lt.f64):
            d = X.shape[1]
            H, hx, rx, sx, h1, r1, s1, dev, chi2 = _glm_zero_sums(d)
            m = X.shape[0]
            if BATCHED:
                m = rows.shape[0]
            nb = m // 8
            for b in range(nb):
                i0 = 8 * b
                if BATCHED:
                    i0 = rows[8 * b]
                    i1 = rows[8 * b + 1]
                    i2 = rows[8 * b + 2]
                    i3 = rows[8 * b + 3]
                    i4 = rows[8 * b + 4]
                    i5 = rows[8 * b + 5]
                    i6 = rows[8 * b + 6]
                    i7 = rows[8 * b + 7]
                else:
                    i1 = i0 + 1
                    i2 = i0 + 2
                    i3 = i0 + 3
                    i4 = i0 + 4
                    i5 = i0 + 5
                    i6 = i0 + 6
                    i7 = i0 + 7
                x0 = X[i0]
                x1 = X[i1]
                x2 = X[i2]
                x3 = X[i3]
                x4 = X[i4]
                x5 = X[i5]
                x6 = X[i6]
                x7 = X[i7]
                w0, wz0, s0, dv0, c0 = ROW(y[i0], pw[i0], off[i0], ybar,
                                           lt.sum(x0 * beta) + b0, start, theta, lp)
                w1, wz1, s1_, dv1, c1 = ROW(y[i1], pw[i1], off[i1], ybar,
                                            lt.sum(x1 * beta) + b0, start, theta, lp)
                w2, wz2, s2, dv2, c2 = ROW(y[i2], pw[i2], off[i2], ybar,
                                           lt.sum(x2 * beta) + b0, start, theta, lp)
                w3, wz3, s3, dv3, c3 = ROW(y[i3], pw[i3], off[i3], ybar,
                                           lt.sum(x3 * beta) + b0, start, theta, lp)
                w4, wz4, s4, dv4, c4 = ROW(y[i4], pw[i4], off[i4], ybar,
                                           lt.sum(x4 * beta) + b0, start, theta, lp)
                w5, wz5, s5, dv5, c5 = ROW(y[i5], pw[i5], off[i5], ybar,
                                           lt.sum(x5 * beta) + b0, start, theta, lp)
                w6, wz6, s6, dv6, c6 = ROW(y[i6], pw[i6], off[i6], ybar,
                                           lt.sum(x6 * beta) + b0, start, theta, lp)
                w7, wz7, s7, dv7, c7 = ROW(y[i7], pw[i7], off[i7], ybar,
                                           lt.sum(x7 * beta) + b0, start, theta, lp)
                sx = (sx + s0 * x0 + s1_ * x1 + s2 * x2 + s3 * x3 + s4 * x4 + s5 * x5 + s6 * x6
                      + s7 * x7)
                s1 += s0 + s1_ + s2 + s3 + s4 + s5 + s6 + s7
                dev += dv0 + dv1 + dv2 + dv3 + dv4 + dv5 + dv6 + dv7
                chi2 += c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7
                if HESS:
                    hx = (hx + w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3 + w4 * x4 + w5 * x5
                          + w6 * x6 + w7 * x7)
                    rx = (rx + wz0 * x0 + wz1 * x1 + wz2 * x2 + wz3 * x3 + wz4 * x4 + wz5 * x5
                          + wz6 * x6 + wz7 * x7)
                    h1 += w0 + w1 + w2 + w3 + w4 + w5 + w6 + w7
                    r1 += wz0 + wz1 + wz2 + wz3 + wz4 + wz5 + wz6 + wz7
                    for j in range(d):
                        H[j] = (H[j] + (w0 * x0[j]) * x0 + (w1 * x1[j]) * x1
                                + (w2 * x2[j]) * x2 + (w3 * x3[j]) * x3 + (w4 * x4[j]) * x4
                                + (w5 * x5[j]) * x5 + (w6 * x6[j]) * x6 + (w7 * x7[j]) * x7)
            for r in range(8 * nb, m):
                i = r
                if BATCHED:
                    i = rows[r]
                xi = X[i]
                w, wz, s, dv, c = ROW(y[i], pw[i], off[i], ybar, lt.sum(xi * beta) + b0,
                                      start, theta, lp)
                sx = sx + s * xi
                s1 += s
                dev += dv
                chi2 += c
                if HESS:
                    hx = hx + w * xi
                    rx = rx + wz * xi
                    h1 += w
                    r1 += wz
                    for j in range(d):
                        H[j] = H[j] + (w * xi[j]) * xi
            if not HESS:
                return sx, s1, dev
            return H, hx, h1, rx, r1, sx, s1, dev, chi2
        return glm_pass_k
    return _cached(("glm_row_pass", family.kernel_key, link.kernel_key, BATCHED, HESS), make)


def glm_first_order(family: Any, link: Any, batched: bool = False) -> tuple[Any, slice]:
    """The kernel of the first-order GLM pass and where ``(sx, s1, dev)`` sit in its results:
    the blocked pass without the second-order sums for all rows of an elementwise family
    (it also gives ``chi2`` and the separation counts ``q``), else :func:`glm_grad_pass`."""
    if batched or not elementwise(family, link):
        return glm_grad_pass(family, link, batched), slice(0, 3)
    return glm_block_pass(family, link, hessian=False), slice(5, 8)


def glm_grad_pass(family: Any, link: Any, batched: bool = False) -> Any:
    """:func:`glm_pass` without the second-order sums, for the first-order solvers (L-BFGS,
    gradient descent, SGD): ``(sx, s1, dev)`` only, so a pass costs about one read of ``X``.
    Same arguments as :func:`glm_pass`; row by row (:func:`glm_row_pass`)."""
    return glm_row_pass(family, link, batched, hessian=False)


def glm_predict(link: Any) -> Any:
    """``mu = g^-1(X beta + b0 + off)`` for a link: a matrix-vector product and an elementwise
    map, split across threads, with the vectorised exp/log (fastmath); a loop over the rows for
    a link whose inverse is a scalar kernel (:func:`elementwise`)."""
    L = link
    ARRAYS = elementwise(link)

    def make() -> Any:
        @lt.kernel(**_KOPTS, parallel=True, fastmath=ARRAYS)
        def glm_predict_k(X: lt.f64["n", "d"], beta: lt.f64["d"], b0: lt.f64, off: lt.f64["n"],
                          lp: lt.f64) -> lt.f64["n"]:
            if ARRAYS:
                return L.inverse(X @ beta + b0 + off, lp)
            out = lt.zeros(X.shape[0])
            for i in range(X.shape[0]):
                out[i] = L.inverse(lt.sum(X[i] * beta) + b0 + off[i], lp)
            return out
        return glm_predict_k
    return _cached(("glm_predict", link.kernel_key), make)


def link_apply(link: Any, inverse: bool) -> Any:
    """Elementwise ``g(mu)`` (or ``g^-1(eta)``) on a vector."""
    L = link
    INV = bool(inverse)
    ARRAYS = elementwise(link)

    def make() -> Any:
        @lt.kernel(**_KOPTS, fastmath=ARRAYS)
        def link_apply_k(x: lt.f64["n"], lp: lt.f64) -> lt.f64["n"]:
            if ARRAYS:
                if INV:
                    return L.inverse(x, lp)
                return L.link(x, lp)
            out = lt.zeros(x.shape[0])
            for i in range(x.shape[0]):
                if INV:
                    out[i] = L.inverse(x[i], lp)
                else:
                    out[i] = L.link(x[i], lp)
            return out
        return link_apply_k
    return _cached(("link_apply", link.kernel_key, INV), make)


def apply_link(link: Any, x: Any, inverse: bool) -> Any:
    arr = np.asarray(x, dtype=np.float64)
    out = link_apply(link, inverse)(np.ascontiguousarray(arr.ravel()), float(link.param))
    return out.reshape(arr.shape) if arr.ndim else float(out[0])


# ---------------------------------------------------------------------------- multinomial
def multinomial_pass(batched: bool = False) -> Any:
    """Loss ``sum pw_i (logsumexp(z_i) - z_i[y_i])`` with ``z_i = W x_i + b`` and its gradient
    (``GW`` K x d, ``gb`` K), one pass over the rows (or over ``rows`` when batched)."""
    BATCHED = bool(batched)

    def make() -> Any:
        @lt.kernel(**_ROWS_KOPTS)
        def multinomial_pass_k(X: lt.f64["n", "d"], y: lt.i64["n"], pw: lt.f64["n"],
                               rows: lt.i64["m"], W: lt.f64["k", "d"], b: lt.f64["k"]):
            K = W.shape[0]
            GW = lt.zeros((K, X.shape[1]))
            gb = lt.zeros(K)
            loss = 0.0
            m = X.shape[0]
            if BATCHED:
                m = rows.shape[0]
            for r in range(m):
                i = r
                if BATCHED:
                    i = rows[r]
                xi = X[i]
                z = W @ xi + b
                zmax = lt.max(z)
                e = lt.exp(z - zmax)
                se = lt.sum(e)
                lse = zmax + lt.log(se)
                yi = y[i]
                loss += pw[i] * (lse - z[yi])
                p = pw[i] * (e / se)
                p[yi] = p[yi] - pw[i]
                gb = gb + p
                for k in range(K):
                    GW[k] = GW[k] + p[k] * xi
            return loss, GW, gb
        return multinomial_pass_k
    return _cached(("multinomial_pass", BATCHED), make)


def multinomial_hess() -> Any:
    """Loss, gradient and Hessian of the multinomial loss (for Newton's method): per row,
    ``sum pw (diag(p) - p p^T) (x) x x^T`` accumulated into ``HW[k, l, j, :]`` (K x K x d x d),
    the intercept blocks ``HWb`` (K x K x d) and ``Hb`` (K x K).  K^2 d^2 work per row."""
    def make() -> Any:
        @lt.kernel(**_ROWS_KOPTS)
        def multinomial_hess_k(X: lt.f64["n", "d"], y: lt.i64["n"], pw: lt.f64["n"],
                               W: lt.f64["k", "d"], b: lt.f64["k"]):
            K = W.shape[0]
            d = X.shape[1]
            GW = lt.zeros((K, d))
            gb = lt.zeros(K)
            HW = lt.zeros((K, K, d, d))
            HWb = lt.zeros((K, K, d))
            Hb = lt.zeros((K, K))
            loss = 0.0
            for i in range(X.shape[0]):
                xi = X[i]
                z = W @ xi + b
                zmax = lt.max(z)
                e = lt.exp(z - zmax)
                se = lt.sum(e)
                yi = y[i]
                loss += pw[i] * (zmax + lt.log(se) - z[yi])
                p = e / se
                g = pw[i] * p
                g[yi] = g[yi] - pw[i]
                gb = gb + g
                for k in range(K):
                    GW[k] = GW[k] + g[k] * xi
                    for l in range(K):
                        c = -pw[i] * p[k] * p[l]
                        if k == l:
                            c = c + pw[i] * p[k]
                        Hb[k, l] += c
                        HWb[k, l] = HWb[k, l] + c * xi
                        for j in range(d):
                            HW[k, l, j] = HW[k, l, j] + (c * xi[j]) * xi
            return loss, GW, gb, HW, HWb, Hb
        return multinomial_hess_k
    return _cached(("multinomial_hess",), make)


def multinomial_proba() -> Any:
    def make() -> Any:
        @lt.kernel(**_KOPTS)
        def multinomial_proba_k(X: lt.f64["n", "d"], W: lt.f64["k", "d"], b: lt.f64["k"]):
            P = lt.zeros((X.shape[0], W.shape[0]))
            for i in range(X.shape[0]):
                z = W @ X[i] + b
                e = lt.exp(z - lt.max(z))
                P[i] = e / lt.sum(e)
            return P
        return multinomial_proba_k
    return _cached(("multinomial_proba",), make)


# ---------------------------------------------------------------------------- least squares
def gram_pass() -> Any:
    """``G = sum w (x - mx)(x - mx)^T``, ``c = sum w (x - mx)(y - my)``, ``syy = sum w (y-my)^2``."""
    def make() -> Any:
        @lt.kernel(**_ROWS_KOPTS)
        def gram_pass_k(X: lt.f64["n", "d"], y: lt.f64["n"], sw: lt.f64["n"], mx: lt.f64["d"],
                        my: lt.f64):
            d = X.shape[1]
            G = lt.zeros((d, d))
            c = lt.zeros(d)
            syy = 0.0
            n = X.shape[0]
            nb = n // 4
            for b in range(nb):
                i = 4 * b
                x0 = X[i] - mx
                x1 = X[i + 1] - mx
                x2 = X[i + 2] - mx
                x3 = X[i + 3] - mx
                w0 = sw[i]
                w1 = sw[i + 1]
                w2 = sw[i + 2]
                w3 = sw[i + 3]
                y0 = y[i] - my
                y1 = y[i + 1] - my
                y2 = y[i + 2] - my
                y3 = y[i + 3] - my
                c = c + (w0 * y0) * x0 + (w1 * y1) * x1 + (w2 * y2) * x2 + (w3 * y3) * x3
                syy += w0 * y0 * y0 + w1 * y1 * y1 + w2 * y2 * y2 + w3 * y3 * y3
                for j in range(d):
                    G[j] = G[j] + (w0 * x0[j]) * x0 + (w1 * x1[j]) * x1 + (w2 * x2[j]) * x2 + (
                        w3 * x3[j]) * x3
            for i in range(4 * nb, n):
                xi = X[i] - mx
                yi = y[i] - my
                c = c + (sw[i] * yi) * xi
                syy += sw[i] * yi * yi
                for j in range(d):
                    G[j] = G[j] + (sw[i] * xi[j]) * xi
            return G, c, syy
        return gram_pass_k
    return _cached(("gram_pass",), make)


def all_finite() -> Any:
    """True when no element is NaN or infinite (one fused pass: x * 0 is 0 only for finite x)."""
    def make() -> Any:
        @lt.kernel(**_KOPTS)
        def all_finite_k(X: lt.f64["n", "d"]) -> lt.f64:
            return lt.sum(X * 0.0)
        return all_finite_k
    return _cached(("all_finite",), make)


# ---------------------------------------------------------------------------- threading
def num_threads() -> int:
    """lattice's thread count (``lt.set_num_threads`` / ``LATTICE_NUM_THREADS``)."""
    get = getattr(lt, "get_num_threads", None)
    if get is not None:
        return max(1, int(get()))
    env = os.environ.get("LATTICE_NUM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 16))


_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _LOCK:
        if _POOL is None or _POOL._max_workers < num_threads():
            _POOL = ThreadPoolExecutor(max_workers=num_threads(), thread_name_prefix="lattice")
        return _POOL


# below this many X elements per call a second thread costs more than it saves
_MIN_WORK_PER_THREAD = 200_000


def _sum_results(parts: Sequence[tuple]) -> tuple:
    out = list(parts[0])
    for p in parts[1:]:
        for k, v in enumerate(p):
            out[k] = out[k] + v
    return tuple(out)


def run_rows(kernel: Any, X: np.ndarray, rowvecs: Sequence[np.ndarray], rest: Sequence[Any],
             rows: np.ndarray | None = None, has_rows: bool = True) -> tuple:
    """Call ``kernel(X, *rowvecs, rows, *rest)`` split by rows across threads and add the
    partial results (every result of these kernels is a sum over rows).  Compiled kernels
    release the GIL while they run, so the threads run in parallel.

    ``rows`` None: contiguous chunks of ``X`` (views, no copies); otherwise the index array is
    split and ``X`` is passed whole.  ``has_rows=False``: the kernel takes no index argument."""
    n, d = X.shape
    m = n if rows is None else len(rows)
    t = min(num_threads(), max(1, (m * max(d, 1)) // _MIN_WORK_PER_THREAD))
    empty = np.empty(0, dtype=np.int64)
    idx: tuple = ((empty if rows is None else rows),) if has_rows else ()
    if t <= 1:
        return tuple(kernel(X, *rowvecs, *idx, *rest))
    bounds = np.linspace(0, m, t + 1).astype(np.int64)
    # multiples of 4 keep every chunk on the unrolled path
    bounds[1:-1] -= bounds[1:-1] % 4

    def call(k: int) -> tuple:
        a, b = int(bounds[k]), int(bounds[k + 1])
        if rows is None:
            idx_k: tuple = (empty,) if has_rows else ()
            return tuple(kernel(X[a:b], *(v[a:b] for v in rowvecs), *idx_k, *rest))
        return tuple(kernel(X, *rowvecs, rows[a:b], *rest))
    parts = list(_pool().map(call, range(t)))
    return _sum_results(parts)
