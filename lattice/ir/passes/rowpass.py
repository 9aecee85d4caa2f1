"""Row-pass fusion: ``x.T @ f(x @ w, ...)`` into one ``rowpass`` equation (one read of ``x``).

The pattern (after elementwise fusion, so ``f`` is one ``fused`` map or one elementwise op)::

    z = matmul(x, w)                      x: (n, d), w: (d,)
    r = f(z, *extras)                     elementwise over (n,): a fused map or one op
    g = matmul(transpose(x), r)           or matmul(r, x)

becomes ``g[, z] = rowpass(x, w, *extras; body=f, keep_z)``: for each row, the dot product,
``f``, and the row's contribution to ``g``, while the row is in cache.  This is the gradient of
every generalised linear model's loss (``X.T @ (mu(X @ w) - y)``), hand-written or produced by
``lt.grad``; unfused it reads ``x`` twice, the second time column-wise.

Conditions: ``r`` is used only by the second matmul and is not a function output; ``x`` is the
same var in both matmuls; ``z`` may have other users (then ``keep_z``: the row pass stores
``z`` too), all of them at or after ``f`` (where the ``rowpass`` equation takes ``f``'s place).
Contract of the equation: the docstring of ``_rowpass_rule`` in :mod:`lattice.ir.primitives`.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

from ..core import Atom, Eqn, Func, Lit, Var
from ..primitives import (ELEMENTWISE, cond_p, fused_p, loop_p, matmul_p, rowpass_p, transpose_p,
                          while_p)
from ..types import scalar
from .util import def_use, map_subfuncs

__all__ = ["rowpass"]


def rowpass(func: Func) -> Func:
    eqns = [map_subfuncs(e, rowpass) if e.prim in (loop_p, cond_p, while_p) else e
            for e in func.eqns]
    producer, users, escaping = def_use(eqns, func.outs)
    taken: set[int] = set()
    new_at: dict[int, Eqn] = {}
    for k3, e3 in enumerate(eqns):
        m = _match(k3, e3, eqns, producer, users, escaping, taken)
        if m is None:
            continue
        k1, k2, eq = m
        taken |= {k1, k2, k3}
        new_at[k2] = eq
    if not new_at:  # keep what the loop bodies and branches gained
        return func if all(a is b for a, b in zip(eqns, func.eqns)) else replace(
            func, eqns=tuple(eqns))
    out = [new_at.get(i, e) for i, e in enumerate(eqns) if i in new_at or i not in taken]
    return replace(func, eqns=tuple(_schedule(out, func.params)))


def _schedule(eqns: list[Eqn], params: tuple[Var, ...]) -> list[Eqn]:
    """A stable topological order: each equation as early as in ``eqns`` unless an input is
    defined later (a user of ``z`` that came before the row pass moves after it).  Equations
    are pure, so any order respecting data dependencies means the same."""
    defined = set(params)
    out: list[Eqn] = []
    waiting: list[Eqn] = []

    def ready(e: Eqn) -> bool:
        return all(not isinstance(a, Var) or a in defined for a in e.inputs)

    for e in eqns:
        waiting.append(e)
        progress = True
        while progress:
            progress = False
            for w in list(waiting):
                if ready(w):
                    waiting.remove(w)
                    out.append(w)
                    defined.update(w.outs)
                    progress = True
                    break
    assert not waiting, "rowpass: dependency cycle"
    return out


def _match(k3: int, e3: Eqn, eqns: list[Eqn], producer: dict[Var, int],
           users: dict[Var, set[int]], escaping: set[Var], taken: set[int]
           ) -> Optional[tuple[int, int, Eqn]]:
    if e3.prim is not matmul_p or k3 in taken:
        return None
    a, b = e3.inputs
    if not (isinstance(a, Var) and isinstance(b, Var)):
        return None
    if a.type.ndim == 2 and b.type.ndim == 1:  # transpose(x) @ r
        t = producer.get(a)
        if t is None or eqns[t].prim is not transpose_p or tuple(eqns[t].params["perm"]) != (1, 0):
            return None
        x, r = eqns[t].inputs[0], b
    elif a.type.ndim == 1 and b.type.ndim == 2:  # r @ x
        x, r = b, a
    else:
        return None
    if not isinstance(x, Var) or not x.type.dtype.is_float:
        return None
    k2 = producer.get(r)
    if k2 is None or k2 in taken or users[r] != {k3} or r in escaping:
        return None
    e2 = eqns[k2]
    n = x.type.shape[0]
    if e2.prim is fused_p:
        if e2.params["reduce"] is not None or tuple(e2.params["space"]) != (n,):
            return None
    elif e2.prim not in ELEMENTWISE or e2.outs[0].type.shape != (n,):
        return None
    # z = x @ w among f's inputs
    k1 = None
    for inp in e2.inputs:
        if isinstance(inp, Var) and inp in producer:
            j = producer[inp]
            p = eqns[j]
            if (p.prim is matmul_p and p.inputs[0] is x and p.inputs[1].type.ndim == 1
                    and j not in taken):
                k1 = j
                break
    if k1 is None:
        return None
    e1 = eqns[k1]
    z = e1.outs[0]
    w = e1.inputs[1]
    if r.type.dtype is not x.type.dtype or z.type.dtype is not x.type.dtype:
        return None
    others = users[z] - {k2}
    keep_z = bool(others) or z in escaping
    body, extras = _body(e2, z)
    if others and _depends_on(extras, z, eqns, k2):
        return None  # an extra needs z, which only the row pass itself would compute
    outs = (e3.outs[0], z) if keep_z else (e3.outs[0],)
    eq = Eqn(rowpass_p, (x, w, *extras), {"body": body, "keep_z": keep_z}, outs, e3.loc)
    return k1, k2, eq


def _depends_on(atoms: list[Atom], z: Var, eqns: list[Eqn], upto: int) -> bool:
    tainted = {z}
    for e in eqns[:upto]:
        if any(isinstance(a, Var) and a in tainted for a in e.inputs):
            tainted.update(e.outs)
    return any(isinstance(a, Var) and a in tainted for a in atoms)


def _body(e2: Eqn, z: Var) -> tuple[Func, list[Atom]]:
    """f as a scalar Func of (z, *extras), and the extras (f's other inputs, in order)."""
    zp = Var(scalar(z.type.dtype))
    extras: list[Atom] = []
    params: list[Var] = [zp]
    if e2.prim is fused_p:
        fb: Func = e2.params["body"]
        # fused inputs are distinct vars; the body param for z becomes the row pass's z param
        subst: dict[Var, Var] = {}
        for a, p in zip(e2.inputs, fb.params):
            if a is z:
                subst[p] = zp
            else:
                q = Var(p.type)
                subst[p] = q
                params.append(q)
                extras.append(a)
        # the fused equation goes away, so its body's equations are reused with our params
        eqns = tuple(_rename(e, subst) for e in fb.eqns)
        outs = tuple(subst.get(o, o) if isinstance(o, Var) else o for o in fb.outs)
        return Func(tuple(params), eqns, outs, "rowpass"), extras
    ins: list[Atom] = []
    for a in e2.inputs:
        if a is z:
            ins.append(zp)
        elif isinstance(a, Lit):
            ins.append(a)
        else:
            q = Var(scalar(a.type.dtype))
            params.append(q)
            extras.append(a)
            ins.append(q)
    (v,) = e2.outs
    nv = Var(scalar(v.type.dtype))
    return Func(tuple(params), (Eqn(e2.prim, tuple(ins), dict(e2.params), (nv,), e2.loc),),
                (nv,), "rowpass"), extras


def _rename(e: Eqn, subst: dict[Var, Var]) -> Eqn:
    ins = tuple(subst.get(a, a) if isinstance(a, Var) else a for a in e.inputs)
    return replace(e, inputs=ins)
