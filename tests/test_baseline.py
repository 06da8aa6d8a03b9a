"""Baseline files: round trip, append, strict loading, crash safety and concurrent saves."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_trt import baseline
from pytest_trt.baseline import BaselineError
from pytest_trt.case import Case
from pytest_trt.records import Accuracy, BuildInfo, CaseResult, CaseState, Flag, TaskMetric, Timing
from pytest_trt.stats import summarize, thin

ROOT = Path(__file__).resolve().parents[1]


def make_result(nodeid: str = "test_m.py::test_x[a]", n: int = 50, base: float = 1e-3,
                flags: list[Flag] | None = None, accuracy: Accuracy | None = None) -> CaseResult:
    samples = [base * (1 + 0.01 * ((i * 7) % 5)) for i in range(n)]
    timing = Timing("perf_counter", samples, summarize(samples, 8, sum(samples)), 3, 0.2, 0.5, "converged")
    return CaseResult(Case("digits-cnn", "onnxruntime", "fp32", 8, "cpu"), nodeid, "digits-cnn", timing=timing,
                      build=BuildInfo(model_hash="abc"), flags=flags or [], accuracy=accuracy or Accuracy())


def save(path: Path | str, results: list[CaseResult], env: dict[str, Any], keep_runs: int = 20) -> None:
    baseline.save(path, [baseline.new_run(results, env)], keep_runs=keep_runs)


ENV = {
    "hardware": {"kind": "cpu", "cpu_model": "Test CPU", "gpu_name": None, "gpu_count": 0},
    "software": {"python": "3.11", "onnxruntime": "1.32.0"},
}


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    accuracy = Accuracy(None, TaskMetric("top1", 0.98, 0.99, None, True, ""), False)
    result = make_result(n=5000, accuracy=accuracy, flags=[Flag.NOISY])
    save(path, [result], ENV)
    loaded = baseline.load(path)
    assert len(loaded.runs) == 1
    run = loaded.runs[0]
    assert run.environment == ENV
    assert run.created.endswith("+00:00")
    entry = run.cases["test_m.py::test_x[a]"]
    assert entry.case_id == "digits-cnn-onnxruntime-fp32-bs8" and entry.nodeid == result.nodeid
    assert entry.model_hash == "abc"
    assert entry.accuracy.task is not None and entry.accuracy.task.value == 0.98 and entry.flags == [Flag.NOISY]
    assert result.timing is not None
    assert len(entry.samples) == baseline.MAX_SAMPLES  # thinned evenly
    assert entry.samples[0] == result.timing.samples[0] and entry.samples[-1] == result.timing.samples[-1]
    assert entry.stats == result.timing.stats
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["tool"] == "pytest-trt"


def test_append_and_keep_runs(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "b.json"
    for i in range(4):
        save(path, [make_result(base=1e-3 * (i + 1))], ENV, keep_runs=3)
    runs = baseline.load(path).runs
    assert len(runs) == 3
    assert [r.cases["test_m.py::test_x[a]"].samples[0] for r in runs] == pytest.approx([2e-3, 3e-3, 4e-3])
    assert len({r.run_id for r in runs}) == 3
    assert not list(path.parent.glob("*.tmp"))  # no temp files left behind


def test_untimed_case_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    broken = CaseResult(Case("m", "torch", "fp16", 1, "cpu"), "t.py::oom", "m", status=CaseState.OOM)
    save(path, [broken], ENV)
    entry = baseline.load(path).runs[0].cases["t.py::oom"]
    assert entry.status is CaseState.OOM and entry.samples == [] and entry.stats is None


def good_document() -> dict[str, Any]:
    return {
        "schema_version": 1,
        "tool": "pytest-trt",
        "runs": [baseline.new_run([make_result()], ENV).to_dict()],
    }


def _drop(path: list[Any]) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


def _set(path: list[Any], value: Any) -> Any:
    def mutate(doc: dict[str, Any]) -> None:
        target: Any = doc
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


NODE = "test_m.py::test_x[a]"
BAD_DOCUMENTS = {
    "missing schema": (_drop(["schema_version"]), "missing 'schema_version'"),
    "future schema": (_set(["schema_version"], 2), "newer pytest-trt"),
    "old schema": (_set(["schema_version"], 0), "unsupported schema_version 0"),
    "string schema": (_set(["schema_version"], "1"), "must be an integer"),
    "runs not list": (_set(["runs"], {}), "runs: expected a list"),
    "run without cases": (_drop(["runs", 0, "cases"]), r"runs\[0\].cases: expected an object, got null"),
    "run without environment": (_drop(["runs", 0, "environment"]), "environment: expected an object"),
    "no hardware": (_drop(["runs", 0, "environment", "hardware"]), "environment.hardware: expected an object"),
    "case without samples": (_drop(["runs", 0, "cases", NODE, "samples"]), "samples: expected a list"),
    "samples not numbers": (_set(["runs", 0, "cases", NODE, "samples"], ["x"]), "expected a number of seconds"),
    "case not object": (_set(["runs", 0, "cases", NODE], 3), "expected an object"),
    "software is a list": (_set(["runs", 0, "environment", "software"], [1]), "software: expected an object"),
    "software is text": (_set(["runs", 0, "environment", "software"], "x"), "software: expected an object"),
    "calls not a number": (_set(["runs", 0, "cases", NODE, "calls_per_sample"], "abc"), "calls_per_sample"),
    "agreement is a list": (_set(["runs", 0, "cases", NODE, "accuracy"], {"agreement": [1]}), "accuracy"),
    "a negative sample": (_set(["runs", 0, "cases", NODE, "samples", 0], -1.0), "finite number of seconds above 0"),
    "a zero sample": (_set(["runs", 0, "cases", NODE, "samples", 0], 0), "finite number of seconds above 0"),
    "a day-long sample": (_set(["runs", 0, "cases", NODE, "samples", 0], 2e5), "to 100000, got 200000"),
    "a zero median": (_set(["runs", 0, "cases", NODE, "stats", "median"], 0.0), "median above 0"),
    "stats of no sample": (_set(["runs", 0, "cases", NODE, "stats", "n"], 0), "n >= 1"),
    "software of numbers": (_set(["runs", 0, "environment", "software"], {"torch": {"v": 1}}), "got an object"),
    "samples not a list": (_set(["runs", 0, "cases", NODE, "samples"], 1e-3), "samples: expected a list"),
    "agreement of text": (_set(["runs", 0, "cases", NODE, "accuracy"], {"agreement": {"cosine": "x"}}),
                          "accuracy"),
    "too many samples": (_set(["runs", 0, "cases", NODE, "samples"], [1e-3] * 1001), "1001 items, more than"),
    "unknown state": (_set(["runs", 0, "cases", NODE, "status"], "great"), "unknown case state"),
    "huge batch": (_set(["runs", 0, "cases", NODE, "case", "batch_size"], 10**12), "batch_size"),
}


@pytest.mark.parametrize("name", sorted(BAD_DOCUMENTS))
def test_bad_document(tmp_path: Path, name: str) -> None:
    mutate, expected = BAD_DOCUMENTS[name]
    doc = good_document()
    mutate(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    before = path.read_bytes()
    with pytest.raises(BaselineError, match=expected) as info:
        baseline.load(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("", "empty"),
        ("  \n", "empty"),
        ('{"schema_version": 1, "ru', "not valid JSON"),
        ("[1, 2]", "expected an object, got a list"),
        ("\xff\xfe", "not UTF-8 text|not valid JSON"),
        ('{"schema_version": 1, "runs": [' + "[" * 100_000, "nests|not valid JSON"),
        ('{"schema_version": NaN, "runs": []}', "NaN is not a number"),
        ('{"schema_version": 1, "runs": [], "x": ' + "9" * 5001 + "}", "integer of 5001 digits"),
        ('{"schema_version": 1, "runs": [], "x": 1e400}', "overflows a float"),
        ('{"schema_version": 1, "runs": [], "x": -1e400}', "overflows a float"),
        ('{"schema_version": 1, "runs": [], "x": [Infinity]}', "Infinity is not a number"),
        ('{"schema_version": 1, "runs": [], "x": [-Infinity]}', "-Infinity is not a number"),
        ('{"schema_version": 1, "runs": [{"x": [NaN]}]}', "NaN is not a number"),
    ],
)
def test_unreadable_file(tmp_path: Path, content: str | None, expected: str) -> None:
    path = tmp_path / "b.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(BaselineError, match=expected) as info:
        baseline.load(path)
    assert str(path) in str(info.value)
    if content is not None:
        assert path.read_text() == content
    else:
        assert not path.exists()


def test_save_refuses_to_replace_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('{"schema_version": 1, "runs": [')
    with pytest.raises(BaselineError, match="not valid JSON"):
        save(path, [make_result()], ENV)
    assert path.read_text() == '{"schema_version": 1, "runs": ['


SAVER = textwrap.dedent(
    """
    import sys
    from pytest_trt import baseline
    from pytest_trt.case import Case
    from pytest_trt.records import CaseResult, Timing
    from pytest_trt.stats import summarize
    env = {"hardware": {"kind": "cpu", "cpu_model": "x"}, "software": {}}
    samples = [1e-3 + k * 1e-9 for k in range(1000)]
    timing = Timing("perf_counter", samples, summarize(samples, 1, 1.0), 0, 0.0, 1.0, "converged")
    results = [CaseResult(Case("m", "torch", "fp32", 1, "cpu"), f"t.py::case[{i}]", "m", timing=timing)
               for i in range(60)]
    print("ready", flush=True)
    while True:
        baseline.save(sys.argv[1], [baseline.new_run(results, env)], keep_runs=3)
    """
)


def test_kill_during_save_leaves_a_complete_file(tmp_path: Path) -> None:
    path = tmp_path / "big.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(7)
    kills = torn = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(path)], env=env, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 60
        while not path.exists() and time.monotonic() < deadline:  # a loaded host saves slowly
            time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.6))  # a save of this file takes ~0.1 s: kills land mid-write
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += proc.returncode == -signal.SIGKILL
        leftovers = list(tmp_path.glob(".big.json.*.tmp"))  # a temp file: the kill hit mid-write
        torn += bool(leftovers)
        for tmp in leftovers:
            tmp.unlink()
        if path.exists():
            loaded = baseline.load(path)
            assert 1 <= len(loaded.runs) <= 3
            for run in loaded.runs:
                assert len(run.cases) == 60
                assert all(len(e.samples) == 1000 for e in run.cases.values())
    assert kills == 6
    assert path.exists()
    assert torn >= 1, "no kill landed during a write; the test proved nothing"


def _save_many(path: str, worker: int) -> None:
    for i in range(5):
        result = make_result(nodeid=f"t.py::w{worker}[{i}]")
        save(path, [result], ENV, keep_runs=100)


def test_concurrent_saves_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.json")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_save_many, args=(path, w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    runs = baseline.load(path).runs
    assert len(runs) == 15
    assert {n for r in runs for n in r.cases} == {f"t.py::w{w}[{i}]" for w in range(3) for i in range(5)}


def test_thin() -> None:
    assert thin([1.0, 2.0], 10) == [1.0, 2.0]
    thinned = thin([float(i) for i in range(10_001)], 101)
    assert thinned == [float(i) for i in range(0, 10_001, 100)]


def test_entry_to_result_round_trip() -> None:
    result = make_result()
    entry = baseline.Entry.of(result)
    back = entry.to_result("test_m.py::test_x[a]")
    assert back.timing is not None and result.timing is not None
    assert back.timing.samples == result.timing.samples
    assert back.case == result.case and back.build.model_hash == "abc"


def test_cases_are_keyed_without_the_directories_that_move_with_the_rootdir(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    save(path, [make_result("proj/test_a.py::test_x[torch-fp32-bs1]"), make_result("test_b.py::test_y[a]")], ENV)
    loaded = baseline.load(path)
    assert set(loaded.runs[0].cases) == {"test_a.py::test_x[torch-fp32-bs1]", "test_b.py::test_y[a]"}
    assert len(loaded.entries("elsewhere/test_a.py::test_x[torch-fp32-bs1]")) == 1
    assert len(loaded.entries("test_a.py::test_x[torch-fp32-bs1]")) == 1
    assert loaded.runs[0].cases["test_a.py::test_x[torch-fp32-bs1]"].nodeid == "proj/test_a.py::test_x[torch-fp32-bs1]"


def test_old_baselines_keyed_by_node_id_still_load_and_match(tmp_path: Path) -> None:
    path = tmp_path / "old.json"
    run = baseline.new_run([make_result("benchmarks/test_inference.py::test_latency[x]")], ENV).to_dict()
    cases = run["cases"]
    assert isinstance(cases, dict)
    run["cases"] = {"benchmarks/test_inference.py::test_latency[x]": cases["test_inference.py::test_latency[x]"]}
    path.write_text(json.dumps({"schema_version": 1, "tool": "pytest-trt", "runs": [run]}))
    loaded = baseline.load(path)
    assert len(loaded.entries("pytest_trt/suite/test_inference.py::test_latency[x]")) == 1


def test_samples_that_are_nan_or_infinite_in_a_written_entry_are_refused(tmp_path: Path) -> None:
    """NaN and Infinity are not JSON, but Python's json writes them: a hand-made or foreign file."""
    for value in ("NaN", "Infinity", "-Infinity", "-1e-3", "0"):
        doc = json.dumps(good_document()).replace('"samples": [', f'"samples": [{value}, ', 1)
        path = tmp_path / "b.json"
        path.write_text(doc)
        with pytest.raises(BaselineError, match=f"{path}: .*(not a number|seconds above 0)"):
            baseline.load(path)


