"""The GLM rows of the performance targets as asv benchmarks: a Binomial (logistic) and a
Poisson fit on X 1,000,000 x 32 float64 by lattice's IRLS, statsmodels' GLM and scikit-learn
(``LogisticRegression(C=inf)`` with lbfgs, ``PoissonRegressor(alpha=0)``), tolerances tight
enough that all three agree to 1e-6.  The data are those of ``bench/models.py``.

Set ``LATTICE_BENCH_QUICK=1`` for 100,000 rows.  A statsmodels fit at full size takes 15-40 s.
"""
import os
import sys
import warnings

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # the working tree, also when lattice is not installed

_data = {}


def _problem(name):
    if name not in _data:
        n = 100_000 if os.environ.get("LATTICE_BENCH_QUICK") else 1_000_000
        rng = np.random.default_rng(0)
        X = rng.standard_normal((n, 32))
        eta = X @ rng.normal(0, 0.3, 32)
        if name == "binomial":
            y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(eta + 0.5)))).astype(np.float64)
        else:
            y = rng.poisson(np.exp(0.3 * eta + 0.2)).astype(np.float64)
        _data[name] = (X, y)
    return _data[name]


class GLMFit:
    params = [["binomial", "poisson"], ["lattice", "statsmodels", "scikit-learn"]]
    param_names = ["family", "peer"]
    timeout = 900
    number = 1
    repeat = 3

    def setup(self, family, peer):
        X, y = _problem(family)
        if peer == "lattice":
            from lattice.models import GLM, families
            fam = families.Binomial() if family == "binomial" else families.Poisson()
            GLM(fam).fit(X[:1000], y[:1000])  # compile outside the timing
            self.fit = lambda: GLM(fam).fit(X, y)
        elif peer == "statsmodels":
            import statsmodels.api as sm
            Xc = sm.add_constant(X)
            fam = sm.families.Binomial() if family == "binomial" else sm.families.Poisson()
            self.fit = lambda: sm.GLM(y, Xc, family=fam).fit()
        else:
            from sklearn.linear_model import LogisticRegression, PoissonRegressor
            if family == "binomial":
                self.fit = lambda: LogisticRegression(C=np.inf, tol=1e-8, max_iter=1000).fit(X, y)
            else:
                self.fit = lambda: PoissonRegressor(alpha=0.0, tol=1e-8, max_iter=1000).fit(X, y)

    def time_fit(self, family, peer):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.fit()
