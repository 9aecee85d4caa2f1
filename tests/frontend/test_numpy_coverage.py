"""The NumPy checklist (lattice.testing.numpy_coverage): every entry either compiles and agrees
with NumPy, or is refused with a CompileError. Nothing may compile to a different answer (NumPy
functions lattice does not translate used to run on the traced placeholders by duck typing),
and nothing may fail any other way."""
from __future__ import annotations

import numpy as np
import pytest

import lattice as lt
from lattice.testing.numpy_coverage import CHECKLIST, probe


@pytest.fixture(scope="module")
def rows():
    return probe()


def test_every_entry_is_either_right_or_refused(rows):
    bad = [f"{r['feature']}: {r['status']} {r['detail']}" for r in rows
           if r["status"] not in ("ok", "rejected")]
    assert not bad, "\n".join(bad)
    assert len(rows) == len(CHECKLIST)


def test_an_untranslated_numpy_function_is_refused_by_name():
    @lt.kernel
    def pct(x: lt.f64["n"]) -> lt.f64:
        return np.nanpercentile(x, 30.0)  # no translation: NumPy would duck-type the placeholder

    with pytest.raises(lt.CompileError, match=r"np\.nanpercentile is not supported.*test_numpy_coverage\.py:\d+"):
        pct(np.arange(5.0))


def test_a_ufunc_method_is_refused_by_name():
    @lt.kernel
    def red(x: lt.f64["n"]) -> lt.f64:
        return np.subtract.reduce(x)

    with pytest.raises(lt.CompileError, match=r"np\.subtract\.reduce is not supported"):
        red(np.arange(5.0))


def test_flip_through_its_translation():
    @lt.kernel
    def fl(X: lt.f64["n", "m"]):
        return np.flip(X), np.flip(X, axis=1), np.flip(X, axis=(0,))

    X = np.arange(12.0).reshape(3, 4)
    got = fl(X)
    for g, w in zip(got, (np.flip(X), np.flip(X, axis=1), np.flip(X, axis=(0,)))):
        np.testing.assert_array_equal(g, w)
