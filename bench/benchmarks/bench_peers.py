"""Every row of ``python -m lattice bench`` as asv benchmarks, one ``time_<peer>`` per peer.

The workloads come from :mod:`lattice.testing.bench` (the same data and kernels as the table); asv
times each peer's callable.  Run from ``bench/``: ``asv run --quick --python=same``.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # the working tree, also when lattice is not installed

from lattice.testing import bench  # noqa: E402

_rows = {}


def _row(name):
    if name not in _rows:
        for r in bench.workloads(quick=bool(os.environ.get("LATTICE_BENCH_QUICK"))):
            _rows[r.name] = r
    return _rows[name]


class _Row:
    row = ""
    params = [list(bench.PEERS)]
    param_names = ["peer"]
    timeout = 600

    def setup(self, peer):
        fn = _row(self.row).fns.get(peer)
        if fn is None:
            raise NotImplementedError(f"{peer} has no implementation of {self.row}")
        fn()  # compile / warm up outside the timing
        self.fn = fn

    def time_row(self, peer):
        self.fn()


class CallOverhead(_Row):
    row = "dot(8) call"


class BestMatch(_Row):
    row = "best_match"


class LogisticGrad(_Row):
    row = "logistic grad"


class LogisticLoss(_Row):
    row = "logistic loss"


class LogisticGradHand(_Row):
    row = "grad (hand)"


class LogsumexpRows(_Row):
    row = "logsumexp rows"


class Floor:
    """The bandwidth floor: stream X (1,000,000 x 32 f64) once with a parallel sum."""

    timeout = 600

    def setup(self):
        self.fn = _row("logistic grad").floor
        self.fn()

    def time_stream_x(self):
        self.fn()


class Scaling:
    """Parallel kernels with 1 and 2 threads."""

    params = [[1, 2]]
    param_names = ["threads"]
    timeout = 600

    def setup(self, threads):
        import numpy as np
        import lattice as lt
        rng = np.random.default_rng(1)
        self.x = rng.standard_normal((1 << 20, 32))
        self.E = rng.standard_normal((10_000, 128)).astype(np.float32)
        self.q = rng.standard_normal(128).astype(np.float32)
        self.before = lt.get_num_threads()
        lt.set_num_threads(threads)
        bench.stream(self.x)
        bench.best_match(self.E, self.q)
        bench.row_norms(self.x)

    def teardown(self, threads):
        import lattice as lt
        lt.set_num_threads(self.before)

    def time_sum_256mib(self, threads):
        bench.stream(self.x)

    def time_best_match(self, threads):
        bench.best_match(self.E, self.q)

    def time_row_norms(self, threads):
        bench.row_norms(self.x)
