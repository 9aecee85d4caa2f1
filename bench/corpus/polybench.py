"""PolyBench/C kernels, written as a numba user writes them (in-place updates of the
arguments where PolyBench updates them), with their NumPy formulations as references."""
from __future__ import annotations

import numpy as np

import lattice as lt

from . import program


def _sizes(size: str, test: tuple, bench: tuple) -> tuple:
    return test if size == "test" else bench


def _mats(rng: np.random.Generator, *shapes: tuple) -> list:
    return [rng.standard_normal(s) for s in shapes]


# --------------------------------------------------------------------------- linear algebra
def _gemm_data(size, rng):
    ni, nj, nk = _sizes(size, (7, 9, 5), (500, 600, 550))
    C, A, B = _mats(rng, (ni, nj), (ni, nk), (nk, nj))
    return 1.5, 1.2, C, A, B


def _gemm_ref(alpha, beta, C, A, B):
    return alpha * A @ B + beta * C


@program("PolyBench", reference=_gemm_ref, data=_gemm_data, writes=(2,),
         features=("argument writes",))
def gemm(alpha: lt.f64, beta: lt.f64, C: lt.f64["ni", "nj"], A: lt.f64["ni", "nk"],
         B: lt.f64["nk", "nj"]):
    C[:] = alpha * A @ B + beta * C


def _atax_data(size, rng):
    m, n = _sizes(size, (6, 8), (4000, 5000))
    A, x = _mats(rng, (m, n), (n,))
    return A, x


@program("PolyBench", reference=lambda A, x: (A @ x) @ A, data=_atax_data)
def atax(A: lt.f64["m", "n"], x: lt.f64["n"]) -> lt.f64["n"]:
    return (A @ x) @ A


def _bicg_data(size, rng):
    m, n = _sizes(size, (6, 8), (4000, 5000))
    A, p, r = _mats(rng, (n, m), (m,), (n,))
    return A, p, r


@program("PolyBench", reference=lambda A, p, r: (r @ A, A @ p), data=_bicg_data)
def bicg(A: lt.f64["n", "m"], p: lt.f64["m"], r: lt.f64["n"]):
    return r @ A, A @ p


def _gesummv_data(size, rng):
    n = _sizes(size, (9,), (3000,))[0]
    A, B, x = _mats(rng, (n, n), (n, n), (n,))
    return 1.5, 1.2, A, B, x


@program("PolyBench", reference=lambda al, be, A, B, x: al * A @ x + be * B @ x,
         data=_gesummv_data)
def gesummv(alpha: lt.f64, beta: lt.f64, A: lt.f64["n", "n"], B: lt.f64["n", "n"],
            x: lt.f64["n"]) -> lt.f64["n"]:
    return alpha * A @ x + beta * B @ x


def _mvt_data(size, rng):
    n = _sizes(size, (9,), (4000,))[0]
    return tuple(_mats(rng, (n,), (n,), (n,), (n,), (n, n)))


def _mvt_ref(x1, x2, y1, y2, A):
    return x1 + A @ y1, x2 + y2 @ A


@program("PolyBench", reference=_mvt_ref, data=_mvt_data, writes=(0, 1),
         features=("argument writes",))
def mvt(x1: lt.f64["n"], x2: lt.f64["n"], y1: lt.f64["n"], y2: lt.f64["n"],
        A: lt.f64["n", "n"]):
    x1 += A @ y1
    x2 += y2 @ A


def _k2mm_data(size, rng):
    ni, nj, nk, nl = _sizes(size, (4, 5, 6, 7), (400, 450, 500, 550))
    A, B, C, D = _mats(rng, (ni, nk), (nk, nj), (nj, nl), (ni, nl))
    return 1.5, 1.2, A, B, C, D


@program("PolyBench", reference=lambda al, be, A, B, C, D: al * A @ B @ C + be * D,
         data=_k2mm_data, writes=(5,), features=("argument writes",))
def k2mm(alpha: lt.f64, beta: lt.f64, A: lt.f64["ni", "nk"], B: lt.f64["nk", "nj"],
         C: lt.f64["nj", "nl"], D: lt.f64["ni", "nl"]):
    D[:] = alpha * A @ B @ C + beta * D


def _k3mm_data(size, rng):
    ni, nj, nk, nl, nm = _sizes(size, (4, 5, 6, 7, 8), (400, 450, 500, 550, 600))
    return tuple(_mats(rng, (ni, nk), (nk, nj), (nj, nm), (nm, nl)))


@program("PolyBench", reference=lambda A, B, C, D: (A @ B) @ (C @ D), data=_k3mm_data)
def k3mm(A: lt.f64["ni", "nk"], B: lt.f64["nk", "nj"], C: lt.f64["nj", "nm"],
         D: lt.f64["nm", "nl"]) -> lt.f64["ni", "nl"]:
    return (A @ B) @ (C @ D)


