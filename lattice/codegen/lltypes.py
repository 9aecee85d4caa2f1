"""The LLVM IR types every code generator uses, and the i64 constant helper."""
from __future__ import annotations

import llvmlite.ir as ir

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()


def c64(v: int) -> ir.Constant:
    """An i64 constant."""
    return ir.Constant(I64, v)
