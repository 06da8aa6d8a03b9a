"""Baseline files: the runs later sessions are gated against.

One versioned JSON file holds several runs (newest last), each one pytest process with its
environment and, per case, the bounded latency samples and what else the gate needs. Runs are
appended (``--trt-save-baseline``, or ``pytest-trt baseline add`` from results files), so the gate
sees how much a case varies between processes; ``pytest-trt baseline`` lists, prunes and accepts.

Cases are keyed by ``case_key``: the node id without the directories of its file, so a key does not
move when pytest's rootdir does (it follows from the paths on the command line). Files written
before keys existed are keyed by node id and are re-keyed on load.

Writes are atomic (temp file, fsync, rename) under a file lock, re-reading the file inside the lock,
so two sessions saving at once both land. Loading is strict and bounded: any defect is a
``BaselineError`` naming the file and the problem, never a traceback; the file is never modified.
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pytest_trt import atomic, jsonfile
from pytest_trt.case import Case
from pytest_trt.records import (
    JSON,
    Accuracy,
    CaseResult,
    CaseState,
    Flag,
    HostLoad,
    JSONDict,
    Stats,
    Telemetry,
    Timing,
    case_key,
)
from pytest_trt.stats import thin

SCHEMA_VERSION = 1
TOOL = "pytest-trt"
MAX_SAMPLES = 1000  # per case and run: enough for the gate, small enough for a git diff
MAX_RUNS = 200
KEEP_RUNS = 20  # the rolling window a nightly --trt-save-baseline keeps
LOCK_TIMEOUT_S = 120.0


class BaselineError(Exception):
    """A baseline file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Entry:
    """One case of one baseline run."""

    case: Case
    case_id: str
    status: CaseState
    nodeid: str
    samples: list[float]
    stats: Stats | None
    clock: str | None
    calls_per_sample: int = 1
    model_hash: str | None = None
    accuracy: Accuracy = field(default_factory=Accuracy)
    telemetry: Telemetry | None = None
    host: HostLoad | None = None
    flags: list[Flag] = field(default_factory=list)
    peak_tflops: float | None = None  # the run's GPU calibration (a measured matmul peak)
    # medians of the backlog probe (timing.launch, timing.gpu_compute): whether the host or the GPU set the pace
    launch_s: float | None = None
    gpu_compute_s: float | None = None

    @property
    def median(self) -> float | None:
        if self.stats is not None:
            return self.stats.median
        return sorted(self.samples)[len(self.samples) // 2] if self.samples else None

    @property
    def method(self) -> tuple[str | None, int]:
        return self.clock, self.calls_per_sample

    @classmethod
    def of(cls, result: CaseResult) -> Entry:
        timing = result.timing
        samples, stats = _storable(timing)
        return cls(
            case=result.case, case_id=result.case.id, status=result.status, nodeid=result.nodeid,
            samples=samples, stats=stats,
            clock=timing.clock if timing else None, calls_per_sample=timing.calls_per_sample if timing else 1,
            model_hash=result.build.model_hash, accuracy=result.accuracy, telemetry=result.telemetry,
            host=result.host, flags=list(result.flags), peak_tflops=result.build.peak_tflops,
            launch_s=timing.launch.median if timing and timing.launch else None,
            gpu_compute_s=timing.gpu_compute.median if timing and timing.gpu_compute else None,
        )

    def to_dict(self) -> JSONDict:
        return {
            "case": {k: v for k, v in self.case.to_dict().items()},
            "case_id": self.case_id,
            "nodeid": self.nodeid,
            "status": self.status.value,
            "model_hash": self.model_hash,
            "clock": self.clock,
            "calls_per_sample": self.calls_per_sample,
            "samples": list(self.samples),
            "stats": {k: v for k, v in asdict(self.stats).items()} if self.stats else None,
            "accuracy": self.accuracy.to_dict(),
            "telemetry": self.telemetry.to_dict() if self.telemetry else {},
            "host": self.host.to_dict() if self.host else None,
            "flags": [f.value for f in self.flags],
            "peak_tflops": self.peak_tflops,
            **({"launch_s": self.launch_s, "gpu_compute_s": self.gpu_compute_s} if self.launch_s else {}),
        }

    def to_result(self, key: str) -> CaseResult:
        """The entry in the shape of a case result: enough for the gate and the reports."""
        from pytest_trt.records import BuildInfo

        timing = None
        if self.samples and self.stats is not None:
            timing = Timing(self.clock or "perf_counter", list(self.samples), self.stats, 0, 0.0, 0.0, "",
                            calls_per_sample=self.calls_per_sample)
        return CaseResult(self.case, self.nodeid, self.case.model or self.nodeid, self.status, "", timing,
                          self.accuracy, self.telemetry, self.host,
                          BuildInfo(model_hash=self.model_hash, peak_tflops=self.peak_tflops),
                          list(self.flags), key=key)


def _storable(timing: Timing | None) -> tuple[list[float], Stats | None]:
    """The samples and statistics of a timing as a baseline may hold them, so the file always loads
    again: a sample of 0 (two CUDA events with no GPU work between them read 0 ns) has no logarithm
    and is refused on load. Such samples are left out; with a median of 0 the case is below the
    timer's resolution and is kept untimed (the gate then says NEW: no timing)."""
    from pytest_trt.schema import MAX_LATENCY_S

    if timing is None:
        return [], None
    stats = timing.stats
    if not 0 < stats.median <= MAX_LATENCY_S or not all(math.isfinite(v) for v in asdict(stats).values()):
        return [], None
    return [s for s in thin(timing.samples, MAX_SAMPLES) if 0 < s <= MAX_LATENCY_S], stats


@dataclass
class Run:
    """One saved process: its environment and its cases by key."""

    run_id: str
    created: str  # ISO 8601, UTC
    environment: JSONDict
    cases: dict[str, Entry]
    source: str = ""  # what the run was made from: "pytest" or a results file's name

    def to_dict(self) -> JSONDict:
        data: JSONDict = {"run_id": self.run_id, "created": self.created, "environment": self.environment,
                          "cases": {key: entry.to_dict() for key, entry in self.cases.items()}}
        if self.source:
            data["source"] = self.source
        return data


@dataclass
class Baseline:
    """The runs of one baseline file, oldest first."""

    path: str
    runs: list[Run] = field(default_factory=list)

    def keys(self) -> list[str]:
        """Every case key any run holds, in first-seen order."""
        seen: dict[str, None] = {}
        for run in self.runs:
            seen.update(dict.fromkeys(run.cases))
        return list(seen)

    def resolve(self, key: str) -> str:
        """The stored key for ``key`` (a key or a node id): itself, or the one stored key that
        differs only by leading directories."""
        known = self.keys()
        if key in known:
            return key
        short = case_key(key)
        if short in known:
            return short
        tails = [k for k in known if k.endswith("/" + key) or key.endswith("/" + k)]
        return tails[0] if len(tails) == 1 else key

    def entries(self, key: str) -> list[tuple[Run, Entry]]:
        """(run, entry) for every run that holds the case, oldest first."""
        stored = self.resolve(key)
        return [(run, run.cases[stored]) for run in self.runs if stored in run.cases]

    def to_dict(self) -> JSONDict:
        return {"schema_version": SCHEMA_VERSION, "tool": TOOL, "runs": [r.to_dict() for r in self.runs]}


def new_run(results: Iterable[CaseResult], environment: JSONDict, source: str = "pytest",
            created: str | None = None) -> Run:
    """A run from one process's results; a key seen twice keeps its last result (reruns)."""
    now = datetime.now(timezone.utc)
    cases = {r.key or case_key(r.nodeid): Entry.of(r) for r in results}
    return Run(f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}", created or now.isoformat(timespec="seconds"),
               dict(environment), cases, source)


