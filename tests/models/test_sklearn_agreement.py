"""LinearRegression, Ridge, LogisticRegression and penalized GLMs against scikit-learn at
matched settings, on the shipped real data sets; pipelines, clone and GridSearchCV."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")
import sklearn.linear_model as skl
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from lattice.datasets import load_breast_cancer, load_diabetes, load_digits
from lattice.models import GLM, LinearRegression, LogisticRegression, Ridge, families as F, links as L

RTOL = 1e-5


def close(got, want, rtol=RTOL):
    got, want = np.asarray(got, float), np.asarray(want, float)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * np.max(np.abs(want)))


@pytest.fixture(scope="module")
def diabetes():
    return load_diabetes()


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer()
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits()
    return X / 16.0, y


def test_linear_regression_and_ridge(diabetes):
    X, y = diabetes
    w = np.random.default_rng(0).uniform(0.1, 2.0, len(y))
    for ours, theirs in [(LinearRegression(), skl.LinearRegression()),
                         (Ridge(alpha=0.3), skl.Ridge(alpha=0.3)),
                         (Ridge(alpha=2.0, fit_intercept=False), skl.Ridge(alpha=2.0, fit_intercept=False))]:
        for sw in (None, w):
            a, b = ours.fit(X, y, sample_weight=sw), theirs.fit(X, y, sample_weight=sw)
            close(a.coef_, b.coef_, 1e-9)
            assert abs(a.intercept_ - b.intercept_) <= 1e-9 * max(1.0, abs(b.intercept_))
            close(a.predict(X), b.predict(X), 1e-9)


def test_linear_regression_rank_deficient_is_min_norm(diabetes):
    X, y = diabetes
    X2 = np.column_stack([X, X[:, 0] + X[:, 1]])
    a, b = LinearRegression().fit(X2, y), skl.LinearRegression().fit(X2, y)
    close(a.predict(X2), b.predict(X2), 1e-8)
    close(a.coef_, b.coef_, 1e-6)


@pytest.mark.parametrize("solver", ["lbfgs", "newton"])
@pytest.mark.parametrize("C", [1.0, 0.05])
def test_binary_logistic_breast_cancer(cancer, solver, C):
    X, y = cancer
    a = LogisticRegression(C=C, solver=solver, tol=1e-12, max_iter=1000).fit(X, y)
    # the reference: scikit-learn's Newton solver converged to its limit
    b = skl.LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    close(a.coef_, b.coef_)
    close(a.intercept_, b.intercept_)
    close(a.predict_proba(X), b.predict_proba(X))
    close(a.decision_function(X), b.decision_function(X))
    assert (a.predict(X) == b.predict(X)).all()


def test_logistic_unpenalized_matches_glm_binomial(cancer):
    X, y = cancer
    X = X[:, :5]
    a = LogisticRegression(C=np.inf, solver="newton", tol=1e-12).fit(X, y)
    b = skl.LogisticRegression(C=np.inf, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    g = GLM(F.Binomial(), tol=1e-14).fit(X, y)
    close(a.coef_.ravel(), b.coef_.ravel())
    close(a.coef_.ravel(), g.coef_, 1e-8)
    close(a.intercept_, g.intercept_, 1e-8)


@pytest.fixture(scope="module")
def digits_ref(digits):
    X, y = digits
    return skl.LogisticRegression(C=1.0, solver="newton-cholesky", tol=1e-12,
                                  max_iter=1000).fit(X, y)


def test_multinomial_digits_lbfgs(digits, digits_ref):
    X, y = digits
    a = LogisticRegression(C=1.0, tol=1e-11, max_iter=2000).fit(X, y)
    b = digits_ref
    close(a.coef_, b.coef_)
    close(a.intercept_ - a.intercept_.mean(), b.intercept_ - b.intercept_.mean())
    close(a.predict_proba(X), b.predict_proba(X))
    assert (a.predict(X) == b.predict(X)).mean() > 0.999


def test_multinomial_newton_on_part_of_digits(digits):
    # the full (K d + K)^2 Hessian costs K^2 d^2 per row: a 400-row part keeps the test short
    X, y = digits[0][:400], digits[1][:400]
    a = LogisticRegression(C=0.5, solver="newton", tol=1e-12).fit(X, y)
    b = skl.LogisticRegression(C=0.5, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(X, y)
    close(a.coef_, b.coef_, 1e-7)
    close(a.predict_proba(X), b.predict_proba(X), 1e-7)
    assert a.n_iter_[0] < 20


@pytest.mark.parametrize("ours,theirs,y_kind", [
    (lambda: GLM(F.Poisson(), alpha=0.01, tol=1e-14), lambda: skl.PoissonRegressor(alpha=0.01), "y"),
    (lambda: GLM(F.Gamma(L.Log()), alpha=0.01, tol=1e-14),
     lambda: skl.GammaRegressor(alpha=0.01), "y"),
    (lambda: GLM(F.Tweedie(1.5), alpha=0.01, tol=1e-14),
     lambda: skl.TweedieRegressor(power=1.5, alpha=0.01, link="log"), "y"),
    (lambda: GLM(F.Poisson(), tol=1e-14), lambda: skl.PoissonRegressor(alpha=0.0), "y"),
])
def test_penalized_glm_matches_sklearn_regressors(diabetes, ours, theirs, y_kind):
    X, y = diabetes
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(y))
    a = ours().fit(X, y, sample_weight=w)
    b = theirs().set_params(tol=1e-12, max_iter=10000, solver="newton-cholesky").fit(
        X, y, sample_weight=w)
    close(a.coef_, b.coef_)
    close(a.intercept_, b.intercept_)


def test_string_labels_clone_pipeline_gridsearch(cancer):
    X, y = cancer
    labels = np.array(["malignant", "benign"])[y]
    pipe = make_pipeline(StandardScaler(), LogisticRegression())
    pipe.fit(X, labels)
    assert set(pipe.predict(X)) <= {"malignant", "benign"}
    assert list(pipe[-1].classes_) == ["benign", "malignant"]
    gs = GridSearchCV(LogisticRegression(), {"C": [0.01, 1.0]}, cv=3).fit(X, labels)
    assert gs.best_params_["C"] in (0.01, 1.0)
    c = clone(GLM(F.Poisson(), alpha=0.1))
    assert c.get_params()["alpha"] == 0.1 and not hasattr(c, "coef_")
    g = GridSearchCV(Ridge(), {"alpha": [0.1, 10.0]}, cv=3).fit(*load_diabetes())
    assert g.best_params_["alpha"] in (0.1, 10.0)
