"""The twelve dtypes and the integer bit operations, against NumPy 2 and the interpreter.

Oracles: ``np.result_type`` for promotion (NEP 50, weak Python scalars included), NumPy's
ufuncs for every operation (NumPy defines integer division by zero as 0 and every shift
count), the interpreter for the saturating float -> integer conversion NumPy leaves undefined.
Kernels are built once per dtype and return a tuple of many results, so the file compiles few
kernels.
"""
from __future__ import annotations

import itertools
import operator
import warnings
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lattice as lt
from lattice.frontend.annotations import DTypeSpec
from lattice.ir import types as T

from conftest import assert_same, run_both

DTYPES = T.DTYPES
INTS = [d for d in DTYPES if d.is_int]
FLOATS = [d for d in DTYPES if d.is_float]
SPEC = {d: DTypeSpec(d) for d in DTYPES}


def _kernel(fn: Callable[..., Any], **anns: Any) -> lt.Kernel:
    fn.__annotations__ = anns
    return lt.kernel(fn)


def _np(*args: Any, fn: Callable[..., Any]) -> Any:
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return fn(*args)


def _ints(d: T.DType, n: int = 12) -> Any:
    """Arrays over the whole range of integer dtype ``d`` (hypothesis favours the extremes)."""
    return hnp.arrays(d.np, n)


# --------------------------------------------------------------------------- promotion
@pytest.mark.parametrize("a", DTYPES, ids=str)
def test_promotion_of_every_pair_is_numpys(a: T.DType) -> None:
    for b in DTYPES:
        want = np.result_type(np.zeros(1, a.np), np.zeros(1, b.np))
        assert T.promote(a, b).np == want, (a, b)


@pytest.mark.parametrize("a", DTYPES, ids=str)
@pytest.mark.parametrize("weak", [True, 1, 1.0], ids=["bool", "int", "float"])
def test_promotion_with_a_python_scalar_is_numpys(a: T.DType, weak: Any) -> None:
    w = {bool: T.bool_, int: T.i64, float: T.f64}[type(weak)]
    want = np.result_type(np.zeros(1, a.np), weak)  # NEP 50: value-independent
    assert T.promote(a, w, b_weak=True).np == want
    assert T.promote(w, a, a_weak=True).np == want


@pytest.mark.parametrize("a", DTYPES, ids=str)
def test_traced_promotion_is_numpys(a: T.DType) -> None:
    """The frontend's result dtypes (array op array, array op Python scalar) are NumPy's."""
    for b in DTYPES:
        def _f(x, y):
            return x * y
        k = _kernel(_f, x=SPEC[a]["n"], y=SPEC[b]["n"])
        x, y = np.ones(2, a.np), np.ones(2, b.np)
        assert k.interpret(x, y).dtype == (x * y).dtype, (a, b)
    for weak in (True, 3, 2.5):
        def _f(x):
            return x * weak
        k = _kernel(_f, x=SPEC[a]["n"])
        x = np.ones(2, a.np)
        assert k.interpret(x).dtype == (x * weak).dtype, (a, weak)


def test_mixed_sign_pairs_compile_to_numpys_values() -> None:
    rng = np.random.default_rng(0)
    for a, b in [(T.u8, T.i8), (T.u16, T.i8), (T.u32, T.i32), (T.u64, T.i64), (T.u64, T.u8),
                 (T.i16, T.f16), (T.u8, T.f16), (T.i32, T.f32)]:
        def _f(x, y):
            return x + y
        k = _kernel(_f, x=SPEC[a]["n"], y=SPEC[b]["n"])
        x = rng.integers(0, 100, 6).astype(a.np)
        y = rng.integers(-50 if b.kind != "u" else 0, 50, 6).astype(b.np)
        assert_same(run_both(k, x, y), x + y, rtol=0)


def test_python_int_out_of_range_is_a_compile_error() -> None:
    def _f(x):
        return x + 300
    k = _kernel(_f, x=lt.u8["n"])
    with pytest.raises(lt.CompileError, match=r"300 is out of range for u8.*test_dtypes.py:\d+"):
        k(np.zeros(3, np.uint8))
    def _f(x):
        return x * -1
    k = _kernel(_f, x=lt.u32["n"])
    with pytest.raises(lt.CompileError, match="out of range for u32"):
        k(np.zeros(3, np.uint32))


