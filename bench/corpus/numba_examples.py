"""Programs in the style of numba's documentation and its users' everyday kernels: explicit
loops with early exits, ``while`` iterations, histograms filled by loops, in-place updates."""
from __future__ import annotations

import numpy as np

import lattice as lt

from . import program
from .polybench import _sizes


def _saxpy_data(size, rng):
    n = _sizes(size, (13,), (2_000_000,))[0]
    return 2.5, rng.standard_normal(n), rng.standard_normal(n)


@program("numba docs", reference=lambda a, x, y: a * x + y, data=_saxpy_data, writes=(2,),
         features=("argument writes",))
def saxpy(a: lt.f64, x: lt.f64["n"], y: lt.f64["n"]):
    for i in range(x.shape[0]):
        y[i] += a * x[i]


def _mandel_data(size, rng):
    h, w, it = _sizes(size, (6, 8, 30), (300, 400, 100))
    return -2.0, 1.0, -1.0, 1.0, w, h, it


def _mandel_ref(xmin, xmax, ymin, ymax, w, h, maxit):
    x = np.linspace(xmin, xmax, w)[None, :]
    y = np.linspace(ymin, ymax, h)[:, None]
    c = x + 1j * y
    z = np.zeros_like(c)
    out = np.full(c.shape, maxit, np.int64)
    for k in range(maxit):
        alive = out == maxit
        z[alive] = z[alive] ** 2 + c[alive]
        out[alive & (np.abs(z) > 2.0)] = k
    return out


@program("numba docs", reference=_mandel_ref, data=_mandel_data,
         features=("while", "break", "results sized by int arguments"))
def mandelbrot(xmin: lt.f64, xmax: lt.f64, ymin: lt.f64, ymax: lt.f64, width: lt.i64,
               height: lt.i64, maxit: lt.i64) -> lt.i64["height", "width"]:
    out = np.zeros((height, width), np.int64)
    for r in range(height):
        cy = ymin + (ymax - ymin) * r / (height - 1)
        for col in range(width):
            cx = xmin + (xmax - xmin) * col / (width - 1)
            zr = 0.0
            zi = 0.0
            k = 0
            while k < maxit:
                zr, zi = zr * zr - zi * zi + cx, 2.0 * zr * zi + cy
                if zr * zr + zi * zi > 4.0:
                    break
                k += 1
            out[r, col] = k
    return out


def _hist_data(size, rng):
    n, nbins = _sizes(size, (40, 7), (2_000_000, 64))
    return rng.standard_normal(n), -3.0, 3.0, nbins


def _hist_ref(x, lo, hi, nbins):
    idx = np.floor((x - lo) / (hi - lo) * nbins).astype(np.int64)
    keep = (idx >= 0) & (idx < nbins)
    return np.bincount(idx[keep], minlength=nbins)


@program("numba docs", reference=_hist_ref, data=_hist_data,
         features=("for x in array", "results sized by int arguments"))
def histogram(x: lt.f64["n"], lo: lt.f64, hi: lt.f64, nbins: lt.i64) -> lt.i64["nbins"]:
    counts = np.zeros(nbins, np.int64)
    scale = nbins / (hi - lo)
    for v in x:
        b = int(np.floor((v - lo) * scale))
        if b >= 0 and b < nbins:
            counts[b] += 1
    return counts


def _pairwise_data(size, rng):
    return (rng.standard_normal(_sizes(size, (7, 3), (1000, 16))),)


def _pairwise_ref(X):
    sq = np.sum(X * X, axis=1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * X @ X.T, 0))


@program("numba docs", reference=_pairwise_ref, data=_pairwise_data, rtol=1e-6)
def pairwise_distance(X: lt.f64["n", "d"]) -> lt.f64["n", "n"]:
    n = X.shape[0]
    D = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            d = 0.0
            for k in range(X.shape[1]):
                t = X[i, k] - X[j, k]
                d += t * t
            D[i, j] = np.sqrt(d)
    return D


def _newton_data(size, rng):
    return (rng.uniform(0.1, 100.0, _sizes(size, (9,), (200_000,))[0]),)


@program("everyday kernels", reference=np.sqrt, data=_newton_data, rtol=1e-12,
         features=("while",))
def newton_sqrt(a: lt.f64["n"]) -> lt.f64["n"]:
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        x = a[i]
        while abs(x * x - a[i]) > 1e-13 * a[i]:
            x = 0.5 * (x + a[i] / x)
        out[i] = x
    return out


def _first_data(size, rng):
    x = rng.uniform(0, 1, _sizes(size, (30,), (4_000_000,))[0])
    return x, 0.9999995 if size == "bench" else 0.95


def _first_ref(x, t):
    hits = np.flatnonzero(x > t)
    return np.int64(hits[0] if hits.size else -1)


