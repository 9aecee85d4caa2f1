"""Complex dtypes c64/c128: promotion against NumPy's result_type, arithmetic and the complex
functions compiled vs the interpreter vs NumPy (hypothesis over values, with inf/NaN parts
where NumPy's formula is the one lattice follows), Mandelbrot and DFT kernels, complex
arguments and results (arrays and scalars), astype, clear errors, and autodiff of real
functions with complex intermediates (finite differences and the inner-product check)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import lattice as lt
from lattice.ir import types as T
from lattice.ir.ad import ADError
from lattice.ir.types import promote
from tests.conftest import assert_same


def same_parts(got, want, rtol=1e-12, atol=0.0):
    """Complex values agree: where both are finite, normwise (|got - want| <= rtol |want| +
    atol, the accuracy complex formulas have: a fused multiply-add may change a cancelling
    part's low bits); elsewhere part by part (NaN where NumPy has NaN, infinities by sign,
    finite parts to rtol)."""
    g, w = np.atleast_1d(got), np.atleast_1d(want)
    assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, w.dtype, g.shape, w.shape)
    fin = np.isfinite(g) & np.isfinite(w)
    err = np.abs(g[fin].astype(np.complex128) - w[fin])
    bound = rtol * np.maximum(np.abs(g[fin]), np.abs(w[fin])) + atol
    assert np.all(err <= bound), (g[fin][err > bound], w[fin][err > bound])
    for part in (np.real, np.imag):  # (inf matches inf of its sign, NaN matches NaN)
        np.testing.assert_allclose(part(g[~fin]), part(w[~fin]), rtol=rtol, atol=atol,
                                   equal_nan=True)


def same_results(got, want, rtol):
    """Tuples of results agree: bool and integer ones exactly, the others by same_parts."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        if np.asarray(w).dtype.kind in "biu":
            np.testing.assert_array_equal(g, w)
        else:
            same_parts(g, w, rtol=rtol)


def both(k, *args, rtol=1e-12, atol=0.0):
    """Compiled vs interpreted; returns the compiled result."""
    got = k(*args)
    ref = k.interpret(*args)
    for g, r in zip(got if isinstance(got, tuple) else (got,),
                    ref if isinstance(ref, tuple) else (ref,)):
        same_parts(g, r, rtol=rtol, atol=atol)
    return got


# --------------------------------------------------------------------------- promotion
ALL = T.DTYPES + T.COMPLEX


@pytest.mark.parametrize("a", T.COMPLEX, ids=str)
def test_promotion_matches_numpy_result_type(a):
    for b in ALL:
        assert promote(a, b).np == np.result_type(a.np, b.np), (a, b)
        assert promote(b, a).np == np.result_type(b.np, a.np), (b, a)


@pytest.mark.parametrize("s", ALL, ids=str)
def test_weak_python_complex_promotion_matches_numpy(s):
    assert promote(s, T.c128, b_weak=True).np == np.result_type(s.np, 1j)
    if s.is_complex:
        for w, v in ((T.f64, 1.0), (T.i64, 1), (T.bool_, True)):
            assert promote(s, w, b_weak=True).np == np.result_type(s.np, v)


@pytest.mark.parametrize("real_t, np_t", [(lt.f32, np.float32), (lt.f64, np.float64),
                                          (lt.i32, np.int32), (lt.i16, np.int16)])
@pytest.mark.parametrize("cplx_t, np_c", [(lt.c64, np.complex64), (lt.c128, np.complex128)])
def test_mixed_arithmetic_has_numpy_dtype(real_t, np_t, cplx_t, np_c):
    @lt.kernel
    def f(x: real_t["n"], z: cplx_t["n"]):
        return x * z + z, z / x, x - z
    x = np.arange(1, 5).astype(np_t)
    z = (np.arange(4) + 1j * np.arange(4, 8)).astype(np_c)
    got = both(f, x, z, rtol=1e-6)
    want = (x * z + z, z / x, x - z)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        same_parts(g, w, rtol=1e-6)


# --------------------------------------------------------------------------- arithmetic
SPECIAL = st.sampled_from([0.0, -0.0, 1.0, -2.5, math.inf, -math.inf, math.nan, 1e300, -1e-300])
FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
PART = st.one_of(FINITE, SPECIAL)