@pytest.mark.parametrize("op", [operator.lt, operator.le, operator.gt, operator.ge,
                                operator.eq, operator.ne], ids=lambda f: f.__name__)
def test_compare_with_an_out_of_range_python_int_is_exact(op: Callable[..., Any]) -> None:
    x = np.array([0, 7, 255], np.uint8)
    for c in (300, -1):
        def _f(x):
            return (op(x, c), op(c, x))
        k = _kernel(_f, x=lt.u8["n"])
        got = k(x)
        assert_same(got, (op(x, c), op(c, x)))


# --------------------------------------------------------------------------- binary ops
_BINARY = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul,
    "floordiv": operator.floordiv, "mod": operator.mod,
    "maximum": np.maximum, "minimum": np.minimum,
    "and": operator.and_, "or": operator.or_, "xor": operator.xor,
    "lt": operator.lt, "le": operator.le, "eq": operator.eq, "ne": operator.ne,
    "gt": operator.gt, "ge": operator.ge,
}


@lru_cache(maxsize=None)
def _binary_kernel(d: T.DType) -> lt.Kernel:
    def f(x, y, s):
        return (x + y, x - y, x * y, x // y, x % y, lt.maximum(x, y), lt.minimum(x, y),
                x & y, x | y, x ^ y, x < y, x <= y, x == y, x != y, x > y, x >= y,
                x << s, x >> s, np.left_shift(x, s), np.right_shift(x, s))
    return _kernel(f, x=SPEC[d]["n"], y=SPEC[d]["n"], s=SPEC[d]["n"])


@pytest.mark.parametrize("d", INTS, ids=str)
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_integer_binary_ops_and_shifts_match_numpy(d: T.DType, data: Any) -> None:
    x = data.draw(_ints(d))
    # zeros on purpose: integer // 0 and % 0 are 0 (NumPy's value; it also warns)
    y = data.draw(hnp.arrays(d.np, 12, elements=st.one_of(
        st.sampled_from([0, 1, int(np.iinfo(d.np).max)] + ([-1] if d.is_signed else [])),
        st.integers(int(np.iinfo(d.np).min), int(np.iinfo(d.np).max)))))
    # every shift count 0..bits+2; NumPy treats a negative count as too large
    s = data.draw(hnp.arrays(d.np, 12, elements=st.integers(-2 if d.is_signed else 0,
                                                            d.bits + 2)))
    got = run_both(_binary_kernel(d), x, y, s)
    want = tuple(_np(x, y, fn=f) for f in _BINARY.values()) + (x << s, x >> s) * 2
    for name, g, w in zip([*_BINARY, "<<", ">>", "left_shift", "right_shift"], got, want):
        assert g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=f"{name} {d}")
    assert len(got) == len(want)


def test_shift_by_a_python_int_keeps_the_dtype() -> None:
    def _f(x):
        return (x << 9, x >> 9, x << 3, 1 << x)
    k = _kernel(_f, x=lt.i8["n"])
    x = np.array([-128, -3, 0, 5, 127], np.int8)
    got = run_both(k, x)
    for g, w in zip(got, (x << 9, x >> 9, x << 3, _np(1, x, fn=np.left_shift))):
        assert_same(g, w)


# --------------------------------------------------------------------------- unary ops
@lru_cache(maxsize=None)
def _unary_kernel(d: T.DType) -> lt.Kernel:
    def _f(x):
        return (-x, abs(x), ~x, np.invert(x), np.bitwise_count(x))
    return _kernel(_f,  x=SPEC[d]["n"])


@pytest.mark.parametrize("d", INTS, ids=str)
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_integer_unary_ops_match_numpy(d: T.DType, data: Any) -> None:
    x = data.draw(_ints(d))
    got = run_both(_unary_kernel(d), x)
    want = (_np(x, fn=np.negative), _np(x, fn=np.abs), ~x, ~x, np.bitwise_count(x))
    for g, w in zip(got, want):
        assert_same(g, w)


