"""Typed records of one case: what crosses processes (xdist workers, fresh re-measurements) and lands
in results and baseline files.

Every record turns into a JSON-able dict and back (``to_dict`` / ``from_dict``); JSON lives at those
edges only. The dict shapes are the files' formats, documented in docs/design.md, and stay readable
by older and newer versions: unknown keys are kept where a record has room for them, missing ones
take their defaults.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from pytest_trt.case import Case
from pytest_trt.conditions import HostLoad, Telemetry
from pytest_trt.jsontypes import JSON, JSONDict, as_dict, as_list, as_number
from pytest_trt.latency import Flag, Stats, Timing
from pytest_trt.quality import Accuracy, Agreement, TaskMetric
from pytest_trt.verdict import Verdict

if TYPE_CHECKING:  # these modules import this one: their records are read lazily in from_dict
    from pytest_trt.ab.record import AbResult
    from pytest_trt.concurrency import Concurrency

__all__ = [
    "JSON", "Accuracy", "Agreement", "BuildInfo", "CaseResult", "CaseState", "Flag", "HostLoad", "JSONDict",
    "RanOn", "Stats", "TaskMetric", "Telemetry", "Timing", "case_key",
]


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
            return None if value is None or isinstance(value, (dict, list, str)) else as_number(value)

        flops = optional("flops")
        return cls(
            model_hash=None if data.get("model_hash") is None else str(data["model_hash"]),
            prepare_s=optional("prepare_s"),
            phase_s={str(k): as_number(v) for k, v in as_dict(data.get("phase_s") or {}).items()},
            flops=None if flops is None else int(flops),
            tflops=optional("tflops"),
            peak_tflops=optional("peak_tflops"),
            peak_dtype=None if data.get("peak_dtype") is None else str(data["peak_dtype"]),
            percent_of_peak=optional("percent_of_peak"),
            ran_on=_ran_on(ran_on),
            flops_error=None if data.get("flops_error") is None else str(data["flops_error"]),
            transfers_error=None if data.get("transfers_error") is None else str(data["transfers_error"]),
            ort_profile=as_dict(profile) if isinstance(profile, dict) else None,
            artifacts={str(k): str(v) for k, v in as_dict(data.get("artifacts") or {}).items()},
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
    # Pipeline stages around the network, host-timed (pytest_trt.pipeline): prepare, d2h, post, total.
    # The network's own timing stays ``timing`` (the "infer" stage), so its baseline entries compare.
    stages: dict[str, Timing] = field(default_factory=dict)
    concurrency: Concurrency | None = None  # several streams at once, or one stream's reference for them
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
            # Written only when measured: files of cases without them stay as they were.
            **({"stages": {name: t.to_dict() for name, t in self.stages.items()}} if self.stages else {}),
            **({"concurrency": self.concurrency.to_dict()} if self.concurrency is not None else {}),
        }
        if self.ab is not None:  # absent otherwise: files without A/B cases read as before
            data["ab"] = self.ab.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> CaseResult:
        from pytest_trt.ab.record import AbResult

        timing, telemetry, host, verdict = (data.get(k) for k in ("timing", "telemetry", "host", "verdict"))
        ab = data.get("ab")
        raw_telemetry = as_dict(telemetry) if isinstance(telemetry, dict) else {}
        if host is None and isinstance(raw_telemetry.get("host"), dict):
            host = raw_telemetry["host"]  # written inside telemetry by an earlier version
        return cls(
            case=Case.from_dict(as_dict(data["case"])),
            nodeid=str(data["nodeid"]),
            model_name=str(data.get("model_name") or data["nodeid"]),
            status=CaseState(str(data.get("status", "ok"))),
            message=str(data.get("message", "")),
            timing=Timing.from_dict(as_dict(timing)) if timing else None,
            accuracy=Accuracy.from_dict(as_dict(data.get("accuracy") or {})),
            telemetry=Telemetry.from_dict(raw_telemetry) if raw_telemetry else None,
            host=HostLoad.from_dict(as_dict(host)) if isinstance(host, dict) else None,
            build=BuildInfo.from_dict(as_dict(data.get("build") or {})),
            flags=[f for f in (Flag.parse(str(t)) for t in as_list(data.get("flags") or [])) if f is not None],
            verdict=Verdict.from_dict(as_dict(verdict)) if isinstance(verdict, dict) else None,
            key=str(data.get("key") or ""),
            stages={str(k): Timing.from_dict(as_dict(v)) for k, v in as_dict(data.get("stages") or {}).items()},
            concurrency=_concurrency(data.get("concurrency")),
            ab=AbResult.from_dict(ab) if isinstance(ab, dict) else None,
        )


def _concurrency(value: JSON) -> Concurrency | None:
    if not isinstance(value, dict):
        return None
    from pytest_trt.concurrency import Concurrency

    return Concurrency.from_dict(value)


def _ran_on(value: JSON) -> RanOn | None:
    if not isinstance(value, dict) or "device" not in value:
        return None

    def text(key: str) -> str | None:
        item = value.get(key)
        return None if item is None else str(item)

    return RanOn(str(value["device"]), text("gpu_name"), text("gpu_uuid"), text("cpu_model"), text("worker"))
