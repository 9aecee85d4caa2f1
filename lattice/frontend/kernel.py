"""``@lt.kernel``: the user-facing compiled function and its dispatcher.

A :class:`Kernel` traces its Python function once (annotations fix every dtype and rank) into an
IR ``Func``, runs the optimisation passes, and compiles one machine-code specialisation per
*layout signature*: for each array argument, C-contiguous ("C") or any strides ("A").  A new
shape never recompiles: sizes are runtime arguments.

Calling checks each argument (dtype, rank, agreement of named dims across arguments) and raises
``TypeError``/``ValueError`` naming the argument; results are NumPy arrays or NumPy scalars.
``LATTICE_DISABLE_JIT=1`` runs every kernel through the NumPy reference interpreter instead.
"""
from __future__ import annotations

import functools
import os
import re
import threading
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import CompileError
from ..ir import passes as ir_passes
from ..ir.core import Builder, Func, Lit, building, subfuncs
from ..ir.interpret import eval_func
from ..ir.printer import print_func
from ..ir.types import DType, Dim, ShapeError, TensorType, kind_rank
from ..ir.verify import verify
from . import ops
from .annotations import ArrayAnn, DTypeSpec, annotation_type
from .astcompile import Callee, FunctionSource, inline_call, size_parameters, trace_function
from .ops import Value

__all__ = ["Kernel", "kernel"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


# read once, when lattice is imported
_DISABLE_JIT = _env_flag("LATTICE_DISABLE_JIT")


def _passes_from_env() -> Sequence[Any]:
    """The passes a kernel's IR goes through: ``$LATTICE_PASSES`` if set (``none`` for no pass
    at all, or comma-separated names from ``lattice.ir.passes.PASSES``), else the default
    pipeline.  Read when a kernel first needs its optimised IR (the fuzzer and tests use it to
    compare code compiled with and without the passes)."""
    spec = os.environ.get("LATTICE_PASSES", "").strip().lower()
    if not spec or spec == "default":
        return ir_passes.DEFAULT_PASSES
    if spec == "none":
        return ()
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in ir_passes.PASSES]
    if unknown:
        raise ValueError(f"LATTICE_PASSES: unknown pass {unknown[0]!r}; use 'none' or names "
                         f"from {sorted(ir_passes.PASSES)}")
    return names


