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
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..errors import CompileError
from ..ir import primitives as P
from ..ir.ad.common import take_along_axis as ir_take_along_axis
from ..ir.core import Atom, Lit, Var, bind as ir_bind
from ..ir.types import (DType, Dim, ShapeError, TensorType, bool_, dim_product, dtype_of, f16,
                        f32, f64, i8, i64, product_factors, promote)
from ..ir.types import c128
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
    "prod", "any_", "all_", "var", "std", "nansum", "nanmax", "nanmin", "nanmean", "average",
    "norm", "logical_and", "logical_or", "logical_xor", "logical_not", "cumsum", "cumprod",
    "nanprod", "nanvar", "nanstd", "ptp", "nancumsum", "nancumprod", "cumulative_sum",
    "cumulative_prod",
    "bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift",
    "right_shift", "bitwise_count",
    "nonzero", "argwhere", "flatnonzero", "count_nonzero", "extract", "compress",
    "take", "take_along_axis",
    "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh",
    "arctanh", "exp2", "log2", "log10", "cbrt", "trunc", "ceil", "rint", "round", "gamma", "lgamma",
    "digamma", "polygamma", "fabs", "deg2rad", "rad2deg", "sign", "signbit", "square",
    "reciprocal", "isinf", "nan_to_num", "arctan2", "hypot", "copysign", "logaddexp2",
    "float_power", "heaviside", "mod", "fmod", "fmax", "fmin",
    # layout and products
    "reshape", "ravel", "flatten", "swapaxes", "moveaxis", "expand_dims", "squeeze",
    "broadcast_to", "tile", "repeat", "roll", "atleast_1d", "atleast_2d", "atleast_3d",
    "outer", "ufunc_outer", "inner", "vdot", "kron", "einsum", "eye", "identity", "tril",
    "triu", "diag", "diagonal", "trace", "linspace", "tensordot", "matrix_transpose", "tri",
]

Scalar = Union[bool, int, float]
_PY_SCALARS = (bool, int, float, complex, np.bool_, np.integer, np.floating, np.complexfloating)


class Value(Traced):
    """A traced array or scalar: an IR atom plus frontend facts about it."""

    __slots__ = ("atom", "dim", "owned", "base", "unstorable", "view", "stale", "fresh")
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
        # (base Value, derive, key): this array is a view of ``base`` (a basic slice, key
        # its index; a transpose, key the attribute), and ``derive(b)`` takes the same view
        # of ``b``; a store into ``base`` re-derives it from the updated array, so the view
        # sees the store as it does in NumPy, and a store into the view goes into ``base``
        self.view: Optional[tuple[Any, ...]] = None
        # why reading this view is refused (its base was updated where it cannot follow)
        self.stale: Optional[str] = None
        # a new array (``lt.copy``) although its atom is another array's (stores are
        # functional, so a copy needs no data of its own until one): a kernel returning it
        # returns a new array, not its argument
        self.fresh = False

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
    # (each takes NumPy's arguments of the function it forwards to: axis, dtype, out, ddof,
    # keepdims)
    def sum(self, *a: Any, **k: Any) -> "Value": return sum(self, *a, **k)
    def mean(self, *a: Any, **k: Any) -> "Value": return mean(self, *a, **k)
    def max(self, *a: Any, **k: Any) -> "Value": return max(self, *a, **k)
    def min(self, *a: Any, **k: Any) -> "Value": return min(self, *a, **k)
    def argmax(self, *a: Any, **k: Any) -> "Value": return argmax(self, *a, **k)
    def argmin(self, *a: Any, **k: Any) -> "Value": return argmin(self, *a, **k)
    def prod(self, *a: Any, **k: Any) -> "Value": return prod(self, *a, **k)
    def any(self, *a: Any, **k: Any) -> "Value": return any_(self, *a, **k)
    def all(self, *a: Any, **k: Any) -> "Value": return all_(self, *a, **k)
    def var(self, *a: Any, **k: Any) -> "Value": return var(self, *a, **k)
    def std(self, *a: Any, **k: Any) -> "Value": return std(self, *a, **k)
    def cumsum(self, *a: Any, **k: Any) -> "Value": return cumsum(self, *a, **k)
    def cumprod(self, *a: Any, **k: Any) -> "Value": return cumprod(self, *a, **k)

    @property
    def size(self) -> Any:
        """The element count: a Python int when every size is literal, else a traced i64."""
        return _count(self, tuple(range(self.ndim)))

    def argsort(self, axis: Any = -1, kind: Any = None, order: Any = None) -> "Value":
        return argsort(self, axis, kind, order)

    def searchsorted(self, v: Any, side: Any = "left", sorter: Any = None) -> "Value":
        return searchsorted(self, v, side, sorter)

    def sort(self, axis: Any = -1, kind: Any = None, order: Any = None) -> None:
        raise CompileError("x.sort() sorts x in place, and lattice arrays are values: write "
                           "x = np.sort(x) (or lt.sort(x, axis=...))")

    @property
    def real(self) -> "Value":
        return real(self)

    @property
    def imag(self) -> "Value":
        return imag(self)

    def conj(self) -> "Value":
        return conj(self)

    conjugate = conj

    def astype(self, dtype: Any) -> "Value":
        return astype(self, dtype)

    def dot(self, other: Any) -> "Value":
        return dot(self, other)

    def copy(self) -> "Value":
        return copy(self)

    def nonzero(self) -> tuple["Value", ...]:
        return nonzero(self)

    def transpose(self, *axes: Any) -> "Value":
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)) or axes == (None,):
            axes = axes[0]
        return transpose(self, axes or None)

    # -- layout methods (views where NumPy's are)
    def reshape(self, *shape: Any, order: str = "C") -> "Value":
        return reshape(self, *shape, order=order)

    def ravel(self, order: str = "C") -> "Value":
        return ravel(self, order)

    def flatten(self, order: str = "C") -> "Value":
        return flatten(self, order)

    def swapaxes(self, axis1: Any, axis2: Any) -> "Value":
        return swapaxes(self, axis1, axis2)

    def squeeze(self, axis: Any = None) -> "Value":
        return squeeze(self, axis)

    def repeat(self, repeats: Any, axis: Any = None) -> "Value":
        return repeat(self, repeats, axis)

    def trace(self, offset: int = 0) -> Any:
        return trace(self, offset)

    def diagonal(self, offset: int = 0) -> Any:
        return diagonal(self, offset)

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
    if isinstance(x, complex):
        return c128, True
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
    if prim is P.mul_p:  # n * d: a product of named dims (types.dim_product), or None
        return dim_product([da, db])
    return None


def _arith(prim: Any, a: Any, b: Any) -> Any:
    if not isinstance(a, Value) and not isinstance(b, Value):
        return _fold(_PY_ARITH[prim], a, b)
    d = _common_dtype(a, b)
    if d.is_complex:
        return _complex_arith(prim, a, b, d)
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
    if d.is_complex:
        return _complex_truediv(a, b, d)
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
    if d.is_complex:
        return _complex_compare(prim, a, b, d)
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
    """``not x`` of a bool; of a number, ``x == 0`` (``np.logical_not``)."""
    if not isinstance(x, Value):
        return not x
    if x.dtype is not bool_:
        x = x != 0
    return _bind1(P.not_p, x)


def _float_unary(prim: Any, fn: Any) -> Any:
    def op(x: Any) -> Any:
        if isinstance(x, Value) and x.dtype.is_complex:
            return _complex_unary(prim, x)
        if not isinstance(x, Value):
            if _is_complex(x):  # a complex constant: NumPy's function (a c128 scalar)
                if prim not in _COMPLEX_UNARY:
                    _complex_unary(prim, x)  # (raises: not a complex function here)
                return getattr(np, prim.name)(np.complex128(x))
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
        _real_arg(x, name)
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
    _real_arg(x, "fabs")
    return abs(x if x.dtype.is_float else astype(x, f64))


def _scaled(x: Any, c: float, np_fn: Any) -> Any:
    if not isinstance(x, Value):
        return np_fn(x)
    _real_arg(x, np_fn.__name__)
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
    _real_arg(x, "sign")
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
    if x.dtype.is_float or x.dtype.is_complex:
        return 1.0 / x
    if x.dtype.is_bool:
        raise CompileError("reciprocal is not defined for bool; convert with .astype first")
    return where((x == 1) | (x == -1), x, 0)


def isinf(x: Any) -> Any:
    """Whether ``x`` is +inf or -inf (False for integers)."""
    if not isinstance(x, Value):
        return np.isinf(x)
    if x.dtype.is_complex:  # either part infinite
        re, im = _parts(x, x.dtype)
        return isinf(re) | isinf(im)
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
    if x.dtype.is_complex:  # each part, as NumPy does
        re, im = _parts(x, x.dtype)
        return _cmake(*(nan_to_num(v, nan=nan, posinf=posinf, neginf=neginf) for v in (re, im)))
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
    _real_arg(x, "round")
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
        _real_arg(to_value(0, d), prim.name)
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
    _real_arg(to_value(0, _common_dtype(a, b)), "float_power")
    return _bind1(P.pow_p, to_value(a, f64), to_value(b, f64)) if (
        isinstance(a, Value) or isinstance(b, Value)) else np.float_power(a, b)


def heaviside(x1: Any, x2: Any) -> Any:
    """0 where ``x1 < 0``, ``x2`` where ``x1 == 0``, 1 where ``x1 > 0``, NaN for NaN."""
    d = _common_dtype(x1, x2)
    _real_arg(to_value(0, d), "heaviside")
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
    if x.dtype.is_complex:
        return _complex_abs(x)
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
        if d.is_complex:
            raise CompileError(_ORDER_MSG.format(what=prim.name))
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
    _real_arg(to_value(0, d), "logaddexp")
    if not d.is_float:
        d = f64
    return _bind1(P.logaddexp_p, to_value(a, d), to_value(b, d))


def power(a: Any, b: Any) -> Any:
    """``a ** b``; small non-negative integer literal exponents become multiplications.  Integer
    operands give an integer (exact, wrapping on overflow, as NumPy's; a negative exponent
    raises NumPy's ValueError when the kernel runs)."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        return a ** b
    if _is_complex(a) or _is_complex(b):
        return _complex_power(a, b)
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
        return np.isnan(x) if _is_complex(x) else math.isnan(x)
    if x.dtype.is_complex:  # either part NaN
        re, im = _parts(x, x.dtype)
        return isnan(re) | isnan(im)
    if not x.dtype.is_float:
        return full_like(x, False, dtype=bool_)
    return x != x


def isfinite(x: Any) -> Any:
    if not isinstance(x, Value):
        return np.isfinite(x) if _is_complex(x) else math.isfinite(x)
    if x.dtype.is_complex:  # both parts finite
        re, im = _parts(x, x.dtype)
        return isfinite(re) & isfinite(im)
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


def _no_out(name: str, out: Any) -> None:
    if out is not None:
        raise CompileError(f"{name}: out= is not supported (lattice arrays are values): "
                           f"assign the result, r = np.{name}(...)")


def _keep(r: Any, axes: Sequence[int], keepdims: bool) -> Any:
    """``r`` (reduced over ``axes``, sorted) with those axes back as literal 1s when
    ``keepdims``: NumPy's ``keepdims=True``."""
    if not keepdims or not axes:
        return r
    return _expand_dims(to_value(r), list(axes))


def _with_dtype(x: Value, dtype: Any) -> Value:
    return x if dtype is None else astype(x, dtype)


def sum(x: Any, axis: Any = None, dtype: Any = None, out: Any = None,  # noqa: A001
        keepdims: bool = False) -> Any:
    """Sum over ``axis`` (all axes by default); bool and integers narrower than 64 bits sum
    into i64 (unsigned ones into u64) like NumPy; f16 accumulates in f32 when the reduction
    covers the innermost axis (see :mod:`lattice.ir.primitives`).  ``dtype``: convert first."""
    _no_out("sum", out)
    x = _with_dtype(_as_traced(x, "sum"), dtype)
    if x.dtype.is_complex:
        return _complex_sum(x, axis, "sum", keepdims)
    axes = _axes(x, axis, "sum")
    return _keep(_bind1(P.reduce_sum_p, x, axes=axes), axes, keepdims)


