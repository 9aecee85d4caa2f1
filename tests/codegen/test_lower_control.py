"""Lowering of indexing, functional stores, loops, conds, creation ops; buffer ownership (copy vs
in place, no leaks); error codes; the disk-cache payload; one sample per primitive."""
from __future__ import annotations

import json
import os
from typing import Any, Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lattice.codegen.compiled import CompiledFunc, compile_func
from lattice.errors import CompileError
from lattice.ir import primitives as P
from lattice.ir.core import Builder, Eqn, Lit, SourceLoc, Var, bind, building, shape_rules
from lattice.ir.interpret import eval_func
from lattice.ir.primitives import Int, Slice
from lattice.ir.types import Dim, bool_, c128, f32, f64, i32, i64
from lattice.ir.verify import verify

from test_lower import T, as_layout, compiled, mkfunc, run

N = Dim.named("n")


def lit(v: int) -> Lit:
    return Lit.of(v, i64)


def loop(start: Any, stop: Any, step: Any, carry: list, consts: list,
         body: Callable[..., Any]) -> tuple[Var, ...]:
    sub = mkfunc([T(i64)] + [a.type for a in carry] + [a.type for a in consts], body, "body")
    return bind(P.loop_p, start, stop, step, *carry, *consts, body=sub, n_carry=len(carry))


def cond(pred: Any, ops: list, t: Callable[..., Any], f: Callable[..., Any]) -> tuple[Var, ...]:
    types = [a.type for a in ops]
    return bind(P.cond_p, pred, *ops, true_fn=mkfunc(types, t, "then"),
                false_fn=mkfunc(types, f, "else"))


def idx(x: Any, *atoms: Any, spec: tuple) -> Var:
    return bind(P.index_p, x, *atoms, spec=spec)[0]


def setv(x: Any, *rest: Any, spec: tuple) -> Var:
    return bind(P.set_p, x, *rest, spec=spec)[0]


def add(a: Any, b: Any) -> Var:
    return bind(P.add_p, a, b)[0]


def mul(a: Any, b: Any) -> Var:
    return bind(P.mul_p, a, b)[0]


def dim(x: Any, axis: int = 0) -> Var:
    return bind(P.dim_p, x, axis=axis)[0]


# --------------------------------------------------------------------------- indexing
def test_index_int_negative_and_bounds() -> None:
    f = mkfunc([T(f64, "n", "m"), T(i64), T(i32)],
               lambda x, i, j: idx(x, i, j, spec=(Int(), Int())))
    x = np.arange(12.0).reshape(3, 4)
    for i, j in [(0, 0), (2, 3), (-1, -1), (-3, -4), (1, -2)]:
        run(f, x, np.int64(i), np.int32(j))
    cf = compiled(f)
    for i, j in [(3, 0), (-4, 0), (0, 4), (0, -5)]:
        with pytest.raises(IndexError, match="index out of range"):
            cf(x, np.int64(i), np.int32(j))


def test_index_rows_are_views_and_work_with_strided_inputs() -> None:
    f = mkfunc([T(f64, "n", "m"), T(i64)],
               lambda x, i: bind(P.reduce_sum_p, idx(x, i, spec=(Int(), Slice())), axes=(0,))[0])
    x = np.arange(20.0).reshape(4, 5)
    for lay in ("F", "neg", "strided"):
        for i in (-4, 0, 3):
            run(f, as_layout(x, lay), np.int64(i), layouts=("A", "C"))


STATIC_SLICES = [Slice(1, None), Slice(None, -1), Slice(1, -1), Slice(None, None, -1),
                 Slice(None, None, 2), Slice(-3, None), Slice(0, 3), Slice(None, None, -2),
                 Slice(4, 0, -1), Slice(-1, None, -1)]


@pytest.mark.parametrize("s", STATIC_SLICES, ids=str)
def test_static_slices(s: Slice) -> None:
    # returns the slice when its size is symbolic, else (via a fresh size) its sum and length;
    # x = 2**arange(n) makes the sum identify the elements exactly
    def body(x: Var) -> tuple:
        v = idx(x, spec=(s,))
        outs = (bind(P.reduce_sum_p, v, axes=(0,))[0], dim(v))
        return outs if v.type.shape[0].is_fresh else outs + (mul(v, Lit.of(2.0, f64)),)
    f = mkfunc([T(f64, "n")], body, "sl")
    cf = compiled(f)
    for n in range(0, 8):
        x = 2.0 ** np.arange(n)
        try:
            want = eval_func(f, x)
        except IndexError:
            with pytest.raises(IndexError, match="does not fit"):
                cf(x)
            with pytest.raises(IndexError, match="does not fit"):  # regardless of boundscheck
                compiled(f, boundscheck=False)(x)
            continue
        got = cf(x)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        assert got[0] == x[s.start:s.stop:s.step].sum()


