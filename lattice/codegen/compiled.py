"""Compiled kernels: :func:`compile_func` (IR Func -> callable) and :class:`CompiledFunc`.

The call path is ctypes over the flat slot array of :mod:`lattice.codegen.abi`.  Everything that
depends only on the signature is done once, at construction: a small Python function specialized
to the signature is generated (argument unpacking, named-dim binding, output allocation, one
``struct.pack`` of all slots, the ctypes call, result decoding), so a call does no interpretation
of the ABI.  Arguments are trusted: the dispatcher has already checked dtypes, ranks, dim
agreement and C-contiguity for layout "C" params.  A fresh slot array is made per call, so a
CompiledFunc can be called from several threads at once.
"""
from __future__ import annotations

import ctypes
import struct
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from ..ir.core import Func
from . import pyentry
from .abi import COMPLEX_NAMES, Abi
from .jit import JITModule, compile_ir, load_object

__all__ = ["compile_func", "CompiledFunc"]

_KERNEL_T = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_void_p)
_NP = {"f16": "float16", "f32": "float32", "f64": "float64", "i8": "int8", "i16": "int16",
       "i32": "int32", "i64": "int64", "u8": "uint8", "u16": "uint16", "u32": "uint32",
       "u64": "uint64", "bool": "bool", "c64": "complex64", "c128": "complex128"}
_ITEMSIZE = {k: np.dtype(v).itemsize for k, v in _NP.items()}
_FLOATS = ("f16", "f32", "f64")
_COMPLEX = COMPLEX_NAMES


def compile_func(func: Func, *, layouts: Sequence[str], fastmath: bool, boundscheck: bool,
                 name: str, parallel: Optional[bool] = False,
                 size_params: Optional[Mapping[str, int]] = None,
                 donate: Optional[Mapping[int, int]] = None) -> "CompiledFunc":
    """Lower ``func`` (verified IR) and JIT-compile it for the host.

    ``layouts[k]`` is "C" or "A" for param k (ignored for scalars); a tuple with one entry per
    *tensor* param only is accepted too; ``size_params`` maps dim names to the integer scalar
    parameters whose values they are, and ``donate`` maps a result to the param whose memory
    it is written into (see :func:`~lattice.codegen.lower.lower_func`).
    """
    from .lower import lower_func  # not needed (nor imported) when loading from the disk cache
    lowered = lower_func(func, layouts=tuple(layouts), fastmath=fastmath,
                         boundscheck=boundscheck, name=name, parallel=parallel,
                         size_params=size_params, donate=donate)
    uses_pool = '@"lt_parallel_for"(' in lowered.ir_text
    if uses_pool:
        from .pool import ensure_runtime
        ensure_runtime()  # its symbols must be known before the object is loaded
    link = []
    if pyentry.supported(lowered.abi):
        link.append(pyentry.entry_ir(lowered.abi, [p.type.shape for p in func.params]))
    jit = compile_ir(lowered.ir_text, link=link)
    return CompiledFunc(jit, lowered.abi, unoptimized_ir=lowered.ir_text, pyentry=bool(link),
                        uses_pool=uses_pool)


