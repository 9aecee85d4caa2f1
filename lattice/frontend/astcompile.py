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
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..errors import CompileError
from ..ir.core import Atom, Builder, Eqn, Func, Lit, SourceLoc, Var, building
from ..ir.inline import close_over
from ..ir import primitives as P
from ..ir.types import DType, Dim, ShapeError, TensorType, bool_, f64, i64, promote, scalar
from . import ops
from .annotations import ArrayAnn, DTypeSpec, annotation_type
from .ops import Value

__all__ = ["FunctionSource", "trace_function", "inline_call"]

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow, ast.MatMult: operator.matmul, ast.BitAnd: operator.and_,
    ast.BitOr: operator.or_, ast.BitXor: operator.xor,
}
_CMPOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}
_UNSUPPORTED_STMT = {
    ast.While: "while loop (use `for i in range(...)`)", ast.Break: "break",
    ast.Continue: "continue", ast.Try: "try statement", ast.With: "with statement",
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
                 "concatenate", "stack", "vstack", "hstack"):
        table[getattr(np, name)] = getattr(ops, name)
    def _flip(x: Any, axis: Any = None) -> Any:
        v = ops.to_value(x)
        axes = range(v.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        key = [slice(None)] * v.ndim
        for a in axes:
            key[a] = slice(None, None, -1)
        return ops.getitem(v, tuple(key))

    table[np.flip] = _flip
    table[np.amax] = ops.max
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


class _Return(Exception):
    """Unwinds the statement walk at a top-level ``return``."""

    def __init__(self, value: Any) -> None:
        self.value = value


def _assigned_names(stmts: Sequence[ast.stmt]) -> list[str]:
    """Names a block (re)binds, in order of first assignment, including stores x[i] = ..."""
    seen: dict[str, None] = {}

    def target(t: ast.AST) -> None:
        if isinstance(t, ast.Name):
            seen.setdefault(t.id, None)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                target(e)
        elif isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name):
            seen.setdefault(t.value.id, None)
        elif isinstance(t, ast.Starred):
            target(t.value)

    for s in stmts:
        for node in ast.walk(s):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    target(t)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                target(node.target)
            elif isinstance(node, ast.For):
                target(node.target)
            elif isinstance(node, ast.NamedExpr):
                target(node.target)
    return list(seen)