@settings(max_examples=60, deadline=None)
@given(n=st.integers(0, 9), a=st.integers(-12, 12), b=st.integers(-12, 12),
       step=st.sampled_from([1, 2, 3, -1, -2]))
def test_dynamic_slices_clip_like_numpy(n: int, a: int, b: int, step: int) -> None:
    s = Slice("dyn", "dyn", step)
    f = mkfunc([T(f64, "n"), T(i64), T(i64)],
               lambda x, lo, hi: (bind(P.reduce_sum_p, idx(x, lo, hi, spec=(s,)), axes=(0,))[0],
                                  bind(P.dim_p, idx(x, lo, hi, spec=(s,)), axis=0)[0]), "dyn")
    x = 2.0 ** np.arange(n)  # sums are exact and identify the elements
    total, size = run(f, x, np.int64(a), np.int64(b))
    assert total == x[a:b:step].sum() and size == len(x[a:b:step])


def test_fresh_dim_result_is_allocated_by_the_kernel() -> None:
    # x[k:] with a traced k has a size known only at run time: the kernel allocates the
    # result and hands its buffer over (no caller allocation, no copy on the Python side)
    f = mkfunc([T(f64, "n"), T(i64)], lambda x, k: idx(x, k, spec=(Slice("dyn", None),)))
    cf = compile_func(f, layouts=("C", "C"), fastmath=False, boundscheck=True, name="fresh")
    assert cf.abi.outs[0].alloc
    x = np.arange(6.0)
    for k in range(-8, 9):
        (got,) = cf(x, np.int64(k))
        (want,) = eval_func(f, x, np.int64(k))
        np.testing.assert_array_equal(got, want)
        assert got.flags.c_contiguous and got.flags.writeable
        if got.size:
            assert got.base is not None  # a view over the kernel's buffer, which it frees


def test_result_shape_is_checked_against_the_allocation() -> None:
    # the IR claims the array has size n; at run time it has size k
    f = mkfunc([T(f64, "n"), T(i64)],
               lambda x, k: bind(P.full_p, Lit.of(1.0, f64), k, dims=(N,), dtype=f64)[0])
    cf = compiled(f)
    np.testing.assert_array_equal(cf(np.arange(3.0), np.int64(3))[0], np.ones(3))
    with pytest.raises(ValueError, match="result 0 has a different shape"):
        cf(np.arange(3.0), np.int64(1))


def test_a_traced_slice_claimed_to_have_a_size_is_checked() -> None:
    # the IR claims x[k:] has size n (the frontend does so for bounds that are sums of sizes);
    # a k that makes NumPy's clipped length differ is an IndexError at the slice
    f = mkfunc([T(f64, "n"), T(i64)],
               lambda x, k: bind(P.index_p, x, k, spec=(Slice("dyn", None),), out_dims=(N,))[0])
    cf = compiled(f)
    np.testing.assert_array_equal(cf(np.arange(3.0), np.int64(0))[0], np.arange(3.0))
    with pytest.raises(IndexError, match="assumes 0 <= start <= stop"):
        cf(np.arange(3.0), np.int64(1))


def test_error_messages_name_the_source_location() -> None:
    x, i = Var(T(f64, "n")), Var(T(i64))
    b = Builder(loc=SourceLoc("model.py", 14, "x[i]"))
    with building(b):
        (y,) = bind(P.index_p, x, i, spec=(Int(),))
    f = verify(b.build([x, i], [y], "located"))
    cf = compiled(f)
    with pytest.raises(IndexError, match=r"in x\[i\] at model\.py:14"):
        cf(np.zeros(3), np.int64(5))
    # boundscheck=False: no check is emitted at all
    assert "IndexError" not in {c for c, _ in compiled(f, boundscheck=False).abi.errors}


# --------------------------------------------------------------------------- set
def test_set_scalar_copies_a_borrowed_argument() -> None:
    f = mkfunc([T(f64, "n"), T(i64), T(f64)], lambda x, i, v: setv(x, i, v, spec=(Int(),)))
    x = np.zeros(4)
    (y,) = run(f, x, np.int64(-1), np.float64(7.0))
    assert x.sum() == 0 and y[3] == 7.0


def test_set_keeps_old_value_when_used_afterwards() -> None:
    def body(x: Var) -> tuple:
        z = add(x, Lit.of(1.0, f64))                # owned
        view = idx(z, spec=(Slice(1, None),))       # a view of z, used after the store
        w = setv(z, lit(1), Lit.of(100.0, f64), spec=(Int(),))
        return z, view, w
    f = mkfunc([T(f64, "n")], body, "keep")
    z, view, w = run(f, np.zeros(4))
    assert z.tolist() == [1, 1, 1, 1] and view.tolist() == [1, 1, 1] and w[1] == 100


