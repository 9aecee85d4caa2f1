"""Partial evaluation, and :func:`linearize_func`: the JVP function split into a primal function
(primals → primal outs + residuals) and a linear function (residuals + tangents → tangent outs).

:func:`partial_eval` copies an equation to the known (primal) side when no input depends on an
unknown (tangent) param, else to the unknown side, reading known inputs as residuals.  The
primitives holding sub-functions need more: their rules are in the table ``_pe_rules``, which
lives here with the rule for ``cond`` (both branches return the union of the residuals); the rule
for ``loop`` is in :mod:`.loops`, which registers it here.  :class:`_Recompute` (cheap values
recomputed on the unknown side instead of passed as residuals) serves both.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

from .. import primitives as P
from ..core import Atom, Builder, Eqn, Func, Lit, Primitive, Var, bind, building
from ..inline import close_over, inline
from ..types import TensorType, i64
from .common import (ADError, _emit_copy, _is_float, _lit, _scope, _Shapes, _stk, _unify_closed,
                     _zeros)
from .jvp import _float_mask, jvp_func

__all__ = ["partial_eval", "linearize_func"]


@dataclass
class _PE:
    """State of one partial evaluation: the known (primal) and unknown (tangent) builders."""

    kb: Builder
    ub: Builder
    ksh: _Shapes              # runtime sizes on the known side
    res_known: list[Atom]     # residuals, as atoms of the known function
    res_params: list[Var]     # the matching params of the unknown function
    res_index: dict[Var, Var]

    def residual(self, a: Atom) -> Atom:
        """The unknown-side atom for a known atom (a new residual the first time)."""
        if isinstance(a, Lit):
            return a
        p = self.res_index.get(a)
        if p is None:
            p = self.res_index[a] = Var(a.type)
            self.res_known.append(a)
            self.res_params.append(p)
        return p


def partial_eval(func: Func, unknown: Sequence[bool], instantiate: Sequence[bool]
                 ) -> tuple[Func, Func, list[bool]]:
    stack = _stk()
    saved = stack[:]
    stack.clear()  # the two functions built here are closed: no sizes from outside
    try:
        return _partial_eval(func, unknown, instantiate)
    finally:
        stack[:] = saved


def _partial_eval(func: Func, unknown: Sequence[bool], instantiate: Sequence[bool]
                  ) -> tuple[Func, Func, list[bool]]:
    """Split ``func`` by which params are unknown.

    Returns ``(known, unk, out_unknown)``: ``known`` takes the known params and returns the
    known outs then the residuals; ``unk`` takes the residuals then the unknown params and
    returns the unknown outs.  Out k is unknown when it depends on an unknown param or
    ``instantiate[k]`` is set (a known value is then passed through as a residual).
    """
    kb, ub = Builder(), Builder()
    pe = _PE(kb, ub, _Shapes(kb, None), [], [], {})
    kparams = [Var(p.type) for p, u in zip(func.params, unknown) if not u]
    pe.ksh.note(*kparams)
    uparams = [Var(p.type) for p, u in zip(func.params, unknown) if u]
    kenv: dict[Var, Atom] = {}
    uenv: dict[Var, Atom] = {}
    ki, ui = iter(kparams), iter(uparams)
    for p, u in zip(func.params, unknown):
        (uenv if u else kenv)[p] = next(ui) if u else next(ki)
    for e in func.eqns:
        is_unk = [isinstance(a, Var) and a in uenv for a in e.inputs]
        if not any(is_unk):
            with building(kb):
                outs = _emit_copy(e, [kenv[a] if isinstance(a, Var) else a for a in e.inputs])
            kenv.update(zip(e.outs, outs))
            pe.ksh.note(*outs)
            continue
        rule = _pe_rules.get(e.prim)
        kins = [None if u else (kenv[a] if isinstance(a, Var) else a)
                for a, u in zip(e.inputs, is_unk)]
        uins = [uenv[a] if u else None for a, u in zip(e.inputs, is_unk)]
        if rule is not None:
            results = rule(pe, e, kins, uins)
            for v, (side, atom) in zip(e.outs, results):
                (uenv if side == "u" else kenv)[v] = atom
                if side == "k":
                    pe.ksh.note(atom)
            continue
        with building(ub):
            outs = _emit_copy(e, [uenv[a] if u else pe.residual(k)  # type: ignore[arg-type]
                                  for a, u, k in zip(e.inputs, is_unk, kins)])
        uenv.update(zip(e.outs, outs))
    out_unknown = [(isinstance(a, Var) and a in uenv) or bool(inst)
                   for a, inst in zip(func.outs, instantiate)]
    kouts = [kenv[a] if isinstance(a, Var) else a
             for a, u in zip(func.outs, out_unknown) if not u]
    uouts = []
    for a, u in zip(func.outs, out_unknown):
        if u:
            uouts.append(uenv[a] if isinstance(a, Var) and a in uenv
                         else pe.residual(kenv[a] if isinstance(a, Var) else a))
    known = Func(tuple(kparams), tuple(kb.eqns), tuple(kouts) + tuple(pe.res_known),
                 f"{func.name}_known")
    unk = Func(tuple(pe.res_params) + tuple(uparams), tuple(ub.eqns), tuple(uouts),
               f"{func.name}_lin")
    return known, unk, out_unknown


PeRule = Callable[[_PE, Eqn, list[Optional[Atom]], list[Optional[Atom]]], list[tuple[str, Atom]]]
_pe_rules: dict[Primitive, PeRule] = {}


def _is_cheap(e: Eqn) -> bool:
    """Cheap enough to recompute in a backward loop rather than to store per iteration."""
    if e.prim in (P.index_p, P.dim_p, P.transpose_p):
        return True
    if e.prim in P.ELEMENTWISE:
        return not any(_is_float(a) for a in e.inputs) or (
            e.prim is P.convert_p and not _is_float(e.inputs[0]))
    return False


class _Recompute:
    """Values of ``func`` that are cheap functions (:func:`_is_cheap`) of the ``roots`` (some
    of its params), and re-emitting them elsewhere."""

    def __init__(self, func: Func, roots: Sequence[Var]) -> None:
        self.func = func
        self.roots = set(roots)
        self.defs = {v: eq for eq in func.eqns for v in eq.outs}
        self.memo: dict[Var, bool] = {}

    def ok(self, a: Atom) -> bool:
        if isinstance(a, Lit) or a in self.roots:
            return True
        if a not in self.memo:
            eq = self.defs.get(a)
            self.memo[a] = eq is not None and _is_cheap(eq) and all(
                self.ok(x) for x in eq.inputs)
        return self.memo[a]

    def emit(self, targets: Sequence[Atom], root: Callable[[Var], Atom]) -> dict[Var, Atom]:
        """Copies of the equations computing ``targets`` in the current builder; ``root``
        maps a root param to its atom there.  Returns old var -> new atom."""
        needed: set[Var] = set()

        def need(a: Atom) -> None:
            eq = self.defs.get(a) if isinstance(a, Var) else None
            if eq is None or eq.outs[0] in needed:
                return
            needed.update(eq.outs)
            for x in eq.inputs:
                need(x)
        for t in targets:
            need(t)
        env: dict[Var, Atom] = {}

        def look(a: Atom) -> Atom:
            if isinstance(a, Lit):
                return a
            if a not in env:
                env[a] = root(a)
            return env[a]
        for eq in self.func.eqns:
            if eq.outs and eq.outs[0] in needed:
                env.update(zip(eq.outs, _emit_copy(eq, [look(a) for a in eq.inputs])))
        for t in targets:
            if isinstance(t, Var):
                look(t)
        return env


def _merge(cu: list[bool], known: list[Atom], unknown: list[Atom]) -> list[tuple[str, Atom]]:
    ki, ui = iter(known), iter(unknown)
    return [("u", next(ui)) if u else ("k", next(ki)) for u in cu]


def _filler(sh: _Shapes, t: TensorType) -> Atom:
    """The value a cond branch returns in a residual slot that the other branch fills: zeros
    of type ``t``, never read (the linear cond runs the same branch as the primal one).  A size
    the other branch defined inside itself (a fresh dim: a loop's trip-count tape axis, a slice
    with traced bounds) is not available here; that axis gets length 0."""
    sizes = []
    for d in t.shape:
        try:
            sizes.append(sh.size(d))
        except ADError:
            if not d.is_fresh:
                raise
            sizes.append(_lit(0, i64))
    return _zeros(t, sizes)


def _pe_cond(pe: _PE, e: Eqn, kins: list[Optional[Atom]], uins: list[Optional[Atom]]
             ) -> list[tuple[str, Atom]]:
    pred = kins[0]
    if pred is None:
        raise ADError("internal: a cond's predicate cannot depend on tangents")
    ops_u = [a is None for a in kins[1:]]
    fs = [e.params["true_fn"], e.params["false_fn"]]
    n_out = len(fs[0].outs)
    out_u = [False] * n_out
    for f in fs:
        _, _, ou = partial_eval(f, ops_u, [False] * n_out)
        out_u = [a or b for a, b in zip(out_u, ou)]
    splits = [partial_eval(f, ops_u, out_u) for f in fs]
    n_ko = out_u.count(False)
    k_ops = [a for a in kins[1:] if a is not None]
    # each residual of a branch: a known operand itself, a literal, a cheap function of the
    # known operands (recomputed in the unknown branch), or a slot among the cond's outputs
    # (both branches return every slot; zeros in the branch that does not make it)
    plans: list[list[tuple[str, Any]]] = []
    slot_types: list[TensorType] = []
    recomputes: list[_Recompute] = []
    for K, _, _ in splits:
        rc = _Recompute(K, K.params)
        kparam_pos = {p: j for j, p in enumerate(K.params)}
        plan: list[tuple[str, Any]] = []
        for r in K.outs[n_ko:]:
            if isinstance(r, Lit):
                plan.append(("lit", r))
            elif r in kparam_pos:
                plan.append(("op", kparam_pos[r]))
            elif rc.ok(r):
                plan.append(("recompute", r))
            else:
                plan.append(("slot", (len(slot_types), r)))
                slot_types.append(r.type)
        plans.append(plan)
        recomputes.append(rc)
    closed = []
    for bi, (K, _, _) in enumerate(splits):
        b = Builder()
        with _scope(b, parent=pe.ksh) as sh:
            ps = [Var(p.type) for p in K.params]
            sh.note(*ps)
            outs = list(inline(K, *ps))
            renv = dict(zip(K.outs[n_ko:], outs[n_ko:]))
            mine = {sl: r for kind, x in plans[bi] if kind == "slot" for sl, r in [x]}
            slot_vals = [renv[mine[sl]] if sl in mine else _filler(sh, t)
                         for sl, t in enumerate(slot_types)]
        closed.append(close_over(b, ps, [*outs[:n_ko], *slot_vals], fs[bi].name))
    kfuncs, extra_k = _unify_closed(closed, len(k_ops))
    with building(pe.kb):
        kres = bind(P.cond_p, pred, *k_ops, *extra_k, true_fn=kfuncs[0], false_fn=kfuncs[1])
    known_outs = list(kres[:n_ko])
    slot_outs = list(kres[n_ko:])
    # the unknown cond: residuals are captured outer values
    u_ops = [a for a in uins[1:] if a is not None]
    closed = []
    for bi, (K, U, _) in enumerate(splits):
        b = Builder()
        with building(b):
            u_p = [Var(a.type) for a in u_ops]
            kpos = {p: j for j, p in enumerate(K.params)}
            renv = recomputes[bi].emit([x for kind, x in plans[bi] if kind == "recompute"],
                                       lambda a: pe.residual(k_ops[kpos[a]]))  # type: ignore[arg-type]
            args: list[Atom] = []
            for kind, x in plans[bi]:
                if kind == "lit":
                    args.append(x)
                elif kind == "op":
                    args.append(pe.residual(k_ops[x]))  # type: ignore[arg-type]
                elif kind == "recompute":
                    args.append(renv[x])
                else:
                    args.append(pe.residual(slot_outs[x[0]]))
            uouts = list(inline(U, *args, *u_p))
        closed.append(close_over(b, u_p, uouts, fs[bi].name + "_lin"))
    ufuncs, extra_u = _unify_closed(closed, len(u_ops))
    with building(pe.ub):
        ures = bind(P.cond_p, pe.residual(pred), *u_ops, *extra_u,
                    true_fn=ufuncs[0], false_fn=ufuncs[1])
    return _merge(out_u, known_outs, list(ures))


_pe_rules[P.cond_p] = _pe_cond


def linearize_func(func: Func, which: Optional[Sequence[bool]] = None
                   ) -> tuple[Func, Func, int]:
    """``(primal, linear, n_res)``: ``primal`` maps the params to the outs then ``n_res``
    residuals; ``linear`` maps (residuals, one tangent per differentiated float param) to one
    tangent per float out.  The residuals include, when needed, a param whose only use is to
    tell the transposed function a runtime size."""
    mask = _float_mask(func, which)
    jf = jvp_func(func, mask, mode="linearize")
    n_p, n_t = len(func.params), sum(mask)
    n_out = len(func.outs)
    n_tout = len(jf.outs) - n_out
    known, lin, _ = partial_eval(jf, [False] * n_p + [True] * n_t,
                                 [False] * n_out + [True] * n_tout)
    # the primal function's params must be the original ones, in order
    n_res = len(known.outs) - n_out
    # make every dim of the linear function's inputs and outputs available to a transposition
    have = {d for a in known.outs[n_out:] for d in a.type.shape}
    need = {d for t in list(lin.in_types[n_res:]) + list(lin.out_types) for d in t.shape
            if not d.is_const} - have
    extra = []
    for p in known.params:
        if any(d in need for d in p.type.shape):
            extra.append(p)
            need -= set(p.type.shape)
    if extra:
        known = replace(known, outs=known.outs + tuple(extra))
        lin = replace(lin, params=lin.params[:n_res] + tuple(Var(p.type) for p in extra)
                      + lin.params[n_res:])
        n_res += len(extra)
    return known, lin, n_res