def _gemver_data(size, rng):
    n = _sizes(size, (9,), (2000,))[0]
    vecs = _mats(rng, *[(n,)] * 8)
    return (1.5, 1.2, rng.standard_normal((n, n)), *vecs)


def _gemver_ref(alpha, beta, A, u1, v1, u2, v2, w, x, y, z):
    A = A + np.outer(u1, v1) + np.outer(u2, v2)
    x = x + beta * y @ A + z
    w = w + alpha * A @ x
    return A, w, x


@program("PolyBench", reference=_gemver_ref, data=_gemver_data, writes=(2, 7, 8),
         features=("argument writes", "np.outer"))
def gemver(alpha: lt.f64, beta: lt.f64, A: lt.f64["n", "n"], u1: lt.f64["n"], v1: lt.f64["n"],
           u2: lt.f64["n"], v2: lt.f64["n"], w: lt.f64["n"], x: lt.f64["n"], y: lt.f64["n"],
           z: lt.f64["n"]):
    A += np.outer(u1, v1) + np.outer(u2, v2)
    x += beta * y @ A + z
    w += alpha * A @ x


def _syrk_data(size, rng):
    n, m = _sizes(size, (7, 5), (500, 400))
    C, A = _mats(rng, (n, n), (n, m))
    return 1.5, 1.2, C, A


def _syrk_ref(alpha, beta, C, A):
    full = alpha * A @ A.T + beta * C
    return np.where(np.tril(np.ones_like(C)) > 0, full, C)


@program("PolyBench", reference=_syrk_ref, data=_syrk_data, writes=(2,),
         features=("argument writes",))
def syrk(alpha: lt.f64, beta: lt.f64, C: lt.f64["n", "n"], A: lt.f64["n", "m"]):
    for i in range(A.shape[0]):
        C[i, :i + 1] *= beta
        for k in range(A.shape[1]):
            C[i, :i + 1] += alpha * A[i, k] * A[:i + 1, k]


def _trisolv_data(size, rng):
    n = _sizes(size, (9,), (2000,))[0]
    L = np.tril(rng.uniform(0.1, 1.0, (n, n))) + n * np.eye(n)
    return L, rng.standard_normal(n)


@program("PolyBench", reference=lambda L, b: np.linalg.solve(L, b), data=_trisolv_data,
         rtol=1e-9)
def trisolv(L: lt.f64["n", "n"], b: lt.f64["n"]) -> lt.f64["n"]:
    x = np.zeros(b.shape[0])
    for i in range(b.shape[0]):
        x[i] = (b[i] - L[i, :i] @ x[:i]) / L[i, i]
    return x


def _spd(size, rng, test, bench):
    n = _sizes(size, (test,), (bench,))[0]
    M = rng.standard_normal((n, n))
    return M @ M.T + n * np.eye(n)


def _cholesky_ref(A):
    return np.linalg.cholesky(A)


@program("PolyBench", reference=_cholesky_ref,
         data=lambda size, rng: (_spd(size, rng, 8, 400),), rtol=1e-9)
def cholesky(A: lt.f64["n", "n"]) -> lt.f64["n", "n"]:
    n = A.shape[0]
    L = np.zeros((n, n))
    for i in range(n):
        for j in range(i):
            L[i, j] = (A[i, j] - L[i, :j] @ L[j, :j]) / L[j, j]
        L[i, i] = np.sqrt(A[i, i] - L[i, :i] @ L[i, :i])
    return L


def _lu_ref(A):
    n = A.shape[0]
    A = A.copy()
    for k in range(n):
        A[k + 1:, k] /= A[k, k]
        A[k + 1:, k + 1:] -= np.outer(A[k + 1:, k], A[k, k + 1:])
    return A


@program("PolyBench", reference=_lu_ref, data=lambda size, rng: (_spd(size, rng, 8, 300),),
         writes=(0,), rtol=1e-9, features=("argument writes",))
def lu(A: lt.f64["n", "n"]):
    n = A.shape[0]
    for i in range(n):
        for j in range(i):
            A[i, j] -= A[i, :j] @ A[:j, j]
            A[i, j] /= A[j, j]
        for j in range(i, n):
            A[i, j] -= A[i, :i] @ A[:i, j]


def _durbin_ref(r):
    # the Levinson-Durbin recursion solves the Toeplitz system T y = -r
    n = r.shape[0]
    col = np.concatenate([[1.0], r[:-1]])
    T = col[np.abs(np.arange(n)[:, None] - np.arange(n)[None, :])]
    return np.linalg.solve(T, -r)


