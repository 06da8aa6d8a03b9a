"""``pytest-trt compare`` on real baseline and results files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt import baseline, cli
from pytest_trt.case import Case
from pytest_trt.records import CaseResult, Timing
from pytest_trt.stats import summarize

ROOT = Path(__file__).resolve().parents[1]


def env(gpu: str | None = None) -> dict[str, Any]:
    return {
        "hardware": {
            "kind": "cuda" if gpu else "cpu",
            "cpu_model": "AMD EPYC",
            "gpu_name": gpu,
            "gpu_count": 1 if gpu else 0,
            "compute_capability": None,
            "mig": None,
        },
        "software": {"onnxruntime": "1.32.0"},
    }


def case_result(model: str, backend: str, median: float, seed: int, precision: str = "fp32") -> CaseResult:
    samples = list(median * np.exp(np.random.default_rng(seed).normal(0, 0.01, 300)))
    case = Case(model, backend, precision, 8, "cpu")
    timing = Timing("perf_counter", samples, summarize(samples, 8, sum(samples)), 3, 0.1, sum(samples), "converged")
    return CaseResult(case, f"tests/test_zoo.py::test_latency[{case.id}]", model, timing=timing)


def write_baseline(path: Path, medians: dict[str, float], environment: dict[str, Any], seed: int) -> Path:
    results = [case_result(model, "onnxruntime", m, seed + i) for i, (model, m) in enumerate(medians.items())]
    baseline.save(path, [baseline.new_run(results, environment)])
    return path


def write_results(path: Path, medians: dict[str, float], environment: dict[str, Any], seed: int) -> Path:
    cases = [case_result(model, "onnxruntime", m, seed + i).to_dict() for i, (model, m) in enumerate(medians.items())]
    path.write_text(json.dumps({"schema_version": 1, "environment": environment, "cases": cases}))
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_regression_between_baselines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_baseline(tmp_path / "a.json", {"digits-cnn": 1e-3, "seg-unet": 2e-3}, env(), 0)
    b = write_baseline(tmp_path / "b.json", {"digits-cnn": 1.15e-3, "seg-unet": 2e-3}, env(), 10)
    code, out, err = run(["compare", str(a), str(b)], capsys)
    assert code == 0
    lines = out.splitlines()
    row = next(line for line in lines if line.startswith("digits-cnn-onnxruntime-fp32-bs8"))
    assert "REGRESSION" in row and "×1.1" in row
    assert "PASS" in next(line for line in lines if line.startswith("seg-unet"))
    code, _, err = run(["compare", str(a), str(b), "--fail-on-regression"], capsys)
    assert code == 1
    assert err.startswith("REGRESSION digits-cnn-onnxruntime-fp32-bs8: median")
    code, _, _ = run(["compare", str(a), str(b), "--fail-on-regression", "--threshold", "20%"], capsys)
    assert code == 0


def test_results_and_baseline_files_mix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_results(tmp_path / "a-results.json", {"digits-cnn": 1e-3}, env(), 0)
    b = write_baseline(tmp_path / "b.json", {"digits-cnn": 1e-3}, env(), 5)
    c = write_results(tmp_path / "c-results.json", {"digits-cnn": 0.5e-3, "new-model": 1e-3}, env(), 7)
    code, out, _ = run(["compare", str(a), str(b), str(c), "--fail-on-regression"], capsys)
    assert code == 0
    assert "b.json/a-results.json (CI)" in out and "c-results.json/a-results.json (CI)" in out
    row = next(line for line in out.splitlines() if line.startswith("digits-cnn"))
    assert "PASS" in row and "IMPROVED" in row
    assert "NEW" in next(line for line in out.splitlines() if line.startswith("new-model"))


def test_different_gpus_compare_but_do_not_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_baseline(tmp_path / "a100.json", {"m1": 1e-3, "m2": 4e-3}, env("NVIDIA A100"), 0)
    b = write_baseline(tmp_path / "h100.json", {"m1": 2e-3, "m2": 2e-3}, env("NVIDIA H100"), 3)
    code, out, err = run(["compare", str(a), str(b), "--fail-on-regression"], capsys)
    assert code == 0
    assert "different GPUs: NVIDIA A100 vs NVIDIA H100 — comparison, not a gate" in out
    assert "INCOMPARABLE" in out and "hardware differs" in err
    # speed-ups 0.5 and 2.0 in one backend/precision group: geometric mean 1.0
    geo = next(line for line in out.splitlines() if "onnxruntime/fp32" in line)
    assert float(geo.split("×")[1].split()[0]) == pytest.approx(1.0, rel=0.01) and "over 2 cases" in geo


def test_geomean_per_backend_and_precision(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_cases = [
        case_result("m1", "torch", 1e-3, 1),
        case_result("m2", "torch", 1e-3, 2),
        case_result("m1", "onnxruntime", 1e-3, 3, "fp16"),
    ]
    b_cases = [
        case_result("m1", "torch", 0.5e-3, 4),
        case_result("m2", "torch", 1e-3 / 1.5, 5),
        case_result("m1", "onnxruntime", 0.25e-3, 6, "fp16"),
    ]
    paths = []
    for name, cases in (("a.json", a_cases), ("b.json", b_cases)):
        path = tmp_path / name
        path.write_text(json.dumps({"schema_version": 1, "environment": env(), "cases": [c.to_dict() for c in cases]}))
        paths.append(str(path))
    code, out, _ = run(["compare", *paths, "--md"], capsys)
    assert code == 0
    torch_line = next(line for line in out.splitlines() if "torch/fp32" in line)
    assert float(torch_line.split("×")[1].split()[0]) == pytest.approx(3**0.5, rel=0.01)
    ort_line = next(line for line in out.splitlines() if "onnxruntime/fp16" in line)
    assert float(ort_line.split("×")[1].split()[0]) == pytest.approx(4.0, rel=0.01)
    assert "| case | median a.json | median b.json | b.json/a.json (CI) | verdict |" in out
    assert sum(line.startswith("| m") for line in out.splitlines()) == 3


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "does not exist"),
        ("{", "not valid JSON"),
        ('{"schema_version": 9, "runs": []}', "newer pytest-trt"),
        ('{"foo": 1}', "neither a pytest-trt baseline"),
        ('{"schema_version": 1, "cases": [1]}', "environment"),
        ('{"schema_version": 1, "runs": []}', "holds no runs"),
    ],
)
def test_bad_file_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str
) -> None:
    good = write_baseline(tmp_path / "good.json", {"m": 1e-3}, env(), 0)
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    code, out, err = run(["compare", str(good), str(bad)], capsys)
    assert code == 2
    assert str(bad) in err and expected in err
    assert "Traceback" not in err and out == ""


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_baseline(tmp_path / "good.json", {"m": 1e-3}, env(), 0)
    assert run(["compare", str(good)], capsys)[0] == 2
    code, _, err = run(["compare", str(good), str(good), "--threshold", "abc"], capsys)
    assert code == 2 and "--threshold" in err
    assert run([], capsys)[0] == 2
    assert run(["--help"], capsys)[0] == 0


def test_console_entry_point_in_a_process(tmp_path: Path) -> None:
    a = write_baseline(tmp_path / "a.json", {"m": 1e-3}, env(), 0)
    env_vars = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-c", "import sys; from pytest_trt.cli import main; sys.exit(main())"]
    ok = subprocess.run([*cmd, "compare", str(a), str(a)], capture_output=True, text=True, env=env_vars)
    assert ok.returncode == 0 and "m-onnxruntime-fp32-bs8" in ok.stdout
    bad = subprocess.run(
        [*cmd, "compare", str(a), str(tmp_path / "nope.json")], capture_output=True, text=True, env=env_vars
    )
    assert bad.returncode == 2 and "nope.json: file does not exist" in bad.stderr
    assert "Traceback" not in bad.stderr
