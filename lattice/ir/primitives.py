"""Every lattice primitive, with its rules side by side.

For each primitive this module registers, in dicts keyed by the :class:`Primitive`:

* ``shape_rules[p](*in_types, **params) -> [out types]`` (in :mod:`lattice.ir.core`): raises
  :class:`ShapeError` on ill-typed input, so a built equation is always well typed;
* ``impls[p](*arrays, **params) -> tuple of arrays`` (in :mod:`lattice.ir.interpret`): the NumPy
  reference semantics.  The interpreter is the living definition of every op; the compiled code
  must agree with it.

Semantics worth knowing (the compiled code implements exactly these):

* Elementwise ops broadcast implicitly (statically resolved, see :mod:`lattice.ir.types`) and take
  operands of one dtype; the frontend inserts ``convert`` for promotion.
* Dtypes: bool, signed ``i8 i16 i32 i64``, unsigned ``u8 u16 u32 u64``, ``f16 f32 f64``.
  Integer arithmetic wraps (two's complement; unsigned modulo 2**bits, so ``neg`` of an
  unsigned value is ``2**bits - x`` and ``abs`` is the identity); ``x // 0`` and ``x % 0`` are 0
  for integers; unsigned ``//``/``%`` are plain unsigned division.  ``f16`` values are
  computed in f32 and every f16 result is rounded to f16 (NumPy does the same for its f16
  loops), so a chain of f16 ops rounds after each op.
* ``convert`` from float to integer saturates (to ``[0, 2**bits-1]`` for unsigned), NaN gives
  0; between integers it wraps; to float it rounds to nearest (overflowing to inf in f16).
* Bit operations (``BITWISE``: ``bitand bitor bitxor invert shl shr popcount``) take integer
  operands of one dtype and follow NumPy's ufuncs: a shift count outside ``[0, bits)`` gives
  0, except ``shr`` of a negative signed value, which gives -1; ``shr`` is arithmetic for
  signed and logical for unsigned dtypes; ``popcount`` (``np.bitwise_count``) counts the ones
  of ``|x|`` and is u8.  The frontend maps ``&``/``|``/``^``/``~`` on bools to the logical
  ops ``and``/``or``/``ne``/``not``.
* ``maximum``/``minimum``/``reduce_max``/``reduce_min`` propagate NaN; ``argmax``/``argmin``
  return the first maximal (or first NaN) position, as NumPy does.
* ``reduce_sum`` of bool or of an integer narrower than 64 bits accumulates in i64 (u64 for
  unsigned), NumPy's default on 64-bit platforms.  An f16 sum whose reduced axes include the
  innermost one accumulates in f32 and rounds once; over outer axes only, the running sums
  are f16 values, rounded at each step (as NumPy does for C-ordered arrays).
* Reductions with no elements: sum gives 0, prod 1; max/min/argmax/argmin raise ValueError.
  ``reduce_prod`` widens like ``reduce_sum`` (NumPy's ``np.prod`` of small integers is i64).
* Indexing: an integer index may be negative (counts from the end).  A slice with static bounds
  has a symbolic size computed as if it lies inside the array (``x[1:]`` has size ``n-1``); at run
  time a slice that would have to be clipped raises IndexError instead of silently changing the
  size.  A slice with traced bounds is clipped like NumPy's and has a fresh size, unless
  ``index``'s ``out_dims`` give it a symbolic one (the frontend does for bounds that are sums of
  sizes: ``x[1:I + 3]`` has size ``I + 2``); then it must lie inside the array, else IndexError.
* ``empty`` gives uninitialised memory; the interpreter fills floats with NaN so that reading it
  shows up in differential tests.
* Index arrays (``Arr`` entries: gathers and scatters) follow NumPy's advanced indexing; with
  them ``add_at`` adds every repeat of an index (``np.add.at``) and ``set`` keeps the last.
  ``nonzero`` lists the positions of non-zero elements (a run-time, fresh size).
* ``add_at(x, *idx, v)`` is ``x`` with ``v`` added into the region ``x[idx]`` (the transpose of
  ``index``); ``broadcast_in_dim`` is explicit broadcasting; ``custom_vjp_call`` evaluates its
  ``fun`` (its ``fwd``/``bwd`` matter only to AD); ``custom_lin`` exists only inside AD.

Derivative rules live in :mod:`lattice.ir.ad.jvp` and :mod:`lattice.ir.ad.transpose`, in the
order of this module.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from .core import Eqn, Func, Primitive, Var, shape_rules
from . import special
from .interpret import eval_func, impls
from .types import complex_of
from .types import (Dim, DType, ShapeError, TensorType, bool_, broadcast_shapes, f64, i64,
                    f16, scalar, u8, u64)

__all__ = [
    "impls", "ELEMENTWISE", "UNARY", "BINARY", "COMPARE", "BITWISE", "REDUCTIONS", "SCANS", "Int", "Slice", "Arr",
    "has_arrays", "advanced_layout",
    "index_out_dims", "slice_len_static", "slice_len_clipped", "IndexSpec",
]

ELEMENTWISE: set[Primitive] = set()
UNARY: dict[str, Primitive] = {}
BINARY: dict[str, Primitive] = {}
COMPARE: dict[str, Primitive] = {}
BITWISE: dict[str, Primitive] = {}  # integer-only bit operations (not differentiable)
REDUCTIONS: dict[str, Primitive] = {}


def _register(name: str, rule: Callable[..., Sequence[TensorType]],
              impl: Callable[..., Any]) -> Primitive:
    p = Primitive(name)
    shape_rules[p] = rule
    impls[p] = impl
    return p


def _arr(x: Any, dtype: DType) -> np.ndarray:
    return np.asarray(x, dtype=dtype.np)


# --------------------------------------------------------------------------- elementwise
_FLOAT = "f"
_NUM = "iuf"
_ANY = "biuf"
_BOOL = "b"
_INT = "iu"


def _elementwise_rule(name: str, kinds: str, out_dtype: Optional[DType] = None):
    def rule(*ts: TensorType) -> list[TensorType]:
        d = ts[0].dtype
        for t in ts[1:]:
            if t.dtype is not d:
                raise ShapeError(f"{name}: operand dtypes differ ({d} vs {t.dtype})")
        if d.kind not in kinds:
            raise ShapeError(f"{name} does not accept {d} operands")
        return [TensorType(out_dtype or d, broadcast_shapes(*(t.shape for t in ts)))]
    return rule


def _ew(name: str, kinds: str, fn: Callable[..., np.ndarray], table: dict[str, Primitive],
        out_dtype: Optional[DType] = None) -> Primitive:
    def impl(*xs: np.ndarray) -> tuple[np.ndarray]:
        dt = out_dtype.np if out_dtype else np.asarray(xs[0]).dtype
        with np.errstate(all="ignore"):  # (also the cast: an f64 reference overflowing f32)
            return (np.asarray(fn(*xs), dtype=dt),)
    p = _register(name, _elementwise_rule(name, kinds, out_dtype), impl)
    ELEMENTWISE.add(p)
    table[name] = p
    return p


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # split by sign so exp never overflows: 1/(1+e^-x) for x>=0, e^x/(1+e^x) for x<0
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _softplus(x: np.ndarray) -> np.ndarray:
    # log(1+e^x) = max(x,0) + log1p(e^-|x|): exact for large |x|, no overflow
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _int_safe(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], a: np.ndarray,
              b: np.ndarray) -> np.ndarray:
    """``fn(a, b)`` of a division-like ufunc, with 0 where an integer ``b`` is 0."""
    if a.dtype.kind == "f":
        return fn(a, b)
    safe = np.where(b == 0, 1, b)
    return np.where(b == 0, 0, fn(a, safe))


def _int_floordiv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _int_safe(np.floor_divide, a, b)


def _int_mod(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _int_safe(np.mod, a, b)


def _gamma1(x: float) -> float:
    try:
        return math.gamma(x)
    except OverflowError:
        return math.inf
    except ValueError:  # C's tgamma: +-inf at +-0, NaN at the negative integers and -inf
        return math.copysign(math.inf, x) if x == 0 else math.nan


def _lgamma1(x: float) -> float:
    try:
        return math.lgamma(x)
    except (ValueError, OverflowError):  # a pole (0, -1, -2, ...) or overflow: +inf, as C's
        return math.inf


# neg, add and sub also take complex operands (linear, so autodiff's cotangents of complex
# values can be negated and summed); every other complex op is built by the frontend from the
# real ops on the parts (``complex``/``real``/``imag`` below)
neg_p = _ew("neg", _NUM + "c", np.negative, UNARY)
abs_p = _ew("abs", _NUM, np.abs, UNARY)
exp_p = _ew("exp", _FLOAT, np.exp, UNARY)
log_p = _ew("log", _FLOAT, np.log, UNARY)
log1p_p = _ew("log1p", _FLOAT, np.log1p, UNARY)
expm1_p = _ew("expm1", _FLOAT, np.expm1, UNARY)
sqrt_p = _ew("sqrt", _FLOAT, np.sqrt, UNARY)
tanh_p = _ew("tanh", _FLOAT, np.tanh, UNARY)
sin_p = _ew("sin", _FLOAT, np.sin, UNARY)
cos_p = _ew("cos", _FLOAT, np.cos, UNARY)
# the error function and its complement (NumPy has none: the reference is Python's math, in
# double precision, rounded to the input's dtype)
erf_p = _ew("erf", _FLOAT, np.frompyfunc(math.erf, 1, 1), UNARY)
erfc_p = _ew("erfc", _FLOAT, np.frompyfunc(math.erfc, 1, 1), UNARY)
floor_p = _ew("floor", _FLOAT, np.floor, UNARY)
sigmoid_p = _ew("sigmoid", _FLOAT, _sigmoid, UNARY)
softplus_p = _ew("softplus", _FLOAT, _softplus, UNARY)
not_p = _ew("not", _BOOL, np.logical_not, UNARY)

add_p = _ew("add", _NUM + "c", np.add, BINARY)
sub_p = _ew("sub", _NUM + "c", np.subtract, BINARY)
mul_p = _ew("mul", _NUM, np.multiply, BINARY)
div_p = _ew("div", _FLOAT, np.true_divide, BINARY)
floordiv_p = _ew("floordiv", _NUM, _int_floordiv, BINARY)
mod_p = _ew("mod", _NUM, _int_mod, BINARY)
# integers: exact and wrapping, as NumPy; a negative exponent is NumPy's ValueError
pow_p = _ew("pow", _NUM, np.power, BINARY)
max_p = _ew("maximum", _NUM, np.maximum, BINARY)
min_p = _ew("minimum", _NUM, np.minimum, BINARY)
logaddexp_p = _ew("logaddexp", _FLOAT, np.logaddexp, BINARY)
and_p = _ew("and", _BOOL, np.logical_and, BINARY)
or_p = _ew("or", _BOOL, np.logical_or, BINARY)

# bit operations on integers, NumPy's ufuncs (which define every shift count: a count outside
# [0, bits) gives 0, or -1 for ``>>`` of a negative signed value); bitwise_count counts the
# ones of |x| and is u8 for every input, as in NumPy
bitand_p = _ew("bitand", _INT, np.bitwise_and, BITWISE)
bitor_p = _ew("bitor", _INT, np.bitwise_or, BITWISE)
bitxor_p = _ew("bitxor", _INT, np.bitwise_xor, BITWISE)
invert_p = _ew("invert", _INT, np.invert, BITWISE)
shl_p = _ew("shl", _INT, np.left_shift, BITWISE)
shr_p = _ew("shr", _INT, np.right_shift, BITWISE)
popcount_p = _ew("popcount", _INT, np.bitwise_count, BITWISE, u8)

# --------------------------------------------------------------------------- the wider NumPy math
# Transcendental functions take floats only (the frontend converts integers to f64, as NumPy
# does); ``sign``, ``fmod``, ``fmax``, ``fmin`` keep integer dtypes.
tan_p = _ew("tan", _FLOAT, np.tan, UNARY)
arcsin_p = _ew("arcsin", _FLOAT, np.arcsin, UNARY)
arccos_p = _ew("arccos", _FLOAT, np.arccos, UNARY)
arctan_p = _ew("arctan", _FLOAT, np.arctan, UNARY)
sinh_p = _ew("sinh", _FLOAT, np.sinh, UNARY)
cosh_p = _ew("cosh", _FLOAT, np.cosh, UNARY)
arcsinh_p = _ew("arcsinh", _FLOAT, np.arcsinh, UNARY)
arccosh_p = _ew("arccosh", _FLOAT, np.arccosh, UNARY)
arctanh_p = _ew("arctanh", _FLOAT, np.arctanh, UNARY)
exp2_p = _ew("exp2", _FLOAT, np.exp2, UNARY)
log2_p = _ew("log2", _FLOAT, np.log2, UNARY)
log10_p = _ew("log10", _FLOAT, np.log10, UNARY)
cbrt_p = _ew("cbrt", _FLOAT, np.cbrt, UNARY)
trunc_p = _ew("trunc", _FLOAT, np.trunc, UNARY)
ceil_p = _ew("ceil", _FLOAT, np.ceil, UNARY)
rint_p = _ew("rint", _FLOAT, np.rint, UNARY)  # round half to even, as np.rint / np.round
sign_p = _ew("sign", _NUM, np.sign, UNARY)  # -1, 0 (also for -0.0), 1; NaN stays NaN
signbit_p = _ew("signbit", _FLOAT, np.signbit, UNARY, bool_)
# log|Gamma(x)| (C99's lgamma: +inf at the poles 0, -1, -2, ... and at -inf); NumPy has none:
# the reference is Python's math.lgamma, in double precision, rounded to the input's dtype
# Gamma itself (C99's tgamma: +-inf at +-0, NaN at the negative integers and -inf; the
# reference is Python's math.gamma, within ~1e-15 of libm's)
gamma_p = _ew("gamma", _FLOAT, np.frompyfunc(lambda v: _gamma1(v), 1, 1), UNARY)
lgamma_p = _ew("lgamma", _FLOAT, np.frompyfunc(lambda v: _lgamma1(v), 1, 1), UNARY)
# psi = Gamma'/Gamma and its derivative psi' (polygamma(1, x)); the reference is the algorithm
# the compiled code uses (lattice.ir.special), evaluated with NumPy in double precision
digamma_p = _ew("digamma", _FLOAT, lambda x: special.digamma(x), UNARY)
trigamma_p = _ew("trigamma", _FLOAT, lambda x: special.trigamma(x), UNARY)

arctan2_p = _ew("arctan2", _FLOAT, np.arctan2, BINARY)
hypot_p = _ew("hypot", _FLOAT, np.hypot, BINARY)
copysign_p = _ew("copysign", _FLOAT, np.copysign, BINARY)
logaddexp2_p = _ew("logaddexp2", _FLOAT, np.logaddexp2, BINARY)
fmod_p = _ew("fmod", _NUM, lambda a, b: _int_safe(np.fmod, a, b), BINARY)  # C's fmod sign
fmax_p = _ew("fmax", _NUM, np.fmax, BINARY)  # NaN-ignoring: the other operand wins
fmin_p = _ew("fmin", _NUM, np.fmin, BINARY)

lt_p = _ew("lt", _ANY, np.less, COMPARE, bool_)
le_p = _ew("le", _ANY, np.less_equal, COMPARE, bool_)
gt_p = _ew("gt", _ANY, np.greater, COMPARE, bool_)
ge_p = _ew("ge", _ANY, np.greater_equal, COMPARE, bool_)
eq_p = _ew("eq", _ANY, np.equal, COMPARE, bool_)
ne_p = _ew("ne", _ANY, np.not_equal, COMPARE, bool_)


def _select_rule(p: TensorType, a: TensorType, b: TensorType) -> list[TensorType]:
    if not p.dtype.is_bool:
        raise ShapeError(f"select: the condition must be bool, got {p.dtype}")
    if a.dtype is not b.dtype:
        raise ShapeError(f"select: branch dtypes differ ({a.dtype} vs {b.dtype})")
    return [TensorType(a.dtype, broadcast_shapes(p.shape, a.shape, b.shape))]


select_p = _register("select", _select_rule,
                     lambda p, a, b: (np.asarray(np.where(p, a, b), dtype=np.asarray(a).dtype),))
ELEMENTWISE.add(select_p)


def _convert_rule(x: TensorType, *, dtype: DType) -> list[TensorType]:
    return [TensorType(dtype, x.shape)]


def _convert_impl(x: np.ndarray, *, dtype: DType) -> tuple[np.ndarray]:
    x = np.asarray(x)
    if x.dtype.kind == "c" and not dtype.is_complex:
        # NumPy's astype: to bool, "either part nonzero"; otherwise the real part, converted
        # (to an integer with the float rule below: saturating, NaN -> 0)
        if dtype.is_bool:
            return (np.asarray(x != 0),)
        x = np.ascontiguousarray(x.real)
    if x.dtype.kind == "f" and dtype.is_int:
        # saturating, NaN -> 0 (what llvm.fptosi.sat / fptoui.sat do); clip in float first
        # because float(int max) rounds up past the integer range
        info = np.iinfo(dtype.np)
        edge = 2.0 ** (dtype.bits - 1 if dtype.is_signed else dtype.bits)
        lo = -edge if dtype.is_signed else 0.0
        t = np.trunc(np.where(np.isnan(x), 0.0, x.astype(np.float64)))
        big = t >= edge
        res = np.asarray(np.where(big, 0.0, np.clip(t, lo, edge)).astype(dtype.np))
        res[big] = info.max
        return (res,)
    with np.errstate(all="ignore"):
        return (x.astype(dtype.np),)


convert_p = _register("convert", _convert_rule, _convert_impl)
ELEMENTWISE.add(convert_p)


# --------------------------------------------------------------------------- complex parts
# A complex value is its two float parts: ``complex(re, im)`` builds one (c64 from f32 parts,
# c128 from f64 parts), ``real``/``imag`` read them back.  The three are linear; the frontend
# writes complex arithmetic, abs, exp, log, sqrt, ... over them and the real ops, so
# interpretation, lowering and autodiff of complex code reuse the real rules (convert from a
# complex dtype to a real one keeps the real part, as NumPy's astype does).
def _complex_rule(re: TensorType, im: TensorType) -> list[TensorType]:
    if re.dtype is not im.dtype or re.dtype.name not in ("f32", "f64"):
        raise ShapeError(f"complex: the parts must both be f32 or both f64, got {re.dtype} "
                         f"and {im.dtype}")
    return [TensorType(complex_of(re.dtype), broadcast_shapes(re.shape, im.shape))]


def _part_rule(name: str):
    def rule(z: TensorType) -> list[TensorType]:
        if not z.dtype.is_complex:
            raise ShapeError(f"{name} takes a complex operand, got {z.dtype}")
        return [TensorType(z.dtype.part, z.shape)]
    return rule


def _complex_impl(re: np.ndarray, im: np.ndarray) -> tuple[np.ndarray]:
    re, im = np.asarray(re), np.asarray(im)
    out = np.empty(np.broadcast_shapes(re.shape, im.shape),
                   np.complex64 if re.dtype == np.float32 else np.complex128)
    out.real, out.imag = re, im  # (re + 1j*im would turn inf*1j into a NaN real part)
    return (out,)


complex_p = _register("complex", _complex_rule, _complex_impl)
real_p = _register("real", _part_rule("real"), lambda z: (np.array(np.real(z)),))
imag_p = _register("imag", _part_rule("imag"), lambda z: (np.array(np.imag(z)),))
ELEMENTWISE.update((complex_p, real_p, imag_p))


# --------------------------------------------------------------------------- reductions
def _norm_axes(axes: tuple[int, ...], ndim: int, name: str) -> tuple[int, ...]:
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ShapeError(f"{name}: axis {a} is out of range for a rank-{ndim} array")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{name}: repeated axis in {axes}")
    return tuple(sorted(out))


def reduce_out_dtype(name: str, d: DType) -> DType:
    """sum and prod of bool and of integers narrower than 64 bits accumulate in i64 (u64 for
    unsigned) as NumPy's default; everything else keeps its dtype."""
    if name in ("sum", "prod") and (d.is_bool or (d.is_int and d.bits < 64)):
        return u64 if d.is_unsigned else i64
    return d


