"""The fuzzer's newer families and checks, each exercised on a few fixed programs (fast).

* windows ``x[a*i + b:a*i + b + c]`` and blocked loops with a remainder (family "blocked"),
* matrix products around gemm.py's register tiles and Gram products (family "tiles"),
* ``parallel=True`` kernels above the pool's threshold (family "parallel"),
* ``x[:, None]`` broadcasting, kernels calling kernels, gathers through index arrays,
* jvp / vjp / hessian checks, f32 gradients against the f64 twin,
* the oracle's model of lattice's loop typing (a variable has one type after a loop).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import lattice as lt
from lattice.testing import fuzz
from lattice.testing.fuzz.run import _grad_check, describe, load_program
from lattice.testing.oracle import run_oracle


def _first(pred, start=0):
    for s in range(start, start + 5000):
        p = fuzz.generate(s)
        if pred(p):
            return p
    raise AssertionError("no such program")


def _run(prog):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fuzz.run_program(prog, n_inputs=1, check_grad=False)
    assert out.status in ("ok", "skip"), f"{out.detail}\n{describe(prog)}"
    return out


@pytest.mark.parametrize("what,pred", [
    ("blocked window loop", lambda p: p.family == "blocked" and "in range(nb" in p.source
     and len(p.source) < 900),
    ("window with a traced start", lambda p: "lt.argmax(" in p.source and "lt.minimum(" in p.source
     and "] + " not in p.source and len(p.source) < 700),
    ("gram", lambda p: p.family == "tiles" and ".T @ (" in p.source and len(p.source) < 700),
    ("parallel", lambda p: p.family == "parallel" and "parallel=True" in p.source
     and "@" in p.source and len(p.source) < 800),
    ("new axes", lambda p: "[:, None]" in p.source and "[None, :]" in p.source
     and len(p.source) < 600),
    ("kernel call", lambda p: "helper0(" in p.source and len(p.source) < 700),
    ("gather through an index array", lambda p: "* 2 + 1) %" in p.source
     and len(p.source) < 1200),
])
def test_family_programs_run(what, pred):
    _run(_first(pred, 900000))


def test_families_are_drawn_and_sizes_reach_the_tiles():
    fams = {fuzz.generate(s).family for s in range(200)}
    assert fams == {"general", "tiles", "blocked", "parallel"}
    p = _first(lambda p: p.family == "tiles")
    rng = np.random.default_rng(0)
    big = max(max(a.shape, default=0) for _ in range(20) for a in
              [np.asarray(x) for x in fuzz.make_args(p, rng)])
    assert big > 16
    p = _first(lambda p: p.family == "parallel")
    sizes = [np.asarray(x).size for x in fuzz.make_args(p, np.random.default_rng(1))]
    assert max(sizes) > 65536


_SRC = '''import lattice as lt


@lt.kernel
def prog(a: lt.f64["n"], b: lt.f64["n", "k"]):
    h = lt.sum(lt.tanh(a[:, None] * b), axis=1)
    loss = lt.sum(h * a) + lt.sum(lt.exp(lt.clip(b, -6.0, 6.0)) * 0.25)
    return loss
'''


@pytest.mark.parametrize("mode", ["grad", "jvp", "vjp", "hessian"])
def test_ad_checks(mode):
    p = fuzz.Program(1, _SRC, "prog", ["a", "b"], [fuzz.Var("a", "f64", ("n",)),
                                                    fuzz.Var("b", "f64", ("n", "k"))],
                     True, {}, 1, True)
    k = load_program(p).prog
    rng = np.random.default_rng(3)
    args = [rng.uniform(-1, 1, 4), rng.uniform(-1, 1, (4, 3))]
    assert _grad_check(p, k, args, rng, mode=mode).startswith("checked")


def test_f32_gradient_against_the_f64_twin():
    src = _SRC.replace("lt.f64", "lt.f32")
    p = fuzz.Program(2, src, "prog", ["a", "b"], [fuzz.Var("a", "f32", ("n",)),
                                                   fuzz.Var("b", "f32", ("n", "k"))],
                     True, {}, 1, True, loss_dtype="f32")
    k = load_program(p).prog
    rng = np.random.default_rng(4)
    args = [rng.uniform(-1, 1, 5).astype(np.float32),
            rng.uniform(-1, 1, (5, 2)).astype(np.float32)]
    assert _grad_check(p, k, args, rng) == "checked grad f32"


# ------------------------------------------------------------- the oracle's loop and window model
@lt.kernel
def _weak_init(x: lt.f32["n"]):
    s = 0.0
    for i in range(x.shape[0]):
        s = s + x[i]
    return s


@lt.kernel
def _int_init(x: lt.f32["n"]):
    s = 0
    for i in range(1, x.shape[0]):
        s = s + 2
    return s * x, s


@pytest.mark.parametrize("n", [0, 1, 3])
def test_oracle_types_loop_carried_values_as_lattice_does(n):
    """Seed 131156: a loop that runs zero times left a weak Python number in the oracle; lattice
    types a carried variable once: the initial value at its default dtype (f64 for 0.0, i64 for
    0) promoted with what the body assigns, whatever the trip count."""
    x = np.arange(n, dtype=np.float32) + 0.5
    for k in (_weak_init, _int_init):
        got = k(x)
        got = got if isinstance(got, tuple) else (got,)
        want, _ = run_oracle(k.fn, [x], True)
        assert [np.asarray(g).dtype for g in got] == [w.dtype for w in want]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-12)


@lt.kernel
def _win(x: lt.f64["n"], i: lt.i64):
    j = i + 1
    return lt.sum(x[j:j + 3] * x[i + 1:(i + 2) + 2])


@pytest.mark.parametrize("i", [0, 6, 7, -4, -3, -5])
def test_oracle_windows_raise_as_lattice_does(i):
    x = np.arange(10.0)
    try:
        want = run_oracle(_win.fn, [x, np.int64(i)], True)[0][0]
    except IndexError:
        with pytest.raises(IndexError):
            _win(x, i)
        return
    assert _win(x, i) == want
