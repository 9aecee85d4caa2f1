"""Annotations users write on kernel parameters: ``lt.f64`` (a scalar), ``lt.f32["n", "d"]``.

``lt.f32`` etc. are :class:`DTypeSpec` objects: usable as a scalar annotation, as a ``dtype=``
argument, and subscriptable into an :class:`ArrayAnn` with one entry per axis — a dim name
(``"n"``, shared names must agree across arguments at call time) or a literal int size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ir.types import (DType, Dim, TensorType, bool_, dtype_of, f16, f32, f64, i8, i16, i32, i64,
                        u8, u16, u32, u64)
from ..ir.types import c64, c128

__all__ = ["DTypeSpec", "ArrayAnn", "Traced", "as_dtype", "annotation_type"]


class Traced:
    """The face a traced value shows to this module: ``lt.f32(x)`` of one calls ``x.astype``.

    :class:`~lattice.frontend.ops.Value` is the one subclass; the interface lives here so that
    ops imports this module and never the other way round."""

    __slots__ = ()

    def astype(self, dtype: Any) -> "Traced":
        raise NotImplementedError


@dataclass(frozen=True)
class DTypeSpec:
    """A user-facing dtype: ``lt.f64`` is a scalar annotation, ``lt.f64["n"]`` an array one."""

    dtype: DType

    def __getitem__(self, dims: Any) -> "ArrayAnn":
        if not isinstance(dims, tuple):
            dims = (dims,)
        out = []
        for d in dims:
            if isinstance(d, (bool, np.bool_)) or not isinstance(d, (str, int, np.integer)):
                raise TypeError(f"{self.dtype.name}[...] takes dim names (str) or sizes (int), "
                                f"got {d!r}")
            if isinstance(d, (int, np.integer)) and d < 0:
                raise TypeError(f"{self.dtype.name}[...]: a size cannot be negative ({d})")
            out.append(Dim.of(d))
        return ArrayAnn(self.dtype, tuple(out))

    @property
    def type(self) -> TensorType:
        return TensorType(self.dtype, ())

    def __call__(self, x: Any) -> Any:
        """``lt.f32(x)``: ``x`` converted, as ``np.float32(x)`` does.  In a kernel a traced
        value becomes ``lt.astype(x, lt.f32)`` and a number a constant of this dtype (so
        ``s = lt.f32(0.0)`` starts an f32 sum)."""
        if isinstance(x, Traced):
            return x.astype(self)
        return self.dtype.np.type(x)

    def __repr__(self) -> str:
        return f"lt.{self.dtype.name if self.dtype is not bool_ else 'bool_'}"


@dataclass(frozen=True)
class ArrayAnn:
    """An array annotation: dtype and symbolic shape."""

    dtype: DType
    dims: tuple[Dim, ...]

    @property
    def type(self) -> TensorType:
        return TensorType(self.dtype, self.dims)

    def __repr__(self) -> str:
        return f"lt.{self.dtype.name}[{', '.join(repr(str(d)) for d in self.dims)}]"


def as_dtype(x: Any) -> DType:
    """``lt.f32``, a lattice DType, a NumPy dtype or Python's float/int/bool -> DType."""
    if isinstance(x, DTypeSpec):
        return x.dtype
    if isinstance(x, DType):
        return x
    if x is float:
        return f64
    if x is int:
        return i64
    if x is bool:
        return bool_
    if x is complex:
        return c128
    try:
        return dtype_of(np.dtype(x))
    except (TypeError, KeyError):
        raise TypeError(f"{x!r} is not a lattice dtype (use lt.f16, lt.f32, lt.f64, lt.i8, "
                        "lt.i16, lt.i32, lt.i64, lt.u8, lt.u16, lt.u32, lt.u64, lt.bool_, lt.c64, "
                        "lt.c128 or the "
                        "NumPy dtype of one of them)") from None


def annotation_type(ann: Any) -> TensorType:
    """The IR type an annotation stands for; TypeError for anything else."""
    if isinstance(ann, (DTypeSpec, ArrayAnn)):
        return ann.type
    if ann in (float, int, bool, complex):
        return TensorType(as_dtype(ann), ())
    raise TypeError(f"unsupported annotation {ann!r}: use lt.f64, lt.f32['n'], ...")


F32, F64, I32, I64, BOOL = (DTypeSpec(d) for d in (f32, f64, i32, i64, bool_))
F16, I8, I16, U8, U16, U32, U64 = (DTypeSpec(d) for d in (f16, i8, i16, u8, u16, u32, u64))
C64, C128 = DTypeSpec(c64), DTypeSpec(c128)