def _reduce(name: str) -> Primitive:
    def rule(x: TensorType, *, axes: tuple[int, ...]) -> list[TensorType]:
        ax = _norm_axes(axes, x.ndim, f"reduce_{name}")
        if ax != tuple(axes):
            raise ShapeError(f"reduce_{name}: axes must be normalised and sorted, got {axes}")
        if name != "sum" and x.dtype.is_bool:
            raise ShapeError(f"reduce_{name} does not accept bool")
        shape = tuple(d for k, d in enumerate(x.shape) if k not in ax)
        return [TensorType(reduce_out_dtype(name, x.dtype), shape)]

    def impl(x: np.ndarray, *, axes: tuple[int, ...]) -> tuple[np.ndarray]:
        x = np.asarray(x)
        out_dt = reduce_out_dtype(name, _dt(x)).np
        if name in ("sum", "prod"):
            fn = np.sum if name == "sum" else np.prod
            return (np.asarray(fn(x, axis=axes, dtype=out_dt)),)
        if any(x.shape[a] == 0 for a in axes):
            raise ValueError(f"reduce_{name} over an empty axis has no identity")
        fn = np.max if name == "max" else np.min
        return (np.asarray(fn(x, axis=axes), dtype=out_dt),)

    p = _register(f"reduce_{name}", rule, impl)
    REDUCTIONS[name] = p
    return p