class BaseKernel(Callee):
    """Dispatch, compilation, caching and inspection shared by every kind of kernel.

    A subclass says what the kernel computes through :meth:`func_for` (the IR for given
    argument types), :attr:`param_names`, :attr:`param_types` and :meth:`_cache_source`.
    """

    def __init__(self, name: str, *, fastmath: bool = True, cache: bool = False,
                 boundscheck: Optional[bool] = None, parallel: Optional[bool] = None) -> None:
        self.fastmath = bool(fastmath)
        self.cache = bool(cache)
        self._parallel = parallel
        self.boundscheck = _env_flag("LATTICE_BOUNDSCHECK") if boundscheck is None else bool(boundscheck)
        self.__name__ = name
        self.__qualname__ = name
        self._lock = threading.RLock()
        self._traced: Optional[Func] = None
        self._optimized: Optional[Func] = None
        self._multi = False
        self._written: tuple[int, ...] = ()
        self._n_results: Optional[int] = 0  # without the written arguments (None: no return)
        self._returns_arg: dict[int, int] = {}  # result -> the written argument it is
        self._fresh_results: frozenset[int] = frozenset()  # results that are copies
        self.aliases: tuple[tuple[int, ...], ...] = ()  # argument groups passed one array
        self._compiled: dict[tuple[str, ...], Any] = {}

    def __repr__(self) -> str:
        return f"<lattice kernel {self.__qualname__}>"

    @property
    def parallel(self) -> Optional[bool]:
        """How loop nests are split across threads: True always (above the pool's size
        threshold), False never, None (the default) automatically: as True, except that a
        float reduction the split would reorder runs serially when ``fastmath`` is off.  A
        kernel derived from another one (``self.base``: grad, vjp, ...) follows it."""
        if self._parallel is None:
            base = getattr(self, "base", None)
            return None if base is None else base.parallel
        return self._parallel

    # -- what a subclass provides, besides the Callee interface
    def _cache_source(self) -> list[str]:
        raise NotImplementedError

    # ------------------------------------------------------------------ tracing
    @property
    def ir(self) -> Func:
        """The traced IR (before optimisation passes)."""
        with self._lock:
            if self._traced is None:
                func, multi = self.func_for(self.param_types)
                self._traced, self._multi = verify(func), multi
            return self._traced

    @property
    def optimized_ir(self) -> Func:
        """The IR after the optimisation passes (what codegen compiles)."""
        with self._lock:
            if self._optimized is None:
                self._optimized = ir_passes.run(self.ir, _passes_from_env())
            return self._optimized

    @property
    def size_params(self) -> dict[str, int]:
        """Dim name -> index of the ``lt.i64`` parameter whose value that dim is (``n`` in
        ``lt.zeros(n)``): a new value is a new size, never a recompilation."""
        sp = self.__dict__.get("_size_params")
        if sp is None:
            ints = any(not t.shape and t.dtype.is_int for t in self.param_types)
            sp = size_parameters(self.ir, self.param_names) if ints else {}
            self.__dict__["_size_params"] = sp
        return sp

    def _check_sizes(self, out: Sequence[Any], bound: dict[str, tuple[int, str]]) -> None:
        """The integer arguments used as sizes: not negative, and equal to the same dim of
        an argument's shape (the error names the argument)."""
        for dn, k in self.size_params.items():
            v, name = int(out[k]), self.param_names[k]
            if v < 0:
                raise ValueError(f"argument {name!r} of kernel {self.__name__!r} is used as a "
                                 f"size and is {v}: negative dimensions are not allowed")
            seen = bound.get(dn)
            if seen is not None and seen[0] != v:
                raise ValueError(f"kernel {self.__name__!r}: dim {dn!r} is {seen[0]} in "
                                 f"argument {seen[1]!r} but argument {name!r} is {v}")

    @property
    def written(self) -> tuple[int, ...]:
        self.ir  # (tracing finds them)
        return self._written

    # ------------------------------------------------------------------ calling
    def _plan(self) -> list[tuple[Any, ...]]:
        """Per parameter, what a call checks: (name, dtype, ndim, NumPy dtype, dims)."""
        plan = self.__dict__.get("_plan_cache")
        if plan is None:
            plan = []
            for name, t in zip(self.param_names, self.param_types):
                dims = tuple((axis, None if d.is_const else d.names[0], d.const)
                             for axis, d in enumerate(t.shape))
                plan.append((name, t, t.ndim, t.dtype.np, dims))
            self.__dict__["_plan_cache"] = plan
        return plan

    def _prepare(self, args: Sequence[Any]) -> tuple[list[Any], tuple[str, ...]]:
        plan = self._plan()
        if len(args) != len(plan):
            raise TypeError(f"kernel {self.__name__!r} takes {len(plan)} arguments "
                            f"({', '.join(p[0] for p in plan)}), got {len(args)}")
        out: list[Any] = []
        layout: list[str] = []
        bound: dict[str, tuple[int, str]] = {}
        for (name, t, ndim, np_dtype, dims), a in zip(plan, args):
            if not ndim:
                out.append(_scalar_arg(self.__name__, name, t.dtype, a))
                continue
            if type(a) is np.ndarray and a.dtype == np_dtype and a.ndim == ndim:
                arr = a  # the common case, checked without building messages
            else:
                arr = _array_arg(self.__name__, name, t, a)
            shape = arr.shape
            for axis, dn, const in dims:
                size = shape[axis]
                if dn is None:
                    if size != const:
                        raise ValueError(f"argument {name!r} of kernel {self.__name__!r}: axis "
                                         f"{axis} must have size {const}, got {size}")
                    continue
                seen = bound.get(dn)
                if seen is None:
                    bound[dn] = (size, name)
                elif seen[0] != size:
                    raise ValueError(
                        f"kernel {self.__name__!r}: dim {dn!r} is {seen[0]} in argument "
                        f"{seen[1]!r} but {size} in argument {name!r}")
            if arr.flags.c_contiguous:
                layout.append("C")
            else:
                if any(st % arr.itemsize for st in arr.strides):
                    arr = np.ascontiguousarray(arr)  # element strides must be whole
                layout.append("C" if arr.flags.c_contiguous else "A")
            out.append(arr)
        if self.size_params:
            self._check_sizes(out, bound)
        written = self.written
        if written or self.aliases:
            _check_written(self.__name__, [p[0] for p in plan], written, args, self.aliases)
        return out, tuple(layout)

    def _finish(self, results: Sequence[Any], args: Sequence[Any]) -> Any:
        """The user-facing result of a call from the flat results: the new contents of the
        written arguments (the last results) are stored into the caller's arrays, whatever
        their strides, unless the kernel computed them there; a result that is a written
        argument is that argument itself."""
        written = self._written
        if written:
            n = len(results) - len(written)
            for k, new in zip(written, results[n:]):
                if new is not args[k]:  # (a C-contiguous argument was updated in place)
                    np.copyto(args[k], new, casting="no")
            results = [args[self._returns_arg[j]] if j in self._returns_arg else r
                       for j, r in enumerate(results[:n])]
            if self._n_results is None:
                return None
        return tuple(results) if self._multi else results[0]

    def _dispatch(self, *args: Any) -> Any:
        """The Python call path: checks and converts arguments, picks the specialisation.

        Called with traced values (from a Python helper function that a kernel calls), the
        kernel is inlined into the kernel being traced instead."""
        if any(type(a) is Value for a in args):
            return inline_call(self, args, ())
        arrays, key = self._prepare(args)
        compiled = self._compiled.get(key)
        if compiled is None:
            if _DISABLE_JIT:
                return self._finish(self._interpret(arrays), args)
            compiled = self._compile(key)
        return self._finish(compiled(*arrays), args)

    # Until the all-C-contiguous specialisation is compiled; then _install_entry replaces it
    # (on a class of this kernel's own) with that specialisation's LLVM-generated CPython
    # entry, which handles the common call in machine code and hands anything else to
    # _dispatch (codegen/pyentry.py).
    __call__ = _dispatch

    def _install_entry(self, key: tuple[str, ...], compiled: Any) -> None:
        cls = type(self)
        own = cls.__dict__.get("_lt_own_class") is True
        if (_DISABLE_JIT or any(lay != "C" for lay in key)
                or (cls.__mro__[1] if own else cls).__call__ is not BaseKernel._dispatch):
            return  # a subclass with its own __call__ keeps it
        if self._written and (self.aliases or self._returns_arg
                              or len(compiled.abi.donated) != len(self._written)):
            return  # (the entry leaves donated results in the arguments and returns the rest)
        entry = compiled.python_callable(self._dispatch, multi=self._multi, name=self.__name__)
        if entry is None:
            return
        if not own:
            cls = type(cls.__name__, (cls,), {"_lt_own_class": True, "__slots__": (),
                                              "__module__": cls.__module__,
                                              "__qualname__": cls.__qualname__,
                                              "__doc__": cls.__doc__})
            self.__class__ = cls
        cls.__call__ = entry

    def interpret(self, *args: Any) -> Any:
        """Run through the NumPy reference interpreter (the semantics compiled code matches)."""
        arrays, _ = self._prepare(args)
        return self._finish(self._interpret(arrays), args)

    def _interpret(self, arrays: list[Any]) -> list[Any]:
        func = self.ir
        outs = eval_func(func, *(np.asarray(a) for a in arrays))
        res = []
        for val, t in zip(outs, func.out_types):
            val = np.asarray(val, dtype=t.dtype.np)
            res.append(val[()] if not t.shape else np.array(val))
        return res

    def _compile(self, key: tuple[str, ...]) -> Any:
        from ..codegen.compiled import CompiledFunc, compile_func
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
            func = self.optimized_ir
            full_key = None
            compiled = None
            if self.cache:
                from ..codegen import cache
                full_key = cache.make_key(*self._cache_parts(func, key))
                payload = cache.load(full_key)
                if payload is not None:
                    compiled = CompiledFunc.from_payload(payload)
            if compiled is None:
                compiled = compile_func(func, layouts=key, fastmath=self.fastmath,
                                        boundscheck=self.boundscheck, name=self.__name__,
                                        parallel=self.parallel, size_params=self.size_params,
                                        donate=self._donations(func))
                if full_key is not None:
                    from ..codegen import cache
                    cache.store(full_key, compiled.to_payload())
            self._compiled[key] = compiled
            self._install_entry(key, compiled)
            return compiled

    def _donations(self, func: Func) -> dict[int, int]:
        """Result -> argument: the written arguments' new contents are computed in their own
        memory (codegen keeps the donation of C-contiguous ones)."""
        first = len(func.outs) - len(self._written)
        return {first + i: k for i, k in enumerate(self._written)}

    def _cache_parts(self, func: Func, key: tuple[str, ...]) -> list[str]:
        locs: list[str] = []

        def walk(f: Func) -> None:
            for e in f.eqns:
                locs.append(f"{e.loc}|{e.loc.what if e.loc else ''}")
                for _, sub in subfuncs(e):
                    walk(sub)
        walk(func)
        return [*self._cache_source(), _canonical_fresh(print_func(func)), "\n".join(locs),
                ",".join(key), f"sizes={sorted(self.size_params.items())}",
                f"fastmath={self.fastmath}", f"boundscheck={self.boundscheck}",
                f"parallel={self.parallel}", f"donate={sorted(self._donations(func).items())}"]

    # ------------------------------------------------------------------ inspection
    def inspect_ir(self, *example_args: Any) -> str:
        """The IR as traced and after the optimisation passes."""
        if example_args:
            self._prepare(example_args)
        return ("# traced\n" + print_func(self.ir) + "\n# after passes\n"
                + print_func(self.optimized_ir))

    def _compiled_for(self, example_args: Sequence[Any]) -> Any:
        _, key = self._prepare(example_args)
        return self._compiled.get(key) or self._compile(key)

    def inspect_llvm(self, *example_args: Any, optimized: bool = True) -> str:
        """LLVM IR of the specialisation the example arguments select."""
        c = self._compiled_for(example_args)
        return c.llvm_ir if optimized else c.unoptimized_ir

    def inspect_asm(self, *example_args: Any) -> str:
        """Host assembly of the specialisation the example arguments select."""
        return self._compiled_for(example_args).asm


