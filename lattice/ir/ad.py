"""Automatic differentiation as IR → IR transforms.

Every transform here takes a verified :class:`~lattice.ir.core.Func` and returns a new one (or
emits equations into the function being built); nothing is evaluated.

* :func:`jvp_func` (forward mode): params are the primals then one tangent per differentiated
  float param; outs are the primal outs then one tangent per float out.  Built by a read/write
  loop over equations that applies ``jvp_rules[prim]``.
* :func:`linearize_func`: the JVP function split by *partial evaluation* into a primal function
  (primals → primal outs + residuals) and a linear function (residuals + tangents → tangent
  outs).  Equations that do not depend on tangents go to the primal side; the values the
  tangent side needs from it are the residuals.
* :func:`transpose_func`: the transpose of a function linear in some of its params, built by a
  backward read/write loop applying ``transpose_rules[prim]`` (linear primitives only).
* :func:`vjp_func` = transpose ∘ linearize, all in one function (primal part, then the
  transposed linear part), and :func:`grad_func` (a scalar output, seeded with 1).
* :func:`hvp_func` / :func:`hessian_func`: forward over reverse.

Contracts and choices:

* **Symbolic zeros.**  A zero tangent or cotangent is ``None`` and costs nothing; integer and
  bool values never have one, so integer arithmetic, comparisons, ``argmax``, ``dim`` cost
  nothing.  Only float dtypes are differentiable.  Zeros are materialised (``full``) only where a
  value must exist: a loop-carried tangent, a branch output, a requested output.
* **Lazily broadcast cotangents.**  During transposition a cotangent of a value of shape ``S``
  may have any shape that broadcasts to ``S`` the NumPy way (the cotangent of ``sum(x)`` for
  ``x: f64[n]`` stays a scalar); it is made exact (``broadcast_in_dim``) only where an exact
  shape is needed.  So a mean over n elements does not allocate an n-vector of 1/n.
* **Indexed cotangents.**  The transpose of ``index`` is a *sparse* contribution that is added
  into the cotangent with ``add_at`` (an in-place update in codegen), never a full-size zero
  array per use: inside a loop, the cotangent of ``X`` from ``X[i]`` accumulates into one carried
  array.
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
* **cond.**  JVP: a cond of JVP'd branches.  Partial evaluation: both primal branches return the
  union of the residuals (zeros for the other branch's).  Transpose: a cond on the same
  predicate with transposed branches.
* ``reduce_max``/``reduce_min`` (and ``maximum``/``minimum`` at ties) split the tangent evenly
  between the tied positions, as JAX does.
* ``fused`` equations are never differentiated: differentiate the traced IR, then optimise.
* ``custom_vjp_call``: forward mode differentiates the primal ``fun``; reverse mode runs the
  user's ``fwd`` and transposes through the user's ``bwd`` (a ``custom_lin`` equation).

Rules, one registration path each: ``jvp_rules[prim](ins, tangents, eqn, mode) -> (outs,
tangent outs)`` and ``transpose_rules[prim](cts, ins, eqn) -> per-input cotangents``, both below
in the order of :mod:`lattice.ir.primitives`.  ``NON_DIFFERENTIABLE`` lists the primitives
whose outputs are never floats (the driver gives them no tangents).
"""
from __future__ import annotations

import contextlib
import math
import threading
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from . import primitives as P
from .core import Atom, Builder, Eqn, Func, Lit, Primitive, Var, bind, building, current_builder
from .inline import clone_func, close_over, inline
from .types import Dim, DType, TensorType, i64, scalar

__all__ = [
    "ADError", "jvp_rules", "transpose_rules", "NON_DIFFERENTIABLE", "LINEAR",
    "jvp_func", "linearize_func", "partial_eval", "transpose_func", "vjp_func", "grad_func",
    "hvp_func", "hessian_func", "jvp_emit", "transpose_emit",
]

ONE = Dim.of(1)


class ADError(TypeError):
    """A program cannot be differentiated as asked (the message says why and what to do)."""


Ct = Union[Atom, "_Sparse", None]
JvpRule = Callable[[list[Atom], list[Optional[Atom]], Eqn, str],
                   tuple[list[Atom], list[Optional[Atom]]]]
TransposeRule = Callable[[list[Optional[Atom]], list[Optional[Atom]], Eqn], list[Ct]]

#: prim -> rule(primal ins, tangent ins (None = zero), eqn, mode) -> (primal outs, tangent outs)
jvp_rules: dict[Primitive, JvpRule] = {}
#: linear prim -> rule(out cotangents, non-linear ins (None where linear), eqn) -> in cotangents
transpose_rules: dict[Primitive, TransposeRule] = {}

#: primitives whose outputs are never floats: no tangent flows through them
NON_DIFFERENTIABLE = frozenset([*P.COMPARE.values(), P.not_p, P.and_p, P.or_p, P.argmax_p,
                                P.argmin_p, P.dim_p, P.iota_p])
#: primitives a linear function (the tangent side of a JVP) may contain; each has a transpose
LINEAR = frozenset([P.neg_p, P.add_p, P.sub_p, P.mul_p, P.div_p, P.select_p, P.convert_p,
                    P.reduce_sum_p, P.matmul_p, P.transpose_p, P.full_p, P.index_p, P.set_p,
                    P.add_at_p, P.broadcast_in_dim_p, P.loop_p, P.cond_p, P.custom_lin_p,
                    P.concat_p])


