"""Register-blocked ``matrix @ vector`` for :mod:`.lower_products`:
``out[i] = sum_k a[i, k] * x[k]``, and the same row loop feeding a reduction (``rowreduce``:
``argmax(E @ q)``).

Rows are taken a few at a time (a *block*, see ``ROWS``) in one loop over ``k``, so each step
loads ``x[k...]`` once for the whole block and the rows' independent accumulations overlap
instead of each waiting for its own add latency.

Two forms, chosen at compile time:

* **vector** -- when reassociation is allowed (integers always; floats under fastmath) and
  ``a``'s rows and ``x`` have the constant unit stride (C layout): each row of the block
  accumulates in one machine vector (:func:`lanes_for` columns per step, the kernel's
  ``madd`` lane-wise, so fastmath's ``contract`` makes it one fused multiply-add).  The
  block's accumulators are then summed across lanes *together* (:func:`transpose_sum`): a
  tree of shuffles and adds that halves every row's partial sums at each level, one vector add
  per level for the whole block instead of a full horizontal reduction per row, and the
  block's sums are stored with one vector store.  Columns past the last whole step are added
  one at a time.

  Rows of a whole number of machine vectors, at most ``REG_STEPS`` of them, take the
  **aligned-line** path when every row starts at the same offset into a vector (the row
  stride a whole number of vectors, as in C layout): a row of ``s`` vectors that starts
  ``sh`` lanes into one spans ``s + 1`` aligned lines.  The lines in between are read with
  aligned loads; the first and last are masked loads of their lanes that belong to the row,
  merged into one vector (the two masks are complements), so no lane outside the row is read
  and no load crosses a cache line.  ``x`` is shifted by ``sh`` once (through a zero-padded
  stack copy) and held in registers for the whole loop, and the row is unrolled.  NumPy's own
  allocations start 16 bytes past a 64-byte boundary, so with AVX-512 every plain row load
  would straddle two cache lines; on Zen 4 this path streams ``argmax(E @ q)`` (10,000 x 128
  f32) 15-23% faster than the loop above.  It changes the grouping of a row's sum with the
  array's alignment: under fastmath a result's last bits may differ between copies of an
  array at different addresses (as with BLAS).
* **scalar** -- otherwise (strict float math, or strided operands): a scalar accumulator per
  row of the block, each summing its products in ``k`` order from zero, exactly as one row at
  a time would (strict results are bitwise those of the plain loop).

Rows past the last whole block go through the same code with a block of one row.  When the
kernel is parallel, blocks are split across threads (each writes its own rows of ``out``).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import llvmlite.ir as ir

from ..ir.types import DType

__all__ = ["emit_matvec", "emit_rowreduce", "ROWS", "LONG_ROWS", "lanes_for", "transpose_sum"]

from .gemm import vector_bytes
from .lltypes import I8, I32, I64, PTR, c64, splat
from .lower_core import combine, const_of, mem_type, reduce_init
from .parallel import MAX_CHUNKS, emit_parallel_for, par_chunks, stack_buffer

#: Rows per block (powers of two; as many accumulators stay in registers): ``ROWS`` for short
#: rows (at most ``SHORT`` machine vectors) and in the scalar form, ``LONG_ROWS`` for longer
#: ones.  A short row's fixed costs (its share of the lane sums, the loop around the block)
#: need many rows to be amortised; a long row amortises them itself, and fewer rows at a time
#: read memory more nearly in order: on Zen 4, 2-row blocks of 128 floats stream from L3 about
#: 8% faster than 8-row blocks (which are about 10% faster when the matrix fits in L2).
ROWS = 8
LONG_ROWS = 2
SHORT = 2
#: Rows of at most this many whole machine vectors get a block loop of their own in the vector
#: form, with ``x`` loaded into registers once before it and the row loop unrolled: no reloads
#: of ``x`` and no loop control per block.
REG_STEPS = 8
#: Rows per block on that path when rows are longer than ``SHORT`` vectors: one row at a time
#: streams from L3 or memory ~8% faster than two (slightly slower from L2).
LINE_ROWS = 1



def lanes_for(d: DType) -> int:
    """Elements of ``d`` per machine vector (a power of two, at least 2)."""
    return max(2, vector_bytes() // d.itemsize)


def _const_one(v: ir.Value) -> bool:
    return isinstance(v, ir.Constant) and v.constant == 1


def transpose_sum(b: ir.IRBuilder, vecs: list[ir.Value],
                  add: Callable[[ir.Value, ir.Value], ir.Value]) -> list[ir.Value]:
    """Sum every vector of ``vecs`` (R vectors of W lanes, both powers of two) across its lanes.

    Returns vectors holding the R sums in order, ``min(R, W)`` per vector.  A vector is viewed
    as segments, one per row it holds partial sums of; one level pairs two vectors (or, when one
    is left, a vector with itself) and adds the lower half of every segment to its upper half,
    so each level halves the partial sums of all rows at the cost of two shuffles and one add.
    Which partials are added together differs from a per-row reduction (reassociation: callers
    use it only where that is allowed).
    """
    width = vecs[0].type.count
    seg = width  # lanes per row in every vector
    level = list(vecs)
    while seg > 1:
        half = seg // 2
        nseg = width // seg  # rows per vector
        if len(level) > 1:  # pair vectors: the result holds both vectors' rows
            nxt = []
            for u, v in zip(level[0::2], level[1::2]):
                lo = [s * seg + t for s in range(nseg) for t in range(half)]
                lo += [width + s * seg + t for s in range(nseg) for t in range(half)]
                hi = [i + half for i in lo]
                nxt.append(add(_shuffle(b, u, v, lo), _shuffle(b, u, v, hi)))
            level = nxt
        else:  # one vector left: narrow it
            (u,) = level
            lo = [s * seg + t for s in range(nseg) for t in range(half)]
            hi = [i + half for i in lo]
            level = [add(_shuffle(b, u, u, lo), _shuffle(b, u, u, hi))]
            width //= 2
        seg = half
    return level


def _shuffle(b: ir.IRBuilder, u: ir.Value, v: ir.Value, mask: list[int]) -> ir.Value:
    return b.shuffle_vector(u, v, ir.Constant(ir.VectorType(I32, len(mask)), mask))


class _RowDots:
    """The dot products of blocks of rows of ``a`` with ``x`` (``a``: ``[m, k]``, any strides;
    ``x``: ``[k]``), in the vector or the scalar form (see the module docstring).

    :meth:`block` returns the values of rows ``i0 .. i0+rows-1`` in order, as a list of groups:
    vectors of consecutive rows' values (vector form) or one scalar per row (scalar form)."""

    def __init__(self, lw: Any, a: Any, x: Any, madd: Callable[..., ir.Value],
                 zero: ir.Constant, reassociate: bool) -> None:
        self.lw, self.a, self.x, self.madd, self.zero = lw, a, x, madd, zero
        self.d: DType = a.dtype
        self.elem = mem_type(self.d)
        self.vector = reassociate and _const_one(a.strides[1]) and _const_one(x.strides[0])
        self.lanes = lanes_for(self.d)
        self.vt = ir.VectorType(self.elem, self.lanes)
        self.zvec = ir.Constant(self.vt, [zero.constant] * self.lanes)
        #: rows of whole vectors may take the aligned-line path (see :meth:`_line_setup`):
        #: masked loads must be native (AVX or wider) and the element a plain number
        self.lines = (self.vector and self.lanes * self.d.itemsize >= 32
                      and not self.d.is_bool)
        self._line: Optional[tuple] = None  # set while emitting that path's loop

    def _mload(self, ptr: ir.Value, mask: ir.Value, align: int,
               passthru: Optional[ir.Value] = None) -> ir.Value:
        """A masked vector load (lanes off: ``passthru``, default zero; never read)."""
        f = self.lw.declare(f"llvm.masked.load.{_vsuffix(self.vt)}.p0", self.vt,
                            [PTR, I32, mask.type, self.vt])
        return self.lw.b.call(f, [ptr, ir.Constant(I32, align), mask,
                                   self.zvec if passthru is None else passthru])

    def _vload(self, t: Any, idx: list[ir.Value]) -> ir.Value:
        v = self.lw.b.load(self.lw.addr(t, idx), typ=self.vt)
        v.align = self.d.itemsize
        return v

    def block_rows(self) -> ir.Value:
        """Rows per block, an i64 chosen at run time from the row length and, for the
        aligned-line path, the layout (see ``ROWS`` and :meth:`blocks`)."""
        if not self.vector:
            return c64(ROWS)
        b = self.lw.b
        short = b.icmp_signed("<=", self.a.shape[1], c64(SHORT * self.lanes))
        per = b.select(short, c64(ROWS), c64(LONG_ROWS))
        if not self.lines:
            return per
        s = self._line_steps()
        long_line = b.icmp_signed(">", s, c64(SHORT))
        return b.select(long_line, c64(LINE_ROWS), per)

    def _line_steps(self) -> ir.Value:
        """The row length in machine vectors when the aligned-line path applies (a whole
        number of them, at most ``REG_STEPS``; every row at the same offset into a vector,
        whole elements from its start), else 0."""
        a, b = self.a, self.lw.b
        size, lanes = self.d.itemsize, self.lanes
        vb = lanes * size
        k = a.shape[1]
        steps = b.sdiv(k, c64(lanes))
        shb = b.and_(b.ptrtoint(a.data, I64), c64(vb - 1))
        ok = b.and_(b.icmp_signed("==", b.mul(steps, c64(lanes)), k),
                    b.icmp_signed("<=", steps, c64(REG_STEPS)))
        ok = b.and_(ok, b.icmp_signed("==", b.and_(shb, c64(size - 1)), c64(0)))
        ok = b.and_(ok, b.icmp_signed("==", b.and_(b.mul(a.strides[0], c64(size)),
                                                   c64(vb - 1)), c64(0)))
        return b.select(ok, steps, c64(0))

    def blocks(self, first: ir.Value, count: ir.Value, per: ir.Value,
               emit: Callable[[ir.Value, int], None], name: str) -> None:
        """``emit(i0, rows)`` for ``count`` blocks of ``per`` (from :meth:`block_rows`) rows
        from block ``first`` on, ``rows`` the matching constant: one loop per block size, the
        choice made once before it.  Rows the aligned-line path can read get a loop per row
        length instead, with ``x`` held in registers and the row unrolled."""
        lw = self.lw

        def loop(rows: int, unroll: bool = True) -> None:
            lw.for_range(count, [], lambda t, _: (emit(lw.b.mul(lw.b.add(first, t), c64(rows)),
                                                      rows), [])[1], name=name, unroll=unroll)
        if not self.vector:
            loop(ROWS)
            return
        b = lw.b
        generic = lw.fn.append_basic_block(f"{name}.any")
        done = lw.fn.append_basic_block(f"{name}.done")
        if self.lines:
            sw = b.switch(self._line_steps(), generic)
            for s in range(1, REG_STEPS + 1):
                case = lw.fn.append_basic_block(f"{name}.k{s}")
                sw.add_case(c64(s), case)
                b.position_at_end(case)
                self._line_setup(s)
                loop(ROWS if s <= SHORT else LINE_ROWS, unroll=False)
                self._line = None
                b.branch(done)
        else:
            b.branch(generic)
        b.position_at_end(generic)
        with b.if_else(b.icmp_signed("==", per, c64(ROWS))) as (many, few):
            with many:
                loop(ROWS)
            with few:
                loop(LONG_ROWS)
        b.branch(done)
        b.position_at_end(done)

    def _line_setup(self, s: int) -> None:
        """The state :meth:`_line_block` reads, for rows of ``s`` whole machine vectors that
        :meth:`_line_steps` found readable by aligned lines: every row starts ``sh`` lanes into
        a machine vector.

        A row then spans ``s + 1`` aligned lines: line 0 holds its first ``lanes - sh``
        elements in its upper lanes, line ``s`` its last ``sh`` in its lower lanes, so the two
        lines' masked loads merge into one full vector.  ``x``'s vectors are shifted to match,
        once, through a zero-padded stack copy, and held in registers for the whole loop."""
        lw, a, b = self.lw, self.a, self.lw.b
        size, lanes = self.d.itemsize, self.lanes
        shb = b.and_(b.ptrtoint(a.data, I64), c64(lanes * size - 1))
        sh = b.udiv(shb, c64(size))
        lane = ir.Constant(ir.VectorType(I64, lanes), list(range(lanes)))
        head = b.icmp_unsigned(">=", lane, splat(b, sh, lanes))  # line 0's lanes in the row
        pad = stack_buffer(lw, self.elem, (s + 2) * lanes)

        def at(off: ir.Value) -> ir.Value:
            return b.gep(pad, [off], inbounds=True, source_etype=self.elem)
        for t in range(s + 2):
            b.store(self.zvec, at(c64(t * lanes))).align = size
        for t in range(s):
            b.store(self._vload(self.x, [c64(t * lanes)]), at(c64((t + 1) * lanes))).align = size
        xs = []
        for t in range(s + 1):  # x's elements under line t's lanes (zero outside the row)
            v = b.load(at(b.sub(c64((t + 1) * lanes), sh)), typ=self.vt)
            v.align = size
            xs.append(v)
        self._line = (shb, head, b.not_(head), b.select(head, xs[0], xs[s]), xs[1:s])

    def _line_block(self, rix: list[ir.Value]) -> list[ir.Value]:
        """The block's dot products read by aligned lines (see :meth:`_line_setup`)."""
        b, lanes = self.lw.b, self.lanes
        shb, head, tail, xw, xs = self._line
        vb = lanes * self.d.itemsize
        acc = []
        for i in rix:
            off = b.sub(b.mul(b.mul(i, self.a.strides[0]), c64(self.d.itemsize)), shb)
            row = b.gep(self.a.data, [off], source_etype=I8)  # line 0: may start before a
            first = self._mload(row, head, vb)
            last = b.gep(row, [c64(len(xs) + 1)], source_etype=self.vt)
            v = self.madd(self.zvec, self._mload(last, tail, vb, first), xw)
            for t, xv in enumerate(xs):
                ld = b.load(b.gep(row, [c64(t + 1)], source_etype=self.vt), typ=self.vt)
                ld.align = vb
                v = self.madd(v, ld, xv)
            acc.append(v)
        return transpose_sum(b, acc, lambda p, q: _add(self.lw, p, q))

    def block(self, i0: ir.Value, rows: int) -> list[ir.Value]:
        lw, a, x, madd, zero = self.lw, self.a, self.x, self.madd, self.zero
        k = a.shape[1]
        rix = [lw.add(i0, c64(r)) for r in range(rows)]
        if not self.vector:
            def sstep(j: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                xj = lw.load(x, [j])
                return [madd(acc[r], lw.load(a, [rix[r], j]), xj) for r in range(rows)]
            return lw.for_range(k, [zero] * rows, sstep, name="mvk")
        lanes = self.lanes
        if self._line is not None:
            return self._line_block(rix)
        steps = lw.b.sdiv(k, c64(lanes))

        def vstep(s: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
            j = lw.b.mul(s, c64(lanes))
            xv = self._vload(x, [j])
            return [madd(acc[r], self._vload(a, [rix[r], j]), xv) for r in range(rows)]
        acc = lw.for_range(steps, [self.zvec] * rows, vstep, name="mvk")
        j0 = lw.b.mul(steps, c64(lanes))
        # columns past the last whole step, one at a time per row
        tail = lw.for_range(lw.b.sub(k, j0), [zero] * rows, lambda t, c: [
            madd(c[r], lw.load(a, [rix[r], lw.b.add(j0, t)]), lw.load(x, [lw.b.add(j0, t)]))
            for r in range(rows)], name="mvt")
        b = lw.b
        out = []
        pos = 0
        for v in transpose_sum(b, acc, lambda p, q: _add(lw, p, q)):
            w = v.type.count
            tv = ir.Constant(ir.VectorType(self.elem, w), ir.Undefined)
            for t in range(w):
                tv = b.insert_element(tv, tail[pos + t], ir.Constant(I32, t))
            out.append(_add(lw, v, tv))
            pos += w
        return out


def _store_block(lw: Any, dots: _RowDots, out: Any, i0: ir.Value, rows: int) -> None:
    """The values of the block at ``i0`` into ``out[i0:i0+rows]`` (fresh, C-contiguous)."""
    pos = 0
    for g in dots.block(i0, rows):  # a vector of rows is stored at once
        st = lw.b.store(g, lw.addr(out, [lw.add(i0, c64(pos))]))
        st.align = out.dtype.itemsize
        pos += g.type.count if isinstance(g.type, ir.VectorType) else 1


def emit_matvec(lw: Any, a: Any, x: Any, out: Any, madd: Callable[..., ir.Value],
                zero: ir.Constant, *, reassociate: bool) -> None:
    """Fill ``out`` (fresh, C-contiguous, ``[m]``) with ``a @ x`` (``a``: ``[m, k]``, any
    strides; ``x``: ``[k]``).  ``madd(acc, p, q)`` is the multiply-add of the dtype and math
    mode (lane-wise on vectors); ``reassociate``: the sum of a row may be taken in any order."""
    dots = _RowDots(lw, a, x, madd, zero, reassociate)
    m, k = a.shape

    def block(i0: ir.Value, rows: int) -> None:
        _store_block(lw, dots, out, i0, rows)

    per = dots.block_rows()
    blocks = lw.b.sdiv(m, per)
    emit_parallel_for(lw, blocks, lw.mul(m, k),
                      lambda c, lo, hi: dots.blocks(lo, lw.b.sub(hi, lo), per, block, "mv"))
    i_rest = lw.b.mul(blocks, per)
    lw.for_range(lw.b.sub(m, i_rest), [], lambda t, _: (block(lw.b.add(i_rest, t), 1), [])[1],
                 name="mvr")


def emit_rowreduce(lw: Any, a: Any, x: Any, madd: Callable[..., ir.Value], zero: ir.Constant,
                   *, reassociate: bool, kind: str,
                   value: Optional[Callable[[ir.Value, ir.Value], ir.Value]],
                   vdtype: DType) -> ir.Value:
    """``kind`` over the rows ``i`` of ``a`` of ``value(i, a[i] @ x)`` (a scalar of ``vdtype``;
    ``value`` None: the dot product itself): ``sum``/``max``/``min``, or ``argmax``/``argmin``
    (the first extreme position, a NaN counting as extreme).  The rows must not be empty for
    all but ``sum`` (the caller checks).

    Each chunk of rows (all rows unless the kernel is parallel; the last chunk also takes the
    rows past the last whole block) stores its rows' dot products block by block, as
    :func:`emit_matvec` does, then reduces that part of the buffer while it is in cache, in
    loops the vectoriser widens (``value`` included: an ``exp`` costs there what it costs in a
    fused map): sum/max/min in one loop; arg-reductions map the values into a second buffer
    (unless ``value`` is None), then take the extreme value, then the first position holding
    it.  (Carrying a running result from block to block instead makes the block loop
    measurably slower.)  The chunks' results are combined in chunk order: results depend on the
    thread count only, never on timing.  A float sum is taken row after row unless
    reassociation is allowed."""
    dots = _RowDots(lw, a, x, madd, zero, reassociate)
    m, k = a.shape
    arg = kind.startswith("arg")
    ext_kind = kind[3:] if arg else kind  # argmax: the max first
    init = reduce_init(ext_kind, vdtype) if ext_kind != "sum" else const_of(vdtype, 0)
    zs = lw.hold(lw.alloc(a.dtype, [m]))  # the caller's lw.held() block: freed on errors
    vals = lw.hold(lw.alloc(vdtype, [m])) if arg and value is not None else zs
    is_int = isinstance(init.type, ir.IntType)

    def better(v: ir.Value, best: ir.Value) -> ir.Value:
        """Is ``v`` (at a later position) more extreme than ``best``?  A NaN beats a number."""
        b = lw.b
        if is_int:
            return b.icmp_signed(">" if kind == "argmax" else "<", v, best)
        strictly = b.fcmp_ordered(">" if kind == "argmax" else "<", v, best)
        first_nan = b.and_(b.fcmp_unordered("uno", v, v), b.fcmp_ordered("ord", best, best))
        return b.or_(strictly, first_nan)

    def pick(p: list[ir.Value], q: list[ir.Value]) -> list[ir.Value]:
        """``q`` (a later chunk's ``[value, position]``; position < 0: no rows) if better."""
        b = lw.b
        take = b.and_(b.icmp_signed(">=", q[1], c64(0)),
                      b.or_(b.icmp_signed("<", p[1], c64(0)), better(q[0], p[0])))
        return [b.select(take, q[0], p[0]), b.select(take, q[1], p[1])]

    def block(i0: ir.Value, rows: int) -> None:
        _store_block(lw, dots, zs, i0, rows)

    def value_at(i: ir.Value) -> ir.Value:
        z = lw.load(zs, [i])
        return z if value is None else value(i, z)

    def reduce(lo: ir.Value, hi: ir.Value) -> list[ir.Value]:
        """The chunk's rows lo .. hi-1: ``[result]``, or ``[extreme, position]``."""
        count = lw.b.sub(hi, lo)
        lw.in_nest += 1  # loops the vectoriser may widen
        try:
            if not arg:
                return lw.for_range(count, [init], lambda t, acc: [
                    combine(lw, kind, acc[0], value_at(lw.b.add(lo, t)))], name="rrs")
            if vals is not zs:
                lw.for_range(count, [], lambda t, _: (lw.store(
                    vals, [lw.b.add(lo, t)], value_at(lw.b.add(lo, t))), [])[1], name="rrv")

            def at(t: ir.Value) -> ir.Value:
                return lw.load(vals, [lw.b.add(lo, t)])
            (ext,) = lw.for_range(count, [init], lambda t, acc: [
                combine(lw, ext_kind, acc[0], at(t))], name="rrx")
            ext_nan = lw.b.fcmp_unordered("uno", ext, ext) if not is_int else None

            def first(t: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                bb = lw.b
                v = at(t)
                if is_int:
                    hit = bb.icmp_signed("==", v, ext)
                else:
                    hit = bb.or_(bb.fcmp_ordered("==", v, ext),
                                 bb.and_(ext_nan, bb.fcmp_unordered("uno", v, v)))
                return [lw.intrinsic("smin", I64, [acc[0], bb.select(hit, t, count)])]
            (t,) = lw.for_range(count, [count], first, name="rra")
        finally:
            lw.in_nest -= 1
        b = lw.b
        found = b.icmp_signed("<", t, count)
        return [ext, b.select(found, b.add(lo, t), c64(-1))]

    per = dots.block_rows()
    blocks = lw.b.sdiv(m, per)
    work = lw.mul(m, k)
    n_chunks = par_chunks(lw, work, blocks)
    part_types = [init.type, I64] if arg else [init.type]
    parts = [stack_buffer(lw, t, MAX_CHUNKS) for t in part_types] if lw.parallel else None
    result: list[ir.Value] = []

    def chunk(c: ir.Value, lo: ir.Value, hi: ir.Value) -> None:
        b = lw.b
        dots.blocks(lo, b.sub(hi, lo), per, block, "rr")
        last = lw.b.icmp_signed("==", c, lw.b.sub(n_chunks, c64(1)))
        i_rest = lw.b.mul(blocks, per)
        n_rest = lw.b.select(last, lw.b.sub(m, i_rest), c64(0))
        lw.for_range(n_rest, [], lambda t, _: (block(lw.b.add(i_rest, t), 1), [])[1],
                     name="rrt")
        state = reduce(lw.b.mul(lo, per), lw.b.add(lw.b.mul(hi, per), n_rest))
        if parts is None:
            result.extend(state)
            return
        for p, v in zip(parts, state):
            lw.b.store(v, lw.b.gep(p, [c], inbounds=True, source_etype=v.type))

    emit_parallel_for(lw, blocks, work, chunk, n_chunks=n_chunks)
    if parts is not None:
        def gather(c: ir.Value, state: list[ir.Value]) -> list[ir.Value]:
            got = [lw.b.load(lw.b.gep(p, [c], inbounds=True, source_etype=t), typ=t)
                   for p, t in zip(parts, part_types)]
            return pick(state, got) if arg else [combine(lw, kind, state[0], got[0])]
        result = lw.for_range(n_chunks, [init, c64(-1)] if arg else [init], gather, name="rrc")
    for buf in {id(zs.buf): zs.buf, id(vals.buf): vals.buf}.values():
        lw.free(buf)
    return result[1] if arg else result[0]


def _vsuffix(vt: ir.VectorType) -> str:
    """LLVM's overload suffix of a vector type (``v16f32``, ``v8i64``)."""
    el = vt.element
    name = {"float": "f32", "double": "f64"}.get(str(el), f"i{getattr(el, 'width', 0)}")
    return f"v{vt.count}{name}"


def _add(lw: Any, p: ir.Value, q: ir.Value) -> ir.Value:
    if isinstance(p.type.element, ir.IntType):
        return lw.b.add(p, q)
    return lw.b.fadd(p, q, flags=lw.fm)
