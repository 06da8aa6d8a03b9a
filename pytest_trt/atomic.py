"""File helpers shared by caches, baselines and results: atomic writes and content hashes.

A crash mid-write leaves the previous file, never a half-written one: data goes to a temp file in the
same directory as the file written, is fsynced, renamed over it, and the rename itself is made durable.

- Modes: a new file gets ``0o666 & ~umask``, as ``open(path, "w")`` would give it (results and baselines
  are shared with CI artifacts and colleagues, so ``mkstemp``'s 0600 was wrong); replacing a file keeps
  its mode.
- Symlinks: writing through a link replaces the file it points to and keeps the link (a results path
  may be a link into a shared folder); renaming over the link itself would turn it into a plain file.
- A target that exists and is no regular file (FIFO, device, socket, directory) is refused with an
  ``OSError``: renaming over it would replace the node itself.
- Temp files are named ``.<name>.<random>.tmp`` beside the file written. A writer killed mid-write
  (SIGKILL, OOM killer, CI time limit) leaves one behind; the next successful write of the same file
  removes its temp files untouched for ``STALE_AFTER_S``. A live writer keeps touching its temp file, so
  only one stalled that long without writing could lose it, and then its rename fails: the target is
  never damaged either way. (O_TMPFILE would leave no name at all, but it is Linux-only and still needs a
  named link before the rename, so the cleanup would be needed anyway.)
"""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import re
import secrets
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

STALE_AFTER_S = 600.0
_NEW_FILE_MODE = 0o666  # the kernel applies the umask to it at creation
_RANDOM_CHARS = 16
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def write_with(path: Path, write: Callable[[IO[bytes]], object]) -> None:
    """Let ``write`` fill a temp file (streaming: no second copy in memory), then rename it over ``path``."""
    target = _resolve(Path(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    keep_mode = _existing_mode(target)
    fd, tmp = _create_temp(target)
    try:
        if keep_mode is not None:
            os.fchmod(fd, keep_mode)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    remove_stale_temps(target)


def write_bytes(path: Path, data: bytes) -> None:
    write_with(path, lambda handle: handle.write(data))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, data: object) -> None:
    """Stream ``data`` as indented JSON: baselines can be large."""

    def dump(handle: IO[bytes]) -> None:
        text = io.TextIOWrapper(handle, encoding="utf-8", write_through=True)
        json.dump(data, text, indent=1)
        text.write("\n")
        text.detach()  # leave the binary handle open for the fsync

    write_with(path, dump)


def _resolve(path: Path) -> Path:
    """The file a write of ``path`` replaces: symlinks followed (a dangling one to where it points)."""
    try:
        return path.resolve()
    except RuntimeError as exc:  # Python < 3.13 reports a symlink loop this way
        raise OSError(errno.ELOOP, "symlink loop", str(path)) from exc


def _existing_mode(target: Path) -> int | None:
    """The mode an existing regular file keeps. A device, FIFO or socket is refused: renaming over
    it would replace the node itself (as root, ``/dev/full`` became an HTML page)."""
    try:
        info = target.stat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL if not stat.S_ISDIR(info.st_mode) else errno.EISDIR,
                      "not a regular file" if not stat.S_ISDIR(info.st_mode) else "is a directory", str(target))
    return stat.S_IMODE(info.st_mode)


def _create_temp(target: Path) -> tuple[int, Path]:
    """A new temp file beside ``target``; O_EXCL, so a name that exists (even as a link) is never reused."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(_RANDOM_CHARS // 2)}.tmp")
        try:
            return os.open(tmp, _CREATE_FLAGS, _NEW_FILE_MODE), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(target.parent))


def _temp_pattern(target: Path) -> re.Pattern[str]:
    """Temp files of ``target`` only: the random part has no dot, so ``.a.<r>.tmp`` never matches a
    temp file of ``a.b`` (``.a.b.<r>.tmp``). Eight characters is what ``mkstemp`` gave earlier versions."""
    return re.compile(rf"\.{re.escape(target.name)}\.[A-Za-z0-9_]{{8,{_RANDOM_CHARS}}}\.tmp")


def remove_stale_temps(target: Path, older_than_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove temp files of ``target`` that nobody has written for ``older_than_s``; the removed paths."""
    pattern = _temp_pattern(target)
    cutoff = time.time() - older_than_s  # file mtimes are wall-clock times
    removed: list[Path] = []
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.fullmatch(entry.name):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # removed meanwhile by another writer, or not ours to remove: never fail a write
            continue
    return removed


def _fsync_dir(directory: Path) -> None:
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
