"""The NumPy reference interpreter: evaluates a :class:`Func` equation by equation.

This is the definition of what every lattice program means; the compiled code is tested
against it.  Values are NumPy arrays (0-d for scalars) of the exact IR dtype.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .core import Atom, Func, Lit, Var
from .primitives import impls

__all__ = ["eval_func"]


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
