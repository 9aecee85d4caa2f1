"""Vectorised exp/log (codegen/vmath.py) against the libm lowering, side by side in one process.

    python bench/vmath.py [--quick]

Every kernel is compiled twice, with ``vmath.ENABLED`` off (libm calls, the lowering before
vmath) and on; the two and NumPy (and JAX when installed) are timed interleaved, medians.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lattice as lt  # noqa: E402
from lattice.testing.timing import median_time  # noqa: E402
from lattice.codegen import vmath  # noqa: E402


def _sum_of(fn: Callable[[Any], Any]) -> Any:
    @lt.kernel
    def k(x: lt.f64["n"]) -> lt.f64:
        return lt.sum(fn(x))
    return k


def make() -> dict[str, Any]:
    """Fresh kernels (compiled on first call, under the current vmath.ENABLED)."""
    sum_exp, sum_log = _sum_of(lt.exp), _sum_of(lt.log)
    sum_erf, sum_erfc = _sum_of(lt.erf), _sum_of(lt.erfc)
    sum_lgamma, sum_digamma = _sum_of(lt.lgamma), _sum_of(lt.digamma)

    @lt.kernel
    def sum_exp32(x: lt.f32["n"]) -> lt.f32:
        return lt.sum(lt.exp(x))

    @lt.kernel(parallel=True)
    def loss(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64:
        z = X @ w
        return lt.sum(lt.softplus(z) - y * z) / X.shape[0]

    @lt.kernel
    def loss_loop(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64:
        total = 0.0
        for i in range(X.shape[0]):
            z = lt.dot(X[i], w)
            total += lt.softplus(z) - y[i] * z
        return total / X.shape[0]

    @lt.kernel(parallel=True)
    def stream(X: lt.f64["n", "d"]) -> lt.f64:
        return lt.sum(X)

    @lt.kernel
    def softmax(X: lt.f64["n", "d"]) -> lt.f64["n", "d"]:
        e = lt.exp(X - lt.max(X, axis=1)[:, None])
        return e / lt.sum(e, axis=1)[:, None]

    @lt.kernel
    def logsumexp(X: lt.f64["n", "d"]) -> lt.f64["n"]:
        m = lt.max(X, axis=1)
        return m + lt.log(lt.sum(lt.exp(X - m[:, None]), axis=1))

    @lt.kernel
    def probit_ll(X: lt.f64["n", "d"], y: lt.f64["n"], w: lt.f64["d"]) -> lt.f64:
        z = X @ w  # log-likelihood of a probit model: P(y = 1) = Phi(z) = erfc(-z/sqrt 2)/2
        p = 0.5 * lt.erfc(-z * 0.7071067811865476)
        return lt.sum(y * lt.log(p) + (1.0 - y) * lt.log1p(-p))

    return dict(sum_erf=sum_erf, sum_erfc=sum_erfc, sum_lgamma=sum_lgamma,
                sum_digamma=sum_digamma, probit_ll=probit_ll,
                sum_exp=sum_exp, sum_exp32=sum_exp32, sum_log=sum_log, loss=loss,
                grad=lt.grad(loss, argnums=2), loss_loop=loss_loop,
                grad_loop=lt.grad(loss_loop, argnums=2), stream=stream, softmax=softmax,
                logsumexp=logsumexp)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    n = 1_000_000 if a.quick else 10_000_000
    x = rng.standard_normal(n)
    x32 = x.astype(np.float32)
    xp = np.abs(x) + 0.1
    xg = rng.uniform(0.1, 30.0, n)  # lgamma/digamma arguments, as a count model's y + 1/alpha
    rows = 100_000 if a.quick else 1_000_000
    X = rng.standard_normal((rows, 32))
    y = (rng.random(rows) < 0.5).astype(np.float64)
    w = rng.standard_normal(32) * 0.1
    S = rng.standard_normal((250_000, 32))
    args = dict(sum_exp=(x,), sum_exp32=(x32,), sum_log=(xp,), loss=(X, y, w), grad=(X, y, w),
                loss_loop=(X, y, w), grad_loop=(X, y, w),
                stream=(X,), softmax=(S,), logsumexp=(S,), sum_erf=(x,), sum_erfc=(x,),
                sum_lgamma=(xg,), sum_digamma=(xg,), probit_ll=(X, y, w))
    kernels = {}
    for enabled in (False, True):
        vmath.ENABLED = enabled
        ks = make()
        for k, f in ks.items():
            f(*args[k])  # compile now, under this setting
        kernels[enabled] = ks
    vmath.ENABLED = True

    def np_softmax() -> Any:
        e = np.exp(S - S.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def np_lse() -> Any:
        m = S.max(1)
        return m + np.log(np.exp(S - m[:, None]).sum(1))

    peers: dict[str, dict[str, Callable[[], Any]]] = {
        "sum_exp": {"NumPy": lambda: np.exp(x).sum()},
        "sum_exp32": {"NumPy": lambda: np.exp(x32).sum()},
        "sum_log": {"NumPy": lambda: np.log(xp).sum()},
        "loss": {"NumPy": lambda: np.mean(np.logaddexp(0, X @ w) - y * (X @ w))},
        "grad": {"NumPy": lambda: X.T @ (1 / (1 + np.exp(-(X @ w))) - y) / rows},
        "loss_loop": {}, "grad_loop": {}, "stream": {},
        "softmax": {"NumPy": np_softmax},
        "logsumexp": {"NumPy": np_lse},
    }
    try:
        import scipy.special as sc
        peers["sum_erf"] = {"SciPy": lambda: sc.erf(x).sum()}
        peers["sum_erfc"] = {"SciPy": lambda: sc.erfc(x).sum()}
        peers["sum_lgamma"] = {"SciPy": lambda: sc.gammaln(xg).sum()}
        peers["sum_digamma"] = {"SciPy": lambda: sc.digamma(xg).sum()}

        def sp_probit() -> Any:
            p = sc.ndtr(X @ w)
            return np.sum(y * np.log(p) + (1 - y) * np.log1p(-p))
        peers["probit_ll"] = {"SciPy": sp_probit}
    except ImportError:
        for k in ("sum_erf", "sum_erfc", "sum_lgamma", "sum_digamma", "probit_ll"):
            peers[k] = {}
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        js, jl = jax.jit(jax.nn.softmax), jax.jit(lambda v: jax.scipy.special.logsumexp(v, axis=1))
        jS = jnp.asarray(S)
        peers["softmax"]["JAX"] = lambda: js(jS).block_until_ready()
        peers["logsumexp"]["JAX"] = lambda: jl(jS).block_until_ready()
        jx = jnp.asarray(x)
        je = jax.jit(lambda v: jnp.sum(jnp.exp(v)))
        peers["sum_exp"]["JAX"] = lambda: je(jx).block_until_ready()
    except ImportError:
        pass

    rep = 5 if a.quick else 7
    print(f"| kernel | libm (before) | vmath (after) | speed-up | peers |")
    print("| --- | --- | --- | --- | --- |")
    for k in kernels[True]:
        fns = {"before": lambda k=k: kernels[False][k](*args[k]),
               "after": lambda k=k: kernels[True][k](*args[k]), **peers[k]}
        for f in fns.values():
            f()
        times: dict[str, list[float]] = {name: [] for name in fns}
        for _ in range(3):  # interleaved rounds
            for name, f in fns.items():
                times[name].append(median_time(f, repeat=rep, min_time=0.0))
        t = {name: float(np.median(v)) for name, v in times.items()}
        peer_s = ", ".join(f"{p} {t[p] * 1e3:.2f} ms ({t[p] / t['after']:.2f}x)" for p in peers[k])
        print(f"| {k} | {t['before'] * 1e3:.2f} ms | {t['after'] * 1e3:.2f} ms | "
              f"{t['before'] / t['after']:.2f}x | {peer_s or '-'} |")


if __name__ == "__main__":
    main()
