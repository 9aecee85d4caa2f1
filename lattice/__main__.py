"""Command line: ``python -m lattice demo`` and ``python -m lattice bench [--quick]``."""
from __future__ import annotations

import sys

USAGE = "usage: python -m lattice demo | python -m lattice bench [--quick] [--chart PATH] [--json PATH]"


def main(argv: list[str]) -> int:
    if argv[:1] == ["demo"]:
        from .demo import main as demo
        demo()
        return 0
    if argv[:1] == ["bench"]:
        from .testing.bench import main as bench
        return bench(argv[1:])
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
