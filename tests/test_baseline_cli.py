"""``pytest-trt baseline``: runs from results files, listed, shown, pruned and accepted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pytest_trt import baseline, cli
from pytest_trt.case import Case
from pytest_trt.records import CaseResult, Timing
from pytest_trt.stats import summarize

ENV = {"hardware": {"kind": "cpu", "cpu_model": "x", "gpu_name": None, "gpu_count": 0}, "software": {}}


def results_file(path: Path, medians: dict[str, float], created: str) -> Path:
    cases = []
    for name, median in medians.items():
        samples = list(median * np.exp(np.random.default_rng(1).normal(0, 1e-3, 100)))
        timing = Timing("perf_counter", samples, summarize(samples, 1, sum(samples)), 1, 0.1, 1.0, "converged")
        case = Case(name, "torch", "fp32", 1, "cpu")
        cases.append(CaseResult(case, f"t/test_x.py::test[{case.id}]", name, timing=timing).to_dict())
    path.write_text(json.dumps({"schema_version": 1, "created": created, "environment": ENV, "cases": cases}))
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_results_files_become_runs_oldest_first_and_are_listed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    late = results_file(tmp_path / "n2.json", {"a": 1e-3, "b": 2e-3}, "2026-12-02T00:00:00+00:00")
    early = results_file(tmp_path / "n1.json", {"a": 1.01e-3, "b": 2e-3}, "2026-12-01T00:00:00+00:00")
    base = tmp_path / "base.json"
    assert run(["baseline", "add", str(base), str(late), str(early)], capsys)[0] == 0
    runs = baseline.load(base).runs
    assert [r.source for r in runs] == ["n1.json", "n2.json"] and len(runs[0].cases) == 2
    code, out, _ = run(["baseline", "list", str(base)], capsys)
    assert code == 0 and "2 runs, 2 cases" in out and "n2.json" in out
    code, out, _ = run(["baseline", "show", str(base), "--case", "a-*"], capsys)
    assert code == 0 and out.startswith("a-torch-fp32-bs1: 2 runs") and "b-torch" not in out


def test_prune_and_accept_change_runs_without_losing_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base.json"
    files = [results_file(tmp_path / f"n{i}.json", {"a": 1e-3, "b": 2e-3}, f"2026-12-0{i + 1}T00:00:00+00:00")
             for i in range(3)]
    run(["baseline", "add", str(base), *map(str, files)], capsys)
    first = baseline.load(base).runs[0].run_id
    assert run(["baseline", "prune", str(base), "--run", first, "--case", "a-*"], capsys)[0] == 0
    assert set(baseline.load(base).runs[0].cases) == {"test_x.py::test[b-torch-fp32-bs1]"}
    assert run(["baseline", "prune", str(base), "--keep", "2"], capsys)[0] == 0
    assert len(baseline.load(base).runs) == 2
    slower = results_file(tmp_path / "slower.json", {"a": 1.5e-3, "b": 2e-3}, "2026-12-09T00:00:00+00:00")
    assert run(["baseline", "accept", str(base), str(slower), "--case", "a-*"], capsys)[0] == 0
    entries = baseline.load(base).entries("test_x.py::test[a-torch-fp32-bs1]")
    assert [e.median for _, e in entries] == pytest.approx([1.5e-3], rel=0.01)  # its history restarts
    assert len(baseline.load(base).entries("test_x.py::test[b-torch-fp32-bs1]")) == 3


def test_bad_input_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["baseline", "list", str(tmp_path / "absent.json")], capsys)
    assert code == 2 and "absent.json: baseline file does not exist" in err and "Traceback" not in err
    bad = tmp_path / "bad.json"
    bad.write_text("[1]")
    code, _, err = run(["baseline", "add", str(tmp_path / "b.json"), str(bad)], capsys)
    assert code == 2 and "bad.json" in err and not (tmp_path / "b.json").exists()
    code, _, err = run(["baseline", "prune", str(tmp_path / "b.json")], capsys)
    assert code == 2 and "--keep" in err