class CompiledFunc:
    """A callable compiled kernel: ``f(*arrays_and_scalars) -> tuple of results``.

    Tensor results are new C-ordered NumPy arrays (a donated result, ``abi.donated``, is the
    argument it was written into); scalar results are NumPy scalars.
    Errors detected in the kernel raise the exception recorded in ``abi.errors``.
    """

    def __init__(self, jit: JITModule, abi: Abi, *, unoptimized_ir: str = "",
                 pyentry: bool = False, uses_pool: bool = False) -> None:
        self._jit = jit  # keeps the machine code alive
        self.abi = abi
        self.unoptimized_ir = unoptimized_ir
        self.has_pyentry = pyentry
        self.uses_pool = uses_pool  # calls the thread pool of .parallel
        self.address = jit.address(abi.symbol)
        self._cfunc = _KERNEL_T(self.address)
        self._call: Optional[Callable[..., Any]] = None  # made on first use (~4 ms)

    def __call__(self, *args: Any) -> tuple[Any, ...]:
        call = self._call
        if call is None:
            call = self._call = _make_caller(self.abi, self._cfunc)
        return call(*args)

    def python_callable(self, fallback: Callable[..., Any], *, multi: bool,
                        name: str = "") -> Optional[Callable[..., Any]]:
        """The LLVM-generated CPython entry of this specialisation as a Python callable.

        It takes the kernel's arguments and returns its result (a tuple when ``multi``), and
        hands every call it does not accept to ``fallback`` (see :mod:`.pyentry`).  None when
        the object has no entry or this interpreter is not one the entry supports.  The
        callable keeps this object (and so the machine code) alive.
        """
        if not self.has_pyentry:
            return None
        abi = self.abi

        def raise_error(code: int) -> None:
            raise abi.error(code)

        made = pyentry.make_callable(self._jit.address(pyentry.ctx_symbol(abi)),
                                     self._jit.address(pyentry.entry_symbol(abi)),
                                     name or abi.symbol, fallback=fallback,
                                     raise_error=raise_error, multi=multi, owner=self)
        return made

    @property
    def name(self) -> str:
        return self.abi.symbol

    @property
    def llvm_ir(self) -> str:
        """The optimized LLVM IR."""
        return self._jit.llvm_ir

    @property
    def asm(self) -> str:
        return self._jit.asm

    @property
    def object_code(self) -> bytes:
        return self._jit.object_code

    def to_payload(self) -> dict[str, Any]:
        """The disk-cache payload (schema of :mod:`lattice.codegen.cache`; meta is JSON-able)."""
        return {
            "object": self._jit.object_code,
            "llvm_ir": self._jit.llvm_ir,
            "asm": "",
            "meta": {"abi": self.abi.to_json(), "unoptimized_ir": self.unoptimized_ir,
                     "pyentry": self.has_pyentry, "uses_pool": self.uses_pool},
        }

    @staticmethod
    def from_payload(d: Mapping[str, Any]) -> "CompiledFunc":
        """Rebuild from :meth:`to_payload` output without lowering or code generation."""
        meta = d["meta"]
        if meta.get("uses_pool"):
            from .pool import ensure_runtime
            ensure_runtime()
        jit = load_object(d["object"], llvm_ir=d.get("llvm_ir", ""), asm=d.get("asm", ""))
        return CompiledFunc(jit, Abi.from_json(meta["abi"]),
                            unoptimized_ir=meta.get("unoptimized_ir", ""),
                            pyentry=bool(meta.get("pyentry", False)),
                            uses_pool=bool(meta.get("uses_pool", False)))

    def __repr__(self) -> str:
        return f"<CompiledFunc {self.abi.symbol}>"


_libc = ctypes.CDLL(None)  # the allocator the kernels' malloc resolves to
_free = _libc.free
_free.argtypes = [ctypes.c_void_p]
_free.restype = None


