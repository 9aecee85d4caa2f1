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

One room per concept, each importing only the rooms above it in this list:

* :mod:`.common`: :class:`ADError`, small IR builders, runtime sizes, what partial evaluation
  and transposition share about control flow;
* :mod:`.jvp`: forward mode and the table ``jvp_rules``;
* :mod:`.transpose`: transposition and the table ``transpose_rules`` (lazily broadcast and
  indexed cotangents are explained there);
* :mod:`.linearize`: partial evaluation (the table ``_pe_rules``, the ``cond`` rule) and
  :func:`linearize_func`;
* :mod:`.loops`: reverse mode through ``loop`` (tape, recomputation, checkpointing, the one-pass
  additive carries), registered in ``_pe_rules``;
* :mod:`.drivers`: :func:`vjp_func`, :func:`grad_func`, :func:`hvp_func`, :func:`hessian_func`.

Contracts and choices:

* **Symbolic zeros.**  A zero tangent or cotangent is ``None`` and costs nothing; integer and
  bool values never have one, so integer arithmetic, comparisons, ``argmax``, ``dim`` cost
  nothing.  Only float dtypes are differentiable.  Zeros are materialised (``full``) only where a
  value must exist: a loop-carried tangent, a branch output, a requested output.
* **cond.**  JVP: a cond of JVP'd branches.  Partial evaluation: both primal branches return the
  union of the residuals (zeros for the other branch's).  Transpose: a cond on the same
  predicate with transposed branches.
* ``fused`` equations are never differentiated: differentiate the traced IR, then optimise.
* ``custom_vjp_call``: forward mode differentiates the primal ``fun``; reverse mode runs the
  user's ``fwd`` and transposes through the user's ``bwd`` (a ``custom_lin`` equation).

Rules, one registration path each: ``jvp_rules[prim](ins, tangents, eqn, mode) -> (outs,
tangent outs)`` in :mod:`.jvp` and ``transpose_rules[prim](cts, ins, eqn) -> per-input
cotangents`` in :mod:`.transpose`, both in the order of :mod:`lattice.ir.primitives`.
``NON_DIFFERENTIABLE`` lists the primitives whose outputs are never floats (the driver gives them
no tangents).
"""
from .common import ADError
from .jvp import NON_DIFFERENTIABLE, jvp_emit, jvp_func, jvp_rules
from .transpose import LINEAR, transpose_emit, transpose_func, transpose_rules
from .linearize import linearize_func, partial_eval
from . import loops  # noqa: F401  (registers partial evaluation's rule for loop)
from .drivers import grad_func, hessian_func, hvp_func, vjp_func

__all__ = [
    "ADError", "jvp_rules", "transpose_rules", "NON_DIFFERENTIABLE", "LINEAR",
    "jvp_func", "linearize_func", "partial_eval", "transpose_func", "vjp_func", "grad_func",
    "hvp_func", "hessian_func", "jvp_emit", "transpose_emit",
]
