"""Semantic ranking: the ``k`` best rows of an embedding matrix for each query.

:func:`top_k` is the seed's embedding-ranking benchmark (``argmax(E @ q)``) generalised to the
``k`` best rows and to batches of queries, as one library call.  Per query, a compiled kernel
computes the ``n`` scores (one matrix-vector product, an ``n``-vector that stays in cache) and
keeps the ``k`` best in a small sorted buffer while scanning them: no ``n x m`` score matrix
is formed for a batch, so memory stays ``O(n + m k)`` whatever the batch size.  Batches are
split across threads (compiled kernels release the GIL while they run).
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

import numpy as np

import lattice as lt

__all__ = ["top_k"]

_KERNELS: dict[tuple, Any] = {}
_LOCK = threading.Lock()
_NEG_INF = float("-inf")


def _make(dtype_name: str, cosine: bool) -> Any:
    DT = lt.f32 if dtype_name == "float32" else lt.f64
    COS = bool(cosine)

    @lt.kernel(cache=True)
    def top_k_rows(E: DT["n", "d"], Q: DT["m", "d"], inv_norm: DT["n"], like: DT["m", "k"]):
        # like: an (m, k) array whose shape gives the result's shape (its values are unused)
        m = Q.shape[0]
        n = E.shape[0]
        k = like.shape[1]
        out_v = lt.full_like(like, _NEG_INF)
        out_i = lt.full((m, k), -1, dtype=lt.i64)
        for q in range(m):
            sc = E @ Q[q]
            if COS:
                sc = sc * inv_norm
            vals = lt.full(k, _NEG_INF, dtype=DT)
            idx = lt.full(k, -1, dtype=lt.i64)
            thr = vals[k - 1]
            for i in range(n):
                s = sc[i]
                if s > thr:
                    # insert into the descending buffer; equal scores keep the earlier row first
                    pos = k - 1
                    for t in range(k - 1, 0, -1):
                        if vals[t - 1] < s:
                            vals[t] = vals[t - 1]
                            idx[t] = idx[t - 1]
                            pos = t - 1
                    vals[pos] = s
                    idx[pos] = i
                    thr = vals[k - 1]
            out_v[q] = vals
            out_i[q] = idx
        return out_i, out_v

    return top_k_rows


def _kernel(dtype: np.dtype, cosine: bool) -> Any:
    key = (np.dtype(dtype).name, bool(cosine))
    with _LOCK:
        k = _KERNELS.get(key)
        if k is None:
            k = _KERNELS[key] = _make(*key)
        return k


_ROW_NORMS: dict[str, Any] = {}


def _row_norm_kernel_for(dtype: np.dtype) -> Any:
    name = np.dtype(dtype).name
    with _LOCK:
        if name not in _ROW_NORMS:
            DT = lt.f32 if name == "float32" else lt.f64

            @lt.kernel(cache=True)
            def inv_row_norms(E: DT["n", "d"]):
                out = lt.zeros(E.shape[0], dtype=DT)
                for i in range(E.shape[0]):
                    s = lt.sqrt(lt.sum(E[i] * E[i]))
                    out[i] = lt.where(s > 0, 1.0 / s, 0.0)
                return out
            _ROW_NORMS[name] = inv_row_norms
        return _ROW_NORMS[name]


_POOL: Optional[ThreadPoolExecutor] = None


def _threads(requested: Optional[int]) -> int:
    if requested is not None:
        return max(1, int(requested))
    get = getattr(lt, "get_num_threads", None)
    if get is not None:
        return max(1, int(get()))
    import os
    return max(1, os.cpu_count() or 1)


def top_k(E: Any, queries: Any, k: int = 10, metric: str = "dot",
          n_threads: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``E`` scoring highest against each query.

    Parameters
    ----------
    E : (n, d) float32 or float64 array
        The embeddings (rows are items).
    queries : (d,) or (m, d) array
        One query or a batch; converted to ``E``'s dtype.
    k : int, default 10
        How many rows to return per query (at most ``n``).
    metric : "dot" or "cosine"
        ``E @ q``, or the cosine similarity (rows and queries normalised; a zero row scores 0).
    n_threads : int, optional
        Threads for a batch (default: ``lt.get_num_threads()``, i.e. the CPUs available).

    Returns
    -------
    (indices, scores) : int64 and E.dtype arrays of shape (k,) for one query, (m, k) for a
    batch, best first; equal scores are ordered by row index.  NaN scores are never selected
    (a slot no row fills has index -1 and score -inf).
    """
    if metric not in ("dot", "cosine"):
        raise ValueError(f"metric must be 'dot' or 'cosine', got {metric!r}")
    E = np.asarray(E)
    if E.ndim != 2:
        raise ValueError(f"E must be a 2-D (n, d) array, got shape {E.shape}")
    if E.dtype not in (np.float32, np.float64):
        E = E.astype(np.float64)
    E = np.ascontiguousarray(E)
    q = np.asarray(queries, dtype=E.dtype)
    single = q.ndim == 1
    Q = np.ascontiguousarray(q.reshape(1, -1) if single else q)
    if Q.ndim != 2 or Q.shape[1] != E.shape[1]:
        raise ValueError(f"queries must have shape (d,) or (m, d) with d = {E.shape[1]}, got "
                         f"{q.shape}")
    k = int(k)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n, m = E.shape[0], Q.shape[0]
    k = min(k, n)
    if k == 0 or m == 0:
        idx, sc = np.zeros((m, k), np.int64), np.zeros((m, k), E.dtype)
        return (idx[0], sc[0]) if single else (idx, sc)
    cosine = metric == "cosine"
    if cosine:
        inv = _row_norm_kernel_for(E.dtype)(E)
        qn = np.linalg.norm(Q.astype(np.float64), axis=1)
        Q = np.ascontiguousarray(Q / np.where(qn > 0, qn, 1.0)[:, None]).astype(E.dtype)
    else:
        inv = np.empty(n, E.dtype)
    kern = _kernel(E.dtype, cosine)
    like = np.empty((m, k), E.dtype)
    t = min(_threads(n_threads), m)
    if t <= 1:
        idx, sc = kern(E, Q, inv, like)
    else:
        global _POOL
        with _LOCK:
            if _POOL is None or _POOL._max_workers < t:
                _POOL = ThreadPoolExecutor(max_workers=t, thread_name_prefix="lattice-topk")
        bounds = np.linspace(0, m, t + 1).astype(int)
        parts = list(_POOL.map(lambda j: kern(E, Q[bounds[j]:bounds[j + 1]], inv,
                                                like[bounds[j]:bounds[j + 1]]), range(t)))
        idx = np.concatenate([p[0] for p in parts])
        sc = np.concatenate([p[1] for p in parts])
    return (idx[0], sc[0]) if single else (idx, sc)
