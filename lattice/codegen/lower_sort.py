"""Lowerings of sorting and order statistics: ``sort``, ``argsort``, ``searchsorted``,
``bincount``, ``unique`` and ``histogram``.

Sorting is one LLVM function per element type (and per "keys only" / "keys with i64
payload"), emitted once per module, over a contiguous buffer and a scratch buffer of the same
size.  Float NaNs are first moved to the end (a stable split); the numbers are then sorted by
a plain ``<``.  Lanes of at least :data:`RADIX_MIN` elements (not bool) are radix sorted: one
pass counting every digit of an order-preserving integer key (``-0.0`` keyed as ``0.0``), then
a scatter pass per digit, skipped when every key shares it.  Shorter lanes are merge sorted:
blocks of :data:`BLOCK` elements (insertion sort of runs of :data:`RUN`, then branch-free
bottom-up merges: a compare and a conditional move per element; runs already in order are
copied), then the merges between blocks.  Both are stable, so the result does not depend on
the lane length: ascending, NaN after every number, ``-0.0`` equal to ``0.0`` (equal values in
input order), as NumPy's stable sort.  Each lane along the sorted axis is sorted in place when
it is contiguous (the last axis of the fresh result), else gathered into a lane buffer, sorted
and scattered back.

``bincount`` and ``unique`` make results whose size is computed when they run (a fresh dim):
``bincount`` allocates after a pass finding the largest value, ``unique`` compacts its sorted
copy in place and keeps the buffer (of the input's size) under the smaller shape.
"""
from __future__ import annotations

from typing import Callable, Optional

import llvmlite.ir as ir

from ..ir import primitives as P
from ..ir.core import Eqn
from ..ir.types import DType, f64, i64
from .lltypes import F32, F64, I1, I64, PTR, c64
from .lower_core import (Lowerer, TensorVal, Value, combine, const_of, convert_scalar,
                         lowering, mem_type, reduce_init)

__all__ = ["RUN", "BLOCK", "RADIX_MIN", "RADIX_BITS", "sort_fn", "less"]

#: length of the runs the insertion sort orders before merging (short enough that its
#: quadratic cost stays below the merge passes it saves)
RUN = 16
#: elements sorted as one block before the merges between blocks (its data and scratch
#: stay in a core's L2 cache)
BLOCK = 16384
#: lanes at least this long are radix sorted (in digits of RADIX_BITS bits), shorter ones
#: merge sorted: both are stable, so the result is the same
RADIX_MIN = 384
RADIX_BITS = 11

Loop = Callable[[list[ir.Value]], list[ir.Value]]


def _while(b: ir.IRBuilder, init: list[ir.Value], cond: Callable[[list[ir.Value]], ir.Value],
           body: Loop, name: str) -> list[ir.Value]:
    """``while cond(vals): vals = body(vals)`` with loop-carried SSA values; the final values."""
    fn = b.function
    pre = b.block
    head = fn.append_basic_block(f"{name}.head")
    body_bb = fn.append_basic_block(f"{name}.body")
    exit_bb = fn.append_basic_block(f"{name}.exit")
    b.branch(head)
    b.position_at_end(head)
    phis = []
    for v in init:
        ph = b.phi(v.type)
        ph.add_incoming(v, pre)
        phis.append(ph)
    b.cbranch(cond(list(phis)), body_bb, exit_bb)
    b.position_at_end(body_bb)
    new = body(list(phis))
    latch = b.block
    for ph, v in zip(phis, new):
        ph.add_incoming(v, latch)
    b.branch(head)
    b.position_at_end(exit_bb)
    return list(phis)


