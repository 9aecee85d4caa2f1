"""Big buffers (results and temporaries) are marked for transparent huge pages
(codegen/lower_core.py ``Lowerer.alloc``): a fresh result then faults in 2 MiB at a time instead
of 4 KiB, as NumPy's own big blocks do.  Checked by the values (vs NumPy, on both sides of the
threshold) and by the kernel's actual memory: the mapping of a big result holds huge pages."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import lattice as lt
from lattice.codegen.lower_core import HUGE_BLOCK


@lt.kernel(cache=False)
def add(a: lt.f64["n"], c: lt.f64["n"]):
    return a + c


@lt.kernel(cache=False)
def with_temporary(a: lt.f64["n"]) -> lt.f64:
    t = lt.exp(a) * 2.0  # a temporary as big as a (two reads of it below keep it whole)
    return lt.sum(t) + lt.max(t[::-1])


@pytest.mark.parametrize("n", [0, 1, HUGE_BLOCK // 8 - 1, HUGE_BLOCK // 8, HUGE_BLOCK // 8 + 3])
def test_results_either_side_of_the_huge_block_size_match_numpy(n):
    rng = np.random.default_rng(n)
    a, c = rng.standard_normal(n), rng.standard_normal(n)
    np.testing.assert_array_equal(add(a, c), a + c)
    if n:
        t = np.exp(a) * 2.0
        assert with_temporary(a) == pytest.approx(t.sum() + t.max(), rel=1e-12)


@lt.kernel(cache=False)
def small_constant(a: lt.f64["n"]):
    return lt.zeros(16) + lt.sum(a)


def test_the_advice_is_compiled_for_symbolic_sizes_only():
    assert "@madvise" in add.inspect_llvm(np.zeros(3), np.zeros(3))
    assert "@madvise" not in small_constant.inspect_llvm(np.zeros(3))
    np.testing.assert_array_equal(small_constant(np.arange(4.0)), np.full(16, 6.0))


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return ""
    return text[text.index("[") + 1:text.index("]")] if "[" in text else ""


def _huge_kib(addr: int) -> int:
    """AnonHugePages (kB) of the mapping of this process that holds ``addr``."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    return -1


@pytest.mark.skipif(not sys.platform.startswith("linux") or _thp_mode() not in ("madvise",),
                    reason="needs Linux with transparent huge pages in madvise mode")
def test_a_big_result_lives_in_huge_pages():
    n = 4_000_000  # 32 MB: the C allocator maps it afresh
    a, c = np.ones(n), np.full(n, 2.0)
    r = add(a, c)
    assert r[0] == 3.0 and r[-1] == 3.0
    # the advice splits the first page (the allocator's header) off the mapping: look inside
    assert _huge_kib(r.ctypes.data + r.nbytes // 2) > 0  # unadvised memory gets none
