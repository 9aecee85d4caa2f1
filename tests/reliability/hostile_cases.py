"""Hostile inputs to compiled kernels, run as a child process by test_hostile_inputs.py.

Each case is a name, a thunk and the expected outcome: ``("ok", check)`` where ``check(result)``
returns True for a correct result, or ``("raises", ExceptionClass, message regex)``.  The child
prints one JSON line when a case starts and one with its outcome, so a crash (segfault, abort)
in the middle of a case is attributed to that case by the parent.

``python tests/reliability/hostile_cases.py`` prints the table (docs/getting-started.md has it).
"""
from __future__ import annotations

import json
import re
import sys

import numpy as np

import lattice as lt


@lt.kernel
def total(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(x)


@lt.kernel
def biggest(x: lt.f64["n"]) -> lt.f64:
    return lt.max(x)


@lt.kernel
def where_max(x: lt.f64["n"]) -> lt.i64:
    return lt.argmax(x)


@lt.kernel
def row_sums(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    return lt.sum(X, axis=1)


@lt.kernel
def three(v: lt.f64[3]) -> lt.f64:
    return lt.sum(v * v)


@lt.kernel
def mm(A: lt.f64["n", "k"], B: lt.f64["k", "m"]):
    return A @ B


@lt.kernel
def scaled(x: lt.f64["n"], s: lt.f64, k: lt.i64):
    return x * s + k


@lt.kernel
def get(x: lt.f64["n"], i: lt.i64) -> lt.f64:
    return x[i]


@lt.kernel(boundscheck=True)
def get_checked(x: lt.f64["n"], i: lt.i64, j: lt.i64) -> lt.f64:
    return x[i + j]


@lt.kernel
def square_tmp(x: lt.f64["n"]) -> lt.f64:
    t = lt.zeros((x.shape[0], x.shape[0]))  # an n*n temporary
    return lt.sum(t[0])


@lt.kernel
def outer(x: lt.f64["n"], y: lt.f64["m"]):
    return lt.zeros((x.shape[0], y.shape[0])) + y


@lt.kernel
def local_of_size(x: lt.f64["n"], k: lt.i64) -> lt.f64:
    t = lt.zeros(k)
    return lt.sum(t) + x[0]


@lt.kernel
def idiv(a: lt.i64["n"], b: lt.i64["n"]):
    return a // b, a % b, a * b


X = np.arange(12.0).reshape(3, 4)
V = np.linspace(-1.0, 1.0, 7)


def _ro(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.setflags(write=False)
    return a


def _misaligned() -> np.ndarray:
    buf = np.zeros(8 * 7 + 1, np.uint8)
    a = np.ndarray((7,), np.float64, buf.data, offset=1)
    a[:] = V
    return a


def close(want):
    return lambda got: np.allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)


def is_nan(got):
    return bool(np.isnan(got))


HUGE = 2 ** 33
# (name, what it shows, thunk, expected)
CASES = [
    ("wrong dtype", "f32 array for an f64 parameter",
     lambda: total(V.astype(np.float32)), ("raises", TypeError, r"argument 'x'.*float64.*float32")),
    ("wrong dtype (int array)", "i64 array for an f64 parameter",
     lambda: total(np.arange(3)), ("raises", TypeError, r"expected a float64 array, got int64")),
    ("byte-swapped dtype", "big-endian >f8 array",
     lambda: total(V.astype(">f8")), ("raises", TypeError, r"got >f8")),
    ("wrong rank", "2-D array for a 1-D parameter",
     lambda: total(X), ("raises", TypeError, r"expected a 1-D float64 array")),
    ("scalar for an array", "Python float for f64['n']",
     lambda: total(1.5), ("raises", TypeError, r"expected a 1-D")),
    ("array for a scalar", "1-D array for an f64 scalar",
     lambda: scaled(V, V, 1), ("raises", TypeError, r"argument 's'.*scalar")),
    ("mismatched dims", "dim 'k' differs between A and B",
     lambda: mm(np.ones((2, 3)), np.ones((4, 2))), ("raises", ValueError, r"dim 'k' is 3 .* 4")),
    ("wrong literal dim", "f64[3] given 4 elements",
     lambda: three(np.ones(4)), ("raises", ValueError, r"axis 0 must have size 3, got 4")),
    ("wrong argument count", "two arguments for one parameter",
     lambda: total(V, V), ("raises", TypeError, r"takes 1 arguments")),
    ("zero-size sum", "sum of an empty array",
     lambda: total(np.zeros(0)), ("ok", close(0.0))),
    ("zero-size rows", "row sums of a (0, 5) and a (4, 0) array",
     lambda: (row_sums(np.zeros((0, 5))).shape, row_sums(np.zeros((4, 0))).tolist()),
     ("ok", lambda r: r == ((0,), [0.0, 0.0, 0.0, 0.0]))),
    ("zero-size matmul", "(2, 0) @ (0, 3) is a (2, 3) array of zeros",
     lambda: mm(np.ones((2, 0)), np.ones((0, 3))), ("ok", close(np.zeros((2, 3))))),
    ("zero-size max", "max of an empty array",
     lambda: biggest(np.zeros(0)), ("raises", ValueError, r"empty")),
    ("zero-size argmax", "argmax of an empty array",
     lambda: where_max(np.zeros(0)), ("raises", ValueError, r"empty")),
    ("non-contiguous", "every other element, a column of a matrix",
     lambda: (total(V[::2]), row_sums(X[:, ::2])),
     ("ok", lambda r: np.isclose(r[0], V[::2].sum()) and np.allclose(r[1], X[:, ::2].sum(1)))),
    ("negative strides", "reversed views",
     lambda: (total(V[::-1]), row_sums(X[::-1, ::-2])),
     ("ok", lambda r: np.isclose(r[0], V.sum()) and np.allclose(r[1], X[::-1, ::-2].sum(1)))),
    ("Fortran order", "a column-major matrix",
     lambda: row_sums(np.asfortranarray(X)), ("ok", close(X.sum(1)))),
    ("zero strides", "np.broadcast_to view (stride 0)",
     lambda: total(np.broadcast_to(np.float64(2.0), (5,))), ("ok", close(10.0))),
    ("misaligned data", "float64 data at an odd address",
     lambda: total(_misaligned()), ("ok", close(V.sum()))),
    ("read-only arrays", "arrays with writeable=False",
     lambda: (total(_ro(V)), mm(_ro(X), _ro(X.T))),
     ("ok", lambda r: np.isclose(r[0], V.sum()) and np.allclose(r[1], X @ X.T))),
    ("Python list", "[1.0, 2.0, 3.5] for f64['n']",
     lambda: total([1.0, 2.0, 3.5]), ("ok", close(6.5))),
    ("Python list of ints", "[1, 2, 3] for f64['n'] (ints convert to float)",
     lambda: total([1, 2, 3]), ("ok", close(6.0))),
    ("nested list", "[[1.0, 2.0]] for f64['n']",
     lambda: total([[1.0, 2.0]]), ("raises", TypeError, r"expected a 1-D")),
    ("ragged list", "[[1.0], [1.0, 2.0]]",
     lambda: row_sums([[1.0], [1.0, 2.0]]), ("raises", TypeError, r"cannot make an array")),
    ("list of strings", "['a', 'b']",
     lambda: total(["a", "b"]), ("raises", TypeError, r"expected float64 values")),
    ("Python scalars", "int for f64 and for i64; NumPy scalars",
     lambda: (scaled(V, 2, 3), scaled(V, np.float32(2.0), np.int32(3))),
     ("ok", lambda r: np.allclose(r[0], V * 2 + 3) and np.allclose(r[1], V * 2 + 3))),
    ("float for an int scalar", "1.5 for i64",
     lambda: scaled(V, 1.0, 1.5), ("raises", TypeError, r"argument 'k'.*i64 scalar")),
    ("bool for an int scalar", "True for i64",
     lambda: scaled(V, 1.0, True), ("raises", TypeError, r"argument 'k'.*bool")),
    ("int too big for i64", "2**70 for i64",
     lambda: scaled(V, 1.0, 2 ** 70), ("raises", ValueError, r"does not fit i64")),
    ("object array", "dtype=object array of floats",
     lambda: total(np.array([1.0, 2.0], dtype=object)), ("raises", TypeError, r"got object")),
    ("object list", "[1.0, None]",
     lambda: total([1.0, None]), ("raises", TypeError, r"object")),
    ("NaN values", "NaN propagates through sum and max; argmax finds it",
     lambda: (total(np.array([1.0, np.nan])), biggest(np.array([np.nan, 1.0])),
              where_max(np.array([0.0, np.nan, 5.0]))),
     ("ok", lambda r: np.isnan(r[0]) and np.isnan(r[1]) and r[2] == 1)),
    ("inf values", "inf - inf is NaN, max of inf is inf",
     lambda: (total(np.array([np.inf, -np.inf])), biggest(np.array([1.0, np.inf]))),
     ("ok", lambda r: np.isnan(r[0]) and r[1] == np.inf)),
    ("huge temporary", "an n*n temporary with n = 2**33 (bytes overflow 64 bits)",
     lambda: square_tmp(np.broadcast_to(np.float64(0), (HUGE,))),
     ("raises", MemoryError, r"too large.* at .*hostile_cases.py:\d+")),
    ("huge local size", "lt.zeros(k) with k = 2**61 (bytes overflow)",
     lambda: local_of_size(V, 2 ** 61), ("raises", MemoryError, r"too large")),
    ("unallocatable temporary", "lt.zeros(k) with k = 2**55 (malloc fails)",
     lambda: local_of_size(V, 2 ** 55), ("raises", MemoryError, r"out of memory")),
    ("negative local size", "lt.zeros(k) with k = -1",
     lambda: local_of_size(V, -1), ("raises", ValueError, r"negative dimensions")),
    ("huge result", "a (2**33, 2**33) result",
     lambda: outer(np.broadcast_to(np.float64(0), (HUGE,)),
                   np.broadcast_to(np.float64(0), (HUGE,))),
     ("raises", (ValueError, MemoryError), r"too big|too large|memory")),
    ("index overflow (boundscheck)", "x[i + j] with i + j wrapping past 2**63",
     lambda: get_checked(V, 2 ** 62, 2 ** 62), ("raises", IndexError, r"hostile_cases.py:\d+")),
    ("index out of range (boundscheck)", "x[i] with i = -2**63 and i = n",
     lambda: [_raises(IndexError, get_checked, V, i, 0) for i in (-2 ** 63, 7, 2 ** 40)],
     ("ok", lambda r: all(r))),
    ("integer overflow", "i64 arithmetic wraps; // 0 and % 0 give 0",
     lambda: idiv(np.array([2 ** 62, 7, -7]), np.array([4, 0, 2])),
     ("ok", lambda r: r[0].tolist() == [2 ** 60, 0, -4] and r[1].tolist() == [0, 0, 1]
      and r[2].tolist() == [0, 0, -14])),  # 2**62 * 4 wraps to 0
]


def _raises(cls, f, *args):
    try:
        f(*args)
    except cls:
        return True
    return False


def run_case(case) -> dict:
    name, _what, thunk, expect = case
    try:
        with np.errstate(all="ignore"):
            result = thunk()
    except Exception as exc:  # noqa: BLE001
        got = f"{type(exc).__name__}: {exc}"
        if expect[0] == "raises" and isinstance(exc, expect[1]) and re.search(expect[2], str(exc)):
            return {"case": name, "ok": True, "got": got}
        return {"case": name, "ok": False, "got": got}
    if expect[0] == "ok":
        ok = bool(expect[1](result))
        return {"case": name, "ok": ok, "got": f"result {result!r}"[:200]}
    return {"case": name, "ok": False, "got": f"returned {result!r}"[:200]}


def main(argv: list[str]) -> None:
    names = set(argv)
    for case in CASES:
        if names and case[0] not in names:
            continue
        print(json.dumps({"start": case[0]}), flush=True)
        print(json.dumps(run_case(case)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
