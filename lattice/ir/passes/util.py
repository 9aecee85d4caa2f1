"""Helpers shared by the passes: substitution, sub-function mapping, use sets, hashing keys.

Contracts:

* ``resolve(env, a)`` follows a chain of replacements ``old var -> new atom`` to its end; passes
  record replacements in one dict and apply them lazily, so a replacement may point at a var
  that is itself replaced later.
* ``lit_key`` tells apart every value a :class:`Lit` can hold, including ``0.0`` vs ``-0.0``
  (which ``Lit.__eq__`` conflates) and ``True`` vs ``1`` (different dtypes).
"""
from __future__ import annotations

import struct
from dataclasses import replace
from collections import defaultdict
from typing import Any, Callable, Hashable, Iterable, Mapping, Optional, Sequence

from ..core import Atom, Eqn, Func, Lit, Var, subfuncs

__all__ = ["resolve", "map_subfuncs", "used_vars", "def_use", "lit_key", "func_key",
           "params_key", "lit_equals"]


def resolve(env: Mapping[Var, Atom], a: Atom) -> Atom:
    while isinstance(a, Var) and a in env:
        a = env[a]
    return a


def map_subfuncs(eqn: Eqn, fn: Callable[[Func], Func]) -> Eqn:
    """``eqn`` with ``fn`` applied to every sub-function in its params (same eqn if none)."""
    subs = subfuncs(eqn)
    if not subs:
        return eqn
    params = dict(eqn.params)
    for k, f in subs:
        params[k] = fn(f)
    return replace(eqn, params=params)


def used_vars(eqns: Iterable[Eqn], outs: Iterable[Atom] = ()) -> set[Var]:
    """Vars read by ``eqns`` (top level only: sub-functions are closed) or returned in ``outs``."""
    used = {a for a in outs if isinstance(a, Var)}
    for e in eqns:
        used.update(a for a in e.inputs if isinstance(a, Var))
    return used


def def_use(eqns: Sequence[Eqn], outs: Iterable[Atom]
            ) -> tuple[dict[Var, int], dict[Var, set[int]], set[Var]]:
    """For a flat equation list: var -> index of its producer, var -> indices of its users, and
    the vars the function returns (which escape every fusion group)."""
    producer = {v: i for i, e in enumerate(eqns) for v in e.outs}
    users: dict[Var, set[int]] = defaultdict(set)
    for i, e in enumerate(eqns):
        for a in e.inputs:
            if isinstance(a, Var):
                users[a].add(i)
    return producer, users, {a for a in outs if isinstance(a, Var)}


def lit_key(lit: Lit) -> tuple:
    v = lit.value
    bits = (struct.pack("<d", v) if isinstance(v, float)
            else struct.pack("<dd", v.real, v.imag) if isinstance(v, complex) else v)
    return ("lit", lit.type.dtype.name, bits)


def lit_equals(a: Atom, value: Any) -> bool:
    """``a`` is a literal equal to ``value``, with the sign of a float zero significant."""
    if not isinstance(a, Lit):
        return False
    d = a.type.dtype
    if d.is_bool:
        return isinstance(value, bool) and a.value is value
    if isinstance(value, bool):
        return False
    if d.is_float:
        return lit_key(a) == lit_key(Lit(float(value), a.type))
    return isinstance(value, int) and a.value == value


def params_key(params: Mapping[str, Any]) -> Optional[Hashable]:
    """A hashable key for equation params (sub-functions compared structurally), or None."""
    items = []
    for k, v in sorted(params.items()):
        kv = _value_key(v)
        if kv is None:
            return None
        items.append((k, kv))
    return tuple(items)


def _value_key(v: Any) -> Optional[Hashable]:
    if isinstance(v, Func):
        return func_key(v)
    if isinstance(v, Lit):
        return lit_key(v)
    if isinstance(v, float):
        return ("float", struct.pack("<d", v))
    if isinstance(v, tuple):
        parts = tuple(_value_key(x) for x in v)
        return None if any(p is None for p in parts) else ("tuple",) + parts
    try:
        hash(v)
    except TypeError:
        return None
    return (type(v).__name__, v)


def func_key(func: Func) -> Optional[Hashable]:
    """A key equal for alpha-equivalent functions (same code up to renaming of vars)."""
    names: dict[Var, int] = {}

    def atom(a: Atom) -> Hashable:
        if isinstance(a, Lit):
            return lit_key(a)
        return ("var", names.get(a, -1))

    def define(v: Var) -> Hashable:
        names[v] = len(names)
        return v.type

    parts: list[Hashable] = [tuple(define(p) for p in func.params)]
    for e in func.eqns:
        pk = params_key(e.params)
        if pk is None:
            return None
        parts.append((e.prim, tuple(atom(a) for a in e.inputs), pk,
                      tuple(define(v) for v in e.outs)))
    parts.append(tuple(atom(a) for a in func.outs))
    return tuple(parts)
