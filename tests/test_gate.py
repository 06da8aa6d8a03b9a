"""The gate's decision rule on synthetic samples with known shifts, and its markdown report."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt import gate, gate_report
from pytest_trt.baseline import Baseline, BaselineRun, case_entry
from pytest_trt.gate import Verdict

NODE = "tests/test_zoo.py::test_latency[digits-cnn-onnxruntime-fp32-bs8]"
CASE = {
    "model": "digits-cnn",
    "backend": "onnxruntime",
    "precision": "fp32",
    "batch_size": 8,
    "device": "cpu",
}


def env(gpu: str | None = None, cpu: str = "AMD EPYC", **software: str) -> dict[str, Any]:
    kind = "cuda" if gpu else "cpu"
    return {
        "hardware": {
            "kind": kind,
            "cpu_model": cpu,
            "gpu_name": gpu,
            "gpu_count": 1 if gpu else 0,
            "compute_capability": "9.0" if gpu else None,
            "mig": None,
            "gpu_uuids": ["GPU-1"],
        },
        "software": {"python": "3.11", "onnxruntime": "1.32.0", **software},
    }


def samples(median: float, n: int = 400, noise: float = 0.02, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    return list(median * np.exp(rng.normal(0, noise, n)))


def result(
    values: list[float],
    *,
    status: str = "ok",
    flags: list[str] | None = None,
    accuracy: dict[str, Any] | None = None,
    model_hash: str = "h1",
) -> dict[str, Any]:
    return {
        "nodeid": NODE,
        "case": CASE,
        "case_id": "digits-cnn-onnxruntime-fp32-bs8",
        "status": status,
        "timing": {"clock": "perf_counter", "samples": values, "stats": None} if values else None,
        "accuracy": accuracy or {},
        "build": {"model_hash": model_hash},
        "flags": flags or [],
        "telemetry": {},
    }


def make_baseline(*runs: tuple[dict[str, Any], dict[str, Any]]) -> Baseline:
    return Baseline(
        "base.json",
        [
            BaselineRun(f"r{i}", "2026-01-01T00:00:00+00:00", environment, {NODE: case_entry(res)})
            for i, (res, environment) in enumerate(runs)
        ],
    )


def test_new_when_no_entry() -> None:
    verdict = gate.judge(result(samples(1e-3)), Baseline("base.json", []), env())
    assert verdict.outcome == gate.NEW
    assert "base.json" in verdict.message


def test_same_distribution_passes() -> None:
    base = make_baseline((result(samples(1e-3, seed=1)), env()))
    verdict = gate.judge(result(samples(1e-3, seed=2)), base, env())
    assert verdict.outcome == gate.PASS and not verdict.failed
    assert verdict.ratio_ci is not None and verdict.ratio_ci[0] < 1 < verdict.ratio_ci[1]
    assert verdict.changes == []


def test_clear_slowdown_regresses_with_one_line_message() -> None:
    base = make_baseline((result(samples(1.234e-3, seed=1)), env(onnxruntime="1.31.1")))
    verdict = gate.judge(result(samples(1.420e-3, seed=2), model_hash="h2"), base, env())
    assert verdict.outcome == gate.REGRESSION and verdict.failed
    assert verdict.ratio == pytest.approx(1.151, abs=0.01)
    assert verdict.ratio_ci is not None and verdict.ratio_ci[0] > 1.05
    assert verdict.p_value is not None and verdict.p_value < 1e-9
    assert "\n" not in verdict.message
    pattern = (
        r"^REGRESSION digits-cnn-onnxruntime-fp32-bs8: median 1\.2\d\d ms → 1\.4\d\d ms "
        r"\(×1\.1\d\d, 98% CI 1\.1\d\d–1\.1\d\d, p=\d(\.\d)?e-\d+\) exceeds threshold 5%; "
        r"changed: onnxruntime 1\.31\.1 → 1\.32\.0, model file changed$"
    )
    assert re.match(pattern, verdict.message), verdict.message
    data = verdict.to_dict()
    assert data["outcome"] == "REGRESSION" and len(data["ratio_ci"]) == 2


def test_significant_but_small_slowdown_passes() -> None:
    base = make_baseline((result(samples(1e-3, n=1000, noise=0.005, seed=1)), env()))
    verdict = gate.judge(result(samples(1.03e-3, n=1000, noise=0.005, seed=2)), base, env())
    assert verdict.p_value is not None and verdict.p_value < 1e-6  # significant ...
    assert verdict.outcome == gate.PASS  # ... but below the 5% threshold
    assert "within threshold 5%" in verdict.message


def test_slowdown_not_proven_beyond_threshold_passes_or_is_unstable() -> None:
    # 8% slower, but 25 very noisy samples cannot rule out a slowdown below 5%.
    base = make_baseline((result(samples(1e-3, n=25, noise=0.2, seed=1)), env()))
    current = samples(1.08e-3, n=25, noise=0.2, seed=1)
    verdict = gate.judge(result(current), base, env())
    assert verdict.outcome == gate.PASS
    assert verdict.ratio_ci is not None and verdict.ratio_ci[0] < 1.05 < verdict.ratio_ci[1]
    flagged = gate.judge(result(current, flags=["UNSTABLE"]), base, env())
    assert flagged.outcome == gate.UNSTABLE and not flagged.failed
    assert "cannot decide" in flagged.message


def test_threshold_and_alpha_are_honoured() -> None:
    base = make_baseline((result(samples(1e-3, seed=1)), env()))
    current = result(samples(1.10e-3, seed=2))
    assert gate.judge(current, base, env(), threshold=0.05).outcome == gate.REGRESSION
    assert gate.judge(current, base, env(), threshold=0.20).outcome == gate.PASS
    strict = gate.judge(current, base, env(), alpha=0.001)
    loose = gate.judge(current, base, env(), alpha=0.05)
    assert strict.ratio_ci is not None and loose.ratio_ci is not None
    assert strict.ratio_ci[0] < loose.ratio_ci[0]  # a smaller alpha widens the interval
    assert strict.confidence == pytest.approx(0.998)


def test_improvement_is_the_mirror_image() -> None:
    base = make_baseline((result(samples(1e-3, seed=1)), env()))
    verdict = gate.judge(result(samples(0.8e-3, seed=2)), base, env())
    assert verdict.outcome == gate.IMPROVED and not verdict.failed
    assert verdict.p_value is not None and verdict.p_value < 1e-9


def test_different_gpu_is_incomparable_but_still_measured() -> None:
    base = make_baseline((result(samples(1e-3, seed=1)), env(gpu="NVIDIA A100-SXM4-80GB")))
    verdict = gate.judge(result(samples(2e-3, seed=2)), base, env(gpu="NVIDIA H100 80GB HBM3"))
    assert verdict.outcome == gate.INCOMPARABLE and not verdict.failed
    assert "NVIDIA A100-SXM4-80GB vs NVIDIA H100 80GB HBM3" in verdict.message
    assert verdict.ratio == pytest.approx(2.0, rel=0.02)


def test_gpu_uuid_and_software_do_not_block() -> None:
    other = env(gpu="NVIDIA H100", tensorrt="10.8")
    other["hardware"]["gpu_uuids"] = ["GPU-2"]
    base = make_baseline((result(samples(1e-3, seed=1)), env(gpu="NVIDIA H100", tensorrt="10.3")))
    verdict = gate.judge(result(samples(1e-3, seed=2)), base, other)
    assert verdict.outcome == gate.PASS
    assert verdict.changes == ["tensorrt 10.3 → 10.8"]


def test_different_cpu_model_is_incomparable() -> None:
    base = make_baseline((result(samples(1e-3)), env(cpu="Intel Xeon")))
    verdict = gate.judge(result(samples(1e-3)), base, env(cpu="AMD EPYC"))
    assert verdict.outcome == gate.INCOMPARABLE
    assert "Intel Xeon vs AMD EPYC" in verdict.message


def test_incomparable_runs_are_skipped_when_a_comparable_one_exists() -> None:
    base = make_baseline(
        (result(samples(1e-3, seed=1)), env()),
        (result(samples(5e-3, seed=2)), env(gpu="NVIDIA H100")),
    )
    verdict = gate.judge(result(samples(1e-3, seed=3)), base, env())
    assert verdict.outcome == gate.PASS and verdict.baseline_runs == 1


def test_run_to_run_spread_absorbs_a_slowdown_seen_between_nights() -> None:
    runs = [(result(samples(m, seed=i)), env()) for i, m in enumerate((1.00e-3, 1.12e-3, 1.01e-3))]
    current = result(samples(1.10e-3, seed=9))
    single = gate.judge(current, make_baseline(runs[0]), env())
    assert single.outcome == gate.REGRESSION
    multi = gate.judge(current, make_baseline(*runs), env())
    assert multi.baseline_runs == 3 and multi.run_spread == pytest.approx(1.12, rel=0.01)
    assert multi.outcome == gate.PASS
    assert "run-to-run spread" in multi.message
    # beyond max/min of the runs, but not 5% beyond the slowest run (1.12 ms): still noise
    near = gate.judge(result(samples(1.16e-3, seed=9)), make_baseline(*runs), env())
    assert near.ratio is not None and near.run_spread is not None and near.ratio > near.run_spread
    assert near.outcome == gate.PASS
    far = gate.judge(result(samples(1.25e-3, seed=9)), make_baseline(*runs), env())
    assert far.outcome == gate.REGRESSION


def test_accuracy_drop_is_a_regression() -> None:
    acc = {"metric": "top1", "value": 0.98}
    base = make_baseline((result(samples(1e-3, seed=1), accuracy=acc), env()))
    current = result(samples(1e-3, seed=2), accuracy={"metric": "top1", "value": 0.95})
    assert gate.judge(current, base, env()).outcome == gate.PASS  # not checked without a limit
    verdict = gate.judge(current, base, env(), max_accuracy_drop=0.01)
    assert verdict.outcome == gate.REGRESSION
    assert verdict.accuracy_drop == pytest.approx(0.03)
    assert "accuracy dropped by 0.03" in verdict.message
    assert gate.judge(current, base, env(), max_accuracy_drop=0.05).outcome == gate.PASS


def test_agreement_drop_when_no_metric() -> None:
    old = {"metric": None, "agreement": {"top1_agreement": 1.0, "cosine": 0.9999}}
    new = {"metric": None, "agreement": {"top1_agreement": 0.9, "cosine": 0.99}}
    assert gate.accuracy_drop(old, new) == pytest.approx(0.1)


def test_failed_case_after_a_timed_baseline_regresses() -> None:
    base = make_baseline((result(samples(1e-3)), env()))
    verdict = gate.judge(result([], status="oom"), base, env())
    assert verdict.outcome == gate.REGRESSION
    assert "status ok → oom" in verdict.message


def _rejudger(base: Baseline, *medians: float) -> tuple[Any, list[float]]:
    """A stand-in for re-measuring: judges fresh samples at the given medians, in order."""
    asked: list[float] = []

    def rejudge() -> Verdict:
        median = medians[len(asked)]
        asked.append(median)
        return gate.judge(result(samples(median, seed=10 + len(asked))), base, env())

    return rejudge, asked


def test_an_unconfirmed_slowdown_passes_and_says_why() -> None:
    base = make_baseline((result(samples(1e-3, seed=1)), env()))
    first = gate.judge(result(samples(1.3e-3, seed=2)), base, env())
    assert first.outcome == gate.REGRESSION
    rejudge, asked = _rejudger(base, 1.0e-3)
    verdict = gate.confirm(first, rejudge, attempts=2)
    assert asked == [1.0e-3]  # stops at the first re-measurement that does not regress
    assert verdict.outcome == gate.PASS and not verdict.failed
    assert verdict.ratio == pytest.approx(1.3, rel=0.02)  # the first measurement's numbers are kept
    assert verdict.confirmations == [pytest.approx(1.0, rel=0.02)]
    assert verdict.message.startswith("PASS digits-cnn-onnxruntime-fp32-bs8: slowdown ×1.3")
    assert "not confirmed: re-measured ×1.0" in verdict.message and "\n" not in verdict.message


def test_a_confirmed_slowdown_still_fails() -> None:
    base = make_baseline((result(samples(1e-3, seed=1)), env()))
    first = gate.judge(result(samples(1.3e-3, seed=2)), base, env())
    rejudge, asked = _rejudger(base, 1.28e-3, 1.31e-3)
    verdict = gate.confirm(first, rejudge, attempts=2)
    assert asked == [1.28e-3, 1.31e-3]
    assert verdict.outcome == gate.REGRESSION
    assert "confirmed by 2 re-measurement(s): ×1.28" in verdict.message


def test_confirmation_is_skipped_when_off_or_not_about_timing() -> None:
    base = make_baseline((result(samples(1e-3, seed=1), accuracy={"metric": "top1", "value": 0.98}), env()))
    rejudge, asked = _rejudger(base, 1.0e-3)
    slow = gate.judge(result(samples(1.3e-3, seed=2)), base, env())
    assert gate.confirm(slow, rejudge, attempts=0).outcome == gate.REGRESSION
    passing = gate.judge(result(samples(1e-3, seed=3)), base, env())
    assert gate.confirm(passing, rejudge, attempts=1).outcome == gate.PASS
    worse = result(samples(1.3e-3, seed=2), accuracy={"metric": "top1", "value": 0.90})
    both = gate.judge(worse, base, env(), max_accuracy_drop=0.01)
    assert gate.confirm(both, rejudge, attempts=1).outcome == gate.REGRESSION  # accuracy fails regardless
    assert asked == []


def test_missing_lists_cases_not_run() -> None:
    base = make_baseline((result(samples(1e-3)), env()))
    assert gate.missing(base, [NODE]) == []
    verdicts = gate.missing(base, ["other"])
    assert [v.outcome for v in verdicts] == [gate.MISSING]
    assert verdicts[0].message.startswith("MISSING digits-cnn-onnxruntime-fp32-bs8")


def test_verdicts_are_deterministic() -> None:
    base = make_baseline((result(samples(1e-3, seed=1)), env()))
    current = result(samples(1.07e-3, seed=2))
    assert gate.judge(current, base, env()).to_dict() == gate.judge(current, base, env()).to_dict()


@pytest.mark.parametrize(("text", "value"), [("5%", 0.05), ("5", 0.05), (" 2.5 % ", 0.025), (3, 0.03)])
def test_parse_threshold(text: str | float, value: float) -> None:
    assert gate.parse_threshold(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "abc", "-1%", "0", "nan"])
def test_parse_threshold_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="threshold"):
        gate.parse_threshold(text)


def test_formatting() -> None:
    assert gate.format_seconds(1.234e-3) == "1.234 ms"
    assert gate.format_seconds(5.6e-6) == "5.600 µs"
    assert gate.format_seconds(2.0) == "2.000 s"
    assert gate.format_p(2.1e-9) == "2e-9"
    assert gate.format_p(0.0312) == "0.031"


# ---------------------------------------------------------------- gate_report

REPORT_ENV = {
    "hardware": {
        "kind": "cuda",
        "gpu_name": "NVIDIA H100 80GB HBM3",
        "gpu_count": 1,
        "compute_capability": "9.0",
    }
}


def verdicts() -> list[Verdict]:
    slow = Verdict(
        "REGRESSION",
        "t::a",
        "a-torch-fp16-bs1",
        0.05,
        ratio=1.151,
        ratio_ci=(1.12, 1.183),
        p_value=2e-9,
        baseline_median=1.234e-3,
        current_median=1.42e-3,
        message="REGRESSION a-torch-fp16-bs1: median 1.234 ms → 1.420 ms (×1.151) exceeds threshold 5%",
    )
    new = Verdict("NEW", "t::b", "b-torch-fp32-bs1", 0.05, message="NEW b-torch-fp32-bs1: no baseline entry")
    ok = [Verdict("PASS", f"t::c{i}", f"c{i}", 0.05, ratio=1.0, message="PASS") for i in range(3)]
    return [new, *ok, slow]


def test_markdown_counts_and_table() -> None:
    text = gate_report.markdown(verdicts(), REPORT_ENV)
    assert "1 × NVIDIA H100 80GB HBM3 (sm 9.0)" in text
    header = "| " + " | ".join(gate.OUTCOMES) + " |"
    assert header in text
    assert "| 3 | 1 | 0 | 0 | 0 | 1 | 0 |" in text
    rows = [
        line for line in text.splitlines() if line.startswith("| **REGRESSION**") or line.startswith("| NEW")
    ]
    assert rows[0].startswith(
        "| **REGRESSION** | `a-torch-fp16-bs1` | 1.234 ms | 1.420 ms | ×1.151 (1.120–1.183)"
    )
    assert rows[0].endswith("exceeds threshold 5% |")
    assert rows[1].startswith("| NEW | `b-torch-fp32-bs1` | — | — | — | — | no baseline entry |")
    assert "c1" not in text  # passing cases stay out of the table


def test_markdown_all_passed() -> None:
    text = gate_report.markdown(
        [Verdict("PASS", "t::a", "a", 0.05)], {"hardware": {"kind": "cpu", "cpu_model": "X"}}
    )
    assert "All 1 cases passed." in text and "CPU X" in text


def test_step_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    assert gate_report.write_step_summary("x") is False
    target = tmp_path / "summary.md"
    target.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(target))
    assert gate_report.write_step_summary("## gate") is True
    assert target.read_text() == "earlier step\n## gate\n"


def _timed_with(res: dict[str, Any], clock: str, calls: int) -> dict[str, Any]:
    res["timing"] |= {"clock": clock, "calls_per_sample": calls}
    return res


def test_samples_taken_another_way_are_compared_but_not_gated() -> None:
    """A baseline of one event per call against block means (or warm against cold L2) is not one quantity."""
    base = make_baseline((_timed_with(result(samples(1.04e-4, seed=1)), "cuda-event", 1), env(gpu="H100")))
    current = _timed_with(result(samples(1.00e-4, seed=2)), "cuda-event", 16)
    verdict = gate.judge(current, base, env(gpu="H100"))
    assert verdict.outcome == gate.INCOMPARABLE and not verdict.failed
    assert "1 call(s) per sample" in verdict.message and "16 call(s) per sample" in verdict.message
    assert verdict.ratio == pytest.approx(1.00 / 1.04, abs=0.01)  # the comparison is still shown
    cold = _timed_with(result(samples(1.04e-4, seed=3)), "cuda-event-cold-l2", 1)
    assert gate.judge(cold, base, env(gpu="H100")).outcome == gate.INCOMPARABLE
    same = _timed_with(result(samples(1.04e-4, seed=4)), "cuda-event", 1)
    assert gate.judge(same, base, env(gpu="H100")).outcome == gate.PASS


def test_an_entry_without_calls_per_sample_counts_as_one_call() -> None:
    old = case_entry(result(samples(1e-3, seed=1)))
    old.pop("calls_per_sample")  # a baseline written before the field existed
    assert gate.method(old) == ("perf_counter", 1)
    assert case_entry(_timed_with(result(samples(1e-3)), "cuda-event", 8))["calls_per_sample"] == 8
