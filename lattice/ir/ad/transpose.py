"""Transposition: :func:`transpose_emit` / :func:`transpose_func`, a backward read/write loop
over the equations of a function linear in some of its params, applying
``transpose_rules[prim]``.

The table ``transpose_rules`` lives here, with every rule, in the order of
:mod:`lattice.ir.primitives`; ``LINEAR`` lists the primitives a linear function may contain (each
has a rule).  The rules for ``loop`` and ``cond`` transpose their sub-functions with
:func:`transpose_emit`.

* **Lazily broadcast cotangents.**  During transposition a cotangent of a value of shape ``S``
  may have any shape that broadcasts to ``S`` the NumPy way (the cotangent of ``sum(x)`` for
  ``x: f64[n]`` stays a scalar); it is made exact (``broadcast_in_dim``) only where an exact
  shape is needed.  So a mean over n elements does not allocate an n-vector of 1/n.
* **Indexed cotangents.**  The transpose of ``index`` is a *sparse* contribution that is added
  into the cotangent with ``add_at`` (an in-place update in codegen), never a full-size zero
  array per use: inside a loop, the cotangent of ``X`` from ``X[i]`` accumulates into one carried
  array.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence, Union

from .. import primitives as P
from ..core import Atom, Builder, Eqn, Func, Lit, Primitive, Var, bind, current_builder
from ..inline import close_over, inline
from ..types import Dim, TensorType, i64, scalar
from .common import (ONE, ADError, _at, _b1, _emit_copy, _exact, _lit, _scope, _shapes,
                     _sizes_of, _stk, _trip_count, _unify_closed, _zeros_t)

__all__ = ["transpose_rules", "LINEAR", "transpose_emit", "transpose_func"]


Ct = Union[Atom, "_Sparse", None]
TransposeRule = Callable[[list[Optional[Atom]], list[Optional[Atom]], Eqn], list[Ct]]

#: linear prim -> rule(out cotangents, non-linear ins (None where linear), eqn) -> in cotangents
transpose_rules: dict[Primitive, TransposeRule] = {}

#: primitives a linear function (the tangent side of a JVP) may contain; each has a transpose
LINEAR = frozenset([P.neg_p, P.add_p, P.sub_p, P.mul_p, P.div_p, P.select_p, P.convert_p,
                    P.reduce_sum_p, P.matmul_p, P.transpose_p, P.full_p, P.index_p, P.set_p,
                    P.add_at_p, P.broadcast_in_dim_p, P.loop_p, P.cond_p, P.custom_lin_p,
                    P.concat_p, P.cumsum_p, P.linrec_p, P.reshape_p])
LINEAR = LINEAR | {P.complex_p, P.real_p, P.imag_p}  # the complex parts (C as R^2)


@dataclass(frozen=True)
class _Sparse:
    """The cotangent ``add_at(zeros(x), *idx, value)``: kept symbolic so that it is added into
    the other contributions (or a loop accumulator) in place."""

    spec: P.IndexSpec
    idx: tuple[Atom, ...]
    value: Atom


def _accumulate(t: TensorType, contribs: list[Any], base: Optional[Atom] = None
                ) -> Optional[Atom]:
    """The sum of ``contribs`` (atoms, lazily broadcast, and :class:`_Sparse`) plus ``base``:
    None when there is nothing; lazily broadcast unless a sparse part forces a full array."""
    dense = [c for c in contribs if not isinstance(c, _Sparse)]
    sparse = [c for c in contribs if isinstance(c, _Sparse)]
    acc: Optional[Atom] = base
    for c in dense:
        acc = c if acc is None else _b1(P.add_p, acc, c)
    if sparse:
        acc = _zeros_t(t) if acc is None else _exact(acc, t)
        for s in sparse:
            acc = _b1(P.add_at_p, acc, *s.idx, s.value, spec=s.spec)
    return acc


def transpose_emit(func: Func, linear: Sequence[bool], args: Sequence[Optional[Atom]],
                   cts: Sequence[Optional[Atom]], accumulate: Optional[dict[int, Atom]] = None,
                   raw: bool = False) -> list[Any]:
    """Emit the transpose of ``func`` (linear in the params flagged ``linear``) into the
    current builder.

    ``args`` gives the non-linear params (None where linear), ``cts`` one cotangent per out
    (None = zero).  Returns one cotangent per param (None for non-linear params and zeros);
    a returned cotangent may be lazily broadcast, except for params in ``accumulate``, whose
    cotangent is added to the given atom (an exact array: a loop accumulator).  With ``raw``
    each entry is instead the list of contributions (atoms and :class:`_Sparse`).

    An accumulator is threaded through: contributions are added into it in place (``add_at``)
    and a nested loop's backward accumulators start from it, so a cotangent of a big array
    read at one index per iteration is never materialised as zeros per iteration."""
    accumulate = accumulate or {}
    sh = _shapes() if _stk() and _stk()[-1].builder is current_builder() else None
    ctx = contextlib.nullcontext(sh) if sh is not None else _scope(current_builder())
    with ctx as sh:
        sh.note(*(a for a in args if a is not None), *(c for c in cts if c is not None),
                *accumulate.values())
        env: dict[Var, Atom] = {}
        lin: set[Var] = set()
        for p, l, a in zip(func.params, linear, args):
            if l:
                lin.add(p)
            else:
                env[p] = a  # type: ignore[assignment]
        lin_eqns: list[Eqn] = []
        for e in func.eqns:  # non-linear equations run forward
            if any(isinstance(a, Var) and a in lin for a in e.inputs):
                lin.update(e.outs)
                lin_eqns.append(e)
            else:
                outs = _emit_copy(e, [env[a] if isinstance(a, Var) else a for a in e.inputs])
                env.update(zip(e.outs, outs))
                sh.note(*outs)
        ctenv: dict[Var, list[Any]] = {}
        for k, base in accumulate.items():
            ctenv[func.params[k]] = [base]
        for a, c in zip(func.outs, cts):
            if c is not None and isinstance(a, Var) and a in lin:
                ctenv.setdefault(a, []).append(c)
        for e in reversed(lin_eqns):
            ct_out = [_accumulate(v.type, ctenv.pop(v, [])) for v in e.outs]
            if all(c is None for c in ct_out):
                continue
            rule = transpose_rules.get(e.prim)
            if rule is None:
                raise ADError(f"primitive {e.prim.name} is not linear (no transpose rule)")
            ins = [None if isinstance(a, Var) and a in lin else
                   (env[a] if isinstance(a, Var) else a) for a in e.inputs]
            with _at(e.loc):
                if e.prim is P.loop_p:
                    # the backward loop accumulates into what is already there (in place)
                    bases: dict[int, Atom] = {}
                    for pos in range(3 + e.params["n_carry"], len(e.inputs)):
                        a = e.inputs[pos]
                        if isinstance(a, Var) and a in lin and ctenv.get(a):
                            bases[pos] = _exact(_accumulate(a.type, ctenv.pop(a)), a.type)  # type: ignore[arg-type]
                    got = _t_loop(ct_out, ins, e, bases)
                else:
                    got = rule(ct_out, ins, e)
            for a, c in zip(e.inputs, got):
                if c is not None and isinstance(a, Var) and a in lin:
                    ctenv.setdefault(a, []).extend(c.parts if isinstance(c, _Many) else [c])
        result: list[Optional[Atom]] = []
        for k, (p, l) in enumerate(zip(func.params, linear)):
            if not l:
                result.append(None)
                continue
            contribs = ctenv.pop(p, [])
            if raw:
                result.append(contribs)
            elif k in accumulate:
                result.append(_exact(_accumulate(p.type, contribs), p.type))  # type: ignore[arg-type]
            else:
                result.append(_accumulate(p.type, contribs))
        return result


def _reg_t(*prims: Primitive) -> Callable[[TransposeRule], TransposeRule]:
    def deco(fn: TransposeRule) -> TransposeRule:
        for p in prims:
            transpose_rules[p] = fn
        return fn
    return deco


def _unbroadcast(ct: Atom, out: TensorType, target: TensorType) -> Atom:
    """Sum a (lazily broadcast) cotangent of an elementwise result of type ``out`` over the
    axes an operand of type ``target`` was broadcast along; the result is lazily valid for
    ``target``."""
    r = out.ndim
    S, s, O = ct.type.shape, target.shape, out.shape
    offS, offs = r - len(S), r - len(s)
    red: list[int] = []
    factor: list[Dim] = []
    kept: list[int] = []
    for a in range(r):
        sa = s[a - offs] if a >= offs else None
        stretched = sa is None or (sa == ONE and O[a] != ONE)
        if a < offS:  # the cotangent is constant along this axis
            if stretched and O[a] != ONE:
                factor.append(O[a])
            continue
        if stretched:
            if S[a - offS] == ONE and O[a] != ONE:
                factor.append(O[a])
            red.append(a - offS)
        else:
            kept.append(a)
    if red:
        ct = _b1(P.reduce_sum_p, ct, axes=tuple(red))
    if factor:
        n: Atom = _lit(1, i64)
        for d in factor:
            n = _b1(P.mul_p, n, _shapes().size(d))
        ct = _b1(P.mul_p, ct, _b1(P.convert_p, n, dtype=ct.type.dtype))
    # right-aligned already when the kept axes are the trailing axes of the target
    pos = [a - offs for a in kept]
    if pos == list(range(len(s) - len(pos), len(s))):
        return ct
    return _b1(P.broadcast_in_dim_p, ct, *_shapes().sizes(s), dims=s, axes=tuple(pos))


@_reg_t(P.neg_p)
def _t_neg(cts, ins, e):
    return [_b1(P.neg_p, cts[0])]


@_reg_t(P.add_p, P.sub_p)
def _t_add_sub(cts, ins, e):
    (ct,) = cts
    out = e.outs[0].type
    res: list[Ct] = []
    for k, (a, x) in enumerate(zip(e.inputs, ins)):
        if x is not None:
            res.append(None)
            continue
        c = ct if (e.prim is P.add_p or k == 0) else _b1(P.neg_p, ct)
        res.append(_unbroadcast(c, out, a.type))
    return res


@_reg_t(P.mul_p)
def _t_mul(cts, ins, e):
    (ct,) = cts
    a, b = ins
    if a is None and b is None:
        raise ADError("internal: mul of two linear values is not linear")
    out = e.outs[0].type
    if a is None:
        return [_unbroadcast(_b1(P.mul_p, ct, b), out, e.inputs[0].type), None]
    return [None, _unbroadcast(_b1(P.mul_p, a, ct), out, e.inputs[1].type)]


@_reg_t(P.div_p)
def _t_div(cts, ins, e):
    (ct,) = cts
    a, b = ins
    if b is None:
        raise ADError("internal: division by a linear value is not linear")
    return [_unbroadcast(_b1(P.div_p, ct, b), e.outs[0].type, e.inputs[0].type), None]


@_reg_t(P.select_p)
def _t_select(cts, ins, e):
    (ct,) = cts
    p, a, b = ins
    out = e.outs[0].type
    z = _lit(0, out.dtype)
    return [None,
            None if a is not None else _unbroadcast(_b1(P.select_p, p, ct, z), out,
                                                    e.inputs[1].type),
            None if b is not None else _unbroadcast(_b1(P.select_p, p, z, ct), out,
                                                    e.inputs[2].type)]


@_reg_t(P.convert_p)
def _t_convert(cts, ins, e):
    return [_b1(P.convert_p, cts[0], dtype=e.inputs[0].type.dtype)]


@_reg_t(P.complex_p)
def _t_complex(cts, ins, e):
    # C as R^2: the cotangent dL/dx + i dL/dy splits back into its parts
    (ct,) = cts
    out = e.outs[0].type
    return [None if x is not None else _unbroadcast(_b1(part, ct), out, a.type)
            for part, a, x in zip((P.real_p, P.imag_p), e.inputs, ins)]


@_reg_t(P.real_p)
def _t_real(cts, ins, e):
    return [_b1(P.complex_p, cts[0], _lit(0, cts[0].type.dtype))]


@_reg_t(P.imag_p)
def _t_imag(cts, ins, e):
    return [_b1(P.complex_p, _lit(0, cts[0].type.dtype), cts[0])]


@_reg_t(P.reduce_sum_p)
def _t_reduce_sum(cts, ins, e):
    (ct,) = cts
    x = e.inputs[0].type
    axes = tuple(e.params["axes"])
    if axes == tuple(range(len(axes))):
        return [ct]  # leading axes: NumPy broadcasting restores them lazily
    ct = _exact(ct, e.outs[0].type)
    dims = tuple(ONE if k in axes else d for k, d in enumerate(x.shape))
    kept = tuple(k for k in range(x.ndim) if k not in axes)
    return [_b1(P.broadcast_in_dim_p, ct, *_shapes().sizes(dims), dims=dims, axes=kept)]


@_reg_t(P.cumsum_p)
def _t_cumsum(cts, ins, e):
    # every input element reaches the outputs after it (before it, reversed): the running
    # sum of the cotangent in the other direction
    ct = _exact(cts[0], e.outs[0].type)
    return [_b1(P.cumsum_p, ct, axis=e.params["axis"], reverse=not e.params["reverse"])]


@_reg_t(P.linrec_p)
def _t_linrec(cts, ins, e):
    # linear in b only; the reverse recurrence reads the next coefficient, which makes it the
    # forward one's transpose (see primitives.linrec_p)
    a, b = ins
    if a is None or b is not None:
        raise ADError("internal: linrec is linear in its second operand only")
    ct = _exact(cts[0], e.outs[0].type)
    return [None, _b1(P.linrec_p, a, ct, axis=e.params["axis"],
                      reverse=not e.params["reverse"])]


def _outer(u: Atom, v: Atom) -> Atom:
    """u[m] ⊗ v[k] -> [m, k]."""
    col = _b1(P.broadcast_in_dim_p, u, *_sizes_of(u), _lit(1, i64),
              dims=(u.type.shape[0], ONE), axes=(0,))
    return _b1(P.mul_p, col, v)


@_reg_t(P.matmul_p)
def _t_matmul(cts, ins, e):
    ct = _exact(cts[0], e.outs[0].type)
    a, b = ins
    ra, rb = e.inputs[0].type.ndim, e.inputs[1].type.ndim
    if a is None and b is None:
        raise ADError("internal: matmul of two linear values is not linear")
    if ra >= 3:  # stacks of matrices, equal batch dims: per batch index as for 2-D
        swap = tuple(range(ra - 2)) + (ra - 1, ra - 2)
        if a is None:
            return [_b1(P.matmul_p, ct, _b1(P.transpose_p, b, perm=swap)), None]
        return [None, _b1(P.matmul_p, _b1(P.transpose_p, a, perm=swap), ct)]
    if a is None:  # ct_a from ct and b
        if ra == 2 and rb == 2:
            ca = _b1(P.matmul_p, ct, _b1(P.transpose_p, b, perm=(1, 0)))
        elif ra == 2:
            ca = _outer(ct, b)
        elif rb == 2:
            ca = _b1(P.matmul_p, b, ct)
        else:
            ca = _b1(P.mul_p, ct, b)
        return [ca, None]
    if ra == 2 and rb == 2:
        cb = _b1(P.matmul_p, _b1(P.transpose_p, a, perm=(1, 0)), ct)
    elif ra == 2:
        cb = _b1(P.matmul_p, ct, a)
    elif rb == 2:
        cb = _outer(a, ct)
    else:
        cb = _b1(P.mul_p, a, ct)
    return [None, cb]


@_reg_t(P.transpose_p)
def _t_transpose(cts, ins, e):
    perm = e.params["perm"]
    inv = tuple(sorted(range(len(perm)), key=lambda k: perm[k]))
    return [_b1(P.transpose_p, _exact(cts[0], e.outs[0].type), perm=inv)]


@_reg_t(P.concat_p)
def _t_concat(cts, ins, e):
    # each linear input's cotangent: its rows of ct along the axis, typed as the input
    ct = _exact(cts[0], e.outs[0].type)
    axis = e.params["axis"]
    out: list[Optional[Atom]] = []
    start: Atom = _lit(0, i64)
    for x, a in zip(ins, e.inputs):
        (n,) = _shapes().sizes((a.type.shape[axis],))
        stop = _b1(P.add_p, start, n)
        if x is None:
            spec = (P.Slice(),) * axis + (P.Slice(start="dyn", stop="dyn"),) + \
                (P.Slice(),) * (a.type.ndim - axis - 1)
            out.append(_b1(P.index_p, ct, start, stop, spec=spec, out_dims=a.type.shape))
        else:
            out.append(None)
        start = stop
    return out


@_reg_t(P.full_p)
def _t_full(cts, ins, e):
    (ct,) = cts
    out = e.outs[0].type
    if not out.shape:
        return [ct] + [None] * (len(ins) - 1)
    ct = _exact(ct, out)
    return [_b1(P.reduce_sum_p, ct, axes=tuple(range(out.ndim)))] + [None] * (len(ins) - 1)


@_reg_t(P.index_p)
def _t_index(cts, ins, e):
    (ct,) = cts
    x, *idx = ins
    return [_Sparse(e.params["spec"], tuple(idx), ct)] + [None] * len(idx)  # type: ignore[arg-type]


def _region(ct: Atom, idx: Sequence[Atom], e: Eqn) -> Atom:
    """``ct[spec(idx)]``, typed with the stored value's dims where they line up (a traced
    slice bound gives the region a fresh dim that equals the value's at run time)."""
    spec = e.params["spec"]
    dims = list(P.index_out_dims(e.inputs[0].type.shape, spec))
    v = e.inputs[-1].type.shape
    for j in range(1, min(len(v), len(dims)) + 1):
        if v[-j] != ONE:
            dims[-j] = v[-j]
    params: dict[str, Any] = {"spec": spec}
    if any(d.is_fresh for d in dims):
        params["out_dims"] = tuple(dims)
    return _b1(P.index_p, ct, *idx, **params)


