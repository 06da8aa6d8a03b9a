"""The checks every timed case passes through: its outputs against fp32, its task metric, its state.

The outputs of the timed iterations themselves are checked against the fp32 reference, so a runner
that is fast because it returned stale, zero or partial outputs fails (docs/design.md, rule 11).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from pytest_trt import accuracy
from pytest_trt.records import Accuracy, Agreement, CaseState, TaskMetric


@dataclass(frozen=True)
class AccuracyLimits:
    max_drop: float | None = None  # task-metric drop against fp32; None: measured, not gated
    metric: str | None = None  # override the spec's metric
    agreement: dict[str, float] | None = None  # override output-agreement limits


def agreement(output: np.ndarray, inputs: np.ndarray, precision: str, limits: AccuracyLimits,
              reference: Callable[[np.ndarray, tuple[int, ...] | None], np.ndarray]) -> Agreement:
    """``output`` against ``reference(inputs, items)``, on a bounded subset of a big batch's items.

    NaN or Inf in the output is reported as such before any reference is asked for: a model that
    produces them in fp32 too has no finite reference to compare with.
    """
    output = np.asarray(output)
    items = accuracy.checked_items(output.shape[0], output[:1].size) if output.ndim else None
    if items is not None:
        output, inputs = output[list(items)], inputs[list(items)]
    custom = accuracy.Limits(**limits.agreement) if limits.agreement else None
    nonfinite = int(output.size - np.count_nonzero(np.isfinite(output)))
    if nonfinite:
        return accuracy.nonfinite(nonfinite, precision, custom, items)
    expected = reference(inputs, items)
    if not np.all(np.isfinite(expected)):
        return accuracy.nonfinite(int(expected.size - np.count_nonzero(np.isfinite(expected))), precision, custom,
                                  items, where="the fp32 reference (the model itself produces them)")
    return accuracy.agreement(output, expected, precision, custom, items)


def task_metric(run_batch: Callable[[np.ndarray], np.ndarray], x: np.ndarray, y: np.ndarray, batch_size: int,
                metric: str, num_classes: int, reference: float, max_drop: float | None) -> TaskMetric:
    """The metric of ``run_batch`` on a test split against fp32's; gated only with a ``max_drop``."""
    value = accuracy.evaluate(run_batch, x, y, batch_size, metric, num_classes)
    if max_drop is None:
        text = f"{metric} {value:.4f} vs fp32 {reference:.4f}, drop {reference - value:.4f} (not gated)"
        return TaskMetric(metric, value, reference, None, True, text)
    passed, message = accuracy.gate(value, reference, max_drop, metric)
    return TaskMetric(metric, value, reference, max_drop, passed, message)


def state(acc: Accuracy) -> tuple[CaseState, str]:
    """The case's state from its accuracy: NaN, failed agreement, failed task metric, or ok."""
    agreed = acc.agreement
    if agreed is not None and agreed.nonfinite:
        return CaseState.NAN, agreed.reason or f"outputs contain {agreed.nonfinite} NaN/Inf values"
    if agreed is not None and not agreed.passed:
        return CaseState.ACCURACY_FAILED, "outputs disagree with the fp32 reference: " + describe(agreed)
    if acc.task is not None and not acc.task.passed:
        return CaseState.ACCURACY_FAILED, acc.task.message
    return CaseState.OK, ""


def describe(agreed: Agreement) -> str:
    shown = ", ".join(f"{name}={value:.4g}" for name, value in (
        ("max_abs", agreed.max_abs), ("rel_err", agreed.rel_err), ("cosine", agreed.cosine),
        ("top1_agreement", agreed.top1_agreement)) if value is not None)
    return f"{shown} (limits {agreed.limits})"
