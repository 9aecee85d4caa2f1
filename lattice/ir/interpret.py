"""The NumPy reference interpreter: evaluates a :class:`Func` equation by equation.

This is the definition of what every lattice program means; the compiled code is tested
against it.  Values are NumPy arrays (0-d for scalars) of the exact IR dtype.

The table of per-primitive NumPy implementations, ``impls``, lives here and is filled by
:mod:`lattice.ir.primitives` (next to each primitive's shape rule), which imports this module:
the impls of ``loop``, ``cond`` and the other primitives holding sub-functions evaluate them with
:func:`eval_func`.  Every primitive a :class:`Func` can hold is made in that module, so the table
is complete whenever there is a function to evaluate.

A run-time error of bad input (an index out of range, mismatching sizes) is re-raised with the
same type, naming the user's source line of the equation that raised it, as compiled code does.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from .core import Atom, Func, Lit, Primitive, SourceLoc, Var

__all__ = ["eval_func", "impls"]

#: prim -> impl(*arrays, **params) -> tuple of arrays: the NumPy reference semantics
impls: dict[Primitive, Callable[..., tuple[np.ndarray, ...]]] = {}


def eval_func(func: Func, *args: Any) -> tuple[np.ndarray, ...]:
    if len(args) != len(func.params):
        raise TypeError(f"{func.name} takes {len(func.params)} arguments, got {len(args)}")
    env: dict[Var, Any] = {}

    def read(a: Atom) -> Any:
        if isinstance(a, Lit):
            return np.asarray(a.value, dtype=a.type.dtype.np)
        return env[a]

    for p, x in zip(func.params, args):
        env[p] = x
    for eqn in func.eqns:
        try:
            outs = impls[eqn.prim](*(read(a) for a in eqn.inputs), **eqn.params)
        except _LOCATED as exc:
            located = _at_source(exc, eqn.loc)
            if located is exc:
                raise
            raise located from None
        for v, val in zip(eqn.outs, outs):
            env[v] = val
    return tuple(read(a) for a in func.outs)


#: the run-time errors of bad input (an index out of range, a size mismatch, a negative count)
_LOCATED = (IndexError, ValueError, TypeError, ArithmeticError)


def _at_source(exc: BaseException, loc: Optional[SourceLoc]) -> BaseException:
    """``exc`` naming the user's source line as the compiled code's errors do ("... in
    <construct> at file:line"); the innermost equation with a location names it (a loop
    body's line, not the loop's), so an error is located once."""
    if loc is None or getattr(exc, "_lattice_located", False):
        return exc
    msg = f"{exc} in {loc.what} at {loc}" if loc.what else f"{exc} at {loc}"
    try:
        new = type(exc)(msg)
    except Exception:  # an exception type whose constructor takes other arguments
        return exc
    new._lattice_located = True  # type: ignore[attr-defined]
    return new.with_traceback(exc.__traceback__)