def test_bit_operations_on_bools_are_logical() -> None:
    def _f(a, b):
        return (a & b, a | b, a ^ b, ~a, a << b, a & 3, np.bitwise_count(a))
    k = _kernel(_f,  a=lt.bool_["n"], b=lt.bool_["n"])
    a = np.array([False, False, True, True])
    b = np.array([False, True, False, True])
    got = run_both(k, a, b)
    want = (a & b, a | b, a ^ b, ~a, a << b, a & 3, np.bitwise_count(a))
    for g, w in zip(got, want):
        assert_same(g, w)


def _float_and(x):
    return x & 1


def _float_shift(x):
    return x << 2


def _float_invert(x):
    return ~x


def _float_xor(x):
    return np.bitwise_xor(x, x)


@pytest.mark.parametrize("fn", [_float_and, _float_shift, _float_invert, _float_xor],
                         ids=lambda f: f.__name__)
def test_bit_operations_on_floats_are_a_compile_error(fn: Callable[..., Any]) -> None:
    k = _kernel(fn, x=lt.f64["n"])
    with pytest.raises(lt.CompileError, match=r"integer.*test_dtypes.py:\d+"):
        k.interpret(np.zeros(2))


# --------------------------------------------------------------------------- conversions
@lru_cache(maxsize=None)
def _convert_kernel(d: T.DType) -> lt.Kernel:
    assert [t.name for t in DTYPES] == ["bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32",
                                        "u64", "f16", "f32", "f64"]

    def _f(x):
        return (x.astype(lt.bool_), x.astype(lt.i8), x.astype(lt.i16), x.astype(lt.i32),
                x.astype(lt.i64), x.astype(lt.u8), x.astype(lt.u16), x.astype(lt.u32),
                x.astype(lt.u64), x.astype(lt.f16), x.astype(lt.f32), x.astype(lt.f64))
    return _kernel(_f, x=SPEC[d]["n"])


def _values(d: T.DType) -> Any:
    if d.is_bool:
        return hnp.arrays(d.np, 10)
    if d.is_int:
        return _ints(d, 10)
    specials = [0.0, -0.0, 0.5, -0.5, 255.5, 256.0, -129.0, 65535.9, 2.0**31, -2.0**31,
                2.0**63, 2.0**64, -1e30, 1e30, float("nan"), float("inf"), float("-inf")]
    with np.errstate(over="ignore"):  # drop the specials that overflow this float type
        specials = [v for v in specials if np.isfinite(np.asarray(v, d.np)) or not np.isfinite(v)]
    return hnp.arrays(d.np, 10, elements=st.one_of(
        st.sampled_from(specials), st.floats(width=d.bits, allow_nan=True)))


@pytest.mark.parametrize("d", DTYPES, ids=str)
@settings(max_examples=12, deadline=None)
@given(data=st.data())
def test_astype_between_every_pair(d: T.DType, data: Any) -> None:
    x = data.draw(_values(d))
    got = run_both(_convert_kernel(d), x, rtol=0)
    for t, g in zip(DTYPES, got):
        if d.is_float and t.is_int:
            # saturating, NaN -> 0 (NumPy leaves out-of-range casts undefined): check the
            # in-range values against NumPy and the rest against the documented rule
            info = np.iinfo(t.np)
            xv = x.astype(np.float64)
            inside = np.isfinite(xv) & (xv > float(info.min) - 1) & (xv < float(info.max) + 1)
            np.testing.assert_array_equal(g[inside], _np(x[inside], fn=lambda v: v.astype(t.np)))
            sat = np.where(np.isnan(xv), 0, np.where(xv < 0, info.min, info.max))
            np.testing.assert_array_equal(g[~inside], sat[~inside].astype(t.np))
        else:
            assert_same(g, _np(x, fn=lambda v: v.astype(t.np)), rtol=0)


# --------------------------------------------------------------------------- reductions
@lru_cache(maxsize=None)
def _reduce_kernel(d: T.DType) -> lt.Kernel:
    def _f(x):
        return (x.sum(), x.sum(axis=0), x.sum(axis=1), x.max(), x.min(axis=0), x.argmax(),
                x.argmin(axis=1), x.mean())
    return _kernel(_f,  x=SPEC[d]["n", "m"])


