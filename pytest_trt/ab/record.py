"""The typed record of one A/B comparison: what rides on reports (xdist, fresh processes) and lands in
results files as ``CaseResult.ab``.

JSON lives at ``to_dict`` / ``from_dict`` only, as for the other records (``pytest_trt.records``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pytest_trt.case import Case
from pytest_trt.jsontypes import JSON, JSONDict, as_dict, as_list, as_number
from pytest_trt.quality import Agreement, TaskMetric
from pytest_trt.verdict import Outcome

MAX_ROUNDS_KEPT = 5000  # per process: every round of a 10 s measurement, bounded for the files
MAX_INSTANCES = 16  # pairs of runner instances per process: the most --trt-ab-instances allows


@dataclass(frozen=True)
class AbArm:
    """One side of the comparison: what it is, the case it ran as, and its median latency."""

    label: str  # "A" / "B", or the user's label
    source: str  # "model res-cnn", "ONNX main.onnx (sha256 3f2a…)", "baseline artifact …"
    case: Case
    median_s: float | None = None
    model_hash: str | None = None

    def to_dict(self) -> JSONDict:
        return {"label": self.label, "source": self.source, "case": {k: v for k, v in self.case.to_dict().items()},
                "median_s": self.median_s, "model_hash": self.model_hash}

    @classmethod
    def from_dict(cls, data: JSONDict) -> AbArm:
        median, model_hash = data.get("median_s"), data.get("model_hash")
        return cls(str(data["label"]), str(data.get("source", "")), Case.from_dict(as_dict(data["case"])),
                   None if median is None else as_number(median), None if model_hash is None else str(model_hash))


@dataclass(frozen=True)
class AbProcess:
    """One process's interleaved measurement: B/A per round, its median and that median's CI.

    ``log_ratios`` are the rounds' log(B/A) in the order they ran, so a verdict can be re-derived
    offline at another threshold or confidence (lab/ab/analyze.py does).
    """

    ratio: float
    ci_low: float
    ci_high: float
    rounds: int
    calls_per_block: int
    clock: str  # "perf_counter", "process_time" (--trt-ab-clock cpu) or "cuda-event"
    a_median_s: float
    b_median_s: float
    log_ratios: list[float] = field(default_factory=list)
    fresh: bool = False  # measured in a fresh child process (--trt-ab-processes)
    seed: int = 0  # the seed of the rounds' random order
    wall_s: float = 0.0
    stop_reason: str = ""
    # B/A of each pair of runner instances the rounds were split over (--trt-ab-instances), in order;
    # empty for one pair. Their spread is what two builds of one model differ by in this process.
    instance_ratios: list[float] = field(default_factory=list)

    def to_dict(self) -> JSONDict:
        data: JSONDict = asdict(self)
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> AbProcess:
        return cls(
            ratio=as_number(data["ratio"]), ci_low=as_number(data["ci_low"]), ci_high=as_number(data["ci_high"]),
            rounds=int(as_number(data["rounds"])), calls_per_block=int(as_number(data.get("calls_per_block", 1))),
            clock=str(data.get("clock", "")), a_median_s=as_number(data["a_median_s"]),
            b_median_s=as_number(data["b_median_s"]),
            log_ratios=[as_number(x) for x in as_list(data.get("log_ratios") or [])][:MAX_ROUNDS_KEPT],
            fresh=bool(data.get("fresh", False)), seed=int(as_number(data.get("seed", 0))),
            wall_s=as_number(data.get("wall_s", 0.0)), stop_reason=str(data.get("stop_reason", "")),
            instance_ratios=[as_number(x) for x in as_list(data.get("instance_ratios") or [])][:MAX_INSTANCES],
        )


@dataclass
class AbResult:
    """The A/B verdict on one case: B/A over every process, what it decided, and B's accuracy against A."""

    outcome: Outcome  # PASS, REGRESSION, IMPROVED, UNSTABLE or INCONCLUSIVE
    threshold: float
    confidence: float
    reference: AbArm
    candidate: AbArm
    processes: list[AbProcess] = field(default_factory=list)
    ratio: float | None = None  # B/A: the median of the processes' ratios
    ci: tuple[float, float] | None = None  # the hull of the processes' CIs
    spread: float | None = None  # standard deviation of the processes' log ratios (2 or more)
    agreement: Agreement | None = None  # B's outputs against A's on the same inputs
    reference_agreement: Agreement | None = None  # A's outputs against its own model's fp32 reference
    task: TaskMetric | None = None  # B's task metric against A's (``reference`` is A's value)
    accuracy_failed: bool = False
    failures: list[str] = field(default_factory=list)  # fresh processes that gave no measurement
    message: str = ""

    @property
    def failed(self) -> bool:
        """Whether the test item fails: B is slower, or its outputs or task metric fell from A's."""
        return self.outcome is Outcome.REGRESSION or self.accuracy_failed

    @property
    def detail(self) -> str:
        prefix = f"{self.outcome.value} "
        return self.message[len(prefix):] if self.message.startswith(prefix) else self.message

    def to_dict(self) -> JSONDict:
        task = self.task
        return {
            "outcome": self.outcome.value, "threshold": self.threshold, "confidence": self.confidence,
            "reference": self.reference.to_dict(), "candidate": self.candidate.to_dict(),
            "processes": [p.to_dict() for p in self.processes], "ratio": self.ratio,
            "ci": list(self.ci) if self.ci else None, "spread": self.spread,
            "agreement": self.agreement.to_dict() if self.agreement else None,
            "reference_agreement": self.reference_agreement.to_dict() if self.reference_agreement else None,
            "task": None if task is None else {"metric": task.metric, "value": task.value,
                                               "reference": task.reference, "max_drop": task.max_drop,
                                               "passed": task.passed, "message": task.message},
            "accuracy_failed": self.accuracy_failed, "failures": list(self.failures), "message": self.message,
        }

    @classmethod
    def from_dict(cls, data: JSONDict) -> AbResult:
        outcome = str(data.get("outcome", "PASS"))
        ci = [as_number(x) for x in as_list(data.get("ci") or [])]
        return cls(
            outcome=Outcome(outcome) if outcome in Outcome._value2member_map_ else Outcome.PASS,
            threshold=as_number(data.get("threshold", 0.0)), confidence=as_number(data.get("confidence", 0.0)),
            reference=AbArm.from_dict(as_dict(data["reference"])),
            candidate=AbArm.from_dict(as_dict(data["candidate"])),
            processes=[AbProcess.from_dict(as_dict(p)) for p in as_list(data.get("processes") or [])],
            ratio=_optional(data.get("ratio")), ci=(ci[0], ci[1]) if len(ci) == 2 else None,
            spread=_optional(data.get("spread")), agreement=_agreement(data.get("agreement")),
            reference_agreement=_agreement(data.get("reference_agreement")), task=_task(data.get("task")),
            accuracy_failed=bool(data.get("accuracy_failed", False)),
            failures=[str(f) for f in as_list(data.get("failures") or [])], message=str(data.get("message", "")),
        )


def _optional(value: JSON) -> float | None:
    return None if value is None else as_number(value)


def _agreement(value: JSON) -> Agreement | None:
    return Agreement.from_dict(as_dict(value)) if isinstance(value, dict) else None


def _task(value: JSON) -> TaskMetric | None:
    if not isinstance(value, dict):
        return None
    max_drop = value.get("max_drop")
    return TaskMetric(str(value["metric"]), as_number(value["value"]), as_number(value["reference"]),
                      None if max_drop is None else as_number(max_drop), bool(value.get("passed", True)),
                      str(value.get("message", "")))
