"""The frontend: ``@lt.kernel``, annotations, and the AST-to-IR compiler (never touches llvmlite)."""
