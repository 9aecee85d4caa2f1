"""Hostile inputs: each is a clear exception or a correct result, never a crash.

The cases live in hostile_cases.py and run in a child process (a segfault or abort there is
attributed to the case that was running and fails it, instead of killing the test run).
"""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from hostile_cases import CASES  # noqa: E402


def run_child(script: pathlib.Path, *args: str, env: dict | None = None,
              timeout: float = 240) -> tuple[dict[str, dict], str, int]:
    """Run a case script; (outcome per case, the case running when it died or "", exit code)."""
    e = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    e.update(env or {})
    p = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                       env=e, timeout=timeout)
    results: dict[str, dict] = {}
    running = ""
    for line in p.stdout.splitlines():
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        if "start" in rec:
            running = rec["start"]
        else:
            results[rec["case"]] = rec
            running = ""
    if running:
        results[running] = {"case": running, "ok": False,
                            "got": f"CRASH: exit code {p.returncode}; stderr: {p.stderr[-2000:]}"}
    return results, running, p.returncode


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict]:
    results, crashed, rc = run_child(HERE / "hostile_cases.py")
    # after a crash, the cases that did not run yet run in a fresh child each
    while crashed:
        rest = [c[0] for c in CASES if c[0] not in results]
        if not rest:
            break
        more, crashed, rc = run_child(HERE / "hostile_cases.py", *rest)
        results.update(more)
    return results


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_hostile_input(outcomes, name):
    rec = outcomes.get(name)
    assert rec is not None, f"case {name!r} did not run"
    assert rec["ok"], f"{name}: got {rec['got']}"


BOUNDS_CHILD = '''
import numpy as np, lattice as lt
@lt.kernel
def get(x: lt.f64["n"], i: lt.i64) -> lt.f64:
    return x[i] * 2.0
x = np.arange(5.0)
assert get(x, -5) == 0.0 and get(x, 4) == 8.0
for bad in (5, -6, 2**62, -2**63):
    try:
        get(x, bad)
    except IndexError as exc:
        print("IndexError:", exc)
    else:
        print("no error for", bad)
'''


def test_boundscheck_from_the_environment(tmp_path):
    """LATTICE_BOUNDSCHECK=1 makes every kernel check its indices (IndexError naming file:line)."""
    script = tmp_path / "bounds_child.py"
    script.write_text(BOUNDS_CHILD)
    env = dict(os.environ, PYTHONPATH=str(ROOT), LATTICE_BOUNDSCHECK="1")
    p = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) == 4
    for line in lines:
        assert line.startswith("IndexError:") and "bounds_child.py:5" in line, line
