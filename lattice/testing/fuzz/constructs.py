"""The newer language in random programs: ``while`` loops with data-dependent exits, ``break``
/ ``continue`` / early ``return`` in loops and nested branches, ``for`` over arrays,
``enumerate``, ``zip``, ``reversed`` and negative-step ranges, gathers (``x[idx]``, ``X[idx]``,
``X[:, idx]``, ``lt.take``), reduced boolean masks, scatter-adds and masked stores into local
arrays, and the narrow integer and float dtypes with bit operations.

Every choice here is drawn from a stream of its own (``self.rn``), so the share of these
statements is stable and a seed's program without them is the one it was before.
"""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .expressions import Exprs
from .program import _NP_OF, _OF_NP, Var

#: integer dtypes the narrow-integer statements draw from
INTS = ("i8", "i16", "i32", "u8", "u16", "u32", "u64")
_BITS = {"i8": 8, "i16": 16, "i32": 32, "i64": 64, "u8": 8, "u16": 16, "u32": 32, "u64": 64}
#: the share of statements drawn from this module (outside the parallel family)
SHARE = 0.3
#: the share of the newer-language programs (outside the parallel family) that store into
#: their arguments, numba-style (:meth:`Constructs.arg_write`)
ARG_WRITES = 0.3


def np_result(*parts: Any) -> str:
    """NumPy 2's promotion of dtype names and weak Python numbers, as a dtype name."""
    return _OF_NP[np.result_type(*(np.dtype(_NP_OF[p]) if isinstance(p, str) else p
                                   for p in parts))]


def sum_dtype(dt: str) -> str:
    """The dtype of ``lt.sum`` over ``dt`` (NumPy's accumulator)."""
    return _OF_NP[np.sum(np.zeros(1, _NP_OF[dt])).dtype]