@pytest.mark.parametrize("d", INTS + [T.f16], ids=str)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_reductions_match_numpy(d: T.DType, data: Any) -> None:
    if d.is_int:
        x = data.draw(hnp.arrays(d.np, (3, 5)))
    else:
        x = data.draw(hnp.arrays(d.np, (3, 5), elements=st.floats(-100, 100, width=16)))
    got = _reduce_kernel(d)(x)
    want = (x.sum(), x.sum(axis=0), x.sum(axis=1), x.max(), x.min(axis=0), x.argmax(),
            x.argmin(axis=1), x.mean())
    ref = _reduce_kernel(d).interpret(x)
    for k, (g, r, w) in enumerate(zip(got, ref, want)):
        # f16 sums and means: NumPy and lattice round differently on the way (NumPy's
        # pairwise blocks vs one f32 accumulator): a few f16 ulps of the magnitude summed
        # the integer mean is an f64 sum taken in another order: its error bound is
        # (n-1) * 2**-53 * sum|x| for the sum, so about 2**-53 * sum|x| for the mean
        tol = (dict(rtol=0, atol=0) if k in (3, 4, 5, 6) or d.is_int and k < 7 else
               dict(rtol=0, atol=2.0**-50 * float(np.abs(x.astype(np.float64)).sum()))
               if d.is_int else
               dict(rtol=0, atol=float(np.abs(x).astype(np.float64).sum() * 2.0**-9 + 1e-3)))
        assert_same(g, w, **tol)
        assert_same(g, r, **tol)


def test_sum_of_small_integers_accumulates_in_64_bits() -> None:
    for d, wide in [(T.u8, np.uint64), (T.i8, np.int64), (T.u32, np.uint64), (T.i16, np.int64)]:
        def _f(x):
            return x.sum()
        k = _kernel(_f, x=SPEC[d]["n"])
        x = np.full(1000, np.iinfo(d.np).max, d.np)
        got = run_both(k, x)
        assert got.dtype == wide and int(got) == 1000 * int(np.iinfo(d.np).max)


# --------------------------------------------------------------------------- f16
@lru_cache(maxsize=None)
def _f16_kernel() -> lt.Kernel:
    def _f(x, y):
        return (x + y, x - y, x * y, x / y, (x * y + x) * y, lt.sqrt(x), lt.maximum(x, y), -x,
                abs(y), x < y, x * 0.1, x + 1)
    return _kernel(_f,  x=lt.f16["n"], y=lt.f16["n"])


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_f16_arithmetic_rounds_per_op_like_numpy(data: Any) -> None:
    x = data.draw(hnp.arrays(np.float16, 16, elements=st.floats(0, 1000, width=16)))
    y = data.draw(hnp.arrays(np.float16, 16, elements=st.floats(-1000, 1000, width=16)))
    got = run_both(_f16_kernel(), x, y, rtol=0)
    want = _np(x, y, fn=lambda x, y: (x + y, x - y, x * y, x / y, (x * y + x) * y, np.sqrt(x),
                                      np.maximum(x, y), -x, np.abs(y), x < y, x * 0.1, x + 1))
    for g, w in zip(got, want):  # add/sub/mul/div/sqrt in f32 then rounded are exact
        assert_same(g, w, rtol=0)


def test_f16_round_trips_and_transcendentals() -> None:
    x = np.linspace(-4, 4, 33).astype(np.float16)
    def _f(x):
        return (x.copy(), lt.exp(x), lt.tanh(x), x.astype(lt.f64), x[3])
    k = _kernel(_f,  x=lt.f16["n"])
    got = run_both(k, x, rtol=1e-3)
    assert_same(got[0], x, rtol=0)
    assert_same(got[3], x.astype(np.float64), rtol=0)
    assert got[4] == x[3] and got[4].dtype == np.float16
    np.testing.assert_allclose(got[1].astype(np.float64), np.exp(x), rtol=2**-10)
    np.testing.assert_allclose(got[2].astype(np.float64), np.tanh(x), rtol=2**-10, atol=2**-14)


def test_unary_math_of_small_ints_uses_numpys_float() -> None:
    for d in (T.i8, T.u8, T.i16, T.u16, T.u32):
        def _f(x):
            return lt.sqrt(x)
        k = _kernel(_f, x=SPEC[d]["n"])
        x = np.arange(5).astype(d.np)
        assert_same(run_both(k, x), np.sqrt(x), rtol=0)