@_reg_t(P.set_p)
def _t_set(cts, ins, e):
    x, *idx, v = ins
    ct = _exact(cts[0], e.outs[0].type)
    region = _region(ct, idx, e)  # type: ignore[arg-type]
    ct_x = None if x is not None else _b1(P.set_p, ct, *idx, _lit(0, ct.type.dtype),
                                          spec=e.params["spec"])
    if v is None and P.has_arrays(e.params["spec"]):
        region = _last_writes(region, ct, idx, e)  # type: ignore[arg-type]
    ct_v = None if v is not None else _unbroadcast(region, region.type, e.inputs[-1].type)
    return [ct_x] + [None] * len(idx) + [ct_v]


def _last_writes(region: Atom, ct: Atom, idx: Sequence[Atom], e: Eqn) -> Atom:
    """``region`` (the cotangent read at a scatter-set's positions) with zeros where a later
    position of the index arrays wrote the same element: only the value that stays in the
    array receives its cotangent.  Each position of the advanced block is tagged with its
    flat number, the tags are scattered as the values were (the last write wins) and read
    back; a position keeps its cotangent where it reads its own tag."""
    block, at = P.advanced_layout(e.params["spec"])
    rank = len(block)
    rt = region.type
    sizes = _sizes_of(region)
    pos: Optional[Atom] = None
    stride: Atom = _lit(1, i64)
    for k in reversed(range(at, at + rank)):
        step = _b1(P.iota_p, sizes[k], dim=rt.shape[k], dtype=i64)
        step = _b1(P.broadcast_in_dim_p, step, *sizes, dims=rt.shape, axes=(k,))
        step = _b1(P.mul_p, step, stride)
        pos = step if pos is None else _b1(P.add_p, pos, step)
        stride = _b1(P.mul_p, stride, sizes[k])
    assert pos is not None
    tags = _b1(P.full_p, _lit(-1, i64), *_sizes_of(ct), dims=ct.type.shape, dtype=i64)
    tags = _b1(P.set_p, tags, *idx, pos, spec=e.params["spec"])
    won = _b1(P.eq_p, _region(tags, idx, e), pos)
    return _b1(P.select_p, won, region, _lit(0, rt.dtype))


