"""Large float matrix products as calls of the BLAS (:mod:`.blas`), lattice's own code else.

Each ``emit_*`` here takes the operands, the fresh C-contiguous result and ``own``, a callable
that emits lattice's own code for the product (:mod:`.gemm`, :mod:`.matvec`).  When a call
can apply, it emits a run-time test and both paths: the call when the product is large and the
operands' strides are ones BLAS can express, ``own()`` otherwise; when it cannot (no BLAS,
``LATTICE_BLAS=none``, another dtype, strict math, inside a parallel chunk), only ``own()``.

* Only ``f32``/``f64`` under fastmath.  BLAS sums in its own order (blocked, with FMA), so
  under ``fastmath=False`` the product stays lattice's, bitwise the plain loop's.
* Not inside a parallel chunk (an ``lt.prange`` body, an outlined loop of a parallel kernel):
  the library runs threads of its own, and a call per chunk would oversubscribe the CPUs.
* Strides: a matrix BLAS reads is row-major (unit stride along its rows, leading dimension
  at least its row length) or, read as transposed, column-major: ``x.T`` of a C array is
  passed as ``x`` with ``Trans``.  A vector's stride must be positive.  Anything else (a
  broadcast, a reversed or a stepped view) takes lattice's own code, as do empty operands
  (the threshold excludes them, so no leading dimension below 1 reaches the library).
* Large: ``m * n * k`` of a matrix product at least :data:`GEMM_MIN_WORK`, ``m * n`` at
  least :data:`GEMM_MIN_OUT`, and more than ``gemm.ROWS_MAX_M`` rows (fewer stream ``b``
  through lattice's own loops), ``m * k`` of a
  matrix-vector product at least :data:`GEMV_MIN_WORK`, in a serial kernel only (a parallel
  one splits lattice's own matrix-vector loops across its threads); docs/performance.md has
  the measurements they come from.  With a 32-bit-integer library, every size and leading
  dimension is below 2^31.
* ``X.T @ X`` (``gram``) is one ``?syrk`` of the upper triangle, mirrored into the lower one.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Optional

import llvmlite.ir as ir

from ..ir.types import DType, f32, f64
from .blas import Blas, find
from .gemm import ROWS_MAX_M
from .lltypes import F32, F64, I1, I32, I64, PTR, c64

#: work (multiply-adds) from which a matrix product calls ``?gemm``, by dtype: from about
#: 32^3 the call is as fast as lattice's tiles or faster (``python bench/blas.py --sweep``)
GEMM_MIN_WORK = {f32: 32 ** 3, f64: 32 ** 3}
#: elements of the result from which a matrix product calls the library: it splits its work
#: over the result, and a small result of a long sum (``X.T @ Y`` of tall ``X``, ``Y``; a
#: Gram matrix of a few dozen columns) ran 4x slower on its two threads than on one, and
#: slower than lattice's tiles
GEMM_MIN_OUT = 64 * 64
#: elements of the matrix from which a matrix-vector product of a serial kernel calls
#: ``?gemv``: one thread of the library is level with lattice's own loops, so only where two
#: threads' bandwidth pays for the library waking its threads (which, on a busy machine,
#: cost milliseconds at a million elements) and the matrix streams from memory
GEMV_MIN_WORK = {f32: 1 << 24, f64: 1 << 24}



@contextlib.contextmanager
def thresholds(work: int, out: int = GEMM_MIN_OUT) -> Iterator[None]:
    """The work thresholds set to ``work`` (and :data:`GEMM_MIN_OUT` to at most ``out``) for
    the kernels compiled inside the block: measuring the crossover, testing the calls on
    small operands."""
    global GEMM_MIN_OUT
    saved = dict(GEMM_MIN_WORK), dict(GEMV_MIN_WORK), GEMM_MIN_OUT
    for d in saved[0]:
        GEMM_MIN_WORK[d] = GEMV_MIN_WORK[d] = work
    GEMM_MIN_OUT = min(out, saved[2])
    try:
        yield
    finally:
        GEMM_MIN_WORK.update(saved[0])
        GEMV_MIN_WORK.update(saved[1])
        GEMM_MIN_OUT = saved[2]


# CBLAS enumerations
_ROW_MAJOR, _NO_TRANS, _TRANS, _UPPER = 101, 111, 112, 121


def usable(lw: Any, d: DType) -> Optional[Blas]:
    """The BLAS when a call of it may replace this product's own code, else None."""
    if d not in (f32, f64) or not lw.fastmath or getattr(lw, "in_chunk", 0):
        return None
    return find()


