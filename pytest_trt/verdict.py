"""The gate's verdict on one case: a typed record that rides on test reports and lands in files."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pytest_trt.jsontypes import JSON


class Outcome(str, Enum):
    PASS = "PASS"
    REGRESSION = "REGRESSION"  # the test item fails
    IMPROVED = "IMPROVED"
    UNSTABLE = "UNSTABLE"  # not gateable at this threshold: the case's own noise is larger
    INCONCLUSIVE = "INCONCLUSIVE"  # slower, but the machine as a whole was slower or contended
    INCOMPARABLE = "INCOMPARABLE"  # other hardware or another timing method: compared, not gated
    NEW = "NEW"  # no baseline entry
    MISSING = "MISSING"  # in the baseline, not run


# Worst first: what the reader of a failed nightly wants at the top.
SEVERITY = (Outcome.REGRESSION, Outcome.INCONCLUSIVE, Outcome.UNSTABLE, Outcome.MISSING, Outcome.INCOMPARABLE,
            Outcome.NEW, Outcome.IMPROVED, Outcome.PASS)


@dataclass
class Verdict:
    """The outcome for one case and metric ("latency", or "energy" per item), with its evidence.

    Ratios are tonight over the baseline's reference: its run median, or for a case whose runs fall
    into several modes (kernel choice per process) the mode nearest tonight. ``noise`` is the slowdown
    A/A nights reach at the gate's false-alarm level, ``detectable`` the smallest slowdown caught in
    95 % of nights; both are fractions (0.04 = 4 %).
    """

    outcome: Outcome
    nodeid: str
    case_id: str
    threshold: float
    metric: str = "latency"
    ratio: float | None = None
    ratio_ci: tuple[float, float] | None = None
    confidence: float | None = None
    p_value: float | None = None
    baseline_median: float | None = None
    current_median: float | None = None
    run_spread: float | None = None  # between-process standard deviation of log medians
    baseline_runs: int = 0
    noise: float | None = None
    detectable: float | None = None
    modes: list[float] = field(default_factory=list)  # mode centres when the runs are multimodal
    excluded_runs: list[str] = field(default_factory=list)  # "run id: why", left out of the history
    night: list[float] = field(default_factory=list)  # tonight's process medians, first one first
    accuracy_drop: float | None = None
    changes: list[str] = field(default_factory=list)
    message: str = ""
    timing_outcome: str | None = None  # what the timing alone decided
    accuracy_failed: bool = False
    confirmations: list[float] = field(default_factory=list)  # ratios of the fresh re-measurements
    advice: str = ""  # what would make a noisy case gateable
    energy: Verdict | None = None  # the energy-per-item verdict when it is gated
    # Per pipeline stage (pytest_trt.pipeline.GATED), judged by the same rule; a stage's REGRESSION
    # makes the case's outcome REGRESSION too, its message naming the stage.
    stages: dict[str, Verdict] = field(default_factory=dict)

    @property
    def detail(self) -> str:
        """The message without its leading 'OUTCOME case-id: '."""
        prefix = f"{self.outcome.value} {self.case_id}: "
        return self.message[len(prefix):] if self.message.startswith(prefix) else self.message

    @property
    def failed(self) -> bool:
        """Whether the test item of this case fails: a latency or an energy regression."""
        return self.outcome is Outcome.REGRESSION or (self.energy is not None and self.energy.failed)

    def to_dict(self) -> dict[str, JSON]:
        data: dict[str, JSON] = {k: v for k, v in asdict(self).items() if k not in ("energy", "stages")}
        data["outcome"] = self.outcome.value
        data["ratio_ci"] = list(self.ratio_ci) if self.ratio_ci else None
        data["energy"] = self.energy.to_dict() if self.energy is not None else None
        if self.stages:
            data["stages"] = {name: verdict.to_dict() for name, verdict in self.stages.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> Verdict:
        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

        def numbers(key: str) -> list[float]:
            value = data.get(key)
            return [float(v) for v in value if isinstance(v, (int, float))] if isinstance(value, list) else []

        def texts(key: str) -> list[str]:
            value = data.get(key)
            return [str(v) for v in value] if isinstance(value, list) else []

        ci = numbers("ratio_ci")
        energy = data.get("energy")
        stages = data.get("stages")
        outcome = str(data.get("outcome", "PASS"))
        return cls(
            outcome=Outcome(outcome) if outcome in Outcome._value2member_map_ else Outcome.PASS,
            nodeid=str(data.get("nodeid", "")),
            case_id=str(data.get("case_id", "")),
            threshold=number("threshold") or 0.0,
            metric=str(data.get("metric") or "latency"),
            ratio=number("ratio"),
            ratio_ci=(ci[0], ci[1]) if len(ci) == 2 else None,
            confidence=number("confidence"),
            p_value=number("p_value"),
            baseline_median=number("baseline_median"),
            current_median=number("current_median"),
            run_spread=number("run_spread"),
            baseline_runs=int(number("baseline_runs") or 0),
            noise=number("noise"),
            detectable=number("detectable"),
            modes=numbers("modes"),
            excluded_runs=texts("excluded_runs"),
            night=numbers("night"),
            accuracy_drop=number("accuracy_drop"),
            changes=texts("changes"),
            message=str(data.get("message", "")),
            timing_outcome=None if data.get("timing_outcome") is None else str(data["timing_outcome"]),
            accuracy_failed=bool(data.get("accuracy_failed", False)),
            confirmations=numbers("confirmations"),
            advice=str(data.get("advice", "")),
            energy=cls.from_dict(energy) if isinstance(energy, dict) else None,
            stages={str(k): cls.from_dict(v) for k, v in stages.items() if isinstance(v, dict)}
            if isinstance(stages, dict) else {},
        )


def format_seconds(value: float | None) -> str:
    """1.234e-3 → '1.234 ms'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {unit}"
    return f"{value * 1e9:.1f} ns"


def format_p(p: float | None) -> str:
    """2.1e-9 → '2e-9'; 0.0312 → '0.031'."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if p >= 0.001:
        return f"{p:.2g}"
    if p == 0:
        return "<1e-300"
    mantissa, exponent = f"{p:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def format_percent(fraction: float | None) -> str:
    """0.0391 → '3.9%'; None → 'n/a'."""
    if fraction is None or not math.isfinite(fraction):
        return "n/a"
    return f"{fraction * 100:.1f}%" if fraction < 0.1 else f"{fraction * 100:.0f}%"