class Kernel(BaseKernel):
    """A kernel written as an annotated Python function."""

    def __init__(self, fn: Callable[..., Any], *, fastmath: bool = True, cache: bool = False,
                 boundscheck: Optional[bool] = None, parallel: Optional[bool] = None,
                 aliases: Sequence[Sequence[str]] = ()) -> None:
        super().__init__(fn.__name__, fastmath=fastmath, cache=cache, boundscheck=boundscheck,
                         parallel=_parallel_mode(fn.__name__, parallel))
        self.source = FunctionSource(fn)
        self.aliases = _alias_groups(self.__name__, self.source.param_names, aliases)
        self.fn = fn
        self.__qualname__ = getattr(fn, "__qualname__", fn.__name__)
        self.__doc__ = fn.__doc__
        self.__module__ = fn.__module__
        self.__wrapped__ = fn
        self._param_types: Optional[list[TensorType]] = None

    @property
    def param_names(self) -> list[str]:
        return self.source.param_names

    @property
    def param_types(self) -> list[TensorType]:
        if self._param_types is None:
            self._param_types, _ = self.source.annotations()
        return self._param_types

    def _cache_source(self) -> list[str]:
        return [self.source.filename, self.source.source, f"aliases={self.aliases}"]

    def func_for(self, arg_types: Sequence[TensorType],
                 stack: tuple[Any, ...] = ()) -> tuple[Func, bool]:
        """Trace the source with params of ``arg_types`` (checked against the annotations)."""
        _, ret_ann = self.source.annotations()
        b = Builder()
        with building(b):
            where = self.source.loc(self.source.node, "return")
            for group in self.aliases:
                if len({arg_types[k] for k in group}) != 1:
                    names = ", ".join(repr(self.param_names[k]) for k in group)
                    raise CompileError(f"kernel {self.__name__!r}: the aliased arguments "
                                       f"{names} must have the same type", where)
            # a kernel traced for calling (not inlined into another kernel, nor traced for a
            # transform such as lt.grad) has its integer parameters as sizes
            params, result, written = trace_function(self.source, arg_types, stack + (self,),
                                                     self.aliases, size_names=not stack)
            if result is None and not written:
                raise CompileError(f"kernel {self.__name__!r} returns nothing and writes into "
                                   "none of its arguments, so it computes nothing; return its "
                                   "results or store them into an argument (out[i] = ...)",
                                   where)
            multi = isinstance(result, tuple)
            results = [] if result is None else list(result) if multi else [result]
            anns = _return_annotations(ret_ann, len(results), where) if results else []
            outs = [_result_atom(r, ann, k, where) for k, (r, ann) in enumerate(zip(results, anns))]
            # the written arguments' new contents follow the results (BaseKernel._dispatch
            # stores them into the caller's arrays)
            outs += [written[k].atom for k in sorted(written)]
        self._written = tuple(sorted(written))
        self._n_results = None if result is None else len(results)
        self._returns_arg = {j: k for j, r in enumerate(results) for k in written
                             if r is written[k]}
        self._fresh_results = frozenset(j for j, r in enumerate(results)
                                        if getattr(r, "fresh", False))
        return b.build(params, outs, self.__name__), multi


