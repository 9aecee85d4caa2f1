"""What every stage of automatic differentiation shares.

* :class:`ADError`, the error every stage raises;
* small IR builders: one-out ``bind`` (``_b1``), literals, zeros, NumPy-style broadcasting, an
  equation re-emitted on new inputs (``_emit_copy``), source locations (``_at``);
* runtime sizes: :class:`_Shapes` finds an i64 atom for a symbolic :class:`Dim` in the function
  being built, with a per-thread stack of them (one per open function, ``_scope``/``_use``);
* what both partial evaluation and transposition do to structured control flow: a loop's trip
  count, two closed branches rewritten to take the same captures (``_unify_closed``).

No rule table lives here: ``jvp_rules`` is in :mod:`.jvp`, ``transpose_rules`` in
:mod:`.transpose`, the partial-evaluation rules in :mod:`.linearize`.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import replace
from typing import Any, Iterator, Optional, Sequence, Union

from .. import primitives as P
from ..core import Atom, Builder, Eqn, Func, Lit, Primitive, Var, bind, building, current_builder
from ..inline import clone_func
from ..types import Dim, DType, TensorType, i64

__all__ = ["ADError", "take_along_axis"]


ONE = Dim.of(1)


class ADError(TypeError):
    """A program cannot be differentiated as asked (the message says why and what to do)."""


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
    return [_size(v, k) for k in range(v.type.ndim)]


def _size(v: Atom, k: int) -> Atom:
    d = v.type.shape[k]
    return _lit(d.const, i64) if d.is_const else _b1(P.dim_p, v, axis=k)


def take_along_axis(x: Atom, idx: Atom, axis: int) -> Var:
    """``np.take_along_axis(x, idx, axis)`` built into the current builder: a gather with the
    integer array ``idx`` (``x``'s rank) on ``axis`` and the positions ``0..n-1`` on every
    other axis, shaped to broadcast against it (``idx``'s other dims equal ``x``'s or are a
    literal 1).  The frontend's ``np.take_along_axis`` and derivative rules that reorder
    along an axis (a sort's tangent) build it here."""
    r = x.type.ndim
    # sizes read from ``idx`` where it shares ``x``'s dims: when ``x`` is a tangent, a ``dim``
    # of it would depend on the linear value and the positions could not be transposed
    sizes = [_size(idx if idx.type.shape[k] == d else x, k) for k, d in enumerate(x.type.shape)]
    spec: list[Any] = []
    atoms: list[Atom] = []
    for k in range(r):
        if k == axis:
            spec.append(P.Arr(idx.type.shape))
            atoms.append(idx)
            continue
        dims = tuple(x.type.shape[k] if j == k else Dim.of(1) for j in range(r))
        pos = _b1(P.iota_p, sizes[k], dim=x.type.shape[k], dtype=i64)
        pos = _b1(P.broadcast_in_dim_p, pos, *(sizes[k] if j == k else _lit(1, i64)
                                               for j in range(r)), dims=dims, axes=(k,))
        spec.append(P.Arr(dims))
        atoms.append(pos)
    return _b1(P.index_p, x, *atoms, spec=tuple(spec))


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


def _rename_params(f: Func, params: list[Var], sub: dict[Var, Var]) -> Func:
    """``f`` with new params; ``sub`` renames old params (not in the new list) to new ones."""
    def s(a: Atom) -> Atom:
        return sub.get(a, a) if isinstance(a, Var) else a
    eqns = tuple(replace(e, inputs=tuple(s(a) for a in e.inputs)) for e in f.eqns)
    return Func(tuple(params), eqns, tuple(s(a) for a in f.outs), f.name)