# =========================================================================== small IR helpers
def _b1(prim: Primitive, *ins: Atom, **params: Any) -> Var:
    (v,) = bind(prim, *ins, **params)
    return v


def _lit(value: Any, dtype: DType) -> Lit:
    return Lit.of(value, dtype)


def _dt(a: Atom) -> DType:
    return a.type.dtype


def _is_float(a: Union[Atom, TensorType]) -> bool:
    t = a if isinstance(a, TensorType) else a.type
    return t.dtype.is_float


def _emit_copy(e: Eqn, ins: Sequence[Atom]) -> list[Var]:
    """Append a copy of ``e`` reading ``ins`` (fresh outs of the same types, sub-functions
    alpha-renamed); returns its outs."""
    params = {k: (clone_func(v) if isinstance(v, Func) else v) for k, v in e.params.items()}
    outs = tuple(Var(v.type) for v in e.outs)
    b = current_builder()
    b.eqns.append(Eqn(e.prim, tuple(ins), params, outs, e.loc if e.loc is not None else b.loc))
    return list(outs)


@contextlib.contextmanager
def _at(loc: Any) -> Iterator[None]:
    """Stamp equations built in the block with ``loc`` (the user's source line)."""
    b = current_builder()
    old = b.loc
    if loc is not None:
        b.loc = loc
    try:
        yield
    finally:
        b.loc = old


def _sizes_of(v: Atom) -> list[Atom]:
    """i64 atoms for the shape of ``v`` (``dim`` equations for symbolic axes)."""
    out: list[Atom] = []
    for k, d in enumerate(v.type.shape):
        out.append(_lit(d.const, i64) if d.is_const else _b1(P.dim_p, v, axis=k))
    return out


def _zeros(t: TensorType, sizes: Sequence[Atom]) -> Atom:
    if not t.shape:
        return _lit(0, t.dtype)
    return _b1(P.full_p, _lit(0, t.dtype), *sizes, dims=t.shape, dtype=t.dtype)


def _zeros_like(v: Atom) -> Atom:
    return _zeros(v.type, _sizes_of(v) if v.type.shape else [])


def _broadcast_to(x: Atom, t: TensorType, sizes: Sequence[Atom]) -> Atom:
    """``x`` (whose shape broadcasts to ``t``'s the NumPy way) made exactly of shape ``t``."""
    if x.type.shape == t.shape:
        return x
    off = len(t.shape) - x.type.ndim
    return _b1(P.broadcast_in_dim_p, x, *sizes, dims=t.shape, axes=tuple(range(off, len(t.shape))))


def _fit(t: Optional[Atom], ref: Atom) -> Optional[Atom]:
    """A tangent of exactly ``ref``'s type (broadcasting a smaller one)."""
    if t is None or t.type.shape == ref.type.shape:
        return t
    return _broadcast_to(t, ref.type, _sizes_of(ref))


# --------------------------------------------------------------------------- runtime sizes
class _Shapes:
    """Finds an i64 atom for a :class:`Dim` in the function being built.

    Candidates are vars in scope whose types carry dims; ``dim(v, k)`` is emitted on first use
    and cached.  A nested (open) function asks its parent, and the outer atom is captured when
    the function is closed."""

    def __init__(self, builder: Builder, parent: Optional["_Shapes"]) -> None:
        self.builder = builder
        self.parent = parent
        self.cands: list[Var] = []
        self.cache: dict[Dim, Atom] = {}

    def note(self, *atoms: Any) -> None:
        for a in atoms:
            if isinstance(a, Var) and a.type.shape:
                self.cands.append(a)

    def size(self, d: Dim) -> Atom:
        if d.is_const:
            return _lit(d.const, i64)
        hit = self.cache.get(d)
        if hit is None:
            hit = self._local(d)
            if hit is None and self.parent is not None:
                hit = self.parent.size(d)
            if hit is None:
                raise ADError(f"internal: the runtime size {d} is not available here")
            self.cache[d] = hit
        return hit

    def _local(self, d: Dim) -> Optional[Atom]:
        for v in reversed(self.cands):
            for k, vd in enumerate(v.type.shape):
                if vd == d:
                    with building(self.builder):
                        return _b1(P.dim_p, v, axis=k)
        if d.is_fresh or (len(d.terms) == 1 and d.terms[0][1] == 1 and d.const == 0):
            return None
        # an affine size (n - 1, 2*n): from its named terms
        parts = []
        for name, coef in d.terms:
            a = self._local(Dim.named(name))
            if a is None:
                return None
            parts.append((a, coef))
        with building(self.builder):
            acc: Atom = _lit(d.const, i64)
            for a, coef in parts:
                term = a if coef == 1 else _b1(P.mul_p, a, _lit(coef, i64))
                acc = _b1(P.add_p, acc, term)
        return acc

    def sizes(self, dims: Sequence[Dim]) -> list[Atom]:
        return [self.size(d) for d in dims]


_tls = threading.local()


def _stk() -> list[_Shapes]:
    """The per-thread stack of :class:`_Shapes` (innermost function being built last)."""
    st = getattr(_tls, "stack", None)
    if st is None:
        st = _tls.stack = []
    return st


