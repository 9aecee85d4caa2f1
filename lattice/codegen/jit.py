"""JIT engine layer: LLVM IR text in, callable machine code out.

This module knows nothing about the lattice IR; it deals only in LLVM IR text and object files.

Contracts
---------
* Every call into LLVM made here (parsing, verifying, optimizing, emitting, creating and disposing
  execution engines) happens while holding :data:`LLVM_LOCK`, one process-wide re-entrant lock,
  because LLVM's global context is not thread-safe. Other lattice modules that touch llvmlite's
  binding layer directly must hold it too.
* Code is generated for the host: the target machine uses the host CPU name and feature set, so
  objects are only valid on a machine whose :func:`host_cpu_id` is identical (the disk cache puts
  it into every key).
* :func:`compile_ir` generates code exactly once: the optimized module is emitted to an object
  file and that object file is what gets loaded and executed, so ``JITModule.object_code`` is
  byte-for-byte the code that runs and can be cached and reloaded with :func:`load_object`.
* External symbols referenced by an object (libc ``malloc``/``free``, libm ``exp``/``log1p``/...,
  and compiler-runtime helpers such as ``__powidf2`` that intrinsics may lower to) are resolved
  against the running process, libm and libgcc before the object is loaded. An object with a
  symbol that resolves nowhere raises :class:`RuntimeError` instead of letting LLVM abort the
  process.
* A :class:`JITModule` owns its execution engine. A function pointer obtained from
  :meth:`JITModule.address` is valid only while that ``JITModule`` is alive and not closed: keep
  a reference to it for as long as the pointer may be called.
* Compiling leaves next to nothing behind: ~1.5 KiB per :func:`compile_ir` that llvmlite
  allocates and never frees (see :func:`optimize_module`). Each compilation parses, links and
  optimizes in an LLVM context of its own, disposed once the object file is emitted, so what
  LLVM interns per context (constants, types, loop metadata, attribute lists) does not pile up
  in the global context; every module, pass manager, pass builder and tuning-options object is
  freed explicitly.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import struct
import threading
from typing import Final, Sequence

import llvmlite.binding as llvm

__all__ = [
    "LLVM_LOCK",
    "JITModule",
    "compile_ir",
    "host_cpu_id",
    "host_target_machine",
    "load_object",
    "optimize_module",
]

#: Serializes all LLVM work in the process (see module docstring). Re-entrant so that helpers
#: which lock can call each other.
LLVM_LOCK: Final = threading.RLock()

_initialized = False
_host_cpu: tuple[str, str] | None = None
_host_tm: llvm.TargetMachine | None = None


def _ensure_initialized() -> None:
    global _initialized
    with LLVM_LOCK:
        if not _initialized:
            # llvmlite >= 0.45 raises from llvm.initialize(); the native target and asm printer
            # are all that code generation for the host needs.
            llvm.initialize_native_target()
            llvm.initialize_native_asmprinter()
            _initialized = True


def _host_cpu_name_and_features() -> tuple[str, str]:
    global _host_cpu
    with LLVM_LOCK:
        if _host_cpu is None:
            _ensure_initialized()
            name = llvm.get_host_cpu_name()
            try:
                features = llvm.get_host_cpu_features().flatten()
            except RuntimeError:
                # Some hosts cannot report features; the CPU name alone still implies a baseline.
                features = ""
            _host_cpu = (name, features)
        return _host_cpu


def _new_target_machine() -> llvm.TargetMachine:
    """A fresh host target machine.

    Vector width: no ``prefer-vector-width`` override and no ``+prefer-256-bit`` feature, so LLVM's
    per-CPU tuning decides. On znver4 that tuning allows 512-bit vectors, and that measured best
    for array-sized reductions: an ``fadd fast`` double-sum loop (called in a loop from JITed
    code, no Python in the timing) ran at ~17.2 Gelem/s with zmm versus ~15.8 with
    ``+prefer-256-bit`` (ymm) for 1k-4k elements; the two were within ~8% of each other from 128
    to 512 elements and again once the data came from L2 or memory. ymm won only for very short
    arrays (64 elements: 10.4 versus 8.4 Gelem/s), where the zmm loop's 32-element step leaves
    more to the scalar tail. Zen 4 runs a zmm operation as two 256-bit halves, so wide vectors
    cost no clock throttling and halve the instruction count. On CPUs where they do throttle
    (e.g. Skylake-SP), LLVM's tuning sets prefer-256-bit itself, so keeping its default keeps that
    choice right too.

    Code model: the JIT default (large on 64-bit hosts), because the JIT places code, constant
    pools and external functions at arbitrary distances that a 32-bit displacement may not reach.
    """
    name, features = _host_cpu_name_and_features()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=name, features=features, opt=3, codemodel="jitdefault", jit=True
    )


def host_target_machine() -> llvm.TargetMachine:
    """The process-wide host target machine.

    Host CPU name and features, opt level 3, JIT code model.

    Cached: every call returns the same object. Use it only while holding :data:`LLVM_LOCK`. Never
    hand it to ``llvm.create_mcjit_compiler``, which takes ownership of (and later frees) the
    target machine it is given.
    """
    global _host_tm
    with LLVM_LOCK:
        if _host_tm is None:
            _host_tm = _new_target_machine()
        return _host_tm


def host_cpu_id() -> str:
    """``"cpu_name:features"`` of the host, e.g. ``"znver4:+64bit,+adx,..."``.

    Two machines with equal ids run each other's objects; cache keys include it for that reason.
    """
    name, features = _host_cpu_name_and_features()
    return f"{name}:{features}"


def optimize_module(mod: llvm.ModuleRef, speed_level: int = 3) -> None:
    """Run LLVM's default per-module pipeline at ``O<speed_level>`` on ``mod`` in place.

    Uses the new pass manager with the host target machine attached, so cost models (vector
    width, interleave counts) are the host CPU's. Loop vectorization, SLP vectorization, loop
    interleaving and loop unrolling are switched on (llvmlite leaves SLP off by default).
    llvmlite exposes no size level; the default pipeline it builds is the speed one (size level 0).
    The module's triple and data layout should already be the host's (``compile_ir`` sets them).

    Memory: the pass manager, pass builder and tuning options are created per call and freed
    before returning. Neither the pass builder nor the pass manager can be reused across modules
    with llvmlite 0.50: running a pipeline registers callbacks pointing at a stack object into the
    pass builder, and running a pass manager a second time aborts. Each pass builder leaks the
    ~1.5 KiB ``PassInstrumentationCallbacks`` that llvmlite allocates for it and never frees;
    that is all a compilation leaves behind.
    """
    if not 0 <= speed_level <= 3:
        raise ValueError(f"speed_level must be 0, 1, 2 or 3, got {speed_level!r}")
    with LLVM_LOCK:
        pto = llvm.create_pipeline_tuning_options(speed_level=speed_level)
        try:
            pto.loop_vectorization = True
            pto.slp_vectorization = True
            pto.loop_interleaving = True
            pto.loop_unrolling = True
            pass_builder = llvm.create_pass_builder(host_target_machine(), pto)
            try:
                pass_manager = pass_builder.getModulePassManager()
                try:
                    pass_manager.run(mod, pass_builder)
                finally:
                    _dispose_module_pass_manager(pass_manager)
            finally:
                pass_builder.close()
        finally:
            pto.close()


def _dispose_module_pass_manager(pm: llvm.ModulePassManager) -> None:
    """Free a new-pass-manager ``ModulePassManager``.

    In llvmlite 0.50 ``ModulePassManager.close()`` frees nothing: the class derives from
    ``ffi.ObjectRef`` before ``NewPassManager``, so the no-op ``ObjectRef._dispose`` shadows the
    real one, and every pass manager (the O3 pipeline plus what its passes keep after a run,
    75-120 KiB) would stay allocated for the life of the process. Call the disposal function
    directly while that is so; defer to ``close()`` once llvmlite's own ``_dispose`` is found
    again.
    """
    ffi = llvm.ffi
    dispose = getattr(ffi.lib, "LLVMPY_DisposeNewModulePassManger", None)
    if type(pm)._dispose is ffi.ObjectRef._dispose and dispose is not None and not pm.closed:
        dispose(pm)
        pm.detach()
    else:
        pm.close()


# --------------------------------------------------------------------------------------------
# Object files: symbol tables and external symbol resolution
# --------------------------------------------------------------------------------------------

_ELF_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_ELF_SECTION = struct.Struct("<IIQQQQIIQQ")
_ELF_SYMBOL = struct.Struct("<IBBHQQ")
_SHT_SYMTAB = 2
_STB_GLOBAL, _STB_WEAK = 1, 2
_STT_FUNC = 2


class _Symbols:
    """Global symbols of an ELF64 little-endian object file: what it defines and what it needs."""

    def __init__(self, defined: dict[str, bool], undefined: list[str], weak_undefined: list[str]):
        self.defined = defined  # name -> is a function
        self.undefined = undefined
        self.weak_undefined = weak_undefined


def _c_string(blob: bytes, offset: int) -> str:
    end = blob.index(b"\0", offset)
    return blob[offset:end].decode("utf-8")


def _elf_symbols(obj: bytes) -> _Symbols | None:
    """Parse the symbol table of an ELF64 little-endian object; None if ``obj`` is another format.

    Raises RuntimeError when the data claims to be ELF but is malformed (e.g. truncated).
    """
    if obj[:4] != b"\x7fELF" or obj[4:6] != b"\x02\x01":  # ELFCLASS64, little-endian
        return None
    try:
        header = _ELF_HEADER.unpack_from(obj, 0)
        shoff, shentsize, shnum = header[6], header[11], header[12]
        sections = [_ELF_SECTION.unpack_from(obj, shoff + i * shentsize) for i in range(shnum)]
        defined: dict[str, bool] = {}
        undefined: list[str] = []
        weak_undefined: list[str] = []
        for sh_type, sh_offset, sh_size, sh_link in ((s[1], s[4], s[5], s[6]) for s in sections):
            if sh_type != _SHT_SYMTAB:
                continue
            strtab = sections[sh_link]
            strings = obj[strtab[4] : strtab[4] + strtab[5]]
            if len(strings) != strtab[5] or sh_offset + sh_size > len(obj):
                raise ValueError("section extends past the end of the data")
            for off in range(sh_offset, sh_offset + sh_size, _ELF_SYMBOL.size):
                st_name, st_info, _other, st_shndx, _value, _size = _ELF_SYMBOL.unpack_from(
                    obj, off
                )
                binding, kind = st_info >> 4, st_info & 0xF
                if binding not in (_STB_GLOBAL, _STB_WEAK) or st_name == 0:
                    continue
                name = _c_string(strings, st_name)
                if st_shndx != 0:
                    defined[name] = kind == _STT_FUNC
                elif binding == _STB_WEAK:
                    weak_undefined.append(name)
                else:
                    undefined.append(name)
    except (struct.error, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise RuntimeError(f"not a valid ELF object file ({exc})") from exc
    return _Symbols(defined, undefined, weak_undefined)


def _runtime_libraries() -> list[ctypes.CDLL]:
    """Libraries searched for symbols LLVM cannot find by itself, in order.

    The process itself (libc, and libm wherever Python links it), libm by name (in case nothing
    loaded it globally), and libgcc_s, which carries the compiler-runtime helpers LLVM lowers some
    intrinsics to (``llvm.powi`` -> ``__powidf2``, i128 division -> ``__divti3``).
    """
    libs = [ctypes.CDLL(None)]
    for short in ("m", "gcc_s"):
        path = ctypes.util.find_library(short)
        if path:
            try:
                libs.append(ctypes.CDLL(path))
            except OSError:
                pass
    return libs


_runtime_libs: list[ctypes.CDLL] | None = None
_process_lib: ctypes.CDLL | None = None


def _lookup(lib: ctypes.CDLL, name: str) -> int:
    try:
        return ctypes.cast(lib[name], ctypes.c_void_p).value or 0
    except AttributeError:
        return 0


def _resolve_externals(names: list[str], *, required: bool) -> None:
    """Make every name in ``names`` known to LLVM's symbol search, registering it if needed.

    ``required`` names that cannot be found raise RuntimeError: left to MCJIT, an unresolved
    external is a fatal error that aborts the whole process.
    """
    global _runtime_libs, _process_lib
    missing = []
    for name in names:
        if llvm.address_of_symbol(name):
            continue
        # the process first (libc, the Python C-API): finding libm and libgcc_s by name runs
        # ldconfig, which costs tens of milliseconds, so only a miss here pays for it
        if _process_lib is None:
            _process_lib = ctypes.CDLL(None)
        libs = [_process_lib]
        if not _lookup(_process_lib, name):
            if _runtime_libs is None:
                _runtime_libs = _runtime_libraries()
            libs = _runtime_libs
        for lib in libs:
            address = _lookup(lib, name)
            if address:
                llvm.add_symbol(name, address)
                break
        else:
            missing.append(name)
    if missing and required:
        raise RuntimeError(
            "object code references symbols that resolve nowhere in this process "
            f"(searched the process, libm and libgcc_s): {', '.join(sorted(missing))}. "
            "Declare only libc/libm functions in generated code, or load the library that "
            "defines them (llvmlite.binding.load_library_permanently) before compiling."
        )


# --------------------------------------------------------------------------------------------
# Engines
# --------------------------------------------------------------------------------------------


class JITModule:
    """Machine code loaded into an MCJIT execution engine, plus the texts it came from.

    Attributes
    ----------
    object_code:
        The object file that was loaded; pass it to :func:`load_object` to get the same code back
        without running LLVM code generation.
    llvm_ir:
        The LLVM IR the object was generated from (optimized unless ``optimize=False`` was
        passed to ``compile_ir``); empty when the module was loaded from an object and no IR
        was supplied.

    The engine, and with it all code, lives exactly as long as this object.
    """

    def __init__(
        self,
        engine: llvm.ExecutionEngine,
        object_code: bytes,
        llvm_ir: str,
        asm: str,
        symbols: _Symbols | None,
    ) -> None:
        self._engine: llvm.ExecutionEngine | None = engine
        self.object_code: bytes = object_code
        self.llvm_ir: str = llvm_ir
        self._asm = asm
        self._addresses: dict[str, int] = {}
        self._known: frozenset[str] | None = None
        if symbols is not None:
            self._known = frozenset(symbols.defined)
            for name, is_function in symbols.defined.items():
                get = (
                    engine.get_function_address if is_function else engine.get_global_value_address
                )
                self._addresses[name] = get(name)

    @property
    def symbols(self) -> frozenset[str]:
        """Names of the global symbols this module defines (empty set if the format is not ELF)."""
        return self._known if self._known is not None else frozenset()

    def address(self, name: str) -> int:
        """Address of the global function or variable ``name``; KeyError if it is not defined.

        Valid while this ``JITModule`` is alive.
        """
        if self._engine is None:
            raise RuntimeError("JITModule has been closed; its code is gone")
        address = self._addresses.get(name)
        if address:
            return address
        if self._known is not None:
            raise KeyError(
                f"{name!r} is not defined by this module; it defines {sorted(self._known)}"
            )
        with LLVM_LOCK:
            address = int(self._engine.get_function_address(name))
        if not address:
            raise KeyError(f"{name!r} is not defined by this module")
        self._addresses[name] = address
        return address

    @property
    def asm(self) -> str:
        """Host assembly of the code (computed on first access from ``llvm_ir``; "" if neither
        assembly nor IR was supplied)."""
        if not self._asm and self.llvm_ir:
            with LLVM_LOCK:
                context = llvm.create_context()
                try:
                    mod = _parse_and_verify(self.llvm_ir, context)
                    try:
                        self._asm = host_target_machine().emit_assembly(mod)
                    finally:
                        mod.close()
                finally:
                    context.close()
        return self._asm

    def close(self) -> None:
        """Free the machine code now. Every address obtained from this module becomes invalid."""
        engine, self._engine = self._engine, None
        self._addresses.clear()
        if engine is not None:
            with LLVM_LOCK:
                engine.close()

    def __del__(self) -> None:
        # Disposing an engine touches LLVM state, so it must not race with work in other threads;
        # without this the engine would be freed by its own finalizer, outside the lock.
        try:
            self.close()
        except Exception:  # interpreter shutdown may have torn down llvmlite or the lock already
            pass


def _parse_and_verify(ir_text: str, context: llvm.ContextRef) -> llvm.ModuleRef:
    """Parse ``ir_text`` in ``context`` into a module retargeted to the host; RuntimeError with
    LLVM's message. The module must be closed before ``context`` is."""
    tm = host_target_machine()
    try:
        mod = llvm.parse_assembly(ir_text, context=context)
    except RuntimeError as exc:
        raise RuntimeError(f"LLVM rejected the IR (parse error): {exc}") from exc
    # The host target machine decides; a triple or layout written by the generator is replaced
    # so that optimization and code generation agree on ABI and type sizes.
    mod.triple = tm.triple
    mod.data_layout = str(tm.target_data)
    try:
        mod.verify()
    except RuntimeError as exc:
        mod.close()
        raise RuntimeError(f"LLVM rejected the IR (verifier): {exc}") from exc
    return mod