def test_a_file_of_11_million_samples_is_refused_before_it_is_parsed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """It fits in the size limit (66 MB), so it used to be parsed for 13 s before the schema refused
    its 1000-sample cap; the list's length is now read off the bytes first."""
    from pytest_trt import jsonfile

    path = tmp_path / "huge.json"
    head = json.dumps(good_document()).split('"samples": [', 1)
    path.write_bytes(head[0].encode() + b'"samples": [' + b"0.001," * 11_000_000 + head[1].encode())

    def parse(text: str, where: str) -> None:
        raise AssertionError("the file was parsed")

    monkeypatch.setattr(jsonfile, "loads", parse)
    with pytest.raises(BaselineError, match=r"a list of 110000\d\d items, more than the 1000000"):
        baseline.load(path)


def test_a_list_at_the_limit_is_not_refused_by_the_scan() -> None:
    from pytest_trt import jsonfile

    at_limit = b"[" + b",".join([b"1"] * 1000) + b"]"
    assert jsonfile.longest_list(at_limit, 1000) == 0  # not longer than the limit: the schema decides
    assert jsonfile.longest_list(b'{"a": [' + b"1," * 1000 + b'1], "b": "[x]"}', 1000) == 1001


def test_zero_samples_the_timer_reads_are_saved_so_the_file_loads_again(tmp_path: Path) -> None:
    """Two CUDA events with no GPU work between them read 0 ns. The baseline once kept such samples
    and then refused to load: one such case bricked the gate for every later run."""
    path = tmp_path / "b.json"
    some = [0.0, 0.0] + [1e-6] * 8
    none = [0.0] * 10
    partly = make_result("t.py::x[partly]")
    below = make_result("t.py::x[below]")
    partly.timing = Timing("cuda-event", some, summarize(some, 1, 1.0), 0, 0.0, 1.0, "converged")
    below.timing = Timing("cuda-event", none, summarize(none, 1, 1.0), 0, 0.0, 1.0, "converged")
    save(path, [partly, below], ENV)
    cases = baseline.load(path).runs[0].cases
    assert cases["t.py::x[partly]"].samples == [1e-6] * 8 and cases["t.py::x[partly]"].median == 1e-6
    assert cases["t.py::x[below]"].samples == [] and cases["t.py::x[below]"].stats is None


def test_a_results_file_keeps_zero_readings_and_loads() -> None:
    from pytest_trt import schema

    zeros = [0.0] * 10
    result = make_result()
    result.timing = Timing("cuda-event", zeros, summarize(zeros, 1, 1.0), 0, 0.0, 1.0, "converged")
    document = {"schema_version": 1, "environment": ENV, "cases": [result.to_dict()]}
    loaded = schema.results(json.loads(json.dumps(document)), "r.json")
    assert loaded.cases[0].timing is not None and loaded.cases[0].timing.samples == zeros
