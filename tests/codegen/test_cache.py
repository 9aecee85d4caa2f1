"""Tests of the on-disk object cache: round trips, corruption, disk errors, concurrent writers."""

from __future__ import annotations

import ctypes
import errno
import multiprocessing
import os
import pathlib
import warnings
from typing import Any

import numpy as np
import pytest

from lattice._version import __version__
from lattice.codegen import cache, jit


@pytest.fixture(autouse=True)
def cache_in_tmp(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    directory = tmp_path / "lattice-cache"
    monkeypatch.setenv("LATTICE_CACHE_DIR", str(directory))
    return directory


def _payload(tag: str = "x") -> dict[str, Any]:
    return {
        "object": bytes(range(256)) * 3 + tag.encode(),
        "llvm_ir": f"; module {tag}\ndefine void @f() {{ ret void }}\n",
        "asm": f"# asm {tag} \u00b5s",
        "meta": {"tag": tag, "dims": ["n", "d"], "nested": {"k": 1.5, "flag": True, "none": None}},
    }


def _entry_file(directory: pathlib.Path, key: str) -> pathlib.Path:
    (path,) = [p for p in directory.iterdir() if p.name.startswith(key)]
    return path


def test_cache_dir_from_environment(cache_in_tmp: pathlib.Path) -> None:
    assert not cache_in_tmp.exists()
    assert cache.cache_dir() == cache_in_tmp
    assert cache_in_tmp.is_dir()


def test_cache_dir_default(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    monkeypatch.delenv("LATTICE_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "lattice"


def test_round_trip(cache_in_tmp: pathlib.Path) -> None:
    key = cache.make_key("round-trip")
    assert cache.load(key) is None
    cache.store(key, _payload())
    assert cache.load(key) == _payload()
    # Nothing but the entry is left behind (no temp files).
    assert [p.name for p in cache_in_tmp.iterdir()] == [_entry_file(cache_in_tmp, key).name]


def test_overwrite_replaces(cache_in_tmp: pathlib.Path) -> None:
    key = cache.make_key("overwrite")
    cache.store(key, _payload("old"))
    cache.store(key, _payload("new"))
    assert cache.load(key) == _payload("new")


def test_optional_fields_default_and_tuples_become_lists() -> None:
    key = cache.make_key("minimal")
    cache.store(key, {"object": b"\x00\x01", "meta": {"shape": (1, 2)}})
    assert cache.load(key) == {
        "object": b"\x00\x01",
        "llvm_ir": "",
        "asm": "",
        "meta": {"shape": [1, 2]},
    }


def test_make_key_properties(monkeypatch: pytest.MonkeyPatch) -> None:
    key = cache.make_key("a", "b")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache.make_key("a", "b")
    assert key != cache.make_key("b", "a")
    assert cache.make_key("ab", "c") != cache.make_key("a", "bc")
    assert cache.make_key() != cache.make_key("")
    # Objects are host-specific and version-specific: the key must change with either.
    with monkeypatch.context() as patch:
        patch.setattr(jit, "host_cpu_id", lambda: "othercpu:+sse2")
        assert cache.make_key("a", "b") != key
    with monkeypatch.context() as patch:
        patch.setattr(cache, "__version__", __version__ + ".post1")
        assert cache.make_key("a", "b") != key
    assert cache.make_key("a", "b") == key
    with pytest.raises(TypeError):
        cache.make_key("a", 1)  # type: ignore[arg-type]


def _corrupt_flip(data: bytes) -> bytes:
    i = len(data) // 2
    return data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(_corrupt_flip, id="flipped-body-byte"),
        pytest.param(lambda d: d[: len(d) - 7], id="truncated-body"),
        pytest.param(lambda d: d[:20], id="truncated-header"),
        pytest.param(lambda d: b"", id="empty"),
        pytest.param(lambda d: b"XXXXXXXX" + d[8:], id="bad-magic"),
        pytest.param(lambda d: d[:8] + (99).to_bytes(4, "little") + d[12:], id="other-version"),
        pytest.param(lambda d: d[:12] + bytes([d[12] ^ 1]) + d[13:], id="wrong-length"),
        pytest.param(lambda d: d + b"junk", id="trailing-junk"),
    ],
)
def test_damaged_entry_warns_and_misses(cache_in_tmp: pathlib.Path, damage) -> None:
    key = cache.make_key("damaged")
    cache.store(key, _payload())
    path = _entry_file(cache_in_tmp, key)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.warns(RuntimeWarning, match="corrupted"):
        assert cache.load(key) is None
    assert not path.exists()  # removed, so the next compile rewrites it
    cache.store(key, _payload())
    assert cache.load(key) == _payload()


def test_valid_checksum_but_malformed_body_is_a_miss(cache_in_tmp: pathlib.Path) -> None:
    import hashlib
    import struct

    body = struct.pack("<Q", 1000) + b"short"
    header = struct.pack(
        "<8sIQ32s", b"LATTOBJ\0", cache.FORMAT_VERSION, len(body), hashlib.sha256(body).digest()
    )
    key = cache.make_key("malformed")
    cache_in_tmp.mkdir(parents=True)
    (cache_in_tmp / f"{key}.lattice-obj").write_bytes(header + body)
    with pytest.warns(RuntimeWarning):
        assert cache.load(key) is None


def test_unwritable_location_warns(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    # A regular file in the path makes the directory impossible to create, even for root
    # (for whom a read-only mode bit would not stop the write).
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("LATTICE_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(RuntimeWarning, match="cache"):
        cache.store(cache.make_key("ro"), _payload())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.load(cache.make_key("ro")) is None


def test_full_disk_warns_and_leaves_no_temp_file(
    cache_in_tmp: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    key = cache.make_key("full")
    with monkeypatch.context() as patch:
        patch.setattr(cache.os, "replace", full_disk)
        with pytest.warns(RuntimeWarning, match="No space left"):
            cache.store(key, _payload())
    assert list(cache_in_tmp.iterdir()) == []
    assert cache.load(key) is None


@pytest.mark.parametrize("key", ["", "../escape", "a/b", "x" * 200, ".hidden"])
def test_bad_keys_raise(key: str) -> None:
    with pytest.raises(ValueError):
        cache.store(key, _payload())
    with pytest.raises(ValueError):
        cache.load(key)


@pytest.mark.parametrize(
    "payload, error",
    [
        ({"llvm_ir": ""}, TypeError),
        ({"object": "not bytes"}, TypeError),
        ({"object": b"", "asm": 3}, TypeError),
        ({"object": b"", "meta": []}, TypeError),
        ({"object": b"", "extra": 1}, ValueError),
        ({"object": b"", "meta": {"f": object()}}, TypeError),
    ],
)
def test_bad_payloads_raise(payload: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        cache.store(cache.make_key("bad"), payload)


SUM_IR = """
define double @sum(ptr %a, i64 %n) {
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


def test_compiled_object_survives_the_cache() -> None:
    mod = jit.compile_ir(SUM_IR)
    key = cache.make_key(SUM_IR)
    cache.store(
        key,
        {"object": mod.object_code, "llvm_ir": mod.llvm_ir, "asm": "", "meta": {"entry": "sum"}},
    )
    hit = cache.load(key)
    assert hit is not None
    reloaded = jit.load_object(hit["object"], llvm_ir=hit["llvm_ir"], asm=hit["asm"])
    fn = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p, ctypes.c_int64)(
        reloaded.address(hit["meta"]["entry"])
    )
    a = np.random.default_rng(3).standard_normal(513)
    assert fn(a.ctypes.data, a.size) == pytest.approx(a.sum(), rel=1e-12)


# ---- concurrency: several processes writing and reading one key at once ----------------------

_N_PROCESSES = 8
_ROUNDS = 25
_barrier = None


def _init_worker(barrier: Any) -> None:
    global _barrier
    _barrier = barrier


def _hammer(args: tuple[str, int]) -> tuple[int, int, list[str], list[str]]:
    """Store and load one key repeatedly; report hits, misses, bad payloads and warnings."""
    key, worker = args
    valid = [_payload(str(w)) for w in range(_N_PROCESSES)]
    hits = misses = 0
    bad: list[str] = []
    assert _barrier is not None
    _barrier.wait()  # maximize overlap between the processes
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(_ROUNDS):
            cache.store(key, _payload(str(worker)))
            got = cache.load(key)
            if got is None:
                misses += 1
            elif got in valid:
                hits += 1
            else:
                bad.append(repr(got)[:200])
    return hits, misses, bad, [str(w.message) for w in caught]


def test_concurrent_stores_from_processes(cache_in_tmp: pathlib.Path) -> None:
    key = cache.make_key("concurrent")
    # spawn: each worker is a fresh interpreter that imports lattice on its own, like separate
    # user processes sharing one cache directory.
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(_N_PROCESSES)
    with ctx.Pool(_N_PROCESSES, initializer=_init_worker, initargs=(barrier,)) as pool:
        results = pool.map(_hammer, [(key, w) for w in range(_N_PROCESSES)], chunksize=1)
    for hits, misses, bad, caught in results:
        assert bad == [] and caught == []
        # Each process reads right after its own write; the file can be replaced in between,
        # but never removed, so every read is a hit.
        assert (hits, misses) == (_ROUNDS, 0)
    final = cache.load(key)
    assert final in [_payload(str(w)) for w in range(_N_PROCESSES)]
    leftovers = [p.name for p in cache_in_tmp.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    assert os.listdir(cache_in_tmp) == [f"{key}.lattice-obj"]


def test_key_changes_with_the_compiler_source(monkeypatch):
    """A changed lowering must miss the cache: the key covers the compiler's own source."""
    base = cache.make_key("kernel")
    cache.codegen_fingerprint.cache_clear()
    monkeypatch.setattr(cache, "codegen_fingerprint", lambda: "another compiler")
    assert cache.make_key("kernel") != base
