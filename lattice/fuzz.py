"""Random-program differential fuzzer for lattice.

``python -m lattice.fuzz --seconds N --seed S [--workers W]`` generates well-typed kernels from
the whole language (elementwise chains with broadcasting and promotion, reductions with axes,
matmul, indexing and slices, loops with carried values, conds, stores into local arrays),
writes each as *source text* to a module file and imports it, so the whole frontend runs.  Each
program is run

* compiled with the optimisation passes (with the fastmath setting the program drew),
* compiled without any pass (``LATTICE_PASSES=none``),
* through the NumPy reference interpreter (``Kernel.interpret``),

and every result is compared with an independent **oracle**: the same source executed as plain
Python over :class:`Tracked` NumPy values (:data:`oracle`), which carry, next to each value, a
first-order bound on its absolute rounding error.  Where the program has a float scalar result
and :func:`lattice.grad` exists, its gradient is checked against central finite differences.

Comparison rules (documented in docs/testing.md):

* integers and bools exactly, dtype and shape exactly;
* floats: ``|got - want| <= 2 * err + tiny`` elementwise, where ``err`` is the oracle's error
  bound: each operation adds ``K * eps * |value|`` (K = 1 for correctly rounded +, -, *, /,
  sqrt; 4 for libm/NumPy transcendentals; 2 for / under fastmath, which may use a reciprocal)
  plus the propagated input errors times the derivative; a sum of n terms adds
  ``(n - 1) * eps * sum|x|`` (valid for any summation order, so for the interpreter's pairwise
  sums, the compiled sequential loop and fastmath's reassociated vector loop alike);
* a discontinuous operation (comparison, floor, float->int conversion, argmax/argmin) whose
  operands are within their error bounds of a decision boundary makes the program
  *ill-conditioned* for that input: it is skipped and counted, never reported as a mismatch.
  So are programs whose oracle produced a non-finite value.

A failure prints the program seed and source; ``python -m lattice.fuzz --replay SEED`` runs that
one program again and prints everything.
"""
from __future__ import annotations

import argparse
import builtins
import contextlib
import importlib.util
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .fuzz_oracle import IllConditioned, run_oracle

__all__ = ["generate", "Program", "run_program", "run_one", "main"]


# =============================================================================== the generator
DIMS = ("n", "m", "k")
SIZES = (0, 1, 1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64)
#: the "tiles" family: around the register tiles of codegen/gemm.py (8 rows, 16 f64 / 32 f32
#: columns with AVX-512) and their remainders
TILE_SIZES = (1, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 40)
#: the "parallel" family: n*m well above the pool's 65,536-element threshold
PAR_SIZES = (259, 300, 317)
PAR_SMALL = (1, 2, 5, 8)
#: program families and their shares (the rest is "general")
FAMILIES = (("parallel", 0.07), ("tiles", 0.15), ("blocked", 0.13))


@dataclass
class Var:
    name: str
    dtype: str            # f64 f32 i64 i32 bool
    shape: tuple          # entries: "n" "m" "k" or 1
    owned: bool = False   # a local array the kernel may store into
    pos: bool = False     # known > 0 (usable as a log/sqrt argument or a denominator)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in ("f64", "f32")


_NP_OF = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "i32": np.int32,
          "bool": np.bool_}
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


