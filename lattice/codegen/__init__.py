"""Code generation: lattice IR to LLVM IR, the JIT engine and the compiled-object cache."""
