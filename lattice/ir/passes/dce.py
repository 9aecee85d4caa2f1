"""Dead-code elimination.

Every primitive is pure, so an equation none of whose outputs is used is dropped.  Equations
holding sub-functions are also trimmed from the inside:

* ``loop``: a carried value is live if the loop's result for it is used, or if the body needs
  it to compute a live carried value (found by iterating to a fixed point).  Dead carried values
  are removed from the inputs, the body's params and outs, and the results; constant inputs
  the body no longer reads are removed too.  The index param always stays.
* ``cond``: unused results are removed from both branches; operands neither branch reads are
  removed.
* ``while``: as ``loop``, where the condition's reads also make a carried value live (the
  trip count depends on them); constants neither the condition nor the body reads are removed.
* ``fused``: the body is trimmed; an input whose body param is unused is removed, unless the
  remaining inputs would no longer broadcast to the whole ``space`` (the interpreter takes the
  iteration shape from the inputs, see ``_fused_impl``).
"""
from __future__ import annotations

from dataclasses import replace

from ..core import Eqn, Func, Var
from ..primitives import cond_p, fused_p, loop_p, while_p
from ..types import ONE, broadcast_shapes
from .util import map_subfuncs, used_vars

__all__ = ["dce"]


def dce(func: Func) -> Func:
    live = {a for a in func.outs if isinstance(a, Var)}
    kept: list[Eqn] = []
    for e in reversed(func.eqns):
        if not any(v in live for v in e.outs):
            continue
        e = _trim(e, live)
        kept.append(e)
        live.update(a for a in e.inputs if isinstance(a, Var))
    return replace(func, eqns=tuple(reversed(kept)))


def _trim(e: Eqn, live: set[Var]) -> Eqn:
    if e.prim is loop_p:
        return _trim_loop(e, live)
    if e.prim is cond_p:
        return _trim_cond(e, live)
    if e.prim is while_p:
        return _trim_while(e, live)
    if e.prim is fused_p:
        return _trim_fused(e)
    return map_subfuncs(e, dce)


def _trim_loop(e: Eqn, live: set[Var]) -> Eqn:
    body: Func = e.params["body"]
    n = e.params["n_carry"]
    carry_p = body.params[1:1 + n]
    keep = {k for k in range(n) if e.outs[k] in live}
    while True:
        trimmed = dce(replace(body, outs=tuple(body.outs[k] for k in sorted(keep))))
        used = used_vars(trimmed.eqns, trimmed.outs)
        grown = keep | {k for k in range(n) if carry_p[k] in used}
        if grown == keep:
            break
        keep = grown
    ks = sorted(keep)
    consts = [j for j in range(1 + n, len(body.params)) if body.params[j] in used]
    new_body = replace(trimmed, params=(body.params[0],) + tuple(carry_p[k] for k in ks)
                       + tuple(body.params[j] for j in consts))
    inputs = tuple(e.inputs[:3]) + tuple(e.inputs[3 + k] for k in ks) + tuple(
        e.inputs[3 + j - 1] for j in consts)
    return replace(e, inputs=inputs, outs=tuple(e.outs[k] for k in ks),
                   params={**e.params, "body": new_body, "n_carry": len(ks)})


def _trim_while(e: Eqn, live: set[Var]) -> Eqn:
    body: Func = e.params["body_fn"]
    n = e.params["n_carry"]
    test: Func = dce(e.params["cond_fn"])
    test_used = used_vars(test.eqns, test.outs)
    keep = {k for k in range(n) if e.outs[k] in live or test.params[k] in test_used}
    while True:
        trimmed = dce(replace(body, outs=tuple(body.outs[k] for k in sorted(keep))))
        used = used_vars(trimmed.eqns, trimmed.outs)
        grown = keep | {k for k in range(n) if body.params[k] in used}
        if grown == keep:
            break
        keep = grown
    ks = sorted(keep)
    js = ks + [j for j in range(n, len(body.params))
               if body.params[j] in used or test.params[j] in test_used]
    new_body = replace(trimmed, params=tuple(body.params[j] for j in js))
    new_test = replace(test, params=tuple(test.params[j] for j in js))
    return replace(e, inputs=tuple(e.inputs[j] for j in js), outs=tuple(e.outs[k] for k in ks),
                   params={**e.params, "cond_fn": new_test, "body_fn": new_body,
                           "n_carry": len(ks)})


def _trim_cond(e: Eqn, live: set[Var]) -> Eqn:
    ks = [k for k, v in enumerate(e.outs) if v in live]
    t: Func = dce(replace(e.params["true_fn"], outs=tuple(e.params["true_fn"].outs[k] for k in ks)))
    f: Func = dce(replace(e.params["false_fn"],
                          outs=tuple(e.params["false_fn"].outs[k] for k in ks)))
    used = used_vars(t.eqns, t.outs) | used_vars(f.eqns, f.outs)
    js = [j for j in range(len(t.params)) if t.params[j] in used or f.params[j] in used]
    t = replace(t, params=tuple(t.params[j] for j in js))
    f = replace(f, params=tuple(f.params[j] for j in js))
    return replace(e, inputs=(e.inputs[0],) + tuple(e.inputs[1 + j] for j in js),
                   outs=tuple(e.outs[k] for k in ks),
                   params={**e.params, "true_fn": t, "false_fn": f})


def _covers(shapes: list, space: tuple) -> bool:
    """Inputs of these shapes, padded on the left with 1s, broadcast to exactly ``space``."""
    if not shapes:
        return all(d == ONE for d in space)
    got = broadcast_shapes(*shapes)
    got = (ONE,) * (len(space) - len(got)) + tuple(got)
    return got == tuple(space)


def _trim_fused(e: Eqn) -> Eqn:
    body: Func = dce(e.params["body"])
    used = used_vars(body.eqns, body.outs)
    js = [j for j, p in enumerate(body.params) if p in used]
    if len(js) == len(body.params) or not _covers([e.inputs[j].type.shape for j in js],
                                                  e.params["space"]):
        js = list(range(len(body.params)))
    return replace(e, inputs=tuple(e.inputs[j] for j in js),
                   params={**e.params, "body": replace(body, params=tuple(
                       body.params[j] for j in js))})
