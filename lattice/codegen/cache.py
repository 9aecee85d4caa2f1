"""On-disk cache of compiled objects, shared safely by concurrent threads and processes.

Contracts
---------
* Location: ``$LATTICE_CACHE_DIR`` if set and non-empty, else ``~/.cache/lattice``; created on
  demand. One file per key, ``<key>.lattice-obj``.
* Keys come from :func:`make_key`, which folds in everything that makes an object file invalid
  elsewhere: lattice, llvmlite and LLVM versions, the cache format and the host CPU id.
* Payload schema: ``{"object": bytes, "llvm_ir": str, "asm": str, "meta": dict}``. ``meta`` must
  be JSON-serializable (str keys; str/int/float/bool/None/list/dict values): it is stored as JSON,
  so tuples come back as lists. JSON rather than pickle because a cache directory can be shared,
  and unpickling a file someone else wrote would run their code.
* :func:`store` is atomic: readers see either the old complete file or the new complete file,
  never a partial one (temp file in the same directory, then ``os.replace``). Concurrent writers
  of one key are fine; the last rename wins, and all of them wrote equivalent content.
* Neither function raises for problems of the disk or of the files on it: a corrupted, truncated
  or foreign entry makes :func:`load` warn (``RuntimeWarning``), delete it and report a miss; an
  unwritable directory or a full disk makes :func:`store` warn and return. Wrong arguments (a bad
  key, a payload of the wrong shape) are programming errors and do raise.

File format (all integers little-endian)::

    header:  magic b"LATTOBJ\\0" (8 bytes) | format version u32 | body length u64 | sha256(body)
    body:    four fields, each u64 length + bytes: object, llvm_ir (UTF-8), asm (UTF-8), meta (JSON)
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pathlib
import re
import struct
import tempfile
import warnings
from typing import Any

import llvmlite
import llvmlite.binding

from lattice._version import __version__
from lattice.codegen import blas, jit

__all__ = ["FORMAT_VERSION", "cache_dir", "load", "make_key", "store"]

#: Bump when the file layout or the meaning of a payload changes; old entries then become misses.
FORMAT_VERSION = 2  # 2: objects carry the CPython entry (codegen/pyentry.py)

_MAGIC = b"LATTOBJ\0"
_HEADER = struct.Struct("<8sIQ32s")
_LENGTH = struct.Struct("<Q")
_SUFFIX = ".lattice-obj"
_KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
_FIELDS = ("object", "llvm_ir", "asm", "meta")


def _configured_dir() -> pathlib.Path:
    env = os.environ.get("LATTICE_CACHE_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path.home() / ".cache" / "lattice"


def cache_dir() -> pathlib.Path:
    """The cache directory, created if missing. Raises OSError if it cannot be created."""
    path = _configured_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@functools.lru_cache(maxsize=1)
def codegen_fingerprint() -> str:
    """sha256 of the compiler's own source (frontend, IR and codegen modules).

    The machine code for a kernel depends on how lattice lowers it, not only on its IR and the
    version number: a changed lowering (a development checkout, a patched install) must miss
    the cache rather than load code the current compiler would no longer produce."""
    root = pathlib.Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for sub in ("frontend", "ir", "codegen"):
        for path in sorted((root / sub).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def make_key(*parts: str) -> str:
    """64 hex digits of sha256 over ``parts`` and everything that invalidates an object file.

    Parts are length-prefixed before hashing so that ("ab", "c") and ("a", "bc") differ.
    """
    llvm_version = ".".join(map(str, llvmlite.binding.llvm_version_info))
    context = (
        f"lattice={__version__}",
        f"llvmlite={llvmlite.__version__}",
        f"llvm={llvm_version}",
        f"format={FORMAT_VERSION}",
        f"cpu={jit.host_cpu_id()}",
        f"compiler={codegen_fingerprint()}",
        blas.cache_tag(),  # objects may call the BLAS: the library, and whether it is used
    )
    digest = hashlib.sha256()
    for part in (*context, *parts):
        if not isinstance(part, str):
            raise TypeError(f"key parts must be str, got {type(part).__name__}")
        data = part.encode("utf-8")
        digest.update(_LENGTH.pack(len(data)))
        digest.update(data)
    return digest.hexdigest()


def _entry_path(directory: pathlib.Path, key: str) -> pathlib.Path:
    if not isinstance(key, str) or not _KEY_RE.fullmatch(key):
        # Keys become file names: anything but a plain token could escape the cache directory.
        raise ValueError(f"cache key must match {_KEY_RE.pattern}, got {key!r}")
    return directory / (key + _SUFFIX)


def _encode(payload: dict[str, Any]) -> bytes:
    if not isinstance(payload, dict):
        raise TypeError(f"payload must be a dict, got {type(payload).__name__}")
    unknown = set(payload) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown payload keys {sorted(unknown)}; allowed: {list(_FIELDS)}")
    obj = payload.get("object")
    if not isinstance(obj, (bytes, bytearray, memoryview)):
        raise TypeError("payload['object'] must be bytes")
    texts = []
    for field in ("llvm_ir", "asm"):
        value = payload.get(field, "")
        if not isinstance(value, str):
            raise TypeError(f"payload[{field!r}] must be str")
        texts.append(value.encode("utf-8"))
    meta = payload.get("meta", {})
    if not isinstance(meta, dict):
        raise TypeError("payload['meta'] must be a dict")
    meta_json = json.dumps(meta, sort_keys=True, allow_nan=True).encode("utf-8")
    parts: list[bytes] = []
    for blob in (bytes(obj), *texts, meta_json):
        parts.append(_LENGTH.pack(len(blob)))
        parts.append(blob)
    return b"".join(parts)


def _decode(body: bytes) -> dict[str, Any]:
    fields = []
    offset = 0
    for _ in _FIELDS:
        (length,) = _LENGTH.unpack_from(body, offset)
        offset += _LENGTH.size
        if offset + length > len(body):
            raise ValueError("field extends past the end of the body")
        fields.append(body[offset : offset + length])
        offset += length
    if offset != len(body):
        raise ValueError("trailing bytes after the last field")
    meta = json.loads(fields[3].decode("utf-8"))
    if not isinstance(meta, dict):
        raise ValueError("meta is not a JSON object")
    return {
        "object": fields[0],
        "llvm_ir": fields[1].decode("utf-8"),
        "asm": fields[2].decode("utf-8"),
        "meta": meta,
    }


def _parse_file(data: bytes) -> dict[str, Any]:
    """Decode a whole cache file; ValueError (with the reason) if it is not a valid entry."""
    if len(data) < _HEADER.size:
        raise ValueError(f"truncated header ({len(data)} bytes)")
    magic, version, length, checksum = _HEADER.unpack_from(data, 0)
    if magic != _MAGIC:
        raise ValueError("not a lattice cache file (bad magic)")
    if version != FORMAT_VERSION:
        raise ValueError(f"format version {version}, expected {FORMAT_VERSION}")
    body = data[_HEADER.size :]
    if len(body) != length:
        raise ValueError(f"body is {len(body)} bytes, header says {length} (truncated?)")
    if hashlib.sha256(body).digest() != checksum:
        raise ValueError("checksum mismatch")
    return _decode(body)


def load(key: str) -> dict[str, Any] | None:
    """The payload stored under ``key``, or None on a miss.

    A file that fails validation is reported with a RuntimeWarning, removed and treated as a miss.
    """
    path = _entry_path(_configured_dir(), key)
    try:
        with open(path, "rb") as f:
            seen = os.fstat(f.fileno())
            data = f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None  # no entry, or no cache directory yet: a plain miss
    except OSError as exc:
        warnings.warn(f"lattice cache: cannot read {path}: {exc}", RuntimeWarning, stacklevel=2)
        return None
    try:
        return _parse_file(data)
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        warnings.warn(
            f"lattice cache: ignoring corrupted entry {path} ({exc}); it will be recompiled",
            RuntimeWarning,
            stacklevel=2,
        )
        _remove_if_unchanged(path, seen)
        return None


def _remove_if_unchanged(path: pathlib.Path, seen: os.stat_result) -> None:
    # Another process may have replaced the bad file with a good one since it was read;
    # only the very file that was read (same inode, same mtime) is deleted.
    try:
        now = os.stat(path)
        if (now.st_ino, now.st_dev, now.st_mtime_ns) == (
            seen.st_ino,
            seen.st_dev,
            seen.st_mtime_ns,
        ):
            os.unlink(path)
    except OSError:
        pass


def store(key: str, payload: dict[str, Any]) -> None:
    """Write ``payload`` under ``key`` atomically.

    Disk errors warn and return; bad arguments raise.
    """
    body = _encode(payload)
    header = _HEADER.pack(_MAGIC, FORMAT_VERSION, len(body), hashlib.sha256(body).digest())
    try:
        directory = cache_dir()
        path = _entry_path(directory, key)
    except OSError as exc:
        warnings.warn(
            f"lattice cache: cannot create cache directory: {exc}", RuntimeWarning, stacklevel=2
        )
        return
    tmp_name = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "wb") as f:
            f.write(header)
            f.write(body)
        # No fsync: a file damaged by a crash fails its checksum and becomes a miss, so
        # durability is not worth a disk flush on every compile.
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as exc:
        warnings.warn(f"lattice cache: cannot write {path}: {exc}", RuntimeWarning, stacklevel=2)
    finally:
        if tmp_name is not None:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