def _smin(b: ir.IRBuilder, x: ir.Value, y: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", x, y), x, y)


def less(b: ir.IRBuilder, d: DType, x: ir.Value, y: ir.Value) -> ir.Value:
    """``x < y`` in NumPy's sort order (NaN after every number; bool as an unsigned byte or
    ``i1``): the comparison every lowering of this room orders by."""
    if d.is_float:
        x_num = b.fcmp_ordered("ord", x, x)
        y_nan = b.fcmp_unordered("uno", y, y)
        return b.or_(b.fcmp_ordered("<", x, y), b.and_(x_num, y_nan))
    if d.is_bool:
        return b.icmp_unsigned("<", x, y)
    return b.icmp_signed("<", x, y)


def _same(b: ir.IRBuilder, d: DType, x: ir.Value, y: ir.Value) -> ir.Value:
    """``x`` and ``y`` are one value for ``unique``: equal, or both NaN."""
    if d.is_float:
        both_nan = b.and_(b.fcmp_unordered("uno", x, x), b.fcmp_unordered("uno", y, y))
        return b.or_(b.fcmp_ordered("==", x, y), both_nan)
    return b.icmp_signed("==", x, y)


def _memcpy(lw: Lowerer, b: ir.IRBuilder, dst: ir.Value, src: ir.Value,
            nbytes: ir.Value) -> None:
    f = lw.declare("llvm.memcpy.p0.p0.i64", ir.VoidType(), [PTR, PTR, I64, I1])
    b.call(f, [dst, src, nbytes, ir.Constant(I1, 0)])


def sort_fn(lw: Lowerer, d: DType, with_index: bool) -> ir.Function:
    """The module's stable sort of ``n`` elements of dtype ``d`` (memory representation) at
    ``keys``, with ``scratch`` of ``n`` elements: ``void(keys, scratch, n)``, or with an i64
    payload moved along, ``void(keys, scratch, n, idx, idx_scratch)``.  Defined on first use."""
    name = f"lattice.sort.{d.name}" + (".idx" if with_index else "")
    got = lw.module.globals.get(name)
    if got is not None:
        return got
    args = [PTR, PTR, I64] + ([PTR, PTR] if with_index else [])
    fn = ir.Function(lw.module, ir.FunctionType(ir.VoidType(), args), name)
    fn.linkage = "internal"
    for a in fn.args:
        if a.type == PTR:
            a.add_attribute("noalias")
    keys, scratch, n = fn.args[:3]
    idx, idx_scratch = (fn.args[3], fn.args[4]) if with_index else (None, None)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    et = mem_type(d)
    size = d.itemsize

    def at(p: ir.Value, i: ir.Value, t: ir.Type = et) -> ir.Value:
        return b.gep(p, [i], inbounds=True, source_etype=t)

    def ld(p: ir.Value, i: ir.Value, t: ir.Type = et) -> ir.Value:
        return b.load(at(p, i, t), typ=t)

    one = c64(1)
    if d.is_float:
        # 0. NaNs to the end, stably (numbers compacted in place, NaNs through the scratch
        # buffer); the rest sorts the numbers with a plain `<`, a shorter dependence chain
        # through every merge step than NaN-aware order
        def split(st: list[ir.Value]) -> list[ir.Value]:
            i, m, q = st
            v = ld(keys, i)
            nan = b.fcmp_unordered("uno", v, v)
            b.store(v, at(keys, m))
            b.store(v, at(scratch, q))
            if idx is not None:
                p = ld(idx, i, I64)
                b.store(p, at(idx, m, I64))
                b.store(p, at(idx_scratch, q, I64))
            r = b.zext(nan, I64)
            return [b.add(i, one), b.add(m, b.sub(one, r)), b.add(q, r)]
        _, m, q = _while(b, [c64(0), c64(0), c64(0)], lambda st: b.icmp_signed("<", st[0], n),
                         split, "nan")
        _memcpy(lw, b, at(keys, m), scratch, b.mul(q, c64(size)))
        if idx is not None:
            _memcpy(lw, b, at(idx, m, I64), idx_scratch, b.mul(q, c64(8)))
        n = m

    def key_less(x: ir.Value, y: ir.Value) -> ir.Value:
        return b.fcmp_ordered("<", x, y) if d.is_float else less(b, d, x, y)

    def emit_sorted(keys: ir.Value, scratch: ir.Value, idx: Optional[ir.Value],
                    idx_scratch: Optional[ir.Value], n: ir.Value, width0: ir.Value,
                    insertion: bool) -> None:
        """Sort keys[0:n] (runs of ``width0`` already sorted unless ``insertion``)."""
        # 1. insertion sort of each run [s, min(s + RUN, n))
        def run(vals: list[ir.Value]) -> list[ir.Value]:
            (s,) = vals
            e = _smin(b, b.add(s, c64(RUN)), n)

            def insert(iv: list[ir.Value]) -> list[ir.Value]:
                (i,) = iv
                v = ld(keys, i)
                p = ld(idx, i, I64) if idx is not None else None

                def shift_cond(jv: list[ir.Value]) -> ir.Value:
                    (j,) = jv
                    # `and` of two conditions without a branch would load keys[s - 1]: test the
                    # bound first, then the key in a block of its own
                    return _and_then(b, b.icmp_signed(">", j, s),
                                     lambda: key_less(v, ld(keys, b.sub(j, one))))

                def shift(jv: list[ir.Value]) -> list[ir.Value]:
                    (j,) = jv
                    jm = b.sub(j, one)
                    b.store(ld(keys, jm), at(keys, j))
                    if idx is not None:
                        b.store(ld(idx, jm, I64), at(idx, j, I64))
                    return [jm]
                (j,) = _while(b, [i], shift_cond, shift, "ins")
                b.store(v, at(keys, j))
                if idx is not None:
                    b.store(p, at(idx, j, I64))
                return [b.add(i, one)]
            _while(b, [b.add(s, one)], lambda iv: b.icmp_signed("<", iv[0], e), insert, "run")
            return [b.add(s, c64(RUN))]
        if insertion:
            _while(b, [c64(0)], lambda sv: b.icmp_signed("<", sv[0], n), run, "runs")

        # 2. merge passes, ping-ponging between the buffers
        def merge_pass(vals: list[ir.Value]) -> list[ir.Value]:
            width, src, dst = vals[:3]
            isrc, idst = (vals[3], vals[4]) if idx is not None else (None, None)

            def merge(lv: list[ir.Value]) -> list[ir.Value]:
                (lo,) = lv
                mid = _smin(b, b.add(lo, width), n)
                hi = _smin(b, b.add(mid, width), n)

                # runs already in order (sorted or nearly sorted data) are copied, not merged
                merged = _and_then(b, b.icmp_signed("<", mid, hi), lambda: key_less(
                    ld(src, mid), ld(src, b.sub(mid, one))))

                def both_left(st: list[ir.Value]) -> ir.Value:
                    i, j, _ = st
                    return b.and_(merged, b.and_(b.icmp_signed("<", i, mid),
                                                 b.icmp_signed("<", j, hi)))

                def step(st: list[ir.Value]) -> list[ir.Value]:
                    i, j, o = st
                    x, y = ld(src, i), ld(src, j)
                    right = key_less(y, x)  # strictly less: equal keys come from the left run
                    # select the position and load again from it, the select marked unpredictable
                    # so that it stays a conditional move: a branch would mispredict on every
                    # other element of random data
                    k = b.select(right, j, i)
                    k.set_metadata("unpredictable", lw.module.add_metadata([]))
                    b.store(ld(src, k), at(dst, o))
                    if isrc is not None:
                        b.store(ld(isrc, k, I64), at(idst, o, I64))
                    r = b.zext(right, I64)
                    return [b.add(i, b.sub(one, r)), b.add(j, r), b.add(o, one)]
                i, j, o = _while(b, [lo, mid, lo], both_left, step, "mrg")
                # the rest of whichever run is left (the other is empty), in order
                rest_l, rest_r = b.sub(mid, i), b.sub(hi, j)
                for base, cnt, o_at in ((i, rest_l, o), (j, rest_r, b.add(o, rest_l))):
                    _memcpy(lw, b, at(dst, o_at), at(src, base), b.mul(cnt, c64(size)))
                    if isrc is not None:
                        _memcpy(lw, b, at(idst, o_at, I64), at(isrc, base, I64),
                                b.mul(cnt, c64(8)))
                return [b.add(hi, c64(0))]
            _while(b, [c64(0)], lambda lv: b.icmp_signed("<", lv[0], n), merge, "mrgs")
            out = [b.shl(width, one), dst, src]
            if idx is not None:
                out += [idst, isrc]
            return out

        init = [width0, keys, scratch] + ([idx, idx_scratch] if idx is not None else [])
        final = _while(b, init, lambda v: b.icmp_signed("<", v[0], n), merge_pass, "pass")
        # the sorted data is in final[1]; copy it back when that is the scratch buffer
        back = b.icmp_unsigned("!=", final[1], keys)
        with b.if_then(back):
            _memcpy(lw, b, keys, final[1], b.mul(n, c64(size)))
            if idx is not None:
                _memcpy(lw, b, idx, final[3], b.mul(n, c64(8)))

    if not d.is_bool:  # long lanes: the radix sort, whose passes do not depend on n
        radix_bb = fn.append_basic_block("radix")
        merge_bb = fn.append_basic_block("merge")
        b.cbranch(b.icmp_signed(">=", n, c64(RADIX_MIN)), radix_bb, merge_bb)
        b.position_at_end(radix_bb)
        _emit_radix(lw, b, d, at, ld, keys, scratch, idx, idx_scratch, n)
        b.ret_void()
        b.position_at_end(merge_bb)

    # 1-3 per block of BLOCK elements, while it is in cache, then the merges between blocks
    # (a merge pass over the whole of a large array streams it through memory once)
    def block(st: list[ir.Value]) -> list[ir.Value]:
        (base,) = st
        ln = _smin(b, c64(BLOCK), b.sub(n, base))
        emit_sorted(at(keys, base), at(scratch, base),
                    at(idx, base, I64) if idx is not None else None,
                    at(idx_scratch, base, I64) if idx_scratch is not None else None,
                    ln, c64(RUN), True)
        return [b.add(base, c64(BLOCK))]
    _while(b, [c64(0)], lambda st: b.icmp_signed("<", st[0], n), block, "blk")
    emit_sorted(keys, scratch, idx, idx_scratch, n, c64(BLOCK), False)
    b.ret_void()
    return fn


def _radix_key(b: ir.IRBuilder, d: DType, v: ir.Value) -> ir.Value:
    """An unsigned integer whose order is ``v``'s (a number, not NaN; -0.0 maps to 0.0's key,
    so the two stay in input order as equal values do)."""
    w = d.bits
    it = ir.IntType(w)
    sign = ir.Constant(it, 1 << (w - 1))
    if not d.is_float:
        return b.xor(v, sign)
    bits = b.bitcast(v, it)
    bits = b.select(b.icmp_unsigned("==", bits, sign), ir.Constant(it, 0), bits)
    # a negative float's bits order backwards: flip them all; a positive one's: the sign
    return b.xor(bits, b.or_(b.ashr(bits, ir.Constant(it, w - 1)), sign))


def _emit_radix(lw: Lowerer, b: ir.IRBuilder, d: DType, at: Callable[..., ir.Value],
                ld: Callable[..., ir.Value], keys: ir.Value, scratch: ir.Value,
                idx: Optional[ir.Value], idx_scratch: Optional[ir.Value], n: ir.Value) -> None:
    """A stable LSD radix sort of ``keys[0:n]`` (numbers, no NaN) by :func:`_radix_key` in
    digits of :data:`RADIX_BITS`, moving ``idx`` along: one pass counts every digit, then one
    scatter pass per digit between the buffers, skipped when all keys share that digit."""
    w = d.bits
    n_pass = -(-w // RADIX_BITS)
    nb = 1 << RADIX_BITS
    it = ir.IntType(w)
    one = c64(1)
    # the buckets and pointer slots in the entry block: static allocas, so a caller this is
    # inlined into (a loop over lanes) does not grow its stack per call
    here = b.block
    b.position_at_start(b.function.entry_basic_block)
    counts = b.alloca(I64, size=c64(n_pass * nb))
    slots = [b.alloca(PTR) for _ in range(4)]
    b.position_at_end(here)
    memset = lw.declare("llvm.memset.p0.i64", ir.VoidType(), [PTR, ir.IntType(8), I64, I1])
    b.call(memset, [counts, ir.Constant(ir.IntType(8), 0), c64(n_pass * nb * 8),
                    ir.Constant(I1, 0)])

    def digit(k: ir.Value, p: int) -> ir.Value:
        dg = b.and_(b.lshr(k, ir.Constant(it, p * RADIX_BITS)), ir.Constant(it, nb - 1))
        return dg if w == 64 else b.zext(dg, I64)

    def bucket(p: int, dg: ir.Value) -> ir.Value:
        return b.gep(counts, [b.add(c64(p * nb), dg)], inbounds=True, source_etype=I64)

    def count(st: list[ir.Value]) -> list[ir.Value]:
        (i,) = st
        k = _radix_key(b, d, ld(keys, i))
        for p in range(n_pass):
            c = bucket(p, digit(k, p))
            b.store(b.add(b.load(c, typ=I64), one), c)
        return [b.add(i, one)]
    _while(b, [c64(0)], lambda st: b.icmp_signed("<", st[0], n), count, "rx.count")
    for slot, ptr in zip(slots, (keys, scratch, idx, idx_scratch)):
        if ptr is not None:
            b.store(ptr, slot)
    for p in range(n_pass):
        src, dst = b.load(slots[0], typ=PTR), b.load(slots[1], typ=PTR)
        isrc = b.load(slots[2], typ=PTR) if idx is not None else None
        idst = b.load(slots[3], typ=PTR) if idx is not None else None
        trivial = b.icmp_signed("==", b.load(bucket(p, digit(_radix_key(b, d, ld(src, c64(0))),
                                                               p)), typ=I64), n)
        with b.if_then(b.not_(trivial)):
            def prefix(st: list[ir.Value], p: int = p) -> list[ir.Value]:
                j, total = st
                c = bucket(p, j)
                here = b.load(c, typ=I64)
                b.store(total, c)
                return [b.add(j, one), b.add(total, here)]
            _while(b, [c64(0), c64(0)], lambda st: b.icmp_signed("<", st[0], c64(nb)), prefix,
                   "rx.sum")

            def scatter(st: list[ir.Value], p: int = p) -> list[ir.Value]:
                (i,) = st
                v = ld(src, i)
                c = bucket(p, digit(_radix_key(b, d, v), p))
                pos = b.load(c, typ=I64)
                b.store(b.add(pos, one), c)
                b.store(v, at(dst, pos))
                if isrc is not None:
                    b.store(ld(isrc, i, I64), at(idst, pos, I64))
                return [b.add(i, one)]
            _while(b, [c64(0)], lambda st: b.icmp_signed("<", st[0], n), scatter, "rx.move")
            b.store(dst, slots[0])
            b.store(src, slots[1])
            if idx is not None:
                b.store(idst, slots[2])
                b.store(isrc, slots[3])
    cur = b.load(slots[0], typ=PTR)
    with b.if_then(b.icmp_unsigned("!=", cur, keys)):
        _memcpy(lw, b, keys, cur, b.mul(n, c64(d.itemsize)))
        if idx is not None:
            _memcpy(lw, b, idx, b.load(slots[2], typ=PTR), b.mul(n, c64(8)))


def _and_then(b: ir.IRBuilder, first: ir.Value, second: Callable[[], ir.Value]) -> ir.Value:
    """``first and second()``, evaluating ``second`` only when ``first`` holds."""
    pre = b.block
    fn = b.function
    then = fn.append_basic_block("and.rhs")
    done = fn.append_basic_block("and.end")
    b.cbranch(first, then, done)
    b.position_at_end(then)
    r = second()
    then_end = b.block
    b.branch(done)
    b.position_at_end(done)
    ph = b.phi(I1)
    ph.add_incoming(ir.Constant(I1, 0), pre)
    ph.add_incoming(r, then_end)
    return ph


# --------------------------------------------------------------------------- lanes
def _lanes(lw: Lowerer, shape: list[ir.Value], axis: int,
           body: Callable[[Callable[[ir.Value], list[ir.Value]]], None]) -> None:
    """Run ``body(full)`` once per lane along ``axis``: ``full(j)`` is the index of element
    ``j`` of the lane."""
    kept = [s for k, s in enumerate(shape) if k != axis]

    def per_lane(kidx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        def full(j: ir.Value) -> list[ir.Value]:
            idx = list(kidx)
            idx.insert(axis, j)
            return idx
        body(full)
        return []
    lw.nest(kept, [], per_lane, name="lane")


def _lane_args(e: Eqn, ins: list[Value]) -> tuple[TensorVal, int, ir.Value]:
    """The array a lane-wise equation sorts, its axis and the lanes' length."""
    (x,) = ins
    assert isinstance(x, TensorVal)
    axis = e.params["axis"]
    return x, axis, x.shape[axis]


#: bytes between the page offsets of the buffers one sort streams through (a multiple of the
#: cache line, not of the page): large buffers come page-aligned from malloc, and loads from
#: one at the same offset modulo 4 KiB as stores to another stall on false store forwarding
#: (4K aliasing; 5x slower merge passes at a million elements)
_STAGGER = 1088


def _scratch(lw: Lowerer, d: DType, n: ir.Value, k: int = 1) -> TensorVal:
    """A held scratch lane of ``n`` elements whose data starts ``k`` staggers into its buffer
    (``k`` differs between the buffers of one sort)."""
    skip = k * _STAGGER // d.itemsize
    t = lw.hold(lw.alloc(d, [lw.add(n, c64(skip))]))
    data = lw.b.gep(t.data, [c64(skip)], inbounds=True, source_etype=mem_type(d))
    return TensorVal(d, data, [n], [c64(1)], t.buf, False)


@lowering(P.sort_p)
def _lower_sort(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    x, axis, n = _lane_args(e, ins)
    d, b = x.dtype, lw.b
    with lw.held():
        out = lw.hold(lw.alloc(d, x.shape))
        lw.copy_into(out, x)
        tmp = _scratch(lw, d, n)
        last = axis == x.ndim - 1
        lane = None if last else _scratch(lw, d, n, 2)
        fn = sort_fn(lw, d, False)

        def body(full: Callable[[ir.Value], list[ir.Value]]) -> None:
            if lane is None:  # contiguous in the fresh C-ordered result: sort in place
                b.call(fn, [lw.addr(out, full(c64(0))), tmp.data, n])
                return
            lw.for_range(n, [], lambda j, _: _move(lw, lane, [j], out, full(j)), name="g")
            b.call(fn, [lane.data, tmp.data, n])
            lw.for_range(n, [], lambda j, _: _move(lw, out, full(j), lane, [j]), name="s")
        _lanes(lw, x.shape, axis, body)
        for t in (tmp, lane):
            if t is not None:
                lw.free(t.buf)
    return [out]


def _move(lw: Lowerer, dst: TensorVal, di: list[ir.Value], src: TensorVal,
          si: list[ir.Value]) -> list[ir.Value]:
    lw.store(dst, di, lw.load(src, si))
    return []


@lowering(P.argsort_p)
def _lower_argsort(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    x, axis, n = _lane_args(e, ins)
    d, b = x.dtype, lw.b
    with lw.held():
        out = lw.hold(lw.alloc(i64, x.shape))
        keys, tmp = _scratch(lw, d, n, 0), _scratch(lw, d, n, 1)
        pos, ptmp = _scratch(lw, i64, n, 2), _scratch(lw, i64, n, 3)
        fn = sort_fn(lw, d, True)

        def gather(full: Callable[[ir.Value], list[ir.Value]], j: ir.Value) -> list[ir.Value]:
            lw.store(keys, [j], lw.load(x, full(j)))
            lw.store(pos, [j], j)
            return []

        def body(full: Callable[[ir.Value], list[ir.Value]]) -> None:
            lw.for_range(n, [], lambda j, _: gather(full, j), name="g")
            b.call(fn, [keys.data, tmp.data, n, pos.data, ptmp.data])
            lw.for_range(n, [], lambda j, _: _move(lw, out, full(j), pos, [j]), name="s")
        _lanes(lw, x.shape, axis, body)
        for t in (keys, tmp, pos, ptmp):
            lw.free(t.buf)
    return [out]


# --------------------------------------------------------------------------- searching
@lowering(P.searchsorted_p)
def _lower_searchsorted(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    a, v = ins
    assert isinstance(a, TensorVal)
    d = a.dtype
    right = e.params["side"] == "right"
    n = a.shape[0]

    def search(val: ir.Value) -> ir.Value:
        # the first position whose element is not before ``val`` (left: a[k] < val moves
        # right; right: not val < a[k] moves right): a binary search over [lo, hi)
        b = lw.b

        def step(st: list[ir.Value]) -> list[ir.Value]:
            lo, hi = st
            mid = b.lshr(b.add(lo, hi), c64(1))
            am = lw.load(a, [mid])
            go = b.not_(less(b, d, val, am)) if right else less(b, d, am, val)
            return [b.select(go, b.add(mid, c64(1)), lo), b.select(go, hi, mid)]
        lo, _ = _while(b, [c64(0), n], lambda st: b.icmp_signed("<", st[0], st[1]), step, "bs")
        return lo
    if not isinstance(v, TensorVal):
        return [search(v)]
    out = lw.alloc(i64, v.shape)

    def body(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        lw.store(out, idx, search(lw.load(v, idx)))
        return []
    lw.nest(v.shape, [], body, name="ss")
    return [out]


# --------------------------------------------------------------------------- counting
@lowering(P.bincount_p)
def _lower_bincount(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    x = ins[0]
    w = ins[1] if len(ins) > 1 else None
    assert isinstance(x, TensorVal)
    b = lw.b
    n = x.shape[0]

    def extremes(i: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
        v = lw.to_i64(lw.load(x, [i]))
        return [combine(lw, "max", acc[0], v), combine(lw, "min", acc[1], v)]
    hi, lo = lw.for_range(n, [c64(-1), c64(0)], extremes, name="bc.x")
    lw.check(b.icmp_signed(">=", lo, c64(0)), "ValueError",
             "bincount: the values must be non-negative")
    size = b.add(hi, c64(1))
    ml = c64(e.params["minlength"])
    size = b.select(b.icmp_signed("<", size, ml), ml, size)
    out_d = f64 if w is not None else i64
    out = lw.alloc(out_d, [size])
    zero = const_of(out_d, 0)
    lw.for_range(size, [], lambda k, _: (lw.store(out, [k], zero), [])[1], name="bc.z")

    def count(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
        k = lw.to_i64(lw.load(x, [i]))
        old = lw.load(out, [k])
        new = b.fadd(old, lw.load(w, [i])) if isinstance(w, TensorVal) else b.add(old, c64(1))
        lw.store(out, [k], new)
        return []
    lw.for_range(n, [], count, name="bc.c")
    return [out]


@lowering(P.unique_p)
def _lower_unique(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    (x,) = ins
    assert isinstance(x, TensorVal)
    b = lw.b
    d = x.dtype
    n = x.shape[0]
    with lw.held():
        out = lw.hold(lw.alloc(d, [n]))
        lw.copy_into(out, x)
        tmp = _scratch(lw, d, n)
        b.call(sort_fn(lw, d, False), [out.data, tmp.data, n])
        lw.free(tmp.buf)

    # keep each element unlike the last kept one, writing over the sorted copy
    def keep(i: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
        (m,) = acc
        j = b.add(i, c64(1))
        v = lw.load(out, [j])
        lw.store(out, [m], v)
        new = b.not_(_same(b, d, v, lw.load(out, [b.sub(m, c64(1))])))
        return [b.add(m, b.zext(new, I64))]
    first = _smin(b, n, c64(1))
    (m,) = lw.for_range(b.sub(n, c64(1)), [first], keep, name="uq")
    return [TensorVal(d, out.data, [m], [c64(1)], out.buf, True)]


# --------------------------------------------------------------------------- histogram
def _fbin(b: ir.IRBuilder, op: str, x: ir.Value, y: ir.Value) -> ir.Value:
    """An IEEE operation in program order (never reassociated: the bin edges must be NumPy's
    to the last bit)."""
    return {"+": b.fadd, "-": b.fsub, "*": b.fmul, "/": b.fdiv}[op](x, y)


def _linspace_at(b: ir.IRBuilder, k: ir.Value, num: int, lo: ir.Value,
                 hi: ir.Value) -> ir.Value:
    """Element ``k`` of ``np.linspace(lo, hi, num)`` in ``lo``'s float type, as NumPy computes
    it: ``k * step + lo`` (``k / div * delta + lo`` when the step underflows to 0), the last
    element ``hi`` exactly."""
    t = lo.type
    div = ir.Constant(t, float(num - 1))
    delta = _fbin(b, "-", hi, lo)
    step = _fbin(b, "/", delta, div)
    kf = b.sitofp(k, t)
    zero_step = b.fcmp_ordered("==", step, ir.Constant(t, 0.0))
    y = b.select(zero_step, _fbin(b, "*", _fbin(b, "/", kf, div), delta), _fbin(b, "*", kf, step))
    y = _fbin(b, "+", y, lo)
    return b.select(b.icmp_signed("==", k, c64(num - 1)), hi, y)


@lowering(P.histogram_p)
def _lower_histogram(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    x, *rng = ins
    assert isinstance(x, TensorVal)
    b = lw.b
    bins = e.params["bins"]
    src = x.dtype
    t = P.histogram_dtype(src)
    tt = F32 if t.bits == 32 else F64
    n = x.shape[0]

    def elem(i: ir.Value) -> ir.Value:
        return convert_scalar(lw, lw.load(x, [i]), src, t)
    half = ir.Constant(tt, 0.5)
    if rng:  # the range as given (f64), its edges computed in f64 as NumPy does
        lo64, hi64 = rng
        lw.check(b.fcmp_ordered("<=", lo64, hi64), "ValueError",
                 "histogram: max must be larger than min in range parameter")
        finite = b.and_(b.fcmp_ordered("<", _fabs(lw, lo64), ir.Constant(F64, float("inf"))),
                        b.fcmp_ordered("<", _fabs(lw, hi64), ir.Constant(F64, float("inf"))))
        lw.check(finite, "ValueError", "histogram: the supplied range is not finite")
        eq = b.fcmp_ordered("==", lo64, hi64)
        h64 = ir.Constant(F64, 0.5)
        lo64 = b.select(eq, b.fsub(lo64, h64), lo64)
        hi64 = b.select(eq, b.fadd(hi64, h64), hi64)
        lo, hi = convert_scalar(lw, lo64, f64, t), convert_scalar(lw, hi64, f64, t)
        lin: Optional[tuple[ir.Value, ir.Value]] = (lo64, hi64)
    else:  # [min, max] of the data in its float type; [0, 1] (in f64) when there is none
        init = [reduce_init("min", t), reduce_init("max", t)]
        lo, hi = lw.for_range(n, init, lambda i, acc: [
            combine(lw, "min", acc[0], elem(i)), combine(lw, "max", acc[1], elem(i))],
            name="h.mm")
        inf = ir.Constant(tt, float("inf"))
        empty = b.icmp_signed("==", n, c64(0))
        finite = b.and_(b.fcmp_ordered("<", _fabs(lw, lo), inf),
                        b.fcmp_ordered("<", _fabs(lw, hi), inf))
        lw.check(b.or_(empty, finite), "ValueError",
                 "histogram: the autodetected range of the data is not finite (NaN or inf "
                 "in it); pass range=(lo, hi)")
        eq = b.fcmp_ordered("==", lo, hi)
        lo = b.select(empty, ir.Constant(tt, 0.0), b.select(eq, b.fsub(lo, half), lo))
        hi = b.select(empty, ir.Constant(tt, 1.0), b.select(eq, b.fadd(hi, half), hi))
        lin = None
    with lw.held():
        edges = lw.hold(lw.alloc(t, [c64(bins + 1)]))

        def edge(k: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
            if lin is not None:
                v = convert_scalar(lw, _linspace_at(b, k, bins + 1, *lin), f64, t)
            elif t is f64:
                v = _linspace_at(b, k, bins + 1, lo, hi)
            else:  # auto range: f32 data in f32; no data: [0, 1] in f64, then rounded
                v64 = _linspace_at(b, k, bins + 1, ir.Constant(F64, 0.0), ir.Constant(F64, 1.0))
                v = b.select(b.icmp_signed("==", n, c64(0)), b.fptrunc(v64, F32),
                             _linspace_at(b, k, bins + 1, lo, hi))
            lw.store(edges, [k], v)
            return []
        lw.for_range(c64(bins + 1), [], edge, name="h.e")
        counts = lw.alloc(i64, [c64(bins)])
    lw.for_range(c64(bins), [], lambda k, _: (lw.store(counts, [k], c64(0)), [])[1], name="h.z")
    norm = _fbin(b, "-", hi, lo)
    last = c64(bins - 1)

    def count(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
        v = elem(i)
        inside = b.and_(b.fcmp_ordered(">=", v, lo), b.fcmp_ordered("<=", v, hi))
        with b.if_then(inside):
            # NumPy's estimate, then its corrections against the edges themselves
            f = _fbin(b, "*", _fbin(b, "/", _fbin(b, "-", v, lo), norm),
                      ir.Constant(tt, float(bins)))
            k = convert_scalar(lw, f, t, i64)
            k = b.select(b.icmp_signed(">", k, last), last, k)
            k = b.select(b.icmp_signed("<", k, c64(0)), c64(0), k)
            down = b.fcmp_ordered("<", v, lw.load(edges, [k]))
            k = b.select(b.and_(down, b.icmp_signed(">", k, c64(0))), b.sub(k, c64(1)), k)
            up = b.and_(b.icmp_signed("!=", k, last),
                        b.fcmp_ordered(">=", v, lw.load(edges, [b.add(k, c64(1))])))
            k = b.select(up, b.add(k, c64(1)), k)
            lw.store(counts, [k], b.add(lw.load(counts, [k]), c64(1)))
        return []
    lw.for_range(n, [], count, name="h.c")
    return [counts, edges]


def _fabs(lw: Lowerer, v: ir.Value) -> ir.Value:
    return lw.intrinsic("fabs", v.type, [v])

