"""Tests of the JIT engine layer against NumPy as the oracle, on hand-written LLVM IR."""

from __future__ import annotations

import ctypes
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import threading

import llvmlite.binding as llvm
import numpy as np
import pytest

from lattice.codegen import jit

SUM_IR = """
define double @sum(ptr noalias nocapture readonly %a, i64 %n) {
entry:
  %nonempty = icmp sgt i64 %n, 0
  br i1 %nonempty, label %loop, label %exit
loop:
  %i = phi i64 [0, %entry], [%i.next, %loop]
  %acc = phi double [0.0, %entry], [%acc.next, %loop]
  %p = getelementptr double, ptr %a, i64 %i
  %x = load double, ptr %p, align 8
  %acc.next = fadd fast double %acc, %x
  %i.next = add i64 %i, 1
  %done = icmp eq i64 %i.next, %n
  br i1 %done, label %exit, label %loop
exit:
  %r = phi double [0.0, %entry], [%acc.next, %loop]
  ret double %r
}
"""

# sum(log1p(a)) through a malloc'ed scratch buffer, and exp of 8 lanes through the vector
# intrinsic: exercises libc and libm symbols and an intrinsic that lowers to libm calls.
RUNTIME_IR = """
declare ptr @malloc(i64)
declare void @free(ptr)
declare double @log1p(double)
declare <8 x double> @llvm.exp.v8f64(<8 x double>)

define double @sum_log1p(ptr noalias %a, i64 %n) {
entry:
  %bytes = shl i64 %n, 3
  %buf = call ptr @malloc(i64 %bytes)
  %nonempty = icmp sgt i64 %n, 0
  br i1 %nonempty, label %fill, label %exit
fill:
  %i = phi i64 [0, %entry], [%i.next, %fill]
  %src = getelementptr double, ptr %a, i64 %i
  %x = load double, ptr %src, align 8
  %y = call double @log1p(double %x)
  %dst = getelementptr double, ptr %buf, i64 %i
  store double %y, ptr %dst, align 8
  %i.next = add i64 %i, 1
  %filled = icmp eq i64 %i.next, %n
  br i1 %filled, label %reduce, label %fill
reduce:
  %j = phi i64 [0, %fill], [%j.next, %reduce]
  %acc = phi double [0.0, %fill], [%acc.next, %reduce]
  %q = getelementptr double, ptr %buf, i64 %j
  %v = load double, ptr %q, align 8
  %acc.next = fadd double %acc, %v
  %j.next = add i64 %j, 1
  %reduced = icmp eq i64 %j.next, %n
  br i1 %reduced, label %exit, label %reduce
exit:
  %r = phi double [0.0, %entry], [%acc.next, %reduce]
  call void @free(ptr %buf)
  ret double %r
}

define void @exp8(ptr noalias %in, ptr noalias %out) {
  %v = load <8 x double>, ptr %in, align 8
  %e = call <8 x double> @llvm.exp.v8f64(<8 x double> %v)
  store <8 x double> %e, ptr %out, align 8
  ret void
}
"""

SUM_T = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_int64)
EXP8_T = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)


def _ptr(a: np.ndarray) -> int:
    return a.ctypes.data


def _call_sum(mod: jit.JITModule, name: str, a: np.ndarray) -> float:
    return SUM_T(mod.address(name))(_ptr(a), a.size)


@pytest.fixture(scope="module")
def sum_module() -> jit.JITModule:
    return jit.compile_ir(SUM_IR)


@pytest.fixture(scope="module")
def runtime_module() -> jit.JITModule:
    return jit.compile_ir(RUNTIME_IR)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 31, 64, 1000, 4097])
def test_sum_matches_numpy(sum_module: jit.JITModule, n: int) -> None:
    a = np.random.default_rng(n).standard_normal(n)
    # fast-math reassociates the sum, so agreement is up to rounding, not bitwise.
    assert _call_sum(sum_module, "sum", a) == pytest.approx(a.sum(), rel=1e-12, abs=1e-12)