@contextlib.contextmanager
def _use(s: _Shapes) -> Iterator[_Shapes]:
    """Build into ``s.builder`` with ``s`` as the current :class:`_Shapes`."""
    _stk().append(s)
    try:
        with building(s.builder):
            yield s
    finally:
        _stk().pop()


_TOP = object()


def _scope(builder: Builder, *cands: Any, parent: Any = _TOP) -> Any:
    """Build into ``builder`` with a new :class:`_Shapes` nested in ``parent`` (by default the
    enclosing one: the function being built must then be closed with :func:`~lattice.ir.inline.close_over`)."""
    if parent is _TOP:
        parent = _stk()[-1] if _stk() else None
    s = _Shapes(builder, parent)
    s.note(*cands)
    return _use(s)


def _shapes() -> _Shapes:
    return _stk()[-1]


def _zeros_t(t: TensorType) -> Atom:
    """Zeros of type ``t`` in the current scope (sizes from :class:`_Shapes`)."""
    return _zeros(t, _shapes().sizes(t.shape) if t.shape else [])


def _exact(ct: Atom, t: TensorType) -> Atom:
    """A lazily broadcast cotangent made exactly of type ``t``."""
    if ct.type.shape == t.shape:
        return ct
    return _broadcast_to(ct, t, _shapes().sizes(t.shape))


def _trip_count(start: Atom, stop: Atom, step: Atom) -> Atom:
    """``len(range(start, stop, step))`` as an i64 atom: max(0, ceil((stop - start) / step))."""
    def count(s_pos: bool) -> Atom:
        span = _b1(P.sub_p, stop, start)
        adj = _b1(P.add_p, span, _b1(P.sub_p, step, _lit(1 if s_pos else -1, i64)))
        return _b1(P.floordiv_p, adj, step)
    if isinstance(step, Lit):
        n = count(step.value > 0)
    else:
        n = _b1(P.select_p, _b1(P.gt_p, step, _lit(0, i64)), count(True), count(False))
    return _b1(P.max_p, n, _lit(0, i64))


def _iteration(i: Atom, start: Atom, step: Atom) -> Atom:
    """The iteration number k of loop index i: (i - start) // step."""
    k = i if isinstance(start, Lit) and start.value == 0 else _b1(P.sub_p, i, start)
    if isinstance(step, Lit) and step.value == 1:
        return k
    return _b1(P.floordiv_p, k, step)


# =========================================================================== forward mode
def jvp_emit(func: Func, primals: Sequence[Atom], tangents: Sequence[Optional[Atom]],
             mode: str = "jvp") -> tuple[list[Atom], list[Optional[Atom]]]:
    """Emit the JVP of ``func`` into the current builder: returns (primal outs, tangent outs).

    ``tangents[k]`` is None for a zero (or absent) tangent.  ``mode`` is "jvp" (a forward-mode
    derivative that is evaluated) or "linearize" (it will be partially evaluated and transposed:
    custom rules then use the user's reverse rule)."""
    env: dict[Var, Atom] = dict(zip(func.params, primals))
    tenv: dict[Var, Atom] = {p: t for p, t in zip(func.params, tangents) if t is not None}

    def read(a: Atom) -> Atom:
        return env[a] if isinstance(a, Var) else a

    for e in func.eqns:
        ins = [read(a) for a in e.inputs]
        tins = [tenv.get(a) if isinstance(a, Var) else None for a in e.inputs]
        if e.prim in P.POST_PASS:  # fused, rowpass: made by the passes, after AD
            raise ADError(f"cannot differentiate a `{e.prim.name}` equation: differentiate the "
                          "traced IR (kernel.ir), then run the optimisation passes")
        if all(t is None for t in tins) or not any(_is_float(v) for v in e.outs):
            outs: list[Atom] = list(_emit_copy(e, ins))
            touts: list[Optional[Atom]] = [None] * len(outs)
        else:
            rule = jvp_rules.get(e.prim)
            if rule is None:
                raise ADError(f"primitive {e.prim.name} has no differentiation rule")
            with _at(e.loc):
                outs, touts = rule(ins, tins, e, mode)
        env.update(zip(e.outs, outs))
        for v, t in zip(e.outs, touts):
            if t is not None:
                assert t.type == v.type, (e.prim, t.type, v.type)
                tenv[v] = t
    return [read(a) for a in func.outs], [tenv.get(a) if isinstance(a, Var) else None
                                         for a in func.outs]


def _float_mask(func: Func, which: Optional[Sequence[bool]]) -> list[bool]:
    which = [True] * len(func.params) if which is None else list(which)
    if len(which) != len(func.params):
        raise ValueError(f"{func.name}: {len(which)} flags for {len(func.params)} params")
    return [w and _is_float(p) for w, p in zip(which, func.params)]


def jvp_func(func: Func, which: Optional[Sequence[bool]] = None, *, mode: str = "jvp") -> Func:
    """Forward mode: params = primals + one tangent per float param with ``which`` set; outs =
    primal outs + one tangent per float out (zeros materialised)."""
    mask = _float_mask(func, which)
    b = Builder()
    with building(b):
        ps = [Var(p.type) for p in func.params]
        ts = [Var(p.type) if m else None for p, m in zip(func.params, mask)]
        outs, touts = jvp_emit(func, ps, ts, mode)
        tout_atoms = [t if t is not None else _zeros_like(o)
                      for o, t in zip(outs, touts) if _is_float(o)]
    return b.build(ps + [t for t in ts if t is not None], list(outs) + tout_atoms,
                   f"jvp_{func.name}")


