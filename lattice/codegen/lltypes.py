"""The LLVM IR types every code generator uses, and the i64 constant helper."""
from __future__ import annotations

import llvmlite.ir as ir

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
# complex values, in registers and in memory: the real part, then the imaginary part (NumPy's
# layout); an aggregate of floats has the floats' alignment, as NumPy's arrays do
C64 = ir.LiteralStructType([F32, F32])
C128 = ir.LiteralStructType([F64, F64])


def c64(v: int) -> ir.Constant:
    """An i64 constant."""
    return ir.Constant(I64, v)


def splat(b: ir.IRBuilder, v: ir.Value, lanes: int) -> ir.Value:
    """``v`` in every lane of a vector of ``lanes``."""
    vt = ir.VectorType(v.type, lanes)
    one = b.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(vt, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))
