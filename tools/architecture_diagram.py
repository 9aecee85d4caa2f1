"""Draws docs/architecture.png from the package's own imports: the rooms and the one-way flow.

usage: python tools/architecture_diagram.py [OUTPUT.png]     (needs matplotlib: the bench extra)

Every module of ``lattice/`` is read with ``ast`` (imports inside functions count too, as in
``tests/test_layers.py``). Modules are grouped into rooms by folder; the top-level modules form
four rooms: the command line (``__main__``, ``demo``), the public API (``__init__``), what is
built on that API (modules importing ``lattice`` itself) and the shared base (the rest, e.g.
``errors``, ``_version``). Each room is a box listing its modules with their line counts, the
importers above what they import; an arrow from one box to another says that some module of the
first imports one of the second, labelled with how many module pairs do. Boxes are stacked by
the longest import chain below them, so every arrow points down; an arrow drawn in red points
up or sideways and means a circle between rooms. Run it after moving code (docs/architecture.md
says when).
"""
from __future__ import annotations

import pathlib
import sys
from collections import defaultdict

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lattice.testing.layers import import_graph, module_paths  # noqa: E402  (after the path insert)

ENTRY = "lattice: command line"
API = "lattice: public API"
ON_API = "lattice: built on the public API"
BASE = "lattice: shared base"


def room_of(mod: str, graph: dict[str, set[str]]) -> str:
    """A folder is a room; the top-level modules are sorted by what they are to the package."""
    parts = mod.split(".")
    if len(parts) > 2:
        return ".".join(parts[:-1])  # a sub-package's __init__ belongs to it
    name = parts[1]
    if name in ("__main__", "demo"):
        return ENTRY
    if name == "__init__":
        return API
    return ON_API if "lattice.__init__" in graph[mod] else BASE


def module_levels(graph: dict[str, set[str]]) -> dict[str, int]:
    """Longest import chain below each module (0: imports nothing of lattice)."""
    level: dict[str, int] = {}

    def visit(m: str, seen: frozenset[str]) -> int:
        if m in level:
            return level[m]
        deps = [d for d in graph[m] if d not in seen]
        level[m] = 1 + max((visit(d, seen | {m}) for d in deps), default=-1)
        return level[m]

    for m in graph:
        visit(m, frozenset())
    return level


def layout(graph: dict[str, set[str]]):
    rooms: dict[str, list[str]] = defaultdict(list)
    for m in graph:
        rooms[room_of(m, graph)].append(m)
    edges: dict[tuple[str, str], int] = defaultdict(int)
    for m, deps in graph.items():
        for d in deps:
            a, b = room_of(m, graph), room_of(d, graph)
            if a != b:
                edges[(a, b)] += 1
    room_graph = {r: {b for (a, b) in edges if a == r} for r in rooms}
    rlevel = module_levels(room_graph)
    mlevel = module_levels(graph)
    for r in rooms:
        rooms[r].sort(key=lambda m: (-mlevel[m], m))
    return rooms, edges, rlevel


def draw(out: pathlib.Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    graph = import_graph(ROOT / "lattice")
    rooms, edges, rlevel = layout(graph)
    lines = {m: sum(1 for _ in p.open(encoding="utf-8"))
             for m, p in module_paths(ROOT / "lattice").items()}
    rows: dict[int, list[str]] = defaultdict(list)
    for r in sorted(rooms):
        rows[rlevel[r]].append(r)
    line_h, box_w, gap_x, gap_y = 0.16, 3.3, 0.5, 0.9
    heights = {r: 0.45 + line_h * len(rooms[r]) for r in rooms}
    row_h = {lv: max(heights[r] for r in rs) for lv, rs in rows.items()}
    width = max(len(rs) for rs in rows.values()) * (box_w + gap_x)
    y, pos = 0.0, {}
    for lv in sorted(rows):
        rs = rows[lv]
        x0 = (width - len(rs) * (box_w + gap_x)) / 2
        for k, r in enumerate(rs):
            pos[r] = (x0 + k * (box_w + gap_x), y + row_h[lv] - heights[r], heights[r])
        y += row_h[lv] + gap_y
    fig, ax = plt.subplots(figsize=(width * 0.95, y * 0.95))
    for r, (x, yb, h) in pos.items():
        ax.add_patch(FancyBboxPatch((x, yb), box_w, h, boxstyle="round,pad=0.02",
                                    fc="#eef3fb" if r.startswith("lattice.") else "#f6f1e7", ec="#35507a"))
        ax.text(x + 0.08, yb + h - 0.12, r, fontsize=9, weight="bold", va="top")
        for k, m in enumerate(rooms[r]):
            name = m.split(".")[-1] + ".py"
            ax.text(x + 0.14, yb + h - 0.42 - k * line_h, f"{name:<22}{lines[m]:>5}",
                    fontsize=7, family="monospace", va="top")
    for (a, b), n in sorted(edges.items()):
        xa, ya, _ = pos[a]
        xb, yb, hb = pos[b]
        down = rlevel[a] > rlevel[b]
        start = (xa + box_w / 2, ya)  # from the importer's bottom edge to the imported's top
        end = (xb + box_w / 2, yb + hb)
        arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=10,
                                color="#35507a" if down else "#c0392b", lw=0.7, alpha=0.6,
                                connectionstyle="arc3,rad=0.08")
        ax.add_patch(arrow)
        ax.text((start[0] * 0.35 + end[0] * 0.65), (start[1] * 0.35 + end[1] * 0.65), str(n),
                fontsize=6, color="#35507a", ha="center")
    ax.set_xlim(-0.2, width)
    ax.set_ylim(-0.2, y)
    ax.axis("off")
    ax.set_title("lattice: rooms (folders) and their imports; arrows point from importer to "
                 "imported, labelled with the number of module pairs", fontsize=10)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    print(f"wrote {out}: {len(graph)} modules in {len(rooms)} rooms, {len(edges)} arrows")


if __name__ == "__main__":
    draw(pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "architecture.png")
