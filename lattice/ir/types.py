"""Types of the lattice IR: element dtypes, symbolic dimensions, tensor types.

Contracts:

* A :class:`DType` is one of twelve singletons (``bool_``; signed ``i8 i16 i32 i64``; unsigned
  ``u8 u16 u32 u64``; floats ``f16 f32 f64``); compare with ``is``/``==``.  ``f16`` is a storage
  type: code generation computes in f32 and rounds every f16 result to f16, as NumPy does.
* A :class:`Dim` is an affine expression over named dimensions: ``const + sum(coef * name)``.
  Named dims come from argument annotations (``f64["n", "d"]``) and become runtime ``i64``
  values; a dim whose size is only known at run time inside the kernel (a slice with traced
  bounds, ``zeros(k)`` with a traced ``k``) gets a *fresh* name starting with ``?`` that equals
  only itself.  Two dims are equal iff their canonical forms are equal.
* A :class:`TensorType` is a dtype plus a shape (tuple of dims); a scalar has shape ``()``.
* Broadcasting follows NumPy, resolved statically: a dim broadcasts only when it is the literal 1;
  two different symbolic dims never broadcast against each other (a compile error).
* Promotion follows NumPy 2 (NEP 50): bool < integers < floats by kind; within a kind the wider
  width wins; signed with unsigned gives the smallest signed type holding both (u64 with any
  signed type gives f64); an integer with a float gives the smallest float holding the integer
  type exactly (f16 holds 8-bit, f32 16-bit, f64 wider integers: i32 + f32 is f64).  Python
  scalars ("weak" literals) take the other side's dtype when their kind is not higher (a Python
  int with bool gives i64, a Python float with an integer or bool gives f64); whether the value
  fits is the frontend's check, not a promotion.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Iterable, Mapping, Union

import numpy as np

__all__ = [
    "DType", "f16", "f32", "f64", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "bool_",
    "DTYPES", "dtype_of", "kind_rank", "Dim", "DimLike",
    "TensorType", "ShapeError", "promote", "broadcast_shapes", "scalar",
]


class ShapeError(TypeError):
    """A shape or dtype rule rejected its inputs; the frontend adds the user's file:line."""