def kernel(fn: Optional[Callable[..., Any]] = None, *, fastmath: bool = True,
           cache: bool = False, boundscheck: Optional[bool] = None,
           parallel: Optional[bool] = None, aliases: Sequence[Sequence[str]] = ()) -> Any:
    """Compile an annotated Python function with lattice.

    ``fastmath`` allows reassociation of float arithmetic (vectorised reductions) but keeps
    NaN/inf semantics; ``cache`` stores machine code on disk ($LATTICE_CACHE_DIR or
    ~/.cache/lattice); ``boundscheck`` turns out-of-range indices into IndexError (default from
    $LATTICE_BOUNDSCHECK); ``parallel`` (default None: automatic) splits the outer loop of loop
    nests big enough to pay (elementwise maps, reductions, fused reductions, matrix-vector and
    matrix rows, row passes of gradients) across threads (``lt.set_num_threads``,
    ``$LATTICE_NUM_THREADS``); the number of chunks depends on the sizes only and partial
    results are combined in chunk order, so results are the same bits with any thread count.
    ``parallel=False`` keeps every loop on the calling thread; ``parallel=True`` splits float
    reductions also when ``fastmath`` is off (automatic mode then runs them serially, in the
    plain loop's order).  ``aliases`` (groups of
    argument names, ``[("x", "y")]``) declares arguments that are passed the same array: inside
    the kernel they are one array, so it runs as the Python function would on NumPy arrays (a
    store through one name is read through the other); a call must pass one array there.
    """
    def wrap(f: Callable[..., Any]) -> Kernel:
        return Kernel(f, fastmath=fastmath, cache=cache, boundscheck=boundscheck,
                      parallel=parallel, aliases=aliases)
    return wrap(fn) if fn is not None else wrap


