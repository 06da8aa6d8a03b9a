"""pytest_trt.report: one table for terminal, markdown and HTML; text from files escaped for each."""

from __future__ import annotations

import re

from pytest_trt.case import Case
from pytest_trt.records import CaseResult, Stats, Timing
from pytest_trt.report import escape, table
from pytest_trt.verdict import Outcome, Verdict


def _result(batch: int, median_s: float, calls: int, model: str = "resnet50") -> CaseResult:
    stats = Stats(n=100, min=median_s, max=median_s, mean=median_s, median=median_s, p90=median_s, p95=median_s,
                  p99=median_s, stddev=0.0, cv=0.0, median_ci_low=median_s, median_ci_high=median_s,
                  throughput=batch / median_s)
    timing = Timing(clock="cuda-event", samples=[median_s], stats=stats, warmup_iterations=1, warmup_s=0.1,
                    wall_s=1.0, stop_reason="converged", calls_per_sample=calls)
    case = Case("resnet50", "torch", "fp32", batch, "cuda:0", "cuda-graph")
    return CaseResult(case=case, nodeid=f"t::t[{batch}]", model_name=model, timing=timing)


def _text(results: list[CaseResult]) -> list[str]:
    return table.text(table.tables(results)[0])


def test_blocks_of_calls_show_so_percentiles_read_as_block_means() -> None:
    lines = _text([_result(1, 5e-5, 16), _result(32, 2e-3, 1)])
    at = lines[1].index("calls/sample")
    first, second = lines[2], lines[3]
    assert first[at:at + 3] == "16 "
    assert second[at:at + 3] == "   "  # one call per sample is the plain case: left blank


def test_the_column_is_hidden_when_every_sample_is_one_call() -> None:
    assert "calls/sample" not in _text([_result(32, 2e-3, 1)])[1]


def test_batch_sizes_sort_as_numbers() -> None:
    rows = table.tables([_result(256, 1e-2, 1), _result(32, 2e-3, 1), _result(1, 1e-3, 1)])[0].rows
    assert [row[2] for row in rows] == ["1", "32", "256"]


def test_the_verdict_and_what_it_could_detect_are_columns() -> None:
    result = _result(1, 1e-3, 1)
    result.verdict = Verdict(Outcome.PASS, result.nodeid, result.case.id, 0.03, detectable=0.0361)
    header = _text([result])[1]
    assert "verdict" in header and "detectable" in header and "≥3.6%" in _text([result])[2]


def test_text_from_files_is_escaped_for_each_medium() -> None:
    hostile = "net\n## All cases passed ![x](http://e/x.png) <img src=x onerror=alert(1)> \x1b[2J|"
    model = table.tables([_result(1, 1e-3, 1, model=hostile)])[0]
    md = "\n".join(table.markdown(model))
    assert "\n## All" not in md and "![x]" not in md and "\\|" in md
    assert not re.search(r"(?<!\\)<img", md)  # shown as text, never as a tag
    assert "<img" not in table.html(model) and "&lt;img" in table.html(model)
    assert "\x1b" not in "\n".join(table.text(model)) and "\\x1b" in table.text(model)[0]
    assert escape.markdown("-5 ms") == "\\-5 ms"


def test_flags_from_older_files_read_as_flags_never_as_verdicts() -> None:
    """Files written before the rename say UNSTABLE for the NOISY flag; every output says NOISY and
    keeps UNSTABLE for the verdict."""
    from pytest_trt.records import Flag

    data = _result(1, 1e-3, 1).to_dict()
    data["flags"] = ["UNSTABLE", "ENQUEUE-BOUND"]
    data["verdict"] = Verdict(Outcome.UNSTABLE, "t::t[1]", "resnet50-torch-fp32-bs1-cuda-graph", 0.05,
                              message="UNSTABLE resnet50-torch-fp32-bs1-cuda-graph: not gateable").to_dict()
    result = CaseResult.from_dict(data)
    assert result.flags == [Flag.NOISY, Flag.ENQUEUE_BOUND]
    model = table.tables([result])[0]
    row = dict(zip(model.header, model.rows[0]))
    assert row["flags"] == "NOISY,ENQUEUE-BOUND" and row["verdict"] == "UNSTABLE"
    page = table.html(model)
    assert "title='NOISY: its samples&#x27; CV is above 2.5 % (trtexec&#x27;s rule); a flag, not a verdict" in page
    assert "title='UNSTABLE: not gateable at this threshold" in page


def test_the_junit_property_is_a_compact_summary_without_samples() -> None:
    import json

    import pytest

    from pytest_trt import session
    from pytest_trt.stash import RESULT, SUMMARY_PROPERTY

    class Item:
        def __init__(self) -> None:
            self.stash = pytest.Stash()
            self.user_properties: list[tuple[str, object]] = []

    result = _result(32, 2e-3, 1)
    assert result.timing is not None
    result.timing.samples[:] = [2e-3 + i * 1e-9 for i in range(5000)]
    result.verdict = Verdict(Outcome.REGRESSION, result.nodeid, result.case.id, 0.05, ratio=1.2, detectable=0.04,
                             night=[2.4e-3, 2.41e-3], message="REGRESSION ...")
    item = Item()
    item.stash[RESULT] = result
    session.junit_summary(item)  # type: ignore[arg-type]
    session.junit_summary(item)  # type: ignore[arg-type]  # once per item, whichever phase asks
    assert [name for name, _ in item.user_properties] == [SUMMARY_PROPERTY]
    text = str(item.user_properties[0][1])
    assert len(text) < 300 and "samples" not in text and "0.002000001" not in text
    assert json.loads(text) == {"case": result.case.id, "status": "ok", "median_s": 2e-3, "flags": [],
                                "verdict": "REGRESSION", "ratio": 1.2, "detectable": 0.04}