@dataclass(frozen=True, slots=True)
class DType:
    """An element type. ``kind`` is 'b' (bool), 'i' (signed integer), 'u' (unsigned integer) or
    'f' (float); ``is_int`` holds for both integer kinds."""

    name: str
    kind: str
    bits: int

    @property
    def np(self) -> np.dtype:
        return np.dtype(_NP_NAMES[self.name])

    @property
    def is_float(self) -> bool:
        return self.kind == "f"

    @property
    def is_int(self) -> bool:
        return self.kind in "iu"

    @property
    def is_signed(self) -> bool:
        """A signed integer (bool and floats are not)."""
        return self.kind == "i"

    @property
    def is_unsigned(self) -> bool:
        return self.kind == "u"

    @property
    def is_bool(self) -> bool:
        return self.kind == "b"

    @property
    def itemsize(self) -> int:
        return max(self.bits // 8, 1)

    def __repr__(self) -> str:
        return self.name


f16 = DType("f16", "f", 16)
f32 = DType("f32", "f", 32)
f64 = DType("f64", "f", 64)
i8 = DType("i8", "i", 8)
i16 = DType("i16", "i", 16)
i32 = DType("i32", "i", 32)
i64 = DType("i64", "i", 64)
u8 = DType("u8", "u", 8)
u16 = DType("u16", "u", 16)
u32 = DType("u32", "u", 32)
u64 = DType("u64", "u", 64)
bool_ = DType("bool", "b", 8)
DTYPES: tuple[DType, ...] = (bool_, i8, i16, i32, i64, u8, u16, u32, u64, f16, f32, f64)
_NP_NAMES = {"f16": "float16", "f32": "float32", "f64": "float64", "i8": "int8", "i16": "int16",
             "i32": "int32", "i64": "int64", "u8": "uint8", "u16": "uint16", "u32": "uint32",
             "u64": "uint64", "bool": "bool"}
_BY_NP = {np.dtype(v): next(d for d in DTYPES if d.name == k) for k, v in _NP_NAMES.items()}
_KIND_RANK = {"b": 0, "i": 1, "u": 1, "f": 2}
_BY_KIND_BITS = {(d.kind, d.bits): d for d in DTYPES if not d.is_bool}


def kind_rank(kind: str) -> int:
    """bool 0 < integers (signed or not) 1 < floats 2: the order of NEP 50's kinds."""
    return _KIND_RANK[kind]


def dtype_of(np_dtype: object) -> DType:
    """The lattice dtype of a NumPy dtype; KeyError if lattice has none."""
    return _BY_NP[np.dtype(np_dtype)]


def _float_for(d: DType) -> DType:
    """The smallest float holding every value of integer or bool ``d`` exactly."""
    return f16 if d.bits <= 8 else f32 if d.bits <= 16 else f64


def _strong(a: DType, b: DType) -> DType:
    """NumPy's ``promote_types`` for two distinct dtypes."""
    ra, rb = _KIND_RANK[a.kind], _KIND_RANK[b.kind]
    if ra != rb:
        lo, hi = (a, b) if ra < rb else (b, a)
        if lo.is_bool:
            return hi
        f = _float_for(lo)  # integer with float: the wider of the two floats
        return hi if hi.bits >= f.bits else f
    if a.kind == b.kind:
        return a if a.bits >= b.bits else b
    s, u = (a, b) if a.is_signed else (b, a)
    if s.bits > u.bits:
        return s
    return f64 if u.bits == 64 else _BY_KIND_BITS[("i", 2 * u.bits)]


def promote(a: DType, b: DType, *, a_weak: bool = False, b_weak: bool = False) -> DType:
    """Result dtype of a binary arithmetic op (NumPy 2 rules; weak = Python scalar)."""
    if a is b:
        return a
    if a_weak != b_weak:
        (w, s) = (a, b) if a_weak else (b, a)
        if _KIND_RANK[w.kind] <= _KIND_RANK[s.kind]:
            return s
        # a weak value of a higher kind takes its default dtype in that kind, unless the
        # strong side is a float (kind already highest): Python int with bool -> i64,
        # Python float with an integer or bool -> f64
        return f64 if w.is_float else i64
    return _strong(a, b)


_fresh = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Dim:
    """Affine size expression ``const + sum(coef * name)`` in canonical form (terms sorted)."""

    terms: tuple[tuple[str, int], ...] = ()
    const: int = 0

    @staticmethod
    def named(name: str) -> "Dim":
        return Dim(((name, 1),), 0)

    @staticmethod
    def fresh(hint: str = "") -> "Dim":
        """A dimension known only at run time, equal to nothing but itself."""
        return Dim.named(f"?{hint}{next(_fresh)}")

    @staticmethod
    def of(x: "DimLike") -> "Dim":
        if isinstance(x, Dim):
            return x
        if isinstance(x, (bool, np.bool_)):
            raise TypeError("a dimension cannot be a bool")
        if isinstance(x, (int, np.integer)):
            return Dim((), int(x))
        if isinstance(x, str):
            if not x.isidentifier():
                raise TypeError(f"dimension name {x!r} is not an identifier")
            return Dim.named(x)
        raise TypeError(f"cannot use {x!r} as a dimension")

    @property
    def is_const(self) -> bool:
        return not self.terms

    @property
    def is_fresh(self) -> bool:
        return any(name.startswith("?") for name, _ in self.terms)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.terms)

    def __add__(self, other: "DimLike") -> "Dim":
        o = Dim.of(other)
        acc = dict(self.terms)
        for n, c in o.terms:
            acc[n] = acc.get(n, 0) + c
        return Dim(tuple(sorted((n, c) for n, c in acc.items() if c)), self.const + o.const)

    __radd__ = __add__

    def __neg__(self) -> "Dim":
        return Dim(tuple((n, -c) for n, c in self.terms), -self.const)

    def __sub__(self, other: "DimLike") -> "Dim":
        return self + (-Dim.of(other))

    def __rsub__(self, other: "DimLike") -> "Dim":
        return Dim.of(other) - self

    def scale(self, k: int) -> "Dim":
        if k == 0:
            return Dim((), 0)
        return Dim(tuple((n, c * k) for n, c in self.terms), self.const * k)

    def evaluate(self, env: Mapping[str, int]) -> int:
        """The size under a binding of names to ints (KeyError for an unbound name)."""
        return self.const + sum(c * env[n] for n, c in self.terms)

    def __str__(self) -> str:
        parts = []
        for n, c in self.terms:
            s = n if abs(c) == 1 else f"{abs(c)}*{n}"
            parts.append(("-" if c < 0 else "+") + s)
        if self.const or not parts:
            parts.append(("-" if self.const < 0 else "+") + str(abs(self.const)))
        text = "".join(parts)
        return text[1:] if text.startswith("+") else text

    def __repr__(self) -> str:
        return f"Dim({self})"


