"""The fuzzer's oracle: what ``lt`` means when a generated program's source runs as plain Python.

Each value is a :class:`Tracked`: a NumPy value (a 0-d array for scalars, so NumPy 2's
promotion treats it as strong and Python numbers as weak, as lattice does) plus an elementwise
bound ``e`` on its absolute rounding error, propagated to first order:

* every float operation adds ``K * eps(dtype) * |result|`` (K = 1 for the correctly rounded
  + - * / sqrt, 4 for transcendentals, where NumPy's SIMD routines and libm may each be a few
  ulp off; 2 for / under fastmath, which may multiply by a reciprocal);
* input errors propagate through the derivative (``|f'(x)| * e``; for ``a*b``,
  ``|b| e_a + |a| e_b``; for ``a/b``, ``(e_a + |a/b| e_b) / (|b| - e_b)``);
* a sum of n terms adds ``(n - 1) * eps * sum|x|``, a bound valid for *any* summation order
  (sequential, NumPy's pairwise, fastmath's reassociated vector loop), so the same rule covers
  strict and fastmath kernels; a matmul adds ``k * eps * (|A| @ |B|)``.  Under fastmath LLVM
  may also split a sum of an expression (``sum(max(x, c) - x)`` as ``sum(max(x, c)) - sum(x)``),
  so there each value also carries ``m``, a bound on the magnitude of the terms that + - * and
  negation built it from, and a sum adds ``n * eps * sum(m)`` instead.

A discontinuous operation (comparison, floor, float->int, argmax/argmin with a near tie) whose
operands lie within their error bounds of a decision boundary raises :class:`IllConditioned`:
the compiled code may legitimately decide either way, so the fuzzer skips that input.

The module's public names mirror ``lattice``'s (``sum``, ``max``, ``exp``, ``f64`` ...), so a
program's function can run with ``lt`` bound to this module.
"""
from __future__ import annotations

import ast
import builtins
import contextlib
import inspect
import math
import sys
import textwrap
import types
from typing import Any, Callable, Optional, Sequence

import numpy as np

class IllConditioned(Exception):
    """The program's result is not determined to within rounding at this input: skip it."""


#: True while a loop body runs in *shadow* mode (:func:`_run_loop`): on stand-in values, only
#: to learn the static types of loop-carried variables; no conditioning checks then.
_SHADOW = False


def _ill(msg: str) -> None:
    if not _SHADOW:
        raise IllConditioned(msg)


_EPS = {np.dtype(np.float64): float(np.finfo(np.float64).eps),
        np.dtype(np.float32): float(np.finfo(np.float32).eps),
        # f16 is computed in f32 and rounded once per operation, as NumPy's f16 operations
        np.dtype(np.float16): float(np.finfo(np.float16).eps)}
K_BASIC, K_TRANS = 1.0, 4.0


def _eps(dt: np.dtype) -> float:
    return _EPS.get(np.dtype(dt), 0.0)


def _val(x: Any) -> Any:
    return x.v if isinstance(x, Tracked) else x


def _err(x: Any) -> Any:
    return x.e if isinstance(x, Tracked) else 0.0


def _absv(x: Any) -> Any:
    return np.abs(np.asarray(_val(x), dtype=np.float64))


class Tracked:
    """A NumPy value (0-d array for scalars) plus an elementwise absolute error bound ``e``."""

    __slots__ = ("v", "e", "aff", "m")
    fastmath = True  # set per program by the runner
    # NumPy defers to our reflected operators: without this a NumPy scalar on the left (a
    # constant lattice folded, strong) calls them as a weak Python number
    __array_ufunc__ = None

    def __init__(self, v: Any, e: Any = None) -> None:
        # (root, a, c): this i64 scalar is a * root + c for Python ints a, c, as lattice's
        # frontend tracks it, so x[a*i + c:a*i + c + w] is recognised as a window of size w
        self.aff: Any = None
        # under fastmath: a bound on the magnitude of the terms + - * built this value from,
        # as LLVM may distribute a sum over them (None: just |v|)
        self.m: Any = None
        self.v = np.asarray(v)
        if e is None or self.v.dtype.kind not in "f":
            self.e = np.zeros(self.v.shape)
        else:
            self.e = np.broadcast_to(np.asarray(e, dtype=np.float64), self.v.shape).copy()

    def __repr__(self) -> str:
        return f"Tracked({self.v!r}, err<={np.max(self.e, initial=0):.3g})"

    # -- facts
    @property
    def shape(self) -> tuple:
        return tuple(Tracked(np.int64(s)) for s in self.v.shape)

    @property
    def ndim(self) -> int:
        return self.v.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.v.dtype

    @property
    def T(self) -> "Tracked":
        # a view, as NumPy's: later stores into ``self`` show through it
        return _keep_mag(Tracked(self.v.T, self.e.T), self, lambda m: m.T)

    def __bool__(self) -> bool:
        if self.v.dtype != np.bool_:
            raise TypeError("oracle: a branch condition must be bool")
        return bool(self.v)

    def __index__(self) -> int:
        return int(self.v)

    # -- arithmetic
    def __add__(self, o): return _with_affine(_add(self, o, 1), self, o, "+")
    def __radd__(self, o): return _with_affine(_add(o, self, 1), o, self, "+")
    def __sub__(self, o): return _with_affine(_add(self, o, -1), self, o, "-")
    def __rsub__(self, o): return _add(o, self, -1)
    def __mul__(self, o): return _with_affine(_mul(self, o), self, o, "*")
    def __rmul__(self, o): return _with_affine(_mul(o, self), o, self, "*")
    def __truediv__(self, o): return _div(self, o)
    def __rtruediv__(self, o): return _div(o, self)
    def __floordiv__(self, o): return _intop(np.floor_divide, self, o)
    def __rfloordiv__(self, o): return _intop(np.floor_divide, o, self)
    def __mod__(self, o): return _intop(np.mod, self, o)
    def __rmod__(self, o): return _intop(np.mod, o, self)
    def __pow__(self, o): return power(self, o)
    def __matmul__(self, o): return matmul(self, o)
    def __neg__(self): return _keep_mag(Tracked(np.negative(self.v), self.e), self, lambda m: m)
    def __abs__(self): return abs(self)
    def __lt__(self, o): return _cmp(np.less, self, o)
    def __le__(self, o): return _cmp(np.less_equal, self, o)
    def __gt__(self, o): return _cmp(np.greater, self, o)
    def __ge__(self, o): return _cmp(np.greater_equal, self, o)
    def __eq__(self, o): return _cmp(np.equal, self, o)  # type: ignore[override]
    def __ne__(self, o): return _cmp(np.not_equal, self, o)  # type: ignore[override]
    # bit operations: NumPy's (logical on bools), with its promotion and wrapping
    def __and__(self, o): return _bitop(np.bitwise_and, self, o)
    def __rand__(self, o): return _bitop(np.bitwise_and, o, self)
    def __or__(self, o): return _bitop(np.bitwise_or, self, o)
    def __ror__(self, o): return _bitop(np.bitwise_or, o, self)
    def __xor__(self, o): return _bitop(np.bitwise_xor, self, o)
    def __rxor__(self, o): return _bitop(np.bitwise_xor, o, self)
    def __lshift__(self, o): return _bitop(np.left_shift, self, o)
    def __rlshift__(self, o): return _bitop(np.left_shift, o, self)
    def __rshift__(self, o): return _bitop(np.right_shift, self, o)
    def __rrshift__(self, o): return _bitop(np.right_shift, o, self)
    def __invert__(self): return _bitop(lambda a, _: np.invert(a), self, 0)
    __hash__ = object.__hash__

    # -- indexing: views for integers and slices, copies for index arrays (NumPy's rules)
    def __getitem__(self, key: Any) -> "Tracked":
        key = _index_key(self.v.shape, key)
        parts = key if isinstance(key, tuple) else (key,)
        if not any(isinstance(p, (np.ndarray, list)) and np.ndim(p) for p in parts) \
                and np.ndim(self.v[key]):
            # integers and slices: a view, as NumPy's (later stores into ``self`` show
            # through it); index arrays and masks: a copy
            return _keep_mag(Tracked(self.v[key], self.e[key]), self, lambda m: m[key])
        return _keep_mag(Tracked(np.array(self.v[key]), np.array(self.e[key])), self,
                         lambda m: np.array(m[key]))

    def _in_place(self, r: Any) -> "Tracked":
        """``self op= o`` with ``r = self op o``: an array is updated in place (every name of
        it, and its views, see the update), as NumPy's ``out=`` does; a 0-d value rebinds."""
        r = r if isinstance(r, Tracked) else Tracked(np.asarray(r))
        if self.v.ndim == 0:
            return r
        if r.v.dtype.kind == "f" and self.v.dtype.kind != "f":
            raise TypeError("oracle: an in-place float update of an integer array")
        if np.broadcast_shapes(r.v.shape, self.v.shape) != self.v.shape:
            raise ValueError("oracle: an in-place update cannot change the array's shape")
        self[(slice(None),) * self.v.ndim] = r
        return self

    def __iadd__(self, o): return self._in_place(self + o)
    def __isub__(self, o): return self._in_place(self - o)
    def __imul__(self, o): return self._in_place(self * o)
    def __itruediv__(self, o): return self._in_place(self / o)
    def __ifloordiv__(self, o): return self._in_place(self // o)
    def __imod__(self, o): return self._in_place(self % o)
    def __ipow__(self, o): return self._in_place(self ** o)
    def __iand__(self, o): return self._in_place(self & o)
    def __ior__(self, o): return self._in_place(self | o)
    def __ixor__(self, o): return self._in_place(self ^ o)
    def __ilshift__(self, o): return self._in_place(self << o)
    def __irshift__(self, o): return self._in_place(self >> o)

    def __setitem__(self, key: Any, val: Any) -> None:
        key = _index_key(self.v.shape, key)
        v = np.asarray(_val(val))
        if v.dtype.kind == "f" and self.v.dtype.kind != "f":
            raise TypeError("oracle: storing a float into an integer array")
        self.v[key] = v
        err = _err(val)
        if self.v.dtype.kind == "f" and v.dtype.kind == "f" and \
                v.dtype.itemsize > self.v.dtype.itemsize:
            # rounding to the narrower element: a value within ``err`` may round to the
            # neighbouring one
            eps = float(np.finfo(self.v.dtype).eps)
            err = err + np.abs(self.v[key]).astype(np.float64) * eps
        self.e[key] = err
        if self.m is not None or (isinstance(val, Tracked) and val.m is not None):
            if self.m is None:
                self.m = _mag(self)
            self.m[key] = _mag(val)

    # -- methods
    def sum(self, axis=None): return sum(self, axis)
    def mean(self, axis=None): return mean(self, axis)
    def max(self, axis=None): return max(self, axis)
    def min(self, axis=None): return min(self, axis)
    def argmax(self, axis=None): return argmax(self, axis)
    def argmin(self, axis=None): return argmin(self, axis)
    def astype(self, dt): return astype(self, dt)
    def copy(self): return copy(self)
    def dot(self, o): return dot(self, o)


def _mag(x: Any) -> np.ndarray:
    """The magnitude bound ``m`` of ``x`` (``|x|`` when none is tracked), as a float64 array."""
    if isinstance(x, Tracked) and x.m is not None:
        return x.m
    return np.broadcast_to(_absv(x), np.shape(_val(x))).copy()


def _keep_mag(out: "Tracked", x: "Tracked", f: Callable[[np.ndarray], np.ndarray]) -> "Tracked":
    """``out`` is ``x`` rearranged (indexed, transposed, negated): carry ``x``'s ``m`` along."""
    if x.m is not None and out.v.dtype.kind == "f":
        out.m = f(x.m)
    return out


def _set_mag(out: Any, m: Callable[[], Any]) -> Any:
    """Under fastmath, a float result of + - * records the magnitude of its terms."""
    if Tracked.fastmath and isinstance(out, Tracked) and out.v.dtype.kind == "f":
        with np.errstate(all="ignore"):
            out.m = np.broadcast_to(np.asarray(m(), np.float64), out.v.shape).copy()
    return out


def _affine(x: "Tracked") -> tuple:
    return x.aff if x.aff is not None else (x, 1, 0)


def _is_i64_scalar(x: Any) -> bool:
    return isinstance(x, Tracked) and x.v.ndim == 0 and x.v.dtype == np.int64


def _is_pyint(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_)) \
        and not isinstance(x, Tracked)


