"""Common-subexpression elimination.

Two equations are merged when they have the same key: the primitive, the inputs (vars by
identity, literals by dtype and exact bits, so ``0.0`` and ``-0.0`` differ), the params, and the
output types.  Sub-functions in params (loop bodies, cond branches, fused bodies) are compared
*structurally*, up to renaming of their vars (:func:`util.func_key`), so two identical fused
reductions merge; comparing them by identity would never merge anything, since a valid function
cannot hold the same sub-function twice (its vars would be defined twice).

Output types are part of the key because an ``index`` with traced slice bounds gets a fresh
dim: two such equations are equal as computations but their results have different types,
and downstream types were derived from each one's own dim.

Inputs of commutative primitives are put in a canonical order first (``add mul and or eq ne``:
exact under IEEE 754 up to NaN payloads; ``maximum``/``minimum`` are *not* reordered: NumPy's
``maximum(-0.0, 0.0)`` is ``0.0`` but ``maximum(0.0, -0.0)`` is ``-0.0``).

Never merged: ``empty`` and ``full``, the allocations codegen may update in place after a
``set`` (merging two of them would make two buffers one storage).  Everything else is pure.
Sub-functions are processed recursively; being closed, they never share values with the
enclosing function.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Hashable, Optional

from ..core import Atom, Eqn, Func, Lit, Var
from ..primitives import BINARY, COMPARE, empty_p, full_p
from .util import lit_key, map_subfuncs, params_key, resolve

__all__ = ["cse", "NEVER_MERGE", "COMMUTATIVE"]

NEVER_MERGE = frozenset({empty_p, full_p})
COMMUTATIVE = frozenset({BINARY["add"], BINARY["mul"], BINARY["and"], BINARY["or"],
                         COMPARE["eq"], COMPARE["ne"]})


def cse(func: Func) -> Func:
    env: dict[Var, Atom] = {}
    order: dict[Var, int] = {p: k for k, p in enumerate(func.params)}
    seen: dict[Hashable, Eqn] = {}
    out: list[Eqn] = []

    def atom_key(a: Atom) -> Hashable:
        return lit_key(a) if isinstance(a, Lit) else ("var", order[a])

    for e in func.eqns:
        e = replace(e, inputs=tuple(resolve(env, a) for a in e.inputs))
        e = map_subfuncs(e, cse)
        key = _key(e, atom_key)
        if key is not None and key in seen:
            env.update(zip(e.outs, seen[key].outs))
            continue
        if key is not None:
            seen[key] = e
        out.append(e)
        for v in e.outs:
            order[v] = len(order)
    return replace(func, eqns=tuple(out), outs=tuple(resolve(env, a) for a in func.outs))


def _key(e: Eqn, atom_key) -> Optional[Hashable]:
    if e.prim in NEVER_MERGE:
        return None
    pk = params_key(e.params)
    if pk is None:
        return None
    ins = [atom_key(a) for a in e.inputs]
    if e.prim in COMMUTATIVE:
        ins.sort(key=repr)
    return (e.prim, tuple(ins), pk, tuple(v.type for v in e.outs))
