"""What the generator knows of a program: the dims and sizes it draws from, the static type of
each value (:class:`Var`: dtype, shape, ownership), NumPy 2's promotion of those types, and the
drawn :class:`Program` (source text plus what the runner needs to call it)."""
from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

DIMS = ("n", "m", "k")
SIZES = (0, 1, 1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64)
#: the "tiles" family: around the register tiles of codegen/gemm.py (8 rows, 16 f64 / 32 f32
#: columns with AVX-512) and their remainders
TILE_SIZES = (1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40)
#: the "parallel" family: n*m above the pool's threshold of 131,072 operations (an elementwise
#: map over n x m splits)
PAR_SIZES = (389, 420, 457)
PAR_SMALL = (1, 2, 5, 8)
#: program families and their shares (the rest is "general")
FAMILIES = (("parallel", 0.07), ("tiles", 0.15), ("blocked", 0.13))
#: the share of seeds whose programs use the newer language (fuzz/constructs.py)
NEW_LANGUAGE = 0.7


@dataclass
class Var:
    name: str
    dtype: str            # f64 f32 f16 i64 i32 i16 i8 u64 u32 u16 u8 bool
    shape: tuple          # entries: "n" "m" "k" or 1
    owned: bool = False   # a local array the kernel may store into
    pos: bool = False     # known > 0 (usable as a log/sqrt argument or a denominator)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in ("f64", "f32", "f16")


_NP_OF = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "i32": np.int32,
          "bool": np.bool_, "f16": np.float16, "i16": np.int16, "i8": np.int8,
          "u64": np.uint64, "u32": np.uint32, "u16": np.uint16, "u8": np.uint8}
_OF_NP = {np.dtype(v): k for k, v in _NP_OF.items()}


def promote(a: str, b: str) -> str:
    return _OF_NP[np.result_type(np.dtype(_NP_OF[a]), np.dtype(_NP_OF[b]))]


def _strong(dt: str) -> str:
    """The dtype of lt.maximum/minimum of two constants: they fold as NumPy's ufuncs do, to a
    strong NumPy scalar (np.maximum(2, 3) is an np.int64); otherwise ``dt`` unchanged."""
    return {"weak_f": "f64", "weak_i": "i64"}.get(dt, dt)


def promote_weak(a: str, lit: Any) -> str:
    return _OF_NP[np.result_type(np.dtype(_NP_OF[a]), lit)]


def bshape(a: tuple, b: tuple) -> Optional[tuple]:
    """Static broadcast (only a literal 1 broadcasts), or None."""
    n = builtins.max(len(a), len(b))
    a2 = (1,) * (n - len(a)) + tuple(a)
    b2 = (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a2, b2):
        if x == y:
            out.append(x)
        elif x == 1:
            out.append(y)
        elif y == 1:
            out.append(x)
        else:
            return None
    return tuple(out)


@dataclass
class Program:
    seed: int
    source: str
    name: str
    param_names: list
    params: list            # Var per parameter
    fastmath: bool
    min_sizes: dict          # dim -> minimum size the program needs
    n_outs: int
    scalar_float_out: bool   # one f64 scalar result: gradient-checkable
    int_ranges: dict = field(default_factory=dict)   # int scalar param -> (lo, hi) in dims
    family: str = "general"
    parallel: bool = False
    loss_dtype: str = "f64"  # of the scalar loss, when scalar_float_out