def _with_affine(out: Any, a: Any, b: Any, op: str) -> Any:
    """lattice's frontend: ``v + c``, ``c + v``, ``v - c``, ``v * c``, ``c * v`` of a traced
    i64 scalar ``v`` and a Python int ``c`` keep the affine form of ``v``'s root."""
    if op in ("+", "*") and _is_pyint(a) and _is_i64_scalar(b):
        a, b = b, a
    if not (_is_i64_scalar(a) and _is_pyint(b) and isinstance(out, Tracked)):
        return out
    root, scale, off = _affine(a)
    c = int(b)
    out.aff = (root, scale * c, off * c) if op == "*" else (root, scale,
                                                               off + (c if op == "+" else -c))
    return out


def _window(k: slice) -> Any:
    """w when ``k`` is ``a*i + b : a*i + b + w`` (step 1) for one traced i64 ``i``, as lattice
    decides it; such a slice has the literal length w and must fit the axis."""
    lo, hi = k.start, k.stop
    if not (_is_i64_scalar(lo) and _is_i64_scalar(hi)) or k.step not in (None, 1):
        return None
    (r0, a0, c0), (r1, a1, c1) = _affine(lo), _affine(hi)
    if r0 is not r1 or a0 != a1 or c1 < c0:
        return None
    return c1 - c0


def _index_key(shape: tuple, key: Any) -> Any:
    """The NumPy key for a kernel's index ``key`` on an array of ``shape``; a window that does
    not fit its axis raises IndexError (lattice's rule), where NumPy would clip it."""
    parts = list(key) if isinstance(key, tuple) else [key]
    if _SHADOW:  # stand-in values have size-1 dims: any element or slice of one is fine
        return tuple(None if p is None else Ellipsis if p is Ellipsis else
                     slice(None) if isinstance(p, slice) else _shadow_index(p) for p in parts)
    real = [p for p in parts if p is not None]
    axes: list = []
    ell = [k for k, p in enumerate(real) if p is Ellipsis]
    if ell:
        e = ell[0]
        after = len(real) - e - 1
        axes = list(range(e)) + [None] + list(range(len(shape) - after, len(shape)))
    else:
        axes = list(range(len(real)))
    it = iter(axes)
    out = []
    for p in parts:
        ax = None if p is None else next(it)
        if isinstance(p, slice):
            w = _window(p)
            if w is not None and ax is not None:
                lo = int(p.start.v)
                n = shape[ax]
                if len(range(*slice(lo, lo + w).indices(n))) != w:
                    raise IndexError(f"slice {lo}:{lo + w} (a window of {w}) does not fit "
                                     f"axis {ax} of size {n}")
                out.append(slice(lo, lo + w))
                continue
        out.append(_key(p))
    return tuple(out) if isinstance(key, tuple) else out[0]


def _shadow_index(p: Any) -> Any:
    """A stand-in index: 0 for a scalar; for an index array or a mask, one of the same rank
    and kind with size-1 dims (a gather keeps the index array's rank: seed 1000175)."""
    v = _val(p)
    if np.ndim(v) == 0:
        return 0
    a = np.asarray(v)
    return np.ones((1,) * a.ndim, np.bool_) if a.dtype == np.bool_ else \
        np.zeros((1,) * a.ndim, np.int64)


def _key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_key(k) for k in key)
    if isinstance(key, Tracked):  # an integer, or an integer index array (a gather)
        return int(key.v) if np.ndim(key.v) == 0 else np.asarray(key.v)
    if isinstance(key, slice):
        return slice(*(None if p is None else int(_val(p)) for p in (key.start, key.stop,
                                                                       key.step)))
    return key


def _res(v: Any) -> np.ndarray:
    return np.asarray(v)