def test_sum_on_unaligned_view(sum_module: jit.JITModule) -> None:
    base = np.arange(1, 1030, dtype=np.float64)
    view = base[3:1028]  # starts 24 bytes into the buffer: not 64-byte aligned
    assert _call_sum(sum_module, "sum", view) == pytest.approx(view.sum(), rel=1e-14)


def test_fast_reduction_vectorizes_to_wide_registers(sum_module: jit.JITModule) -> None:
    if "+avx" not in jit.host_cpu_id():
        pytest.skip("host has no AVX: no ymm/zmm registers to look for")
    vector_adds = re.findall(r"vaddpd\s[^\n]*%([yz]mm)\d+", sum_module.asm)
    assert vector_adds, sum_module.asm
    # The optimized IR already carries the vectorized loop.
    assert re.search(r"fadd fast <\d+ x double>", sum_module.llvm_ir)


def test_zmm_used_when_avx512_available(sum_module: jit.JITModule) -> None:
    # The engine keeps LLVM's per-CPU vector width choice; on Zen 4 that is 512 bits, which
    # measured fastest for reductions (see jit._new_target_machine).
    if not jit.host_cpu_id().startswith("znver4:"):
        pytest.skip("the width choice is asserted only for the CPU it was measured on")
    assert re.search(r"vaddpd\s[^\n]*%zmm", sum_module.asm)


def test_libc_and_libm_calls(runtime_module: jit.JITModule) -> None:
    # The calls must survive optimization, or this test would prove nothing about resolution.
    for callee in ("malloc", "free", "log1p"):
        assert re.search(rf"call [^\n]*@{callee}\(", runtime_module.llvm_ir), callee
    a = np.random.default_rng(0).uniform(0.0, 5.0, 777)
    got = _call_sum(runtime_module, "sum_log1p", a)
    assert got == pytest.approx(np.log1p(a).sum(), rel=1e-13)


def test_vector_exp_intrinsic(runtime_module: jit.JITModule) -> None:
    x = np.linspace(-20.0, 20.0, 8)
    out = np.empty(8)
    EXP8_T(runtime_module.address("exp8"))(_ptr(x), _ptr(out))
    np.testing.assert_allclose(out, np.exp(x), rtol=1e-15)


