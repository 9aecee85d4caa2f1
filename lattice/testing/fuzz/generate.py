"""Random programs from one seed: statements (assignments, reductions, products, indexing,
array creation, stores), loops (scalar, map, row, ``lt.prange``), branches, blocked windows,
calls of helper kernels, and the kernel around them (:func:`generate`); :func:`make_args` draws
inputs that fit a program's sizes."""
from __future__ import annotations

import builtins
import random
from typing import Any, Optional

import numpy as np

from .constructs import ARG_WRITES, INTS, SHARE, Constructs, sum_dtype
from .program import (_NP_OF, DIMS, PAR_SIZES, PAR_SMALL, SIZES, TILE_SIZES, Program, Var, bshape,
                      promote)


class Gen(Constructs):
    """Draws one program.  Every expression is typed statically (dtype, shape) so what it
    writes is well typed; values are kept in each op's domain by construction."""

    # ---- statements
    def stmt(self, budget: int) -> None:
        r = self.r
        if (self.new_language and self.family != "parallel" and self.depth < 2
                and self.rn.random() < SHARE):
            return self.new_stmt(budget)
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
        elif fn == "sum":
            dt = sum_dtype(v.dtype)
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
            if self.rp.random() < 0.5:
                # the same shape through an index array with repeats (a gather), drawn from
                # the choices' own stream so the rest of the program is unchanged
                n = f"{v.name}.shape[{ax}]"
                parts[ax] = f"(lt.arange({n}) * 2 + 1) % {n}"
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
            dt = sum_dtype(v.dtype) if fn == "sum" else v.dtype
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
        if not t.is_float and t.dtype not in ("i64", "i32"):
            # a narrow or unsigned target: i64 values convert explicitly (u64 + i64 is f64)
            src = f"lt.astype({src}, lt.{t.dtype})"
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
        child.rp, child.rn, child.new_language = self.rp, self.rn, self.new_language
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
            if not self.new_language:
                pass
            elif dt in ("i64", "i32") and self.rn.random() < 0.6:
                dt = self.rn.choice(INTS)  # the narrow and unsigned integers
            elif dt == main_float and p and self.rn.random() < 0.08:
                dt = "f16"
            name = "abcd"[p]
            v = Var(name, dt, sh, owned=False)
            params.append(v)
            names.append(name)
            self.scopes[0].append(v)
        if not any(v.is_float for v in params):
            params[0].dtype = main_float
        if self.new_language and self.family != "parallel" and self.rn.random() < 0.35:
            # an integer array to index with, shift by and mix into bit operations
            v = Var("q", self.rn.choice(INTS + ("i64",)), (self.rn.choice(["n", "m"]),))
            params.append(v)
            names.append(v.name)
            self.scopes[0].append(v)
        if (self.new_language and any(v.dtype == main_float for v in params)
                and self.rn.random() < 0.3):
            # early returns may be drawn: every one converts to the final loss's dtype
            self.ret_dtype = main_float
        writes = (self.arg_writes and self.new_language and self.family != "parallel"
                  and self.rw.random() < ARG_WRITES)
        self.arg_names = tuple(names) if writes else ()
        wrote = False
        for _ in range(r.randint(4, 8) if self.family == "parallel" else r.randint(2, 7)):
            self.stmt(3)
            if writes and self.rw.random() < 0.4:
                self.arg_write()
                wrote = True
        if writes and not wrote:
            self.arg_write()
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
        if r.random() < 0.35 or self.ret_dtype is not None:
            # a scalar loss over everything float: the gradient-checkable form (an f32 one
            # in f32 programs)
            fl = [v for v in self.scopes[0] if v.is_float and v.dtype == main_float]
            if fl and any(p.dtype == main_float for p in params):
                terms = " + ".join(f"lt.sum({v.name})" if v.ndim else v.name
                                   for v in fl[-3:])
                for v in self.must_use:  # (converted: the loss keeps its dtype)
                    if v not in fl[-3:]:
                        terms += f" + lt.astype({v.name}, lt.{main_float})"
                self.emit(f"loss = {terms}")
                self.emit("return loss")
                grad_prog = True
        if not grad_prog:
            outs += [v for v in self.must_use if v not in outs]
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


def generate(seed: int, new_language: Optional[bool] = None,
             arg_writes: bool = True) -> Program:
    """The program for ``seed`` (deterministic).  ``new_language=False``: the program the seed
    drew before the newer language was generated (regression tests of older seeds pin it);
    ``arg_writes=False``: the one it drew before argument writes were."""
    g = Gen(seed)
    if new_language is not None:
        g.new_language = new_language
    g.arg_writes = arg_writes
    return g.program()


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
            if v.dtype not in ("i64", "i32") and rng.random() < 0.5:
                info = np.iinfo(_NP_OF[v.dtype])  # the narrow types' whole range
                a = rng.integers(info.min, info.max, shape, dtype=_NP_OF[v.dtype],
                                 endpoint=True)
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