def _round_err(v: np.ndarray, k: float = K_BASIC) -> Any:
    e = _eps(v.dtype)
    return k * e * np.abs(v.astype(np.float64)) if e else 0.0


def _add(a: Any, b: Any, sign: int) -> Any:
    if not isinstance(a, Tracked) and not isinstance(b, Tracked):
        return a + b if sign > 0 else a - b
    with np.errstate(all="ignore"):
        v = _res(np.add(_val(a), _val(b)) if sign > 0 else np.subtract(_val(a), _val(b)))
    if v.dtype == np.bool_:
        return Tracked(v)
    return _set_mag(Tracked(v, _err(a) + _err(b) + _round_err(v)), lambda: _mag(a) + _mag(b))


def _mul(a: Any, b: Any) -> Any:
    if not isinstance(a, Tracked) and not isinstance(b, Tracked):
        return a * b
    with np.errstate(all="ignore"):
        v = _res(np.multiply(_val(a), _val(b)))
    if v.dtype.kind != "f":
        return Tracked(v)
    ea, eb = _err(a), _err(b)
    return _set_mag(Tracked(v, _absv(b) * ea + _absv(a) * eb + ea * eb + _round_err(v)),
                    lambda: _mag(a) * _mag(b))


def _div(a: Any, b: Any) -> Any:
    if not isinstance(a, Tracked) and not isinstance(b, Tracked):
        return a / b
    with np.errstate(all="ignore"):
        v = _res(np.true_divide(_val(a), _val(b)))
    ea, eb = _err(a), _err(b)
    den = _absv(b) - eb
    if np.any(den <= 0):
        _ill("division by a value not bounded away from 0")
    k = 2 * K_BASIC if Tracked.fastmath else K_BASIC
    return Tracked(v, (ea + np.abs(v) * eb) / den + _round_err(v, k))


def _intop(fn: Any, a: Any, b: Any) -> Any:
    if not isinstance(a, Tracked) and not isinstance(b, Tracked):
        return fn(a, b)
    va, vb = _val(a), _val(b)
    with np.errstate(all="ignore"):
        v = _res(fn(va, vb))
    if v.dtype.kind == "f":
        raise TypeError("oracle: // and % are generated for integers only")
    zero = np.asarray(vb) == 0
    if np.any(zero):  # lattice: x // 0 == x % 0 == 0 for integers
        v = _res(np.where(zero, 0, v).astype(v.dtype))
    return Tracked(v)


def _bitop(fn: Any, a: Any, b: Any) -> "Tracked":
    va, vb = _val(a), _val(b)
    if np.asarray(va).dtype.kind == "f" or np.asarray(vb).dtype.kind == "f":
        raise TypeError("oracle: bit operations are generated for integers and bools only")
    with np.errstate(all="ignore"):
        return Tracked(_res(fn(va, vb)))


def _cmp(fn: Any, a: Any, b: Any) -> Any:
    if not isinstance(a, Tracked) and not isinstance(b, Tracked):
        return fn(a, b)
    v = _res(fn(_val(a), _val(b)))
    tol = _err(a) + _err(b)
    with np.errstate(all="ignore"):
        gap = np.abs(np.asarray(_val(a), np.float64) - np.asarray(_val(b), np.float64))
    if np.any((tol > 0) & (gap <= 2 * tol)):
        _ill("comparison within rounding of its boundary")
    return Tracked(v)


def _unary(fn: Callable[[np.ndarray], np.ndarray], deriv: Callable[[np.ndarray, np.ndarray], Any],
           k: float = K_TRANS) -> Callable[[Any], Any]:
    def op(x: Any) -> Any:
        x = x if isinstance(x, Tracked) else Tracked(np.float64(x))
        xv = x.v if x.v.dtype.kind == "f" else x.v.astype(np.float64)
        with np.errstate(all="ignore"):
            v = _res(fn(xv))
            d = np.abs(np.asarray(deriv(xv, v), dtype=np.float64))
        return Tracked(v, d * x.e * 1.01 + _round_err(v, k))
    return op


def _domain(ok: Callable[[np.ndarray, np.ndarray], Any], op: Callable[[Any], Any]) -> Any:
    def f(x: Any) -> Any:
        t = x if isinstance(x, Tracked) else Tracked(np.float64(x))
        if not np.all(ok(np.asarray(t.v, np.float64), t.e)):
            _ill("argument outside the function's domain within rounding")
        return op(x)
    return f


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


exp = _unary(np.exp, lambda x, v: v)
expm1 = _unary(np.expm1, lambda x, v: v + 1)
log = _domain(lambda x, e: x > 2 * e, _unary(np.log, lambda x, v: 1 / x))
log1p = _domain(lambda x, e: x + 1 > 2 * e, _unary(np.log1p, lambda x, v: 1 / (1 + x)))
sqrt = _domain(lambda x, e: (x > 2 * e) | ((x >= 0) & (e == 0)),
               _unary(np.sqrt, lambda x, v: np.where(v > 0, 0.5 / np.where(v > 0, v, 1), 0),
                      K_BASIC))
tanh = _unary(np.tanh, lambda x, v: 1 - v.astype(np.float64) ** 2)
sin = _unary(np.sin, lambda x, v: np.cos(x))
cos = _unary(np.cos, lambda x, v: np.sin(x))
# NumPy has no erf: libm's, through Python's math, per element (its accuracy is tested against
# a decimal evaluation in tests/codegen/test_special.py); derivative bounds 2/sqrt(pi) e^-x^2
erf = _unary(lambda x: np.asarray(np.frompyfunc(math.erf, 1, 1)(x), x.dtype),
             lambda x, v: 1.1284 * np.exp(-x * x))
erfc = _unary(lambda x: np.asarray(np.frompyfunc(math.erfc, 1, 1)(x), x.dtype),
              lambda x, v: 1.1284 * np.exp(-x * x))
sigmoid = _unary(_sigmoid, lambda x, v: 0.25)
softplus = _unary(_softplus, lambda x, v: 1.0)
arctan = _unary(np.arctan, lambda x, v: 1 / (1 + x * x))
arcsinh = _unary(np.arcsinh, lambda x, v: 1 / np.hypot(x, 1))
sinh = _unary(np.sinh, lambda x, v: np.cosh(x))
cosh = _unary(np.cosh, lambda x, v: np.sinh(x))
exp2 = _unary(np.exp2, lambda x, v: v * math.log(2.0))
log2 = _domain(lambda x, e: x > 2 * e, _unary(np.log2, lambda x, v: 1 / (x * math.log(2.0))))
log10 = _domain(lambda x, e: x > 2 * e,
                _unary(np.log10, lambda x, v: 1 / (x * math.log(10.0))))


def floor(x: Any) -> Any:
    x = x if isinstance(x, Tracked) else Tracked(np.float64(x))
    xv = x.v if x.v.dtype.kind == "f" else x.v.astype(np.float64)
    v = np.floor(xv)
    if np.any((x.e > 0) & (np.abs(xv - np.round(xv)) <= 2 * x.e)):
        _ill("floor of a value within rounding of an integer")
    return Tracked(v)


def abs(x: Any) -> Any:  # noqa: A001
    if not isinstance(x, Tracked):
        return builtins.abs(x)
    return Tracked(np.abs(x.v), x.e)


def negative(x: Any) -> Any:
    return -x


def _binary_minmax(fn: Any) -> Any:
    def op(a: Any, b: Any) -> Any:
        if not isinstance(a, Tracked) and not isinstance(b, Tracked):
            # constants fold at compile time in lattice as NumPy's ufunc does: a (strong)
            # NumPy scalar, as np.maximum(2, 3) is an np.int64
            return fn(a, b)
        v = _res(fn(_val(a), _val(b)))
        return Tracked(v, np.maximum(_err(a), _err(b)))
    return op


maximum = _binary_minmax(np.maximum)
minimum = _binary_minmax(np.minimum)