def _dt(x: np.ndarray) -> DType:
    from .types import dtype_of
    return dtype_of(x.dtype)


reduce_sum_p = _reduce("sum")
reduce_max_p = _reduce("max")
reduce_min_p = _reduce("min")
reduce_prod_p = _reduce("prod")


def _arg(name: str) -> Primitive:
    def rule(x: TensorType, *, axis: Optional[int]) -> list[TensorType]:
        if x.dtype.is_bool:
            raise ShapeError(f"{name} does not accept bool")
        if axis is None:
            return [scalar(i64)]
        if not 0 <= axis < x.ndim:
            raise ShapeError(f"{name}: axis {axis} is out of range for a rank-{x.ndim} array")
        return [TensorType(i64, tuple(d for k, d in enumerate(x.shape) if k != axis))]

    def impl(x: np.ndarray, *, axis: Optional[int]) -> tuple[np.ndarray]:
        x = np.asarray(x)
        if x.size == 0 if axis is None else x.shape[axis] == 0:
            raise ValueError(f"{name} of an empty sequence")
        fn = np.argmax if name == "argmax" else np.argmin
        return (np.asarray(fn(x, axis=axis), dtype=np.int64),)

    p = _register(name, rule, impl)
    REDUCTIONS[name] = p
    return p


argmax_p = _arg("argmax")
argmin_p = _arg("argmin")


# --------------------------------------------------------------------------- scans
# Running sums and products along one axis (``np.cumsum``/``np.cumprod``), and the first-order
# linear recurrence their derivatives are made of.  ``reverse`` runs the scan from the end of
# the axis.  The output dtype is the input's (the frontend widens small integers first); bool
# is refused.  ``linrec(a, b)`` along an axis of length n is
#   forward:  h[0] = b[0],      h[k] = a[k] * h[k-1] + b[k]
#   reverse:  g[n-1] = b[n-1],  g[k] = a[k+1] * g[k+1] + b[k]
# (the reverse one reads the *next* coefficient), so that each is the other's transpose in b:
# cumprod's tangent is a forward linrec, its cotangent a reverse one.  ``cumsum`` is linrec
# with every a = 1, and its transpose the reversed cumsum.
SCANS: dict[str, Primitive] = {}


def _scan_axis_check(name: str, x: TensorType, axis: int) -> None:
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"{name}: axis {axis} is out of range for a rank-{x.ndim} array")
    if x.dtype.is_bool:
        raise ShapeError(f"{name} does not accept bool (convert to an integer first)")


def _flip_scan(fn: Callable[..., np.ndarray], x: np.ndarray, axis: int,
               reverse: bool) -> np.ndarray:
    if not reverse:
        return fn(x, axis=axis, dtype=x.dtype)
    return np.flip(fn(np.flip(x, axis), axis=axis, dtype=x.dtype), axis)


def _scan(name: str, fn: Callable[..., np.ndarray]) -> Primitive:
    def rule(x: TensorType, *, axis: int, reverse: bool) -> list[TensorType]:
        _scan_axis_check(name, x, axis)
        return [x]

    def impl(x: np.ndarray, *, axis: int, reverse: bool) -> tuple[np.ndarray]:
        return (np.asarray(_flip_scan(fn, np.asarray(x), axis, reverse)),)

    p = _register(name, rule, impl)
    SCANS[name] = p
    return p


cumsum_p = _scan("cumsum", np.cumsum)
cumprod_p = _scan("cumprod", np.cumprod)


def _linrec_rule(a: TensorType, b: TensorType, *, axis: int, reverse: bool
                 ) -> list[TensorType]:
    _scan_axis_check("linrec", b, axis)
    if a != b:
        raise ShapeError(f"linrec: the coefficients ({a}) and the inputs ({b}) must have one "
                         "type")
    return [b]


def _linrec_impl(a: np.ndarray, b: np.ndarray, *, axis: int, reverse: bool
                 ) -> tuple[np.ndarray]:
    a = np.moveaxis(np.asarray(a), axis, 0)
    h = np.moveaxis(np.array(b, copy=True), axis, 0)  # a view of the copy: filled in place
    n = h.shape[0]
    with np.errstate(all="ignore"):  # (inf * 0 is NaN, as in the compiled loop)
        if reverse:
            for k in range(n - 2, -1, -1):
                h[k] = a[k + 1] * h[k + 1] + h[k]
        else:
            for k in range(1, n):
                h[k] = a[k] * h[k - 1] + h[k]
    return (np.moveaxis(h, 0, axis),)


linrec_p = _register("linrec", _linrec_rule, _linrec_impl)
SCANS["linrec"] = linrec_p


# --------------------------------------------------------------------------- sorting
# NumPy's order: ascending, NaN after every number (-0.0 and 0.0 are equal); lattice always
# sorts stably, so equal keys keep their input order (NumPy's default argsort does not
# promise it: use kind="stable" there to compare).
def _lane_rule(name: str, x: TensorType, axis: int) -> None:
    if x.ndim == 0:
        raise ShapeError(f"{name}: needs an array, got a scalar")
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"{name}: axis {axis} is out of range for a rank-{x.ndim} array")


def _sort_rule(x: TensorType, *, axis: int) -> list[TensorType]:
    _lane_rule("sort", x, axis)
    return [x]


def _argsort_rule(x: TensorType, *, axis: int) -> list[TensorType]:
    _lane_rule("argsort", x, axis)
    return [TensorType(i64, x.shape)]


# sort(x; axis): x sorted along ``axis`` (stable, NaN last); argsort(x; axis): the i64
# positions that sort it (stable: equal keys in input order)
sort_p = _register("sort", _sort_rule,
                   lambda x, *, axis: (np.sort(np.asarray(x), axis=axis, kind="stable"),))
argsort_p = _register("argsort", _argsort_rule, lambda x, *, axis: (
    np.argsort(np.asarray(x), axis=axis, kind="stable").astype(np.int64),))


def _searchsorted_rule(a: TensorType, v: TensorType, *, side: str) -> list[TensorType]:
    if a.ndim != 1:
        raise ShapeError(f"searchsorted: the sorted array must be 1-D, got {a}")
    if a.dtype is not v.dtype:
        raise ShapeError(f"searchsorted: operand dtypes differ ({a.dtype} vs {v.dtype})")
    if side not in ("left", "right"):
        raise ShapeError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    return [TensorType(i64, v.shape)]


# searchsorted(a, v; side): per element of v, the position in the sorted (NaN last) 1-D ``a``
# where it would be inserted: before equal elements (left) or after them (right).  An
# unsorted ``a`` gives unspecified (but in-range) positions.
searchsorted_p = _register("searchsorted", _searchsorted_rule, lambda a, v, *, side: (
    np.asarray(np.searchsorted(np.asarray(a), np.asarray(v), side=side), dtype=np.int64),))


def _bincount_rule(x: TensorType, *w: TensorType, minlength: int,
                   out_dim: Optional[Dim] = None) -> list[TensorType]:
    if x.ndim != 1 or not x.dtype.is_int:
        raise ShapeError(f"bincount: takes a 1-D integer array, got {x}")
    if len(w) > 1 or (w and (w[0].dtype is not f64 or w[0].shape != x.shape)):
        raise ShapeError(f"bincount: the weights are one f64 array shaped like {x}")
    if minlength < 0:
        raise ShapeError("bincount: minlength must be non-negative")
    return [TensorType(f64 if w else i64, (out_dim or Dim.fresh("b"),))]


