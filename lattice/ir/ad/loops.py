"""Reverse mode through ``loop``: the partial-evaluation rule of a JVP'd loop, registered in
``_pe_rules`` (in :mod:`.linearize`); the backward loop itself is ``loop``'s transpose rule, in
:mod:`.transpose`.

* **Loops (reverse mode).**  Partial evaluation of a JVP'd ``loop`` splits its body.  Residuals
  the tangent body needs are: the loop index (recomputed), loop-invariant values (the primal
  loop's constants, passed as constants), values computed from constants and the index by cheap
  operations (``index``, ``dim``, ``transpose``, integer arithmetic: recomputed, so ``X[i]`` is
  never stored), and everything else, which is *taped*: the primal loop carries one array per
  such residual with a leading trip-count axis (``set`` at iteration k), and the transposed loop
  runs the iterations backwards reading the tape.  Tape memory: ``trip_count × size`` of each
  taped residual (8 bytes per f64 scalar per iteration).  A value whose size is known only
  inside the iteration (a nested loop's own tape) cannot be taped: the equations making it run
  again in the tangent body (per-outer-iteration checkpointing).  Cotangents of loop constants
  are carried accumulators of the backward loop; a nested backward loop accumulates into the
  enclosing accumulator.
* **Additive scalar carries (one pass).**  When every tangent carry of a loop (at most 4) is a
  float scalar whose update is additive (``dc' = dc + h_k(dconsts)``, as in ``total += f(x[i])``),
  the cotangent of every iteration is the final one, and by linearity
  ``Σ_k h_kᵀ(ct) = ct · Σ_k h_kᵀ(1)``.  The primal loop then accumulates ``G = Σ_k h_kᵀ(1)``
  (one array per carry and constant, in the constant's shape) and the linear part is
  ``dc_out = dc_in + ⟨G, dconsts⟩``: no tape, no backward loop, one pass over the data.
"""
from __future__ import annotations

from typing import Any, Optional

from .. import primitives as P
from ..core import Atom, Builder, Eqn, Func, Lit, Var, bind, building
from ..inline import close_over, inline
from ..types import Dim, i64, scalar
from .common import (ADError, _b1, _emit_copy, _is_float, _lit, _scope, _shapes, _trip_count,
                     _use, _zeros_t)
from .linearize import _PE, _merge, _pe_rules, _Recompute, partial_eval
from .transpose import transpose_emit

__all__: list[str] = []  # registers a rule; nothing to import


def _iteration(i: Atom, start: Atom, step: Atom) -> Atom:
    """The iteration number k of loop index i: (i - start) // step."""
    k = i if isinstance(start, Lit) and start.value == 0 else _b1(P.sub_p, i, start)
    if isinstance(step, Lit) and step.value == 1:
        return k
    return _b1(P.floordiv_p, k, step)


def _additive(unk: Func, n_res: int, n_uc: int) -> Optional[list[list[Eqn]]]:
    """For each unknown carry param of the unknown loop body ``unk`` (params: residuals,
    unknown carries, unknown consts), the add/sub chain making its update additive, or None
    when some carry is not a float scalar updated as ``c' = c + h(no carry)``."""
    cps = unk.params[n_res:n_res + n_uc]
    if not cps or len(cps) > 4:
        return None
    if any(p.type.shape or not _is_float(p) for p in cps):
        return None
    carry_dep: set[Var] = set(cps)
    uses: dict[Var, list[Eqn]] = {}
    for e in unk.eqns:
        for a in e.inputs:
            if isinstance(a, Var):
                uses.setdefault(a, []).append(e)
        if any(isinstance(a, Var) and a in carry_dep for a in e.inputs):
            carry_dep.update(e.outs)
    chains = []
    for k, p in enumerate(cps):
        v: Atom = p
        chain: list[Eqn] = []
        while v is not unk.outs[k]:
            us = uses.get(v, [])  # type: ignore[arg-type]
            if len(us) != 1 or sum(o is v for o in unk.outs) != 0:
                return None
            e = us[0]
            if e.prim not in (P.add_p, P.sub_p) or e.outs[0].type != p.type:
                return None
            pos = [j for j, a in enumerate(e.inputs) if a is v]
            if len(pos) != 1 or (e.prim is P.sub_p and pos[0] != 0):
                return None
            other = e.inputs[1 - pos[0]]
            if isinstance(other, Var) and other in carry_dep:
                return None
            chain.append(e)
            v = e.outs[0]
        if sum(o is v for o in unk.outs) != 1:
            return None
        chains.append(chain)
    return chains


