"""docs/porting.md stays true: each side-by-side port is run, the lattice column against the
other column run as plain Python/NumPy (the numba decorator removed), on the same data."""
from __future__ import annotations

import importlib.util
import os
import re
import sys

import numpy as np
import pytest

DOC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs",
                   "porting.md")


def _tables() -> list[tuple[str, str]]:
    text = open(DOC).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) % 2 == 0
    return [(blocks[k], blocks[k + 1]) for k in range(0, len(blocks), 2)]


def _load(src: str, name: str, tmp_path) -> object:
    # lattice reads a kernel's source from its file, so each column is a module of its own
    path = tmp_path / f"{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def _plain(src: str) -> str:
    """The numba column as plain Python: no numba, the decorator gone."""
    src = src.replace("import numba\n", "")
    return re.sub(r"^@numba\.njit.*\n", "", src, flags=re.M)


def _small(src: str) -> str:
    return src.replace("(500, 750)", "(40, 60)")  # the pure-Python side is slow


def test_the_page_has_both_ports():
    assert len(_tables()) == 2


def test_the_numba_kernel_port_fills_the_same_image(tmp_path):
    other, mine = _tables()[0]
    ref = _load(_small(_plain(other)), "porting_fractal_py", tmp_path)
    got = _load(_small(mine), "porting_fractal_lt", tmp_path)
    assert got.image.dtype == np.uint8 and got.image.max() > 0
    np.testing.assert_array_equal(got.image, ref.image)
    img = np.zeros((17, 23), np.uint8)
    want = img.copy()
    got.fractal(-1.5, 0.5, -0.8, 0.9, img, 30)
    ref.fractal(-1.5, 0.5, -0.8, 0.9, want, 30)
    np.testing.assert_array_equal(img, want)


def test_the_numpy_function_port_and_its_gradient(tmp_path):
    other, mine = _tables()[1]
    ref = _load(other, "porting_nll_np", tmp_path)
    got = _load(mine, "porting_nll_lt", tmp_path)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 6))
    y = (rng.random(300) < 0.4).astype(float)
    w = rng.standard_normal(6)
    np.testing.assert_allclose(got.logistic_nll(w, X, y), ref.logistic_nll(w, X, y), rtol=1e-12)
    np.testing.assert_allclose(got.logistic_grad(w, X, y), ref.logistic_grad(w, X, y),
                               rtol=1e-10)


def test_the_written_image_is_checked_and_written_through_views(tmp_path):
    _, mine = _tables()[0]
    got = _load(_small(mine), "porting_fractal_checks", tmp_path)
    with pytest.raises(TypeError, match="image"):
        got.fractal(-2.0, 1.0, -1.0, 1.0, np.zeros((4, 5), np.int64), 5)
    frozen = np.zeros((4, 5), np.uint8)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="image"):
        got.fractal(-2.0, 1.0, -1.0, 1.0, frozen, 5)
    base = np.zeros((4, 10), np.uint8)
    got.fractal(-2.0, 1.0, -1.0, 1.0, base[:, ::2], 5)  # a strided view is written through
    want = np.zeros((4, 5), np.uint8)
    got.fractal(-2.0, 1.0, -1.0, 1.0, want, 5)
    np.testing.assert_array_equal(base[:, ::2], want)
    assert not base[:, 1::2].any()