def _jvp_open(func: Func, mask: Sequence[bool], mode: str, instantiate: Sequence[bool]
              ) -> tuple[Builder, list[Var], list[Optional[Var]], list[Atom], list[Optional[Atom]]]:
    """JVP of a sub-function into a new builder (not yet a Func): fresh primal params, tangent
    params where ``mask``, outs, and tangent outs (zeros where ``instantiate`` and zero)."""
    b = Builder()
    with building(b):
        ps = [Var(p.type) for p in func.params]
        ts = [Var(p.type) if m else None for p, m in zip(func.params, mask)]
        outs, touts = jvp_emit(func, ps, ts, mode)
        touts = [t if t is not None or not inst else _zeros_like(o)
                 for o, t, inst in zip(outs, touts, instantiate)]
    return b, ps, ts, outs, touts


# --------------------------------------------------------------------------- tangent helpers
def _tadd(a: Optional[Atom], b: Optional[Atom]) -> Optional[Atom]:
    if a is None:
        return b
    if b is None:
        return a
    return _b1(P.add_p, a, b)


def _tsub(a: Optional[Atom], b: Optional[Atom]) -> Optional[Atom]:
    if b is None:
        return a
    if a is None:
        return _b1(P.neg_p, b)
    return _b1(P.sub_p, a, b)


def _tmul(t: Optional[Atom], x: Atom) -> Optional[Atom]:
    return None if t is None else _b1(P.mul_p, t, x)


def _or0(t: Optional[Atom], dtype: DType) -> Atom:
    return _lit(0, dtype) if t is None else t


def _defjvp(*prims: Primitive) -> Callable[[Callable[..., list[Optional[Atom]]]], Any]:
    """Register a rule that re-emits the primal equation and computes tangents from
    ``fn(ins, outs, tangents, eqn)``."""
    def deco(fn: Callable[..., list[Optional[Atom]]]) -> Any:
        def rule(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
                 ) -> tuple[list[Atom], list[Optional[Atom]]]:
            outs = _emit_copy(e, ins)
            return list(outs), list(fn(ins, outs, tins, e))
        for p in prims:
            jvp_rules[p] = rule
        return fn
    return deco


def _unary(prim: Primitive, deriv: Callable[[Atom, Atom], Optional[Atom]]) -> None:
    """``t_out = t * deriv(x, y)``; deriv None means a zero derivative."""
    @_defjvp(prim)
    def _(ins: list[Atom], outs: list[Var], tins: list[Optional[Atom]], e: Eqn) -> list:
        (x,), (y,), (t,) = ins, outs, tins
        d = deriv(x, y)
        return [None if d is None or t is None else _b1(P.mul_p, t, d)]


def _one(x: Atom) -> Lit:
    return _lit(1, _dt(x))


# d/dx of each unary elementwise primitive, in terms of x and y = f(x)
_unary(P.exp_p, lambda x, y: y)
_unary(P.log_p, lambda x, y: _b1(P.div_p, _one(x), x))
_unary(P.log1p_p, lambda x, y: _b1(P.div_p, _one(x), _b1(P.add_p, x, _one(x))))
_unary(P.expm1_p, lambda x, y: _b1(P.add_p, y, _one(x)))
_unary(P.sqrt_p, lambda x, y: _b1(P.div_p, _lit(0.5, _dt(x)), y))
_unary(P.tanh_p, lambda x, y: _b1(P.sub_p, _one(x), _b1(P.mul_p, y, y)))
_unary(P.sin_p, lambda x, y: _b1(P.cos_p, x))
_unary(P.cos_p, lambda x, y: _b1(P.neg_p, _b1(P.sin_p, x)))
_unary(P.floor_p, lambda x, y: None)


def _gauss(x: Atom, c: float) -> Var:
    """``c * exp(-x * x)``: erf' with c = 2/sqrt(pi), erfc' with c = -2/sqrt(pi)."""
    return _b1(P.mul_p, _lit(c, _dt(x)), _b1(P.exp_p, _b1(P.neg_p, _b1(P.mul_p, x, x))))


_unary(P.erf_p, lambda x, y: _gauss(x, 2.0 / math.sqrt(math.pi)))
_unary(P.erfc_p, lambda x, y: _gauss(x, -2.0 / math.sqrt(math.pi)))
# sigmoid' = s(x) s(-x): both factors from the stable sigmoid, so no 1 - s cancellation
_unary(P.sigmoid_p, lambda x, y: _b1(P.mul_p, y, _b1(P.sigmoid_p, _b1(P.neg_p, x))))
# softplus' = sigmoid (stable for every x)
_unary(P.softplus_p, lambda x, y: _b1(P.sigmoid_p, x))
# |x|' = sign(x), taking +1 at 0
_unary(P.abs_p, lambda x, y: _b1(P.select_p, _b1(P.ge_p, x, _lit(0, _dt(x))), _one(x),
                                 _lit(-1, _dt(x))))


@_defjvp(P.neg_p)
def _jvp_neg(ins, outs, tins, e):
    return [_b1(P.neg_p, tins[0])]


