"""Hostile inputs to the model library (issue 6, item 8): clear errors or finite results."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from lattice.models import GLM, LinearRegression, LogisticRegression, Ridge  # noqa: E402

rng = np.random.default_rng(0)
N, D = 120, 4
X = rng.standard_normal((N, D))
BETA = np.array([1.0, -2.0, 0.5, 0.0])
Y = X @ BETA + 0.1 * rng.standard_normal(N)
YB = (X @ BETA + 0.3 * rng.standard_normal(N) > 0).astype(float)
MODELS = [(LinearRegression, Y), (Ridge, Y), (LogisticRegression, YB), (GLM, Y)]
IDS = [m.__name__ for m, _ in MODELS]


def _with(X, i, j, v):
    X = X.copy()
    X[i, j] = v
    return X


@pytest.mark.parametrize("M,y", MODELS, ids=IDS)
@pytest.mark.parametrize("bad", [
    lambda y: (_with(X, 3, 1, np.nan), y, r"contains NaN"),
    lambda y: (_with(X, 3, 1, np.inf), y, r"infinity"),
    lambda y: (X, np.where(np.arange(N) == 3, np.nan, y), r"y contains NaN"),
    lambda y: (X[:0], y[:0], r"0 sample"),
], ids=["nan-in-X", "inf-in-X", "nan-in-y", "no-rows"])
def test_invalid_data_is_a_clear_error(M, y, bad):
    Xb, yb, msg = bad(y)
    with pytest.raises(ValueError, match=msg):
        M().fit(Xb, yb)


@pytest.mark.parametrize("M,y", MODELS, ids=IDS)
@pytest.mark.parametrize("w,msg", [(-np.ones(N), "Negative"), (np.zeros(N), "non-zero")],
                         ids=["negative", "all-zero"])
def test_invalid_weights_are_a_clear_error(M, y, w, msg):
    with pytest.raises(ValueError, match=msg):
        M().fit(X, y, sample_weight=w)


@pytest.mark.parametrize("M,y", MODELS, ids=IDS)
@pytest.mark.parametrize("data", [
    lambda: np.column_stack([X[:, :2], np.full(N, 3.0), X[:, 3]]),  # a constant column
    lambda: np.column_stack([X, X[:, 0]]),                          # a duplicated column
], ids=["constant-column", "duplicated-column"])
def test_degenerate_columns_give_finite_coefficients(M, y, data):
    Xd = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GLM documents a SingularHessianWarning here
        m = M().fit(Xd, y)
    assert np.all(np.isfinite(m.coef_)) and np.all(np.isfinite(m.predict(Xd)))


@pytest.mark.parametrize("M,y", MODELS, ids=IDS)
def test_extreme_weights_give_finite_coefficients(M, y):
    w = np.where(np.arange(N) < 5, 1e12, 1e-12)
    m = M().fit(X, y, sample_weight=w)
    assert np.all(np.isfinite(m.coef_))


def test_separable_classes():
    ysep = (X[:, 0] > 0).astype(float)
    m = LogisticRegression().fit(X, ysep)  # penalised: a finite optimum exists
    assert np.all(np.isfinite(m.coef_)) and (m.predict(X) == ysep).mean() > 0.9
    with pytest.warns(Warning, match="separation"):
        m2 = LogisticRegression(C=np.inf).fit(X, ysep)
    assert np.all(np.isfinite(m2.coef_))
    with pytest.raises(ValueError, match="2 classes"):
        LogisticRegression().fit(X, np.ones(N))
