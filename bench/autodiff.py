"""Logistic-loss gradient figures, side by side in one run (issue: autodiff report).

    python bench/autodiff.py [--n 1000000] [--d 32] [--repeat 9]

Times, on the same float64 data, the loss and ``lt.grad`` of the loss in both styles (tensor
expression and explicit loop), the NumPy gradient ``X.T @ (sigmoid(X @ w) - y) / n``, and
``jax.jit(jax.grad(loss))`` when JAX is installed (x64 enabled). Prints medians and ratios.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import lattice as lt  # noqa: E402
from lattice.testing.timing import median_time  # noqa: E402


@lt.kernel
def logistic_loss(w: lt.f64["d"], X: lt.f64["n", "d"], y: lt.f64["n"]) -> lt.f64:
    z = X @ w
    return lt.mean(lt.softplus(z) - y * z)


@lt.kernel
def logistic_loss_loop(w: lt.f64["d"], X: lt.f64["n", "d"], y: lt.f64["n"]) -> lt.f64:
    total = 0.0
    for i in range(X.shape[0]):
        z = lt.dot(X[i], w)
        total += lt.softplus(z) - y[i] * z
    return total / X.shape[0]


def median_s(fn, repeat: int) -> float:
    """Median seconds of ``repeat`` single calls after a warm-up call."""
    return median_time(fn, repeat=repeat, min_time=0.0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=9)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.n, a.d))
    w = rng.standard_normal(a.d) * 0.1
    y = (rng.random(a.n) < 0.5).astype(np.float64)

    def np_grad():
        return X.T @ (1.0 / (1.0 + np.exp(-(X @ w))) - y) / a.n

    ref = np_grad()
    rows = []
    for name, loss in (("tensor", logistic_loss), ("loop", logistic_loss_loop)):
        g = lt.grad(loss)
        assert np.allclose(g(w, X, y), ref, rtol=1e-8, atol=1e-12)
        f_t = median_s(lambda: loss(w, X, y), a.repeat)
        g_t = median_s(lambda: g(w, X, y), a.repeat)
        rows.append((f"lattice {name} style", f_t, g_t))
    rows.append(("NumPy", None, median_s(np_grad, a.repeat)))
    try:
        os.environ.setdefault("JAX_ENABLE_X64", "1")
        import jax
        import jax.numpy as jnp

        def jloss(w, X, y):
            z = X @ w
            return jnp.mean(jax.nn.softplus(z) - y * z)
        jf, jg = jax.jit(jloss), jax.jit(jax.grad(jloss))
        Xj, wj, yj = jnp.asarray(X), jnp.asarray(w), jnp.asarray(y)
        assert np.allclose(np.asarray(jg(wj, Xj, yj)), ref, rtol=1e-8, atol=1e-12)
        rows.append(("JAX jit", median_s(lambda: jf(wj, Xj, yj).block_until_ready(), a.repeat),
                     median_s(lambda: jg(wj, Xj, yj).block_until_ready(), a.repeat)))
    except ImportError:
        print("(JAX not installed: skipped)")
    base = rows[0][2]
    print(f"logistic loss, {a.n:,} x {a.d} float64, median of {a.repeat}")
    print(f"{'':22s} {'forward':>10s} {'gradient':>10s} {'grad/fwd':>9s} {'grad vs lattice':>16s}")
    for name, f_t, g_t in rows:
        fs = f"{f_t * 1e3:8.1f}ms" if f_t else f"{'-':>10s}"
        ratio = f"{g_t / f_t:9.2f}" if f_t else f"{'-':>9s}"
        print(f"{name:22s} {fs:>10s} {g_t * 1e3:8.1f}ms {ratio} {g_t / base:15.2f}x")


if __name__ == "__main__":
    main()
