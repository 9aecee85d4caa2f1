"""The fast call path: a CPython entry point generated in LLVM, next to the kernel.

:func:`entry_ir` emits, for one specialisation whose tensor parameters are all C-contiguous, a
function with CPython's vectorcall signature::

    PyObject *<symbol>.py(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)

It is linked into the kernel's module (so it lives in the same object file and the disk cache
keeps it) and turned into a Python ``builtin_function_or_method`` with ``PyCFunction_NewEx``
(:func:`make_callable`), once per specialisation.  A call through it:

1. checks the argument count (no keywords), and per parameter:

   * tensor: ``type(a) is np.ndarray`` and, read straight from the ``PyArrayObject`` struct
     (``data, nd, dimensions, strides, base, descr, flags``): the dtype descriptor is NumPy's
     canonical one for the dtype (so native byte order), ``nd`` is the rank, the
     C-contiguous flag is set, literal dims match and named dims agree across arguments;
   * scalar: an exact ``float``/``int``/``np.float64``/``np.float32``/``np.int64``/
     ``np.int32`` of an acceptable kind (``True``/``False`` for bool), ints in range of the
     parameter's dtype (a u64 above the i64 range, and NumPy scalars of the other dtypes, go
     to the fallback);

2. makes each tensor result, after the call, a ``PyArray_NewFromDescr`` array over the
   buffer the kernel allocated (``OutSpec.alloc``) whose base is a capsule that frees it (no
   copy; the destructor lives in a module that is never freed, since an array may outlive its
   kernel), except a donated one (``Abi.donated``: a written
   argument's new contents), whose slot is the argument's memory: that argument must also be
   writeable and share no byte with another array argument (judged from the bounds; else the
   fallback decides), and the result is not returned (a kernel whose results are all donated
   returns None);
3. fills the slot array of :mod:`lattice.codegen.abi` on the stack and calls the kernel,
   releasing the GIL when the inputs hold at least ``CTX_GIL`` elements;
4. returns NumPy scalars (``PyArray_Scalar``) or arrays; a tuple when the kernel returns several
   results (or one result as a tuple: the ``CTX_MULTI`` flag).

Anything it does not accept -- a wrong type, dtype, rank or size, a list, a strided array,
keyword arguments -- goes to the ``CTX_FALLBACK`` callable with the original arguments: the
Python dispatcher, which converts what it can, picks another specialisation, or raises the usual
``TypeError``/``ValueError``.  So the fast path never changes what a call means or which error it
raises.  A nonzero kernel status calls ``CTX_RAISE(code)``, which raises the recorded error.

Process-specific addresses (type objects, descriptors, the callables, NumPy's API functions)
are not in the code: they live in the ``<symbol>.pyctx`` pointer table, which
:func:`make_callable` fills after the object is loaded, so cached objects stay valid in a new
process.  Python C-API functions (``PyFloat_FromDouble``-style calls) resolve against the
running interpreter like libc symbols do.

Struct offsets assumed (64-bit CPython 3.10-3.13 default builds, NumPy >= 1.20):
``ob_type`` at 8; ``PyArrayObject``: data 16, nd 24, dimensions 32, descr 56, flags 64;
NumPy scalar and ``float`` payloads at 16.  :func:`make_callable` checks what it can (the API
table's type entries) and returns None when something does not match, leaving the Python path.
"""
from __future__ import annotations

import ctypes
import sys
from typing import Any, Callable, Optional, Sequence

import llvmlite.ir as ir

from ..ir.types import Dim, product_factors
from .abi import COMPLEX_NAMES, Abi

__all__ = ["entry_ir", "make_callable", "entry_symbol", "ctx_symbol", "supported", "CTX_LEN"]

from .lltypes import F16, F32, F64, I1, I8, I16, I32, I64, PTR

# the pointer table
(CTX_NDARRAY, CTX_FALLBACK, CTX_RAISE, CTX_EMPTY, CTX_SCALAR, CTX_MULTI, CTX_TRUE, CTX_FALSE,
 CTX_PYFLOAT, CTX_PYLONG, CTX_NPF64, CTX_NPF32, CTX_NPI64, CTX_NPI32, CTX_GIL) = range(15)
DTYPES = ("f32", "f64", "i32", "i64", "bool", "i8", "i16", "u8", "u16", "u32", "u64", "f16",
          "c64", "c128")
