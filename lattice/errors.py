"""Exceptions lattice raises to users.

``CompileError`` is raised while a kernel is traced or compiled; its message names the user's
file:line and the construct, and says what to do instead where that is known.
"""
from __future__ import annotations

from typing import Optional

from .ir.core import SourceLoc

__all__ = ["CompileError"]


class CompileError(Exception):
    """A kernel cannot be compiled; ``loc`` is where in the user's source."""

    def __init__(self, message: str, loc: Optional[SourceLoc] = None) -> None:
        self.loc = loc
        self.bare_message = message
        super().__init__(f"{message} at {loc}" if loc is not None else message)