def logaddexp(a: Any, b: Any) -> Any:
    with np.errstate(all="ignore"):
        v = _res(np.logaddexp(_val(a), _val(b)))
    # max(a, b) + log1p(exp(-|a - b|)): when the result cancels towards 0 both lattice's and
    # NumPy's evaluations are accurate to a few eps of max(|a|, |b|), not of |result|
    scale = np.maximum(np.maximum(_absv(a), _absv(b)), np.abs(v.astype(np.float64)))
    e = _eps(v.dtype)
    return Tracked(v, np.maximum(_err(a), _err(b)) + (K_TRANS * e * scale if e else 0.0))


def clip(x: Any, lo: Any, hi: Any) -> Any:
    return minimum(maximum(x, lo), hi)


def power(a: Any, b: Any) -> Any:
    if isinstance(b, int) and not isinstance(b, bool) and 0 <= b <= 4:
        if b == 0:
            return Tracked(np.ones_like(_val(a)))
        acc = a
        for _ in range(b - 1):
            acc = acc * a
        return acc
    if isinstance(b, Tracked):
        raise TypeError("oracle: only literal exponents are generated")
    t = a if isinstance(a, Tracked) else Tracked(np.float64(a))
    if np.any(np.asarray(t.v, np.float64) <= 2 * t.e):
        _ill("power of a value not bounded away from 0")
    with np.errstate(all="ignore"):
        v = _res(np.power(t.v if t.v.dtype.kind == "f" else t.v.astype(np.float64), b))
        d = np.abs(b * np.power(np.asarray(t.v, np.float64), b - 1))
    return Tracked(v, d * t.e * 1.01 + _round_err(v, K_TRANS))


def where(c: Any, a: Any, b: Any) -> Any:
    if not isinstance(c, Tracked):
        if not isinstance(a, Tracked) and not isinstance(b, Tracked):
            return np.where(c, a, b)[()]  # folded as np.where does: strong, not weak
        c = Tracked(np.asarray(bool(c)))  # a known condition still gives np.where's dtype/shape
    cv = _val(c)
    v = _res(np.where(cv, _val(a), _val(b)))
    if isinstance(a, Tracked) or isinstance(b, Tracked):
        dt = np.result_type(_val(a), _val(b))
        v = v.astype(dt)
    return Tracked(v, np.where(cv, _err(a), _err(b)))


def isnan(x: Any) -> Any:
    return Tracked(np.isnan(_val(x)))


def isfinite(x: Any) -> Any:
    return Tracked(np.isfinite(_val(x)))


def _axes(x: Tracked, axis: Any) -> tuple:
    if axis is None:
        return tuple(range(x.v.ndim))
    ax = axis if isinstance(axis, tuple) else (axis,)
    return tuple(sorted(a % x.v.ndim for a in ax))


def _t(x: Any) -> Tracked:
    return x if isinstance(x, Tracked) else Tracked(np.asarray(x))


def _join(np_join: Callable[..., np.ndarray], xs: Sequence[Any], axis: int) -> Tracked:
    """np.concatenate / np.stack of tracked values: values (in their common dtype), error
    bounds and magnitudes joined alike."""
    ts = [_t(x) for x in xs]
    dt = np.result_type(*(t.v for t in ts))
    out = Tracked(np_join([t.v.astype(dt) for t in ts], axis=axis),
                  np_join([np.broadcast_to(t.e, t.v.shape) for t in ts], axis=axis))
    if dt.kind == "f" and any(t.m is not None for t in ts):
        out.m = np_join([_mag(t) for t in ts], axis=axis)
    return out


def concatenate(xs: Sequence[Any], axis: int = 0) -> Tracked:
    return _join(np.concatenate, xs, axis)


def stack(xs: Sequence[Any], axis: int = 0) -> Tracked:
    return _join(np.stack, xs, axis)


def sum(x: Any, axis: Any = None) -> Tracked:  # noqa: A001
    x = _t(x)
    ax = _axes(x, axis)
    dt = x.v.dtype
    # NumPy's accumulator: i64 for bools and signed, u64 for unsigned integers
    v = _res(np.sum(x.v, axis=ax))
    if dt.kind != "f":
        return Tracked(v)
    n = int(np.prod([x.v.shape[a] for a in ax])) if ax else 1
    if x.m is None:
        terms = builtins.max(n - 1, 0) * np.sum(np.abs(x.v.astype(np.float64)), axis=ax)
    else:  # fastmath may have split the sum over the terms of x
        terms = n * np.sum(x.m, axis=ax)
    e = np.sum(x.e, axis=ax) + _eps(dt) * terms + _round_err(v)
    return Tracked(v, e)




def mean(x: Any, axis: Any = None) -> Tracked:
    x = _t(x)
    if x.v.dtype.kind != "f":
        x = astype(x, np.float64)
    ax = _axes(x, axis)
    n = int(np.prod([x.v.shape[a] for a in ax])) if ax else 1
    s = sum(x, ax)
    with np.errstate(all="ignore"):
        v = _res((s.v / np.asarray(n, dtype=x.v.dtype)).astype(x.v.dtype))
    return Tracked(v, s.e / builtins.max(n, 1) + _round_err(v))


def _reduce_minmax(fn: Any) -> Any:
    def op(x: Any, axis: Any = None) -> Tracked:
        x = _t(x)
        if x.v.dtype == np.bool_:
            x = Tracked(x.v.astype(np.int64))
        ax = _axes(x, axis)
        if any(x.v.shape[a] == 0 for a in ax):
            raise ValueError("max/min of an empty axis")
        return Tracked(_res(fn(x.v, axis=ax)), np.max(x.e, axis=ax) if ax else x.e)
    return op


max = _reduce_minmax(np.max)  # noqa: A001
min = _reduce_minmax(np.min)  # noqa: A001


def _arg(is_max: bool) -> Any:
    def op(x: Any, axis: Any = None) -> Tracked:
        x = _t(x)
        if x.v.dtype == np.bool_:
            x = Tracked(x.v.astype(np.int64))
        if (x.v.size == 0) if axis is None else (x.v.shape[axis] == 0):
            raise ValueError("argmax/argmin of an empty sequence")
        v = np.asarray(x.v, np.float64)
        e = x.e
        if axis is None:
            v, e = v.reshape(-1), e.reshape(-1)
            ax = 0
        else:
            ax = axis % x.v.ndim
        best = np.max(v, axis=ax, keepdims=True) if is_max else np.min(v, axis=ax,
                                                                         keepdims=True)
        ebest = np.max(e, axis=ax, keepdims=True)
        close = np.abs(v - best) <= 2 * (e + ebest)
        if np.any((np.sum(close, axis=ax) > 1) & (np.max(e, axis=ax) > 0)):
            _ill("argmax/argmin with a near tie")
        fn = np.argmax if is_max else np.argmin
        return Tracked(_res(fn(x.v, axis=axis)).astype(np.int64))
    return op


argmax = _arg(True)
argmin = _arg(False)


def matmul(a: Any, b: Any) -> Tracked:
    a, b = _t(a), _t(b)
    with np.errstate(all="ignore"):
        v = _res(np.matmul(a.v, b.v))
    if v.dtype.kind != "f":
        return Tracked(v)
    aa, ab = np.abs(a.v.astype(np.float64)), np.abs(b.v.astype(np.float64))
    k = a.v.shape[-1]
    e = (aa @ b.e + a.e @ ab + a.e @ b.e + builtins.max(k, 1) * _eps(v.dtype) * (aa @ ab)
         + _round_err(v))
    return Tracked(v, e)


def dot(a: Any, b: Any) -> Any:
    if not isinstance(a, Tracked) or not isinstance(b, Tracked) or a.v.ndim == 0 or b.v.ndim == 0:
        return a * b
    return matmul(a, b)


def transpose(x: Any, axes: Any = None) -> Tracked:
    return _t(x).T


class _DT:
    """Stands for lt.f64 etc. in the oracle: a NumPy dtype that accepts ``[dims]``."""

    def __init__(self, np_dtype: Any) -> None:
        self.np = np.dtype(np_dtype)

    def __getitem__(self, dims: Any) -> "_DT":
        return self

    @property
    def dtype(self) -> np.dtype:  # so NumPy methods of constants take it (``.astype(lt.f32)``)
        return self.np


f64, f32, i64, i32, bool_ = (_DT(np.float64), _DT(np.float32), _DT(np.int64), _DT(np.int32),
                             _DT(np.bool_))