def _pe_loop(pe: _PE, e: Eqn, kins: list[Optional[Atom]], uins: list[Optional[Atom]]
             ) -> list[tuple[str, Atom]]:
    body: Func = e.params["body"]
    n = e.params["n_carry"]
    if any(a is None for a in kins[:3]):
        raise ADError("internal: a loop's bounds cannot depend on tangents")
    start, stop, step = kins[:3]
    cu = [a is None for a in kins[3:3 + n]]
    ku = [a is None for a in kins[3 + n:]]
    while True:
        _, _, out_u = partial_eval(body, [False] + cu + ku, [False] * n)
        grown = [c or o for c, o in zip(cu, out_u)]
        if grown == cu:
            break
        cu = grown
    K, U, _ = partial_eval(body, [False] + cu + ku, cu)
    n_kc = cu.count(False)
    n_uc = cu.count(True)
    res_k = list(K.outs[n_kc:])            # residual atoms, in K's scope
    n_res = len(res_k)
    kc_in = [a for a, u in zip(kins[3:3 + n], cu) if not u]
    kk_in = [a for a, u in zip(kins[3 + n:], ku) if not u]
    # unknown-side inputs: unknown carries (a known start that becomes unknown is passed in)
    uc_in = [uins[3 + j] if kins[3 + j] is None else pe.residual(kins[3 + j])  # type: ignore[arg-type]
             for j in range(n) if cu[j]]
    uk_in = [uins[3 + n + j] for j in range(len(ku)) if ku[j]]

    chains = _additive(U, n_res, n_uc)
    if chains is not None:
        got = _pe_loop_additive(pe, e, K, U, start, stop, step, kc_in, kk_in, uc_in, uk_in)
        if got is not None:
            known_outs, unknown_outs = got
            return _merge(cu, known_outs, unknown_outs)

    # the backward loop makes zeros / exact cotangents in the types of the unknown carries and
    # constants: a size known only at run time (a fresh dim, e.g. of ``x[k:]``) must reach the
    # transposed function, as a residual holding an array of that size
    for a, u in zip(e.inputs[3:], cu + ku):
        if u:
            for d in a.type.shape:
                if d.is_fresh:
                    holder = next((v for v in reversed(pe.ksh.cands) if d in v.type.shape), None)
                    if holder is not None:
                        pe.residual(holder)

    # what the tangent body needs: the index and the loop's constants (passed in), cheap
    # functions of them (recomputed), values stored per iteration (the tape), and values that
    # cannot be stored in a fixed-size tape (arrays sized inside the iteration, e.g. a nested
    # loop's own tape): their equations run again in the tangent body (per-iteration
    # checkpointing), from inputs classified the same way
    k_i = K.params[0]
    k_consts = list(K.params[1 + n_kc:])
    const_pos = {p: j for j, p in enumerate(k_consts)}
    rc = _Recompute(K, [k_i, *k_consts])
    defs = {v: eq for eq in K.eqns for v in eq.outs}
    kind: dict[Var, str] = {}
    rerun: set[int] = set()  # ids of K equations to emit again in the tangent body

    def classify(a: Atom) -> None:
        if isinstance(a, Lit) or a in kind:
            return
        if a is k_i or a in const_pos:
            kind[a] = "param"
        elif rc.ok(a):
            kind[a] = "recompute"
            eq = defs[a]
            rerun.add(id(eq))
            for x in eq.inputs:
                classify(x)
        elif not any(d.is_fresh for d in a.type.shape):
            kind[a] = "tape"
        else:
            eq = defs.get(a)
            if eq is None:
                raise ADError("reverse mode through a loop carrying an array whose size is "
                              "known only inside the loop is not supported")
            for v in eq.outs:
                kind[v] = "rerun"
            rerun.add(id(eq))
            for x in eq.inputs:
                classify(x)
    for r in res_k:
        classify(r)
    taped = [v for v, kd in kind.items() if kd == "tape"]

    # the primal loop, also writing the tape
    tapes_init: list[Atom] = []
    with _use(pe.ksh):
        if taped:
            T = _trip_count(start, stop, step)
            tdim = Dim.fresh("T")
            for r in taped:
                sizes = [T] + _shapes().sizes(r.type.shape)
                tapes_init.append(_b1(P.empty_p, *sizes, dims=(tdim,) + r.type.shape,
                                      dtype=r.type.dtype))
    kb_body = Builder()
    with building(kb_body):
        i = Var(scalar(i64))
        kc_p = [Var(a.type) for a in kc_in]
        tape_p = [Var(t.type) for t in tapes_init]
        kk_p = [Var(a.type) for a in kk_in]
        kenv = dict(zip(K.params, [i, *kc_p, *kk_p]))
        for eq in K.eqns:
            kenv.update(zip(eq.outs, _emit_copy(eq, [kenv[a] if isinstance(a, Var) else a
                                                     for a in eq.inputs])))
        new_tapes = []
        if taped:
            k = _iteration(i, start, step)
            for tp, r in zip(tape_p, taped):
                new_tapes.append(_b1(P.set_p, tp, k, kenv[r],
                                     spec=(P.Int(),) + (P.Slice(),) * r.type.ndim))
        kc_out = [kenv[a] if isinstance(a, Var) else a for a in K.outs[:n_kc]]
    kbody, extra = close_over(kb_body, [i, *kc_p, *tape_p, *kk_p], [*kc_out, *new_tapes],
                          body.name)
    with building(pe.kb):
        kres = bind(P.loop_p, start, stop, step, *kc_in, *tapes_init, *kk_in, *extra,
                    body=kbody, n_carry=n_kc + len(tapes_init))
    known_outs = list(kres[:n_kc])
    tapes_out = list(kres[n_kc:])

    # the tangent loop: residuals passed in, read from the tape or recomputed; then U
    ub_body = Builder()
    with building(ub_body):
        i = Var(scalar(i64))
        uc_p = [Var(a.type) for a in uc_in]
        uk_p = [Var(a.type) for a in uk_in]
        env: dict[Var, Atom] = {}
        k = _iteration(i, pe.residual(start), pe.residual(step)) if taped else None
        tape_of = dict(zip(taped, tapes_out))

        def look(a: Atom) -> Atom:
            if isinstance(a, Lit):
                return a
            if a not in env:
                kd = kind[a]
                if a is k_i:
                    env[a] = i
                elif kd == "param":  # a primal loop constant: an outer residual, captured
                    env[a] = pe.residual(kk_in[const_pos[a]])  # type: ignore[arg-type]
                else:
                    assert kd == "tape", kd
                    params: dict[str, Any] = {"spec": (P.Int(),) + (P.Slice(),) * a.type.ndim}
                    if any(d.is_fresh for d in a.type.shape):
                        params["out_dims"] = a.type.shape
                    env[a] = _b1(P.index_p, pe.residual(tape_of[a]), k, **params)  # type: ignore[arg-type]
            return env[a]
        for eq in K.eqns:
            if id(eq) in rerun:
                env.update(zip(eq.outs, _emit_copy(eq, [look(a) for a in eq.inputs])))
        uouts = list(inline(U, *(look(r) for r in res_k), *uc_p, *uk_p))
    ubody, uextra = close_over(ub_body, [i, *uc_p, *uk_p], uouts, body.name + "_lin")
    with building(pe.ub):
        ures = bind(P.loop_p, pe.residual(start), pe.residual(stop), pe.residual(step),
                    *uc_in, *uk_in, *uextra, body=ubody, n_carry=len(uc_in))
    return _merge(cu, known_outs, list(ures))