@program("everyday kernels", reference=_first_ref, data=_first_data,
         features=("return inside a loop",))
def first_above(x: lt.f64["n"], threshold: lt.f64) -> lt.i64:
    for i in range(x.shape[0]):
        if x[i] > threshold:
            return i
    return -1


def _isort_data(size, rng):
    return (rng.standard_normal(_sizes(size, (15,), (3000,))[0]),)


@program("numba docs", reference=lambda x: np.sort(x), data=_isort_data, writes=(0,),
         features=("while", "argument writes"))
def insertion_sort(a: lt.f64["n"]):
    for i in range(1, a.shape[0]):
        key = a[i]
        j = i - 1
        while j >= 0 and a[j] > key:
            a[j + 1] = a[j]
            j -= 1
        a[j + 1] = key


def _prefix_data(size, rng):
    return (rng.standard_normal(_sizes(size, (17,), (4_000_000,))[0]),)


@program("everyday kernels", reference=np.cumsum, data=_prefix_data, rtol=1e-9)
def prefix_sum(x: lt.f64["n"]) -> lt.f64["n"]:
    out = np.empty_like(x)
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i]
        out[i] = s
    return out


def _ewma_data(size, rng):
    return rng.standard_normal(_sizes(size, (17,), (4_000_000,))[0]), 0.05


def _ewma_ref(x, alpha):
    out = np.empty_like(x)
    s = x[0]
    for i, v in enumerate(x.tolist()):
        s = alpha * v + (1 - alpha) * s
        out[i] = s
    return out


@program("everyday kernels", reference=_ewma_ref, data=_ewma_data,
         features=("enumerate",))
def ewma(x: lt.f64["n"], alpha: lt.f64) -> lt.f64["n"]:
    out = np.empty_like(x)
    s = x[0]
    for i, v in enumerate(x):
        s = alpha * v + (1 - alpha) * s
        out[i] = s
    return out


def _ising_data(size, rng):
    n = _sizes(size, (8,), (200,))[0]
    return rng.choice(np.array([-1.0, 1.0]), (n, n)), 0.5


def _ising_ref(spins, beta):
    nb = (np.roll(spins, 1, 0) + np.roll(spins, -1, 0) + np.roll(spins, 1, 1)
          + np.roll(spins, -1, 1))
    return np.float64(-np.sum(spins * nb) / 2 * beta)


@program("everyday kernels", reference=_ising_ref, data=_ising_data)
def ising_energy(spins: lt.f64["n", "m"], beta: lt.f64) -> lt.f64:
    n = spins.shape[0]
    m = spins.shape[1]
    e = 0.0
    for i in range(n):
        for j in range(m):
            s = spins[i, j]
            nb = (spins[(i + 1) % n, j] + spins[(i - 1) % n, j] + spins[i, (j + 1) % m]
                  + spins[i, (j - 1) % m])
            e -= s * nb
    return e / 2 * beta


# --------------------------------------------------------------------------- complex numbers
def _escape_data(size, rng):
    h, w, it = _sizes(size, (9, 13, 40), (300, 400, 100))
    x, y = np.meshgrid(np.linspace(-2.0, 0.6, w), np.linspace(-1.2, 1.2, h))
    return (x + 1j * y).ravel(), it


def _escape_ref(c, maxit):
    z = np.zeros_like(c)
    out = np.full(c.shape, maxit, np.int64)
    for k in range(maxit):
        alive = out == maxit
        z[alive] = z[alive] ** 2 + c[alive]
        out[alive & (z.real * z.real + z.imag * z.imag >= 4)] = k
    return out


@program("numba docs", reference=_escape_ref, data=_escape_data,
         features=("complex", "early return"))
def mandel_escape(c: lt.c128["n"], maxit: lt.i64) -> lt.i64["n"]:
    # numba's documentation example, over an array of points: z -> z^2 + c in complex numbers
    out = np.empty(c.shape[0], np.int64)
    for p in range(c.shape[0]):
        z = 0.0j
        k = maxit
        for i in range(maxit):
            z = z * z + c[p]
            if (z.real * z.real + z.imag * z.imag) >= 4:
                k = i
                break
        out[p] = k
    return out


def _dft_data(size, rng):
    n = _sizes(size, (24,), (1024,))[0]
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n),)


@program("everyday kernels", reference=np.fft.fft, data=_dft_data, rtol=1e-9,
         features=("complex",))
def dft(x: lt.c128["n"]) -> lt.c128["n"]:
    # the naive discrete Fourier transform, O(n^2), checked against np.fft.fft
    n = x.shape[0]
    out = np.zeros(n, np.complex128)
    for k in range(n):
        s = 0j
        for j in range(n):
            s += x[j] * np.exp(-2j * np.pi * ((k * j) % n) / n)
        out[k] = s
    return out