# --------------------------------------------------------------------------- dispatcher
def test_scalars_and_results_of_every_dtype_round_trip() -> None:
    for d in DTYPES:
        def _f(x, s):
            return (x, s, x[0])
        k = _kernel(_f, x=SPEC[d]["n"], s=SPEC[d])
        x = np.array([np.iinfo(d.np).max if d.is_int else 1.5, 0], d.np)
        s = d.np.type(np.iinfo(d.np).max if d.is_int else (True if d.is_bool else -2.5))
        got = k(x, s)
        assert_same(got, (x, np.asarray(s), np.asarray(x[0])))


def test_python_int_scalar_for_u64_beyond_i64() -> None:
    def _f(s):
        return s >> 60
    k = _kernel(_f, s=lt.u64)
    assert_same(k(2**64 - 1), np.uint64(15))
    with pytest.raises(ValueError, match="does not fit u64"):
        k(-1)


def test_wrong_dtype_argument_names_the_argument() -> None:
    def _f(x):
        return x + 1
    k = _kernel(_f, x=lt.u16["n"])
    with pytest.raises(TypeError, match=r"argument 'x'.*uint16.*got int16"):
        k(np.zeros(3, np.int16))


def test_numpy_dtypes_are_accepted_as_lattice_dtypes() -> None:
    def _f(x):
        return (lt.zeros(3, dtype=np.uint8), x.astype(np.int16), lt.zeros(2, dtype=lt.f16))
    k = _kernel(_f, x=lt.u8["n"])
    got = run_both(k, np.array([200, 3], np.uint8))
    assert_same(got, (np.zeros(3, np.uint8), np.array([200, 3], np.int16),
                      np.zeros(2, np.float16)))


def test_indexing_and_range_with_small_integers() -> None:
    def f(x, idx, n):
        acc = x[idx[0]] * 0
        for i in range(n):
            acc = acc + x[idx[i]]
        return acc
    for d in (T.u8, T.i8, T.u16, T.i16, T.u32, T.u64):
        k = _kernel(f, x=lt.f64["m"], idx=SPEC[d]["k"], n=SPEC[d])
        x = np.arange(10.0) ** 2
        idx = np.array([9, 0, 3, 3], d.np)
        got = run_both(k, x, idx, d.np.type(4))
        assert got == x[idx].sum()


# --------------------------------------------------------------------------- products, prange
def _products(a, b, v):
    return a @ b, a @ v, (a @ v).argmax(), (a @ v).max()


@pytest.mark.parametrize("d", [T.u8, T.i8, T.u32, T.f16], ids=str)
def test_matrix_products(d: T.DType) -> None:
    rng = np.random.default_rng(3)
    if d.is_int:
        a, b, v = (rng.integers(0, int(np.iinfo(d.np).max), s).astype(d.np)
                   for s in ((40, 70), (70, 9), (70,)))
    else:
        a, b, v = (rng.random(s).astype(d.np) for s in ((40, 70), (70, 9), (70,)))
    k = _kernel(_products, a=SPEC[d]["n", "k"], b=SPEC[d]["k", "m"], v=SPEC[d]["k"])
    got = run_both(k, a, b, v, rtol=2**-10)
    # NumPy's f16 product accumulates in f32 and rounds once, as lattice does
    want = (a @ b, a @ v, np.argmax(a @ v), np.max(a @ v))
    for g, w in zip(got, want):
        assert_same(g, w, rtol=2**-10)


def _prange_extremes(x):
    m = x[0]
    mn = x[0]
    s = lt.u64(0)
    for i in lt.prange(x.shape[0]):
        m = lt.maximum(m, x[i])
        mn = lt.minimum(mn, x[i])
        s = s + x[i]
    return m, mn, s


def test_parallel_reductions_of_unsigned_values() -> None:
    fn = _prange_extremes
    fn.__annotations__ = {"x": lt.u8["n"]}
    k = lt.kernel(fn, parallel=True)
    x = np.random.default_rng(4).integers(100, 256, 3000).astype(np.uint8)
    got = run_both(k, x)
    assert_same(got, (x.max(), x.min(), x.sum()))


def _identities(x):
    return x * 1, x + 0, x - x, x // 1, x % 1, x * 0, (x - 0) * 1 + x


