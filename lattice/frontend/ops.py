"""Traced values and the user-facing operations on them.

While a kernel is traced, every array or scalar the kernel computes is a :class:`Value` wrapping
an IR atom; Python numbers stay Python numbers until they meet a Value (then they become *weak*
literals that take the Value's dtype, as in NumPy 2).  Each op is a thin layer over ``bind``: it
promotes dtypes (inserting ``convert``), normalises static arguments, and binds one primitive.

A ``Value`` may carry ``dim``: the symbolic size it is known to equal (``X.shape[0]`` is the dim
``n``; ``X.shape[0] - 1`` is ``n-1``).  Creation ops use it so ``lt.zeros(X.shape[0])`` has the
type ``f64[n]`` rather than an anonymous size.
"""
from __future__ import annotations

import builtins
import math
from typing import Any, Optional, Sequence, Union

import numpy as np

from ..errors import CompileError
from ..ir import primitives as P
from ..ir.ad.common import take_along_axis as ir_take_along_axis
from ..ir.core import Atom, Lit, Var, bind as ir_bind
from ..ir.types import (DType, Dim, ShapeError, TensorType, bool_, dtype_of, f16, f32, f64, i8,
                        i64, promote)
from .annotations import Traced, as_dtype

__all__ = [
    "Value", "to_value", "is_traced",
    "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sin", "cos", "erf", "erfc", "floor",
    "sigmoid", "softplus", "abs", "negative", "maximum", "minimum", "logaddexp", "power", "where",
    "clip", "isnan", "isfinite", "sum", "mean", "max", "min", "argmax", "argmin", "dot", "matmul",
    "transpose", "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like",
    "full_like", "arange", "copy", "astype", "prange", "concatenate", "stack", "vstack",
    "hstack", "sort", "argsort", "searchsorted", "bincount", "unique", "histogram", "median",
    "quantile", "percentile", "partition", "argpartition",
    "bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift",
    "right_shift", "bitwise_count",
    "nonzero", "argwhere", "flatnonzero", "count_nonzero", "extract", "compress",
    "take", "take_along_axis",
    "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh",
    "arctanh", "exp2", "log2", "log10", "cbrt", "trunc", "ceil", "rint", "round", "gamma", "lgamma",
    "digamma", "polygamma", "fabs", "deg2rad", "rad2deg", "sign", "signbit", "square",
    "reciprocal", "isinf", "nan_to_num", "arctan2", "hypot", "copysign", "logaddexp2",
    "float_power", "heaviside", "mod", "fmod", "fmax", "fmin",
]

Scalar = Union[bool, int, float]
_PY_SCALARS = (bool, int, float, np.bool_, np.integer, np.floating)


class Value(Traced):
    """A traced array or scalar: an IR atom plus frontend facts about it."""

    __slots__ = ("atom", "dim", "owned", "base", "unstorable")
    __array_priority__ = 1000  # so ndarray op Value defers to Value's reflected op

    def __init__(self, atom: Atom, dim: Optional[Dim] = None, owned: bool = False) -> None:
        self.atom = atom
        self.dim = dim          # the symbolic size this i64 scalar equals, if known
        self.owned = owned      # a local array the kernel may store into
        # (atom, a, c): this i64 scalar is a * atom + c for Python ints a, c (``64 * b + 64``),
        # so ``x[64 * b:64 * b + 64]`` is known to be a window of constant length
        self.base: Optional[tuple[Atom, int, int]] = None
        # why a store into this array is refused although it is owned (the tracer's reason,
        # e.g. names that may or may not be one array after an if), or None
        self.unstorable: Optional[str] = None

    def affine(self) -> tuple[Atom, int, int]:
        """(root atom, a, c) with this i64 scalar equal to ``a * root + c``: ``(self.atom, 1,
        0)`` unless it is a traced value scaled and shifted by Python ints."""
        return self.base if self.base is not None else (self.atom, 1, 0)

    # -- facts
    @property
    def type(self) -> TensorType:
        return self.atom.type

    @property
    def dtype(self) -> DType:
        return self.atom.type.dtype

    @property
    def ndim(self) -> int:
        return self.atom.type.ndim

    @property
    def shape(self) -> tuple[Any, ...]:
        """Each entry: a Python int for a literal size, else an i64 Value knowing its Dim."""
        out: list[Any] = []
        for k, d in enumerate(self.type.shape):
            if d.is_const:
                out.append(d.const)
            else:
                (v,) = ir_bind(P.dim_p, self.atom, axis=k)
                out.append(Value(v, dim=d))
        return tuple(out)

    @property
    def T(self) -> "Value":
        return transpose(self)

    def __repr__(self) -> str:
        return f"<traced {self.type}>"

    # -- methods mirroring NumPy's
    def sum(self, axis: Any = None) -> "Value":
        return sum(self, axis)

    def mean(self, axis: Any = None) -> "Value":
        return mean(self, axis)

    def max(self, axis: Any = None) -> "Value":
        return max(self, axis)

    def min(self, axis: Any = None) -> "Value":
        return min(self, axis)

    def argmax(self, axis: Optional[int] = None) -> "Value":
        return argmax(self, axis)

    def argmin(self, axis: Optional[int] = None) -> "Value":
        return argmin(self, axis)

    def argsort(self, axis: Any = -1, kind: Any = None, order: Any = None) -> "Value":
        return argsort(self, axis, kind, order)

    def searchsorted(self, v: Any, side: Any = "left", sorter: Any = None) -> "Value":
        return searchsorted(self, v, side, sorter)

    def sort(self, axis: Any = -1, kind: Any = None, order: Any = None) -> None:
        raise CompileError("x.sort() sorts x in place, and lattice arrays are values: write "
                           "x = np.sort(x) (or lt.sort(x, axis=...))")

    def astype(self, dtype: Any) -> "Value":
        return astype(self, dtype)

    def dot(self, other: Any) -> "Value":
        return dot(self, other)

    def copy(self) -> "Value":
        return copy(self)

    def nonzero(self) -> tuple["Value", ...]:
        return nonzero(self)

    def transpose(self, *axes: int) -> "Value":
        return transpose(self, axes or None)

    # -- operators
    def __add__(self, o: Any) -> Any: return _arith(P.add_p, self, o)
    def __radd__(self, o: Any) -> Any: return _arith(P.add_p, o, self)
    def __sub__(self, o: Any) -> Any: return _arith(P.sub_p, self, o)
    def __rsub__(self, o: Any) -> Any: return _arith(P.sub_p, o, self)
    def __mul__(self, o: Any) -> Any: return _arith(P.mul_p, self, o)
    def __rmul__(self, o: Any) -> Any: return _arith(P.mul_p, o, self)
    def __truediv__(self, o: Any) -> Any: return _truediv(self, o)
    def __rtruediv__(self, o: Any) -> Any: return _truediv(o, self)
    def __floordiv__(self, o: Any) -> Any: return _arith(P.floordiv_p, self, o)
    def __rfloordiv__(self, o: Any) -> Any: return _arith(P.floordiv_p, o, self)
    def __mod__(self, o: Any) -> Any: return _arith(P.mod_p, self, o)
    def __rmod__(self, o: Any) -> Any: return _arith(P.mod_p, o, self)
    def __pow__(self, o: Any) -> Any: return power(self, o)
    def __rpow__(self, o: Any) -> Any: return power(o, self)
    def __matmul__(self, o: Any) -> Any: return matmul(self, o)
    def __rmatmul__(self, o: Any) -> Any: return matmul(o, self)
    def __neg__(self) -> Any: return negative(self)
    # round(v, 2), math.floor(v), ... in Python helpers the kernel calls (traced through)
    def __round__(self, ndigits: Optional[int] = None) -> Any: return round(self, ndigits or 0)
    def __floor__(self) -> Any: return floor(self)
    def __ceil__(self) -> Any: return ceil(self)
    def __trunc__(self) -> Any: return trunc(self)
    def __pos__(self) -> Any: return self
    def __abs__(self) -> Any: return abs(self)
    def __lt__(self, o: Any) -> Any: return _compare(P.lt_p, self, o)
    def __le__(self, o: Any) -> Any: return _compare(P.le_p, self, o)
    def __gt__(self, o: Any) -> Any: return _compare(P.gt_p, self, o)
    def __ge__(self, o: Any) -> Any: return _compare(P.ge_p, self, o)
    def __eq__(self, o: Any) -> Any: return _compare(P.eq_p, self, o)  # type: ignore[override]
    def __ne__(self, o: Any) -> Any: return _compare(P.ne_p, self, o)  # type: ignore[override]
    def __and__(self, o: Any) -> Any: return bitwise_and(self, o)
    def __rand__(self, o: Any) -> Any: return bitwise_and(o, self)
    def __or__(self, o: Any) -> Any: return bitwise_or(self, o)
    def __ror__(self, o: Any) -> Any: return bitwise_or(o, self)
    def __xor__(self, o: Any) -> Any: return bitwise_xor(self, o)
    def __rxor__(self, o: Any) -> Any: return bitwise_xor(o, self)
    def __lshift__(self, o: Any) -> Any: return left_shift(self, o)
    def __rlshift__(self, o: Any) -> Any: return left_shift(o, self)
    def __rshift__(self, o: Any) -> Any: return right_shift(self, o)
    def __rrshift__(self, o: Any) -> Any: return right_shift(o, self)
    def __invert__(self) -> Any: return invert(self)
    __hash__ = object.__hash__

    def __getitem__(self, key: Any) -> "Value":
        return getitem(self, key)

    def __bool__(self) -> bool:
        raise CompileError(
            "the truth value of a traced value is only known when the kernel runs: "
            "write the `if` in the kernel body itself (it becomes a branch), or use lt.where")

    def __index__(self) -> int:
        raise CompileError("a traced integer cannot be used where Python needs a constant "
                           "(a size or index known at compile time)")

    __int__ = __index__

    def __float__(self) -> float:
        raise CompileError("a traced value cannot become a Python float; use .astype(lt.f64)")

    def __iter__(self) -> Any:
        raise CompileError("iterating over a traced array is not supported; "
                           "use `for i in range(x.shape[0])`")

    def __len__(self) -> int:
        raise CompileError("len() of a traced array: use x.shape[0]")


# --------------------------------------------------------------------------- coercion
def is_traced(x: Any) -> bool:
    return isinstance(x, Value)


