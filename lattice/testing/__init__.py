"""Developer tooling, kept out of the compiler: the random-program fuzzer (:mod:`.fuzz`) and its
error-bounded oracle (:mod:`.oracle`), the comparison harness behind ``python -m lattice
bench`` (:mod:`.bench`) and its timing helpers (:mod:`.timing`), and the import-graph reader
the layer tests and the architecture diagram use (:mod:`.layers`).  Only the command-line
entries (``lattice/__main__.py``, ``lattice/demo.py``) import this package; the runtime never
does (``tests/test_layers.py`` checks every other module)."""