class _Operand:
    """How BLAS reads a matrix ``[rows, cols]``: ``ok`` (i1, at run time), ``trans`` (i1: read
    as the transpose of a row-major matrix) and ``ld`` (its leading dimension)."""

    def __init__(self, ok: ir.Value, trans: ir.Value, ld: ir.Value) -> None:
        self.ok, self.trans, self.ld = ok, trans, ld


def _is(v: ir.Value, c: int) -> Optional[bool]:
    """Whether the i64 ``v`` equals ``c``, when known at compile time."""
    return v.constant == c if isinstance(v, ir.Constant) else None


def _orient(lw: Any, t: Any, rows: ir.Value, cols: ir.Value) -> Optional[_Operand]:
    """The :class:`_Operand` of matrix ``t``, None when its strides can never suit BLAS."""
    b = lw.b
    s0, s1 = t.strides
    row_may, col_may = _is(s1, 1) is not False, _is(s0, 1) is not False
    if not (row_may or col_may):
        return None
    false = ir.Constant(I1, 0)

    def at_least(s: ir.Value, n: ir.Value) -> ir.Value:
        return b.and_(b.icmp_signed(">=", s, n), b.icmp_signed(">=", s, c64(1)))
    row_ok = (b.and_(b.icmp_signed("==", s1, c64(1)), at_least(s0, cols)) if row_may
              else false)
    col_ok = (b.and_(b.icmp_signed("==", s0, c64(1)), at_least(s1, rows)) if col_may
              else false)
    return _Operand(b.or_(row_ok, col_ok), b.not_(row_ok), b.select(row_ok, s0, s1))


def _all(lw: Any, conds: list[ir.Value]) -> ir.Value:
    acc = conds[0]
    for c in conds[1:]:
        acc = lw.b.and_(acc, c)
    return acc


def _large(lw: Any, sizes: list[ir.Value], least: int) -> list[ir.Value]:
    """Every size >= 1 and their product >= ``least`` (the sizes of arrays that exist: their
    product does not wrap)."""
    b = lw.b
    conds = [b.icmp_signed(">=", s, c64(1)) for s in sizes]
    prod = sizes[0]
    for s in sizes[1:]:
        prod = b.mul(prod, s)
    return conds + [b.icmp_signed(">=", prod, c64(least))]


def _fits(lw: Any, blas: Blas, values: list[ir.Value]) -> list[ir.Value]:
    """With 32-bit BLAS integers, each value below 2^31."""
    if blas.int64:
        return []
    return [lw.b.icmp_signed("<", v, c64(2 ** 31)) for v in values]


def _int(lw: Any, blas: Blas, v: ir.Value) -> ir.Value:
    return v if blas.int64 else lw.b.trunc(v, I32)


def _enum(v: int) -> ir.Constant:
    return ir.Constant(I32, v)


def _trans(lw: Any, flag: ir.Value, flip: bool = False) -> ir.Value:
    """CblasTrans where ``flag`` (xor ``flip``), else CblasNoTrans."""
    a, b = (_NO_TRANS, _TRANS) if flip else (_TRANS, _NO_TRANS)
    return lw.b.select(flag, _enum(a), _enum(b))


def _call(lw: Any, blas: Blas, routine: str, d: DType, kinds: str, args: list[Any]) -> None:
    """Call ``routine`` (``dgemm`` ...) with ``args``: per ``kinds`` letter, ``e`` an enum (i32),
    ``i`` a BLAS integer, ``f`` a scalar of ``d``, ``p`` a pointer."""
    ft = F32 if d is f32 else F64
    it = I64 if blas.int64 else I32
    types = {"e": I32, "i": it, "f": ft, "p": PTR}
    fn = lw.declare(blas.symbol(routine), ir.VoidType(), [types[c] for c in kinds])
    vals = []
    for c, v in zip(kinds, args):
        if c == "i":
            v = _int(lw, blas, v)
        elif c == "f":
            v = ir.Constant(ft, float(v))
        vals.append(v)
    lw.b.call(fn, vals)


