"""The gate on pipeline stages: each gated stage judged by ``judge`` itself, as if it were a case.

A stage (``pytest_trt.pipeline.GATED``: prepare, post-process, total) is a latency of its own with
its own noise between processes, so it gets the whole rule: its history is the baseline entries'
samples of that stage, its band ``max(threshold, noise)``, its confirmation in fresh processes.
Each is judged on a *view*: the case result with the stage's timing as its timing, against a
baseline whose entries carry the stage's samples and statistics. Entries saved before stages
existed have none, so the stage is NEW there and nothing fails: old baselines keep working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pytest_trt.baseline import Baseline, Entry, Run
from pytest_trt.gate import messages
from pytest_trt.records import Accuracy, CaseResult, case_key
from pytest_trt.verdict import Outcome, Verdict

if TYPE_CHECKING:  # judge.py calls this module: its names are imported when it runs
    from pytest_trt.gate.judge import Measurement, Policy

INCOMPLETE = "incomplete"  # a stage's timing outcome when a fresh process did not time it


def judge_stages(latency: Verdict, first: Measurement, again: Sequence[Measurement], baseline: Baseline,
                 policy: Policy, stages: Sequence[str]) -> Verdict:
    """Judge each of ``stages`` that tonight's first process measured; record the verdicts on
    ``latency`` and make it a REGRESSION, naming the stage, when a stage regressed."""
    from pytest_trt.gate.judge import Measurement, judge

    quiet = dataclasses.replace(policy, max_accuracy_drop=None, energy_threshold=None)  # judged once, above
    current = first.result
    key = baseline.resolve(current.key or case_key(current.nodeid))
    for stage in stages:
        if stage not in current.stages:
            continue
        timed = [m for m in again if stage in m.result.stages]
        processes = [Measurement(stage_result(m.result, stage), m.environment) for m in (first, *timed)]
        verdict = judge(processes[0], stage_baseline(baseline, key, stage), quiet, processes[1:])
        verdict.metric = stage
        if len(timed) < len(again) and verdict.timing_outcome == "slower":
            # Without the stage in every fresh process it cannot be confirmed; asking for more would not end.
            verdict.timing_outcome = INCOMPLETE
            messages.finish(verdict, Outcome.INCONCLUSIVE, f"{verdict.detail}; a fresh process did not time it")
        latency.stages[stage] = verdict
    regressed = [(stage, v) for stage, v in latency.stages.items() if v.outcome is Outcome.REGRESSION]
    if regressed and latency.outcome is not Outcome.REGRESSION:
        from pytest_trt.pipeline import LABELS

        named = "; ".join(f"{LABELS.get(stage, stage)} stage {v.detail}" for stage, v in regressed)
        messages.finish(latency, Outcome.REGRESSION, f"{named}; network {latency.detail}")
    return latency


def stage_result(result: CaseResult, stage: str) -> CaseResult:
    """``result`` as the gate sees one of its stages: that stage's timing, nothing else to judge."""
    return dataclasses.replace(result, timing=result.stages[stage], stages={}, concurrency=None, verdict=None,
                               accuracy=Accuracy())


def stage_baseline(baseline: Baseline, key: str, stage: str) -> Baseline:
    """The baseline's runs with the entry ``key`` reduced to ``stage``: its samples and statistics.

    Only that entry is rebuilt; the other cases do not take part in judging this one.
    """
    runs = [Run(run.run_id, run.created, run.environment,
                {key: _stage_entry(run.cases[key], stage)} if key in run.cases else {}, run.source)
            for run in baseline.runs]
    return Baseline(baseline.path, runs)


def _stage_entry(entry: Entry, stage: str) -> Entry:
    found = entry.stages.get(stage)
    if found is None:  # saved before stages, or without this one: untimed, so the stage is NEW
        return dataclasses.replace(entry, samples=[], stats=None, clock=None, stages={})
    return dataclasses.replace(entry, samples=list(found.samples), stats=found.stats, clock=found.clock,
                               calls_per_sample=1, stages={})
