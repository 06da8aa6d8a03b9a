"""Typed records of one case: what crosses processes (xdist workers, fresh re-measurements) and lands
in results and baseline files.

Every record turns into a JSON-able dict and back (``to_dict`` / ``from_dict``); JSON lives at those
edges only. The dict shapes are the files' formats, documented in docs/design.md, and stay readable
by older and newer versions: unknown keys are kept where a record has room for them, missing ones
take their defaults.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import TYPE_CHECKING, TypeAlias

from pytest_trt.case import Case
from pytest_trt.verdict import Verdict

if TYPE_CHECKING:
    from pytest_trt.ab.record import AbResult

# A JSON value: what a record keeps of facts it does not model itself (a backend's build details).
JSON: TypeAlias = "None | bool | int | float | str | list[JSON] | dict[str, JSON]"
JSONDict = dict[str, JSON]


def case_key(nodeid: str) -> str:
    """``dir/sub/test_a.py::test_x[p]`` -> ``test_a.py::test_x[p]``: the key a baseline finds a case by.

    pytest's node ids are relative to its rootdir, which follows from the paths on the command line,
    so their directories move between runs of one project; the file, test and case do not.
    """
    path, sep, rest = nodeid.partition("::")
    return path.rsplit("/", 1)[-1] + sep + rest


class CaseState(str, Enum):
    """What became of a case. A case that could not be timed is recorded, never dropped."""

    OK = "ok"
    ERROR = "error"
    OOM = "oom"
    NAN = "nan"
    BUILD_FAILED = "build-failed"
    ACCURACY_FAILED = "accuracy-failed"
    SKIPPED = "skipped"
    CRASHED = "crashed"  # the process died in the case (a native abort in a backend)
    INTERRUPTED = "interrupted"  # the run stopped (Ctrl-C, a time limit) inside the case
    TIMEOUT = "timeout"  # the case ran past its own time bound

    @property
    def failed(self) -> bool:
        """A state that says the code under test broke (not that the run was cut short). A case past
        its own time bound counts: a model that became slow enough to time out has regressed."""
        return self in (CaseState.ERROR, CaseState.OOM, CaseState.NAN, CaseState.BUILD_FAILED, CaseState.TIMEOUT)


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
        value = {f.name: _number(data[f.name]) for f in fields(cls) if f.name != "n"}
        return cls(n=int(_number(data["n"])), **value)


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
            samples=[_number(s) for s in _list(data["samples"])],
            stats=Stats.from_dict(_dict(data["stats"])),
            warmup_iterations=int(_number(data.get("warmup_iterations", 0))),
            warmup_s=_number(data.get("warmup_s", 0.0)),
            wall_s=_number(data.get("wall_s", 0.0)),
            stop_reason=str(data.get("stop_reason", "")),
            enqueue=_stats_or_none(data.get("enqueue")),
            transfers={str(k): _number(v) for k, v in _dict(data.get("transfers") or {}).items()},
            includes_transfers=bool(data.get("includes_transfers", False)),
            calls_per_sample=int(_number(data.get("calls_per_sample") or 1)),
            gpu_compute=_stats_or_none(data.get("gpu_compute")),
            launch=_stats_or_none(data.get("launch")),
        )

    @property
    def method(self) -> tuple[str, int]:
        """How the samples were taken: samples of one call and block means are not one quantity."""
        return self.clock, self.calls_per_sample


@dataclass(frozen=True)
class Agreement:
    """The case's outputs against the fp32 reference on the same inputs."""

    max_abs: float
    rel_err: float
    cosine: float
    top1_agreement: float | None
    nonfinite: int
    worst_sample_rel_err: float
    passed: bool
    reason: str
    limits: dict[str, float | None]
    checked_items: str | list[int] = "all"  # "all", or the batch positions compared

    def to_dict(self) -> JSONDict:
        """Infinite errors (a NaN output) are written as null: JSON has no infinity."""
        data: JSONDict = asdict(self)
        for key in ("max_abs", "rel_err", "worst_sample_rel_err"):
            value = data[key]
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = None
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> Agreement:
        items = data.get("checked_items", "all")
        top1 = data.get("top1_agreement")

        def error(key: str) -> float:
            value = data.get(key, data.get("rel_err"))
            return math.inf if value is None else _number(value)

        return cls(
            max_abs=error("max_abs"),
            rel_err=error("rel_err"),
            cosine=_number(data["cosine"]),
            top1_agreement=None if top1 is None else _number(top1),
            nonfinite=int(_number(data.get("nonfinite", 0))),
            worst_sample_rel_err=error("worst_sample_rel_err"),
            passed=bool(data["passed"]),
            reason=str(data.get("reason", "")),
            limits={str(k): None if v is None else _number(v) for k, v in _dict(data.get("limits") or {}).items()},
            checked_items=items if isinstance(items, str) else [int(_number(i)) for i in _list(items)],
        )


