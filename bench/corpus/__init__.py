"""A corpus of everyday numerical programs, each written once as a numba user writes it.

Every program is one plain Python function using NumPy names only (``np.zeros``, ``np.sqrt``,
loops, stores into its array arguments), with lattice annotations added.  The same function
object is what numba's ``njit`` compiles (numba ignores annotations) and what ``lt.kernel``
compiles: the corpus measures the claim "a numba program compiles under lattice with
annotations added".  Beside it sits a vectorised NumPy version, which is both the NumPy column
of the timing table and the oracle the compiled results are checked against.

The programs are PolyBench/C kernels (as NPBench runs them in NumPy), other NPBench programs and
examples from numba's documentation, written from their published definitions.

* :data:`PROGRAMS`: name -> :class:`Program`, in registration order.
* :func:`call`: runs one implementation on fresh copies of the inputs and returns what the
  program produces (its return value, or the arrays it updates in place).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

__all__ = ["Program", "PROGRAMS", "program", "call", "load"]


@dataclass
class Program:
    """One corpus program.

    ``fn`` is the annotated numba-style function; ``reference`` computes the same outputs with
    NumPy array operations, or is None when ``fn`` itself, run by Python on NumPy arrays, is
    that (a NumPy-style program, or one whose loops have no vectorised form); ``data(size, rng)`` builds the inputs for a size ``"test"`` (small,
    for the correctness tests) or ``"bench"`` (for the timing table); ``writes`` lists the
    positions of the arguments the program updates in place, which are then its outputs (after
    the return value, if any); ``features`` names what the program needs of the language."""

    name: str
    origin: str
    fn: Callable[..., Any]
    reference: Optional[Callable[..., Any]]
    data: Callable[[str, np.random.Generator], tuple]
    writes: tuple[int, ...] = ()
    features: tuple[str, ...] = ()
    rtol: float = 1e-10

    def expected(self, args: tuple) -> tuple:
        """What the program produces on ``args``, by the oracle (see ``reference``)."""
        if self.reference is None:
            return call(self.fn, args, self.writes)
        out = self.reference(*(a.copy() if isinstance(a, np.ndarray) else a for a in args))
        return out if isinstance(out, tuple) else (out,)


PROGRAMS: dict[str, Program] = {}


def program(origin: str, *, reference: Optional[Callable[..., Any]], data: Callable[..., tuple],
            writes: tuple[int, ...] = (), features: tuple[str, ...] = (),
            rtol: float = 1e-10) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as a corpus program named after it."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        if fn.__name__ in PROGRAMS:
            raise ValueError(f"corpus program {fn.__name__!r} is registered twice")
        PROGRAMS[fn.__name__] = Program(fn.__name__, origin, fn, reference, data, writes,
                                        features, rtol)
        return fn
    return wrap


def call(fn: Callable[..., Any], args: tuple, writes: tuple[int, ...]) -> tuple:
    """``fn`` on copies of ``args``: (return value if not None, *the written arguments)."""
    fresh = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
    out = fn(*fresh)
    parts: list[Any] = []
    if out is not None:
        parts.extend(out if isinstance(out, tuple) else (out,))
    parts.extend(fresh[k] for k in writes)
    return tuple(parts)


def load() -> dict[str, Program]:
    """Import every program module (registration happens on import)."""
    from . import numba_examples, npbench, polybench  # noqa: F401
    return PROGRAMS