# ---------------------------------------------------------------------- helpers
def _parallel_mode(name: str, parallel: Any) -> Optional[bool]:
    if parallel is None:
        return None
    if isinstance(parallel, (bool, np.bool_)) or (isinstance(parallel, int) and parallel in (0, 1)):
        return bool(parallel)
    raise TypeError(f"kernel {name!r}: parallel must be True, False or None (automatic), "
                    f"got {parallel!r}")


_FRESH = re.compile(r"\?([A-Za-z_]*?)(\d+)")


def _canonical_fresh(text: str) -> str:
    """``text`` with fresh dim names (``?s31``: a process-wide counter) renumbered in order
    of first appearance, so that the same kernel traced after other kernels has the same
    disk-cache key; the renaming is one-to-one, so different IR keeps different text."""
    names: dict[str, str] = {}
    return _FRESH.sub(lambda m: names.setdefault(m.group(0), f"?{m.group(1)}{len(names)}"), text)


def _return_annotations(ann: Any, n: int, where: Any) -> list[Any]:
    if ann is None:
        return [None] * n
    import typing
    if typing.get_origin(ann) is tuple:
        ann = typing.get_args(ann)
    if isinstance(ann, tuple):
        if len(ann) != n:
            raise CompileError(f"the return annotation names {len(ann)} results, the kernel "
                               f"returns {n}", where)
        return list(ann)
    if n != 1:
        raise CompileError(f"the kernel returns {n} results but the annotation names one", where)
    return [ann]


