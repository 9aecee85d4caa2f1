"""lattice.models needs the `models` extra (scikit-learn, SciPy): each test module that uses it
skips without it; the peers need statsmodels (in the `test` extra)."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def _one_blas_thread():
    """The peers' BLAS calls on small matrices are slower with several threads on a shared
    2-core machine (oversubscription made scikit-learn's digits fit 40x slower); the lattice
    kernels use their own threads and are unaffected."""
    try:
        import threadpoolctl
    except ImportError:
        yield
        return
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield
