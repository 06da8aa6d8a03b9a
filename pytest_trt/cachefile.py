"""Cached files checked against the content hash recorded when they were written.

A cache entry (an ONNX export, a converted model) is used by every later run, so a truncated or
corrupted one would fail them all, or worse be used silently. Each entry gets a ``<name>.sha256``
sidecar written after the entry itself has landed; on load the entry's hash must match it. A
mismatch, or an entry without its sidecar (a writer killed between the two renames), is removed with
a warning and rebuilt by the caller.

Cache file names come only from ``safe_name`` (letters, digits, ``-_.``; no path separators, never
``.`` or ``..``) and hashes, so a model or case name cannot place a file outside the cache.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

from pytest_trt import atomic

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_MAX_NAME = 80


NO_HASH = "has no readable content hash beside it"
MISMATCH = "does not match the content hash recorded when it was written"


class CacheWarning(UserWarning):
    """A cached file failed its check and is rebuilt."""


def safe_name(name: str) -> str:
    """``name`` as one file-name component: other characters become ``_``; long names are shortened
    and given a hash of the whole name so two long names stay apart."""
    text = _UNSAFE.sub("_", name).lstrip(".") or "_"
    if len(text) > _MAX_NAME:
        text = f"{text[:_MAX_NAME - 17]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return text


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def record(path: Path, source: Path) -> None:
    """Write the hash of ``source`` as ``path``'s, before ``source`` is renamed onto ``path``: a reader
    never finds an entry without its hash while a writer is between the two steps."""
    record_digest(path, atomic.file_sha256(source))


def record_digest(path: Path, sha256: str) -> None:
    atomic.write_text(sidecar(path), sha256 + "\n")


def verified(path: Path) -> bool:
    """Whether ``path`` is a usable entry. A damaged one is removed (warning) so it is rebuilt."""
    if not path.is_file():
        return False
    reason = problem(path)
    if reason is not None:
        _reject(path, reason)
    return reason is None


def read_verified(path: Path) -> bytes | None:
    """The entry's bytes, read once and checked; None (a damaged one removed, warning) otherwise."""
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError as exc:
        _reject(path, f"cannot be read ({exc.strerror or exc})")
        return None
    expected = _expected(path)
    if expected is None or hashlib.sha256(data).hexdigest() != expected:
        _reject(path, NO_HASH if expected is None else MISMATCH)
        return None
    return data


def write_recorded(path: Path, data: bytes) -> None:
    """Write an entry and its hash (the hash first: a reader never sees the entry without it)."""
    record_digest(path, hashlib.sha256(data).hexdigest())
    atomic.write_bytes(path, data)


def discard(path: Path) -> None:
    path.unlink(missing_ok=True)
    sidecar(path).unlink(missing_ok=True)


def problem(path: Path) -> str | None:
    """Why the existing entry ``path`` cannot be used, or None when its hash matches."""
    expected = _expected(path)
    if expected is None:
        return NO_HASH
    try:
        actual = atomic.file_sha256(path)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return None if actual == expected else MISMATCH


def _expected(path: Path) -> str | None:
    try:
        return sidecar(path).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _reject(path: Path, reason: str) -> None:
    warnings.warn(CacheWarning(f"pytest-trt: cached {path} {reason}; rebuilding it"), stacklevel=3)
    discard(path)