def carr(parts):
    return np.array([complex(a, b) for a, b in parts], dtype=np.complex128)


@lt.kernel
def _arith(z: lt.c128["n"], w: lt.c128["n"]):
    return z + w, z - w, z * w, z / w, -z, z == w, z != w


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(PART, PART, PART, PART), min_size=1, max_size=12))
def test_arithmetic_matches_numpy_with_special_parts(vals):
    z = carr([(a, b) for a, b, _, _ in vals])
    w = carr([(c, d) for _, _, c, d in vals])
    got = both(_arith, z, w)
    with np.errstate(all="ignore"):
        want = (z + w, z - w, z * w, z / w, -z, z == w, z != w)
    same_results(got, want, rtol=1e-15)


@lt.kernel
def _abs(z: lt.c128["n"]) -> lt.f64["n"]:
    return abs(z)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(allow_nan=True), SPECIAL),
                          st.one_of(st.floats(allow_nan=True), SPECIAL)), min_size=1,
                max_size=12))
def test_abs_is_hypot_without_overflow(vals):
    z = carr(vals)
    got = both(_abs, z)
    assert_same(got, np.abs(z), rtol=1e-15)
    big = np.array([1e300 + 1e300j, -3e307 + 4e307j])
    assert np.all(np.isfinite(_abs(big)))
    assert_same(_abs(big), np.abs(big), rtol=1e-15)


def _funcs_py(z: lt.c128["n"]):
    return np.exp(z), np.log(z), np.sqrt(z), np.conj(z), z.conj(), np.angle(z), z.real, \
        np.imag(z), z ** 2, z ** 5, z ** -3, z * 1j + 2


_funcs = lt.kernel(_funcs_py)
# without reassociation, which may recombine the scaled factors exp and sqrt use near the
# largest float (docs/getting-started.md, complex numbers)
_funcs_exact = lt.kernel(fastmath=False)(_funcs_py)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(-30, 30), st.floats(-30, 30)), min_size=1, max_size=10))
def test_functions_match_numpy(vals):
    z = carr(vals)
    got = both(_funcs, z)
    with np.errstate(all="ignore"):
        want = (np.exp(z), np.log(z), np.sqrt(z), np.conj(z), np.conj(z), np.angle(z), z.real,
                z.imag, z ** 2, z ** 5, z ** -3, z * 1j + 2)
    for k, (g, w) in enumerate(zip(got, want)):
        same_parts(g, w, rtol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(-1e308, 1e308), st.floats(-1e308, 1e308)), min_size=1,
                max_size=8),
       st.lists(st.tuples(st.floats(700, 1400), st.floats(-3, 3)), min_size=1, max_size=4))
def test_large_magnitudes_do_not_overflow_early(vals, exps):
    z = carr(vals)
    got = both(_funcs_exact, z)
    with np.errstate(all="ignore"):
        want = (np.log(z), np.sqrt(z))
    for g, w in zip(got[1:3], want):
        same_parts(g, w, rtol=1e-12)
    e = carr(exps)
    with np.errstate(all="ignore"):
        same_parts(both(_funcs_exact, e)[0], np.exp(e), rtol=1e-12)


def _same_with_zero_signs(got, want):
    same_parts(got, want, rtol=1e-15)
    for part in (np.real, np.imag):  # zeros (and infinities) of the right sign too
        g, w = part(got), part(want)
        keep = ~np.isnan(w)
        np.testing.assert_array_equal(np.signbit(g[keep]), np.signbit(w[keep]))


@pytest.mark.parametrize("k", [_funcs, _funcs_exact], ids=["fastmath", "exact"])
def test_exp_log_sqrt_special_values_match_numpy(k):
    # every pair of parts from zeros of both signs, finite values, infinities and NaN
    vals = [0.0, -0.0, 1.0, -2.0, math.inf, -math.inf, math.nan]
    z = carr([(a, b) for a in vals for b in vals])
    got = both(k, z)
    with np.errstate(all="ignore"):
        want = (np.exp(z), np.log(z), np.sqrt(z))
    for g, w in zip(got[:3], want):
        _same_with_zero_signs(g, w)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(PART, PART), min_size=1, max_size=10))