@_reg_t(P.add_at_p)
def _t_add_at(cts, ins, e):
    x, *idx, v = ins
    ct = cts[0]
    ct_v = None
    if v is None:
        region = _region(_exact(ct, e.outs[0].type), idx, e)  # type: ignore[arg-type]
        ct_v = _unbroadcast(region, region.type, e.inputs[-1].type)
    return [None if x is not None else ct] + [None] * len(idx) + [ct_v]


@_reg_t(P.broadcast_in_dim_p)
def _t_broadcast_in_dim(cts, ins, e):
    ct = _exact(cts[0], e.outs[0].type)
    x = e.inputs[0].type
    axes = e.params["axes"]
    dims = e.outs[0].type.shape
    stretched = [k for k, a in enumerate(axes) if x.shape[k] == ONE and dims[a] != ONE]
    red = tuple(a for a in range(len(dims)) if a not in axes) + tuple(axes[k] for k in stretched)
    if red:
        ct = _b1(P.reduce_sum_p, ct, axes=tuple(sorted(red)))
    if stretched:
        kept = tuple(k for k in range(x.ndim) if k not in stretched)
        ct = _b1(P.broadcast_in_dim_p, ct, *_shapes().sizes(x.shape), dims=x.shape, axes=kept)
    return [ct] + [None] * (len(ins) - 1)


