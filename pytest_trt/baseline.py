"""Baseline files: the runs a later session is gated against.

A baseline is one versioned JSON file that holds several runs (newest last), each with its
environment and, per case node id, the bounded latency samples and what else the gate needs.
Runs are appended, never rewritten, so the gate can see night-to-night spread.

Writes are atomic (temp file in the same directory, fsync, ``os.replace``) and made under a file
lock; the file is re-read inside the lock, so two sessions saving at once both land. Loading is
strict and read-only: any defect is a ``BaselineError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_trt import atomic

SCHEMA_VERSION = 1
TOOL = "pytest-trt"
MAX_SAMPLES = 1000  # per case and run: enough for the gate's tests, small enough for a git diff
LOCK_TIMEOUT_S = 120.0

_RUN_FIELDS: dict[str, type | tuple[type, ...]] = {
    "run_id": str,
    "created": str,
    "environment": dict,
    "cases": dict,
}
_CASE_FIELDS: dict[str, type | tuple[type, ...]] = {
    "case": dict,
    "case_id": str,
    "status": str,
    "samples": list,
    "stats": (dict, type(None)),
}


class BaselineError(Exception):
    """A baseline file that cannot be used; the message names the file and the problem."""


@dataclass
class BaselineRun:
    """One saved session: its environment and its cases keyed by node id."""

    run_id: str
    created: str  # ISO 8601, UTC
    environment: dict[str, Any]
    cases: dict[str, dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "created": self.created,
            "environment": self.environment,
            "cases": self.cases,
        }


@dataclass
class Baseline:
    """The runs of one baseline file, oldest first."""

    path: str
    runs: list[BaselineRun] = field(default_factory=list)

    def nodeids(self) -> list[str]:
        """Every node id any run holds, in first-seen order."""
        seen: dict[str, None] = {}
        for run in self.runs:
            seen.update(dict.fromkeys(run.cases))
        return list(seen)

    def entries(self, nodeid: str) -> list[tuple[BaselineRun, dict[str, Any]]]:
        """(run, case entry) for every run that holds ``nodeid``, oldest first."""
        key = self.resolve(nodeid)
        return [(run, run.cases[key]) for run in self.runs if key in run.cases]

    def resolve(self, nodeid: str) -> str:
        """The stored node id for ``nodeid``: itself, or the one stored id that differs only by
        leading directories. Node ids are relative to pytest's rootdir, which moves when, for
        example, a path outside the project is passed as ``--trt-baseline PATH``."""
        known = self.nodeids()
        if nodeid in known:
            return nodeid
        tails = [k for k in known if k.endswith("/" + nodeid) or nodeid.endswith("/" + k)]
        return tails[0] if len(tails) == 1 else nodeid

    def to_dict(self) -> dict[str, Any]:
        return {"schema_version": SCHEMA_VERSION, "tool": TOOL, "runs": [r.to_dict() for r in self.runs]}


def thin(samples: Sequence[float], limit: int = MAX_SAMPLES) -> list[float]:
    """At most ``limit`` samples picked evenly across the run (keeps slow drifts visible)."""
    n = len(samples)
    if n <= limit:
        return [float(s) for s in samples]
    step = (n - 1) / (limit - 1)
    return [float(samples[round(i * step)]) for i in range(limit)]


def case_entry(result: Mapping[str, Any]) -> dict[str, Any]:
    """The baseline entry of one ``CaseResult.to_dict()``."""
    timing = result.get("timing") or {}
    build = result.get("build") or {}
    case = dict(result["case"])
    return {
        "case": case,
        "case_id": str(result.get("case_id") or result["nodeid"]),
        "status": str(result.get("status", "ok")),
        "model_hash": build.get("model_hash"),
        "clock": timing.get("clock"),
        "calls_per_sample": int(timing.get("calls_per_sample") or 1),
        "samples": thin(timing.get("samples") or []),
        "stats": timing.get("stats"),
        "accuracy": dict(result.get("accuracy") or {}),
        "telemetry": dict(result.get("telemetry") or {}),
        "flags": list(result.get("flags") or []),
    }


def entry_to_result(nodeid: str, entry: Mapping[str, Any]) -> dict[str, Any]:
    """A baseline entry in the shape of ``CaseResult.to_dict()`` (enough for the gate)."""
    timing = None
    if entry.get("samples"):
        timing = {"clock": entry.get("clock"), "samples": list(entry["samples"]), "stats": entry.get("stats"),
                  "calls_per_sample": int(entry.get("calls_per_sample") or 1)}
    return {
        "nodeid": nodeid,
        "case": entry["case"],
        "case_id": entry["case_id"],
        "status": entry["status"],
        "timing": timing,
        "accuracy": entry.get("accuracy") or {},
        "telemetry": entry.get("telemetry") or {},
        "build": {"model_hash": entry.get("model_hash")},
        "flags": entry.get("flags") or [],
    }


def new_run(results: Iterable[Mapping[str, Any]], environment: Mapping[str, Any]) -> BaselineRun:
    """A run from a session's result dicts; a node id seen twice keeps its last result (reruns)."""
    now = datetime.now(timezone.utc)
    cases = {str(r["nodeid"]): case_entry(r) for r in results}
    return BaselineRun(
        run_id=f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        created=now.isoformat(timespec="seconds"),
        environment=dict(environment),
        cases=cases,
    )