def test_exp_log_sqrt_with_special_parts_match_numpy(vals):
    z = carr(vals)
    got = both(_funcs_exact, z)
    with np.errstate(all="ignore"):
        want = (np.exp(z), np.log(z), np.sqrt(z))
    for g, w in zip(got[:3], want):
        same_parts(g, w, rtol=1e-12)


def test_functions_on_axes_and_zero():
    z = np.array([0j, -0.0 + 0j, 2 + 0j, -4 + 0j, 3j, -3j, complex(-4, -0.0), 1 + 0j])
    got = both(_funcs, z)
    with np.errstate(all="ignore"):
        want = (np.exp(z), np.log(z), np.sqrt(z))
    for g, w in zip(got[:3], want):
        same_parts(g, w, rtol=1e-15)
    # exp keeps the imaginary zero on the real axis, even where exp overflows
    big = np.array([800 + 0j, -800 + 0j])
    with np.errstate(over="ignore"):
        assert_same(both(_funcs, big)[0], np.exp(big))


@lt.kernel
def _powers(z: lt.c128["n"], w: lt.c128["n"], p: lt.f64, x: lt.f64["n"]):
    return z ** w, z ** p, z ** 0.5, z ** 150, x ** w, z ** 1j


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-2, 2),
                          st.floats(-2, 2), st.floats(0.1, 3)), min_size=1, max_size=8),
       st.floats(-4, 4))
def test_general_powers_match_numpy(vals, p):
    z = carr([(a, b) for a, b, _, _, _ in vals])
    w = carr([(c, d) for _, _, c, d, _ in vals])
    x = np.array([v[4] for v in vals])
    z[0] = 0  # the zero base: 1, 0 or NaN by the exponent, as NumPy
    got = both(_powers, z, w, p, x, rtol=1e-12, atol=1e-300)
    with np.errstate(all="ignore"):
        want = (z ** w, z ** p, z ** 0.5, z ** 150, x ** w, z ** 1j)
    for g, v in zip(got, want):
        # exp(b log a) carries the relative error of b log a (a few ulps of |b log a|)
        same_parts(g, v, rtol=1e-11, atol=1e-300)


def test_c64_arithmetic_and_functions():
    @lt.kernel
    def f(z: lt.c64["n"], w: lt.c64["n"]):
        return z * w, z / w, np.exp(z), abs(z), z + 1.5
    rng = np.random.default_rng(1)
    z = (rng.normal(size=7) + 1j * rng.normal(size=7)).astype(np.complex64)
    w = (rng.normal(size=7) + 1j * rng.normal(size=7)).astype(np.complex64)
    # (f32 parts of O(1) values: a fused multiply-add differs from NumPy's rounding by about
    # one f32 ulp of the operands, which cancellation can make large relative to the result)
    got = both(f, z, w, rtol=1e-6, atol=1e-6)
    want = (z * w, z / w, np.exp(z), np.abs(z), z + 1.5)
    for g, x in zip(got, want):
        assert g.dtype == x.dtype
        same_parts(g, x, rtol=2e-6, atol=1e-6)


# --------------------------------------------------------------------------- literals, astype
def test_literals_complex_builtin_and_scalars():
    @lt.kernel
    def f(x: lt.f64["n"], y: lt.f64["n"], s: lt.c128) -> lt.c128["n"]:
        z = complex(1.0, 2.0) + 1j * x + complex(x, y)
        return z * s
    x, y = np.linspace(-1, 1, 5), np.linspace(2, 3, 5)
    s = 0.5 - 2j
    got = both(f, x, y, s)
    same_parts(got, ((1 + 2j) + 1j * x + (x + 1j * y)) * s, rtol=1e-15)

    @lt.kernel
    def total(z: lt.c128["n"]) -> lt.c128:
        return np.sum(z) + z.mean()
    z = np.array([1 + 2j, 3 - 1j, -0.5 + 0.25j])
    r = both(total, z)
    assert isinstance(r, np.complex128)
    same_parts(r, np.sum(z) + np.mean(z), rtol=1e-15)


