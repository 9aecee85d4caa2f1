"""Differentiation transforms on kernels: ``grad``, ``value_and_grad``, ``jvp``, ``vjp``,
``hessian``, ``hvp``, ``custom_vjp``.

Each transform makes a :class:`TransformedKernel`: a :class:`BaseKernel` whose IR is the
transform (in :mod:`lattice.ir.ad`) of the base kernel's *traced* IR for the same argument
types; it then goes through the ordinary passes, compilation, cache and ``inspect_ir``.  Because
the transform is applied in ``func_for``, a transformed kernel can be called from inside another
kernel (it is inlined like any kernel) and transforms compose: ``grad(grad(f))``,
``jvp`` of ``grad(f)``.

Calling conventions follow JAX:

* ``grad(f, argnums=0)(*args)`` is the gradient (a tuple of gradients when ``argnums`` is a
  tuple); ``f`` must return one float scalar.
* ``value_and_grad(f, argnums)(*args)`` is ``(value, grad)`` (``grad`` a tuple for a tuple
  ``argnums``).  Called from inside a kernel the results come flat: ``v, g0, g1 = ...``.
* ``jvp(f, primals, tangents) -> (out, tangent_out)``; a tangent may be None (a zero, at no
  cost); tangents of integer arguments are ignored; integer outputs have tangent None.
* ``vjp(f, *primals) -> (out, pullback)``; ``pullback(ct)`` (one cotangent per float output)
  returns one cotangent per argument (None for integer arguments).  The pullback is a compiled
  kernel that recomputes the forward pass (nothing is kept between the two calls).
* ``hessian(f, argnums=0)(*args)``: shape ``x.shape + x.shape``, forward over reverse, one
  Hessian-vector product per basis vector in a compiled loop.
* ``hvp(f, primals, tangents, argnums=0)`` = the tangent of ``grad(f, argnums)`` along
  ``tangents`` (None entries are zeros and cost nothing).

Differentiating with respect to an integer argument, or taking ``grad`` of a function that does
not return a float scalar, raises :class:`TypeError` (``ADError``).

A kernel that writes into arguments: ``jvp`` and ``vjp`` see their new contents as results
after the kernel's own (always a tuple), and write into no argument; ``grad``,
``value_and_grad``, ``hessian`` and ``hvp`` differentiate the returned scalar alone.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Optional, Sequence, Union

import numpy as np

from ..errors import CompileError
from ..ir import ad
from ..ir.core import Builder, Func, Var, bind, building
from ..ir import primitives as P
from ..ir.types import TensorType
from ..ir.verify import verify
from .kernel import BaseKernel, kernel

__all__ = ["grad", "value_and_grad", "jvp", "vjp", "hessian", "hvp", "custom_vjp",
           "TransformedKernel", "CustomVJPKernel", "jvp_kernel", "vjp_kernel", "hvp_kernel"]

ArgNums = Union[int, Sequence[int]]


def _as_kernel(f: Any, what: str) -> BaseKernel:
    if isinstance(f, BaseKernel):
        return f
    if callable(f):
        return kernel(f)
    raise TypeError(f"{what} takes a kernel (or a function to compile as one), got "
                    f"{type(f).__name__}")


def _norm_argnums(base: BaseKernel, argnums: ArgNums, what: str) -> tuple[int, ...]:
    nums = (argnums,) if isinstance(argnums, (int, np.integer)) else tuple(argnums)
    if not nums:
        raise ValueError(f"{what}: argnums is empty")
    types = base.param_types
    names = base.param_names
    out = []
    for a in nums:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)):
            raise TypeError(f"{what}: argnums must be ints, got {a!r}")
        if not -len(types) <= a < len(types):
            raise ValueError(f"{what}: argnums {a} is out of range for kernel "
                             f"{base.__name__!r} with {len(types)} arguments")
        a = int(a) % len(types)
        if not types[a].dtype.is_float:
            raise TypeError(f"{what}: cannot differentiate kernel {base.__name__!r} with "
                            f"respect to argument {names[a]!r} of type {types[a]}: only float "
                            f"arguments have derivatives")
        out.append(a)
    return tuple(out)


def _results_only(base: BaseKernel, func: Func, what: str) -> Func:
    """``func`` without the new contents of the arguments ``base`` writes into (the results
    after its own)."""
    n = len(func.outs) - len(base.written)
    if n == 0:
        name = base.param_names[base.written[0]]
        raise ad.ADError(f"{what} of kernel {base.__name__!r}: the kernel returns nothing (it "
                         f"writes into {name!r}); grad differentiates a returned scalar: "
                         f"return one, or use lt.vjp/lt.jvp, which see the new contents "
                         f"of {name!r} as a result")
    return replace(func, outs=func.outs[:n])


def _refuse_writes(base: BaseKernel, what: str) -> None:
    """Derivatives are of a kernel's results only: one that writes into an argument is
    refused, naming the argument (its new contents would be a result the transforms do not
    see)."""
    if base.written:
        name = base.param_names[base.written[0]]
        raise ad.ADError(
            f"{what} of kernel {base.__name__!r}: the kernel writes into its argument "
            f"{name!r}, and derivatives of kernels that update their arguments are not "
            f"supported; return the new contents instead ({name} = ...; return {name}) and "
            f"differentiate that kernel")


class TransformedKernel(BaseKernel):
    """A kernel whose IR is ``transform(base IR)``, compiled and cached like any other.

    ``extra`` names and types are appended to the base kernel's parameters (tangents,
    cotangents); ``transform(func) -> (Func, multi)``; ``pack`` turns the flat results of a
    call from Python into the user-facing structure."""

    def __init__(self, base: BaseKernel, kind: str, desc: str,
                 transform: Callable[[Func], tuple[Func, bool]],
                 extra: Callable[[], tuple[list[str], list[TensorType]]] = lambda: ([], []),
                 pack: Optional[Callable[[Any], Any]] = None) -> None:
        super().__init__(f"{kind}_{base.__name__}", fastmath=base.fastmath, cache=base.cache,
                         boundscheck=base.boundscheck)
        self.base = base
        self.kind = kind
        self.desc = desc
        self._transform = transform
        self._extra = extra
        self._pack = pack
        self.__qualname__ = f"{kind}({base.__qualname__})"
        self.__doc__ = f"{desc} of {base.__qualname__}"

    @property
    def param_names(self) -> list[str]:
        return list(self.base.param_names) + self._extra()[0]

    @property
    def param_types(self) -> list[TensorType]:
        return list(self.base.param_types) + self._extra()[1]

    def _cache_source(self) -> list[str]:
        return [*self.base._cache_source(), f"transform: {self.desc}"]

    def func_for(self, arg_types: Sequence[TensorType],
                 stack: tuple[Any, ...] = ()) -> tuple[Func, bool]:
        n = len(self.base.param_types)
        # traced inside this transform (a non-empty stack): the base's integer parameters are
        # not sizes, so every size autodiff needs is carried by an array in scope
        func, _ = self.base.func_for(list(arg_types)[:n], stack + (self,))
        if self.base.aliases:
            names = ", ".join(repr(self.base.param_names[k]) for k in self.base.aliases[0])
            raise ad.ADError(f"{self.desc} of kernel {self.base.__name__!r}: the kernel "
                             f"declares the arguments {names} aliases; derivatives of such "
                             f"kernels are not supported (declare no aliases)")
        if self.base.written and self.kind not in ("jvp", "vjp"):
            # grad, hessian, hvp: of the kernel's returned scalar; the new contents of the
            # arguments it writes are results they do not differentiate
            func = _results_only(self.base, func, self.desc)
        try:
            return self._transform(verify(func))
        except ad.ADError as exc:
            raise type(exc)(f"{self.desc} of kernel {self.base.__name__!r}: {exc}") from None



class PackedKernel(TransformedKernel):
    """A transformed kernel whose flat results are regrouped by ``pack`` on the way out.

    Only kernels that need regrouping pay for it: a plain :class:`TransformedKernel` keeps
    BaseKernel's call path, so it gets the generated CPython entry (codegen/pyentry.py)."""

    def __call__(self, *args: Any) -> Any:
        return self._pack(self._dispatch(*args))

    def interpret(self, *args: Any) -> Any:
        return self._pack(super().interpret(*args))


