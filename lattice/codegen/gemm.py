"""Register-tiled ``matrix @ matrix`` (and ``vector @ matrix``) for :mod:`.lower_products`.

``out[i, j] = sum_k a[i, k] * b[k, j]`` is computed tile by tile: a tile is ``MR`` rows of
``out`` by ``NR`` columns, held in ``MR`` vector registers of ``NR`` lanes (two machine vectors
each) for the whole loop over ``k``.  One step of that loop loads ``b[k, j0:j0+NR]`` once and
``a[i0+r, k]`` once per row (broadcast to all lanes), and does ``MR`` vector multiply-adds, so
the loop runs at multiply-add throughput instead of at the load/store throughput of the
row-update loop it replaces (which loaded and stored a row of ``out`` for every ``k``).

Every element still sums its products in ``k`` order starting from zero, exactly as the plain
loop did: tiling changes which elements are computed side by side, never the order of one
element's additions, so strict-math results are bitwise those of the plain loop.  Under
fastmath the multiply-add pairs carry the kernel's fast-math flags (``contract`` lets LLVM fuse
them).

Operands may have any strides: ``a[i, k]`` is a scalar load, and ``b``'s row segment is one
vector load when ``b``'s innermost stride is the constant 1 (C layout, fresh buffers) and is
assembled lane by lane otherwise.  Columns past the last whole tile and rows past the last
whole row block run through the same tile loop with fewer lanes or rows.  A one-row tile
(the last rows) under fastmath, or of integers, keeps ``SPLIT`` partial sums over interleaved
``k`` so the multiply-adds do not wait on each other.  ``vector @ matrix`` and products of at
most ``ROWS_MAX_M`` rows instead add rows of ``b`` into blocks of the result
(:func:`_emit_rows`), reading ``b`` in memory order.  When the kernel is parallel, row blocks
(column blocks of the row-streaming form) are split across threads, each writing its own.
"""
from __future__ import annotations

from typing import Any, Callable

import llvmlite.ir as ir

from ..ir.types import DType

from .lltypes import I32, c64, splat
from .lower_core import mem_type

#: rows of ``out`` per tile: MR vector accumulators stay in registers
MR = 8
#: partial sums per element for a one-row tile when sums may be reassociated
SPLIT = 4



def vector_bytes() -> int:
    """Bytes of the host's widest vector register (64 with AVX-512, 32 with AVX, else 16)."""
    from .jit import _host_cpu_name_and_features
    features = _host_cpu_name_and_features()[1]
    if "+avx512f" in features:
        return 64
    if "+avx" in features:
        return 32
    return 16


