"""The gate's rule on process medians with known spreads and shifts (no timing involved)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from pytest_trt import gate
from pytest_trt.baseline import Baseline, Entry, new_run
from pytest_trt.case import Case
from pytest_trt.gate import Measurement, Policy
from pytest_trt.records import (
    Accuracy,
    Agreement,
    BuildInfo,
    CaseResult,
    CaseState,
    HostLoad,
    Telemetry,
    Timing,
)
from pytest_trt.stats import summarize
from pytest_trt.verdict import Outcome, Verdict

NODE = "tests/test_zoo.py::test_latency[digits-cnn-onnxruntime-fp32-bs8]"
CASE = Case("digits-cnn", "onnxruntime", "fp32", 8, "cpu")
RULES = Policy(threshold=0.03)


def env(gpu: str | None = None, cpu: str = "AMD EPYC", probe: float = 0.1, **software: str) -> dict[str, Any]:
    return {
        "hardware": {"kind": "cuda" if gpu else "cpu", "cpu_model": cpu, "gpu_name": gpu, "gpu_count": 1 if gpu else 0,
                     "compute_capability": "9.0" if gpu else None, "mig": None},
        "software": {"python": "3.11", "onnxruntime": "1.32.0", **software},
        "state": {"cpu_probe_s": probe},
    }


def result(median: float | None, *, status: CaseState = CaseState.OK, calls: int = 1, joules: float | None = None,
           host: HostLoad | None = None, accuracy: Accuracy | None = None, model_hash: str = "h1") -> CaseResult:
    timing = None
    if median is not None:
        rng = np.random.default_rng(int(median * 1e9) % 2**31)
        values = list(median * np.exp(rng.normal(0, 1e-4, 200)))
        timing = Timing("perf_counter", values, summarize(values, 8, sum(values)), 5, 0.1, sum(values), "converged",
                        calls_per_sample=calls)
    telemetry = Telemetry(joules_per_item=joules) if joules else None
    return CaseResult(CASE, NODE, "digits-cnn", status, "", timing, accuracy or Accuracy(), telemetry, host,
                      BuildInfo(model_hash=model_hash))


def baseline(medians: list[float], environment: dict[str, Any] | None = None, **kw: Any) -> Baseline:
    return Baseline("base.json", [new_run([result(m, **kw)], environment or env()) for m in medians])


def night(median: float, environment: dict[str, Any] | None = None, **kw: Any) -> Measurement:
    return Measurement(result(median, **kw), environment or env())


def steady(n: int = 10, spread: float = 0.002, center: float = 1e-3, seed: int = 1) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(center * np.exp(rng.normal(0, spread, n)))


# -- the rule ----------------------------------------------------------------------------------


def test_no_entry_is_new_and_a_skipped_case_is_missing() -> None:
    assert gate.judge(night(1e-3), Baseline("b.json"), RULES).outcome is Outcome.NEW
    skipped = Measurement(result(None, status=CaseState.SKIPPED), env())
    assert gate.judge(skipped, baseline(steady()), RULES).outcome is Outcome.MISSING


def test_a_night_within_the_noise_passes_and_says_what_it_could_detect() -> None:
    verdict = gate.judge(night(1.01e-3), baseline(steady()), RULES)
    assert verdict.outcome is Outcome.PASS and gate.wanted(verdict, RULES) == 0
    assert verdict.detectable is not None and 0.03 < verdict.detectable < 0.045
    assert verdict.noise is not None and verdict.noise < 0.03
    assert "detectable ≥" in verdict.message and verdict.baseline_runs == 10


def test_a_slower_first_process_is_re_measured_and_fails_only_if_every_process_is_slower() -> None:
    history = baseline(steady())
    first = night(1.10e-3)
    suspect = gate.judge(first, history, RULES)
    assert suspect.timing_outcome == "slower" and gate.wanted(suspect, RULES) == 2
    confirmed = gate.judge(first, history, RULES, [night(1.11e-3), night(1.09e-3)])
    assert confirmed.outcome is Outcome.REGRESSION and confirmed.failed and gate.wanted(confirmed, RULES) == 0
    assert "in all 3 processes" in confirmed.message and len(confirmed.night) == 3
    assert confirmed.ratio == pytest.approx(1.10, rel=0.01) and confirmed.ratio_ci is not None
    unconfirmed = gate.judge(first, history, RULES, [night(1.0e-3), night(1.11e-3)])
    assert unconfirmed.outcome is Outcome.PASS and "only 2 of 3 processes were slower" in unconfirmed.message


def test_without_confirmation_the_first_process_decides() -> None:
    verdict = gate.judge(night(1.10e-3), baseline(steady()), Policy(threshold=0.03, confirm=0))
    assert verdict.outcome is Outcome.REGRESSION and gate.wanted(verdict, Policy(confirm=0)) == 0


def test_a_case_noisier_than_its_threshold_is_unstable_not_failed_but_a_big_slowdown_still_fails() -> None:
    noisy = baseline(steady(spread=0.15))
    verdict = gate.judge(night(1.25e-3), noisy, RULES, [night(1.2e-3), night(1.3e-3)])
    assert verdict.outcome in (Outcome.UNSTABLE, Outcome.PASS) and not verdict.failed
    calm = gate.judge(night(1.05e-3), noisy, RULES)
    assert calm.outcome is Outcome.UNSTABLE and "not gateable at 3.0%" in calm.message and calm.advice
    assert "a per-case threshold of" in calm.advice and "a larger batch" in calm.advice
    far = gate.judge(night(3.4e-3), noisy, RULES, [night(3.5e-3), night(3.3e-3)])
    assert far.outcome is Outcome.REGRESSION  # beyond both the threshold and its noise


def test_a_multimodal_case_matches_the_mode_it_lands_in() -> None:
    modes = baseline(steady(7, 0.001) + steady(3, 0.001, center=1.4e-3, seed=2))
    slow_mode = gate.judge(night(1.401e-3), modes, RULES)
    assert slow_mode.outcome is Outcome.PASS and "multimodal between processes" in slow_mode.message
    assert len(slow_mode.modes) == 2 and slow_mode.baseline_median == pytest.approx(1.4e-3, rel=0.01)
    shifted = gate.judge(night(1.10e-3), modes, RULES, [night(1.10e-3), night(1.54e-3)])
    assert shifted.outcome is Outcome.REGRESSION  # each process 10 % above the mode it is nearest to


def test_one_outlying_run_does_not_widen_the_spread_for_a_real_slowdown() -> None:
    history = baseline(steady(9, 0.001) + [1.5e-3])
    verdict = gate.judge(night(3.4e-3), history, RULES, [night(3.4e-3), night(3.41e-3)])
    assert verdict.outcome is Outcome.REGRESSION
    assert gate.judge(night(1.001e-3), history, RULES).outcome is Outcome.PASS


def test_a_run_measured_on_a_contended_host_is_left_out_and_listed() -> None:
    busy = HostLoad(1.0, 1.0, None, None, 3.0, 2, others_cpu_s=1.2)
    runs = baseline(steady()).runs + baseline([2e-3], host=busy).runs
    verdict = gate.judge(night(1.0e-3), Baseline("base.json", runs), RULES)
    assert verdict.outcome is Outcome.PASS and verdict.baseline_runs == 10
    assert len(verdict.excluded_runs) == 1 and "contended" in verdict.excluded_runs[0]


def test_a_slowdown_on_a_disturbed_machine_is_inconclusive() -> None:
    busy = HostLoad(1.0, 1.0, None, None, 3.0, 2, others_cpu_s=1.2)
    history = baseline(steady())
    contended = gate.judge(night(2e-3, host=busy), history, RULES, [night(2e-3, host=busy), night(2e-3)])
    assert contended.outcome is Outcome.INCONCLUSIVE and not contended.failed
    assert "other processes used 60% of the 2 cores" in contended.message
    slow_machine = env(probe=0.2)
    drift = gate.judge(night(2e-3, slow_machine), history, RULES, [night(2e-3, slow_machine)] * 2)
    assert drift.outcome is Outcome.INCONCLUSIVE and "fixed CPU workload ×2.00 slower" in drift.message


def test_a_one_run_baseline_assumes_noise_and_says_so() -> None:
    verdict = gate.judge(night(1.0e-3), baseline([1.0e-3]), RULES)
    assert verdict.outcome is Outcome.PASS and "noise unknown from 1 run" in verdict.message
    far = gate.judge(night(2e-3), baseline([1.0e-3]), RULES, [night(2e-3), night(2.01e-3)])
    assert far.outcome is Outcome.REGRESSION


# -- comparability, states, accuracy, energy --------------------------------------------------


def test_other_hardware_is_incomparable_and_software_changes_are_listed_without_blocking() -> None:
    history = baseline(steady())
    other = gate.judge(night(1e-3, env(cpu="Other CPU")), history, RULES)
    assert other.outcome is Outcome.INCOMPARABLE and "different CPUs" in other.message
    upgraded = gate.judge(night(1e-3, env(onnxruntime="1.33.0")), history, RULES)
    assert upgraded.outcome is Outcome.PASS and upgraded.changes == ["onnxruntime 1.32.0 → 1.33.0"]


def test_samples_taken_another_way_are_not_gated() -> None:
    history = baseline(steady(), calls=16)
    verdict = gate.judge(night(1e-3, calls=1), history, RULES)
    assert verdict.outcome is Outcome.INCOMPARABLE and "timed another way" in verdict.message


def test_a_case_that_broke_after_a_timed_baseline_regresses() -> None:
    broken = Measurement(result(None, status=CaseState.ERROR), env())
    verdict = gate.judge(broken, baseline(steady()), RULES)
    assert verdict.outcome is Outcome.REGRESSION and "status ok → error" in verdict.message


def test_an_accuracy_drop_beyond_its_limit_regresses_whatever_the_timing() -> None:
    def agreeing(top1: float) -> Accuracy:
        return Accuracy(Agreement(0.0, 0.01, 0.999, top1, 0, 0.01, True, "", {}), None, True)

    history = baseline(steady(), accuracy=agreeing(1.0))
    rules = Policy(threshold=0.03, max_accuracy_drop=0.01)
    verdict = gate.judge(night(1e-3, accuracy=agreeing(0.95)), history, rules)
    assert verdict.outcome is Outcome.REGRESSION and verdict.accuracy_failed
    assert verdict.accuracy_drop == pytest.approx(0.05) and "accuracy dropped" in verdict.message


def test_energy_is_gated_on_a_line_of_its_own_when_asked() -> None:
    joules = [5e-3 * math.exp(0.002 * math.sin(i)) for i in range(10)]
    runs = [new_run([result(m, joules=j)], env()) for m, j in zip(steady(), joules)]
    history = Baseline("base.json", runs)
    rules = Policy(threshold=0.03, energy_threshold=0.05)
    first = night(1e-3, joules=6e-3)
    verdict = gate.judge(first, history, rules, [night(1e-3, joules=6e-3), night(1e-3, joules=6.1e-3)])
    assert verdict.outcome is Outcome.PASS and verdict.energy is not None
    assert verdict.energy.outcome is Outcome.REGRESSION and verdict.failed and verdict.energy.metric == "energy"
    assert "energy per item" in verdict.energy.message
    assert gate.judge(first, history, RULES).energy is None  # not asked: recorded, not gated


def test_missing_lists_the_cases_of_the_newest_run_not_seen() -> None:
    history = baseline(steady(2))
    assert gate.missing(history, ["test_zoo.py::test_latency[digits-cnn-onnxruntime-fp32-bs8]"]) == []
    (gone,) = gate.missing(history, [])
    assert gone.outcome is Outcome.MISSING and "not run" in gone.message


def test_verdicts_are_deterministic_and_round_trip_through_json() -> None:
    history = baseline(steady())
    first = gate.judge(night(1.1e-3), history, RULES, [night(1.1e-3), night(1.1e-3)])
    again = gate.judge(night(1.1e-3), history, RULES, [night(1.1e-3), night(1.1e-3)])
    assert first == again
    assert Verdict.from_dict(first.to_dict()) == first


def test_entries_are_keyed_independently_of_the_rootdir() -> None:
    history = baseline(steady(3))
    moved = Measurement(result(1e-3), env())
    moved.result.nodeid = "elsewhere/deeper/test_zoo.py::test_latency[digits-cnn-onnxruntime-fp32-bs8]"
    assert gate.judge(moved, history, RULES).outcome is Outcome.PASS
    assert isinstance(history.runs[0].cases["test_zoo.py::test_latency[digits-cnn-onnxruntime-fp32-bs8]"], Entry)


@pytest.mark.parametrize("text, value", [("5%", 0.05), ("5", 0.05), (2.5, 0.025), (" 10 % ", 0.10)])
def test_parse_threshold(text: str | float, value: float) -> None:
    assert gate.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "0", "-5%", "nan", "inf", "5000"])
def test_parse_threshold_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="threshold"):
        gate.parse_threshold(text)


def test_with_one_baseline_run_the_ratio_ci_uses_the_assumed_spread_as_the_band_does() -> None:
    """One run measures no spread: the band assumes 2 % with a normal quantile, and so does the CI,
    instead of a Student-t with one degree of freedom that widens an assumed 2 % to ×0.4–×2.5."""
    verdict = gate.judge(night(1.5e-3, env("NVIDIA H200")), baseline([1e-3], env("NVIDIA A100")), RULES)
    assert verdict.outcome is Outcome.INCOMPARABLE and verdict.ratio == pytest.approx(1.5, rel=1e-3)
    assert verdict.ratio_ci is not None
    low, high = verdict.ratio_ci
    half = 2.3263 * 0.02 * math.sqrt(2)  # the normal quantile at alpha 1 %, the assumed spread, 1 + 1 processes
    assert low == pytest.approx(1.5 * math.exp(-half), rel=1e-3)
    assert high == pytest.approx(1.5 * math.exp(half), rel=1e-3)


# -- entries the gate cannot judge fully: a verdict all the same --------------------------------


def _entry_baseline(samples: list[float], tmp_path: Any) -> Baseline:
    """A baseline saved and loaded back from disk, with one entry of these samples."""
    from pytest_trt import baseline as baseline_mod

    values = samples or [1.0]
    timing = Timing("perf_counter", samples, summarize(values, 8, sum(values)), 0, 0.0, sum(values), "max-time")
    saved = CaseResult(CASE, NODE, "digits-cnn", timing=timing if samples else None)
    path = tmp_path / "b.json"
    baseline_mod.save(path, [new_run([saved], env())])
    return baseline_mod.load(path)


def test_a_one_sample_entry_is_judged_by_its_median(tmp_path: Any) -> None:
    """A case slower than --trt-max-time saved with --trt-min-iterations 1 leaves one sample."""
    one = _entry_baseline([2.0], tmp_path)
    assert one.runs[0].cases[Entry.of(result(1.0)).nodeid.rsplit("/", 1)[-1]].samples == [2.0]
    same, slower = gate.judge(night(2.0), one, RULES), gate.judge(night(4.0), one, Policy(confirm=0))
    assert same.outcome is Outcome.PASS and same.baseline_median == pytest.approx(2.0)
    assert slower.outcome is Outcome.REGRESSION and slower.ratio == pytest.approx(2.0, rel=1e-3)


def test_an_entry_without_samples_is_new_with_the_reason(tmp_path: Any) -> None:
    empty = _entry_baseline([], tmp_path)
    verdict = gate.judge(night(1e-3), empty, RULES)
    assert verdict.outcome is Outcome.NEW and "no timing" in verdict.message


def test_runs_far_apart_give_a_verdict_not_an_overflow() -> None:
    """Medians 10^17 apart are each a valid latency; the ratio's CI overflowed math.exp before."""
    for medians, tonight in (([1e-12, 1e5], 1.0), ([1e-12, 1e-12, 1e5], 1e5), ([1e5], 1e-12)):
        verdict = gate.judge(night(tonight), baseline(medians), Policy(confirm=0))
        assert verdict.outcome in (Outcome.UNSTABLE, Outcome.REGRESSION, Outcome.IMPROVED), verdict.message
        assert verdict.message.startswith(verdict.outcome.value) and "\n" not in verdict.message


def test_a_timed_case_that_now_times_out_is_a_status_regression() -> None:
    verdict = gate.judge(Measurement(result(None, status=CaseState.TIMEOUT), env()), baseline(steady()), RULES)
    assert verdict.outcome is Outcome.REGRESSION and "status ok → timeout" in verdict.message


def test_another_machines_slower_case_asks_for_no_fresh_process() -> None:
    """INCOMPARABLE is compared, never gated: re-measuring could not change it, so none is wanted."""
    verdict = gate.judge(night(1.5e-3, env("NVIDIA H200")), baseline(steady(), env("NVIDIA A100")), RULES)
    assert verdict.outcome is Outcome.INCOMPARABLE
    assert gate.wanted(verdict, RULES) == 0
