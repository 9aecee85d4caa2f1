"""The low room of the lowering: how values are represented, who owns heap buffers, the rule
tables every lowering registers into, and the :class:`Lowerer` whose emission helpers they
all call.

Contract: this module imports no lowering room (``lower_*.py``), :mod:`.gemm` or
:mod:`.matvec`; they all import it.  :func:`lowering` is the one way a rule enters
:data:`LOWERINGS`; elementwise scalar ops go into :data:`SCALAR_OPS`.  The tables are complete
once the entry :mod:`.lower` has been imported (it imports every room).

Representation
--------------
* A scalar (shape ``()``) is an LLVM SSA value: ``i1`` for bool (``i8`` in memory), ``i8``
  to ``i64`` for the integers (signed and unsigned alike: the signedness is in the dtype and
  picks the instruction: ``udiv``/``lshr``/``icmp ult``/``uitofp``...), ``float``, ``double``.
  ``f16`` is ``half`` in memory and ``float`` in registers: a load widens, a store narrows, and
  every op with an f16 result rounds it to f16 (:func:`round_f16`), so an f16 register always
  holds an f16 value.
* A tensor is a Python-side :class:`TensorVal`: data pointer, runtime ``i64`` shape values,
  runtime element strides (constants where known: C layout and fresh buffers have innermost
  stride 1, so LLVM sees unit stride), and the heap :class:`Buf` it lives in (or none).
* Named dims are bound at entry from parameter shapes; fresh dims (``?...``) are bound when the
  value that introduces them is lowered.  Each tensor carries its own runtime shape, so derived
  sizes (slices, fresh dims) need no Dim arithmetic; :meth:`Lowerer.dim_value` evaluates a
  ``Dim`` only where no tensor carries it (a ``fused`` space axis no input spans).

Ownership of heap buffers
-------------------------
* Kernel arguments, and views of anything (``index`` with slices, ``transpose``), are *borrowed*
  by whoever did not allocate the underlying buffer.  Results of allocating ops are *owned* by
  the Func (scope) whose equation produced them; so are a loop body's carried tensor params.
* Within a scope, a buffer is freed right after the last use of every Var sharing it (views
  included); the outputs of the scope count as uses at its end.
* A loop body, a cond branch and the kernel itself hand back outputs as owned, whole (not a
  view), C-contiguous buffers with pairwise distinct roots; a borrowed, viewed or repeated output
  is copied first.  Loop-carried tensors therefore always are fresh C-contiguous buffers.
* A loop's initial carried tensor is moved into the loop (no copy) when it is owned, whole, not
  passed to the loop in another position, and dead after the loop together with every view of
  its buffer; otherwise it is copied.  A cond hands an owned, whole operand that dies at it
  to the branch that runs (which may store into it in place); other operands are borrowed.
  An operand both branches updated in place (or returned) comes out as that same buffer.
  (:mod:`.lower_control`)
* A ``dim`` equation is not a use of its operand's buffer: it reads a size the lowering
  keeps, valid after the buffer is freed.
* ``set`` (functional indexed store) writes in place when its input is owned, its buffer is dead
  after the ``set`` together with every view of it, and the stored value does not read the same
  buffer; otherwise it copies the input first.  A value used after being stored into therefore
  keeps its old contents.  (:mod:`.lower_arrays`)
* An elementwise map (a lone op or a ``fused`` body without reduction) writes over an input of
  its own type that is owned, whole and dies at the map (``acc = acc + x`` in a loop allocates
  nothing), or -- when its only use is the ``set`` right after it into a region of an owned
  array that dies there, and every input viewing that array is that same region -- directly
  into the region, and the ``set`` is skipped (``H[j] = H[j] + a * x``: no temporary, no
  copy).  See ``_map_dest`` in :mod:`.lower_elementwise`.
* An error return (``Lowerer.check``, a failed parallel chunk) first frees every buffer the
  scopes being lowered in the current function own, and the temporaries an equation's own
  lowering holds before handing them to a scope (``Lowerer.held``/``hold``: a row pass's
  sums, a ``rowreduce``'s row values, a loop's carried copies); a ``prange`` loop's shared
  arrays are freed by the enclosing function's error path, not by the thread that failed.
* The kernel's tensor results are handed over (``OutSpec.alloc``): an owned, whole buffer
  leaves the scope as the result (a borrowed, viewed or repeated one is copied first) and the
  caller frees it, so a result costs no copy.  A *donated* param (a written argument,
  C-contiguous) is the exception: its memory is owned by the kernel's scope from the
  start, so the stores into the argument and the loops and branches carrying it update it in
  place; it is never freed
  (:meth:`Lowerer.free` compares every pointer it frees with the donated ones, since a phi
  may hold either), and its new contents are left in it (copied there only when they ended
  up elsewhere).
"""
from __future__ import annotations

import mmap
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import count
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import llvmlite.ir as ir
import numpy as np

