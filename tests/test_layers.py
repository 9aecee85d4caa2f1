"""Dependencies point one way: frontend -> ir <- codegen; ir imports neither llvmlite nor them;
no two modules import each other, not even lazily; the runtime never imports the tooling."""
from __future__ import annotations

import pathlib

from lattice.testing.layers import circles, import_graph, imports, module_paths

ROOT = pathlib.Path(__file__).resolve().parent.parent / "lattice"
PATHS = module_paths(ROOT)
GRAPH = import_graph(ROOT)


def _modules(room: str) -> list[str]:
    mods = [m for m in PATHS if m.startswith(f"lattice.{room}.") or m == f"lattice.{room}"]
    assert mods, room
    return mods


def _bad(mods: list[str], prefixes: tuple[str, ...]) -> dict[str, set[str]]:
    """The modules among ``mods`` importing a name that starts with one of ``prefixes``."""
    found = {m: {n for n in imports(m, PATHS[m]) if n.startswith(prefixes)} for m in mods}
    return {m: names for m, names in found.items() if names}


def test_ir_imports_no_llvmlite_frontend_or_codegen():
    assert not _bad(_modules("ir"), ("llvmlite", "lattice.frontend", "lattice.codegen",
                                     "lattice.models"))


def test_frontend_never_touches_llvmlite():
    assert not _bad(_modules("frontend"), ("llvmlite",))


def test_codegen_does_not_import_frontend():
    assert not _bad(_modules("codegen"), ("lattice.frontend",))


def test_no_import_circles():
    assert circles(GRAPH) == []


def test_circle_finder_sees_a_lazy_import(tmp_path):
    """The oracle of the test above: a circle closed only inside a function is found."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from .b import g\n\ndef f():\n    return g()\n")
    (pkg / "b.py").write_text("def g():\n    from . import a\n    return a\n")
    (pkg / "c.py").write_text("from pkg.a import f\n")
    graph = import_graph(pkg)
    assert graph["pkg.c"] == {"pkg.a"} and graph["pkg.__init__"] == {"pkg.a"}
    assert circles(graph) == [["pkg.a", "pkg.b"]]


#: the command-line entries may use the tooling; everything else is the runtime
_ENTRIES = ("lattice.__main__", "lattice.demo")


def test_runtime_never_imports_the_tooling():
    runtime = [m for m in PATHS if not m.startswith("lattice.testing") and m not in _ENTRIES]
    assert "lattice.ranking" in runtime and "lattice.ir.core" in runtime
    assert not _bad(runtime, ("lattice.testing",))