@_reg_t(P.reshape_p)
def _t_reshape(cts, ins, e):
    # the cotangent's elements in C order are the input's: reshape them back
    ct = _exact(cts[0], e.outs[0].type)
    x = e.inputs[0].type
    return [_b1(P.reshape_p, ct, *_shapes().sizes(x.shape), dims=x.shape,
                **{k: v for k, v in e.params.items() if k == "what"})] + [None] * (len(ins) - 1)


@_reg_t(P.custom_lin_p)
def _t_custom_lin(cts, ins, e):
    n_res = e.params["n_res"]
    bwd: Func = e.params["bwd"]
    cts_x = [_exact(c, v.type) if c is not None else _zeros_t(v.type)
             for c, v in zip(cts, e.outs)]
    got = inline(bwd, *ins[:n_res], *cts_x)  # type: ignore[arg-type]
    return [None] * n_res + list(got)


@_reg_t(P.loop_p)
def _t_loop(cts, ins, e, bases=None):
    """Run the iterations backwards: j = 0..T-1 is iteration k = T-1-j (i = start + k step);
    carries are the carries' cotangents and one accumulator per linear constant."""
    body: Func = e.params["body"]
    n = e.params["n_carry"]
    start, stop, step = ins[:3]
    # a carried start that is not linear is a known zero (a materialised zero tangent)
    consts = ins[3 + n:]
    lin_k = [a is None for a in consts]
    if all(c is None for c in cts):
        return [None] * 3 + [None] * n + [bases.get(3 + n + k) if bases else None
                                          for k in range(len(consts))]
    ct0 = [_exact(c, v.type) if c is not None else _zeros_t(v.type) for c, v in zip(cts, e.outs)]
    bases = bases or {}
    acc0 = [bases[3 + n + k] if 3 + n + k in bases else _zeros_t(v.type)
            for k, (v, l) in enumerate(zip(e.inputs[3 + n:], lin_k)) if l]
    T = _trip_count(start, stop, step)  # type: ignore[arg-type]
    bb = Builder()
    with _scope(bb) as sh:
        j = Var(scalar(i64))
        ct_p = [Var(c.type) for c in ct0]
        acc_p = [Var(a.type) for a in acc0]
        sh.note(*ct_p, *acc_p)
        last = _b1(P.sub_p, _b1(P.sub_p, T, _lit(1, i64)), j)
        i = _b1(P.add_p, start, _b1(P.mul_p, last, step))  # type: ignore[arg-type]
        args = [i] + [None] * n + list(consts)
        linear = [False] + [True] * n + lin_k
        lin_pos = [1 + n + k for k, l in enumerate(lin_k) if l]
        got = transpose_emit(body, linear, args, ct_p,
                             accumulate=dict(zip(lin_pos, acc_p)))
        new_ct = [_exact(c, p.type) if c is not None else _zeros_t(p.type)
                  for c, p in zip(got[1:1 + n], body.params[1:1 + n])]
        new_acc = [got[k] for k in lin_pos]
    bfunc, extra = close_over(bb, [j, *ct_p, *acc_p], [*new_ct, *new_acc], body.name + "_T")
    res = bind(P.loop_p, _lit(0, i64), T, _lit(1, i64), *ct0, *acc0, *extra,
               body=bfunc, n_carry=len(ct0) + len(acc0))
    ct_init = list(res[:n])
    accs = iter(res[n:])
    return [None] * 3 + ct_init + [next(accs) if l else None for l in lin_k]