@_defjvp(P.add_p)
def _jvp_add(ins, outs, tins, e):
    return [_fit(_tadd(*tins), outs[0])]


@_defjvp(P.sub_p)
def _jvp_sub(ins, outs, tins, e):
    return [_fit(_tsub(*tins), outs[0])]


@_defjvp(P.mul_p)
def _jvp_mul(ins, outs, tins, e):
    (a, b), (ta, tb) = ins, tins
    return [_fit(_tadd(_tmul(ta, b), None if tb is None else _b1(P.mul_p, a, tb)), outs[0])]


@_defjvp(P.div_p)
def _jvp_div(ins, outs, tins, e):
    # (a/b)' = (ta - tb * y) / b
    (a, b), (y,), (ta, tb) = ins, outs, tins
    num = _tsub(ta, _tmul(tb, y))
    return [_fit(_b1(P.div_p, num, b), y)]


@_defjvp(P.pow_p)
def _jvp_pow(ins, outs, tins, e):
    # (a^b)' = ta * b * a^(b-1) + tb * log(a) * y; log(a) is taken as 0 at a = 0 (y is 0
    # or 1 there), so a zero base gives no NaN
    (a, b), (y,), (ta, tb) = ins, outs, tins
    d = _dt(a)
    t = None
    if ta is not None:
        t = _b1(P.mul_p, ta, _b1(P.mul_p, b, _b1(P.pow_p, a, _b1(P.sub_p, b, _lit(1, d)))))
    if tb is not None:
        safe = _b1(P.select_p, _b1(P.eq_p, a, _lit(0, d)), _lit(1, d), a)
        t = _tadd(t, _b1(P.mul_p, tb, _b1(P.mul_p, _b1(P.log_p, safe), y)))
    return [_fit(t, y)]


def _jvp_minmax(first_wins: Primitive) -> Callable[..., list[Optional[Atom]]]:
    # the tangent of the chosen operand; at ties the mean of both (as JAX does)
    def fn(ins, outs, tins, e):
        (a, b), (y,), (ta, tb) = ins, outs, tins
        d = _dt(y)
        ta0, tb0 = _or0(ta, d), _or0(tb, d)
        tie = _b1(P.mul_p, _b1(P.add_p, ta0, tb0), _lit(0.5, d))
        inner = _b1(P.select_p, _b1(first_wins, b, a), tb0, tie)
        return [_fit(_b1(P.select_p, _b1(first_wins, a, b), ta0, inner), y)]
    return fn


_defjvp(P.max_p)(_jvp_minmax(P.gt_p))
_defjvp(P.min_p)(_jvp_minmax(P.lt_p))


@_defjvp(P.logaddexp_p)
def _jvp_logaddexp(ins, outs, tins, e):
    # y = log(e^a + e^b): dy = ta e^(a-y) + tb e^(b-y); a - y <= 0, so no overflow
    (a, b), (y,), (ta, tb) = ins, outs, tins
    t = _tadd(_tmul(ta, _b1(P.exp_p, _b1(P.sub_p, a, y))),
              _tmul(tb, _b1(P.exp_p, _b1(P.sub_p, b, y))))
    return [_fit(t, y)]


@_defjvp(P.floordiv_p)
def _jvp_floordiv(ins, outs, tins, e):
    return [None]  # piecewise constant


@_defjvp(P.mod_p)
def _jvp_mod(ins, outs, tins, e):
    # a mod b = a - floor(a/b) b
    (a, b), (y,), (ta, tb) = ins, outs, tins
    q = None if tb is None else _b1(P.floordiv_p, a, b)
    return [_fit(_tsub(ta, None if tb is None else _b1(P.mul_p, tb, q)), y)]


@_defjvp(P.select_p)
def _jvp_select(ins, outs, tins, e):
    (p, a, b), (y,), (_, ta, tb) = ins, outs, tins
    d = _dt(y)
    return [_fit(_b1(P.select_p, p, _or0(ta, d), _or0(tb, d)), y)]


@_defjvp(P.convert_p)
def _jvp_convert(ins, outs, tins, e):
    (x,), (t,) = ins, tins
    if t is None or not _is_float(x) or not _is_float(outs[0]):
        return [None]
    return [_b1(P.convert_p, t, dtype=e.params["dtype"])]


@_defjvp(P.reduce_sum_p)
def _jvp_reduce_sum(ins, outs, tins, e):
    return [_b1(P.reduce_sum_p, tins[0], axes=e.params["axes"])]


def _keepdims(y: Atom, x: Atom, axes: Sequence[int]) -> Atom:
    """``y = reduce(x, axes)`` with the reduced axes restored as literal 1s (only when they
    are not leading, since NumPy broadcasting adds leading axes by itself)."""
    if tuple(axes) == tuple(range(len(axes))):
        return y
    dims = tuple(ONE if k in axes else d for k, d in enumerate(x.type.shape))
    kept = tuple(k for k in range(x.type.ndim) if k not in axes)
    sizes = [_lit(1, i64) if k in axes else s for k, s in enumerate(_sizes_of(x))]
    return _b1(P.broadcast_in_dim_p, y, *sizes, dims=dims, axes=kept)


