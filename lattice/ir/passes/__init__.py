"""IR → IR passes: simplify, CSE, DCE, fusion, and ``run`` to apply them in order.

Every pass is a pure function ``Func -> Func`` (the input is never modified), recurses into
sub-functions, and leaves the IR valid for :func:`lattice.ir.verify.verify`.  ``run`` checks
that after each pass and names the pass that broke it.

Order of :data:`DEFAULT_PASSES`: simplify first (it exposes equal expressions and dead code),
CSE before fusion (so a shared value is seen as shared and not fused twice), DCE before fusion
(so a dead use does not keep an intermediate out of a group), then CSE and DCE again to merge
identical ``fused`` equations and drop what fusion left unused.  ``rowpass`` runs after fusion,
whose elementwise groups it consumes (``x.T @ f(x @ w)`` in one pass over ``x``); ``rowreduce``
after both (a full reduction of ``f(x @ w)``, fused or not, in the matrix-vector product's loop).
"""
from __future__ import annotations

from typing import Callable, Sequence, Union

from ..core import Func
from ..verify import VerifyError, verify
from .cse import cse
from .dce import dce
from .fusion import fusion
from .rowpass import rowpass
from .rowreduce import rowreduce
from .simplify import simplify

__all__ = ["run", "simplify", "cse", "dce", "fusion", "rowpass", "rowreduce", "DEFAULT_PASSES",
           "PASSES", "PassError"]

Pass = Callable[[Func], Func]

DEFAULT_PASSES: tuple[Pass, ...] = (simplify, cse, dce, fusion, rowpass, rowreduce, cse, dce)
PASSES: dict[str, Pass] = {"simplify": simplify, "cse": cse, "dce": dce, "fusion": fusion,
                           "rowpass": rowpass, "rowreduce": rowreduce}


class PassError(VerifyError):
    """A pass produced invalid IR (a bug in the pass, not in the user's kernel)."""


def run(func: Func, passes: Sequence[Union[Pass, str]] = DEFAULT_PASSES, *,
        verify_each: bool = True) -> Func:
    """Apply ``passes`` (functions or names from :data:`PASSES`) in order.

    With ``verify_each`` the input is verified first (a VerifyError there is the caller's), then
    the result of each pass (a :class:`PassError` names the pass).
    """
    if verify_each:
        verify(func)
    for p in passes:
        fn = PASSES[p] if isinstance(p, str) else p
        name = getattr(fn, "__name__", repr(fn))
        func = fn(func)
        if verify_each:
            try:
                verify(func)
            except VerifyError as exc:
                raise PassError(f"pass {name!r} produced invalid IR: {exc}") from exc
    return func
