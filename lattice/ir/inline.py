"""Re-emitting a :class:`Func` into the function being built, with fresh vars.

Vars are unique across a whole function tree (the verifier checks it), so a function can only be
copied into another one by renaming every var it defines, sub-functions included.  ``inline``
binds ``func``'s equations into the current :class:`~lattice.ir.core.Builder` with ``args`` for
its params and returns its outputs; ``clone_func`` returns an alpha-renamed copy;
``close_over`` turns a body traced *open* (reading vars of enclosing functions) into a closed
Func whose extra trailing params stand for those outer vars.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from .core import Atom, Builder, Eqn, Func, Lit, Var, current_builder

__all__ = ["inline", "clone_func", "close_over"]


def _rename_eqn(e: Eqn, env: dict[Var, Atom]) -> Eqn:
    inputs = tuple(env.get(a, a) if isinstance(a, Var) else a for a in e.inputs)
    params = dict(e.params)
    for k, v in e.params.items():
        if isinstance(v, Func):
            params[k] = clone_func(v)
    outs = tuple(Var(v.type) for v in e.outs)
    env.update(zip(e.outs, outs))
    return replace(e, inputs=inputs, params=params, outs=outs)


def clone_func(func: Func) -> Func:
    """An alpha-renamed copy: same code, every var (and every sub-function's var) fresh."""
    env: dict[Var, Atom] = {p: Var(p.type) for p in func.params}
    eqns = tuple(_rename_eqn(e, env) for e in func.eqns)
    outs = tuple(env.get(a, a) if isinstance(a, Var) else a for a in func.outs)
    return Func(tuple(env[p] for p in func.params), eqns, outs, func.name)  # type: ignore[misc]


def inline(func: Func, *args: Atom) -> tuple[Atom, ...]:
    """Append ``func``'s equations to the current builder with ``args`` as its params."""
    if len(args) != len(func.params):
        raise TypeError(f"{func.name} takes {len(func.params)} arguments, got {len(args)}")
    for p, a in zip(func.params, args):
        if p.type != a.type and not (isinstance(a, Lit) and p.type == a.type):
            raise TypeError(f"{func.name}: argument of type {a.type} for a param of {p.type}")
    env: dict[Var, Atom] = dict(zip(func.params, args))
    b = current_builder()
    for e in func.eqns:
        new = _rename_eqn(e, env)
        b.eqns.append(replace(new, loc=e.loc if e.loc is not None else b.loc))
    return tuple(env.get(a, a) if isinstance(a, Var) else a for a in func.outs)


def close_over(b: Builder, params: Sequence[Var], outs: Sequence[Atom], name: str,
               extra: Sequence[Var] = ()) -> tuple[Func, list[Var]]:
    """Close a traced body: outer vars it uses become trailing params.

    Returns the closed Func (params = ``params`` + one new param per outer var) and the outer
    vars, in the order of those new params.  ``extra`` outer vars are added first (so several
    bodies can share one operand list).
    """
    defined = set(params)
    free: dict[Var, None] = dict.fromkeys(extra)
    for e in b.eqns:
        for a in e.inputs:
            if isinstance(a, Var) and a not in defined:
                free.setdefault(a, None)
        defined.update(e.outs)
    for a in outs:
        if isinstance(a, Var) and a not in defined:
            free.setdefault(a, None)
    outer = list(free)
    fresh = {v: Var(v.type) for v in outer}

    def sub(a: Atom) -> Atom:
        return fresh.get(a, a) if isinstance(a, Var) else a

    eqns = tuple(replace(e, inputs=tuple(sub(a) for a in e.inputs)) for e in b.eqns)
    func = Func(tuple(params) + tuple(fresh[v] for v in outer), eqns,
                tuple(sub(a) for a in outs), name)
    return func, outer
