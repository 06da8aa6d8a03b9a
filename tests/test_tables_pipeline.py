"""The stage and streams tables: shown only when a case measured them, numbers from the records."""

from __future__ import annotations

from pytest_trt.case import Case
from pytest_trt.concurrency import Concurrency
from pytest_trt.records import CaseResult, Timing
from pytest_trt.report import table
from pytest_trt.stats import summarize
from pytest_trt.verdict import Outcome, Verdict


def _timing(median: float, batch: int = 8, wall: float = 1.0) -> Timing:
    values = [median * 0.99, median, median * 1.01]
    return Timing("perf_counter", values, summarize(values, batch, wall), 0, 0.0, wall, "converged")


def _result(backend: str, streams: int = 1, stages: dict[str, float] | None = None,
            concurrency: Concurrency | None = None, median: float = 18e-3) -> CaseResult:
    case = Case("det", backend, "fp32", 8, "cpu", streams=streams)
    return CaseResult(case, f"t.py::t[{case.id}]", "det", timing=_timing(median),
                      stages={k: _timing(v) for k, v in (stages or {}).items()}, concurrency=concurrency)


def _by_title(results: list[CaseResult]) -> dict[str, table.Table]:
    return {t.title: t for t in table.tables(results)}


def test_no_stages_and_no_streams_leave_the_one_table_as_it_was() -> None:
    found = _by_title([_result("torch"), _result("onnxruntime")])
    assert list(found) == ["det"] and "streams" not in found["det"].header


def test_the_stage_table_splits_a_batch_as_the_users_own_table_did() -> None:
    # The user's split: 6 ms preparing the data, 18 ms inference, 26 ms post-processing, 51 ms in all.
    staged = _result("onnxruntime", stages={"prepare": 6e-3, "post": 26e-3, "total": 51e-3})
    staged.verdict = Verdict(Outcome.REGRESSION, staged.nodeid, staged.case.id, 0.05,
                             stages={"post": Verdict(Outcome.REGRESSION, staged.nodeid, staged.case.id, 0.05),
                                     "prepare": Verdict(Outcome.PASS, staged.nodeid, staged.case.id, 0.05)})
    found = _by_title([staged, _result("torch")])
    stages = found["det — pipeline stages (median per batch)"]
    assert stages.header == ["backend", "precision", "batch", "prepare ms", "infer ms", "post-process ms", "total ms",
                             "items/s", "infer share", "stage verdicts"]  # no copy on the CPU: no d2h column
    assert stages.rows == [["onnxruntime", "fp32", "8", "6", "18", "26", "51", "24", "35%",
                            "post-process REGRESSION, prepare PASS"]]
    assert stages.outcomes == ["REGRESSION"]
    text = "\n".join(table.markdown(stages))
    assert "| prepare ms | infer ms | post-process ms | total ms |" in text


def test_a_device_case_shows_its_copy() -> None:
    staged = _result("tensorrt", stages={"prepare": 1e-3, "d2h": 0.2e-3, "post": 2e-3, "total": 5e-3})
    stages = _by_title([staged])["det — pipeline stages (median per batch)"]
    assert stages.header[stages.header.index("post-process ms") + 1] == "of which d2h ms"
    assert stages.rows[0][stages.header.index("of which d2h ms")] == "0.2"


def _record(streams: int, throughput: float, requests: list[int]) -> Concurrency:
    values = [streams * 1e-3, streams * 1.1e-3, streams * 1.5e-3]
    stats = summarize(values, 8, 8 * len(values) / throughput)
    return Concurrency(streams, stats, requests, 1.0, "runner", "converged")


def test_the_streams_table_compares_each_level_with_one_stream() -> None:
    one = _result("onnxruntime", concurrency=_record(1, 1000.0, [300]))
    four = _result("onnxruntime", streams=4, concurrency=_record(4, 2500.0, [90, 95, 100, 101]))
    four.timing = _timing(4e-3)
    found = _by_title([one, four])
    assert "streams" in found["det"].header  # the main table tells the x4 row apart
    sweep = found["det — streams (per request, all streams pooled)"]
    assert sweep.header == ["backend", "precision", "batch", "streams", "p50 ms", "p90 ms", "p99 ms", "items/s",
                            "vs 1 stream", "requests/stream", "streams made by"]
    assert [row[3] for row in sweep.rows] == ["1", "4"]
    assert sweep.rows[1][8] == "2.50x" and sweep.rows[0][8] == "1.00x"
    assert sweep.rows[1][9] == "90–101" and sweep.rows[1][10] == "runner"
    assert sweep.rows[1][4] == "4.4"  # the pooled per-request median, in ms


def test_speed_ups_compare_rows_of_the_same_streams() -> None:
    torch4 = _result("torch", streams=4, median=8e-3)
    ort1, ort4 = _result("onnxruntime", median=1e-3), _result("onnxruntime", streams=4, median=2e-3)
    main = _by_title([_result("torch", median=4e-3), torch4, ort1, ort4])["det"]
    speedup = main.header.index("speed-up")
    rows = {(r[0], r[main.header.index("streams")]): r[speedup] for r in main.rows}
    assert rows[("onnxruntime", "4")] == "4.00x" and rows[("onnxruntime", "")] == "4.00x"


def test_a_sweep_without_a_one_stream_case_shows_no_ratio() -> None:
    four = _result("onnxruntime", streams=4, concurrency=_record(4, 2500.0, [90, 95, 100, 101]))
    sweep = _by_title([four])["det — streams (per request, all streams pooled)"]
    assert "vs 1 stream" not in sweep.header and sweep.rows[0][sweep.header.index("streams")] == "4"