def _load(object_code: bytes, llvm_ir: str, asm: str) -> JITModule:
    with LLVM_LOCK:
        _ensure_initialized()
        host_is_elf = llvm.get_object_format() == "ELF"
        symbols = _elf_symbols(object_code)
        if host_is_elf and symbols is None:
            raise RuntimeError("object code is not an ELF64 little-endian object for this host")
        if symbols is not None:
            _resolve_externals(symbols.undefined, required=True)
            _resolve_externals(symbols.weak_undefined, required=False)
        engine_tm = _new_target_machine()  # the engine takes ownership of it
        carrier = llvm.parse_assembly("")  # MCJIT needs a module; the code comes from the object
        carrier.triple = engine_tm.triple
        carrier.data_layout = str(engine_tm.target_data)
        engine = llvm.create_mcjit_compiler(carrier, engine_tm)
        engine.add_object_file(llvm.ObjectFileRef.from_data(object_code))
        if symbols is None or not symbols.defined:
            engine.finalize_object()
        # Otherwise the JITModule's eager symbol lookups finalize the object (relocations,
        # page permissions): MCJIT does that on the first successful lookup. finalize_object()
        # would in addition run code generation for the empty carrier module, which costs
        # ~0.7 ms, most of a load.
        return JITModule(engine, object_code, llvm_ir, asm, symbols)