def _count(x: Value, axes: tuple[int, ...]) -> Any:
    n: Any = 1
    shape = x.shape
    for a in axes:
        n = n * shape[a]
    return n


def mean(x: Any, axis: Any = None, dtype: Any = None, out: Any = None,
         keepdims: bool = False) -> Any:
    """Arithmetic mean; integers average in f64 like NumPy, f16 in f32 (rounded to f16 at the
    end, as NumPy does: a count above 65504 is inf in f16).  An empty mean is NaN."""
    _no_out("mean", out)
    x = _with_dtype(_as_traced(x, "mean"), dtype)
    if x.dtype.is_complex:
        return _complex_sum(x, axis, "mean", keepdims)
    axes = _axes(x, axis, "mean")
    if x.dtype is f16:
        return astype(mean(astype(x, f32), axes, keepdims=keepdims), f16)
    if not x.dtype.is_float:
        x = astype(x, f64)
    s = sum(x, axes)
    n = _count(x, axes)
    return _keep(s / astype(n, x.dtype) if isinstance(n, Value) else s / n, axes, keepdims)


def _minmax(prim: Any, pyfn: Any, name: str) -> Any:
    def op(x: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        _no_out(name, out)
        x = _as_traced(x, name)
        if x.dtype.is_complex:
            raise CompileError(_ORDER_MSG.format(what=name))
        if x.dtype.is_bool:
            x = astype(x, i64)
        axes = _axes(x, axis, name)
        return _keep(_bind1(prim, x, axes=axes), axes, keepdims)
    op.__name__ = name
    op.__doc__ = f"{name} over ``axis`` (all by default); NaN propagates; empty raises."
    return op


max = _minmax(P.reduce_max_p, builtins.max, "max")  # noqa: A001
min = _minmax(P.reduce_min_p, builtins.min, "min")  # noqa: A001


def _argfn(prim: Any, name: str) -> Any:
    def op(x: Any, axis: Optional[int] = None, out: Any = None, keepdims: bool = False) -> Any:
        _no_out(name, out)
        x = _as_traced(x, name)
        if x.dtype.is_bool:
            x = astype(x, i64)
        if isinstance(axis, tuple):
            raise CompileError(f"{name}: axis must be one int (or None), got the tuple {axis}")
        ax = None if axis is None else _axes(x, axis, name)[0]
        kept = tuple(range(x.ndim)) if ax is None else (ax,)
        return _keep(_bind1(prim, x, axis=ax), kept, keepdims)
    op.__name__ = name
    op.__doc__ = (f"Index of the first {name[3:]} along ``axis`` (flattened when None); "
                  "a NaN counts as the extreme, as in NumPy.")
    return op


argmax = _argfn(P.argmax_p, "argmax")
argmin = _argfn(P.argmin_p, "argmin")


# --------------------------------------------------------------------------- more reductions
# prod, any/all, var/std, the NaN-ignoring reductions, average, the norms, and the scans.
# ``any_``/``all_`` carry a trailing underscore so this module keeps Python's any/all; the
# package exports them as ``lt.any``/``lt.all``.
def _truth(x: Any) -> Value:
    """``x != 0`` as bool (NaN is true, as in NumPy)."""
    x = _as_traced(x, "truth")
    return x if x.dtype is bool_ else x != 0


def _widened(x: Value) -> Value:
    """bool and integers narrower than 64 bits as i64 (u64): the dtype NumPy's sum, prod,
    cumsum and cumprod of them compute and return."""
    d = P.reduce_out_dtype("sum", x.dtype)
    return x if d is x.dtype else astype(x, d)


def prod(x: Any, axis: Any = None, dtype: Any = None, out: Any = None,
         keepdims: bool = False) -> Any:
    """``np.prod`` over ``axis`` (all by default); bool and small integers multiply in i64
    (u64), wrapping on overflow; the empty product is 1.  Its derivative is right at zeros."""
    _no_out("prod", out)
    x = _with_dtype(_widened(_as_traced(x, "prod")), dtype)
    _no_complex(x, "prod")
    axes = _axes(x, axis, "prod")
    return _keep(_bind1(P.reduce_prod_p, x, axes=axes), axes, keepdims)


def any_(x: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """``np.any``: is some element non-zero (NaN counts) along ``axis``; False when empty."""
    _no_out("any", out)
    if not isinstance(x, Value):
        return np.any(x, axis=axis, keepdims=keepdims)
    t = _truth(x)
    axes = _axes(t, axis, "any")
    return _keep(sum(t, axes) > 0, axes, keepdims)


def all_(x: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """``np.all``: is every element non-zero (NaN counts) along ``axis``; True when empty."""
    _no_out("all", out)
    if not isinstance(x, Value):
        return np.all(x, axis=axis, keepdims=keepdims)
    t = _truth(x)
    axes = _axes(t, axis, "all")
    return _keep(sum(logical_not(t), axes) == 0, axes, keepdims)


def _static_number(v: Any, name: str, what: str) -> float:
    if isinstance(v, Value) or isinstance(v, bool) or \
            not isinstance(v, (int, float, np.integer, np.floating)):
        raise CompileError(f"{name}: {what} must be a number known when the kernel is "
                           f"compiled, got {v!r}")
    return v


def var(x: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: Any = 0,
        keepdims: bool = False) -> Any:
    """``np.var``: the mean squared deviation from the mean, its sum divided by
    ``max(n - ddof, 0)`` (so an empty lane, or ``ddof >= n``, gives NaN or inf as in NumPy).
    Integers give f64; f16 is computed in f32 and rounded at the end."""
    _no_out("var", out)
    ddof = _static_number(ddof, "var", "ddof")
    x = _with_dtype(_as_traced(x, "var"), dtype)
    axes = _axes(x, axis, "var")
    if x.dtype is f16:
        return astype(var(astype(x, f32), axes, ddof=ddof, keepdims=keepdims), f16)
    if not x.dtype.is_float and not x.dtype.is_complex:
        x = astype(x, f64)
    d = x - mean(x, axes, keepdims=True)
    if d.dtype.is_complex:  # NumPy: the mean of |x - mean|^2, a real number
        re, im = _parts(d, d.dtype)
        s = sum(re * re + im * im, axes)
    else:
        s = sum(d * d, axes)
    n = _count(x, axes)
    if isinstance(n, Value):
        den = maximum(astype(n, s.dtype) - ddof, 0)
    else:
        den = builtins.max(n - ddof, 0)
    return _keep(s / den, axes, keepdims)


def std(x: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: Any = 0,
        keepdims: bool = False) -> Any:
    """``np.std``: the square root of :func:`var`."""
    _no_out("std", out)
    return sqrt(var(x, axis, dtype, None, ddof, keepdims))


def _nan_prep(x: Any, name: str) -> tuple[Value, Optional[Value]]:
    """The traced ``x`` and its NaN mask (None: an integer array has no NaN)."""
    x = _as_traced(x, name)
    return x, (isnan(x) if x.dtype.is_float else None)


def nansum(x: Any, axis: Any = None, dtype: Any = None, out: Any = None,
           keepdims: bool = False) -> Any:
    """``np.nansum``: the sum with NaNs counted as 0."""
    _no_out("nansum", out)
    x, m = _nan_prep(x, "nansum")
    return sum(x if m is None else where(m, 0, x), axis, dtype, None, keepdims)


def _nan_extreme(name: str, reduce: Any, fill: float) -> Any:
    def op(x: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
        _no_out(name, out)
        x, m = _nan_prep(x, name)
        if m is None:
            return reduce(x, axis, keepdims=keepdims)
        r = reduce(where(m, fill, x), axis, keepdims=keepdims)
        # a lane of NaNs only is NaN (NumPy warns "All-NaN slice")
        return where(all_(m, axis, keepdims=keepdims), math.nan, r)
    op.__name__ = name
    op.__doc__ = (f"``np.{name}``: the {name[3:]} ignoring NaNs; NaN where a lane has "
                  "nothing but NaNs; empty raises ValueError.")
    return op


nanmax = _nan_extreme("nanmax", max, -math.inf)
nanmin = _nan_extreme("nanmin", min, math.inf)


def nanmean(x: Any, axis: Any = None, dtype: Any = None, out: Any = None,
            keepdims: bool = False) -> Any:
    """``np.nanmean``: the mean of the non-NaN elements (NaN where there are none)."""
    _no_out("nanmean", out)
    x, m = _nan_prep(x, "nanmean")
    if m is None:
        return mean(x, axis, dtype, None, keepdims)
    x = _with_dtype(x, dtype)
    s = sum(where(m, 0, x), axis, keepdims=keepdims)
    return s / astype(sum(logical_not(m), axis, keepdims=keepdims), s.dtype)


def nanprod(x: Any, axis: Any = None, dtype: Any = None, out: Any = None,
            keepdims: bool = False) -> Any:
    """``np.nanprod``: the product with NaNs counted as 1."""
    _no_out("nanprod", out)
    x, m = _nan_prep(x, "nanprod")
    return prod(x if m is None else where(m, 1, x), axis, dtype, None, keepdims)


def nanvar(x: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: Any = 0,
           keepdims: bool = False) -> Any:
    """``np.nanvar``: :func:`var` of the non-NaN elements (divided by ``max(count - ddof,
    0)``); NaN where a lane has none."""
    _no_out("nanvar", out)
    ddof = _static_number(ddof, "nanvar", "ddof")
    x, m = _nan_prep(x, "nanvar")
    if m is None:
        return var(x, axis, dtype, None, ddof, keepdims)
    x = _with_dtype(x, dtype)
    axes = _axes(x, axis, "nanvar")
    if x.dtype is f16:
        return astype(nanvar(astype(x, f32), axes, ddof=ddof, keepdims=keepdims), f16)
    d = where(m, 0, x - nanmean(x, axes, keepdims=True))
    n = astype(sum(logical_not(m), axes), x.dtype)
    return _keep(sum(d * d, axes) / maximum(n - ddof, 0), axes, keepdims)


def nanstd(x: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: Any = 0,
           keepdims: bool = False) -> Any:
    """``np.nanstd``: the square root of :func:`nanvar`."""
    _no_out("nanstd", out)
    return sqrt(nanvar(x, axis, dtype, None, ddof, keepdims))


def ptp(x: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """``np.ptp``: ``max - min`` (bool is refused, as NumPy's subtract refuses it)."""
    _no_out("ptp", out)
    x = _as_traced(x, "ptp")
    if x.dtype.is_bool:
        raise CompileError("ptp: of a bool array is not defined (NumPy cannot subtract "
                           "bools); convert with .astype(lt.i64)")
    return max(x, axis, keepdims=keepdims) - min(x, axis, keepdims=keepdims)


def average(a: Any, axis: Any = None, weights: Any = None, returned: bool = False,
            keepdims: bool = False) -> Any:
    """``np.average``: the mean, or with ``weights`` (of ``a``'s shape, or 1-D along the one
    ``axis``) ``sum(a * w) / sum(w)``; ``returned=True`` also gives the sum of the weights."""
    a = _as_traced(a, "average")
    axes = _axes(a, axis, "average")
    if weights is None:
        r = mean(a, axes, keepdims=keepdims)
        if not returned:
            return r
        return r, full_like(r, 0) + astype(_count(a, axes), r.dtype)
    w = to_value(weights)
    if w.type.shape != a.type.shape:
        if w.ndim != 1 or len(axes) != 1 or w.type.shape[0] != a.type.shape[axes[0]]:
            raise CompileError(f"average: the weights ({w.type}) must have the shape of a "
                               f"({a.type}), or be 1-D along the one axis averaged over")
        w = _expand_dims(w, [k for k in range(a.ndim) if k != axes[0]])
    d = _common_dtype(a, w)
    if not d.is_float:
        d = f64
    a, w = to_value(a, d), to_value(w, d)
    sw = sum(w * full_like(a, 1) if w.type.shape != a.type.shape else w, axes,
             keepdims=keepdims)
    r = sum(a * w, axes, keepdims=keepdims) / sw
    return (r, sw) if returned else r


def _norm_vector(x: Value, ordv: Any, axes: tuple[int, ...]) -> Value:
    if ordv is None or ordv == 2:
        return sqrt(sum(x * x, axes))
    if ordv == math.inf:
        return max(abs(x), axes)
    if ordv == -math.inf:
        return min(abs(x), axes)
    if ordv == 0:
        return astype(sum(x != 0, axes), x.dtype)
    if ordv == 1:
        return sum(abs(x), axes)
    p = _static_number(ordv, "norm", "ord")
    return power(sum(power(abs(x), p), axes), 1.0 / p)


def _norm_matrix(x: Value, ordv: Any, axes: tuple[int, int]) -> Value:
    r, c = axes
    if ordv is None or ordv == "fro":
        return sqrt(sum(x * x, tuple(sorted(axes))))
    if ordv in (1, -1, math.inf, -math.inf):
        # 1: the largest column sum of |x| (inf: row sum); the inner sum removes one axis
        inner, outer = (r, c) if ordv in (1, -1) else (c, r)
        s = sum(abs(x), inner)
        ext = max if ordv in (1, math.inf) else min
        return ext(s, outer - 1 if outer > inner else outer)
    raise CompileError(f"norm: ord={ordv!r} of a matrix is not supported (it needs singular "
                       "values); supported: None, 'fro', 1, -1, inf, -inf")


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    """``np.linalg.norm`` of real arrays: vector norms (``ord`` None/2, 1, inf, -inf, 0 or a
    number p) over one ``axis``, matrix norms (None/'fro', 1, -1, inf, -inf) over two; with
    ``axis=None`` the 2-norm of everything (``ord`` then needs a 1-D or 2-D array).
    Integers give f64."""
    x = _as_traced(x, "norm")
    if x.dtype.is_complex:  # every norm here is a norm of the moduli
        x = abs(x)
    if not x.dtype.is_float:
        x = astype(x, f64)
    if axis is None:
        if ord is None:
            axes = tuple(range(x.ndim))
            return _keep(sqrt(sum(x * x, axes)), axes, keepdims)
        if x.ndim not in (1, 2):
            raise CompileError(f"norm: ord={ord!r} with axis=None needs a 1-D or 2-D array, "
                               f"got {x.ndim}-D")
        axis = 0 if x.ndim == 1 else (0, 1)
    ax = axis if isinstance(axis, tuple) else (axis,)
    if len(ax) == 1:
        axes = _axes(x, ax, "norm")
        if ord == "fro":
            raise CompileError("norm: ord='fro' is a matrix norm: give two axes")
        return _keep(_norm_vector(x, ord, axes), axes, keepdims)
    if len(ax) == 2:
        sorted_axes = _axes(x, ax, "norm")
        pair = tuple(int(a) % x.ndim for a in ax)
        return _keep(_norm_matrix(x, ord, pair), sorted_axes, keepdims)  # type: ignore[arg-type]
    raise CompileError(f"norm: axis must be an int or a pair of ints, got {axis!r}")


def logical_and(a: Any, b: Any) -> Any:
    """``np.logical_and``: both non-zero (NaN counts as true)."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        return np.logical_and(a, b)
    return bitwise_and(_truth(a), _truth(b))


def logical_or(a: Any, b: Any) -> Any:
    """``np.logical_or``: either non-zero."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        return np.logical_or(a, b)
    return bitwise_or(_truth(a), _truth(b))


def logical_xor(a: Any, b: Any) -> Any:
    """``np.logical_xor``: exactly one non-zero."""
    if not isinstance(a, Value) and not isinstance(b, Value):
        return np.logical_xor(a, b)
    return bitwise_xor(_truth(a), _truth(b))


def _scan_axis(x: Value, axis: Any, name: str) -> tuple[Value, int]:
    if x.ndim == 0:  # NumPy: the running sum of a scalar is a 1-element array
        return _expand_dims(x, [0]), 0
    if axis is None and x.ndim > 1:  # NumPy scans the flattened array
        return ravel(x), 0
    return _lane_axis(x, axis, name)


def _scan_op(prim: Any, name: str) -> Any:
    def op(x: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
        _no_out(name, out)
        x = _with_dtype(_widened(_as_traced(x, name)), dtype)
        if x.dtype.is_complex:
            if prim is not P.cumsum_p:
                _no_complex(x, name)
            re, im = _parts(x, x.dtype)
            return _cmake(op(re, axis), op(im, axis))
        x, ax = _scan_axis(x, axis, name)
        return _bind1(prim, x, axis=ax, reverse=False)
    op.__name__ = name
    op.__doc__ = (f"``np.{name}`` along ``axis`` (needed unless the array is 1-D); bool and "
                  "small integers in i64 (u64).  One pass along the axis.")
    return op


cumsum = _scan_op(P.cumsum_p, "cumsum")
cumprod = _scan_op(P.cumprod_p, "cumprod")


def _nan_scan(scan: Any, fill: int, name: str) -> Any:
    def op(x: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
        _no_out(name, out)
        x, m = _nan_prep(x, name)
        return scan(x if m is None else where(m, fill, x), axis, dtype)
    op.__name__ = name
    op.__doc__ = f"``np.{name}``: :func:`{name[3:]}` with NaNs counted as {fill}."
    return op


nancumsum = _nan_scan(cumsum, 0, "nancumsum")
nancumprod = _nan_scan(cumprod, 1, "nancumprod")


def _cumulative(scan: Any, identity: int, name: str) -> Any:
    def op(x: Any, /, *, axis: Any = None, dtype: Any = None, out: Any = None,
           include_initial: bool = False) -> Any:
        _no_out(name, out)
        r = scan(x, axis, dtype)
        if not include_initial:
            return r
        ax = r.ndim - 1 if axis is None else _axes(r, axis, name)[0]
        first = full(tuple(1 if k == ax else d for k, d in enumerate(r.shape)), identity,
                     r.dtype)
        return concatenate([first, r], ax)
    op.__name__ = name
    op.__doc__ = (f"``np.{name}`` (NumPy 2.1): :func:`{'cumsum' if identity == 0 else 'cumprod'}`"
                  f"; ``include_initial=True`` puts the identity ({identity}) first.")
    return op


cumulative_sum = _cumulative(cumsum, 0, "cumulative_sum")
cumulative_prod = _cumulative(cumprod, 1, "cumulative_prod")


# --------------------------------------------------------------------------- sorting
_SORT_KINDS = (None, "quicksort", "mergesort", "heapsort", "stable")


def _lane_axis(x: Any, axis: Any, name: str) -> tuple[Value, int]:
    """The traced array and the one axis a sort or an order statistic works along (``None``:
    the flattened array)."""
    x = _as_traced(x, name)
    if x.dtype.is_complex:
        raise CompileError(_ORDER_MSG.format(what=name))
    if not x.ndim:
        raise CompileError(f"{name}: needs an array, got a scalar")
    if axis is None:
        return (x if x.ndim == 1 else ravel(x)), 0  # NumPy: over the flattened array
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
    x = _as_traced(x, "median")
    if keepdims and axis is None and x.ndim > 1:  # of everything, kept as 1 x 1 x ...
        return _expand_dims(median(x), list(range(x.ndim)))
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
    x = _as_traced(x, name)
    if keepdims and axis is None and x.ndim > 1:  # of everything, kept as 1 x 1 x ...
        r = _quantile(name, x, q, None, False, method, scale)
        return _expand_dims(r, list(range(r.ndim, r.ndim + x.ndim)))
    s, ax, xf, n = _stat_prep(x, axis, name)
    out_dtype = xf.dtype if one else f64
    rs = [_finish(_nan_lanes(_quantile_1(s, ax, n, v, out_dtype), s, ax, n), ax, keepdims)
          for v in qs]
    # (stacked as rows of one new axis; ``stack`` refuses scalars)
    return rs[0] if one else concatenate([_expand_dims(r, [0]) for r in rs], 0)


# --------------------------------------------------------------------------- products
# Every product here is a contraction of index letters (einsum's view): the operands are
# brought to (free..., contracted...) and (contracted..., free...) order and multiplied by one
# ``matmul`` (reshaped to 2-D when several letters share a role), or, for letters shared by
# both operands and the result (batch letters), broadcast against each other, multiplied and
# summed.  The derivatives are those of the primitives used.
def outer(a: Any, b: Any) -> Value:
    """``np.outer``: ``a.ravel()[:, None] * b.ravel()[None, :]``."""
    a, b = ravel(_as_traced(a, "outer")), ravel(_as_traced(b, "outer"))
    return _expand_dims(a, [1]) * _expand_dims(b, [0])


def ufunc_outer(op: Any, name: str) -> Any:
    """``np.<ufunc>.outer``: ``op(a[..., None, ...], b)`` with one new axis per axis of b."""
    def f(a: Any, b: Any) -> Any:
        a = to_value(a)
        b = to_value(b)
        return op(_expand_dims(a, list(range(a.ndim, a.ndim + b.ndim))), b)
    f.__name__ = f"{name}_outer"
    return f


def inner(a: Any, b: Any) -> Any:
    """``np.inner``: the sum over the last axes,
    ``out[i..., j...] = sum(a[i..., :] * b[j..., :])``."""
    if not isinstance(a, Value) or not isinstance(b, Value) or not a.ndim or not b.ndim:
        return a * b
    la, lb = _letters(a.ndim - 1), _letters(a.ndim - 1 + b.ndim - 1)[a.ndim - 1:]
    c = "z"
    return _einsum_pair(a, la + c, b, lb + c, la + lb)


def vdot(a: Any, b: Any) -> Any:
    """``np.vdot`` (real arrays): the dot product of the flattened arrays."""
    return matmul(ravel(_as_traced(a, "vdot")), ravel(_as_traced(b, "vdot")))


def kron(a: Any, b: Any) -> Value:
    """``np.kron``: block ``[i, j]`` of the result is ``a[i, j] * b`` (ranks padded with
    leading 1s to the larger)."""
    a, b = _as_traced(a, "kron"), _as_traced(b, "kron")
    d = builtins.max(a.ndim, b.ndim, 1)
    a = _expand_dims(a, list(range(d - a.ndim))) if a.ndim < d else a
    b = _expand_dims(b, list(range(d - b.ndim))) if b.ndim < d else b
    sa, sb = a.shape, b.shape
    prod = _expand_dims(a, [2 * k + 1 for k in range(d)]) * \
        _expand_dims(b, [2 * k for k in range(d)])
    return _reshape(prod, [_product([x, y]) for x, y in zip(sa, sb)], owned=True)


_LETTERS = "abcdefghijklmnopqrstuvwxy"  # ("z" is inner's contracted letter)


def _letters(n: int) -> str:
    if n > len(_LETTERS):
        raise CompileError(f"products of arrays of more than {len(_LETTERS)} axes are not "
                           "supported")
    return _LETTERS[:n]


def matmul(a: Any, b: Any) -> Any:
    """``a @ b``: 1-D and 2-D operands by the matrix-product primitive; N-D operands as
    stacks of matrices whose leading (batch) axes broadcast."""
    if not isinstance(a, Value) or not isinstance(b, Value):
        raise CompileError("@ needs two arrays")
    if not a.ndim or not b.ndim:
        raise CompileError("matmul: input operand does not have enough dimensions (a scalar "
                           "is not a matrix; use *)")
    if a.ndim <= 2 and b.ndim <= 2:
        return _matmul2(a, b)
    # batch axes: right-aligned, broadcast; a vector operand has none (its one axis is the
    # contracted one, and the result lacks the row or column it would have)
    va, vb = a.ndim == 1, b.ndim == 1
    nb = builtins.max(a.ndim, b.ndim) - 2
    batch = _letters(nb)
    sa = "z" if va else batch[nb - (a.ndim - 2):] + "xz"
    sb = "z" if vb else batch[nb - (b.ndim - 2):] + "zy"
    return _einsum_pair(a, sa, b, sb, batch + ("" if va else "x") + ("" if vb else "y"))


def _runtime_equal(d: Dim, e: Dim) -> bool:
    """May sizes ``d`` and ``e`` (not the same Dim) still agree at run time?  A literal and a
    symbolic size may (``x[:5]`` against ``n5``), and so may a size computed inside the
    kernel (fresh); two literals, or two differently named sizes, are different."""
    return d.is_const != e.is_const or d.is_fresh or e.is_fresh


def _as_dim(v: Value, axis: int, d: Dim, size: Any, what: str) -> Value:
    """``v`` with axis ``axis`` renamed to the size ``d`` (run-time value ``size``): a reshape
    whose run-time check is that the two sizes agree."""
    sizes: list[Any] = list(v.shape)
    sizes[axis] = size
    dims = list(v.type.shape)
    dims[axis] = d
    (out,) = ir_bind(P.reshape_p, v.atom, *(to_value(s, i64).atom for s in sizes),
                     dims=tuple(dims), what=what)
    return Value(out, owned=False)


def _matmul2(a: Value, b: Value) -> Any:
    kb_axis = b.ndim - 2 if b.ndim >= 2 else 0
    ka, kb = a.type.shape[-1], b.type.shape[kb_axis]
    if ka != kb and _runtime_equal(ka, kb):
        # checked when the kernel runs (the error names the line): the literal or computed
        # size takes the other's name
        what = (f"matmul: contracted dimensions differ ({a.type} @ {b.type}: {ka} vs {kb} at "
                "run time)")
        if ka.is_const or (ka.is_fresh and not kb.is_const):
            a = _as_dim(a, a.ndim - 1, kb, b.shape[kb_axis], what)
        else:
            b = _as_dim(b, kb_axis, ka, a.shape[-1], what)
    d = _common_dtype(a, b)
    if d.is_complex:
        return _complex_matmul(a, b)
    if d.is_bool:  # NumPy: the OR of the ANDs, a bool; here whether any product counts
        return _bind1(P.matmul_p, to_value(a, i64), to_value(b, i64)) != 0
    if d is f16:  # storage only: the products accumulate in f32, the result rounds once
        return astype(_bind1(P.matmul_p, astype(a, f32), astype(b, f32)), f16)
    try:
        return _bind1(P.matmul_p, to_value(a, d), to_value(b, d))
    except ShapeError as exc:
        raise CompileError(str(exc)) from None


def dot(a: Any, b: Any) -> Any:
    """NumPy's dot: scalars multiply; 1-D and 2-D operands are ``@``; otherwise the sum over
    a's last axis and b's second-to-last,
    ``out[i..., j..., k] = sum(a[i..., :] * b[j..., :, k])``."""
    if not isinstance(a, Value) or not isinstance(b, Value) or a.ndim == 0 or b.ndim == 0:
        return a * b
    if a.ndim <= 2 and b.ndim <= 2:
        return _matmul2(a, b)
    la = _letters(a.ndim - 1)
    lb = _letters(a.ndim - 1 + b.ndim - 1)[a.ndim - 1:]
    bl = lb[:-1] + "z" + lb[-1:] if b.ndim > 1 else "z"
    return _einsum_pair(a, la + "z", b, bl, la + lb)


def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """``np.tensordot``: the sum over the last ``axes`` axes of ``a`` and the first of ``b``,
    or over the axes listed in a pair ``(a_axes, b_axes)``."""
    a, b = _as_traced(a, "tensordot"), _as_traced(b, "tensordot")
    if isinstance(axes, (int, np.integer)) and not isinstance(axes, bool):
        n = int(axes)
        if not 0 <= n <= builtins.min(a.ndim, b.ndim):
            raise CompileError(f"tensordot: axes={n} for operands of ranks {a.ndim} and {b.ndim}")
        xa, xb = list(range(a.ndim - n, a.ndim)), list(range(n))
    elif isinstance(axes, (tuple, list)) and len(axes) == 2:
        pa, pb = (tuple(v) if isinstance(v, (tuple, list)) else (v,) for v in axes)
        if len(pa) != len(pb):
            raise CompileError("tensordot: shape-mismatch for sum (the axis lists differ in "
                               "length)")
        xa, xb = list(_axes_of(pa, a.ndim, "tensordot")), list(_axes_of(pb, b.ndim, "tensordot"))
    else:
        raise CompileError(f"tensordot: axes must be an int or a pair of axis lists, got {axes!r}")
    letters = _letters(a.ndim + b.ndim)
    sa = letters[:a.ndim]
    sb = list(letters[a.ndim:])
    for i, j in zip(xa, xb):
        sb[j] = sa[i]
    sb_s = "".join(sb)
    out = "".join(c for k, c in enumerate(sa) if k not in xa) + "".join(
        c for k, c in enumerate(sb_s) if k not in xb)
    return _einsum_pair(a, sa, b, sb_s, out)


def _size_of(ops_: Sequence[tuple[Value, str]], c: str) -> Any:
    """The size of letter ``c``: from the first operand where it is not a literal 1."""
    found: Any = None
    for v, s in ops_:
        k = s.find(c)
        if k >= 0 and (found is None or v.type.shape[k] != Dim.of(1)):
            found = v.shape[k]
            if v.type.shape[k] != Dim.of(1):
                break
    return found


def _align(v: Value, s: str, order: str) -> Value:
    """``v`` (letters ``s``, a subset of ``order``) transposed to order's sequence, with
    size-1 axes for the letters it lacks."""
    perm = [s.index(c) for c in order if c in s]
    v = transpose(v, perm) if perm != list(range(len(perm))) else v
    new = [k for k, c in enumerate(order) if c not in s]
    return _expand_dims(v, new) if new else v


def _einsum_pair(a: Value, sa: str, b: Value, sb: str, out: str) -> Any:
    batch = "".join(c for c in sa if c in sb and c in out)
    con = "".join(c for c in sa if c in sb and c not in out)
    left = "".join(c for c in sa if c not in sb)
    right = "".join(c for c in sb if c not in sa)
    # letters of one operand that the result lacks are summed out first
    a, sa = _sum_letters(a, sa, [c for c in left if c not in out])
    b, sb = _sum_letters(b, sb, [c for c in right if c not in out])
    left = "".join(c for c in left if c in out)
    right = "".join(c for c in right if c in out)
    pairs = [(a, sa), (b, sb)]
    one = Dim.of(1)
    def stretched_in(letters: str) -> list[str]:
        return [c for c in letters if a.type.shape[sa.index(c)] != b.type.shape[sb.index(c)]
                and one in (a.type.shape[sa.index(c)], b.type.shape[sb.index(c)])]
    if batch and con and stretched_in(batch) and not stretched_in(con):
        # a batch axis of size 1 on one side (T[:1] @ U): that operand is broadcast to the
        # other's batch sizes, so the stacked product below applies
        def widen(v: Value, s: str) -> Value:
            sizes = [_size_of(pairs, c) if c in batch else n for c, n in zip(s, v.shape)]
            return _broadcast(v, sizes, tuple(range(v.ndim)))
        a, b = widen(a, sa), widen(b, sb)
        pairs = [(a, sa), (b, sb)]
    stretched = stretched_in(batch + con)
    if batch and con and not stretched:
        # stacks of matrices: (batch, left, con) @ (batch, con, right), one product each
        bsz = [_size_of(pairs, c) for c in batch]
        lsz = [_size_of(pairs, c) for c in left]
        csz = [_size_of(pairs, c) for c in con]
        rsz = [_size_of(pairs, c) for c in right]
        a3 = _reshape(_align(a, sa, batch + left + con), bsz + [_product(lsz), _product(csz)])
        b3 = _reshape(_align(b, sb, batch + con + right), bsz + [_product(csz), _product(rsz)])
        res, rs = _reshape(_matmul2(a3, b3), bsz + lsz + rsz), batch + left + right
    elif batch or stretched or (not con and not (left and right)):
        # broadcast multiply and sum: batch letters (and size-1 broadcasting) kept in place
        order = batch + left + right + con
        prod = _align(a, sa, order) * _align(b, sb, order)
        if con:
            prod = sum(prod, tuple(range(len(order) - len(con), len(order))))
        res, rs = prod, batch + left + right
    else:
        if not con:
            res = _align(a, sa, left + right) * _align(b, sb, left + right)
        else:
            a2 = _align(a, sa, left + con)
            b2 = _align(b, sb, con + right)
            lsz = [_size_of(pairs, c) for c in left]
            csz = [_size_of(pairs, c) for c in con]
            rsz = [_size_of(pairs, c) for c in right]
            if len(left) > 1 or len(con) > 1:
                a2 = _reshape(a2, ([_product(lsz)] if left else []) + [_product(csz)])
            if len(right) > 1 or len(con) > 1:
                b2 = _reshape(b2, [_product(csz)] + ([_product(rsz)] if right else []))
            res = _matmul2(a2, b2)
            if len(left) > 1 or len(right) > 1:
                res = _reshape(res, lsz + rsz)
        rs = left + right
    perm = [rs.index(c) for c in out]
    return transpose(res, perm) if perm != list(range(len(perm))) else res


def _sum_letters(v: Value, s: str, letters: Sequence[str]) -> tuple[Value, str]:
    if not letters:
        return v, s
    return sum(v, tuple(s.index(c) for c in letters)), "".join(c for c in s if c not in letters)


def _diagonal_letters(v: Value, s: str) -> tuple[Value, str]:
    """Repeated letters within one operand (``'ii'``) select the diagonal: those axes moved
    to the front and indexed by one shared ``arange``."""
    while True:
        rep = next((c for c in s if s.count(c) > 1), None)
        if rep is None:
            return v, s
        pos = [k for k, c in enumerate(s) if c == rep]
        dims = {v.type.shape[k] for k in pos}
        if len(dims) != 1:
            raise CompileError(f"einsum: the axes labelled {rep!r} have different sizes "
                               f"({', '.join(map(str, dims))}); a repeated label takes a "
                               "diagonal of equal sizes")
        rest = [k for k in range(len(s)) if k not in pos]
        v = transpose(v, pos + rest) if pos + rest != list(range(len(s))) else v
        i = arange(v.shape[0])
        v = getitem(v, (i,) * len(pos))
        s = rep + "".join(s[k] for k in rest)


_ELLIPSIS_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _einsum_ellipsis(ins: Sequence[str], operands: Sequence[Any]) -> tuple[list[str], str]:
    """Each ``...`` replaced by upper-case letters for the axes it covers, right-aligned
    across operands (as broadcasting aligns them); returns those letters for the longest."""
    if not any("." in s for s in ins):
        return list(ins), ""
    counts = []
    for s, x in zip(ins, operands):
        if s.count("...") != 1 or s.replace("...", "").count("."):
            if "." in s:
                raise CompileError(f"einsum: cannot parse {s!r}: '.' only as one '...'")
            counts.append(0)
            continue
        nd = x.ndim if isinstance(x, Value) else np.ndim(x)
        k = nd - (len(s) - 3)
        if k < 0:
            raise CompileError(f"einsum: operand {s!r} has {nd} axes, fewer than it names")
        counts.append(k)
    e = builtins.max(counts)
    if e > len(_ELLIPSIS_LETTERS):
        raise CompileError("einsum: too many axes under '...'")
    ell = _ELLIPSIS_LETTERS[:e]
    return [s.replace("...", ell[e - k:]) for s, k in zip(ins, counts)], ell


def einsum(subscripts: Any, *operands: Any, **kwargs: Any) -> Any:
    """``np.einsum`` for letter subscripts (``'ij,jk->ik'``, ``'bij,bjk->bik'``, ``'ii->'``,
    ``'ij->ji'``, ``'i,j->ij'``, implicit output ``'ij,jk'``, broadcast axes ``'...ij,...jk'``):
    parsed while tracing, lowered to transposes, diagonals, sums and matrix products, left to
    right."""
    if kwargs:
        raise CompileError(f"einsum: keyword arguments are not supported ({', '.join(kwargs)})")
    if not isinstance(subscripts, str):
        raise CompileError("einsum: the subscripts must be a string known at compile time "
                           "(the interleaved operand/sublist form is not supported)")
    spec = subscripts.replace(" ", "")
    lhs, arrow, out = spec.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(operands):
        raise CompileError(f"einsum: {len(ins)} operand subscripts for {len(operands)} operands")
    ins, ell = _einsum_ellipsis(ins, operands)
    if arrow:
        if "..." in out:
            out = out.replace("...", ell)
    else:  # NumPy's implicit output: the broadcast axes, then the letters used once, sorted
        letters = "".join(ins)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1
                                   and c not in ell))
    if not all(c.isalpha() for c in "".join(ins) + out) or len(set(out)) != len(out):
        raise CompileError(f"einsum: cannot parse {subscripts!r}: subscripts are letters, each "
                           "at most once in the output")
    vals = []
    for s, x in zip(ins, operands):
        v = _as_traced(x, "einsum")
        if v.ndim != len(s):
            raise CompileError(f"einsum: operand {s!r} has {v.ndim} axes, the subscripts "
                               f"name {len(s)}")
        vals.append(_diagonal_letters(v, s))
    for c in out:
        if not any(c in s for _, s in vals):
            raise CompileError(f"einsum: output letter {c!r} appears in no operand")
    acc, sacc = vals[0]
    for k in range(1, len(vals)):
        nxt, snxt = vals[k]
        later = "".join(s for _, s in vals[k + 1:]) + out
        keep = "".join(dict.fromkeys(c for c in sacc + snxt if c in later))
        acc, sacc = _einsum_pair(acc, sacc, nxt, snxt, keep), keep
    acc, sacc = _sum_letters(acc, sacc, [c for c in sacc if c not in out])
    perm = [sacc.index(c) for c in out]
    return transpose(acc, perm) if perm != list(range(len(perm))) else acc


def transpose(x: Any, axes: Optional[Sequence[int]] = None) -> Any:
    """A view with the axes permuted (reversed by default; NumPy's negative axes)."""
    x = _as_traced(x, "transpose")
    if axes is None:
        perm = tuple(reversed(range(x.ndim)))
    else:
        if not isinstance(axes, (tuple, list)):
            raise CompileError(f"transpose: axes must be a tuple of ints, got {axes!r}")
        perm = tuple(_axis_of(a, x.ndim, "transpose") for a in axes)
        if sorted(perm) != list(range(x.ndim)):
            raise CompileError(f"transpose: axes {tuple(axes)} do not match the array's "
                               f"{x.ndim} dimensions (a permutation of each axis once)")
    if perm == tuple(range(x.ndim)):
        return x
    out = _bind1(P.transpose_p, x, perm=perm)
    out.owned = False  # a view: storing into it would not be seen through x
    return out


# --------------------------------------------------------------------------- layout
# Shapes rearranged without arithmetic.  Each is a view (``reshape`` of a C-contiguous array,
# ``transpose``/``swapaxes``/``moveaxis``, ``squeeze``, ``expand_dims``) or one copy over the
# primitives ``reshape``, ``transpose``, ``broadcast_in_dim``, ``index`` and ``concatenate``,
# so their derivatives are those primitives' (all linear).  Sizes are Python ints or i64
# Values knowing their Dim (what ``x.shape`` gives); a product of two symbolic sizes is no
# affine Dim and becomes a fresh one, bound at run time.
def _axis_of(a: Any, ndim: int, name: str) -> int:
    if isinstance(a, Value) or not isinstance(a, (int, np.integer)) or isinstance(a, bool):
        raise CompileError(f"{name}: axis must be a Python int, got {a!r}")
    if not -ndim <= a < ndim:
        raise CompileError(f"{name}: axis {a} is out of bounds for array of dimension {ndim}")
    return int(a) % ndim


def _axes_of(axis: Any, ndim: int, name: str) -> tuple[int, ...]:
    """Distinct normalised axes from an int or a sequence of ints (NumPy's negative axes)."""
    ax = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = tuple(_axis_of(a, ndim, name) for a in ax)
    if len(set(out)) != len(out):
        raise CompileError(f"{name}: repeated axis in {axis}")
    return out


def _size_dim(s: Any) -> Dim:
    if isinstance(s, Value):
        return s.dim if s.dim is not None else Dim.fresh("k")
    return Dim.of(int(s))


def _shape_arg(shape: Any, name: str) -> tuple[Any, ...]:
    """A shape argument (an int, a Value, or a sequence of them) as a tuple of sizes."""
    entries = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    for s in entries:
        if isinstance(s, Value):
            if s.ndim or not s.dtype.is_int:
                raise CompileError(f"{name}: sizes are integers, got {s.type}")
        elif not isinstance(s, (int, np.integer)) or isinstance(s, bool):
            raise CompileError(f"{name}: sizes are integers, got {s!r}")
    return tuple(s if isinstance(s, Value) else int(s) for s in entries)


def _product(sizes: Sequence[Any]) -> Any:
    """The product of sizes; a Value's Dim is the product's when it has one (dim_product)."""
    n: Any = 1
    for s in sizes:
        n = n * s
    if isinstance(n, Value) and n.dim is None and all(
            not isinstance(s, Value) or s.dim is not None for s in sizes):
        n.dim = dim_product(_size_dim(s) for s in sizes)
    return n


def _reshape(x: Value, sizes: Sequence[Any], owned: bool = False) -> Value:
    """``x`` under the shape ``sizes`` (no -1): a view when ``x`` is C-contiguous."""
    dims = tuple(_size_dim(s) for s in sizes)
    if dims == x.type.shape:
        return Value(x.atom, owned=owned and x.owned)
    if not sizes or not x.ndim:
        if not all(d == Dim.of(1) for d in x.type.shape + dims):
            raise CompileError(f"reshape: cannot reshape {x.type} into "
                               f"({', '.join(map(str, dims))}); to or from a 0-D array every "
                               "size must be a literal 1")
        v = getitem(x, (0,) * x.ndim) if x.ndim else x
        return _expand_dims(v, list(range(len(sizes)))) if sizes else v
    atoms = [to_value(s, i64).atom for s in sizes]
    try:
        (out,) = ir_bind(P.reshape_p, x.atom, *atoms, dims=dims)
    except ShapeError as exc:
        raise CompileError(str(exc)) from None
    return Value(out, owned=owned)


def reshape(x: Any, *sizes: Any, order: str = "C", shape: Any = None,
            newshape: Any = None) -> Value:
    """``np.reshape`` (C order): one size may be -1, computed from the others; when sizes
    are symbolic the element counts are checked at run time (a ValueError naming the line).
    The shape is positional (``reshape(x, (2, -1))``, ``x.reshape(2, -1)``) or NumPy's
    ``shape=`` (``newshape=`` before NumPy 2.1)."""
    x = _as_traced(x, "reshape")
    given = [v for v in (shape, newshape) if v is not None]
    if len(given) + bool(sizes) != 1:
        raise CompileError("reshape: give the new shape once (positionally or as shape=)")
    shape = sizes if sizes else (given[0],)
    if order != "C":
        raise CompileError(f"reshape: only order='C' is supported, got order={order!r}")
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    sizes = list(_shape_arg(shape, "reshape"))
    minus = [k for k, s in enumerate(sizes) if isinstance(s, int) and s < 0]
    if any(sizes[k] != -1 for k in minus) or len(minus) > 1:
        raise CompileError(f"reshape: sizes must be >= 0, with at most one -1; got {shape}")
    if minus:
        rest = [s for k, s in enumerate(sizes) if k != minus[0]]
        sizes[minus[0]] = _inferred_size(x, rest)
    return _reshape(x, sizes)


def _inferred_size(x: Value, rest: Sequence[Any]) -> Any:
    """The size -1 stands for: x's element count over the product of ``rest``."""
    total_dims = [d for d in x.type.shape]
    known_dims = [_size_dim(s) for s in rest]
    if all(d.is_const for d in total_dims + known_dims):
        total = int(np.prod([d.const for d in total_dims], dtype=np.int64))
        known = int(np.prod([d.const for d in known_dims], dtype=np.int64))
        if known == 0 or total % known:
            raise CompileError(f"reshape: cannot reshape {x.type} ({total} elements) into a "
                               f"shape with -1 and {known} elements in the other sizes")
        return total // known
    total = _product(x.shape)
    known = _product(rest)
    if isinstance(total, Value) and total.dim is not None and isinstance(known, Value) \
            and known.dim is not None and total.dim != known.dim:
        q = _dim_quotient(total.dim, known.dim)
        if q is not None:
            out = total // known
            out.dim = q
            return out
    if isinstance(total, Value) and isinstance(known, int) and known and total.dim is not None:
        d = total.dim
        if all(c % known == 0 for _, c in d.terms) and d.const % known == 0:
            q = total // known
            q.dim = Dim(tuple((n, c // known) for n, c in d.terms), d.const // known)
            return q
    if isinstance(total, Value) and isinstance(known, Value) and total.dim is not None \
            and total.dim == known.dim:
        return 1
    # the division is checked by the reshape (the counts must agree exactly)
    return total // (maximum(known, 1) if isinstance(known, Value) else builtins.max(known, 1))


def _dim_quotient(total: Dim, known: Dim) -> Optional[Dim]:
    """``total / known`` as a Dim when both are ``c * (product of names)`` and known's names
    and constant divide total's (``d*n / n = d``); else None."""
    def parts(d: Dim) -> Optional[tuple[int, list[str]]]:
        if d.is_const:
            return d.const, []
        if d.const or len(d.terms) != 1:
            return None
        name, c = d.terms[0]
        return c, list(product_factors(name))
    pt, pk = parts(total), parts(known)
    if pt is None or pk is None or pk[0] == 0 or pt[0] % pk[0]:
        return None
    rest = list(pt[1])
    for f in pk[1]:
        if f not in rest:
            return None
        rest.remove(f)
    return dim_product([Dim.of(pt[0] // pk[0])] + [Dim.named(f) for f in rest])


def ravel(x: Any, order: str = "C") -> Value:
    """The elements in C order as a 1-D array (a view when ``x`` is C-contiguous)."""
    x = _as_traced(x, "ravel")
    return x if x.ndim == 1 else reshape(x, -1, order=order)


def flatten(x: Any, order: str = "C") -> Value:
    """As :func:`ravel`, as a new array the kernel may store into."""
    out = ravel(x, order)
    return Value(out.atom, owned=True)


def matrix_transpose(x: Any) -> Value:
    """NumPy 2's ``matrix_transpose``: the last two axes swapped."""
    x = _as_traced(x, "matrix_transpose")
    if x.ndim < 2:
        raise CompileError(f"matrix_transpose: needs at least 2 dimensions, got {x.type}")
    return swapaxes(x, -1, -2)


def swapaxes(x: Any, axis1: Any, axis2: Any) -> Value:
    x = _as_traced(x, "swapaxes")
    a, b = _axis_of(axis1, x.ndim, "swapaxes"), _axis_of(axis2, x.ndim, "swapaxes")
    perm = list(range(x.ndim))
    perm[a], perm[b] = perm[b], perm[a]
    return transpose(x, perm)


def moveaxis(x: Any, source: Any, destination: Any) -> Value:
    x = _as_traced(x, "moveaxis")
    src = _axes_of(source, x.ndim, "moveaxis")
    dst = _axes_of(destination, x.ndim, "moveaxis")
    if len(src) != len(dst):
        raise CompileError("moveaxis: `source` and `destination` arguments must have the same "
                           "number of elements")
    order = [k for k in range(x.ndim) if k not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


def expand_dims(x: Any, axis: Any) -> Value:
    x = _as_traced(x, "expand_dims")
    axes = _axes_of(axis, x.ndim + (len(axis) if isinstance(axis, (tuple, list)) else 1),
                    "expand_dims")
    return _expand_dims(x, sorted(axes))


def squeeze(x: Any, axis: Any = None) -> Value:
    """Drop axes of literal size 1 (``axis=None``: every such axis; a symbolic size is
    never dropped, since it is not known to be 1)."""
    x = _as_traced(x, "squeeze")
    one = Dim.of(1)
    if axis is None:
        axes = tuple(k for k, d in enumerate(x.type.shape) if d == one)
    else:
        axes = _axes_of(axis, x.ndim, "squeeze")
        for a in axes:
            if x.type.shape[a] != one:
                raise CompileError(f"squeeze: axis {a} of {x.type} has size "
                                   f"{x.type.shape[a]}, not a literal 1; cannot select it")
    if not axes:
        return x
    return getitem(x, tuple(0 if k in axes else slice(None) for k in range(x.ndim)))


def broadcast_to(x: Any, shape: Any) -> Value:
    """``np.broadcast_to``: ``x``'s axes aligned to the right of ``shape``; each of size 1 or
    the same size (dim) as the target's."""
    x = _as_traced(x, "broadcast_to")
    sizes = _shape_arg(shape, "broadcast_to")
    if len(sizes) < x.ndim:
        raise CompileError(f"broadcast_to: cannot broadcast {x.type} to a shape of rank "
                           f"{len(sizes)}")
    return _broadcast(x, sizes, tuple(range(len(sizes) - x.ndim, len(sizes))))


def _broadcast(x: Value, sizes: Sequence[Any], axes: tuple[int, ...]) -> Value:
    dims = tuple(_size_dim(s) for s in sizes)
    for k, a in enumerate(axes):
        dx = x.type.shape[k]
        if dx != dims[a] and dx != Dim.of(1) and _runtime_equal(dx, dims[a]):
            # a literal size against a symbolic one (x: f64[n] to (3, 7)): they must agree
            # when the kernel runs
            x = _as_dim(x, k, dims[a], sizes[a], f"cannot broadcast {x.type} to ("
                        f"{', '.join(map(str, dims))}): size {dx} vs {dims[a]} at run time")
    if dims == x.type.shape:
        return x
    try:
        (out,) = ir_bind(P.broadcast_in_dim_p, x.atom, *(to_value(s, i64).atom for s in sizes),
                         dims=dims, axes=axes)
    except ShapeError as exc:
        raise CompileError(f"cannot broadcast {x.type} to ({', '.join(map(str, dims))}): "
                           f"{exc}") from None
    return Value(out, owned=False)


def _static_count(v: Any, name: str, what: str) -> int:
    if isinstance(v, Value) or not isinstance(v, (int, np.integer)) or isinstance(v, bool) \
            or v < 0:
        raise CompileError(f"{name}: {what} must be a non-negative Python int (known at "
                           f"compile time), got {v!r}")
    return int(v)


def tile(x: Any, reps: Any) -> Value:
    """``np.tile`` with Python-int repetitions: one broadcast (each repeated axis gets a new
    axis of the count in front of it) and one reshape merging each pair."""
    x = _as_traced(x, "tile")
    rs = [_static_count(r, "tile", "reps")
          for r in (reps if isinstance(reps, (tuple, list)) else (reps,))]
    d = builtins.max(x.ndim, len(rs))
    rs = [1] * (d - len(rs)) + rs
    if x.ndim < d:
        x = _expand_dims(x, list(range(d - x.ndim)))
    shape = x.shape
    wide: list[Any] = []
    axes: list[int] = []
    merged: list[Any] = []
    for r, s in zip(rs, shape):
        if r != 1:
            wide.append(r)
        axes.append(len(wide))
        wide.append(s)
        merged.append(s * r)
    out = _broadcast(x, wide, tuple(axes))
    return _reshape(copy(out) if out is x else out, merged, owned=True)


def repeat(x: Any, repeats: Any, axis: Any = None) -> Value:
    """``np.repeat`` with a Python-int count: each element ``repeats`` times along ``axis``
    (the flattened array when None)."""
    x = _as_traced(x, "repeat")
    if isinstance(repeats, (Value, list, tuple, np.ndarray)):
        raise CompileError("repeat: only a Python int count is supported (not an array of "
                           "counts per element)")
    r = _static_count(repeats, "repeat", "repeats")
    if axis is None:
        x = ravel(x)
        ax = 0
    else:
        ax = _axis_of(axis, x.ndim, "repeat")
    shape = list(x.shape)
    wide = shape[:ax + 1] + [r] + shape[ax + 1:]
    out = _broadcast(x, wide, tuple(k if k <= ax else k + 1 for k in range(x.ndim)))
    return _reshape(out, shape[:ax] + [shape[ax] * r] + shape[ax + 1:], owned=True)


def roll(x: Any, shift: Any, axis: Any = None) -> Value:
    """``np.roll``: elements shifted along ``axis`` (the flattened array when None), those
    past the end coming back at the start.  A literal length with a Python-int shift is two
    slices joined; otherwise a gather at ``(i - shift) mod n``."""
    x = _as_traced(x, "roll")
    if axis is None:
        if isinstance(shift, (tuple, list)):
            raise CompileError("roll: a tuple of shifts needs a tuple of axes")
        shape = x.shape
        return _reshape(roll(ravel(x), shift, 0), shape, owned=True) if x.ndim > 1 else \
            roll(x, shift, 0)
    axes = _axes_of(axis, x.ndim, "roll") if not isinstance(axis, (tuple, list)) else tuple(
        _axis_of(a, x.ndim, "roll") for a in axis)
    shifts = tuple(shift) if isinstance(shift, (tuple, list)) else (shift,) * len(axes)
    if len(shifts) != len(axes):
        raise CompileError("roll: shift and axis must have the same length")
    out = x
    for s, a in zip(shifts, axes):
        out = _roll1(out, s, a)
    return Value(out.atom, owned=True)


def _roll1(x: Value, s: Any, a: int) -> Value:
    d = x.type.shape[a]
    pre = (slice(None),) * a
    if d.is_const and not isinstance(s, Value):
        n = d.const
        k = _static_int(s, "roll", "the shift") % n if n else 0
        if k == 0:
            return x
        return concatenate([getitem(x, pre + (slice(n - k, None),)),
                            getitem(x, pre + (slice(None, n - k),))], a)
    n = x.shape[a]
    idx = mod(arange(n) - s, maximum(n, 1))
    return getitem(x, pre + (idx,))


def atleast_1d(*xs: Any) -> Any:
    out = [(_expand_dims(v, [0]) if not v.ndim else v) for v in map(to_value, xs)]
    return out[0] if len(out) == 1 else out


def atleast_2d(*xs: Any) -> Any:
    out = []
    for v in map(to_value, xs):
        out.append(_expand_dims(v, list(range(2 - v.ndim))) if v.ndim < 2 else v)
    return out[0] if len(out) == 1 else out


def atleast_3d(*xs: Any) -> Any:
    # NumPy's placement: a vector becomes (1, n, 1), a matrix (n, m, 1)
    out = []
    for v in map(to_value, xs):
        new = {0: [0, 1, 2], 1: [0, 2], 2: [2]}.get(v.ndim, [])
        out.append(_expand_dims(v, new) if new else v)
    return out[0] if len(out) == 1 else out


# --------------------------------------------------------------------------- matrix helpers
def _int_size(n: Any, name: str) -> Any:
    if isinstance(n, Value):
        if n.ndim or not n.dtype.is_int:
            raise CompileError(f"{name}: sizes are integers, got {n.type}")
        return n
    return _static_count(n, name, "the size")


def _grid(n: Any, m: Any) -> tuple[Value, Value]:
    """Row and column positions of an n x m grid, as (n, 1) and (1, m) i64 arrays."""
    return _expand_dims(arange(n), [1]), _expand_dims(arange(m), [0])


def eye(N: Any, M: Any = None, k: int = 0, dtype: Any = f64) -> Value:
    """Ones on the ``k``-th diagonal of an N x M array."""
    n = _int_size(N, "eye")
    m = n if M is None else _int_size(M, "eye")
    i, j = _grid(n, m)
    return Value(astype(j - i == _static_int(k, "eye", "k"), dtype).atom, owned=True)


def tri(N: Any, M: Any = None, k: int = 0, dtype: Any = f64) -> Value:
    """Ones on and below the ``k``-th diagonal of an N x M array."""
    n = _int_size(N, "tri")
    m = n if M is None else _int_size(M, "tri")
    i, j = _grid(n, m)
    return Value(astype(j - i <= _static_int(k, "tri", "k"), dtype).atom, owned=True)


def identity(n: Any, dtype: Any = f64) -> Value:
    return eye(n, dtype=dtype)


def _tri_mask(x: Value, k: Any, name: str, upper: bool) -> Value:
    if x.ndim < 2:
        raise CompileError(f"{name}: needs an array of at least 2 dimensions, got {x.type}")
    i, j = _grid(x.shape[-2], x.shape[-1])
    kk = _static_int(k, name, "k")
    keep = j - i >= kk if upper else j - i <= kk
    return where(keep, x, zeros_like(x))


def tril(x: Any, k: int = 0) -> Value:
    """The elements on and below the ``k``-th diagonal of the last two axes; zeros above."""
    return _tri_mask(_as_traced(x, "tril"), k, "tril", False)


def triu(x: Any, k: int = 0) -> Value:
    return _tri_mask(_as_traced(x, "triu"), k, "triu", True)


def _diag_len(n: Any, m: Any, k: int) -> Any:
    """The length of the ``k``-th diagonal of an n x m matrix, ``max(0, min(n - r, m - c))``
    (r, c the offsets below), as a Dim-carrying size when that is affine."""
    r, c = builtins.max(-k, 0), builtins.max(k, 0)
    if isinstance(n, int) and isinstance(m, int):
        return builtins.max(0, builtins.min(n - r, m - c))
    a, b = n - r, m - c
    if isinstance(a, Value) and isinstance(b, Value) and a.dim is not None \
            and b.dim is not None and (a.dim - b.dim).is_const:
        # sizes a constant apart (a square matrix's n - |k|): the smaller one, clamped at 0
        # when the kernel runs (n < |k|: empty, as NumPy), which is also what a result of
        # that size is allocated with
        short = a if (a.dim - b.dim).const <= 0 else b
        out = maximum(short, 0)
        out.dim = short.dim
        return out
    return maximum(minimum(a, b), 0)


def diag(v: Any, k: int = 0) -> Value:
    """``np.diag``: a 2-D array's ``k``-th diagonal (a gather), or a square array with a
    vector on it (a scatter into zeros)."""
    v = _as_traced(v, "diag")
    k = _static_int(k, "diag", "k")
    r, c = builtins.max(-k, 0), builtins.max(k, 0)
    if v.ndim == 2:
        n, m = v.shape
        pos = arange(_diag_len(n, m, k))
        return getitem(v, (pos + r, pos + c))
    if v.ndim != 1:
        raise CompileError(f"diag: input must be 1-D or 2-D, got {v.type}")
    (n,) = v.shape
    size = n + builtins.abs(k)
    out = zeros((size, size), v.dtype)
    pos = arange(n)
    return setitem(out, (pos + r, pos + c), v)


def diagonal(x: Any, offset: int = 0) -> Value:
    """The ``offset``-th diagonal of a 2-D array (a copy; NumPy's is a read-only view)."""
    x = _as_traced(x, "diagonal")
    if x.ndim != 2:
        raise CompileError(f"diagonal: only 2-D arrays are supported, got {x.type}")
    return diag(x, offset)


def trace(x: Any, offset: int = 0) -> Any:
    x = _as_traced(x, "trace")
    if x.ndim != 2:
        raise CompileError(f"trace: only 2-D arrays are supported, got {x.type}")
    return sum(diag(x, offset))


def linspace(start: Any, stop: Any, num: Any = 50, endpoint: bool = True,
             retstep: bool = False, dtype: Any = None, axis: int = 0) -> Any:
    """``np.linspace`` for scalar ends, computed as NumPy does: ``i * step + start`` with
    ``step = (stop - start) / div``, the last element set to ``stop`` when included."""
    if axis != 0:
        raise CompileError("linspace: only axis=0 is supported")
    for e, what in ((start, "start"), (stop, "stop")):
        if isinstance(e, Value) and e.ndim:
            raise CompileError(f"linspace: {what} must be a scalar, got {e.type}")
    n = _int_size(num, "linspace")
    d = _common_dtype(start, stop, 0.5)
    if not d.is_float:
        d = f64
    div = n - 1 if endpoint else n
    a = to_value(start, d)
    delta = to_value(stop, d) - a
    idx = astype(arange(n), d)
    if isinstance(div, int) and div == 0:
        step: Any = math.nan
        y = idx * delta + a
    else:
        step = delta / astype(div, d) if isinstance(div, Value) else delta / div
        y = idx * step + a
    y = Value(y.atom, owned=True)
    if endpoint:
        if isinstance(n, int):
            if n > 1:
                y = setitem(y, -1, to_value(stop, d))
        else:
            y = Value(where(arange(n) == n - 1, to_value(stop, d), y).atom, owned=True)
    if dtype is not None:
        out_d = as_dtype(dtype)
        y = astype(floor(y) if out_d.is_int else y, out_d)
    return (y, step) if retstep else y


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


def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None) -> Value:
    """``np.arange``: ``start, start + step, ...`` below ``stop`` (``arange(n)``: ``0 .. n-1``).
    The dtype is NumPy's (i64 for integers, f64 once a bound or the step is a float); the
    length is ``ceil((stop - start) / step)`` (at least 0), a symbolic size when the bounds
    are traced, and the values ``start + i * delta`` with ``delta = (start + step) - start``
    as NumPy fills them."""
    if stop is None and step is None and (dtype is None or as_dtype(dtype).is_int):
        if not (isinstance(start, (float, np.floating)) or
                isinstance(start, Value) and start.dtype.is_float):
            (atom,), (dim,) = _sizes(start, "arange")
            (v,) = ir_bind(P.iota_p, atom, dim=dim, dtype=as_dtype(dtype or i64))
            return Value(v, owned=True)
    if stop is None:
        start, stop = 0, start
    if step is None:
        step = 1
    if not isinstance(step, Value) and step == 0:
        raise CompileError("arange: the step must not be zero (NumPy: division by zero)")
    for e in (start, stop, step):
        if isinstance(e, Value) and e.ndim:
            raise CompileError(f"arange: bounds and step are scalars, got {e.type}")
    d = as_dtype(dtype) if dtype is not None else _common_dtype(start, stop, step)
    if d.is_bool:
        d = i64
    every_int = all(isinstance(e, Value) and e.dtype.is_int or _is_pyint(e)
                    for e in (start, stop, step))
    if not any(isinstance(e, Value) for e in (start, stop, step)):
        n: Any = builtins.max(0, math.ceil((stop - start) / step))
        if every_int:
            n = builtins.max(0, -((start - stop) // step))  # exact for large ints
    elif every_int:
        q = (stop - start + step - 1) // step if _is_pyint(step) and step > 0 else \
            -((start - stop) // step)
        n = maximum(q, 0)
        if _is_pyint(start) and step == 1 and isinstance(stop, Value) and stop.dim is not None:
            n.dim = stop.dim - start  # arange(1, n): a size the types can name
    else:
        n = maximum(astype(ceil((to_value(stop, f64) - start) / step), i64), 0)
    i = arange(n)
    if every_int and d.is_int:
        out = i * to_value(step, d) + to_value(start, d) if not (_is_pyint(step) and step == 1) \
            else i + to_value(start, d)
    else:
        a = to_value(start, d)
        delta = (a + to_value(step, d)) - a
        out = astype(i, d) * delta + a
    return Value(astype(out, d).atom, owned=True)


def copy(x: Any) -> Value:
    """A local array with the same contents that the kernel may store into."""
    x = _as_traced(x, "copy")
    out = Value(x.atom, owned=True)
    out.fresh = True
    return out


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
    if axis is None:  # NumPy: the flattened arrays, end to end
        vals, axis = [ravel(v) for v in vals], 0
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


def array(obj: Any, dtype: Any = None) -> Value:
    """``np.array`` of a (nested) list or tuple of numbers and traced values of one shape: they
    stack on new leading axes, in their promoted dtype (or ``dtype``).  A traced array is
    copied (``np.array(x)``)."""
    if isinstance(obj, (list, tuple)):
        if not obj:
            raise CompileError("np.array of an empty list: its dtype and shape are unknown; "
                               "write lt.zeros(0) or lt.empty(0)")
        r = stack([array(o) if isinstance(o, (list, tuple)) else o for o in obj])
    else:
        r = copy(to_value(obj))
    return r if dtype is None else astype(r, dtype)


def diff(x: Any, n: int = 1, axis: int = -1, prepend: Any = None, append: Any = None) -> Value:
    """``np.diff``: the ``n``-th forward difference ``x[1:] - x[:-1]`` along ``axis``, after
    joining ``prepend`` and ``append`` (scalars broadcast to one slice); bool gives bool (not
    equal), as NumPy."""
    n = _static_int(n, "diff", "n")
    if n < 0:
        raise CompileError(f"diff: order n must be non-negative, got {n}")
    x = _as_traced(x, "diff")
    if x.ndim == 0:
        raise CompileError("diff: needs an array of at least one dimension, got a scalar")
    ax = _axes(x, axis, "diff")[0]
    parts = []
    for k, extra in enumerate((prepend, x, append)):
        if extra is None:
            continue
        e = x if k == 1 else to_value(extra)
        if e.ndim == 0:  # a scalar: one slice along the axis
            e = full(tuple(1 if a == ax else x.shape[a] for a in range(x.ndim)), e, e.dtype)
        parts.append(e)
    if len(parts) > 1:
        x = concatenate(parts, ax)
    lo = (slice(None),) * ax
    for _ in range(n):
        a, b = getitem(x, lo + (slice(1, None),)), getitem(x, lo + (slice(None, -1),))
        x = bitwise_xor(a, b) if x.dtype is bool_ else a - b
    return x


def digitize(x: Any, bins: Any, right: bool = False) -> Value:
    """``np.digitize`` for increasing 1-D ``bins``: the index of the bin each value falls in
    (``bins[i-1] <= x < bins[i]``, or ``<`` and ``<=`` with ``right=True``); i64."""
    return searchsorted(bins, x, side="left" if right else "right")


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
                    if part.dim is not None and all(c > 0 for _, c in part.dim.terms):
                        # a sum of sizes (and a constant): a position from the start
                        _bound_dims()[bound.atom] = part.dim
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


def _bound_dims() -> dict:
    """A traced slice bound's atom -> the size it equals (``I + 3`` with ``I =
    coeff.shape[0]``, an ``lt.i64`` parameter ``b``, ``2 * b``), for the function being traced,
    when that size is a sum of sizes with positive coefficients plus a constant."""
    from ..ir.core import current_builder
    return current_builder().__dict__.setdefault("_bound_dims", {})


def _affine_slice_len(n: Dim, e: P.Slice, bounds: Sequence[Any]) -> Optional[Dim]:
    """``stop - start`` of a step-1 slice whose traced bounds equal known sizes
    (:func:`_bound_dims`) when that is a sum of sizes with positive coefficients plus a
    constant: ``x[1:I + 3]`` has length ``I + 2``, ``w[b:2 * b]`` length ``b``.  It assumes
    ``0 <= start <= stop <= n``; the lowering checks that at run time (an IndexError where
    NumPy would clip)."""
    if e.step != 1 or e.size is not None:
        return None
    known = _bound_dims()

    def pos(b: Any, default: Dim) -> Optional[Dim]:
        if b is None:
            return default
        if isinstance(b, Lit):
            return Dim.of(int(b.value)) if b.value >= 0 else n + int(b.value)
        if isinstance(b, int):
            return Dim.of(b) if b >= 0 else n + b
        return known.get(b)

    lo, hi = pos(bounds[0], Dim.of(0)), pos(bounds[1], n)
    if lo is None or hi is None:
        return None
    d = hi - lo
    # only a length that grows with the sizes (``I + 2``, ``b``, ``n - 1``): ``x[i:j]`` of two
    # arguments or ``x[k:]`` may well be empty or clipped, and keep a run-time size
    if all(c > 0 for _, c in d.terms) and (d.terms or d.const >= 0):
        return d
    return None


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
            d = _affine_slice_len(n, e, bounds)
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
    """The ``array`` param naming the indexed array in a gather's or scatter's errors, and in
    those of a slice with traced bounds."""
    traced = any(isinstance(e, P.Slice) and "dyn" in (e.start, e.stop) for e in spec)
    return {"array": name} if name and (P.has_arrays(spec) or traced) else {}


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


def count_nonzero(x: Any, axis: Any = None, *, keepdims: bool = False) -> Any:
    """``np.count_nonzero``: how many elements are non-zero (true), an i64."""
    x = _as_traced(x, "count_nonzero")
    nz = x if x.dtype is bool_ else x != 0
    return astype(sum(nz, axis, keepdims=keepdims), i64)


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
    ``for`` loop in a kernel that is not ``parallel=False``.

    Inside a kernel the loop is checked when traced: each name the body reassigns must be
    either an array the body fills only by assignments (or ``+=`` through index arrays) at
    ``[i, ...]`` (``i`` the loop variable) and does not otherwise read, or a number it
    updates only as a running sum, product, max or min, one kind per number (``s = s + ...``, ``s += ...``, ``s = s - ...``,
    ``s *= ...``, ``s = lt.maximum(s, ...)``), and does not otherwise read.  The assignments
    and updates may sit in ``if``/``else`` branches and in loops inside the body.  Anything
    else is a ``CompileError``.  The iterations run in parallel when the loop counts
    up from ``i >= 0``: each thread reduces its chunk of iterations, and the chunks combine in
    order (the chunks depend on the trip count only: a float sum is rounded the same way with
    any thread count, though not as the serial loop's, even with ``fastmath`` off: ``prange``
    asks for the split).  Otherwise, and in ``parallel=False`` kernels, the loop runs as
    ``range``.  Called
    outside a kernel it is ``range``."""
    return range(*args)


# --------------------------------------------------------------------------- complex numbers
# A complex value (c64: f32 parts, c128: f64 parts) is built, read and written as a whole
# (arguments, results, indexing, stores, where, loops, +, -, unary -, astype are IR ops on
# complex values); every other operation is written here over its two parts with the real
# ops, following NumPy's own loops formula by formula (so NaN, inf and signed zeros come out
# as NumPy's do).  Autodiff then sees only real ops and the linear ``complex``/``real``/
# ``imag``: a real function of complex intermediates has the gradient of C as R^2.
_ORDER_MSG = ("{what} is not defined for complex values here: NumPy orders complex numbers "
              "lexicographically (real part first), which is rarely what is meant; compare "
              "abs(z), z.real or z.imag instead")


def _real_arg(x: Any, name: str) -> None:
    """Refuse a complex operand of a function defined here for real values only (NumPy
    refuses most of them too; none may silently drop the imaginary part)."""
    if _is_complex(x):
        raise CompileError(f"{name} of a complex value is not supported (complex operands "
                           "take + - * / **, ==, !=, abs, exp, log, sqrt, conj, real, imag, "
                           "angle, sum, mean, @); apply it to z.real / z.imag instead")


def _is_complex(x: Any) -> bool:
    if isinstance(x, Value):
        return x.dtype.is_complex
    return isinstance(x, (complex, np.complexfloating))


def _parts(x: Any, d: DType) -> tuple[Any, Any]:
    """The real and imaginary parts of ``x`` as values of float dtype ``d.part`` (a constant's
    parts are literals; a real value's imaginary part is a literal 0)."""
    p = d.part
    if isinstance(x, Value):
        if x.dtype.is_complex:
            x = astype(x, d)
            return _bind1(P.real_p, x), _bind1(P.imag_p, x)
        return astype(x, p), to_value(0.0, p)
    z = complex(x)
    return to_value(z.real, p), to_value(z.imag, p)


def _cmake(re: Value, im: Value) -> Value:
    return _bind1(P.complex_p, re, im)


def _no_complex(x: Value, name: str) -> None:
    if x.dtype.is_complex:
        raise CompileError(f"{name} of complex values is not supported yet; write it over the "
                           f"parts (.real, .imag) or as a loop")


def make_complex(real: Any, imag: Any = 0.0) -> Any:
    """``complex(real, imag)``: the complex value with these parts (both real; promoted to one
    float dtype: f32 parts give c64, anything else c128)."""
    if _is_complex(real) or _is_complex(imag):
        if not isinstance(imag, Value) and imag == 0:
            return astype(real, c128) if isinstance(real, Value) else complex(real)
        raise CompileError("complex(re, im) takes real parts; for complex operands write "
                           "re + 1j * im")
    if not isinstance(real, Value) and not isinstance(imag, Value):
        return complex(real, imag)
    d = _common_dtype(real, imag)
    part = d if d is f32 else f64
    return _cmake(to_value(real, part), to_value(imag, part))


def real(x: Any) -> Any:
    """The real part (np.real, ``z.real``); a real value is its own real part."""
    if not isinstance(x, Value):
        return np.real(x)
    return _bind1(P.real_p, x) if x.dtype.is_complex else x


def imag(x: Any) -> Any:
    """The imaginary part (np.imag, ``z.imag``); zeros of ``x``'s dtype for a real value."""
    if not isinstance(x, Value):
        return np.imag(x)
    return _bind1(P.imag_p, x) if x.dtype.is_complex else zeros_like(x)


def conj(x: Any) -> Any:
    """The complex conjugate (np.conj, ``z.conj()``); a real value is its own conjugate."""
    if not isinstance(x, Value):
        return np.conj(x)
    if not x.dtype.is_complex:
        return x
    re, im = _parts(x, x.dtype)
    return _cmake(re, negative(im))


def angle(z: Any, deg: bool = False) -> Any:
    """The argument ``arctan2(z.imag, z.real)`` (np.angle; in degrees with ``deg``)."""
    if not isinstance(z, Value):
        return np.angle(z, deg=deg)
    if z.dtype.is_complex:
        re, im = _parts(z, z.dtype)
    else:
        re = z if z.dtype.is_float else astype(z, f64)
        im = zeros_like(re)
    a = arctan2(im, re)
    return a * (180.0 / math.pi) if deg else a


def _cmul_parts(ar: Any, ai: Any, br: Any, bi: Any) -> tuple[Any, Any]:
    return ar * br - ai * bi, ar * bi + ai * br  # NumPy's complex multiply


def _cdiv_parts(ar: Any, ai: Any, br: Any, bi: Any) -> tuple[Any, Any]:
    """NumPy's complex division (Smith's method, scaled by the larger part of the divisor;
    a zero divisor divides each part by |br|, giving NumPy's inf/NaN)."""
    abs_br, abs_bi = abs(br), abs(bi)
    big_r = abs_br >= abs_bi
    zero = (abs_br == 0) & (abs_bi == 0)
    # |br| >= |bi| (and not both 0)
    rat = bi / where(zero, 1.0, br)
    scl = 1.0 / (br + bi * rat)
    r1, i1 = (ar + ai * rat) * scl, (ai - ar * rat) * scl
    # |br| < |bi| (or NaN)
    rat2 = br / bi
    scl2 = 1.0 / (bi + br * rat2)
    r2, i2 = (ar * rat2 + ai) * scl2, (ai * rat2 - ar) * scl2
    return (where(zero, ar / abs_br, where(big_r, r1, r2)),
            where(zero, ai / abs_br, where(big_r, i1, i2)))


def _complex_arith(prim: Any, a: Any, b: Any, d: DType) -> Value:
    if prim in (P.add_p, P.sub_p):
        return _bind1(prim, to_value(a, d), to_value(b, d))
    if prim is P.mul_p:
        return _cmake(*_cmul_parts(*_parts(a, d), *_parts(b, d)))
    raise CompileError(f"{'//' if prim is P.floordiv_p else '%'} is not defined for complex "
                       "numbers (NumPy refuses them too)")


def _complex_truediv(a: Any, b: Any, d: DType) -> Value:
    return _cmake(*_cdiv_parts(*_parts(a, d), *_parts(b, d)))


def _complex_compare(prim: Any, a: Any, b: Any, d: DType) -> Value:
    if prim not in (P.eq_p, P.ne_p):
        raise CompileError(_ORDER_MSG.format(what=f"the comparison {prim.name}"))
    (ar, ai), (br, bi) = _parts(a, d), _parts(b, d)
    if prim is P.eq_p:
        return (ar == br) & (ai == bi)
    return (ar != br) | (ai != bi)


def _complex_power(a: Any, b: Any) -> Value:
    """``z ** n`` for an integer constant ``n``, as NumPy computes it: ``z * z`` for n = 2;
    otherwise (npy_cpow) 1 for n = 0, then 0 (n > 0) or NaN (n < 0) for z = 0, z itself for
    n = 1, z (z z) for n = 3, and |n| < 100 by binary powering (then 1 / result for n < 0)."""
    if isinstance(b, Value) or isinstance(b, bool) or not (
            isinstance(b, (int, np.integer)) or (isinstance(b, (float, np.floating))
                                                 and float(b).is_integer())):
        return _complex_cpow(a, b)
    n = int(b)
    d = a.dtype if isinstance(a, Value) else c128
    d = d if d.is_complex else c128
    zr, zi = _parts(a, d)
    if n == 2:
        return _cmake(*_cmul_parts(zr, zi, zr, zi))
    if n == 0:
        return _cmake(full_like(zr, 1.0), full_like(zr, 0.0))
    if not -100 < n < 100:
        return _complex_cpow(a, b)
    if n == 1:
        acc = (zr, zi)
    elif n == 3:
        acc = _cmul_parts(zr, zi, *_cmul_parts(zr, zi, zr, zi))
    else:
        m, mask = abs(n), 1
        acc, p = (to_value(1.0, d.part), to_value(0.0, d.part)), (zr, zi)
        while True:
            if m & mask:
                acc = _cmul_parts(*acc, *p)
            mask <<= 1
            if m < mask:
                break
            p = _cmul_parts(*p, *p)
        if n < 0:
            acc = _cdiv_parts(to_value(1.0, d.part), to_value(0.0, d.part), *acc)
    at_zero = (zr == 0) & (zi == 0)
    fill = 0.0 if n > 0 else math.nan
    return _cmake(where(at_zero, fill, acc[0]), where(at_zero, fill, acc[1]))


def _complex_cpow(a: Any, b: Any) -> Value:
    """``a ** b`` for other exponents, as C's cpow (which NumPy calls): exp(b log a); a zero
    base gives 1 for a zero exponent, 0 for an exponent with a positive real part and NaN
    otherwise (NumPy's npy_cpow)."""
    d = _common_dtype(a, b)
    d = d if d.is_complex else c128
    (ar, ai), (br, bi) = _parts(a, d), _parts(b, d)
    r = _complex_exp(_cmake(*_cmul_parts(br, bi, *_parts(_complex_log(_cmake(ar, ai)), d))))
    rr, ri = _parts(r, d)
    base0, exp0 = (ar == 0) & (ai == 0), (br == 0) & (bi == 0)
    to_zero = br > 0
    rr = where(exp0, 1.0, where(base0, where(to_zero, 0.0, math.nan), rr))
    ri = where(exp0, 0.0, where(base0, where(to_zero, 0.0, math.nan), ri))
    return _cmake(rr, ri)


def _complex_abs(z: Value) -> Value:
    return hypot(*_parts(z, z.dtype))  # NumPy's npy_cabs: no overflow for large parts


def _complex_exp(z: Value) -> Value:
    """exp(x) (cos y + i sin y); on the real axis (y == 0) exactly (exp(x), y), as NumPy.
    Where exp(x) alone would overflow (x beyond log of the largest float) but the parts need
    not, it is applied in two halves, (exp(x/2) cos y) exp(x/2)."""
    x, y = _parts(z, z.dtype)
    ex = exp(x)
    half = exp(x * 0.5)
    big = x > float(np.log(np.finfo(z.dtype.part.np).max))
    c, s = cos(y), sin(y)
    re = where(big, (half * c) * half, ex * c)
    im = where(big, (half * s) * half, ex * s)
    on_axis = y == 0
    re, im = where(on_axis, ex, re), where(on_axis, y, im)
    # C99's cexp at x = +-inf with y inf or NaN (NumPy's): (inf, NaN), or (0, +-0)
    edge = isinf(x) & (y != y) | isinf(x) & isinf(y)
    pos = x > 0
    p = z.dtype.part
    re = where(edge, where(pos, to_value(math.inf, p), to_value(0.0, p)), re)
    im = where(edge, where(pos, to_value(math.nan, p), copysign(0.0, y)), im)
    return _cmake(re, im)


def _complex_log(z: Value) -> Value:
    """The principal branch: log|z| + i arg z (arg in (-pi, pi]).  Near |z| = 1, where
    log(hypot) would cancel, log|z| is 0.5 log1p((a - 1)(a + 1) + b^2) with a = max(|x|, |y|),
    b = min(|x|, |y|) (a - 1 is exact there): accurate to about one rounding of b^2, in
    absolute terms."""
    x, y = _parts(z, z.dtype)
    ax, ay = abs(x), abs(y)
    a, b = maximum(ax, ay), minimum(ax, ay)
    r = hypot(x, y)
    near_one = (r > 0.5) & (r < 2.0)
    re = where(near_one, 0.5 * log1p((a - 1.0) * (a + 1.0) + b * b), log(r))
    return _cmake(re, arctan2(y, x))


def _complex_sqrt(z: Value) -> Value:
    """The principal square root (real part >= 0): t = sqrt((|x| + |z|) / 2) (scaled near the
    largest float); for x >= 0
    (t, y / 2t), else (|y| / 2t, copysign(t, y)); sqrt(+-0 + iy) at y == 0 is (0, y)."""
    x, y = _parts(z, z.dtype)
    ax, r = abs(x), hypot(x, y)
    # (|x| + |z|) overflows near the largest float: 2 sqrt(|x|/8 + |z|/8) there; halving
    # a subnormal loses its bits: scaled by an even power of two first (exact)
    info = np.finfo(z.dtype.part.np)
    big = r > float(info.max) * 0.25
    k = info.nmant + 2 if info.nmant % 2 == 0 else info.nmant + 3  # even, >= the mantissa
    small = r < float(info.tiny) * 2.0 ** k
    t = where(big, 2.0 * sqrt(ax * 0.125 + r * 0.125),
              where(small, sqrt((ax + r) * 2.0 ** (k - 1)) * 2.0 ** (-k // 2),
                    sqrt((ax + r) * 0.5)))
    t2 = where(t == 0, 1.0, t + t)
    pos = x >= 0
    re = where(pos, t, abs(y) / t2)
    im = where(pos, y / t2, copysign(t, y))
    zero = t == 0
    re, im = where(zero, 0.0, re), where(zero, y, im)
    # C99's csqrt (NumPy's) at the infinities: y = +-inf gives (inf, y) whatever x is;
    # x = -inf gives (|y| or NaN, +-inf), x = +inf gives (inf, +-0 or NaN)
    yinf, xinf = isinf(y), isinf(x)
    re = where(yinf, math.inf, where(xinf & ~pos, abs(y - y), where(xinf, x, re)))
    im = where(yinf, y, where(xinf & ~pos, copysign(abs(x), y),
                              where(xinf, where(y != y, y, copysign(0.0, y)), im)))
    return _cmake(re, im)


#: the elementwise functions defined for complex operands, by the real primitive they extend
_COMPLEX_UNARY = {P.exp_p: _complex_exp, P.log_p: _complex_log, P.sqrt_p: _complex_sqrt}


def _complex_unary(prim: Any, z: Value) -> Value:
    fn = _COMPLEX_UNARY.get(prim)
    if fn is None:
        _real_arg(z, prim.name)
    return fn(z)


def _complex_sum(x: Value, axis: Any, name: str, keepdims: bool = False) -> Value:
    fn = sum if name == "sum" else mean
    re, im = _parts(x, x.dtype)
    return _cmake(fn(re, axis, keepdims=keepdims), fn(im, axis, keepdims=keepdims))


def _complex_matmul(a: Value, b: Value) -> Value:
    """(ar + i ai) @ (br + i bi) over the real products (a real operand has no imaginary part
    and contributes no product with one)."""
    d = _common_dtype(a, b)
    (ar, ai), (br, bi) = ((_parts(x, d) if x.dtype.is_complex else (astype(x, d.part), None))
                          for x in (a, b))
    re, im = matmul(ar, br), None
    if ai is not None and bi is not None:
        re = re - matmul(ai, bi)
    if bi is not None:
        im = matmul(ar, bi)
    if ai is not None:
        t = matmul(ai, br)
        im = t if im is None else im + t
    return _cmake(re, im)
