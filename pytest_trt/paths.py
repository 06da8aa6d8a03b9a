"""Output paths checked before any work: a run must not benchmark for an hour and then find that
it cannot write what it measured.

A path is usable when it is, or can become, a regular file in a directory this process can write:
not under ``/proc``, ``/sys`` or ``/dev`` (writes there go to the kernel or a device, and
``/dev/full`` fails every write), not a directory, FIFO, socket or device, and its directory (or the
nearest one that exists, which the writers create the rest under) accepts a new file. Permission
bits do not say that (root passes every ``os.access`` check, a read-only mount passes some), so a
temp file is created and removed there. Symlinks are followed: the writers replace what they point to.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

SPECIAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


class PathProblem(ValueError):
    """Why a path cannot take an output; the message is the reason only (callers name the option)."""


def output_file(path: Path) -> Path:
    """``path`` (user-expanded) if a file can be written there, else ``PathProblem``."""
    target = _resolved(path)
    info = _stat(target)
    if info is not None:
        if stat.S_ISDIR(info.st_mode):
            raise PathProblem("it is a directory")
        if not stat.S_ISREG(info.st_mode):
            raise PathProblem(f"it is {_kind(info.st_mode)}, not a regular file")
        if not os.access(target, os.W_OK):
            raise PathProblem("the file is not writable")
    probe(_existing_ancestor(target.parent))
    return path.expanduser()


def output_dir(path: Path) -> Path:
    """``path`` (user-expanded) if it is, or can become, a directory to write files in."""
    target = _resolved(path)
    info = _stat(target)
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise PathProblem(f"it is {_kind(info.st_mode)}, not a directory")
    probe(_existing_ancestor(target))
    return path.expanduser()


def probe(directory: Path) -> None:
    """Create and remove a temp file in ``directory``: the one test of writability that holds."""
    try:
        fd, name = tempfile.mkstemp(prefix=".pytest-trt-probe-", dir=directory)
    except OSError as exc:
        raise PathProblem(f"cannot create a file in {directory}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        os.unlink(name)
    except OSError:
        pass  # created is what was asked; a leftover probe is harmless


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (after symlinks), whether or not it exists yet."""
    try:
        return a.expanduser().resolve() == b.expanduser().resolve()
    except (OSError, RuntimeError):
        return False


def _resolved(path: Path) -> Path:
    try:
        target = path.expanduser().resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise PathProblem(f"it cannot be resolved ({exc})") from None
    for root in SPECIAL_ROOTS:
        if target == root or root in target.parents:
            raise PathProblem(f"it is under {root}, where files are the kernel's or devices, not regular files")
    return target


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except (FileNotFoundError, NotADirectoryError):  # a file in the way is the ancestor check's to say
        return None
    except OSError as exc:
        raise PathProblem(f"cannot inspect it: {exc.strerror or exc}") from None


def _existing_ancestor(directory: Path) -> Path:
    """``directory`` or its nearest existing ancestor, which must be a directory."""
    while not directory.exists():
        directory = directory.parent
    if not directory.is_dir():
        raise PathProblem(f"{directory} is not a directory")
    return directory


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"
