"""NPBench programs outside PolyBench (physics, weather stencils, sparse, bit twiddling,
deep-learning layers), written as a numba user writes them."""
from __future__ import annotations

import numpy as np

import lattice as lt

from . import program
from .polybench import _sizes


def _arc_data(size, rng):
    n = _sizes(size, (11,), (1_000_000,))[0]
    return tuple(rng.uniform(-1.5, 1.5, n) for _ in range(4))


def _arc_ref(t0, p0, t1, p1):
    tmp = np.sin((t1 - t0) / 2) ** 2 + np.cos(t0) * np.cos(t1) * np.sin((p1 - p0) / 2) ** 2
    return 2 * np.arctan2(np.sqrt(tmp), np.sqrt(1 - tmp))


@program("NPBench (pythran)", reference=_arc_ref, data=_arc_data, features=("np.arctan2",))
def arc_distance(theta_1: lt.f64["n"], phi_1: lt.f64["n"], theta_2: lt.f64["n"],
                 phi_2: lt.f64["n"]) -> lt.f64["n"]:
    temp = (np.sin((theta_2 - theta_1) / 2) ** 2
            + np.cos(theta_1) * np.cos(theta_2) * np.sin((phi_2 - phi_1) / 2) ** 2)
    return 2 * np.arctan2(np.sqrt(temp), np.sqrt(1 - temp))


def _azimint_data(size, rng):
    n, npt = _sizes(size, (50, 5), (400_000, 100))
    return rng.uniform(0, 1, n), rng.uniform(0, 1, n), npt


def _azimint_ref(data, radius, npt):
    rmax = radius.max()
    res = np.zeros(npt)
    for i in range(npt):
        r1 = rmax * i / npt
        r2 = rmax * (i + 1) / npt
        mask = (r1 <= radius) & (radius < r2)
        res[i] = data[mask].mean() if mask.any() else np.nan
    return res


@program("NPBench", reference=_azimint_ref, data=_azimint_data,
         features=("boolean masks", "results sized by an int argument"))
def azimint_naive(data: lt.f64["n"], radius: lt.f64["n"], npt: lt.i64) -> lt.f64["npt"]:
    rmax = radius.max()
    res = np.zeros(npt)
    for i in range(npt):
        r1 = rmax * i / npt
        r2 = rmax * (i + 1) / npt
        mask_r12 = np.logical_and(r1 <= radius, radius < r2)
        values = data[mask_r12]
        res[i] = np.mean(values) if values.shape[0] > 0 else np.nan
    return res


def _crc_data(size, rng):
    n = _sizes(size, (17,), (100_000,))[0]
    return (rng.integers(0, 256, n).astype(np.uint8),)


def _crc_ref(data):
    crc = 0xFFFF
    for b in data.tolist():
        cur = b
        for _ in range(8):
            if (crc & 1) ^ (cur & 1):
                crc = (crc >> 1) ^ 0x8408
            else:
                crc >>= 1
            cur >>= 1
    crc = ~crc & 0xFFFF
    return np.int64((crc << 8) & 0xFFFF | (crc >> 8) & 0xFF)


@program("NPBench", reference=_crc_ref, data=_crc_data,
         features=("uint8", "bit operations", "for x in array"))
def crc16(data: lt.u8["n"]) -> lt.i64:
    crc = 0xFFFF
    for b in data:
        cur = int(b)
        for _ in range(8):
            if ((crc & 1) ^ (cur & 1)) != 0:
                crc = (crc >> 1) ^ 0x8408
            else:
                crc = crc >> 1
            cur = cur >> 1
    crc = ~crc & 0xFFFF
    return (crc << 8) & 0xFFFF | (crc >> 8) & 0xFF


def _go_fast_data(size, rng):
    n = _sizes(size, (9,), (2000,))[0]
    return (rng.standard_normal((n, n)),)


@program("NPBench / numba docs", reference=lambda a: a + np.tanh(np.diagonal(a)).sum(),
         data=_go_fast_data)