def test_astype_between_complex_and_real():
    @lt.kernel
    def f(z: lt.c128["n"], x: lt.f32["n"]):
        return (z.astype(lt.f64), z.astype(lt.c64), z.astype(np.int32), z.astype(lt.bool_),
                x.astype(lt.c128), x.astype(np.complex64))
    z = np.array([1.5 + 2j, -2.7 - 1j, 0j, 1j, 1e3 - 1e3j])
    x = np.array([1, -2.5, 0, 3, 4], np.float32)
    got = both(f, z, x)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        want = (z.astype(np.float64), z.astype(np.complex64), z.astype(np.int32),
                z.astype(bool), x.astype(np.complex128), x.astype(np.complex64))
    for g, w in zip(got, want):
        assert g.dtype == w.dtype
        if w.dtype.kind in "iub":
            np.testing.assert_array_equal(g, w)
        else:
            same_parts(g, w)

    # out of the integer range: the real part converts with lattice's float rule (saturating)
    @lt.kernel
    def to_i32(z: lt.c128["n"]) -> lt.i32["n"]:
        return z.astype(lt.i32)
    big = np.array([1e10 + 1j, -1e10 - 1j, complex(np.nan, 1)])
    want = _real_to_i32(big.real)
    np.testing.assert_array_equal(want, _real_to_i32.interpret(big.real))
    np.testing.assert_array_equal(to_i32(big), want)
    np.testing.assert_array_equal(to_i32.interpret(big), want)


@lt.kernel
def _real_to_i32(x: lt.f64["n"]) -> lt.i32["n"]:
    return x.astype(lt.i32)


def test_zeros_where_indexing_and_stores():
    @lt.kernel
    def f(z: lt.c128["n"]) -> lt.c128["n"]:
        out = np.zeros(z.shape[0], np.complex128)
        acc = lt.zeros(1, dtype=lt.c128)
        for i in range(z.shape[0]):
            out[i] = np.where(z[i].real > 0, z[i], -z[i]) * 2
            acc[0] = acc[0] + z[i]
        return out + acc[0]
    z = np.array([1 + 1j, -2 + 0.5j, 3 - 3j, -0.25 - 4j])
    got = both(f, z)
    same_parts(got, np.where(z.real > 0, z, -z) * 2 + z.sum(), rtol=1e-15)


