"""lattice IR: types, core data structures, primitives, interpreter, passes (no llvmlite here)."""