def _is_pyscalar(x: Any) -> bool:
    return isinstance(x, _PY_SCALARS) and not isinstance(x, Value)


def _scalar_dtype(x: Any) -> tuple[DType, bool]:
    """The dtype of a constant and whether it is *weak* (NEP 50: only Python's bool, int and
    float are; a NumPy scalar such as ``np.float64(0.5)`` keeps its dtype in promotion)."""
    if isinstance(x, np.generic):
        try:
            return dtype_of(x.dtype), False
        except KeyError:
            raise CompileError(f"NumPy scalars of dtype {x.dtype} are not supported in "
                               "kernels (use a float16/32/64, (u)int8/16/32/64 or bool "
                               "scalar)") from None
    if isinstance(x, bool):
        return bool_, True
    if isinstance(x, int):
        return i64, True
    if isinstance(x, float):
        return f64, True
    raise CompileError(f"cannot use {type(x).__name__} {x!r} as a value inside a kernel")


def _weak_dtype(x: Any) -> DType:
    return _scalar_dtype(x)[0]


def to_value(x: Any, dtype: Optional[DType] = None) -> Value:
    """A Value for a Value or a Python scalar (with ``dtype``, converted to it)."""
    if isinstance(x, Value):
        return x if dtype is None or x.dtype is dtype else astype(x, dtype)
    if isinstance(x, np.ndarray):
        raise CompileError("a NumPy array from outside the kernel cannot be used inside it; "
                           "pass it as an argument")
    if not _is_pyscalar(x):
        raise CompileError(f"cannot use {type(x).__name__} {x!r} as a value inside a kernel")
    d = dtype or _weak_dtype(x)
    if d.is_int and isinstance(x, (float, np.floating)):
        # only reached through explicit conversion: convert's rule (truncate, saturate, NaN -> 0)
        (r,) = P.impls[P.convert_p](np.asarray(x, np.float64), dtype=d)
        x = int(r)
    if d.is_int and isinstance(x, int) and not isinstance(x, bool):
        info = np.iinfo(d.np)
        if not info.min <= x <= info.max:
            # NumPy 2 (NEP 50) raises OverflowError for a Python int its partner cannot hold
            raise CompileError(
                f"the Python int {x} is out of range for {d} ({info.min}..{info.max}); "
                f"convert the other operand first (e.g. x.astype(lt.i64)) or use a constant "
                f"that fits")
    elif isinstance(x, np.integer) and d.is_int:
        x = int(np.asarray(x).astype(d.np))  # a strong NumPy int converted explicitly wraps
    return Value(Lit.of(x, d))


def _common_dtype(*xs: Any) -> DType:
    acc: Optional[DType] = None
    acc_weak = True
    for x in xs:
        d, weak = (x.dtype, False) if isinstance(x, Value) else _scalar_dtype(x)
        if acc is None:
            acc, acc_weak = d, weak
        else:
            acc = promote(acc, d, a_weak=acc_weak, b_weak=weak)
            acc_weak = acc_weak and weak
    assert acc is not None
    return acc


def _bind1(prim: Any, *xs: Value, **params: Any) -> Value:
    (v,) = ir_bind(prim, *(x.atom for x in xs), **params)
    return Value(v, owned=True)


def _fold(fn: Any, *xs: Any) -> Any:
    """Evaluate on Python scalars at trace time (constant folding of closures and literals)."""
    return fn(*xs)


def astype(x: Any, dtype: Any) -> Any:
    d = as_dtype(dtype)
    if not isinstance(x, Value):
        return to_value(x, d) if d is not None else x
    if x.dtype is d:
        return x
    if isinstance(x.atom, Lit):
        (r,) = P.impls[P.convert_p](np.asarray(x.atom.value, x.dtype.np), dtype=d)
        return Value(Lit.of(r.item(), d))
    return _bind1(P.convert_p, x, dtype=d)


# --------------------------------------------------------------------------- elementwise
_PY_ARITH = {
    P.add_p: lambda a, b: a + b, P.sub_p: lambda a, b: a - b, P.mul_p: lambda a, b: a * b,
    P.floordiv_p: lambda a, b: a // b, P.mod_p: lambda a, b: a % b,
}


def _dim_of_result(prim: Any, a: Any, b: Any) -> Optional[Dim]:
    """Track symbolic sizes through +, - and * by a constant."""
    da = a.dim if isinstance(a, Value) else (Dim.of(int(a)) if isinstance(a, (int, np.integer)) and not isinstance(a, bool) else None)
    db = b.dim if isinstance(b, Value) else (Dim.of(int(b)) if isinstance(b, (int, np.integer)) and not isinstance(b, bool) else None)
    if da is None or db is None:
        return None
    if prim is P.add_p:
        return da + db
    if prim is P.sub_p:
        return da - db
    if prim is P.mul_p and (da.is_const or db.is_const):
        return da.scale(db.const) if db.is_const else db.scale(da.const)
    return None


def _arith(prim: Any, a: Any, b: Any) -> Any:
    if not isinstance(a, Value) and not isinstance(b, Value):
        return _fold(_PY_ARITH[prim], a, b)
    d = _common_dtype(a, b)
    if d.is_bool:
        if prim in (P.add_p, P.mul_p):
            return _logical(P.or_p if prim is P.add_p else P.and_p, a, b)
        raise CompileError(f"{prim.name} is not defined for bool operands")
    out = _bind1(prim, to_value(a, d), to_value(b, d))
    if d is i64:
        out.dim = _dim_of_result(prim, a, b)
        out.base = _offset_of_result(prim, a, b)
    return out