class Gen:
    """Draws one program.  Every expression is typed statically (dtype, shape) so what it
    writes is well typed; values are kept in each op's domain by construction."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        #: the choices added since (lt.prange loops, fills in ifs and inner loops, prange
        #: maxima, erf/erfc for some tanh, joins): a stream of their own, so that the rest
        #: of every seed's program is the one it was before them
        self.rp = random.Random(f"prange {seed}")
        self.seed = seed
        fr = random.Random(f"family {seed}").random()
        self.family = "general"
        for fam, share in FAMILIES:
            if fr < share:
                self.family = fam
                break
            fr -= share
        self.helpers: list[str] = []   # source of kernels the program calls
        self.lines: list[str] = []
        self.ind = 1
        self.count = 0
        self.scopes: list[list[Var]] = [[]]
        self.loopvars: list[tuple[str, Any]] = []   # (name, dim it ranges over or None)
        self.min_sizes: dict[str, int] = {d: 0 for d in DIMS}
        self.depth = 0

    # ---- scope
    def all_vars(self) -> list[Var]:
        return [v for s in self.scopes for v in s]

    def find(self, pred: Callable[[Var], bool]) -> list[Var]:
        return [v for v in self.all_vars() if pred(v)]

    def fresh(self, prefix: str = "v") -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.ind + line)

    def define(self, v: Var) -> Var:
        # rebinding a name visible in an outer scope would make it loop-carried: keep it simple
        self.scopes[-1].append(v)
        return v

    def need(self, dim: Any, size: int) -> None:
        if isinstance(dim, str):
            self.min_sizes[dim] = builtins.max(self.min_sizes[dim], size)

    def pick(self, items: Sequence[Any]) -> Any:
        return self.r.choice(list(items))

    # ---- expressions: return (source, dtype, shape, pos)
    def atom(self, want_float: bool = True, shape: Optional[tuple] = None
             ) -> tuple[str, str, tuple, bool]:
        r = self.r
        cands = self.find(lambda v: (v.is_float if want_float else v.dtype in ("i64", "i32"))
                          and (shape is None or bshape(v.shape, shape) == tuple(shape)
                               or (len(v.shape) <= len(shape)
                                   and bshape(v.shape, shape) is not None
                                   and bshape(v.shape, shape) == tuple(shape))))
        if cands and r.random() < 0.85:
            v = self.pick(cands)
            return v.name, v.dtype, v.shape, v.pos
        if want_float:
            lit = self.pick([0.5, 1.5, 2.0, 0.25, 3.0, 1.0])
            return repr(lit), "weak_f", (), True
        lit = self.pick([1, 2, 3, 5])
        return repr(lit), "weak_i", (), True

    def fexpr(self, depth: int, shape: Optional[tuple] = None) -> tuple[str, str, tuple, bool]:
        """A float expression (broadcastable to ``shape`` when given)."""
        r = self.r
        if depth <= 0 or r.random() < 0.3:
            return self.atom(True, shape)
        kind = r.random()
        if kind < 0.35:  # binary arithmetic
            a = self.fexpr(depth - 1, shape)
            b = self.fexpr(depth - 1, shape if shape is not None else (a[2] if r.random() < 0.7 else None))
            sh = bshape(a[2], b[2])
            if sh is None:
                return a
            op = self.pick(["+", "-", "*", "*", "/", "max", "min", "lae"])
            dt = self._promote(a[1], b[1])
            if op == "/":
                if b[3]:
                    return f"({a[0]} / {b[0]})", dt, sh, a[3]
                return f"({a[0]} / (lt.abs({b[0]}) + 0.5))", dt, sh, False
            if op in ("max", "min"):
                fn = "lt.maximum" if op == "max" else "lt.minimum"
                if a[2] == b[2] == sh and sh and self.rp.random() < 0.3:
                    # the same values through a join: the extreme of the stacked pair
                    ax = self.rp.choice([0, -1])
                    red = "lt.max" if op == "max" else "lt.min"
                    return f"{red}(lt.stack([{a[0]}, {b[0]}], axis={ax}), axis={ax})", \
                        _strong(dt), sh, a[3] and b[3]
                return f"{fn}({a[0]}, {b[0]})", _strong(dt), sh, a[3] and b[3]
            if op == "lae":  # of two Python numbers: a traced f64, not a folded constant
                return f"lt.logaddexp({a[0]}, {b[0]})", "f64" if dt.startswith("weak") else dt, \
                    sh, False
            pos = a[3] and b[3] and op in ("+", "*")
            if op == "+" and a[2] == b[2] == sh and sh and self.rp.random() < 0.3:
                # a + b as the sum of the stacked pair, or of the two halves of a concatenation
                # (split at a literal size: traced slice bounds give sizes that do not match)
                if not isinstance(sh[-1], int) or self.rp.random() < 0.5:
                    ax = self.rp.choice([0, -1])
                    return f"lt.sum(lt.stack([{a[0]}, {b[0]}], axis={ax}), axis={ax})", \
                        _strong(dt), sh, pos
                c, n = f"lt.concatenate([{a[0]}, {b[0]}], axis=-1)", sh[-1]
                return f"({c}[..., :{n}] + {c}[..., {n}:])", _strong(dt), sh, pos
            return f"({a[0]} {op} {b[0]})", dt, sh, pos
        if kind < 0.7:  # unary function
            a = self.fexpr(depth - 1, shape)
            fn = self.pick(["exp", "log", "log1p", "expm1", "sqrt", "tanh", "sin", "cos",
                            "sigmoid", "softplus", "abs", "neg", "sq", "cube", "pow"])
            if fn == "tanh" and self.rp.random() < 0.4:
                fn = self.rp.choice(["erf", "erfc"])
            src = a[0]
            dt = a[1]
            if dt.startswith("weak") and fn not in ("abs", "neg", "sq", "cube", "pow"):
                dt = "f64"  # lt.exp(2.0) is a traced f64 (as np.exp(2.0) is a strong float64)
            if fn in ("exp", "expm1"):
                return f"lt.{fn}(lt.clip({src}, -6.0, 6.0))", dt, a[2], fn == "exp"
            if fn in ("log", "sqrt"):
                arg = src if a[3] else f"(lt.abs({src}) + 0.25)"
                return f"lt.{fn}({arg})", dt, a[2], fn == "sqrt"
            if fn == "log1p":
                return f"lt.log1p(lt.abs({src}))", dt, a[2], False
            if fn == "abs":
                return f"lt.abs({src})", dt, a[2], False
            if fn == "neg":
                return f"(-{src})", dt, a[2], False
            if fn == "sq":
                return f"({src} ** 2)", dt, a[2], False
            if fn == "cube":
                return f"({src} ** 3)", dt, a[2], False
            if fn == "pow":
                arg = src if a[3] else f"(lt.abs({src}) + 0.5)"
                return f"({arg} ** {self.pick(['1.5', '0.5', '2.5'])})", dt, a[2], True
            return f"lt.{fn}({src})", dt, a[2], fn in ("sigmoid", "softplus")
        if kind < 0.8:  # select on a comparison
            a = self.fexpr(depth - 1, shape)
            b = self.fexpr(depth - 1, a[2])
            c = self.fexpr(depth - 1, a[2])
            sh = bshape(a[2], b[2])
            sh = sh and bshape(sh, c[2])
            if sh is None:
                return a
            cmp = self.pick(["<", ">", "<=", ">="])
            dt = self._promote(b[1], c[1])
            return f"lt.where({a[0]} {cmp} 0.3, {b[0]}, {c[0]})", dt, sh, b[3] and c[3]
        if kind < 0.88:  # integer -> float
            src, dt, sh, _ = self.iexpr(depth - 1, shape)
            target = self.pick(["f64", "f32"])
            if dt.startswith("weak") or not src.isidentifier():
                return f"lt.astype({src}, lt.{target})", target, sh, False
            return f"{src}.astype(lt.{target})", target, sh, False
        if kind < 0.94:  # literal mixing (weak scalars keep the array's dtype)
            a = self.fexpr(depth - 1, shape)
            lit = self.pick(["2.5", "0.5", "3", "1"])
            op = self.pick(["*", "+", "-"])
            if r.random() < 0.5:
                return f"({a[0]} {op} {lit})", self._promote(a[1], "weak_f" if "." in lit else "weak_i"), a[2], a[3] and op != "-"
            return f"({lit} {op} {a[0]})", self._promote(a[1], "weak_f" if "." in lit else "weak_i"), a[2], a[3] and op != "-"
        # a reduction of something bigger, used as a scalar inside an expression
        arrs = self.find(lambda v: v.is_float and v.ndim >= 1)
        if not arrs:
            return self.atom(True, shape)
        v = self.pick(arrs)
        fn = self.pick(["sum", "mean", "max", "min"])
        if fn in ("max", "min"):
            for d in v.shape:
                self.need(d, 1)
        if fn == "mean":
            for d in v.shape:
                self.need(d, 1)
        return f"lt.{fn}({v.name})", v.dtype, (), False

    def _promote(self, a: str, b: str) -> str:
        if a.startswith("weak") and b.startswith("weak"):
            return "weak_f" if "weak_f" in (a, b) else "weak_i"  # folded at compile time
        if a.startswith("weak"):
            a, b = b, a
        if b == "weak_f":
            return promote_weak(a, 1.0)
        if b == "weak_i":
            return promote_weak(a, 1)
        return promote(a, b)

    def iatom(self, shape: Optional[tuple]) -> tuple[str, str, tuple, bool]:
        """An integer leaf: an int variable, a loop counter, a size, or a float truncated."""
        r = self.r
        roll = r.random()
        if roll < 0.15 and self.loopvars:
            return self.pick(self.loopvars)[0], "i64", (), False
        if roll < 0.3:
            # a named dim (a literal dim such as 1 is a Python int, folded at compile time)
            arrs = self.find(lambda v: any(d != 1 for d in v.shape))
            if arrs:
                v = self.pick(arrs)
                ax = self.pick([k for k, d in enumerate(v.shape) if d != 1])
                return f"{v.name}.shape[{ax}]", "i64", (), False
        if roll < 0.45:
            src, dt, sh, _ = self.fexpr(1, shape)
            if not dt.startswith("weak"):
                target = self.pick(["i64", "i32"])
                return f"lt.astype({src} * 3.0, lt.{target})", target, sh, False
        return self.atom(False, shape)

    def iexpr(self, depth: int, shape: Optional[tuple] = None) -> tuple[str, str, tuple, bool]:
        r = self.r
        if depth <= 0 or r.random() < 0.25:
            return self.iatom(shape)
        a = self.iexpr(depth - 1, shape)
        b = self.iexpr(depth - 1, shape if shape is not None else a[2])
        if shape is not None and (bshape(b[2], shape) != tuple(shape)):
            b = (self.pick(["2", "3", "-3"]), "weak_i", (), True)
        sh = bshape(a[2], b[2])
        if sh is None:
            return a
        op = self.pick(["+", "-", "*", "//", "%", "max", "min"])
        dt = self._promote(a[1], b[1])
        if op in ("//", "%") and not b[0].isidentifier():
            b = (self.pick(["2", "3", "5"]), "weak_i", (), True)
            dt = self._promote(a[1], b[1])
        if op in ("max", "min"):
            return (f"lt.{'maximum' if op == 'max' else 'minimum'}({a[0]}, {b[0]})", _strong(dt),
                    sh, False)
        return f"({a[0]} {op} {b[0]})", dt, sh, False

    def bexpr(self) -> str:
        """A scalar bool: a comparison of scalars, or of a loop counter."""
        r = self.r
        opts = []
        scal = self.find(lambda v: v.ndim == 0 and v.dtype in ("f64", "f32", "i64", "i32"))
        if scal:
            opts.append("scal")
        arrs = self.find(lambda v: v.ndim >= 1 and v.is_float)
        if arrs:
            opts.append("elem")
        if self.loopvars:
            opts.append("loop")
        if not opts:
            return "(lt.sum(lt.zeros(1)) < 0.5)"  # a traced True
        kind = self.pick(opts)
        cmp = self.pick(["<", ">", "<=", ">=", "==", "!="])
        if kind == "scal":
            a = self.pick(scal)
            b = self.pick(scal)
            lit = "0.5" if a.is_float else "2"
            rhs = b.name if r.random() < 0.5 else lit
            return f"({a.name} {cmp if r.random() < 0.7 else '>'} {rhs})"
        if kind == "elem":
            v = self.pick(arrs)
            idx = ", ".join("0" for _ in v.shape)
            for d in v.shape:
                self.need(d, 1)
            return f"({v.name}[{idx}] {self.pick(['<', '>'])} 0.1)"
        name, _ = self.pick(self.loopvars)
        return f"({name} % {self.pick([2, 3])} == 0)"

    # ---- statements
    def stmt(self, budget: int) -> None:
        r = self.r
        kinds = ["assign"] * 6 + ["iassign", "iassign", "reduce", "reduce", "matmul", "index",
                                  "create", "newaxis"]
        if self.depth == 0 and len(self.helpers) < 2:
            kinds += ["call"]
        if self.family == "parallel":
            # big arrays: no Python-level loop nests in the oracle, a few big operations
            kinds = ["assign"] * 4 + ["reduce", "reduce", "matmul", "matmul", "gram", "index",
                                      "newaxis", "iassign"]
            if self.depth == 0:
                kinds += ["loop_rows", "blocked", "blocked"]
        else:
            if self.depth < 2:
                kinds += ["loop_scalar", "loop_map", "loop_rows", "cond"]
            if self.depth == 0:
                kinds += ["blocked"] * (6 if self.family == "blocked" else 1)
                kinds += ["window"] * (3 if self.family == "blocked" else 1)
            kinds += ["gram"] * (4 if self.family == "tiles" else 1)
            if self.family == "tiles":
                kinds += ["matmul"] * 4
        if self.find(lambda v: v.owned and v.ndim >= 1):
            kinds += ["store"] * 2
        kind = self.pick(kinds)
        getattr(self, "s_" + kind)(budget)

    def s_assign(self, budget: int) -> None:
        src, dt, sh, pos = self.fexpr(self.r.randint(1, 3))
        if dt.startswith("weak"):
            if not sh:
                return  # a Python constant: nothing to trace
            dt = "f64"  # lt.where(c, 1.5, 2.0) on an array condition: an f64 array
        self.emit(f"{(name := self.fresh())} = {src}")
        # a bare name is an alias (of an argument, perhaps): never store through either name
        self._alias(src)
        self.define(Var(name, dt, sh, owned=bool(sh) and not src.isidentifier(), pos=pos))

    def s_iassign(self, budget: int) -> None:
        src, dt, sh, _ = self.iexpr(self.r.randint(1, 2))
        if dt.startswith("weak"):
            return
        name = self.fresh("j")
        self.emit(f"{name} = {src}")
        self._alias(src)
        self.define(Var(name, dt, sh, owned=bool(sh) and not src.isidentifier()))

    def _alias(self, src: str) -> None:
        for v in self.all_vars():
            if v.name == src:
                v.owned = False

    def s_reduce(self, budget: int) -> None:
        r = self.r
        arrs = self.find(lambda v: v.ndim >= 1 and v.dtype != "bool")
        if not arrs:
            return self.s_assign(budget)
        v = self.pick(arrs)
        fn = self.pick(["sum", "sum", "mean", "max", "min", "argmax", "argmin"])
        if fn in ("mean",) and not v.is_float:
            fn = "sum"
        nd = v.ndim
        if fn.startswith("arg"):
            axis = self.pick([None] + list(range(nd)))
            axes = tuple(range(nd)) if axis is None else (axis,)
        else:
            choice = r.random()
            if choice < 0.3:
                axis, axes = None, tuple(range(nd))
            elif choice < 0.8 or nd == 1:
                a = r.randrange(nd)
                axis, axes = (a - nd if r.random() < 0.3 else a), (a,)
            else:
                axis, axes = (0, nd - 1), (0, nd - 1)
        if fn in ("max", "min", "argmax", "argmin", "mean"):
            for a in axes:
                self.need(v.shape[a], 1)
        out_shape = tuple(d for k, d in enumerate(v.shape) if k not in axes)
        if fn.startswith("arg"):
            dt = "i64"
        elif fn == "mean":
            dt = v.dtype
        elif fn == "sum" and v.dtype in ("i32", "bool"):
            dt = "i64"
        else:
            dt = v.dtype
        style = r.random()
        ax = "" if axis is None else f", axis={axis}"
        if style < 0.5:
            src = f"lt.{fn}({v.name}{ax})"
        else:
            src = f"{v.name}.{fn}({'' if axis is None else 'axis=' + repr(axis)})"
        name = self.fresh("r")
        self.emit(f"{name} = {src}")
        self.define(Var(name, dt, out_shape, owned=bool(out_shape),
                        pos=False))

    def s_matmul(self, budget: int) -> None:
        mats = self.find(lambda v: v.is_float and v.ndim in (1, 2))
        if len(mats) < 1:
            return self.s_assign(budget)
        a = self.pick(mats)
        ka = a.shape[-1]
        partners = [b for b in mats if b.shape[0] == ka and ka != 1]
        if not partners:
            # a transposed use: a.T @ a
            if a.ndim == 2 and a.shape[0] != 1:
                src, sh = f"{a.name}.T @ {a.name}", (a.shape[1], a.shape[1])
                dt = a.dtype
            else:
                return self.s_assign(budget)
        else:
            b = self.pick(partners)
            form = self.pick(["@", "dot", "method"])
            src = {"@": f"{a.name} @ {b.name}", "dot": f"lt.dot({a.name}, {b.name})",
                   "method": f"{a.name}.dot({b.name})"}[form]
            sh = a.shape[:-1] + b.shape[1:]
            dt = promote(a.dtype, b.dtype)
        name = self.fresh("p")
        self.emit(f"{name} = {src}")
        self.define(Var(name, dt, sh, owned=bool(sh)))

    def s_index(self, budget: int) -> None:
        r = self.r
        arrs = self.find(lambda v: v.ndim >= 1 and v.dtype != "bool")
        if not arrs:
            return self.s_assign(budget)
        v = self.pick(arrs)
        ax = r.randrange(v.ndim)
        d = v.shape[ax]
        kind = self.pick(["int", "neg", "slice1", "slice_1", "rev", "step2"])
        if d == 1 and kind in ("slice1", "slice_1"):
            kind = "int"
        parts = [":"] * v.ndim
        sh = list(v.shape)
        if kind == "int":
            self.need(d, 2)
            parts[ax] = self.pick(["0", "1"]) if d != 1 else "0"
            del sh[ax]
        elif kind == "neg":
            self.need(d, 1)
            parts[ax] = "-1"
            del sh[ax]
        elif kind == "slice1":
            self.need(d, 1)
            parts[ax] = "1:"
            sh[ax] = None
        elif kind == "slice_1":
            self.need(d, 1)
            parts[ax] = ":-1"
            sh[ax] = None
        elif kind == "rev":
            parts[ax] = "::-1"
        else:
            parts[ax] = "::2"
            sh[ax] = None
        if r.random() < 0.3 and len(parts) > 1 and parts[-1] == ":":
            key = ", ".join(parts[:-1]) if parts[:-1] else ":"
            if all(p == ":" for p in parts[:-1]):
                key = "..."
        else:
            key = ", ".join(parts)
        src = f"{v.name}[{key}]"
        if None in sh:
            # a slice: its size is derived (n-1) or fresh (::2): reduce it right away
            fn = self.pick(["sum", "max"]) if v.is_float else "sum"
            if fn == "max":  # no empty axis anywhere (an error in dead code may not be raised)
                for dd in v.shape:
                    self.need(dd, 1)
                self.need(d, 3)
            src = f"lt.{fn}({src})"
            sh = []
            dt = v.dtype if not (fn == "sum" and v.dtype == "i32") else "i64"
        else:
            dt = v.dtype
        name = self.fresh("x")
        self.emit(f"{name} = {src}")
        self.define(Var(name, dt, tuple(sh), owned=False))

    def s_create(self, budget: int) -> None:
        r = self.r
        arrs = self.find(lambda v: v.ndim >= 1)
        kind = self.pick(["zeros", "ones", "full", "copy", "zeros_like", "arange"])
        name = self.fresh("a")
        if kind == "arange" or not arrs:
            dims = self.find(lambda v: v.ndim >= 1 and v.shape[0] != 1)
            if not dims:
                return self.s_assign(budget)
            v = self.pick(dims)
            self.emit(f"{name} = lt.arange({v.name}.shape[0])")
            self.define(Var(name, "i64", (v.shape[0],), owned=True))
            return
        v = self.pick(arrs)
        if kind == "copy":
            self.emit(f"{name} = lt.copy({v.name})")
            self.define(Var(name, v.dtype, v.shape, owned=True, pos=v.pos))
        elif kind == "zeros_like":
            self.emit(f"{name} = lt.zeros_like({v.name})")
            self.define(Var(name, v.dtype, v.shape, owned=True))
        else:
            shape = ", ".join(f"{v.name}.shape[{k}]" if d != 1 else "1"
                              for k, d in enumerate(v.shape))
            if kind == "full":
                self.emit(f"{name} = lt.full(({shape},), 1.5)")
            else:
                self.emit(f"{name} = lt.{kind}(({shape},))")
            self.define(Var(name, "f64", v.shape, owned=True, pos=kind != "zeros"))

    def s_store(self, budget: int) -> None:
        r = self.r
        tgts = self.find(lambda v: v.owned and v.ndim >= 1)
        t = self.pick(tgts)
        # an index into axis 0: a loop variable over that dim, or a constant
        d0 = t.shape[0]
        lv = [n for n, d in self.loopvars if d == d0 and d0 != 1]
        if lv and r.random() < 0.8:
            idx = self.pick(lv)
        else:
            self.need(d0, 1)
            idx = self.pick(["0", "-1"])
        region = t.shape[1:]
        if t.is_float:
            src, dt, sh, _ = self.fexpr(self.r.randint(0, 2), region)
            if bshape(sh, region) != tuple(region) or len(sh) > len(region):
                src, sh = "1.0", ()
        else:
            src, dt, sh, _ = self.iexpr(1, region)
            if bshape(sh, region) != tuple(region) or len(sh) > len(region):
                src, sh = "1", ()
        key = idx if not region or r.random() < 0.5 else idx + ", " + ", ".join(":" for _ in region)
        op = "=" if r.random() < 0.7 else "+="
        if op == "+=" and not t.is_float and dt in ("f64", "f32"):
            op = "="
        self.emit(f"{t.name}[{key}] {op} {src}")
        t.pos = False

    def _loop_header(self) -> tuple[str, Any, str]:
        """(range args, the dim the counter ranges over or None, counter name)."""
        r = self.r
        arrs = self.find(lambda v: v.ndim >= 1 and v.shape[0] != 1)
        i = self.fresh("i")
        if arrs and r.random() < 0.85:
            v = self.pick(arrs)
            d = v.shape[0]
            form = self.pick(["plain", "plain", "rev", "start"])
            if form == "plain":
                return f"{v.name}.shape[0]", d, i
            if form == "rev":
                return f"{v.name}.shape[0] - 1, -1, -1", d, i
            return f"1, {v.name}.shape[0]", d, i
        return f"{self.pick([0, 1, 2])}, {self.pick([3, 4, 5])}", None, i

    def _scalar_of(self, i: str, d: Any) -> list[str]:
        """Scalar float reads the body may use: x[i] for arrays over dim d, other scalars."""
        outs = []
        for v in self.find(lambda v: v.is_float):
            if v.ndim == 0:
                outs.append(v.name)
            elif v.ndim == 1 and v.shape[0] == d and d is not None:
                outs.append(f"{v.name}[{i}]")
            elif v.ndim == 2 and v.shape[0] == d and d is not None and v.shape[1] != 1:
                self.need(v.shape[1], 1)
                outs.append(f"{v.name}[{i}, 0]")
        return outs

    def s_loop_scalar(self, budget: int) -> None:
        r = self.r
        rng, d, i = self._loop_header()
        acc = self.fresh("s")
        dt = self.pick(["f64", "f64", "f32"]) if not self.find(lambda v: v.dtype == "f32") else "f32"
        init = self.pick(["0.0", "1.0"])
        self.emit(f"{acc} = lt.full((), {init}, lt.{dt})" if dt == "f32" else f"{acc} = {init}")
        accv = self.define(Var(acc, dt, ()))
        if dt == "f64":
            accv.dtype = "f64"
        header = len(self.lines)
        self.emit(f"for {i} in range({rng}):")
        self.ind += 1
        self.scopes.append([])
        self.loopvars.append((i, d))
        self.depth += 1
        reads = self._scalar_of(i, d) or ["1.0"]
        x = self.pick(reads)
        form = self.pick(["sum", "decay", "max", "mixed", "nested"])
        if form == "nested" and self.depth >= 2:
            form = "sum"
        if form == "nested":
            # a nested statement or two before the update (cond / inner loop / assign)
            for _ in range(r.randint(1, 2)):
                self.stmt(budget - 1)
            reads = self._scalar_of(i, d) or ["1.0"]
            x = self.pick(reads + [v.name for v in self.scopes[-1] if v.is_float and v.ndim == 0])
            form = "sum"
        upd = {"sum": f"{acc} + {x}", "decay": f"{acc} * 0.5 + lt.tanh({x})",
               "max": f"lt.maximum({acc}, {x})",
               "mixed": f"{acc} + {x} * {i}"}[form]
        if form == "max" and dt == "f64" and x != acc and self._prange():
            # a running max is exact in any grouping: an lt.prange loop's chunked reduction
            # must then equal the oracle's serial one, sometimes updated in an if
            self.lines[header] = self.lines[header].replace(" in range(", " in lt.prange(")
            if self.rp.random() < 0.5:
                self.emit(f"if {x} > 0.5:")
                self.ind += 1
                self._assign_typed(acc, upd, dt)
                self.ind -= 1
                upd = ""
        if upd:
            self._assign_typed(acc, upd, dt)
        self.depth -= 1
        self.loopvars.pop()
        self.scopes.pop()
        self.ind -= 1

    def _assign_typed(self, name: str, src: str, dt: str) -> None:
        """``name = src`` keeping ``name``'s dtype (conversions made explicit)."""
        self.emit(f"{name} = lt.astype({src}, lt.{dt})")

    def _prange(self) -> bool:
        """Make a loop that may be one an lt.prange loop?  Mostly in parallel kernels, where
        it runs across threads; sometimes elsewhere, where it is range."""
        return self.rp.random() < (0.9 if self.family == "parallel" else 0.4)

    def s_loop_map(self, budget: int) -> None:
        r = self.r
        arrs = self.find(lambda v: v.ndim == 1 and v.is_float and v.shape[0] != 1)
        if not arrs:
            return self.s_loop_scalar(budget)
        v = self.pick(arrs)
        d = v.shape[0]
        out = self.fresh("o")
        form = self.pick(["zeros", "copy", "empty"])
        if form == "zeros":
            self.emit(f"{out} = lt.zeros({v.name}.shape[0])")
            dt = "f64"
        elif form == "copy":
            self.emit(f"{out} = lt.copy({v.name})")
            dt = v.dtype
        else:
            self.emit(f"{out} = lt.empty({v.name}.shape[0], lt.{v.dtype})")
            dt = v.dtype
        o = Var(out, dt, (d,), owned=True)  # in scope after the loop: the body only writes it
        i = self.fresh("i")
        nested = r.random() < 0.3 and self.depth < 2
        # iterations that only write o[i]: sometimes an lt.prange loop
        loop = "lt.prange" if not nested and self._prange() else "range"
        header = len(self.lines)
        self.emit(f"for {i} in {loop}({v.name}.shape[0]):")
        self.ind += 1
        self.scopes.append([])
        self.loopvars.append((i, d))
        self.depth += 1
        if nested:
            self.stmt(budget - 1)
        # never the array being written (an lt.empty is undefined until written)
        reads = [x for x in self._scalar_of(i, d) if not x.startswith(out + "[")] or ["1.0"]
        x = self.pick(reads)
        y = self.pick(reads)
        body = self.pick([f"{x} * 2.0 + {y}", f"lt.sin({x}) * {y}", f"lt.maximum({x}, {y}) - 1.0",
                          f"{x} + {i}", f"lt.where({x} > {y}, {x}, {y} * 0.5)"])
        if form == "copy" and r.random() < 0.5 and d is not None:
            # a recurrence through the array being written (reads it: never a prange loop)
            self.lines[header] = self.lines[header].replace(" in lt.prange(", " in range(")
            self.emit(f"if {i} > 0:")
            self.ind += 1
            self.emit(f"{out}[{i}] = lt.astype({out}[{i} - 1] * 0.5 + {x}, lt.{dt})")
            self.ind -= 1
        elif self.rp.random() < 0.3:
            # a fill in an if (and its else, which an lt.empty needs): still a prange loop
            self.emit(f"if {x} > {y}:")
            self.emit(f"    {out}[{i}] = lt.astype({body}, lt.{dt})")
            if form == "empty" or self.rp.random() < 0.5:
                other = self.rp.choice([f"{y} - {x}", f"lt.exp(-lt.abs({x}))", "0.5"])
                self.emit("else:")
                self.emit(f"    {out}[{i}] = lt.astype({other}, lt.{dt})")
        else:
            self.emit(f"{out}[{i}] = lt.astype({body}, lt.{dt})")
        self.depth -= 1
        self.loopvars.pop()
        self.scopes.pop()
        self.ind -= 1
        self.define(o)

    def s_loop_rows(self, budget: int) -> None:
        mats = self.find(lambda v: v.ndim == 2 and v.is_float and v.shape[0] != 1)
        if not mats:
            return self.s_loop_map(budget)
        v = self.pick(mats)
        out = self.fresh("o")
        self.emit(f"{out} = lt.zeros_like({v.name})")
        self.define(Var(out, v.dtype, v.shape, owned=True))
        i = self.fresh("i")
        form = self.pick(["row", "rowsum", "norm", "aug"])
        # rows written without being read (not "aug"): sometimes an lt.prange loop
        loop = "lt.prange" if form != "aug" and self._prange() else "range"
        self.emit(f"for {i} in {loop}({v.name}.shape[0]):")
        self.ind += 1
        self.scopes.append([])
        self.loopvars.append((i, v.shape[0]))
        self.depth += 1
        row = f"{v.name}[{i}]"
        if form == "row" and self.rp.random() < 0.3:
            # the row element by element, in an inner loop (still a prange loop)
            k = i + "k"  # not fresh(): the names of the rest of the program stay as they were
            self.emit(f"for {k} in range({v.name}.shape[1]):")
            self.emit(f"    {out}[{i}, {k}] = lt.tanh({v.name}[{i}, {k}]) * 2.0")
        elif form == "row":
            self.emit(f"{out}[{i}, :] = lt.tanh({row}) * 2.0")
        elif form == "rowsum":
            self.emit(f"{out}[{i}] = {row} - lt.mean({row})")
            self.need(v.shape[1], 1)
        elif form == "norm":
            self.emit(f"{out}[{i}] = {row} / lt.sqrt(lt.sum({row} * {row}) + 1.0)")
        else:
            self.emit(f"{out}[{i}] += {row}")
        self.depth -= 1
        self.loopvars.pop()
        self.scopes.pop()
        self.ind -= 1

    def s_cond(self, budget: int) -> None:
        r = self.r
        pred = self.bexpr()
        name = self.fresh("c")
        src1, dt1, sh1, _ = self.fexpr(r.randint(0, 2))
        src2, dt2, sh2, _ = self.fexpr(r.randint(0, 2), sh1)
        sh = bshape(sh1, sh2)
        if sh is None or sh1 != sh2 and (sh != sh1 or sh != sh2):
            src2, dt2, sh2 = src1 + " * 0.5", dt1, sh1
        dt = self._promote(dt1, dt2)
        if dt.startswith("weak"):
            dt = "f64"
        sh = sh1
        # both branches bind `name` with the same type (explicit conversions)
        self.emit(f"if {pred}:")
        self.ind += 1
        self.scopes.append([])
        self.depth += 1
        if r.random() < 0.3:
            self.stmt(budget - 1)
        self.emit(f"{name} = ({src1}) + lt.zeros({self._shape_src(sh)}, lt.{dt})")
        self.scopes.pop()
        self.ind -= 1
        if r.random() < 0.3:
            pred2 = self.bexpr()
            self.emit(f"elif {pred2}:")
            self.ind += 1
            self.emit(f"{name} = ({src2}) * 2.0 + lt.zeros({self._shape_src(sh)}, lt.{dt})")
            self.ind -= 1
        self.emit("else:")
        self.ind += 1
        self.scopes.append([])
        if r.random() < 0.3:
            self.stmt(budget - 1)
        self.emit(f"{name} = ({src2}) + lt.zeros({self._shape_src(sh)}, lt.{dt})")
        self.scopes.pop()
        self.ind -= 1
        self.depth -= 1
        self.define(Var(name, dt, sh, owned=bool(sh)))

    def _shape_src(self, sh: tuple) -> str:
        parts = []
        for d in sh:
            if d == 1:
                parts.append("1")
                continue
            src = None
            for v in self.all_vars():
                for k, vd in enumerate(v.shape):
                    if vd == d:
                        src = f"{v.name}.shape[{k}]"
                        break
                if src:
                    break
            parts.append(src or "1")
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    # ---- broadcasting with new axes, Gram products, windows, calls
    def s_newaxis(self, budget: int) -> None:
        vecs = self.find(lambda v: v.is_float and v.ndim == 1 and v.shape[0] != 1)
        mats = self.find(lambda v: v.is_float and v.ndim == 2 and v.shape[0] != 1
                         and v.shape[1] != 1)
        opts = (["outer"] if vecs else []) + (["center", "scale"] if mats else [])
        if not opts:
            return self.s_assign(budget)
        kind = self.pick(opts)
        if kind == "outer":
            a, b = self.pick(vecs), self.pick(vecs)
            op = self.pick(["*", "-", "+"])
            rhs = f"{b.name}[None, :]" if self.r.random() < 0.6 else b.name
            src, sh, dt = f"{a.name}[:, None] {op} {rhs}", (a.shape[0], b.shape[0]), \
                promote(a.dtype, b.dtype)
        elif kind == "center":
            x = self.pick(mats)
            fn = self.pick(["mean", "max", "sum"])
            if fn != "sum":
                self.need(x.shape[1], 1)
            src, sh, dt = f"{x.name} - lt.{fn}({x.name}, axis=1)[:, None]", x.shape, x.dtype
        else:
            x = self.pick(mats)
            cols = [u for u in vecs if u.shape[0] == x.shape[1]]
            rows = [u for u in vecs if u.shape[0] == x.shape[0]]
            if cols and self.r.random() < 0.5:
                u = self.pick(cols)
                src, dt = f"{x.name} * {u.name}[None, :]", promote(x.dtype, u.dtype)
            elif rows:
                u = self.pick(rows)
                src, dt = f"{x.name} / (lt.abs({u.name}[:, None]) + 0.5)", promote(x.dtype,
                                                                                 u.dtype)
            else:
                src, dt = f"{x.name} * lt.sum({x.name}, axis=0)[None, :]", x.dtype
            sh = x.shape
        name = self.fresh("w")
        self.emit(f"{name} = {src}")
        self.define(Var(name, dt, sh, owned=True))

    def s_gram(self, budget: int) -> None:
        """X.T @ X and X.T @ (X * c), c a column or a scalar (upper triangle + mirror under
        fastmath, gemm.py)."""
        mats = self.find(lambda v: v.is_float and v.ndim == 2 and v.shape[0] != 1)
        if not mats:
            return self.s_matmul(budget)
        x = self.pick(mats)
        rows = self.find(lambda v: v.is_float and v.ndim == 1 and v.shape[0] == x.shape[0])
        scal = self.find(lambda v: v.is_float and v.ndim == 0)
        form = self.pick(["plain", "col", "col", "scalar"])
        if form == "col":
            if rows:
                u = self.pick(rows)
                col, dt = f"{u.name}[:, None]", promote(x.dtype, u.dtype)
            else:
                col, dt = f"lt.sum({x.name}, axis=1)[:, None]", x.dtype
            prod = f"({x.name} * {col})" if self.r.random() < 0.7 else f"({col} * {x.name})"
            src = f"{x.name}.T @ {prod}"
        elif form == "scalar" and scal:
            c = self.pick(scal)
            src, dt = f"{x.name}.T @ ({x.name} * {c.name})", promote(x.dtype, c.dtype)
        else:
            src, dt = f"{x.name}.T @ {x.name}", x.dtype
        name = self.fresh("g")
        self.emit(f"{name} = {src}")
        self.define(Var(name, dt, (x.shape[1], x.shape[1]), owned=True))

    def _block_size(self) -> int:
        if self.family == "parallel":
            return self.pick([8, 16, 32, 64])
        if self.family == "tiles":
            return self.pick([4, 8, 16])
        return self.pick([2, 3, 4, 8])

    def _window_spelling(self, b: str, c: int) -> str:
        return self.pick([f"{c} * {b}:{c} * {b} + {c}", f"{b} * {c}:{b} * {c} + {c}",
                          f"{c} * {b}:({b} + 1) * {c}"])

    def _block_expr(self, w: str, u: Optional[str], ndim: int, dt: str) -> tuple[str, str]:
        """(an expression of the block ``w`` (and ``u``, a block of a vector over the same
        rows), its dtype)."""
        scal = self.find(lambda v: v.is_float and v.ndim == 0)
        opts = [(f"{w} * {w}", dt), (f"lt.tanh({w}) * 2.0", dt),
                (f"lt.exp(lt.clip({w}, -6.0, 6.0))", dt), (f"lt.maximum({w}, 0.25) - {w}", dt)]
        if u is not None:
            opts.append((f"{w} * {u}" if ndim == 1 else f"{w} * {u}[:, None]", None))
        if scal:
            c = self.pick(scal)
            opts.append((f"{w} * {c.name}", promote(dt, c.dtype)))
        src, d2 = self.pick(opts)
        return src, d2 or dt

    def s_blocked(self, budget: int) -> None:
        """``for b in range(n // c): acc = acc + f(X[c*b:c*b + c])``, then the remainder
        ``X[c*nb:]``; or a blocked map storing into windows, or a blocked Gram product."""
        arrs = self.find(lambda v: v.is_float and v.ndim in (1, 2) and v.shape[0] != 1)
        if not arrs:
            return self.s_loop_scalar(budget)
        v = self.pick(arrs)
        d = v.shape[0]
        c = self._block_size()
        vecs = [u for u in self.find(lambda u: u.is_float and u.ndim == 1 and u.shape[0] == d)]
        u = self.pick(vecs) if vecs and self.r.random() < 0.6 else None
        nb, b = self.fresh("nb"), self.fresh("b")
        self.emit(f"{nb} = {v.name}.shape[0] // {c}")
        win = self._window_spelling(b, c)
        rem = f"{c} * {nb}:"
        forms = ["sum", "sum"] + (["gram", "gram"] if v.ndim == 2 else ["map"])
        form = self.pick(forms)
        wb, ub = self.fresh("xb"), self.fresh("ub")
        if form == "gram":
            h = self.fresh("h")
            self.emit(f"{h} = lt.zeros(({v.name}.shape[1], {v.name}.shape[1]))")
            self.emit(f"for {b} in range({nb}):")
            self.ind += 1
            self.emit(f"{wb} = {v.name}[{win}]")
            if u is not None:
                self.emit(f"{ub} = {u.name}[{win}]")
                self.emit(f"{h} = {h} + {wb}.T @ ({wb} * {ub}[:, None])")
            else:
                self.emit(f"{h} = {h} + {wb}.T @ {wb}")
            self.ind -= 1
            xr = self.fresh("xr")
            self.emit(f"{xr} = {v.name}[{rem}]")
            if u is not None:
                self.emit(f"{h} = {h} + {xr}.T @ ({xr} * {u.name}[{rem}][:, None])")
                dt = promote("f64", promote(v.dtype, u.dtype))
            else:
                self.emit(f"{h} = {h} + {xr}.T @ {xr}")
                dt = "f64"
            self.define(Var(h, dt, (v.shape[1], v.shape[1]), owned=True))
            return
        if form == "map":
            o = self.fresh("o")
            self.emit(f"{o} = lt.zeros_like({v.name})")
            body, _ = self._block_expr("{W}", None, 1, v.dtype)
            self.emit(f"for {b} in range({nb}):")
            self.ind += 1
            self.emit(f"{o}[{win}] = lt.astype({body.format(W=f'{v.name}[{win}]')}, "
                      f"lt.{v.dtype})")
            self.ind -= 1
            if self.r.random() < 0.8:
                self.emit(f"{o}[{rem}] = lt.astype({body.format(W=f'{v.name}[{rem}]')}, "
                          f"lt.{v.dtype})")
            self.define(Var(o, v.dtype, (d,), owned=True))
            return
        acc = self.fresh("s")
        init = self.pick(["0.0", "0.0", "f32"])
        self.emit(f"{acc} = lt.full((), 0.0, lt.f32)" if init == "f32" else f"{acc} = 0.0")
        body, bdt = self._block_expr("{W}", "{U}" if u is not None else None, v.ndim, v.dtype)
        if u is not None:
            bdt = promote(bdt, u.dtype) if "{U}" in body else bdt
        self.emit(f"for {b} in range({nb}):")
        self.ind += 1
        self.emit(f"{wb} = {v.name}[{win}]")
        if "{U}" in body:
            self.emit(f"{ub} = {u.name}[{win}]")  # type: ignore[union-attr]
        upd = self.pick(["{a} + lt.sum({e})", "{a} + lt.sum({e}) * 0.5", "{a} * 0.5 + lt.sum({e})"])
        self.emit(f"{acc} = " + upd.format(a=acc, e=body.format(W=wb, U=ub)))
        self.ind -= 1
        # the loop rule (docs/getting-started.md): a Python number is typed f64 before a loop
        dt = promote("f64" if init == "0.0" else "f32", bdt)
        if self.r.random() < 0.85:
            rest = body.format(W=f"{v.name}[{rem}]",
                               U=f"{u.name}[{rem}]" if u is not None else "")
            self.emit(f"{acc} = {acc} + lt.sum({rest})")
        self.define(Var(acc, dt, ()))

    def s_window(self, budget: int) -> None:
        """A window ``x[j:j + c]`` with a traced start that fits: from a bounded argmax, or
        sliding over ``range(n - c + 1)``."""
        arrs = self.find(lambda v: v.is_float and v.ndim in (1, 2)
                         and (not isinstance(v.shape[0], int) or v.shape[0] >= 2))
        if not arrs:
            return self.s_assign(budget)
        v = self.pick(arrs)
        d = v.shape[0]
        # the window must fit (c + 1 <= d) even if it ends up dead: lattice's check of it is
        # dropped with dead code, the oracle's is not
        c = self.pick([w for w in (1, 2, 3, 4) if not isinstance(d, int) or w + 1 <= d])
        form = self.pick(["argmax", "slide", "slide_store"])
        if form == "argmax":
            self.need(d, c + 1)
            if v.ndim == 2:
                self.need(v.shape[1], 1)
            j = self.fresh("j")
            key = f"lt.argmax({v.name})" if v.ndim == 1 else f"lt.argmax({v.name}[:, 0])"
            off = self.pick([0, 1])
            self.emit(f"{j} = lt.minimum({key}, {v.name}.shape[0] - {c + off})")
            self.define(Var(j, "i64", ()))
            x = self.fresh("x")
            lo = f"{j} + {off}" if off else j
            self.emit(f"{x} = {v.name}[{lo}:{lo} + {c}]")
            self.define(Var(x, v.dtype, (c,) + v.shape[1:], owned=False))
            return
        i = self.fresh("i")
        if form == "slide_store" and v.ndim == 1:
            o = self.fresh("o")
            self.emit(f"{o} = lt.zeros({v.name}.shape[0])")
            self.emit(f"for {i} in range({v.name}.shape[0] - {c} + 1):")
            self.ind += 1
            fn = self.pick(["sum", "max"])
            self.emit(f"{o}[{i}] = lt.{fn}({v.name}[{i}:{i} + {c}])")
            self.ind -= 1
            self.define(Var(o, "f64", (d,), owned=True))
            return
        acc = self.fresh("s")
        self.emit(f"{acc} = 0.0")
        self.emit(f"for {i} in range({v.name}.shape[0] - {c} + 1):")
        self.ind += 1
        w = f"{v.name}[{i}:{i} + {c}]"
        e = self.pick([f"lt.sum({w} * {w})", f"lt.sum({w}) * 0.5", f"lt.max({w}) - {w}[0]"
                       if v.ndim == 1 else f"lt.sum({w})"])
        self.emit(f"{acc} = {acc} + {e}")
        self.ind -= 1
        self.define(Var(acc, promote("f64", v.dtype), ()))

    def s_call(self, budget: int) -> None:
        """Call another kernel (a generated helper; calls inline)."""
        cands = self.find(lambda v: v.is_float)
        if not cands:
            return self.s_assign(budget)
        args = [self.pick(cands)]
        if len(cands) > 1 and self.r.random() < 0.6:
            args.append(self.pick([v for v in cands if v is not args[0]]))
        hname = f"helper{len(self.helpers)}"
        child = Gen.__new__(Gen)
        child.r = random.Random(self.r.randrange(2 ** 31))
        child.rp = self.rp
        child.seed, child.family = self.seed, "general"
        child.lines, child.ind, child.count = [], 1, 0
        child.scopes = [[Var(pn, a.dtype, a.shape) for pn, a in zip("xy", args)]]
        child.loopvars, child.min_sizes, child.depth = [], self.min_sizes, 1
        child.helpers = ["", ""]  # no calls from a helper
        for _ in range(child.r.randint(1, 3)):
            child.stmt(2)
        outs = [v for v in child.scopes[0] if v.name not in ("x", "y") and v.is_float]
        if outs:
            out = outs[-1]
            child.emit(f"return {out.name}")
            dt, sh = out.dtype, out.shape
        else:
            child.emit("return x * 2.0")
            dt, sh = args[0].dtype, args[0].shape
        sig = ", ".join(f"{pn}: {_ann(a)}" for pn, a in zip("xy", args))
        self.helpers.append("\n".join(["@lt.kernel", f"def {hname}({sig}):"] + child.lines))
        name = self.fresh("h")
        self.emit(f"{name} = {hname}({', '.join(a.name for a in args)})")
        # the helper may return an argument itself (``v1 = y; return v1``): then, as in
        # Python, the result and that argument are one array, and lattice rejects a store
        # through either name (seed 700207): store through neither
        for a in args:
            self._alias(a.name)
        self.define(Var(name, dt, sh, owned=False))

    # ---- the whole program
    def program(self) -> Program:
        r = self.r
        fastmath = r.random() < 0.5
        n_params = r.randint(1, 4)
        main_float = "f32" if r.random() < 0.15 else "f64"
        shapes = [("n",), ("m", "n"), ("n",), ("m",), ("k", "n"), ("m", 1), (1, "n"), (),
                  ("n", "k"), ("m", "n")]
        if self.family in ("tiles", "parallel", "blocked"):
            shapes += [("m", "n"), ("n", "k"), ("n",), ("m", "k")]
        params: list[Var] = []
        names = []
        if self.family == "parallel":
            n_params = builtins.max(n_params, 2)
        for p in range(n_params):
            sh = self.pick(shapes) if p else self.pick([s for s in shapes if s])
            if self.family == "parallel" and p == 0:
                sh = ("m", "n")  # at least one big matrix
            roll = r.random()
            dt = main_float if roll < 0.8 else ("i64" if roll < 0.9 else "i32")
            if sh == () and dt == "i32":
                dt = "i64"
            name = "abcd"[p]
            v = Var(name, dt, sh, owned=False)
            params.append(v)
            names.append(name)
            self.scopes[0].append(v)
        if not any(v.is_float for v in params):
            params[0].dtype = main_float
        for _ in range(r.randint(4, 8) if self.family == "parallel" else r.randint(2, 7)):
            self.stmt(3)
        # results: recent values with named dims only
        cands = [v for v in self.scopes[0] if v.name not in names and v.dtype != "bool"]
        if not cands:
            cands = [v for v in self.scopes[0] if v.is_float]
        k = builtins.min(len(cands), r.choice([1, 1, 2, 3]))
        outs = cands[-k:] if r.random() < 0.7 else r.sample(cands, k)
        ints = [v for v in cands if v not in outs and not v.is_float]
        if ints and r.random() < 0.7:  # integer results: exact checks of the integer paths
            outs.append(r.choice(ints))
        grad_prog = False
        if r.random() < 0.35:
            # a scalar loss over everything float: the gradient-checkable form (an f32 one
            # in f32 programs)
            fl = [v for v in self.scopes[0] if v.is_float and v.dtype == main_float]
            if fl and any(p.dtype == main_float for p in params):
                terms = " + ".join(f"lt.sum({v.name})" if v.ndim else v.name
                                   for v in fl[-3:])
                self.emit(f"loss = {terms}")
                self.emit("return loss")
                grad_prog = True
        if not grad_prog:
            self.emit("return " + ", ".join(v.name for v in outs))
        sig = ", ".join(f"{v.name}: {_ann(v)}" for v in params)
        par = self.family == "parallel"
        kw = ([] if fastmath else ["fastmath=False"]) + (["parallel=True"] if par else [])
        opts = f"({', '.join(kw)})" if kw else ""
        head = ["import lattice as lt", "", ""]
        for h in self.helpers:
            head += [h, "", ""]
        head += [f"@lt.kernel{opts}", f"def prog({sig}):"]
        source = "\n".join(head + self.lines) + "\n"
        return Program(self.seed, source, "prog", names, params, fastmath,
                       dict(self.min_sizes), 1 if grad_prog else len(outs), grad_prog,
                       family=self.family, parallel=par, loss_dtype=main_float)