_NP_NAMES = {"f32": "float32", "f64": "float64", "i32": "int32", "i64": "int64", "bool": "bool",
             "i8": "int8", "i16": "int16", "u8": "uint8", "u16": "uint16", "u32": "uint32",
             "u64": "uint64", "f16": "float16", "c64": "complex64", "c128": "complex128"}
#: scalar integer arguments: the range a Python int must be in (i64 needs no check; a u64
#: above the i64 range overflows PyLong_AsLongLong and goes to the fallback)
_INT_RANGE = {"i8": (-128, 127), "i16": (-(1 << 15), (1 << 15) - 1),
              "i32": (-(1 << 31), (1 << 31) - 1), "u8": (0, 255), "u16": (0, (1 << 16) - 1),
              "u32": (0, (1 << 32) - 1), "u64": (0, (1 << 63) - 1)}
_NARROW_INT = {"bool": I8, "i8": I8, "u8": I8, "i16": I16, "u16": I16, "i32": I32, "u32": I32}
CTX_DESCR = 15  # + DTYPES.index(dtype)
# PyArray_NewFromDescr, PyArray_SetBaseObject: results the kernel allocated (adopt_result)
CTX_NEWDESCR = CTX_DESCR + len(DTYPES)
CTX_SETBASE = CTX_NEWDESCR + 1
CTX_CAPFREE = CTX_SETBASE + 1  # the capsule destructor of adopted buffers (_capsule_free)
CTX_LEN = CTX_CAPFREE + 1
_ITEMSIZE = {"f16": 2, "f32": 4, "f64": 8, "i8": 1, "i16": 2, "i32": 4, "i64": 8, "u8": 1,
             "u16": 2, "u32": 4, "u64": 8, "bool": 1, "c64": 8, "c128": 16}

_OB_TYPE = 8
_AR_DATA, _AR_ND, _AR_DIMS, _AR_DESCR, _AR_FLAGS = 16, 24, 32, 56, 64
_PAYLOAD = 16
_NPY_C_CONTIGUOUS = 0x1
_NPY_WRITEABLE = 0x400
_VECTORCALL_ARGUMENTS_OFFSET = 1 << 63
_API_EMPTY, _API_SCALAR = 184, 60  # PyArray_Empty, PyArray_Scalar in NumPy's API table
_API_NEWDESCR, _API_SETBASE = 94, 282  # PyArray_NewFromDescr, PyArray_SetBaseObject
_NPY_CARRAY = 0x1 | 0x100 | 0x400  # C_CONTIGUOUS | ALIGNED | WRITEABLE
_API_NDARRAY, _API_DOUBLE_TYPE = 2, 31  # PyArray_Type, PyDoubleArrType_Type (sanity checks)

#: Inputs of at least this many elements (summed over tensor arguments) release the GIL.
GIL_RELEASE_ELEMENTS = 1 << 15


def entry_symbol(abi: Abi) -> str:
    return abi.symbol + ".py"


def ctx_symbol(abi: Abi) -> str:
    return abi.symbol + ".pyctx"


def supported(abi: Abi) -> bool:
    """An entry is generated for all-C specialisations."""
    return (all(p.layout == "C" or p.ndim == 0 for p in abi.params)
            and all(p.dtype in DTYPES for p in abi.params)
            and all(o.dtype in DTYPES for o in abi.outs) and len(abi.outs) >= 1
            # complex arrays only: a complex scalar takes two slots, which this entry's
            # one-slot scalar conversions do not write (the dispatcher does)
            and not any(s.ndim == 0 and s.dtype in COMPLEX_NAMES
                        for s in (*abi.params, *abi.outs)))