f16, i8, i16, u8, u16, u32, u64 = (_DT(np.float16), _DT(np.int8), _DT(np.int16), _DT(np.uint8),
                                   _DT(np.uint16), _DT(np.uint32), _DT(np.uint64))


def _npdt(d: Any) -> np.dtype:
    return d.np if isinstance(d, _DT) else np.dtype(d)


def astype(x: Any, dt: Any) -> Tracked:
    x = _t(x)
    d = _npdt(dt)
    src = x.v.dtype
    if src.kind == "f" and d.kind in "iu":
        t = np.trunc(x.v.astype(np.float64))
        near = np.abs(x.v - np.round(x.v)) <= 2 * x.e
        if np.any((x.e > 0) & near):
            _ill("float->int conversion within rounding of an integer")
        info = np.iinfo(d)
        return Tracked(np.clip(np.where(np.isnan(t), 0, t), info.min, info.max).astype(d))
    with np.errstate(all="ignore"):
        v = _res(x.v.astype(d))
    if d.kind == "f":
        return Tracked(v, x.e + _round_err(v) * (src != d))
    return Tracked(v)


def _shape(shape: Any) -> tuple:
    if not isinstance(shape, (tuple, list)):
        shape = (shape,)
    return tuple(int(_val(s)) for s in shape)


def full(shape: Any, fill: Any, dtype: Any = None) -> Tracked:
    d = _npdt(dtype) if dtype is not None else np.asarray(_val(fill)).dtype
    return Tracked(np.full(_shape(shape), _val(fill), dtype=d), _err(fill))


def zeros(shape: Any, dtype: Any = f64) -> Tracked:
    return Tracked(np.zeros(_shape(shape), _npdt(dtype)))


def ones(shape: Any, dtype: Any = f64) -> Tracked:
    return Tracked(np.ones(_shape(shape), _npdt(dtype)))


def empty(shape: Any, dtype: Any = f64) -> Tracked:
    d = _npdt(dtype)
    return Tracked(np.full(_shape(shape), np.nan if d.kind == "f" else 0, d))


def zeros_like(x: Any, dtype: Any = None) -> Tracked:
    return Tracked(np.zeros_like(_val(x), dtype=None if dtype is None else _npdt(dtype)))


def ones_like(x: Any, dtype: Any = None) -> Tracked:
    return Tracked(np.ones_like(_val(x), dtype=None if dtype is None else _npdt(dtype)))


def full_like(x: Any, fill: Any, dtype: Any = None) -> Tracked:
    d = np.asarray(_val(x)).dtype if dtype is None else _npdt(dtype)
    return Tracked(np.full(np.shape(_val(x)), _val(fill), dtype=d), _err(fill))


def arange(n: Any, dtype: Any = i64) -> Tracked:
    return Tracked(np.arange(int(_val(n)), dtype=_npdt(dtype)))


def copy(x: Any) -> Tracked:
    x = _t(x)
    return Tracked(x.v.copy(), x.e.copy())


def kernel(fn: Any = None, **_: Any) -> Any:
    return fn if fn is not None else (lambda f: f)


# ------------------------------------------------------------------ loops: one static type
# lattice gives a loop-carried variable one type whatever the trip count (docs/getting-started,
# "A variable has one type after a loop or a branch"): the initial value at its own dtype (a
# Python number at its default one: bool, i64, f64), promoted with what the body assigns, to a
# fixed point; the initial value and every iteration's result are converted to that type.
# Plain Python would keep a Python number through a loop that runs zero times and let the type
# drift per iteration.  So the oracle runs every ``for ... in range(...)`` through
# :func:`_run_loop`: the body becomes a function of the names it reads or assigns, run in
# *shadow* mode (every value replaced by a stand-in of its dtype and rank with size-1 dims, no
# conditioning checks) to learn the types, then for real with the conversions.

class _Unbound:
    def __repr__(self) -> str:
        return "<unbound>"


_U = _Unbound()
_TYPE_CACHE: dict = {}