def save(path: str | os.PathLike[str], runs: Iterable[Run], *, keep_runs: int = KEEP_RUNS) -> Baseline:
    """Append ``runs`` to the baseline at ``path`` (created if absent), keeping the newest ``keep_runs``.

    An existing file that does not load is left alone and raises ``BaselineError``: a corrupt
    baseline is never silently replaced.
    """
    added = list(runs)
    return update(path, lambda baseline: baseline.runs.extend(added), keep_runs=keep_runs)


def update(path: str | os.PathLike[str], change: Callable[[Baseline], object], *, keep_runs: int = MAX_RUNS,
           create: bool = True) -> Baseline:
    """Load, ``change(baseline)`` in place, trim to ``keep_runs`` and write back, all under the lock."""
    from filelock import FileLock, Timeout

    if keep_runs < 1:
        raise ValueError(f"keep_runs must be at least 1, got {keep_runs}")
    target = Path(path)
    lock = FileLock(str(target) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            exists = target.exists() and target.stat().st_size > 0
            if not exists and not create:
                raise BaselineError(f"{target}: baseline file does not exist")
            baseline = load(target) if exists else Baseline(str(target))
            change(baseline)
            baseline.runs = baseline.runs[-keep_runs:]
            atomic.write_json(target, baseline.to_dict())
    except Timeout as exc:
        raise BaselineError(f"{target}: could not lock {lock.lock_file} within {LOCK_TIMEOUT_S:.0f} s") from exc
    except OSError as exc:
        raise BaselineError(f"{target}: cannot write the baseline: {exc.strerror or exc}") from None
    return baseline


def load(path: str | os.PathLike[str]) -> Baseline:
    """Read and validate a baseline file; never modifies it."""
    try:
        data = jsonfile.read(path, "baseline file")
    except jsonfile.FileFormatError as exc:
        raise BaselineError(str(exc)) from None
    return from_dict(data, str(path))


def from_dict(data: JSON, source: str) -> Baseline:
    """Validate a parsed baseline document; ``source`` names it in errors."""
    from pytest_trt import schema

    try:
        return schema.baseline(data, source)
    except schema.SchemaError as exc:
        raise BaselineError(str(exc)) from None


def runs_from_results(results: Iterable[CaseResult], environment: JSONDict, source: str,
                      created: str | None = None) -> Run:
    """A results file as a baseline run (``pytest-trt baseline add``, ``compare``). Interrupted cases
    are left out: they say nothing about the code, and as the newest entry would hide the last one."""
    kept = [r for r in results if r.status is not CaseState.INTERRUPTED]
    return new_run(kept, environment, source, created)


def describe_environment(environment: Mapping[str, JSON]) -> str:
    hardware = environment.get("hardware")
    hw: Mapping[str, JSON] = hardware if isinstance(hardware, dict) else {}
    return str(hw.get("gpu_name") or hw.get("cpu_model") or hw.get("kind") or "unknown device")
