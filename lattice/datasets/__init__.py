"""Small real data sets shipped with lattice (no download), for tests, examples and the demo.

Each loader returns ``(X, y)``; with ``return_names=True`` it returns
``(X, y, feature_names)``.  See ``README.md`` beside this file for sources and licences.
"""
from __future__ import annotations

from importlib import resources
from typing import Any

import numpy as np

__all__ = ["load_breast_cancer", "load_digits", "load_diabetes"]


def _load(name: str) -> Any:
    with resources.files(__name__).joinpath(name).open("rb") as fh:
        return dict(np.load(fh, allow_pickle=False))


def _out(X: np.ndarray, y: np.ndarray, names: np.ndarray, return_names: bool) -> Any:
    if return_names:
        return X, y, [str(s) for s in names]
    return X, y


def load_breast_cancer(return_names: bool = False) -> Any:
    """Wisconsin diagnostic breast cancer: 569 x 30 float64 features of cell nuclei; y is 0
    (malignant) or 1 (benign), int64."""
    d = _load("breast_cancer.npz")
    return _out(d["data"].astype(np.float64), d["target"].astype(np.int64), d["feature_names"],
                return_names)


def load_digits(return_names: bool = False) -> Any:
    """Optical recognition of handwritten digits: 1797 x 64 float64 pixel counts (0..16) of
    8 x 8 images; y is the digit 0..9, int64."""
    d = _load("digits.npz")
    return _out(d["data"].astype(np.float64), d["target"].astype(np.int64), d["feature_names"],
                return_names)


def load_diabetes(return_names: bool = False) -> Any:
    """Diabetes progression (Efron et al. 2004): 442 x 10 float64 baseline variables (age, sex,
    bmi, bp, s1..s6), each column centred and scaled to unit Euclidean norm; y is a
    quantitative measure of disease progression one year later (25..346), float64."""
    d = _load("diabetes.npz")
    return _out(d["data"].astype(np.float64), d["target"].astype(np.float64), d["feature_names"],
                return_names)
