"""The BLAS NumPy ships, found at run time, for the large matrix products of compiled kernels.

NumPy's wheels carry an OpenBLAS (``scipy-openblas``: ``numpy.libs/`` on Linux,
``numpy/.dylibs`` on macOS) whose CBLAS functions have a prefix and a suffix naming the build
(``scipy_cblas_dgemm64_``: 64-bit integers), and a NumPy built against a system BLAS links
plain ``cblas_dgemm``.  :func:`find` looks the routines up through NumPy's own extension
module (a symbol lookup on its handle searches the libraries it links, whatever their file
names), registers their addresses with LLVM under their own names, so compiled code calls
``?gemm``/``?syrk``/``?gemv`` directly and ``inspect_llvm`` shows the call, and returns a
:class:`Blas` describing them; None when there is none (or ``LATTICE_BLAS=none``): the
lowering then uses lattice's own code everywhere.

Contracts
---------
* :func:`cache_tag` names the library, its symbol convention and whether it is used; the disk
  cache folds it into every key (:func:`lattice.codegen.cache.make_key`), so an object that
  calls the BLAS is never loaded in a process where it is off or is another library.  Computing
  the tag also registers the symbols, which an object loaded from the cache needs.
* Threads: the library runs its own.  ``lt.set_num_threads(n)`` and ``LATTICE_NUM_THREADS``
  set its thread count too when it exports a setter (OpenBLAS does); the library is shared with
  NumPy, so that also sets NumPy's.  Without either, its own default stands (the CPUs
  available, or ``OPENBLAS_NUM_THREADS``).
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass
from typing import Optional

import llvmlite.binding as llvm

from . import jit

__all__ = ["Blas", "cache_tag", "find", "set_num_threads", "ENV"]

#: the environment variable that turns the BLAS off (``none``) or on (``auto``, the default)
ENV = "LATTICE_BLAS"
_OFF = ("none", "off", "0", "false", "no")
_ON = ("", "auto", "numpy", "1", "on", "true", "yes")

#: the CBLAS routines compiled code may call, by their name without prefix and suffix
ROUTINES = ("sgemm", "dgemm", "ssyrk", "dsyrk", "sgemv", "dgemv")

# (prefix, suffix, 64-bit integers): scipy-openblas64, scipy-openblas32, a plain ILP64 build,
# a plain LP64 build (whose integers are checked against the configuration string)
_CONVENTIONS = (("scipy_", "64_", True), ("scipy_", "", False), ("", "64_", True),
                ("", "", False))
_SETTERS = ("openblas_set_num_threads", "goto_set_num_threads")


@dataclass(frozen=True)
class Blas:
    """CBLAS routines of one library: ``symbol("dgemm")`` is the name compiled code calls
    (registered with LLVM), ``int64`` whether its integers (sizes, leading dimensions) are
    64-bit, else 32-bit."""

    library: str  # the name NumPy's configuration gives it
    path: str  # the module whose handle finds its symbols
    prefix: str
    suffix: str
    int64: bool
    set_threads: int  # address of ``void set_num_threads(int)``, 0 when not exported

    def symbol(self, routine: str) -> str:
        return f"{self.prefix}cblas_{routine}{self.suffix}"

    @property
    def tag(self) -> str:
        bits = 64 if self.int64 else 32
        return f"blas={self.library}:{self.symbol('*')}:int{bits}"


_found: dict[str, Optional[Blas]] = {}  # by the setting of LATTICE_BLAS
_requested: Optional[int] = None  # the count of the last lt.set_num_threads


def _mode() -> str:
    raw = os.environ.get(ENV, "")
    value = raw.strip().lower()
    if value in _OFF:
        return "none"
    if value in _ON:
        return "auto"
    raise ValueError(f"{ENV}={raw!r} is not understood: use 'none' (lattice's own matrix "
                     "products everywhere) or 'auto' (NumPy's BLAS for large products)")


def find() -> Optional[Blas]:
    """NumPy's BLAS with its routines registered with LLVM, or None (none found, or
    ``LATTICE_BLAS=none``).  Raises ValueError for another value of ``LATTICE_BLAS``."""
    mode = _mode()
    if mode in _found:
        return _found[mode]
    blas = None if mode == "none" else _locate()
    if blas is not None:
        with jit.LLVM_LOCK:
            for r in ROUTINES:
                if not llvm.address_of_symbol(blas.symbol(r)):
                    llvm.add_symbol(blas.symbol(r), _address(blas, r))
        threads = os.environ.get("LATTICE_NUM_THREADS", "").strip()
        if _requested is not None:
            _set_threads(blas, _requested)
        elif threads.isdigit() and int(threads) > 0:
            _set_threads(blas, int(threads))
    _found[mode] = blas
    return blas


_handles: dict[str, ctypes.CDLL] = {}


def _address(blas: Blas, routine: str) -> int:
    return _lookup(_handles[blas.path], blas.symbol(routine))


def _lookup(lib: ctypes.CDLL, name: str) -> int:
    try:
        return ctypes.cast(lib[name], ctypes.c_void_p).value or 0
    except AttributeError:
        return 0


def _numpy_blas_config() -> tuple[str, str]:
    """(name, configuration string) of the BLAS NumPy was built with, empty when unknown."""
    try:
        import numpy as np
        deps = np.show_config(mode="dicts")["Build Dependencies"]  # type: ignore[index]
        info = deps.get("blas", {})
        return str(info.get("name", "")), str(info.get("openblas configuration", ""))
    except Exception:  # an old NumPy, or one built without the configuration
        return "", ""


def _locate() -> Optional[Blas]:
    try:
        import numpy._core._multiarray_umath as umath  # NumPy 2
    except ImportError:
        try:
            import numpy.core._multiarray_umath as umath  # type: ignore[no-redef]
        except ImportError:
            return None
    path = getattr(umath, "__file__", None)
    if not path:
        return None
    try:
        lib = _handles.get(path) or ctypes.CDLL(path)
    except OSError:
        return None
    name, config = _numpy_blas_config()
    for prefix, suffix, int64 in _CONVENTIONS:
        symbols = [f"{prefix}cblas_{r}{suffix}" for r in ROUTINES]
        if not all(_lookup(lib, s) for s in symbols):
            continue
        if not suffix:  # no suffix: 64-bit integers only if the configuration says so
            int64 = "USE64BITINT" in config
        setter = 0
        for s in _SETTERS:
            setter = _lookup(lib, f"{prefix}{s}{suffix}")
            if setter:
                break
        _handles[path] = lib
        return Blas(library=name or os.path.basename(path), path=path, prefix=prefix, suffix=suffix,
                    int64=int64, set_threads=setter)
    return None


def _set_threads(blas: Blas, n: int) -> None:
    if blas.set_threads:  # OpenBLAS: void openblas_set_num_threads(int), in every build
        ctypes.CFUNCTYPE(None, ctypes.c_int)(blas.set_threads)(n)


def set_num_threads(n: int) -> None:
    """Give the BLAS ``n`` threads (``lt.set_num_threads``): now if it is already in use,
    else when it is first found."""
    global _requested
    _requested = n
    blas = _found.get("auto")
    if blas is not None:
        _set_threads(blas, n)


def cache_tag() -> str:
    """What the disk cache must know of the BLAS: the library and symbols, or that it is off."""
    blas = find()
    return "blas=none" if blas is None else blas.tag