def _durbin_data(size, rng):
    n = _sizes(size, (9,), (4000,))[0]
    return (0.5 ** np.arange(1, n + 1) * rng.uniform(0.5, 1.0, n),)


@program("PolyBench", reference=_durbin_ref, data=_durbin_data, rtol=1e-8,
         features=("np.flip", "symbolic slice sizes"))
def durbin(r: lt.f64["n"]) -> lt.f64["n"]:
    y = np.empty_like(r)
    alpha = -r[0]
    beta = 1.0
    y[0] = -r[0]
    for k in range(1, r.shape[0]):
        beta *= 1.0 - alpha * alpha
        alpha = -(r[k] + np.flip(r[:k]) @ y[:k]) / beta
        y[:k] += alpha * np.flip(y[:k])
        y[k] = alpha
    return y


def _gramschmidt_ref(A):
    Q, R = np.linalg.qr(A)
    s = np.sign(np.diag(R))  # QR is unique up to the signs of R's diagonal
    return Q * s, R * s[:, None]


@program("PolyBench", reference=_gramschmidt_ref,
         data=lambda size, rng: (rng.standard_normal(_sizes(size, (9, 6), (600, 500))),),
         rtol=1e-8, features=("np.linalg.norm",))
def gramschmidt(A: lt.f64["m", "n"]):
    n = A.shape[1]
    Q = np.zeros_like(A)
    R = np.zeros((n, n))
    V = A.copy()
    for k in range(n):
        R[k, k] = np.linalg.norm(V[:, k])
        Q[:, k] = V[:, k] / R[k, k]
        for j in range(k + 1, n):
            R[k, j] = Q[:, k] @ V[:, j]
            V[:, j] -= Q[:, k] * R[k, j]
    return Q, R


# --------------------------------------------------------------------------- data mining
def _cov_data(size, rng):
    return (rng.standard_normal(_sizes(size, (11, 6), (1400, 1200))),)


@program("PolyBench", reference=lambda d: np.cov(d, rowvar=False), data=_cov_data)
def covariance(data: lt.f64["n", "m"]) -> lt.f64["m", "m"]:
    mean = np.mean(data, axis=0)
    centred = data - mean
    return centred.T @ centred / (data.shape[0] - 1.0)


@program("PolyBench", reference=lambda d: np.corrcoef(d, rowvar=False), data=_cov_data,
         rtol=1e-9, features=("np.std",))
def correlation(data: lt.f64["n", "m"]) -> lt.f64["m", "m"]:
    n = data.shape[0]
    mean = np.mean(data, axis=0)
    std = np.std(data, axis=0)
    z = (data - mean) / (np.sqrt(n * 1.0) * std)
    return z.T @ z


# --------------------------------------------------------------------------- stencils
def _jacobi1d_data(size, rng):
    n, t = _sizes(size, (12, 3), (100_000, 50))
    return t, rng.standard_normal(n), rng.standard_normal(n)


@program("PolyBench", reference=None, data=_jacobi1d_data, writes=(1, 2),
         features=("argument writes",))
def jacobi_1d(tsteps: lt.i64, A: lt.f64["n"], B: lt.f64["n"]):
    for t in range(tsteps):
        B[1:-1] = (A[:-2] + A[1:-1] + A[2:]) / 3.0
        A[1:-1] = (B[:-2] + B[1:-1] + B[2:]) / 3.0


def _jacobi2d_data(size, rng):
    n, t = _sizes(size, (9, 3), (700, 20))
    return t, rng.standard_normal((n, n)), rng.standard_normal((n, n))


@program("PolyBench", reference=None, data=_jacobi2d_data, writes=(1, 2),
         features=("argument writes",))
def jacobi_2d(tsteps: lt.i64, A: lt.f64["n", "n"], B: lt.f64["n", "n"]):
    for t in range(tsteps):
        B[1:-1, 1:-1] = 0.2 * (A[1:-1, 1:-1] + A[1:-1, :-2] + A[1:-1, 2:] + A[2:, 1:-1]
                               + A[:-2, 1:-1])
        A[1:-1, 1:-1] = 0.2 * (B[1:-1, 1:-1] + B[1:-1, :-2] + B[1:-1, 2:] + B[2:, 1:-1]
                               + B[:-2, 1:-1])


def _heat3d_data(size, rng):
    n, t = _sizes(size, (6, 2), (100, 10))
    return t, rng.standard_normal((n, n, n)), rng.standard_normal((n, n, n))


@program("PolyBench", reference=None, data=_heat3d_data, writes=(1, 2),
         features=("argument writes",))
