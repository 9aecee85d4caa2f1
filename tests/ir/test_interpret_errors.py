"""Run-time errors in the reference interpreter name the user's kernel line, as the compiled
code's do: the same exception type, the interpreter's own wording, then ``in <construct> at
file:line`` of the equation that raised it (the innermost one: a loop body's line).  Checked
against the compiled kernel with bounds checks on (the same type and the same location) and
against the line numbers of this file."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import lattice as lt


def line_of(fn, text: str) -> int:
    src, start = inspect.getsourcelines(fn)
    for k, line in enumerate(src):
        if text in line:
            return start + k
    raise AssertionError(text)


def gather(x: lt.f64["n"], i: lt.i64["m"]) -> lt.f64["m"]:
    y = x * 2.0
    return y[i]


def window(x: lt.f64["n"], i: lt.i64) -> lt.f64:
    return lt.sum(x[i:i + 4])


def in_loop(x: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for j in range(x.shape[0] + 1):
        s = s + x[j]
    return s


def in_branch(x: lt.f64["n"], k: lt.i64) -> lt.f64:
    if k > 0:
        r = x[k] * 2.0
    else:
        r = x[0]
    return r


def store(x: lt.f64["n"], v: lt.f64["m"], k: lt.i64) -> lt.f64["n"]:
    y = x * 1.0
    y[:k] = v
    return y


def counts(x: lt.i64["n"]) -> lt.i64:
    return np.bincount(x).shape[0]


CASES = [
    (gather, (np.ones(3), np.array([0, 5])), IndexError, "return y[i]", "out of bounds"),
    (window, (np.ones(3), 1), IndexError, "x[i:i + 4]", "does not fit"),
    (in_loop, (np.ones(3),), IndexError, "s = s + x[j]", "out of bounds"),
    (in_branch, (np.ones(3), 7), IndexError, "r = x[k] * 2.0", "out of bounds"),
    (store, (np.ones(3), np.ones(2), 3), ValueError, "y[:k] = v",
     "the stored value's shape (2,) does not match the indexed region (3,)"),
    (counts, (np.array([1, -1]),), ValueError, "np.bincount(x)", "must be non-negative"),
]


@pytest.mark.parametrize("fn,args,exc,text,why", CASES, ids=[c[0].__name__ for c in CASES])
def test_interpreter_errors_name_the_kernel_line(fn, args, exc, text, why):
    k = lt.kernel(fn, boundscheck=True)
    where = f"test_interpret_errors.py:{line_of(fn, text)}"
    with pytest.raises(exc) as interp:
        k.interpret(*args)
    msg = str(interp.value)
    assert why in msg and msg.endswith(where), msg
    assert msg.count(" at ") == 1  # located once, by the innermost equation
    assert text in msg  # the construct, as the compiled message names it
    with pytest.raises(exc) as comp:  # the compiled kernel: same type, same place
        k(*args)
    assert str(comp.value).endswith(where), str(comp.value)


def test_grad_interpretation_names_the_line_too():
    # a transformed kernel runs its own IR; its equations keep the user's locations
    def loss(x: lt.f64["n"], i: lt.i64["m"]) -> lt.f64:
        return lt.sum(x[i] ** 2)
    g = lt.grad(lt.kernel(loss, boundscheck=True))
    with pytest.raises(IndexError) as info:
        g.interpret(np.ones(3), np.array([4]))
    assert f"test_interpret_errors.py:{line_of(loss, 'x[i] ** 2')}" in str(info.value)


def test_good_input_still_runs():
    k = lt.kernel(gather)
    np.testing.assert_array_equal(k.interpret(np.arange(3.0), np.array([2, -1, 0])),
                                  2.0 * np.arange(3.0)[[2, -1, 0]])