def test_set_in_place_when_dead() -> None:
    def body(x: Var) -> Var:
        z = add(x, Lit.of(1.0, f64))
        w = setv(z, lit(0), Lit.of(5.0, f64), spec=(Int(),))
        return setv(w, lit(-1), Lit.of(6.0, f64), spec=(Int(),))
    f = mkfunc([T(f64, "n")], body, "inplace")
    run(f, np.zeros(3))
    ir_text = compiled(f).unoptimized_ir
    # one malloc for z, none for the two in-place stores
    assert ir_text.count("call ptr @\"malloc\"") == 1, ir_text


def test_set_value_reading_the_same_buffer_is_copied() -> None:
    # z[1:] = z[:-1] with overlapping regions: NumPy semantics (reads the old values)
    def body(x: Var) -> Var:
        z = add(x, Lit.of(0.0, f64))
        return setv(z, idx(z, spec=(Slice(None, -1),)), spec=(Slice(1, None),))
    f = mkfunc([T(f64, "n")], body, "overlap")
    (y,) = run(f, np.arange(5.0))
    assert y.tolist() == [0, 0, 1, 2, 3]


def test_set_regions_with_broadcast_values() -> None:
    f = mkfunc([T(f32, "n", "m"), T(f32, "m"), T(i64)],
               lambda x, v, i: (setv(x, v, spec=(Slice(1, None), Slice())),
                                setv(x, i, v, spec=(Int(), Slice())),
                                setv(x, Lit.of(2.0, f32), spec=(Slice(), Slice(None, None, -2)))))
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    run(f, x, np.array([9, 8, 7, 6], np.float32), np.int64(-2))
    run(f, as_layout(x, "F"), np.array([9, 8, 7, 6], np.float32), np.int64(0),
        layouts=("A", "A", "C"))


def test_set_with_runtime_sized_value() -> None:
    # x[a:b] = y[c:d]: both sizes are fresh; they must agree at run time (or the value be 1).
    # set's shape rule currently rejects two different fresh dims (broadcast_shapes raises
    # before its fresh-dim exemption), so the equation is built directly, without bind.
    s = Slice("dyn", "dyn")
    x, y, a, b, c, d = (Var(t) for t in (T(f64, "n"), T(f64, "m"), *[T(i64)] * 4))
    with building() as bld:
        v = idx(y, c, d, spec=(s,))
    out = Var(x.type)
    bld.eqns.append(Eqn(P.set_p, (x, a, b, v), {"spec": (s,)}, (out,)))
    f = bld.build([x, y, a, b, c, d], [out], "rt")
    xs, ys = np.zeros(6), np.arange(1.0, 5.0)
    run(f, xs, ys, *map(np.int64, (1, 4, 0, 3)))
    run(f, xs, ys, *map(np.int64, (1, 4, 2, 3)))  # a size-1 value broadcasts
    with pytest.raises(ValueError):
        eval_func(f, xs, ys, *map(np.int64, (1, 4, 0, 2)))
    with pytest.raises(ValueError, match="does not match"):
        compiled(f)(xs, ys, *map(np.int64, (1, 4, 0, 2)))


# --------------------------------------------------------------------------- loops
def test_loop_scalar_carry_range_semantics() -> None:
    f = mkfunc([T(i64), T(i64), T(i64)],
               lambda a, b, s: loop(a, b, s, [lit(0)], [],
                                    lambda i, acc: add(mul(acc, lit(3)), i)), "rng")
    for a, b, s in [(0, 10, 1), (0, 10, 3), (10, 0, -1), (10, 0, -3), (5, 5, 1), (7, 2, 1),
                    (2, 7, -1), (-4, 4, 2), (0, 1, 100), (3, -8, -4)]:
        run(f, np.int64(a), np.int64(b), np.int64(s))
    with pytest.raises(ValueError, match="must not be zero"):
        compiled(f)(np.int64(0), np.int64(3), np.int64(0))


def test_loop_tensor_carry_does_not_modify_the_argument() -> None:
    # acc = x; for i in range(n): acc = acc * 0.5 + x * i  -- returns (acc, x + acc)
    def body(x: Var) -> tuple:
        (acc,) = loop(lit(0), dim(x), lit(1), [x], [x],
                      lambda i, a, xc: add(mul(a, Lit.of(0.5, f64)),
                                           mul(xc, bind(P.convert_p, i, dtype=f64)[0])))
        return acc, add(x, acc)
    f = mkfunc([T(f64, "n")], body, "tcarry")
    x = np.arange(1.0, 6.0)
    keep = x.copy()
    run(f, x)
    np.testing.assert_array_equal(x, keep)
    run(f, np.zeros(0))
    run(f, as_layout(np.arange(7.0), "neg"), layouts=("A",))