@dataclass(frozen=True)
class TaskMetric:
    """The task metric of the case on the test split against fp32's."""

    metric: str
    value: float
    reference: float
    max_drop: float | None
    passed: bool
    message: str

    @property
    def drop(self) -> float:
        return self.reference - self.value


@dataclass(frozen=True)
class Accuracy:
    """Both accuracy checks of a case; either may be absent (no data set, not measured)."""

    agreement: Agreement | None = None
    task: TaskMetric | None = None
    checked_timed_outputs: bool = False

    @property
    def passed(self) -> bool:
        return (self.agreement is None or self.agreement.passed) and (self.task is None or self.task.passed)

    def to_dict(self) -> JSONDict:
        data: JSONDict = {}
        if self.agreement is not None:
            data["agreement"] = self.agreement.to_dict()
            data["checked_timed_outputs"] = self.checked_timed_outputs
        if self.task is not None:
            task = self.task
            data.update(metric=task.metric, value=task.value, reference=task.reference, drop=task.drop,
                        max_drop=task.max_drop, passed=task.passed, message=task.message)
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> Accuracy:
        agreement = data.get("agreement")
        task = None
        if data.get("metric") and data.get("value") is not None and data.get("reference") is not None:
            max_drop = data.get("max_drop")
            task = TaskMetric(str(data["metric"]), _number(data["value"]), _number(data["reference"]),
                              None if max_drop is None else _number(max_drop), bool(data.get("passed", True)),
                              str(data.get("message", "")))
        return cls(Agreement.from_dict(_dict(agreement)) if agreement else None, task,
                   bool(data.get("checked_timed_outputs", False)))


@dataclass(frozen=True)
class Telemetry:
    """NVML readings over a case's timed loop; absent without NVML."""

    power_mean_w: float | None = None
    power_peak_w: float | None = None
    energy_j: float | None = None
    energy_source: str | None = None  # "counter" or "integrated"
    duration_s: float | None = None
    joules_per_item: float | None = None
    items_per_s_per_w: float | None = None
    sm_clock_mhz_mean: float | None = None
    mem_clock_mhz_mean: float | None = None
    temperature_c_max: float | None = None
    throttle_reasons: list[str] = field(default_factory=list)
    throttled: bool = False
    throttled_fraction: float | None = None
    samples: int = 0
    peak_memory_bytes: int | None = None
    nvml_memory_used_max_bytes: int | None = None

    def to_dict(self) -> JSONDict:
        data: JSONDict = asdict(self)
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> Telemetry:
        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else _number(value)

        def count(key: str) -> int | None:
            value = number(key)
            return None if value is None else int(value)

        source = data.get("energy_source")
        return cls(
            power_mean_w=number("power_mean_w"), power_peak_w=number("power_peak_w"), energy_j=number("energy_j"),
            energy_source=None if source is None else str(source), duration_s=number("duration_s"),
            joules_per_item=number("joules_per_item"), items_per_s_per_w=number("items_per_s_per_w"),
            sm_clock_mhz_mean=number("sm_clock_mhz_mean"), mem_clock_mhz_mean=number("mem_clock_mhz_mean"),
            temperature_c_max=number("temperature_c_max"),
            throttle_reasons=[str(r) for r in _list(data.get("throttle_reasons") or [])],
            throttled=bool(data.get("throttled", False)), throttled_fraction=number("throttled_fraction"),
            samples=count("samples") or 0, peak_memory_bytes=count("peak_memory_bytes"),
            nvml_memory_used_max_bytes=count("nvml_memory_used_max_bytes"),
        )