def _result_atom(r: Any, ann: Any, k: int, where: Any) -> Any:
    if not isinstance(r, Value):
        try:
            r = ops.to_value(r)
        except CompileError:
            raise CompileError(f"result {k} is a {type(r).__name__}; kernels return arrays "
                               "and numbers", where) from None
    if ann is None:
        return r.atom
    try:
        want = annotation_type(ann)
    except TypeError as exc:
        raise CompileError(f"return annotation: {exc}", where) from None
    if r.ndim != want.ndim:
        raise CompileError(f"result {k} is {r.ndim}-D but the return annotation says "
                           f"{want.ndim}-D ({ann!r})", where)
    for got, w in zip(r.type.shape, want.shape):
        if got != w:
            raise CompileError(f"result {k} has shape ({', '.join(map(str, r.type.shape))}) "
                               f"but the return annotation says {ann!r}", where)
    if r.dtype is not want.dtype:
        if r.dtype.is_complex and not want.dtype.is_complex:
            raise CompileError(f"result {k} is {r.dtype}; the annotation's {want.dtype} would "
                               "drop its imaginary part (return z.real, or abs(z), or "
                               "annotate lt.c128)", where)
        if r.dtype.is_float and not want.dtype.is_float:
            raise CompileError(f"result {k} is {r.dtype}; the annotation's {want.dtype} would "
                               "truncate it (convert explicitly with .astype)", where)
        r = ops.astype(r, want.dtype)
    return r.atom


def _alias_groups(kname: str, names: Sequence[str],
                  aliases: Sequence[Sequence[str]]) -> tuple[tuple[int, ...], ...]:
    """The ``aliases`` option as groups of parameter positions (each at least two, disjoint)."""
    groups: list[tuple[int, ...]] = []
    seen: set[int] = set()
    for group in aliases:
        if isinstance(group, str) or len(group) < 2:
            raise TypeError(f"kernel {kname!r}: aliases takes groups of two or more argument "
                            f"names, like [('x', 'y')]; got {group!r}")
        ks = []
        for n in group:
            if n not in names:
                raise TypeError(f"kernel {kname!r}: aliases names {n!r}, which is not an "
                                f"argument ({', '.join(names)})")
            k = names.index(n)
            if k in seen:
                raise TypeError(f"kernel {kname!r}: {n!r} is in two groups of aliases")
            seen.add(k)
            ks.append(k)
        groups.append(tuple(ks))
    return tuple(groups)


def _check_written(kname: str, names: Sequence[str], written: Sequence[int],
                   args: Sequence[Any], aliases: Sequence[Sequence[int]] = ()) -> None:
    """What a call must satisfy for the kernel to write into arguments ``written``: each is a
    writeable NumPy array of the annotated dtype (not converted: a converted copy would take
    the write), and shares no memory with another argument (the kernel reads its arguments'
    contents as they were at the call: an overlap would make it see its own writes), except
    the arguments declared ``aliases`` of it, which must be that same array."""
    group_of = {k: g for g in aliases for k in g}
    for g in aliases:
        first = args[g[0]]
        for k in g[1:]:
            if not _same_array(first, args[k]):
                raise ValueError(f"arguments {names[g[0]]!r} and {names[k]!r} of kernel "
                                 f"{kname!r} are declared aliases, so they must be the same "
                                 f"array (the same memory, shape and strides)")
    for k in written:
        a, name = args[k], names[k]
        if not isinstance(a, np.ndarray):
            raise TypeError(f"argument {name!r} of kernel {kname!r}: the kernel writes into it, "
                            f"so it must be a NumPy array (got {type(a).__name__})")
        if not a.flags.writeable:
            raise ValueError(f"argument {name!r} of kernel {kname!r}: the kernel writes into "
                             f"it, but the array is read-only (flags.writeable is False); "
                             f"pass a writeable copy ({name}.copy())")
        for j, b in enumerate(args):
            if j in group_of.get(k, ()):
                continue
            if j != k and isinstance(b, np.ndarray) and _overlap(a, b):
                raise ValueError(
                    f"arguments {name!r} and {names[j]!r} of kernel {kname!r} share memory, "
                    f"and the kernel writes into {name!r}; lattice does not define what it "
                    f"would read then: pass a copy ({names[j]}.copy())")