def test_loop_prefix_sum_with_set_in_place() -> None:
    def body(x: Var) -> Var:
        n = dim(x)
        y0 = bind(P.full_p, Lit.of(0.0, f64), n, dims=(N,), dtype=f64)[0]

        def step(i: Var, y: Var, xc: Var) -> Var:
            prev = idx(y, bind(P.sub_p, i, lit(1))[0], spec=(Int(),))
            return setv(y, i, add(prev, idx(xc, i, spec=(Int(),))), spec=(Int(),))
        (y,) = loop(lit(0), n, lit(1), [y0], [x], step)
        return y
    f = mkfunc([T(f64, "n")], body, "cumsum")
    x = np.arange(1.0, 9.0)
    (y,) = run(f, x)
    # y[-1] at i=0 reads the last element (still 0): a plain cumsum
    np.testing.assert_array_equal(y, np.cumsum(x))
    text = compiled(f).unoptimized_ir
    assert text.count("call ptr @\"malloc\"") == 1  # the full; the loop moves it, stores in place


def test_loop_store_then_read_old_value_in_body() -> None:
    # y2 = set(y, i, 1); s = s + sum(y)  (y used after the store: must copy)
    def body(x: Var) -> tuple:
        def step(i: Var, y: Var, s: Var) -> tuple:
            y2 = setv(y, i, Lit.of(1.0, f64), spec=(Int(),))
            return y2, add(s, bind(P.reduce_sum_p, y, axes=(0,))[0])
        return loop(lit(0), dim(x), lit(1), [add(x, Lit.of(0.0, f64)), Lit.of(0.0, f64)], [],
                    step)
    f = mkfunc([T(f64, "n")], body, "oldval")
    y, s = run(f, np.zeros(5))
    assert y.tolist() == [1] * 5 and s == 0 + 1 + 2 + 3 + 4


def test_loop_returning_swapped_and_repeated_tensors() -> None:
    def body(x: Var, y: Var) -> tuple:
        return loop(lit(0), lit(3), lit(1), [x, y], [],
                    lambda i, a, b: (b, add(a, b)))
    f = mkfunc([T(i32, "n"), T(i32, "n")], body, "swap")
    run(f, np.array([1, 2], np.int32), np.array([10, 20], np.int32))

    def body2(x: Var) -> tuple:
        z = add(x, lit(0))
        return loop(lit(0), lit(2), lit(1), [z, z], [], lambda i, a, b: (a, a))
    g = mkfunc([T(i64, "n")], body2, "rep")
    run(g, np.array([1, 2, 3]))


def test_nested_loops_and_cond_in_loop() -> None:
    # count pairs (i, j) with x[i] < x[j]; j-loop nested; a cond picks the increment
    def body(x: Var) -> Var:
        n = dim(x)

        def outer(i: Var, c: Var, xc: Var) -> Var:
            xi = idx(xc, i, spec=(Int(),))

            def inner(j: Var, c2: Var, xc2: Var, xi2: Var) -> Var:
                lt = bind(P.lt_p, xi2, idx(xc2, j, spec=(Int(),)))[0]
                (inc,) = cond(lt, [c2], lambda v: add(v, lit(1)), lambda v: v)
                return inc
            (c3,) = loop(lit(0), dim(xc), lit(1), [c], [xc, xi], inner)
            return c3
        (cnt,) = loop(lit(0), n, lit(1), [lit(0)], [x], outer)
        return cnt
    f = mkfunc([T(f32, "n")], body, "pairs")
    x = np.random.default_rng(0).standard_normal(30).astype(np.float32)
    (got,) = run(f, x)
    assert got == (x[:, None] < x[None, :]).sum()


# --------------------------------------------------------------------------- cond
def test_cond_with_tensor_branches() -> None:
    def body(p: Var, x: Var) -> tuple:
        return cond(p, [x], lambda v: (v, bind(P.reduce_max_p, v, axes=(0,))[0]),
                    lambda v: (bind(P.neg_p, v)[0], Lit.of(-1.0, f64)))
    f = mkfunc([T(bool_), T(f64, "n")], body, "branch")
    x = np.arange(4.0)
    for p in (True, False):
        a, m = run(f, np.bool_(p), x)
    a[0] = 99  # a fresh array, not the argument
    assert x[0] == 0