def _cached(base: BaseKernel, key: tuple, make: Callable[[], TransformedKernel]
            ) -> TransformedKernel:
    cache = base.__dict__.setdefault("_ad_transforms", {})
    k = cache.get(key)
    if k is None:
        k = cache[key] = make()
    return k


# ------------------------------------------------------------------------------ grad
def grad(f: Any, argnums: ArgNums = 0) -> TransformedKernel:
    """The gradient kernel of a kernel returning one float scalar."""
    base = _as_kernel(f, "grad")
    nums = _norm_argnums(base, argnums, "grad")
    tup = not isinstance(argnums, (int, np.integer))
    desc = f"grad(argnums={argnums!r})"
    return _cached(base, ("grad", nums, tup), lambda: TransformedKernel(
        base, "grad", desc, lambda func: (ad.grad_func(func, nums), tup)))


def value_and_grad(f: Any, argnums: ArgNums = 0) -> TransformedKernel:
    """A kernel returning ``(value, gradient)``."""
    base = _as_kernel(f, "value_and_grad")
    nums = _norm_argnums(base, argnums, "value_and_grad")
    tup = not isinstance(argnums, (int, np.integer))
    desc = f"value_and_grad(argnums={argnums!r})"
    pack = (lambda r: (r[0], tuple(r[1:]))) if tup else None
    kind = PackedKernel if pack is not None else TransformedKernel
    return _cached(base, ("value_and_grad", nums, tup), lambda: kind(
        base, "value_and_grad", desc,
        lambda func: (ad.grad_func(func, nums, has_value=True), True), pack=pack))


