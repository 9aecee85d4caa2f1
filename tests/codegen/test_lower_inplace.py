"""Maps written in place (codegen/lower_elementwise.py ``_map_dest``): ``acc = acc + ...``
overwrites a dying accumulator, ``A[j] = A[j] + ...`` writes the map straight into the stored
region.  Each case checks the result against NumPy (and the reference interpreter); the cases
where in-place writing would be wrong (other regions of the same array read, the value or the
old array used later) must keep their functional meaning."""
from __future__ import annotations

import numpy as np

import lattice as lt


@lt.kernel(cache=False)
def rank1_rows(X: lt.f64["n", "d"], w: lt.f64["n"]):
    d = X.shape[1]
    H = lt.zeros((d, d))
    acc = lt.zeros(d)
    for i in range(X.shape[0]):
        x = X[i]
        acc = acc + w[i] * x
        for j in range(d):
            H[j] = H[j] + (w[i] * x[j]) * x
    return H, acc


def _malloc_calls(text: str) -> int:
    return text.count("call ptr @malloc") + text.count("call noalias ptr @malloc") + \
        text.count('call ptr @"malloc"')


def test_rank1_updates_in_place_match_numpy() -> None:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((37, 5))
    w = rng.random(37)
    H, acc = rank1_rows(X, w)
    np.testing.assert_allclose(H, X.T @ (w[:, None] * X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(acc, w @ X, rtol=1e-12, atol=1e-12)
    Hi, acci = rank1_rows.interpret(X, w)
    np.testing.assert_allclose(H, Hi, rtol=1e-12, atol=1e-12)


def test_rank1_updates_allocate_nothing_in_the_loop() -> None:
    X = np.zeros((4, 3))
    text = rank1_rows.inspect_llvm(X, np.zeros(4))
    # H and acc only: the row update and the accumulator are written in place
    assert _malloc_calls(text) <= 2, text.count("malloc")


@lt.kernel(cache=False)
def shifted_store(A0: lt.f64["n", "d"]):
    A = lt.copy(A0)
    for j in range(A.shape[0]):
        A[j, 1:] = A[j, :-1] + 1.0   # reads the same row at another offset: not in place
    return A


@lt.kernel(cache=False)
def other_row_store(A0: lt.f64["n", "d"]):
    A = lt.copy(A0)
    for j in range(1, A.shape[0]):
        A[j] = A[j - 1] * 2.0 + A[j]  # reads another row of A
    return A


@lt.kernel(cache=False)
def value_used_after(A0: lt.f64["n", "d"], x: lt.f64["d"]):
    A = lt.copy(A0)
    s = 0.0
    for j in range(A.shape[0]):
        v = A[j] + x
        A[j] = v
        s += lt.sum(v * 2.0)          # v is used after the store
    return A, s


@lt.kernel(cache=False)
def acc_still_used(x: lt.f64["n"]):
    a = x + 1.0
    b = a * 2.0                       # a is returned too: b needs its own buffer
    c = b + b                         # b twice: not written over either input
    return a, b, c


def test_cases_that_must_not_be_in_place_keep_their_meaning() -> None:
    rng = np.random.default_rng(1)
    A0 = rng.standard_normal((4, 5))
    x = rng.standard_normal(5)

    ref = A0.copy()
    for j in range(4):
        ref[j, 1:] = ref[j, :-1] + 1.0
    np.testing.assert_array_equal(shifted_store(A0), ref)

    ref = A0.copy()
    for j in range(1, 4):
        ref[j] = ref[j - 1] * 2.0 + ref[j]
    np.testing.assert_array_equal(other_row_store(A0), ref)

    A, s = value_used_after(A0, x)
    np.testing.assert_array_equal(A, A0 + x)
    np.testing.assert_allclose(s, 2.0 * (A0 + x).sum(), rtol=1e-12)

    v = rng.standard_normal(6)
    a, b, c = acc_still_used(v)
    np.testing.assert_array_equal(a, v + 1.0)
    np.testing.assert_array_equal(b, (v + 1.0) * 2.0)
    np.testing.assert_array_equal(c, 2.0 * (v + 1.0) * 2.0)
    for k, args in [(shifted_store, (A0,)), (other_row_store, (A0,)), (value_used_after, (A0, x)),
                    (acc_still_used, (v,))]:
        got, want = k(*args), k.interpret(*args)
        for g, w in zip(got if isinstance(got, tuple) else (got,),
                        want if isinstance(want, tuple) else (want,)):
            np.testing.assert_allclose(g, w, rtol=1e-12)
