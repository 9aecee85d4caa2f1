"""Deterministic text form of a :class:`Func` (used by ``inspect_ir`` and golden tests).

Vars are named in order of first definition (``%a, %b, ..., %z, %ba, ...``; the ``%`` keeps
them apart from dim names such as ``n`` in types), so printing the same function twice, or an
equal function built twice, gives the same text.
"""
from __future__ import annotations

from typing import Any

from .core import Atom, Func, Lit, Var
from .types import Dim, DType

__all__ = ["print_func"]


def _name(k: int) -> str:
    s = ""
    while True:
        s = chr(ord("a") + k % 26) + s
        k //= 26
        if k == 0:
            return s


class _Namer:
    def __init__(self) -> None:
        self.names: dict[Var, str] = {}

    def define(self, v: Var) -> str:
        n = self.names[v] = "%" + _name(len(self.names))
        return n

    def atom(self, a: Atom) -> str:
        if isinstance(a, Lit):
            return repr(a)
        return self.names.get(a, "<undefined>")


def _param(v: Any, namer: _Namer, indent: str) -> str:
    if isinstance(v, Func):
        return "{\n" + _body(v, namer, indent + "    ") + indent + "  }"
    if isinstance(v, (DType, Dim)):
        return str(v)
    if isinstance(v, tuple):
        inner = ", ".join(_param(x, namer, indent) for x in v)
        return f"({inner}{',' if len(v) == 1 else ''})"
    return repr(v)


def _body(func: Func, namer: _Namer, indent: str) -> str:
    lines = []
    ps = ", ".join(f"{namer.define(p)}:{p.type}" for p in func.params)
    lines.append(f"{indent}lambda {ps} ->")
    for e in func.eqns:
        params = ""
        if e.params:
            params = "[" + ", ".join(f"{k}={_param(v, namer, indent)}"
                                     for k, v in sorted(e.params.items())) + "]"
        ins = " ".join(namer.atom(a) for a in e.inputs)
        outs = ", ".join(f"{namer.define(v)}:{v.type}" for v in e.outs)
        lines.append(f"{indent}  {outs} = {e.prim.name}{params} {ins}".rstrip())
    lines.append(f"{indent}  return " + ", ".join(namer.atom(a) for a in func.outs))
    return "\n".join(lines) + "\n"


def print_func(func: Func) -> str:
    namer = _Namer()
    return f"func {func.name}\n" + _body(func, namer, "")
