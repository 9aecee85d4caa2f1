"""Disk cache across processes, and the inspection API."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np

import lattice as lt

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@lt.kernel
def dot(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
    return lt.sum(a * b)


def test_inspect_returns_text_for_the_signature():
    a = np.ones(16, np.float32)
    ir = dot.inspect_ir(a, a)
    assert "# traced" in ir and "reduce_sum" in ir
    after = ir.split("# after passes")[1]
    assert "fused" in after and "mul" in after and "reduce_sum" not in after
    llvm = dot.inspect_llvm(a, a)
    assert "define" in llvm and "lt_dot" in llvm
    assert "lt_dot" in dot.inspect_llvm(a, a, optimized=False)


def test_asm_of_dot_is_vectorised():
    a = np.ones(16, np.float32)
    asm = dot.inspect_asm(a, a)
    # packed single-precision multiply-adds on 256- or 512-bit registers
    packed = [l for l in asm.splitlines()
              if re.search(r"\bv(fmadd\w*ps|mulps|addps)\b", l) and re.search(r"%[yz]mm", l)]
    assert packed, "no packed float instructions on ymm/zmm registers in dot's asm"


_CHILD = textwrap.dedent("""
    import json, sys, numpy as np, lattice as lt
    import lattice.codegen.compiled as compiled
    calls = []
    real = compiled.compile_func
    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)
    compiled.compile_func = counting

    @lt.kernel(cache=True)
    def dot(a: lt.f32["n"], b: lt.f32["n"]) -> lt.f32:
        return lt.sum(a * b) * SCALE

    a = np.arange(10, dtype=np.float32)
    print(json.dumps({"value": float(dot(a, a)), "compiled": len(calls)}))
""")


def _run(tmp_path, scale: str) -> dict:
    script = tmp_path / "kernel_mod.py"
    script.write_text(_CHILD.replace("SCALE", scale))
    env = dict(os.environ, LATTICE_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_second_process_loads_from_disk_cache(tmp_path):
    first = _run(tmp_path, "2.0")
    second = _run(tmp_path, "2.0")
    want = float(np.dot(np.arange(10.0), np.arange(10.0)) * 2)
    assert first == {"value": want, "compiled": 1}
    assert second == {"value": want, "compiled": 0}
    # an edit to the kernel (here a constant in its source) misses the cache
    third = _run(tmp_path, "3.0")
    assert third == {"value": want / 2 * 3, "compiled": 1}
