"""The calling convention between Python and a compiled lattice kernel.

Signature
---------
``i32 lt_<name>(i64* slots)`` — one flat array of 64-bit slots, filled by the caller:

1. for each kernel parameter, in order:

   * tensor: the data pointer (address of element ``[0, ..., 0]``), then ``ndim`` slots with the
     shape, then -- only for layout ``"A"`` -- ``ndim`` slots with the *element* strides (byte
     stride / itemsize; may be negative or zero).  Layout ``"C"`` means C-contiguous: the kernel
     derives the strides from the shape, so the innermost stride is the constant 1.
   * scalar: the value.  Floats (``f16 f32 f64``) are stored as the bits of the **f64** value
     (a narrower argument is widened to f64 by the caller, which is exact, and narrowed by the
     kernel); signed ints are sign-extended to 64 bits, unsigned ones zero-extended (a u64 is
     its own bits); bool is 0 or 1.  A complex scalar takes two slots (``COMPLEX_NAMES``).

2. for each kernel result, in order:

   * tensor (``OutSpec.alloc``, every tensor result but a donated one): ``1 + ndim`` slots
     the kernel overwrites on success with the data pointer of a C-contiguous buffer it
     allocated with ``malloc`` (the buffer its last equation wrote: no copy) and its shape; the
     kernel first checks the sizes the result's type declares wherever the arguments give
     them (else a ``ValueError`` code).  The caller owns that
     buffer from then on and releases it with ``free`` (the NumPy array it hands out is a view
     whose base frees it: no copy).  On an error return the slots are not meaningful.
   * donated tensor (``Abi.donated``: a written argument's new contents): the argument's
     data pointer, then ``ndim`` slots with its shape; the kernel leaves the result there.
   * scalar: one slot the kernel overwrites with the result, encoded like a scalar argument
     (f32 results are widened to f64 bits).

Return value: 0 on success, else ``k >= 1``, an index into the error table built at codegen time:
``errors[k - 1] == (exception class name, message)``; the message names the user's file:line
when the IR equation carried a :class:`~lattice.ir.core.SourceLoc`.  The caller raises it.
On an error return the kernel may have leaked heap temporaries (acceptable: errors are rare).

Named dimensions are bound from parameter shapes: the first parameter axis whose dim is exactly a
name binds that name (``dim_sources``, axis >= 0); an integer scalar parameter used as a size
binds the dim of its own name (axis ``-1``: the value itself, which the caller has checked to be
``>= 0``).  The kernel also checks literal dims and repeated names
against the slots, so a caller that skipped validation gets a ``ValueError`` code rather than an
out-of-bounds access.

Everything here is plain data (JSON-serializable via :meth:`Abi.to_json`) so the disk cache can
rebuild a callable without lowering again.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from ..ir.types import Dim

__all__ = ["ParamSpec", "OutSpec", "Abi", "dim_to_json", "dim_from_json", "ERROR_CLASSES",
           "COMPLEX_NAMES"]

#: complex scalars take two slots: the real part, then the imaginary part, each encoded as an
#: f64 scalar (the parts of a c64 are widened to f64 by the caller and narrowed by the kernel)
COMPLEX_NAMES = ("c64", "c128")

#: Exception classes a kernel may report, by the name stored in the error table.
ERROR_CLASSES: dict[str, type[Exception]] = {
    "IndexError": IndexError,
    "ValueError": ValueError,
    "MemoryError": MemoryError,
}


def dim_to_json(d: Dim) -> list[Any]:
    return [[[n, c] for n, c in d.terms], d.const]


def dim_from_json(j: Any) -> Dim:
    terms, const = j
    return Dim(tuple((str(n), int(c)) for n, c in terms), int(const))


@dataclass(frozen=True)
class ParamSpec:
    """One kernel parameter: ``ndim == 0`` is a scalar; ``layout`` is "C" or "A" (tensors)."""

    dtype: str  # lattice dtype name: bool i8 i16 i32 i64 u8 u16 u32 u64 f16 f32 f64
    ndim: int
    layout: str = "C"

    @property
    def n_slots(self) -> int:
        if self.ndim == 0:
            return 2 if self.dtype in COMPLEX_NAMES else 1
        return 1 + self.ndim * (2 if self.layout == "A" else 1)


@dataclass(frozen=True)
class OutSpec:
    """One kernel result; ``shape`` are dims over the named dims, and ``alloc`` says the kernel
    allocates it (a dim is fresh or uses a name no argument binds: sized at run time)."""

    dtype: str
    shape: tuple[Dim, ...]
    alloc: bool = False

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def n_slots(self) -> int:
        return 1 + self.ndim if self.shape else 2 if self.dtype in COMPLEX_NAMES else 1


@dataclass(frozen=True)
class Abi:
    """Everything needed to call a kernel: slot layout, dim binding, results, error table."""

    symbol: str
    params: tuple[ParamSpec, ...]
    outs: tuple[OutSpec, ...]
    dim_sources: tuple[tuple[str, int, int], ...]  # (name, param index, axis or -1: scalar)
    errors: tuple[tuple[str, str], ...]
    # (result, param): the result's slot is the param's own memory (a written argument whose
    # buffer the kernel updates in place); the caller passes the argument there
    donated: tuple[tuple[int, int], ...] = ()

    @property
    def n_slots(self) -> int:
        return sum(p.n_slots for p in self.params) + sum(o.n_slots for o in self.outs)

    def param_offsets(self) -> list[int]:
        offs, k = [], 0
        for p in self.params:
            offs.append(k)
            k += p.n_slots
        return offs

    def out_offsets(self) -> list[int]:
        k = sum(p.n_slots for p in self.params)
        offs = []
        for o in self.outs:
            offs.append(k)
            k += o.n_slots
        return offs

    def error(self, code: int) -> Exception:
        """The exception for a nonzero return code."""
        if not 1 <= code <= len(self.errors):
            return RuntimeError(f"kernel {self.symbol} returned unknown status {code}")
        cls, msg = self.errors[code - 1]
        return ERROR_CLASSES.get(cls, RuntimeError)(msg)

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "params": [[p.dtype, p.ndim, p.layout] for p in self.params],
            "outs": [[o.dtype, [dim_to_json(d) for d in o.shape], o.alloc] for o in self.outs],
            "dim_sources": [list(s) for s in self.dim_sources],
            "errors": [list(e) for e in self.errors],
            "donated": [list(d) for d in self.donated],
        }

    @staticmethod
    def from_json(j: Mapping[str, Any]) -> "Abi":
        return Abi(
            symbol=str(j["symbol"]),
            params=tuple(ParamSpec(str(d), int(n), str(l)) for d, n, l in j["params"]),
            outs=tuple(OutSpec(str(o[0]), tuple(dim_from_json(x) for x in o[1]),
                               bool(o[2]) if len(o) > 2 else False) for o in j["outs"]),
            dim_sources=tuple((str(n), int(p), int(a)) for n, p, a in j["dim_sources"]),
            errors=tuple((str(c), str(m)) for c, m in j["errors"]),
            donated=tuple((int(o), int(p)) for o, p in j.get("donated", ())),
        )


def find_dim_sources(param_shapes: list[Optional[tuple[Dim, ...]]],
                     size_params: Optional[Mapping[str, int]] = None,
                     ) -> tuple[tuple[str, int, int], ...]:
    """For each named dim, the first (param, axis) whose dim is exactly that name; a name no
    shape binds but ``size_params`` maps to an integer scalar parameter is bound by its value
    (axis -1)."""
    seen: dict[str, tuple[int, int]] = {}
    for p, shape in enumerate(param_shapes):
        for ax, d in enumerate(shape or ()):
            if d.const == 0 and len(d.terms) == 1 and d.terms[0][1] == 1:
                seen.setdefault(d.terms[0][0], (p, ax))
    for name, p in (size_params or {}).items():
        seen.setdefault(name, (p, -1))
    return tuple((n, p, a) for n, (p, a) in seen.items())
