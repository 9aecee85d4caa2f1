"""From a kernel's Python source to a lattice IR :class:`Func`.

The frontend walks the kernel's AST (it never reads bytecode, so it does not depend on the
CPython version) and evaluates it abstractly:

* expressions evaluate to :class:`~lattice.frontend.ops.Value` (traced) or to plain Python
  objects (numbers, tuples, modules, functions), so Python-level constants, closures and helper
  functions fold away at compile time;
* ``for i in range(...)`` becomes a ``loop`` equation: names the body assigns that exist before the
  loop are loop-carried (their types are unified by promotion, re-tracing the body when the first
  trace changes a carried dtype); names first bound in the body are local to it;
* ``if`` on a traced condition becomes a ``cond`` equation whose outputs are the names either
  branch assigns; ``if`` on a Python value just picks the branch;
* ``while`` on a traced condition becomes a ``while`` equation (on a Python value it unrolls);
  ``for`` also iterates over the rows of an array, ``enumerate``, ``zip`` and ``reversed``;
* ``break``, ``continue`` and ``return`` inside loops and traced branches set flags (scope
  names starting with ``@``, which no Python name can): the statements after one run under an
  ``if`` on "no flag is set", a loop left by ``break`` or ``return`` becomes a ``while`` whose
  condition also reads the flags, and the returned values are carried like any other name;
* ``x[i] = v`` rebinds ``x`` to a functional ``set`` (codegen updates in place when it can);
* calling another ``@lt.kernel`` inlines it.

Sub-functions are *closed*: outer values a body uses become explicit operands (see
:func:`lattice.ir.inline.close_over`).  Every equation carries the file:line of the statement
that made it, and every error is a :class:`~lattice.errors.CompileError` naming that place.
"""
from __future__ import annotations

import ast
import builtins
import math
import operator
from dataclasses import replace
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

from ..errors import CompileError
from ..ir.core import Atom, Builder, Eqn, Func, Lit, SourceLoc, Var, building, subfuncs
from ..ir.inline import close_over
from ..ir import primitives as P
from ..ir.types import (DType, Dim, ShapeError, TensorType, bool_, f64, i64, kind_rank, promote,
                        scalar)
from . import ops
from .annotations import ArrayAnn, DTypeSpec, annotation_type
from .ops import Value

__all__ = ["FunctionSource", "trace_function", "inline_call"]

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.MatMult: operator.matmul, ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_, ast.BitXor: operator.xor, ast.LShift: operator.lshift,
    ast.RShift: operator.rshift,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_UNSUPPORTED_STMT = {
    ast.Try: "try statement", ast.With: "with statement",
    ast.FunctionDef: "nested function definition", ast.ClassDef: "class definition",
    ast.Import: "import", ast.ImportFrom: "import", ast.Global: "global statement",
    ast.Nonlocal: "nonlocal statement", ast.Delete: "del statement", ast.Raise: "raise",
    ast.AsyncFor: "async for", ast.AsyncWith: "async with", ast.AsyncFunctionDef: "async def",
}