def _bincount_impl(x: Any, *w: Any, minlength: int,
                   out_dim: Optional[Dim] = None) -> tuple[np.ndarray]:
    x = np.asarray(x)
    if x.size and x.min() < 0:
        raise ValueError("bincount: the values must be non-negative")
    return (np.bincount(x, weights=np.asarray(w[0]) if w else None,
                        minlength=minlength).astype(np.float64 if w else np.int64),)


# bincount(x, [w]; minlength): counts (or sums of the weights) of each value 0..max(x), at
# least ``minlength`` of them: a size known only at run time (``out_dim``, when given, names
# it: a derivative's result has the primal's size)
bincount_p = _register("bincount", _bincount_rule, _bincount_impl)


def _unique_rule(x: TensorType) -> list[TensorType]:
    if x.ndim != 1:
        raise ShapeError(f"unique: takes a 1-D array, got {x}")
    return [TensorType(x.dtype, (Dim.fresh("u"),))]


# unique(x): the sorted distinct values of a 1-D array (all NaNs count as one, as NumPy's
# equal_nan=True); a size known only at run time
unique_p = _register("unique", _unique_rule, lambda x: (np.unique(np.asarray(x)),))


def histogram_dtype(d: DType) -> DType:
    """The dtype of a histogram's bin edges: the data's float dtype, else f64 (NumPy's)."""
    return d if d.is_float else f64


def _histogram_rule(x: TensorType, *rng: TensorType, bins: int) -> list[TensorType]:
    if x.ndim != 1 or x.dtype.is_bool:
        raise ShapeError(f"histogram: takes a 1-D numeric array, got {x}")
    if len(rng) not in (0, 2) or any(t != scalar(f64) for t in rng):
        raise ShapeError("histogram: the range is absent or two f64 scalars")
    if bins <= 0:
        raise ShapeError("histogram: bins must be positive")
    return [TensorType(i64, (Dim.of(bins),)),
            TensorType(histogram_dtype(x.dtype), (Dim.of(bins + 1),))]


def _histogram_impl(x: Any, *rng: Any, bins: int) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    r = (float(rng[0]), float(rng[1])) if rng else None
    counts, edges = np.histogram(x, bins=bins, range=r)
    return counts.astype(np.int64), edges.astype(histogram_dtype(_dt(x)).np)


# histogram(x, [lo, hi]; bins): NumPy's np.histogram with ``bins`` equal bins over [lo, hi]
# (absent: [min(x), max(x)], widened by 0.5 each way when they are equal, [0, 1] when x is
# empty): (counts i64[bins], edges[bins + 1]).  Every bin is half-open but the last, which
# includes hi; values outside the range (and NaN) are not counted.  A range that is not finite
# or has lo > hi is a ValueError.
histogram_p = _register("histogram", _histogram_rule, _histogram_impl)


# --------------------------------------------------------------------------- linear algebra
def _matmul_rule(a: TensorType, b: TensorType) -> list[TensorType]:
    if a.dtype is not b.dtype:
        raise ShapeError(f"matmul: operand dtypes differ ({a.dtype} vs {b.dtype})")
    if a.dtype.is_bool or a.dtype is f16:
        # (f16 is storage only: the frontend multiplies f16 matrices in f32)
        raise ShapeError(f"matmul does not accept {a.dtype}")
    if a.ndim >= 3 or b.ndim >= 3:
        # stacks of matrices: the same leading (batch) dims on both sides (the frontend
        # broadcasts or folds the others), one matrix product per batch index
        if a.ndim != b.ndim or a.shape[:-2] != b.shape[:-2]:
            raise ShapeError(f"matmul: batched operands need equal batch dimensions, got {a} "
                             f"and {b}")
        if a.shape[-1] != b.shape[-2]:
            raise ShapeError(f"matmul: contracted dimensions differ ({a.shape[-1]} vs "
                             f"{b.shape[-2]}) for {a} @ {b}")
        return [TensorType(a.dtype, a.shape[:-1] + b.shape[-1:])]
    if not (1 <= a.ndim <= 2 and 1 <= b.ndim <= 2):
        raise ShapeError(f"matmul takes 1-D or 2-D operands, got ranks {a.ndim} and {b.ndim}")
    ka = a.shape[-1]
    kb = b.shape[0]
    if ka != kb:
        raise ShapeError(f"matmul: contracted dimensions differ ({ka} vs {kb}) for {a} @ {b}")
    shape = a.shape[:-1] + b.shape[1:]
    return [TensorType(a.dtype, shape)]


matmul_p = _register("matmul", _matmul_rule, lambda a, b: (np.asarray(np.matmul(a, b)),))


def _transpose_rule(x: TensorType, *, perm: tuple[int, ...]) -> list[TensorType]:
    if sorted(perm) != list(range(x.ndim)):
        raise ShapeError(f"transpose: {perm} is not a permutation of the {x.ndim} axes")
    return [TensorType(x.dtype, tuple(x.shape[k] for k in perm))]


transpose_p = _register("transpose", _transpose_rule,
                        lambda x, *, perm: (np.ascontiguousarray(np.transpose(x, perm)),))


def _concat_rule(*xs: TensorType, axis: int) -> list[TensorType]:
    """``concatenate(xs, axis)``: arrays of one dtype and rank, equal dims except ``axis``."""
    if not xs:
        raise ShapeError("concatenate: no arrays")
    first = xs[0]
    if not 0 <= axis < first.ndim:
        raise ShapeError(f"concatenate: axis {axis} of {first.ndim}-D arrays")
    total = Dim.of(0)
    for k, x in enumerate(xs):
        if x.dtype is not first.dtype or x.ndim != first.ndim:
            raise ShapeError(f"concatenate: array {k} is {x}, array 0 is {first}")
        for j, (d, e) in enumerate(zip(x.shape, first.shape)):
            if j != axis and d != e:
                raise ShapeError(f"concatenate: along dimension {j}, array 0 has size {e} and "
                                 f"array {k} has size {d}")
        total = total + x.shape[axis]
    return [TensorType(first.dtype, tuple(total if j == axis else d
                                          for j, d in enumerate(first.shape)))]


concat_p = _register("concatenate", _concat_rule,
                     lambda *xs, axis: (np.concatenate(xs, axis=axis),))


# --------------------------------------------------------------------------- creation
def _sizes_check(name: str, sizes: Sequence[TensorType], dims: tuple[Dim, ...]) -> None:
    if len(sizes) != len(dims):
        raise ShapeError(f"{name}: {len(sizes)} sizes for {len(dims)} dims")
    for t in sizes:
        if t != scalar(i64):
            raise ShapeError(f"{name}: sizes are i64 scalars, got {t}")


def _full_rule(fill: TensorType, *sizes: TensorType, dims: tuple[Dim, ...],
               dtype: DType) -> list[TensorType]:
    _sizes_check("full", sizes, dims)
    if fill != scalar(dtype):
        raise ShapeError(f"full: the fill value must be a {dtype} scalar, got {fill}")
    return [TensorType(dtype, dims)]


def _check_sizes(sizes: Sequence[Any]) -> tuple[int, ...]:
    out = tuple(int(s) for s in sizes)
    if any(s < 0 for s in out):
        raise ValueError(f"negative dimensions are not allowed: {out}")
    return out


full_p = _register(
    "full", _full_rule,
    lambda fill, *sizes, dims, dtype: (np.full(_check_sizes(sizes), fill, dtype=dtype.np),))


def _empty_rule(*sizes: TensorType, dims: tuple[Dim, ...], dtype: DType) -> list[TensorType]:
    _sizes_check("empty", sizes, dims)
    return [TensorType(dtype, dims)]


def _empty_impl(*sizes: Any, dims: tuple[Dim, ...], dtype: DType) -> tuple[np.ndarray]:
    shape = _check_sizes(sizes)
    return (np.full(shape, np.nan if dtype.is_float else 0, dtype=dtype.np),)


empty_p = _register("empty", _empty_rule, _empty_impl)


def _iota_rule(size: TensorType, *, dim: Dim, dtype: DType) -> list[TensorType]:
    _sizes_check("iota", [size], (dim,))
    if dtype.is_bool:
        raise ShapeError("iota: dtype must be numeric")
    return [TensorType(dtype, (dim,))]


iota_p = _register("iota", _iota_rule,
                   lambda n, *, dim, dtype: (np.arange(_check_sizes([n])[0], dtype=dtype.np),))


def _dim_rule(x: TensorType, *, axis: int) -> list[TensorType]:
    if not 0 <= axis < x.ndim:
        raise ShapeError(f"dim: axis {axis} out of range for {x}")
    return [scalar(i64)]


dim_p = _register("dim", _dim_rule, lambda x, *, axis: (np.asarray(np.shape(x)[axis], np.int64),))


# --------------------------------------------------------------------------- indexing
@dataclass(frozen=True, slots=True)
class Int:
    """Index one position of an axis (consumes one integer atom); the axis disappears."""


@dataclass(frozen=True, slots=True)
class Slice:
    """``start:stop:step``; start/stop are None, a static int, or "dyn" (consume an atom).

    ``size`` set: a fixed-length window ``start:start+size`` (step 1, stop None), written in a
    kernel as ``x[i:i + 64]`` with a traced ``i``.  Its length is the constant ``size``; a
    window that does not fit the axis (NumPy would clip it) is an IndexError when it runs, as
    for slices with static bounds.
    """

    start: Union[None, int, str] = None
    stop: Union[None, int, str] = None
    step: int = 1
    size: Optional[int] = None

    def n_atoms(self) -> int:
        return (self.start == "dyn") + (self.stop == "dyn")

    def __repr__(self) -> str:
        extra = "" if self.size is None else f", size={self.size}"
        return f"Slice(start={self.start!r}, stop={self.stop!r}, step={self.step!r}{extra})"


