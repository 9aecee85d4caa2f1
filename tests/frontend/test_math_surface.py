"""The wider NumPy math surface: each function compiled vs the interpreter vs NumPy (or SciPy for
the special functions) over a grid of ordinary and edge values (+-0, +-inf, NaN, domain edges,
huge and tiny), in f32 and f64 and from integer inputs; derivatives vs finite differences and
vs autograd; the conventions at non-smooth points; ``lt.f32(0.0)`` and friends."""
import math

import numpy as np
import pytest

import lattice as lt

from conftest import run_both

sp = pytest.importorskip("scipy.special")


def _grid(dt: type) -> np.ndarray:
    """Edge values plus a spread of ordinary ones, in ``dt``."""
    fi = np.finfo(dt)
    edges = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 3.0, -3.0,
             1 - fi.eps, -1 + fi.eps, 1 + fi.eps, 0.999, -0.999, 1.5, 2.0, -2.0, 10.0, 100.0,
             -100.0, 700.0, -700.0, float(fi.tiny), -float(fi.tiny), float(fi.max) / 4,
             -float(fi.max) / 4, 1e-7, -1e-7, 4.0, 0.1]
    rng = np.random.default_rng(5)
    spread = rng.standard_normal(40) * rng.choice([0.3, 3.0, 30.0], 40)
    return np.concatenate([edges, spread]).astype(dt)


# fastmath=False: NumPy's results to the last bit (fastmath may contract a*b + c into one fma
# and divide by a constant through its reciprocal); test_fastmath_agrees covers the default
def _unary_kernel(fn, ann, fastmath=False):
    @lt.kernel(fastmath=fastmath)
    def k(x: ann["n"]):
        return fn(x)
    return k


def _binary_kernel(fn, ann, fastmath=False):
    @lt.kernel(fastmath=fastmath)
    def k(x: ann["n"], y: ann["n"]):
        return fn(x, y)
    return k


# name -> (the function as written in a kernel, the NumPy/SciPy oracle)
UNARY = {
    "tan": (np.tan, np.tan), "arcsin": (np.arcsin, np.arcsin),
    "arccos": (np.arccos, np.arccos), "arctan": (np.arctan, np.arctan),
    "sinh": (np.sinh, np.sinh), "cosh": (np.cosh, np.cosh),
    "arcsinh": (np.arcsinh, np.arcsinh), "arccosh": (np.arccosh, np.arccosh),
    "arctanh": (np.arctanh, np.arctanh), "exp2": (np.exp2, np.exp2),
    "log2": (np.log2, np.log2), "log10": (np.log10, np.log10), "cbrt": (np.cbrt, np.cbrt),
    "trunc": (np.trunc, np.trunc), "ceil": (np.ceil, np.ceil), "rint": (np.rint, np.rint),
    "round": (np.round, np.round), "around": (np.around, np.around),
    "fabs": (np.fabs, np.fabs), "deg2rad": (np.deg2rad, np.deg2rad),
    "rad2deg": (np.rad2deg, np.rad2deg), "radians": (np.radians, np.radians),
    "sign": (np.sign, np.sign), "signbit": (np.signbit, np.signbit),
    "square": (np.square, np.square), "reciprocal": (np.reciprocal, np.reciprocal),
    "isinf": (np.isinf, np.isinf), "nan_to_num": (np.nan_to_num, np.nan_to_num),
    "gamma": (lt.gamma, sp.gamma), "math.gamma": (math.gamma, sp.gamma),
    "lgamma": (lt.lgamma, sp.gammaln), "math.lgamma": (math.lgamma, sp.gammaln),
    "digamma": (lt.digamma, sp.digamma),
    "trigamma": (lambda x: lt.polygamma(1, x), lambda x: sp.polygamma(1, x)),
    "math.atan": (math.atan, np.arctan), "math.cbrt": (math.cbrt, np.cbrt),
    "math.ceil": (math.ceil, np.ceil), "math.trunc": (math.trunc, np.trunc),
    "builtin round": (round, np.round),
}
SPECIAL = ("gamma", "math.gamma", "lgamma", "math.lgamma", "digamma", "trigamma")
# ulp-level differences between libm and NumPy's own (SIMD) implementations
RTOL = {np.float64: 1e-14, np.float32: 2e-6}