def test_cond_stores_into_moved_and_kept_operands() -> None:
    """A branch may store in place into an operand that dies at the cond; an operand still
    used after the cond (or a borrowed argument) keeps its contents."""
    def body(p: Var, x: Var) -> tuple:
        n = dim(x)
        dead = bind(P.full_p, Lit.of(0.0, f64), n, dims=(N,), dtype=f64)[0]   # moved
        kept = bind(P.full_p, Lit.of(2.0, f64), n, dims=(N,), dtype=f64)[0]   # used after
        zero = (Int(),)
        a, b, c = cond(p, [dead, kept, x],
                       lambda d, k, v: (setv(d, lit(0), Lit.of(1.0, f64), spec=zero),
                                        setv(k, lit(0), Lit.of(3.0, f64), spec=zero),
                                        setv(v, lit(0), Lit.of(4.0, f64), spec=zero)),
                       lambda d, k, v: (d, k, v))
        return a, b, c, kept, add(kept, x)
    f = mkfunc([T(bool_), T(f64, "n")], body, "moves")
    x = np.arange(1.0, 5.0)
    for p in (True, False):
        a, b, c, kept, s = run(f, np.bool_(p), x)
        assert a[0] == (1.0 if p else 0.0) and b[0] == (3.0 if p else 2.0)
        assert c[0] == (4.0 if p else 1.0)
        assert np.all(kept == 2.0) and np.array_equal(s, x + 2.0)
    assert x[0] == 1.0  # the argument itself is never written


def test_conditional_store_in_a_loop_is_in_place() -> None:
    """for i: if x[i] < 0: out[i] = 0 -- the carried array moves into the branch each time."""
    def body(x: Var) -> Var:
        n = dim(x)
        out = bind(P.full_p, Lit.of(1.0, f64), n, dims=(N,), dtype=f64)[0]

        def step(i: Var, o: Var, xc: Var) -> Var:
            neg = bind(P.lt_p, idx(xc, i, spec=(Int(),)), Lit.of(0.0, f64))[0]
            (o2,) = cond(neg, [o, i], lambda oo, ii: setv(oo, ii, Lit.of(0.0, f64), spec=(Int(),)),
                         lambda oo, ii: oo)
            return o2
        (res,) = loop(lit(0), n, lit(1), [out], [x], step)
        return res
    f = mkfunc([T(f64, "n")], body, "clip")
    x = np.random.default_rng(1).standard_normal(50)
    (got,) = run(f, x)
    np.testing.assert_array_equal(got, np.where(x < 0, 0.0, 1.0))
    # a copy is a loop nest whose blocks are labelled cp<k>.head...: none, neither inside the
    # branches nor at the end (the carried buffer is handed over as the result)
    labels = [l[:-1] for l in compiled(f).unoptimized_ir.splitlines()
              if l and not l[0].isspace() and l.endswith(":")]
    copies = [b for b in labels if b.startswith("cp") and ".head" in b]
    assert copies == [], copies


# --------------------------------------------------------------------------- creation
def test_creation_ops() -> None:
    def body(x: Var, k: Var) -> tuple:
        n = dim(x)
        full = bind(P.full_p, Lit.of(1.5, f32), n, lit(2), dims=(N, Dim.of(2)), dtype=f32)[0]
        io = bind(P.iota_p, n, dim=N, dtype=f64)[0]
        em = bind(P.empty_p, n, dims=(N,), dtype=i32)[0]
        em = setv(em, Lit.of(7, i32), spec=(Slice(),))
        fresh = bind(P.full_p, Lit.of(True, bool_), k, dims=(Dim.fresh(),), dtype=bool_)[0]
        count = bind(P.reduce_sum_p, fresh, axes=(0,))[0]
        return full, io, em, count, bind(P.transpose_p, full, perm=(1, 0))[0]
    f = mkfunc([T(f64, "n"), T(i64)], body, "create")
    run(f, np.zeros(5), np.int64(3))
    run(f, np.zeros(0), np.int64(0))
    with pytest.raises(ValueError, match="negative dimensions"):
        compiled(f)(np.zeros(2), np.int64(-1))


def test_transpose_views() -> None:
    f = mkfunc([T(f64, "n", "m")],
               lambda x: (bind(P.transpose_p, x, perm=(1, 0))[0],
                          bind(P.reduce_sum_p, bind(P.transpose_p, x, perm=(1, 0))[0],
                               axes=(1,))[0]), "tr")
    x = np.arange(6.0).reshape(2, 3)
    run(f, x)
    run(f, as_layout(x, "F"), layouts=("A",))


