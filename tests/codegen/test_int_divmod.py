"""Integer ``//`` and ``%`` in a user loop's scalar body take a branch around the division when
``-y <= x < y`` (codegen/lower_elementwise.py ``_int_divmod_scalar``); in codegen's own loop
nests they stay branch-free.  Both against the interpreter (NumPy's floor semantics, 0 for a
zero divisor, MIN // -1 wrapping) over values that hit the fast path, its edges and the slow
path."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings, strategies as st

import lattice as lt

I64 = st.integers(-2**63, 2**63 - 1)
EDGE = st.sampled_from([0, 1, -1, 2, -2, 7, -7, 2**63 - 1, -2**63, -2**63 + 1])


@lt.kernel(cache=False)
def loop_divmod(x: lt.i64["n"], y: lt.i64["n"]) -> lt.i64["n", 2]:
    out = lt.zeros((x.shape[0], 2), lt.i64)
    for i in range(x.shape[0]):
        out[i, 0] = x[i] // y[i]
        out[i, 1] = x[i] % y[i]
    return out


@lt.kernel(cache=False)
def map_divmod(x: lt.i64["n"], y: lt.i64["n"]) -> lt.i64["n"]:
    return x // y + x % y


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(I64, EDGE, st.integers(-20, 20)),
                          st.one_of(I64, EDGE, st.integers(-20, 20))), min_size=1, max_size=40))
def test_floor_division_and_modulo_match_the_interpreter(pairs):
    x = np.array([p[0] for p in pairs], np.int64)
    y = np.array([p[1] for p in pairs], np.int64)
    np.testing.assert_array_equal(loop_divmod(x, y), loop_divmod.interpret(x, y))
    np.testing.assert_array_equal(map_divmod(x, y), map_divmod.interpret(x, y))


def test_periodic_indices_in_a_loop_match_numpy():
    x = np.arange(-5, 5, dtype=np.int64)
    y = np.full(10, 3, np.int64)
    np.testing.assert_array_equal(loop_divmod(x, y)[:, 1], x % 3)
    np.testing.assert_array_equal(loop_divmod(x, y)[:, 0], x // 3)
