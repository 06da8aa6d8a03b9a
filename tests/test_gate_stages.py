"""The gate on pipeline stages: each stage judged by the whole rule against its own baseline history,
a stage's regression failing the case, baselines saved before stages still working."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from pytest_trt import gate
from pytest_trt.baseline import Baseline, Entry, new_run
from pytest_trt.case import Case
from pytest_trt.gate import Measurement, Policy
from pytest_trt.records import BuildInfo, CaseResult, Timing
from pytest_trt.stats import summarize
from pytest_trt.verdict import Outcome, Verdict

NODE = "tests/test_zoo.py::test_latency[scenes-det-onnxruntime-fp32-bs8]"
CASE = Case("scenes-det", "onnxruntime", "fp32", 8, "cpu")
RULES = Policy(threshold=0.05)
ENV = {"hardware": {"kind": "cpu", "cpu_model": "AMD EPYC", "gpu_name": None, "gpu_count": 0,
                    "compute_capability": None, "mig": None},
       "software": {"python": "3.11"}, "state": {"cpu_probe_s": 0.1}}


def _timing(median: float, seed: int) -> Timing:
    rng = np.random.default_rng(seed)
    values = list(median * np.exp(rng.normal(0, 1e-4, 300)))
    return Timing("perf_counter", values, summarize(values, 8, sum(values)), 5, 0.1, sum(values), "converged")


def result(infer: float, stages: dict[str, float] | None = None, seed: int = 0) -> CaseResult:
    timings = {name: _timing(median, seed + i + 1) for i, (name, median) in enumerate((stages or {}).items())}
    return CaseResult(CASE, NODE, "scenes-det", timing=_timing(infer, seed), build=BuildInfo(model_hash="h"),
                      stages=timings)


STAGES = {"prepare": 0.2e-3, "d2h": 0.01e-3, "post": 2.0e-3, "total": 4.0e-3}


def history(runs: int = 8, stages: dict[str, float] | None = STAGES) -> Baseline:
    rng = np.random.default_rng(3)
    made = []
    for i in range(runs):
        wobble = float(np.exp(rng.normal(0, 0.003)))
        scaled = {k: v * wobble for k, v in stages.items()} if stages else None
        made.append(new_run([result(1e-3 * wobble, scaled, seed=10 * i)], ENV))
    return Baseline("base.json", made)


def night(post: float = 2.0e-3, seed: int = 99, **more: float) -> Measurement:
    return Measurement(result(1e-3, {**STAGES, "post": post, **more}, seed=seed), ENV)


def test_a_post_process_slowdown_fails_the_case_and_names_the_stage() -> None:
    baseline = history()
    slow = [night(3.0e-3, seed=s) for s in (1, 2, 3)]
    suspect = gate.judge(slow[0], baseline, RULES)
    assert gate.wanted(suspect, RULES) == 2  # a suspect stage is re-measured in fresh processes too
    verdict = gate.judge(slow[0], baseline, RULES, slow[1:])
    assert verdict.outcome is Outcome.REGRESSION and verdict.failed and gate.wanted(verdict, RULES) == 0
    assert verdict.stages["post"].outcome is Outcome.REGRESSION and verdict.stages["post"].metric == "post"
    assert verdict.stages["prepare"].outcome is Outcome.PASS
    assert verdict.timing_outcome == "within"  # the network itself did not move ...
    assert verdict.message.startswith(f"REGRESSION {CASE.id}: post-process stage median 1.99")
    assert "→ 3.000 ms (×1.50" in verdict.message and "; network median 998" in verdict.message  # ... it says so
    assert verdict.stages["post"].ratio == pytest.approx(1.5, rel=0.01)
    assert "d2h" not in verdict.stages  # part of post: judged there, not twice


def test_a_stage_slower_in_one_process_only_passes() -> None:
    baseline = history()
    verdict = gate.judge(night(3.0e-3), baseline, RULES, [night(2.0e-3, seed=5), night(2.0e-3, seed=6)])
    assert verdict.outcome is Outcome.PASS and verdict.stages["post"].outcome is Outcome.PASS
    assert "only 1 of 3 processes" in verdict.stages["post"].message


def test_every_gated_stage_and_the_total_are_judged() -> None:
    verdict = gate.judge(night(), history(), RULES)
    assert set(verdict.stages) == {"prepare", "post", "total"}
    assert all(v.outcome is Outcome.PASS for v in verdict.stages.values()) and verdict.outcome is Outcome.PASS
    total = gate.judge(night(total=5.0e-3), history(), Policy(threshold=0.05, confirm=0))
    assert total.outcome is Outcome.REGRESSION and "total stage" in total.message


def test_a_baseline_saved_before_stages_gates_the_network_and_calls_the_stages_new() -> None:
    old = history(stages=None)
    verdict = gate.judge(night(9.0e-3), old, Policy(threshold=0.05, confirm=0))
    assert verdict.outcome is Outcome.PASS  # nothing to compare a stage with: never a failure
    assert {v.outcome for v in verdict.stages.values()} == {Outcome.NEW}


def test_a_fresh_process_that_did_not_time_the_stage_cannot_confirm_it_and_ends_the_loop() -> None:
    baseline = history()
    untimed = Measurement(result(1e-3, None, seed=7), ENV)
    verdict = gate.judge(night(3.0e-3), baseline, RULES, [untimed])
    post = verdict.stages["post"]
    assert post.outcome is Outcome.INCONCLUSIVE and "did not time it" in post.message
    assert gate.wanted(verdict, Policy(threshold=0.05, confirm=5)) == 0  # asking again would never end
    assert verdict.outcome is not Outcome.REGRESSION


def test_stage_entries_survive_the_baseline_file_and_old_files_load(tmp_path: Any) -> None:
    from pytest_trt import baseline as baseline_mod

    path = tmp_path / "base.json"
    baseline_mod.save(path, history(runs=2).runs)
    data = json.loads(path.read_text())
    entry = next(iter(data["runs"][0]["cases"].values()))
    assert set(entry["stages"]) == set(STAGES) and len(entry["stages"]["post"]["samples"]) == 200
    loaded = baseline_mod.load(path)
    stage = next(iter(loaded.runs[0].cases.values())).stages["post"]
    saved = entry["stages"]["post"]["stats"]["median"]
    assert stage.clock == "perf_counter" and stage.stats.median == pytest.approx(saved)
    for run in data["runs"]:
        for case in run["cases"].values():
            del case["stages"]  # as written before stages existed
    path.write_text(json.dumps(data))
    assert all(not e.stages for r in baseline_mod.load(path).runs for e in r.cases.values())


def test_a_bad_stage_in_a_baseline_is_refused_naming_where(tmp_path: Any) -> None:
    from pytest_trt import baseline as baseline_mod

    path = tmp_path / "base.json"
    baseline_mod.save(path, history(runs=1).runs)
    data = json.loads(path.read_text())
    next(iter(data["runs"][0]["cases"].values()))["stages"]["post"]["samples"][0] = -1.0
    path.write_text(json.dumps(data))
    with pytest.raises(baseline_mod.BaselineError, match=r"stages.post.samples\[0\]: a latency must be"):
        baseline_mod.load(path)


def test_an_untimed_entry_keeps_no_stages() -> None:
    entry = Entry.of(CaseResult(CASE, NODE, "scenes-det", stages={"post": _timing(1e-3, 1)}))
    assert entry.stages == {}  # a case that was not timed has nothing to judge its stages by


def test_stage_verdicts_round_trip_through_json() -> None:
    verdict = gate.judge(night(3.0e-3), history(), Policy(threshold=0.05, confirm=0))
    again = Verdict.from_dict(json.loads(json.dumps(verdict.to_dict())))
    assert again.stages.keys() == verdict.stages.keys() and again.to_dict() == verdict.to_dict()
    assert Verdict.from_dict({"outcome": "PASS"}).stages == {}  # verdicts written before stages
