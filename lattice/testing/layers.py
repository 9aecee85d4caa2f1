"""The package's import graph, read from source with ``ast``: what ``tests/test_layers.py``
enforces and ``tools/architecture_diagram.py`` draws.

An import inside a function counts like one at the top of the module: a lazy import hides a
circle, it does not remove it. Nodes are dotted module names; a package's ``__init__.py`` is
the node ``pkg.__init__`` (it is the package's face: it re-exports, so its own arrows never
make a circle, see :func:`circles`).
"""
from __future__ import annotations

import ast
import pathlib


def module_paths(root: pathlib.Path) -> dict[str, pathlib.Path]:
    """Dotted name -> file, for every ``.py`` under the package directory ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        out[".".join(path.relative_to(root.parent).with_suffix("").parts)] = path
    return out


def _target(mod: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = mod.split(".")[:-1]  # the package holding mod (for pkg.__init__: pkg)
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports(mod: str, path: pathlib.Path) -> set[str]:
    """Every dotted name module ``mod`` (its file ``path``) imports, relative imports resolved:
    ``from .core import Var`` in ``lattice.ir.ad`` gives ``lattice.ir.core.Var``."""
    out: set[str] = set()
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(n, ast.Import):
            out.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom):
            target = _target(mod, n)
            out.update(f"{target}.{a.name}" for a in n.names)
    return out


def import_graph(root: pathlib.Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (an imported package counts as its
    ``__init__``; ``from pkg import name`` counts as an import of ``pkg.name`` when that is a
    module, else of ``pkg``)."""
    paths = module_paths(root)

    def node(name: str) -> str | None:
        if name in paths:
            return name
        return name + ".__init__" if name + ".__init__" in paths else None

    graph: dict[str, set[str]] = {}
    for mod, path in paths.items():
        found = {node(name) or node(name.rpartition(".")[0]) for name in imports(mod, path)}
        graph[mod] = {t for t in found if t is not None and t != mod}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others (strongly connected
    components of more than one module). A package face's arrows are left out."""
    edges = {m: (set() if m.endswith(".__init__") else deps) for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for m in sorted(edges):
        if m not in index:
            visit(m)
    return sorted(out)
