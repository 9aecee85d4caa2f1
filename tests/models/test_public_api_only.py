"""lattice.models, lattice.ranking and lattice.datasets are built only on the public API."""
from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2] / "lattice"
INTERNAL = ("lattice.ir", "lattice.codegen", "lattice.frontend")


def _modules(path: pathlib.Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level >= 2 or (node.level == 1 and path.parent == ROOT):
                out.add("lattice." + (node.module or ""))  # relative import out of the package
            elif not node.level:
                out.add(node.module or "")
    return out


def test_no_internal_imports():
    files = sorted((ROOT / "models").rglob("*.py")) + sorted((ROOT / "datasets").rglob("*.py"))
    files.append(ROOT / "ranking.py")
    for f in files:
        bad = {m for m in _modules(f) if m.startswith(INTERNAL)}
        assert not bad, f"{f.relative_to(ROOT)} imports {bad}"