def _choose(lw: Any, cond: ir.Value, call: Callable[[], None], own: Callable[[], None]) -> None:
    with lw.b.if_else(cond, likely=None) as (then, otherwise):
        with then:
            call()
        with otherwise:
            own()


def emit_gemm(lw: Any, a: Any, bm: Any, out: Any, own: Callable[[], None],
              gram: bool = False) -> None:
    """``out[m, n] = a[m, k] @ bm[k, n]``; ``gram``: ``a`` is ``bm.T`` (``X.T @ X``)."""
    d = out.dtype
    blas = usable(lw, d)
    m, k = a.shape
    n = bm.shape[1]
    oa = _orient(lw, a, m, k) if blas is not None else None
    ob = _orient(lw, bm, k, n) if oa is not None else None
    if blas is None or oa is None or ob is None:
        own()
        return
    # a few rows: lattice's row-streaming loops are level with one thread of the library
    # and do not wait for its threads (gemm.ROWS_MAX_M)
    conds = _large(lw, [m, n, k], GEMM_MIN_WORK[d]) + [oa.ok]
    conds.append(lw.b.icmp_signed(">", m, c64(ROWS_MAX_M)))
    conds.append(lw.b.icmp_signed(">=", lw.b.mul(m, n), c64(GEMM_MIN_OUT)))
    conds += [] if gram else [ob.ok]
    conds += _fits(lw, blas, [m, n, k, oa.ld, ob.ld])
    p = "s" if d is f32 else "d"

    def call() -> None:
        if gram:  # out = a @ a.T, upper triangle, then mirrored
            _call(lw, blas, p + "syrk", d, "eeeiifpifpi",
                  [_enum(_ROW_MAJOR), _enum(_UPPER), _trans(lw, oa.trans), n, k, 1.0, a.data,
                   oa.ld, 0.0, out.data, n])
            _mirror_upper(lw, out, n)
            return
        _call(lw, blas, p + "gemm", d, "eeeiiifpipifpi",
              [_enum(_ROW_MAJOR), _trans(lw, oa.trans), _trans(lw, ob.trans), m, n, k, 1.0,
               a.data, oa.ld, bm.data, ob.ld, 0.0, out.data, n])
    _choose(lw, _all(lw, conds), call, own)


def _mirror_upper(lw: Any, out: Any, n: ir.Value) -> None:
    """``out[i, j] = out[j, i]`` below the diagonal."""
    def row(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
        lw.for_range(i, [], lambda j, __: (lw.store(out, [i, j], lw.load(out, [j, i])),
                                           [])[1], name="bsj")
        return []
    lw.for_range(n, [], row, name="bsi")


def emit_gemv(lw: Any, a: Any, x: Any, out: Any, own: Callable[[], None], *,
              vector_first: bool = False) -> None:
    """``out = a @ x`` (matrix ``a[m, k]``, vector ``x[k]``), or with ``vector_first``
    ``out = x @ a`` (vector ``x[m]``, matrix ``a[m, k]``)."""
    d = out.dtype
    # a parallel kernel splits its own matrix-vector loops across its threads
    blas = None if lw.parallel else usable(lw, d)
    m, k = a.shape
    oa = _orient(lw, a, m, k) if blas is not None else None
    if blas is None or oa is None or _is(x.strides[0], 0):
        own()
        return
    inc = x.strides[0]
    conds = _large(lw, [m, k], GEMV_MIN_WORK[d]) + [oa.ok, lw.b.icmp_signed(">=", inc, c64(1))]
    conds += _fits(lw, blas, [m, k, oa.ld, inc])
    p = "s" if d is f32 else "d"

    def call() -> None:
        b = lw.b
        # a row-major a is (m, k) to BLAS; a transposed one is its (k, m) transpose
        rows, cols = b.select(oa.trans, k, m), b.select(oa.trans, m, k)
        _call(lw, blas, p + "gemv", d, "eeiifpipifpi",
              [_enum(_ROW_MAJOR), _trans(lw, oa.trans, flip=vector_first), rows, cols, 1.0,
               a.data, oa.ld, x.data, inc, 0.0, out.data, c64(1)])
    _choose(lw, _all(lw, conds), call, own)
