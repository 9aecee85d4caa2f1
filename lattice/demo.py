"""``python -m lattice demo``: compile the showcase kernels, print their IR, time them vs NumPy."""
from __future__ import annotations

import time

import numpy as np

import lattice as lt
from lattice.testing.timing import median_time


@lt.kernel
def dot(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
    return lt.sum(a * b)


@lt.kernel
def best_match(E: lt.f32["n", "d"], q: lt.f32["d"]) -> lt.i64:
    return lt.argmax(E @ q)


@lt.kernel
def dot_loop(a: lt.f64["n"], b: lt.f64["n"]) -> lt.f64:
    s = 0.0
    for i in range(a.shape[0]):
        s += a[i] * b[i]
    return s


@lt.kernel
def row_norms(X: lt.f64["n", "d"]) -> lt.f64["n"]:
    out = lt.zeros(X.shape[0])
    for i in range(X.shape[0]):
        out[i] = lt.sqrt(lt.sum(X[i] * X[i]))
    return out


@lt.kernel
def logistic_loss_loop(w: lt.f64["d"], X: lt.f64["n", "d"], y: lt.f64["n"]) -> lt.f64:
    total = 0.0
    for i in range(X.shape[0]):
        z = lt.dot(X[i], w)
        total += lt.softplus(z) - y[i] * z
    return total / X.shape[0]


grad_logistic = lt.grad(logistic_loss_loop)  # a compiled kernel: d loss / d w


def _fmt(t: float) -> str:
    return f"{t * 1e6:9.2f} us" if t < 1e-3 else f"{t * 1e3:9.3f} ms"


def main() -> None:
    rng = np.random.default_rng(0)
    a32 = rng.standard_normal(1_000_000).astype(np.float32)
    b32 = rng.standard_normal(1_000_000).astype(np.float32)
    a64, b64 = a32.astype(np.float64), b32.astype(np.float64)
    E = rng.standard_normal((10_000, 128)).astype(np.float32)
    q = rng.standard_normal(128).astype(np.float32)
    X = rng.standard_normal((100_000, 32))
    w = rng.standard_normal(32) * 0.1
    y = (rng.random(100_000) > 0.5).astype(np.float64)

    def np_grad() -> np.ndarray:
        return X.T @ (1 / (1 + np.exp(-(X @ w))) - y) / len(y)

    cases = [
        ("dot", dot, (a32, b32), lambda: np.dot(a32, b32), "np.dot(a, b)"),
        ("best_match", best_match, (E, q), lambda: np.argmax(E @ q), "np.argmax(E @ q)"),
        ("dot_loop", dot_loop, (a64, b64), lambda: np.dot(a64, b64), "np.dot(a, b)"),
        ("row_norms", row_norms, (X,), lambda: np.sqrt(np.einsum("ij,ij->i", X, X)),
         "np.sqrt(einsum('ij,ij->i'))"),
        ("grad(logistic_loss_loop)", grad_logistic, (w, X, y), np_grad,
         "X.T @ (sigmoid(X @ w) - y) / n"),
    ]
    print(f"lattice {lt.__version__}: compiling the showcase kernels\n")
    for name, k, args, ref, ref_name in cases:
        print("=" * 78)
        print(k.inspect_ir(*args).split("# after passes\n")[1].rstrip())
        t0 = time.perf_counter()
        got = k(*args)
        compile_s = time.perf_counter() - t0
        want = ref()
        ok = np.allclose(got, want, rtol=1e-4, atol=1e-3)
        t_lt = median_time(lambda: k(*args), repeat=15, max_batch=1 << 20)
        t_np = median_time(ref, repeat=15, max_batch=1 << 20)
        print(f"\n  input sizes     {', '.join('x'.join(map(str, np.shape(x))) for x in args)}")
        print(f"  first call      {compile_s * 1e3:9.1f} ms (trace + optimise + compile)")
        print(f"  lattice         {_fmt(t_lt)}   result agrees with NumPy: {ok}")
        print(f"  NumPy           {_fmt(t_np)}   ({ref_name})")
        print(f"  ratio           {t_lt / t_np:9.2f} x NumPy's time")
    asm = dot.inspect_asm(a32, b32)
    vec = [l.strip() for l in asm.splitlines() if "vfmadd" in l or "vmulps" in l or "vaddps" in l]
    print("=" * 78)
    print("vectorised inner loop of dot (first lines of its assembly):")
    for line in vec[:6]:
        print("   ", line)
    _demo_glm()


def _demo_glm() -> None:
    """A Poisson GLM on the shipped diabetes data: IRLS in compiled kernels, then its summary."""
    try:
        from lattice.datasets import load_diabetes
        from lattice.models import GLM, families
    except ImportError as exc:  # the models extra (scikit-learn, SciPy) is not installed
        print("=" * 78)
        print(f"lattice.models demo skipped: {exc}")
        return
    X, y, names = load_diabetes(return_names=True)
    print("=" * 78)
    t0 = time.perf_counter()
    model = GLM(family=families.Poisson()).fit(X, y)
    print(f"GLM(Poisson) on diabetes ({X.shape[0]} x {X.shape[1]}): fitted by IRLS in "
          f"{model.n_iter_} iterations, {(time.perf_counter() - t0) * 1e3:.0f} ms "
          "(including compilation)\n")
    print(model.summary(xname=["const", *names]))


if __name__ == "__main__":
    main()
