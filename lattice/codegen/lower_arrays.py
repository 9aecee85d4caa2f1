"""Lowerings of the primitives that build, view and index arrays without arithmetic:
``transpose`` and ``reshape`` (views; a reshape of a strided array copies it first),
``concat``, ``full``, ``empty``, ``iota``, ``broadcast_in_dim``, ``dim``,
``index`` (a view or a load; a gather through index arrays), the functional indexed stores
``set`` and ``add_at`` (scatters through index arrays), and ``nonzero`` (compaction).

:func:`index_view` is the region ``x[spec]`` as a view, with its bounds checks; the in-place map
of :mod:`.lower_elementwise` writes through it too.  When ``set`` writes in place or copies
first is part of the ownership rules of :mod:`.lower_core`.

Indexing
--------
Integer indices wrap once when negative.  With ``boundscheck=True`` an index outside
``[-n, n)`` returns an IndexError code naming file:line; with ``boundscheck=False`` it is
undefined behaviour (memory is read or written out of bounds).  Slices with static bounds are
checked always: NumPy's clipped length must equal the symbolic length the IR assumed.

A spec with index arrays (``P.Arr``) is a loop nest over the region (:class:`_ArrayRegion`)
reading each index array element, not a view: ``index`` copies (a gather), ``set`` writes in
index order (the last of repeated indices wins) and ``add_at`` adds every repeat
(``np.add.at``).  Their indices follow the same rules, checked per element, and the
IndexError names the array when the frontend knew its name.
"""
from __future__ import annotations

from typing import Callable, Iterator, Optional, Sequence, Union

import llvmlite.ir as ir

from ..ir import primitives as P
from ..ir.core import Eqn
from ..ir.types import Dim, DType, dim_product, f16, i64
from .lltypes import F16, F32, I1, I8, I64, c64
from .lower_core import (SCALAR_OPS, Lowerer, TensorVal, Value, const_of, convert_scalar,
                         lowering, mem_type)

__all__ = ["index_view"]