def _pe_loop_additive(pe: _PE, e: Eqn, K: Func, U: Func, start: Atom, stop: Atom, step: Atom,
                      kc_in: list, kk_in: list, uc_in: list, uk_in: list
                      ) -> Optional[tuple[list[Atom], list[Atom]]]:
    """The one-pass special case (module docstring): the primal loop accumulates, per unknown
    carry c and unknown constant j, ``G[c][j] = Σ_k h_ckᵀ(1)``; the unknown side is
    ``c_out = c_in + Σ_j ⟨G[c][j], dconst_j⟩``."""
    n_kc = len(kc_in)
    n_res = len(K.outs) - n_kc
    n_uc = len(uc_in)
    # accumulator types: one per (carry, unknown const); sizes from the known side
    with _use(pe.ksh):
        try:
            inits = [[_zeros_t(a.type) for a in uk_in] for _ in range(n_uc)]
        except ADError:
            return None
    body = e.params["body"]
    bb = Builder()
    with _scope(bb, parent=pe.ksh) as sh:
        i = Var(scalar(i64))
        kc_p = [Var(a.type) for a in kc_in]
        acc_p = [[Var(a.type) for a in row] for row in inits]
        kk_p = [Var(a.type) for a in kk_in]
        sh.note(*kc_p, *kk_p, *(p for row in acc_p for p in row))
        outs = list(inline(K, i, *kc_p, *kk_p))
        res = outs[n_kc:]
        new_acc = []
        for c in range(n_uc):
            cts = [None] * n_uc
            cts[c] = _lit(1, U.outs[c].type.dtype)
            lin = [False] * n_res + [True] * (n_uc + len(uk_in))
            got = transpose_emit(U, lin, [*res, *([None] * (n_uc + len(uk_in)))], cts,
                                 accumulate={n_res + n_uc + j: acc_p[c][j]
                                             for j in range(len(uk_in))})
            new_acc.extend(got[n_res + n_uc:])
    flat_acc = [p for row in acc_p for p in row]
    kbody, extra = close_over(bb, [i, *kc_p, *flat_acc, *kk_p], [*outs[:n_kc], *new_acc], body.name)
    with building(pe.kb):
        kres = bind(P.loop_p, start, stop, step, *kc_in, *(a for row in inits for a in row),
                    *kk_in, *extra, body=kbody, n_carry=n_kc + len(flat_acc))
    known_outs = list(kres[:n_kc])
    G = list(kres[n_kc:])
    unknown_outs = []
    with building(pe.ub):
        for c in range(n_uc):
            acc: Atom = uc_in[c]
            for j, dk in enumerate(uk_in):
                g = pe.residual(G[c * len(uk_in) + j])
                prod = _b1(P.mul_p, g, dk)
                if prod.type.shape:
                    prod = _b1(P.reduce_sum_p, prod, axes=tuple(range(prod.type.ndim)))
                if prod.type.dtype is not acc.type.dtype:  # an f64 carry over f32 data
                    prod = _b1(P.convert_p, prod, dtype=acc.type.dtype)
                acc = _b1(P.add_p, acc, prod)
            unknown_outs.append(acc)
    return known_outs, unknown_outs


_pe_rules[P.loop_p] = _pe_loop