# ------------------------------------------------------------------------------ jvp / vjp
def _float_outs(base: BaseKernel) -> list[bool]:
    func = base.ir
    return [t.dtype.is_float for t in func.out_types]


def jvp_kernel(f: Any, which: Optional[Sequence[bool]] = None) -> TransformedKernel:
    """The forward-mode kernel: arguments are the primals then one tangent per float argument
    flagged in ``which`` (default all); results are the outputs then one tangent per float
    output."""
    base = _as_kernel(f, "jvp")
    types = base.param_types
    mask = tuple(bool(w) and t.dtype.is_float
                 for w, t in zip(which if which is not None else [True] * len(types), types))

    def extra() -> tuple[list[str], list[TensorType]]:
        return ([f"t_{n}" for n, m in zip(base.param_names, mask) if m],
                [t for t, m in zip(types, mask) if m])
    return _cached(base, ("jvp", mask), lambda: TransformedKernel(
        base, "jvp", f"jvp(tangents={''.join('1' if m else '0' for m in mask)})",
        lambda func: (ad.jvp_func(func, mask), True), extra))


def jvp(f: Any, primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """``(f(*primals), J·tangents)`` as JAX's ``jax.jvp``; a None tangent is a zero."""
    base = _as_kernel(f, "jvp")
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents) or len(primals) != len(base.param_types):
        raise TypeError(f"jvp: kernel {base.__name__!r} takes {len(base.param_types)} "
                        f"arguments; got {len(primals)} primals and {len(tangents)} tangents")
    mask = [t is not None and pt.dtype.is_float for t, pt in zip(tangents, base.param_types)]
    k = jvp_kernel(base, mask)
    res = k(*primals, *(t for t, m in zip(tangents, mask) if m))
    fl = _float_outs(base)
    outs, touts = list(res[:len(fl)]), iter(res[len(fl):])
    tl = [next(touts) if m else None for m in fl]
    if base._multi or base.written:  # (the written arguments' new contents: results too)
        return tuple(outs), tuple(tl)
    return outs[0], tl[0]