class _Tracer:
    """Walks one function body; nested control flow re-enters it with a copied scope."""

    def __init__(self, src: FunctionSource, scope: dict[str, Any], stack: tuple[Any, ...]) -> None:
        self.src = src
        self.scope = scope
        self.depth = 0          # nesting of traced loops/branches (no `return` inside)
        self.stack = stack      # kernels being inlined, to refuse recursion

    # ------------------------------------------------------------------ statements
    def run(self, stmts: Sequence[ast.stmt]) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: ast.stmt) -> None:
        seg = self.src.segment(s)
        loc = self.src.loc(s, seg)
        b = _current()
        old = b.loc
        b.loc = loc
        try:
            kind = type(s)
            if kind in _UNSUPPORTED_STMT:
                raise CompileError(f"unsupported syntax: {_UNSUPPORTED_STMT[kind]}", loc)
            handler = getattr(self, "stmt_" + kind.__name__, None)
            if handler is None:
                raise CompileError(f"unsupported syntax: {kind.__name__} statement", loc)
            handler(s)
        except (_Return, CompileError) as exc:
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
        self.expr(s.value)

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
        if self.depth:
            raise CompileError("return inside a loop or a traced branch is not supported: "
                               "assign to a variable and return it at the end")
        raise _Return(None if s.value is None else self.expr(s.value))

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
            self.scope[t.id] = fn(self.lookup(t.id, t), self.expr(s.value))
        elif isinstance(t, ast.Subscript):
            base = self._store_base(t)
            key = self.subscript_key(t.slice)
            new = fn(ops.getitem(base, key), self.expr(s.value))
            self.scope[t.value.id] = ops.setitem(base, key, new)  # type: ignore[attr-defined]
        else:
            raise CompileError(f"unsupported target {type(t).__name__} in augmented assignment")

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
            base = self._store_base(t)
            self.scope[t.value.id] = ops.setitem(base, self.subscript_key(t.slice), value)  # type: ignore[attr-defined]
        else:
            raise CompileError(f"unsupported assignment target {type(t).__name__}")

    def _store_base(self, t: ast.Subscript) -> Value:
        if not isinstance(t.value, ast.Name):
            raise CompileError("stores must be of the form name[index] = value")
        name = t.value.id
        base = self.lookup(name, t.value)
        if not isinstance(base, Value) or base.ndim == 0:
            raise CompileError(f"{name!r} is not an array; cannot store into it")
        if not base.owned:
            raise CompileError(
                f"cannot store into {name!r}: it is a kernel argument or a view of one, and "
                f"kernel arguments are read-only; make a local copy first "
                f"({name} = lt.copy({name})), or build the result with lt.zeros/lt.empty")
        for other, v in self.scope.items():
            if other != name and v is base:
                raise CompileError(
                    f"{name!r} and {other!r} name the same array; lattice arrays are values, "
                    f"so a store through one would not be seen through the other: use "
                    f"{name} = lt.copy({other})")
        return base

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
        names = _assigned_names(s.body + s.orelse)
        before = dict(self.scope)
        results = []
        for block in (s.body, s.orelse):
            b = Builder(loc=_current().loc)
            sub = self._child(dict(before))
            with building(b):
                sub.run(block)
            results.append((b, sub.scope))
        outs = [n for n in names
                if n in before or all(n in sc for _, sc in results)]
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
        # both branches take the union of the outer values either uses, in one order
        _, used_then = close_over(branches[0][0], [], branches[0][1], "then")
        second, operands = close_over(branches[1][0], [], branches[1][1], "else",
                                      extra=used_then)
        first, _ = close_over(branches[0][0], [], branches[0][1], "then", extra=operands)
        out_vars = _bind_multi(P.cond_p, [pred.atom, *operands],
                               true_fn=first, false_fn=second)
        for n, v in zip(outs, out_vars):
            self.scope[n] = Value(v, owned=True)
        for n in names:
            if n not in outs:
                self.scope.pop(n, None)

    def _unify(self, name: str, vals: Sequence[Any], where: str) -> TensorType:
        types = []
        for v in vals:
            if isinstance(v, Value):
                types.append((v.type, False))
            elif isinstance(v, (bool, int, float, np.bool_, np.integer, np.floating)):
                types.append((ops.to_value(v).type, True))
            else:
                raise CompileError(f"{name!r} is assigned a {type(v).__name__} in the {where}; "
                                   "only arrays and numbers can change under traced control flow")
        (t0, w0), rest = types[0], types[1:]
        d, weak = t0.dtype, w0
        for t, w in rest:
            if t.shape != t0.shape:
                raise CompileError(
                    f"{name!r} has shape ({', '.join(map(str, t0.shape))}) on one path and "
                    f"({', '.join(map(str, t.shape))}) on another in the {where}")
            d = promote(d, t.dtype, a_weak=weak, b_weak=w)
            weak = weak and w
        if weak:  # only Python numbers: type them as NumPy would type the literals
            d = max((t.dtype for t, _ in types), key=lambda x: "bif".index(x.kind))
        return TensorType(d, t0.shape)

    def stmt_For(self, s: ast.For) -> None:
        if s.orelse:
            raise CompileError("for ... else is not supported")
        if not isinstance(s.target, ast.Name):
            raise CompileError("the loop variable must be a single name")
        it = s.iter
        is_range = isinstance(it, ast.Call) and self._resolves_to(it.func, builtins.range)
        parallel = isinstance(it, ast.Call) and self._resolves_to(it.func, ops.prange)
        if not (is_range or parallel):
            seq = self.expr(it)
            if isinstance(seq, Value):
                raise CompileError("iterating over a traced array is not supported; "
                                   "use `for i in range(x.shape[0])`")
            try:  # a Python sequence known at compile time: unroll
                items = list(seq)
            except TypeError:
                raise CompileError(f"cannot iterate over {type(seq).__name__}") from None
            for v in items:
                self.scope[s.target.id] = v
                self.run(s.body)
            return
        assert isinstance(it, ast.Call)
        rname = "prange" if parallel else "range"
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise CompileError(f"{rname}() takes 1 to 3 positional arguments")
        args = [self.expr(a) for a in it.args]
        for a in args:
            if isinstance(a, Value) and (a.ndim or not a.dtype.is_int):
                raise CompileError(f"{rname}() takes integers, got {a.type}")
            if not isinstance(a, Value) and (isinstance(a, bool) or not isinstance(a, (int, np.integer))):
                raise CompileError(f"{rname}() takes integers, got {a!r}")
        if len(args) == 1:
            args = [0, args[0], 1]
        elif len(args) == 2:
            args = [args[0], args[1], 1]
        if not isinstance(args[2], Value) and args[2] == 0:
            raise CompileError(f"{rname}() step must not be zero")
        start, stop, step = (ops.to_value(a, i64) for a in args)
        target = s.target.id
        names = [n for n in _assigned_names(s.body) if n != target]
        carried = [n for n in names if n in self.scope]
        init = []
        for n in carried:
            v = self.scope[n]
            if not isinstance(v, (Value, bool, int, float, np.bool_, np.integer, np.floating)):
                raise CompileError(f"{n!r} ({type(v).__name__}) is reassigned in the loop; "
                                   "only arrays and numbers can be loop-carried")
            init.append(v)
        types = [self._unify(n, [v], "loop") for n, v in zip(carried, init)]
        for _attempt in range(4):
            b = Builder(loc=_current().loc)
            i_var = Var(scalar(i64))
            params = [Var(t) for t in types]
            scope = dict(self.scope)
            for n in names:
                scope.pop(n, None)
            for n, p, v in zip(carried, params, init):
                scope[n] = Value(p, owned=(v.owned if isinstance(v, Value) else True))
            scope[target] = Value(i_var)
            sub = self._child(scope)
            with building(b):
                sub.run(s.body)
            outs = [sub.scope[n] for n in carried]
            new_types = [self._unify(n, [Value(Var(t)), o], "loop")
                         for n, t, o in zip(carried, types, outs)]
            if new_types == types:
                break
            types = new_types
        else:
            raise CompileError("the types of loop-carried values did not settle")
        with building(b):
            out_atoms = [ops.to_value(o, t.dtype).atom for o, t in zip(outs, types)]
        body, consts = close_over(b, [i_var, *params], out_atoms, "body")
        init_atoms = [ops.to_value(v, t.dtype).atom for v, t in zip(init, types)]
        extra = {}
        if parallel:
            problem = P.prange_problem(body, len(carried))
            if problem is not None:
                k, why = problem
                raise CompileError(f"prange loop: {carried[k]!r} {why}; iterations must be "
                                   "independent (see lt.prange)")
            extra["parallel"] = True
        results = _bind_multi(P.loop_p, [start.atom, stop.atom, step.atom, *init_atoms, *consts],
                              body=body, n_carry=len(carried), **extra)
        for n, v, old in zip(carried, results, init):
            self.scope[n] = Value(v, owned=(old.owned if isinstance(old, Value) else True))
        for n in names:
            if n not in carried:
                self.scope.pop(n, None)  # bound only inside the loop body
        self.scope.pop(target, None)

    def _child(self, scope: dict[str, Any]) -> "_Tracer":
        t = _Tracer(self.src, scope, self.stack)
        t.depth = self.depth + 1
        return t

    def _resolves_to(self, node: ast.AST, obj: Any) -> bool:
        try:
            return self.expr(node) is obj
        except CompileError:
            return False

    # ------------------------------------------------------------------ expressions
    def lookup(self, name: str, node: ast.AST) -> Any:
        if name in self.scope:
            return self.scope[name]
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
            return getattr(base, e.attr)
        except AttributeError:
            what = f"traced {base.type}" if isinstance(base, Value) else type(base).__name__
            raise CompileError(f"{what} has no attribute {e.attr!r}") from None

    def expr_Tuple(self, e: ast.Tuple) -> Any:
        return tuple(self.expr(x) for x in e.elts)

    expr_List = expr_Tuple

    def expr_Slice(self, e: ast.Slice) -> slice:
        return slice(*(None if p is None else self.expr(p) for p in (e.lower, e.upper, e.step)))

    def subscript_key(self, node: ast.expr) -> Any:
        return self.expr(node)

    def expr_Subscript(self, e: ast.Subscript) -> Any:
        base = self.expr(e.value)
        key = self.subscript_key(e.slice)
        if isinstance(base, Value):
            return ops.getitem(base, key)
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
        if isinstance(e.op, (ast.Not, ast.Invert)):
            if isinstance(v, Value):
                if v.ndim and isinstance(e.op, ast.Not):
                    raise CompileError("`not` of an array is ambiguous; use ~ or lt.where")
                return ops.logical_not(v if v.dtype is bool_ else v != 0)
            return (not v) if isinstance(e.op, ast.Not) else ~v
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
            rhs = self.expr(node)
            lhs_b = acc if acc.dtype is bool_ else acc != 0
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
            return inline_call(fn, args, self.stack)
        traced = any(isinstance(a, Value) or isinstance(a, (list, tuple)) and any(
            isinstance(x, Value) for x in a) for a in args) or any(
            isinstance(v, Value) for v in kwargs.values())  # (a list: np.concatenate's)
        try:
            translated = _TRANSLATE.get(fn)
        except TypeError:  # unhashable callable
            translated = None
        if translated is not None and (traced or fn in (np.zeros, np.ones, np.empty, np.full,
                                                         np.arange)):
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
                   stack: tuple[Any, ...] = ()) -> tuple[list[Var], Any]:
    """Trace ``src`` with fresh params of the given types in the current builder."""
    params = [Var(t) for t in param_types]
    scope = {n: Value(p, owned=False) for n, p in zip(src.param_names, params)}
    result = _run_body(src, scope, stack)
    return params, result


def _run_body(src: FunctionSource, scope: dict[str, Any], stack: tuple[Any, ...]) -> Any:
    """Run the function body in ``scope``; the value of its ``return`` (None without one)."""
    tracer = _Tracer(src, scope, stack)
    try:
        tracer.run(src.node.body)
    except _Return as r:
        return r.value
    return None


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


def inline_call(kernel: Callee, args: Sequence[Any], stack: tuple[Any, ...]) -> Any:
    """Trace ``kernel`` for the caller's argument types and inline its IR here."""
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
    atoms = [v.atom for v in values]
    outs = inline(func, *atoms)
    # A result that is one of the arguments is that same array, as in Python: the caller's
    # Value itself, so that a later store through either name is caught as aliasing (and
    # an argument of the caller stays read-only).
    vals = [_returned(o, args, atoms) for o in outs]
    return tuple(vals) if multi else vals[0]


def _returned(o: Any, args: Sequence[Any], atoms: Sequence[Any]) -> Value:
    for a in args:
        if isinstance(a, Value) and a.atom is o:
            return a
    return Value(o, owned=not any(o is a for a in atoms))