def save(
    path: str | os.PathLike[str],
    results: Iterable[Mapping[str, Any]],
    environment: Mapping[str, Any],
    *,
    keep_runs: int = 20,
) -> Baseline:
    """Append a run of ``results`` to the baseline at ``path`` (created if absent).

    Keeps the newest ``keep_runs`` runs. An existing file that does not load is left alone and
    raises ``BaselineError``: a corrupt baseline is never silently replaced.
    """
    from filelock import FileLock, Timeout

    if keep_runs < 1:
        raise ValueError(f"keep_runs must be at least 1, got {keep_runs}")
    target = Path(path)
    run = new_run(results, environment)
    lock = FileLock(str(target) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            baseline = load(target) if _has_content(target) else Baseline(str(target))
            baseline.runs = (baseline.runs + [run])[-keep_runs:]
            atomic.write_json(target, baseline.to_dict())
    except Timeout as exc:
        why = f"could not lock {lock.lock_file} within {LOCK_TIMEOUT_S:.0f} s"
        raise BaselineError(f"{target}: {why}") from exc
    return baseline


def _has_content(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def load(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file; never modifies it."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{target}: baseline file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{target}: cannot read baseline file: {exc}") from None
    if not text.strip():
        raise BaselineError(f"{target}: baseline file is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{target}: not valid JSON (truncated or corrupt?): {exc}") from None
    return from_dict(data, str(target))


def from_dict(data: Any, source: str) -> Baseline:
    """Validate a parsed baseline document; ``source`` names it in errors."""
    if not isinstance(data, dict):
        raise BaselineError(f"{source}: expected a JSON object at the top, got {type(data).__name__}")
    version = data.get("schema_version")
    if version is None:
        raise BaselineError(f"{source}: missing 'schema_version' (is this a pytest-trt baseline file?)")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BaselineError(f"{source}: 'schema_version' must be an integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise BaselineError(
            f"{source}: schema_version {version} was written by a newer pytest-trt "
            f"(this one reads version {SCHEMA_VERSION}); upgrade pytest-trt"
        )
    if version != SCHEMA_VERSION:
        raise BaselineError(f"{source}: unsupported schema_version {version} (expected {SCHEMA_VERSION})")
    runs = data.get("runs")
    if not isinstance(runs, list):
        raise BaselineError(f"{source}: 'runs' must be a list of runs")
    return Baseline(source, [_run(raw, f"{source}: runs[{i}]") for i, raw in enumerate(runs)])


def _run(raw: Any, where: str) -> BaselineRun:
    _check_fields(raw, _RUN_FIELDS, where)
    hardware = raw["environment"].get("hardware")
    if not isinstance(hardware, dict):
        raise BaselineError(f"{where}: 'environment.hardware' must be an object")
    cases: dict[str, dict[str, Any]] = {}
    for nodeid, entry in raw["cases"].items():
        cases[nodeid] = _case(entry, f"{where}.cases[{nodeid!r}]")
    return BaselineRun(raw["run_id"], raw["created"], raw["environment"], cases)


def _case(entry: Any, where: str) -> dict[str, Any]:
    _check_fields(entry, _CASE_FIELDS, where)
    samples = entry["samples"]
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in samples):
        raise BaselineError(f"{where}: 'samples' must be a list of numbers (seconds)")
    for key, kind in (("accuracy", dict), ("telemetry", dict), ("flags", list)):
        if key in entry and not isinstance(entry[key], kind):
            raise BaselineError(f"{where}: '{key}' must be a {kind.__name__}")
    return dict(entry)


def _check_fields(raw: Any, fields: Mapping[str, type | tuple[type, ...]], where: str) -> None:
    if not isinstance(raw, dict):
        raise BaselineError(f"{where}: expected an object, got {type(raw).__name__}")
    for key, kind in fields.items():
        if key not in raw:
            raise BaselineError(f"{where}: missing field '{key}'")
        if not isinstance(raw[key], kind):
            raise BaselineError(f"{where}: field '{key}' has the wrong type ({type(raw[key]).__name__})")
