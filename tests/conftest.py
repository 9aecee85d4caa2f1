"""Shared test helpers: run a kernel compiled and through the interpreter."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("ci", deadline=None, max_examples=40, derandomize=True)
settings.register_profile("dev", deadline=None, max_examples=40)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def assert_same(got, want, *, rtol=1e-12, atol=0.0):
    """Values agree: exact dtype and shape; integers and bools exactly, floats within rtol."""
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want)
        for g, w in zip(got, want):
            assert_same(g, w, rtol=rtol, atol=atol)
        return
    g, w = np.asarray(got), np.asarray(want)
    assert g.shape == w.shape, (g.shape, w.shape)
    assert g.dtype == w.dtype, (g.dtype, w.dtype)
    if g.dtype.kind in "biu":
        np.testing.assert_array_equal(g, w)
    else:
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)


def run_both(k, *args, **tol):
    """Compiled result, checked against the interpreter; returns the compiled result."""
    compiled = k(*args)
    ref = k.interpret(*args)
    assert_same(compiled, ref, **tol)
    return compiled


@pytest.fixture
def both():
    return run_both