def tile_lanes(d: DType) -> int:
    """Columns per tile: two machine vectors of ``d``."""
    return max(2, 2 * vector_bytes() // d.itemsize)


def emit_matmul(lw: Any, a: Any, bm: Any, out: Any, madd: Callable[..., ir.Value],
                zero: ir.Constant, symmetric: bool = False) -> None:
    """Fill ``out`` (fresh, C-contiguous, ``[m, n]`` or ``[n]`` when ``a`` is a vector) with
    ``a @ bm``.  ``madd(acc, x, y)`` is the multiply-add of the dtype and math mode; it must
    work lane-wise on vectors.

    ``symmetric``: the caller knows the product is a symmetric square matrix (``X.T @ X``,
    ``X.T @ (X * w[:, None])``), so only the tiles that reach the diagonal or lie right of it
    are computed, with tiles one machine vector wide, and each element below the diagonal is
    copied from its mirror image (10 of 16 tiles for 32 f64 columns; approaching half the
    work for wide matrices)."""
    d = out.dtype
    reassociate = bool(lw.fm) or not d.is_float  # integer sums may always be regrouped
    # symmetric: tiles one machine vector wide, so less of the diagonal tiles is wasted
    nr = tile_lanes(d) // 2 if symmetric else tile_lanes(d)
    elem = mem_type(d)
    vec_t = ir.VectorType(elem, nr)
    k = a.shape[-1]
    n = bm.shape[1]
    m = a.shape[0] if a.ndim == 2 else c64(1)
    vector_a = a.ndim == 1
    unit_b = isinstance(bm.strides[1], ir.Constant) and bm.strides[1].constant == 1

    def a_at(i: ir.Value, kk: ir.Value) -> ir.Value:
        return lw.load(a, [kk] if vector_a else [i, kk])

    def out_ptr(i: ir.Value, j: ir.Value) -> ir.Value:
        return lw.addr(out, [j] if vector_a else [i, j])

    def b_row(kk: ir.Value, j0: ir.Value, lanes: int) -> ir.Value:
        """``bm[kk, j0:j0+lanes]`` as a vector."""
        b = lw.b
        vt = ir.VectorType(elem, lanes)
        if unit_b:
            v = b.load(lw.addr(bm, [kk, j0]), typ=vt)
            v.align = d.itemsize
            return v
        v = ir.Constant(vt, ir.Undefined)
        for t in range(lanes):
            v = b.insert_element(v, lw.load(bm, [kk, lw.add(j0, c64(t))]), ir.Constant(I32, t))
        return v

    def tile(i0: ir.Value, rows: int, j0: ir.Value, lanes: int) -> None:
        """out[i0:i0+rows, j0:j0+lanes], accumulated in ``rows`` vector registers."""
        vt = ir.VectorType(elem, lanes)
        init = [ir.Constant(vt, [zero.constant] * lanes)] * rows

        def step(kk: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
            bv = b_row(kk, j0, lanes)
            return [madd(acc[r], splat(lw.b, a_at(lw.add(i0, c64(r)), kk), lanes), bv)
                    for r in range(rows)]
        if rows == 1 and reassociate:
            # one row: a single chain of dependent multiply-adds would wait on its own latency;
            # SPLIT partial sums over interleaved k, added at the end
            def split_step(q: ir.Value, acc: list[ir.Value]) -> list[ir.Value]:
                k0 = lw.b.mul(q, c64(SPLIT))
                return [step(lw.add(k0, c64(t)), [acc[t]])[0] for t in range(SPLIT)]
            quads = lw.b.sdiv(k, c64(SPLIT))
            parts = lw.for_range(quads, init * SPLIT, split_step, name="gk4")
            k_rest = lw.b.mul(quads, c64(SPLIT))
            (tail,) = lw.for_range(lw.b.sub(k, k_rest), [parts[0]], lambda t, a: step(
                lw.b.add(k_rest, t), a), name="gkr")
            total = tail
            for p_ in parts[1:]:
                total = lw.b.fadd(total, p_, flags=lw.fm) if d.is_float else lw.b.add(total, p_)
            acc = [total]
        else:
            acc = lw.for_range(k, init, step, name="gk")
        for r in range(rows):
            st = lw.b.store(acc[r], out_ptr(lw.add(i0, c64(r)), j0))
            st.align = d.itemsize

    def row_block(i0: ir.Value, rows: int) -> None:
        b = lw.b
        n_tiles = b.sdiv(n, c64(nr)) if not isinstance(n, ir.Constant) else c64(n.constant // nr)
        # symmetric: from the tile holding column i0 (every column >= i0 of these rows)
        t0 = lw.b.sdiv(i0, c64(nr)) if symmetric else c64(0)
        t0 = lw.b.select(lw.b.icmp_signed("<", t0, n_tiles), t0, n_tiles) if symmetric else t0
        lw.for_range(lw.b.sub(n_tiles, t0), [], lambda t, _: (tile(
            i0, rows, lw.b.mul(lw.b.add(t, t0), c64(nr)), nr), [])[1], name="gj")
        # the last columns: one lane at a time (n % nr of them)
        j_rest = lw.b.mul(n_tiles, c64(nr))
        lw.for_range(lw.b.sub(n, j_rest), [], lambda t, _: (tile(
            i0, rows, lw.b.add(j_rest, t), 1), [])[1], name="gjr")

    def _tiles() -> None:
        b = lw.b
        blocks = b.sdiv(m, c64(MR)) if not isinstance(m, ir.Constant) else c64(m.constant // MR)
        lw.split_nest([blocks], lambda idx, _: (row_block(lw.b.mul(idx[0], c64(MR)), MR),
                                                 [])[1], name="gm", work=lw.product([m, k, n]))
        i_rest = lw.b.mul(blocks, c64(MR))
        if isinstance(m, ir.Constant):  # a known number of last rows: one block of them
            if m.constant % MR:
                row_block(i_rest, m.constant % MR)
        else:
            lw.for_range(lw.b.sub(m, i_rest), [], lambda t, _: (
                row_block(lw.b.add(i_rest, t), 1), [])[1], name="gmr")
        if symmetric:  # out[i, j] = out[j, i] below the diagonal (computed by row j's block)
            def mirror(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                lw.for_range(i, [], lambda j, __: (lw.store(out, [i, j], lw.load(out, [j, i])),
                                                   [])[1], name="gsj")
                return []
            lw.for_range(m, [], mirror, name="gsi")

    # a few rows (an MLP's batch, vector @ matrix): stream b by rows; else register tiles
    if vector_a or (isinstance(m, ir.Constant) and m.constant <= ROWS_MAX_M and not symmetric):
        _emit_rows(lw, a, bm, out, madd, zero)
        return
    if symmetric or isinstance(m, ir.Constant):
        _tiles()
        return
    with lw.b.if_else(lw.b.icmp_signed("<=", m, c64(ROWS_MAX_M))) as (few, many):
        with few:
            _emit_rows(lw, a, bm, out, madd, zero)
        with many:
            _tiles()


#: columns per block of the row-streaming product (:func:`_emit_rows`): the block's rows of
#: ``out`` and ``ROWS_K`` row segments of ``b`` stay in L1
ROWS_COLS = 512
#: rows of ``b`` added into a block per pass over it
ROWS_K = 4
#: products with at most this many rows (and ``vector @ matrix``) stream ``b`` by rows
ROWS_MAX_M = 8


def _emit_rows(lw: Any, a: Any, bm: Any, out: Any, madd: Callable[..., ir.Value],
               zero: ir.Constant) -> None:
    """``out = a @ bm`` for a few rows of ``a`` (or a vector ``a``), by rows of ``bm``:
    ``out[i, j0:j1] += a[i, k:k+4] @ bm[k:k+4, j0:j1]`` for every row ``i``, then the next
    four rows of ``bm``, one block of :data:`ROWS_COLS` columns after another.  ``bm`` is
    read once, row segment by row segment in memory order (the register tiles would walk it
    down a strip of columns, a new page per row), while the block of ``out`` stays in cache.
    Each element still sums in ``k`` order from zero (bitwise the plain loop under strict
    math).  Column blocks are split across threads in parallel kernels."""
    vector_a = a.ndim == 1
    k = a.shape[-1]
    n = bm.shape[1]
    m = c64(1) if vector_a else a.shape[0]
    nb, u = ROWS_COLS, ROWS_K
    blocks = lw.b.sdiv(lw.b.add(n, c64(nb - 1)), c64(nb))

    def at(i: ir.Value, j: ir.Value) -> list[ir.Value]:  # a's or out's element (i, j)
        return [j] if vector_a else [i, j]

    def block(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        b = lw.b
        j0 = b.mul(idx[0], c64(nb))
        rest = b.sub(n, j0)
        width = b.select(b.icmp_signed("<", rest, c64(nb)), rest, c64(nb))

        def zero_row(i: ir.Value, __: list[ir.Value]) -> list[ir.Value]:
            lw.for_range(width, [], lambda j, ___: (lw.store(
                out, at(i, lw.b.add(j0, j)), zero), [])[1], name="rz")
            return []
        lw.for_range(m, [], zero_row, name="rzi")

        def rows(k0: ir.Value, count: int) -> None:
            kk = [lw.b.add(k0, c64(t)) if t else k0 for t in range(count)]

            def one_row(i: ir.Value, __: list[ir.Value]) -> list[ir.Value]:
                xs = [lw.load(a, at(i, q)) for q in kk]

                def col(j: ir.Value, ___: list[ir.Value]) -> list[ir.Value]:
                    jj = lw.b.add(j0, j)
                    acc = lw.load(out, at(i, jj))
                    for x, q in zip(xs, kk):
                        acc = madd(acc, x, lw.load(bm, [q, jj]))
                    lw.store(out, at(i, jj), acc)
                    return []
                lw.for_range(width, [], col, name="rj")
                return []
            lw.for_range(m, [], one_row, name="ri")
        groups = lw.b.sdiv(k, c64(u))
        lw.for_range(groups, [], lambda g, __: (rows(lw.b.mul(g, c64(u)), u), [])[1],
                     name="rk")
        k_rest = lw.b.mul(groups, c64(u))
        lw.for_range(lw.b.sub(k, k_rest), [], lambda t, __: (rows(lw.b.add(k_rest, t), 1),
                                                             [])[1], name="rkr")
        return []
    lw.split_nest([blocks], block, name="rb", work=lw.product([m, k, n]))
