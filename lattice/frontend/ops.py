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
from ..ir.core import Atom, Lit, Var, bind as ir_bind
from ..ir.types import (DType, Dim, ShapeError, TensorType, bool_, dtype_of, f64, i64,
                        promote)
from .annotations import Traced, as_dtype

__all__ = [
    "Value", "to_value", "is_traced",
    "exp", "log", "log1p", "expm1", "sqrt", "tanh", "sin", "cos", "erf", "erfc", "floor",
    "sigmoid", "softplus", "abs", "negative", "maximum", "minimum", "logaddexp", "power", "where",
    "clip", "isnan", "isfinite", "sum", "mean", "max", "min", "argmax", "argmin", "dot", "matmul",
    "transpose", "zeros", "ones", "empty", "full", "zeros_like", "ones_like", "empty_like",
    "full_like", "arange", "copy", "astype", "prange", "concatenate", "stack", "vstack",
    "hstack", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh",
    "arctanh", "exp2", "log2", "log10", "cbrt", "trunc", "ceil", "rint", "round", "gamma", "lgamma",
    "digamma", "polygamma", "fabs", "deg2rad", "rad2deg", "sign", "signbit", "square",
    "reciprocal", "isinf", "nan_to_num", "arctan2", "hypot", "copysign", "logaddexp2",
    "float_power", "heaviside", "mod", "fmod", "fmax", "fmin",
]

Scalar = Union[bool, int, float]
_PY_SCALARS = (bool, int, float, np.bool_, np.integer, np.floating)


class Value(Traced):
    """A traced array or scalar: an IR atom plus frontend facts about it."""

    __slots__ = ("atom", "dim", "owned", "base")
    __array_priority__ = 1000  # so ndarray op Value defers to Value's reflected op

    def __init__(self, atom: Atom, dim: Optional[Dim] = None, owned: bool = False) -> None:
        self.atom = atom
        self.dim = dim          # the symbolic size this i64 scalar equals, if known
        self.owned = owned      # a local array the kernel may store into
        # (atom, a, c): this i64 scalar is a * atom + c for Python ints a, c (``64 * b + 64``),
        # so ``x[64 * b:64 * b + 64]`` is known to be a window of constant length
        self.base: Optional[tuple[Atom, int, int]] = None

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

    def astype(self, dtype: Any) -> "Value":
        return astype(self, dtype)

    def dot(self, other: Any) -> "Value":
        return dot(self, other)

    def copy(self) -> "Value":
        return copy(self)

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
    def __and__(self, o: Any) -> Any: return _logical(P.and_p, self, o)
    def __rand__(self, o: Any) -> Any: return _logical(P.and_p, o, self)
    def __or__(self, o: Any) -> Any: return _logical(P.or_p, self, o)
    def __ror__(self, o: Any) -> Any: return _logical(P.or_p, o, self)
    def __xor__(self, o: Any) -> Any: return _logical(P.ne_p, self, o)
    def __rxor__(self, o: Any) -> Any: return _logical(P.ne_p, o, self)
    def __invert__(self) -> Any: return logical_not(self)
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
                               "kernels (use float32/64, int32/64 or bool)") from None
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
        x = int(x)  # only reached through explicit conversion
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


def _compare(prim: Any, a: Any, b: Any) -> Any:
    d = _common_dtype(a, b)
    return _bind1(prim, to_value(a, d), to_value(b, d))


def _logical(prim: Any, a: Any, b: Any) -> Any:
    for x in (a, b):
        if _common_dtype(x) is not bool_:
            raise CompileError(f"&, |, ^ take bool operands here (bitwise integer operations "
                               f"are not supported), got {_common_dtype(x)}")
    return _bind1(prim, to_value(a, bool_), to_value(b, bool_))


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
            v = x if x.dtype.is_float else astype(x, f64)
        return _bind1(prim, v)
    op.__name__ = prim.name
    op.__doc__ = (f"Elementwise {prim.name} (integers are converted to f64 first); on a Python "
                  "or NumPy scalar it is evaluated at once.")
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
    """Elementwise absolute value (keeps integer dtypes)."""
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


def where(cond: Any, a: Any, b: Any) -> Any:
    """Elementwise ``a if cond else b`` (both sides are computed)."""
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
    """Sum over ``axis`` (all axes by default); bool and i32 sum into i64 like NumPy."""
    x = _as_traced(x, "sum")
    return _bind1(P.reduce_sum_p, x, axes=_axes(x, axis, "sum"))


def _count(x: Value, axes: tuple[int, ...]) -> Any:
    n: Any = 1
    shape = x.shape
    for a in axes:
        n = n * shape[a]
    return n


def mean(x: Any, axis: Any = None) -> Any:
    """Arithmetic mean; integers average in f64 like NumPy."""
    x = _as_traced(x, "mean")
    axes = _axes(x, axis, "mean")
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


