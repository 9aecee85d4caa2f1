"""GLM options, solvers, custom log-likelihood families, failure modes, verbose output."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import lattice as lt
from lattice.datasets import load_breast_cancer, load_diabetes
from lattice.models import (GLM, LBFGS, SGD, ConvergenceWarning, LogisticRegression,
                            PerfectSeparationWarning, SingularHessianWarning, families as F,
                            links as L)
from lattice.models import _kernels as K


@pytest.fixture(scope="module")
def diabetes_std():
    X, y = load_diabetes()
    return (X - X.mean(0)) / X.std(0), y


@pytest.fixture(scope="module")
def poisson_ref(diabetes_std):
    X, y = diabetes_std
    return GLM(F.Poisson(), tol=1e-14).fit(X, y)


def rel(a, b):
    return np.max(np.abs(np.asarray(a) - b)) / np.max(np.abs(b))


# ------------------------------------------------------------------ solvers
def test_lbfgs_and_gd_reach_the_irls_answer(diabetes_std, poisson_ref):
    X, y = diabetes_std
    a = GLM(F.Poisson(), solver="lbfgs", tol=1e-12, max_iter=500).fit(X, y)
    assert a.converged_ and rel(a.params_, poisson_ref.params_) < 1e-7
    assert rel(a.bse_, poisson_ref.bse_) < 1e-6
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # gd is slow: 3000 steps, not converged
        g = GLM(F.Poisson(), solver="gd", tol=1e-7, max_iter=3000).fit(X, y)
    assert rel(g.params_, poisson_ref.params_) < 1e-4
    a2 = GLM(F.Poisson(), solver=LBFGS(memory=3), tol=1e-12, max_iter=500).fit(X, y)
    assert rel(a2.params_, poisson_ref.params_) < 1e-7


def test_sgd_gets_close_and_shows_a_progress_bar(diabetes_std, poisson_ref, capsys):
    X, y = diabetes_std
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = GLM(F.Poisson(), solver=SGD(batch_size=32, random_state=0), max_iter=30,
                verbose=True).fit(X, y)
    assert rel(m.params_, poisson_ref.params_) < 2e-2
    err = capsys.readouterr().err
    assert "SGD [" in err and "epoch 30/30" in err


def test_sgd_logistic(diabetes_std):
    X, y = load_breast_cancer()
    X = (X - X.mean(0)) / X.std(0)
    ref = LogisticRegression(C=1.0, solver="newton", tol=1e-12).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = LogisticRegression(C=1.0, solver=SGD(batch_size=64), max_iter=60).fit(X, y)
    assert (m.predict(X) == ref.predict(X)).mean() > 0.97

    def penalized_loss(est):
        p = est.predict_proba(X)[np.arange(len(y)), y]
        return -np.log(p).sum() + 0.5 * np.sum(est.coef_ ** 2)
    assert penalized_loss(m) < 1.1 * penalized_loss(ref)  # ill-conditioned: SGD is slow here


def test_custom_solver_object_protocol(diabetes_std, poisson_ref):
    X, y = diabetes_std

    class Damped:
        """A user solver: damped Newton through the same objective protocol."""
        name = "damped"

        def minimize(self, objective, x0, *, tol, max_iter, verbose=False):
            from lattice.models.solvers import SolverResult
            x = objective.start(x0)
            for it in range(1, max_iter + 1):
                f, g, H = objective.loss_grad_hess(x)
                x = x - 0.7 * np.linalg.solve(H, g)
                if np.max(np.abs(g)) < 1e-9:
                    break
            f, g = objective.loss_grad(x)
            return SolverResult(x, f, g, it, True)

    m = GLM(F.Poisson(), solver=Damped(), max_iter=200).fit(X, y)
    assert rel(m.params_, poisson_ref.params_) < 1e-8


def test_verbose_prints_deviance_and_gradient(diabetes_std, capsys):
    X, y = diabetes_std
    GLM(F.Poisson(), verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "deviance" in out and "|grad|_inf" in out and "iter    1" in out


# ------------------------------------------------------------------ custom families via AD
@lt.kernel
def poisson_loglik(y: lt.f64, eta: lt.f64) -> lt.f64:
    return y * eta - lt.exp(eta)


def test_loglikelihood_family_uses_ad_and_matches_poisson(diabetes_std, poisson_ref):
    X, y = diabetes_std
    fam = F.LogLikelihood(poisson_loglik, link=L.Log())
    m = GLM(fam, tol=1e-14).fit(X, y)
    assert rel(m.params_, poisson_ref.params_) < 1e-7
    assert rel(m.bse_, poisson_ref.bse_) < 1e-7  # observed = expected information (canonical)
    np.testing.assert_allclose(m.predict(X), poisson_ref.predict(X), rtol=1e-6)
    # the log-likelihood up to the data-only constant sum lgamma(y + 1)
    from scipy.special import gammaln
    assert abs(m.llf_ - gammaln(y + 1).sum() - poisson_ref.llf_) < 1e-6 * abs(poisson_ref.llf_)


def test_loglikelihood_family_non_canonical():
    # logistic regression written as a log-likelihood
    X, y = load_breast_cancer()
    X = (X[:, :4] - X[:, :4].mean(0)) / X[:, :4].std(0)

    @lt.kernel
    def logit_ll(y: lt.f64, eta: lt.f64) -> lt.f64:
        return y * eta - lt.softplus(eta)

    m = GLM(F.LogLikelihood(logit_ll, link=L.Logit()), tol=1e-14).fit(X, y)
    ref = GLM(F.Binomial(), tol=1e-14).fit(X, y)
    assert rel(m.params_, ref.params_) < 1e-7
    np.testing.assert_allclose(m.deviance_, ref.deviance_, rtol=1e-9)


# ------------------------------------------------------------------ options
def test_warm_start_and_start_params(diabetes_std, poisson_ref):
    X, y = diabetes_std
    m = GLM(F.Poisson(), warm_start=True, tol=1e-14).fit(X, y)
    m.fit(X, y)
    assert m.n_iter_ <= 2 and rel(m.params_, poisson_ref.params_) < 1e-10
    s = GLM(F.Poisson(), tol=1e-14).fit(X, y, start_params=poisson_ref.params_)
    assert s.n_iter_ <= 2
    with pytest.raises(ValueError, match="start_params must have"):
        GLM(F.Poisson()).fit(X, y, start_params=[1.0, 2.0])


def test_kernels_compile_once_per_family_link(diabetes_std):
    X, y = diabetes_std
    GLM(F.Gamma(L.Log())).fit(X, y)
    k = K.glm_pass(F.Gamma(L.Log()), L.Log())
    before = (len(K.compiled_kernel_keys()), len(k._compiled))
    GLM(F.Gamma(L.Log())).fit(X[:200], y[:200])
    GLM(F.Tweedie(1.3)).fit(X, y)       # same (class, link) for any var_power: reused
    GLM(F.Tweedie(1.7)).fit(X, y)
    after_first_tweedie = len(K.compiled_kernel_keys())
    GLM(F.Tweedie(1.2)).fit(X, y)
    assert len(k._compiled) == before[1]
    assert len(K.compiled_kernel_keys()) == after_first_tweedie


def test_summary_and_conf_int(diabetes_std):
    X, y = diabetes_std
    m = GLM(F.Gamma(L.Log())).fit(X, y)
    s = m.summary()
    assert "Generalized Linear Model Regression Results" in s and "Gamma" in s and "const" in s
    ci = m.conf_int(0.1)
    assert ci.shape == (11, 2) and np.all(ci[:, 0] < m.params_) and np.all(m.params_ < ci[:, 1])
    names = load_diabetes(return_names=True)[2]
    import pandas as pd
    m2 = GLM(F.Gaussian()).fit(pd.DataFrame(X, columns=names), y)
    assert "bmi" in m2.summary()


# ------------------------------------------------------------------ failure modes
def test_nan_inf_in_inputs(diabetes_std):
    X, y = diabetes_std
    Xn = X.copy()
    Xn[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GLM().fit(Xn, y)
    yi = y.copy()
    yi[5] = np.inf
    with pytest.raises(ValueError, match="inf"):
        GLM().fit(X, yi)
    with pytest.raises(ValueError, match="offset contains NaN at index 1"):
        GLM(F.Poisson()).fit(X, y, offset=np.r_[0.0, np.nan, np.zeros(len(y) - 2)])


def test_response_outside_the_family_domain(diabetes_std):
    X, y = diabetes_std
    with pytest.raises(ValueError, match="Poisson: y must be non-negative counts"):
        GLM(F.Poisson()).fit(X, y - 100)
    with pytest.raises(ValueError, match="Gamma: y must be positive"):
        GLM(F.Gamma()).fit(X, np.r_[0.0, y[1:]])
    yb = (y > 150).astype(float)
    yb[0] = 0.5
    with pytest.raises(ValueError, match="0/1 labels"):
        GLM(F.Binomial()).fit(X, yb)
    GLM(F.Binomial()).fit(X, yb, sample_weight=np.full(len(y), 2.0))  # proportions + trials: ok
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        GLM(F.Binomial()).fit(X, yb * 3)
    with pytest.raises(ValueError, match="exposure is only meaningful with a Log link"):
        GLM(F.Gamma()).fit(X, y, exposure=np.ones(len(y)))


def test_perfect_separation_warns_and_l2_is_finite():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(float)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        GLM(F.Binomial(), max_iter=50).fit(X, y)
    assert any(issubclass(x.category, PerfectSeparationWarning) for x in w)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        LogisticRegression(C=np.inf, max_iter=50).fit(X, y)
    assert any(issubclass(x.category, PerfectSeparationWarning) for x in w)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = GLM(F.Binomial(), alpha=0.01).fit(X, y)
        lr = LogisticRegression(C=1.0).fit(X, y)
    assert np.all(np.isfinite(m.params_)) and np.all(np.isfinite(lr.coef_))
    assert m.converged_


def test_non_convergence_warns_with_gradient_norm(diabetes_std):
    X, y = diabetes_std
    with pytest.warns(ConvergenceWarning, match=r"did not converge in 2 iterations: last \|gradient\|_inf"):
        GLM(F.Gamma(L.Log()), solver="gd", max_iter=2).fit(X, y)


def test_singular_xtwx_falls_back_and_says_why(diabetes_std):
    X, y = diabetes_std
    X2 = np.column_stack([X, X[:, 0] - 2 * X[:, 1]])
    with pytest.warns(SingularHessianWarning, match="collinear"):
        m = GLM(F.Poisson(), tol=1e-12).fit(X2, y)
    ref = GLM(F.Poisson(), tol=1e-12).fit(X, y)
    np.testing.assert_allclose(m.predict(X2), ref.predict(X), rtol=1e-7)
    assert m.rank_ == X.shape[1] + 1 and m.df_resid_ == ref.df_resid_


def test_invalid_start_for_link_is_explained():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, 1))
    y = rng.uniform(1, 2, 50)
    with pytest.raises(ValueError, match="outside the family's domain"):
        GLM(F.Gamma(), fit_intercept=False).fit(X, y, start_params=[-1.0])


@pytest.mark.parametrize("family", [
    F.Binomial(), F.Binomial(link=L.CLogLog()), F.Poisson(),
    F.Gaussian(), F.Gamma(link=L.Log()), F.InverseGaussian(),
    F.NegativeBinomial(alpha=0.7), F.Tweedie(var_power=1.5),
])
@pytest.mark.parametrize("n", [5, K.GLM_ROWS, 2 * K.GLM_ROWS + 37])
def test_blocked_pass_matches_the_row_pass(family, n: int) -> None:
    """The blocked GLM pass (whole blocks as array operations, then the remainder rows)
    computes the same sums as the row-by-row pass, at the start values and at a beta."""
    rng = np.random.default_rng(n)
    d = 6
    X = rng.standard_normal((n, d)) * 0.3
    eta = X @ rng.normal(0, 0.5, d) + 0.2
    mu = np.asarray(family.link.inverse_of(eta))
    if isinstance(family, F.Binomial):
        y = (rng.random(n) < mu).astype(float)
    elif isinstance(family, F.Gaussian):
        y = mu + rng.standard_normal(n)
    else:
        y = rng.gamma(2.0, mu / 2.0)  # positive: valid for every other family here
    pw = rng.random(n) + 0.5
    off = rng.normal(0, 0.1, n)
    block = K.glm_pass(family, family.link)
    row = K.glm_row_pass(family, family.link)
    assert block is not row
    rows = np.empty(0, np.int64)
    for beta, b0, start in [(np.zeros(d), 0.0, 1), (rng.normal(0, 0.3, d), 0.1, 0)]:
        args = (X, y, pw, off, rows, beta, b0, float(family.param), float(
            family.link.param), start, float(y.mean()))
        full = row(*args)
        for got, want in zip(block(*args), full):
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12 * n)
        # the first-order passes (no X^T W X): the same score, deviance (and chi2, counts)
        b1 = K.glm_block_pass(family, family.link, hessian=False)(*args)
        r1 = K.glm_grad_pass(family, family.link)(*args)
        for got, want in [(b1[5], full[5]), (b1[6], full[6]), (b1[7], full[7]),
                          (b1[8], full[8]), (r1[0], full[5]), (r1[1], full[6]),
                          (r1[2], full[7])]:
            np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-12 * n)
        np.testing.assert_array_equal(b1[9], block(*args)[9])
    if isinstance(family, F.Binomial) and isinstance(family.link, L.Logit):
        # the start pass against NumPy: mu0 = (y + 1/2) / 2, w = pw mu0 (1 - mu0), eta0 = logit
        mu0 = (y + 0.5) / 2.0
        w = pw * mu0 * (1 - mu0)
        wz = w * (np.log(mu0 / (1 - mu0)) - off) + pw * (y - mu0)
        H, hx, h1, rx, r1 = block(X, y, pw, off, rows, np.zeros(d), 0.0, 0.0, 0.0, 1,
                                  float(y.mean()))[:5]
        np.testing.assert_allclose(H, X.T @ (w[:, None] * X), rtol=1e-12, atol=1e-13 * n)
        np.testing.assert_allclose(hx, w @ X, rtol=1e-12, atol=1e-13 * n)
        np.testing.assert_allclose(h1, w.sum(), rtol=1e-12)
        np.testing.assert_allclose(rx, wz @ X, rtol=1e-11, atol=1e-12 * n)
        np.testing.assert_allclose(r1, wz.sum(), rtol=1e-11, atol=1e-12 * n)


def test_lazy_statistics_survive_pickling_and_refits() -> None:
    """llf_, aic_, bic_ and null_deviance_ are computed on first access; a pickle carries
    their values (not the closure), and a refit replaces them."""
    import pickle
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = rng.poisson(np.exp(X @ np.array([0.3, -0.2, 0.1]))).astype(float)
    m = GLM(F.Poisson()).fit(X, y)
    m2 = pickle.loads(pickle.dumps(m))
    assert not m2.__dict__.get("_lazy")
    for name in ("llf_", "aic_", "bic_", "null_deviance_", "bse_", "pvalues_"):
        np.testing.assert_array_equal(getattr(m2, name), getattr(m, name))
    y0 = float(np.mean(y))
    assert m.null_deviance_ == pytest.approx(
        2.0 * np.sum(np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / y0), 0.0) - (y - y0)),
        rel=1e-10)
    llf = m.llf_
    m.fit(X[:150], y[:150])
    assert m.llf_ != llf
    with pytest.raises(AttributeError):
        GLM().llf_


@pytest.mark.parametrize("family", [F.Binomial(), F.Poisson(), F.Gaussian(), F.Gamma()])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("zero_weight", [False, True])
def test_irls_finds_a_non_finite_x_itself(family, value, zero_weight) -> None:
    """IRLS skips the separate finite check of X (its passes reveal a bad entry); the error
    still names the entry, without warnings first, even in a row of weight 0."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((300, 4)) * 0.3
    mu = np.asarray(family.link.inverse_of(X @ np.array([0.2, -0.1, 0.3, 0.1]) + 0.5))
    y = (rng.random(300) < mu).astype(float) if isinstance(family, F.Binomial) else \
        np.maximum(mu + 0.1 * rng.random(300), 0.05)
    X[137, 2] = value
    w = np.ones(300)
    if zero_weight:
        w[137] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"X contains (NaN|infinity) at row 137, column 2"):
            GLM(family).fit(X, y, sample_weight=w)


