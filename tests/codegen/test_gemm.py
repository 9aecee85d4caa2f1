"""The register-tiled matrix product (codegen/gemm.py) against NumPy and the interpreter.

Kernels compile with ``LATTICE_BLAS=none`` (large products would otherwise call the BLAS).
Sizes straddle the tile edges (8 rows; 2 machine vectors of columns: 16 f64 or 32 f32 lanes
with AVX-512), so whole tiles, the column remainder, the row remainder and empty products all
run; operands come C-contiguous, transposed, strided and reversed.
"""
from __future__ import annotations

import numpy as np
import pytest

import lattice as lt
from lattice.codegen.gemm import MR, tile_lanes
from lattice.ir.types import f32, f64

from conftest import assert_same


@pytest.fixture(autouse=True)
def _own_code(monkeypatch):
    """These are tests of lattice's own tiles: kernels compile without the BLAS (whose calls
    tests/codegen/test_blas.py tests)."""
    monkeypatch.setenv("LATTICE_BLAS", "none")


@lt.kernel
def mm(a: lt.f64["m", "k"], b: lt.f64["k", "n"]) -> lt.f64["m", "n"]:
    return a @ b


@lt.kernel
def mm_t(a: lt.f64["k", "m"], b: lt.f64["k", "n"]) -> lt.f64["m", "n"]:
    return a.T @ b


@lt.kernel
def vm(a: lt.f64["k"], b: lt.f64["k", "n"]) -> lt.f64["n"]:
    return a @ b


@lt.kernel
def mm32(a: lt.f32["m", "k"], b: lt.f32["k", "n"]) -> lt.f32["m", "n"]:
    return a @ b


@lt.kernel
def mm_i32(a: lt.i32["m", "k"], b: lt.i32["k", "n"]) -> lt.i32["m", "n"]:
    return a @ b


@lt.kernel
def mm_i64(a: lt.i64["m", "k"], b: lt.i64["k", "n"]) -> lt.i64["m", "n"]:
    return a @ b


@lt.kernel(parallel=True)
def mm_par(a: lt.f64["m", "k"], b: lt.f64["k", "n"]) -> lt.f64["m", "n"]:
    return a @ b


@lt.kernel(fastmath=False)
def mm_strict(a: lt.f64["m", "k"], b: lt.f64["k", "n"]) -> lt.f64["m", "n"]:
    return a @ b


def _sizes(lanes: int) -> list[tuple[int, int, int]]:
    ms = [0, 1, MR - 1, MR, MR + 1, 2 * MR + 3]
    ns = [0, 1, lanes - 1, lanes, lanes + 1, 2 * lanes + 5]
    ks = [0, 1, 7]
    return [(m, k, n) for m in ms for n in ns for k in ks]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


@pytest.mark.parametrize("m,k,n", _sizes(tile_lanes(f64)))
def test_f64_tile_edges(m: int, k: int, n: int) -> None:
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    a = rng.standard_normal((m, k))
    b = rng.standard_normal((k, n))
    want = a @ b
    assert _rel(mm(a, b), want) < 1e-14
    assert_same(mm(a, b), mm.interpret(a, b), rtol=1e-13, atol=1e-13)
    # transposed, reversed-column and strided operands: lane-by-lane loads of b
    assert _rel(mm_t(np.ascontiguousarray(a.T), b), want) < 1e-14
    assert _rel(mm(a, b[:, ::-1]), a @ b[:, ::-1]) < 1e-14
    big = rng.standard_normal((2 * k, 3 * n + 1))
    bs = big[::2, ::3]
    assert _rel(mm(a, bs), a @ bs) < 1e-14
    assert _rel(mm_par(a, b), want) < 1e-14
    assert _rel(mm_strict(a, b), want) < 1e-14
    if m:
        assert _rel(vm(a[0], b), a[0] @ b) < 1e-14


@pytest.mark.parametrize("m,k,n", _sizes(tile_lanes(f32))[::3])
def test_f32_and_integers(m: int, k: int, n: int) -> None:
    rng = np.random.default_rng(7 + m * 10_000 + k * 100 + n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    got = mm32(a, b)
    assert got.dtype == np.float32
    assert _rel(got.astype(np.float64), a.astype(np.float64) @ b.astype(np.float64)) < 1e-5
    for kern, dt in ((mm_i32, np.int32), (mm_i64, np.int64)):
        ai = rng.integers(-50, 50, (m, k)).astype(dt)
        bi = rng.integers(-50, 50, (k, n)).astype(dt)
        assert_same(kern(ai, bi), ai @ bi)


def test_each_element_sums_in_k_order_under_strict_math() -> None:
    """With ``fastmath=False``, tiling changes which elements are computed together, never one element's order of
    additions: the strict result equals a sequential left-to-right sum bit for bit."""
    rng = np.random.default_rng(3)
    m, k, n = 2 * MR + 1, 33, 2 * tile_lanes(f64) + 3
    a = rng.standard_normal((m, k)) * 10.0 ** rng.integers(-8, 8, (m, k))
    b = rng.standard_normal((k, n))
    want = np.zeros((m, n))
    for kk in range(k):
        want = want + a[:, kk:kk + 1] * b[kk:kk + 1, :]
    np.testing.assert_array_equal(mm_strict(a, b), want)


def test_large_parallel_product_matches_numpy() -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal((301, 77))
    b = rng.standard_normal((77, 45))
    assert _rel(mm_par(a, b), a @ b) < 1e-13


def test_nan_and_inf_propagate() -> None:
    a = np.ones((MR + 1, 3))
    b = np.ones((3, tile_lanes(f64) + 1))
    a[2, 1] = np.nan
    b[0, 4] = np.inf
    got = mm(a, b)
    with np.errstate(invalid="ignore"):
        want = a @ b
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))


@lt.kernel
def gram(X: lt.f64["n", "d"]) -> lt.f64["d", "d"]:
    return X.T @ X


@lt.kernel
def wgram(X: lt.f64["n", "d"], w: lt.f64["n"]) -> lt.f64["d", "d"]:
    return X.T @ (X * w[:, None])


@lt.kernel
def sgram(X: lt.f64["n", "d"]) -> lt.f64["d", "d"]:
    return X.T @ (2.5 * X)


@lt.kernel
def cross(X: lt.f64["n", "d"], Y: lt.f64["n", "d"]) -> lt.f64["d", "d"]:
    return X.T @ (X * Y)  # not a Gram matrix: Y is a full matrix, not a column


@pytest.mark.parametrize("d", [0, 1, MR - 1, MR + 1, tile_lanes(f64) + 1, 3 * tile_lanes(f64) + 5])
@pytest.mark.parametrize("n", [0, 1, 13])
def test_gram_products_compute_the_upper_triangle_and_mirror_it(n: int, d: int) -> None:
    rng = np.random.default_rng(n * 100 + d)
    X = rng.standard_normal((n, d))
    w = rng.random(n)
    Y = rng.standard_normal((n, d))
    for got, want in ((gram(X), X.T @ X), (wgram(X, w), (X.T * w) @ X),
                      (sgram(X), X.T @ (2.5 * X))):
        assert _rel(got, want) < 1e-13
        np.testing.assert_array_equal(got, got.T)  # exactly symmetric: mirrored
    assert _rel(cross(X, Y), X.T @ (X * Y)) < 1e-13
