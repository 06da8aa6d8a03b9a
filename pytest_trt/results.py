"""Result records of one case: timing statistics, accuracy, telemetry and state.

Plain dataclasses that turn into JSON-able dicts, so they can ride on test reports between
pytest-xdist workers and the controller and land in results and baseline files.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pytest_trt.case import Case

# Case states (DESIGN.md rule 12): a case that could not be timed is recorded, never dropped.
OK = "ok"
ERROR = "error"
OOM = "oom"
NAN = "nan"
BUILD_FAILED = "build-failed"
ACCURACY_FAILED = "accuracy-failed"
SKIPPED = "skipped"
CRASHED = "crashed"  # the process died in the case (a native abort in a backend); pytest-xdist only
INTERRUPTED = "interrupted"  # the run stopped (Ctrl-C, a time limit) inside the case; message: its phase

# Flags (DESIGN.md rule 7).
UNSTABLE = "UNSTABLE"
ENQUEUE_BOUND = "ENQUEUE-BOUND"


@dataclass(frozen=True)
class Stats:
    """Summary of latency samples in seconds; throughput in items per second."""

    n: int
    min: float
    max: float
    mean: float
    median: float
    p90: float
    p95: float
    p99: float
    stddev: float
    cv: float  # stddev / mean
    median_ci_low: float  # distribution-free confidence interval of the median
    median_ci_high: float
    throughput: float  # batch_size * iterations / wall time of the measured loop


@dataclass(frozen=True)
class Timing:
    """What the timing engine measured for one runner."""

    clock: str  # "cuda-event" or "perf_counter"
    samples: list[float]  # seconds per call: one call, or a block's mean (calls_per_sample); bounded when stored
    stats: Stats
    warmup_iterations: int
    warmup_s: float
    wall_s: float  # wall time of the measured loop
    stop_reason: str  # "converged", "max-time", "max-iterations"
    enqueue: Stats | None = None  # host enqueue time per iteration (GPU clocks only)
    transfers: dict[str, float] = field(default_factory=dict)  # median h2d_s / d2h_s if measured
    includes_transfers: bool = False  # False: inputs and outputs stay on the device
    calls_per_sample: int = 1  # > 1: each sample is the mean of this many calls between two CUDA events
    gpu_compute: Stats | None = None  # GPU time per call with every kernel queued (timing.backlog_probe)
    launch: Stats | None = None  # host time to enqueue one call while the GPU is held (same probe)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        enqueue = data.get("enqueue")
        gpu_compute, launch = data.get("gpu_compute"), data.get("launch")
        return cls(
            clock=data["clock"],
            samples=list(data["samples"]),
            stats=Stats(**data["stats"]),
            warmup_iterations=data["warmup_iterations"],
            warmup_s=data["warmup_s"],
            wall_s=data["wall_s"],
            stop_reason=data["stop_reason"],
            enqueue=Stats(**enqueue) if enqueue else None,
            transfers=dict(data.get("transfers", {})),
            includes_transfers=bool(data.get("includes_transfers", False)),
            calls_per_sample=int(data.get("calls_per_sample", 1)),
            gpu_compute=Stats(**gpu_compute) if gpu_compute else None,
            launch=Stats(**launch) if launch else None,
        )


@dataclass
class CaseResult:
    """Everything recorded for one case; ``status`` says whether it was timed."""

    case: Case
    nodeid: str
    model_name: str
    status: str = OK
    message: str = ""
    timing: Timing | None = None
    accuracy: dict[str, Any] = field(default_factory=dict)
    telemetry: dict[str, Any] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)  # export/build times, engine size, ...
    flags: list[str] = field(default_factory=list)
    verdict: dict[str, Any] | None = None  # the gate's outcome against a baseline

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["case_id"] = self.case.id
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaseResult:
        timing = data.get("timing")
        return cls(
            case=Case.from_dict(data["case"]),
            nodeid=data["nodeid"],
            model_name=data["model_name"],
            status=data.get("status", OK),
            message=data.get("message", ""),
            timing=Timing.from_dict(timing) if timing else None,
            accuracy=dict(data.get("accuracy") or {}),
            telemetry=dict(data.get("telemetry") or {}),
            build=dict(data.get("build") or {}),
            flags=list(data.get("flags") or []),
            verdict=data.get("verdict"),
        )
