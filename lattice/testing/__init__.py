"""Developer tooling, kept out of the compiler: the random-program fuzzer (:mod:`.fuzz`) and its
error-bounded oracle (:mod:`.oracle`), the comparison harness behind ``python -m lattice
bench`` (:mod:`.bench`) and its timing helpers (:mod:`.timing`), and the import-graph reader
the layer tests and the architecture diagram use (:mod:`.layers`).  Nothing in the runtime
(``lattice.frontend``, ``lattice.ir``, ``lattice.codegen``, ``lattice.models``, the public API)
imports this package; ``tests/test_layers.py`` checks it."""