def _same_array(a: Any, b: Any) -> bool:
    """One array: the same object, or views of the same memory with one layout."""
    if a is b:
        return True
    return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


def _overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Do ``a`` and ``b`` share an element?  Exact (``np.shares_memory``) within a bounded
    effort, else judged from their bounds."""
    if not np.may_share_memory(a, b):
        return False
    try:
        return bool(np.shares_memory(a, b, max_work=100_000))
    except np.exceptions.TooHardError:
        return True


def _scalar_arg(kname: str, name: str, dtype: DType, a: Any) -> Any:
    if isinstance(a, np.ndarray):
        if a.ndim != 0:
            raise TypeError(f"argument {name!r} of kernel {kname!r}: expected a {dtype} "
                            f"scalar, got a {a.ndim}-D array")
        a = a[()]
    kind = ("b" if isinstance(a, (bool, np.bool_)) else "i" if isinstance(a, (int, np.integer))
            else "f" if isinstance(a, (float, np.floating))
            else "c" if isinstance(a, (complex, np.complexfloating)) else None)
    ok = kind is not None and kind_rank(kind) <= kind_rank(dtype.kind)
    if not ok or (dtype.is_int and kind == "b"):
        got = type(a).__name__
        raise TypeError(f"argument {name!r} of kernel {kname!r}: expected a {dtype} scalar, "
                        f"got {got} {a!r}")
    if dtype.is_int:
        info = np.iinfo(dtype.np)
        if not info.min <= int(a) <= info.max:
            raise ValueError(f"argument {name!r} of kernel {kname!r}: {a} does not fit {dtype}")
    return dtype.np.type(a)


def _array_arg(kname: str, name: str, t: TensorType, a: Any) -> np.ndarray:
    want = t.dtype.np
    if type(a) is np.ndarray or isinstance(a, np.ndarray):
        arr = a
        if arr.dtype != want:
            raise TypeError(f"argument {name!r} of kernel {kname!r}: expected a {want} array, "
                            f"got {arr.dtype} (convert with .astype(np.{want}))")
    else:
        try:
            arr = np.asarray(a)
        except Exception as exc:
            raise TypeError(f"argument {name!r} of kernel {kname!r}: cannot make an array of "
                            f"{type(a).__name__}: {exc}") from None
        ints = arr.dtype.kind in "iu" and want.kind in "iu"  # (signed to unsigned: by value)
        if arr.dtype == object or not (ints or np.can_cast(arr.dtype, want, "same_kind")):
            raise TypeError(f"argument {name!r} of kernel {kname!r}: expected {want} values, "
                            f"got {arr.dtype}")
        if ints and arr.size:
            info = np.iinfo(want)
            lo, hi = int(arr.min()), int(arr.max())
            if lo < info.min or hi > info.max:  # a list of Python ints never wraps silently
                raise ValueError(f"argument {name!r} of kernel {kname!r}: values from {lo} to "
                                 f"{hi} do not fit {want} ({info.min}..{info.max})")
        arr = arr.astype(want, copy=False)
    if arr.ndim != t.ndim:
        shape = ", ".join(map(str, t.shape))
        raise TypeError(f"argument {name!r} of kernel {kname!r}: expected a {t.ndim}-D {want} "
                        f"array ({shape}), got {arr.ndim}-D with shape {arr.shape}")
    return arr
