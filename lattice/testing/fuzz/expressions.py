"""Typed random expressions: the half of the generator below statements."""
from __future__ import annotations

import builtins
import random
from typing import Any, Callable, Optional, Sequence

from .program import (DIMS, FAMILIES, NEW_LANGUAGE, Var, bshape, _strong, promote,
                      promote_weak)


class Exprs:
    """The generator's state (random streams, scopes of typed values, the lines written so far)
    and its typed expressions: float, integer and boolean ones of a given shape, kept in each
    op's domain by construction.  :class:`~.generate.Gen` adds the statements."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)
        #: the choices added since (lt.prange loops, fills in ifs and inner loops, prange
        #: maxima, erf/erfc for some tanh, joins): a stream of their own, so that the rest
        #: of every seed's program is the one it was before them
        self.rp = random.Random(f"prange {seed}")
        #: the newer language (constructs.py: while, jumps, gathers, scatters, narrow dtypes)
        self.rn = random.Random(f"lang2 {seed}")
        #: does this seed's program use the newer language at all?  (its own stream: the
        #: programs of the seeds that do not are exactly the ones they were before it)
        self.new_language = random.Random(f"new language {seed}").random() < NEW_LANGUAGE
        #: argument writes (constructs.py: ``arg_write``): their own stream too
        self.rw = random.Random(f"arg writes {seed}")
        self.arg_names: tuple[str, ...] = ()
        self.arg_writes = True
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
            elif fn in ("sin", "cos", "exp", "log") and self.rp.random() < 0.3:
                # the wider math surface, drawn in place of a relative (the same domain)
                fn = self.rp.choice({"sin": ["arctan", "arcsinh"], "cos": ["arctan", "cosh"],
                                     "exp": ["exp2", "sinh"], "log": ["log2", "log10"]}[fn])
            src = a[0]
            dt = a[1]
            if dt.startswith("weak") and fn not in ("abs", "neg", "sq", "cube", "pow"):
                dt = "f64"  # lt.exp(2.0) is a traced f64 (as np.exp(2.0) is a strong float64)
            if fn in ("exp", "expm1", "exp2", "sinh", "cosh"):
                return (f"lt.{fn}(lt.clip({src}, -6.0, 6.0))", dt, a[2],
                        fn in ("exp", "exp2", "cosh"))
            if fn in ("log", "sqrt", "log2", "log10"):
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
