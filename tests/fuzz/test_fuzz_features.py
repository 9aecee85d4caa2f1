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
from lattice.testing.oracle import IllConditioned, Tracked, run_oracle


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


# ------------------------------------------------------------- the newer language
@pytest.mark.parametrize("what,pred", [
    ("while with a short-circuit exit", lambda p: " and " in p.source and "while " in p.source),
    ("while with break and continue", lambda p: "while " in p.source and "break" in p.source
     and "continue" in p.source),
    ("early return in a loop", lambda p: "    return lt.astype(" in p.source
     and "for " in p.source),
    ("enumerate / zip", lambda p: "enumerate(zip(" in p.source or "zip(range(" in p.source),
    ("reversed rows", lambda p: "in reversed(" in p.source),
    ("negative-step range with break", lambda p: ", -1, -2)" in p.source and "break" in p.source),
    ("gather and take", lambda p: "lt.take(" in p.source and "% " in p.source),
    ("boolean mask reduced", lambda p: "[m" in p.source and "].sum()" in p.source),
    ("scatter-add", lambda p: "] += " in p.source and "lt.zeros(" in p.source
     and "% " in p.source),
    ("masked store", lambda p: "] = 0.5" in p.source and " > " in p.source.split("] = 0.5")[0]
     .splitlines()[-1]),
    ("narrow ints and bit operations", lambda p: ("lt.u8" in p.source or "lt.i8" in p.source)
     and "<<" in p.source and "^" in p.source),
    ("f16", lambda p: "lt.f16" in p.source),
])
def test_newer_language_programs_run(what, pred):
    _run(_first(lambda p: p.source.count("\n") < 40 and pred(p), 910000))


def test_newer_language_is_drawn_from_its_own_stream():
    """A seed that does not draw the newer language has its old program; most seeds draw it."""
    drawn = [fuzz.generate(s) for s in range(300)]
    old = [fuzz.generate(s, new_language=False) for s in range(300)]
    same = sum(a.source == b.source for a, b in zip(drawn, old))
    assert 30 <= same <= 150   # 30% of the seeds, give or take
    joined = "".join(p.source for p in drawn)
    for construct in ("while ", "break", "continue", "enumerate(", "zip(", "reversed(",
                      "lt.take(", "] += ", "<<", ">>", "~", "lt.u64", "lt.i16", "lt.f16",
                      "return lt.astype("):
        assert construct in joined, construct
    assert not any(c in "".join(p.source for p in old) for c in ("while ", "lt.u8", "break"))


@lt.kernel
def _jumps(x: lt.f64["n"], q: lt.u8["n"]):
    s = 0.0
    k = 0
    while k < x.shape[0] and x[k] < 1.0:
        s = s + x[k]
        k = k + 1
    for i, v in enumerate(x):
        if v < -1.0:
            continue
        if s > 3.0:
            if v > 0.0:
                return s * 0.5, k
            break
        s = s + v * i
    h = lt.zeros(x.shape[0])
    h[(q & 3) % x.shape[0]] += x
    c = lt.copy(x)
    c[x > 0.5] = 0.25
    w = ((q << 3) ^ ~q) >> 1
    # (every return has one type: the oracle does not model the promotion over returns)
    return s + lt.sum(h) + lt.sum(c) + x[q % x.shape[0]].sum(), lt.astype(lt.sum(w), lt.i64)


def _python_jumps(x, q):
    """The same program in plain NumPy/Python (np.add.at for the scatter-add)."""
    s, k = 0.0, 0
    while k < len(x) and x[k] < 1.0:
        s, k = s + x[k], k + 1
    for i, v in enumerate(x):
        if v < -1.0:
            continue
        if s > 3.0:
            if v > 0.0:
                return s * 0.5, k
            break
        s = s + v * i
    h = np.zeros(len(x))
    np.add.at(h, (q & 3) % len(x), x)
    c = x.copy()
    c[x > 0.5] = 0.25
    w = ((q << 3) ^ ~q) >> 1
    return s + h.sum() + c.sum() + x[q % len(x)].sum(), np.int64(np.sum(w))


@pytest.mark.parametrize("seed", range(6))
def test_oracle_jumps_scatters_and_bits_agree_with_python_and_lattice(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 9))
    x = np.round(rng.uniform(-2, 2, n) * 4) / 4   # exact in binary: no rounding near ties
    q = rng.integers(0, 256, n).astype(np.uint8)
    want, _ = run_oracle(_jumps.fn, [x, q], True)
    py = _python_jumps(x, q)
    got = _jumps(x, q)
    for w, p, g in zip(want, py, got):
        assert w.dtype == np.asarray(p).dtype == np.asarray(g).dtype
        np.testing.assert_allclose(w, p, rtol=1e-13)
        np.testing.assert_allclose(g, w, rtol=1e-13)