from ..errors import CompileError
from ..ir import primitives as P
from ..ir.core import Atom, Eqn, Func, Lit, Primitive, SourceLoc, Var
from ..ir.types import Dim, DType, TensorType, f16, f32, product_factors
from .lltypes import C64, C128, F16, F32, F64, I1, I8, I16, I32, I64, PTR, c64
from .parallel import emit_parallel_for

#: blocks of at least this many bytes (results and temporaries) are marked for transparent huge
#: pages: the C allocator serves them from a fresh mapping each time, and a new result faulted
#: in 4 KiB page by page made a 4M-element map cost several times NumPy's, whose allocator
#: marks its big blocks the same way.  Linux only (``MADV_HUGEPAGE`` is 14 there).
HUGE_BLOCK = 4 << 20
HUGE_PAGES = sys.platform.startswith("linux")
_MADV_HUGEPAGE = 14
_PAGE = mmap.PAGESIZE

__all__ = ["Lowerer", "LOWERINGS", "SCALAR_OPS", "Lowering", "lowering", "TensorVal", "Buf",
           "Value", "reg_type", "mem_type", "const_of", "is_float", "fconst", "convert_scalar",
           "defining_eqn", "reduce_init", "combine", "FAST_FLAGS", "round_f16", "is_complex",
           "complex_parts", "make_complex"]

FAST_FLAGS = ("reassoc", "contract", "nsz", "arcp")  # never nnan/ninf: NaN/inf stay NumPy's

_INTS = {"i8": I8, "i16": I16, "i32": I32, "i64": I64, "u8": I8, "u16": I16, "u32": I32,
         "u64": I64}
_REG = {"bool": I1, **_INTS, "f16": F32, "f32": F32, "f64": F64, "c64": C64, "c128": C128}
_MEM = {"bool": I8, **_INTS, "f16": F16, "f32": F32, "f64": F64, "c64": C64, "c128": C128}


def reg_type(d: DType) -> ir.Type:
    return _REG[d.name]


def mem_type(d: DType) -> ir.Type:
    return _MEM[d.name]


# --------------------------------------------------------------------------- values
_buf_ids = count(1)


class Buf:
    """A heap allocation; ``scope`` is the lowering scope that owns it (None: not yet adopted)."""

    __slots__ = ("ptr", "id", "scope")

    def __init__(self, ptr: ir.Value) -> None:
        self.ptr = ptr
        self.id = next(_buf_ids)
        self.scope: Optional[_Scope] = None


@dataclass
class TensorVal:
    """A tensor during lowering: runtime shape/strides (element units) and its buffer."""

    dtype: DType
    data: ir.Value
    shape: list[ir.Value]
    strides: list[ir.Value]
    buf: Optional[Buf] = None  # None: borrowed from the caller
    whole: bool = False  # data is buf.ptr and strides are C-contiguous for shape

    @property
    def ndim(self) -> int:
        return len(self.shape)


Value = Union[ir.Value, TensorVal]

# --------------------------------------------------------------------------- scopes
class _Scope:
    """Liveness and buffer ownership for the lowering of one Func (see module docstring)."""

    def __init__(self, func: Func) -> None:
        self.func = func
        self.end = len(func.eqns)
        self.last_use: dict[Var, int] = {p: -1 for p in func.params}
        for k, e in enumerate(func.eqns):
            if e.prim is P.dim_p:
                continue  # reads a size the lowering keeps, not the buffer: no use of it
            for a in e.inputs:
                if isinstance(a, Var):
                    self.last_use[a] = k
            for v in e.outs:
                self.last_use[v] = k
        for a in func.outs:
            if isinstance(a, Var):
                self.last_use[a] = self.end
        self.owned: dict[int, Buf] = {}
        self.refs: dict[int, set[Var]] = {}
        self.fn: Optional[ir.Function] = None  # the function its code is emitted into

    def register(self, v: Var, val: Value) -> None:
        if not isinstance(val, TensorVal) or val.buf is None:
            return
        b = val.buf
        if b.scope is None:
            b.scope = self
            self.owned[b.id] = b
            self.refs[b.id] = set()
        if b.scope is self and b.id in self.owned:
            self.refs[b.id].add(v)

    def dead_after(self, b: Buf, k: int) -> bool:
        return all(self.last_use[v] <= k for v in self.refs[b.id])

    def owns(self, b: Optional[Buf]) -> bool:
        return b is not None and b.scope is self and b.id in self.owned

    def release(self, b: Buf) -> None:
        """Stop owning ``b`` (moved into a loop, or returned)."""
        self.owned.pop(b.id, None)
        self.refs.pop(b.id, None)


# --------------------------------------------------------------------------- tables
Lowering = Callable[["Lowerer", Eqn, list[Value]], list[Value]]
#: prim -> rule(lowerer, eqn, input values) -> output values.  The one registration path.
LOWERINGS: dict[Primitive, Lowering] = {}
#: elementwise prim -> fn(lowerer, eqn, scalar args) -> scalar; used for whole-tensor
#: elementwise equations (a loop nest with this one-op body) and inside ``fused`` bodies.
SCALAR_OPS: dict[Primitive, Callable[["Lowerer", Eqn, list[ir.Value]], ir.Value]] = {}