# --------------------------------------------------------------------------- linear algebra
def matmul(a: Any, b: Any) -> Any:
    """``a @ b`` for 1-D and 2-D operands (vector·vector is a scalar)."""
    if not isinstance(a, Value) or not isinstance(b, Value):
        raise CompileError("@ needs two arrays")
    d = _common_dtype(a, b)
    if d.is_bool:
        d = i64
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
def _arrays(arrays: Any, name: str) -> list[Value]:
    """The traced arrays of a join (a non-empty list or tuple of arrays of rank >= 1)."""
    if not isinstance(arrays, (list, tuple)):
        raise CompileError(f"{name}: expected a list or tuple of arrays, got "
                           f"{type(arrays).__name__}")
    if not arrays:
        raise CompileError(f"{name}: need at least one array to join")
    vals = [x if isinstance(x, Value) else to_value(x) for x in arrays]
    for k, v in enumerate(vals):
        if not v.ndim:
            raise CompileError(f"{name}: the array at index {k} is a scalar; zero-dimensional "
                               "arrays cannot be joined")
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
    """``np.stack``: arrays of one shape joined along a new axis ``axis`` of the result."""
    vals = _arrays(arrays, "stack")
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
    """``np.vstack``: rows joined (1-D arrays count as single rows)."""
    vals = _arrays(arrays, "vstack")
    return concatenate([v if v.ndim > 1 else _expand_dims(v, [0]) for v in vals], 0)


def hstack(arrays: Any) -> Value:
    """``np.hstack``: 1-D arrays joined end to end, others along their second axis."""
    vals = _arrays(arrays, "hstack")
    return concatenate(vals, 0 if vals[0].ndim == 1 else 1)


# --------------------------------------------------------------------------- indexing
def _normalize_key(x: Value, key: Any) -> tuple[tuple[Any, ...], list[int]]:
    """One entry per axis of ``x`` (``...`` and missing trailing axes become full slices),
    and the positions in the result of the new axes that ``None`` entries ask for."""
    if not isinstance(key, tuple):
        key = (key,)
    if builtins.sum(1 for k in key if k is Ellipsis) > 1:
        raise CompileError("an index can only have a single ellipsis ('...')")
    n_real = builtins.sum(1 for k in key if k is not Ellipsis and k is not None)
    if n_real > x.ndim:
        raise CompileError(f"too many indices: {n_real} for a {x.ndim}-D array")
    expanded: list[Any] = []
    for k in key:
        if k is Ellipsis:
            expanded.extend([slice(None)] * (x.ndim - n_real))
        else:
            expanded.append(k)
    expanded.extend([slice(None)] * (x.ndim - builtins.sum(1 for k in expanded if k is not None)))
    new_axes: list[int] = []
    pos = 0
    for k in expanded:
        if k is None:
            new_axes.append(pos)
        if k is None or isinstance(k, slice):
            pos += 1  # an integer index removes its axis
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
    for axis, k in enumerate(key):
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
            if k.ndim or not (k.dtype.is_int):
                raise CompileError(f"indices are integer scalars (fancy indexing is not "
                                   f"supported), got {k.type}")
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
    return tuple(spec), atoms


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
        bounds = tuple(next(it) if b == "dyn" else b for b in (e.start, e.stop))
        d = P.slice_len_static(n, e)
        if d is None:
            affine = _affine_keys()
            key = (n, tuple(b.value if isinstance(b, Lit) else affine.get(b, b)
                            for b in bounds), e.step)
            d = memo.setdefault(key, Dim.fresh("s"))
        out.append(d)
    return tuple(out)


def getitem(x: Value, key: Any) -> Value:
    real, new_axes = _normalize_key(x, key)
    spec, atoms = _index_spec(x, real)
    if all(e == P.Slice() for e in spec):
        v = Value(x.atom, dim=x.dim)  # x[:, :] or x[..., None]: nothing is selected
    else:
        (out,) = ir_bind(P.index_p, x.atom, *atoms, spec=spec,
                         out_dims=_slice_dims(x, spec, atoms))
        v = Value(out)
    return _expand_dims(v, new_axes) if new_axes else v


def setitem(x: Value, key: Any, value: Any) -> Value:
    """The functional store: a new array equal to ``x`` with ``x[key] = value``."""
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
    (out,) = ir_bind(P.set_p, x.atom, *atoms, v.atom, spec=spec)
    return Value(out, owned=True)


def shape_error(exc: ShapeError) -> CompileError:
    return CompileError(str(exc))


def prange(*args: Any) -> range:
    """``range`` whose iterations may run on several threads, in any order: the iterable of a
    ``for`` loop in a ``parallel=True`` kernel.

    Inside a kernel the loop is checked when traced: each name the body reassigns must be
    either an array the body fills only by assignments at ``[i, ...]`` (``i`` the loop
    variable) and does not otherwise read, or a number it updates only as a running sum,
    product, max or min, one kind per number (``s = s + ...``, ``s += ...``, ``s = s - ...``,
    ``s *= ...``, ``s = lt.maximum(s, ...)``), and does not otherwise read.  The assignments
    and updates may sit in ``if``/``else`` branches and in loops inside the body.  Anything
    else is a ``CompileError``.  The iterations run in parallel when the loop counts
    up from ``i >= 0``: each thread reduces its chunk of iterations, and the chunks combine in
    order (a float sum is rounded as for that thread count, not as the serial loop's).
    Otherwise, and in kernels that are not parallel, the loop runs as ``range``.  Called
    outside a kernel it is ``range``."""
    return range(*args)