@pytest.mark.parametrize("d", [T.u8, T.u64, T.i16], ids=str)
def test_integer_simplifications_keep_values(d: T.DType) -> None:
    k = _kernel(_identities, x=SPEC[d])  # (the rules giving a literal 0 fire on scalars)
    for v in (0, 1, np.iinfo(d.np).max, np.iinfo(d.np).max // 2):
        x = d.np.type(v)
        assert_same(run_both(k, x), tuple(np.asarray(r) for r in _np(x, fn=_identities)))
    after = k.inspect_ir(x).split("# after passes")[1]
    for name in ("sub", "mul", "floordiv", "mod"):  # x - x -> 0, x * 1 -> x, ... fired
        assert f"= {name} " not in after, (name, after)


def _add3(x, y, s):
    return x + y + s


def test_lists_of_python_ints_convert_by_value() -> None:
    k = _kernel(_add3, x=lt.u8["n"], y=lt.i8["n"], s=lt.u8)
    assert_same(k([1, 2], [3, -4], 5), np.array([1, 2], np.uint8) + np.array([3, -4], np.int8)
                + np.uint8(5))
    with pytest.raises(ValueError, match=r"argument 'x'.*1 to 300 do not fit uint8"):
        k([1, 300], [3, 4], 5)
    with pytest.raises(ValueError, match=r"argument 'y'.*-200 to 4 do not fit int8"):
        k([1, 2], [-200, 4], 5)
    with pytest.raises(ValueError, match=r"argument 's'.*-1 does not fit u8"):
        k([1, 2], [3, 4], -1)
    with pytest.raises(TypeError, match=r"argument 'x'.*expected uint8 values, got float64"):
        k([1.5, 2], [3, 4], 1)


def _mean(x):
    return x.mean(), x.mean(axis=0)


def test_f16_mean_of_more_elements_than_f16_can_count() -> None:
    k = _kernel(_mean, x=lt.f16["n", "m"])
    x = np.full((70_000, 2), 0.5, np.float16)
    got = k(x)
    assert_same(got, (x.mean(), x.mean(axis=0)), rtol=0)


def _lt_bitwise(x, y):
    return (lt.bitwise_and(x, y), lt.bitwise_or(x, y), lt.bitwise_xor(x, y), lt.invert(x),
            lt.left_shift(x, 3), lt.right_shift(x, y), lt.bitwise_count(y))


def test_the_lt_names_of_the_bit_operations() -> None:
    k = _kernel(_lt_bitwise, x=lt.i16["n"], y=lt.u8["n"])
    x = np.array([-32768, -5, 0, 77, 32767], np.int16)
    y = np.array([0, 3, 255, 15, 16], np.uint8)
    want = (np.bitwise_and(x, y), np.bitwise_or(x, y), np.bitwise_xor(x, y), np.invert(x),
            np.left_shift(x, 3), np.right_shift(x, y), np.bitwise_count(y))
    assert_same(run_both(k, x, y), want)


def _mixed_ops(x, y):
    return (x + y, x - y, x * y, x // y, x % y, x < y, x == y, lt.maximum(x, y), x / y)


def _mixed_bits(x, y):
    return x & y, x | y, x ^ y, x >> y


@lru_cache(maxsize=None)
def _mixed_kernel(a: T.DType, b: T.DType, bits: bool) -> lt.Kernel:
    return _kernel(_mixed_bits if bits else _mixed_ops, x=SPEC[a]["n"], y=SPEC[b]["n"])


def _arr_of(d: T.DType) -> Any:
    if d.is_int:
        return _ints(d, 8)
    if d.is_bool:
        return hnp.arrays(d.np, 8)
    return hnp.arrays(d.np, 8, elements=st.floats(-1e4, 1e4, width=d.bits))


@settings(max_examples=20, deadline=None)
@given(data=st.data(), a=st.sampled_from([d for d in DTYPES if not d.is_bool]),
       b=st.sampled_from([d for d in DTYPES if not d.is_bool]))
def test_mixed_dtype_arithmetic_matches_numpy(data: Any, a: T.DType, b: T.DType) -> None:
    """Mixed pairs exercise the converts promotion inserts (zext vs sext, uitofp, ...)."""
    x, y = data.draw(_arr_of(a)), data.draw(_arr_of(b))
    got = run_both(_mixed_kernel(a, b, False), x, y, rtol=0)

    def ref(x, y):
        return (x + y, x - y, x * y, x // y, x % y, x < y, x == y, np.maximum(x, y), x / y)
    want = _np(x, y, fn=ref)
    if T.promote(a, b).is_int:  # (i8 & u64 is f64: refused, as NumPy refuses it)
        got += run_both(_mixed_kernel(a, b, True), x, y)
        want += _np(x, y, fn=lambda x, y: (x & y, x | y, x ^ y, x >> y))
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        if k in (3, 4) and w.dtype.kind == "f":
            # float // and % by 0 follow NumPy's npy_divmod; compare where defined
            ok = np.asarray(y != 0) & np.isfinite(w)
            g, w = np.where(ok, g, 0).astype(w.dtype), np.where(ok, w, 0).astype(w.dtype)
        assert_same(g, w, rtol=2**-10 if w.dtype == np.float16 else 1e-15)


def test_bit_operations_of_u64_with_a_signed_type_are_refused() -> None:
    k = _kernel(_mixed_bits, x=lt.i8["n"], y=lt.u64["n"])
    with pytest.raises(lt.CompileError, match=r"`&` takes integer.*got f64"):  # NumPy: TypeError
        k.interpret(np.zeros(2, np.int8), np.zeros(2, np.uint64))


def _sums(x, t):
    return x.sum(axis=0), t.sum(axis=1), x.sum()


def test_f16_sums_round_where_numpys_do() -> None:
    """Over the innermost axis NumPy (and lattice) accumulate in f32; over an outer axis the
    running sums are f16, so 0.1 added 5000 times stalls at 256."""
    k = _kernel(_sums, x=lt.f16["n", "m"], t=lt.f16["m", "n"])
    x = np.full((5000, 2), 0.1, np.float16)
    got = k(x, x.T.copy())
    assert_same(got, (x.sum(axis=0), x.T.copy().sum(axis=1), x.sum()), rtol=0)
    assert got[0][0] == 256 and got[1][0] == 500


def _const_converts(x):
    return (x + lt.astype(-1.5, lt.u8), x + lt.astype(300.7, lt.u8), x + lt.astype(7.9, lt.u8),
            lt.astype(float("nan"), lt.u8) + x, lt.astype(3e9, lt.i32) + x.astype(lt.i32))


def _traced_converts(f):
    return f.astype(lt.u8)


def test_a_float_constant_converts_like_a_traced_float() -> None:
    """lt.astype of a Python float folds with convert's rule (truncate, saturate, NaN -> 0)."""
    k = _kernel(_const_converts, x=lt.u8["n"])
    x = np.array([0, 1], np.uint8)
    got = run_both(k, x)
    c = run_both(_kernel(_traced_converts, f=lt.f64["n"]), np.array([-1.5, 300.7, 7.9, np.nan]))
    assert_same(c, np.array([0, 255, 7, 0], np.uint8))
    want = (x + c[0], x + c[1], x + c[2], c[3] + x, np.int32(2**31 - 1) + x.astype(np.int32))
    assert_same(got, want)


# --------------------------------------------------------------------------- bool matmul
@lt.kernel
def bool_products(a: lt.bool_["n", "d"], b: lt.bool_["d", "m"], v: lt.bool_["d"],
                  k: lt.i32["d"]):
    return a @ b, a @ v, v @ b, v @ v, np.dot(v, v), np.matmul(a, b), v @ k


@settings(max_examples=15, deadline=None)
@given(n=st.integers(0, 4), d=st.integers(0, 5), m=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_bool_matmul_is_bool_like_numpy(n, d, m, seed):
    # NumPy: the OR of the ANDs, of dtype bool; bool @ int promotes as usual
    rng = np.random.default_rng(seed)
    a, b, v = rng.random((n, d)) < 0.4, rng.random((d, m)) < 0.4, rng.random(d) < 0.5
    k = rng.integers(-3, 4, d).astype(np.int32)
    want = (a @ b, a @ v, v @ b, v @ v, np.dot(v, v), np.matmul(a, b), v @ k)
    assert_same(run_both(bool_products, a, b, v, k), tuple(np.asarray(w) for w in want))