def lowering(*prims: Primitive) -> Callable[[Lowering], Lowering]:
    """Decorator: register the rule as the lowering of every primitive in ``prims``."""
    def deco(fn: Lowering) -> Lowering:
        for p in prims:
            LOWERINGS[p] = fn
        return fn
    return deco


# --------------------------------------------------------------------------- the lowerer
class Lowerer:
    def __init__(self, module: ir.Module, fn: ir.Function, *, fastmath: bool,
                 boundscheck: bool, parallel: Optional[bool] = False) -> None:
        self.module = module
        self.fn = fn
        self.b = ir.IRBuilder(fn.append_basic_block("entry"))
        self.fastmath = fastmath
        #: split outer loops of loop nests across threads (parallel.py); ``parallel`` None
        #: (automatic) does too, but keeps strict float reductions serial (:meth:`may_reorder`)
        self.parallel = parallel is not False
        self.strict_order = parallel is None and not fastmath
        self.fm: tuple[str, ...] = FAST_FLAGS if fastmath else ()
        self.boundscheck = boundscheck
        self.errors: list[tuple[str, str]] = []
        self._error_codes: dict[tuple[str, str], int] = {}
        self._decls: dict[str, ir.Function] = {}
        self.env: dict[Var, Value] = {}
        self.dims: dict[str, ir.Value] = {}
        self.scope: Optional[_Scope] = None
        self.eqn_index = -1
        self.eqn: Optional[Eqn] = None
        self.loc: Optional[SourceLoc] = None
        self.prestored: set[int] = set()  # ids of set eqns whose region a map wrote directly
        #: the scopes being lowered, outermost first: an error return frees what those of the
        #: current function own (:meth:`free_on_error`)
        self.live_scopes: list[_Scope] = []
        #: data pointers an error return must not free (arrays a prange loop's threads share),
        #: by ``id`` (every buffer adopting one of them, in a branch say, has the same pointer)
        self.keep_on_error: dict[int, ir.Value] = {}
        #: temporaries an equation's lowering made and has not yet handed to a scope, with the
        #: function they were allocated in (:meth:`held`)
        self.held_bufs: list[tuple[ir.Function, Buf]] = []
        self.held_marks: list[int] = []
        #: data pointers of donated params (written arguments updated in place): the
        #: caller's memory, which :meth:`free` never frees (``lower.lower_func``)
        self.donated: list[ir.Value] = []
        # > 0 while lowering the element of a loop nest this module emits (maps, reductions,
        # fused bodies, row passes): loops the vectoriser may widen; 0 in user loop bodies,
        # whose scalar code runs one iteration at a time
        self.in_nest = 0
        # > 0 while lowering the body of an outlined parallel chunk (parallel.py), where no
        # call of a library that runs threads of its own (the BLAS) may be emitted
        self.in_chunk = 0

    # ---- declarations
    def declare(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        f = self._decls.get(name)
        if f is None:
            f = self.module.globals.get(name)
            if f is None:
                f = ir.Function(self.module, ir.FunctionType(ret, list(args)), name)
            self._decls[name] = f
        return f

    def intrinsic(self, base: str, ty: ir.Type, args: list[ir.Value], n_args: int = 0,
                  flags: Sequence[str] = ()) -> ir.Value:
        suffix = {F32: "f32", F64: "f64"}.get(ty) or f"i{ty.width}"
        f = self.declare(f"llvm.{base}.{suffix}", ty, [ty] * (n_args or len(args)))
        return self.b.call(f, args, fastmath=tuple(flags))

    def libm(self, name: str, ty: ir.Type, args: list[ir.Value]) -> ir.Value:
        f = self.declare(name + ("f" if ty == F32 else ""), ty, [ty] * len(args))
        return self.b.call(f, args)

    # ---- errors
    def error_code(self, cls: str, msg: str) -> int:
        loc = self.loc
        if loc is not None:
            if loc.what:
                msg = f"{msg} in {loc.what}"
            msg = f"{msg} at {loc}"
        key = (cls, msg)
        if key not in self._error_codes:
            self.errors.append(key)
            self._error_codes[key] = len(self.errors)
        return self._error_codes[key]

    def check(self, ok: ir.Value, cls: str, msg: str) -> None:
        """Continue if ``ok`` (i1) holds, else return the error code for (cls, msg)."""
        code = self.error_code(cls, msg)
        fail = self.fn.append_basic_block("fail")
        cont = self.fn.append_basic_block("ok")
        self.b.cbranch(ok, cont, fail)
        self.b.position_at_end(fail)
        self.free_on_error()
        self.b.ret(ir.Constant(I32, code))
        self.b.position_at_end(cont)

    def free_on_error(self) -> None:
        """Free, on an error path, every buffer the scopes being lowered in this function own
        (each was allocated on every path here: a scope's buffers come from equations that
        dominate the ones after them) and every temporary held in it (:meth:`hold`)."""
        for scope in self.live_scopes:
            if scope.fn is self.fn:
                for buf in scope.owned.values():
                    if id(buf.ptr) not in self.keep_on_error:
                        self.free(buf)
        for fn, buf in self.held_bufs:
            if fn is self.fn:
                self.free(buf)

    @contextmanager
    def held(self) -> Iterator[None]:
        """A block in which :meth:`hold` marks temporaries: an error return emitted in the
        block also frees them (they are freed or handed to a scope by the block's end)."""
        self.held_marks.append(len(self.held_bufs))
        try:
            yield
        finally:
            del self.held_bufs[self.held_marks.pop():]

    def hold(self, t: TensorVal) -> TensorVal:
        """Mark ``t``, a temporary the equation being lowered made and no scope owns yet (the
        first of two allocations, when the second fails; a row pass's partial sums), to be
        freed by error returns in this function until the enclosing :meth:`held` block ends.
        It must dominate the code emitted after it in the block (allocated in straight-line
        code, not in one branch)."""
        assert self.held_marks and t.buf is not None, "hold() outside a held() block"
        self.held_bufs.append((self.fn, t.buf))
        return t

    # ---- atoms and dims
    def read(self, a: Atom) -> Value:
        if isinstance(a, Lit):
            return const_of(a.type.dtype, a.value)
        return self.env[a]

    def dim_value(self, d: Dim) -> ir.Value:
        acc: Optional[ir.Value] = None
        for name, c in d.terms:
            v = self.dims.get(name)
            if v is None and "*" in name:  # a product of named dims (types.dim_product)
                fs = [self.dims.get(f) for f in product_factors(name)]
                if all(f is not None for f in fs):
                    v = self.product(fs)  # type: ignore[arg-type]
            if v is None:
                raise CompileError(f"the size {d} cannot be computed here: dimension {name} "
                                   "is not bound by any argument shape", self.loc)
            term = self.mul(v, c64(c))
            acc = term if acc is None else self.add(acc, term)
        return c64(d.const) if acc is None else self.add(acc, c64(d.const))

    def bind_dims(self, t: TensorType, val: Value) -> None:
        if not isinstance(val, TensorVal):
            return
        for d, v in zip(t.shape, val.shape):
            if d.const == 0 and len(d.terms) == 1 and d.terms[0][1] == 1:
                self.dims.setdefault(d.terms[0][0], v)

    # ---- integer helpers
    def mul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        if isinstance(a, ir.Constant) and isinstance(b, ir.Constant):
            return c64(a.constant * b.constant)
        if isinstance(b, ir.Constant) and b.constant == 1:
            return a
        if isinstance(a, ir.Constant) and a.constant == 1:
            return b
        return self.b.mul(a, b, flags=("nsw",))

    def add(self, a: ir.Value, b: ir.Value) -> ir.Value:
        if isinstance(a, ir.Constant) and isinstance(b, ir.Constant):
            return c64(a.constant + b.constant)
        if isinstance(b, ir.Constant) and b.constant == 0:
            return a
        if isinstance(a, ir.Constant) and a.constant == 0:
            return b
        return self.b.add(a, b, flags=("nsw",))

    def product(self, xs: Sequence[ir.Value]) -> ir.Value:
        acc: ir.Value = c64(1)
        for x in xs:
            acc = self.mul(acc, x)
        return acc

    def to_i64(self, v: ir.Value) -> ir.Value:
        if v.type == I64:
            return v
        return self.b.sext(v, I64)

    # ---- memory
    def c_strides(self, shape: Sequence[ir.Value]) -> list[ir.Value]:
        strides: list[ir.Value] = [c64(1)] * len(shape)
        for k in range(len(shape) - 2, -1, -1):
            strides[k] = self.mul(strides[k + 1], shape[k + 1])
        return strides

    def alloc(self, dtype: DType, shape: list[ir.Value]) -> TensorVal:
        """A fresh C-contiguous buffer (not yet owned by any scope)."""
        malloc = self.declare("malloc", PTR, [I64])
        nbytes = self.alloc_size(shape, dtype.itemsize)
        ptr = self.b.call(malloc, [nbytes])
        if not malloc.return_value.attributes:
            malloc.return_value.add_attribute("noalias")
        is_null = self.b.icmp_unsigned("==", ptr, ir.Constant(PTR, None))
        nonzero = self.b.icmp_signed(">", nbytes, c64(0))
        self.check(self.b.not_(self.b.and_(is_null, nonzero)), "MemoryError",
                   "out of memory allocating a temporary")
        if HUGE_PAGES:
            self._advise_huge(ptr, nbytes)
        buf = Buf(ptr)
        return TensorVal(dtype, ptr, list(shape), self.c_strides(shape), buf, True)

    def _advise_huge(self, ptr: ir.Value, nbytes: ir.Value) -> None:
        """Mark the whole pages of a block of at least :data:`HUGE_BLOCK` bytes for transparent
        huge pages (``madvise(MADV_HUGEPAGE)``; its result is ignored: advice only)."""
        if isinstance(nbytes, ir.Constant) and nbytes.constant < HUGE_BLOCK:
            return
        madvise = self.declare("madvise", I32, [PTR, I64, I32])
        big = self.b.icmp_signed(">=", nbytes, c64(HUGE_BLOCK))
        with self.b.if_then(big, likely=False):
            p = self.b.ptrtoint(ptr, I64)
            start = self.b.and_(self.b.add(p, c64(_PAGE - 1)), c64(-_PAGE))
            length = self.b.sub(self.b.add(p, nbytes), start)
            self.b.call(madvise, [self.b.inttoptr(start, PTR), length, I32(_MADV_HUGEPAGE)])

    def alloc_size(self, shape: Sequence[ir.Value], itemsize: int) -> ir.Value:
        """Bytes for a C buffer of ``shape`` (sizes >= 0); a size whose byte count overflows
        i64 returns a MemoryError code instead of wrapping (the ``nsw`` multiply in
        :meth:`mul` would make it poison, and a wrapped size would under-allocate)."""
        acc: ir.Value = c64(itemsize)
        overflow: Optional[ir.Value] = None
        for s in shape:
            if isinstance(acc, ir.Constant) and isinstance(s, ir.Constant) \
                    and acc.constant * s.constant < 2**63:
                acc = c64(acc.constant * s.constant)
                continue
            r = self.b.smul_with_overflow(acc, s)
            acc = self.b.extract_value(r, 0)
            o = self.b.extract_value(r, 1)
            overflow = o if overflow is None else self.b.or_(overflow, o)
        if overflow is not None:
            self.check(self.b.not_(overflow), "MemoryError",
                       "a temporary array is too large (its size in bytes overflows 64 bits)")
        return acc

    def free(self, buf: Buf) -> None:
        fn = self.declare("free", ir.VoidType(), [PTR])
        if not self.donated:
            self.b.call(fn, [buf.ptr])
            return
        # a buffer may be a donated argument's memory (moved into loops and branches, it is
        # known only at run time): that one is the caller's, never freed
        mine = self.b.icmp_unsigned("!=", buf.ptr, self.donated[0])
        for d in self.donated[1:]:
            mine = self.b.and_(mine, self.b.icmp_unsigned("!=", buf.ptr, d))
        with self.b.if_then(mine):
            self.b.call(fn, [buf.ptr])

    def addr(self, t: TensorVal, idx: Sequence[ir.Value]) -> ir.Value:
        off: ir.Value = c64(0)
        for i, s in zip(idx, t.strides):
            off = self.add(off, self.mul(i, s))
        return self.b.gep(t.data, [off], inbounds=True, source_etype=mem_type(t.dtype))

    def load(self, t: TensorVal, idx: Sequence[ir.Value]) -> ir.Value:
        v = self.b.load(self.addr(t, idx), typ=mem_type(t.dtype))
        if t.dtype.is_bool:
            v = self.b.icmp_unsigned("!=", v, ir.Constant(I8, 0))
        elif t.dtype is f16:
            v = self.b.fpext(v, F32)
        return v

    def store(self, t: TensorVal, idx: Sequence[ir.Value], v: ir.Value) -> None:
        if t.dtype.is_bool:
            v = self.b.zext(v, I8)
        elif t.dtype is f16:
            v = self.b.fptrunc(v, F16)
        self.b.store(v, self.addr(t, idx))

    # ---- loops
    def for_range(self, n: ir.Value, carried: list[ir.Value],
                  body: Callable[[ir.Value, list[ir.Value]], list[ir.Value]],
                  name: str = "i", unroll: bool = True) -> list[ir.Value]:
        """``for i in range(n)`` with loop-carried SSA values; returns their final values.
        ``unroll=False``: LLVM must neither unroll nor vectorise it (a body already large, or
        a loop of a few iterations: that would add machine code and compile time, not
        speed)."""
        b = self.b
        pre = b.block
        header = self.fn.append_basic_block(f"{name}.head")
        body_bb = self.fn.append_basic_block(f"{name}.body")
        exit_bb = self.fn.append_basic_block(f"{name}.exit")
        b.branch(header)
        b.position_at_end(header)
        i = b.phi(I64, name=name)
        i.add_incoming(c64(0), pre)
        phis = []
        for v in carried:
            ph = b.phi(v.type)
            ph.add_incoming(v, pre)
            phis.append(ph)
        b.cbranch(b.icmp_signed("<", i, n), body_bb, exit_bb)
        b.position_at_end(body_bb)
        new = body(i, list(phis))
        nxt = b.add(i, c64(1), flags=("nuw", "nsw"))
        latch = b.block
        i.add_incoming(nxt, latch)
        for ph, v in zip(phis, new):
            ph.add_incoming(v, latch)
        br = b.branch(header)
        if not unroll:
            br.set_metadata("llvm.loop", self._no_unroll_loop_id())
        b.position_at_end(exit_bb)
        return list(phis)

    def _no_unroll_loop_id(self) -> Any:
        """A fresh loop ID that turns off unrolling and vectorisation (self-referential, so
        every loop has its own)."""
        m = self.module
        unroll = m.add_metadata([ir.MetaDataString(m, "llvm.loop.unroll.disable")])
        vec = m.add_metadata([ir.MetaDataString(m, "llvm.loop.vectorize.enable"),
                              ir.Constant(ir.IntType(1), 0)])
        self._loop_ids = getattr(self, "_loop_ids", 0) + 1
        loop = m.add_metadata([ir.MetaDataString(m, f"lattice.loop.{self._loop_ids}")])
        loop.operands = (loop, unroll, vec)  # the string only made it unique in llvmlite's cache
        return loop

    def nest(self, sizes: Sequence[ir.Value], carried: list[ir.Value],
             body: Callable[[list[ir.Value], list[ir.Value]], list[ir.Value]],
             name: str = "i") -> list[ir.Value]:
        """Nested ``for_range`` over ``sizes`` (first outermost)."""
        def level(k: int, idx: list[ir.Value], acc: list[ir.Value]) -> list[ir.Value]:
            if k == len(sizes):
                return body(idx, acc)
            return self.for_range(sizes[k], acc, lambda i, a: level(k + 1, idx + [i], a),
                                  name=f"{name}{k}")
        return level(0, [], carried)

    def may_reorder(self, dtype: DType) -> bool:
        """May a reduction in ``dtype`` be split into chunks whose partial results are
        combined afterwards?  Not a float one in an automatic kernel with strict math: there
        the split would round differently from the plain loop."""
        return not (self.strict_order and (dtype.is_float or dtype.is_complex))

    @contextmanager
    def serial(self, really: bool = True) -> Iterator[None]:
        """Lower the enclosed loop nests on the calling thread only (when ``really``)."""
        was = self.parallel
        self.parallel = was and not really
        try:
            yield
        finally:
            self.parallel = was

    def split_nest(self, sizes: Sequence[ir.Value],
                   body: Callable[[list[ir.Value], list[ir.Value]], list[ir.Value]],
                   name: str = "i", work: Optional[ir.Value] = None) -> None:
        """``nest(sizes, [], body)`` whose outermost loop is split across threads when the
        kernel is parallel (``work``: element operations of the whole nest, default the
        product of ``sizes``).  ``body`` must touch disjoint memory per outer index and refer
        to the builder as ``self.b`` (it may run in an outlined function)."""
        if not self.parallel or not sizes:
            self.nest(sizes, [], body, name=name)
            return

        def chunk(_c: ir.Value, lo: ir.Value, hi: ir.Value) -> None:
            def outer(i: ir.Value, _: list[ir.Value]) -> list[ir.Value]:
                i = self.b.add(i, lo)
                return self.nest(sizes[1:], [], lambda idx, a: body([i] + idx, a), name=name)
            self.for_range(self.b.sub(hi, lo), [], outer, name=name + "c")
        emit_parallel_for(self, sizes[0], work if work is not None else self.product(sizes),
                          chunk)

    def copy(self, t: TensorVal) -> TensorVal:
        """A fresh whole C-contiguous copy (not yet owned)."""
        out = self.alloc(t.dtype, t.shape)
        self.copy_into(out, t)
        return out

    def copy_into(self, dst: TensorVal, src: TensorVal) -> None:
        def body(idx: list[ir.Value], _: list[ir.Value]) -> list[ir.Value]:
            self.store(dst, idx, self.load(src, idx))
            return []
        self.nest(src.shape, [], body, name="cp")

    # ---- funcs
    def lower_body(self, func: Func, args: Sequence[Value]) -> tuple[list[Value], _Scope]:
        """Lower ``func``'s equations with ``args`` bound to its params, in a new scope.

        Returns the output values and the scope (still owning its live buffers; the caller
        finishes it with :meth:`finish_outputs` or :meth:`free_all`)."""
        saved = (self.env, self.dims, self.scope, self.eqn_index, self.eqn, self.loc)
        self.env = {}
        self.dims = dict(self.dims)
        scope = self.scope = _Scope(func)
        scope.fn = self.fn
        self.live_scopes.append(scope)
        try:
            for p, a in zip(func.params, args):
                self.env[p] = a
                scope.register(p, a)
                self.bind_dims(p.type, a)
            self._free_dead(func.params, -1)
            for k, e in enumerate(func.eqns):
                self.eqn_index, self.eqn = k, e
                self.loc = e.loc if e.loc is not None else saved[5]
                rule = LOWERINGS.get(e.prim)
                if rule is None:
                    raise CompileError(f"no lowering for primitive {e.prim.name}", self.loc)
                outs = rule(self, e, [self.read(a) for a in e.inputs])
                assert len(outs) == len(e.outs), e.prim
                for v, o in zip(e.outs, outs):
                    self.env[v] = o
                    scope.register(v, o)
                    self.bind_dims(v.type, o)
                self._free_dead([a for a in e.inputs if isinstance(a, Var)] + list(e.outs), k)
            results = [self.read(a) for a in func.outs]
        finally:
            self.live_scopes.pop()
            self.env, self.dims, self.scope, self.eqn_index, self.eqn, self.loc = saved
        return results, scope

    def _free_dead(self, vars_: Sequence[Var], k: int) -> None:
        scope = self.scope
        assert scope is not None
        for v in vars_:
            val = self.env.get(v)
            if isinstance(val, TensorVal) and scope.owns(val.buf):
                assert val.buf is not None
                if scope.dead_after(val.buf, k):
                    self.free(val.buf)
                    scope.release(val.buf)

    def finish_outputs(self, scope: _Scope, outs: list[Value]) -> list[Value]:
        """Make tensor outputs owned, whole and distinct (copying as needed), free the rest."""
        taken: set[int] = set()
        result: list[Value] = []
        for o in outs:
            if isinstance(o, TensorVal):
                if not (scope.owns(o.buf) and o.whole and o.buf.id not in taken):  # type: ignore[union-attr]
                    o = self.copy(o)
                else:
                    taken.add(o.buf.id)  # type: ignore[union-attr]
            result.append(o)
        for bid in taken:
            scope.owned.pop(bid, None)
        self.free_all(scope)
        return result

    def free_all(self, scope: _Scope) -> None:
        for buf in list(scope.owned.values()):
            self.free(buf)
            scope.release(buf)

    # ---- ownership queries for the current equation
    def movable(self, pos: int, *, need_whole: bool) -> bool:
        """May input ``pos`` of the current equation be consumed (moved or written in place)?"""
        scope, e = self.scope, self.eqn
        assert scope is not None and e is not None
        x = e.inputs[pos]
        if not isinstance(x, Var):
            return False
        t = self.env[x]
        if not isinstance(t, TensorVal) or not scope.owns(t.buf) or (need_whole and not t.whole):
            return False
        for q, a in enumerate(e.inputs):
            if q != pos and isinstance(a, Var):
                o = self.env[a]
                if isinstance(o, TensorVal) and o.buf is t.buf:
                    return False
        return scope.dead_after(t.buf, self.eqn_index)  # type: ignore[arg-type]


def const_of(d: DType, value: Any) -> ir.Constant:
    """``value`` as a register constant of dtype ``d`` (bool as ``i1``)."""
    if d.is_bool:
        return ir.Constant(I1, int(bool(value)))
    if d.is_int:  # the two's complement bits (an unsigned value above the signed range too)
        v = int(value) % (1 << d.bits)
        return ir.Constant(reg_type(d), v - (1 << d.bits) if v >> (d.bits - 1) else v)
    if d is f16:
        return ir.Constant(F32, float(np.float16(value)))
    if d.is_complex:
        z = complex(value)
        part = reg_type(d.part)
        return ir.Constant(reg_type(d), [ir.Constant(part, z.real), ir.Constant(part, z.imag)])
    return ir.Constant(reg_type(d), float(value))


# --------------------------------------------------------------------------- scalar helpers
def is_float(v: ir.Value) -> bool:
    """Is ``v`` a ``float`` or ``double`` register value?"""
    return v.type in (F32, F64)


def is_complex(v: ir.Value) -> bool:
    """Is ``v`` a complex register value (a {re, im} pair of floats)?"""
    return v.type in (C64, C128)


def complex_parts(lw: Lowerer, v: ir.Value) -> tuple[ir.Value, ir.Value]:
    """The real and imaginary parts of a complex register value."""
    return lw.b.extract_value(v, 0), lw.b.extract_value(v, 1)


def make_complex(lw: Lowerer, re: ir.Value, im: ir.Value) -> ir.Value:
    """The complex register value of two float parts (of one type)."""
    t = C64 if re.type == F32 else C128
    return lw.b.insert_value(lw.b.insert_value(ir.Constant(t, ir.Undefined), re, 0), im, 1)


def fconst(v: ir.Value, x: float) -> ir.Constant:
    """The float constant ``x`` in ``v``'s type."""
    return ir.Constant(v.type, x)


def round_f16(lw: Lowerer, v: ir.Value) -> ir.Value:
    """An f32 register value rounded to the nearest f16 (kept in an f32 register)."""
    return lw.b.fpext(lw.b.fptrunc(v, F16), F32)


def convert_scalar(lw: Lowerer, v: ir.Value, src: DType, dst: DType) -> ir.Value:
    """The register value ``v`` of dtype ``src`` as dtype ``dst``, as the reference converts."""
    b = lw.b
    if src is dst:
        return v
    if src.is_complex or dst.is_complex:
        return _convert_complex(lw, v, src, dst)
    to = reg_type(dst)
    if dst.is_bool:
        if src.is_float:
            return b.fcmp_unordered("!=", v, fconst(v, 0.0))  # NaN -> True
        return b.icmp_signed("!=", v, ir.Constant(v.type, 0))
    if dst is f16:
        # one rounding straight to half (f64 -> f32 -> f16 could round twice)
        if src.is_float:
            h = b.fptrunc(v, F16)
        elif src.is_bool or src.is_unsigned:
            h = b.uitofp(v, F16)
        else:
            h = b.sitofp(v, F16)
        return b.fpext(h, F32)
    if src.is_bool:
        return b.uitofp(v, to) if dst.is_float else b.zext(v, to)
    if src.is_float and dst.is_float:
        if src is f16:  # already an f32 register
            return v if dst is f32 else b.fpext(v, to)
        return b.fpext(v, to) if dst.bits > src.bits else b.fptrunc(v, to)
    if src.is_float:  # saturating, NaN -> 0, like the reference
        fsfx = "f64" if src.bits == 64 else "f32"
        sat = "fptoui" if dst.is_unsigned else "fptosi"
        f = lw.declare(f"llvm.{sat}.sat.i{dst.bits}.{fsfx}", to, [v.type])
        return b.call(f, [v])
    if dst.is_float:
        return b.uitofp(v, to) if src.is_unsigned else b.sitofp(v, to)
    if dst.bits > src.bits:
        return b.zext(v, to) if src.is_unsigned else b.sext(v, to)
    if dst.bits == src.bits:
        return v  # same bits, other signedness
    return b.trunc(v, to)


def _convert_complex(lw: Lowerer, v: ir.Value, src: DType, dst: DType) -> ir.Value:
    """NumPy's astype with a complex side: part by part between complex dtypes; a real value
    becomes its real part (imaginary 0); a complex one becomes its real part converted (the
    imaginary part is dropped), except to bool, which is true where either part is nonzero."""
    if not src.is_complex:
        re = convert_scalar(lw, v, src, dst.part)
        return make_complex(lw, re, ir.Constant(re.type, 0.0))
    re, im = complex_parts(lw, v)
    if dst.is_complex:
        return make_complex(lw, convert_scalar(lw, re, src.part, dst.part),
                            convert_scalar(lw, im, src.part, dst.part))
    if dst.is_bool:
        return lw.b.or_(convert_scalar(lw, re, src.part, dst), convert_scalar(lw, im, src.part, dst))
    return convert_scalar(lw, re, src.part, dst)


# --------------------------------------------------------------------------- IR queries
def defining_eqn(func: Func, k: int, v: Var) -> Optional[Eqn]:
    """The equation among ``func``'s first ``k`` that defines ``v`` (None: a param, or later)."""
    for e in func.eqns[:k]:
        if any(o is v for o in e.outs):
            return e
    return None


# --------------------------------------------------------------------------- reduction kinds
_REDUCE_INIT = {
    ("sum", "f"): 0.0, ("sum", "i"): 0, ("prod", "f"): 1.0, ("prod", "i"): 1,
    ("max", "f"): float("-inf"), ("min", "f"): float("inf"),
}


def reduce_init(kind: str, d: DType) -> ir.Constant:
    """The identity of reduction ``kind`` (sum, prod, max, min) in dtype ``d``."""
    if d.is_int and kind not in ("sum", "prod"):
        info = np.iinfo(d.np)
        return const_of(d, info.min if kind == "max" else info.max)
    return const_of(d, _REDUCE_INIT[(kind, "f" if d.kind in "fc" else "i")])


def combine(lw: Lowerer, kind: str, acc: ir.Value, v: ir.Value, *,
            unsigned: bool = False) -> ir.Value:
    """One step of reduction ``kind``: ``acc`` combined with ``v`` (max/min propagate NaN;
    ``unsigned``: integer max/min compare as unsigned).  An f16 sum accumulates in f32: the
    caller rounds the result once."""
    if kind == "sum":
        if is_float(acc):
            return lw.b.fadd(acc, v, flags=lw.fm)
        if is_complex(acc):
            (ar, ai), (vr, vi) = complex_parts(lw, acc), complex_parts(lw, v)
            return make_complex(lw, lw.b.fadd(ar, vr, flags=lw.fm), lw.b.fadd(ai, vi, flags=lw.fm))
        return lw.b.add(acc, v)
    if kind == "prod":
        if is_float(acc):
            return lw.b.fmul(acc, v, flags=lw.fm)
        return lw.b.mul(acc, v)
    if is_float(acc):
        return lw.intrinsic("maximum" if kind == "max" else "minimum", acc.type, [acc, v],
                            flags=lw.fm)
    name = ("u" if unsigned else "s") + ("max" if kind == "max" else "min")
    return lw.intrinsic(name, acc.type, [acc, v])
