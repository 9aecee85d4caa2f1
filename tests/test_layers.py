"""Dependencies point one way: frontend -> ir <- codegen; ir imports neither llvmlite nor them."""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "lattice"


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    pkg = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                out.add(".".join(base + ([node.module] if node.module else [])))
            else:
                out.add(node.module or "")
    return out


def _files(sub: str) -> list[pathlib.Path]:
    return sorted((ROOT / sub).rglob("*.py"))


def test_ir_imports_no_llvmlite_frontend_or_codegen():
    assert _files("ir")
    for f in _files("ir"):
        bad = {m for m in _imports(f) if m.startswith(("llvmlite", "lattice.frontend",
                                                         "lattice.codegen", "lattice.models"))}
        assert not bad, f"{f.name} imports {bad}"


def test_frontend_never_touches_llvmlite():
    for f in _files("frontend"):
        bad = {m for m in _imports(f) if m.startswith("llvmlite")}
        assert not bad, f"{f.name} imports {bad}"


def test_codegen_does_not_import_frontend():
    for f in _files("codegen"):
        bad = {m for m in _imports(f) if m.startswith("lattice.frontend")}
        assert not bad, f"{f.name} imports {bad}"