def test_oracle_bit_operations_follow_numpy_promotion_and_wrapping():
    import lattice.testing.oracle as o
    a = np.array([250, 3, 128], np.uint8)
    b = np.array([-3, 100, -128], np.int8)
    for f in (lambda u, v: u ^ v, lambda u, v: (u << 3) | v, lambda u, v: ~u & 7,
              lambda u, v: u + 10, lambda u, v: v >> 2, lambda u, v: u * v):
        got = f(Tracked(a), Tracked(b)).v
        want = f(a, b)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert o.sum(Tracked(a)).v.dtype == np.uint64 and o.sum(Tracked(b)).v.dtype == np.int64


def test_oracle_argsort_flags_near_ties_only_when_inexact():
    import lattice.testing.oracle as o
    x = Tracked(np.array([1.0, 0.5, 1.0]))
    assert o.argsort(x).v.tolist() == [1, 0, 2]      # exact tie: stable order
    with pytest.raises(IllConditioned):
        o.argsort(x * 3.0 + Tracked(np.array([0.0, 0.0, 1e-16])))


# ---- argument writes (numba-style stores into the kernel's arguments)
def _writes(p):
    return p.source != fuzz.generate(p.seed, arg_writes=False).source


@pytest.mark.parametrize("what,pred", [
    ("in place", lambda p: " += " in p.source or " *= " in p.source),
    ("recurrence", lambda p: "- 1] * 0.25" in p.source),
    ("overlapping slices", lambda p: "[1:] = " in p.source),
    ("masked store", lambda p: "> 0.5] = " in p.source),
])
def test_argument_writing_programs_run(what, pred):
    prog = _first(lambda p: p.family != "parallel" and len(p.source) < 900 and pred(p)
                  and _writes(p), 930000)
    _run(prog)


def test_argument_writes_are_drawn_from_their_own_stream():
    """With ``arg_writes=False`` a seed has the program it had before argument writes were
    generated; about a fifth of the seeds write into an argument."""
    drawn = [fuzz.generate(s) for s in range(400)]
    written = [p for p in drawn if _writes(p)]
    assert 40 <= len(written) <= 140
    assert all(p.family != "parallel" for p in written)


@lt.kernel
def _writes_args(a: lt.f64["n"], h: lt.i64["n"]):
    v = a[1:]                      # a view: shows the stores below
    a += 0.5
    for i in range(1, a.shape[0]):
        a[i] += a[i - 1] * 0.25
    h[(lt.arange(h.shape[0]) * 3 + 1) % h.shape[0]] += 1
    h ^= 3
    return lt.sum(v) * 2.0


def test_oracle_models_in_place_updates_and_views_as_numpy_does():
    """The oracle's final argument contents and result, lattice's and NumPy's (np.add.at
    for the scatter-add) agree, so the runner's check of written arguments is sound."""
    rng = np.random.default_rng(3)
    a0 = np.round(rng.uniform(-2, 2, 6) * 4) / 4
    h0 = rng.integers(-5, 6, 6)
    final: list = []
    want, _ = run_oracle(_writes_args.fn, [a0.copy(), h0.copy()], False, final)
    a, h = a0.copy(), h0.copy()
    v = a[1:]
    a += 0.5
    for i in range(1, 6):
        a[i] += a[i - 1] * 0.25
    np.add.at(h, (np.arange(6) * 3 + 1) % 6, 1)
    h ^= 3
    ga, gh = a0.copy(), h0.copy()
    got = _writes_args(ga, gh)
    np.testing.assert_allclose(want[0], np.sum(v) * 2.0, rtol=1e-14)
    np.testing.assert_allclose(got, want[0], rtol=1e-14)
    for fin, py, lat in ((final[0][0], a, ga), (final[1][0], h, gh)):
        np.testing.assert_allclose(fin, py, rtol=1e-14)
        np.testing.assert_allclose(lat, fin, rtol=1e-14)


def test_runner_catches_a_wrong_write_into_an_argument(monkeypatch):
    """A compiled kernel whose stores into an argument differ from the Python program's is a
    mismatch naming the argument, even where every result agrees."""
    import lattice.testing.fuzz.run as run
    prog = _first(lambda p: p.family != "parallel" and len(p.source) < 700
                  and "[1:] = " in p.source and _writes(p), 930000)
    real = run.run_oracle

    def shifted(fn, args, fastmath, final=None):  # the oracle sees an extra store
        out = real(fn, args, fastmath, final)
        for f in final or []:
            if f is not None and f[0].size and f[0].dtype.kind == "f":
                f[0].reshape(-1)[0] += 1.0
        return out
    monkeypatch.setattr(run, "run_oracle", shifted)
    out = fuzz.run_program(prog, n_inputs=2, check_grad=False)
    assert out.status == "mismatch" and "after the call" in out.detail, out