def _jvp_reduce_extreme(ins, outs, tins, e):
    # the mean of the tangents at the positions equal to the extreme (ties share evenly)
    (x,), (y,), (t,) = ins, outs, tins
    axes = e.params["axes"]
    d = _dt(x)
    hit = _b1(P.eq_p, x, _keepdims(y, x, axes))
    count = _b1(P.reduce_sum_p, _b1(P.select_p, hit, _lit(1, d), _lit(0, d)), axes=axes)
    total = _b1(P.reduce_sum_p, _b1(P.select_p, hit, t, _lit(0, d)), axes=axes)
    return [_b1(P.div_p, total, count)]


_defjvp(P.reduce_max_p)(_jvp_reduce_extreme)
_defjvp(P.reduce_min_p)(_jvp_reduce_extreme)


@_defjvp(P.matmul_p)
def _jvp_matmul(ins, outs, tins, e):
    (a, b), (ta, tb) = ins, tins
    return [_tadd(None if ta is None else _b1(P.matmul_p, ta, b),
                  None if tb is None else _b1(P.matmul_p, a, tb))]


@_defjvp(P.transpose_p)
def _jvp_transpose(ins, outs, tins, e):
    return [_b1(P.transpose_p, tins[0], perm=e.params["perm"])]


@_defjvp(P.concat_p)
def _jvp_concat(ins, outs, tins, e):
    if all(t is None for t in tins):
        return [None]
    return [_b1(P.concat_p, *(_zeros_like(x) if t is None else t for x, t in zip(ins, tins)),
                axis=e.params["axis"])]


@_defjvp(P.full_p)
def _jvp_full(ins, outs, tins, e):
    t = tins[0]
    if t is None:
        return [None]
    return [_b1(P.full_p, t, *ins[1:], **e.params)]


@_defjvp(P.empty_p)
def _jvp_empty(ins, outs, tins, e):
    return [None]


def _index_params(e: Eqn, out: Atom) -> dict[str, Any]:
    """Params for an ``index`` whose result must have exactly ``out``'s type (traced slice
    bounds give fresh dims, which a re-derived type would not share)."""
    params = {"spec": e.params["spec"]}
    if e.params.get("out_dims") is not None or any(d.is_fresh for d in out.type.shape):
        params["out_dims"] = out.type.shape  # (given: e.g. a concatenate's transpose's)
    return params


@_defjvp(P.index_p)
def _jvp_index(ins, outs, tins, e):
    return [_b1(P.index_p, tins[0], *ins[1:], **_index_params(e, outs[0]))]


@_defjvp(P.set_p)
def _jvp_set(ins, outs, tins, e):
    x, *idx, v = ins
    tx, tv = tins[0], tins[-1]
    if tx is None and tv is None:
        return [None]
    tx = tx if tx is not None else _zeros_like(x)
    return [_b1(P.set_p, tx, *idx, _or0(tv, _dt(x)), spec=e.params["spec"])]


@_defjvp(P.add_at_p)
def _jvp_add_at(ins, outs, tins, e):
    x, *idx, v = ins
    tx, tv = tins[0], tins[-1]
    if tv is None:
        return [tx]
    tx = tx if tx is not None else _zeros_like(x)
    return [_b1(P.add_at_p, tx, *idx, tv, spec=e.params["spec"])]


@_defjvp(P.broadcast_in_dim_p)
def _jvp_broadcast_in_dim(ins, outs, tins, e):
    return [_b1(P.broadcast_in_dim_p, tins[0], *ins[1:], **e.params)]


@_defjvp(P.custom_lin_p)
def _jvp_custom_lin(ins, outs, tins, e):
    n_res = e.params["n_res"]
    if any(t is not None for t in tins[:n_res]):
        raise ADError("cannot differentiate a custom_vjp rule's linear map with respect to "
                      "its residuals (differentiate the primal function instead)")
    ts = [t if t is not None else _zeros_like(x) for t, x in zip(tins[n_res:], ins[n_res:])]
    return list(bind(P.custom_lin_p, *ins[:n_res], *ts, **e.params))


def _jvp_loop(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
              ) -> tuple[list[Atom], list[Optional[Atom]]]:
    # a loop carrying primal and tangent values, with the JVP'd body
    body: Func = e.params["body"]
    n = e.params["n_carry"]
    carry, consts = ins[3:3 + n], ins[3 + n:]
    tcarry, tconsts = tins[3:3 + n], tins[3 + n:]
    kmask = [t is not None for t in tconsts]
    cmask = [t is not None for t in tcarry]
    while True:  # a carried value has a tangent if its start or its update has one
        b, ps, ts, outs, touts = _jvp_open(body, [False] + cmask + kmask, mode, [False] * n)
        grown = [c or (t is not None) for c, t in zip(cmask, touts)]
        if grown == cmask:
            break
        cmask = grown
    with building(b):
        touts = [t if t is not None or not m else _zeros_like(o)
                 for o, t, m in zip(outs, touts, cmask)]
    tc_params = [t for t, m in zip(ts[1:1 + n], cmask) if m]
    tk_params = [t for t in ts[1 + n:] if t is not None]
    new_body = b.build([ps[0], *ps[1:1 + n], *tc_params, *ps[1 + n:], *tk_params],
                       [*outs, *(t for t, m in zip(touts, cmask) if m)], body.name)
    tc_init = [t if t is not None else _zeros_like(c)
               for c, t, m in zip(carry, tcarry, cmask) if m]
    res = bind(P.loop_p, *ins[:3], *carry, *tc_init, *consts,
               *(t for t in tconsts if t is not None), body=new_body, n_carry=n + len(tc_init))
    prim_outs = list(res[:n])
    it = iter(res[n:])
    return prim_outs, [next(it) if m else None for m in cmask]


