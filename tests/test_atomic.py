"""Atomic writes: modes, symlinks, stale temp files, failures mid-write, kills and concurrent writers."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import stat
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from pytest_trt import atomic

ROOT = Path(__file__).resolve().parents[1]
SetMask = Callable[[int], int]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _temps(directory: Path) -> list[Path]:
    return sorted(directory.glob(".*.tmp"))


@pytest.fixture
def umask() -> Iterator[SetMask]:
    """``umask(mask)`` sets the process umask for one test; the old one is back after it."""
    saved = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(saved)


# --- modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_0666_less_the_umask(tmp_path: Path, umask: SetMask, mask: int, expected: int) -> None:
    umask(mask)
    target = tmp_path / "results.json"
    atomic.write_json(target, {"a": 1})
    assert _mode(target) == expected
    assert json.loads(target.read_text()) == {"a": 1}


def test_replacing_a_file_keeps_its_mode(tmp_path: Path, umask: SetMask) -> None:
    umask(0o022)
    target = tmp_path / "baseline.json"
    target.write_text("old")
    target.chmod(0o640)
    atomic.write_text(target, "new")
    assert (target.read_text(), _mode(target)) == ("new", 0o640)
    target.chmod(0o604)
    atomic.write_bytes(target, b"newer")
    assert (target.read_bytes(), _mode(target)) == (b"newer", 0o604)


# --- symlinks --------------------------------------------------------------------------------


def test_a_symlink_is_kept_and_the_file_it_points_to_replaced(tmp_path: Path) -> None:
    shared, local = tmp_path / "shared", tmp_path / "local"
    shared.mkdir()
    local.mkdir()
    real = shared / "h100.json"
    real.write_text("old")
    real.chmod(0o640)
    link = local / "baseline.json"
    link.symlink_to(real)
    atomic.write_json(link, {"runs": []})
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text()) == {"runs": []} and _mode(real) == 0o640
    assert not _temps(local) and not _temps(shared)


def test_a_chain_of_relative_links_and_a_dangling_link_are_followed(tmp_path: Path, umask: SetMask) -> None:
    umask(0o022)
    real = tmp_path / "data" / "real.txt"
    real.parent.mkdir()
    first = tmp_path / "first"
    first.symlink_to("data/real.txt")  # relative, and the file does not exist yet
    second = tmp_path / "second"
    second.symlink_to("first")
    atomic.write_text(second, "created")
    assert second.is_symlink() and first.is_symlink()
    assert real.read_text() == "created" and _mode(real) == 0o644


def test_a_symlink_loop_is_an_os_error_naming_the_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.symlink_to(b)
    b.symlink_to(a)
    with pytest.raises(OSError) as info:
        atomic.write_text(a, "x")
    assert info.value.errno == errno.ELOOP and str(a) in str(info.value)


# --- stale temp files ------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_next_write_removes_stale_temp_files_of_that_file_only(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    stale_old_style = tmp_path / ".t.json.ab_c9xyz.tmp"  # what mkstemp named them before
    stale = tmp_path / f".t.json.{'0a' * 8}.tmp"
    live = tmp_path / ".t.json.livewriter0.tmp"  # a writer still at it: recently written
    other_target = tmp_path / ".t.json.b.ab_c9xyz.tmp"  # a stale temp file of t.json.b, not of t.json
    unrelated = tmp_path / ".t.json.notes"
    for path in (stale_old_style, stale, live, other_target, unrelated):
        path.write_text("partial")
    for path in (stale_old_style, stale, other_target, unrelated):
        _age(path, atomic.STALE_AFTER_S + 60)
    _age(live, atomic.STALE_AFTER_S - 60)
    atomic.write_text(target, "whole")
    assert target.read_text() == "whole"
    assert not stale_old_style.exists() and not stale.exists()
    assert live.exists() and other_target.exists() and unrelated.exists()


def test_a_stale_temp_that_is_a_directory_or_link_is_left_alone(tmp_path: Path) -> None:
    target = tmp_path / "t.json"
    directory = tmp_path / ".t.json.abcdefgh.tmp"
    directory.mkdir()
    link = tmp_path / ".t.json.linklink.tmp"
    link.symlink_to(target)
    _age(directory, atomic.STALE_AFTER_S + 60)
    os.utime(link, (0, 0), follow_symlinks=False)
    atomic.write_text(target, "x")
    assert directory.is_dir() and link.is_symlink()


# --- failures --------------------------------------------------------------------------------


@pytest.mark.parametrize("error", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failure_mid_write_leaves_the_old_content_and_no_temp(tmp_path: Path, error: BaseException) -> None:
    target = tmp_path / "baseline.json"
    atomic.write_json(target, {"version": 1})

    def half_then_fail(handle: IO[bytes]) -> None:
        handle.write(b'{"version": 2, "runs": [')
        handle.flush()
        raise error

    with pytest.raises(type(error)):
        atomic.write_with(target, half_then_fail)
    assert json.loads(target.read_text()) == {"version": 1}
    assert not _temps(tmp_path)


def test_a_failed_write_through_a_link_keeps_the_link_and_the_old_file(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_text('{"v": 1}')
    link = tmp_path / "link.json"
    link.symlink_to(real)

    def fail(handle: IO[bytes]) -> None:
        handle.write(b"{")
        raise OSError(errno.ENOSPC, "no space left")

    with pytest.raises(OSError, match="no space"):
        atomic.write_with(link, fail)
    assert link.is_symlink() and real.read_text() == '{"v": 1}' and not _temps(tmp_path)


# --- kills and concurrent writers ------------------------------------------------------------

VERSION = textwrap.dedent(
    """
    def version(writer, seq):
        # ~1 MB of indented JSON: a write takes long enough that a kill lands inside one.
        return {"writer": writer, "seq": seq, "payload": [f"{writer}:{seq}:{i}" for i in range(40000)]}
    """
)
WRITER = VERSION + textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pytest_trt import atomic
    target, writer = Path(sys.argv[1]), sys.argv[2]
    print("ready", flush=True)
    seq = 0
    while True:
        atomic.write_json(target, version(writer, seq))
        print("done", flush=True)  # one line per finished write (a pipe's buffer holds thousands)
        seq += 1
    """
)