def _special_oracle(name: str, x: np.ndarray) -> np.ndarray:
    """SciPy in double precision, on the values SciPy is exact for; where SciPy and C99
    disagree at special points lattice follows C99's lgamma (+inf at -inf)."""
    want = UNARY[name][1](x.astype(np.float64))
    if "lgamma" in name:
        want = np.where(x == -np.inf, np.inf, want)
    return want


def _compare(got: np.ndarray, want: np.ndarray, rtol: float, atol: float = 0.0) -> None:
    got, want = np.asarray(got), np.asarray(want)
    if want.dtype.kind == "b":
        np.testing.assert_array_equal(got, want)
        return
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True)
    # infinities and zeros keep their sign, NaN stays NaN
    fin = ~np.isnan(want)
    assert np.array_equal(np.isinf(got[fin]), np.isinf(want[fin]))
    assert np.array_equal(np.signbit(got[fin & (want == 0)]), np.signbit(want[fin & (want == 0)])) \
        or want.dtype.kind != "f"


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_matches_numpy_on_edge_values(name: str, dt: type) -> None:
    fn, oracle = UNARY[name]
    k = _unary_kernel(fn, lt.f64 if dt is np.float64 else lt.f32)
    x = _grid(dt)
    got = run_both(k, x, rtol=1e-13 if dt is np.float64 else 1e-6,
                   atol=1e-14 if name in SPECIAL else 0.0)
    if name in SPECIAL:
        with np.errstate(all="ignore"):
            want = _special_oracle(name, x).astype(dt)
        # SciPy's reflection evaluates tan(pi x) on the rounded product pi*x, which loses
        # digits next to the negative poles (at -1 + eps it is off by 45%): compare there only
        # compiled vs interpreter (above)
        with np.errstate(invalid="ignore"):
            far = (x >= 0) | (np.abs(x - np.rint(x)) > 0.05) | ~np.isfinite(x)
        _compare(got[far], want[far], rtol=RTOL[dt] if dt is np.float32 else 2e-14,
                 atol=4e-15 if dt is np.float64 else 1e-6)
        return
    with np.errstate(all="ignore"):
        want = oracle(x)
    assert got.dtype == np.asarray(want).dtype, (got.dtype, np.asarray(want).dtype)
    _compare(got, want, RTOL[dt])