# --------------------------------------------------------------------------- one per primitive
def _samples() -> dict:
    rng = np.random.default_rng(5)
    xf = rng.standard_normal((3, 4))
    fused_body = mkfunc([T(f64), T(f64)], lambda a, b: mul(a, b), "body")
    s: dict = {}
    for p in P.ELEMENTWISE:
        if p in (P.real_p, P.imag_p):
            continue  # complex operands: below
        if p is P.select_p:
            s[p] = (mkfunc([T(bool_, "n"), T(f64, "n"), T(f64, "n")],
                           lambda c, a, b: bind(P.select_p, c, a, b)[0]),
                    (xf[0] > 0, xf[0], xf[1]))
        elif p is P.convert_p:
            s[p] = (mkfunc([T(f64, "n")], lambda a: bind(P.convert_p, a, dtype=i32)[0]),
                    (xf[0] * 100,))
        else:
            nin = 1 if p in P.UNARY.values() else 2
            if p in P.BITWISE.values():  # integer-only
                nin = 1 if p in (P.invert_p, P.popcount_p) else 2
                s[p] = (mkfunc([T(i64, "n")] * nin, lambda *a, p=p: bind(p, *a)[0]),
                        tuple((xf[k] * 100).astype(np.int64) for k in range(nin)))
                continue
            dt = bool_ if p in (P.not_p, P.and_p, P.or_p) else f64
            args = tuple((xf[k] > 0) if dt is bool_ else xf[k] for k in range(nin))
            s[p] = (mkfunc([T(dt, "n")] * nin, lambda *a, p=p: bind(p, *a)[0]), args)
    # the complex parts (lattice/ir/primitives.py): real/imag of complex values, which
    # complex add/sub/neg and convert from and to complex make along the way
    xc = xf[0] + 1j * xf[1]
    for p in (P.real_p, P.imag_p):
        s[p] = (mkfunc([T(c128, "n"), T(f64, "n")], lambda z, r, p=p: bind(p, bind(
            P.sub_p, bind(P.neg_p, z)[0], bind(P.add_p, z, bind(
                P.convert_p, r, dtype=c128)[0])[0])[0])[0]), (xc, xf[2]))
    for name, p in P.REDUCTIONS.items():
        kw = {"axis": 1} if name.startswith("arg") else {"axes": (1,)}
        s[p] = (mkfunc([T(f64, "n", "m")], lambda a, p=p, kw=kw: bind(p, a, **kw)[0]), (xf,))
    s[P.matmul_p] = (mkfunc([T(f64, "n", "m"), T(f64, "m")],
                            lambda a, b: bind(P.matmul_p, a, b)[0]), (xf, xf[0]))
    s[P.transpose_p] = (mkfunc([T(f64, "n", "m")],
                               lambda a: bind(P.transpose_p, a, perm=(1, 0))[0]), (xf,))
    s[P.concat_p] = (mkfunc([T(f64, "n", "m"), T(f64, "k", "m")],
                            lambda a, b: bind(P.concat_p, a, b, a, axis=0)[0]), (xf, xf[:2]))
    s[P.full_p] = (mkfunc([T(f64, "n")], lambda a: bind(P.full_p, Lit.of(2.0, f64), dim(a),
                                                         dims=(N,), dtype=f64)[0]), (xf[0],))
    s[P.empty_p] = (mkfunc([T(f64, "n")], lambda a: bind(
        P.reduce_sum_p, bind(P.mul_p, bind(P.empty_p, dim(a), dims=(N,), dtype=f64)[0],
                             Lit.of(0.0, f64))[0], axes=(0,))[0]), (np.zeros(0),))
    s[P.iota_p] = (mkfunc([T(f64, "n")], lambda a: bind(P.iota_p, dim(a), dim=N, dtype=i32)[0]),
                   (xf[0],))
    s[P.dim_p] = (mkfunc([T(f64, "n", "m")], lambda a: dim(a, 1)), (xf,))
    s[P.index_p] = (mkfunc([T(f64, "n", "m"), T(i64)],
                           lambda a, i: idx(a, i, spec=(Int(), Slice(1, None)))),
                    (xf, np.int64(-1)))
    s[P.set_p] = (mkfunc([T(f64, "n", "m"), T(i64)],
                         lambda a, i: setv(a, i, Lit.of(0.0, f64), spec=(Slice(), Int()))),
                  (xf, np.int64(2)))
    s[P.loop_p] = (mkfunc([T(f64, "n")], lambda a: loop(lit(0), lit(3), lit(1), [a], [],
                                                         lambda i, v: mul(v, v))[0]), (xf[0],))
    halve = mkfunc([T(f64, "n"), T(f64)], lambda v, lim: mul(v, Lit.of(0.5, f64)), "body")
    big = mkfunc([T(f64, "n"), T(f64)], lambda v, lim: bind(
        P.gt_p, bind(P.reduce_sum_p, v, axes=(0,))[0], lim)[0], "cond")
    s[P.while_p] = (mkfunc([T(f64, "n")], lambda a: bind(
        P.while_p, bind(P.abs_p, a)[0], Lit.of(0.1, f64), cond_fn=big, body_fn=halve,
        n_carry=1)[0]), (xf[0],))
    s[P.cond_p] = (mkfunc([T(bool_), T(f64, "n")],
                          lambda c, a: cond(c, [a], lambda v: v, lambda v: add(v, v))[0]),
                   (np.bool_(False), xf[0]))
    s[P.fused_p] = (mkfunc([T(f64, "n", "m"), T(f64, "m")],
                           lambda a, b: bind(P.fused_p, a, b, body=fused_body, space=(N, Dim.named("m")),
                                             reduce="sum", axes=(0,))[0]), (xf, xf[1]))
    # sorting (lattice/codegen/lower_sort.py); results sized at run time are reduced
    s[P.sort_p] = (mkfunc([T(f64, "n", "m")], lambda a: bind(P.sort_p, a, axis=1)[0]), (xf,))
    s[P.argsort_p] = (mkfunc([T(f64, "n", "m")], lambda a: bind(P.argsort_p, a, axis=0)[0]),
                      (xf,))
    s[P.searchsorted_p] = (mkfunc([T(f64, "n"), T(f64, "m")], lambda a, v: bind(
        P.searchsorted_p, a, v, side="right")[0]), (np.sort(xf[0]), xf[1]))
    s[P.bincount_p] = (mkfunc([T(i64, "n"), T(f64, "n")], lambda x, w: bind(
        P.reduce_max_p, bind(P.bincount_p, x, w, minlength=7)[0], axes=(0,))[0]),
        (np.array([0, 2, 2, 5]), xf[0]))
    s[P.unique_p] = (mkfunc([T(f64, "n")], lambda a: bind(
        P.reduce_sum_p, bind(P.unique_p, a)[0], axes=(0,))[0]), (np.array([1.0, 2.0, 2.0, 3.5]),))
    s[P.histogram_p] = (mkfunc([T(f64, "n")], lambda a: bind(P.histogram_p, a, bins=3)),
                        (xf[0],))
    s[P.nonzero_p] = (mkfunc([T(f64, "n", "m")], lambda a: [bind(
        P.reduce_sum_p, r, axes=(0,))[0] for r in bind(P.nonzero_p, bind(
            P.gt_p, a, Lit.of(0.0, f64))[0], dim=Dim.fresh("nz"))]), (xf,))
    # scans (lattice/codegen/lower_reduce.py), forward and reversed, along each axis
    s[P.cumsum_p] = (mkfunc([T(f64, "n", "m")], lambda a: bind(
        P.cumsum_p, a, axis=1, reverse=True)[0]), (xf,))
    s[P.cumprod_p] = (mkfunc([T(f64, "n", "m")], lambda a: bind(
        P.cumprod_p, a, axis=0, reverse=False)[0]), (xf,))
    s[P.linrec_p] = (mkfunc([T(f64, "n", "m"), T(f64, "n", "m")], lambda a, b: bind(
        P.linrec_p, a, b, axis=0, reverse=True)[0]), (xf, xf + 1.0))
    # primitives added for automatic differentiation (lattice/ir/ad/)
    s[P.add_at_p] = (mkfunc([T(f64, "n", "m"), T(i64)],
                            lambda a, i: bind(P.add_at_p, a, i, idx(a, i, spec=(Int(), Slice())),
                                              spec=(Int(), Slice()))[0]), (xf, np.int64(1)))
    s[P.broadcast_in_dim_p] = (mkfunc([T(f64, "n")], lambda a: bind(
        P.broadcast_in_dim_p, a, lit(2), dim(a), dims=(Dim.of(2), N), axes=(1,))[0]), (xf[0],))
    # a stack of matrix products (one tiled product per batch index)
    xb = rng.standard_normal((2, 3, 4))
    s["matmul (batched)"] = (mkfunc(
        [T(f64, "b", "n", "m"), T(f64, "b", "m", "k")],
        lambda a, c: bind(P.matmul_p, a, c)[0]), (xb, xb.transpose(0, 2, 1).copy()))
    # a reshape of a strided (transposed) view: copied to C order, then viewed as (n, m)
    s[P.reshape_p] = (mkfunc([T(f64, "n", "m")], lambda a: bind(
        P.reshape_p, bind(P.transpose_p, a, perm=(1, 0))[0], dim(a, 0), dim(a, 1),
        dims=(Dim.of("n"), Dim.of("m")))[0]), (xf,))
    sq = mkfunc([T(f64, "n")], lambda a: mul(a, a), "fun")
    sq_fwd = mkfunc([T(f64, "n")], lambda a: (mul(a, a), a), "fwd")
    sq_bwd = mkfunc([T(f64, "n"), T(f64, "n")], lambda a, g: mul(g, add(a, a)), "bwd")
    s[P.custom_vjp_call_p] = (mkfunc([T(f64, "n")], lambda a: bind(
        P.custom_vjp_call_p, a, fun=sq, fwd=sq_fwd, bwd=sq_bwd, n_res=1)[0]), (xf[0],))
    # made by the rowpass pass (lattice/ir/passes/rowpass.py): g = x.T @ body(x @ w, y), and z
    row_body = mkfunc([T(f64), T(f64)], lambda z, y: mul(z, y), "body")
    s[P.rowpass_p] = (mkfunc([T(f64, "n", "m"), T(f64, "m"), T(f64, "n")],
                             lambda x, w, y: bind(P.rowpass_p, x, w, y, body=row_body,
                                                  keep_z=True)),
                      (xf, xf[0], xf[:, 1].copy()))
    # made by the rowreduce pass (lattice/ir/passes/rowreduce.py): argmax(body(x @ w, y))
    s[P.rowreduce_p] = (mkfunc([T(f64, "n", "m"), T(f64, "m"), T(f64, "n")],
                               lambda x, w, y: bind(P.rowreduce_p, x, w, y, body=row_body,
                                                    reduce="argmax")),
                        (xf, xf[0], xf[:, 1].copy()))
    return s