def _version(writer: str, seq: int) -> dict[str, Any]:
    space: dict[str, Any] = {}
    exec(VERSION, space)  # the writers' own definition, so both sides agree on every version
    result: dict[str, Any] = space["version"](writer, seq)
    return result


def _check(target: Path) -> str:
    """Read the target: it must parse and be exactly one version some writer wrote; its writer."""
    with target.open("rb") as handle:
        document = json.load(handle)  # a torn file raises here
    assert document == _version(document["writer"], document["seq"])
    return str(document["writer"])


def _start(target: Path, name: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target), name], env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
    return proc


def _kill(proc: subprocess.Popen[bytes]) -> tuple[bool, int]:
    """SIGKILL a writer: whether the signal killed it, and how many writes it had finished."""
    proc.send_signal(signal.SIGKILL)
    killed = proc.wait(timeout=30) == -signal.SIGKILL
    assert proc.stdout is not None
    return killed, proc.stdout.read().count(b"done\n")


def test_killed_and_concurrent_writers_never_leave_a_torn_file(tmp_path: Path) -> None:
    target = tmp_path / "big.json"
    atomic.write_json(target, _version("init", 0))
    rng = random.Random(11)
    writers = [_start(target, f"w{i}") for i in range(2)]  # two at once: concurrent replaces
    seen, kills, finished = {"init"}, 0, []
    try:
        for n in range(3):
            deadline = time.monotonic() + rng.uniform(0.2, 0.5)
            while time.monotonic() < deadline:
                seen.add(_check(target))
            killed, done = _kill(writers.pop(rng.randrange(len(writers))))
            kills, finished = kills + killed, [*finished, done]
            seen.add(_check(target))
            writers.append(_start(target, f"r{n}"))
    finally:
        for proc in writers:
            killed, done = _kill(proc)
            kills, finished = kills + killed, [*finished, done]
    seen.add(_check(target))
    assert kills == 5
    assert sum(1 for done in finished if done) >= 2, f"writes finished per writer: {finished}"
    assert len(seen) >= 2, f"the reader never saw a writer's version: {seen}"
    # Every writer is dead, so each temp file left is one a kill cut short.
    leftovers = _temps(tmp_path)
    assert leftovers, "no kill landed during a write; the test proved nothing"
    for path in leftovers:
        _age(path, atomic.STALE_AFTER_S + 1)
    atomic.write_json(target, _version("final", 1))  # the next write removes what they left
    assert _check(target) == "final" and not _temps(tmp_path)


def test_a_fifo_in_the_way_is_refused_and_kept(tmp_path: Path) -> None:
    """Renaming over a FIFO or device would replace the node itself (root can do it even in /dev)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        atomic.write_text(fifo, "x")
    assert stat.S_ISFIFO(fifo.stat().st_mode) and _temps(tmp_path) == []
