"""Structural checks of a :class:`Func`: SSA, scoping, closed sub-functions, and types.

``verify(func)`` raises :class:`VerifyError` naming the offending equation.  Types are
re-derived with the primitive's shape rule; a fresh dim (``?...``) matches any fresh dim,
since a rule invents new ones each time it runs.
"""
from __future__ import annotations

from .core import Func, Lit, Var, shape_rules, subfuncs
from .types import TensorType

__all__ = ["verify", "VerifyError"]


class VerifyError(AssertionError):
    pass


def _same(a: TensorType, b: TensorType) -> bool:
    if a.dtype is not b.dtype or len(a.shape) != len(b.shape):
        return False
    return all(x == y or (x.is_fresh and y.is_fresh) for x, y in zip(a.shape, b.shape))


def verify(func: Func) -> Func:
    _verify(func, set())
    return func


def _verify(func: Func, seen: set[Var]) -> None:
    scope: set[Var] = set()

    def define(v: Var, where: str) -> None:
        if v in seen:
            raise VerifyError(f"{func.name}: {v} defined twice ({where})")
        seen.add(v)
        scope.add(v)

    for p in func.params:
        define(p, "param")
    for k, e in enumerate(func.eqns):
        where = f"equation {k} ({e.prim.name})"
        for a in e.inputs:
            if isinstance(a, Var) and a not in scope:
                raise VerifyError(f"{func.name}: {where} uses a var not in scope")
            if not isinstance(a, (Var, Lit)):
                raise VerifyError(f"{func.name}: {where} has a non-atom input {a!r}")
        for _, sub in subfuncs(e):
            _verify(sub, seen)
        try:
            want = list(shape_rules[e.prim](*(a.type for a in e.inputs), **e.params))
        except Exception as exc:  # the rule's own message says what is wrong
            raise VerifyError(f"{func.name}: {where} is ill-typed: {exc}") from exc
        got = [v.type for v in e.outs]
        if len(want) != len(got) or not all(_same(w, g) for w, g in zip(want, got)):
            raise VerifyError(f"{func.name}: {where} has out types {got}, rule says {want}")
        for v in e.outs:
            define(v, where)
    for a in func.outs:
        if isinstance(a, Var) and a not in scope:
            raise VerifyError(f"{func.name}: output uses a var not in scope")