@pytest.mark.parametrize("name", sorted(UNARY))
def test_fastmath_agrees_on_ordinary_values(name: str) -> None:
    k = _unary_kernel(UNARY[name][0], lt.f64, fastmath=True)
    x = _grid(np.float64)
    x = x[np.isfinite(x)]
    run_both(k, x, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_of_a_scalar_argument(name: str) -> None:
    """On a scalar the op is lowered straight into the kernel's entry block (no loop)."""
    fn, oracle = UNARY[name]

    @lt.kernel
    def k(a: lt.f64, b: lt.f32):
        return fn(a), fn(b)
    for v in (2.5, -0.75, 0.0):
        # (the f32 half within f32 rounding of the interpreter's f64-then-rounded reference)
        got = run_both(k, v, np.float32(v), rtol=1e-6, atol=1e-14)
        with np.errstate(all="ignore"):
            want = (_special_oracle(name, np.array([v])) if name in SPECIAL
                    else np.asarray(oracle(np.array([v]))))
        _compare(np.asarray([got[0]]), want, 1e-14)


INT_NAMES = sorted(n for n in UNARY if n not in ("math.ceil", "math.trunc", "builtin round")
                   and not n.startswith("math."))


@pytest.mark.parametrize("name", INT_NAMES)
def test_unary_of_integers_takes_numpys_dtype(name: str) -> None:
    fn, oracle = UNARY[name]
    k = _unary_kernel(fn, lt.i64)
    x = np.array([-7, -3, -2, -1, 0, 1, 2, 3, 5, 40], dtype=np.int64)
    got = run_both(k, x, atol=1e-14)
    with np.errstate(all="ignore"):
        want = np.asarray(oracle(x))
    if name in SPECIAL:
        want = _special_oracle(name, x.astype(np.float64))
    elif name == "reciprocal":  # NumPy's integer 1/0 is undefined; lattice's gives 0
        want = np.where(x == 0, 0, want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    _compare(got, want, 1e-14, atol=1e-14 if name in SPECIAL else 0.0)


BINARY = {
    "arctan2": np.arctan2, "hypot": np.hypot, "copysign": np.copysign,
    "logaddexp2": np.logaddexp2, "fmod": np.fmod, "fmax": np.fmax, "fmin": np.fmin,
    "mod": np.mod, "remainder": np.remainder, "heaviside": np.heaviside,
    "float_power": np.float_power, "power": np.power,
}
MATH_BINARY = {"math.atan2": (math.atan2, np.arctan2), "math.hypot": (math.hypot, np.hypot),
               "math.fmod": (math.fmod, np.fmod), "math.copysign": (math.copysign, np.copysign)}


@pytest.mark.parametrize("dt", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name", sorted(BINARY) + sorted(MATH_BINARY))
def test_binary_matches_numpy_on_edge_values(name: str, dt: type) -> None:
    fn, oracle = MATH_BINARY.get(name) or (getattr(np, name), BINARY[name])
    k = _binary_kernel(fn, lt.f64 if dt is np.float64 else lt.f32)
    g = _grid(dt)[::2]
    x, y = (a.ravel() for a in np.meshgrid(g, g))
    got = run_both(k, x, y, rtol=1e-13 if dt is np.float64 else 1e-6)
    with np.errstate(all="ignore"):
        want = oracle(x, y)
    assert got.dtype == want.dtype
    _compare(got, want, RTOL[dt])


@pytest.mark.parametrize("name", ["fmod", "fmax", "fmin", "mod", "arctan2", "hypot",
                                  "copysign", "heaviside", "float_power", "logaddexp2"])
def test_binary_of_integers_takes_numpys_dtype(name: str) -> None:
    k = _binary_kernel(getattr(np, name), lt.i64)
    v = np.array([-7, -3, -1, 0, 1, 2, 5, np.iinfo(np.int64).min, np.iinfo(np.int64).max])
    x, y = (a.ravel() for a in np.meshgrid(v, v))
    got = run_both(k, x, y)
    with np.errstate(all="ignore"):
        want = BINARY[name](x, y)
    if name in ("fmod", "mod"):
        # lattice's integer division rules: 0 for a zero divisor (NumPy gives 0 with a warning)
        want = np.where(y == 0, 0, want)
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    _compare(got, want, 1e-15)


def test_nan_to_num_keywords() -> None:
    @lt.kernel
    def k(x: lt.f32["n"]):
        return np.nan_to_num(x, nan=-1.5, posinf=7.0), lt.nan_to_num(x, neginf=-2.0)
    x = np.array([np.nan, np.inf, -np.inf, 0.5, -0.0], dtype=np.float32)
    a, b = run_both(k, x)
    np.testing.assert_array_equal(a, np.nan_to_num(x, nan=-1.5, posinf=7.0))
    np.testing.assert_array_equal(b, np.nan_to_num(x, neginf=-2.0))


@pytest.mark.parametrize("decimals", [-2, -1, 1, 2, 3])
def test_round_with_decimals(decimals: int) -> None:
    @lt.kernel(fastmath=False)  # (fastmath divides through the reciprocal: 1 ulp off)
    def k(x: lt.f64["n"]):
        return np.round(x, decimals), round(x, decimals)
    x = np.array([1.2345, -1.2355, 250.0, -350.0, 0.125, 2.675, 1e300, np.nan, -0.0, 55.5])
    a, b = run_both(k, x)
    want = np.round(x, decimals)
    np.testing.assert_array_equal(a, want)
    np.testing.assert_array_equal(b, want)


def test_special_functions_against_scipy_on_a_wide_grid() -> None:
    """~1e-14 relative to SciPy away from the roots (where only absolute accuracy is
    meaningful) and, for the reflected negative half, away from the poles (where SciPy's own
    pi*x loses digits)."""
    @lt.kernel
    def k(x: lt.f64["n"]):
        return lt.lgamma(x), lt.digamma(x), lt.polygamma(1, x)
    rng = np.random.default_rng(11)
    x = np.concatenate([rng.random(3000) * 12, rng.standard_normal(3000) * 30,
                        10.0 ** rng.uniform(-300, 300, 600), -rng.random(2000) * 8])
    x = x[np.abs(x - np.rint(x)) > 0.05]  # off the poles
    lg, dg, tg = run_both(k, x, atol=1e-14)
    for got, want, root_free in ((lg, sp.gammaln(x), np.abs(sp.gammaln(x)) > 0.1),
                                 (dg, sp.digamma(x), np.abs(sp.digamma(x)) > 0.1),
                                 (tg, sp.polygamma(1, x), np.ones(x.shape, bool))):
        m = root_free & np.isfinite(want)
        np.testing.assert_allclose(got[m], want[m], rtol=2e-14)
        np.testing.assert_allclose(got[~m], want[~m], rtol=0, atol=5e-15)


def test_special_functions_in_parallel_and_fused_kernels() -> None:
    """lgamma_r's sign slot, digamma's loop and branch inside threads' chunks and fused
    reductions."""
    @lt.kernel(parallel=True)
    def k(x: lt.f64["n"]):
        return (lt.lgamma(x), lt.digamma(x), lt.polygamma(1, x),
                lt.sum(lt.digamma(x) * lt.lgamma(x)))
    x = np.random.default_rng(2).uniform(-6, 30, 200_000)
    lg, dg, tg, s = run_both(k, x, rtol=1e-12, atol=1e-14)
    m = np.abs(x - np.rint(x)) > 0.05
    np.testing.assert_allclose(lg[m], sp.gammaln(x[m]), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(tg[m], sp.polygamma(1, x[m]), rtol=1e-13)


# --------------------------------------------------------------------------- derivatives
# name -> (kernel function, autograd function or None, a sampler of the domain)
ag = pytest.importorskip("autograd")
anp = pytest.importorskip("autograd.numpy")
asp = pytest.importorskip("autograd.scipy.special")


def _u(lo: float, hi: float):
    return lambda rng, n: rng.uniform(lo, hi, n)


DERIV = {
    "tan": (np.tan, anp.tan, _u(-1.2, 1.2)),
    "arcsin": (np.arcsin, anp.arcsin, _u(-0.95, 0.95)),
    "arccos": (np.arccos, anp.arccos, _u(-0.95, 0.95)),
    "arctan": (np.arctan, anp.arctan, _u(-5, 5)),
    "sinh": (np.sinh, anp.sinh, _u(-4, 4)),
    "cosh": (np.cosh, anp.cosh, _u(-4, 4)),
    "arcsinh": (np.arcsinh, anp.arcsinh, _u(-50, 50)),
    "arccosh": (np.arccosh, anp.arccosh, _u(1.05, 30)),
    "arctanh": (np.arctanh, anp.arctanh, _u(-0.95, 0.95)),
    "exp2": (np.exp2, anp.exp2, _u(-4, 4)),
    "log2": (np.log2, anp.log2, _u(0.1, 20)),
    "log10": (np.log10, anp.log10, _u(0.1, 20)),
    "cbrt": (np.cbrt, None, _u(0.2, 8)),  # (autograd has no cbrt)
    "deg2rad": (np.deg2rad, anp.deg2rad, _u(-400, 400)),
    "rad2deg": (np.rad2deg, anp.rad2deg, _u(-4, 4)),
    "square": (np.square, anp.square, _u(-4, 4)),
    "reciprocal": (np.reciprocal, anp.reciprocal, _u(0.3, 4)),
    "fabs": (np.fabs, anp.fabs, _u(0.3, 4)),
    "gamma": (lt.gamma, asp.gamma, _u(0.1, 6)),
    "gamma<0": (lt.gamma, None, lambda rng, n: -rng.uniform(0.1, 0.9, n) - rng.integers(0, 4, n)),
    "lgamma": (lt.lgamma, asp.gammaln, _u(0.1, 30)),
    "digamma": (lt.digamma, asp.digamma, _u(0.1, 30)),
    "lgamma<0": (lt.lgamma, None, lambda rng, n: -rng.uniform(0.1, 0.9, n) - rng.integers(0, 4, n)),
}  # (trigamma is digamma's derivative; its own is refused: test_trigamma_is_not_...)


def _grad_kernel(fn):
    @lt.kernel
    def f(x: lt.f64["n"]):
        return lt.sum(fn(x))
    return lt.grad(f), f


@pytest.mark.parametrize("name", sorted(DERIV))
def test_derivatives_match_finite_differences_and_autograd(name: str) -> None:
    fn, agfn, sample = DERIV[name]
    g, f = _grad_kernel(fn)
    x = sample(np.random.default_rng(3), 12).astype(np.float64)
    got = run_both(g, x, rtol=1e-12)
    h = 1e-5 * np.maximum(1.0, np.abs(x))
    fd = np.array([(f.interpret(x + h * e) - f.interpret(x - h * e)) / (2 * h[i])
                   for i, e in enumerate(np.eye(len(x)))])
    np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)
    if agfn is not None:
        want = ag.grad(lambda v: anp.sum(agfn(v)))(x)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_second_derivative_of_lgamma_is_trigamma() -> None:
    @lt.kernel
    def f(x: lt.f64):
        return lt.lgamma(x)
    gg = lt.grad(lt.grad(f))
    for v in (0.3, 1.0, 2.5, 17.0, -0.5, -2.7):
        np.testing.assert_allclose(gg(v), sp.polygamma(1, v), rtol=1e-13)


BIN_DERIV = {
    "arctan2": (np.arctan2, anp.arctan2), "hypot": (np.hypot, anp.hypot),
    "logaddexp2": (np.logaddexp2, anp.logaddexp2), "fmod": (np.fmod, None),
    "fmax": (np.fmax, anp.fmax), "fmin": (np.fmin, anp.fmin),
    "copysign": (np.copysign, None), "mod": (np.mod, anp.mod),
    "float_power": (np.float_power, anp.power), "power": (np.power, anp.power),
}


@pytest.mark.parametrize("name", sorted(BIN_DERIV))
def test_binary_derivatives(name: str) -> None:
    fn, agfn = BIN_DERIV[name]

    @lt.kernel
    def f(x: lt.f64["n"], y: lt.f64["n"]):
        return lt.sum(fn(x, y))
    g = lt.grad(f, argnums=(0, 1))
    rng = np.random.default_rng(7)
    x, y = rng.uniform(0.3, 3, 10) * rng.choice([-1, 1], 10), rng.uniform(0.4, 2, 10)
    if name in ("power", "float_power"):
        x = np.abs(x)
    if name in ("fmod", "mod"):  # away from the jumps
        q = x / y
        x = np.where(np.abs(q - np.round(q)) < 0.1, x + 0.3 * y, x)
    if name in ("fmax", "fmin"):
        x = np.where(np.abs(x - y) < 0.1, x + 0.5, x)
    if name == "copysign":
        y = y * rng.choice([-1, 1], 10)
    gx, gy = run_both(g, x, y, rtol=1e-12)
    h = 1e-6
    fx = np.array([(f.interpret(x + h * e, y) - f.interpret(x - h * e, y)) / (2 * h)
                   for e in np.eye(10)])
    fy = np.array([(f.interpret(x, y + h * e) - f.interpret(x, y - h * e)) / (2 * h)
                   for e in np.eye(10)])
    np.testing.assert_allclose(gx, fx, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gy, fy, rtol=1e-6, atol=1e-8)
    if agfn is not None:
        wx, wy = ag.grad(lambda a, b: anp.sum(agfn(a, b)), (0, 1))(x, y)
        np.testing.assert_allclose(gx, wx, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(gy, wy, rtol=1e-12, atol=1e-14)


def test_derivative_conventions_at_non_smooth_points() -> None:
    """The values documented in docs/autodiff.md."""
    @lt.kernel
    def f(x: lt.f64["n"], y: lt.f64["n"]):
        return lt.sum(np.sign(x) + np.rint(x) + np.trunc(x) + np.ceil(x) + np.hypot(x, y)
                      + np.arctan2(x, y))
    g = lt.grad(f, argnums=(0, 1))
    z = np.zeros(3)
    gx, gy = run_both(g, z, z)
    np.testing.assert_array_equal(gx, 0.0)  # sign/rint/trunc/ceil: 0; hypot, arctan2: 0 at 0
    np.testing.assert_array_equal(gy, 0.0)

    @lt.kernel
    def p(a: lt.f64["n"], b: lt.f64["n"]):
        return lt.sum(a ** b)
    ga, gb = run_both(lt.grad(p, argnums=(0, 1)), np.array([0.0, 0.0, 2.0]),
                      np.array([2.0, 0.0, 0.0]))
    # d/db a^b = a^b log a, 0 at a = 0; d/da at b = 0 is 0 (a^0 is constant), as JAX
    np.testing.assert_array_equal(gb, [0.0, 0.0, math.log(2.0)])
    np.testing.assert_array_equal(ga, [0.0, 0.0, 0.0])

    @lt.kernel
    def m(a: lt.f64["n"], b: lt.f64["n"]):
        return lt.sum(np.fmax(a, b) + np.fmin(a, b))
    a = np.array([np.nan, 1.0, 2.0])
    b = np.array([3.0, np.nan, 2.0])
    ga, gb = run_both(lt.grad(m, argnums=(0, 1)), a, b)
    np.testing.assert_array_equal(ga, [0.0, 2.0, 1.0])  # NaN loses; ties share evenly
    np.testing.assert_array_equal(gb, [2.0, 0.0, 1.0])


def test_trigamma_is_not_differentiated() -> None:
    @lt.kernel
    def f(x: lt.f64):
        return lt.polygamma(1, x)
    with pytest.raises(TypeError, match="trigamma"):
        lt.grad(f)(2.0)


# --------------------------------------------------------------------------- dtype objects
@pytest.mark.parametrize("spec,npt,value", [
    (lt.f32, np.float32, 0.0), (lt.f64, np.float64, 3), (lt.i32, np.int32, 7),
    (lt.i64, np.int64, -5), (lt.bool_, np.bool_, 1), (lt.f32, np.float32, 1e-50)])
def test_dtype_objects_convert_python_numbers(spec, npt, value) -> None:
    got = spec(value)
    assert type(got) is npt
    assert got == npt(value)


def test_dtype_objects_inside_kernels() -> None:
    @lt.kernel
    def k(x: lt.f32["n"]):
        acc = lt.f32(0.0)  # keeps the sum in f32
        for i in range(x.shape[0]):
            acc = acc + x[i] * lt.f32(0.5)
        return acc, lt.i32(7) + lt.i32(1), lt.f64(3), x.shape[0] * lt.f64(2)
    x = np.arange(5, dtype=np.float32)
    acc, c, d, n2 = run_both(k, x)
    assert type(acc) is np.float32 and acc == np.float32(5.0)
    assert type(c) is np.int32 and c == 8
    assert type(d) is np.float64 and d == 3.0
    assert type(n2) is np.float64 and n2 == 10.0


# --------------------------------------------------------------------------- errors
def test_bad_uses_are_compile_errors_naming_the_line() -> None:
    @lt.kernel
    def k(x: lt.f64["n"]):
        return lt.polygamma(2, x)
    with pytest.raises(lt.CompileError, match=r"polygamma.*n = 2.*test_math_surface\.py:\d+"):
        k(np.ones(3))

    @lt.kernel
    def s(x: lt.bool_["n"]):
        return np.sign(x)
    with pytest.raises(lt.CompileError, match=r"sign is not defined for bool.*test_math_surface"):
        s(np.ones(3, bool))

    @lt.kernel
    def r(x: lt.f64["n"], d: lt.i64):
        return np.round(x, d)
    with pytest.raises(lt.CompileError, match=r"decimals must be a Python int"):
        r(np.ones(3), 2)


def test_an_untranslated_numpy_function_is_a_clear_error() -> None:
    @lt.kernel
    def k(x: lt.f64["n"]):
        return np.nextafter(x, x)
    with pytest.raises(lt.CompileError, match=r"np.nextafter is not supported"
                                              r".*test_math_surface\.py:\d+"):
        k(np.ones(3))


def test_constants_fold_outside_kernels() -> None:
    assert lt.arctan2(1.0, 2.0) == np.arctan2(1.0, 2.0)
    assert lt.hypot(3, 4) == 5.0 and type(lt.hypot(3, 4)) is np.float64
    assert lt.lgamma(0.5) == pytest.approx(math.lgamma(0.5), rel=1e-15)
    assert lt.digamma(1.0) == pytest.approx(-0.5772156649015329, rel=1e-15)
    assert lt.sign(-3) == -1 and lt.fmax(np.nan, 2.0) == 2.0
    assert lt.fabs(-3) == 3.0 and type(lt.fabs(-3)) is np.float64
    assert lt.deg2rad(180) == np.deg2rad(180) and lt.rad2deg(np.pi) == np.rad2deg(np.pi)
    assert lt.trunc(-2.5) == -2.0 and lt.ceil(3) == 3 and lt.round(2.5) == 2.0
    assert lt.nan_to_num(np.inf) == np.finfo(np.float64).max


def _helper(v):  # a plain Python function a kernel calls: Python's protocols on traced values
    return round(v, 1) + math.floor(v) + math.ceil(v) + math.trunc(v) + round(v)


def test_python_rounding_protocols_in_helpers() -> None:
    @lt.kernel(fastmath=False)
    def k(x: lt.f64["n"]):
        return _helper(x)
    x = np.array([1.25, -1.75, 2.5, -0.5, 3.0])
    got = run_both(k, x)
    want = np.round(x, 1) + np.floor(x) + np.ceil(x) + np.trunc(x) + np.round(x)
    np.testing.assert_array_equal(got, want)


def test_integer_power_is_exact_and_wraps_like_numpy() -> None:
    @lt.kernel
    def k(a: lt.i64["n"], b: lt.i64["n"], c: lt.i32["n"]):
        return a ** b, np.power(c, 3 + c * 0), lt.power(c, c * 0 + 7)
    rng = np.random.default_rng(4)
    a = rng.integers(-20, 20, 300)
    b = rng.integers(0, 70, 300)
    c = rng.integers(-9, 9, 300).astype(np.int32)
    p, q, r = run_both(k, a, b, c)
    np.testing.assert_array_equal(p, np.power(a, b))  # wraps past 2**63 as NumPy
    assert q.dtype == np.int32 and r.dtype == np.int32
    np.testing.assert_array_equal(q, np.power(c, np.int32(3)))
    np.testing.assert_array_equal(r, np.power(c, np.int32(7)))
    with pytest.raises(ValueError, match="negative integer powers"):
        k(a, -b - 1, c)
    with pytest.raises(ValueError, match="negative integer powers"):
        k.interpret(a, -b - 1, c)
