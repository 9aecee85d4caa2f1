"""lattice.models and lattice.ranking against their peers, side by side in one run.

    python bench/models.py [--n 1000000] [--d 32] [--repeat 3]

* GLM(Binomial) on n x d vs statsmodels GLM(Binomial).fit() and scikit-learn
  LogisticRegression(C=np.inf);
* GLM(Poisson) vs statsmodels GLM(Poisson).fit() and scikit-learn PoissonRegressor(alpha=0);
* top_k on 10,000 x 128 float32 with 1 and with 1,000 queries vs NumPy (E @ Q.T, argpartition,
  sort of the k best).

Times are medians over ``--repeat`` runs (first lattice run, which compiles, excluded);
"max |coef diff|" is the largest absolute difference of the fitted parameters (intercept
included) from lattice's.  Needs scikit-learn and statsmodels (the `test` extra).
"""
from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np


def median_time(fn, repeat):
    out, times = None, []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def fmt(t):
    return f"{t * 1e3:9.1f} ms" if t < 10 else f"{t:9.2f} s "


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    import sklearn
    import statsmodels
    import statsmodels.api as sm
    from sklearn.linear_model import LogisticRegression as SkLogistic, PoissonRegressor
    import lattice as lt
    from lattice.models import GLM, families
    from lattice.ranking import top_k

    n, d, rep = args.n, args.d, args.repeat
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, d))
    beta = rng.normal(0, 0.3, d)
    eta = X @ beta
    yb = (rng.random(n) < 1.0 / (1.0 + np.exp(-(eta + 0.5)))).astype(np.float64)
    yp = rng.poisson(np.exp(0.3 * eta + 0.2)).astype(np.float64)
    Xc = sm.add_constant(X)
    threads = lt.get_num_threads() if hasattr(lt, "get_num_threads") else os.cpu_count()
    print(f"lattice {lt.__version__} ({threads} threads), statsmodels {statsmodels.__version__}, "
          f"scikit-learn {sklearn.__version__}, NumPy {np.__version__}; {os.cpu_count()} CPUs")
    print(f"data: X {n} x {d} float64; medians of {rep} runs\n")

    rows = []
    for name, fam, smfam, y, sk in [
        ("Binomial", families.Binomial(), sm.families.Binomial(), yb,
         lambda: SkLogistic(C=np.inf, tol=1e-8, max_iter=1000)),
        ("Poisson", families.Poisson(), sm.families.Poisson(), yp,
         lambda: PoissonRegressor(alpha=0.0, tol=1e-8, max_iter=1000)),
    ]:
        GLM(fam).fit(X[:1000], y[:1000])  # compile outside the timing
        t_lt, m = median_time(lambda: GLM(fam).fit(X, y), rep)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_sm, r = median_time(lambda: sm.GLM(y, Xc, family=smfam).fit(), rep)
            t_sk, s = median_time(lambda: sk().fit(X, y), rep)
        sk_params = np.r_[np.ravel(s.intercept_), np.ravel(s.coef_)]
        rows.append((f"GLM({name}) lattice IRLS", t_lt, f"{m.n_iter_} iterations", ""))

        def bse_read() -> float:  # bse_ after a fit whose last step was first-order: a pass
            mm = GLM(fam).fit(X, y)
            t0 = time.perf_counter()
            mm.bse_
            return time.perf_counter() - t0
        rows.append(("  then reading bse_ (lazy)", float(np.median([bse_read()
                                                                   for _ in range(rep)])),
                     "", "X^T W X at the solution, when the fit ended on a first-order check"))
        rows.append((f"  statsmodels GLM.fit()", t_sm, f"{r.fit_history['iteration']} iterations",
                     f"max |coef diff| {np.max(np.abs(r.params - m.params_)):.2e}, "
                     f"max |bse diff| {np.max(np.abs(r.bse - m.bse_)):.2e}"))
        sk_name = "LogisticRegression(C=inf)" if name == "Binomial" else "PoissonRegressor"
        rows.append((f"  scikit-learn {sk_name}", t_sk, f"{int(np.ravel(s.n_iter_)[0])} iterations",
                     f"max |coef diff| {np.max(np.abs(sk_params - m.params_)):.2e}"))

    E = rng.standard_normal((10_000, 128)).astype(np.float32)
    for m_q in (1, 1000):
        Q = rng.standard_normal((m_q, 128)).astype(np.float32)
        q = Q[0] if m_q == 1 else Q
        top_k(E, q, 10)
        reps = max(rep, 20 if m_q == 1 else rep)

        def numpy_topk():
            S = np.atleast_2d(Q @ E.T)
            part = np.argpartition(-S, 10, axis=1)[:, :10]
            order = np.argsort(-np.take_along_axis(S, part, 1), axis=1, kind="stable")
            return np.take_along_axis(part, order, 1)
        t_lt, (idx, _) = median_time(lambda: top_k(E, q, 10), reps)
        t_np, ref = median_time(numpy_topk, reps)
        same = float((np.atleast_2d(idx) == ref).mean())
        rows.append((f"top_k 10000x128, {m_q} quer{'y' if m_q == 1 else 'ies'}, k=10", t_lt,
                     "lattice", ""))
        rows.append(("  NumPy Q @ E.T + argpartition", t_np, "",
                     f"same indices: {same * 100:.2f}% (float32 near-ties may differ)"))

    w = max(len(r[0]) for r in rows) + 2
    for label, t, info, diff in rows:
        print(f"{label:<{w}}{fmt(t)}  {info:<16}{diff}")


if __name__ == "__main__":
    main()
