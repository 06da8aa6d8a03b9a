"""The accuracy records: agreement of a case's outputs with the fp32 reference, and its task metric."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pytest_trt.jsontypes import JSONDict, as_dict, as_list, as_number


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
            return math.inf if value is None else as_number(value)

        return cls(
            max_abs=error("max_abs"),
            rel_err=error("rel_err"),
            cosine=as_number(data["cosine"]),
            top1_agreement=None if top1 is None else as_number(top1),
            nonfinite=int(as_number(data.get("nonfinite", 0))),
            worst_sample_rel_err=error("worst_sample_rel_err"),
            passed=bool(data["passed"]),
            reason=str(data.get("reason", "")),
            limits={str(k): None if v is None else as_number(v) for k, v in as_dict(data.get("limits") or {}).items()},
            checked_items=items if isinstance(items, str) else [int(as_number(i)) for i in as_list(items)],
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
            task = TaskMetric(str(data["metric"]), as_number(data["value"]), as_number(data["reference"]),
                              None if max_drop is None else as_number(max_drop), bool(data.get("passed", True)),
                              str(data.get("message", "")))
        return cls(Agreement.from_dict(as_dict(agreement)) if agreement else None, task,
                   bool(data.get("checked_timed_outputs", False)))