@lowering(P.transpose_p)
def _lower_transpose(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    (x,) = ins
    assert isinstance(x, TensorVal)
    perm = e.params["perm"]
    whole = x.whole and list(perm) == list(range(x.ndim))
    return [TensorVal(x.dtype, x.data, [x.shape[k] for k in perm], [x.strides[k] for k in perm],
                      x.buf, whole)]


@lowering(P.reshape_p)
def _lower_reshape(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    """A view with C strides over a C-contiguous input (no copy), else over a C copy of it."""
    x, *sizes = ins
    assert isinstance(x, TensorVal)
    new = list(sizes)  # type: ignore[arg-type]
    _check_sizes(lw, new)
    n_in, n_out = dim_product(e.inputs[0].type.shape), dim_product(e.outs[0].type.shape)
    if n_in is None or n_in != n_out:
        # a symbolic size (or one -1 resolved by division) must give the same element count
        lw.check(lw.b.icmp_signed("==", lw.product(new), lw.product(x.shape)), "ValueError",
                 e.params.get("what") or f"cannot reshape {e.inputs[0].type} into "
                 f"{e.outs[0].type}: the element counts differ at run time")
    src = x if x.whole else lw.copy(x)
    return [TensorVal(x.dtype, src.data, new, lw.c_strides(new), src.buf, True)]


@lowering(P.concat_p)
def _lower_concat(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    """A new array, each input copied into its rows along the axis."""
    axis = e.params["axis"]
    xs = [x for x in ins if isinstance(x, TensorVal)]
    assert len(xs) == len(ins)
    shape = list(xs[0].shape)
    for x in xs[1:]:
        shape[axis] = lw.add(shape[axis], x.shape[axis])
    out = lw.alloc(e.outs[0].type.dtype, shape)
    off: ir.Value = c64(0)
    for x in xs:
        start = lw.b.gep(out.data, [lw.mul(off, out.strides[axis])], inbounds=True,
                         source_etype=mem_type(out.dtype))
        part = TensorVal(out.dtype, start, list(x.shape), list(out.strides))
        lw.nest(x.shape, [], lambda i, _, part=part, x=x: (lw.store(part, i, lw.load(x, i)),
                                                             [])[1], name="cat")
        off = lw.add(off, x.shape[axis])
    return [out]


def _check_sizes(lw: Lowerer, sizes: Sequence[ir.Value]) -> None:
    if not sizes:
        return
    neg = ir.Constant(I1, 0)
    for s in sizes:
        neg = lw.b.or_(neg, lw.b.icmp_signed("<", s, c64(0)))
    lw.check(lw.b.not_(neg), "ValueError", "negative dimensions are not allowed")


@lowering(P.full_p)
def _lower_full(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    fill, *sizes = ins
    if not sizes:
        return [fill]
    _check_sizes(lw, sizes)  # type: ignore[arg-type]
    out = lw.alloc(e.params["dtype"], list(sizes))  # type: ignore[arg-type]
    lw.nest(out.shape, [], lambda idx, _: (lw.store(out, idx, fill), [])[1], name="f")  # type: ignore[arg-type]
    return [out]


@lowering(P.empty_p)
def _lower_empty(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    d: DType = e.params["dtype"]
    if not ins:
        return [const_of(d, 0)]
    _check_sizes(lw, ins)  # type: ignore[arg-type]
    return [lw.alloc(d, list(ins))]  # type: ignore[arg-type]


@lowering(P.iota_p)
def _lower_iota(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    (n,) = ins
    _check_sizes(lw, [n])  # type: ignore[list-item]
    d: DType = e.params["dtype"]
    out = lw.alloc(d, [n])  # type: ignore[list-item]
    lw.for_range(n, [], lambda i, _: (lw.store(out, [i], convert_scalar(lw, i, i64, d)), [])[1],  # type: ignore[arg-type]
                 name="f")
    return [out]


@lowering(P.dim_p)
def _lower_dim(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    (x,) = ins
    assert isinstance(x, TensorVal)
    return [x.shape[e.params["axis"]]]


# ---- indexing
def _slice_bounds(lw: Lowerer, n: ir.Value, s: P.Slice, start: Optional[ir.Value],
                  stop: Optional[ir.Value]) -> tuple[ir.Value, ir.Value]:
    """NumPy's clipped (first, length) of ``start:stop:step`` on an axis of runtime size n."""
    b = lw.b
    step = s.step

    def clip(v: Optional[ir.Value], default: ir.Value, lo: ir.Value, hi: ir.Value) -> ir.Value:
        if v is None:
            return default
        v = b.select(b.icmp_signed("<", v, c64(0)), b.add(v, n), v)
        v = b.select(b.icmp_signed("<", v, lo), lo, v)
        return b.select(b.icmp_signed(">", v, hi), hi, v)

    if step > 0:
        first = clip(start, c64(0), c64(0), n)
        last = clip(stop, n, c64(0), n)
        num = b.add(b.sub(last, first), c64(step - 1))
    else:
        nm1 = b.sub(n, c64(1))
        first = clip(start, nm1, c64(-1), nm1)
        last = clip(stop, c64(-1), c64(-1), nm1)
        num = b.add(b.sub(first, last), c64(-step - 1))
    length = b.sdiv(num, c64(abs(step)))
    length = b.select(b.icmp_signed("<", length, c64(0)), c64(0), length)
    return first, length


def _static_atom(v: Union[None, int, str], it) -> Optional[ir.Value]:
    if v is None:
        return None
    if v == "dyn":
        return next(it)
    return c64(int(v))


def _wrap_index(lw: Lowerer, i: ir.Value, n: ir.Value, axis: int, what: str) -> ir.Value:
    """An i64 index on an axis of runtime size ``n``, negative ones counted from the end;
    with ``boundscheck`` one outside ``[-n, n)`` returns an IndexError code."""
    b = lw.b
    i = b.select(b.icmp_signed("<", i, c64(0)), b.add(i, n), i)
    if lw.boundscheck:
        ok = b.and_(b.icmp_signed(">=", i, c64(0)), b.icmp_signed("<", i, n))
        lw.check(ok, "IndexError", f"index out of range for axis {axis} in {what}")
    return i


def _slice_entry(lw: Lowerer, e: P.Slice, n: ir.Value, it: Iterator[ir.Value], axis: int,
                 what: str) -> tuple[ir.Value, ir.Value]:
    """(first, length) of slice ``e`` (its traced bounds read from ``it``) with the checks of
    the module docstring: a window or static-bound slice that does not fit is an IndexError."""
    b = lw.b
    start = _static_atom(e.start, it)
    stop = _static_atom(e.stop, it)
    if e.size is not None:  # the window start:start+size
        assert start is not None and stop is None
        stop = b.add(start, c64(e.size))
    first, length = _slice_bounds(lw, n, e, start, stop)
    if e.size is not None:
        lw.check(b.icmp_signed("==", length, c64(e.size)), "IndexError",
                 f"slice {_fmt_slice(e)} does not fit axis {axis} in {what}")
    elif e.start != "dyn" and e.stop != "dyn":
        sym = P.slice_len_static(Dim.named("n"), e)
        if sym is not None:
            want = lw.add(lw.mul(n, c64(dict(sym.terms).get("n", 0))), c64(sym.const))
            # NumPy clips: x[:-1] of an empty x is empty (its size n - 1 is then below 0)
            want = b.select(b.icmp_signed("<", want, c64(0)), c64(0), want)
            lw.check(b.icmp_signed("==", want, length), "IndexError",
                     f"slice {_fmt_slice(e)} does not fit axis {axis} in {what}")
    return first, length


def index_view(lw: Lowerer, x: TensorVal, idx: Sequence[Value], spec: P.IndexSpec,
               what: str) -> tuple[TensorVal, bool]:
    """The region ``x[spec]`` as a view; returns (view, is_scalar)."""
    b = lw.b
    it = iter(lw.to_i64(v) for v in idx)  # type: ignore[arg-type]
    off: ir.Value = c64(0)
    shape: list[ir.Value] = []
    strides: list[ir.Value] = []
    for axis, (e, n, st) in enumerate(zip(spec, x.shape, x.strides)):
        if isinstance(e, P.Int):
            off = lw.add(off, lw.mul(_wrap_index(lw, next(it), n, axis, what), st))
            continue
        first, length = _slice_entry(lw, e, n, it, axis, what)
        off = lw.add(off, lw.mul(first, st))
        shape.append(length)
        strides.append(lw.mul(st, c64(e.step)))
    data = b.gep(x.data, [off], inbounds=True, source_etype=mem_type(x.dtype))
    return TensorVal(x.dtype, data, shape, strides, x.buf, False), not shape


def _fmt_slice(s: P.Slice) -> str:
    f = lambda v: "" if v is None else ("?" if v == "dyn" else str(v))  # noqa: E731
    if s.size is not None:
        return f"{f(s.start)}:{f(s.start)}+{s.size}"
    return f"{f(s.start)}:{f(s.stop)}" + (f":{s.step}" if s.step != 1 else "")


# ---- indexing through index arrays (gathers and scatters)
class _ArrayRegion:
    """The region ``x[spec]`` of a spec with index arrays (``P.Arr``): its runtime shape and
    the address of each of its elements, read through the index arrays (NumPy's advanced
    indexing, see ``P.Arr``).  Negative indices wrap once; with ``boundscheck`` an index
    outside ``[-n, n)`` returns an IndexError naming the array and the axis."""

    def __init__(self, lw: Lowerer, x: TensorVal, idx: Sequence[Value], spec: P.IndexSpec,
                 what: str, array: str) -> None:
        self.lw, self.x = lw, x
        self.what = f"{what} of {array!r}" if array else what
        block, at = P.advanced_layout(spec)
        self.at, self.rank = at, len(block)
        self.base: ir.Value = c64(0)
        self.slices: list[tuple[ir.Value, ir.Value]] = []  # (length, element stride)
        # (axis, index array viewed over the broadcast block, axis size, axis stride)
        self.arrays: list[tuple[int, TensorVal, ir.Value, ir.Value]] = []
        block_sizes: list[Optional[ir.Value]] = [None] * len(block)
        it = iter(idx)
        for axis, (ent, n, st) in enumerate(zip(spec, x.shape, x.strides)):
            if isinstance(ent, P.Arr):
                a = next(it)
                assert isinstance(a, TensorVal)
                lead = len(block) - a.ndim
                strides: list[ir.Value] = [c64(0)] * len(block)
                for j, d in enumerate(ent.shape):
                    if d != Dim.of(1):  # only a literal 1 stretches (static broadcasting)
                        strides[lead + j] = a.strides[j]
                        block_sizes[lead + j] = a.shape[j]
                self.arrays.append((axis, TensorVal(a.dtype, a.data, [], strides), n, st))
            elif isinstance(ent, P.Int):
                i = _wrap_index(lw, lw.to_i64(next(it)), n, axis,  # type: ignore[arg-type]
                                self.what)
                self.base = lw.add(self.base, lw.mul(i, st))
            else:
                scalars = (lw.to_i64(a) for a in it)  # type: ignore[arg-type]
                first, length = _slice_entry(lw, ent, n, scalars, axis, self.what)
                self.base = lw.add(self.base, lw.mul(first, st))
                self.slices.append((length, lw.mul(st, c64(ent.step))))
        sizes = [s if s is not None else c64(1) for s in block_sizes]
        lens = [length for length, _ in self.slices]
        self.shape: list[ir.Value] = lens[:at] + sizes + lens[at:]

    def addr(self, i: Sequence[ir.Value]) -> ir.Value:
        """The address of element ``i`` of the region (inside a loop nest over ``shape``)."""
        lw = self.lw
        at, r = self.at, self.rank
        inner = list(i[at:at + r])
        off = self.base
        for k, (_, st) in zip(list(i[:at]) + list(i[at + r:]), self.slices):
            off = lw.add(off, lw.mul(k, st))
        for axis, a, n, st in self.arrays:
            j = _wrap_index(lw, convert_scalar(lw, lw.load(a, inner), a.dtype, i64), n, axis,
                           self.what)
            off = lw.add(off, lw.mul(j, st))
        return lw.b.gep(self.x.data, [off], inbounds=True, source_etype=mem_type(self.x.dtype))

    def load(self, i: Sequence[ir.Value]) -> ir.Value:
        v = self.lw.b.load(self.addr(i), typ=mem_type(self.x.dtype))
        if self.x.dtype.is_bool:
            v = self.lw.b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        elif self.x.dtype is f16:  # half in memory, float in registers (see lower_core)
            v = self.lw.b.fpext(v, F32)
        return v

    def store(self, i: Sequence[ir.Value], v: ir.Value) -> None:
        if self.x.dtype.is_bool:
            v = self.lw.b.zext(v, I8)
        elif self.x.dtype is f16:  # a float register narrowed to the half in memory
            v = self.lw.b.fptrunc(v, F16)
        self.lw.b.store(v, self.addr(i))


def _value_at(lw: Lowerer, e: Eqn, v: Value,
              region_shape: Sequence[ir.Value]) -> Callable[[Sequence[ir.Value]], ir.Value]:
    """Element ``i`` of the value ``v`` a ``set``/``add_at`` stores, broadcast into its
    region of runtime ``region_shape`` (right-aligned; a literal 1 stretches; sizes known only
    at run time must be equal or 1, else a ValueError)."""
    if not isinstance(v, TensorVal):
        return lambda i: v
    b = lw.b
    vt = e.inputs[-1].type
    region_dims = P.index_out_dims(e.inputs[0].type.shape, e.params["spec"])
    lead = len(region_shape) - v.ndim
    vstrides: list[ir.Value] = [c64(0)] * len(region_shape)
    for j in range(v.ndim):
        k = lead + j
        vd, rd = vt.shape[j], region_dims[k]
        if vd == Dim.of(1) and rd != Dim.of(1):
            continue  # statically broadcast
        if vd != rd or vd.is_fresh:
            vn, rn = v.shape[j], region_shape[k]
            one = b.icmp_signed("==", vn, c64(1))
            lw.check(b.or_(b.icmp_signed("==", vn, rn), one), "ValueError",
                     "the stored value's shape does not match the indexed region")
            vstrides[k] = b.select(one, c64(0), v.strides[j])
        else:
            vstrides[k] = v.strides[j]
    src = TensorVal(v.dtype, v.data, [], vstrides)
    return lambda i: lw.load(src, i)


def _lower_gather(lw: Lowerer, e: Eqn, x: TensorVal, idx: Sequence[Value]) -> list[Value]:
    region = _ArrayRegion(lw, x, idx, e.params["spec"], "indexing", e.params.get("array", ""))
    _check_assumed_lengths(lw, e, [length for length, _ in region.slices])
    with lw.held():  # an index error in the loop frees the result being filled
        out = lw.hold(lw.alloc(x.dtype, region.shape))
        lw.nest(out.shape, [], lambda i, _: (lw.store(out, i, region.load(i)), [])[1], name="g")
    if not out.shape:
        return [lw.load(out, [])]  # (cannot happen: an index array has a block axis or is 0-d)
    return [out]


def _lower_scatter(lw: Lowerer, e: Eqn, ins: list[Value], add: bool) -> list[Value]:
    """``set``/``add_at`` through index arrays: in index order, so a repeated index keeps the
    last value (``set``) or adds every one (``add_at``, ``np.add.at``)."""
    x, *idx, v = ins
    assert isinstance(x, TensorVal)
    with lw.held():  # an error return (an index out of range) frees a copy being written
        target = x if lw.movable(0, need_whole=False) else lw.hold(lw.copy(x))
        _scatter_into(lw, e, target, idx, v, add)
    return [target]


def _scatter_into(lw: Lowerer, e: Eqn, target: TensorVal, idx: Sequence[Value], v: Value,
                  add: bool) -> None:
    what = "an indexed update" if add else "an indexed store"
    region = _ArrayRegion(lw, target, idx, e.params["spec"], what, e.params.get("array", ""))
    val_at = _value_at(lw, e, v, region.shape)
    op = SCALAR_OPS[P.add_p]

    def body(i: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        val = val_at(i)
        if add:
            ptr = region.addr(i)
            old = lw.b.load(ptr, typ=mem_type(target.dtype))
            if target.dtype is f16:  # f16 is a storage type: computed in f32 registers
                old = lw.b.fpext(old, F32)
            new = op(lw, e, [old, val])  # type: ignore[list-item]
            lw.b.store(lw.b.fptrunc(new, F16) if target.dtype is f16 else new, ptr)
        else:
            region.store(i, val)  # type: ignore[arg-type]
        return []
    lw.nest(region.shape, [], body, name="sc")


@lowering(P.index_p)
def _lower_index(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    x, *idx = ins
    assert isinstance(x, TensorVal)
    if P.has_arrays(e.params["spec"]):
        return _lower_gather(lw, e, x, idx)
    view, scalar_ = index_view(lw, x, idx, e.params["spec"], "indexing")
    _check_assumed_lengths(lw, e, view.shape)
    if scalar_:
        return [lw.load(view, [])]
    return [view]


def _check_assumed_lengths(lw: Lowerer, e: Eqn, lengths: Sequence[ir.Value]) -> None:
    """A slice with traced bounds affine in sizes (``x[1:I + 3]``) has the symbolic length
    ``stop - start`` in the IR, which assumes ``0 <= start <= stop <= n``; NumPy would clip a
    bound outside, giving another length, so that is an IndexError naming the array here.
    ``lengths`` are the run-time lengths of the spec's slices, in order."""
    spec = e.params["spec"]
    dims = list(e.outs[0].type.shape)
    if P.has_arrays(spec):
        block, at = P.advanced_layout(spec)
        del dims[at:at + len(block)]
    array = e.params.get("array", "")
    of = f" of {array!r}" if array else ""
    k = -1  # the position of this slice among the spec's slices
    for axis, ent in enumerate(spec):
        if not isinstance(ent, P.Slice):
            continue
        k += 1
        d = dims[k]
        if ent.size is not None or "dyn" not in (ent.start, ent.stop) or d.is_fresh:
            continue
        lw.check(lw.b.icmp_signed("==", lengths[k], lw.dim_value(d)), "IndexError",
                 f"a slice{of} on axis {axis} reaches outside the array: its size {d} "
                 "assumes 0 <= start <= stop <= the axis size (where NumPy would clip)")


@lowering(P.set_p)
def _lower_set(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    x, *idx, v = ins
    assert isinstance(x, TensorVal)
    if P.has_arrays(e.params["spec"]):
        return _lower_scatter(lw, e, ins, add=False)
    if id(e) in lw.prestored:  # the map computing v wrote the region already (_map_dest)
        lw.prestored.discard(id(e))
        assert lw.movable(0, need_whole=False)
        return [x]
    with lw.held():  # the checks below free a copy made for the store
        if lw.movable(0, need_whole=False):
            target = x  # in place: x and every view of it are dead after this store
        else:
            target = lw.hold(lw.copy(x))
        region, scalar_ = index_view(lw, target, idx, e.params["spec"], "an indexed store")
        if scalar_:
            lw.store(region, [], v)  # type: ignore[arg-type]
            return [target]
        val_at = _value_at(lw, e, v, region.shape)
    lw.nest(region.shape, [], lambda i, _: (lw.store(region, i, val_at(i)), [])[1], name="s")
    return [target]


@lowering(P.add_at_p)
def _lower_add_at(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    # as ``set``, adding into the region instead of overwriting it (in place when x is dead)
    x, *idx, v = ins
    assert isinstance(x, TensorVal)
    if P.has_arrays(e.params["spec"]):
        return _lower_scatter(lw, e, ins, add=True)
    with lw.held():  # the checks below free a copy made for the update
        target = x if lw.movable(0, need_whole=False) else lw.hold(lw.copy(x))
        region, scalar_ = index_view(lw, target, idx, e.params["spec"], "an indexed update")
        add = SCALAR_OPS[P.add_p]
        if scalar_:
            lw.store(region, [], add(lw, e, [lw.load(region, []), v]))  # type: ignore[list-item]
            return [target]
        val_at = _value_at(lw, e, v, region.shape)

    def body(i: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        lw.store(region, i, add(lw, e, [lw.load(region, i), val_at(i)]))
        return []
    lw.nest(region.shape, [], body, name="a")
    return [target]


@lowering(P.nonzero_p)
def _lower_nonzero(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    """Compaction: count the non-zero elements, allocate one index array per axis of that
    length, then walk ``x`` again in C order writing the positions."""
    (x,) = ins
    assert isinstance(x, TensorVal)
    b = lw.b
    zero = const_of(x.dtype, 0)

    def nz(v: ir.Value) -> ir.Value:
        if x.dtype.is_bool:
            return v
        if x.dtype.is_float:
            return b.fcmp_unordered("!=", v, zero)  # NaN counts, as in NumPy
        return b.icmp_signed("!=", v, zero)

    (count,) = lw.nest(x.shape, [c64(0)], lambda i, acc: [
        b.add(acc[0], b.zext(nz(lw.load(x, i)), I64))], name="nzc")
    with lw.held():
        outs = [lw.hold(lw.alloc(i64, [count])) for _ in range(x.ndim)]

        def fill(i: list[ir.Value], acc: list[ir.Value]) -> list[ir.Value]:
            hit = nz(lw.load(x, i))
            with b.if_then(hit):
                for o, k in zip(outs, i):
                    lw.store(o, [acc[0]], k)
            return [b.add(acc[0], b.zext(hit, I64))]
        lw.nest(x.shape, [c64(0)], fill, name="nzf")
    return list(outs)


@lowering(P.broadcast_in_dim_p)
def _lower_broadcast_in_dim(lw: Lowerer, e: Eqn, ins: list[Value]) -> list[Value]:
    # materialised (a stride-0 view could be written through by an in-place ``set``)
    x, *sizes = ins
    dims = e.params["dims"]
    axes = e.params["axes"]
    xt = e.inputs[0].type
    if not sizes:
        return [x]
    _check_sizes(lw, sizes)  # type: ignore[arg-type]
    out = lw.alloc(xt.dtype, list(sizes))  # type: ignore[arg-type]

    def body(i: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
        if isinstance(x, TensorVal):
            xi = [c64(0) if xt.shape[k] == Dim.of(1) and dims[a] != Dim.of(1) else i[a]
                  for k, a in enumerate(axes)]
            val = lw.load(x, xi)
        else:
            val = x
        lw.store(out, i, val)
        return []
    lw.nest(out.shape, [], body, name="b")
    return [out]