jvp_rules[P.loop_p] = _jvp_loop


def _jvp_cond(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
              ) -> tuple[list[Atom], list[Optional[Atom]]]:
    # a cond of the JVP'd branches (zeros where one branch has a tangent and the other not)
    pred, ops, tops = ins[0], ins[1:], tins[1:]
    mask = [t is not None for t in tops]
    fs = [e.params["true_fn"], e.params["false_fn"]]
    n_out = len(fs[0].outs)
    first = [_jvp_open(f, mask, mode, [False] * n_out)[4] for f in fs]
    need = [any(t[k] is not None for t in first) for k in range(n_out)]
    branches = []
    for f in fs:
        b, ps, ts, outs, touts = _jvp_open(f, mask, mode, need)
        branches.append(b.build([*ps, *(t for t in ts if t is not None)],
                                [*outs, *(t for t, m in zip(touts, need) if m)], f.name))
    res = bind(P.cond_p, pred, *ops, *(t for t in tops if t is not None),
               true_fn=branches[0], false_fn=branches[1])
    it = iter(res[n_out:])
    return list(res[:n_out]), [next(it) if m else None for m in need]


jvp_rules[P.cond_p] = _jvp_cond


def _jvp_custom_vjp(ins: list[Atom], tins: list[Optional[Atom]], e: Eqn, mode: str
                    ) -> tuple[list[Atom], list[Optional[Atom]]]:
    fun: Func = e.params["fun"]
    if mode != "linearize":
        # forward mode has no user rule to use: differentiate the primal function
        return jvp_emit(fun, ins, tins, mode)
    fwd: Func = e.params["fwd"]
    bwd: Func = e.params["bwd"]
    n_out = len(fun.outs)
    outs_res = list(inline(fwd, *ins))
    outs, res = outs_res[:n_out], outs_res[n_out:]
    ts = [t if t is not None else _zeros_like(x)
          for x, t in zip(ins, tins) if _is_float(x)]
    touts = bind(P.custom_lin_p, *res, *ts, bwd=clone_func(bwd), n_res=len(res),
                 out_types=tuple(o.type for o in outs))
    return outs, [t if _is_float(t) else None for t in touts]


jvp_rules[P.custom_vjp_call_p] = _jvp_custom_vjp


# =========================================================================== partial evaluation
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


def _merge(cu: list[bool], known: list[Atom], unknown: list[Atom]) -> list[tuple[str, Atom]]:
    ki, ui = iter(known), iter(unknown)
    return [("u", next(ui)) if u else ("k", next(ki)) for u in cu]


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


def _unify_closed(closed: list[tuple[Func, list[Var]]], n_fixed: int
                  ) -> tuple[list[Func], list[Var]]:
    """Two closed branches that captured (possibly different) outer vars, rewritten to take the
    same trailing params: the union of the captures."""
    extra_all = list(dict.fromkeys(closed[0][1] + closed[1][1]))
    funcs = []
    for f, extra in closed:
        fresh = [Var(v.type) for v in extra_all]
        pos = {v: j for j, v in enumerate(extra_all)}
        sub = {p: fresh[pos[v]] for p, v in zip(f.params[n_fixed:], extra)}
        funcs.append(_rename_params(f, list(f.params[:n_fixed]) + fresh, sub))
    return funcs, extra_all


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


def _rename_params(f: Func, params: list[Var], sub: dict[Var, Var]) -> Func:
    """``f`` with new params; ``sub`` renames old params (not in the new list) to new ones."""
    def s(a: Atom) -> Atom:
        return sub.get(a, a) if isinstance(a, Var) else a
    eqns = tuple(replace(e, inputs=tuple(s(a) for a in e.inputs)) for e in f.eqns)
    return Func(tuple(params), eqns, tuple(s(a) for a in f.outs), f.name)


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


