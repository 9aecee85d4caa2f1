"""The ported-program corpus (bench/corpus): every program either compiles as written and
agrees with its NumPy oracle, or is rejected with a CompileError naming its file:line.

``COMPILES`` lists the programs lattice must compile; a program leaving it is a regression,
one that starts compiling belongs in it (the test says so)."""
from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

import lattice as lt

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "bench"))
from corpus import call, load  # noqa: E402
from corpus_table import _agree  # noqa: E402

PROGRAMS = load()

COMPILES = {
    "atax", "bicg", "gesummv", "k3mm", "trisolv", "cholesky", "durbin", "covariance",
    "nussinov", "pairwise_distance", "prefix_sum", "ising_energy", "go_fast", "compute",
    "cavity_flow", "nbody_acc", "spmv",
    "newton_sqrt", "first_above", "ewma",  # while, early return, for over an array
    "arc_distance", "crc16",  # arctan2; uint8 data and bit operations
    "softmax", "mlp", "correlation", "gramschmidt",  # keepdims, std, np.linalg.norm
    "mandel_escape", "dft",  # complex numbers
    "mandelbrot", "histogram", "hdiff",  # int arguments as sizes; affine slice sizes
    "azimint_naive",  # np.logical_and and a result sized by an int argument
    "gemver",  # np.outer and writes into its arguments
    # writes into their arguments
    "gemm", "k2mm", "syrk", "lu", "mvt", "jacobi_1d", "jacobi_2d", "heat_3d", "seidel_2d",
    "fdtd_2d", "floyd_warshall", "saxpy", "insertion_sort",
}


def test_the_list_names_real_programs():
    assert COMPILES <= set(PROGRAMS)


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_program(name):
    prog = PROGRAMS[name]
    args = prog.data("test", np.random.default_rng(0))
    try:
        k = lt.kernel(prog.fn)
        got = call(k, args, prog.writes)
    except lt.CompileError as exc:
        assert name not in COMPILES, f"{name} no longer compiles: {exc}"
        assert re.search(r"\.py:\d+", str(exc)), f"error without a file:line: {exc}"
        return
    assert _agree(got, prog.expected(args), prog.rtol) == ""
    assert name in COMPILES, f"{name} now compiles and agrees: add it to COMPILES"
