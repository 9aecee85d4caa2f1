"""Command line: ``python -m lattice demo``."""
from __future__ import annotations

import sys

USAGE = "usage: python -m lattice demo"


def main(argv: list[str]) -> int:
    if argv[:1] == ["demo"]:
        from .demo import main as demo
        demo()
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
