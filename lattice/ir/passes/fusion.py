"""Elementwise + reduction fusion into ``fused`` equations.

A *group* is a set of equations that becomes one ``fused`` equation (contract: the docstring of
``_fused_rule`` in :mod:`lattice.ir.primitives`).  Groups are found per function, recursively
inside loop bodies and cond branches, walking the equations from last to first:

* A **root** is either a reduction (``reduce_sum``/``reduce_max``/``reduce_min``) whose operand
  is made by an elementwise equation used by nothing else, or an elementwise equation with a
  non-scalar result.  The group's ``space`` is the shape of the reduction's operand, or of the
  elementwise root's result; a reduction root keeps its ``axes`` (any subset: ``sum(x*x, 1)``
  fuses into a row reduction).
* The group then grows backwards: the equation defining an input of a member joins when it is
  elementwise, its result has exactly the type shape ``space`` (no smaller: an op on a
  broadcast operand, like ``exp(v)`` in ``exp(v)[None, :] * X``, would be recomputed once per
  row; it stays outside and is an input instead), no other equation outside the group uses its
  result, and it is not a function output.  Candidates are visited highest index first, so all
  users of a candidate that could join have been decided before it is.
* An elementwise group of one equation stays as it is (a one-op ``fused`` adds nothing the
  codegen's elementwise lowering lacks); a reduction group needs at least one elementwise
  member (a bare ``reduce_sum(x)`` stays).

The ``fused`` equation takes the group's external vars (in order of first use, each once) and
replaces the root, reusing its output var; since members' results are used only inside the
group, and external inputs are defined before the root, that position is valid.  The body
re-creates each member on scalars: same primitive and params, literals kept as literals, fresh
vars of scalar type with the member's dtype.

Scalar equations are never fused: codegen keeps scalars in registers, and a scalar feeding a
group is just an input that broadcasts.
"""
from __future__ import annotations

import heapq
from dataclasses import replace

from ..core import Atom, Eqn, Func, Var
from ..primitives import ELEMENTWISE, REDUCTIONS, cond_p, fused_p, loop_p, while_p
from ..types import scalar
from .util import def_use, map_subfuncs

__all__ = ["fusion", "FUSABLE_REDUCTIONS"]

FUSABLE_REDUCTIONS = {REDUCTIONS[k]: k for k in ("sum", "max", "min", "prod")}


def fusion(func: Func) -> Func:
    eqns = [map_subfuncs(e, fusion) if e.prim in (loop_p, cond_p, while_p) else e
            for e in func.eqns]
    producer, users, escaping = def_use(eqns, func.outs)

    taken: set[int] = set()
    fused_at: dict[int, Eqn] = {}
    for r in reversed(range(len(eqns))):
        if r in taken:
            continue
        e = eqns[r]
        if e.prim in FUSABLE_REDUCTIONS:
            space = e.inputs[0].type.shape
        elif e.prim in ELEMENTWISE:
            space = e.outs[0].type.shape
        else:
            continue
        if not space:
            continue
        members = _grow(r, space, eqns, producer, users, escaping, taken)
        n_ew = len(members) - (e.prim in FUSABLE_REDUCTIONS)
        if n_ew < (1 if e.prim in FUSABLE_REDUCTIONS else 2):
            continue
        taken |= members
        fused_at[r] = _build(sorted(members), eqns, space)

    out = [fused_at.get(i, e) for i, e in enumerate(eqns) if i in fused_at or i not in taken]
    return replace(func, eqns=tuple(out))


def _grow(root: int, space: tuple, eqns: list[Eqn], producer: dict[Var, int],
          users: dict[Var, set[int]], escaping: set[Var], taken: set[int]) -> set[int]:
    members = {root}
    heap: list[int] = []

    def push_producers(e: Eqn) -> None:
        for a in e.inputs:
            if isinstance(a, Var) and a in producer:
                heapq.heappush(heap, -producer[a])

    push_producers(eqns[root])
    while heap:
        j = -heapq.heappop(heap)
        if j in members or j in taken:
            continue
        e = eqns[j]
        if e.prim not in ELEMENTWISE or e.outs[0].type.shape != space:
            continue
        v = e.outs[0]
        if v in escaping or not users[v] <= members:
            continue
        members.add(j)
        push_producers(e)
    return members


def _build(members: list[int], eqns: list[Eqn], space: tuple) -> Eqn:
    root = eqns[members[-1]]
    reduce = FUSABLE_REDUCTIONS.get(root.prim)
    ew = members[:-1] if reduce else members
    ext: list[Var] = []
    local: dict[Var, Atom] = {}
    params: list[Var] = []
    body_eqns: list[Eqn] = []
    for j in ew:
        e = eqns[j]
        ins: list[Atom] = []
        for a in e.inputs:
            if isinstance(a, Var) and a not in local:
                p = Var(scalar(a.type.dtype))
                ext.append(a)
                params.append(p)
                local[a] = p
            ins.append(local[a] if isinstance(a, Var) else a)
        (v,) = e.outs
        nv = Var(scalar(v.type.dtype))
        local[v] = nv
        body_eqns.append(Eqn(e.prim, tuple(ins), dict(e.params), (nv,), e.loc))
    result = root.inputs[0] if reduce else root.outs[0]
    body = Func(tuple(params), tuple(body_eqns), (local[result],), "fused")
    return Eqn(fused_p, tuple(ext),
               {"body": body, "space": tuple(space), "reduce": reduce,
                "axes": tuple(root.params["axes"]) if reduce else ()},
               root.outs, root.loc)