def vjp_kernel(f: Any, which: Optional[Sequence[bool]] = None) -> TransformedKernel:
    """The reverse-mode kernel: arguments are the primals then one cotangent per float output;
    results are the outputs then one cotangent per float argument flagged in ``which``."""
    base = _as_kernel(f, "vjp")
    types = base.param_types
    mask = tuple(bool(w) and t.dtype.is_float
                 for w, t in zip(which if which is not None else [True] * len(types), types))

    def extra() -> tuple[list[str], list[TensorType]]:
        outs = base.ir.out_types
        return ([f"ct_{k}" for k, t in enumerate(outs) if t.dtype.is_float],
                [t for t in outs if t.dtype.is_float])
    return _cached(base, ("vjp", mask), lambda: TransformedKernel(
        base, "vjp", f"vjp(cotangents for {''.join('1' if m else '0' for m in mask)})",
        lambda func: (ad.vjp_func(func, mask), True), extra))


def vjp(f: Any, *primals: Any) -> tuple[Any, Callable[..., tuple[Any, ...]]]:
    """``(f(*primals), pullback)`` as JAX's ``jax.vjp``; ``pullback(*cts)`` takes one
    cotangent per float output and returns one cotangent per argument (None for integer
    arguments).  Both calls are compiled; the pullback recomputes the forward pass."""
    base = _as_kernel(f, "vjp")
    if base.written:
        # the call writes into copies (the pullback recomputes from the primals as given);
        # their new contents follow the kernel's results
        copies = list(primals)
        for j in base.written:
            copies[j] = np.array(primals[j], copy=True)
        got = base(*copies)
        got = () if got is None else got if base._multi else (got,)
        out: Any = (*got, *(copies[j] for j in base.written))
    else:
        out = base(*primals)
    k = vjp_kernel(base)
    mask = [t.dtype.is_float for t in base.param_types]
    n_out = len(base.ir.outs)

    def pullback(*cts: Any) -> tuple[Any, ...]:
        res = k(*primals, *cts)
        got = iter(res[n_out:])
        return tuple(next(got) if m else None for m in mask)
    return out, pullback


# ------------------------------------------------------------------------------ second order
def hessian(f: Any, argnums: int = 0) -> TransformedKernel:
    """The Hessian kernel w.r.t. one float argument x (shape ``x.shape + x.shape``)."""
    base = _as_kernel(f, "hessian")
    if not isinstance(argnums, (int, np.integer)):
        raise NotImplementedError("hessian takes one argnum (blocks of a joint Hessian can be "
                                  "had from hvp)")
    (a,) = _norm_argnums(base, argnums, "hessian")
    return _cached(base, ("hessian", a), lambda: TransformedKernel(
        base, "hessian", f"hessian(argnums={a})",
        lambda func: (ad.hessian_func(func, a), False)))


def hvp_kernel(f: Any, argnums: ArgNums = 0,
               which: Optional[Sequence[bool]] = None) -> TransformedKernel:
    """Arguments: primals then one tangent per float argument flagged in ``which``; results:
    the Hessian-vector products (the tangents of ``grad(f, argnums)``)."""
    base = _as_kernel(f, "hvp")
    nums = _norm_argnums(base, argnums, "hvp")
    tup = not isinstance(argnums, (int, np.integer))
    types = base.param_types
    mask = tuple(bool(w) and t.dtype.is_float
                 for w, t in zip(which if which is not None else [True] * len(types), types))

    def extra() -> tuple[list[str], list[TensorType]]:
        return ([f"t_{n}" for n, m in zip(base.param_names, mask) if m],
                [t for t, m in zip(types, mask) if m])
    return _cached(base, ("hvp", nums, tup, mask), lambda: TransformedKernel(
        base, "hvp", f"hvp(argnums={argnums!r}, tangents="
                     f"{''.join('1' if m else '0' for m in mask)})",
        lambda func: (ad.hvp_func(func, nums, mask), tup), extra))