def _ann(v: Var) -> str:
    dt = {"bool": "bool_"}.get(v.dtype, v.dtype)
    if not v.shape:
        return f"lt.{dt}"
    return f"lt.{dt}[{', '.join(repr(d) for d in v.shape)}]"


def generate(seed: int) -> Program:
    """The program for ``seed`` (deterministic)."""
    return Gen(seed).program()


def make_args(prog: Program, rng: np.random.Generator) -> list[Any]:
    sizes = {}
    for d in DIMS:
        lo = prog.min_sizes.get(d, 0)
        pool = {"tiles": TILE_SIZES, "parallel": PAR_SIZES}.get(prog.family, SIZES)
        if prog.family == "parallel" and d == "k" and rng.random() < 0.5:
            pool = PAR_SMALL
        if prog.family == "blocked" and rng.random() < 0.5:
            pool = TILE_SIZES
        sizes[d] = int(rng.choice([s for s in pool if s >= lo] or [lo]))
    args = []
    for v in prog.params:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in v.shape)
        if v.is_float:
            a = rng.uniform(-2, 2, shape).astype(_NP_OF[v.dtype])
            if rng.random() < 0.3:  # some exact small integers: ties and exact compares
                a = np.round(a * 2).astype(_NP_OF[v.dtype]) / 2
        else:
            a = rng.integers(-5, 6, shape).astype(_NP_OF[v.dtype])
        if shape == ():
            a = _NP_OF[v.dtype](a)
        elif rng.random() < 0.25 and a.ndim >= 1 and a.size:
            # a non-contiguous view with the same values
            big = np.repeat(a, 2, axis=-1)
            a = big[..., ::2]
            if rng.random() < 0.5:
                a = a[::-1][::-1]
        args.append(a)
    return args


