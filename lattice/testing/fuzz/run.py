"""Running one program every way (compiled with and without the passes, interpreted), comparing
each result with the oracle's value and error bound, and checking gradients of scalar losses
against central finite differences (:func:`run_program`, :func:`run_one`)."""
from __future__ import annotations

import builtins
import contextlib
import importlib.util
import math
import os
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from ..oracle import IllConditioned, run_oracle
from .generate import generate, make_args
from .program import Program


@dataclass
class Outcome:
    status: str          # ok | skip | mismatch | error
    detail: str = ""
    grad: str = ""       # "", checked, unsupported, skip


_MODULE_DIR: Optional[str] = None


def _module_dir() -> str:
    global _MODULE_DIR
    if _MODULE_DIR is None:
        _MODULE_DIR = tempfile.mkdtemp(prefix="lattice-fuzz-")
    return _MODULE_DIR


def load_program(prog: Program) -> Any:
    """Write the program's source to a module file and import it; the module."""
    path = os.path.join(_module_dir(), f"fuzz_{prog.seed}_{os.getpid()}_{time.monotonic_ns()}.py")
    with open(path, "w") as f:
        f.write(prog.source)
    spec = importlib.util.spec_from_file_location(f"_lattice_fuzz_{prog.seed}", path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@contextlib.contextmanager
def _passes_env(value: Optional[str]) -> Any:
    old = os.environ.get("LATTICE_PASSES")
    if value is None:
        os.environ.pop("LATTICE_PASSES", None)
    else:
        os.environ["LATTICE_PASSES"] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("LATTICE_PASSES", None)
        else:
            os.environ["LATTICE_PASSES"] = old


def _as_list(res: Any, n: int) -> list[Any]:
    return list(res) if isinstance(res, tuple) else [res]


def compare(got: Any, want: np.ndarray, err: np.ndarray, what: str) -> Optional[str]:
    g = np.asarray(got)
    w = np.asarray(want)
    if g.shape != w.shape:
        return f"{what}: shape {g.shape} != oracle {w.shape}"
    if g.dtype != w.dtype:
        return f"{what}: dtype {g.dtype} != oracle {w.dtype}"
    if w.dtype.kind in "biu":
        if not np.array_equal(g, w):
            bad = np.argwhere(g != w)[:3].tolist()
            return f"{what}: integer values differ at {bad}: {g.reshape(-1)[:6]} vs {w.reshape(-1)[:6]}"
        return None
    gf, wf = g.astype(np.float64), w.astype(np.float64)
    tiny = float(np.finfo(w.dtype).tiny) * 4
    tol = 2 * np.asarray(err, np.float64) + tiny
    diff = np.abs(gf - wf)
    bad = ~(diff <= tol) & ~(np.isnan(gf) & np.isnan(wf)) & ~(gf == wf)
    if np.any(bad):
        k = tuple(np.argwhere(bad)[0])
        return (f"{what}: value at {k} is {gf[k]!r}, oracle {wf[k]!r} (|diff| {diff[k]:.3g} > "
                f"tolerance {tol[k]:.3g})")
    return None


def fresh(a: Any) -> Any:
    """A copy of an argument with its layout (a strided view stays a view of a copied
    buffer): every evaluator of a program that stores into its arguments gets its own."""
    if not isinstance(a, np.ndarray):
        return a
    base = a.base
    if a.flags.c_contiguous or not isinstance(base, np.ndarray) or base.base is not None:
        return np.array(a)
    buf = base.copy()
    off = a.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    return np.ndarray(a.shape, a.dtype, buffer=buf, offset=off, strides=a.strides)


def _fd_ok(vals: Sequence[float]) -> bool:
    return all(map(math.isfinite, vals))


def _directional(f: Callable[[float], float], scale_f: float, eps: float
                 ) -> Optional[float]:
    """Central difference of ``f`` at 0 (step 1e-5), or None when finite differences cannot
    resolve the slope there (too noisy, not smooth within the step, or the program raises
    at a shifted point: its domain ends within the step, as a masked max whose mask empties,
    seed 1405856)."""
    h = 1e-5
    try:
        f0, fp, fm = f(0.0), f(h), f(-h)
        f2p, f2m = f(2 * h), f(-2 * h)
    except (ValueError, IndexError, ArithmeticError):
        return None
    d1, d2 = (f2p - f2m) / (4 * h), (fp - fm) / (2 * h)
    fwd, bwd = (fp - f0) / h, (f0 - fm) / h
    scale = builtins.max(1.0, abs(d1))
    noise = 4 * eps * builtins.max(abs(f0), abs(fp), abs(fm), scale_f) / h
    if not _fd_ok((d1, d2, fwd, bwd)) or noise > 1e-6 * scale:
        return None  # |f| too large for finite differences to resolve the slope
    if abs(d1 - d2) > 1e-5 * scale or abs(fwd - bwd) > 1e-4 * scale:
        return None  # not smooth here: a kink at the point or a branch within the step
    return d2


def _twin(prog: Program) -> Any:
    """The f64 twin of an f32 program (every f32 made f64): the same function of the inputs,
    differentiated by finite differences in f64."""
    import lattice as lt
    src = prog.source.replace("lt.f32", "lt.f64")
    mod = load_program(Program(prog.seed, src, prog.name, prog.param_names, prog.params,
                               prog.fastmath, prog.min_sizes, prog.n_outs,
                               prog.scalar_float_out))
    return getattr(mod, prog.name)


def _grad_check(prog: Program, kern: Any, args: list[Any], rng: np.random.Generator,
                mode: Optional[str] = None, oracle: Optional[tuple] = None) -> str:
    """Check one AD transform of a scalar-loss program against finite differences.

    f64 programs: ``lt.grad``, ``lt.jvp``, ``lt.vjp`` or ``lt.hessian`` (drawn), the
    directional derivative (or Hessian-vector product) along a random direction ``t`` vs a
    central difference, to 1e-4 relative.  f32 programs: ``lt.grad`` in f32 vs a central
    difference of the program's f64 twin, to 2e-3 of ``max(1, |slope|, sum |g t|)`` (f32
    gradients carry f32 rounding: a few hundred ulp of the terms of <g, t>)."""
    import lattice as lt
    if not hasattr(lt, "grad") or not prog.scalar_float_out:
        return ""
    fdt = prog.loss_dtype
    argnums = [k for k, v in enumerate(prog.params) if v.dtype == fdt]
    if not argnums:
        return ""
    k = int(rng.choice(argnums))
    if mode is None:
        mode = "grad" if fdt == "f32" else str(rng.choice(["grad", "grad", "jvp", "vjp",
                                                           "hessian"]))
    x = np.asarray(args[k], np.float64)
    if mode == "hessian" and x.size > 40:
        mode = "grad"
    t = rng.standard_normal(x.shape)
    ref = _twin(prog) if fdt == "f32" else kern
    ref_args = [np.asarray(a, np.float64) if v.dtype == "f32" else a
                for a, v in zip(args, prog.params)] if fdt == "f32" else list(args)

    def at(h: float, fn: Any = ref) -> Any:
        a2 = [fresh(a) for a in ref_args]  # (the kernel may store into its arguments)
        a2[k] = (x + h * t) if x.shape else np.float64(x + h * t)
        return fn(*a2)

    try:
        if mode == "grad":
            g = lt.grad(kern, argnums=k)(*[fresh(a) for a in args])
            got = float(np.sum(np.asarray(g, np.float64) * t))
            terms = float(np.sum(np.abs(np.asarray(g, np.float64) * t)))
        elif mode == "jvp":
            tans = [np.zeros_like(a, dtype=np.float64) if v.dtype == "f64" else None
                    for a, v in zip(args, prog.params)]
            tans[k] = t if x.shape else np.float64(t)
            val, tan = lt.jvp(kern, [fresh(a) for a in args], tans)
            if getattr(kern, "written", ()):  # (outputs, the written arguments' contents)
                val, tan = val[0], tan[0]
            # the primal of the jvp kernel (compiled differently): within the oracle's bound
            msg = compare(val, *oracle, "jvp primal") if oracle is not None else None
            if msg:
                raise AssertionError(msg)
            got, terms = float(tan), abs(float(tan))
        elif mode == "vjp":
            val, pull = lt.vjp(kern, *[fresh(a) for a in args])
            if getattr(kern, "written", ()):  # a zero cotangent for each written float array
                cts = pull(np.float64(1.0), *[np.zeros_like(o) for o in val[1:]
                                              if np.asarray(o).dtype.kind == "f"])
            else:
                cts = pull(np.float64(1.0))
            got = float(np.sum(np.asarray(cts[k], np.float64) * t))
            terms = float(np.sum(np.abs(np.asarray(cts[k], np.float64) * t)))
        else:
            hess = np.asarray(lt.hessian(kern, argnums=k)(*[fresh(a) for a in args]),
                              np.float64)
            hv = hess.reshape(x.size, x.size) @ t.reshape(-1)
            # f32 values inside an f64 program round each side's second-order terms at f32
            # precision (seed 703392: 5e-8 relative, symmetric to 1e-14 in its f64 twin)
            sym = 1e-5 if "f32" in prog.source else 1e-8
            if x.size and not np.allclose(hess.reshape(x.size, x.size),
                                          hess.reshape(x.size, x.size).T, rtol=sym,
                                          atol=sym * builtins.max(1.0, np.max(np.abs(hess)))):
                hm = hess.reshape(x.size, x.size)
                raise AssertionError(f"hessian is not symmetric: max |H - H^T| "
                                     f"{np.max(np.abs(hm - hm.T)):.3g}, max |H| "
                                     f"{np.max(np.abs(hm)):.3g}, at x = {np.ravel(x)[:8]}")
            # <Hv, s> for a second random direction s vs d/dh <grad(x + h t), s>
            s_dir = rng.standard_normal(x.shape)
            got = float(hv @ s_dir.reshape(-1))
            terms = float(np.abs(hess.reshape(x.size, x.size) * np.outer(s_dir.reshape(-1), t.reshape(-1))).sum())
            gk = lt.grad(kern, argnums=k)
            fd = _directional(lambda h: float(np.sum(np.asarray(at(h, gk), np.float64) * s_dir)),
                              0.0, 1.2e-7 if "f32" in prog.source else 2.2e-16)
            if fd is None:
                return "skip"
            scale = builtins.max(1.0, abs(fd))
            if not abs(got - fd) <= 1e-4 * scale + 1e-6:
                raise AssertionError(f"hessian of argument {prog.param_names[k]}: <H t, s> = "
                                     f"{got!r}, finite differences of grad {fd!r}")
            return "checked hessian"
    except (lt.CompileError, TypeError, NotImplementedError) as exc:
        from ...ir.types import ShapeError
        # an IR type error from a transform of a program that type-checked is a compiler bug,
        # and so is a Python TypeError raised inside the compiler (a crash, not a refusal:
        # ``zip(None, ...)`` in a transpose rule)
        crashed = type(exc) is TypeError and any(
            "/lattice/ir/" in fr.filename.replace("\\", "/") or
            "/lattice/codegen/" in fr.filename.replace("\\", "/")
            for fr in traceback.extract_tb(exc.__traceback__)[-1:])
        if "internal" in str(exc) or isinstance(exc, ShapeError) or crashed:
            raise AssertionError(f"lt.{mode} failed: {type(exc).__name__}: {exc}") from exc
        return "unsupported: " + str(exc).splitlines()[0][:100]
    eps = 1.2e-7 if fdt == "f64" and "f32" in prog.source else 2.2e-16
    fd = _directional(lambda h: float(at(h)), 0.0, eps)
    if fd is None:
        return "skip"
    if fdt == "f32":
        scale = builtins.max(1.0, abs(fd), terms)
        ok = abs(got - fd) <= 2e-3 * scale
    else:
        scale = builtins.max(1.0, abs(fd))
        ok = abs(got - fd) <= 1e-4 * scale + 1e-6
    if not ok:
        raise AssertionError(f"lt.{mode} ({fdt}) of argument {prog.param_names[k]}: <d, t> = "
                             f"{got!r}, finite differences {fd!r}")
    return f"checked {mode}" + (" f32" if fdt == "f32" else "")


def run_program(prog: Program, *, n_inputs: int = 2, check_grad: bool = True) -> Outcome:
    """Compile and run one program on ``n_inputs`` random inputs against the oracle."""
    import lattice as lt
    mod = load_program(prog)
    k_opt = getattr(mod, prog.name)
    fn = k_opt.fn
    k_nopass = lt.Kernel(fn, fastmath=prog.fastmath, parallel=prog.parallel)
    with _passes_env("none"):
        _ = k_nopass.optimized_ir
    rng = np.random.default_rng(prog.seed)
    ran = 0
    grad = ""
    for trial in range(n_inputs):
        args = make_args(prog, rng)
        final: list = []
        try:
            want, err = run_oracle(fn, [np.array(a) if isinstance(a, np.ndarray) else a
                                        for a in args], prog.fastmath, final)
        except IllConditioned as exc:
            continue
        except (ValueError, IndexError) as exc:
            # the program raises for this input: every evaluator must raise the same class
            for what, f in (("compiled", k_opt), ("interpreter", k_opt.interpret),
                            ("no passes", k_nopass)):
                try:
                    f(*[fresh(a) for a in args])
                except type(exc):
                    continue
                except Exception as exc2:  # noqa: BLE001
                    return Outcome("mismatch", f"{what}: raised {type(exc2).__name__}: {exc2}; "
                                   f"oracle raised {type(exc).__name__}: {exc}")
                return Outcome("mismatch", f"{what}: returned; oracle raised "
                               f"{type(exc).__name__}: {exc}")
            ran += 1
            continue
        if not all(np.all(np.isfinite(w)) for w in want if w.dtype.kind == "f") or not all(
                np.all(np.isfinite(e)) for e in err):
            continue
        results = {}
        for what, f in (("compiled", k_opt), ("no passes", k_nopass),
                        ("interpreter", k_opt.interpret)):
            mine = [fresh(a) for a in args]
            res = _as_list(f(*mine), prog.n_outs)
            if len(res) != len(want):
                return Outcome("mismatch", f"{what}: {len(res)} results, oracle {len(want)}")
            for j, (g, w, e) in enumerate(zip(res, want, err)):
                msg = compare(g, w, e, f"{what} result {j}")
                if msg:
                    return Outcome("mismatch", msg)
            # every array argument after the call: the stores into it, or its old contents
            for name, g, fin in zip(prog.param_names, mine, final):
                msg = fin and compare(g, fin[0], fin[1], f"{what} argument {name} after the call")
                if msg:
                    return Outcome("mismatch", msg)
            results[what] = res
        ran += 1
        if check_grad and not grad:
            try:
                grad = _grad_check(prog, k_opt, args, rng, oracle=(want[0], err[0]))
            except AssertionError as exc:
                return Outcome("grad_fail", str(exc), "failed")
    return Outcome("ok" if ran else "skip", grad=grad)


def describe(prog: Program) -> str:
    return (f"# lattice.testing.fuzz program seed {prog.seed} (replay: python -m lattice.testing.fuzz --replay "
            f"{prog.seed})\n# family {prog.family}, fastmath={prog.fastmath}, min sizes {prog.min_sizes}\n"
            + prog.source)


def run_one(seed: int, *, verbose: bool = False) -> dict[str, Any]:
    """Generate, run and classify the program of ``seed``; a JSON-able record."""
    prog = generate(seed)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = run_program(prog)
        rec = {"seed": seed, "status": out.status, "detail": out.detail, "grad": out.grad}
    except Exception as exc:  # noqa: BLE001 - every exception is a finding
        rec = {"seed": seed, "status": "error",
               "detail": f"{type(exc).__name__}: {exc}",
               "trace": traceback.format_exc(limit=12)}
    rec["time"] = round(time.perf_counter() - t0, 4)
    if verbose or rec["status"] in ("mismatch", "grad_fail", "error"):
        rec["source"] = describe(prog)
    return rec
