"""Row-reduce fusion: a full reduction of ``f(x @ w, ...)`` into one ``rowreduce`` equation.

The patterns (after elementwise fusion and the row pass)::

    z = matmul(x, w)                      x: (n, d), w: (d,)
    [v = f(z, *extras)]                   optional: one elementwise op or a fused map over (n,)
    r = argmax(v) | argmin(v)             axis None or 0
      | reduce_sum/max/min(v, axes=(0,))

    z = matmul(x, w)
    r = fused(z, *extras; body, reduce=sum/max/min, axes=(0,))   space (n,)

become ``r = rowreduce(x, w, *extras; body, reduce)``: the dot products and the body per
block of rows, and the reduction of each chunk of rows right after it, while its values are in
cache; the chunks' results are combined in order.  So when the kernel is parallel, the body
and the reduction run in the matrix-vector product's parallel loop instead of after it, on
one thread (a reduction of one value per row is usually too small to be split on its own).
``argmax(E @ q)``, ``max(E @ q)``, ``sum(exp(E @ q - c))`` are examples.

Conditions: ``z`` (and ``v``) are used only by the next equation of the chain and are not
function outputs; ``z``, ``v`` and the space of a fused reduction are one shape (a row count of
literal 1 broadcast against more rows is left alone).  The ``rowreduce`` equation takes the
reduction's place and output var; its inputs (``x``, ``w``, the extras) are defined before the
removed equations, so that position is valid.  Contract of the equation: the docstring of
``_rowreduce_rule`` in :mod:`lattice.ir.primitives`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from ..core import Atom, Eqn, Func, Var
from ..primitives import (ELEMENTWISE, REDUCTIONS, argmax_p, argmin_p, cond_p, fused_p, loop_p,
                          matmul_p, rowreduce_p, while_p)
from ..types import scalar
from .rowpass import _body
from .util import def_use, map_subfuncs

__all__ = ["rowreduce"]

_FULL = {REDUCTIONS[k]: k for k in ("sum", "max", "min")}
_ARG = {argmax_p: "argmax", argmin_p: "argmin"}


def rowreduce(func: Func) -> Func:
    eqns = [map_subfuncs(e, rowreduce) if e.prim in (loop_p, cond_p, while_p) else e
            for e in func.eqns]
    producer, users, escaping = def_use(eqns, func.outs)
    taken: set[int] = set()
    new_at: dict[int, Eqn] = {}
    for k in reversed(range(len(eqns))):
        if k in taken:
            continue
        m = _match(k, eqns, producer, users, escaping, taken)
        if m is None:
            continue
        removed, eq = m
        taken |= removed | {k}
        new_at[k] = eq
    if not new_at and all(a is b for a, b in zip(eqns, func.eqns)):
        return func
    out = [new_at.get(i, e) for i, e in enumerate(eqns) if i in new_at or i not in taken]
    return replace(func, eqns=tuple(out))


def _only_use(v: Atom, k: int, users: dict[Var, set[int]], escaping: set[Var]) -> bool:
    return isinstance(v, Var) and users[v] == {k} and v not in escaping


def _matvec(v: Atom, producer: dict[Var, int], eqns: list[Eqn], taken: set[int]
            ) -> Optional[int]:
    """Index of the ``matrix @ vector`` equation making ``v``, if any."""
    j = producer.get(v) if isinstance(v, Var) else None
    if j is None or j in taken:
        return None
    e = eqns[j]
    if e.prim is not matmul_p or e.inputs[0].type.ndim != 2 or e.inputs[1].type.ndim != 1:
        return None
    return j


def _match(k: int, eqns: list[Eqn], producer: dict[Var, int], users: dict[Var, set[int]],
           escaping: set[Var], taken: set[int]) -> Optional[tuple[set[int], Eqn]]:
    e = eqns[k]
    if e.prim in _ARG:
        if e.params["axis"] not in (None, 0) or e.inputs[0].type.ndim != 1:
            return None
        kind = _ARG[e.prim]
    elif e.prim in _FULL:
        if tuple(e.params["axes"]) != (0,) or e.inputs[0].type.ndim != 1:
            return None
        kind = _FULL[e.prim]
    elif e.prim is fused_p:
        if e.params["reduce"] is None or tuple(e.params["axes"]) != (0,) \
                or len(e.params["space"]) != 1:
            return None
        kind = e.params["reduce"]
        for inp in e.inputs:
            j = _matvec(inp, producer, eqns, taken)
            if (j is not None and _only_use(inp, k, users, escaping)
                    and inp.type.shape == tuple(e.params["space"])):
                z = eqns[j].outs[0]
                body, extras = _body(e, z)
                return {j}, _eqn(eqns[j], body, extras, kind, e)
        return None
    else:
        return None
    (v,) = e.inputs
    if not _only_use(v, k, users, escaping):
        return None
    j = _matvec(v, producer, eqns, taken)
    if j is not None:  # reduce(x @ w)
        zp = Var(scalar(v.type.dtype))
        return {j}, _eqn(eqns[j], Func((zp,), (), (zp,), "rowreduce"), [], kind, e)
    m = producer.get(v)  # reduce(f(x @ w, ...))
    if m is None or m in taken:
        return None
    f = eqns[m]
    if f.prim is fused_p:
        if f.params["reduce"] is not None or len(f.params["space"]) != 1:
            return None
    elif f.prim not in ELEMENTWISE:
        return None
    if f.outs[0].type.shape != v.type.shape:
        return None
    for inp in f.inputs:
        j = _matvec(inp, producer, eqns, taken)
        if j is not None and _only_use(inp, m, users, escaping) and inp.type.shape == v.type.shape:
            z = eqns[j].outs[0]
            body, extras = _body(f, z)
            return {j, m}, _eqn(eqns[j], body, extras, kind, e)
    return None


def _eqn(mv: Eqn, body: Func, extras: list[Atom], kind: str, root: Eqn) -> Eqn:
    x, w = mv.inputs
    return Eqn(rowreduce_p, (x, w, *extras), {"body": replace(body, name="rowreduce"),
                                               "reduce": kind}, root.outs, root.loc)
