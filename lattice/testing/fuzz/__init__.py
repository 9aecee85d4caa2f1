"""Random-program differential fuzzer for lattice.

``python -m lattice.testing.fuzz --seconds N --seed S [--workers W]`` generates well-typed kernels from
the whole language (elementwise chains with broadcasting and promotion, reductions with axes,
matmul, indexing and slices, loops with carried values, conds, stores into local arrays),
writes each as *source text* to a module file and imports it, so the whole frontend runs.  Each
program is run

* compiled with the optimisation passes (with the fastmath setting the program drew),
* compiled without any pass (``LATTICE_PASSES=none``),
* through the NumPy reference interpreter (``Kernel.interpret``),

and every result is compared with an independent **oracle**: the same source executed as plain
Python over :class:`Tracked` NumPy values (:data:`oracle`), which carry, next to each value, a
first-order bound on its absolute rounding error.  Where the program has a float scalar result
and :func:`lattice.grad` exists, its gradient is checked against central finite differences.

Comparison rules (documented in docs/testing.md):

* integers and bools exactly, dtype and shape exactly;
* floats: ``|got - want| <= 2 * err + tiny`` elementwise, where ``err`` is the oracle's error
  bound: each operation adds ``K * eps * |value|`` (K = 1 for correctly rounded +, -, *, /,
  sqrt; 4 for libm/NumPy transcendentals; 2 for / under fastmath, which may use a reciprocal)
  plus the propagated input errors times the derivative; a sum of n terms adds
  ``(n - 1) * eps * sum|x|`` (valid for any summation order, so for the interpreter's pairwise
  sums, the compiled sequential loop and fastmath's reassociated vector loop alike);
* a discontinuous operation (comparison, floor, float->int conversion, argmax/argmin) whose
  operands are within their error bounds of a decision boundary makes the program
  *ill-conditioned* for that input: it is skipped and counted, never reported as a mismatch.
  So are programs whose oracle produced a non-finite value.

A failure prints the program seed and source; ``python -m lattice.testing.fuzz --replay SEED`` runs that
one program again and prints everything.

The package, by concept: :mod:`.program` (the static types the generator tracks, the
:class:`Program` it draws), :mod:`.expressions` (typed expressions), :mod:`.generate`
(statements, loops, branches, windows, calls: :func:`generate`), :mod:`.run` (running a program
every way and comparing with the oracle of :mod:`lattice.testing.oracle`, gradients against
finite differences), :mod:`.cli` (the command line, its worker processes and their supervisor).
"""
from __future__ import annotations

from .cli import main
from .generate import Gen, generate, make_args
from .program import Program, Var
from .run import compare, describe, run_one, run_program

__all__ = ["generate", "make_args", "Gen", "Program", "Var", "compare", "describe", "run_program", "run_one",
           "main"]