def go_fast(a: lt.f64["n", "n"]) -> lt.f64["n", "n"]:
    trace = 0.0
    for i in range(a.shape[0]):
        trace += np.tanh(a[i, i])
    return a + trace


def _softmax_data(size, rng):
    return (rng.standard_normal(_sizes(size, (3, 4, 5, 6), (16, 16, 128, 128))).astype(np.float32),)


def _softmax_ref(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


@program("NPBench (deep learning)", reference=_softmax_ref, data=_softmax_data, rtol=1e-5,
         features=("keepdims",))
def softmax(x: lt.f32["n", "h", "s", "t"]) -> lt.f32["n", "h", "s", "t"]:
    tmp_max = np.max(x, axis=-1, keepdims=True)
    tmp_out = np.exp(x - tmp_max)
    tmp_sum = np.sum(tmp_out, axis=-1, keepdims=True)
    return tmp_out / tmp_sum


def _mlp_data(size, rng):
    n, d, h1, h2, k = _sizes(size, (4, 3, 6, 5, 2), (8, 1000, 3000, 2000, 10))
    f = np.float32
    return (rng.standard_normal((n, d)).astype(f), rng.standard_normal((d, h1)).astype(f) * 0.05,
            rng.standard_normal(h1).astype(f), rng.standard_normal((h1, h2)).astype(f) * 0.05,
            rng.standard_normal(h2).astype(f), rng.standard_normal((h2, k)).astype(f) * 0.05,
            rng.standard_normal(k).astype(f))


def _mlp_ref(x, w1, b1, w2, b2, w3, b3):
    h = np.maximum(x @ w1 + b1, 0)
    h = np.maximum(h @ w2 + b2, 0)
    return _softmax_ref(h @ w3 + b3)


@program("NPBench (deep learning)", reference=_mlp_ref, data=_mlp_data, rtol=1e-4,
         features=("keepdims",))
def mlp(x: lt.f32["n", "d"], w1: lt.f32["d", "h1"], b1: lt.f32["h1"], w2: lt.f32["h1", "h2"],
        b2: lt.f32["h2"], w3: lt.f32["h2", "k"], b3: lt.f32["k"]) -> lt.f32["n", "k"]:
    h = np.maximum(x @ w1 + b1, 0)
    h = np.maximum(h @ w2 + b2, 0)
    z = h @ w3 + b3
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _nbody_data(size, rng):
    n = _sizes(size, (6,), (400,))[0]
    return rng.standard_normal((n, 3)), rng.uniform(0.5, 1.5, n), 0.1


def _nbody_ref(pos, mass, soft):
    d = pos[None, :, :] - pos[:, None, :]
    inv = (np.sum(d ** 2, axis=2) + soft ** 2) ** -1.5
    return np.sum(d * (inv * mass[None, :])[:, :, None], axis=1)


@program("numba docs / NPBench", reference=_nbody_ref, data=_nbody_data, rtol=1e-9)
def nbody_acc(pos: lt.f64["n", 3], mass: lt.f64["n"], soft: lt.f64) -> lt.f64["n", 3]:
    n = pos.shape[0]
    acc = np.zeros((n, 3))
    for i in range(n):
        for j in range(n):
            dx = pos[j, 0] - pos[i, 0]
            dy = pos[j, 1] - pos[i, 1]
            dz = pos[j, 2] - pos[i, 2]
            inv = (dx * dx + dy * dy + dz * dz + soft * soft) ** -1.5
            acc[i, 0] += dx * inv * mass[j]
            acc[i, 1] += dy * inv * mass[j]
            acc[i, 2] += dz * inv * mass[j]
    return acc


def _spmv_data(size, rng):
    n, per_row = _sizes(size, (9, 3), (100_000, 16))
    cols = rng.integers(0, n, n * per_row)
    ptr = np.arange(0, n * per_row + 1, per_row)
    return ptr, cols, rng.standard_normal(n * per_row), rng.standard_normal(n)


def _spmv_ref(ptr, cols, vals, x):
    rows = np.repeat(np.arange(ptr.shape[0] - 1), np.diff(ptr))
    return np.bincount(rows, weights=vals * x[cols], minlength=ptr.shape[0] - 1)


@program("NPBench", reference=_spmv_ref, data=_spmv_data, features=("integer-array gathers",))
def spmv(row_ptr: lt.i64["n1"], cols: lt.i64["nnz"], vals: lt.f64["nnz"],
         x: lt.f64["m"]):
    y = np.zeros(row_ptr.shape[0] - 1)
    for i in range(row_ptr.shape[0] - 1):
        lo = row_ptr[i]
        hi = row_ptr[i + 1]
        y[i] = vals[lo:hi] @ x[cols[lo:hi]]
    return y


def _hdiff_data(size, rng):
    i, j, k = _sizes(size, (6, 7, 3), (256, 256, 80))
    return rng.standard_normal((i + 4, j + 4, k)), rng.standard_normal((i, j, k))


def _hdiff_ref(inp, coeff):
    I, J, K = coeff.shape
    lap = 4.0 * inp[1:I + 3, 1:J + 3, :] - (inp[2:I + 4, 1:J + 3, :] + inp[0:I + 2, 1:J + 3, :]
                                             + inp[1:I + 3, 2:J + 4, :] + inp[1:I + 3, 0:J + 2, :])
    fx = lap[1:I + 2, 1:J + 1, :] - lap[0:I + 1, 1:J + 1, :]
    fx = np.where(fx * (inp[2:I + 3, 2:J + 2, :] - inp[1:I + 2, 2:J + 2, :]) > 0, 0, fx)
    fy = lap[1:I + 1, 1:J + 2, :] - lap[1:I + 1, 0:J + 1, :]
    fy = np.where(fy * (inp[2:I + 2, 2:J + 3, :] - inp[2:I + 2, 1:J + 2, :]) > 0, 0, fy)
    return inp[2:I + 2, 2:J + 2, :] - coeff * (fx[1:, :, :] - fx[:-1, :, :]
                                                + fy[:, 1:, :] - fy[:, :-1, :])


@program("NPBench (weather stencils)", reference=_hdiff_ref, data=_hdiff_data,
         features=("symbolic slice sizes",))
def hdiff(in_field: lt.f64["i4", "j4", "k"], coeff: lt.f64["i", "j", "k"]) -> lt.f64["i", "j", "k"]:
    I = coeff.shape[0]
    J = coeff.shape[1]
    lap = 4.0 * in_field[1:I + 3, 1:J + 3, :] - (
        in_field[2:I + 4, 1:J + 3, :] + in_field[0:I + 2, 1:J + 3, :]
        + in_field[1:I + 3, 2:J + 4, :] + in_field[1:I + 3, 0:J + 2, :])
    res1 = lap[1:, 1:J + 1, :] - lap[:-1, 1:J + 1, :]
    flx = np.where(res1 * (in_field[2:I + 3, 2:J + 2, :] - in_field[1:I + 2, 2:J + 2, :]) > 0,
                   0, res1)
    res2 = lap[1:I + 1, 1:, :] - lap[1:I + 1, :-1, :]
    fly = np.where(res2 * (in_field[2:I + 2, 2:J + 3, :] - in_field[2:I + 2, 1:J + 2, :]) > 0,
                   0, res2)
    return in_field[2:I + 2, 2:J + 2, :] - coeff * (flx[1:, :, :] - flx[:-1, :, :]
                                                    + fly[:, 1:, :] - fly[:, :-1, :])


def _compute_data(size, rng):
    m, n = _sizes(size, (5, 7), (4000, 4000))
    return (rng.integers(0, 1000, (m, n)), rng.integers(0, 1000, (m, n)), np.int64(7),
            np.int64(4), np.int64(3))


@program("NPBench", reference=lambda a0, a1, a, b, c: np.clip(a0, 2, 10) * a + a1 * b + c,
         data=_compute_data)
def compute(array_1: lt.i64["m", "n"], array_2: lt.i64["m", "n"], a: lt.i64, b: lt.i64,
            c: lt.i64) -> lt.i64["m", "n"]:
    return np.clip(array_1, 2, 10) * a + array_2 * b + c


def _cavity_data(size, rng):
    ny, nx, nt, nit = _sizes(size, (7, 8, 3, 4), (101, 101, 100, 50))
    return nx, ny, nt, nit, np.zeros((ny, nx)), np.zeros((ny, nx)), np.zeros((ny, nx)), 0.001, \
        2.0 / (nx - 1), 2.0 / (ny - 1), 1.0, 0.1


@program("NPBench (CFD)", reference=None, data=_cavity_data, rtol=1e-9)
def cavity_flow(nx: lt.i64, ny: lt.i64, nt: lt.i64, nit: lt.i64, u: lt.f64["ny", "nx"],
                v: lt.f64["ny", "nx"], p: lt.f64["ny", "nx"], dt: lt.f64, dx: lt.f64,
                dy: lt.f64, rho: lt.f64, nu: lt.f64):
    u = u.copy()
    v = v.copy()
    p = p.copy()
    for n in range(nt):
        b = np.zeros_like(p)
        b[1:-1, 1:-1] = rho * (1 / dt * ((u[1:-1, 2:] - u[1:-1, :-2]) / (2 * dx)
                                         + (v[2:, 1:-1] - v[:-2, 1:-1]) / (2 * dy))
                               - ((u[1:-1, 2:] - u[1:-1, :-2]) / (2 * dx)) ** 2
                               - 2 * ((u[2:, 1:-1] - u[:-2, 1:-1]) / (2 * dy)
                                      * (v[1:-1, 2:] - v[1:-1, :-2]) / (2 * dx))
                               - ((v[2:, 1:-1] - v[:-2, 1:-1]) / (2 * dy)) ** 2)
        for q in range(nit):
            pn = p.copy()
            p[1:-1, 1:-1] = (((pn[1:-1, 2:] + pn[1:-1, :-2]) * dy ** 2
                              + (pn[2:, 1:-1] + pn[:-2, 1:-1]) * dx ** 2)
                             / (2 * (dx ** 2 + dy ** 2))
                             - dx ** 2 * dy ** 2 / (2 * (dx ** 2 + dy ** 2)) * b[1:-1, 1:-1])
            p[:, -1] = p[:, -2]
            p[0, :] = p[1, :]
            p[:, 0] = p[:, 1]
            p[-1, :] = 0
        un = u.copy()
        vn = v.copy()
        u[1:-1, 1:-1] = (un[1:-1, 1:-1] - un[1:-1, 1:-1] * dt / dx * (un[1:-1, 1:-1] - un[1:-1, :-2])
                         - vn[1:-1, 1:-1] * dt / dy * (un[1:-1, 1:-1] - un[:-2, 1:-1])
                         - dt / (2 * rho * dx) * (p[1:-1, 2:] - p[1:-1, :-2])
                         + nu * (dt / dx ** 2 * (un[1:-1, 2:] - 2 * un[1:-1, 1:-1] + un[1:-1, :-2])
                                 + dt / dy ** 2 * (un[2:, 1:-1] - 2 * un[1:-1, 1:-1] + un[:-2, 1:-1])))
        v[1:-1, 1:-1] = (vn[1:-1, 1:-1] - un[1:-1, 1:-1] * dt / dx * (vn[1:-1, 1:-1] - vn[1:-1, :-2])
                         - vn[1:-1, 1:-1] * dt / dy * (vn[1:-1, 1:-1] - vn[:-2, 1:-1])
                         - dt / (2 * rho * dy) * (p[2:, 1:-1] - p[:-2, 1:-1])
                         + nu * (dt / dx ** 2 * (vn[1:-1, 2:] - 2 * vn[1:-1, 1:-1] + vn[1:-1, :-2])
                                 + dt / dy ** 2 * (vn[2:, 1:-1] - 2 * vn[1:-1, 1:-1] + vn[:-2, 1:-1])))
        u[0, :] = 0
        u[:, 0] = 0
        u[:, -1] = 0
        u[-1, :] = 1
        v[0, :] = 0
        v[-1, :] = 0
        v[:, 0] = 0
        v[:, -1] = 0
    return u, v, p