# =============================================================================== running
@dataclass
class Outcome:
    status: str          # ok | skip | mismatch | error
    detail: str = ""
    grad: str = ""       # "", checked, unsupported, skip


_MODULE_DIR: Optional[str] = None


def _module_dir() -> str:
    global _MODULE_DIR
    if _MODULE_DIR is None:
        _MODULE_DIR = tempfile.mkdtemp(prefix="lattice-fuzz-")
    return _MODULE_DIR


def load_program(prog: Program) -> Any:
    """Write the program's source to a module file and import it; the module."""
    path = os.path.join(_module_dir(), f"fuzz_{prog.seed}_{os.getpid()}_{time.monotonic_ns()}.py")
    with open(path, "w") as f:
        f.write(prog.source)
    spec = importlib.util.spec_from_file_location(f"_lattice_fuzz_{prog.seed}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def _passes_env(value: Optional[str]) -> Any:
    old = os.environ.get("LATTICE_PASSES")
    if value is None:
        os.environ.pop("LATTICE_PASSES", None)
    else:
        os.environ["LATTICE_PASSES"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LATTICE_PASSES", None)
        else:
            os.environ["LATTICE_PASSES"] = old


def _as_list(res: Any, n: int) -> list[Any]:
    return list(res) if isinstance(res, tuple) else [res]


def compare(got: Any, want: np.ndarray, err: np.ndarray, what: str) -> Optional[str]:
    g = np.asarray(got)
    w = np.asarray(want)
    if g.shape != w.shape:
        return f"{what}: shape {g.shape} != oracle {w.shape}"
    if g.dtype != w.dtype:
        return f"{what}: dtype {g.dtype} != oracle {w.dtype}"
    if w.dtype.kind in "biu":
        if not np.array_equal(g, w):
            bad = np.argwhere(g != w)[:3].tolist()
            return f"{what}: integer values differ at {bad}: {g.reshape(-1)[:6]} vs {w.reshape(-1)[:6]}"
        return None
    gf, wf = g.astype(np.float64), w.astype(np.float64)
    tiny = float(np.finfo(w.dtype).tiny) * 4
    tol = 2 * np.asarray(err, np.float64) + tiny
    diff = np.abs(gf - wf)
    bad = ~(diff <= tol) & ~(np.isnan(gf) & np.isnan(wf)) & ~(gf == wf)
    if np.any(bad):
        k = tuple(np.argwhere(bad)[0])
        return (f"{what}: value at {k} is {gf[k]!r}, oracle {wf[k]!r} (|diff| {diff[k]:.3g} > "
                f"tolerance {tol[k]:.3g})")
    return None


def _fd_ok(vals: Sequence[float]) -> bool:
    return all(map(math.isfinite, vals))


def _directional(f: Callable[[float], float], scale_f: float, eps: float
                 ) -> Optional[float]:
    """Central difference of ``f`` at 0 (step 1e-5), or None when finite differences cannot
    resolve the slope there (too noisy, or not smooth within the step)."""
    h = 1e-5
    f0, fp, fm = f(0.0), f(h), f(-h)
    d1, d2 = (f(2 * h) - f(-2 * h)) / (4 * h), (fp - fm) / (2 * h)
    fwd, bwd = (fp - f0) / h, (f0 - fm) / h
    scale = builtins.max(1.0, abs(d1))
    noise = 4 * eps * builtins.max(abs(f0), abs(fp), abs(fm), scale_f) / h
    if not _fd_ok((d1, d2, fwd, bwd)) or noise > 1e-6 * scale:
        return None  # |f| too large for finite differences to resolve the slope
    if abs(d1 - d2) > 1e-5 * scale or abs(fwd - bwd) > 1e-4 * scale:
        return None  # not smooth here: a kink at the point or a branch within the step
    return d2


def _twin(prog: Program) -> Any:
    """The f64 twin of an f32 program (every f32 made f64): the same function of the inputs,
    differentiated by finite differences in f64."""
    import lattice as lt
    src = prog.source.replace("lt.f32", "lt.f64")
    mod = load_program(Program(prog.seed, src, prog.name, prog.param_names, prog.params,
                               prog.fastmath, prog.min_sizes, prog.n_outs,
                               prog.scalar_float_out))
    return getattr(mod, prog.name)


def _grad_check(prog: Program, kern: Any, args: list[Any], rng: np.random.Generator,
                mode: Optional[str] = None, oracle: Optional[tuple] = None) -> str:
    """Check one AD transform of a scalar-loss program against finite differences.

    f64 programs: ``lt.grad``, ``lt.jvp``, ``lt.vjp`` or ``lt.hessian`` (drawn), the
    directional derivative (or Hessian-vector product) along a random direction ``t`` vs a
    central difference, to 1e-4 relative.  f32 programs: ``lt.grad`` in f32 vs a central
    difference of the program's f64 twin, to 2e-3 of ``max(1, |slope|, sum |g t|)`` (f32
    gradients carry f32 rounding: a few hundred ulp of the terms of <g, t>)."""
    import lattice as lt
    if not hasattr(lt, "grad") or not prog.scalar_float_out:
        return ""
    fdt = prog.loss_dtype
    argnums = [k for k, v in enumerate(prog.params) if v.dtype == fdt]
    if not argnums:
        return ""
    k = int(rng.choice(argnums))
    if mode is None:
        mode = "grad" if fdt == "f32" else str(rng.choice(["grad", "grad", "jvp", "vjp",
                                                           "hessian"]))
    x = np.asarray(args[k], np.float64)
    if mode == "hessian" and x.size > 40:
        mode = "grad"
    t = rng.standard_normal(x.shape)
    ref = _twin(prog) if fdt == "f32" else kern
    ref_args = [np.asarray(a, np.float64) if v.dtype == "f32" else a
                for a, v in zip(args, prog.params)] if fdt == "f32" else list(args)

    def at(h: float, fn: Any = ref) -> Any:
        a2 = list(ref_args)
        a2[k] = (x + h * t) if x.shape else np.float64(x + h * t)
        return fn(*a2)

    try:
        if mode == "grad":
            g = lt.grad(kern, argnums=k)(*args)
            got = float(np.sum(np.asarray(g, np.float64) * t))
            terms = float(np.sum(np.abs(np.asarray(g, np.float64) * t)))
        elif mode == "jvp":
            tans = [np.zeros_like(a, dtype=np.float64) if v.dtype == "f64" else None
                    for a, v in zip(args, prog.params)]
            tans[k] = t if x.shape else np.float64(t)
            val, tan = lt.jvp(kern, args, tans)
            # the primal of the jvp kernel (compiled differently): within the oracle's bound
            msg = compare(val, *oracle, "jvp primal") if oracle is not None else None
            if msg:
                raise AssertionError(msg)
            got, terms = float(tan), abs(float(tan))
        elif mode == "vjp":
            val, pull = lt.vjp(kern, *args)
            cts = pull(np.float64(1.0))
            got = float(np.sum(np.asarray(cts[k], np.float64) * t))
            terms = float(np.sum(np.abs(np.asarray(cts[k], np.float64) * t)))
        else:
            hess = np.asarray(lt.hessian(kern, argnums=k)(*args), np.float64)
            hv = hess.reshape(x.size, x.size) @ t.reshape(-1)
            # f32 values inside an f64 program round each side's second-order terms at f32
            # precision (seed 703392: 5e-8 relative, symmetric to 1e-14 in its f64 twin)
            sym = 1e-5 if "f32" in prog.source else 1e-8
            if x.size and not np.allclose(hess.reshape(x.size, x.size),
                                          hess.reshape(x.size, x.size).T, rtol=sym,
                                          atol=sym * builtins.max(1.0, np.max(np.abs(hess)))):
                hm = hess.reshape(x.size, x.size)
                raise AssertionError(f"hessian is not symmetric: max |H - H^T| "
                                     f"{np.max(np.abs(hm - hm.T)):.3g}, max |H| "
                                     f"{np.max(np.abs(hm)):.3g}, at x = {np.ravel(x)[:8]}")
            # <Hv, s> for a second random direction s vs d/dh <grad(x + h t), s>
            s_dir = rng.standard_normal(x.shape)
            got = float(hv @ s_dir.reshape(-1))
            terms = float(np.abs(hess.reshape(x.size, x.size) * np.outer(s_dir.reshape(-1), t.reshape(-1))).sum())
            gk = lt.grad(kern, argnums=k)
            fd = _directional(lambda h: float(np.sum(np.asarray(at(h, gk), np.float64) * s_dir)),
                              0.0, 1.2e-7 if "f32" in prog.source else 2.2e-16)
            if fd is None:
                return "skip"
            scale = builtins.max(1.0, abs(fd))
            if not abs(got - fd) <= 1e-4 * scale + 1e-6:
                raise AssertionError(f"hessian of argument {prog.param_names[k]}: <H t, s> = "
                                     f"{got!r}, finite differences of grad {fd!r}")
            return "checked hessian"
    except (lt.CompileError, TypeError, NotImplementedError) as exc:
        from .ir.types import ShapeError
        # an IR type error from a transform of a program that type-checked is a compiler bug
        if "internal" in str(exc) or isinstance(exc, ShapeError):
            raise AssertionError(f"lt.{mode} failed: {type(exc).__name__}: {exc}") from exc
        return "unsupported: " + str(exc).splitlines()[0][:100]
    eps = 1.2e-7 if fdt == "f64" and "f32" in prog.source else 2.2e-16
    fd = _directional(lambda h: float(at(h)), 0.0, eps)
    if fd is None:
        return "skip"
    if fdt == "f32":
        scale = builtins.max(1.0, abs(fd), terms)
        ok = abs(got - fd) <= 2e-3 * scale
    else:
        scale = builtins.max(1.0, abs(fd))
        ok = abs(got - fd) <= 1e-4 * scale + 1e-6
    if not ok:
        raise AssertionError(f"lt.{mode} ({fdt}) of argument {prog.param_names[k]}: <d, t> = "
                             f"{got!r}, finite differences {fd!r}")
    return f"checked {mode}" + (" f32" if fdt == "f32" else "")


def run_program(prog: Program, *, n_inputs: int = 2, check_grad: bool = True) -> Outcome:
    """Compile and run one program on ``n_inputs`` random inputs against the oracle."""
    import lattice as lt
    mod = load_program(prog)
    k_opt = getattr(mod, prog.name)
    fn = k_opt.fn
    k_nopass = lt.Kernel(fn, fastmath=prog.fastmath, parallel=prog.parallel)
    with _passes_env("none"):
        _ = k_nopass.optimized_ir
    rng = np.random.default_rng(prog.seed)
    ran = 0
    grad = ""
    for trial in range(n_inputs):
        args = make_args(prog, rng)
        try:
            want, err = run_oracle(fn, [np.array(a) if isinstance(a, np.ndarray) else a
                                        for a in args], prog.fastmath)
        except IllConditioned as exc:
            continue
        except (ValueError, IndexError) as exc:
            # the program raises for this input: every evaluator must raise the same class
            for what, f in (("compiled", k_opt), ("interpreter", k_opt.interpret),
                            ("no passes", k_nopass)):
                try:
                    f(*args)
                except type(exc):
                    continue
                except Exception as exc2:  # noqa: BLE001
                    return Outcome("mismatch", f"{what}: raised {type(exc2).__name__}: {exc2}; "
                                   f"oracle raised {type(exc).__name__}: {exc}")
                return Outcome("mismatch", f"{what}: returned; oracle raised "
                               f"{type(exc).__name__}: {exc}")
            ran += 1
            continue
        if not all(np.all(np.isfinite(w)) for w in want if w.dtype.kind == "f") or not all(
                np.all(np.isfinite(e)) for e in err):
            continue
        results = {}
        for what, f in (("compiled", k_opt), ("no passes", k_nopass),
                        ("interpreter", k_opt.interpret)):
            res = _as_list(f(*args), prog.n_outs)
            if len(res) != len(want):
                return Outcome("mismatch", f"{what}: {len(res)} results, oracle {len(want)}")
            for j, (g, w, e) in enumerate(zip(res, want, err)):
                msg = compare(g, w, e, f"{what} result {j}")
                if msg:
                    return Outcome("mismatch", msg)
            results[what] = res
        ran += 1
        if check_grad and not grad:
            try:
                grad = _grad_check(prog, k_opt, args, rng, oracle=(want[0], err[0]))
            except AssertionError as exc:
                return Outcome("grad_fail", str(exc), "failed")
    return Outcome("ok" if ran else "skip", grad=grad)


def describe(prog: Program) -> str:
    return (f"# lattice.fuzz program seed {prog.seed} (replay: python -m lattice.fuzz --replay "
            f"{prog.seed})\n# family {prog.family}, fastmath={prog.fastmath}, min sizes {prog.min_sizes}\n"
            + prog.source)


def run_one(seed: int, *, verbose: bool = False) -> dict[str, Any]:
    """Generate, run and classify the program of ``seed``; a JSON-able record."""
    prog = generate(seed)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = run_program(prog)
        rec = {"seed": seed, "status": out.status, "detail": out.detail, "grad": out.grad}
    except Exception as exc:  # noqa: BLE001 - every exception is a finding
        rec = {"seed": seed, "status": "error",
               "detail": f"{type(exc).__name__}: {exc}",
               "trace": traceback.format_exc(limit=12)}
    rec["time"] = round(time.perf_counter() - t0, 4)
    if verbose or rec["status"] in ("mismatch", "grad_fail", "error"):
        rec["source"] = describe(prog)
    return rec


# =============================================================================== CLI
def _worker(start: int, stride: int, deadline: float, count: int) -> None:
    seed = start
    done = 0
    while time.time() < deadline and (count <= 0 or done < count):
        print(json.dumps({"start": seed}), flush=True)
        rec = run_one(seed)
        print(json.dumps(rec), flush=True)
        seed += stride
        done += 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lattice.fuzz", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="run time budget")
    ap.add_argument("--seed", type=int, default=0, help="first program seed")
    ap.add_argument("--count", type=int, default=0, help="stop after this many programs (0: no limit)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes")
    ap.add_argument("--replay", type=int, default=None, help="run one program seed verbosely")
    ap.add_argument("--show", type=int, default=None, help="print one program's source")
    ap.add_argument("--worker", nargs=4, type=float, help=argparse.SUPPRESS)
    ap.add_argument("--log", default=None, help="append JSON records of failures here")
    ap.add_argument("--progress", type=float, default=0.0,
                    help="print a progress line every this many seconds")
    a = ap.parse_args(argv)
    if a.worker:
        start, stride, deadline, count = a.worker
        _worker(int(start), int(stride), deadline, int(count))
        return 0
    if a.show is not None:
        print(describe(generate(a.show)))
        return 0
    if a.replay is not None:
        rec = run_one(a.replay, verbose=True)
        print(rec.pop("source"))
        print(json.dumps(rec, indent=2))
        return 0 if rec["status"] in ("ok", "skip") else 1
    return _supervise(a)


def _supervise(a: Any) -> int:
    """Run workers in subprocesses (a segfault is a recorded crash, not the end of the run)."""
    deadline = time.time() + a.seconds
    counts = {"ok": 0, "skip": 0, "mismatch": 0, "grad_fail": 0, "error": 0, "crash": 0}
    grads = {"checked": 0, "unsupported": 0, "skip": 0}
    failures: list[dict[str, Any]] = []
    per_worker = (a.count + a.workers - 1) // a.workers if a.count else 0
    t0 = time.time()
    procs = {}
    next_start = {w: a.seed + w for w in range(a.workers)}
    remaining = {w: per_worker for w in range(a.workers)}

    def spawn(w: int) -> None:
        cmd = [sys.executable, "-m", "lattice.fuzz", "--worker", str(next_start[w]),
               str(a.workers), str(deadline), str(remaining[w] if a.count else 0)]
        procs[w] = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, bufsize=1)

    import selectors
    sel = selectors.DefaultSelector()
    for w in range(a.workers):
        spawn(w)
        sel.register(procs[w].stdout, selectors.EVENT_READ, w)
    current: dict[int, Optional[int]] = {w: None for w in range(a.workers)}
    alive = set(range(a.workers))
    last_report = time.time()
    while alive:
        if a.progress and time.time() - last_report >= a.progress:
            last_report = time.time()
            print(f"[{time.time() - t0:.0f} s] {sum(counts.values())} programs: "
                  + ", ".join(f"{k} {v}" for k, v in counts.items()), flush=True)
        for key, _ in sel.select(timeout=5):
            w = key.data
            line = key.fileobj.readline()
            if line:
                rec = json.loads(line)
                if "start" in rec:
                    current[w] = rec["start"]
                    continue
                current[w] = None
                counts[rec["status"]] += 1
                g = rec.get("grad", "")
                if g:
                    grads["unsupported" if g.startswith("unsupported") else g] = grads.get(
                        "unsupported" if g.startswith("unsupported") else g, 0) + 1
                next_start[w] = rec["seed"] + a.workers
                if a.count:
                    remaining[w] -= 1
                if rec["status"] in ("mismatch", "grad_fail", "error"):
                    failures.append(rec)
                    _report_failure(rec, a.log)
                continue
            # the worker ended: normally, or by a crash in the middle of a program
            sel.unregister(key.fileobj)
            p = procs[w]
            p.wait()
            if current[w] is not None:
                seed = current[w]
                counts["crash"] += 1
                rec = {"seed": seed, "status": "crash", "detail": f"worker exit code {p.returncode}",
                       "source": describe(generate(seed))}
                failures.append(rec)
                _report_failure(rec, a.log)
                next_start[w] = seed + a.workers
                current[w] = None
                if a.count:
                    remaining[w] -= 1
                if time.time() < deadline and (not a.count or remaining[w] > 0):
                    spawn(w)
                    sel.register(procs[w].stdout, selectors.EVENT_READ, w)
                    continue
            alive.discard(w)
    total = sum(counts.values())
    dt = time.time() - t0
    print(f"programs run: {total} in {dt:.0f} s (seeds from {a.seed}, {a.workers} worker(s))")
    print(f"  ok {counts['ok']}, skipped (ill-conditioned for every input) {counts['skip']}")
    print(f"  mismatches {counts['mismatch']}, gradient failures {counts['grad_fail']}, "
          f"errors {counts['error']}, crashes {counts['crash']}")
    checked = {g: v for g, v in sorted(grads.items()) if g.startswith("checked ")}
    print(f"  AD checks: {sum(checked.values())} ("
          + ", ".join(f"{g[8:]} {v}" for g, v in checked.items()) + f"), unsupported "
          f"{grads.get('unsupported', 0)}, not smooth at the point {grads.get('skip', 0)}")
    return 1 if failures else 0


def _report_failure(rec: dict[str, Any], log: Optional[str]) -> None:
    print(f"\n=== {rec['status'].upper()} seed {rec['seed']}: {rec['detail']}", flush=True)
    if rec.get("source"):
        print(rec["source"])
    if rec.get("trace"):
        print(rec["trace"])
    if log:
        with open(log, "a") as f:
            f.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    sys.exit(main())
