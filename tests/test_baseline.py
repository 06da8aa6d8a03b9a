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
from pytest_trt.results import CaseResult, Stats, Timing

ROOT = Path(__file__).resolve().parents[1]


def make_result(
    nodeid: str = "test_m.py::test_x[a]", n: int = 50, base: float = 1e-3, **kw: Any
) -> dict[str, Any]:
    samples = [base * (1 + 0.01 * ((i * 7) % 5)) for i in range(n)]
    stats = Stats(
        n, min(samples), max(samples), sum(samples) / n, sorted(samples)[n // 2], 0, 0, 0, 0, 0, 0, 0, 0
    )
    timing = Timing("perf_counter", samples, stats, 3, 0.2, 0.5, "converged")
    result = CaseResult(
        Case("digits-cnn", "onnxruntime", "fp32", 8, "cpu"),
        nodeid,
        "digits-cnn",
        timing=timing,
        build={"model_hash": "abc"},
        flags=kw.pop("flags", []),
        **kw,
    )
    return result.to_dict()


ENV = {
    "hardware": {"kind": "cpu", "cpu_model": "Test CPU", "gpu_name": None, "gpu_count": 0},
    "software": {"python": "3.11", "onnxruntime": "1.32.0"},
}


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    result = make_result(n=5000, accuracy={"metric": "top1", "value": 0.98}, flags=["UNSTABLE"])
    baseline.save(path, [result], ENV)
    loaded = baseline.load(path)
    assert len(loaded.runs) == 1
    run = loaded.runs[0]
    assert run.environment == ENV
    assert run.created.endswith("+00:00")
    entry = run.cases[result["nodeid"]]
    assert entry["case_id"] == "digits-cnn-onnxruntime-fp32-bs8"
    assert entry["model_hash"] == "abc"
    assert entry["accuracy"]["value"] == 0.98 and entry["flags"] == ["UNSTABLE"]
    assert len(entry["samples"]) == baseline.MAX_SAMPLES  # thinned evenly
    assert entry["samples"][0] == result["timing"]["samples"][0]
    assert entry["samples"][-1] == result["timing"]["samples"][-1]
    assert entry["stats"] == result["timing"]["stats"]
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["tool"] == "pytest-trt"


def test_append_and_keep_runs(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "b.json"
    for i in range(4):
        baseline.save(path, [make_result(base=1e-3 * (i + 1))], ENV, keep_runs=3)
    runs = baseline.load(path).runs
    assert len(runs) == 3
    assert [r.cases["test_m.py::test_x[a]"]["samples"][0] for r in runs] == pytest.approx([2e-3, 3e-3, 4e-3])
    assert len({r.run_id for r in runs}) == 3
    assert not list(path.parent.glob("*.tmp"))  # no temp files left behind


def test_untimed_case_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    broken = CaseResult(Case("m", "torch", "fp16", 1, "cpu"), "t.py::oom", "m", status="oom").to_dict()
    baseline.save(path, [broken], ENV)
    entry = baseline.load(path).runs[0].cases["t.py::oom"]
    assert entry["status"] == "oom" and entry["samples"] == [] and entry["stats"] is None


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
    "runs not list": (_set(["runs"], {}), "'runs' must be a list"),
    "run without cases": (_drop(["runs", 0, "cases"]), "missing field 'cases'"),
    "run without environment": (_drop(["runs", 0, "environment"]), "missing field 'environment'"),
    "no hardware": (_drop(["runs", 0, "environment", "hardware"]), "environment.hardware"),
    "case without samples": (_drop(["runs", 0, "cases", NODE, "samples"]), "missing field 'samples'"),
    "samples not numbers": (_set(["runs", 0, "cases", NODE, "samples"], ["x"]), "list of numbers"),
    "case not object": (_set(["runs", 0, "cases", NODE], 3), "expected an object"),
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
        ("[1, 2]", "expected a JSON object"),
        ("\xff\xfe", "not valid JSON"),
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
        baseline.save(path, [make_result()], ENV)
    assert path.read_text() == '{"schema_version": 1, "runs": ['


SAVER = textwrap.dedent(
    """
    import sys
    from pytest_trt import baseline
    env = {"hardware": {"kind": "cpu", "cpu_model": "x"}, "software": {}}
    results = [{"nodeid": f"t.py::case[{i}]", "case": {"model": "m"}, "case_id": f"c{i}", "status": "ok",
                "timing": {"clock": "perf_counter", "samples": [1e-3 + k * 1e-9 for k in range(1000)],
                           "stats": None}} for i in range(60)]
    print("ready", flush=True)
    while True:
        baseline.save(sys.argv[1], results, env, keep_runs=3)
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
                assert all(len(e["samples"]) == 1000 for e in run.cases.values())
    assert kills == 6
    assert path.exists()
    assert torn >= 1, "no kill landed during a write; the test proved nothing"


def _save_many(path: str, worker: int) -> None:
    for i in range(5):
        result = make_result(nodeid=f"t.py::w{worker}[{i}]")
        baseline.save(path, [result], ENV, keep_runs=100)


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
    assert baseline.thin([1.0, 2.0], 10) == [1.0, 2.0]
    thinned = baseline.thin([float(i) for i in range(10_001)], 101)
    assert thinned == [float(i) for i in range(0, 10_001, 100)]


def test_entry_to_result_round_trip() -> None:
    result = make_result()
    entry = baseline.case_entry(result)
    back = baseline.entry_to_result(result["nodeid"], entry)
    assert back["timing"]["samples"] == result["timing"]["samples"]
    assert back["case_id"] == result["case_id"] and back["build"]["model_hash"] == "abc"


def test_node_ids_match_across_a_moved_rootdir(tmp_path: Path) -> None:
    """pytest's rootdir, and so node ids, can gain or lose leading directories between runs."""
    path = tmp_path / "b.json"
    results = [make_result("proj/test_a.py::test_x[torch-fp32-bs1]"), make_result("test_b.py::test_y[a]")]
    baseline.save(path, results, ENV)
    loaded = baseline.load(path)
    assert loaded.resolve("test_a.py::test_x[torch-fp32-bs1]") == "proj/test_a.py::test_x[torch-fp32-bs1]"
    assert loaded.resolve("outer/test_b.py::test_y[a]") == "test_b.py::test_y[a]"
    assert loaded.resolve("test_c.py::test_z") == "test_c.py::test_z"  # unknown stays itself
    assert len(loaded.entries("test_a.py::test_x[torch-fp32-bs1]")) == 1