def compile_ir(ir_text: str, *, optimize: bool = True, link: Sequence[str] = ()) -> JITModule:
    """Compile LLVM IR text for the host and load it.

    Steps: parse, verify, set the host triple and data layout, link in the modules of ``link``
    (IR texts, each verified too; they may declare functions ``ir_text`` defines), optimize (O3
    with vectorization, unless ``optimize=False``), emit an object file with the host target
    machine, and load that object into a fresh MCJIT engine. Raises RuntimeError, carrying
    LLVM's message, if the IR does not parse or verify, or if it references symbols that resolve
    nowhere.
    """
    with LLVM_LOCK:
        _ensure_initialized()
        # A context per compilation (~15 us to create and dispose): what LLVM interns while
        # parsing and optimizing is freed with it instead of accumulating in the global context.
        # Only the object file outlives it; the engine's carrier module is empty.
        context = llvm.create_context()
        try:
            mod = _parse_and_verify(ir_text, context)
            try:
                for extra in link:
                    mod.link_in(_parse_and_verify(extra, context))
                if optimize:
                    optimize_module(mod)
                final_ir = str(mod)
                object_code = host_target_machine().emit_object(mod)
            finally:
                mod.close()
        finally:
            context.close()
        return _load(object_code, final_ir, "")


def load_object(object_code: bytes, *, llvm_ir: str = "", asm: str = "") -> JITModule:
    """Load an object file produced by :func:`compile_ir` (``JITModule.object_code``) into a fresh
    engine, without LLVM code generation.

    ``llvm_ir`` and ``asm`` are stored for inspection only; when ``asm`` is empty and ``llvm_ir``
    is given, ``JITModule.asm`` regenerates it on demand. The object must come from a host with
    the same :func:`host_cpu_id`. Raises RuntimeError for data that is not an object file of the
    host's format or that references unresolvable symbols.
    """
    return _load(bytes(object_code), llvm_ir, asm)