def _is_pyint(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _offset_of_result(prim: Any, a: Any, b: Any) -> Optional[tuple[Atom, int, int]]:
    """``v + c``, ``c + v``, ``v - c``, ``v * c``, ``c * v`` of an i64 Value ``v`` and a Python
    int ``c``: the affine form of the result in ``v``'s root (see :attr:`Value.base`)."""
    if prim in (P.add_p, P.mul_p) and isinstance(b, Value) and _is_pyint(a):
        a, b = b, a
    if prim not in (P.add_p, P.sub_p, P.mul_p) or not (isinstance(a, Value) and _is_pyint(b)) \
            or a.ndim or a.dtype is not i64:
        return None
    root, scale, off = a.affine()
    c = int(b)
    if prim is P.mul_p:
        return root, scale * c, off * c
    return root, scale, off + (c if prim is P.add_p else -c)


def _truediv(a: Any, b: Any) -> Any:
    if not isinstance(a, Value) and not isinstance(b, Value):
        return a / b
    d = _common_dtype(a, b)
    if not d.is_float:
        d = f64  # NumPy: true division of integers gives float64
    return _bind1(P.div_p, to_value(a, d), to_value(b, d))


_PY_COMPARE = {P.lt_p: lambda a, b: a < b, P.le_p: lambda a, b: a <= b,
               P.gt_p: lambda a, b: a > b, P.ge_p: lambda a, b: a >= b,
               P.eq_p: lambda a, b: a == b, P.ne_p: lambda a, b: a != b}
#: the comparison with its operands swapped (``3 < x`` is ``x > 3``)
_FLIPPED = {P.lt_p: P.gt_p, P.le_p: P.ge_p, P.gt_p: P.lt_p, P.ge_p: P.le_p,
            P.eq_p: P.eq_p, P.ne_p: P.ne_p}


def _compare(prim: Any, a: Any, b: Any) -> Any:
    d = _common_dtype(a, b)
    if d.is_int:
        # NumPy 2 compares an integer array with a Python int outside its range exactly
        # (``u8 < 300`` is all True) rather than raising: the answer is known statically
        for x, c, p in ((a, b, prim), (b, a, _FLIPPED[prim])):
            if isinstance(x, Value) and isinstance(c, int) and not isinstance(c, bool):
                info = np.iinfo(d.np)
                if not info.min <= c <= info.max:
                    # x op c has the truth value of (any in-range value) op c
                    r = _PY_COMPARE[p](int(info.min), c)
                    return full_like(x, r, dtype=bool_)
    return _bind1(prim, to_value(a, d), to_value(b, d))


def _logical(prim: Any, a: Any, b: Any) -> Any:
    for x in (a, b):
        if _common_dtype(x) is not bool_:
            raise CompileError(f"this logical operation takes bool operands, got "
                               f"{_common_dtype(x)}")
    return _bind1(prim, to_value(a, bool_), to_value(b, bool_))


_PY_BITWISE = {P.bitand_p: lambda a, b: a & b, P.bitor_p: lambda a, b: a | b,
               P.bitxor_p: lambda a, b: a ^ b, P.shl_p: lambda a, b: a << b,
               P.shr_p: lambda a, b: a >> b}
_SYMBOL = {P.bitand_p: "&", P.bitor_p: "|", P.bitxor_p: "^", P.shl_p: "<<", P.shr_p: ">>"}
#: on bools, & | ^ are the logical operations (as NumPy's bitwise ufuncs are on bool arrays)
_BOOL_BITWISE = {P.bitand_p: P.and_p, P.bitor_p: P.or_p, P.bitxor_p: P.ne_p}


def _bitwise(prim: Any, a: Any, b: Any) -> Any:
    """``a & b`` etc. with NumPy's promotion; integers only, and bools for & | ^."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        return _fold(_PY_BITWISE[prim], a, b)
    d = _common_dtype(a, b)
    if d.is_bool:
        if prim in _BOOL_BITWISE:
            return _bind1(_BOOL_BITWISE[prim], to_value(a, d), to_value(b, d))
        d = i8  # NumPy has no bool shift loop: bool << bool runs (and gives) int8
    if not d.is_int:
        raise CompileError(f"`{_SYMBOL[prim]}` takes integer (or bool) operands, got {d}; "
                           "convert with .astype(lt.i64) first if the values are integers")
    return _bind1(prim, to_value(a, d), to_value(b, d))


def bitwise_and(a: Any, b: Any) -> Any:
    """``a & b``: bitwise and of integers, logical and of bools (``np.bitwise_and``)."""
    return _bitwise(P.bitand_p, a, b)


def bitwise_or(a: Any, b: Any) -> Any:
    """``a | b``: bitwise or of integers, logical or of bools (``np.bitwise_or``)."""
    return _bitwise(P.bitor_p, a, b)


def bitwise_xor(a: Any, b: Any) -> Any:
    """``a ^ b``: bitwise xor of integers, logical xor of bools (``np.bitwise_xor``)."""
    return _bitwise(P.bitxor_p, a, b)


def left_shift(a: Any, b: Any) -> Any:
    """``a << b`` (``np.left_shift``): 0 when the count is outside ``[0, bits)``."""
    return _bitwise(P.shl_p, a, b)


def right_shift(a: Any, b: Any) -> Any:
    """``a >> b`` (``np.right_shift``): arithmetic for signed, logical for unsigned dtypes; a
    count outside ``[0, bits)`` gives 0, or -1 for a negative signed ``a``."""
    return _bitwise(P.shr_p, a, b)


def invert(x: Any) -> Any:
    """``~x`` (``np.invert``): bitwise not of integers, logical not of bools."""
    if not isinstance(x, Value):
        return ~x
    if x.dtype.is_bool:
        return _bind1(P.not_p, x)
    if not x.dtype.is_int:
        raise CompileError(f"`~` takes an integer or bool operand, got {x.dtype}; for "
                           "a logical not of a comparison write ~(x > 0)")
    return _bind1(P.invert_p, x)


def bitwise_count(x: Any) -> Any:
    """The number of one bits of ``|x|`` as u8 (``np.bitwise_count``)."""
    if not isinstance(x, Value):
        return np.bitwise_count(x)
    if x.dtype.is_bool:
        x = astype(x, i8)  # NumPy counts a bool as the int8 0 or 1
    if not x.dtype.is_int:
        raise CompileError(f"bitwise_count takes integers, got {x.dtype}")
    return _bind1(P.popcount_p, x)


def logical_not(x: Any) -> Any:
    if not isinstance(x, Value):
        return not x
    if x.dtype is not bool_:
        raise CompileError(f"`not`/`~` take a bool here, got {x.dtype}")
    return _bind1(P.not_p, x)


def _float_unary(prim: Any, fn: Any) -> Any:
    def op(x: Any) -> Any:
        if not isinstance(x, Value):
            if _is_pyscalar(x):  # a constant: fold it with the reference implementation
                dt = x.dtype if isinstance(x, np.floating) else np.float64
                (r,) = P.impls[prim](np.asarray(x, dtype=dt))
                return r[()]
            v = to_value(x, f64)
        else:
            # NumPy's loop: the smallest float holding the integer type (i8 -> f16, i16 -> f32)
            v = x if x.dtype.is_float else astype(x, promote(x.dtype, f16))
        return _bind1(prim, v)
    op.__name__ = prim.name
    op.__doc__ = (f"Elementwise {prim.name} (integers and bools are converted to the smallest "
                  "float holding them, as NumPy does: f16 for 8-bit, f32 for 16-bit, else "
                  "f64); on a Python or NumPy scalar it is evaluated at once.")
    return op


exp = _float_unary(P.exp_p, math.exp)
log = _float_unary(P.log_p, math.log)
log1p = _float_unary(P.log1p_p, math.log1p)
expm1 = _float_unary(P.expm1_p, math.expm1)
sqrt = _float_unary(P.sqrt_p, math.sqrt)
tanh = _float_unary(P.tanh_p, math.tanh)
sin = _float_unary(P.sin_p, math.sin)
cos = _float_unary(P.cos_p, math.cos)
erf = _float_unary(P.erf_p, math.erf)
erfc = _float_unary(P.erfc_p, math.erfc)
_floor = _float_unary(P.floor_p, math.floor)
sigmoid = _float_unary(P.sigmoid_p, None)
softplus = _float_unary(P.softplus_p, None)


# the wider NumPy math surface (NumPy's names; integers become f64 first, as in NumPy)
tan = _float_unary(P.tan_p, None)
arcsin = _float_unary(P.arcsin_p, None)
arccos = _float_unary(P.arccos_p, None)
arctan = _float_unary(P.arctan_p, None)
sinh = _float_unary(P.sinh_p, None)
cosh = _float_unary(P.cosh_p, None)
arcsinh = _float_unary(P.arcsinh_p, None)
arccosh = _float_unary(P.arccosh_p, None)
arctanh = _float_unary(P.arctanh_p, None)
exp2 = _float_unary(P.exp2_p, None)
log2 = _float_unary(P.log2_p, None)
log10 = _float_unary(P.log10_p, None)
cbrt = _float_unary(P.cbrt_p, None)
_trunc = _float_unary(P.trunc_p, None)
_ceil = _float_unary(P.ceil_p, None)


def _integral(float_op: Any, name: str) -> Any:
    """floor/ceil/trunc: integers (and bools) are already integral and keep their dtype, as in
    NumPy 2; floats round."""
    def op(x: Any) -> Any:
        if isinstance(x, Value) and not x.dtype.is_float:
            return x
        if not isinstance(x, Value) and isinstance(x, (bool, int, np.bool_, np.integer)):
            return getattr(np, name)(x)
        return float_op(x)
    op.__name__ = name
    op.__doc__ = f"Elementwise {name} (integers are returned unchanged, as NumPy 2 does)."
    return op


floor = _integral(_floor, "floor")
trunc = _integral(_trunc, "trunc")
ceil = _integral(_ceil, "ceil")
rint = _float_unary(P.rint_p, None)
gamma = _float_unary(P.gamma_p, None)
lgamma = _float_unary(P.lgamma_p, None)
digamma = _float_unary(P.digamma_p, None)
_trigamma = _float_unary(P.trigamma_p, None)


def polygamma(n: int, x: Any) -> Any:
    """``polygamma(n, x)``, the n-th derivative of digamma, for ``n`` = 0 (digamma) and 1
    (trigamma); ``n`` is a Python int."""
    if isinstance(n, Value) or not isinstance(n, (int, np.integer)) or isinstance(n, bool) \
            or n not in (0, 1):
        raise CompileError(f"polygamma(n, x) is implemented for the constant orders n = 0 "
                           f"(digamma) and n = 1 (trigamma), got n = {n!r}")
    return digamma(x) if n == 0 else _trigamma(x)


def fabs(x: Any) -> Any:
    """Absolute value as a float (np.fabs: integers become f64)."""
    if not isinstance(x, Value):
        return np.fabs(x)
    return abs(x if x.dtype.is_float else astype(x, f64))


def _scaled(x: Any, c: float, np_fn: Any) -> Any:
    if not isinstance(x, Value):
        return np_fn(x)
    return (x if x.dtype.is_float else astype(x, f64)) * c


def deg2rad(x: Any) -> Any:
    """Degrees to radians: ``x * (pi/180)``, as NumPy computes it."""
    return _scaled(x, math.pi / 180.0, np.deg2rad)


def rad2deg(x: Any) -> Any:
    """Radians to degrees: ``x * (180/pi)``, as NumPy computes it."""
    return _scaled(x, 180.0 / math.pi, np.rad2deg)


def sign(x: Any) -> Any:
    """-1, 0 or 1 by the sign of ``x`` (0 for -0.0, NaN for NaN); keeps integer dtypes."""
    if not isinstance(x, Value):
        return np.sign(x)
    if x.dtype.is_bool:
        raise CompileError("sign is not defined for bool (NumPy refuses it too); convert "
                           "with .astype(lt.i64) first")
    return _bind1(P.sign_p, x)


def signbit(x: Any) -> Any:
    """Whether the sign bit is set (True for -0.0 and negative NaNs)."""
    if not isinstance(x, Value):
        return np.signbit(x)
    if not x.dtype.is_float:
        return x < 0 if not x.dtype.is_bool else full_like(x, False, dtype=bool_)
    return _bind1(P.signbit_p, x)


def square(x: Any) -> Any:
    """``x * x`` (keeps integer dtypes, as np.square)."""
    return x * x


def reciprocal(x: Any) -> Any:
    """``1 / x``; for integers NumPy's integer reciprocal: ``x`` where ``|x| = 1``, else 0
    (also for 0, as lattice's integer division by zero)."""
    if not isinstance(x, Value):
        return np.reciprocal(x)
    if x.dtype.is_float:
        return 1.0 / x
    if x.dtype.is_bool:
        raise CompileError("reciprocal is not defined for bool; convert with .astype first")
    return where((x == 1) | (x == -1), x, 0)


def isinf(x: Any) -> Any:
    """Whether ``x`` is +inf or -inf (False for integers)."""
    if not isinstance(x, Value):
        return np.isinf(x)
    if not x.dtype.is_float:
        return full_like(x, False, dtype=bool_)
    return abs(x) == math.inf


def nan_to_num(x: Any, copy: bool = True, nan: float = 0.0, posinf: Optional[float] = None,
               neginf: Optional[float] = None) -> Any:
    """NaN -> ``nan``, +inf -> ``posinf`` (default the dtype's largest finite value), -inf ->
    ``neginf`` (default its most negative), as np.nan_to_num; integers are returned as they
    are.  ``copy`` is accepted for NumPy's signature (a kernel's values are never shared)."""
    if not isinstance(x, Value):
        return np.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)
    if not x.dtype.is_float:
        return x
    big = float(np.finfo(x.dtype.np).max)
    hi = big if posinf is None else posinf
    lo = -big if neginf is None else neginf
    return where(x != x, nan, where(x == math.inf, hi, where(x == -math.inf, lo, x)))


def round(x: Any, decimals: int = 0) -> Any:  # noqa: A001 - mirrors NumPy's name
    """Round half to even (np.round / np.around, Python's round); with ``decimals`` (a Python
    int) as NumPy does it: ``rint(x * 10**d) / 10**d`` (for d < 0, ``rint(x / 10**-d) *
    10**-d``).  Integers are returned unchanged for ``decimals >= 0``."""
    if isinstance(decimals, Value) or not isinstance(decimals, (int, np.integer)) \
            or isinstance(decimals, bool):
        raise CompileError(f"round: decimals must be a Python int, got {decimals!r}")
    if not isinstance(x, Value):
        return np.round(x, decimals)
    if not x.dtype.is_float:
        if decimals >= 0:
            return x
        raise CompileError("round of an integer array to negative decimals is not supported; "
                           "convert to float first (.astype(lt.f64))")
    if decimals == 0:
        return rint(x)
    if decimals > 0:
        f = 10.0 ** decimals
        return rint(x * f) / f
    f = 10.0 ** -decimals
    return rint(x / f) * f


def _float_binary(prim: Any) -> Any:
    def op(a: Any, b: Any) -> Any:
        d = _common_dtype(a, b)
        if not d.is_float:
            d = f64
        if not isinstance(a, Value) and not isinstance(b, Value):
            (r,) = P.impls[prim](np.asarray(a, d.np), np.asarray(b, d.np))
            return r[()]
        return _bind1(prim, to_value(a, d), to_value(b, d))
    op.__name__ = prim.name
    op.__doc__ = (f"Elementwise {prim.name}, as NumPy's (integers are converted to f64 first); "
                  "on two constants it is evaluated at once.")
    return op


arctan2 = _float_binary(P.arctan2_p)
hypot = _float_binary(P.hypot_p)
copysign = _float_binary(P.copysign_p)
logaddexp2 = _float_binary(P.logaddexp2_p)


def float_power(a: Any, b: Any) -> Any:
    """``a ** b`` computed in f64 (np.float_power)."""
    return _bind1(P.pow_p, to_value(a, f64), to_value(b, f64)) if (
        isinstance(a, Value) or isinstance(b, Value)) else np.float_power(a, b)


def heaviside(x1: Any, x2: Any) -> Any:
    """0 where ``x1 < 0``, ``x2`` where ``x1 == 0``, 1 where ``x1 > 0``, NaN for NaN."""
    d = _common_dtype(x1, x2)
    if not d.is_float:
        d = f64
    if not isinstance(x1, Value) and not isinstance(x2, Value):
        return np.heaviside(np.asarray(x1, d.np), np.asarray(x2, d.np))[()]
    x1 = to_value(x1, d)
    return where(x1 == 0, to_value(x2, d), where(x1 < 0, 0.0, where(x1 > 0, 1.0, x1)))


def mod(a: Any, b: Any) -> Any:
    """``a % b``: the remainder with the divisor's sign (np.mod / np.remainder)."""
    return _arith(P.mod_p, a, b)


def abs(x: Any) -> Any:  # noqa: A001 - mirrors NumPy's name
    """Elementwise absolute value (keeps integer dtypes; the identity on unsigned ones, and
    ``abs`` of the most negative signed value wraps to itself, as in NumPy)."""
    if not isinstance(x, Value):
        return builtins.abs(x)
    if x.dtype.is_bool:
        return x
    return _bind1(P.abs_p, x)


def negative(x: Any) -> Any:
    if not isinstance(x, Value):
        return -x
    if x.dtype.is_bool:
        raise CompileError("unary minus is not defined for bool")
    out = _bind1(P.neg_p, x)
    if x.dim is not None:
        out.dim = -x.dim
    return out


def _binary_numeric(prim: Any, pyfn: Any) -> Any:
    def op(a: Any, b: Any) -> Any:
        if not isinstance(a, Value) and not isinstance(b, Value):
            return pyfn(a, b)
        d = _common_dtype(a, b)
        if d.is_bool:
            d = i64
        return _bind1(prim, to_value(a, d), to_value(b, d))
    op.__name__ = prim.name
    return op


# on two constants these fold as NumPy's ufuncs do (a strong NumPy scalar, NEP 50), not as
# Python's max/min (which would hand back one of the arguments, weak or strong by value)
maximum = _binary_numeric(P.max_p, np.maximum)
minimum = _binary_numeric(P.min_p, np.minimum)
fmax = _binary_numeric(P.fmax_p, np.fmax)  # NaN-ignoring
fmin = _binary_numeric(P.fmin_p, np.fmin)
fmod = _binary_numeric(P.fmod_p, np.fmod)  # the remainder with the dividend's sign (C's)


def logaddexp(a: Any, b: Any) -> Any:
    """log(exp(a) + exp(b)) computed without overflow."""
    d = _common_dtype(a, b)
    if not d.is_float:
        d = f64
    return _bind1(P.logaddexp_p, to_value(a, d), to_value(b, d))


def power(a: Any, b: Any) -> Any:
    """``a ** b``; small non-negative integer literal exponents become multiplications.  Integer
    operands give an integer (exact, wrapping on overflow, as NumPy's; a negative exponent
    raises NumPy's ValueError when the kernel runs)."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        return a ** b
    if isinstance(b, (int, np.integer)) and not isinstance(b, bool) and 0 <= b <= 4:
        if b == 0:
            return full_like(a, 1)
        acc = a
        for _ in range(int(b) - 1):
            acc = acc * a
        return acc
    d = _common_dtype(a, b)
    if d.is_bool:
        d = i64
    return _bind1(P.pow_p, to_value(a, d), to_value(b, d))


_MISSING = object()


def where(cond: Any, a: Any = _MISSING, b: Any = _MISSING) -> Any:
    """Elementwise ``a if cond else b`` (both sides are computed); with the condition alone,
    ``np.where(cond)`` = :func:`nonzero`."""
    if a is _MISSING and b is _MISSING:
        return nonzero(cond)
    if a is _MISSING or b is _MISSING:
        raise CompileError("where takes one argument (the positions where it is true) or "
                           "three (cond, x, y)")
    if not isinstance(cond, Value):
        if not isinstance(a, Value) and not isinstance(b, Value):
            # constants fold as np.where does: a NumPy value, strong in promotion
            return np.where(cond, a, b)[()]
        cond = to_value(bool(cond), bool_)  # the select gives NumPy's dtype and shape
    if cond.dtype is not bool_:
        raise CompileError(f"where: the condition must be bool, got {cond.dtype}")
    d = _common_dtype(a, b)
    return _bind1(P.select_p, cond, to_value(a, d), to_value(b, d))


def clip(x: Any, lo: Any, hi: Any) -> Any:
    return minimum(maximum(x, lo), hi)


def isnan(x: Any) -> Any:
    if not isinstance(x, Value):
        return math.isnan(x)
    if not x.dtype.is_float:
        return full_like(x, False, dtype=bool_)
    return x != x


def isfinite(x: Any) -> Any:
    if not isinstance(x, Value):
        return math.isfinite(x)
    if not x.dtype.is_float:
        return full_like(x, True, dtype=bool_)
    return abs(x) < math.inf


# --------------------------------------------------------------------------- reductions
def _axes(x: Value, axis: Any, name: str) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(x.ndim))
    ax = axis if isinstance(axis, tuple) else (axis,)
    out = []
    for a in ax:
        if isinstance(a, Value) or not isinstance(a, (int, np.integer)):
            raise CompileError(f"{name}: axis must be a Python int or tuple of ints")
        if not -x.ndim <= a < x.ndim:
            raise CompileError(f"{name}: axis {a} is out of range for a {x.ndim}-D array")
        out.append(int(a) % x.ndim)
    if len(set(out)) != len(out):
        raise CompileError(f"{name}: repeated axis in {axis}")
    return tuple(sorted(out))


def _as_traced(x: Any, name: str) -> Value:
    if isinstance(x, Value):
        return x
    return to_value(x)


def sum(x: Any, axis: Any = None) -> Any:  # noqa: A001
    """Sum over ``axis`` (all axes by default); bool and integers narrower than 64 bits sum
    into i64 (unsigned ones into u64) like NumPy; f16 accumulates in f32 when the reduction
    covers the innermost axis (see :mod:`lattice.ir.primitives`)."""
    x = _as_traced(x, "sum")
    return _bind1(P.reduce_sum_p, x, axes=_axes(x, axis, "sum"))


def _count(x: Value, axes: tuple[int, ...]) -> Any:
    n: Any = 1
    shape = x.shape
    for a in axes:
        n = n * shape[a]
    return n


def mean(x: Any, axis: Any = None) -> Any:
    """Arithmetic mean; integers average in f64 like NumPy, f16 in f32 (rounded to f16 at the
    end, as NumPy does: a count above 65504 is inf in f16)."""
    x = _as_traced(x, "mean")
    axes = _axes(x, axis, "mean")
    if x.dtype is f16:
        return astype(mean(astype(x, f32), axis), f16)
    if not x.dtype.is_float:
        x = astype(x, f64)
    s = sum(x, axes)
    n = _count(x, axes)
    return s / astype(n, x.dtype) if isinstance(n, Value) else s / n


def _minmax(prim: Any, pyfn: Any, name: str) -> Any:
    def op(x: Any, axis: Any = None) -> Any:
        x = _as_traced(x, name)
        if x.dtype.is_bool:
            x = astype(x, i64)
        return _bind1(prim, x, axes=_axes(x, axis, name))
    op.__name__ = name
    op.__doc__ = f"{name} over ``axis`` (all by default); NaN propagates; empty raises."
    return op


max = _minmax(P.reduce_max_p, builtins.max, "max")  # noqa: A001
min = _minmax(P.reduce_min_p, builtins.min, "min")  # noqa: A001


def _argfn(prim: Any, name: str) -> Any:
    def op(x: Any, axis: Optional[int] = None) -> Any:
        x = _as_traced(x, name)
        if x.dtype.is_bool:
            x = astype(x, i64)
        ax = None if axis is None else _axes(x, axis, name)[0]
        return _bind1(prim, x, axis=ax)
    op.__name__ = name
    op.__doc__ = (f"Index of the first {name[3:]} along ``axis`` (flattened when None); "
                  "a NaN counts as the extreme, as in NumPy.")
    return op


argmax = _argfn(P.argmax_p, "argmax")
argmin = _argfn(P.argmin_p, "argmin")


# --------------------------------------------------------------------------- sorting
_SORT_KINDS = (None, "quicksort", "mergesort", "heapsort", "stable")


def _lane_axis(x: Any, axis: Any, name: str) -> tuple[Value, int]:
    """The traced array and the one axis a sort or an order statistic works along (``None``:
    the only axis of a 1-D array; flattening a larger one needs a reshape lattice lacks)."""
    x = _as_traced(x, name)
    if not x.ndim:
        raise CompileError(f"{name}: needs an array, got a scalar")
    if axis is None:
        if x.ndim != 1:
            raise CompileError(f"{name}: axis=None (over the flattened {x.ndim}-D array) is "
                               "not supported, lattice has no reshape; pass axis=k")
        return x, 0
    if isinstance(axis, tuple):
        raise CompileError(f"{name}: axis must be one int, got the tuple {axis}")
    return x, _axes(x, axis, name)[0]


def _sort_args(name: str, kind: Any, order: Any) -> None:
    if kind not in _SORT_KINDS:
        raise CompileError(f"{name}: unknown kind {kind!r} (one of {_SORT_KINDS[1:]})")
    if order is not None:
        raise CompileError(f"{name}: order= (sorting structured arrays by field) is not "
                           "supported")


def sort(x: Any, axis: Any = -1, kind: Any = None, order: Any = None) -> Value:
    """``np.sort``: a sorted copy along ``axis`` (last by default), NaN last.  Every ``kind``
    is the same stable merge sort."""
    _sort_args("sort", kind, order)
    x, ax = _lane_axis(x, axis, "sort")
    return _bind1(P.sort_p, x, axis=ax)


def argsort(x: Any, axis: Any = -1, kind: Any = None, order: Any = None) -> Value:
    """``np.argsort``: i64 positions that sort ``x`` along ``axis``, NaN last.  Always stable
    (equal values keep their input order: NumPy's ``kind="stable"``)."""
    _sort_args("argsort", kind, order)
    x, ax = _lane_axis(x, axis, "argsort")
    return _bind1(P.argsort_p, x, axis=ax)


def _kth(x: Value, ax: int, kth: Any, name: str) -> None:
    """Check ``kth`` (an int or a sequence of ints) against a lane of static length."""
    ks = list(kth) if isinstance(kth, (list, tuple)) else [kth]
    n = x.type.shape[ax]
    for k in ks:
        k = _static_int(k, name, "kth")
        if n.is_const and not -n.const <= k < n.const:
            raise CompileError(f"{name}: kth(={k}) out of bounds ({n.const})")


def partition(x: Any, kth: Any, axis: Any = -1, kind: Any = "introselect",
              order: Any = None) -> Value:
    """``np.partition``: here the lanes fully sorted (NaN last), which is one of the
    arrangements NumPy's contract allows (element ``kth`` in its sorted place, none larger
    before it, none smaller after), though not always the one NumPy returns."""
    _sort_args("partition", None, order)
    x, ax = _lane_axis(x, axis, "partition")
    _kth(x, ax, kth, "partition")
    return _bind1(P.sort_p, x, axis=ax)


def argpartition(x: Any, kth: Any, axis: Any = -1, kind: Any = "introselect",
                 order: Any = None) -> Value:
    """``np.argpartition``: the (stable) :func:`argsort`, a valid partition for every kth."""
    _sort_args("argpartition", None, order)
    x, ax = _lane_axis(x, axis, "argpartition")
    _kth(x, ax, kth, "argpartition")
    return _bind1(P.argsort_p, x, axis=ax)


def searchsorted(a: Any, v: Any, side: Any = "left", sorter: Any = None) -> Value:
    """``np.searchsorted``: where each element of ``v`` (a scalar or an array) would go in the
    sorted 1-D ``a`` to keep it sorted: before equal elements (``side="left"``) or after them
    (``"right"``).  Compared in the dtypes' promotion, NaN last."""
    if sorter is not None:
        raise CompileError("searchsorted: sorter= is not supported; index the array with "
                           "np.sort(a) instead")
    if side not in ("left", "right"):
        raise CompileError(f"searchsorted: side must be 'left' or 'right', got {side!r}")
    a = _as_traced(a, "searchsorted")
    if a.ndim != 1:
        raise CompileError(f"searchsorted: the sorted array must be 1-D, got {a.type}")
    dt = _common_dtype(a, v)
    return _bind1(P.searchsorted_p, to_value(a, dt), to_value(v, dt), side=side)


def _static_int(v: Any, name: str, what: str) -> int:
    if isinstance(v, Value) or not isinstance(v, (int, np.integer)) or isinstance(v, bool):
        raise CompileError(f"{name}: {what} must be a Python int known when the kernel is "
                           f"compiled, got {v!r}")
    return int(v)


def bincount(x: Any, weights: Any = None, minlength: Any = 0) -> Value:
    """``np.bincount``: how often each value 0..max(x) occurs in the 1-D non-negative integer
    ``x`` (with ``weights``: the f64 sums of their weights), at least ``minlength`` entries.
    Its size is known only when the kernel runs; a negative value is a ``ValueError``."""
    x = _as_traced(x, "bincount")
    if x.ndim != 1 or x.dtype.is_float:
        raise CompileError(f"bincount: takes a 1-D array of non-negative integers, got "
                           f"{x.type}; convert floats with .astype(lt.i64)")
    if x.dtype.is_bool:
        x = astype(x, i64)
    ml = _static_int(minlength, "bincount", "minlength")
    if ml < 0:
        raise CompileError("bincount: minlength must be non-negative")
    if weights is None:
        return _bind1(P.bincount_p, x, minlength=ml)
    w = to_value(weights, f64)
    if w.type.shape != x.type.shape:
        raise CompileError(f"bincount: the weights ({w.type}) and the list ({x.type}) have "
                           "different lengths")
    return _bind1(P.bincount_p, x, w, minlength=ml)


def unique(x: Any, return_index: bool = False, return_inverse: bool = False,
           return_counts: bool = False, axis: Any = None) -> Value:
    """``np.unique`` of a 1-D array: its distinct values, sorted (NaNs count as one).  Its
    size is known only when the kernel runs."""
    if return_index or return_inverse or return_counts or axis is not None:
        raise CompileError("unique: only the sorted values are supported (no return_index, "
                           "return_inverse, return_counts or axis)")
    x = _as_traced(x, "unique")
    if x.ndim != 1:
        raise CompileError(f"unique: takes a 1-D array, got {x.type} (lattice has no reshape "
                           "to flatten it)")
    return _bind1(P.unique_p, x)


def histogram(x: Any, bins: Any = 10, range: Any = None, density: Any = None,  # noqa: A002
              weights: Any = None) -> tuple[Value, Value]:
    """``np.histogram`` with ``bins`` equal bins: ``(counts i64[bins], edges[bins + 1])``.
    ``range=(lo, hi)`` (numbers or traced scalars) defaults to the data's [min, max]; every
    bin is half-open but the last, values outside the range are not counted."""
    if density or weights is not None:
        raise CompileError("histogram: density= and weights= are not supported")
    if isinstance(bins, Value) or not isinstance(bins, (int, np.integer)) or \
            isinstance(bins, bool):
        raise CompileError(f"histogram: bins must be a positive Python int (explicit bin edges "
                           f"are not supported), got {bins!r}")
    if bins <= 0:
        raise CompileError(f"histogram: `bins` must be positive, when an integer (got {bins})")
    x = _as_traced(x, "histogram")
    if x.ndim != 1:
        raise CompileError(f"histogram: takes a 1-D array, got {x.type}")
    if x.dtype.is_bool:
        x = astype(x, i64)
    rng: list[Value] = []
    if range is not None:
        if not isinstance(range, (tuple, list)) or len(range) != 2:
            raise CompileError(f"histogram: range must be a pair (lo, hi), got {range!r}")
        lo, hi = range
        if not isinstance(lo, Value) and not isinstance(hi, Value):
            if not lo <= hi:
                raise CompileError("histogram: max must be larger than min in range "
                                   f"parameter (got {range!r})")
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise CompileError(f"histogram: supplied range of {list(range)} is not finite")
        rng = [to_value(lo, f64), to_value(hi, f64)]
        for r in rng:
            if r.ndim:
                raise CompileError("histogram: the range bounds must be scalars")
    (counts, edges) = ir_bind(P.histogram_p, x.atom, *(r.atom for r in rng), bins=int(bins))
    return Value(counts, owned=True), Value(edges, owned=True)


# --------------------------------------------------------------------------- order statistics
def _at_lane(s: Value, ax: int, k: Any) -> Value:
    """``s`` at position ``k`` (an int or a traced i64) along axis ``ax``."""
    return getitem(s, (slice(None),) * ax + (k,))


def _stat_prep(x: Any, axis: Any, name: str) -> tuple[Value, int, Value, Any]:
    """The data along its lane axis, sorted with one NaN appended per lane (what an empty
    lane reads: its statistics are NaN), the axis, and the lane length (int or traced)."""
    x, ax = _lane_axis(x, axis, name)
    if not x.dtype.is_float:
        x = astype(x, f64)  # NumPy's statistics of integers are float64
    s = sort(x, ax)
    pad_shape = tuple(1 if k == ax else d for k, d in enumerate(x.shape))
    s = concatenate([s, full(pad_shape, math.nan, x.dtype)], ax)
    return s, ax, x, x.shape[ax]


def _nan_lanes(r: Value, s: Value, ax: int, n: Any) -> Value:
    """``r`` where the lane has no NaN, else NaN (a NaN sorts last, at ``n - 1``)."""
    return where(isnan(_at_lane(s, ax, n - 1)), math.nan, r)


def _finish(r: Value, ax: int, keepdims: bool) -> Value:
    return _expand_dims(r, [ax]) if keepdims else r


def median(x: Any, axis: Any = None, keepdims: bool = False) -> Value:
    """``np.median`` along one axis (or of a 1-D array): the middle of the sorted lane, or the
    mean of the two middle ones; NaN if the lane has a NaN or is empty.  Integers give f64."""
    s, ax, _, n = _stat_prep(x, axis, "median")
    lo, hi = (n - 1) // 2, n // 2
    a, b = _at_lane(s, ax, lo), _at_lane(s, ax, hi)
    two = (a + b) / 2  # np.mean of the two: their sum, then divided
    if isinstance(n, int):
        r = a if lo == hi else two
    else:
        r = where(lo == hi, a, two)
    return _finish(_nan_lanes(r, s, ax, n), ax, keepdims)


def _q_values(q: Any, name: str, scale: float) -> tuple[list[float], bool]:
    """The quantiles (in [0, 1]) as Python floats, and whether ``q`` was one number."""
    if isinstance(q, np.ndarray) and q.ndim <= 1:  # a constant array from a global
        q = q.tolist()
    one = not isinstance(q, (list, tuple))
    qs = [q] if one else list(q)
    out = []
    for v in qs:
        if isinstance(v, Value) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or isinstance(v, bool):
            raise CompileError(f"{name}: q must be a number or a list of numbers known when "
                               f"the kernel is compiled, got {v!r}")
        f = float(np.true_divide(v, scale)) if scale != 1 else float(v)
        if not 0.0 <= f <= 1.0:
            what = "Percentiles must be in the range [0, 100]" if scale != 1 else \
                "Quantiles must be in the range [0, 1]"
            raise CompileError(f"{name}: {what}, got {v!r}")
        out.append(f)
    if not out:
        raise CompileError(f"{name}: q is an empty list")
    return out, one


def _quantile_1(s: Value, ax: int, n: Any, q: float, out_dtype: Any) -> Value:
    """NumPy's "linear" quantile ``q`` of the sorted lanes: ``(n - 1) * q`` splits into an
    index and a weight, and the two neighbours are interpolated as ``np.lib`` does."""
    if isinstance(n, int):
        vi = float(np.float64(n - 1) * np.float64(q))
        prev = builtins.min(builtins.max(int(math.floor(vi)), 0), builtins.max(n - 1, 0))
        nxt = builtins.min(prev + 1, builtins.max(n - 1, 0))
        if vi >= n - 1:
            prev = nxt = n - 1
        gamma: Any = vi - prev
        big: Any = gamma >= 0.5
        omg: Any = 1.0 - gamma
    else:
        top = astype(n - 1, f64)
        vf = top * q
        fl = floor(vf)
        above = vf >= top
        prev = where(above, n - 1, astype(fl, i64))
        nxt = where(above, n - 1, astype(fl, i64) + 1)
        gamma = vf - fl
        big, omg = gamma >= 0.5, 1.0 - gamma
    a, b = _at_lane(s, ax, prev), _at_lane(s, ax, nxt)
    d = b - a
    if out_dtype is not s.dtype:  # an array of q: the weights are f64 (NumPy's result type)
        d, a, b = astype(d, out_dtype), astype(a, out_dtype), astype(b, out_dtype)
    else:
        gamma, omg = astype(gamma, s.dtype), astype(omg, s.dtype)
    low, high = a + d * gamma, b - d * omg
    r = (high if big else low) if isinstance(big, bool) else where(big, high, low)
    return r


def quantile(x: Any, q: Any, axis: Any = None, keepdims: bool = False,
             method: str = "linear") -> Value:
    """``np.quantile`` (its default "linear" method) along one axis, of a number ``q`` in
    [0, 1] or a list of them (then the quantiles stack on a new first axis, in f64).  NaN if
    the lane has a NaN; an empty lane gives NaN (NumPy raises IndexError)."""
    return _quantile("quantile", x, q, axis, keepdims, method, 1.0)


def percentile(x: Any, q: Any, axis: Any = None, keepdims: bool = False,
               method: str = "linear") -> Value:
    """``np.percentile``: :func:`quantile` of ``q / 100``."""
    return _quantile("percentile", x, q, axis, keepdims, method, 100.0)


def _quantile(name: str, x: Any, q: Any, axis: Any, keepdims: bool, method: str,
              scale: float) -> Value:
    if method != "linear":
        raise CompileError(f"{name}: only method='linear' (NumPy's default) is supported")
    qs, one = _q_values(q, name, scale)
    s, ax, xf, n = _stat_prep(x, axis, name)
    out_dtype = xf.dtype if one else f64
    rs = [_finish(_nan_lanes(_quantile_1(s, ax, n, v, out_dtype), s, ax, n), ax, keepdims)
          for v in qs]
    # (stacked as rows of one new axis; ``stack`` refuses scalars)
    return rs[0] if one else concatenate([_expand_dims(r, [0]) for r in rs], 0)


# --------------------------------------------------------------------------- linear algebra
def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` for 1-D and 2-D operands (vector·vector is a scalar)."""
    if not isinstance(a, Value) or not isinstance(b, Value):
        raise CompileError("@ needs two arrays")
    d = _common_dtype(a, b)
    if d.is_bool:  # NumPy: the OR of the ANDs, a bool; here whether any product counts
        return _bind1(P.matmul_p, to_value(a, i64), to_value(b, i64)) != 0
    if d is f16:  # storage only: the products accumulate in f32, the result rounds once
        return astype(_bind1(P.matmul_p, astype(a, f32), astype(b, f32)), f16)
    return _bind1(P.matmul_p, to_value(a, d), to_value(b, d))


def dot(a: Any, b: Any) -> Any:
    """NumPy's dot for 0-D, 1-D and 2-D operands."""
    if not isinstance(a, Value) or not isinstance(b, Value) or a.ndim == 0 or b.ndim == 0:
        return a * b
    return matmul(a, b)


def transpose(x: Any, axes: Optional[Sequence[int]] = None) -> Any:
    x = _as_traced(x, "transpose")
    if x.ndim < 2:
        return x
    perm = tuple(reversed(range(x.ndim))) if axes is None else tuple(int(a) for a in axes)
    out = _bind1(P.transpose_p, x, perm=perm)
    out.owned = False  # a view: storing into it would not be seen through x
    return out


# --------------------------------------------------------------------------- creation
def _sizes(shape: Any, name: str) -> tuple[list[Atom], tuple[Dim, ...]]:
    if not isinstance(shape, (tuple, list)):
        shape = (shape,)
    atoms: list[Atom] = []
    dims: list[Dim] = []
    for s in shape:
        if isinstance(s, Value):
            if not s.dtype.is_int or s.ndim:
                raise CompileError(f"{name}: sizes are integers, got {s.type}")
            atoms.append(to_value(s, i64).atom)
            dims.append(s.dim if s.dim is not None else Dim.fresh("k"))
        elif isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            if s < 0:
                raise CompileError(f"{name}: negative size {s}")
            atoms.append(Lit.of(int(s), i64))
            dims.append(Dim.of(int(s)))
        else:
            raise CompileError(f"{name}: sizes are integers, got {s!r}")
    return atoms, tuple(dims)


def full(shape: Any, fill_value: Any, dtype: Any = None) -> Value:
    """A new local array filled with ``fill_value`` (dtype defaults to the value's)."""
    d = as_dtype(dtype) if dtype is not None else (
        fill_value.dtype if isinstance(fill_value, Value) else _weak_dtype(fill_value))
    atoms, dims = _sizes(shape, "full")
    fill = to_value(fill_value, d)
    if fill.ndim:
        raise CompileError("full: the fill value must be a scalar")
    (v,) = ir_bind(P.full_p, fill.atom, *atoms, dims=dims, dtype=d)
    return Value(v, owned=True)


def zeros(shape: Any, dtype: Any = f64) -> Value:
    """A new local array of zeros (f64 by default, as NumPy)."""
    return full(shape, 0, dtype)


def ones(shape: Any, dtype: Any = f64) -> Value:
    return full(shape, 1, dtype)


def empty(shape: Any, dtype: Any = f64) -> Value:
    """A new local array with unspecified contents: write before you read."""
    atoms, dims = _sizes(shape, "empty")
    (v,) = ir_bind(P.empty_p, *atoms, dims=dims, dtype=as_dtype(dtype))
    return Value(v, owned=True)


def _like_shape(x: Value) -> tuple[Any, ...]:
    return _as_traced(x, "like").shape


def zeros_like(x: Any, dtype: Any = None) -> Value:
    x = _as_traced(x, "zeros_like")
    return full(_like_shape(x), 0, dtype or x.dtype)


def ones_like(x: Any, dtype: Any = None) -> Value:
    x = _as_traced(x, "ones_like")
    return full(_like_shape(x), 1, dtype or x.dtype)


def full_like(x: Any, fill_value: Any, dtype: Any = None) -> Value:
    x = _as_traced(x, "full_like")
    return full(_like_shape(x), fill_value, dtype or x.dtype)


def empty_like(x: Any, dtype: Any = None) -> Value:
    x = _as_traced(x, "empty_like")
    return empty(_like_shape(x), dtype or x.dtype)


def arange(n: Any, dtype: Any = i64) -> Value:
    """``0, 1, ..., n-1``."""
    (atom,), (dim,) = _sizes(n, "arange")
    (v,) = ir_bind(P.iota_p, atom, dim=dim, dtype=as_dtype(dtype))
    return Value(v, owned=True)


def copy(x: Any) -> Value:
    """A local array with the same contents that the kernel may store into."""
    x = _as_traced(x, "copy")
    return Value(x.atom, owned=True)


# --------------------------------------------------------------------------- joining
def _arrays(arrays: Any, name: str, scalars: bool = False) -> list[Value]:
    """The traced arrays of a join (a non-empty list or tuple of arrays of rank >= 1, or of
    any rank with ``scalars``: the joins that first give each input an axis)."""
    if not isinstance(arrays, (list, tuple)):
        raise CompileError(f"{name}: expected a list or tuple of arrays, got "
                           f"{type(arrays).__name__}")
    if not arrays:
        raise CompileError(f"{name}: need at least one array to join")
    vals = [x if isinstance(x, Value) else to_value(x) for x in arrays]
    for k, v in enumerate(vals):
        if not v.ndim and not scalars:
            raise CompileError(f"{name}: the array at index {k} is a scalar; zero-dimensional "
                               "arrays cannot be joined (lt.stack joins scalars into a 1-D "
                               "array)")
    return vals


def _join_axis(axis: Any, ndim: int, name: str) -> int:
    if axis is None:
        raise CompileError(f"{name}: axis=None (joining the flattened arrays) is not supported; "
                           "lattice has no reshape")
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) \
            or not -ndim <= axis < ndim:
        raise CompileError(f"{name}: axis {axis!r} is out of bounds for arrays of dimension "
                           f"{ndim if name == 'concatenate' else ndim - 1}")
    return int(axis) % ndim


def concatenate(arrays: Any, axis: Any = 0) -> Value:
    """``np.concatenate``: arrays of one rank, of equal sizes except along ``axis``, joined
    along it into a new array, in their promoted dtype.  The other sizes must be the same
    dims (as for broadcasting, differently named dims are different sizes)."""
    vals = _arrays(arrays, "concatenate")
    ndim = vals[0].ndim
    for k, v in enumerate(vals):
        if v.ndim != ndim:
            raise CompileError(f"concatenate: all the input arrays must have the same number of "
                               f"dimensions, but the array at index 0 has {ndim} dimension(s) "
                               f"and the array at index {k} has {v.ndim} dimension(s)")
    ax = _join_axis(axis, ndim, "concatenate")
    first = vals[0].type.shape
    for k, v in enumerate(vals):
        for j, d in enumerate(v.type.shape):
            if j != ax and d.is_const and first[j].is_const and d != first[j]:
                raise CompileError(
                    f"concatenate: all the input array dimensions except for the concatenation "
                    f"axis must match exactly, but along dimension {j}, the array at index 0 "
                    f"has size {first[j].const} and the array at index {k} has size {d.const}")
    dt = _common_dtype(*vals)
    return _bind1(P.concat_p, *(to_value(v, dt) for v in vals), axis=ax)


def stack(arrays: Any, axis: Any = 0) -> Value:
    """``np.stack``: arrays of one shape joined along a new axis ``axis`` of the result
    (scalars give a 1-D array)."""
    vals = _arrays(arrays, "stack", scalars=True)
    ax = _join_axis(axis, vals[0].ndim + 1, "stack")
    for k, v in enumerate(vals):
        if v.ndim != vals[0].ndim or any(
                d.is_const and e.is_const and d != e
                for d, e in zip(v.type.shape, vals[0].type.shape)):
            raise CompileError(f"stack: all input arrays must have the same shape, but the array "
                               f"at index 0 is {vals[0].type} and the array at index {k} is "
                               f"{v.type}")
    return concatenate([_expand_dims(v, [ax]) for v in vals], ax)


def vstack(arrays: Any) -> Value:
    """``np.vstack``: rows joined (1-D arrays count as single rows, scalars as 1x1)."""
    vals = _arrays(arrays, "vstack", scalars=True)
    return concatenate([v if v.ndim > 1 else _expand_dims(v, list(range(2 - v.ndim)))
                        for v in vals], 0)


def hstack(arrays: Any) -> Value:
    """``np.hstack``: 1-D arrays (and scalars, as 1-D) joined end to end, others along their
    second axis."""
    vals = [v if v.ndim else _expand_dims(v, [0]) for v in _arrays(arrays, "hstack", True)]
    return concatenate(vals, 0 if vals[0].ndim == 1 else 1)


# --------------------------------------------------------------------------- indexing
def _width(k: Any) -> int:
    """How many axes of the indexed array a key entry consumes (a boolean mask: its rank)."""
    if k is None or k is Ellipsis:
        return 0
    if isinstance(k, Value) and k.dtype is bool_:
        return builtins.max(k.ndim, 1)
    return 1


def _normalize_key(x: Value, key: Any) -> tuple[tuple[Any, ...], list[int]]:
    """One entry per axis of ``x`` (``...`` and missing trailing axes become full slices; a
    boolean mask of rank m stands for m axes), and the positions in the result of the new
    axes that ``None`` entries ask for."""
    if not isinstance(key, tuple):
        key = (key,)
    for k in key:
        if isinstance(k, np.ndarray):
            raise CompileError("a NumPy array from outside the kernel cannot index inside it; "
                               "pass the indices as an integer array argument")
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise CompileError("an index can only have a single ellipsis ('...')")
    n_real = builtins.sum(_width(k) for k in key)
    if n_real > x.ndim:
        raise CompileError(f"too many indices: {n_real} for a {x.ndim}-D array")
    expanded: list[Any] = []
    for k in key:
        if k is Ellipsis:
            expanded.extend([slice(None)] * (x.ndim - n_real))
        else:
            expanded.append(k)
    expanded.extend([slice(None)] * (x.ndim - builtins.sum(_width(k) for k in expanded)))
    new_axes: list[int] = []
    pos = 0
    for k in expanded:
        if k is None:
            new_axes.append(pos)
        if k is None or isinstance(k, slice):
            pos += 1  # an integer index removes its axis
    if new_axes and any(isinstance(k, Value) and k.ndim for k in expanded):
        raise CompileError("None (np.newaxis) together with an index array or mask is not "
                           "supported; index first, then add the axis with x[..., None]")
    return tuple(k for k in expanded if k is not None), new_axes


def _expand_dims(v: Value, new_axes: Sequence[int]) -> Value:
    """``v`` with literal size-1 axes inserted at ``new_axes`` (positions in the result)."""
    rank = v.ndim + len(new_axes)
    shape = v.shape
    dims: list[Dim] = []
    sizes: list[Atom] = []
    old = iter(range(v.ndim))
    for a in range(rank):
        if a in new_axes:
            dims.append(Dim.of(1))
            sizes.append(Lit.of(1, i64))
        else:
            k = next(old)
            dims.append(v.type.shape[k])
            sizes.append(to_value(shape[k], i64).atom)
    axes = tuple(a for a in range(rank) if a not in new_axes)
    (out,) = ir_bind(P.broadcast_in_dim_p, v.atom, *sizes, dims=tuple(dims), axes=axes)
    return Value(out, owned=False)


def _index_spec(x: Value, key: tuple[Any, ...]) -> tuple[P.IndexSpec, list[Atom]]:
    """The IR index spec and index atoms for a normalised key (see :func:`_normalize_key`)."""
    spec: list[Any] = []
    atoms: list[Atom] = []
    axis = 0
    for k in key:
        if isinstance(k, Value) and k.dtype is bool_:
            _mask_entries(x, k, axis, spec, atoms)
            axis += _width(k)
            continue
        if isinstance(k, Value) and k.ndim:
            if not k.dtype.is_int:
                raise CompileError(f"an index array must hold integers or bools, got {k.type}; "
                                   f"convert it with .astype(lt.i64)")
            spec.append(P.Arr(k.type.shape))
            atoms.append(k.atom)
            axis += 1
            continue
        if isinstance(k, slice):
            win = _window(k)
            if win is not None:  # x[i:i + c]: a window of constant length c
                spec.append(P.Slice("dyn", None, 1, size=win))
                atoms.append(to_value(k.start, i64).atom)
                continue
            parts = []
            for part in (k.start, k.stop):
                if part is None or (isinstance(part, (int, np.integer)) and not isinstance(part, bool)):
                    parts.append(None if part is None else int(part))
                elif isinstance(part, Value) and part.dtype.is_int and not part.ndim:
                    parts.append("dyn")
                    bound = to_value(part, i64)
                    atoms.append(bound.atom)
                    _affine_keys()[bound.atom] = bound.affine()
                else:
                    raise CompileError(f"slice bounds are integers, got {part!r}")
            step = 1 if k.step is None else k.step
            if isinstance(step, Value) or not isinstance(step, (int, np.integer)):
                raise CompileError("a slice step must be a Python int constant")
            if step == 0:
                raise CompileError("slice step cannot be zero")
            spec.append(P.Slice(parts[0], parts[1], int(step)))
        elif isinstance(k, Value):
            if not k.dtype.is_int:
                raise CompileError(f"indices are integers, got {k.type}")
            spec.append(P.Int())
            atoms.append(to_value(k, i64).atom)
        elif isinstance(k, (int, np.integer)) and not isinstance(k, bool):
            d = x.type.shape[axis]
            if d.is_const and not -d.const <= k < d.const:
                raise CompileError(f"index {k} is out of bounds for axis {axis} with size {d}")
            spec.append(P.Int())
            atoms.append(Lit.of(int(k), i64))
        else:
            raise CompileError(f"unsupported index {k!r}")
        axis += 1
    return tuple(spec), atoms


def _mask_entries(x: Value, mask: Value, axis: int, spec: list[Any], atoms: list[Atom]) -> None:
    """A boolean mask over axes ``axis, ...`` of ``x`` as the index arrays of its true
    positions (``np.nonzero``): one ``Arr`` entry per axis it covers, of a run-time size."""
    if mask.ndim == 0:
        raise CompileError("a 0-d boolean index is not supported; use lt.where(cond, x, y) "
                           "or an if statement")
    want = x.type.shape[axis:axis + mask.ndim]
    if tuple(mask.type.shape) != tuple(want):
        raise CompileError(f"a boolean index of shape ({', '.join(map(str, mask.type.shape))}) "
                           f"does not match the indexed axes ({', '.join(map(str, want))}); "
                           f"the mask must have exactly their sizes")
    for a in _nonzero_atoms(mask):
        spec.append(P.Arr(a.type.shape))
        atoms.append(a)


def _nonzero_atoms(x: Value) -> list[Var]:
    """The positions of ``x``'s non-zero elements, one list per mask value in the function
    being traced: ``x[m] * w[m]`` selects with one ``nonzero``, so both sides share its
    (fresh) size and combine elementwise."""
    from ..ir.core import current_builder
    memo = current_builder().__dict__.setdefault("_nonzero", {})
    key = x.atom if isinstance(x.atom, Var) else None
    if key is not None and key in memo:
        return memo[key]
    outs = ir_bind(P.nonzero_p, x.atom, dim=Dim.fresh("nz"))
    if key is not None:
        memo[key] = outs
    return outs


def _window(k: slice) -> Optional[int]:
    """c when ``k`` is ``a*i + b : a*i + b + c`` (step 1, c >= 0) for one traced i64 ``i``."""
    lo, hi = k.start, k.stop
    if not (isinstance(lo, Value) and isinstance(hi, Value)) or k.step not in (None, 1) \
            or lo.ndim or hi.ndim or lo.dtype is not i64 or hi.dtype is not i64:
        return None
    (r0, a0, c0), (r1, a1, c1) = lo.affine(), hi.affine()
    if r0 is not r1 or a0 != a1 or c1 < c0:
        return None
    return c1 - c0


def _affine_keys() -> dict:
    """A traced slice bound's atom -> its affine form (:meth:`Value.affine`), for the function
    being traced: two bounds computed separately as ``128 * nb`` are the same bound."""
    from ..ir.core import current_builder
    return current_builder().__dict__.setdefault("_affine_keys", {})


def _slice_dims(x: Value, spec: P.IndexSpec, atoms: Sequence[Atom]) -> tuple[Dim, ...]:
    """Result dims of indexing ``x``; equal slices with traced bounds get the same fresh dim.

    Within one function, ``x[:k]`` and ``y[:k]`` with the same axis size, the same bounds
    (the same atoms, or the same affine form of one atom: ``x[2 * m:]`` and ``y[2 * m:]``
    written twice) and the same step have the same length, so they share one fresh dim
    (memoised on the current builder) and ``x[:k] * y[:k]`` type-checks.
    """
    from ..ir.core import current_builder
    memo = current_builder().__dict__.setdefault("_slice_dims", {})
    out = []
    it = iter(atoms)
    for n, e in zip(x.type.shape, spec):
        if isinstance(e, P.Int):
            next(it)
            continue
        if isinstance(e, P.Arr):
            next(it)
            continue
        bounds = tuple(next(it) if b == "dyn" else b for b in (e.start, e.stop))
        d = P.slice_len_static(n, e)
        if d is None:
            affine = _affine_keys()
            key = (n, tuple(b.value if isinstance(b, Lit) else affine.get(b, b)
                            for b in bounds), e.step)
            d = memo.setdefault(key, Dim.fresh("s"))
        out.append(d)
    if P.has_arrays(spec):
        block, at = P.advanced_layout(spec)
        out[at:at] = block
    return tuple(out)


def _array_param(spec: P.IndexSpec, name: Optional[str]) -> dict[str, Any]:
    """The ``array`` param naming the indexed array in a gather's or scatter's errors."""
    return {"array": name} if name and P.has_arrays(spec) else {}


def getitem(x: Value, key: Any, name: Optional[str] = None) -> Value:
    """``x[key]``: a view for integers and slices, a gather (a copy, NumPy's advanced
    indexing) for integer index arrays and boolean masks.  ``name``: the array's name in the
    kernel, for index errors."""
    real, new_axes = _normalize_key(x, key)
    spec, atoms = _index_spec(x, real)
    if all(e == P.Slice() for e in spec):
        v = Value(x.atom, dim=x.dim)  # x[:, :] or x[..., None]: nothing is selected
    else:
        try:
            (out,) = ir_bind(P.index_p, x.atom, *atoms, spec=spec,
                             out_dims=_slice_dims(x, spec, atoms), **_array_param(spec, name))
        except ShapeError as exc:  # index arrays that do not broadcast together
            raise CompileError(f"indexing: {exc}") from None
        v = Value(out, owned=P.has_arrays(spec))  # a gather is a copy, a view is not
    return _expand_dims(v, new_axes) if new_axes else v


def _store(prim: Any, x: Value, key: Any, value: Any, name: Optional[str]) -> Value:
    real, new_axes = _normalize_key(x, key)
    if new_axes:
        raise CompileError("None (np.newaxis) cannot appear in the target of a store")
    spec, atoms = _index_spec(x, real)
    v = value if isinstance(value, Value) else to_value(value)
    if v.dtype is not x.dtype:
        if v.dtype.is_float and not x.dtype.is_float:
            raise CompileError(f"storing a float value into a {x.dtype} array would truncate "
                               f"it; convert explicitly with .astype(lt.{x.dtype.name})")
        v = astype(v, x.dtype)
    try:
        (out,) = ir_bind(prim, x.atom, *atoms, v.atom, spec=spec, **_array_param(spec, name))
    except ShapeError as exc:
        raise CompileError(f"indexed store: {exc}") from None
    return Value(out, owned=True)


def setitem(x: Value, key: Any, value: Any, name: Optional[str] = None) -> Value:
    """The functional store: a new array equal to ``x`` with ``x[key] = value``.  Through
    index arrays a repeated index keeps the last value written (positions are written in
    index order, as NumPy does)."""
    return _store(P.set_p, x, key, value, name)


def add_at(x: Value, key: Any, value: Any, name: Optional[str] = None) -> Value:
    """``np.add.at(x, key, value)`` as a value: ``x`` with ``value`` added into ``x[key]``,
    every repeat of an index adding again (``h[idx] += v`` in a kernel means this)."""
    return _store(P.add_at_p, x, key, value, name)


def indexes_with_arrays(x: Value, key: Any) -> bool:
    """Does ``x[key]`` index with an integer array or a boolean mask (not only integers and
    slices)?"""
    entries = key if isinstance(key, tuple) else (key,)
    return any(isinstance(k, Value) and (k.ndim or k.dtype is bool_) for k in entries)


# --------------------------------------------------------------------------- selections
def nonzero(x: Any) -> tuple[Value, ...]:
    """``np.nonzero``: one i64 index array per axis listing the positions (C order) of the
    non-zero / true elements; their length is known only when the kernel runs."""
    x = _as_traced(x, "nonzero")
    if not x.ndim:
        raise CompileError("nonzero of a 0-d value is not supported; use it as a condition "
                           "(lt.where(c, x, y) or an if statement)")
    return tuple(Value(a, owned=True) for a in _nonzero_atoms(x))


def argwhere(x: Any) -> Value:
    """``np.argwhere``: the positions of the non-zero elements as the rows of an
    ``(count, x.ndim)`` i64 array."""
    return stack(list(nonzero(x)), axis=1)


def _flat_index(x: Value, idx: Sequence[Value]) -> Value:
    """The C-order flat position of the multi-index ``idx`` into ``x``."""
    shape = x.shape
    flat: Any = idx[0]
    for k in range(1, x.ndim):
        flat = flat * shape[k] + idx[k]
    return flat


def flatnonzero(x: Any) -> Value:
    """``np.flatnonzero``: the positions of the non-zero elements of ``x`` flattened."""
    x = _as_traced(x, "flatnonzero")
    return _flat_index(x, nonzero(x)) if x.ndim else nonzero(x)[0]


def count_nonzero(x: Any, axis: Any = None) -> Any:
    """``np.count_nonzero``: how many elements are non-zero (true), an i64."""
    x = _as_traced(x, "count_nonzero")
    nz = x if x.dtype is bool_ else x != 0
    return astype(sum(nz, axis), i64)


def extract(condition: Any, arr: Any) -> Value:
    """``np.extract(condition, arr)``: the elements of ``arr`` where ``condition`` holds, in C
    order (both of one shape here)."""
    cond, a = _as_traced(condition, "extract"), _as_traced(arr, "extract")
    if cond.dtype is not bool_:
        cond = cond != 0
    if cond.type.shape != a.type.shape:
        raise CompileError("extract: the condition and the array must have the same shape "
                           f"here ({cond.type} and {a.type})")
    return getitem(a, cond)


def _take_axis(x: Value, axis: Any, name: str) -> int:
    """``axis`` normalised; ``None`` (NumPy: work on the flattened array) only for 1-D ``x``,
    since lattice has no reshape."""
    if axis is None:
        if x.ndim != 1:
            raise CompileError(f"{name} with axis=None flattens the array, and lattice has no "
                               "reshape: give the axis")
        return 0
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool) \
            or not -x.ndim <= axis < x.ndim:
        raise CompileError(f"{name}: axis {axis!r} is out of bounds for a {x.ndim}-D array")
    return int(axis) % x.ndim


def compress(condition: Any, a: Any, axis: Any = None) -> Value:
    """``np.compress``: the slices of ``a`` along ``axis`` where the 1-D ``condition`` holds
    (``condition`` as long as that axis here)."""
    a = _as_traced(a, "compress")
    cond = _as_traced(condition, "compress")
    ax = _take_axis(a, axis, "compress")
    if cond.ndim != 1:
        raise CompileError("compress: the condition must be 1-D")
    if cond.dtype is not bool_:
        cond = cond != 0
    if cond.type.shape[0] != a.type.shape[ax]:
        raise CompileError(f"compress: a condition of length {cond.type.shape[0]} for an axis "
                           f"of size {a.type.shape[ax]}; they must be equal here")
    return getitem(a, (slice(None),) * ax + (cond,))


def _index_array(idx: Any, name: str) -> Value:
    if isinstance(idx, (list, np.ndarray)):
        raise CompileError(f"{name}: constant index lists cannot be used inside a kernel; pass "
                           "the indices as an integer array argument")
    idx = to_value(idx)
    if not idx.dtype.is_int:
        raise CompileError(f"{name}: indices must be integers, got {idx.type}")
    return idx


def take(a: Any, indices: Any, axis: Any = None) -> Value:
    """``np.take``: ``a[..., indices, ...]`` along ``axis`` (the index dims replace it); with
    ``axis=None`` the positions count through ``a`` flattened (C order)."""
    a = _as_traced(a, "take")
    idx = _index_array(indices, "take")
    if axis is not None:
        return getitem(a, (slice(None),) * _take_axis(a, axis, "take") + (idx,))
    if a.ndim <= 1:
        return getitem(a, idx)
    # unravel the flat position: negatives count from the end of the flattened array; an
    # out-of-range one gets an out-of-range first index, so boundscheck still catches it
    shape = a.shape
    size: Any = 1
    for n in shape:
        size = size * n
    w = where(idx < 0, idx + size, idx)
    parts: list[Value] = []
    stride: Any = size
    for k in range(a.ndim):
        stride = stride // shape[k]
        q = w // stride
        parts.append(where(w < 0, shape[0], q) if k == 0 else q % shape[k])
    return getitem(a, tuple(parts))


def take_along_axis(arr: Any, indices: Any, axis: Any) -> Value:
    """``np.take_along_axis``: ``out[..., j, ...] = arr[..., indices[..., j, ...], ...]`` along
    ``axis``; ``indices`` has ``arr``'s rank and its other axes broadcast against ``arr``'s."""
    a = _as_traced(arr, "take_along_axis")
    idx = _index_array(indices, "take_along_axis")
    ax = _take_axis(a, axis, "take_along_axis")
    if idx.ndim != a.ndim:
        raise CompileError(f"take_along_axis: indices of rank {idx.ndim} for a {a.ndim}-D "
                           "array; they must have the same rank")
    try:
        return Value(ir_take_along_axis(a.atom, idx.atom, ax), owned=True)
    except ShapeError as exc:
        raise CompileError(f"take_along_axis: indices of shape {idx.type} do not broadcast "
                           f"against the array's {a.type} off the axis: {exc}") from None


def shape_error(exc: ShapeError) -> CompileError:
    return CompileError(str(exc))


def prange(*args: Any) -> range:
    """``range`` whose iterations may run on several threads, in any order: the iterable of a
    ``for`` loop in a ``parallel=True`` kernel.

    Inside a kernel the loop is checked when traced: each name the body reassigns must be
    either an array the body fills only by assignments (or ``+=`` through index arrays) at
    ``[i, ...]`` (``i`` the loop variable) and does not otherwise read, or a number it
    updates only as a running sum, product, max or min, one kind per number (``s = s + ...``, ``s += ...``, ``s = s - ...``,
    ``s *= ...``, ``s = lt.maximum(s, ...)``), and does not otherwise read.  The assignments
    and updates may sit in ``if``/``else`` branches and in loops inside the body.  Anything
    else is a ``CompileError``.  The iterations run in parallel when the loop counts
    up from ``i >= 0``: each thread reduces its chunk of iterations, and the chunks combine in
    order (a float sum is rounded as for that thread count, not as the serial loop's).
    Otherwise, and in kernels that are not parallel, the loop runs as ``range``.  Called
    outside a kernel it is ``range``."""
    return range(*args)