@dataclass(frozen=True, slots=True)
class Arr:
    """An integer index array (consumes one atom of any integer dtype, whose dims are
    ``shape``): NumPy's advanced indexing.  Entries may be negative (count from the end).

    With any ``Arr`` in a spec, its ``Int`` entries are advanced indices too (NumPy's rule):
    all of them broadcast together (statically: only a literal 1 stretches) to one block of
    result axes, which stands where the advanced entries stand when they are adjacent, and
    first otherwise (``X[0, :, idx]`` has shape ``(len(idx), X.shape[1])``).  Reading gathers
    (a copy, never a view); ``set`` writes each position in index order (a repeated index
    keeps the last value, as NumPy does in practice); ``add_at`` accumulates every repeat
    (``np.add.at``)."""

    shape: tuple[Dim, ...]


IndexSpec = tuple[Union[Int, Slice, Arr], ...]


def has_arrays(spec: IndexSpec) -> bool:
    """Does ``spec`` index with an array (a gather or scatter rather than a view)?"""
    return any(isinstance(e, Arr) for e in spec)


def advanced_layout(spec: IndexSpec) -> tuple[tuple[Dim, ...], int]:
    """(the broadcast shape of the advanced entries, the result axis where it starts) of a
    spec with arrays (see :class:`Arr`)."""
    adv = [k for k, e in enumerate(spec) if not isinstance(e, Slice)]
    block = broadcast_shapes(*(e.shape for e in spec if isinstance(e, Arr)))
    adjacent = adv == list(range(adv[0], adv[-1] + 1))
    at = sum(1 for e in spec[:adv[0]] if isinstance(e, Slice)) if adjacent else 0
    return block, at