class _Gen:
    def __init__(self, abi: Abi, param_shapes: Sequence[tuple[Dim, ...]]) -> None:
        self.abi = abi
        self.shapes = param_shapes
        self.m = ir.Module(name=entry_symbol(abi))
        arr = ir.ArrayType(PTR, CTX_LEN)
        self.ctx = ir.GlobalVariable(self.m, arr, ctx_symbol(abi))
        self.ctx.initializer = ir.Constant(arr, None)
        self.fn = ir.Function(self.m, ir.FunctionType(PTR, [PTR, PTR, I64, PTR]),
                              entry_symbol(abi))
        # O3 on this straight-line glue would double the compile time of a small kernel for
        # a few nanoseconds per call; the kernel it calls is optimized as usual
        self.fn.attributes.add("noinline")
        self.fn.attributes.add("optnone")
        self.self_, self.args, self.nargsf, self.kwnames = self.fn.args
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self._decls: dict[str, ir.Function] = {}

    # ---- helpers
    def declare(self, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
        f = self._decls.get(name)
        if f is None:
            f = self._decls[name] = ir.Function(self.m, ir.FunctionType(ret, list(args)), name)
        return f

    def capi(self, name: str, ret: ir.Type, args: Sequence[ir.Type], vals: list) -> ir.Value:
        return self.b.call(self.declare(name, ret, args), vals)

    def ctxv(self, k: int) -> ir.Value:
        p = self.b.gep(self.ctx, [ir.Constant(I64, 0), ir.Constant(I64, k)], inbounds=True,
                       source_etype=self.ctx.value_type)
        return self.b.load(p, typ=PTR)

    def field(self, obj: ir.Value, off: int, ty: ir.Type) -> ir.Value:
        p = self.b.gep(obj, [ir.Constant(I64, off)], inbounds=True, source_etype=I8)
        return self.b.load(p, typ=ty)

    def alloca(self, ty: ir.Type) -> ir.Value:
        """A stack slot as an opaque pointer (llvmlite types allocas as typed pointers)."""
        a = self.b.alloca(ty)
        a.type = PTR
        return a

    def block(self, name: str) -> ir.Block:
        return self.fn.append_basic_block(name)

    def require(self, ok: ir.Value) -> None:
        nxt = self.block("ok")
        self.b.cbranch(ok, nxt, self.fallback_bb)
        self.b.position_at_end(nxt)

    def decref_all(self, objs: Sequence[ir.Value]) -> None:
        for o in objs:
            self.capi("Py_DecRef", ir.VoidType(), [PTR], [o])

    def fail(self, cond: ir.Value, objs: Sequence[ir.Value]) -> None:
        """If ``cond``: release ``objs`` and return NULL (an exception is set)."""
        bad, good = self.block("err"), self.block("ok")
        self.b.cbranch(cond, bad, good)
        self.b.position_at_end(bad)
        self.decref_all(objs)
        self.b.ret(ir.Constant(PTR, None))
        self.b.position_at_end(good)

    def is_null(self, v: ir.Value) -> ir.Value:
        return self.b.icmp_unsigned("==", v, ir.Constant(PTR, None))

    # ---- arguments
    def scalar_arg(self, a: ir.Value, dtype: str) -> ir.Value:
        """The slot value (i64) of a scalar argument, or a branch to the fallback."""
        b = self.b
        t = self.field(a, _OB_TYPE, PTR)
        done = self.block("scalar.done")
        incoming: list[tuple[ir.Value, ir.Block]] = []

        def case(ctx_k: int, load: Callable[[], ir.Value]) -> None:
            yes, no = self.block("is"), self.block("not")
            b.cbranch(b.icmp_unsigned("==", t, self.ctxv(ctx_k)), yes, no)
            b.position_at_end(yes)
            v = load()
            incoming.append((v, b.block))
            b.branch(done)
            b.position_at_end(no)

        if dtype == "bool":
            for k, val in ((CTX_TRUE, 1), (CTX_FALSE, 0)):
                yes, no = self.block("is"), self.block("not")
                b.cbranch(b.icmp_unsigned("==", a, self.ctxv(k)), yes, no)
                b.position_at_end(yes)
                incoming.append((ir.Constant(I64, val), b.block))
                b.branch(done)
                b.position_at_end(no)
        elif dtype in ("f16", "f32", "f64"):
            as_bits = lambda d: b.bitcast(d, I64)  # noqa: E731
            case(CTX_PYFLOAT, lambda: as_bits(self.field(a, _PAYLOAD, F64)))
            case(CTX_NPF64, lambda: as_bits(self.field(a, _PAYLOAD, F64)))
            case(CTX_NPF32, lambda: as_bits(b.fpext(self.field(a, _PAYLOAD, F32), F64)))

            def from_long() -> ir.Value:
                d = self.capi("PyLong_AsDouble", F64, [PTR], [a])
                self.require(b.not_(self._error_after(b.fcmp_ordered("==", d, ir.Constant(F64, -1.0)))))
                return as_bits(d)
            case(CTX_PYLONG, from_long)
        else:
            def from_long() -> ir.Value:
                of = self.alloca(I32)
                v = self.capi("PyLong_AsLongLongAndOverflow", I64, [PTR, PTR], [a, of])
                self.require(b.icmp_signed("==", b.load(of, typ=I32), ir.Constant(I32, 0)))
                self.require(b.not_(self._error_after(b.icmp_signed("==", v, ir.Constant(I64, -1)))))
                return v
            case(CTX_PYLONG, from_long)
            case(CTX_NPI64, lambda: self.field(a, _PAYLOAD, I64))
            case(CTX_NPI32, lambda: b.sext(self.field(a, _PAYLOAD, I32), I64))
        b.branch(self.fallback_bb)
        b.position_at_end(done)
        phi = b.phi(I64)
        for v, blk in incoming:
            phi.add_incoming(v, blk)
        if dtype in _INT_RANGE:  # (an i64 is always in range; a u64 only below 2**63 here)
            lo, hi = _INT_RANGE[dtype]
            self.require(b.and_(b.icmp_signed(">=", phi, ir.Constant(I64, lo)),
                                b.icmp_signed("<=", phi, ir.Constant(I64, hi))))
        return phi

    def _error_after(self, maybe: ir.Value) -> ir.Value:
        """i1: ``maybe`` (a -1 return) and an exception is set; clears it."""
        b = self.b
        chk, after = self.block("errchk"), self.block("errchk.end")
        entry = b.block
        b.cbranch(maybe, chk, after)
        b.position_at_end(chk)
        occurred = b.icmp_unsigned("!=", self.capi("PyErr_Occurred", PTR, [], []),
                                   ir.Constant(PTR, None))
        with b.if_then(occurred):
            self.capi("PyErr_Clear", ir.VoidType(), [], [])
        chk_end = b.block
        b.branch(after)
        b.position_at_end(after)
        phi = b.phi(I1)
        phi.add_incoming(ir.Constant(I1, 0), entry)
        phi.add_incoming(occurred, chk_end)
        return phi

    def build(self) -> str:
        abi, b = self.abi, self.b
        self.fallback_bb = self.block("fallback")
        n_slots = max(abi.n_slots, 1)
        slots = self.alloca(ir.ArrayType(I64, n_slots))

        def slot(k: int) -> ir.Value:
            return b.gep(slots, [ir.Constant(I64, k)], inbounds=True, source_etype=I64)

        nargs = b.and_(self.nargsf, ir.Constant(I64, ~_VECTORCALL_ARGUMENTS_OFFSET & (2**64 - 1)))
        self.require(b.and_(self.is_null(self.kwnames),
                            b.icmp_unsigned("==", nargs, ir.Constant(I64, len(abi.params)))))
        dims: dict[str, ir.Value] = {}
        elems: ir.Value = ir.Constant(I64, 0)
        k_slot = 0
        donated = dict(abi.donated)
        written = set(donated.values())
        spans: dict[int, tuple[ir.Value, ir.Value]] = {}  # param -> (first byte, end)
        data_of: dict[int, ir.Value] = {}
        for k, p in enumerate(abi.params):
            a = b.load(b.gep(self.args, [ir.Constant(I64, k)], inbounds=True, source_etype=PTR),
                       typ=PTR)
            if p.ndim == 0:
                v = self.scalar_arg(a, p.dtype)
                self.size_param(k, v, dims)
                b.store(v, slot(k_slot))
                k_slot += 1
                continue
            self.require(b.icmp_unsigned("==", self.field(a, _OB_TYPE, PTR),
                                         self.ctxv(CTX_NDARRAY)))
            descr = self.field(a, _AR_DESCR, PTR)
            nd = self.field(a, _AR_ND, I32)
            flags = self.field(a, _AR_FLAGS, I32)
            ok = b.and_(b.icmp_unsigned("==", descr, self.ctxv(CTX_DESCR + DTYPES.index(p.dtype))),
                        b.icmp_signed("==", nd, ir.Constant(I32, p.ndim)))
            ok = b.and_(ok, b.icmp_unsigned("!=", b.and_(flags, ir.Constant(I32, _NPY_C_CONTIGUOUS)),
                                            ir.Constant(I32, 0)))
            if k in written:
                ok = b.and_(ok, b.icmp_unsigned("!=", b.and_(flags, ir.Constant(I32, _NPY_WRITEABLE)),
                                                ir.Constant(I32, 0)))
            self.require(ok)
            data_of[k] = self.field(a, _AR_DATA, PTR)
            b.store(data_of[k], slot(k_slot))
            k_slot += 1
            dimp = self.field(a, _AR_DIMS, PTR)
            count: ir.Value = ir.Constant(I64, 1)
            for ax in range(p.ndim):
                n = b.load(b.gep(dimp, [ir.Constant(I64, ax)], inbounds=True, source_etype=I64),
                           typ=I64)
                d = self.shapes[k][ax]
                if d.is_const:
                    self.require(b.icmp_signed("==", n, ir.Constant(I64, d.const)))
                else:
                    (name, _), = d.terms
                    if name in dims:
                        self.require(b.icmp_signed("==", n, dims[name]))
                    else:
                        dims[name] = n
                b.store(n, slot(k_slot))
                k_slot += 1
                count = b.mul(count, n)
            elems = b.add(elems, count)
            lo = b.ptrtoint(data_of[k], I64)
            spans[k] = (lo, b.add(lo, b.mul(count, ir.Constant(I64, _ITEMSIZE[p.dtype]))))
        for k in sorted(written):  # a written argument overlapping another: the fallback
            for j, (lo, hi) in spans.items():
                if j != k:
                    klo, khi = spans[k]
                    apart = b.or_(b.icmp_unsigned("<=", khi, lo), b.icmp_unsigned("<=", hi, klo))
                    self.require(apart)

        # results
        created: list[ir.Value] = []
        scalar_slots: list[tuple[int, int]] = []  # (out index, slot)
        out_objs: dict[int, ir.Value] = {}
        adopted: list[tuple[int, int]] = []  # (out index, slot): buffers the kernel allocates
        for j, o in enumerate(abi.outs):
            if j in donated:  # the argument's memory; not a result of the call
                b.store(data_of[donated[j]], slot(k_slot))
                k_slot += 1
                for d in o.shape:
                    b.store(self.dim(d, dims), slot(k_slot))
                    k_slot += 1
                continue
            if o.ndim == 0 or o.alloc:
                (adopted if o.ndim else scalar_slots).append((j, k_slot))
                for _ in range(1 + o.ndim):
                    b.store(ir.Constant(I64, 0), slot(k_slot))
                    k_slot += 1
                continue
            raise AssertionError("a tensor result the kernel does not allocate")  # (abi.py)
        assert k_slot == abi.n_slots, (k_slot, abi.n_slots)

        # the call, without the GIL for big inputs
        kern = ir.Function(self.m, ir.FunctionType(I32, [PTR]), abi.symbol)
        big = b.icmp_signed(">=", elems, b.ptrtoint(self.ctxv(CTX_GIL), I64))
        with b.if_else(big) as (then, other):
            with then:
                ts = self.capi("PyEval_SaveThread", PTR, [], [])
                rc1 = b.call(kern, [slots], attrs=("noinline",))
                self.capi("PyEval_RestoreThread", ir.VoidType(), [PTR], [ts])
                bb1 = b.block
            with other:
                rc2 = b.call(kern, [slots], attrs=("noinline",))
                bb2 = b.block
        rc = b.phi(I32)
        rc.add_incoming(rc1, bb1)
        rc.add_incoming(rc2, bb2)
        with b.if_then(b.icmp_signed("!=", rc, ir.Constant(I32, 0)), likely=False):
            self.decref_all(created)
            code = self.capi("PyLong_FromLongLong", PTR, [I64], [b.sext(rc, I64)])
            self.fail(self.is_null(code), [])
            argv = self.alloca(PTR)
            b.store(code, argv)
            r = self.capi("PyObject_Vectorcall", PTR, [PTR, PTR, I64, PTR],
                          [self.ctxv(CTX_RAISE), argv, ir.Constant(I64, 1), ir.Constant(PTR, None)])
            self.decref_all([code])
            b.ret(r)

        for j, s in adopted:
            arr = self.adopt_result(abi.outs[j], slot(s), slot(s + 1))
            self.fail(self.is_null(arr), created)
            created.append(arr)
            out_objs[j] = arr

        # scalar results -> NumPy scalars
        scalar_t = ir.FunctionType(PTR, [PTR, PTR, PTR])
        for j, s in scalar_slots:
            o = abi.outs[j]
            raw = b.load(slot(s), typ=I64)
            if o.dtype in ("f16", "f32"):  # the slot holds the f64 value, exact in both
                ft = F16 if o.dtype == "f16" else F32
                tmp = self.alloca(ft)
                b.store(b.fptrunc(b.bitcast(raw, F64), ft), tmp)
            elif o.dtype in _NARROW_INT:  # the low bytes of the (sign- or zero-extended) slot
                tmp = self.alloca(_NARROW_INT[o.dtype])
                b.store(b.trunc(raw, _NARROW_INT[o.dtype]), tmp)
            else:  # f64, i64, u64: the slot's bits
                tmp = slot(s)
            descr = self.ctxv(CTX_DESCR + DTYPES.index(o.dtype))
            obj = b.call(self._fnptr(self.ctxv(CTX_SCALAR), scalar_t),
                         [tmp, descr, ir.Constant(PTR, None)])
            self.fail(self.is_null(obj), created)
            created.append(obj)
            out_objs[j] = obj
        results = [out_objs[j] for j in range(len(abi.outs)) if j not in donated]
        if not results:
            none = ir.GlobalVariable(self.m, I8, "_Py_NoneStruct")  # the interpreter's None
            self.capi("Py_IncRef", ir.VoidType(), [PTR], [none])
            b.ret(none)
            return self._finish_with_fallback()
        if len(results) == 1:
            single = self.block("single")
            tup_bb = self.block("tuple")
            b.cbranch(self.is_null(self.ctxv(CTX_MULTI)), single, tup_bb)
            b.position_at_end(single)
            b.ret(results[0])
            b.position_at_end(tup_bb)
        tup = self.capi("PyTuple_New", PTR, [I64], [ir.Constant(I64, len(results))])
        self.fail(self.is_null(tup), created)
        for j, r in enumerate(results):
            self.capi("PyTuple_SetItem", I32, [PTR, I64, PTR], [tup, ir.Constant(I64, j), r])
        b.ret(tup)

        return self._finish_with_fallback()

    def _finish_with_fallback(self) -> str:
        """The fallback block (anything unexpected: the Python dispatcher decides); the
        module's text."""
        b = self.b
        b.position_at_end(self.fallback_bb)
        r = self.capi("PyObject_Vectorcall", PTR, [PTR, PTR, I64, PTR],
                      [self.ctxv(CTX_FALLBACK), self.args, self.nargsf, self.kwnames])
        b.ret(r)
        return str(self.m)

    def adopt_result(self, o: Any, ptr_slot: ir.Value, dims: ir.Value) -> ir.Value:
        """The NumPy array over a buffer the kernel allocated (``OutSpec.alloc``: its pointer
        at ``ptr_slot``, its shape at ``dims``), owning it through a capsule base that frees it
        (no copy); an empty result is a new empty array and the buffer is freed at once.
        NULL with an exception set (and the buffer freed) when NumPy cannot make the array."""
        b = self.b
        ptr = b.load(ptr_slot, typ=PTR)
        count: ir.Value = ir.Constant(I64, 1)
        for ax in range(o.ndim):
            n = b.load(b.gep(dims, [ir.Constant(I64, ax)], inbounds=True, source_etype=I64),
                       typ=I64)
            count = b.mul(count, n)
        free = self.declare("free", ir.VoidType(), [PTR])
        descr = self.ctxv(CTX_DESCR + DTYPES.index(o.dtype))
        self.capi("Py_IncRef", ir.VoidType(), [PTR], [descr])  # both constructors steal it
        nd = ir.Constant(I32, o.ndim)
        empty = b.or_(self.is_null(ptr), b.icmp_signed("==", count, ir.Constant(I64, 0)))
        with b.if_else(empty) as (then, other):
            with then:
                b.call(free, [ptr])
                empty_t = ir.FunctionType(PTR, [I32, PTR, PTR, I32])
                arr1 = b.call(self._fnptr(self.ctxv(CTX_EMPTY), empty_t),
                              [nd, dims, descr, ir.Constant(I32, 0)])
                bb1 = b.block
            with other:
                arr2 = self._array_over(ptr, nd, dims, descr)
                bb2 = b.block
        arr = b.phi(PTR)
        arr.add_incoming(arr1, bb1)
        arr.add_incoming(arr2, bb2)
        return arr

    def _array_over(self, ptr: ir.Value, nd: ir.Value, dims: ir.Value,
                    descr: ir.Value) -> ir.Value:
        """``PyArray_NewFromDescr`` over ``ptr`` with a capsule base freeing it, or NULL (the
        buffer freed, an exception set)."""
        b = self.b
        null = ir.Constant(PTR, None)
        free = self.declare("free", ir.VoidType(), [PTR])
        new_t = ir.FunctionType(PTR, [PTR, PTR, I32, PTR, PTR, PTR, I32, PTR])
        arr = b.call(self._fnptr(self.ctxv(CTX_NEWDESCR), new_t),
                     [self.ctxv(CTX_NDARRAY), descr, nd, dims, null, ptr,
                      ir.Constant(I32, _NPY_CARRAY), null])
        made, no_arr, no_cap = self.block("adopt.made"), self.block("adopt.noarr"), \
            self.block("adopt.nocap")
        based, lost, ok, done = (self.block("adopt.capsule"), self.block("adopt.lost"),
                                 self.block("adopt.ok"), self.block("adopt.done"))
        b.cbranch(self.is_null(arr), no_arr, made)
        b.position_at_end(made)
        cap = self.capi("PyCapsule_New", PTR, [PTR, PTR, PTR], [ptr, null, self.ctxv(CTX_CAPFREE)])
        b.cbranch(self.is_null(cap), no_cap, based)
        b.position_at_end(based)
        # SetBaseObject steals the capsule even when it fails (the capsule then frees ptr)
        rc = b.call(self._fnptr(self.ctxv(CTX_SETBASE), ir.FunctionType(I32, [PTR, PTR])),
                    [arr, cap])
        b.cbranch(b.icmp_signed("<", rc, ir.Constant(I32, 0)), lost, ok)
        b.position_at_end(lost)
        self.capi("Py_DecRef", ir.VoidType(), [PTR], [arr])
        b.branch(done)
        b.position_at_end(no_cap)  # the array does not own ptr: drop it, then free ptr
        self.capi("Py_DecRef", ir.VoidType(), [PTR], [arr])
        b.branch(no_arr)
        b.position_at_end(no_arr)
        b.call(free, [ptr])
        b.branch(done)
        b.position_at_end(ok)
        b.branch(done)
        b.position_at_end(done)
        phi = b.phi(PTR)
        phi.add_incoming(null, lost)
        phi.add_incoming(null, no_arr)
        phi.add_incoming(arr, ok)
        return phi

    def size_param(self, k: int, v: ir.Value, dims: dict[str, ir.Value]) -> None:
        """Parameter ``k``, a scalar of slot value ``v``, used as a size (``dim_sources`` axis
        -1): a negative one, or one another argument's shape contradicts, goes to the fallback,
        which raises the ValueError naming the argument."""
        for name, p, ax in self.abi.dim_sources:
            if p == k and ax < 0:
                b = self.b
                self.require(b.icmp_signed(">=", v, ir.Constant(I64, 0)))
                if name in dims:
                    self.require(b.icmp_signed("==", v, dims[name]))
                else:
                    dims[name] = v

    @staticmethod
    def _fnptr(v: ir.Value, fnty: ir.FunctionType) -> Any:
        return _Callee(v, fnty)

    def dim(self, d: Dim, dims: dict[str, ir.Value]) -> ir.Value:
        b = self.b
        acc: ir.Value = ir.Constant(I64, d.const)
        for name, c in d.terms:
            v = dims.get(name)
            if v is None:  # a product of named dims (types.dim_product)
                v = ir.Constant(I64, 1)
                for f in product_factors(name):
                    v = b.mul(v, dims[f])
            acc = b.add(acc, b.mul(v, ir.Constant(I64, c)))
        if d.const < 0 or any(c < 0 for _, c in d.terms):
            neg = b.icmp_signed("<", acc, ir.Constant(I64, 0))
            acc = b.select(neg, ir.Constant(I64, 0), acc)
        return acc


class _Callee:
    """An indirect callee for ``IRBuilder.call``: with opaque pointers llvmlite cannot derive
    the function type from the pointer, so it is given explicitly."""

    def __init__(self, ptr: ir.Value, fnty: ir.FunctionType) -> None:
        self.ptr = ptr
        self.type = PTR
        self.function_type = fnty

    def get_reference(self) -> str:
        return self.ptr.get_reference()


def entry_ir(abi: Abi, param_shapes: Sequence[tuple[Dim, ...]]) -> str:
    """LLVM IR text of the CPython entry for ``abi`` (see the module docstring).

    ``param_shapes[k]`` is the annotated shape of parameter k (literal dims and plain names).
    The module declares ``abi.symbol`` (the slot entry) and is meant to be linked with it.
    """
    return _Gen(abi, param_shapes).build()


# ------------------------------------------------------------------------------ Python side
class _MethodDef(ctypes.Structure):
    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_METH_FASTCALL, _METH_KEYWORDS = 0x80, 0x2
_api: Optional[tuple[int, ...]] = None
_api_checked = False


_CAPSULE_FREE_IR = """
declare ptr @PyCapsule_GetPointer(ptr, ptr)
declare void @free(ptr)
define void @lt_capsule_free(ptr %cap) {
  %p = call ptr @PyCapsule_GetPointer(ptr %cap, ptr null)
  call void @free(ptr %p)
  ret void
}
"""
_capsule_free_module: Any = None


def _capsule_free() -> int:
    """The address of ``void (PyObject *capsule)`` freeing the buffer a capsule holds: the
    destructor of every buffer a kernel hands over.  It lives in a module of its own that is
    never freed, because an adopted array may outlive the kernel that made it (and be
    deallocated during interpreter shutdown, after the kernels' code is gone)."""
    global _capsule_free_module
    if _capsule_free_module is None:
        from .jit import compile_ir
        mod = compile_ir(_CAPSULE_FREE_IR)
        mod.close = lambda: None  # type: ignore[method-assign]  # see the docstring
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(mod))  # never deallocated, even at exit
        _capsule_free_module = mod
    return int(_capsule_free_module.address("lt_capsule_free"))