class _Owned:
    """The base of an array over a buffer a kernel allocated: frees it with the array."""

    __slots__ = ("__array_interface__", "_ptr")

    def __init__(self, ptr: int, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self._ptr = ptr
        self.__array_interface__ = {"data": (ptr, False), "shape": shape,
                                    "typestr": dtype.str, "version": 3}

    def __del__(self) -> None:
        _free(self._ptr)


def adopt_buffer(ptr: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A C-ordered array over ``ptr`` (``malloc``-ed by a kernel, of ``shape`` and ``dtype``)
    that owns it: the buffer is freed when the array and every view of it are gone.  No copy."""
    dt = np.dtype(dtype)
    if not ptr or any(n == 0 for n in shape):
        if ptr:
            _free(ptr)
        return np.empty(shape, dt)
    arr = np.asarray(_Owned(ptr, tuple(int(n) for n in shape), dt))
    assert arr.base is not None and arr.flags.writeable
    return arr


def _fast_ptr(arr: str, var: str) -> list[str]:
    # the data address of a writable C-contiguous array through the buffer protocol costs
    # ~0.25 us; arr.ctypes.data costs ~1 us (read-only and empty arrays take that path)
    return [f"    try:",
            f"        {var} = _addr(_C.from_buffer({arr}))",
            f"    except (TypeError, ValueError, BufferError):",
            f"        {var} = {arr}.ctypes.data"]


def _make_caller(abi: Abi, cfunc: Any) -> Any:
    """Generate the per-signature call function (see module docstring)."""
    n = len(abi.params)
    argnames = [f"a{k}" for k in range(n)]
    lines = [f"def call({', '.join(argnames)}):"]
    fmt = "<"
    vals: list[str] = []
    for k, p in enumerate(abi.params):
        if p.ndim == 0 and p.dtype in _COMPLEX:  # two f64 slots (abi.COMPLEX_NAMES)
            fmt += "dd"
            lines.append(f"    z{k} = complex(a{k})")
            vals.extend((f"z{k}.real", f"z{k}.imag"))
            continue
        if p.ndim == 0:
            # a u64 above the i64 range packs as its unsigned bits
            fmt += "d" if p.dtype in _FLOATS else "Q" if p.dtype == "u64" else "q"
            vals.append(f"float(a{k})" if p.dtype in _FLOATS else f"int(a{k})")
            continue
        lines.append(f"    s{k} = a{k}.shape")
        fmt += "Q" + "q" * p.ndim
        if p.layout == "C":
            lines.extend(_fast_ptr(f"a{k}", f"d{k}"))
            vals.append(f"d{k}")
        else:
            vals.append(f"a{k}.ctypes.data")
        vals.extend(f"s{k}[{ax}]" for ax in range(p.ndim))
        if p.layout == "A":
            lines.append(f"    t{k} = a{k}.strides")
            fmt += "q" * p.ndim
            vals.extend(f"t{k}[{ax}] // {_ITEMSIZE[p.dtype]}" for ax in range(p.ndim))
    results: list[str] = []
    decode: list[str] = []
    donated = dict(abi.donated)
    slot = sum(p.n_slots for p in abi.params)
    for j, o in enumerate(abi.outs):
        if o.ndim == 0 and o.dtype in _COMPLEX:
            fmt += "qq"
            vals.extend(("0", "0"))
            decode.append(f"    r{j} = {_NP[o.dtype]}(complex(*_unpack_dd(slots, {slot * 8})))")
            results.append(f"r{j}")
            slot += 2
            continue
        if o.ndim == 0:
            fmt += "q"
            vals.append("0")
            if o.dtype in _FLOATS:
                decode.append(f"    r{j} = {_NP[o.dtype]}(_unpack_d(slots, {slot * 8})[0])")
            elif o.dtype == "u64":  # the slot holds the bits; ctypes reads them signed
                decode.append(f"    r{j} = {_NP[o.dtype]}(slots[{slot}] & 0xFFFFFFFFFFFFFFFF)")
            else:
                decode.append(f"    r{j} = {_NP[o.dtype]}(slots[{slot}])")
            results.append(f"r{j}")
            slot += 1
            continue
        if o.alloc:  # the kernel fills the slots with its buffer and shape
            fmt += "q" * (1 + o.ndim)
            vals.extend(["0"] * (1 + o.ndim))
            shape = ", ".join(f"slots[{slot + 1 + ax}]" for ax in range(o.ndim)) + ","
            decode.append(f"    o{j} = _adopt(slots[{slot}], ({shape}), {_NP[o.dtype]})")
            results.append(f"o{j}")
            slot += 1 + o.ndim
            continue
        assert j in donated, "a tensor result the kernel does not allocate (abi.py)"
        lines.append(f"    o{j} = a{donated[j]}")  # the kernel leaves the result in it
        lines.append(f"    e{j} = d{donated[j]}")
        fmt += "Q" + "q" * o.ndim
        vals.append(f"e{j}")
        vals.extend(f"o{j}.shape[{ax}]" for ax in range(o.ndim))
        results.append(f"o{j}")
        slot += 1 + o.ndim
    if not vals:
        fmt, vals = "<q", ["0"]
    lines.append(f"    slots = _Slots.from_buffer_copy(_pack({', '.join(vals)}))")
    lines.append("    rc = _cfunc(slots)")
    lines.append("    if rc:")
    lines.append("        raise _abi.error(rc)")
    lines.extend(decode)
    lines.append(f"    return ({', '.join(results)}{',' if results else ''})")
    src = "\n".join(lines) + "\n"
    ns: dict[str, Any] = {
        "_Slots": ctypes.c_int64 * max(abi.n_slots, 1),
        "_pack": struct.Struct(fmt).pack,
        "_unpack_d": struct.Struct("<d").unpack_from,
        "_unpack_dd": struct.Struct("<dd").unpack_from,
        "_cfunc": cfunc,
        "_abi": abi,
        "_adopt": adopt_buffer,
        "_addr": ctypes.addressof,
        "_C": ctypes.c_char,
        **{v: getattr(np, v) for v in _NP.values() if v != "bool"},
        "bool": np.bool_,
    }
    exec(compile(src, f"<lattice call {abi.symbol}>", "exec"), ns)
    call = ns["call"]
    call.__lattice_source__ = src
    return call