def test_load_object_round_trip_without_codegen(
    runtime_module: jit.JITModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_codegen(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_object must not optimize or generate code")

    monkeypatch.setattr(jit, "optimize_module", no_codegen)
    monkeypatch.setattr(llvm.TargetMachine, "emit_object", no_codegen)
    monkeypatch.setattr(llvm.TargetMachine, "emit_assembly", no_codegen)
    reloaded = jit.load_object(runtime_module.object_code)
    assert reloaded.object_code == runtime_module.object_code
    assert reloaded.llvm_ir == "" and reloaded.asm == ""
    a = np.random.default_rng(1).uniform(0.0, 3.0, 100)
    assert _call_sum(reloaded, "sum_log1p", a) == _call_sum(runtime_module, "sum_log1p", a)
    x = np.linspace(-3.0, 3.0, 8)
    out = np.empty(8)
    EXP8_T(reloaded.address("exp8"))(_ptr(x), _ptr(out))
    np.testing.assert_allclose(out, np.exp(x), rtol=1e-15)


def test_load_object_keeps_supplied_texts(sum_module: jit.JITModule) -> None:
    given = jit.load_object(sum_module.object_code, llvm_ir="ir text", asm="asm text")
    assert (given.llvm_ir, given.asm) == ("ir text", "asm text")
    derived = jit.load_object(sum_module.object_code, llvm_ir=sum_module.llvm_ir)
    assert derived.asm == sum_module.asm


def test_load_object_in_fresh_process(
    runtime_module: jit.JITModule, tmp_path: pathlib.Path
) -> None:
    # A process that never compiled anything, as when the disk cache is warm: the object's
    # references to malloc/free/log1p/exp must still resolve.
    obj_path = tmp_path / "mod.o"
    obj_path.write_bytes(runtime_module.object_code)
    script = textwrap.dedent(
        f"""
        import ctypes, pathlib
        import numpy as np
        from lattice.codegen import jit
        mod = jit.load_object(pathlib.Path({str(obj_path)!r}).read_bytes())
        a = np.linspace(0.5, 4.0, 333)
        sum_t = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_int64)
        got = sum_t(mod.address("sum_log1p"))(a.ctypes.data, a.size)
        assert abs(got - np.log1p(a).sum()) <= 1e-12 * abs(got), got
        x = np.linspace(-1.0, 1.0, 8)
        out = np.empty(8)
        exp8_t = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p)
        exp8_t(mod.address("exp8"))(x.ctypes.data, out.ctypes.data)
        assert np.allclose(out, np.exp(x), rtol=1e-15, atol=0)
        print("ok")
        """
    )
    # Import lattice from the same place this process did, whatever the working directory.
    package_root = str(pathlib.Path(jit.__file__).resolve().parents[2])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_symbols_and_unknown_address(sum_module: jit.JITModule) -> None:
    assert "sum" in sum_module.symbols
    with pytest.raises(KeyError, match="nope"):
        sum_module.address("nope")


def test_parse_error_is_reported() -> None:
    with pytest.raises(RuntimeError, match="parse error") as info:
        jit.compile_ir("define i32 @f() {\n  ret i64 1\n}\n")
    assert "function result type" in str(info.value)


def test_verifier_error_is_reported() -> None:
    bad = "define i32 @f() {\n  %a = add i32 %b, 1\n  %b = add i32 %a, 1\n  ret i32 %a\n}\n"
    with pytest.raises(RuntimeError, match="verifier") as info:
        jit.compile_ir(bad)
    assert "does not dominate" in str(info.value)


def test_unresolvable_symbol_raises_instead_of_aborting() -> None:
    ir = (
        "declare double @lattice_test_symbol_that_does_not_exist(double)\n"
        "define double @f(double %x) {\n"
        "  %y = call double @lattice_test_symbol_that_does_not_exist(double %x)\n"
        "  ret double %y\n}\n"
    )
    with pytest.raises(RuntimeError, match="lattice_test_symbol_that_does_not_exist"):
        jit.compile_ir(ir)


@pytest.mark.parametrize("data", [b"", b"not an object file", b"\x7fELF\x02\x01" + b"\0" * 10])
def test_load_object_rejects_garbage(data: bytes) -> None:
    with pytest.raises(RuntimeError):
        jit.load_object(data)


def test_load_object_rejects_truncated_object(sum_module: jit.JITModule) -> None:
    with pytest.raises(RuntimeError):
        jit.load_object(sum_module.object_code[: len(sum_module.object_code) // 2])


def test_compile_without_optimization_still_runs() -> None:
    mod = jit.compile_ir(SUM_IR, optimize=False)
    assert "<8 x double>" not in mod.llvm_ir and "<4 x double>" not in mod.llvm_ir
    a = np.arange(10.0)
    assert _call_sum(mod, "sum", a) == 45.0


def test_optimize_module_vectorizes() -> None:
    with jit.LLVM_LOCK:
        mod = llvm.parse_assembly(SUM_IR)
        tm = jit.host_target_machine()
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        jit.optimize_module(mod)
        text = str(mod)
    assert re.search(r"<\d+ x double>", text)
    with pytest.raises(ValueError):
        jit.optimize_module(mod, speed_level=4)


def test_host_target_machine_is_cached_and_host_specific() -> None:
    assert jit.host_target_machine() is jit.host_target_machine()
    cpu_id = jit.host_cpu_id()
    assert cpu_id.split(":", 1)[0] == llvm.get_host_cpu_name()
    assert jit.host_target_machine().triple == llvm.get_process_triple()


def test_concurrent_compiles_from_threads() -> None:
    errors: list[BaseException] = []
    results: dict[int, int] = {}

    def work(k: int) -> None:
        try:
            ir = f"define i64 @f(i64 %x) {{\n  %y = mul i64 %x, {k}\n  ret i64 %y\n}}\n"
            mod = jit.compile_ir(ir)
            fn = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(mod.address("f"))
            results[k] = fn(7)
            del mod  # engines disposed from several threads must not race either
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results == {k: 7 * k for k in range(1, 9)}