def _builtin_translations() -> dict[Any, Callable[..., Any]]:
    """Python/NumPy/math callables that, given a traced value, mean a lattice op."""
    def _len(x: Any) -> Any:
        return x.shape[0] if isinstance(x, Value) else len(x)

    def _minmax(fn: Callable[..., Any], op: Callable[[Any, Any], Any]) -> Callable[..., Any]:
        def f(*args: Any) -> Any:
            if len(args) == 1:
                (seq,) = args
                if isinstance(seq, Value):
                    return (ops.max if fn is builtins.max else ops.min)(seq)
                args = tuple(seq)
            if not any(isinstance(a, Value) for a in args):
                return fn(*args)
            acc = args[0]
            for a in args[1:]:
                acc = op(acc, a)
            return acc
        return f

    def _conv(pyfn: Callable[[Any], Any], dtype: DType) -> Callable[[Any], Any]:
        return lambda x: ops.astype(x, dtype) if isinstance(x, Value) else pyfn(x)

    def _sum(x: Any, *rest: Any) -> Any:
        return ops.sum(x) if isinstance(x, Value) and not rest else builtins.sum(x, *rest)

    table: dict[Any, Callable[..., Any]] = {
        builtins.len: _len, builtins.abs: ops.abs, builtins.sum: _sum,
        builtins.min: _minmax(builtins.min, ops.minimum),
        builtins.max: _minmax(builtins.max, ops.maximum),
        builtins.float: _conv(float, f64), builtins.int: _conv(int, i64),
        builtins.bool: _conv(bool, bool_),
    }
    for name in ("exp", "log", "log1p", "expm1", "sqrt", "tanh", "sin", "cos", "floor"):
        table[getattr(math, name)] = getattr(ops, name)
        table[getattr(np, name)] = getattr(ops, name)
    table[math.erf], table[math.erfc] = ops.erf, ops.erfc  # (NumPy has no erf)
    for name in ("sum", "mean", "max", "min", "argmax", "argmin", "dot", "matmul", "where",
                 "maximum", "minimum", "logaddexp", "abs", "transpose", "clip", "isnan",
                 "isfinite", "zeros", "ones", "empty", "full", "zeros_like", "ones_like",
                 "empty_like", "full_like", "arange", "copy", "negative", "power",
                 "concatenate", "stack", "vstack", "hstack", "sort", "argsort",
                 "searchsorted", "bincount", "unique", "histogram", "median", "quantile",
                 "percentile", "partition", "argpartition",
                 "nonzero", "argwhere",
                 "flatnonzero", "count_nonzero", "extract", "compress", "take",
                 "take_along_axis"):
        table[getattr(np, name)] = getattr(ops, name)
    def _flip(x: Any, axis: Any = None) -> Any:
        v = ops.to_value(x)
        axes = range(v.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        key = [slice(None)] * v.ndim
        for a in axes:
            key[a] = slice(None, None, -1)
        return ops.getitem(v, tuple(key))

    table[np.flip] = _flip
    for name in ("reshape", "ravel", "swapaxes", "moveaxis", "expand_dims", "squeeze",
                 "broadcast_to", "tile", "repeat", "roll", "atleast_1d", "atleast_2d",
                 "atleast_3d", "outer", "inner", "vdot", "kron", "einsum", "eye", "identity",
                 "tril", "triu", "tri", "diag", "diagonal", "trace", "linspace", "diff",
                 "digitize", "array"):
        table[getattr(np, name)] = getattr(ops, name)
    table[np.tensordot] = ops.tensordot
    for np_name, op in (("permute_dims", ops.transpose), ("matrix_transpose",
                                                          ops.matrix_transpose)):
        if hasattr(np, np_name):  # (NumPy 2's names)
            table[getattr(np, np_name)] = op
    # np.<ufunc>.outer: the ufunc applied to a[..., None, ...] and b
    for uf, op in ((np.add, ops.Value.__add__), (np.subtract, ops.Value.__sub__),
                   (np.multiply, ops.Value.__mul__), (np.divide, ops.Value.__truediv__),
                   (np.power, ops.power), (np.maximum, ops.maximum),
                   (np.minimum, ops.minimum), (np.equal, ops.Value.__eq__),
                   (np.less, ops.Value.__lt__), (np.greater, ops.Value.__gt__),
                   (np.less_equal, ops.Value.__le__),
                   (np.greater_equal, ops.Value.__ge__), (np.hypot, ops.hypot),
                   (np.logaddexp, ops.logaddexp), (np.arctan2, ops.arctan2)):
        table[uf.outer] = ops.ufunc_outer(op, uf.__name__)
    for name in ("bitwise_and", "bitwise_or", "bitwise_xor", "invert", "left_shift",
                 "right_shift", "bitwise_count"):
        table[getattr(np, name)] = getattr(ops, name)  # (np.bitwise_not is np.invert)
    table[np.amax] = ops.max
    # reductions and scans (ops.any_/all_: named so ops keeps Python's any/all)
    for name in ("prod", "var", "std", "nansum", "nanmax", "nanmin", "nanmean", "average",
                 "logical_and", "logical_or", "logical_xor", "logical_not", "cumsum", "cumprod",
                 "nanprod", "nanvar", "nanstd", "ptp", "nancumsum", "nancumprod"):
        table[getattr(np, name)] = getattr(ops, name)
    for name in ("cumulative_sum", "cumulative_prod"):
        if hasattr(np, name):  # (NumPy 2.1's)
            table[getattr(np, name)] = getattr(ops, name)
    table[np.any], table[np.all] = ops.any_, ops.all_
    table[np.linalg.norm] = ops.norm
    table[np.amin] = ops.min
    # the wider math surface: NumPy's names, its aliases, and math's spellings
    for name in ("tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "arcsinh", "arccosh",
                 "arctanh", "exp2", "log2", "log10", "cbrt", "trunc", "ceil", "rint", "round",
                 "fabs", "deg2rad", "rad2deg", "sign", "signbit", "square", "reciprocal",
                 "isinf", "nan_to_num", "arctan2", "hypot", "copysign", "logaddexp2",
                 "float_power", "heaviside", "mod", "fmod", "fmax", "fmin"):
        table[getattr(np, name)] = getattr(ops, name)
    for np_name, op in (("absolute", ops.abs), ("remainder", ops.mod), ("around", ops.round),
                        ("radians", ops.deg2rad), ("degrees", ops.rad2deg),
                        ("asin", ops.arcsin), ("acos", ops.arccos), ("atan", ops.arctan),
                        ("asinh", ops.arcsinh), ("acosh", ops.arccosh),
                        ("atanh", ops.arctanh), ("atan2", ops.arctan2)):
        if hasattr(np, np_name):  # (the short names are NumPy 2's)
            table[getattr(np, np_name)] = op
    for math_name, op in (("tan", ops.tan), ("asin", ops.arcsin), ("acos", ops.arccos),
                          ("atan", ops.arctan), ("sinh", ops.sinh), ("cosh", ops.cosh),
                          ("asinh", ops.arcsinh), ("acosh", ops.arccosh),
                          ("atanh", ops.arctanh), ("atan2", ops.arctan2),
                          ("hypot", ops.hypot), ("log2", ops.log2), ("log10", ops.log10),
                          ("cbrt", ops.cbrt), ("exp2", ops.exp2), ("trunc", ops.trunc),
                          ("ceil", ops.ceil), ("fabs", ops.fabs), ("copysign", ops.copysign),
                          ("fmod", ops.fmod), ("radians", ops.deg2rad),
                          ("degrees", ops.rad2deg), ("isinf", ops.isinf),
                          ("lgamma", ops.lgamma), ("gamma", ops.gamma)):
        if hasattr(math, math_name):  # (cbrt and exp2 are Python 3.11's)
            table[getattr(math, math_name)] = op
    table[builtins.round] = ops.round
    # complex numbers
    table[builtins.complex] = ops.make_complex
    for np_name, op in (("real", ops.real), ("imag", ops.imag), ("conj", ops.conj),
                        ("conjugate", ops.conj), ("angle", ops.angle)):
        table[getattr(np, np_name)] = op
    table[math.isnan] = ops.isnan
    table[math.isfinite] = ops.isfinite
    return table


_TRANSLATE = _builtin_translations()


class FunctionSource:
    """A kernel's parsed source plus the environment its names resolve in."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        import inspect
        import textwrap
        self.fn = fn
        self.name = fn.__name__
        try:
            lines, first = inspect.getsourcelines(fn)
            self.filename = inspect.getsourcefile(fn) or "<unknown>"
        except (OSError, TypeError) as exc:
            raise CompileError(f"cannot read the source of {self.name!r}: lattice compiles "
                               "functions defined in files (not in an interactive prompt "
                               "or exec)") from exc
        self.source = textwrap.dedent("".join(lines))
        self.first_line = first
        tree = ast.parse(self.source)
        defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if not defs or isinstance(defs[0], ast.AsyncFunctionDef):
            raise CompileError(f"{self.name!r} is not a plain function definition")
        self.node: ast.FunctionDef = defs[0]
        rets = [n.value for n in ast.walk(self.node) if isinstance(n, ast.Return)
                and n.value is not None]
        arity = {len(v.elts) if isinstance(v, ast.Tuple) else None for v in rets}
        #: how many values each ``return`` writes out (``return a, b``: 2), None when the
        #: returns are single expressions (or mixed: then a tuple is one Python value)
        self.ret_arity: Optional[int] = arity.pop() if len(arity) == 1 else None
        self.globals = fn.__globals__
        self.closure: dict[str, Any] = {}
        if fn.__closure__:
            for n, cell in zip(fn.__code__.co_freevars, fn.__closure__):
                try:
                    self.closure[n] = cell.cell_contents
                except ValueError:  # an empty cell: the name is not bound yet
                    pass
        self._check_signature()

    def loc(self, node: ast.AST, what: str = "") -> SourceLoc:
        return SourceLoc(self.filename, getattr(node, "lineno", 1) + self.first_line - 1, what)

    def segment(self, node: ast.AST) -> str:
        text = ast.get_source_segment(self.source, node) or type(node).__name__
        text = " ".join(text.split())
        return text if len(text) <= 60 else text[:57] + "..."

    def _check_signature(self) -> None:
        a = self.node.args
        where = self.loc(self.node, "def")
        if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs:
            raise CompileError("kernels take plain positional parameters (no *args, **kwargs, "
                               "keyword-only or positional-only parameters)", where)
        if a.defaults:
            raise CompileError("kernel parameters cannot have default values", where)

    @property
    def param_names(self) -> list[str]:
        return [a.arg for a in self.node.args.args]

    def annotations(self) -> tuple[list[TensorType], Any]:
        """Parameter types and the return annotation (None when absent)."""
        anns = dict(getattr(self.fn, "__annotations__", {}))
        types = []
        for arg in self.node.args.args:
            if arg.arg not in anns:
                raise CompileError(f"parameter {arg.arg!r} needs a type annotation such as "
                                   f"lt.f64 or lt.f64['n']", self.loc(arg, arg.arg))
            ann = self._resolve_annotation(anns[arg.arg])
            try:
                types.append(annotation_type(ann))
            except TypeError as exc:
                raise CompileError(f"parameter {arg.arg!r}: {exc}", self.loc(arg, arg.arg)) from None
        ret = anns.get("return")
        return types, (self._resolve_annotation(ret) if ret is not None else None)

    def _resolve_annotation(self, ann: Any) -> Any:
        if isinstance(ann, str):  # from __future__ import annotations
            try:
                return eval(ann, dict(self.globals), dict(self.closure))  # noqa: S307
            except Exception as exc:
                raise CompileError(f"cannot evaluate annotation {ann!r}: {exc}",
                                   self.loc(self.node, "def")) from None
        return ann


#: scope names of the control flags; no Python name starts with "@"
_RET = "@ret"        # a ``return`` has run


def _rv(j: int) -> str:
    """The scope name of the ``j``-th returned value."""
    return f"@rv{j}"


def _brk(loop: int) -> str:
    """The flag of a ``break`` out of the loop whose AST node has id ``loop``."""
    return f"@brk{loop}"


def _cnt(loop: int) -> str:
    """The flag of a ``continue`` of that loop (reset at the start of every iteration)."""
    return f"@cnt{loop}"


def _shown(name: str) -> str:
    """A scope name as an error message names it."""
    if name.startswith("@rv"):
        return "the returned value"
    return "a break/continue/return flag" if name.startswith("@") else repr(name)


#: iterations after which a ``while`` on a condition known at compile time is refused
WHILE_UNROLL_LIMIT = 10_000


def _assigned_names(stmts: Sequence[ast.stmt], loop: Optional[int] = None,
                    n_returned: int = 1) -> list[str]:
    """Names a block (re)binds, in order of first assignment, including stores x[i] = ...,
    and the flags its ``break``/``continue`` (of the loop ``loop``, or of loops inside the
    block) and ``return`` statements set, with the ``n_returned`` returned-value names."""
    seen: dict[str, None] = {}

    def target(t: ast.AST) -> None:
        if isinstance(t, ast.Name):
            seen.setdefault(t.id, None)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                target(e)
        elif isinstance(t, ast.Subscript) and _root_name(t) is not None:
            seen.setdefault(_root_name(t), None)  # type: ignore[arg-type]
        elif isinstance(t, ast.Starred):
            target(t.value)

    for s in stmts:
        todo: list[tuple[ast.AST, Optional[int]]] = [(s, loop)]
        while todo:  # breadth first, as ast.walk: the order of the carried values
            node, key = todo.pop(0)
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    target(t)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                target(node.target)
            elif isinstance(node, ast.For):
                target(node.target)
            elif isinstance(node, ast.NamedExpr):
                target(node.target)
            elif (isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
                  and _updates_in_place(node.value)
                  and _updated_name(node.value) is not None):
                # np.add.at(h, i, v) rebinds h, as h[i] += v (and x.sort() rebinds x)
                seen.setdefault(_updated_name(node.value), None)  # type: ignore[arg-type]
            elif isinstance(node, ast.Break) and key is not None:
                seen.setdefault(_brk(key), None)
            elif isinstance(node, ast.Continue) and key is not None:
                seen.setdefault(_cnt(key), None)
            elif isinstance(node, ast.Return):
                seen.setdefault(_RET, None)
                if node.value is not None:
                    for j in range(n_returned):
                        seen.setdefault(_rv(j), None)
            inner = id(node) if isinstance(node, (ast.For, ast.While)) else key
            todo.extend((c, inner) for c in ast.iter_child_nodes(node))
    return list(seen)


def _updates_in_place(call: ast.Call) -> bool:
    """Is ``call`` spelled like ``np.add.at(h, ...)``, ``np.subtract.at``, ``np.put`` or an
    in-place method ``x.sort()``, ``x.fill(v)`` (judged from the syntax: the tracer checks
    what the names mean)?  The array updated is the first argument, or the method's owner."""
    f = call.func
    return isinstance(f, ast.Attribute) and f.attr in ("at", "put", "sort", "fill")


def _updated_name(call: ast.Call) -> Optional[str]:
    """The name an in-place call (``_updates_in_place``) updates, if it is a plain name."""
    f = call.func
    if isinstance(f, ast.Attribute) and f.attr in ("sort", "fill"):
        return f.value.id if isinstance(f.value, ast.Name) else None
    if call.args and isinstance(call.args[0], ast.Name):
        return call.args[0].id
    return None


_UNBOUND = object()


def _like(atom: Atom, old: Any) -> Value:
    """The Value of ``atom``, a new version of ``old`` (a loop's carried value): storable as
    ``old`` was."""
    v = Value(atom, owned=(old.owned if isinstance(old, Value) else True))
    if isinstance(old, Value):
        v.unstorable = old.unstorable
    return v


def _check_storable(name: str, v: Value, through_views: bool = False) -> None:
    """Refuse a store (or an in-place operator) into ``v``, named ``name``, that lattice
    cannot do as NumPy would (``through_views``: a view that knows its array is fine)."""
    if v.unstorable:
        raise CompileError(v.unstorable)
    if through_views and v.view is not None:
        return
    if not v.owned:
        raise CompileError(
            f"cannot store into {name!r}: it is a view of another array (a slice, a row or a "
            f"transpose), and stores through views (and in-place operators on them) are not "
            f"supported; store into the array itself (x[i, j] = v), or make a copy first "
            f"({name} = lt.copy({name}))")


class _Attr:
    """The key of a view taken by an attribute (``x.T``, ``x.mT``)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


def _root_name(node: ast.AST) -> Optional[str]:
    """``x`` for ``x``, ``x[i]``, ``x[i][j]``, ``x.T[j]``, ``x[i].T``; None otherwise."""
    while isinstance(node, (ast.Subscript, ast.Attribute)):
        if isinstance(node, ast.Attribute) and node.attr not in ("T", "mT"):
            return None
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _int_index(p: Any) -> bool:
    if isinstance(p, Value):
        return p.ndim == 0 and p.dtype.is_int
    return isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_))


def _combined_key(vkey: Any, key: Any) -> Any:
    """The key of the array for ``view[key]``, the view being ``array[vkey]``, where that is
    plain: ``vkey`` is leading integers, then only full slices (``x[i]``, ``x[i, :]``); None
    otherwise (slices with bounds or steps, new axes, transposes)."""
    if isinstance(vkey, _Attr):
        return None
    parts = vkey if isinstance(vkey, tuple) else (vkey,)
    lead = 0
    while lead < len(parts) and _int_index(parts[lead]):
        lead += 1
    if not lead or not all(isinstance(p, slice) and p.start is None and p.stop is None
                           and p.step is None for p in parts[lead:]):
        return None
    kparts = key if isinstance(key, tuple) else (key,)
    return (*parts[:lead], *kparts)


def _derive(base: Value, derive: Callable[[Value], Value], old: Value) -> Value:
    """The view ``old`` took of an array, taken again of its updated version ``base``."""
    new = derive(base)
    new.view = (base, derive, old.view[2])  # type: ignore[index]
    new.owned, new.unstorable = old.owned, old.unstorable
    return new


def _stale(old: Value, name: str, base: str) -> Value:
    """``old``, a view named ``name`` of the array ``base`` names, after a block that both
    stored into ``base`` and rebound it: which array the view shows is not known here."""
    new = Value(old.atom, owned=old.owned)
    new.stale = (f"{name!r} is a view of {base!r}, which a loop or branch (this one, or one "
                 f"before this line) both stores into and rebinds to another array, so which "
                 f"contents {name!r} "
                 f"shows is not known here; take the view again after it ({name} = "
                 f"{base}[...]) or copy it where it is taken ({name} = {base}[...].copy())")
    return new


def _rebound_names(stmts: Sequence[ast.stmt]) -> set[str]:
    """The names a block binds to another value (``x = ...``, ``for x in ...``, ``x: T =
    ...``), as opposed to the names it stores through (``x[i] = ...``: a load of ``x``)."""
    out: set[str] = set()
    for s in stmts:
        for node in ast.walk(s):
            tgts = (node.targets if isinstance(node, ast.Assign) else [node.target]
                    if isinstance(node, (ast.AnnAssign, ast.For, ast.NamedExpr)) else [])
            out.update(n.id for t in tgts for n in ast.walk(t)
                       if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return out


def _is_array(v: Any) -> bool:
    """A traced array (not a scalar): what a store or an in-place operator updates."""
    return isinstance(v, Value) and v.ndim > 0


def _stored_names(stmts: Sequence[ast.stmt]) -> set[str]:
    """The names a block stores through (``x[i] = v``, ``x[i] += v``, ``x += v``,
    ``np.add.at(x, ...)``): updates of the array they hold, not new bindings."""
    out: set[str] = set()
    for s in stmts:
        for node in ast.walk(s):
            targets: list[ast.AST] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AugAssign):
                targets = [node.target]
                if isinstance(node.target, ast.Name):
                    out.add(node.target.id)
            elif isinstance(node, ast.Call) and _updates_in_place(node):
                name = _updated_name(node)
                if name is not None:
                    out.add(name)
            for t in targets:
                if isinstance(t, ast.Subscript) and _root_name(t) is not None:
                    out.add(_root_name(t))  # type: ignore[arg-type]  (x.T[j] = v stores x)
                for sub in ast.walk(t):
                    if isinstance(sub, ast.Subscript) and isinstance(sub.value, ast.Name):
                        out.add(sub.value.id)
    return out


def _view_sources(stmts: Sequence[ast.stmt]) -> dict[str, set[str]]:
    """For ``v = x[...]`` and ``v = x.T`` in a block: v -> the names it may be a view of
    (judged from the syntax: the index may also turn out to make a copy)."""
    out: dict[str, set[str]] = {}
    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Assign) and isinstance(node.value, (ast.Subscript,
                                                                         ast.Attribute)):
                root = _root_name(node.value)
                if root is not None:
                    for t in node.targets:
                        if isinstance(t, ast.Name) and t.id != root:
                            out.setdefault(t.id, set()).add(root)
    return out


def _exits(stmts: Sequence[ast.stmt], loop: int) -> bool:
    """Does the body of the loop ``loop`` contain a ``break`` of it or any ``return``?"""
    return any(n in (_brk(loop), _RET) for n in _assigned_names(stmts, loop))


def _always_returns(stmts: Sequence[ast.stmt]) -> bool:
    """Does every path through ``stmts`` end in a ``return`` (judged from the syntax)?"""
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, ast.Return):
        return True
    if isinstance(last, ast.If):
        return _always_returns(last.body) and _always_returns(last.orelse)
    if isinstance(last, ast.While):  # `while True:` is left only by a break or a return
        return isinstance(last.test, ast.Constant) and last.test.value is True and \
            _find(last.body, (ast.Break,), loop=True) is None
    return False


def _find(stmts: Sequence[ast.stmt], kinds: tuple[type, ...], loop: bool) -> Optional[ast.AST]:
    """The first node of one of ``kinds`` in ``stmts``, not looking into nested loops when
    ``loop`` (a ``break`` there is theirs)."""
    todo: list[ast.AST] = list(stmts)
    while todo:
        node = todo.pop(0)
        if isinstance(node, kinds):
            return node
        if loop and isinstance(node, (ast.For, ast.While)):
            continue
        todo.extend(ast.iter_child_nodes(node))
    return None


def _truth(v: Any) -> Any:
    """A value as the operand of ``and``/``or``: a bool (Python, or a traced scalar)."""
    if isinstance(v, Value):
        return v if v.dtype is bool_ else v != 0
    return bool(v)


def _is_zero(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x == 0


def _shortest(lengths: Sequence[Any]) -> Any:
    """The least of the lengths (as ``zip`` stops at the shortest): known at compile time when
    they are Python ints or sizes of one same symbolic dim, else a run-time minimum."""
    if not any(isinstance(n, Value) for n in lengths):
        return min(lengths)
    dims = {n.dim if isinstance(n, Value) else None for n in lengths}
    if len(dims) == 1 and None not in dims:
        return lengths[0]
    acc = lengths[0]
    for n in lengths[1:]:
        acc = ops.minimum(acc, n)
    return acc


class _Plan:
    """A traced ``for``: the loop index ``i`` runs over ``range(start, stop, step)`` (Python
    ints or traced i64 scalars) and the target is bound to ``item(i)``."""

    def __init__(self, start: Any, stop: Any, step: Any, item: Callable[[Any], Any],
                 parallel: bool = False, is_range: bool = False) -> None:
        self.start, self.stop, self.step = start, stop, step
        self.item = item
        self.parallel = parallel
        self.is_range = is_range  # a plain range(): item is the index itself

    @property
    def known(self) -> Optional[range]:
        """The Python range, when this is a plain ``range`` of Python ints."""
        bounds = (self.start, self.stop, self.step)
        if self.parallel or not self.is_range or any(isinstance(a, Value) for a in bounds):
            return None
        return range(*bounds)

    def trips(self) -> Any:
        """The number of iterations (an int, or a traced i64 scalar)."""
        a, b, c = self.start, self.stop, self.step
        if not any(isinstance(x, Value) for x in (a, b, c)):
            return len(range(a, b, c))
        if _is_zero(a) and isinstance(c, int) and c == 1:
            return b
        if not isinstance(c, int):
            # a traced step: a loop counting the iterations, which also raises on a step of 0
            # as range() does
            body = Builder()
            i, n = Var(scalar(i64)), Var(scalar(i64))
            with building(body):
                (more,) = _bind_multi(P.add_p, [n, Lit.of(1, i64)])
            bounds = [ops.to_value(x, i64).atom for x in (a, b, c)]
            (count,) = _bind_multi(P.loop_p, [*bounds, Lit.of(0, i64)],
                                   body=body.build([i, n], [more], "count"), n_carry=1)
            return Value(count)
        n = (b - a + (c - 1)) // c if c > 0 else (a - b + (-c - 1)) // -c
        return ops.maximum(n, 0)

    def index(self, k: Any) -> Any:
        """The loop index of iteration number ``k``."""
        i = k if isinstance(self.step, int) and self.step == 1 else k * self.step
        return i if _is_zero(self.start) else i + self.start


class _Tracer:
    """Walks one function body; nested control flow re-enters it with a copied scope."""

    def __init__(self, src: FunctionSource, scope: dict[str, Any], stack: tuple[Any, ...]) -> None:
        self.src = src
        self.scope = scope
        self.stack = stack      # kernels being inlined, to refuse recursion
        self.loops: tuple[int, ...] = ()  # ids of the enclosing loops' AST nodes, innermost last

    # ------------------------------------------------------------------ statements
    def run(self, stmts: Sequence[ast.stmt]) -> None:
        """Run ``stmts``; after a ``break``/``continue``/``return`` (a flag set) the rest is
        skipped, or, when the flag is traced, runs under an ``if`` on it being clear."""
        for k, s in enumerate(stmts):
            go = self._going()
            if go is False:
                return
            if go is not True:  # (errors merging the paths name the first guarded statement)
                rest = stmts[k:]
                self.stmt(s, lambda: self._follow_views(
                    rest, lambda: self._traced_if(go, rest, [], clear_flags=True)))
                return
            self.stmt(s)

    def _flags(self) -> list[str]:
        """The flags that stop the current block: return, and the innermost loop's."""
        names = [_RET]
        if self.loops:
            names += [_brk(self.loops[-1]), _cnt(self.loops[-1])]
        return names

    def _going(self) -> Any:
        """True, False, or a traced bool: no break, continue or return is pending."""
        pending = []
        for n in self._flags():
            f = self.scope.get(n, False)
            if f is True:
                return False
            if f is not False:
                pending.append(f)
        if not pending:
            return True
        acc = pending[0]
        for f in pending[1:]:
            acc = acc | f
        return ops.logical_not(acc)

    def _names(self, stmts: Sequence[ast.stmt], loop: Optional[int] = None) -> list[str]:
        """``_assigned_names`` for a block of this function inside the loop ``loop`` (by
        default the innermost enclosing one)."""
        key = loop if loop is not None else (self.loops[-1] if self.loops else None)
        names = _assigned_names(stmts, key, self.src.ret_arity or 1)
        names += [n for n in self._kernel_writes(stmts) if n not in names]
        # a store through a view is a store into its array: the array is assigned, and the
        # view, taken again from it where the block starts (_take_views), is not carried
        stored = _stored_names(stmts) & set(names)
        arrays = self._view_arrays(stored, stmts)
        rebound = _rebound_names(stmts)
        names += [n for n in arrays if n not in names]
        names = [n for n in names if n in rebound or not self._view_of_any(n, names)]
        # a store through one name changes every name of that array (NumPy's aliasing), and
        # the hidden name of an argument it updates: those are assigned too
        seen = dict.fromkeys(names)
        for n in names:
            v = self.scope.get(n)
            if _is_array(v):
                seen.update((m, None) for m, w in self.scope.items() if w is v)
        return list(seen)

    def _kernel_writes(self, stmts: Sequence[ast.stmt]) -> list[str]:
        """The names passed, in ``stmts``, to kernels that write into those arguments (the
        kernel named by a global or closure name, ``k(x, y)`` or ``mod.k(x, y)``)."""
        out: list[str] = []
        for s in stmts:
            for node in ast.walk(s):
                if not isinstance(node, ast.Call):
                    continue
                root = node.func
                while isinstance(root, ast.Attribute):
                    root = root.value
                if not isinstance(root, ast.Name) or root.id in self.scope:
                    continue  # (a local value: resolving it could trace)
                try:
                    fn = self.expr(node.func)
                except CompileError:
                    continue
                if isinstance(fn, Callee):
                    out += [node.args[k].id for k in fn.written
                            if k < len(node.args) and isinstance(node.args[k], ast.Name)]
        return out

    def _stored(self, stmts: Sequence[ast.stmt]) -> frozenset[str]:
        """The names ``stmts`` store through, kernels they call included, and the arrays of
        the views among them."""
        names = _stored_names(stmts) | set(self._kernel_writes(stmts))
        return frozenset(names) | frozenset(self._view_arrays(names, stmts))

    def _view_arrays(self, names: Iterable[str], stmts: Sequence[ast.stmt]) -> list[str]:
        """The names of the arrays that ``names`` may be views of: by the views bound now,
        and by ``v = x[...]`` in ``stmts`` (transitively)."""
        static = _view_sources(stmts)
        out: dict[str, None] = {}
        todo = list(names)
        while todo:
            n = todo.pop()
            parents = set(static.get(n, ()))
            v = self.scope.get(n)
            while isinstance(v, Value) and v.view is not None:
                parents |= {m for m, w in self.scope.items() if w is v.view[0]}
                v = v.view[0]
            for m in parents - set(out) - set(names):
                out[m] = None
                todo.append(m)
        return list(out)

    def _view_of_any(self, name: str, names: Sequence[str]) -> bool:
        """Is ``name`` bound to a view (that can be stored through) of an array that one of
        ``names`` holds?"""
        v = self.scope.get(name)
        if not (isinstance(v, Value) and v.view is not None):
            return False
        holders = {id(self.scope[m]) for m in names if m in self.scope and m != name}
        while isinstance(v, Value) and v.view is not None:
            if id(v.view[0]) in holders:
                return True
            v = v.view[0]
        return False

    def _rebind(self, old: Value, new: Value) -> None:
        """An in-place update of the array ``old``: every name holding it (the aliases NumPy
        would see the update through, and the hidden ``@arg`` name of an argument) now holds
        ``new``; so does every name holding a view of it (``r = x[0]`` then ``x[0, 1] = v``:
        ``r`` is taken again from the updated array, as NumPy's view would see the store)."""
        todo, seen = [(old, new)], {id(old)}
        while todo:
            o, nw = todo.pop()
            for n, v in list(self.scope.items()):
                if v is o:
                    self.scope[n] = nw
            for v in list(self.scope.values()):
                if isinstance(v, Value) and v.view is not None and v.view[0] is o \
                        and id(v) not in seen:
                    seen.add(id(v))
                    todo.append((v, _derive(nw, v.view[1], v)))

    def _follow_views(self, block: Sequence[ast.stmt], thunk: Callable[[], None]) -> None:
        """Run ``thunk`` (the tracing of the compound statements ``block``), then take again
        every view bound before it whose array ``block`` stored into (a loop or a branch
        updated ``x``: ``r = x[0]`` bound before it sees the update, as in NumPy)."""
        views = {n: v for n, v in self.scope.items()
                 if isinstance(v, Value) and v.view is not None}
        if not views:
            thunk()
            return
        holders = {id(v): [m for m, w in self.scope.items() if w is v.view[0]]
                   for v in views.values()}
        stored, rebound = self._stored(block), _rebound_names(block)  # (views as bound now)
        thunk()
        for n, v in views.items():
            if self.scope.get(n) is not v:
                continue  # rebound by the block, or already taken again
            base = v.view[0]
            for h in holders[id(v)]:
                now = self.scope.get(h)
                if h in stored and isinstance(now, Value) and now is not base:
                    self._rebind(v, _derive(now, v.view[1], v) if h not in rebound
                                 else _stale(v, n, h))
                    break

    def stmt(self, s: ast.stmt, action: Optional[Callable[[], None]] = None) -> None:
        """Trace ``s`` (or run ``action`` in its place: errors then name ``s``)."""
        seg = self.src.segment(s)
        loc = self.src.loc(s, seg)
        b = _current()
        old = b.loc
        b.loc = loc
        try:
            kind = type(s)
            if action is not None:
                action()
                return
            if kind in _UNSUPPORTED_STMT:
                raise CompileError(f"unsupported syntax: {_UNSUPPORTED_STMT[kind]}", loc)
            handler = getattr(self, "stmt_" + kind.__name__, None)
            if handler is None:
                raise CompileError(f"unsupported syntax: {kind.__name__} statement", loc)
            if kind in (ast.If, ast.For, ast.While):
                self._follow_views([s], lambda: handler(s))
            else:
                handler(s)
        except CompileError as exc:
            if isinstance(exc, CompileError) and exc.loc is None:
                raise CompileError(exc.bare_message, loc) from exc
            raise
        except ShapeError as exc:
            raise CompileError(str(exc), loc) from None
        except (TypeError, ValueError, IndexError, KeyError, AttributeError,
                ZeroDivisionError, NameError, OverflowError) as exc:
            raise CompileError(f"{type(exc).__name__}: {exc} (in `{seg}`)", loc) from exc
        finally:
            b.loc = old

    def stmt_Expr(self, s: ast.Expr) -> None:
        if isinstance(s.value, ast.Constant):
            return  # a docstring or a bare constant
        if isinstance(s.value, ast.Call) and self._in_place_call(s.value):
            return
        self.expr(s.value)

    def _in_place_call(self, call: ast.Call) -> bool:
        """``np.add.at(h, idx, v)``, ``np.subtract.at``, ``np.put(h, idx, v)``: NumPy updates
        ``h`` in place; here ``h`` is rebound to the updated value (as ``h[idx] += v`` and
        ``h[idx] = v``); and the in-place methods ``x.sort(axis)``, ``x.fill(v)`` on an array
        name.  False for other calls."""
        f = call.func
        if (isinstance(f, ast.Attribute) and f.attr in ("sort", "fill")
                and isinstance(f.value, ast.Name) and _is_array(self.scope.get(f.value.id))):
            name = f.value.id
            base = self.scope[name]
            _check_storable(name, base, through_views=True)
            args = [self.expr(a) for a in call.args]
            kwargs = {k.arg: self.expr(k.value) for k in call.keywords if k.arg is not None}
            if f.attr == "sort":
                self._replace(name, base, Value(ops.sort(base, *args, **kwargs).atom, owned=True))
            else:
                if len(args) != 1 or kwargs:
                    raise CompileError(f"{name}.fill takes one value")
                self._write(name, base, (slice(None),) * base.ndim, args[0])
            return True
        if isinstance(f, ast.Attribute) and f.attr == "at":
            fn = self.expr(f.value)
            if fn is not np.add and fn is not np.subtract:
                if isinstance(fn, np.ufunc):
                    raise CompileError(f"np.{fn.__name__}.at is not supported; np.add.at and "
                                       f"np.subtract.at are")
                return False
            what = f"np.{fn.__name__}.at"
        else:
            fn = self.expr(f)
            if fn is not np.put:
                return False
            what = "np.put"
        if len(call.args) != 3 or call.keywords:
            raise CompileError(f"{what} takes (array, indices, values) here")
        target = ast.Subscript(value=call.args[0], slice=call.args[1], ctx=ast.Store())
        name, base = self._store_base(target)
        key = self.subscript_key(call.args[1])
        value = self.expr(call.args[2])
        if fn is np.put:
            if base.ndim != 1:
                raise CompileError("np.put indexes the flattened array, and lattice has no "
                                   "reshape: use it on 1-D arrays (or x[i, j] = v)")
            self._write(name, base, key, value)
            return True
        if fn is np.subtract:
            value = ops.negative(value)
        self._write(name, base, key, value, add=True)
        return True

    def stmt_Pass(self, s: ast.Pass) -> None:
        pass

    def stmt_Assert(self, s: ast.Assert) -> None:
        test = self.expr(s.test)
        if isinstance(test, Value):
            raise CompileError("assert on a traced value is not supported (it is only known "
                               "when the kernel runs)")
        if not test:
            msg = self.expr(s.msg) if s.msg is not None else "assertion failed"
            raise CompileError(f"compile-time assertion failed: {msg}")

    def stmt_Return(self, s: ast.Return) -> None:
        # the value(s) and the flag; the statements after it are skipped (``run``), and the
        # loops around it are left (their conditions read the flag)
        if s.value is not None:
            value = self.expr(s.value)
            k = self.src.ret_arity
            if k is None:
                self.scope[_rv(0)] = value
            else:
                for j, v in enumerate(value):
                    self.scope[_rv(j)] = v
        self.scope[_RET] = True

    def stmt_Break(self, s: ast.Break) -> None:
        self.scope[_brk(self.loops[-1])] = True

    def stmt_Continue(self, s: ast.Continue) -> None:
        self.scope[_cnt(self.loops[-1])] = True

    def stmt_Assign(self, s: ast.Assign) -> None:
        value = self.expr(s.value)
        for t in s.targets:
            self.assign(t, value)

    def stmt_AnnAssign(self, s: ast.AnnAssign) -> None:
        ann = self.expr(s.annotation)
        if s.value is None:
            return
        value = self.expr(s.value)
        if isinstance(ann, DTypeSpec):
            value = ops.astype(value, ann)
        elif isinstance(ann, ArrayAnn):
            v = ops.to_value(value)
            if v.dtype is not ann.dtype or v.ndim != len(ann.dims):
                raise CompileError(f"value of type {v.type} does not match annotation {ann!r}")
        self.assign(s.target, value)

    def stmt_AugAssign(self, s: ast.AugAssign) -> None:
        fn = _BINOPS.get(type(s.op))
        if fn is None:
            raise CompileError(f"unsupported operator {type(s.op).__name__}=")
        t = s.target
        if isinstance(t, ast.Name):
            old = self.lookup(t.id, t)
            new = fn(old, self.expr(s.value))
            if _is_array(old):
                self._replace(t.id, old, self._in_place(t.id, old, new))
            else:
                self.scope[t.id] = new  # numbers are immutable: a new binding
        elif isinstance(t, ast.Subscript):
            name, base = self._store_base(t)
            key = self.subscript_key(t.slice)
            value = self.expr(s.value)
            if isinstance(s.op, (ast.Add, ast.Sub)) and ops.indexes_with_arrays(base, key):
                # np.add.at semantics: every repeat of an index adds (NumPy's own ``+=``
                # reads all positions first, so a repeated index would add once)
                self._write(name, base, key, value if isinstance(s.op, ast.Add)
                            else ops.negative(value), add=True)
                return
            new = fn(ops.getitem(base, key, name), value)
            self._write(name, base, key, new)
        else:
            raise CompileError(f"unsupported target {type(t).__name__} in augmented assignment")

    def _in_place(self, name: str, old: Value, new: Any) -> Value:
        """``name op= v`` on an array updates it in place, as NumPy does (``out=old``): the
        result keeps ``old``'s shape and dtype, and every other name of the array sees it."""
        _check_storable(name, old, through_views=True)
        new = ops.to_value(new)
        if new.type.shape != old.type.shape:
            raise CompileError(
                f"the result of the augmented assignment to {name!r} has shape "
                f"({', '.join(map(str, new.type.shape))}), but {name!r} is updated in place "
                f"and has shape ({', '.join(map(str, old.type.shape))}); write "
                f"`{name} = {name} op ...` for a new array")
        if new.dtype is not old.dtype:
            if new.dtype.is_float and not old.dtype.is_float:
                raise CompileError(
                    f"{name!r} is {old.dtype} and is updated in place; the {new.dtype} result "
                    f"would be truncated (NumPy refuses this cast too): convert explicitly")
            new = ops.astype(new, old.dtype)
        return Value(new.atom, owned=True)

    def assign(self, t: ast.AST, value: Any) -> None:
        if isinstance(t, ast.Name):
            self.scope[t.id] = value
        elif isinstance(t, (ast.Tuple, ast.List)):
            if isinstance(value, Value):
                raise CompileError("unpacking a traced array is not supported; index it")
            try:
                items = list(value)
            except TypeError:
                raise CompileError(f"cannot unpack {type(value).__name__}") from None
            if len(items) != len(t.elts):
                raise CompileError(f"cannot unpack {len(items)} values into {len(t.elts)} names")
            for sub, v in zip(t.elts, items):
                self.assign(sub, v)
        elif isinstance(t, ast.Subscript):
            name, base = self._store_base(t)
            self._write(name, base, self.subscript_key(t.slice), value)
        else:
            raise CompileError(f"unsupported assignment target {type(t).__name__}")

    def _store_base(self, t: ast.Subscript) -> tuple[str, Value]:
        """The array ``t`` stores into, and its name as written: ``x`` in ``x[i] = v``, or a
        view of one (``x[i][j] = v``, ``x.T[j] = v``: the view ``x[i]``, ``x.T``)."""
        seg = self.src.segment(t.value)
        if isinstance(t.value, ast.Name):
            base = self.lookup(t.value.id, t.value)
        elif _root_name(t.value) is not None:
            base = self.expr(t.value)
            if isinstance(base, Value) and base.ndim and base.view is None:
                raise CompileError(
                    f"`{seg}` is a copy (an index array or a mask makes one), so a store into "
                    f"it would be lost, as in NumPy; store into the array with one index "
                    f"({_root_name(t.value)}[..., ...] = value)")
        else:
            raise CompileError("stores must be of the form name[index] = value (or into a "
                               "view of a name: x[i][j] = value, x.T[j] = value)")
        if not isinstance(base, Value) or base.ndim == 0:
            raise CompileError(f"`{seg}` is not an array; cannot store into it")
        _check_storable(seg, base, through_views=True)
        return seg, base

    def _replace(self, name: str, holder: Value, new: Value) -> None:
        """The whole contents of ``holder`` (an array, or a view of one) become ``new``."""
        if holder.view is None or holder.owned:
            self._rebind(holder, new)
        else:
            self._write(name, holder, (slice(None),) * holder.ndim, new)

    def _write(self, name: str, holder: Value, key: Any, value: Any, add: bool = False) -> None:
        """``holder[key] = value`` (``add``: ``np.add.at``'s ``+=``), ``holder`` an array or a
        view of one (a basic slice or a transpose): a store through a view goes into its
        array, as in NumPy, and every view of that array is taken again (:meth:`_rebind`).
        A view by leading integers (``row = x[i]``, ``x[i, j][k]``) stores straight into its
        array at the combined index; any other view computes its new contents and stores
        them into its region of the array (a copy of the view per store)."""
        store = ops.add_at if add else ops.setitem
        if holder.view is None or holder.owned:
            _check_storable(name, holder)
            self._rebind(holder, store(holder, key, value, name))
            return
        base, _, vkey = holder.view
        bname = next((m for m, w in self.scope.items() if w is base and not m.startswith("@")),
                     name)
        _check_storable(bname, base, through_views=True)
        combined = _combined_key(vkey, key)
        if combined is not None:
            self._write(bname, base, combined, value, add)
            return
        new = store(holder, key, value, name)  # the view's new contents
        if isinstance(vkey, _Attr):  # a transpose: its own inverse
            self._write(bname, base, (slice(None),) * base.ndim, getattr(new, vkey.name))
        else:
            self._write(bname, base, vkey, new)

    # ------------------------------------------------------------------ control flow
    def stmt_If(self, s: ast.If) -> None:
        test = self.expr(s.test)
        if not isinstance(test, Value):
            self.run(s.body if test else s.orelse)
            return
        if test.ndim:
            raise CompileError(f"the condition of an if must be a scalar, got {test.type} "
                               f"(use lt.where for elementwise choices)")
        pred = test if test.dtype is bool_ else (test != 0)
        self._traced_if(pred, s.body, s.orelse)

    def _traced_if(self, pred: Value, body: Sequence[ast.stmt], orelse: Sequence[ast.stmt],
                   clear_flags: bool = False) -> None:
        """A ``cond`` on ``pred`` running ``body`` or ``orelse``; its outputs are the names
        either assigns that exist after it.  ``clear_flags``: ``pred`` means that no flag of
        :meth:`_flags` is set, so they are False in ``body`` (the statements after a jump)."""
        names = self._names([*body, *orelse])
        before = dict(self.scope)
        results = []
        for block, clear in ((body, clear_flags), (orelse, False)):
            b = Builder(loc=_current().loc)
            scope = dict(before)
            if clear:
                scope.update((n, False) for n in self._flags() if n in scope)
            sub = self._child(scope)
            with building(b):
                sub.run(block)
            results.append((b, sub.scope))
        for n in names:  # a value returned on one path only: a placeholder on the other
            got = [sc[n] for _, sc in results if n in sc]
            if n.startswith("@rv") and n not in before and got:
                before[n] = self._placeholder(n, got[0])
            elif clear_flags and n not in before and n in results[0][1] and not n.startswith("@"):
                # a name first bound after a jump: the path that jumped runs none of the code
                # that could read it (``if c: ... else: (loop that returns); y = ...`` then
                # ``return f(y)``), so there it may hold a placeholder of its type
                try:
                    before[n] = self._placeholder(n, results[0][1][n])
                except CompileError:
                    pass  # no placeholder of its type here: it stays bound on one path only
        kept = [n for n in names if n in before or all(n in sc for _, sc in results)]
        fixed: dict[str, Any] = {}
        for n in kept:  # a flag each path leaves a Python bool needs no output of the cond
            vals = [sc.get(n, before.get(n)) for _, sc in results]
            if n.startswith("@") and all(isinstance(v, bool) for v in vals):
                fixed[n] = vals[0] if vals[0] is vals[1] else (
                    pred if vals[0] else ops.logical_not(pred))
        outs: list[str] = []
        same: dict[str, str] = {}  # another name of the array an output holds on both paths
        leaders: dict[tuple[int, ...], str] = {}
        for n in kept:
            if n in fixed:
                continue
            vals = [sc.get(n, before.get(n)) for _, sc in results]
            if all(_is_array(v) for v in vals):
                k = tuple(id(v) for v in vals)
                if k in leaders:
                    same[n] = leaders[k]
                    continue
                leaders[k] = n
            outs.append(n)
        merged = []
        for n in outs:
            vals = [sc[n] if n in sc else before[n] for _, sc in results]
            merged.append(self._unify(n, vals, "branches of the if"))
        branches = []
        for (b, sc) in results:
            with building(b):  # conversions to the unified types belong to the branch
                atoms = [ops.to_value(sc.get(n, before.get(n)), t.dtype).atom
                         for n, t in zip(outs, merged)]
            branches.append((b, atoms))
        out_vars = self._cond(pred, branches)
        for n, v in zip(outs, out_vars):
            self.scope[n] = Value(v, owned=True)
        for n, lead in same.items():
            self.scope[n] = self.scope[lead]
        self._mark_path_dependent_aliases(before, [sc for _, sc in results], kept)
        self.scope.update(fixed)
        for n in names:
            if n not in kept:
                self.scope.pop(n, None)

    def _mark_path_dependent_aliases(self, before: dict[str, Any],
                                     paths: Sequence[dict[str, Any]], kept: Sequence[str]) -> None:
        """After an ``if``, names that hold one array on one path and different arrays on the
        other (``a = y`` then ``a = x * 2`` in one branch) hold separate values here; a store
        through one would have to be seen through the other on one path only, so stores into
        them are refused, with the reason."""
        names = [n for n in dict.fromkeys([*kept, *before]) if n in self.scope
                 and _is_array(self.scope[n])]

        def classes(sc: dict[str, Any]) -> dict[str, frozenset[str]]:
            val = {n: sc.get(n, before.get(n)) for n in names}
            return {n: frozenset(m for m in names if val[m] is val[n]) for n in names}
        first, second = (classes(sc) for sc in paths)
        for n in names:
            if first[n] != second[n] and not self.scope[n].unstorable:
                shown = sorted(m for m in first[n] ^ second[n] | {n} if not m.startswith("@"))
                if len(shown) < 2:
                    continue
                new = Value(self.scope[n].atom, owned=True)
                new.unstorable = (
                    f"after the if at {_current().loc}, {', '.join(map(repr, shown))} are one "
                    f"array on one path and different arrays on the other, so a store through "
                    f"one of them would be seen through the others on one path only; copy "
                    f"the array where a name is bound to it (a = y.copy())")
                old = self.scope[n]
                for m in names:  # (the names sharing this value share the new one)
                    if self.scope[m] is old:
                        self.scope[m] = new

    @staticmethod
    def _cond(pred: Value, branches: Sequence[tuple[Builder, list[Atom]]]) -> tuple[Var, ...]:
        """Bind a ``cond`` of two traced branches (builder, output atoms)."""
        # both branches take the union of the outer values either uses, in one order
        _, used_then = close_over(branches[0][0], [], branches[0][1], "then")
        second, operands = close_over(branches[1][0], [], branches[1][1], "else",
                                      extra=used_then)
        first, _ = close_over(branches[0][0], [], branches[0][1], "then", extra=operands)
        return _bind_multi(P.cond_p, [pred.atom, *operands], true_fn=first, false_fn=second)

    def _lazy(self, pred: Value, fns: Sequence[Callable[["_Tracer"], Any]], what: str) -> Value:
        """The value of ``fns[0]`` where ``pred`` holds, else of ``fns[1]``, each evaluated
        only on its path (a ``cond``: ``i < n and x[i] > 0`` never reads ``x[n]``)."""
        traced = []
        for fn in fns:
            b = Builder(loc=_current().loc)
            with building(b):
                traced.append((b, fn(self._child(dict(self.scope)))))
        t = self._unify(what, [v for _, v in traced], what)
        branches = []
        for b, v in traced:
            with building(b):
                branches.append((b, [ops.to_value(v, t.dtype).atom]))
        (out,) = self._cond(pred, branches)
        return Value(out)

    def _placeholder(self, name: str, like: Any) -> Any:
        """A value of ``like``'s type for a path on which ``name`` (a returned value) is not
        bound: it is carried or merged there but never returned."""
        if isinstance(like, (bool, int, float, complex, np.bool_, np.integer, np.floating,
                             np.complexfloating)):
            return type(like)(0)
        if not isinstance(like, Value):
            raise CompileError(f"a {type(like).__name__} is returned inside a loop or a traced "
                               "branch; only arrays and numbers can be (write a tuple out: "
                               "`return a, b` in every return)")
        if not like.ndim:
            return ops.to_value(0, like.dtype)
        sizes: list[Any] = []
        for d in like.type.shape:
            size = d.const if d.is_const else self._size_of(d)
            if size is None:
                raise CompileError(f"the value returned here has size {d}, known only inside "
                                   "the loop or branch that returns it; assign it to a "
                                   "variable made before the loop and return that")
            sizes.append(size)
        return ops.zeros(tuple(sizes), like.dtype)

    def _size_of(self, d: Dim) -> Optional[Value]:
        """The run-time size ``d`` from some array in scope that has it, or None."""
        for v in self.scope.values():
            if isinstance(v, Value) and d in v.type.shape:
                return v.shape[v.type.shape.index(d)]
        return None

    def _unify(self, name: str, vals: Sequence[Any], where: str) -> TensorType:
        types = []
        for v in vals:
            if isinstance(v, Value):
                types.append((v.type, False))
            elif isinstance(v, (bool, int, float, complex, np.bool_, np.integer, np.floating,
                                np.complexfloating)):
                types.append((ops.to_value(v).type, True))
            elif name.startswith("@rv"):
                raise CompileError(f"a {type(v).__name__} is returned under traced control "
                                   f"flow in the {where}; only arrays and numbers can be "
                                   "(write a tuple out: `return a, b` in every return)")
            else:
                raise CompileError(f"{_shown(name)} is assigned a {type(v).__name__} in the "
                                   f"{where}; only arrays and numbers can change under traced "
                                   "control flow")
        (t0, w0), rest = types[0], types[1:]
        d, weak = t0.dtype, w0
        for t, w in rest:
            if t.shape != t0.shape:
                raise CompileError(
                    f"{_shown(name)} has shape ({', '.join(map(str, t0.shape))}) on one path "
                    f"and ({', '.join(map(str, t.shape))}) on another in the {where}")
            d = promote(d, t.dtype, a_weak=weak, b_weak=w)
            weak = weak and w
        if weak:  # only Python numbers: type them as NumPy would type the literals
            d = max((t.dtype for t, _ in types), key=lambda x: kind_rank(x.kind))
        return TensorType(d, t0.shape)

    # ---- loops
    def stmt_For(self, s: ast.For) -> None:
        if s.orelse:
            raise CompileError("for ... else is not supported: set a flag before the `break` "
                               "and test it after the loop")
        plan = self._plan(s.iter)
        key = id(s)
        if not isinstance(plan, _Plan):
            self._unrolled_for(s, plan)
            return
        targets = _assigned_names([ast.Assign(targets=[s.target], value=ast.Constant(0))])
        names = [n for n in self._names(s.body, key) if n not in targets]
        # ``for row in X``: each row is a view of X as it is when the iteration starts (NumPy
        # indexes X afresh each step), so stores into X and through ``row`` are seen
        direct = s.iter.id if isinstance(s.iter, ast.Name) and isinstance(s.target, ast.Name) \
            and _is_array(self.scope.get(s.iter.id)) else None
        if direct is not None and s.target.id in self._stored(s.body):  # type: ignore[attr-defined]
            whole = self.scope[direct]
            names += [m for m, w in self.scope.items() if w is whole and m not in names]
        rebound = _rebound_names(s.body)
        for node in self._iterated(s.iter):
            if node.id in names and isinstance(self.scope.get(node.id), Value) and (
                    node.id != direct or node.id in rebound):
                # NumPy's iteration would see the stores into later rows; ours would not
                raise CompileError(f"the loop iterates over {node.id!r} and reassigns it; "
                                   f"loop over range(len({node.id})) and index "
                                   f"{node.id}[i] instead")

        def item(sub: "_Tracer", k: Any) -> Any:
            if direct is None or direct not in names:
                return plan.item(k)
            cur = sub.scope[direct]
            v = ops.getitem(cur, k)
            if isinstance(v, Value) and v.ndim:
                v.view = (cur, lambda b: ops.getitem(b, k), k)
            return v
        exits = _exits(s.body, key)
        if plan.parallel:
            bad = _find(s.body, (ast.Break,), loop=True) or _find(s.body, (ast.Return,), False)
            if bad is not None:
                what = "break" if isinstance(bad, ast.Break) else "return"
                raise CompileError(f"`{what}` inside a prange loop: its iterations run in any "
                                   "order; use `for ... in range(...)`",
                                   self.src.loc(bad, self.src.segment(bad)))
        if exits:  # a while over the iteration number, which also stops on the flags
            trips = plan.trips()
            k_name = f"@k{key}"
            self.scope[_brk(key)] = False
            self.scope[k_name] = 0

            def step(sub: "_Tracer", lead: list[Var]) -> None:
                k = sub.scope[k_name]
                sub.scope[_cnt(key)] = False
                sub.assign(s.target, item(sub, plan.index(k)))
                sub.run(s.body)
                sub.scope[k_name] = k + 1
            try:
                self._while([*names, k_name], lambda sub: sub.scope[k_name] < trips, step, key,
                            lazy=False, stored=self._stored(s.body),
                            rebound=frozenset(_rebound_names(s.body)))
            finally:
                for n in (k_name, _brk(key), *targets):  # (the targets: bound only inside)
                    self.scope.pop(n, None)
            return

        def body(sub: "_Tracer", lead: list[Var]) -> None:
            sub.scope[_cnt(key)] = False
            sub.assign(s.target, item(sub, Value(lead[0])))
            sub.run(s.body)
        b, (i_var,), params, outs, carried, init, types = self._trace_carried(
            names, [scalar(i64)], body, key, "loop", self._stored(s.body),
            frozenset(_rebound_names(s.body)))
        with building(b):
            out_atoms = [ops.to_value(o, t.dtype).atom for o, t in zip(outs, types)]
        body_fn, consts = close_over(b, [i_var, *params], out_atoms, "body")
        init_atoms = [ops.to_value(v, t.dtype).atom for v, t in zip(init, types)]
        extra = {}
        if plan.parallel:
            problem = P.prange_problem(body_fn, len(carried))
            if problem is not None:
                k, why = problem
                raise CompileError(f"prange loop: {carried[k]!r} {why}; iterations must be "
                                   "independent (see lt.prange)")
            extra["parallel"] = True
        start, stop, step_ = (ops.to_value(a, i64) for a in (plan.start, plan.stop, plan.step))
        results = _bind_multi(P.loop_p, [start.atom, stop.atom, step_.atom, *init_atoms,
                                         *consts],
                              body=body_fn, n_carry=len(carried), **extra)
        self._carried_out([*names, *targets], carried, init, results)

    def _unrolled_for(self, s: ast.For, seq: Any) -> None:
        """A ``for`` over a Python sequence known at compile time: unrolled."""
        try:
            items = list(seq)
        except TypeError:
            raise CompileError(f"cannot iterate over {type(seq).__name__}") from None
        key = id(s)
        item = f"@item{key}"
        # the target is bound by a statement of the body, so that after a traced break (or
        # return) it is guarded like the rest and keeps the value the break left
        bind_target = ast.copy_location(
            ast.Assign(targets=[s.target], value=ast.Name(id=item, ctx=ast.Load())), s)
        saved = self.loops
        self.loops = saved + (key,)
        self.scope[_brk(key)] = False
        try:
            for v in items:
                if self.scope[_brk(key)] is True or self.scope.get(_RET) is True:
                    break
                self.scope[_cnt(key)] = False
                self.scope[item] = v
                self.run([bind_target, *s.body])
        finally:
            self.loops = saved
            for n in (_brk(key), _cnt(key), item):
                self.scope.pop(n, None)

    def stmt_While(self, s: ast.While) -> None:
        if s.orelse:
            raise CompileError("while ... else is not supported: set a flag before the "
                               "`break` and test it after the loop")
        key = id(s)
        saved = self.loops
        self.loops = saved + (key,)
        self.scope[_brk(key)] = False
        try:
            for _ in range(WHILE_UNROLL_LIMIT + 1):
                # unrolled while the condition and the flags are known at compile time
                flags = [self.scope[_brk(key)], self.scope.get(_RET, False)]
                if any(f is True for f in flags):
                    return
                test = self.expr(s.test) if not any(isinstance(f, Value) for f in flags) else None
                if test is None or isinstance(test, Value):
                    break
                if not test:
                    return
                self.scope[_cnt(key)] = False
                self.run(s.body)
            else:
                raise CompileError(f"this while loop's condition is known at compile time and "
                                   f"still holds after {WHILE_UNROLL_LIMIT} iterations; make "
                                   "it depend on a traced value, or loop with range()")
            self.loops = saved

            def step(sub: "_Tracer", lead: list[Var]) -> None:
                sub.scope[_cnt(key)] = False
                sub.run(s.body)
            self._while(self._names(s.body, key), lambda sub: sub.expr(s.test), step, key,
                        lazy=True, stored=self._stored(s.body),
                        rebound=frozenset(_rebound_names(s.body)))
        finally:
            self.loops = saved
            self.scope.pop(_brk(key), None)
            self.scope.pop(_cnt(key), None)

    def _while(self, names: list[str], test: Callable[["_Tracer"], Any],
               step: Callable[["_Tracer", list[Var]], None], key: int, lazy: bool,
               stored: frozenset[str] = frozenset(),
               rebound: frozenset[str] = frozenset()) -> None:
        """A ``while`` equation: ``step`` runs the body, ``test`` evaluates the condition
        (both in a tracer over the carried values); the loop also stops once a carried
        ``break``/``return`` flag is set (``lazy``: the condition is then not evaluated)."""
        def body(sub: "_Tracer", lead: list[Var]) -> None:
            # an iteration runs only while no flag is set: they are False at its start
            sub.scope.update((f, False) for f in (_brk(key), _RET) if f in sub.scope)
            step(sub, lead)
        b, _, params, outs, carried, init, types = self._trace_carried(
            names, [], body, key, "while loop", stored, rebound)
        with building(b):
            out_atoms = [ops.to_value(o, t.dtype).atom for o, t in zip(outs, types)]
        tb = Builder(loc=_current().loc)
        tparams = [Var(t) for t in types]
        sub = self._loop_child(names, carried, tparams, init, key, stored, rebound)
        with building(tb):
            sub._take_views()
            stop: Any = None
            for f in (_brk(key), _RET):
                if f in carried:
                    v = sub.scope[f]
                    stop = v if stop is None else stop | v
            if stop is None:
                go = self._as_condition(test(sub))
            elif lazy:
                go = sub._lazy(stop, [lambda _: False,
                                      lambda t: self._as_condition(test(t))], "condition")
            else:
                go = ops.logical_not(stop) & self._as_condition(test(sub))
            go_atom = ops.to_value(go, bool_).atom
        _, used = close_over(tb, tparams, [go_atom], "cond")
        body_fn, consts = close_over(b, params, out_atoms, "body", extra=used)
        cond_fn, _ = close_over(tb, tparams, [go_atom], "cond", extra=consts)
        init_atoms = [ops.to_value(v, t.dtype).atom for v, t in zip(init, types)]
        results = _bind_multi(P.while_p, [*init_atoms, *consts], cond_fn=cond_fn,
                              body_fn=body_fn, n_carry=len(carried))
        self._carried_out(names, carried, init, results)

    @staticmethod
    def _as_condition(test: Any) -> Any:
        """A while's condition as a bool (Python, or a traced scalar)."""
        if isinstance(test, Value) and test.ndim:
            raise CompileError(f"the condition of a while must be a scalar, got {test.type}")
        return _truth(test)

    def _loop_scope(self, names: Sequence[str], carried: Sequence[str], params: Sequence[Var],
                    init: Sequence[Any]) -> dict[str, Any]:
        """The scope of a loop body: the names it assigns unbound, the carried ones bound to
        ``params``."""
        scope = dict(self.scope)
        for n in names:
            scope.pop(n, None)
        inner: dict[int, Value] = {}
        for n, p, v in zip(carried, params, init):
            scope[n] = _like(p, v)
            if _is_array(v):
                inner.setdefault(id(v), scope[n])
        for n in names:  # the other names of a carried array: the same value inside
            v = self.scope.get(n)
            if n not in scope and _is_array(v) and id(v) in inner:
                scope[n] = inner[id(v)]
        return scope

    def _loop_child(self, names: Sequence[str], carried: Sequence[str], params: Sequence[Var],
                    init: Sequence[Any], key: int, stored: frozenset[str],
                    rebound: frozenset[str] = frozenset()) -> "_Tracer":
        """The tracer of a loop body (or condition) over ``_loop_scope``. The views bound
        before the loop of an array the body stores into (``stored``) are taken again from
        the carried array when the body starts (:meth:`_take_views`, inside its builder), so
        an iteration sees the stores of the ones before; where the body also rebinds that
        array's name (``rebound``), which array the view shows is not known: reading it
        is refused."""
        scope = self._loop_scope(names, carried, params, init)
        sub = self._child(scope, key)
        ids = {id(self.scope[m]) for m in stored if isinstance(self.scope.get(m), Value)}
        lost = {id(self.scope[m]): m for m in stored & rebound
                if isinstance(self.scope.get(m), Value)}
        inner: dict[int, Any] = {id(self.scope[n]): lost.get(id(self.scope[n]), scope[n])
                                 for n in names if n in scope and id(self.scope.get(n)) in ids}
        views = [(n, v) for n, v in scope.items()
                 if isinstance(v, Value) and v.view is not None and n not in names]
        sub._views = (views, inner) if views and inner else None
        return sub

    def _take_views(self) -> None:
        """See :meth:`_loop_child` (a view of a view is taken from the new one)."""
        if getattr(self, "_views", None) is None:
            return
        views, inner = self._views
        done = dict(inner)  # id of an outer value -> its value here, or the name of a lost array
        grew = True
        while grew:
            grew = False
            for n, v in views:
                if id(v) not in done and id(v.view[0]) in done:
                    base = done[id(v.view[0])]  # (a view of a lost view is lost too)
                    done[id(v)] = _derive(base, v.view[1], v) if isinstance(base, Value) else base
                    grew = True
        for n, v in views:
            if id(v) in done:
                got = done[id(v)]
                self.scope[n] = got if isinstance(got, Value) else _stale(v, n, got)

    def _trace_carried(self, names: list[str], lead_types: Sequence[TensorType],
                       run: Callable[["_Tracer", list[Var]], None], key: int, what: str,
                       stored: frozenset[str] = frozenset(),
                       rebound: frozenset[str] = frozenset()) -> tuple[Builder, list[Var], list[Var], list[Any], list[str],
                                  list[Any], list[TensorType]]:
        """Trace a loop body ``run(tracer, lead params)``: the names it assigns that exist
        before the loop are carried, their types unified by promotion (re-tracing until they
        settle).  A value the body returns first gets a placeholder before the loop.

        Returns the body's builder, the lead and carried params, the carried names' values
        at the end of the body, the carried names, their initial values and types."""
        split: set[str] = set()  # names that stop sharing their array with another name
        for _attempt in range(6 + len(names)):
            carried = self._carried_names(names, split)
            init = []
            for n in carried:
                v = self.scope[n]
                if not isinstance(v, (Value, bool, int, float, complex, np.bool_, np.integer,
                                      np.floating, np.complexfloating)):
                    raise CompileError(f"{_shown(n)} ({type(v).__name__}) is reassigned in the "
                                       "loop; only arrays and numbers can be loop-carried")
                init.append(v)
            types = [self._unify(n, [v], what) for n, v in zip(carried, init)]
            diverged: set[str] = set()
            for _retype in range(4):
                b = Builder(loc=_current().loc)
                lead = [Var(t) for t in lead_types]
                params = [Var(t) for t in types]
                sub = self._loop_child(names, carried, params, init, key, stored, rebound)
                with building(b):
                    sub._take_views()
                    run(sub, lead)
                new = [n for n in names if n.startswith("@rv") and n in sub.scope
                       and n not in self.scope]
                if new:
                    break
                diverged = self._diverged(names, carried, sub.scope) - split
                if diverged:
                    self._refuse_split(diverged, stored, what)
                    split |= diverged
                    break
                outs = [sub.scope[n] for n in carried]
                new_types = [self._unify(n, [Value(Var(t)), o], what)
                             for n, t, o in zip(carried, types, outs)]
                if new_types == types:
                    return b, lead, params, outs, carried, init, types
                types = new_types
            else:
                raise CompileError("the types of loop-carried values did not settle")
            if diverged:
                continue
            for n in new:
                self.scope[n] = self._placeholder(n, sub.scope[n])
        raise CompileError("the values returned inside the loop did not settle")

    def _carried_names(self, names: Sequence[str], split: set[str]) -> list[str]:
        """The names a loop carries: those bound before it, one per array (another name of
        the same array shares its carried value, unless the body rebinds it: ``split``)."""
        carried: list[str] = []
        arrays: set[int] = set()
        for n in names:
            v = self.scope.get(n, _UNBOUND)
            if v is _UNBOUND:
                continue
            if _is_array(v) and n not in split:
                if id(v) in arrays:
                    continue
                arrays.add(id(v))
            carried.append(n)
        return carried

    def _refuse_split(self, diverged: set[str], stored: frozenset[str], what: str) -> None:
        """Names of one array that a loop body stops sharing, while it also stores through
        one of them: which names see the store would differ between iterations (NumPy: the
        first store is seen through all of them), and one carried value per name cannot say
        that."""
        ids = {id(self.scope[n]) for n in diverged}
        group = sorted(n for n, v in self.scope.items() if id(v) in ids
                       and not n.startswith("@"))
        written = [n for n in group if n in stored]
        if written:
            others = ", ".join(repr(n) for n in group if n != written[0]) or "an argument"
            raise CompileError(
                f"{written[0]!r} holds the same array as {others} when the {what} starts, and "
                f"the {what} both stores into it and rebinds one of these names; give the "
                f"{what} its own array ({written[0]} = {written[0]}.copy() before it) or store "
                f"through the array's own name")

    def _diverged(self, names: Sequence[str], carried: Sequence[str],
                  inner: dict[str, Any]) -> set[str]:
        """The names sharing a carried array that the body left holding another value."""
        leader = {id(self.scope[n]): n for n in carried if _is_array(self.scope[n])}
        out = set()
        for n in names:
            v = self.scope.get(n)
            if n not in carried and _is_array(v) and id(v) in leader:
                if inner.get(n) is not inner.get(leader[id(v)]):
                    out |= {n, leader[id(v)]}
        return out

    def _carried_out(self, names: Sequence[str], carried: Sequence[str], init: Sequence[Any],
                     results: Sequence[Var]) -> None:
        """Bind the loop's results to the carried names (and to the other names of a carried
        array); names local to the body go away."""
        after: dict[int, Value] = {}
        for n, v, old in zip(carried, results, init):
            self.scope[n] = _like(v, old)
            if _is_array(old):
                after[id(old)] = self.scope[n]
        for n in names:
            if n not in carried:
                v = self.scope.get(n)
                if _is_array(v) and id(v) in after:
                    self.scope[n] = after[id(v)]
                else:
                    self.scope.pop(n, None)  # bound only inside the loop body

    # ---- what a for loop iterates over
    def _plan(self, node: ast.expr) -> Any:
        """How ``for ... in node`` iterates: a :class:`_Plan` (a traced loop), or a Python
        iterable known at compile time (unrolled)."""
        if isinstance(node, ast.Call):
            fn = self.expr(node.func)
            if fn is builtins.range or fn is ops.prange:
                return self._range_plan(node, fn is ops.prange)
            if fn in (builtins.enumerate, builtins.zip, builtins.reversed):
                return self._combined_plan(node, fn)
        seq = self.expr(node)
        if isinstance(seq, Value):
            if not seq.ndim:
                raise CompileError(f"cannot iterate over a traced scalar ({seq.type})")
            return _Plan(0, seq.shape[0], 1, lambda i: ops.getitem(seq, i))
        return seq

    def _iterated(self, node: ast.expr) -> list[ast.Name]:
        """The names a ``for`` iterates over directly (``x`` in ``for v in x`` and in
        ``enumerate(x)``, ``zip(x, y)``, ``reversed(x)``)."""
        if isinstance(node, ast.Name):
            return [node]
        if isinstance(node, ast.Call) and any(self._resolves_to(node.func, f) for f in (
                builtins.enumerate, builtins.zip, builtins.reversed)):
            return [n for a in node.args for n in self._iterated(a)]
        return []

    def _range_plan(self, it: ast.Call, parallel: bool) -> "_Plan":
        rname = "prange" if parallel else "range"
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise CompileError(f"{rname}() takes 1 to 3 positional arguments")
        args = [self.expr(a) for a in it.args]
        for a in args:
            if isinstance(a, Value) and (a.ndim or not a.dtype.is_int):
                raise CompileError(f"{rname}() takes integers, got {a.type}")
            if not isinstance(a, Value) and (isinstance(a, bool)
                                             or not isinstance(a, (int, np.integer))):
                raise CompileError(f"{rname}() takes integers, got {a!r}")
        if len(args) == 1:
            args = [0, args[0], 1]
        elif len(args) == 2:
            args = [args[0], args[1], 1]
        if not isinstance(args[2], Value) and args[2] == 0:
            raise CompileError(f"{rname}() step must not be zero")
        args = [a if isinstance(a, Value) else int(a) for a in args]
        return _Plan(*args, item=lambda i: i, parallel=parallel, is_range=True)

    def _combined_plan(self, node: ast.Call, fn: Any) -> Any:
        """``enumerate``, ``zip`` and ``reversed`` of iterables, traced or not."""
        name = fn.__name__
        kwargs = {k.arg: self.expr(k.value) for k in node.keywords}
        if any(isinstance(a, ast.Starred) for a in node.args) or None in kwargs:
            raise CompileError(f"*args and **kwargs in {name}() are not supported")
        subs = [self._plan(a) for a in node.args]
        if any(isinstance(p, _Plan) and p.parallel for p in subs):
            raise CompileError(f"prange() cannot be combined with {name}(); iterate over "
                               "prange() directly")
        if not any(isinstance(p, _Plan) for p in subs):
            return fn(*subs, **kwargs)  # all known at compile time: Python's own
        if all(not isinstance(p, _Plan) or p.known is not None for p in subs) and not all(
                isinstance(p, _Plan) for p in subs):
            # ranges of Python ints beside Python sequences: all unrolled
            return fn(*(p.known if isinstance(p, _Plan) else p for p in subs), **kwargs)
        for p in subs:
            if not isinstance(p, _Plan):
                raise CompileError(f"{name}() of a traced array and a Python sequence "
                                   "known at compile time is not supported; index the array "
                                   "in a loop over range() instead")
        if fn is builtins.enumerate:
            if len(subs) != 1 or set(kwargs) - {"start"}:
                raise CompileError("enumerate() takes one iterable and start=")
            (p,) = subs
            first = kwargs.get("start", 0)
            return _Plan(0, p.trips(), 1, lambda k: (k + first if not _is_zero(first) else k,
                                                     p.item(p.index(k))))
        if kwargs:
            raise CompileError(f"{name}() takes no keyword arguments here")
        if fn is builtins.reversed:
            if len(subs) != 1:
                raise CompileError("reversed() takes one iterable")
            (p,) = subs
            n = p.trips()
            return _Plan(0, n, 1, lambda k: p.item(p.index(n - 1 - k)))
        n = _shortest([p.trips() for p in subs])
        return _Plan(0, n, 1, lambda k: tuple(p.item(p.index(k)) for p in subs))

    def _child(self, scope: dict[str, Any], loop: Optional[int] = None) -> "_Tracer":
        t = _Tracer(self.src, scope, self.stack)
        t.loops = self.loops + ((loop,) if loop is not None else ())
        return t

    def _resolves_to(self, node: ast.AST, obj: Any) -> bool:
        try:
            return self.expr(node) is obj
        except CompileError:
            return False

    # ------------------------------------------------------------------ expressions
    def lookup(self, name: str, node: ast.AST) -> Any:
        if name in self.scope:
            v = self.scope[name]
            if isinstance(v, Value) and v.stale:
                raise CompileError(v.stale)
            return v
        if name in self.src.closure:
            return self.src.closure[name]
        if name in self.src.globals:
            return self.src.globals[name]
        if hasattr(builtins, name):
            return getattr(builtins, name)
        raise CompileError(f"name {name!r} is not defined (or is only defined inside a loop or "
                           "one branch of an if)")

    def expr(self, e: ast.expr) -> Any:
        handler = getattr(self, "expr_" + type(e).__name__, None)
        if handler is None:
            raise CompileError(f"unsupported syntax: {type(e).__name__} expression "
                               f"`{self.src.segment(e)}`")
        return handler(e)

    def expr_Constant(self, e: ast.Constant) -> Any:
        return e.value

    def expr_Name(self, e: ast.Name) -> Any:
        return self.lookup(e.id, e)

    def expr_Attribute(self, e: ast.Attribute) -> Any:
        base = self.expr(e.value)
        try:
            out = getattr(base, e.attr)
            if e.attr in ("T", "mT") and isinstance(base, Value) and isinstance(out, Value) \
                    and out is not base and out.ndim > 1:
                # a transpose is a view: it follows later stores into ``base``
                out.view = (base, lambda b: getattr(b, e.attr), _Attr(e.attr))
            return out
        except AttributeError:
            what = f"traced {base.type}" if isinstance(base, Value) else type(base).__name__
            raise CompileError(f"{what} has no attribute {e.attr!r}") from None

    def expr_Tuple(self, e: ast.Tuple) -> Any:
        return tuple(self.expr(x) for x in e.elts)

    expr_List = expr_Tuple

    def expr_Slice(self, e: ast.Slice) -> slice:
        return slice(*(None if p is None else self.expr(p) for p in (e.lower, e.upper, e.step)))

    def subscript_key(self, node: ast.expr) -> Any:
        parts = node.elts if isinstance(node, ast.Tuple) else [node]
        if any(isinstance(p, ast.List) for p in [node, *parts]):
            # a list evaluates to a tuple here, so x[[0, 1]] would silently mean x[0, 1]
            raise CompileError("a constant list cannot index inside a kernel; pass the "
                               "indices as an integer array argument (or build them with "
                               "lt.arange)")
        return self.expr(node)

    def expr_Subscript(self, e: ast.Subscript) -> Any:
        base = self.expr(e.value)
        key = self.subscript_key(e.slice)
        if isinstance(base, Value):
            name = e.value.id if isinstance(e.value, ast.Name) else None
            out = ops.getitem(base, key, name)
            if isinstance(out, Value) and out is not base and out.ndim and \
                    not ops.indexes_with_arrays(base, key):
                # a basic slice is a view: it follows later stores into ``base``
                out.view = (base, lambda b: ops.getitem(b, key, name), key)
            return out
        if isinstance(key, Value) or (isinstance(key, tuple) and any(isinstance(k, Value) for k in key)):
            raise CompileError("a Python sequence cannot be indexed by a traced value")
        return base[key]

    def expr_BinOp(self, e: ast.BinOp) -> Any:
        fn = _BINOPS.get(type(e.op))
        if fn is None:
            raise CompileError(f"unsupported operator {type(e.op).__name__}")
        return fn(self.expr(e.left), self.expr(e.right))

    def expr_UnaryOp(self, e: ast.UnaryOp) -> Any:
        v = self.expr(e.operand)
        if isinstance(e.op, ast.USub):
            return ops.negative(v)
        if isinstance(e.op, ast.UAdd):
            return v
        if isinstance(e.op, ast.Invert):
            return ops.invert(v)  # bitwise on integers, logical on bools (NumPy's ~)
        if isinstance(e.op, ast.Not):
            if isinstance(v, Value):
                if v.ndim:
                    raise CompileError("`not` of an array is ambiguous; use ~ or lt.where")
                return ops.logical_not(v if v.dtype is bool_ else v != 0)
            return not v
        raise CompileError(f"unsupported unary operator {type(e.op).__name__}")

    def expr_BoolOp(self, e: ast.BoolOp) -> Any:
        is_and = isinstance(e.op, ast.And)
        acc = self.expr(e.values[0])
        for node in e.values[1:]:
            if not isinstance(acc, Value):
                if bool(acc) != is_and:  # Python short-circuit on a known value
                    return acc
                acc = self.expr(node)
                continue
            lhs_b = acc if acc.dtype is bool_ else acc != 0
            if not lhs_b.ndim and _find([node], (ast.Subscript, ast.Call), loop=False):
                # the right side could fail (an index out of range): only on its own path
                def rhs(t: "_Tracer", node: ast.expr = node) -> Any:
                    return _truth(t.expr(node))

                def known(t: "_Tracer") -> bool:
                    return not is_and  # `a and b` where a is False: False; `or`: True
                acc = self._lazy(lhs_b, [rhs, known] if is_and else [known, rhs], "condition")
                continue
            rhs = self.expr(node)
            rhs_b = rhs if isinstance(rhs, Value) and rhs.dtype is bool_ else (
                rhs != 0 if isinstance(rhs, Value) else bool(rhs))
            acc = (lhs_b & rhs_b) if is_and else (lhs_b | rhs_b)
        return acc

    def expr_Compare(self, e: ast.Compare) -> Any:
        left = self.expr(e.left)
        result: Any = True
        for op, node in zip(e.ops, e.comparators):
            right = self.expr(node)
            if isinstance(op, (ast.Is, ast.IsNot, ast.In, ast.NotIn)):
                if isinstance(left, Value) or isinstance(right, Value):
                    raise CompileError(f"`{type(op).__name__}` cannot compare traced values")
                r = {ast.Is: operator.is_, ast.IsNot: operator.is_not,
                     ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}[type(op)](left, right)
            else:
                r = _CMPOPS[type(op)](left, right)
            result = r if result is True else (result & r if isinstance(result, Value) or isinstance(r, Value) else result and r)
            left = right
        return result

    def expr_IfExp(self, e: ast.IfExp) -> Any:
        test = self.expr(e.test)
        if not isinstance(test, Value):
            return self.expr(e.body if test else e.orelse)
        pred = test if test.dtype is bool_ else test != 0
        return ops.where(pred, self.expr(e.body), self.expr(e.orelse))

    def expr_Call(self, e: ast.Call) -> Any:
        fn = self.expr(e.func)
        if any(isinstance(a, ast.Starred) for a in e.args) or any(k.arg is None for k in e.keywords):
            raise CompileError("*args and **kwargs in calls are not supported")
        args = [self.expr(a) for a in e.args]
        kwargs = {k.arg: self.expr(k.value) for k in e.keywords}
        if fn is builtins.range or fn is ops.prange:
            name = "range" if fn is builtins.range else "prange"
            raise CompileError(f"{name}() is only supported as the iterable of a for loop")
        if isinstance(fn, Callee):
            if kwargs:
                raise CompileError("kernels are called with positional arguments")
            return inline_call(fn, args, self.stack, self._rebind)
        traced = any(isinstance(a, Value) or isinstance(a, (list, tuple)) and any(
            isinstance(x, Value) for x in a) for a in args) or any(
            isinstance(v, Value) for v in kwargs.values())  # (a list: np.concatenate's)
        try:
            translated = _TRANSLATE.get(fn)
        except TypeError:  # unhashable callable
            translated = None
        if translated is not None and (traced or fn in (np.zeros, np.ones, np.empty, np.full,
                                                         np.arange, np.eye, np.identity,
                                                         np.linspace, np.tri, np.array)):
            return translated(*args, **kwargs)
        if isinstance(fn, type) and issubclass(fn, np.generic) and traced:
            return ops.astype(args[0], fn)
        if fn in (print,):
            raise CompileError("print() is not supported inside a kernel")
        if traced and _foreign_numeric(fn):
            # NumPy would run on the traced placeholders by duck typing and return a
            # meaningless value (np.percentile of a Value "works"): refuse instead
            raise CompileError(f"{_callable_name(fn)} is not supported on traced values inside "
                               "a kernel (docs/numpy-coverage.md lists what is); write it with "
                               "supported operations or loops")
        if isinstance(getattr(fn, "__self__", None), (np.generic, np.ndarray)):
            # a method of a constant (``lt.maximum(3, 5).astype(lt.f32)`` folds to NumPy):
            # NumPy takes NumPy dtypes, not lattice's
            args = [_numpy_dtype(a) for a in args]
            kwargs = {k: _numpy_dtype(v) for k, v in kwargs.items()}
        return fn(*args, **kwargs)

    def _unsupported(self, e: ast.expr) -> Any:
        raise CompileError(f"unsupported syntax: {type(e).__name__} `{self.src.segment(e)}`")

    expr_Lambda = expr_ListComp = expr_DictComp = expr_SetComp = expr_GeneratorExp = _unsupported
    expr_Dict = expr_Set = expr_JoinedStr = expr_NamedExpr = expr_Starred = _unsupported
    expr_Await = expr_Yield = expr_YieldFrom = _unsupported


def _foreign_numeric(fn: Any) -> bool:
    """A NumPy, math or cmath callable lattice has no translation for (a ufunc, one of a
    ufunc's methods such as ``np.add.outer``, or a function of those modules)."""
    if isinstance(fn, np.ufunc) or isinstance(getattr(fn, "__self__", None), np.ufunc):
        return True
    module = getattr(fn, "__module__", None) or ""
    return module in ("math", "cmath") or module == "numpy" or module.startswith("numpy.")


def _callable_name(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, np.ufunc):
        return f"np.{owner.__name__}.{fn.__name__}"
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__name__", repr(fn))
    if isinstance(fn, np.ufunc) or module.startswith("numpy"):
        sub = module[len("numpy"):].lstrip(".") if module.startswith("numpy.") else ""
        sub = "" if sub.startswith("_") or sub.startswith("lib") or sub.startswith("core") else sub
        return f"np.{sub + '.' if sub else ''}{name}"
    return f"{module}.{name}" if module else name


def _current() -> Builder:
    from ..ir.core import current_builder
    return current_builder()


def _bind_multi(prim: P.Primitive, inputs: Sequence[Atom], **params: Any) -> tuple[Var, ...]:
    from ..ir.core import bind
    return bind(prim, *inputs, **params)


def _check_arg(kname: str, name: str, want: TensorType, got: Any,
               dims: dict[str, Dim]) -> Value:
    """Match a value passed to an inlined kernel against its parameter type."""
    if not isinstance(got, Value):
        if want.shape:
            raise CompileError(f"argument {name!r} of {kname!r} must be an array {want}")
        return ops.to_value(got, want.dtype)
    if got.dtype is not want.dtype:
        raise CompileError(f"argument {name!r} of {kname!r} expects {want.dtype}, got "
                           f"{got.dtype} (convert with .astype(lt.{want.dtype.name}))")
    if got.ndim != want.ndim:
        raise CompileError(f"argument {name!r} of {kname!r} expects a {want.ndim}-D value, "
                           f"got {got.ndim}-D")
    for w, g in zip(want.shape, got.type.shape):
        if w.is_const:
            if w != g:
                raise CompileError(f"argument {name!r} of {kname!r}: size {g} where the "
                                   f"annotation says {w}")
            continue
        (n,) = w.names
        if n in dims and dims[n] != g:
            raise CompileError(f"argument {name!r} of {kname!r}: dim {n!r} is {dims[n]} "
                               f"elsewhere but {g} here")
        dims[n] = g
    return got


def trace_function(src: FunctionSource, param_types: Sequence[TensorType],
                   stack: tuple[Any, ...] = (), aliases: Sequence[Sequence[int]] = (), *,
                   size_names: bool = False) -> tuple[list[Var], Any, dict[int, Value]]:
    """Trace ``src`` with fresh params of the given types in the current builder; the params,
    the returned value and the new contents of each array argument the body writes into.

    ``aliases``: groups of params that are passed one array; inside they are one Value (the
    first's), and only the first is written.
    ``size_names`` (a kernel traced for calling, not inlined): each ``i64`` scalar parameter
    whose name no array parameter's annotation uses stands for the dim of its own name, so
    ``lt.zeros(n)`` has the size ``n`` and ``w[b:2 * b]`` the size ``b``
    (:func:`size_parameters` lists the ones a kernel uses)."""
    params = [Var(t) for t in param_types]
    taken = {nm for t in param_types for d in t.shape for nm in d.names}
    scope: dict[str, Any] = {
        n: Value(p, owned=True,
                 dim=Dim.named(n) if size_names and _is_size_param(n, p.type, taken) else None)
        for n, p in zip(src.param_names, params)}
    same = {k: group[0] for group in aliases for k in group[1:]}
    for k, first in same.items():
        scope[src.param_names[k]] = scope[src.param_names[first]]
    # Each array argument also has a hidden name: stores into it (through its own name or
    # another name of it) rebind that name too, so its final value is the argument's new
    # contents, whatever the user's names hold at the end.
    hidden = {k: _arg(k) for k, t in enumerate(param_types) if t.ndim and k not in same}
    for k, h in hidden.items():
        scope[h] = scope[src.param_names[k]]
    first = {h: scope[h] for h in hidden.values()}
    result, final = _run_body(src, scope, stack)
    written = {k: final[h] for k, h in hidden.items() if final.get(h) is not first[h]}
    return params, result, written


def _is_size_param(name: str, t: TensorType, taken: set[str]) -> bool:
    return t.shape == () and t.dtype is i64 and name not in taken and name.isidentifier()


def size_parameters(func: Func, names: Sequence[str]) -> dict[str, int]:
    """Dim name -> index of the integer scalar parameter of ``func`` (named ``names``) whose
    value it is, for the parameters used as sizes: their names appear in a type of ``func``
    (or of a sub-function).  A call checks those are not negative."""
    seen: set[str] = set()

    def walk(f: Func) -> None:
        for v in f.params:
            seen.update(nm for d in v.type.shape for nm in d.names)
        for e in f.eqns:
            for v in e.outs:
                seen.update(nm for d in v.type.shape for nm in d.names)
            for _, sub in subfuncs(e):
                walk(sub)
    walk(func)
    taken = {nm for p in func.params for d in p.type.shape for nm in d.names}
    return {n: k for k, (n, p) in enumerate(zip(names, func.params))
            if n in seen and _is_size_param(n, p.type, taken)}


def _arg(k: int) -> str:
    """The hidden scope name of argument ``k``'s contents."""
    return f"@arg{k}"


def _run_body(src: FunctionSource, scope: dict[str, Any], stack: tuple[Any, ...]
              ) -> tuple[Any, dict[str, Any]]:
    """Run the function body in ``scope``; the value of its ``return`` (None without one) and
    the scope at its end."""
    tracer = _Tracer(src, scope, stack)
    scope[_RET] = False
    tracer.run(src.node.body)
    returned = tracer.scope.get(_RET)
    if returned is False:
        return None, tracer.scope
    if src.ret_arity is not None:
        value: Any = tuple(tracer.scope[_rv(j)] for j in range(src.ret_arity))
    else:
        value = tracer.scope.get(_rv(0))
    if returned is not True and value is not None and not _always_returns(src.node.body):
        raise CompileError("this kernel returns a value from inside a loop or a traced branch "
                           "but may also reach its end without a return; end it with a "
                           "return", src.loc(src.node, "def"))
    return value, tracer.scope


def _numpy_dtype(a: Any) -> Any:
    from .annotations import DTypeSpec
    return a.dtype.np if isinstance(a, DTypeSpec) else a


class Callee:
    """What a kernel is to the tracer of a kernel that calls it: the interface
    :func:`inline_call` reads.  :class:`~lattice.frontend.kernel.BaseKernel` is the one
    subclass; the interface lives here so that the kernel module imports this one and never
    the other way round."""

    __name__: str

    @property
    def param_names(self) -> list[str]:
        raise NotImplementedError

    @property
    def param_types(self) -> list[TensorType]:
        raise NotImplementedError

    def func_for(self, arg_types: Sequence[TensorType],
                 stack: tuple[Any, ...] = ()) -> tuple[Func, bool]:
        """The IR for arguments of these types, and whether it returns a tuple.

        ``stack`` holds the kernels being inlined around this one (to refuse recursion).
        """
        raise NotImplementedError

    @property
    def written(self) -> tuple[int, ...]:
        """The positions of the arguments the kernel writes into (its traced IR returns their
        new contents after its own results)."""
        return ()


def inline_call(kernel: Callee, args: Sequence[Any], stack: tuple[Any, ...],
                rebind: Optional[Callable[[Value, Value], None]] = None) -> Any:
    """Trace ``kernel`` for the caller's argument types and inline its IR here.

    A kernel that writes into arguments updates the caller's arrays: ``rebind(old, new)``
    (the calling tracer's) gives every name of each written array its new contents."""
    from ..ir.inline import inline
    name = kernel.__name__
    if kernel in stack:
        raise CompileError(f"recursive call of kernel {name!r} is not supported")
    types = kernel.param_types
    if len(args) != len(types):
        raise CompileError(f"kernel {name!r} takes {len(types)} arguments, got {len(args)}")
    dims: dict[str, Dim] = {}
    values = [_check_arg(name, n, t, a, dims)
              for n, t, a in zip(kernel.param_names, types, args)]
    arg_types = [v.type for v in values]
    func, multi = kernel.func_for(arg_types, stack)
    for group in getattr(kernel, "aliases", ()):
        if any(args[k] is not args[group[0]] for k in group):
            raise CompileError(f"kernel {name!r} declares arguments "
                               f"{', '.join(repr(kernel.param_names[k]) for k in group)} "
                               f"aliases: pass the same array variable to them")
    written = kernel.written
    for k in written:
        pname = kernel.param_names[k]
        if rebind is None:
            raise CompileError(f"kernel {name!r} writes into its argument {pname!r}; call it "
                               f"from the kernel's own code, not from a Python helper function")
        a = args[k]
        if not isinstance(a, Value):
            raise CompileError(f"kernel {name!r} writes into its argument {pname!r}: pass an "
                               f"array variable there, not a {type(a).__name__}")
        _check_storable(pname, a)
        if any(b is a for j, b in enumerate(args) if j != k):
            raise CompileError(f"the same array is passed to kernel {name!r} as {pname!r} and "
                               f"as another argument, and the kernel writes into {pname!r}: "
                               f"pass a copy")
    atoms = [v.atom for v in values]
    outs = inline(func, *atoms)
    n = len(outs) - len(written)
    new = {}
    for k, o in zip(written, outs[n:]):
        new[o] = Value(o, owned=True)
        assert rebind is not None
        rebind(args[k], new[o])
    # A result that is one of the arguments is that same array, as in Python: the caller's
    # Value itself, so that a later store through either name is seen through both; a copy
    # of one (``return lt.copy(x)``: the same atom) is a new array (seed 1407786).
    fresh = getattr(kernel, "_fresh_results", frozenset())
    vals = [new[o] if o in new else Value(o, owned=True) if j in fresh
            else _returned(o, args, atoms) for j, o in enumerate(outs[:n])]
    if not vals:
        return None
    return tuple(vals) if multi else vals[0]


def _returned(o: Any, args: Sequence[Any], atoms: Sequence[Any]) -> Value:
    for a in args:
        if isinstance(a, Value) and a.atom is o:
            return a
    return Value(o, owned=not any(o is a for a in atoms))