@dataclass(frozen=True)
class HostLoad:
    """What the host gave the process while a case was timed (pytest_trt.host)."""

    wall_s: float
    cpu_s: float  # this process's CPU time, all threads
    run_s: float | None  # thread time on a CPU (Linux schedstat)
    wait_s: float | None  # thread time runnable but waiting for a CPU (schedstat)
    loadavg_1m: float | None
    cpu_count: int
    others_cpu_s: float | None = None  # CPU time every other process (and a hypervisor's steal) used meanwhile

    @property
    def wait_share(self) -> float | None:
        """Share of the threads' runnable time spent waiting for a CPU."""
        if self.run_s is None or self.wait_s is None or self.run_s + self.wait_s <= 0:
            return None
        return self.wait_s / (self.run_s + self.wait_s)

    @property
    def others_share(self) -> float | None:
        """Share of the machine's CPU capacity that other processes used meanwhile."""
        if self.others_cpu_s is None or self.wall_s <= 0:
            return None
        return max(0.0, self.others_cpu_s) / (self.wall_s * self.cpu_count)

    def to_dict(self) -> JSONDict:
        data: JSONDict = asdict(self)
        data["wait_share"] = self.wait_share
        data["others_share"] = self.others_share
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> HostLoad:
        def optional(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else _number(value)

        return cls(_number(data.get("wall_s", 0.0)), _number(data.get("cpu_s", 0.0)), optional("run_s"),
                   optional("wait_s"), optional("loadavg_1m"), int(_number(data.get("cpu_count") or 1)),
                   optional("others_cpu_s"))


@dataclass(frozen=True)
class RanOn:
    """Which device ran a case: with one xdist worker per GPU, each case names its own GPU."""

    device: str
    gpu_name: str | None = None
    gpu_uuid: str | None = None
    cpu_model: str | None = None
    worker: str | None = None


# Build facts the plugin itself records; everything else a runner reports stays in BuildInfo.backend.
_BUILD_FIELDS = ("model_hash", "prepare_s", "phase_s", "flops", "tflops", "peak_tflops", "peak_dtype",
                 "percent_of_peak", "ran_on", "flops_error", "transfers_error", "ort_profile", "artifacts")


@dataclass
class BuildInfo:
    """How a case was prepared: export, conversion, engine, compile times, FLOPs, the device it ran on.

    ``backend`` keeps what the runner reported about itself (providers, engine size, compile time):
    the plugin records it without interpreting it.
    """

    model_hash: str | None = None
    prepare_s: float | None = None
    phase_s: dict[str, float] = field(default_factory=dict)  # where the case's wall time went
    flops: int | None = None
    tflops: float | None = None
    peak_tflops: float | None = None
    peak_dtype: str | None = None
    percent_of_peak: float | None = None
    ran_on: RanOn | None = None
    flops_error: str | None = None
    transfers_error: str | None = None
    ort_profile: JSONDict | None = None
    # The model's files kept beside a baseline (--trt-save-artifacts): {"onnx": "<sha256>.onnx", ...}
    artifacts: dict[str, str] = field(default_factory=dict)
    backend: JSONDict = field(default_factory=dict)

    def to_dict(self) -> JSONDict:
        data: JSONDict = dict(self.backend)
        for name in _BUILD_FIELDS:
            value = getattr(self, name)
            if name == "ran_on" and value is not None:
                value = asdict(value)
            if value is not None and value != {}:
                data[name] = value
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> BuildInfo:
        ran_on = data.get("ran_on")
        profile = data.get("ort_profile")

        def optional(key: str) -> float | None:
            value = data.get(key)
            return None if value is None or isinstance(value, (dict, list, str)) else _number(value)

        flops = optional("flops")
        return cls(
            model_hash=None if data.get("model_hash") is None else str(data["model_hash"]),
            prepare_s=optional("prepare_s"),
            phase_s={str(k): _number(v) for k, v in _dict(data.get("phase_s") or {}).items()},
            flops=None if flops is None else int(flops),
            tflops=optional("tflops"),
            peak_tflops=optional("peak_tflops"),
            peak_dtype=None if data.get("peak_dtype") is None else str(data["peak_dtype"]),
            percent_of_peak=optional("percent_of_peak"),
            ran_on=_ran_on(ran_on),
            flops_error=None if data.get("flops_error") is None else str(data["flops_error"]),
            transfers_error=None if data.get("transfers_error") is None else str(data["transfers_error"]),
            ort_profile=_dict(profile) if isinstance(profile, dict) else None,
            artifacts={str(k): str(v) for k, v in _dict(data.get("artifacts") or {}).items()},
            backend={k: v for k, v in data.items() if k not in _BUILD_FIELDS},
        )


@dataclass
class CaseResult:
    """Everything recorded for one case; ``status`` says whether it was timed."""

    case: Case
    nodeid: str
    model_name: str
    status: CaseState = CaseState.OK
    message: str = ""
    timing: Timing | None = None
    accuracy: Accuracy = field(default_factory=Accuracy)
    telemetry: Telemetry | None = None
    host: HostLoad | None = None
    build: BuildInfo = field(default_factory=BuildInfo)
    flags: list[Flag] = field(default_factory=list)
    verdict: Verdict | None = None
    key: str = ""  # the baseline key: stable when pytest's rootdir moves (baseline.case_key)
    ab: AbResult | None = None  # an A/B comparison (trt_ab): this case's candidate against its reference

    @property
    def case_id(self) -> str:
        return self.case.id

    @property
    def median(self) -> float | None:
        return self.timing.stats.median if self.timing is not None else None

    def to_dict(self) -> JSONDict:
        data: JSONDict = {
            "case": {k: v for k, v in self.case.to_dict().items()},
            "nodeid": self.nodeid,
            "key": self.key or case_key(self.nodeid),
            "model_name": self.model_name,
            "case_id": self.case.id,
            "status": self.status.value,
            "message": self.message,
            "timing": self.timing.to_dict() if self.timing is not None else None,
            "accuracy": self.accuracy.to_dict(),
            "telemetry": self.telemetry.to_dict() if self.telemetry is not None else {},
            "host": self.host.to_dict() if self.host is not None else None,
            "build": self.build.to_dict(),
            "flags": [flag.value for flag in self.flags],
            "verdict": self.verdict.to_dict() if self.verdict is not None else None,
        }
        if self.ab is not None:  # absent otherwise: files without A/B cases read as before
            data["ab"] = self.ab.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> CaseResult:
        from pytest_trt.ab.record import AbResult

        timing, telemetry, host, verdict = (data.get(k) for k in ("timing", "telemetry", "host", "verdict"))
        ab = data.get("ab")
        raw_telemetry = _dict(telemetry) if isinstance(telemetry, dict) else {}
        if host is None and isinstance(raw_telemetry.get("host"), dict):
            host = raw_telemetry["host"]  # written inside telemetry by an earlier version
        return cls(
            case=Case.from_dict(_dict(data["case"])),
            nodeid=str(data["nodeid"]),
            model_name=str(data.get("model_name") or data["nodeid"]),
            status=CaseState(str(data.get("status", "ok"))),
            message=str(data.get("message", "")),
            timing=Timing.from_dict(_dict(timing)) if timing else None,
            accuracy=Accuracy.from_dict(_dict(data.get("accuracy") or {})),
            telemetry=Telemetry.from_dict(raw_telemetry) if raw_telemetry else None,
            host=HostLoad.from_dict(_dict(host)) if isinstance(host, dict) else None,
            build=BuildInfo.from_dict(_dict(data.get("build") or {})),
            flags=[f for f in (Flag.parse(str(t)) for t in _list(data.get("flags") or [])) if f is not None],
            verdict=Verdict.from_dict(_dict(verdict)) if isinstance(verdict, dict) else None,
            key=str(data.get("key") or ""),
            ab=AbResult.from_dict(ab) if isinstance(ab, dict) else None,
        )


def _ran_on(value: JSON) -> RanOn | None:
    if not isinstance(value, dict) or "device" not in value:
        return None

    def text(key: str) -> str | None:
        item = value.get(key)
        return None if item is None else str(item)

    return RanOn(str(value["device"]), text("gpu_name"), text("gpu_uuid"), text("cpu_model"), text("worker"))


def _number(value: JSON) -> float:
    """A JSON number as float; bools and non-numbers are refused (a file's defect, not ours)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number):
        raise ValueError("expected a number, got NaN")
    return number


def _dict(value: JSON) -> JSONDict:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: JSON) -> list[JSON]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _stats_or_none(value: JSON) -> Stats | None:
    return Stats.from_dict(_dict(value)) if value else None
