"""How much a case's accuracy fell against its newest baseline entry."""

from __future__ import annotations

from pytest_trt.records import Accuracy


def accuracy_drop(old: Accuracy, new: Accuracy) -> float | None:
    """The task metric's drop when both have the same metric, else top-1 agreement's, else cosine's."""
    if old.task is not None and new.task is not None and old.task.metric == new.task.metric:
        return old.task.value - new.task.value
    if old.agreement is None or new.agreement is None:
        return None
    for before, after in ((old.agreement.top1_agreement, new.agreement.top1_agreement),
                          (old.agreement.cosine, new.agreement.cosine)):
        if before is not None and after is not None:
            return before - after
    return None
