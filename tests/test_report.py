"""pytest_trt.report: the terminal table's columns for what a run measured."""

from __future__ import annotations

from pytest_trt import report
from pytest_trt.case import Case
from pytest_trt.results import CaseResult, Stats, Timing


def _result(batch: int, median_s: float, calls: int) -> CaseResult:
    stats = Stats(n=100, min=median_s, max=median_s, mean=median_s, median=median_s, p90=median_s, p95=median_s,
                  p99=median_s, stddev=0.0, cv=0.0, median_ci_low=median_s, median_ci_high=median_s,
                  throughput=batch / median_s)
    timing = Timing(clock="cuda-event", samples=[median_s], stats=stats, warmup_iterations=1, warmup_s=0.1,
                    wall_s=1.0, stop_reason="converged", calls_per_sample=calls)
    case = Case("resnet50", "torch", "fp32", batch, "cuda:0", "cuda-graph")
    return CaseResult(case=case, nodeid=f"t::t[{batch}]", model_name="resnet50", status="ok", timing=timing)


def test_blocks_of_calls_show_so_percentiles_read_as_block_means() -> None:
    lines = report.table([_result(1, 5e-5, 16), _result(32, 2e-3, 1)])
    at = lines[1].index("calls/sample")
    first, second = lines[2], lines[3]
    assert first[at:at + 3] == "16 "
    assert second[at:at + 3] == "   "  # one call per sample is the plain case: left blank


def test_the_column_is_hidden_when_every_sample_is_one_call() -> None:
    assert "calls/sample" not in report.table([_result(32, 2e-3, 1)])[1]
