"""The timing records: a summary of latency samples, one runner's timing, and what the timing flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import Enum

from pytest_trt.jsontypes import JSON, JSONDict, as_dict, as_list, as_number


class Flag(str, Enum):
    """What the timing itself says about a case: shown in tables, never a verdict."""

    NOISY = "NOISY"  # CV above 2.5 % (trtexec's rule)
    THROTTLED = "THROTTLED"  # NVML reported clock throttling during the timing
    ENQUEUE_BOUND = "ENQUEUE-BOUND"  # launching a call takes > 0.8 x its GPU time: the host sets the pace
    CONTENDED = "CONTENDED"  # the process waited for a CPU during the timing (host.CONTENDED_WAIT_SHARE)

    @classmethod
    def parse(cls, text: str) -> Flag | None:
        """Files written before the flag was renamed say UNSTABLE for NOISY."""
        text = "NOISY" if text == "UNSTABLE" else text
        return cls(text) if text in cls._value2member_map_ else None


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
    throughput: float  # batch_size * calls / wall time of the measured loop

    @classmethod
    def from_dict(cls, data: JSONDict) -> Stats:
        value = {f.name: as_number(data[f.name]) for f in fields(cls) if f.name != "n"}
        return cls(n=int(as_number(data["n"])), **value)


@dataclass(frozen=True)
class Timing:
    """What the timing engine measured for one runner."""

    clock: str  # "cuda-event", "cuda-event-cold-l2" or "perf_counter"
    samples: list[float]  # seconds per call: one call, or a block's mean (calls_per_sample)
    stats: Stats
    warmup_iterations: int
    warmup_s: float
    wall_s: float  # wall time of the measured loop
    stop_reason: str  # "converged", "min-reached", "max-time", "max-iterations"
    enqueue: Stats | None = None  # host enqueue time per call (GPU clocks only)
    transfers: dict[str, float] = field(default_factory=dict)  # median h2d_s / compute_s / d2h_s
    includes_transfers: bool = False  # False: inputs and outputs stay on the device
    calls_per_sample: int = 1  # > 1: each sample is the mean of this many calls between two CUDA events
    gpu_compute: Stats | None = None  # GPU time per call with every kernel queued (timing.backlog_probe)
    launch: Stats | None = None  # host time to enqueue one call while the GPU is held (same probe)

    def to_dict(self) -> JSONDict:
        data: JSONDict = asdict(self)
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> Timing:
        return cls(
            clock=str(data["clock"]),
            samples=[as_number(s) for s in as_list(data["samples"])],
            stats=Stats.from_dict(as_dict(data["stats"])),
            warmup_iterations=int(as_number(data.get("warmup_iterations", 0))),
            warmup_s=as_number(data.get("warmup_s", 0.0)),
            wall_s=as_number(data.get("wall_s", 0.0)),
            stop_reason=str(data.get("stop_reason", "")),
            enqueue=stats_or_none(data.get("enqueue")),
            transfers={str(k): as_number(v) for k, v in as_dict(data.get("transfers") or {}).items()},
            includes_transfers=bool(data.get("includes_transfers", False)),
            calls_per_sample=int(as_number(data.get("calls_per_sample") or 1)),
            gpu_compute=stats_or_none(data.get("gpu_compute")),
            launch=stats_or_none(data.get("launch")),
        )

    @property
    def method(self) -> tuple[str, int]:
        """How the samples were taken: samples of one call and block means are not one quantity."""
        return self.clock, self.calls_per_sample


def stats_or_none(value: JSON) -> Stats | None:
    return Stats.from_dict(as_dict(value)) if value else None