def slice_len_static(n: Dim, s: Slice) -> Optional[Dim]:
    """Symbolic length of a slice with static bounds or a fixed-length window (assumed inside
    the array), else None."""
    if s.size is not None:
        return Dim.of(s.size)
    if s.start == "dyn" or s.stop == "dyn":
        return None
    if s.step > 0:
        lo = Dim.of(0) if s.start is None else (Dim.of(s.start) if s.start >= 0 else n + s.start)
        hi = n if s.stop is None else (Dim.of(s.stop) if s.stop >= 0 else n + s.stop)
    else:
        lo = n - 1 if s.start is None else (Dim.of(s.start) if s.start >= 0 else n + s.start)
        hi = Dim.of(-1) if s.stop is None else (Dim.of(s.stop) if s.stop >= 0 else n + s.stop)
        lo, hi = hi, lo  # length counts from hi down to lo (exclusive)
    span = hi - lo
    if abs(s.step) == 1:
        return span
    if span.is_const:
        return Dim.of(max(0, -(-span.const // abs(s.step))))
    return None


def slice_len_clipped(n: int, start: Optional[int], stop: Optional[int], step: int) -> tuple[int, int]:
    """NumPy's clipped (first index, length) of ``start:stop:step`` on an axis of size n."""
    first, last, st = slice(start, stop, step).indices(n)
    length = max(0, (last - first + (st - (1 if st > 0 else -1))) // st)
    return first, length


def index_out_dims(shape: Sequence[Dim], spec: IndexSpec) -> tuple[Dim, ...]:
    if len(spec) != len(shape):
        raise ShapeError(f"index spec has {len(spec)} entries for a rank-{len(shape)} array")
    out = []
    for n, e in zip(shape, spec):
        if isinstance(e, Slice):
            if e.step == 0:
                raise ShapeError("slice step cannot be zero")
            d = slice_len_static(n, e)
            out.append(d if d is not None else Dim.fresh("s"))
    if has_arrays(spec):
        block, at = advanced_layout(spec)
        out[at:at] = block
    return tuple(out)


def _index_atoms_check(name: str, spec: IndexSpec, idx: Sequence[TensorType]) -> None:
    need = sum(e.n_atoms() if isinstance(e, Slice) else 1 for e in spec)
    if need != len(idx):
        raise ShapeError(f"{name}: spec needs {need} index values, got {len(idx)}")
    it = iter(idx)
    for e in spec:
        for _ in range(e.n_atoms() if isinstance(e, Slice) else 1):
            t = next(it)
            if isinstance(e, Arr):
                if not t.dtype.is_int or t.shape != e.shape:
                    raise ShapeError(f"{name}: an index array of integers with dims "
                                     f"{e.shape} expected, got {t}")
            elif not (t.is_scalar and t.dtype.is_int):
                raise ShapeError(f"{name}: indices must be integer scalars, got {t}")


def _index_rule(x: TensorType, *idx: TensorType, spec: IndexSpec,
                out_dims: Optional[tuple[Dim, ...]] = None, array: str = "") -> list[TensorType]:
    _index_atoms_check("index", spec, idx)
    dims = out_dims if out_dims is not None else index_out_dims(x.shape, spec)
    return [TensorType(x.dtype, dims)]


def _apply_spec(x: np.ndarray, idx: Sequence[Any], spec: IndexSpec, array: str = "") -> tuple:
    """The NumPy key for ``spec``, checking the rules in the module docstring (an index
    error names ``array``, the indexed array's name in the kernel, when known)."""
    of = f" of {array!r}" if array else ""
    it = iter(idx)
    key: list[Any] = []
    for axis, e in enumerate(spec):
        n = x.shape[axis]
        if isinstance(e, Arr):
            a = np.asarray(next(it))
            bad = (a < -n) | (a >= n)
            if bad.any():
                raise IndexError(f"index {int(a[bad].flat[0])} is out of bounds for axis "
                                 f"{axis}{of} with size {n}")
            key.append(a.astype(np.int64))
            continue
        if isinstance(e, Int):
            i = int(next(it))
            if not -n <= i < n:
                raise IndexError(f"index {i} is out of bounds for axis {axis}{of} with size {n}")
            key.append(i)
            continue
        start = int(next(it)) if e.start == "dyn" else e.start
        stop = int(next(it)) if e.stop == "dyn" else e.stop
        if e.size is not None:
            stop = start + e.size
            if slice_len_clipped(n, start, stop, e.step)[1] != e.size:
                raise IndexError(f"slice {start}:{stop} (a window of {e.size}) does not fit "
                                 f"axis {axis} of size {n}")
        elif e.start != "dyn" and e.stop != "dyn":
            sym = slice_len_static(Dim.named("n"), e)
            if sym is not None:
                want = max(0, sym.evaluate({"n": n}))  # x[:-1] of an empty x
                got = slice_len_clipped(n, start, stop, e.step)[1]
                if want != got:
                    raise IndexError(
                        f"slice {start}:{stop}:{e.step} does not fit axis {axis} of size {n}")
        key.append(slice(start, stop, e.step))
    return tuple(key)


def _index_impl(x: np.ndarray, *idx: Any, spec: IndexSpec,
                out_dims: Optional[tuple[Dim, ...]] = None, array: str = "") -> tuple[np.ndarray]:
    x = np.asarray(x)
    key = _apply_spec(x, idx, spec, array)
    if out_dims is not None:
        _check_claimed_slices(x, key, spec, out_dims, array)
    return (np.array(x[key], dtype=x.dtype),)


def _check_claimed_slices(x: np.ndarray, key: tuple, spec: IndexSpec,
                          out_dims: tuple[Dim, ...], array: str) -> None:
    """A slice with traced bounds whose size the frontend made symbolic (``x[1:I + 3]`` has
    size ``I + 2``: ``stop - start``) must lie inside the array, as the compiled code checks:
    an IndexError where NumPy would clip."""
    dims = list(out_dims)
    if has_arrays(spec):
        block, at = advanced_layout(spec)
        del dims[at:at + len(block)]
    slices = iter(dims)
    for axis, (e, k) in enumerate(zip(spec, key)):
        if not isinstance(e, Slice):
            continue
        d = next(slices)
        if e.size is not None or "dyn" not in (e.start, e.stop) or d.is_fresh:
            continue
        n = x.shape[axis]
        lo = 0 if k.start is None else (k.start if k.start >= 0 or e.start == "dyn"
                                        else n + k.start)
        hi = n if k.stop is None else (k.stop if k.stop >= 0 or e.stop == "dyn"
                                       else n + k.stop)
        if not 0 <= lo <= hi <= n:
            of = f" of {array!r}" if array else ""
            raise IndexError(f"a slice{of} on axis {axis} reaches outside the array: its size "
                             f"{d} assumes 0 <= start <= stop <= the axis size (where NumPy "
                             "would clip)")


index_p = _register("index", _index_rule, _index_impl)


def _set_rule(x: TensorType, *rest: TensorType, spec: IndexSpec,
              array: str = "") -> list[TensorType]:
    *idx, v = rest
    _index_atoms_check("set", spec, idx)
    region = index_out_dims(x.shape, spec)
    if v.dtype is not x.dtype:
        raise ShapeError(f"set: value dtype {v.dtype} differs from the array's {x.dtype}")
    # the value broadcasts into the region; a fresh (run-time) size on either side is checked
    # when the kernel runs
    fits = len(v.shape) <= len(region) and all(
        a == b or a == Dim.of(1) or a.is_fresh or b.is_fresh
        for a, b in zip(reversed(v.shape), reversed(region)))
    if not fits:
        raise ShapeError(f"set: a value of shape ({', '.join(map(str, v.shape))}) does not fit "
                         f"the region ({', '.join(map(str, region))})")
    return [x]


def _to_region(v: Any, shape: tuple[int, ...], dtype: Any = None) -> np.ndarray:
    """``v`` broadcast to a store's region; a mismatching run-time size is a ValueError
    worded as the compiled code's."""
    v = np.asarray(v, dtype=dtype)
    if v.shape == shape:
        return v
    try:
        return np.broadcast_to(v, shape)
    except ValueError:
        raise ValueError(f"the stored value's shape {v.shape} does not match the indexed "
                         f"region {shape}") from None


def _set_impl(x: np.ndarray, *rest: Any, spec: IndexSpec, array: str = "") -> tuple[np.ndarray]:
    *idx, v = rest
    y = np.array(x, copy=True)
    key = _apply_spec(y, idx, spec, array)
    region = y[key]
    v = np.asarray(v)
    if np.ndim(region):
        v = _to_region(v, np.shape(region))  # raises for a mismatching fresh dim
    y[key] = v
    return (y,)


set_p = _register("set", _set_rule, _set_impl)


def _add_at_rule(x: TensorType, *rest: TensorType, spec: IndexSpec,
                 array: str = "") -> list[TensorType]:
    *idx, v = rest
    _index_atoms_check("add_at", spec, idx)
    region = index_out_dims(x.shape, spec)
    if v.dtype is not x.dtype:
        raise ShapeError(f"add_at: value dtype {v.dtype} differs from the array's {x.dtype}")
    # v broadcasts into the region (right-aligned); a fresh dim on either side is checked at
    # run time (the interpreter's NumPy broadcast raises on a mismatch)
    ok = len(v.shape) <= len(region) and all(
        a == b or a == Dim.of(1) or a.is_fresh or b.is_fresh
        for a, b in zip(reversed(v.shape), reversed(region)))
    if not ok:
        raise ShapeError(f"add_at: a value of shape ({', '.join(map(str, v.shape))}) does not "
                         f"fit the region ({', '.join(map(str, region))})")
    return [x]


def _add_at_impl(x: np.ndarray, *rest: Any, spec: IndexSpec, array: str = "") -> tuple[np.ndarray]:
    *idx, v = rest
    y = np.array(x, copy=True)
    key = _apply_spec(y, idx, spec, array)
    with np.errstate(all="ignore"):
        v = _to_region(v, np.shape(y[key]), y.dtype)
        if has_arrays(spec):  # every repeat of an index adds (not NumPy's buffered +=)
            np.add.at(y, key, v)
        else:
            y[key] = y[key] + v
    return (y,)


# add_at(x, *idx, v): x with v *added* into the region x[spec(idx)] (v broadcasts into the region
# as for ``set``).  The transpose of ``index``: automatic differentiation accumulates the
# cotangent of ``X[i]`` into the cotangent of ``X`` with it, and codegen updates in place when
# ``x`` is dead afterwards, so a loop accumulating into an indexed region allocates nothing.
add_at_p = _register("add_at", _add_at_rule, _add_at_impl)


def _nonzero_rule(x: TensorType, *, dim: Dim) -> list[TensorType]:
    """One i64 index array per axis of ``x``, each of the run-time size ``dim`` (the number
    of non-zero elements: a fresh dim, given so that the rule is deterministic)."""
    if x.ndim == 0:
        raise ShapeError("nonzero: a 0-d array has no positions to list")
    return [TensorType(i64, (dim,)) for _ in range(x.ndim)]


# nonzero(x) -> (i_0, ..., i_{r-1}): the positions of x's non-zero (true) elements in C order,
# as np.nonzero; a boolean mask index x[mask] gathers through them
nonzero_p = _register("nonzero", _nonzero_rule, lambda x, *, dim: tuple(
    np.asarray(a, dtype=np.int64) for a in np.nonzero(np.asarray(x))))


# --------------------------------------------------------------------------- shapes
def _broadcast_in_dim_rule(x: TensorType, *sizes: TensorType, dims: tuple[Dim, ...],
                           axes: tuple[int, ...]) -> list[TensorType]:
    """Out type ``x.dtype[dims]``; axis k of x becomes axis ``axes[k]`` of the result and must
    have the same size there or be the literal 1; every other axis of the result is new."""
    _sizes_check("broadcast_in_dim", sizes, dims)
    axes = tuple(axes)
    if len(axes) != x.ndim or list(axes) != sorted(set(axes)) or any(
            not 0 <= a < len(dims) for a in axes):
        raise ShapeError(f"broadcast_in_dim: axes {axes} do not place a rank-{x.ndim} operand "
                         f"in rank {len(dims)} (strictly increasing, in range)")
    one = Dim.of(1)
    for k, a in enumerate(axes):
        if x.shape[k] != dims[a] and x.shape[k] != one:
            raise ShapeError(f"broadcast_in_dim: axis {k} of {x} (size {x.shape[k]}) cannot "
                             f"become size {dims[a]}")
    return [TensorType(x.dtype, tuple(Dim.of(d) for d in dims))]


def _broadcast_in_dim_impl(x: np.ndarray, *sizes: Any, dims: tuple[Dim, ...],
                           axes: tuple[int, ...]) -> tuple[np.ndarray]:
    x = np.asarray(x)
    shape = _check_sizes(sizes)
    expanded = [1] * len(shape)
    for k, a in enumerate(axes):
        expanded[a] = x.shape[k]
    return (np.array(np.broadcast_to(x.reshape(expanded), shape)),)


# broadcast_in_dim(x, *sizes): NumPy broadcasting made explicit (new axes anywhere, literal-1
# axes stretched), e.g. to restore the axes a ``reduce_sum`` removed.  ``sizes`` are the i64
# runtime sizes of ``dims``, as for ``full``.
broadcast_in_dim_p = _register("broadcast_in_dim", _broadcast_in_dim_rule, _broadcast_in_dim_impl)


# --------------------------------------------------------------------------- layout
def _reshape_rule(x: TensorType, *sizes: TensorType, dims: tuple[Dim, ...],
                  what: str = "") -> list[TensorType]:
    """Out type ``x.dtype[dims]``, the elements of ``x`` in C order.  The element counts must
    agree; only when every size is a literal can that be checked here, otherwise the lowering
    checks it at run time (``sizes`` are the i64 runtime sizes of ``dims``)."""
    _sizes_check("reshape", sizes, dims)
    if not x.ndim or not dims:
        raise ShapeError("reshape: to or from a 0-D array is an index or a broadcast, not a "
                         "reshape")
    if all(d.is_const for d in x.shape) and all(Dim.of(d).is_const for d in dims):
        n_in = int(np.prod([d.const for d in x.shape], dtype=np.int64))
        n_out = int(np.prod([Dim.of(d).const for d in dims], dtype=np.int64))
        if n_in != n_out:
            raise ShapeError(f"reshape: cannot reshape {x} ({n_in} elements) into "
                             f"({', '.join(str(d) for d in dims)}) ({n_out} elements)")
    return [TensorType(x.dtype, tuple(Dim.of(d) for d in dims))]


def _reshape_impl(x: np.ndarray, *sizes: Any, dims: tuple[Dim, ...],
                  what: str = "") -> tuple[np.ndarray]:
    x = np.asarray(x)
    shape = _check_sizes(sizes)
    if int(np.prod(shape, dtype=np.int64)) != x.size:
        raise ValueError(what or f"cannot reshape an array of size {x.size} into shape {shape}")
    return (np.ascontiguousarray(x).reshape(shape).copy(),)


# reshape(x, *sizes): the C-order elements of x under a new shape (NumPy's reshape with every
# size given; the frontend resolves -1).  Linear; its transpose is the reshape back.  ``what``
# (optional): the message of the run-time error when the counts differ (the frontend also
# uses a reshape to a dim's other name, e.g. 5 -> n5, to check at run time that they agree).
reshape_p = _register("reshape", _reshape_rule, _reshape_impl)


# --------------------------------------------------------------------------- control flow
def _loop_rule(start: TensorType, stop: TensorType, step: TensorType, *rest: TensorType,
               body: Func, n_carry: int, parallel: bool = False) -> list[TensorType]:
    for nm, t in (("start", start), ("stop", stop), ("step", step)):
        if t != scalar(i64):
            raise ShapeError(f"loop: {nm} must be an i64 scalar, got {t}")
    want = (scalar(i64),) + tuple(rest)
    if body.in_types != want:
        raise ShapeError(f"loop: body params {body.in_types} do not match {want}")
    carry = tuple(rest[:n_carry])
    if body.out_types != carry:
        raise ShapeError(f"loop: body returns {body.out_types}, carried values are {carry}")
    return list(carry)


def _loop_impl(start: Any, stop: Any, step: Any, *rest: Any, body: Func,
               n_carry: int, parallel: bool = False) -> tuple[np.ndarray, ...]:
    carry, consts = list(rest[:n_carry]), list(rest[n_carry:])
    if int(step) == 0:
        raise ValueError("range() arg 3 must not be zero")
    for i in range(int(start), int(stop), int(step)):
        carry = list(eval_func(body, np.asarray(i, np.int64), *carry, *consts))
    return tuple(carry)


loop_p = _register("loop", _loop_rule, _loop_impl)
# ``parallel=True`` (a ``for i in lt.prange(...)`` loop): its iterations may run in any order,
# on several threads, when :func:`prange_problem` finds none (the loop's meaning is that of
# the serial loop either way; the interpreter runs it serially).


#: how a number carried through a ``prange`` loop may be updated, by primitive: the chunks'
#: partial results then combine with this reduction (``sub``: ``s = s - f`` with ``s`` on the
#: left, whose partials are negative sums)
PRANGE_REDUCTIONS = {add_p: "sum", sub_p: "sum", mul_p: "prod", max_p: "max", min_p: "min"}


def prange_problem(body: Func, n_carry: int) -> Optional[tuple[int, str]]:
    """Why the iterations of a loop with ``body`` might not be independent, as (carried value
    index, reason), or None when they are (see :func:`prange_plan`)."""
    return prange_plan(body, n_carry)[1]


def prange_plan(body: Func, n_carry: int) -> tuple[list[Optional[str]], Optional[tuple[int, str]]]:
    """Each carried value's role in a ``prange`` loop (None: an array; else the reduction of a
    number, a key of ``PRANGE_REDUCTIONS``' values) and the first problem found, if any.

    Each carried value must reach its output through a chain of equations, each link used
    once, by the next, and read by nothing else (:func:`_prange_chain`); a link may also be an
    ``if`` (``cond``) each of whose branches carries the value the same way, or returns it
    unchanged, or an inner loop (or ``while``, whose condition does not read it) whose body
    does.  An array's links are ``set`` equations at
    ``[i, ...]`` (``i`` the loop variable): iterations then write disjoint rows (for distinct
    ``i >= 0``) and read none of them, and each set may be done in place.  A number's links
    are ``add``, ``mul``, ``maximum`` or ``minimum`` (or a ``sub`` with it on the left), all of
    one reduction and at least one: iterations then combine in any grouping (exactly, for
    integers and max/min; floats to rounding)."""
    i = body.params[0]
    kinds: list[Optional[str]] = []
    for k in range(n_carry):
        cur = body.params[1 + k]
        if cur.type.ndim == 0:
            got = _prange_chain(body, cur, k, _prange_reduction, frozenset())
            if got is None or len(got) != 1:
                return kinds, (k, "is a number carried from one iteration to the next other "
                                  "than as a running sum, product, max or min "
                                  "(s = s + ..., s = s * ..., lt.maximum(s, ...))")
            kinds.append(got.pop())
            continue
        if _prange_chain(body, cur, k, _prange_row_set, frozenset([i])) is None:
            return kinds, (k, "is read in the loop, or assigned other than at [i, ...] (in its "
                              "body, or in ifs and loops inside it)")
        kinds.append(None)
    return kinds, None


def _prange_row_set(e: Eqn, pos: int, ivars: frozenset[Var]) -> Optional[str]:
    """``set`` (or ``add_at``: ``out[i, idx] += v``) of operand ``pos`` at ``[i, ...]``, ``i``
    one of ``ivars``: "set"; else None."""
    spec = e.params.get("spec", ()) if e.prim is set_p or e.prim is add_at_p else ()
    if pos != 0 or not spec or not isinstance(spec[0], Int) or e.inputs[1] not in ivars:
        return None
    return "set"


def _prange_reduction(e: Eqn, pos: int, ivars: frozenset[Var]) -> Optional[str]:
    """The reduction (``PRANGE_REDUCTIONS``) updating operand ``pos`` with ``e``, or None."""
    kind = PRANGE_REDUCTIONS.get(e.prim)
    if kind is None or (e.prim is sub_p and pos != 0) or e.inputs.count(e.inputs[pos]) != 1:
        return None
    return kind


def _prange_chain(func: Func, cur: Var, out: int,
                  link: Callable[[Eqn, int, frozenset[Var]], Optional[str]],
                  ivars: frozenset[Var]) -> Optional[set[str]]:
    """The kinds of the links by which ``cur`` reaches ``func.outs[out]``, or None when it
    does not reach it that way: each link uses the value once, is its only use, and is an
    equation ``link(eqn, operand position, ivars)`` accepts (naming its kind), a ``cond`` both
    of whose branches carry their copy of the operand to one same output, or a ``loop``
    carrying it whose body carries it to its place in the outputs (in the branches and the
    body, ``ivars`` are the params bound to ``ivars``).  The value is then returned as ``out``
    and nothing else, with its type unchanged.  Its sizes (``dim``) may be read anywhere."""
    uses: dict[Var, list[tuple[Eqn, int]]] = {}
    for e in func.eqns:
        if e.prim is dim_p:
            continue  # reads a size, which no iteration changes (nor keeps the buffer alive)
        for pos, a in enumerate(e.inputs):
            if isinstance(a, Var):
                uses.setdefault(a, []).append((e, pos))
    kinds: set[str] = set()
    while True:
        used = uses.get(cur, [])
        returned = [j for j, o in enumerate(func.outs) if o is cur]
        if not used:
            return kinds if returned == [out] else None
        if returned or len(used) != 1:
            return None
        e, pos = used[0]
        if e.prim is cond_p and pos >= 1:
            for q in range(len(e.outs)):
                got = []
                for f in (e.params["true_fn"], e.params["false_fn"]):
                    fi = frozenset(f.params[r] for r, a in enumerate(e.inputs[1:])
                                   if isinstance(a, Var) and a in ivars)
                    got.append(_prange_chain(f, f.params[pos - 1], q, link, fi))
                if got[0] is not None and got[1] is not None:
                    kinds |= got[0] | got[1]
                    cur = e.outs[q]
                    break
            else:
                return None
            continue
        if e.prim is loop_p and 3 <= pos < 3 + e.params["n_carry"]:
            # an inner (serial) loop carrying it: its body must carry it the same way
            f, c, n = e.params["body"], pos - 3, e.params["n_carry"]
            fi = frozenset(f.params[1 + n + r] for r, a in enumerate(e.inputs[3 + n:])
                           if isinstance(a, Var) and a in ivars)
            got = _prange_chain(f, f.params[1 + c], c, link, fi)
            if got is None:
                return None
            kinds |= got
            cur = e.outs[c]
            continue
        if e.prim is while_p and pos < e.params["n_carry"]:
            # an inner while carrying it: its body must carry it the same way, and its
            # condition not read it (the trip count would depend on other iterations)
            f, test, n = e.params["body_fn"], e.params["cond_fn"], e.params["n_carry"]
            fi = frozenset(f.params[n + r] for r, a in enumerate(e.inputs[n:])
                           if isinstance(a, Var) and a in ivars)
            reads = {a for q in test.eqns if q.prim is not dim_p for a in q.inputs}
            if test.params[pos] in reads or test.params[pos] in test.outs:
                return None
            got = _prange_chain(f, f.params[pos], pos, link, fi)
            if got is None:
                return None
            kinds |= got
            cur = e.outs[pos]
            continue
        kind = link(e, pos, ivars)
        if kind is None or len(e.outs) != 1 or e.outs[0].type != cur.type:
            return None
        kinds.add(kind)
        cur = e.outs[0]


def _cond_rule(pred: TensorType, *ops: TensorType, true_fn: Func,
               false_fn: Func) -> list[TensorType]:
    if pred != scalar(bool_):
        raise ShapeError(f"cond: the predicate must be a bool scalar, got {pred}")
    for name, f in (("true", true_fn), ("false", false_fn)):
        if f.in_types != tuple(ops):
            raise ShapeError(f"cond: {name} branch params {f.in_types} do not match {ops}")
    if true_fn.out_types != false_fn.out_types:
        raise ShapeError(f"cond: branches return {true_fn.out_types} vs {false_fn.out_types}")
    return list(true_fn.out_types)


def _cond_impl(pred: Any, *ops: Any, true_fn: Func, false_fn: Func) -> tuple[np.ndarray, ...]:
    return tuple(eval_func(true_fn if bool(pred) else false_fn, *ops))


cond_p = _register("cond", _cond_rule, _cond_impl)


def _while_rule(*ins: TensorType, cond_fn: Func, body_fn: Func, n_carry: int) -> list[TensorType]:
    if not 0 <= n_carry <= len(ins):
        raise ShapeError(f"while: n_carry {n_carry} out of range for {len(ins)} operands")
    for name, f in (("cond", cond_fn), ("body", body_fn)):
        if f.in_types != tuple(ins):
            raise ShapeError(f"while: {name} params {f.in_types} do not match {tuple(ins)}")
    if cond_fn.out_types != (scalar(bool_),):
        raise ShapeError(f"while: the condition must return one bool scalar, got "
                         f"{cond_fn.out_types}")
    carry = tuple(ins[:n_carry])
    if body_fn.out_types != carry:
        raise ShapeError(f"while: body returns {body_fn.out_types}, carried values are {carry}")
    return list(carry)


def _while_impl(*ins: Any, cond_fn: Func, body_fn: Func, n_carry: int) -> tuple[np.ndarray, ...]:
    carry, consts = list(ins[:n_carry]), list(ins[n_carry:])
    while bool(eval_func(cond_fn, *carry, *consts)[0]):
        carry = list(eval_func(body_fn, *carry, *consts))
    return tuple(carry)


# while(*carry, *consts; cond_fn, body_fn): while cond_fn(carry, consts): carry = body_fn(carry,
# consts).  Both sub-functions take the same operands (the carried values, then the constants
# either reads); the trip count is known only when it runs.  Automatic differentiation turns it
# into a counted ``loop`` (lattice/ir/ad/jvp.py); inside a ``prange`` body it runs serially
# within the iteration, and may carry the loop's arrays and numbers as an inner ``loop`` does
# (``_prange_chain``) when its condition does not read them.
while_p = _register("while", _while_rule, _while_impl)


# --------------------------------------------------------------------------- custom derivatives
def _custom_vjp_rule(*ins: TensorType, fun: Func, fwd: Func, bwd: Func,
                     n_res: int) -> list[TensorType]:
    """``custom_vjp_call(*args; fun, fwd, bwd)`` means ``fun(*args)``; automatic differentiation
    uses the user's rule instead: ``fwd(*args) -> (*outs, *residuals)`` and
    ``bwd(*residuals, *out_cotangents) -> one cotangent per float argument``."""
    if fun.in_types != tuple(ins) or fwd.in_types != tuple(ins):
        raise ShapeError(f"custom_vjp_call: fun/fwd params {fun.in_types} / {fwd.in_types} do "
                         f"not match the arguments {tuple(ins)}")
    outs = fun.out_types
    if fwd.out_types[:len(outs)] != outs or len(fwd.out_types) != len(outs) + n_res:
        raise ShapeError(f"custom_vjp_call: fwd returns {fwd.out_types}; it must return the "
                         f"outputs {outs} followed by {n_res} residuals")
    res = fwd.out_types[len(outs):]
    if bwd.in_types != tuple(res) + tuple(outs):
        raise ShapeError(f"custom_vjp_call: bwd takes {bwd.in_types}; it must take the "
                         f"residuals {tuple(res)} then one cotangent per output {outs}")
    floats = tuple(t for t in ins if t.dtype.is_float)
    if bwd.out_types != floats:
        raise ShapeError(f"custom_vjp_call: bwd returns {bwd.out_types}; it must return one "
                         f"cotangent per float argument {floats}")
    return list(outs)


def _custom_vjp_impl(*xs: Any, fun: Func, fwd: Func, bwd: Func, n_res: int
                     ) -> tuple[np.ndarray, ...]:
    return tuple(eval_func(fun, *xs))


custom_vjp_call_p = _register("custom_vjp_call", _custom_vjp_rule, _custom_vjp_impl)


def _custom_lin_rule(*ins: TensorType, bwd: Func, n_res: int,
                     out_types: tuple[TensorType, ...]) -> list[TensorType]:
    """``custom_lin(*residuals, *tangents)``: the linear map whose transpose is ``bwd``.

    Made by linearizing a ``custom_vjp_call`` (one tangent per float argument of the call) and
    consumed by transposition; it has no forward evaluation (the user gave only the transposed
    map)."""
    if tuple(ins[:n_res]) != bwd.in_types[:n_res] or tuple(ins[n_res:]) != bwd.out_types:
        raise ShapeError("custom_lin: inputs must be bwd's residuals then one tangent per "
                         "cotangent bwd returns")
    if tuple(out_types) != bwd.in_types[n_res:]:
        raise ShapeError("custom_lin: out types must be the cotangent types bwd takes")
    return list(out_types)


def _custom_lin_impl(*xs: Any, **params: Any) -> tuple[np.ndarray, ...]:
    raise NotImplementedError("custom_lin has no forward evaluation: it exists only between "
                              "linearization and transposition of a custom_vjp function")


custom_lin_p = _register("custom_lin", _custom_lin_rule, _custom_lin_impl)


# --------------------------------------------------------------------------- fusion
def _fused_rule(*ins: TensorType, body: Func, space: tuple[Dim, ...],
                reduce: Optional[str], axes: tuple[int, ...]) -> list[TensorType]:
    """A loop nest over ``space`` computing ``body`` per element, optionally reduced.

    ``body`` takes one scalar per input (the element at the broadcast position; inputs align
    right against ``space`` with NumPy broadcasting) and returns one scalar.  With ``reduce``
    in {"sum", "max", "min"} the values are combined over ``axes`` of ``space``.
    """
    if len(ins) != len(body.params):
        raise ShapeError("fused: one body param per input")
    for t, p in zip(ins, body.params):
        if p.type != scalar(t.dtype):
            raise ShapeError(f"fused: body param {p.type} does not match input {t}")
        if broadcast_shapes(t.shape, space) != tuple(space):
            raise ShapeError(f"fused: input {t} does not broadcast to the space {space}")
    (out,) = body.out_types
    if not out.is_scalar:
        raise ShapeError("fused: the body returns a scalar")
    if reduce is None:
        return [TensorType(out.dtype, tuple(space))]
    return [TensorType(reduce_out_dtype(reduce, out.dtype),
                       tuple(d for k, d in enumerate(space) if k not in axes))]


def _fused_impl(*xs: Any, body: Func, space: tuple[Dim, ...], reduce: Optional[str],
                axes: tuple[int, ...]) -> tuple[np.ndarray]:
    rank = len(space)
    arrs = [np.asarray(x) for x in xs]
    shape = np.broadcast_shapes(*(a.shape for a in arrs)) if arrs else ()
    shape = (1,) * (rank - len(shape)) + tuple(shape)
    (val,) = eval_func(body, *(np.broadcast_to(a, shape) for a in arrs))
    val = np.broadcast_to(np.asarray(val), shape)
    if reduce is None:
        return (np.array(val),)
    return impls[REDUCTIONS[reduce]](val, axes=axes)


fused_p = _register("fused", _fused_rule, _fused_impl)


def _check_row_body(name: str, x: TensorType, extras: Sequence[TensorType], body: Func) -> None:
    """The body of a row primitive takes ``z_i = x[i] @ w`` (``x``'s dtype) and one scalar per
    extra, each extra broadcasting to ``(n,)``."""
    n = x.shape[0]
    if len(body.params) != 1 + len(extras) or body.params[0].type != scalar(x.dtype):
        raise ShapeError(f"{name}: body takes z then one scalar per extra")
    for t, p in zip(extras, body.params[1:]):
        if p.type != scalar(t.dtype) or broadcast_shapes(t.shape, (n,)) != (n,):
            raise ShapeError(f"{name}: extra {t} does not broadcast to ({n},)")


def _row_values(x: Any, w: Any, extras: Sequence[Any], body: Func) -> tuple[np.ndarray, Any]:
    """The interpreter's ``z = x @ w`` and ``body(z, *extras)`` of a row primitive."""
    x, w = np.asarray(x), np.asarray(w)
    z = np.asarray(x @ w)
    n = x.shape[0]
    (v,) = eval_func(body, z, *(np.broadcast_to(np.asarray(e), (n,)) for e in extras))
    return z, v


def _rowpass_rule(x: TensorType, w: TensorType, *extras: TensorType, body: Func,
                  keep_z: bool) -> list[TensorType]:
    """``g = x.T @ body(x @ w, *extras)`` in one pass over the rows of ``x`` (made by the
    ``rowpass`` pass from matmul -> elementwise -> transposed matmul; the logistic gradient).

    ``x`` is (n, d), ``w`` (d,); each extra broadcasts to (n,); ``body`` maps the scalars
    ``z_i = x[i] @ w`` and the extras' elements to ``r_i`` (``x``'s dtype).  Results: ``g``
    (d,), and with ``keep_z`` also ``z`` (n,).
    """
    if x.ndim != 2 or w.ndim != 1 or x.shape[1] != w.shape[0] or x.dtype is not w.dtype:
        raise ShapeError(f"rowpass: takes x (n, d) and w (d,) of one dtype, got {x} and {w}")
    if not x.dtype.is_float:
        raise ShapeError("rowpass: float operands only")
    n = x.shape[0]
    _check_row_body("rowpass", x, extras, body)
    if body.out_types != (scalar(x.dtype),):
        raise ShapeError(f"rowpass: body returns one {x.dtype} scalar")
    g = TensorType(x.dtype, (x.shape[1],))
    return [g, TensorType(x.dtype, (n,))] if keep_z else [g]


def _rowpass_impl(x: Any, w: Any, *extras: Any, body: Func, keep_z: bool
                  ) -> tuple[np.ndarray, ...]:
    x = np.asarray(x)
    n = x.shape[0]
    z, r = _row_values(x, w, extras, body)
    g = np.asarray(x.T @ np.broadcast_to(np.asarray(r, dtype=x.dtype), (n,)))
    return (g, z) if keep_z else (g,)


rowpass_p = _register("rowpass", _rowpass_rule, _rowpass_impl)

#: What ``rowreduce`` may do with the rows' values: the full reductions and arg-reductions.
ROW_REDUCTIONS = ("sum", "max", "min", "argmax", "argmin")


def _rowreduce_rule(x: TensorType, w: TensorType, *extras: TensorType, body: Func,
                    reduce: str) -> list[TensorType]:
    """``reduce(body(x @ w, *extras))`` over the rows of ``x`` as one equation (made by the
    ``rowreduce`` pass from matmul -> [elementwise] -> full reduction, e.g. ``argmax(E @ q)``).

    ``x`` is (n, d), ``w`` (d,), both of one non-bool dtype; each extra broadcasts to (n,);
    ``body`` maps ``z_i = x[i] @ w`` and the extras' elements to one scalar ``v_i``.  The result
    is the scalar ``reduce_<reduce>(v)`` (``sum``/``max``/``min``, dtype as for those) or
    ``argmax(v)``/``argmin(v)`` (i64: the first extreme position, a NaN counting as extreme, as
    NumPy does).  No rows: sum is 0, the others raise ValueError.
    """
    if x.ndim != 2 or w.ndim != 1 or x.shape[1] != w.shape[0] or x.dtype is not w.dtype:
        raise ShapeError(f"rowreduce: takes x (n, d) and w (d,) of one dtype, got {x} and {w}")
    if x.dtype.is_bool:
        raise ShapeError("rowreduce: x and w must not be bool")
    if reduce not in ROW_REDUCTIONS:
        raise ShapeError(f"rowreduce: reduce must be one of {ROW_REDUCTIONS}, got {reduce!r}")
    _check_row_body("rowreduce", x, extras, body)
    if len(body.out_types) != 1 or not body.out_types[0].is_scalar:
        raise ShapeError("rowreduce: body returns one scalar")
    v = body.out_types[0].dtype
    if reduce != "sum" and v.is_bool:
        raise ShapeError(f"rowreduce: {reduce} does not accept bool")
    if reduce.startswith("arg"):
        return [scalar(i64)]
    return [scalar(reduce_out_dtype(reduce, v))]


def _rowreduce_impl(x: Any, w: Any, *extras: Any, body: Func, reduce: str
                    ) -> tuple[np.ndarray, ...]:
    n = np.shape(x)[0]
    _, v = _row_values(x, w, extras, body)
    v = np.broadcast_to(np.asarray(v), (n,))
    if reduce.startswith("arg"):
        return impls[REDUCTIONS[reduce]](v, axis=None)
    return impls[REDUCTIONS[reduce]](v, axes=(0,))


rowreduce_p = _register("rowreduce", _rowreduce_rule, _rowreduce_impl)

#: Primitives only optimisation passes make (after differentiation): never differentiated.
POST_PASS = frozenset([fused_p, rowpass_p, rowreduce_p])