def _numpy_api() -> Optional[tuple[int, ...]]:
    """(PyArray_Empty, PyArray_Scalar, PyArray_NewFromDescr, PyArray_SetBaseObject) addresses,
    or None if the API table looks unfamiliar."""
    global _api, _api_checked
    if _api_checked:
        return _api
    _api_checked = True
    try:
        import numpy as np
        try:
            from numpy._core import _multiarray_umath as mu  # NumPy 2
        except ImportError:  # pragma: no cover - NumPy 1.x
            from numpy.core import _multiarray_umath as mu  # type: ignore[no-redef]
        get = ctypes.pythonapi.PyCapsule_GetPointer
        get.restype = ctypes.c_void_p
        get.argtypes = [ctypes.py_object, ctypes.c_char_p]
        table = get(mu._ARRAY_API, None)
        if not table:
            return None
        entries = (ctypes.c_void_p * (_API_SETBASE + 1)).from_address(table)
        if (entries[_API_NDARRAY] != id(np.ndarray)
                or entries[_API_DOUBLE_TYPE] != id(np.float64)):
            return None
        _api = (entries[_API_EMPTY], entries[_API_SCALAR], entries[_API_NEWDESCR],
                entries[_API_SETBASE])
    except Exception:  # pragma: no cover - any surprise keeps the Python path
        _api = None
    return _api