class Constructs(Exprs):
    """Statements of the newer language (see the module docstring)."""

    # set by the generator: the dtype every early ``return`` converts to (the program then
    # ends with a scalar loss of that dtype), or None where a return may not be drawn
    ret_dtype: Optional[str] = None
    #: values the program must return (or add to its loss): a statement that may raise is
    #: kept live, since lattice drops dead code and the error with it while Python raises
    must_use: tuple = ()

    def pickn(self, items: Sequence[Any]) -> Any:
        return self.rn.choice(list(items))

    def new_stmt(self, budget: int) -> None:
        kinds = ["while", "while", "jump_for", "jump_for", "iter_for", "gather", "gather",
                 "mask", "scatter", "scatter", "bits", "bits"]
        if self.ret_dtype is not None and self.depth == 0:
            kinds += ["early_return"]
        getattr(self, "n_" + self.pickn(kinds))(budget)

    # ---- helpers
    def _fvec(self) -> Optional[Var]:
        vs = self.find(lambda v: v.is_float and v.ndim == 1 and v.shape[0] != 1)
        return self.pickn(vs) if vs else None

    def _acc(self) -> tuple[str, str]:
        """A fresh float accumulator (name, dtype), initialised."""
        acc = self.fresh("s")
        dt = self.pickn(["f64", "f64", "f32"])
        self.emit(f"{acc} = lt.full((), 0.0, lt.f32)" if dt == "f32" else f"{acc} = 0.0")
        return acc, dt

    def _open(self, header: str, counter: Optional[tuple] = None) -> None:
        self.emit(header)
        self.ind += 1
        self.scopes.append([])
        if counter:
            self.loopvars.append(counter)
        self.depth += 1

    def _close(self, counter: bool = False) -> None:
        self.depth -= 1
        if counter:
            self.loopvars.pop()
        self.scopes.pop()
        self.ind -= 1

    def _thresh(self) -> str:
        return self.pickn(["1.0", "1.5", "0.5", "-0.5", "0.0"])

    def _maybe_return(self, acc: str) -> None:
        """Sometimes an early ``return`` inside the loop (or a branch of it)."""
        if self.ret_dtype is not None and self.rn.random() < 0.35:
            self.emit(f"if {acc} > {self.pickn(['2.0', '4.0', '8.0'])}:")
            self.emit(f"    return lt.astype({acc} * 0.5, lt.{self.ret_dtype})")

    # ---- while loops: a bounded counter in the condition plus a data-dependent exit
    def n_while(self, budget: int) -> None:
        v = self._fvec()
        if v is None:
            return self.n_bits(budget)
        d = v.shape[0]
        k = self.fresh("k")
        acc, dt = self._acc()
        self.emit(f"{k} = 0")
        form = self.pickn(["and", "break", "float"])
        x = f"{v.name}[{k}]"
        if form == "and":  # the right side reads x[k] only while k is in range
            self._open(f"while {k} < {v.name}.shape[0] and {x} < {self._thresh()}:", (k, d))
            self.emit(f"{acc} = lt.astype({acc} + {self._elem(x)}, lt.{dt})")
            self.emit(f"{k} = {k} + 1")
        elif form == "break":
            self._open(f"while {k} < {v.name}.shape[0]:", (k, d))
            if self.rn.random() < 0.5:
                self.emit(f"if {x} > {self._thresh()}:")
                self.emit(f"    {k} = {k} + 1")
                self.emit("    continue")
            self.emit(f"{acc} = lt.astype({acc} + {self._elem(x)}, lt.{dt})")
            self.emit(f"if {acc} > {self.pickn(['1.0', '2.0', '3.0'])}:")
            self.emit("    break")
            self._maybe_return(acc)
            self.emit(f"{k} = {k} + 1")
        else:  # a float condition that halves towards 0, with the counter as a bound too
            self.emit(f"{acc} = lt.astype(lt.abs(lt.sum({v.name})) + 1.0, lt.{dt})")
            self._open(f"while {acc} > {self.pickn(['0.1', '0.01'])} and {k} < "
                       f"{v.name}.shape[0] + 3:", None)
            self.emit(f"{acc} = lt.astype({acc} * {self.pickn(['0.5', '0.25'])}, lt.{dt})")
            self.emit(f"{k} = {k} + 1")
        self._close(counter=form != "float")
        self.define(Var(acc, dt, ()))
        self.define(Var(k, "i64", ()))
        if self.rn.random() < 0.5:
            # where the loop stopped, read in a traced branch: one index made inside the
            # branch, the other outside (the transpose of such a cond once crashed)
            self.need(d, 1)
            j, t = self.fresh("j"), self.fresh("t")
            self.emit(f"{j} = lt.minimum({k}, {v.name}.shape[0] - 1)")
            self.emit(f"if {acc} > {self._thresh()}:")
            self.emit(f"    {t} = {v.name}[lt.maximum({j} - 1, 0)] * 2.0")
            self.emit("else:")
            self.emit(f"    {t} = {v.name}[{j}] * 3.0")
            self.define(Var(t, v.dtype, ()))

    def _elem(self, x: str) -> str:
        return self.pickn([x, f"{x} * {x}", f"lt.tanh({x})", f"lt.exp(lt.clip({x}, -3.0, 3.0))"])

    # ---- for loops with break / continue / return, over ranges of either step sign
    def n_jump_for(self, budget: int) -> None:
        v = self._fvec()
        if v is None:
            return self.n_bits(budget)
        d = v.shape[0]
        i = self.fresh("i")
        acc, dt = self._acc()
        n = f"{v.name}.shape[0]"
        rng = self.pickn([n, f"{n} - 1, -1, -1", f"{n} - 1, -1, -2", f"0, {n}, 2",
                          f"1, {n}"])
        loop = "range"
        self._open(f"for {i} in {loop}({rng}):", (i, d))
        x = f"{v.name}[{i}]"
        if self.rn.random() < 0.5:
            self.emit(f"if {x} < {self._thresh()}:")
            self.emit("    continue")
        if self.rn.random() < 0.4 and self.depth < 2:
            # a nested loop with its own break: only the inner loop is left
            j = self.fresh("i")
            self._open(f"for {j} in range({i}, -1, -1):", (j, d))
            self.emit(f"{acc} = lt.astype({acc} + {v.name}[{j}] * 0.25, lt.{dt})")
            self.emit(f"if {v.name}[{j}] > {self._thresh()}:")
            self.emit("    break")
            self._close(counter=True)
        self.emit(f"{acc} = lt.astype({acc} + {self._elem(x)}, lt.{dt})")
        self._maybe_return(acc)
        if self.rn.random() < 0.7:
            self.emit(f"if {acc} > {self.pickn(['1.0', '2.0', '5.0'])}:")
            if self.rn.random() < 0.5:
                self.emit(f"    if {x} > 0.0:")
                self.emit("        break")
            else:
                self.emit("    break")
        self._close(counter=True)
        self.define(Var(acc, dt, ()))

    # ---- for over arrays, enumerate, zip, reversed
    def n_iter_for(self, budget: int) -> None:
        v = self._fvec()
        mats = self.find(lambda u: u.is_float and u.ndim == 2)
        if v is None and not mats:
            return self.n_bits(budget)
        acc, dt = self._acc()
        if mats and (v is None or self.rn.random() < 0.3):
            m = self.pickn(mats)
            row = self.fresh("row")
            it = self.pickn([m.name, f"reversed({m.name})"])
            self._open(f"for {row} in {it}:")
            self.emit(f"{acc} = lt.astype({acc} + lt.sum(lt.tanh({row})), lt.{dt})")
            if self.rn.random() < 0.5:
                self.emit(f"if {acc} > {self.pickn(['1.0', '3.0'])}:")
                self.emit("    break")
            self._close()
            self.define(Var(acc, dt, ()))
            return
        assert v is not None
        same = [u for u in self.find(lambda u: u.ndim == 1 and u.shape[0] == v.shape[0]
                                     and u.is_float)]
        a, b, c = self.fresh("e"), self.fresh("e"), self.fresh("c")
        form = self.pickn(["plain", "enumerate", "enumerate_start", "zip", "zip_range",
                           "enum_zip", "reversed"])
        if form == "plain":
            head, x = f"for {a} in {v.name}:", a
        elif form == "enumerate":
            head, x = f"for {c}, {a} in enumerate({v.name}):", f"{a} * {c}"
        elif form == "enumerate_start":
            head, x = f"for {c}, {a} in enumerate({v.name}, start=1):", f"{a} / {c}"
        elif form == "zip":
            w = self.pickn(same)
            head, x = f"for {a}, {b} in zip({v.name}, {w.name}):", f"{a} * {b}"
        elif form == "zip_range":
            head, x = f"for {c}, {a} in zip(range({v.name}.shape[0]), {v.name}):", f"{a} + {c}"
        elif form == "enum_zip":
            w = self.pickn(same)
            head, x = (f"for {c}, ({a}, {b}) in enumerate(zip({v.name}, {w.name})):",
                       f"lt.maximum({a}, {b}) * {c}")
        else:
            head, x = f"for {a} in reversed({v.name}):", f"{a} * 0.5"
        self._open(head)
        if self.rn.random() < 0.4:
            self.emit(f"if {a} > {self._thresh()}:")
            self.emit("    continue")
        self.emit(f"{acc} = lt.astype({acc} * 0.5 + {x}, lt.{dt})")
        self._maybe_return(acc)
        if self.rn.random() < 0.4:
            self.emit(f"if {acc} > {self.pickn(['1.0', '4.0'])}:")
            self.emit("    break")
        self._close()
        self.define(Var(acc, dt, ()))

    # ---- an early return in nested branches at the kernel's own level
    def n_early_return(self, budget: int) -> None:
        scal = self.find(lambda v: v.is_float and v.ndim == 0)
        v = self._fvec()
        if not scal and v is None:
            return self.n_jump_for(budget)
        if scal:
            a = self.pickn(scal).name
        else:
            assert v is not None
            a = f"lt.sum({v.name})"
        self.emit(f"if {a} > {self._thresh()}:")
        self.ind += 1
        if self.rn.random() < 0.6:
            self.emit(f"if {a} < {self.pickn(['2.0', '3.0'])}:")
            self.emit(f"    return lt.astype({a} * 2.0, lt.{self.ret_dtype})")
            self.emit(f"return lt.astype({a} - 1.0, lt.{self.ret_dtype})")
        else:
            self.emit(f"return lt.astype(lt.tanh({a}), lt.{self.ret_dtype})")
        self.ind -= 1

    # ---- index arrays
    def _index_for(self, d: Any) -> Optional[tuple[str, tuple]]:
        """An integer index array into an axis of size ``d`` (values in range), with repeats,
        and the dims of its shape: from an integer array (``% d``, or ``& 3`` for a small
        unsigned one), an argsort, or an arange."""
        ints = self.find(lambda u: u.ndim == 1 and u.dtype in _BITS)
        floats = self.find(lambda u: u.ndim == 1 and u.is_float)
        opts = ["arange"] + (["int", "int"] if ints else []) + (["argsort"] if floats else [])
        form = self.pickn(opts)
        self.need(d, 1)
        n = self._size_of(d)
        if n is None:
            return None
        if form == "int":
            u = self.pickn(ints)
            if u.dtype.startswith("u") and self.rn.random() < 0.5 and not isinstance(d, int):
                self.need(d, 4)
                return f"({u.name} & 3)", u.shape
            return f"(lt.astype({u.name}, lt.i64) % {n})", u.shape
        if form == "argsort":
            u = self.pickn(floats)
            return f"(lt.argsort({u.name}) % {n})", u.shape
        src = self.find(lambda u: u.ndim >= 1 and u.shape[0] != 1)
        if not src:
            return None
        u = self.pickn(src)
        return f"((lt.arange({u.name}.shape[0]) * 3 + 1) % {n})", (u.shape[0],)

    def _size_of(self, d: Any) -> Optional[str]:
        if isinstance(d, int):
            return str(d)
        for u in self.all_vars():
            for ax, dd in enumerate(u.shape):
                if dd == d:
                    return f"{u.name}.shape[{ax}]"
        return None

    def n_gather(self, budget: int) -> None:
        arrs = self.find(lambda u: u.ndim in (1, 2) and u.dtype != "bool")
        if not arrs:
            return self.n_bits(budget)
        v = self.pickn(arrs)
        ax = 0 if v.ndim == 1 or self.rn.random() < 0.6 else 1
        got = self._index_for(v.shape[ax])
        if got is None:
            return self.n_bits(budget)
        idx, ish = got
        form = self.pickn(["index", "index", "take"])
        if v.ndim == 1:
            src = f"{v.name}[{idx}]" if form == "index" else f"lt.take({v.name}, {idx})"
            sh = ish
        elif ax == 0:
            src = f"{v.name}[{idx}]" if form == "index" else f"lt.take({v.name}, {idx}, axis=0)"
            sh = ish + v.shape[1:]
        else:
            src = (f"{v.name}[:, {idx}]" if form == "index"
                   else f"lt.take({v.name}, {idx}, axis=1)")
            sh = (v.shape[0],) + ish
        name = self.fresh("g")
        self.emit(f"{name} = {src}")
        self.define(Var(name, v.dtype, sh, owned=True))

    def n_mask(self, budget: int) -> None:
        arrs = self.find(lambda u: u.is_float and u.ndim in (1, 2))
        if not arrs:
            return self.n_bits(budget)
        v = self.pickn(arrs)
        name = self.fresh("r")
        c = self._thresh()
        form = self.pickn(["sum", "sum", "max", "pair", "where", "mean"])
        if form == "max" and self.depth:
            form = "sum"  # a value inside a loop or branch may be dead (seed 227)
        if form == "pair" and v.ndim == 1:
            same = self.find(lambda u: u.is_float and u.shape == v.shape)
            w = self.pickn(same)
            m = self.fresh("m")
            self.emit(f"{m} = {v.name} > {c}")
            self.emit(f"{name} = ({v.name}[{m}] * {w.name}[{m}]).sum()")
            dt = np_result(v.dtype, w.dtype)
        elif form == "max":  # ValueError when nothing is selected: every evaluator must raise
            self.emit(f"{name} = {v.name}[{v.name} <= {c}].max()")
            dt = v.dtype
            self.must_use = (*self.must_use, Var(name, dt, ()))
            self.define(self.must_use[-1])
            return
        elif form == "mean":
            self.emit(f"{name} = lt.mean({v.name}[{v.name} < {c}])")
            dt = v.dtype
        elif form == "where":
            self.emit(f"{name} = lt.sum(lt.where({v.name} > {c}, {v.name}, {v.name} * 0.5))")
            dt = v.dtype
        else:
            self.emit(f"{name} = {v.name}[{v.name} > {c}].sum()")
            dt = v.dtype
        self.define(Var(name, dt, ()))

    def n_scatter(self, budget: int) -> None:
        vecs = self.find(lambda u: u.ndim == 1 and u.shape[0] != 1)
        if not vecs:
            return self.n_bits(budget)
        v = self.pickn(vecs)
        d = v.shape[0]
        h = self.fresh("h")
        form = self.pickn(["add", "add", "count", "set", "mask", "mask_add"])
        if form in ("mask", "mask_add") and v.is_float:
            self.emit(f"{h} = lt.copy({v.name})")
            val = self.pickn(["0.5", "1.0", f"{v.name}[0]"])
            if val.endswith("[0]"):
                self.need(d, 1)
            op = "=" if form == "mask" else "+="
            self.emit(f"{h}[{v.name} > {self._thresh()}] {op} {val}")
            self.define(Var(h, v.dtype, v.shape, owned=True))
            return
        got = self._index_for(d)
        if got is None:
            return self.n_bits(budget)
        idx, ish = got
        vals = self.find(lambda u: u.is_float and u.shape == ish)
        if form == "count":
            self.emit(f"{h} = lt.zeros({v.name}.shape[0], lt.i64)")
            self.emit(f"{h}[{idx}] += 1")
            self.define(Var(h, "i64", (d,), owned=True))
            return
        self.emit(f"{h} = lt.zeros({v.name}.shape[0])")
        val = self.pickn(vals).name if vals and self.rn.random() < 0.7 else "1.5"
        op = "+=" if form == "add" else "="
        if op == "+=" and self.rn.random() < 0.3:
            op = "-="
        self.emit(f"{h}[{idx}] {op} {val}")
        self.define(Var(h, "f64", (d,), owned=True))

    # ---- narrow integers and bit operations
    def n_bits(self, budget: int) -> None:
        ints = self.find(lambda u: u.dtype in _BITS and u.ndim <= 2)
        src: Optional[tuple[str, str, tuple]] = None
        if ints and self.rn.random() < 0.8:
            u = self.pickn(ints)
            src = (u.name, u.dtype, u.shape)
        else:
            fl = self.find(lambda u: u.is_float and u.ndim <= 2)
            if not fl:
                return
            u = self.pickn(fl)
            dt = self.pickn(INTS)
            src = (f"lt.astype({u.name} * 8.0, lt.{dt})", dt, u.shape)
        e = self._bitexpr(src, 2)
        name = self.fresh("w")
        self.emit(f"{name} = {e[0]}")
        self.define(Var(name, e[1], e[2], owned=False))
        if self.rn.random() < 0.5:  # into the float world, or an exact integer result
            r = self.fresh("r")
            if self.rn.random() < 0.5:
                self.emit(f"{r} = lt.sum({name})")
                self.define(Var(r, sum_dtype(e[1]), ()))
            else:
                # f16 only for values it holds (a u16 can reach 65535 > f16's 65504)
                ft = self.pickn(["f64", "f32", "f16"] if e[1] in ("i8", "u8", "i16")
                                else ["f64", "f32"])
                self.emit(f"{r} = {name}.astype(lt.{ft}) * 0.125")
                self.define(Var(r, ft, e[2]))

    def _bitexpr(self, a: tuple, depth: int) -> tuple[str, str, tuple]:
        """(source, dtype, shape) of a bit-operation expression over ``a``; shift counts stay
        in ``[0, bits)`` (a count outside it is undefined in C: lattice defines it, but the
        point here is the common case)."""
        if depth <= 0:
            return a
        x = self._bitexpr(a, depth - 1)
        op = self.pickn(["&", "|", "^", "~", "<<", ">>", "+", "*", "other"])
        bits = _BITS[x[1]]
        if op == "~":
            return f"(~{x[0]})", x[1], x[2]
        if op in ("<<", ">>"):
            k = self.rn.randrange(0, min(bits, 8))
            cnts = [u for u in self.find(lambda u: u.dtype in _BITS and u.shape == x[2])]
            if cnts and self.rn.random() < 0.4:
                c = self.pickn(cnts)
                dt = np_result(x[1], c.dtype)
                if dt in _BITS:
                    return f"({x[0]} {op} ({c.name} & 7))", dt, x[2]
            return f"({x[0]} {op} {k})", x[1], x[2]
        if op == "other":
            others = [u for u in self.find(lambda u: u.dtype in _BITS
                                           and (u.shape == x[2] or u.ndim == 0))]
            if others:
                o = self.pickn(others)
                dt = np_result(x[1], o.dtype)
                if dt in _BITS:  # u64 with a signed type is f64: no bit operation
                    return f"({x[0]} {self.pickn(['&', '|', '^'])} {o.name})", dt, x[2]
            op = "^"
        lit = self.rn.randrange(0, 8)
        return f"({x[0]} {op} {lit})", x[1], x[2]

    # ---- argument writes, numba-style: drawn from a stream of their own (``self.rw``)
    def arg_write(self) -> None:
        """A store into an array argument: in place (``a += v``), an element, a recurrence
        over the rows that reads its own stores, a scatter-add, a masked store or an
        overlapping slice copy.  Later statements read the new contents; the runner compares
        the arguments after the call too."""
        rw = self.rw
        ps = [v for v in self.scopes[0] if v.name in self.arg_names and v.ndim >= 1
              and v.dtype != "bool"]
        if not ps:
            return
        p = rw.choice(ps)
        name, fl = p.name, p.is_float
        one = rw.choice(["0.5", "-1.25", "2.0"]) if fl else rw.choice(["1", "3"])
        form = rw.choice(["inplace", "elem", "loop", "loop", "scatter", "mask", "slice"])
        if form == "scatter" and p.ndim != 1:
            form = "mask"
        if form == "inplace":
            same = [u for u in self.all_vars() if u is not p and u.dtype == p.dtype
                    and u.shape == p.shape]
            src = rw.choice(same).name if same and rw.random() < 0.6 else one
            op = rw.choice(["+=", "*="] if fl else ["+=", "^=", "&="])
            self.emit(f"{name} {op} {src}")
        elif form == "elem":
            self.need(p.shape[0], 1)
            self.emit(f"{name}[0] = {name}[-1] {'* 0.5 + ' if fl else '+ '}{one}")
        elif form == "loop":
            i = self.fresh("i")
            self.emit(f"for {i} in range(1, {name}.shape[0]):")
            if fl:
                self.emit(f"    {name}[{i}] += {name}[{i} - 1] * 0.25")
            else:
                self.emit(f"    {name}[{i}] = {name}[{i}] ^ {name}[{i} - 1]")
        elif form == "scatter":
            self.need(p.shape[0], 1)
            self.emit(f"{name}[(lt.arange({name}.shape[0]) * 3 + 1) % {name}.shape[0]] "
                      f"{rw.choice(['+=', '-='])} {one}")
        elif form == "mask":
            # (a float value off the inputs' grid of halves: no ties with the unmasked ones)
            val = rw.choice(["-1.25", "0.75", "2.25"]) if fl else one
            self.emit(f"{name}[{name} > {'0.5' if fl else '2'}] = {val}")
        else:
            self.emit(f"{name}[1:] = {name}[:-1]" + (" * 0.5" if fl else ""))
        p.pos = False