def hvp(f: Any, primals: Sequence[Any], tangents: Sequence[Any], argnums: ArgNums = 0) -> Any:
    """Hessian-vector product: the tangent of ``grad(f, argnums)`` at ``primals`` along
    ``tangents`` (one per argument; None is a zero and costs nothing)."""
    base = _as_kernel(f, "hvp")
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents) or len(primals) != len(base.param_types):
        raise TypeError(f"hvp: kernel {base.__name__!r} takes {len(base.param_types)} "
                        f"arguments; got {len(primals)} primals and {len(tangents)} tangents")
    mask = [t is not None and pt.dtype.is_float for t, pt in zip(tangents, base.param_types)]
    k = hvp_kernel(base, argnums, mask)
    return k(*primals, *(t for t, m in zip(tangents, mask) if m))


# ------------------------------------------------------------------------------ custom rules
class CustomVJPKernel(BaseKernel):
    """A kernel with a user-supplied reverse-mode rule (JAX's ``custom_vjp``).

    ``fwd`` takes the kernel's arguments and returns its outputs followed by residuals;
    ``bwd`` takes the residuals then one cotangent per output and returns one cotangent per
    *float* argument.  The primal evaluates the kernel itself (interpreter and compiled code);
    reverse mode (grad, vjp, and the reverse part of hessian/hvp) uses fwd/bwd; forward mode
    (jvp) differentiates the kernel itself."""

    def __init__(self, fun: BaseKernel) -> None:
        super().__init__(fun.__name__, fastmath=fun.fastmath, cache=fun.cache,
                         boundscheck=fun.boundscheck, parallel=fun.parallel)
        self.fun = fun
        self.fwd: Optional[BaseKernel] = None
        self.bwd: Optional[BaseKernel] = None
        self.__qualname__ = fun.__qualname__
        self.__doc__ = fun.__doc__

    def defvjp(self, fwd: Any, bwd: Any) -> "CustomVJPKernel":
        self.fwd = _as_kernel(fwd, "defvjp")
        self.bwd = _as_kernel(bwd, "defvjp")
        with self._lock:
            self._traced = self._optimized = None
            self._compiled.clear()
        return self

    @property
    def param_names(self) -> list[str]:
        return self.fun.param_names

    @property
    def param_types(self) -> list[TensorType]:
        return self.fun.param_types

    def _cache_source(self) -> list[str]:
        parts = [*self.fun._cache_source(), "custom_vjp"]
        for k in (self.fwd, self.bwd):
            if k is not None:
                parts.extend(k._cache_source())
        return parts

    def func_for(self, arg_types: Sequence[TensorType],
                 stack: tuple[Any, ...] = ()) -> tuple[Func, bool]:
        if self.fwd is None or self.bwd is None:
            raise CompileError(f"custom_vjp kernel {self.__name__!r} has no rule yet: call "
                               f".defvjp(fwd, bwd) before using it")
        stack = stack + (self,)
        fun, multi = self.fun.func_for(arg_types, stack)
        _refuse_writes(self.fun, "custom_vjp")
        fwd, _ = self.fwd.func_for(arg_types, stack)
        n_out = len(fun.outs)
        if fwd.out_types[:n_out] != fun.out_types:
            raise CompileError(f"custom_vjp {self.__name__!r}: fwd must return the outputs "
                               f"{list(fun.out_types)} first, then the residuals; it returns "
                               f"{list(fwd.out_types)}")
        res_types = list(fwd.out_types[n_out:])
        try:
            bwd, _ = self.bwd.func_for(res_types + list(fun.out_types), stack)
        except CompileError as exc:
            raise CompileError(f"custom_vjp {self.__name__!r}: bwd must take the residuals "
                               f"{res_types} then one cotangent per output "
                               f"{list(fun.out_types)}: {exc}") from None
        b = Builder()
        with building(b):
            ps = [Var(t) for t in arg_types]
            outs = bind(P.custom_vjp_call_p, *ps, fun=verify(fun), fwd=verify(fwd),
                        bwd=verify(bwd), n_res=len(res_types))
        return b.build(ps, list(outs), self.__name__), multi


def custom_vjp(f: Any) -> CustomVJPKernel:
    """Give a kernel a custom reverse-mode rule; then call ``.defvjp(fwd, bwd)``."""
    return CustomVJPKernel(_as_kernel(f, "custom_vjp"))
