"""lattice.ranking.top_k against a NumPy reference (full score matrix + stable sort)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from lattice.ranking import top_k


def reference(E, Q, k, metric):
    E64, Q64 = E.astype(np.float64), np.atleast_2d(Q).astype(np.float64)
    if metric == "cosine":
        en = np.linalg.norm(E64, axis=1)
        E64 = E64 / np.where(en > 0, en, 1.0)[:, None]
        qn = np.linalg.norm(Q64, axis=1)
        Q64 = Q64 / np.where(qn > 0, qn, 1.0)[:, None]
    S = Q64 @ E64.T
    idx = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(S, idx, 1)


@given(n=st.integers(1, 60), d=st.integers(1, 9), m=st.integers(1, 7), k=st.integers(1, 12),
       seed=st.integers(0, 2**32 - 1), metric=st.sampled_from(["dot", "cosine"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_matches_numpy(n, d, m, k, seed, metric, dtype):
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((n, d)).astype(dtype)
    Q = rng.standard_normal((m, d)).astype(dtype)
    idx, sc = top_k(E, Q, k, metric)
    want_i, want_s = reference(E, Q, k, metric)
    kk = min(k, n)
    assert idx.shape == (m, kk) and sc.shape == (m, kk) and sc.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(sc, want_s, rtol=tol, atol=tol)
    # indices agree except where two scores are within rounding of each other
    S = np.atleast_2d(reference(E, Q, n, metric)[1])
    for r in range(m):
        for c in range(kk):
            if idx[r, c] != want_i[r, c]:
                assert abs(want_s[r, c] - sc[r, c]) <= tol * (1 + abs(sc[r, c]))


def test_single_query_batch_threads_and_ties():
    rng = np.random.default_rng(0)
    E = rng.standard_normal((3000, 32)).astype(np.float32)
    Q = rng.standard_normal((50, 32)).astype(np.float32)
    i1, s1 = top_k(E, Q[7], 5)
    assert i1.shape == (5,)
    ib, sb = top_k(E, Q, 5, n_threads=2)
    i_serial, _ = top_k(E, Q, 5, n_threads=1)
    np.testing.assert_array_equal(ib[7], i1)
    np.testing.assert_array_equal(ib, i_serial)
    np.testing.assert_array_equal(ib, reference(E, Q, 5, "dot")[0])
    # ties: equal rows come out in row order
    T = np.ones((6, 3))
    assert list(top_k(T, np.ones(3), 4)[0]) == [0, 1, 2, 3]
    # k larger than n, a zero row under cosine, NaN never selected
    Z = np.array([[0.0, 0.0], [1.0, 0.0], [np.nan, 1.0]])
    idx, sc = top_k(Z, np.array([1.0, 0.0]), 5, "cosine")
    assert list(idx) == [1, 0, -1] and sc[2] == -np.inf


def test_errors():
    E = np.zeros((4, 3))
    with pytest.raises(ValueError, match="metric"):
        top_k(E, np.zeros(3), metric="l2")
    with pytest.raises(ValueError, match="d = 3"):
        top_k(E, np.zeros(4))
    with pytest.raises(ValueError, match="k must be at least 1"):
        top_k(E, np.zeros(3), k=0)