def _init_dtype(v: Any) -> Any:
    if isinstance(v, Tracked):
        return v.v.dtype
    if isinstance(v, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(v, np.generic):
        return v.dtype
    if isinstance(v, int):
        return np.dtype(np.int64)
    if isinstance(v, float):
        return np.dtype(np.float64)
    raise TypeError(f"oracle: a loop carries a {type(v).__name__}")


def _promote_out(t: np.dtype, v: Any) -> np.dtype:
    """lattice's unification of a strong ``t`` with a body result ``v`` (a Python or NumPy
    number is weak)."""
    if isinstance(v, Tracked):
        return np.result_type(t, v.v.dtype)
    if isinstance(v, (bool, np.bool_)):
        return np.result_type(t, False)
    if isinstance(v, (int, np.integer)):
        return np.result_type(t, 0)
    if isinstance(v, (float, np.floating)):
        return np.result_type(t, 0.0)
    raise TypeError(f"oracle: a loop carries a {type(v).__name__}")


def _to_dtype(v: Any, t: np.dtype) -> "Tracked":
    if isinstance(v, Tracked):
        return v if v.v.dtype == t else astype(v, t)
    return astype(Tracked(np.asarray(v)), t)


def _shrink(v: Any) -> Any:
    """A stand-in of the same dtype and rank with every dim 1."""
    if isinstance(v, Tracked):
        return Tracked(np.ones((1,) * v.v.ndim, v.v.dtype))
    return v


def _sig(v: Any) -> Any:
    return (v.v.dtype.str, v.v.ndim) if isinstance(v, Tracked) else type(v).__name__


@contextlib.contextmanager
def _shadow_mode() -> Any:
    """Run on stand-in values (:func:`_shrink`): no conditioning checks, no warnings."""
    global _SHADOW
    old = _SHADOW
    _SHADOW = True
    try:
        with np.errstate(all="ignore"):
            yield
    finally:
        _SHADOW = old


def _types_key(fn: Any, env: dict) -> tuple:
    """The :data:`_TYPE_CACHE` key of a rewritten block run on ``env``."""
    return (fn.__code__, tuple(sorted((k, _sig(v)) for k, v in env.items())))


def _bound_env(fn: Any, env: dict) -> dict:
    """The bound values of ``env`` that the rewritten block ``fn`` takes (its keyword-only
    parameters: the names it reads or assigns)."""
    c = fn.__code__
    params = c.co_varnames[c.co_argcount:c.co_argcount + c.co_kwonlyargcount]
    return {k: v for k, v in env.items() if k in params and v is not _U}


def _loop_types(body: Any, env: dict, carried: list, item: tuple = ()) -> dict:
    """The fixed point of the carried names' types; ``item``: the body's positional stand-ins
    (the counter, or the iterated item), none for a ``while``."""
    key = _types_key(body, env)
    hit = _TYPE_CACHE.get(key)
    if hit is not None:
        return hit
    types = {n: _init_dtype(env[n]) for n in carried}
    shadow = {k: _shrink(v) for k, v in env.items()}
    with _shadow_mode():
        for _ in range(4):
            for n in carried:
                shadow[n] = Tracked(np.ones((1,) * np.ndim(_val(env[n])), types[n]))
            out = body(*item, **shadow)
            new = {n: _promote_out(types[n], out[n]) for n in carried}
            if new == types:
                break
            types = new
        else:
            raise TypeError("oracle: the types of loop-carried values did not settle")
    _TYPE_CACHE[key] = types
    return types


# Jumps.  A rewritten block (a loop body, a branch) returns the dict of the names it assigns
# plus ``_lt_ctl``: None when it ran to its end, "break" / "continue" when it left through one
# (out of a branch, to be acted on by the enclosing body), "return" with ``_lt_ret`` the value.
_CTL, _RET = "_lt_ctl", "_lt_ret"
#: a while loop still running after this many iterations is a generator bug, not a program
_WHILE_CAP = 100_000


def _iterate(body: Any, items: Any, env: dict, carried: list, types: dict) -> dict:
    """Run ``body`` once per positional-argument tuple of ``items``, honouring its jumps."""
    vals = {n: _to_dtype(env[n], types[n]) for n in carried}
    for item in items:
        out = body(*item, **{**env, **vals})
        vals = {n: _to_dtype(out[n], types[n]) for n in carried}
        ctl = out.get(_CTL)
        if ctl == "break":
            break
        if ctl == "return":
            return {**vals, _CTL: "return", _RET: out[_RET]}
    return {**vals, _CTL: None}


def _run_loop(body: Any, rargs: tuple, names: tuple, env: dict) -> dict:
    """``for i in range(*rargs): <body>`` with lattice's typing of the carried ``names``."""
    env = _bound_env(body, env)
    carried = [n for n in names if n in env]
    types = _loop_types(body, env, carried, (Tracked(np.int64(0)),))
    if _SHADOW:  # the loop's effect on types is all a shadow run needs
        return {n: _to_dtype(env[n], types[n]) for n in carried} | {_CTL: None}
    rng = range(*(int(_val(a)) for a in rargs))
    return _iterate(body, ((Tracked(np.int64(i)),) for i in rng), env, carried, types)


class _Seq:
    """What a ``for`` iterates (``range``, ``enumerate``, ``zip``, ``reversed``, an array's
    leading axis): its items and a stand-in item of their types (an empty sequence too)."""

    def __init__(self, items: list, stand: Any) -> None:
        self.items, self.stand = items, stand

    def __iter__(self) -> Any:
        return iter(self.items)


def _as_seq(x: Any) -> _Seq:
    if isinstance(x, _Seq):
        return x
    if isinstance(x, Tracked) and x.v.ndim >= 1:
        stand = Tracked(np.ones((1,) * (x.v.ndim - 1), x.v.dtype))
        return _Seq([x[k] for k in range(x.v.shape[0])], stand)
    raise TypeError(f"oracle: a loop over a {type(x).__name__}")


def _range(*args: Any) -> _Seq:
    return _Seq([Tracked(np.int64(i)) for i in range(*(int(_val(a)) for a in args))],
                Tracked(np.int64(0)))


prange = _range


def _enumerate(x: Any, start: Any = 0) -> _Seq:
    s = _as_seq(x)
    k0 = int(_val(start))
    return _Seq([(Tracked(np.int64(k0 + k)), v) for k, v in enumerate(s.items)],
                (Tracked(np.int64(0)), s.stand))


def _zip(*xs: Any) -> _Seq:
    ss = [_as_seq(x) for x in xs]
    return _Seq(list(zip(*(s.items for s in ss))), tuple(s.stand for s in ss))


def _reversed(x: Any) -> _Seq:
    s = _as_seq(x)
    return _Seq(s.items[::-1], s.stand)


def _run_for(body: Any, seq: Any, names: tuple, env: dict) -> dict:
    """``for <target> in seq: <body>`` over anything but a range call."""
    env = _bound_env(body, env)
    carried = [n for n in names if n in env]
    seq = _as_seq(seq)
    types = _loop_types(body, env, carried, (seq.stand,))
    if _SHADOW:
        return {n: _to_dtype(env[n], types[n]) for n in carried} | {_CTL: None}
    return _iterate(body, ((it,) for it in seq.items), env, carried, types)


def _truth(c: Any) -> bool:
    if isinstance(c, Tracked):
        if c.v.dtype != np.bool_ or c.v.ndim:
            raise TypeError("oracle: a while condition must be a scalar bool")
        return bool(c.v)
    return bool(c)


def _run_while(cond: Any, body: Any, names: tuple, env: dict) -> dict:
    """``while cond: <body>`` (``cond`` a function of the same names) with lattice's typing."""
    env = _bound_env(body, env)
    carried = [n for n in names if n in env]
    types = _loop_types(body, env, carried)
    vals = {n: _to_dtype(env[n], types[n]) for n in carried}
    if _SHADOW:
        return vals | {_CTL: None}

    def items() -> Any:
        for _ in range(_WHILE_CAP):
            if not _truth(cond(**{**env, **state})):
                return
            yield ()
        raise RuntimeError("oracle: a generated while loop did not terminate")

    # the condition reads the values the previous iteration left: track them as _iterate does
    state = dict(vals)

    def body2(**kw: Any) -> dict:
        out = body(**kw)
        state.update({n: _to_dtype(out[n], types[n]) for n in carried})
        return out

    return _iterate(body2, items(), env, carried, types)


def argsort(x: Any, axis: int = -1) -> Tracked:
    """NumPy's stable argsort; values within rounding of each other may be ordered either way
    by the compiled code: ill-conditioned (exact ties are decided exactly, by position)."""
    x = _t(x)
    if x.v.dtype.kind == "f" and x.v.size > 1 and np.any(x.e > 0):
        v = np.moveaxis(np.asarray(x.v, np.float64), axis, -1)
        e = np.moveaxis(x.e, axis, -1)
        o = np.argsort(v, axis=-1, kind="stable")
        sv, se = np.take_along_axis(v, o, -1), np.take_along_axis(e, o, -1)
        gap = np.diff(sv, axis=-1)
        if np.any((gap <= 2 * (se[..., 1:] + se[..., :-1])) & (se[..., 1:] + se[..., :-1] > 0)):
            _ill("argsort of values within rounding of each other")
    return Tracked(np.argsort(x.v, axis=axis, kind="stable").astype(np.int64))


def take(x: Any, idx: Any, axis: Any = None) -> Tracked:
    x = _t(x)
    i = np.asarray(_val(idx))
    if _SHADOW:  # stand-in indices: computed from stand-in values, they may point anywhere
        i = np.zeros(i.shape, np.int64)  # (seed 1307733)
    t = Tracked(np.take(x.v, i, axis=axis), np.take(x.e, i, axis=axis))
    return _keep_mag(t, x, lambda m: np.take(m, i, axis=axis))


def _aug_store(x: Any, key: Any, val: Any, sign: int) -> None:
    """``x[key] += val`` (``-=``, sign -1) as lattice defines it: every repeat of an index
    adds (``np.add.at``), where Python's own ``x[idx] += v`` keeps only the last."""
    if not isinstance(x, Tracked):
        raise TypeError("oracle: an indexed += into a non-array")
    k = _index_key(x.v.shape, key)
    if isinstance(k, np.ndarray) and k.dtype == np.bool_:
        k = np.nonzero(k)
    v = np.asarray(_val(val))
    if v.dtype.kind == "f" and x.v.dtype.kind != "f":
        raise TypeError("oracle: adding a float into an integer array")
    vb = np.broadcast_to(v, np.shape(x.v[k])) if np.ndim(v) else v
    old_abs = _absv(x)
    with np.errstate(all="ignore"):
        (np.add if sign > 0 else np.subtract).at(x.v, k, np.asarray(vb).astype(x.v.dtype))
    ev = np.broadcast_to(np.asarray(_err(val), np.float64), np.shape(x.v[k]))
    np.add.at(x.e, k, ev)
    if _eps(x.v.dtype):
        # r additions into one element round like a sum of its old value and the r terms
        cnt, acc = np.zeros(x.v.shape), np.zeros(x.v.shape)
        np.add.at(cnt, k, 1.0)
        np.add.at(acc, k, np.broadcast_to(_absv(val), np.shape(x.v[k])))
        x.e = x.e + _eps(x.v.dtype) * cnt * (old_abs + acc)
    if x.m is not None or (isinstance(val, Tracked) and val.m is not None):
        m0 = _mag(x)
        np.add.at(m0, k, np.broadcast_to(_mag(val), np.shape(x.v[k])))
        x.m = m0


def _unify(vals: Sequence[Any]) -> np.dtype:
    """lattice's type of a name after a traced ``if`` (astcompile's ``_unify``): NumPy's
    promotion with Python and NumPy numbers weak; numbers only: the widest kind."""
    items = [(v.v.dtype, False) if isinstance(v, Tracked) else (_init_dtype(v), True)
             for v in vals]
    lit = {"b": False, "i": 0, "u": 0, "f": 0.0}
    (d, weak), rest = items[0], items[1:]
    for t, w in rest:
        if not (weak and w):
            d = np.result_type(lit[d.kind] if weak else d, lit[t.kind] if w else t)
        weak = weak and w
    if weak:
        d = builtins.max((t for t, _ in items), key=lambda x: "biuf".index(x.kind))
    return np.dtype(d)


def _run_if(test: Any, then: Any, other: Any, names: tuple, env: dict) -> dict:
    """``if test: <then> else: <other>`` as lattice compiles it: a condition known at compile
    time runs one branch as Python does; a traced one gives every name assigned in both
    branches (or bound before) one type, unified over both branches (learned in shadow mode)."""
    env = _bound_env(then, env)
    if not isinstance(test, Tracked):
        return (then if test else other)(**env)
    key = _types_key(then, env)
    types = _TYPE_CACHE.get(key)
    if types is None:
        with _shadow_mode():
            outs = [f(**{k: _shrink(v) for k, v in env.items()}) for f in (then, other)]
        types = {n: _unify([o[n] for o in outs]) for n in names
                 if all(o[n] is not _U for o in outs)}
        _TYPE_CACHE[key] = types
    if _SHADOW:
        out = then(**{k: _shrink(v) for k, v in env.items()})
        # a shadow run learns types: it goes on past a jump, to see the rest of the block
        return {n: _to_dtype(out[n], t) for n, t in types.items()} | {_CTL: None}
    tv = test.v
    out = (then if bool(tv if tv.dtype == np.bool_ else tv != 0) else other)(**env)
    jump = {k: out[k] for k in (_CTL, _RET) if k in out}
    # (a branch that jumped may leave a name it would have bound unbound: seed 1002098)
    return {n: _to_dtype(out[n], t) for n, t in types.items() if out[n] is not _U} | jump


def _assigned(stmts: Sequence[ast.stmt]) -> list:
    """Names a block binds (stores ``x[i] = v`` bind ``x``), in order, as lattice counts them."""
    seen: dict = {}

    def tgt(t: ast.AST) -> None:
        if isinstance(t, ast.Name):
            seen.setdefault(t.id, None)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                tgt(e)
        elif isinstance(t, ast.Subscript):
            base = t.value
            while isinstance(base, ast.Subscript):
                base = base.value
            if isinstance(base, ast.Name):
                seen.setdefault(base.id, None)

    for st in stmts:
        for node in ast.walk(st):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    tgt(t)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)):
                tgt(node.target)
    return list(seen)