@_reg_t(P.cond_p)
def _t_cond(cts, ins, e):
    """A cond on the same predicate with transposed branches.  A branch's cotangent of an
    operand that is ``add_at(zeros, idx, v)`` with ``idx`` made of operands (``x[i]`` inside a
    branch) leaves the cond as ``v`` and stays sparse outside, so no full-size zeros are made
    inside the branches."""
    pred, *ops = ins
    lin = [a is None for a in ops]
    fs = [e.params["true_fn"], e.params["false_fn"]]
    ct_in = [_exact(c, v.type) if c is not None else None for c, v in zip(cts, e.outs)]
    ct_vals = [c for c in ct_in if c is not None]
    nl_ops = [a for a in ops if a is not None]
    built = []
    for f in fs:
        b = Builder()
        with _scope(b) as sh:
            nl_p = [Var(a.type) for a in nl_ops]
            ct_p = [Var(c.type) for c in ct_vals]
            sh.note(*nl_p, *ct_p)
            it_nl, it_ct = iter(nl_p), iter(ct_p)
            args = [None if l else next(it_nl) for l in lin]
            cts_b = [next(it_ct) if c is not None else None for c in ct_in]
            got = transpose_emit(f, lin, args, cts_b, raw=True)
        built.append((b, nl_p, ct_p, got))

    def outer_idx(sp: _Sparse, nl_p: list[Var]) -> Optional[tuple[Atom, ...]]:
        pos = {p: j for j, p in enumerate(nl_p)}
        out: list[Atom] = []
        for a in sp.idx:
            if isinstance(a, Lit):
                out.append(a)
            elif a in pos:
                out.append(nl_ops[pos[a]])  # type: ignore[arg-type]
            else:
                return None
        return tuple(out)

    # per linear operand: which parts leave the cond (a dense cotangent, a hoisted sparse one)
    plan: list[tuple[bool, Optional[tuple]]] = []  # (dense, (spec, outer idx, value type))
    for k, l in enumerate(lin):
        if not l:
            plan.append((False, None))
            continue
        dense = False
        hoist: Optional[tuple] = None
        ok = True
        for b, nl_p, _, got in built:
            sps = [c for c in got[k] if isinstance(c, _Sparse)]
            dense = dense or any(not isinstance(c, _Sparse) for c in got[k])
            if len(sps) > 1:
                ok = False
            for sp in sps:
                oi = outer_idx(sp, nl_p)
                key = (sp.spec, oi, sp.value.type)
                # (a first branch whose index is made inside it leaves hoist[1] None: the
                # contributions cannot be hoisted, and there is no index to compare with)
                if oi is None or any(d.is_fresh for d in sp.value.type.shape) or (
                        hoist is not None and (hoist[1] is None or hoist[0] != key[0] or
                                               hoist[2] != key[2] or
                                               any(x is not y for x, y in zip(hoist[1], oi)))):
                    ok = False
                hoist = hoist or key
        if hoist is not None and not ok:
            dense, hoist = True, None
        plan.append((dense, hoist))
    if not any(d or h is not None for d, h in plan):
        return [None] * len(ins)
    closed = []
    for (b, nl_p, ct_p, got), f in zip(built, fs):
        with _scope(b) as sh:
            sh.note(*nl_p, *ct_p)
            outs: list[Atom] = []
            for k, (dense, hoist) in enumerate(plan):
                p = f.params[k]
                parts = got[k] if lin[k] else []
                sps = [c for c in parts if isinstance(c, _Sparse)]
                if dense:
                    rest = [c for c in parts if hoist is None or not isinstance(c, _Sparse)]
                    acc = _accumulate(p.type, rest)
                    outs.append(_exact(acc, p.type) if acc is not None else _zeros_t(p.type))
                if hoist is not None:
                    outs.append(sps[0].value if sps else _zeros_t(hoist[2]))
        closed.append(close_over(b, nl_p + ct_p, outs, f.name + "_T"))
    funcs, extra = _unify_closed(closed, len(nl_ops) + len(ct_vals))
    res = iter(bind(P.cond_p, pred, *nl_ops, *ct_vals, *extra,  # type: ignore[arg-type]
                    true_fn=funcs[0], false_fn=funcs[1]))
    result: list[Ct] = [None]
    for k, (dense, hoist) in enumerate(plan):
        if not lin[k]:
            result.append(None)
            continue
        parts: list[Ct] = []
        if dense:
            parts.append(next(res))
        if hoist is not None:
            parts.append(_Sparse(hoist[0], hoist[1], next(res)))
        result.append(parts[0] if len(parts) == 1 else (_Many(parts) if parts else None))
    return result


@dataclass(frozen=True)
class _Many:
    """Several cotangent contributions to one input (a rule returning more than one)."""

    parts: list


def transpose_func(func: Func, linear: Sequence[bool]) -> Func:
    """The transpose of ``func``, linear in the params flagged ``linear``: params are the
    non-linear params then one cotangent per out; outs are one cotangent per linear param."""
    b = Builder()
    with _scope(b) as sh:
        nl = [Var(p.type) for p, l in zip(func.params, linear) if not l]
        ct = [Var(a.type) for a in func.outs]
        sh.note(*nl, *ct)
        it = iter(nl)
        args = [None if l else next(it) for l in linear]
        got = transpose_emit(func, linear, args, ct)
        outs = [_exact(g, p.type) if g is not None else _zeros_t(p.type)
                for g, p, l in zip(got, func.params, linear) if l]
    return b.build(nl + ct, outs, f"transpose_{func.name}")
