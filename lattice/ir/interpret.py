"""The NumPy reference interpreter: evaluates a :class:`Func` equation by equation.

This is the definition of what every lattice program means; the compiled code is tested
against it.  Values are NumPy arrays (0-d for scalars) of the exact IR dtype.

The table of per-primitive NumPy implementations, ``impls``, lives here and is filled by
:mod:`lattice.ir.primitives` (next to each primitive's shape rule), which imports this module:
the impls of ``loop``, ``cond`` and the other primitives holding sub-functions evaluate them with
:func:`eval_func`.  Every primitive a :class:`Func` can hold is made in that module, so the table
is complete whenever there is a function to evaluate.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .core import Atom, Func, Lit, Primitive, Var

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
        outs = impls[eqn.prim](*(read(a) for a in eqn.inputs), **eqn.params)
        for v, val in zip(eqn.outs, outs):
            env[v] = val
    return tuple(read(a) for a in func.outs)
