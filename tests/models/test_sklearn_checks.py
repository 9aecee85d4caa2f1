"""scikit-learn's estimator checks, with no expected failures."""
from __future__ import annotations

import pytest

pytest.importorskip("sklearn")
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from lattice.models import GLM, LinearRegression, LogisticRegression, Ridge  # noqa: E402

ESTIMATORS = [LinearRegression(), Ridge(), LogisticRegression(), GLM(),
              LogisticRegression(solver="newton")]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_compatible(estimator, check):
    check(estimator)