def _read(stmts: Sequence[ast.stmt]) -> list:
    seen: dict = {}
    for st in stmts:
        for node in ast.walk(st):
            if isinstance(node, ast.Name):
                seen.setdefault(node.id, None)
    return list(seen)


def _is_range(f: ast.expr) -> bool:
    """``range`` or ``lt.prange`` (whose meaning is the serial loop's)."""
    if isinstance(f, ast.Name):
        return f.id == "range"
    return (isinstance(f, ast.Attribute) and f.attr == "prange"
            and isinstance(f.value, ast.Name) and f.value.id == "lt")


def _lt(attr: str) -> ast.expr:
    return ast.Attribute(ast.Name("lt", ast.Load()), attr, ast.Load())


def _jumps(stmts: Sequence[ast.stmt]) -> bool:
    return any(isinstance(n, (ast.Return, ast.Break, ast.Continue))
               for st in stmts for n in ast.walk(st))


def _target_names(t: ast.AST) -> list:
    return [n.id for n in ast.walk(t) if isinstance(n, ast.Name)]


class _LoopRewriter:
    """Every ``for``, ``while`` and ``if`` of a kernel becomes a call of a driver
    (:func:`_run_loop`, :func:`_run_for`, :func:`_run_while`, :func:`_run_if`) over functions
    of the names the block reads or assigns.  ``break``, ``continue`` and a ``return`` inside
    such a block become returns of its names' dict with the jump recorded (``_lt_ctl``), which
    the code after the call acts on: a loop consumes ``break``/``continue``; a ``return`` (and,
    out of a branch, every jump) is passed on to the enclosing block, up to the function."""

    def __init__(self) -> None:
        self.n = 0

    def block(self, stmts: list, local: set, ret: Optional[list] = None) -> list:
        """``ret``: the names the enclosing rewritten block returns (None at the function's
        own level, where a ``return`` stays one)."""
        out: list = []
        for st in stmts:
            if isinstance(st, ast.For) and not st.orelse:
                if (isinstance(st.target, ast.Name) and isinstance(st.iter, ast.Call)
                        and _is_range(st.iter.func) and not st.iter.keywords):
                    out.extend(self.loop(st, local, ret))
                else:
                    out.extend(self.for_seq(st, local, ret))
            elif isinstance(st, ast.While) and not st.orelse:
                out.extend(self.while_(st, local, ret))
            elif isinstance(st, ast.If):
                out.extend(self.branch(st, local, ret))
            elif isinstance(st, (ast.Break, ast.Continue)) and ret is not None:
                out.append(self._jump(ret, "break" if isinstance(st, ast.Break) else "continue"))
            elif isinstance(st, ast.Return) and ret is not None:
                out.append(self._jump(ret, "return", st.value or ast.Constant(None)))
            elif (isinstance(st, ast.AugAssign) and isinstance(st.target, ast.Subscript)
                  and isinstance(st.op, (ast.Add, ast.Sub))):
                # h[idx] += v adds every repeat of an index (np.add.at), as lattice does
                t = st.target
                out.append(ast.Expr(ast.Call(_lt("_aug_store"), [
                    t.value, t.slice, st.value, ast.Constant(1 if isinstance(st.op, ast.Add)
                                                             else -1)], [])))
            else:
                out.append(st)
        return out

    def _dict(self, names: list, extra: Sequence[tuple]) -> ast.Dict:
        return ast.Dict([ast.Constant(n) for n in names] + [ast.Constant(k) for k, _ in extra],
                        [ast.Name(n, ast.Load()) for n in names] + [v for _, v in extra])

    def _jump(self, ret: list, ctl: str, value: Optional[ast.expr] = None) -> ast.Return:
        extra = [(_CTL, ast.Constant(ctl))] + ([(_RET, value)] if value is not None else [])
        return ast.Return(self._dict(ret, extra))

    def _after(self, res: str, ret: Optional[list], from_branch: bool) -> list:
        """The code after a driver call whose block may have jumped."""
        ctl = ast.Call(ast.Attribute(ast.Name(res, ast.Load()), "get", ast.Load()),
                       [ast.Constant(_CTL)], [])
        val = ast.Call(ast.Attribute(ast.Name(res, ast.Load()), "get", ast.Load()),
                       [ast.Constant(_RET)], [])
        if ret is None:  # the function's own level: only a return can arrive here
            test = ast.Compare(ctl, [ast.Eq()], [ast.Constant("return")])
            return [ast.If(test, [ast.Return(val)], [])]
        if from_branch:  # any jump leaves this block too
            test = ast.Compare(ctl, [ast.IsNot()], [ast.Constant(None)])
            act = ast.Return(self._dict(ret, [(_CTL, ctl), (_RET, val)]))
        else:  # a loop consumed its break/continue
            test = ast.Compare(ctl, [ast.Eq()], [ast.Constant("return")])
            act = self._jump(ret, "return", val)
        return [ast.If(test, [act], [])]

    def _fdef(self, name: str, args: list, params: list, body: list, ret: list) -> ast.FunctionDef:
        retd = ast.Return(self._dict(ret, [(_CTL, ast.Constant(None))]))
        return ast.FunctionDef(
            name=name,
            args=ast.arguments(posonlyargs=[], args=[ast.arg(a) for a in args], vararg=None,
                               kwonlyargs=[ast.arg(n) for n in params],
                               kw_defaults=[_lt("_U") for _ in params], kwarg=None,
                               defaults=[]),
            body=body + [retd], decorator_list=[], returns=None, type_comment=None)

    def _rebind(self, res: str, names: list) -> list:
        return [ast.Assign([ast.Name(n, ast.Store())], ast.IfExp(
            ast.Compare(ast.Constant(n), [ast.In()], [ast.Name(res, ast.Load())]),
            ast.Subscript(ast.Name(res, ast.Load()), ast.Constant(n), ast.Load()), _lt("_U")))
            for n in names]

    def _call(self, res: str, driver: str, args: list, assigned: list) -> ast.Assign:
        return ast.Assign([ast.Name(res, ast.Store())], ast.Call(_lt(driver), args + [
            ast.Tuple([ast.Constant(n) for n in assigned], ast.Load()),
            ast.Call(ast.Name("locals", ast.Load()), [], [])], []))

    def branch(self, st: ast.If, local: set, ret: Optional[list]) -> list:
        """``if test: A else: B`` -> two functions of the names they read or assign, run by
        :func:`_run_if` (lattice's typing of the names the branches assign)."""
        self.n += 1
        k = self.n
        assigned = list(dict.fromkeys(_assigned(st.body) + _assigned(st.orelse)))
        params = [n for n in dict.fromkeys(_read(st.body) + _read(st.orelse) + assigned)
                  if n in local or n in assigned]
        inner = set(params) | set(assigned)
        fdefs = [self._fdef(f"_lt_if_{tag}_{k}", [], params,
                            self.block(stmts, inner, assigned) or [ast.Pass()], assigned)
                 for tag, stmts in (("then", st.body), ("else", st.orelse))]
        res = f"_lt_if_res_{k}"
        call = self._call(res, "_run_if", [st.test, ast.Name(fdefs[0].name, ast.Load()),
                                           ast.Name(fdefs[1].name, ast.Load())], assigned)
        after = self._after(res, ret, True) if _jumps(st.body + st.orelse) else []
        return fdefs + [call] + self._rebind(res, assigned) + after

    def _body(self, st: Any, local: set, tnames: list) -> tuple:
        assigned = [n for n in _assigned(st.body) if n not in tnames]
        params = [n for n in dict.fromkeys(_read(st.body) + assigned)
                  if n not in tnames and (n in local or n in assigned)]
        body = self.block(st.body, set(params) | set(assigned) | set(tnames), assigned)
        return assigned, params, body

    def loop(self, st: ast.For, local: set, ret: Optional[list]) -> list:
        self.n += 1
        k = self.n
        target = st.target.id  # type: ignore[attr-defined]
        assigned, params, body = self._body(st, local, [target])
        fdef = self._fdef(f"_lt_loop_body_{k}", [target], params, body, assigned)
        res = f"_lt_loop_res_{k}"
        call = self._call(res, "_run_loop", [
            ast.Name(fdef.name, ast.Load()),
            ast.Tuple(list(st.iter.args), ast.Load())], assigned)  # type: ignore[attr-defined]
        after = self._after(res, ret, False) if _jumps(st.body) else []
        return [fdef, call] + self._rebind(res, assigned) + after

    def for_seq(self, st: ast.For, local: set, ret: Optional[list]) -> list:
        """``for <target> in <iterable>`` (an array, enumerate, zip, reversed): the body takes
        the item and unpacks it into the target itself."""
        self.n += 1
        k = self.n
        tnames = _target_names(st.target)
        assigned, params, body = self._body(st, local, tnames)
        item = f"_lt_item_{k}"
        unpack = ast.Assign([st.target], ast.Name(item, ast.Load()))
        fdef = self._fdef(f"_lt_for_body_{k}", [item], params, [unpack] + body, assigned)
        res = f"_lt_for_res_{k}"
        call = self._call(res, "_run_for", [ast.Name(fdef.name, ast.Load()), st.iter], assigned)
        after = self._after(res, ret, False) if _jumps(st.body) else []
        return [fdef, call] + self._rebind(res, assigned) + after

    def while_(self, st: ast.While, local: set, ret: Optional[list]) -> list:
        self.n += 1
        k = self.n
        assigned, params, body = self._body(st, local, [])
        params = list(dict.fromkeys(params + [n for n in _read([ast.Expr(st.test)])
                                              if n in local or n in assigned]))
        fdef = self._fdef(f"_lt_while_body_{k}", [], params, body, assigned)
        cond = ast.FunctionDef(
            name=f"_lt_while_cond_{k}",
            args=ast.arguments(posonlyargs=[], args=[], vararg=None,
                               kwonlyargs=[ast.arg(n) for n in params],
                               kw_defaults=[_lt("_U") for _ in params], kwarg=None,
                               defaults=[]),
            body=[ast.Return(st.test)], decorator_list=[], returns=None, type_comment=None)
        res = f"_lt_while_res_{k}"
        call = self._call(res, "_run_while", [ast.Name(cond.name, ast.Load()),
                                              ast.Name(fdef.name, ast.Load())], assigned)
        after = self._after(res, ret, False) if _jumps(st.body) else []
        return [cond, fdef, call] + self._rebind(res, assigned) + after