def make_callable(ctx_address: int, entry_address: int, name: str, *,
                  fallback: Callable[..., Any], raise_error: Callable[[int], Any],
                  multi: bool, owner: Any) -> Optional[Any]:
    """Fill the pointer table at ``ctx_address`` and wrap the entry as a Python callable.

    The callable's ``__self__`` holds ``owner`` (which must keep the machine code alive), the
    method definition and the Python objects the table points at, so they live as long as it.
    None when this interpreter/NumPy is not one the entry's struct offsets are known for.
    """
    if sys.implementation.name != "cpython" or sys.maxsize != 2**63 - 1:
        return None
    if getattr(sys, "_is_gil_enabled", lambda: True)() is False:
        return None  # free-threaded builds lay objects out differently
    api = _numpy_api()
    if api is None:
        return None
    import numpy as np
    descrs = {k: np.dtype(v) for k, v in _NP_NAMES.items()}
    ctx = (ctypes.c_void_p * CTX_LEN).from_address(ctx_address)
    values = {
        CTX_NDARRAY: id(np.ndarray), CTX_FALLBACK: id(fallback), CTX_RAISE: id(raise_error),
        CTX_EMPTY: api[0], CTX_SCALAR: api[1], CTX_MULTI: 1 if multi else 0,
        CTX_TRUE: id(True), CTX_FALSE: id(False), CTX_PYFLOAT: id(float), CTX_PYLONG: id(int),
        CTX_NPF64: id(np.float64), CTX_NPF32: id(np.float32), CTX_NPI64: id(np.int64),
        CTX_NPI32: id(np.int32), CTX_GIL: GIL_RELEASE_ELEMENTS,
        CTX_NEWDESCR: api[2], CTX_SETBASE: api[3], CTX_CAPFREE: _capsule_free(),
    }
    for k, dt in enumerate(DTYPES):
        values[CTX_DESCR + k] = id(descrs[dt])
    for k, v in values.items():
        ctx[k] = v
    mdef = _MethodDef(name.encode(), entry_address, _METH_FASTCALL | _METH_KEYWORDS, None)
    new = ctypes.pythonapi.PyCFunction_NewEx
    new.restype = ctypes.py_object
    new.argtypes = [ctypes.c_void_p, ctypes.py_object, ctypes.py_object]
    keep = _Keep((owner, mdef, fallback, raise_error, descrs))
    return new(ctypes.addressof(mdef), keep, None)


class _Keep(tuple):
    """The ``__self__`` of an entry callable: everything its pointer table refers to."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<lattice entry of {self[0]!r}>"