# exist only between linearization and transposition inside lattice/ir/ad/; no evaluation
NOT_EVALUABLE = {P.custom_lin_p}


def test_every_primitive_compiles_and_matches_the_interpreter() -> None:
    samples = _samples()
    missing = [p.name for p in shape_rules if p not in samples and p not in NOT_EVALUABLE]
    assert not missing, f"add a sample for: {missing}"
    for p, (f, args) in samples.items():
        if p is P.empty_p:
            assert compiled(f)(*args)[0] == 0.0
            continue
        run(f, *args)


# --------------------------------------------------------------------------- memory
def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_leaks_on_the_success_path() -> None:
    # every iteration allocates ~1.6 MB of temporaries (elementwise results, set copies,
    # cond branches); 40 iterations per call, 30 calls: a leak would grow RSS by ~2 GB
    def body(x: Var) -> tuple:
        def step(i: Var, acc: Var, s: Var, xc: Var) -> tuple:
            t = add(mul(xc, Lit.of(0.5, f64)), acc)
            t2 = setv(xc, lit(0), Lit.of(1.0, f64), spec=(Int(),))  # copies (xc borrowed)
            big = bind(P.gt_p, i, lit(20))[0]
            (c,) = cond(big, [t, t2], lambda a, b: add(a, b), lambda a, b: a)
            return c, add(s, bind(P.reduce_sum_p, t2, axes=(0,))[0])
        return loop(lit(0), lit(40), lit(1), [add(x, x), Lit.of(0.0, f64)], [x], step)
    f = mkfunc([T(f64, "n")], body, "leak")
    cf = compiled(f)
    x = np.ones(100_000)
    run(f, np.ones(10))
    cf(x)
    before = _rss()
    for _ in range(30):
        cf(x)
    grown = _rss() - before
    assert grown < 50e6, f"RSS grew by {grown / 1e6:.0f} MB"


