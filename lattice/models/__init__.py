"""lattice.models: statistical models built on lattice kernels and automatic differentiation.

Estimators follow scikit-learn's conventions (``fit``/``predict``, ``get_params``, pipelines,
``GridSearchCV``) and report statsmodels-style inference (standard errors, p-values,
deviance, AIC/BIC, ``summary()``).  Every iteration of every solver is one pass of a compiled
kernel over the data, generated for the model's (family, link) pair.

Needs the ``models`` extra: ``pip install 'lattice[models]'`` (scikit-learn and SciPy).
"""
from . import families, links, solvers
from ._base import ConvergenceWarning, PerfectSeparationWarning
from .glm import GLM
from .linear import LinearRegression, Ridge
from .logistic import LogisticRegression
from .solvers import GradientDescent, LBFGS, Newton, SGD, SingularHessianWarning

__all__ = ["GLM", "LinearRegression", "Ridge", "LogisticRegression", "families", "links", "solvers", "Newton", "LBFGS", "GradientDescent", "SGD",
           "ConvergenceWarning", "PerfectSeparationWarning", "SingularHessianWarning"]