def test_matmul_and_dot():
    @lt.kernel
    def f(a: lt.c128["n", "m"], b: lt.c128["m", "k"], v: lt.c128["m"], r: lt.f64["m"]):
        return a @ b, a @ v, np.dot(v, v), a @ r, np.dot(r, v)
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 4)) + 1j * rng.normal(size=(3, 4))
    b = rng.normal(size=(4, 2)) + 1j * rng.normal(size=(4, 2))
    v = rng.normal(size=4) + 1j * rng.normal(size=4)
    r = rng.normal(size=4)
    got = both(f, a, b, v, r)
    for g, w in zip(got, (a @ b, a @ v, np.dot(v, v), a @ r, np.dot(r, v))):
        same_parts(g, w, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- programs
@lt.kernel
def mandelbrot(c: lt.c128["n"], maxiter: lt.i64) -> lt.i64["n"]:
    out = np.zeros(c.shape[0], np.int64)
    for i in range(c.shape[0]):
        z = 0j
        k = 0
        while k < maxiter and abs(z) <= 2.0:
            z = z * z + c[i]
            k += 1
        out[i] = k
    return out


def _mandelbrot_np(c, maxiter):
    out = np.zeros(c.shape, np.int64)
    for i, ci in enumerate(c):
        z, k = 0j, 0
        while k < maxiter and abs(z) <= 2.0:
            z = z * z + ci
            k += 1
        out[i] = k
    return out


def test_mandelbrot_matches_numpy():
    xs, ys = np.meshgrid(np.linspace(-2, 0.6, 24), np.linspace(-1.2, 1.2, 17))
    c = (xs + 1j * ys).ravel()
    got = mandelbrot(c, 60)
    np.testing.assert_array_equal(got, _mandelbrot_np(c, 60))
    np.testing.assert_array_equal(got, mandelbrot.interpret(c, 60))


@lt.kernel
def dft(x: lt.c128["n"]) -> lt.c128["n"]:
    # the DFT as a matrix product: W[k, j] = exp(-2 pi i (k j mod n) / n), then W @ x (the
    # corpus program `dft` sums the same terms in loops)
    n = x.shape[0]
    W = np.zeros((n, n), np.complex128)
    for k in range(n):
        for j in range(n):
            W[k, j] = np.exp(-2j * np.pi * ((k * j) % n) / n)
    return W @ x


@pytest.mark.parametrize("n", [1, 7, 64])
def test_dft_matches_fft(n):
    rng = np.random.default_rng(n)
    x = rng.normal(size=n) + 1j * rng.normal(size=n)
    got = dft(x)
    want = np.fft.fft(x)
    assert np.linalg.norm(got - want) <= 1e-9 * np.linalg.norm(want)
    same_parts(got, dft.interpret(x), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------- errors
def _compile_error(fn, *args):
    with pytest.raises(lt.CompileError) as exc:
        fn(*args)
    return str(exc.value)


def test_ordering_comparisons_are_clear_errors():
    @lt.kernel
    def f(z: lt.c128["n"], w: lt.c128["n"]):
        return z < w
    msg = _compile_error(f, np.ones(2, complex), np.ones(2, complex))
    assert "lexicographically" in msg and "abs(z)" in msg and "test_complex.py" in msg

    @lt.kernel
    def g(z: lt.c128["n"]):
        return np.max(z)
    assert "lexicographically" in _compile_error(g, np.ones(2, complex))


def test_unsupported_complex_ops_are_clear_errors():
    @lt.kernel
    def f(z: lt.c128["n"]):
        return np.sin(z)
    msg = _compile_error(f, np.ones(2, complex))
    assert "sin of a complex value" in msg and "z.real" in msg

    @lt.kernel
    def h(z: lt.c128["n"]) -> lt.f64["n"]:
        return z
    assert "imaginary part" in _compile_error(h, np.ones(2, complex))


def test_wrong_argument_dtype_names_the_argument():
    @lt.kernel
    def f(z: lt.c128["n"]) -> lt.c128["n"]:
        return z + 1
    z = np.array([1 + 2j, -3j])
    same_parts(f(z), z + 1)  # compiled: later calls go through the CPython entry
    same_parts(f(z), z + 1)
    with pytest.raises(TypeError, match="'z'"):
        f(np.ones(3, np.complex64))
    with pytest.raises(TypeError, match="'s'"):
        @lt.kernel
        def g(x: lt.f64["n"], s: lt.f64) -> lt.f64["n"]:
            return x * s
        g(np.ones(3), 1j)


# --------------------------------------------------------------------------- autodiff
def _fd(f, x, t, h=1e-5):
    return (f(x + h * t) - f(x - h * t)) / (2 * h)


@lt.kernel
def power_of_exp(x: lt.f64["n"], y: lt.f64["n"]) -> lt.f64:
    # a real function of complex intermediates: |exp(i x) * (x + i y)|^2 + Re(z^3 / w)
    z = np.exp(1j * x) * complex(x, y)
    w = complex(y, 2.0) + z.conj()
    return np.sum(abs(z) ** 2 + (z ** 3 / w).real + np.angle(w) + np.sqrt(w).imag)


def _power_of_exp_np(x, y):
    z = np.exp(1j * x) * (x + 1j * y)
    w = (y + 2j) + np.conj(z)
    return np.sum(np.abs(z) ** 2 + (z ** 3 / w).real + np.angle(w) + np.sqrt(w).imag)


def test_grad_through_complex_intermediates_fd_and_vjp_dot():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=5), rng.normal(size=5) + 3.0
    assert abs(power_of_exp(x, y) - _power_of_exp_np(x, y)) <= 1e-12 * abs(_power_of_exp_np(x, y))
    gx, gy = lt.grad(power_of_exp, argnums=(0, 1))(x, y)
    for _ in range(3):
        tx, ty = rng.normal(size=5), rng.normal(size=5)
        fd = (_power_of_exp_np(x + 1e-6 * tx, y + 1e-6 * ty)
              - _power_of_exp_np(x - 1e-6 * tx, y - 1e-6 * ty)) / 2e-6
        got = float(gx @ tx + gy @ ty)
        assert abs(got - fd) <= 1e-6 * (1 + abs(fd))
        # forward mode agrees with reverse mode: <J t, 1> = <t, J^T 1>
        _, jt = lt.jvp(power_of_exp, (x, y), (tx, ty))
        assert abs(float(jt) - got) <= 1e-10 * (1 + abs(got))


def test_autodiff_refuses_complex_arguments_and_results():
    @lt.kernel
    def f(z: lt.c128["n"]) -> lt.f64:
        return np.sum(abs(z))
    with pytest.raises(TypeError, match="c128"):
        lt.grad(f)(np.ones(3, complex))

    @lt.kernel
    def g(x: lt.f64["n"]) -> lt.c128["n"]:
        return np.exp(1j * x)
    with pytest.raises(ADError, match="result 0 is complex"):
        lt.vjp(g, np.ones(3))[1]()
    with pytest.raises(ADError, match="result 0 is complex"):
        lt.jvp(g, (np.ones(3),), (np.ones(3),))


# --------------------------------------------------------------------------- the three rules
def test_complex_real_imag_rules_fd_vjp_dot_and_second_order():
    # one-equation-style functions over the IR: real results of complex intermediates built
    # with complex/real/imag and the complex add/sub/neg/convert/select the IR allows
    from lattice.ir import primitives as P
    from lattice.ir.core import bind
    from lattice.ir.types import TensorType, bool_, c128, f64
    from tests.ir.test_ad_rules import T as RT, b1, check_all, mk

    def body(x, y, s):
        z = b1(P.complex_p, x, y)                       # z = x + i y
        w = b1(P.sub_p, b1(P.neg_p, z), b1(P.convert_p, s, dtype=c128))  # w = -z - s
        u = b1(P.add_p, z, b1(P.complex_p, s, x))       # u = z + (s + i x), s broadcast
        pick = b1(P.gt_p, x, y)
        v = b1(P.select_p, pick, u, w)
        return (b1(P.mul_p, b1(P.real_p, v), b1(P.imag_p, u)),
                b1(P.add_p, b1(P.imag_p, w), b1(P.real_p, z)))
    f = mk([RT("n"), RT("n"), RT()], body)
    rng = np.random.default_rng(4)
    x = rng.standard_normal(3)
    y = x + np.sign(rng.standard_normal(3)) * (0.5 + rng.random(3))  # away from x == y
    check_all(f, [x, y, np.float64(0.7)], seed=4)


@pytest.mark.parametrize("expr", ["np.floor(z)", "np.fabs(z)", "np.hypot(z, 1.0)",
                                  "np.sign(z)", "np.round(z)", "np.logaddexp(z, z)",
                                  "np.deg2rad(z)", "np.float_power(z, 2)", "np.arctan2(z, 1)"])
def test_real_only_functions_refuse_complex_instead_of_dropping_the_imaginary_part(
        expr, tmp_path):
    import importlib.util
    path = tmp_path / "complex_probe.py"  # lattice reads a kernel's source from its file
    path.write_text(f"import numpy as np\nimport lattice as lt\n\n\n"
                    f"def f(z: lt.c128['n']):\n    return {expr}\n")
    spec = importlib.util.spec_from_file_location("complex_probe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    msg = _compile_error(lt.kernel(mod.f), np.ones(2, complex))
    assert "of a complex value is not supported" in msg and "complex_probe.py:6" in msg


def test_reciprocal_and_nan_to_num_of_complex_match_numpy():
    @lt.kernel
    def f(z: lt.c128["n"]):
        return np.reciprocal(z), np.nan_to_num(z), np.isnan(z), np.isinf(z), np.isfinite(z)
    z = np.array([2 + 1j, complex(np.nan, 1), complex(1, np.inf), complex(-np.inf, np.nan),
                  0.5j])
    got = both(f, z)
    with np.errstate(all="ignore"):
        want = (np.reciprocal(z), np.nan_to_num(z), np.isnan(z), np.isinf(z), np.isfinite(z))
    same_results(got, want, rtol=1e-15)


@lt.kernel
def _broadcast_loss(x: lt.f64["n"], a: lt.f64) -> lt.f64:
    # a complex scalar broadcast against complex arrays: its cotangent is a complex sum
    z = np.exp(1j * x) + complex(a, 0.5)
    w = z - complex(a * a, a)
    return np.sum(abs(z * w) ** 2) + np.sum(z).real


def _broadcast_loss_np(x, a):
    z = np.exp(1j * x) + complex(a, 0.5)
    w = z - complex(a * a, a)
    return np.sum(np.abs(z * w) ** 2) + np.sum(z).real


def test_grad_and_hessian_with_broadcast_complex_scalars():
    rng = np.random.default_rng(6)
    x, a, h = rng.normal(size=4), 0.3, 1e-6
    gx, ga = lt.grad(_broadcast_loss, argnums=(0, 1))(x, a)
    fd_a = (_broadcast_loss_np(x, a + h) - _broadcast_loss_np(x, a - h)) / (2 * h)
    assert abs(ga - fd_a) <= 1e-6 * (1 + abs(fd_a))
    t = rng.normal(size=4)
    fd_x = (_broadcast_loss_np(x + h * t, a) - _broadcast_loss_np(x - h * t, a)) / (2 * h)
    assert abs(gx @ t - fd_x) <= 1e-6 * (1 + abs(fd_x))
    # second order: the Hessian applied to t against finite differences of the gradient
    H = lt.hessian(_broadcast_loss, 0)(x, a)
    g = lt.grad(_broadcast_loss, 0)
    fd_h = (g(x + h * t, a) - g(x - h * t, a)) / (2 * h)
    np.testing.assert_allclose(H @ t, fd_h, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------- reductions of complex arrays
@lt.kernel
def _complex_reductions(z: lt.c128["n", "m"]):
    return (np.var(z, axis=0), np.std(z, ddof=1), np.linalg.norm(z), np.linalg.norm(z, 1, axis=1),
            np.cumsum(z, axis=1), np.cumsum(z), np.sum(z, axis=1, keepdims=True),
            np.mean(z, axis=0, keepdims=True))


def test_variance_norm_and_running_sums_of_complex_arrays_match_numpy():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((4, 3)) + 1j * rng.standard_normal((4, 3))
    want = (np.var(z, axis=0), np.std(z, ddof=1), np.linalg.norm(z), np.linalg.norm(z, 1, axis=1),
            np.cumsum(z, axis=1), np.cumsum(z), np.sum(z, axis=1, keepdims=True),
            np.mean(z, axis=0, keepdims=True))
    for k in (_complex_reductions, _complex_reductions.interpret):
        got = k(z)
        for g, w in zip(got, want):
            assert np.asarray(g).dtype == np.asarray(w).dtype
            np.testing.assert_allclose(g, w, rtol=1e-12)


def test_products_of_complex_values_are_refused_by_name():
    def f(z: lt.c128["n"]) -> lt.c128:
        return np.prod(z)

    def g(z: lt.c128["n"]) -> lt.c128["n"]:
        return np.cumprod(z)

    z = np.ones(3, np.complex128)
    for fn, name in ((f, "prod"), (g, "cumprod")):
        with pytest.raises(lt.CompileError, match=rf"{name} of complex values is not supported.*"
                                                  r"test_complex\.py:\d+"):
            lt.kernel(fn)(z)


@lt.kernel
def _complex_selection(z: lt.c128["n"], w: lt.c64["n", "m"]):
    # results the kernel allocates: one sized at run time, two of argument sizes
    return z[z.real > 0], w * 2, z.conj()


def test_complex_array_results_of_every_kind_match_numpy():
    rng = np.random.default_rng(11)
    z = rng.standard_normal(9) + 1j * rng.standard_normal(9)
    w = (rng.standard_normal((9, 3)) + 1j * rng.standard_normal((9, 3))).astype(np.complex64)
    for _ in range(3):  # the fast entry after the first call
        got = _complex_selection(z, w)
        for g, want in zip(got, (z[z.real > 0], w * 2, z.conj())):
            assert g.dtype == want.dtype and g.shape == want.shape
            np.testing.assert_array_equal(g, want)