# --------------------------------------------------------------------------- payload
def test_payload_roundtrip_without_lowering() -> None:
    f = mkfunc([T(f32, "n", "m"), T(i64)],
               lambda x, i: (idx(x, i, spec=(Int(), Slice())),
                             bind(P.reduce_sum_p, x, axes=(0, 1))[0]), "payload")
    cf = compiled(f, ("A", "C"))
    pay = cf.to_payload()
    meta = json.loads(json.dumps(pay["meta"]))  # what the disk cache stores
    cf2 = CompiledFunc.from_payload({**pay, "meta": meta})
    x = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::-1]
    for a, b in zip(cf(x, np.int64(1)), cf2(x, np.int64(1))):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(IndexError):
        cf2(x, np.int64(3))
    assert cf2.unoptimized_ir == cf.unoptimized_ir and "lt_payload" in cf2.llvm_ir
    assert "lt_payload" in cf2.asm


def test_scalar_params_and_results_of_every_dtype() -> None:
    for d in (f32, f64, i32, i64, bool_):
        f = mkfunc([T(d), T(d, "n")], lambda s, x: (s, bind(P.reduce_max_p if not d.is_bool
                                                              else P.reduce_sum_p, x,
                                                              axes=(0,))[0]), f"sc_{d}")
        v = {f32: np.float32(1.25), f64: np.float64(-2.5e300), i32: np.int32(-7),
             i64: np.int64(-2**62), bool_: np.bool_(True)}[d]
        got = run(f, v, np.array([v, v], dtype=d.np))
        assert got[0] == v and type(got[0]) is type(v)


def test_wrong_argument_shapes_are_caught_by_the_kernel() -> None:
    f = mkfunc([T(f64, "n", 3), T(f64, "n")], lambda a, b: bind(P.matmul_p, b, a)[0], "chk")
    cf = compiled(f)
    run(f, np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="wrong size"):
        cf(np.ones((2, 4)), np.ones(2))
    with pytest.raises(ValueError, match="wrong size"):
        cf(np.ones((2, 3)), np.ones(5))


def test_read_only_and_empty_arguments() -> None:
    f = mkfunc([T(f64, "n"), T(f64, "n")], lambda a, b: add(a, b), "ro")
    x = np.arange(3.0)
    x.flags.writeable = False
    run(f, x, x)
    run(f, np.zeros(0), np.zeros(0))