DimLike = Union[Dim, int, str]
ONE = Dim((), 1)


@dataclass(frozen=True, slots=True)
class TensorType:
    """A dtype and a shape of symbolic dims; ``shape == ()`` is a scalar."""

    dtype: DType
    shape: tuple[Dim, ...] = ()

    def __post_init__(self) -> None:
        if not all(isinstance(d, Dim) for d in self.shape):
            object.__setattr__(self, "shape", tuple(Dim.of(d) for d in self.shape))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_scalar(self) -> bool:
        return not self.shape

    def with_dtype(self, dtype: DType) -> "TensorType":
        return TensorType(dtype, self.shape)

    def __str__(self) -> str:
        if not self.shape:
            return self.dtype.name
        return f"{self.dtype.name}[{','.join(str(d) for d in self.shape)}]"

    __repr__ = __str__


def scalar(dtype: DType) -> TensorType:
    return TensorType(dtype, ())


def broadcast_shapes(*shapes: Iterable[Dim]) -> tuple[Dim, ...]:
    """NumPy broadcasting with static resolution; ShapeError on a mismatch."""
    shapes = [tuple(s) for s in shapes]
    rank = max((len(s) for s in shapes), default=0)
    out: list[Dim] = []
    for axis in range(rank):
        chosen = ONE
        for s in shapes:
            k = axis - (rank - len(s))
            if k < 0:
                continue
            d = s[k]
            if d == ONE:
                continue
            if chosen == ONE:
                chosen = d
            elif chosen != d:
                raise ShapeError(f"shapes {_fmt(shapes)} do not broadcast: dimension "
                                 f"{chosen} vs {d}{_runtime_sizes_hint(chosen, d)}")
        out.append(chosen)
    return tuple(out)


def _runtime_sizes_hint(a: Dim, b: Dim) -> str:
    """Why two sizes that may well be equal when the kernel runs still do not broadcast: a
    fresh size (a mask's count, a slice with traced bounds) equals nothing but itself."""
    if not (a.is_fresh or b.is_fresh):
        return ""

    def mask(d: Dim) -> bool:
        return any(n.startswith("?nz") for n in d.names)

    def what(d: Dim) -> str:
        return ("the count of a boolean mask" if mask(d) else
                "a size known only when the kernel runs" if d.is_fresh else f"the size {d}")
    fix = ("select both with one mask (m = (x > 0) & (w > 0); x[m] * w[m]) or keep the full "
           "shape with lt.where(m, x, 0)" if mask(a) or mask(b) else
           "slice both with the same bounds, or copy into an array of a size you name")
    both = ("the counts of two boolean masks" if mask(a) and mask(b) else
            "two sizes known only when the kernel runs" if what(a) == what(b) else
            f"{what(a)} and {what(b)}")
    return (f" ({both} are independent sizes: they cannot be proven equal "
            f"when the kernel is compiled; {fix})")


def _fmt(shapes: list[tuple[Dim, ...]]) -> str:
    return " and ".join("(" + ", ".join(str(d) for d in s) + ")" for s in shapes)