@pytest.mark.parametrize("family,sm_family", [
    (F.Binomial(), "Binomial"), (F.Poisson(), "Poisson"), (F.Gamma(link=L.Log()), "Gamma"),
])
def test_irls_checks_its_last_step_with_a_first_order_pass(family, sm_family, capsys) -> None:
    """At the default tol the last Newton step is predicted to converge, so it is checked with
    the first-order pass (no X^T W X); the covariance then takes one more pass, when first asked
    for.  The fit matches statsmodels' default IRLS, and a fit made with full passes only."""
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(3)
    n, d = 3000, 5
    X = rng.standard_normal((n, d))
    eta = X @ rng.normal(0, 0.3, d) + 0.3
    if sm_family == "Binomial":
        y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
        fam_sm = sm.families.Binomial()
    elif sm_family == "Poisson":
        y = rng.poisson(np.exp(eta)).astype(float)
        fam_sm = sm.families.Poisson()
    else:
        y = rng.gamma(2.0, np.exp(eta) / 2.0)
        fam_sm = sm.families.Gamma(sm.families.links.Log())
    m = GLM(family, verbose=True).fit(X, y)
    out = capsys.readouterr().out
    assert "(first-order check)" in out.splitlines()[-1], out
    assert m.converged_
    assert "bse_" not in m.__dict__  # not computed yet
    r = sm.GLM(y, sm.add_constant(X), family=fam_sm).fit()
    np.testing.assert_allclose(m.params_, r.params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(m.bse_, r.bse, rtol=1e-6)
    np.testing.assert_allclose(m.deviance_, r.deviance, rtol=1e-10)
    np.testing.assert_allclose(m.pearson_chi2_, r.pearson_chi2, rtol=1e-7)

    from lattice.models import _objectives as O
    saved = O.GLMObjective.can_end_first_order
    O.GLMObjective.can_end_first_order = False  # every step with X^T W X
    try:
        full = GLM(family).fit(X, y)
    finally:
        O.GLMObjective.can_end_first_order = saved
    assert "bse_" in full.__dict__
    np.testing.assert_allclose(m.params_, full.params_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(m.bse_, full.bse_, rtol=1e-7)
    np.testing.assert_allclose(m.deviance_, full.deviance_, rtol=1e-11)
    assert m.rank_ == full.rank_ == d + 1