_REWRITTEN: dict = {}
_GLOBALS: dict = {}


def oracle_function(fn: Any, g: dict) -> Any:
    """``fn`` (a kernel's Python function) with its ``for ... in range`` loops rewritten to
    :func:`_run_loop`, its globals ``g``."""
    code = fn.__code__
    hit = _REWRITTEN.get(code)
    if hit is not None and hit.__globals__ is g:
        return hit
    src = textwrap.dedent(inspect.getsource(fn))
    tree = ast.parse(src)
    fdef = tree.body[0]
    assert isinstance(fdef, ast.FunctionDef)
    fdef.decorator_list = []
    fdef.returns = None
    for a in fdef.args.args:
        a.annotation = None
    local = {a.arg for a in fdef.args.args} | set(_assigned(fdef.body))
    fdef.body = _LoopRewriter().block(fdef.body, local)
    ast.fix_missing_locations(tree)
    ast.increment_lineno(tree, code.co_firstlineno - 1)
    ns: dict = {}
    exec(compile(tree, code.co_filename, "exec"), g, ns)
    f2 = ns[fdef.name]
    if len(_REWRITTEN) > 64:
        _REWRITTEN.clear()
    _REWRITTEN[code] = f2
    return f2


def _oracle_globals(fn: Any) -> dict:
    """The function's globals with ``lt`` bound to this module and every lattice kernel it can
    call replaced by its oracle version."""
    from ..frontend.kernel import Kernel
    hit = _GLOBALS.get(fn.__code__)
    if hit is not None and hit[0] is fn.__globals__:
        return hit[1]
    g = dict(fn.__globals__)
    g["lt"] = sys.modules[__name__]
    g.update(range=_range, enumerate=_enumerate, zip=_zip, reversed=_reversed)
    for name, v in list(g.items()):
        if isinstance(v, Kernel):
            g[name] = oracle_function(v.fn, g)
    if len(_GLOBALS) > 64:
        _GLOBALS.clear()
    _GLOBALS[fn.__code__] = (fn.__globals__, g)
    return g


def run_oracle(fn: Any, args: Sequence[Any], fastmath: bool,
               final: Optional[list] = None) -> tuple[list[np.ndarray], list[Any]]:
    """Run a program's Python function over Tracked values: (values, error bounds).
    ``final``, a list: gets the (values, error bounds) of each array argument after the call
    (a program may store into its arguments), None for the others."""
    global _SHADOW
    _SHADOW = False
    Tracked.fastmath = fastmath
    wrapped = []
    for a in args:
        wrapped.append(Tracked(a) if isinstance(a, np.ndarray) else
                       Tracked(np.asarray(a)))
    try:
        f2 = oracle_function(fn, _oracle_globals(fn))
    except (OSError, TypeError, SyntaxError):  # no source (a function built at run time)
        g = dict(fn.__globals__)
        g["lt"] = sys.modules[__name__]
        g.update(range=_range, enumerate=_enumerate, zip=_zip, reversed=_reversed)
        f2 = types.FunctionType(fn.__code__, g, fn.__name__)
    with np.errstate(all="ignore"):
        out = f2(*wrapped)
    if final is not None:
        final += [(w.v, w.e) if isinstance(a, np.ndarray) else None
                  for a, w in zip(args, wrapped)]
    outs = list(out) if isinstance(out, tuple) else [out]
    vals, errs = [], []
    for o in outs:
        t = o if isinstance(o, Tracked) else Tracked(np.asarray(o))
        vals.append(t.v)
        errs.append(t.e)
    return vals, errs
