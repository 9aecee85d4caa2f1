"""The lattice IR: variables, literals, equations, functions, primitives and ``bind``.

Contracts:

* ``Func(params, eqns, outs)`` is flat, typed SSA and immutable.  Every ``Var`` is defined once:
  as a param or as an output of exactly one equation, before any use.  Sub-functions (loop
  bodies, cond branches, fused bodies) live in ``Eqn.params`` and are *closed*: they use only
  their own params and their own equations' outputs; everything else is passed explicitly.
* ``Var`` is compared by identity; it has no name (the printer names it).
* ``Lit`` is a scalar constant with a concrete dtype (the frontend resolves Python numbers'
  "weak" typing before it binds).  ``Lit.__eq__`` treats 0.0 and -0.0 as equal: passes that
  key on literals compare exact bits instead.
* ``bind(prim, *inputs, **params)`` appends an equation to the innermost active
  :class:`Builder` and returns its output vars; the output types come from the primitive's shape
  rule (see :mod:`lattice.ir.primitives`), so an ill-typed equation can never be built.
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping, Sequence, Union

from .types import DType, TensorType, scalar

__all__ = [
    "Var", "Lit", "Atom", "Eqn", "Func", "Primitive", "SourceLoc", "Builder", "bind",
    "shape_rules", "current_builder", "replace", "subfuncs",
]


@dataclass(frozen=True, slots=True)
class SourceLoc:
    """Where a construct came from in the user's kernel: file, line, and what it was."""

    file: str
    line: int
    what: str = ""

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True, eq=False)
class Var:
    """An SSA value; identity is equality."""

    type: TensorType

    def __repr__(self) -> str:
        return f"Var<{self.type}@{id(self) & 0xFFFF:x}>"


@dataclass(frozen=True, slots=True)
class Lit:
    """A scalar constant (a Python ``complex`` for a complex dtype)."""

    value: Union[bool, int, float, complex]
    type: TensorType

    def __post_init__(self) -> None:
        if self.type.shape:
            raise TypeError("literals are scalars")
        d = self.type.dtype
        v = (bool(self.value) if d.is_bool else int(self.value) if d.is_int
             else complex(self.value) if d.kind == "c" else float(self.value))
        object.__setattr__(self, "value", v)

    @staticmethod
    def of(value: Union[bool, int, float, complex], dtype: DType) -> "Lit":
        return Lit(value, scalar(dtype))

    def __repr__(self) -> str:
        return f"{self.value!r}:{self.type.dtype.name}"


Atom = Union[Var, Lit]


class Primitive:
    """An IR operation. Rules for it live in dicts keyed by the primitive (one path per kind)."""

    __slots__ = ("name", "__weakref__")

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Eqn:
    """``outs = prim(*inputs, **params)``; ``loc`` points into the user's source."""

    prim: Primitive
    inputs: tuple[Atom, ...]
    params: Mapping[str, Any]
    outs: tuple[Var, ...]
    loc: SourceLoc | None = None


@dataclass(frozen=True, slots=True)
class Func:
    """A typed SSA function. ``name`` is for printing and error messages only."""

    params: tuple[Var, ...]
    eqns: tuple[Eqn, ...]
    outs: tuple[Atom, ...]
    name: str = "f"

    @property
    def in_types(self) -> tuple[TensorType, ...]:
        return tuple(v.type for v in self.params)

    @property
    def out_types(self) -> tuple[TensorType, ...]:
        return tuple(a.type for a in self.outs)


def subfuncs(eqn: Eqn) -> list[tuple[str, Func]]:
    """The sub-functions an equation holds in its params, in a stable order."""
    return [(k, v) for k, v in sorted(eqn.params.items()) if isinstance(v, Func)]


# Shape rules: prim -> rule(*in_types, **params) -> tuple of out types. Filled by primitives.py.
shape_rules: dict[Primitive, Callable[..., Sequence[TensorType]]] = {}


@dataclass
class Builder:
    """Collects equations while a function is being traced."""

    eqns: list[Eqn] = field(default_factory=list)
    loc: SourceLoc | None = None  # location stamped on the equations built now

    def build(self, params: Sequence[Var], outs: Sequence[Atom], name: str = "f") -> Func:
        return Func(tuple(params), tuple(self.eqns), tuple(outs), name)


_state = threading.local()


def _stack() -> list[Builder]:
    s = getattr(_state, "stack", None)
    if s is None:
        s = _state.stack = []
    return s


def current_builder() -> Builder:
    s = _stack()
    if not s:
        raise RuntimeError("no function is being traced: lattice ops run inside @lt.kernel")
    return s[-1]


@contextlib.contextmanager
def building(builder: Builder | None = None) -> Iterator[Builder]:
    """Make ``builder`` (a new one by default) the target of ``bind`` inside the block."""
    b = builder if builder is not None else Builder()
    _stack().append(b)
    try:
        yield b
    finally:
        _stack().pop()


def bind(prim: Primitive, *inputs: Atom, **params: Any) -> tuple[Var, ...]:
    """Append ``prim(*inputs, **params)`` to the current builder; returns the output vars."""
    for x in inputs:
        if not isinstance(x, (Var, Lit)):
            raise TypeError(f"{prim.name}: IR inputs are Var or Lit, got {type(x).__name__}")
    out_types = shape_rules[prim](*(x.type for x in inputs), **params)
    outs = tuple(Var(t) for t in out_types)
    b = current_builder()
    b.eqns.append(Eqn(prim, tuple(inputs), dict(params), outs, b.loc))
    return outs
