"""``python -m lattice.testing.fuzz``: see :mod:`lattice.testing.fuzz`."""
import sys

from .cli import main

sys.exit(main())