# =========================================================================== transposition
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
    ct_v = None if v is not None else _unbroadcast(region, region.type, e.inputs[-1].type)
    return [ct_x] + [None] * len(idx) + [ct_v]


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
                if oi is None or any(d.is_fresh for d in sp.value.type.shape) or (
                        hoist is not None and (hoist[0] != key[0] or hoist[2] != key[2] or
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


# =========================================================================== reverse mode
def _vjp_emit(func: Func, mask: list[bool], primals: Sequence[Atom],
              cts: Sequence[Optional[Atom]]) -> tuple[list[Atom], list[Optional[Atom]]]:
    """Emit primal outs and the (exact) cotangents of the masked params; ``cts`` has one
    entry per float out."""
    known, lin, n_res = linearize_func(func, mask)
    outs_res = list(inline(known, *primals))
    n_out = len(func.outs)
    outs, res = outs_res[:n_out], outs_res[n_out:]
    n_t = sum(mask)
    _shapes().note(*primals, *res)
    got = transpose_emit(lin, [False] * n_res + [True] * n_t, [*res, *([None] * n_t)], cts)
    it = iter(got[n_res:])
    result: list[Optional[Atom]] = []
    for p, m in zip(primals, mask):
        if not m:
            result.append(None)
            continue
        g = next(it)
        result.append(_exact(g, p.type) if g is not None else _zeros_t(p.type))
    return outs, result


def vjp_func(func: Func, which: Optional[Sequence[bool]] = None) -> Func:
    """Reverse mode: params = primals + one cotangent per float out; outs = primal outs + one
    cotangent per differentiated float param."""
    mask = _float_mask(func, which)
    b = Builder()
    with _scope(b) as sh:
        ps = [Var(p.type) for p in func.params]
        cts = [Var(a.type) for a in func.outs if _is_float(a)]
        sh.note(*ps, *cts)
        outs, got = _vjp_emit(func, mask, ps, cts)
    return b.build(ps + cts, outs + [g for g in got if g is not None], f"vjp_{func.name}")


def _check_argnums(func: Func, argnums: Sequence[int]) -> list[bool]:
    n = len(func.params)
    mask = [False] * n
    for a in argnums:
        if not -n <= a < n:
            raise ADError(f"argnums {a} is out of range for {func.name} with {n} arguments")
        if not _is_float(func.params[a]):
            raise ADError(f"cannot differentiate {func.name} with respect to argument {a % n}: "
                          f"it is {func.params[a].type}, and only float arguments have "
                          f"gradients")
        mask[a % n] = True
    return mask


def grad_func(func: Func, argnums: Union[int, Sequence[int]] = 0, *,
              has_value: bool = False) -> Func:
    """The gradient of a scalar float ``func`` with respect to the ``argnums`` params: outs are
    the gradients (with ``has_value``, the value first)."""
    nums = [argnums] if isinstance(argnums, int) else list(argnums)
    mask = _check_argnums(func, nums)
    if len(func.outs) != 1 or func.out_types[0].shape or not _is_float(func.outs[0]):
        got = ", ".join(str(t) for t in func.out_types)
        raise ADError(f"grad needs a function returning one float scalar; {func.name} returns "
                      f"{got or 'nothing'} (use vjp or jacobian-style transforms for others)")
    b = Builder()
    with _scope(b) as sh:
        ps = [Var(p.type) for p in func.params]
        sh.note(*ps)
        (out,), got = _vjp_emit(func, mask, ps, [_lit(1, func.out_types[0].dtype)])
        grads = [got[a % len(ps)] for a in nums]
    return b.build(ps, ([out] if has_value else []) + grads,  # type: ignore[arg-type]
                   f"grad_{func.name}")


def hvp_func(func: Func, argnums: Union[int, Sequence[int]] = 0,
             which: Optional[Sequence[bool]] = None) -> Func:
    """Forward over reverse: params = primals + tangents (for ``which``, default all float
    params); outs = the tangents of the gradient w.r.t. ``argnums`` (Hessian-vector
    products)."""
    g = grad_func(func, argnums)
    jf = jvp_func(g, which)
    n_g = len(g.outs)
    return replace(jf, outs=jf.outs[n_g:], name=f"hvp_{func.name}")


def hessian_func(func: Func, argnum: int = 0) -> Func:
    """The Hessian w.r.t. one float param x: out shape ``x.shape + x.shape``.

    Computed as one Hessian-vector product per basis vector e_j, in a compiled loop (cost:
    size(x) × (forward + reverse + tangent) passes; memory: the result plus one product)."""
    n = len(func.params)
    a = argnum % n
    hv = hvp_func(func, a, [k == a for k in range(n)])
    x = func.params[a]
    t = x.type
    b = Builder()
    with _scope(b) as sh:
        ps = [Var(p.type) for p in func.params]
        sh.note(*ps)
        xs = _sizes_of(ps[a])
        if not t.shape:
            (h,) = inline(hv, *ps, _lit(1, t.dtype))
            return b.build(ps, [h], f"hessian_{func.name}")
        total: Atom = _lit(1, i64)
        for s in xs:
            total = _b1(P.mul_p, total, s)
        H0 = _b1(P.empty_p, *xs, *xs, dims=t.shape + t.shape, dtype=t.dtype)
        zero_v = _zeros_like(ps[a])
        bb = Builder()
        with _scope(bb):
            j = Var(scalar(i64))
            Hp = Var(H0.type)
            # the multi-index of flat position j (C order)
            idx: list[Atom] = []
            rest: Atom = j
            for k in reversed(range(t.ndim)):
                idx.insert(0, _b1(P.mod_p, rest, xs[k]))
                rest = _b1(P.floordiv_p, rest, xs[k])
            e = _b1(P.set_p, zero_v, *idx, _lit(1, t.dtype), spec=(P.Int(),) * t.ndim)
            (col,) = inline(hv, *ps, e)
            newH = _b1(P.set_p, Hp, *idx, col, spec=(P.Slice(),) * t.ndim + (P.Int(),) * t.ndim)
        # H[..., j] = H e_j, which is row j as well: the Hessian is symmetric
        body, extra = close_over(bb, [j, Hp], [newH], "hessian_col")
        (H,) = bind(P.loop_p, _lit(0, i64), total, _lit(1, i64), H0, *extra, body=body,
                    n_carry=1)
    return b.build(ps, [H], f"hessian_{func.name}")
