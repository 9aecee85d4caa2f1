"""Which NumPy features a kernel can use, measured: every entry of a checklist (following the
sections of numba's "Supported NumPy features" page) is compiled inside a kernel and compared
with NumPy evaluating the same expression.

    python -m lattice.testing.numpy_coverage            # markdown table to stdout
    python -m lattice.testing.numpy_coverage --failing  # only what does not work

An entry is a NumPy expression over the kernel's parameters (see :data:`PARAMS`): ``x``, ``y``
(f64 vectors, positive, length 7), ``X`` (f64 7 x 5), ``Y`` (f64 5 x 7), ``S`` (f64 square
5 x 5), ``T`` (f64 2 x 3 x 4), ``ix`` (i64 indices into x, length 4, with a repeat), ``m``
(bool mask of x), ``k`` (i64 vector, values 0..9), ``u`` (u8 vector), ``a`` (an f64 scalar
in (0, 1)) and ``n`` (an i64 scalar, 3).  Its status is ``ok`` (compiles and agrees with
NumPy: same dtype, shape and values to 1e-12 relative), ``wrong`` (compiles but disagrees:
a bug), ``rejected`` (a CompileError: not supported yet, with the reason) or ``crash``
(anything else: a bug).  A trailing ``!`` on an expression marks a statement form: the entry
is the body of a kernel that returns ``x`` after running it.
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import sys
import tempfile
from typing import Any, Sequence

import numpy as np

def _params() -> dict[str, tuple[str, Any]]:
    rng = np.random.default_rng(0)
    return {
        "x": ('lt.f64["n7"]', rng.uniform(0.1, 2.0, 7)),
        "y": ('lt.f64["n7"]', rng.uniform(0.1, 2.0, 7)),
        "X": ('lt.f64["n7", "n5"]', rng.standard_normal((7, 5))),
        "Y": ('lt.f64["n5", "n7"]', rng.standard_normal((5, 7))),
        "S": ('lt.f64["n5", "n5"]', rng.standard_normal((5, 5)) + 5 * np.eye(5)),
        "T": ('lt.f64["d2", "d3", "d4"]', rng.standard_normal((2, 3, 4))),
        "ix": ('lt.i64["k4"]', np.array([3, 0, 6, 3])),
        "m": ('lt.bool_["n7"]', np.array([True, False, True, True, False, False, True])),
        "k": ('lt.i64["k10"]', rng.integers(0, 10, 10)),
        "u": ('lt.u8["k10"]', rng.integers(0, 256, 10).astype(np.uint8)),
        "a": ("lt.f64", 0.3),
        "n": ("lt.i64", 3),
    }


#: name -> (annotation source, value); callers pass copies (statement entries write x)
PARAMS: dict[str, tuple[str, Any]] = _params()


def _fresh(names: list[str]) -> list[Any]:
    """New copies of the named parameters' values, so no entry sees another's writes."""
    return [np.copy(PARAMS[p][1]) if isinstance(PARAMS[p][1], np.ndarray) else PARAMS[p][1]
            for p in names]


# (section, feature, expression)
CHECKLIST: list[tuple[str, str, str]] = [
    # --- array attributes and methods
    ("attributes", "shape, ndim, size", "X.shape[0] + X.ndim + X.size"),
    ("attributes", ".T", "X.T"),
    ("attributes", ".real / .imag", "x.real + x.imag"),
    ("methods", "all / any", "(x > 1).all() | (x > 1).any()"),
    ("methods", "argmax / argmin", "X.argmax() + X.argmin()"),
    ("methods", "argsort", "x.argsort()"),
    ("methods", "astype", "x.astype(np.float32)"),
    ("methods", "copy", "x.copy()"),
    ("methods", "cumsum / cumprod", "x.cumsum() + x.cumprod()"),
    ("methods", "dot", "X.dot(Y)"),
    ("methods", "flatten / ravel", "X.flatten() + X.ravel()"),
    ("methods", "max / min / mean / sum / prod", "X.max() + X.min() + X.mean() + X.sum() + X.prod()"),
    ("methods", "std / var", "X.std() + X.var()"),
    ("methods", "nonzero", "(x > 1).nonzero()[0]"),
    ("methods", "reshape", "X.reshape(5, 7)"),
    ("methods", "reshape(-1)", "X.reshape(-1)"),
    ("methods", "reshape of a strided view", "X.T.reshape(-1, X.shape[0])"),
    ("methods", "repeat", "x.repeat(2)"),
    ("methods", "sort (in place)", "x.sort()!"),
    ("methods", "transpose(axes)", "T.transpose((2, 0, 1))"),
    ("methods", "squeeze", "X[:, :1].squeeze()"),
    ("methods", "fill (in place)", "x.fill(2.0)!"),
    # --- reductions
    ("reductions", "sum(axis)", "np.sum(X, axis=0)"),
    ("reductions", "keepdims", "np.max(X, axis=1, keepdims=True) + np.sum(X, axis=1, keepdims=True)"),
    ("reductions", "prod", "np.prod(X, axis=1)"),
    ("reductions", "any / all", "np.any(X > 0, axis=0) & np.all(X > -3, axis=0)"),
    ("reductions", "std / var (ddof)", "np.std(X, axis=0, ddof=1) + np.var(X, axis=0)"),
    ("reductions", "median", "np.median(x)"),
    ("reductions", "percentile", "np.percentile(x, 30.0)"),
    ("reductions", "quantile", "np.quantile(x, 0.3)"),
    ("reductions", "cumsum(axis)", "np.cumsum(X, axis=1)"),
    ("reductions", "cumprod(axis)", "np.cumprod(X, axis=0)"),
    ("reductions", "nansum / nanmax", "np.nansum(x) + np.nanmax(x)"),
    ("reductions", "count_nonzero", "np.count_nonzero(x > 1)"),
    ("reductions", "average", "np.average(x)"),
    ("reductions", "average(weights)", "np.average(X, axis=0, weights=X[:, 0] * X[:, 0])"),
    ("reductions", "nanmin / nanmean", "np.nanmin(X, axis=1) + np.nanmean(X, axis=1)"),
    ("reductions", "argmax(keepdims)", "np.argmax(X, axis=1, keepdims=True)"),
    ("reductions", "logical_and / or / xor / not",
     "np.logical_and(x > 1, y > 1) ^ np.logical_or(x, m) ^ np.logical_xor(m, y > 1) ^ np.logical_not(m)"),
    # --- creation
    ("creation", "zeros / ones / empty / full", "np.zeros(3) + np.ones(3) + np.full(3, 2.0)"),
    ("creation", "arange(start, stop, step)", "np.arange(1, 10, 2)"),
    ("creation", "linspace", "np.linspace(0.0, 1.0, 5)"),
    ("creation", "eye / identity", "np.eye(3) + np.identity(3)"),
    ("creation", "zeros(int argument)", "np.zeros(n)"),
    ("creation", "*_like", "np.zeros_like(x) + np.ones_like(x) + np.full_like(x, 2.0)"),
    ("creation", "array of scalars", "np.array([a, 2.0 * a, 3.0])"),
    ("creation", "diag", "np.diag(S) + np.diag(np.diag(S)).sum()"),
    ("creation", "tri / tril / triu", "np.tril(S) + np.triu(S, 1)"),
    # --- shape manipulation
    ("shapes", "concatenate / stack", "np.concatenate([x, y])"),
    ("shapes", "hstack / vstack", "np.vstack([x, y])"),
    ("shapes", "stack of scalars", "np.stack([a, x[0], y[1]])"),
    ("shapes", "expand_dims", "np.expand_dims(x, 0)"),
    ("shapes", "swapaxes / moveaxis", "np.swapaxes(T, 0, 2) + np.moveaxis(T, 0, -1).transpose(2, 0, 1).swapaxes(0, 2)"),
    ("shapes", "flip", "np.flip(X, axis=0)"),
    ("shapes", "x[::-1]", "x[::-1]"),
    ("shapes", "roll", "np.roll(x, 2)"),
    ("shapes", "broadcast_to", "np.broadcast_to(x, (3, 7))"),
    ("shapes", "tile", "np.tile(x, 2)"),
    ("shapes", "repeat", "np.repeat(x, 3)"),
    ("shapes", "diff", "np.diff(x)"),
    ("shapes", "atleast_2d", "np.atleast_2d(x)"),
    # --- linear algebra
    ("linear algebra", "dot / @ (1-D, 2-D)", "X @ x[:5] + np.dot(X, Y).sum()"),
    ("linear algebra", "matmul batched 3-D", "np.matmul(T, T.transpose(0, 2, 1))"),
    ("linear algebra", "@ of bool arrays", "(X > 0) @ (Y > 0)"),
    ("linear algebra", "outer", "np.outer(x, y)"),
    ("linear algebra", "ufunc.outer", "np.add.outer(x, y) + np.multiply.outer(x, y)"),
    ("linear algebra", "inner / vdot", "np.inner(x, y) + np.vdot(x, y)"),
    ("linear algebra", "einsum ij,jk->ik", "np.einsum('ij,jk->ik', X, Y)"),
    ("linear algebra", "einsum i,i->", "np.einsum('i,i->', x, y)"),
    ("linear algebra", "einsum bij,bjk->bik", "np.einsum('bij,bjk->bik', T, T.transpose(0, 2, 1))"),
    ("linear algebra", "dot N-D", "np.dot(T, T[0].T)"),
    ("linear algebra", "trace", "np.trace(S)"),
    ("linear algebra", "linalg.norm", "np.linalg.norm(x) + np.linalg.norm(X, axis=1).sum()"),
    ("linear algebra", "linalg.norm(ord)", "np.linalg.norm(x, 1) + np.linalg.norm(X, np.inf) + np.linalg.norm(X, 'fro')"),
    ("linear algebra", "linalg.solve", "np.linalg.solve(S, x[:5])"),
    ("linear algebra", "linalg.inv", "np.linalg.inv(S)"),
    ("linear algebra", "linalg.cholesky", "np.linalg.cholesky(S @ S.T)"),
    ("linear algebra", "kron", "np.kron(x[:2], y[:3])"),
    # --- sorting and searching
    ("sorting", "sort", "np.sort(x)"),
    ("sorting", "argsort", "np.argsort(x)"),
    ("sorting", "searchsorted", "np.searchsorted(np.sort(x), y)"),
    ("sorting", "bincount", "np.bincount(k, minlength=10)"),
    ("sorting", "histogram", "np.histogram(x, bins=4, range=(0.0, 2.0))[0]"),
    ("sorting", "unique", "np.unique(k)"),
    ("sorting", "where(cond)", "np.where(x > 1)[0]"),
    ("sorting", "nonzero / flatnonzero", "np.flatnonzero(x > 1)"),
    ("sorting", "argwhere", "np.argwhere(x > 1)"),
    ("sorting", "digitize", "np.digitize(x, np.array([0.5, 1.0, 1.5]))"),
    ("sorting", "partition", "np.partition(x, 3)[3]"),
    # --- indexing
    ("indexing", "x[ix] gather", "x[ix]"),
    ("indexing", "X[ix] rows", "X[ix]"),
    ("indexing", "X[:, ix]", "X[:, ix[:2] % 5]"),
    ("indexing", "x[mask]", "x[m]"),
    ("indexing", "blocks sized by an int argument", "x[0:n] + x[n:2 * n]"),
    ("indexing", "slices offset from a shape", "x[1:x.shape[0]] - x[:x.shape[0] - 1]"),
    ("indexing", "x[x > 1].mean()", "x[x > 1].mean()"),
    ("indexing", "take", "np.take(x, ix)"),
    ("indexing", "take_along_axis", "np.take_along_axis(X, np.argsort(X, axis=1), axis=1)"),
    ("indexing", "x[ix] += v (add.at)", "x[ix] += 1.0!"),
    ("indexing", "x[mask] = v", "x[m] = 0.0!"),
    ("indexing", "np.add.at", "np.add.at(x, ix, 1.0)!"),
    # --- ufuncs: math
    ("math", "exp log sqrt tanh sin cos", "np.exp(x) + np.log(x) + np.sqrt(x) + np.tanh(x) + np.sin(x) + np.cos(x)"),
    ("math", "tan arcsin arccos arctan", "np.tan(x) + np.arcsin(x / 2) + np.arccos(x / 2) + np.arctan(x)"),
    ("math", "arctan2 hypot", "np.arctan2(x, y) + np.hypot(x, y)"),
    ("math", "sinh cosh arcsinh arccosh arctanh", "np.sinh(x) + np.cosh(x) + np.arcsinh(x) + np.arccosh(x + 1) + np.arctanh(x / 3)"),
    ("math", "exp2 log2 log10 cbrt", "np.exp2(x) + np.log2(x) + np.log10(x) + np.cbrt(x)"),
    ("math", "square reciprocal sign", "np.square(x) + np.reciprocal(x) + np.sign(x - 1)"),
    ("math", "power (array exponent)", "np.power(x, y)"),
    ("math", "mod fmod remainder", "np.mod(x, 0.7) + np.fmod(x, 0.7) + np.remainder(x, 0.7)"),
    ("math", "floor ceil trunc rint", "np.floor(x) + np.ceil(x) + np.trunc(x) + np.rint(x)"),
    ("math", "isinf isnan isfinite", "np.isinf(x) | np.isnan(x) | np.isfinite(x)"),
    ("math", "nan_to_num", "np.nan_to_num(np.log(x - 1))"),
    ("math", "deg2rad rad2deg", "np.deg2rad(x) + np.rad2deg(x)"),
    ("math", "copysign", "np.copysign(x, x - 1)"),
    ("math", "fmax fmin", "np.fmax(x, y) + np.fmin(x, y)"),
    ("math", "logaddexp logaddexp2", "np.logaddexp(x, y) + np.logaddexp2(x, y)"),
    ("math", "math.lgamma / math.gamma", "math.lgamma(a) + math.gamma(a)"),
    ("math", "clip", "np.clip(x, 0.5, 1.5)"),
    ("math", "abs / absolute / fabs", "np.abs(x - 1) + np.absolute(x - 1) + np.fabs(x - 1)"),
    # --- integers and bits
    ("integers", "uint8 data", "u.astype(np.int64)"),
    ("integers", "<< >>", "(k << 2) + (k >> 1)"),
    ("integers", "& | ^ ~", "(k & 3) + (k | 4) + (k ^ 5) + ~k"),
    ("integers", "floor_divide / mod", "k // 3 + k % 3"),
    ("integers", "bitwise on uint8", "(u >> 2) ^ u"),
    ("integers", "gcd / lcm", "np.gcd(k, 6) + np.lcm(k, 4)"),
    # --- scalar types
    ("scalars", "np.float32(...) of a number", "np.float32(1.5) * x.astype(np.float32)"),
    ("scalars", "complex arithmetic", "np.abs(x + 1j * y)"),
    ("scalars", "complex division and integer powers", "((x + 1j * y) / (y - 0.5j)) ** 3"),
    ("scalars", "complex exp / log / sqrt", "np.exp(1j * x) + np.log(x + 1j * y) + np.sqrt(x - 2j * y)"),
    ("scalars", "np.conj / np.angle / astype(complex)", "np.angle(np.conj(x.astype(np.complex128) + 1j))"),
    ("scalars", "complex sum / mean / dot", "np.sum(x * 1j + y) + np.mean(x - 1j) + np.dot(x + 1j * y, y - 1j * x)"),
]


# Entries whose lattice meaning deliberately differs from NumPy's literal one, with the NumPy
# spelling of that meaning (what the NumPy side runs): ``x[ix] += v`` with an index array
# adds every repeat of an index, as np.add.at does (NumPy's own ``+=`` reads all positions
# before writing, so a repeated index adds once); docs/getting-started.md says so.
NUMPY_SPELLING = {
    "x[ix] += 1.0!": "np.add.at(x, ix, 1.0)!",
}


def _uses(expr: str) -> list[str]:
    """The parameters an entry reads, in PARAMS order (``x`` always: statement forms return it)."""
    names = {n.id for n in ast.walk(ast.parse(expr.rstrip("!"), mode="exec"))
             if isinstance(n, ast.Name)}
    return [p for p in PARAMS if p in names or p == "x"]


def _source(entries: list[tuple[int, str]], spelled: Sequence[tuple[int, str]] = ()) -> str:
    """A module with a function ``k<idx>`` per entry (and ``numpy_side<idx>`` per entry of
    ``spelled``: the NumPy side's spelling, same signature)."""
    # annotations stay strings until lattice reads them, so an entry whose dtype lattice lacks
    # is rejected alone instead of breaking the module's import
    lines = ["from __future__ import annotations", "import math", "import numpy as np",
             "import lattice as lt", ""]
    exprs = dict(entries)
    for prefix, group in (("k", entries), ("numpy_side", spelled)):
        for idx, expr in group:
            sig = ", ".join(f"{p}: {PARAMS[p][0]}" for p in _uses(exprs[idx]))
            lines.append(f"def {prefix}{idx}({sig}):")
            if expr.endswith("!"):
                lines += [f"    {expr[:-1]}", "    return x"]
            else:
                lines.append(f"    return {expr}")
            lines.append("")
    return "\n".join(lines)


def _load(source: str, directory: str) -> Any:
    path = os.path.join(directory, "numpy_coverage_probe.py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location("numpy_coverage_probe", path)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _agree(got: Any, want: Any) -> str:
    g, w = np.asarray(got), np.asarray(want)
    if g.shape != w.shape:
        return f"shape {g.shape}, NumPy {w.shape}"
    if g.dtype != w.dtype:
        return f"dtype {g.dtype}, NumPy {w.dtype}"
    if g.dtype.kind in "biu":
        return "" if np.array_equal(g, w) else "values differ"
    return "" if np.allclose(g, w, rtol=1e-12, atol=1e-13, equal_nan=True) else "values differ"


def probe() -> list[dict[str, str]]:
    """Run the checklist; one row per entry (section, feature, expression, status, detail)."""
    import lattice as lt
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spelled = [(k, NUMPY_SPELLING[e]) for k, (_, _, e) in enumerate(CHECKLIST)
                   if e in NUMPY_SPELLING]
        mod = _load(_source(list(enumerate(e for _, _, e in CHECKLIST)), spelled), tmp)
        for idx, (section, feature, expr) in enumerate(CHECKLIST):
            fn = getattr(mod, f"k{idx}")
            reference = getattr(mod, f"numpy_side{idx}", fn)
            row = {"section": section, "feature": feature, "expr": expr.rstrip("!")}
            names = _uses(expr)
            try:
                with np.errstate(all="ignore"):
                    want = reference(*_fresh(names))
            except Exception as exc:  # noqa: BLE001 - a checklist entry NumPy itself rejects
                row.update(status="numpy error", detail=f"{type(exc).__name__}: {exc}")
                rows.append(row)
                continue
            try:
                got = lt.kernel(fn)(*_fresh(names))
            except lt.CompileError as exc:
                row.update(status="rejected", detail=exc.bare_message.splitlines()[0])
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                row.update(status="crash", detail=f"{type(exc).__name__}: {exc}".splitlines()[0])
            else:
                bad = _agree(got, want)
                row.update(status="wrong" if bad else "ok", detail=bad)
            rows.append(row)
    return rows


def markdown(rows: list[dict[str, str]]) -> str:
    out = ["| section | feature | status | detail |", "| --- | --- | --- | --- |"]
    for r in rows:
        detail = r["detail"].replace("|", "/")
        if len(detail) > 140:
            detail = detail[:137] + "..."
        out.append(f"| {r['section']} | {r['feature']} (`{r['expr']}`) | {r['status']} | {detail} |")
    ok = sum(r["status"] == "ok" for r in rows)
    out.append("")
    out.append(f"{ok} of {len(rows)} entries compile and agree with NumPy.")
    return "\n".join(out)


def main(argv: Any = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--failing", action="store_true", help="list only entries that are not ok")
    opts = ap.parse_args(argv)
    rows = probe()
    if opts.failing:
        rows = [r for r in rows if r["status"] != "ok"]
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
