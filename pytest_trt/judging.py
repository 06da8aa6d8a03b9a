"""Where a test item meets the gate: its policy, and fresh-process re-measurements of a suspect case."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from pytest_trt import gate, remeasure
from pytest_trt.context import Context
from pytest_trt.gate import Measurement, Policy
from pytest_trt.records import CaseResult, case_key
from pytest_trt.verdict import Outcome, Verdict


def policy(ctx: Context, marker: Mapping[str, object], max_drop: float | None) -> Policy:
    """The gate's policy for one test: the options, with the ``trt`` marker's threshold over them."""
    threshold = ctx.settings.threshold
    if "threshold" in marker:
        try:
            threshold = gate.parse_threshold(str(marker["threshold"]))
        except ValueError as exc:
            raise pytest.UsageError(f"@pytest.mark.trt(threshold=...): {exc}") from None
    return Policy(threshold=threshold, confirm=ctx.settings.confirm, max_accuracy_drop=max_drop,
                  energy_threshold=ctx.settings.energy_threshold)


def judge(config: pytest.Config, ctx: Context, result: CaseResult, rules: Policy) -> Verdict | None:
    """The verdict on ``result``, re-measured in fresh processes while it is suspect; None without
    a baseline, and in a re-measuring child (its parent judges)."""
    if ctx.baseline is None or remeasure.in_child():
        return None
    first = Measurement(result, ctx.environment())
    again: list[Measurement] = []
    verdict = gate.judge(first, ctx.baseline, rules)
    failures: list[str] = []
    # At most ``confirm`` processes that measured and ``confirm`` that failed: the loop ends whatever
    # the verdicts ask for.
    while gate.wanted(verdict, rules) and len(again) < rules.confirm and len(failures) < rules.confirm:
        measured = _fresh(config, ctx, result, failures)
        if measured is None:
            continue
        again.append(measured)
        verdict = gate.judge(first, ctx.baseline, rules, again)
    if failures and verdict.outcome is Outcome.REGRESSION and len(again) < rules.confirm:
        from pytest_trt.gate.messages import finish

        return finish(verdict, Outcome.INCONCLUSIVE, f"{verdict.detail}; could not re-measure in a fresh "
                      f"process: {failures[-1]}")
    return verdict


def _fresh(config: pytest.Config, ctx: Context, result: CaseResult, failures: list[str]) -> Measurement | None:
    """One fresh-process measurement of the case, or None (with why appended to ``failures``)."""
    document = remeasure.fresh_document(config, result.nodeid, ctx.device, "re-measurement results", failures)
    if document is None:
        return None
    key = result.key or case_key(result.nodeid)
    matches = [c for c in document.cases if (c.key or case_key(c.nodeid)) == key]
    if not matches or matches[0].timing is None:
        failures.append(f"the fresh process did not time {result.case.id}"
                        + (f" ({matches[0].status.value}: {matches[0].message})" if matches else ""))
        return None
    return Measurement(matches[0], document.environment)
