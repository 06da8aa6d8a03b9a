"""Where each running case is, in a small file per process, so a case that never reports (a run cut by
a time limit, a worker killed inside a backend) is still recorded with the phase it was in.

A case can spend minutes before its timing starts (export, cuDNN autotuning at a new shape, the
output check); when such a case is interrupted, "how far did it get" is the question this answers.
Each process writes only its own file, atomically, at phase boundaries (never inside the timing).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Protocol

from pytest_trt import atomic

DIRECTORY = "progress"


class Listener(Protocol):
    """Who else hears of a case's start and phases in this process (the terminal's live display)."""

    def case_started(self, nodeid: str, case: dict[str, Any], model_name: str) -> None: ...

    def phase_started(self, name: str) -> None: ...


class Progress:
    """One process's current case and phase, mirrored to ``<cache dir>/progress/<worker>.json``."""

    def __init__(self, cache_dir: Path, worker: str | None) -> None:
        self.path = cache_dir / DIRECTORY / f"{worker or 'main'}.json"
        self._record: dict[str, Any] = {}
        self.listener: Listener | None = None

    def case(self, nodeid: str, case: dict[str, Any], model_name: str) -> None:
        """A new case begins (before its runner is built)."""
        now = time.time()
        self._record = {"nodeid": nodeid, "case": case, "model_name": model_name, "pid": os.getpid(),
                        "case_started": now, "phase": "prepare", "since": now, "phases_s": {}}
        self._write()
        if self.listener is not None:
            self.listener.case_started(nodeid, case, model_name)

    def phase(self, name: str, done: dict[str, float]) -> None:
        """The current case enters phase ``name``; ``done`` holds the finished phases' seconds."""
        if not self._record:
            return
        self._record.update(phase=name, since=time.time(), phases_s=dict(done))
        self._write()
        if self.listener is not None:
            self.listener.phase_started(name)

    def where(self) -> str:
        """Where the current case is, for a failure's message: 'in phase first_run for 265.1 s (...)'."""
        return describe(self._record) if self._record else "before any case"

    def _write(self) -> None:
        try:
            atomic.write_json(self.path, self._record)
        except OSError:  # an unwritable cache dir must not fail the case it describes
            pass


def read(cache_dir: Path, since: float) -> dict[str, dict[str, Any]]:
    """The last known place of every case that was running at or after ``since``, by node id."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((cache_dir / DIRECTORY).glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(record, dict) and record.get("since", 0) >= since and "nodeid" in record:
            found[str(record["nodeid"])] = record
    return found


def describe(record: dict[str, Any], now: float | None = None) -> str:
    """'in phase first_run for 212.4 s (prepare 3.1 s)': for a case's message."""
    now = time.time() if now is None else now
    done = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in record.get("phases_s", {}).items())
    text = f"in phase {record.get('phase')} for {now - float(record.get('since', now)):.1f} s"
    return f"{text} ({done})" if done else text


def clear(cache_dir: Path, since: float) -> None:
    """Remove the files this run wrote (older runs' files are left to their own runs)."""
    for path in (cache_dir / DIRECTORY).glob("*.json"):
        try:
            if path.stat().st_mtime >= since:
                path.unlink()
        except OSError:
            pass
