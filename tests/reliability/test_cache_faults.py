"""Disk-cache fault injection through ``@lt.kernel(cache=True)``, each run in a fresh process.

A truncated or corrupted entry is detected (checksum), reported with a RuntimeWarning and
recompiled, never a crash or a wrong answer; eight processes compiling the same kernel into an
empty cache all succeed; edits to the kernel, to a kernel it calls, to a global constant it
reads, and a version bump each make a new entry.
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent

CHILD = textwrap.dedent('''
    import json, os, sys, warnings
    sys.path.insert(0, os.environ["KDIR"])
    import numpy as np
    import lattice.codegen.cache as cache
    import lattice.codegen.compiled as compiled
    if os.environ.get("BUMP_VERSION"):
        cache.__version__ = cache.__version__ + ".bumped"
    calls = []
    real = compiled.compile_func
    def counting(*a, **kw):
        calls.append(1)
        return real(*a, **kw)
    compiled.compile_func = counting
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        import kmod
        x = np.linspace(0.0, 1.0, 11)
        result = float(kmod.model(x))
    print(json.dumps({"result": result, "compiles": len(calls),
                      "warnings": [str(m.message) for m in w]}))
''')

KMOD = '''
import lattice as lt
from helper import inner

SCALE = {scale}


# parallel=False: a kernel that may use the thread pool also stores the pool's runtime (an
# entry of its own, counted by the tests below as if it were the kernel's)
@lt.kernel(cache=True, parallel=False)
def model(x: lt.f64["n"]) -> lt.f64:
    return lt.sum(inner(x) * SCALE) + {extra}
'''

HELPER = '''
import lattice as lt


@lt.kernel
def inner(x: lt.f64["n"]):
    return x * {inner_factor}
'''


def _write(kdir: pathlib.Path, scale=2.0, extra=0.0, inner_factor=3.0) -> float:
    (kdir / "kmod.py").write_text(KMOD.format(scale=scale, extra=extra))
    (kdir / "helper.py").write_text(HELPER.format(inner_factor=inner_factor))
    for cached in (kdir / "__pycache__").glob("*") if (kdir / "__pycache__").exists() else ():
        cached.unlink()
    x = [i / 10 for i in range(11)]
    return sum(v * inner_factor * scale for v in x) + extra


def _child(kdir: pathlib.Path, cdir: pathlib.Path, **env: str) -> subprocess.Popen:
    e = dict(os.environ, PYTHONPATH=str(ROOT), KDIR=str(kdir), LATTICE_CACHE_DIR=str(cdir),
             PYTHONDONTWRITEBYTECODE="1", **env)
    return subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=e)


def run(kdir, cdir, **env) -> dict:
    p = _child(kdir, cdir, **env)
    out, err = p.communicate(timeout=180)
    assert p.returncode == 0, f"child failed (exit {p.returncode}):\n{err[-3000:]}"
    return json.loads(out.strip().splitlines()[-1])


def entries(cdir: pathlib.Path) -> list[pathlib.Path]:
    return sorted(cdir.glob("*.lattice-obj")) if cdir.exists() else []


@pytest.fixture
def dirs(tmp_path):
    kdir, cdir = tmp_path / "k", tmp_path / "cache"
    kdir.mkdir()
    return kdir, cdir


def test_second_process_loads_instead_of_compiling(dirs):
    kdir, cdir = dirs
    want = _write(kdir)
    first = run(kdir, cdir)
    assert first["compiles"] == 1 and abs(first["result"] - want) < 1e-12
    assert len(entries(cdir)) == 1
    second = run(kdir, cdir)
    assert second["compiles"] == 0 and second["result"] == first["result"]
    assert not second["warnings"]


def _truncate(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _flip(data: bytes) -> bytes:
    i = len(data) // 2  # in the object code
    return data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:]


def _flip_header(data: bytes) -> bytes:
    return data[:40] + bytes([data[40] ^ 0xFF]) + data[41:]  # inside the stored checksum


@pytest.mark.parametrize("damage", [_truncate, _flip, _flip_header, lambda d: b"",
                                    lambda d: d + b"\0" * 100],
                         ids=["truncated", "flipped-byte", "flipped-checksum", "empty",
                              "trailing-bytes"])
def test_damaged_entry_is_detected_and_recompiled(dirs, damage):
    kdir, cdir = dirs
    want = _write(kdir)
    run(kdir, cdir)
    (path,) = entries(cdir)
    path.write_bytes(damage(path.read_bytes()))
    again = run(kdir, cdir)
    assert again["compiles"] == 1, again
    assert abs(again["result"] - want) < 1e-12
    assert any("corrupted entry" in w for w in again["warnings"]), again["warnings"]
    # the rewritten entry is good again
    third = run(kdir, cdir)
    assert third["compiles"] == 0 and not third["warnings"]


def test_eight_processes_racing_into_an_empty_cache(dirs):
    kdir, cdir = dirs
    want = _write(kdir)
    procs = [_child(kdir, cdir) for _ in range(8)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert all(abs(o["result"] - want) < 1e-12 for o in outs)
    assert all(not o["warnings"] for o in outs), [o["warnings"] for o in outs]
    assert len(entries(cdir)) == 1
    assert [p.name for p in cdir.iterdir() if not p.name.endswith(".lattice-obj")] == []
    assert run(kdir, cdir)["compiles"] == 0


@pytest.mark.parametrize("edit", [dict(extra=1.0), dict(inner_factor=5.0), dict(scale=4.0),
                                  "version"],
                         ids=["kernel-source", "called-kernel", "global-constant",
                              "version-bump"])
def test_edits_invalidate_the_entry(dirs, edit):
    kdir, cdir = dirs
    _write(kdir)
    run(kdir, cdir)
    env = {}
    if edit == "version":
        want = _write(kdir)
        env["BUMP_VERSION"] = "1"
    else:
        want = _write(kdir, **edit)
    after = run(kdir, cdir, **env)
    assert after["compiles"] == 1, f"stale entry used after editing {edit}"
    assert abs(after["result"] - want) < 1e-12
    assert len(entries(cdir)) == 2