def heat_3d(tsteps: lt.i64, A: lt.f64["n", "n", "n"], B: lt.f64["n", "n", "n"]):
    for t in range(tsteps):
        B[1:-1, 1:-1, 1:-1] = (
            0.125 * (A[2:, 1:-1, 1:-1] - 2.0 * A[1:-1, 1:-1, 1:-1] + A[:-2, 1:-1, 1:-1])
            + 0.125 * (A[1:-1, 2:, 1:-1] - 2.0 * A[1:-1, 1:-1, 1:-1] + A[1:-1, :-2, 1:-1])
            + 0.125 * (A[1:-1, 1:-1, 2:] - 2.0 * A[1:-1, 1:-1, 1:-1] + A[1:-1, 1:-1, :-2])
            + A[1:-1, 1:-1, 1:-1])
        A[1:-1, 1:-1, 1:-1] = (
            0.125 * (B[2:, 1:-1, 1:-1] - 2.0 * B[1:-1, 1:-1, 1:-1] + B[:-2, 1:-1, 1:-1])
            + 0.125 * (B[1:-1, 2:, 1:-1] - 2.0 * B[1:-1, 1:-1, 1:-1] + B[1:-1, :-2, 1:-1])
            + 0.125 * (B[1:-1, 1:-1, 2:] - 2.0 * B[1:-1, 1:-1, 1:-1] + B[1:-1, 1:-1, :-2])
            + B[1:-1, 1:-1, 1:-1])


def _seidel_data(size, rng):
    n, t = _sizes(size, (7, 2), (300, 4))
    return t, rng.standard_normal((n, n))


@program("PolyBench", reference=None, data=_seidel_data, writes=(1,),
         features=("argument writes",))
def seidel_2d(tsteps: lt.i64, A: lt.f64["n", "n"]):
    n = A.shape[0]
    for t in range(tsteps):
        for i in range(1, n - 1):
            for j in range(1, n - 1):
                A[i, j] = (A[i - 1, j - 1] + A[i - 1, j] + A[i - 1, j + 1]
                           + A[i, j - 1] + A[i, j] + A[i, j + 1]
                           + A[i + 1, j - 1] + A[i + 1, j] + A[i + 1, j + 1]) / 9.0


def _fdtd_data(size, rng):
    nx, ny, t = _sizes(size, (7, 9, 3), (500, 600, 20))
    ex, ey, hz = _mats(rng, (nx, ny), (nx, ny), (nx, ny))
    return t, ex, ey, hz, rng.standard_normal(t)


@program("PolyBench", reference=None, data=_fdtd_data, writes=(1, 2, 3),
         features=("argument writes",))
def fdtd_2d(tmax: lt.i64, ex: lt.f64["nx", "ny"], ey: lt.f64["nx", "ny"],
            hz: lt.f64["nx", "ny"], fict: lt.f64["t"]):
    for t in range(tmax):
        ey[0, :] = fict[t]
        ey[1:, :] -= 0.5 * (hz[1:, :] - hz[:-1, :])
        ex[:, 1:] -= 0.5 * (hz[:, 1:] - hz[:, :-1])
        hz[:-1, :-1] -= 0.7 * (ex[:-1, 1:] - ex[:-1, :-1] + ey[1:, :-1] - ey[:-1, :-1])


# --------------------------------------------------------------------------- graphs, DP
def _floyd_ref(path):
    path = path.copy()
    for k in range(path.shape[0]):
        path = np.minimum(path, path[:, k, None] + path[None, k, :])
    return (path,)


def _floyd_data(size, rng):
    n = _sizes(size, (8,), (300,))[0]
    return (rng.uniform(1.0, 10.0, (n, n)),)


@program("PolyBench", reference=_floyd_ref, data=_floyd_data, writes=(0,),
         features=("argument writes",))
def floyd_warshall(path: lt.f64["n", "n"]):
    n = path.shape[0]
    for k in range(n):
        for i in range(n):
            for j in range(n):
                path[i, j] = min(path[i, j], path[i, k] + path[k, j])


def _nussinov_data(size, rng):
    n = _sizes(size, (10,), (180,))[0]
    return (rng.integers(0, 4, n),)


@program("PolyBench", reference=None, data=_nussinov_data,
         features=("range with negative step",))
def nussinov(seq: lt.i64["n"]) -> lt.i64["n", "n"]:
    n = seq.shape[0]
    table = np.zeros((n, n), np.int64)
    for i in range(n - 1, -1, -1):
        for j in range(i + 1, n):
            best = table[i, j - 1]
            best = max(best, table[i + 1, j])
            if i < j - 1:
                pair = 1 if seq[i] + seq[j] == 3 else 0
                best = max(best, table[i + 1, j - 1] + pair)
            else:
                best = max(best, table[i + 1, j - 1])
            for k in range(i + 1, j):
                best = max(best, table[i, k] + table[k + 1, j])
            table[i, j] = best
    return table
