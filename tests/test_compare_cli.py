"""``pytest-trt compare`` on real baseline and results files: which GPU or build is faster."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt import baseline, cli
from pytest_trt.case import Case
from pytest_trt.records import CaseResult, Flag, Timing
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


def case_result(model: str, backend: str, median: float, seed: int, precision: str = "fp32", batch: int = 8,
                device: str = "cpu", probe: tuple[float, float] | None = None) -> CaseResult:
    """A timed case; ``probe`` = (launch, GPU compute) medians of the backlog probe, if it ran."""
    samples = list(median * np.exp(np.random.default_rng(seed).normal(0, 0.01, 300)))
    case = Case(model, backend, precision, batch, device)
    timing = Timing("perf_counter", samples, summarize(samples, batch, sum(samples)), 3, 0.1, sum(samples), "converged")
    if probe is not None:
        timing = replace(timing, clock="cuda-event", launch=summarize([probe[0]] * 8, 1, 1.0),
                         gpu_compute=summarize([probe[1]] * 8, 1, 1.0))
    return CaseResult(case, f"tests/test_zoo.py::test_latency[{case.id}]", model, timing=timing)


def write_baseline(path: Path, medians: dict[str, float], environment: dict[str, Any], seed: int) -> Path:
    results = [case_result(model, "onnxruntime", m, seed + i) for i, (model, m) in enumerate(medians.items())]
    baseline.save(path, [baseline.new_run(results, environment)])
    return path


def write_cases(path: Path, cases: list[CaseResult], environment: dict[str, Any]) -> Path:
    document = {"schema_version": 1, "environment": environment, "cases": [c.to_dict() for c in cases]}
    path.write_text(json.dumps(document))
    return path


def write_results(path: Path, medians: dict[str, float], environment: dict[str, Any], seed: int) -> Path:
    cases = [case_result(model, "onnxruntime", m, seed + i) for i, (model, m) in enumerate(medians.items())]
    return write_cases(path, cases, environment)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def row_of(out: str, case_id: str) -> str:
    return next(line for line in out.splitlines() if line.startswith(case_id + " "))


def test_a_regression_between_baselines_on_one_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_baseline(tmp_path / "a.json", {"digits-cnn": 1e-3, "seg-unet": 2e-3}, env(), 0)
    b = write_baseline(tmp_path / "b.json", {"digits-cnn": 1.15e-3, "seg-unet": 2e-3}, env(), 10)
    code, out, err = run(["compare", str(a), str(b)], capsys)
    assert code == 0
    row = row_of(out, "digits-cnn-onnxruntime-fp32-bs8")
    assert "REGRESSION" in row and re.search(r"0\.8[67]\d× \(", row)  # one orientation: B's speed-up over A
    assert "PASS" in row_of(out, "seg-unet-onnxruntime-fp32-bs8")
    assert re.search(r"b\.json \(B\) is 1\.0\d× slower than a\.json \(A\)", out)  # one machine: files named
    code, _, err = run(["compare", str(a), str(b), "--fail-on-regression"], capsys)
    assert code == 1
    assert err.startswith("REGRESSION digits-cnn-onnxruntime-fp32-bs8: median")
    code, _, _ = run(["compare", str(a), str(b), "--fail-on-regression", "--threshold", "20%"], capsys)
    assert code == 0


def test_other_gpus_are_compared_in_words_with_the_ci_and_one_sentence(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a100 = [case_result("m1", "torch", 2e-3, 1, device="cuda:0", probe=(5e-5, 2e-3)),
            case_result("m2", "torch", 1e-3, 2, device="cuda:0", probe=(5e-5, 1e-3)),
            case_result("m3", "torch", 1e-3, 3, device="cuda:0", probe=(5e-5, 1e-3))]
    h100 = [case_result("m1", "torch", 1e-3, 4, device="cuda:0", probe=(5e-5, 1e-3)),
            case_result("m2", "torch", 0.5e-3, 5, device="cuda:0", probe=(5e-5, 0.5e-3)),
            case_result("m3", "torch", 1.002e-3, 6, device="cuda:0", probe=(5e-5, 1e-3))]
    a = write_cases(tmp_path / "a100.json", a100, env("NVIDIA A100"))
    b = write_cases(tmp_path / "h100.json", h100, env("NVIDIA H100"))
    code, out, err = run(["compare", str(a), str(b), "--fail-on-regression"], capsys)
    assert code == 0 and "hardware differs" in err
    assert "different GPUs: NVIDIA A100 vs NVIDIA H100 — compared, not gated" in out
    assert "INCOMPARABLE" not in out  # on other hardware the table speaks in words
    assert re.search(r" (1\.99\d|2\.00\d)× \(.* faster ", row_of(out, "m1-torch-fp32-bs8"))
    assert "no clear difference" in row_of(out, "m3-torch-fp32-bs8")
    # geo-mean of 2, 2 and ~1: 1.587, over the three GPU-bound cases
    assert "NVIDIA H100 (B) is 1.59× faster than NVIDIA A100 (A) (geo-mean of 3 GPU-bound cases)" in out
    assert "GPU-bound" in row_of(out, "m1-torch-fp32-bs8")


def test_geomeans_split_host_bound_from_gpu_bound_and_old_files_say_unknown(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_cases = [case_result("m1", "torch", 1e-3, 1, device="cuda:0", probe=(5e-5, 1e-3)),
               case_result("m2", "torch", 1e-3, 2, device="cuda:0"),
               case_result("m3", "torch", 1e-3, 3, "fp16", device="cuda:0", probe=(9e-4, 1e-4))]
    a_cases[1].flags = [Flag.ENQUEUE_BOUND]
    b_cases = [case_result("m1", "torch", 0.5e-3, 4, device="cuda:0", probe=(5e-5, 0.5e-3)),
               case_result("m2", "torch", 1e-3 / 1.5, 5, device="cuda:0"),
               case_result("m3", "torch", 0.25e-3, 6, "fp16", device="cuda:0"),  # no probe: an older file
               case_result("m4", "torch", 1e-3, 7, device="cuda:0")]
    a = write_cases(tmp_path / "a.json", a_cases, env("NVIDIA A100"))
    b = write_cases(tmp_path / "b.json", b_cases, env("NVIDIA H100"))
    code, out, _ = run(["compare", str(a), str(b)], capsys)
    assert code == 0
    assert "host-bound" in row_of(out, "m2-torch-fp32-bs8") and "GPU-bound" in row_of(out, "m1-torch-fp32-bs8")
    assert "host-bound (host/unknown)" in row_of(out, "m3-torch-fp16-bs8")
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("geo-mean speed-up of B over A"))
    header, fp32 = lines[at + 1].split(), next(line for line in lines[at:] if "torch/fp32" in line)
    assert header == ["backend/precision", "GPU-bound", "host-bound"]
    assert re.search(r"(1\.99\d|2\.00\d)× \(1\) +1\.50\d× \(1\)", fp32)  # GPU- and host-bound apart, never averaged
    assert "NVIDIA H100 (B) is 2.00× faster than NVIDIA A100 (A) (geo-mean of 1 GPU-bound cases)" in out
    assert "m4-torch" not in out and "--all adds the 1 in some files only (1 in B)" in out
    code, out, _ = run(["compare", str(a), str(b), "--all"], capsys)
    assert "NEW" in row_of(out, "m4-torch-fp32-bs8")


def test_common_cases_by_default_batches_in_numeric_order_all_for_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a_cases = [case_result("m", "onnxruntime", 1e-3 * b, b, batch=b) for b in (128, 2, 16)]
    b_cases = [case_result("m", "onnxruntime", 1e-3 * b, b + 50, batch=b) for b in (16, 2, 4)]
    a = write_cases(tmp_path / "a.json", a_cases, env())
    b = write_cases(tmp_path / "b.json", b_cases, env())
    code, out, _ = run(["compare", str(a), str(b)], capsys)
    ids = [line.split()[0] for line in out.splitlines() if line.startswith("m-onnxruntime")]
    assert ids == ["m-onnxruntime-fp32-bs2", "m-onnxruntime-fp32-bs16"]
    code, out, _ = run(["compare", str(a), str(b), "--all"], capsys)
    ids = [line.split()[0] for line in out.splitlines() if line.startswith("m-onnxruntime")]
    assert ids == [f"m-onnxruntime-fp32-bs{b}" for b in (2, 4, 16, 128)]
    assert "MISSING" in row_of(out, "m-onnxruntime-fp32-bs128") and "NEW" in row_of(out, "m-onnxruntime-fp32-bs4")


def test_the_reference_column_is_the_gates_nearest_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A case bimodal across the reference's runs (kernel choice per process): the later file is
    compared with the mode nearest to it, and the A column shows that mode, not the newest run."""
    path = tmp_path / "a.json"
    for i, median in enumerate([1.4e-3, 1.0e-3, 1.402e-3, 1.001e-3, 1.399e-3, 1.0e-3]):
        baseline.save(path, [baseline.new_run([case_result("m", "onnxruntime", median, i)], env())])
    b = write_results(tmp_path / "b.json", {"m": 1.4e-3}, env(), 99)
    code, out, _ = run(["compare", str(path), str(b)], capsys)
    row = row_of(out, "m-onnxruntime-fp32-bs8")
    assert code == 0 and "PASS" in row and row.split()[1:3] == ["1.400", "ms"]


def test_markdown_has_the_same_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_results(tmp_path / "a.json", {"m1": 1e-3}, env(), 0)
    b = write_baseline(tmp_path / "b.json", {"m1": 1e-3}, env(), 5)
    c = write_results(tmp_path / "c.json", {"m1": 0.5e-3, "new-model": 1e-3}, env(), 7)
    code, out, _ = run(["compare", str(a), str(b), str(c), "--md"], capsys)
    assert code == 0
    assert ("| case | A ref (B) | B | B vs A (CI) | verdict B | A ref (C) | C | C vs A (CI) | verdict C "
            "| bound A/B/C | flags A | flags B | flags C |") in out
    row = next(line for line in out.splitlines() if line.startswith("| m1-"))
    assert "PASS" in row and "IMPROVED" in row


def test_text_from_files_cannot_repaint_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hostile = "m\x1b[2J\nfake"
    a = write_results(tmp_path / "a.json", {hostile: 1e-3}, env("GPU\x1b[31m"), 0)
    code, out, _ = run(["compare", str(a), str(a)], capsys)
    assert code == 0 and "\x1b" not in out and "\\x1b[2J" in out


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
    assert str(bad) in err and expected in err and len(err.strip().splitlines()) == 1
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


def test_baselines_keep_the_probe_so_their_cases_are_bound_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for name, gpu, median in (("a100.json", "NVIDIA A100", 2e-3), ("h100.json", "NVIDIA H100", 1e-3)):
        result = case_result("m", "torch", median, 1, device="cuda:0", probe=(5e-5, median))
        baseline.save(tmp_path / name, [baseline.new_run([result], env(gpu))])
        paths.append(str(tmp_path / name))
    entry = baseline.load(paths[0]).runs[-1].cases["test_zoo.py::test_latency[m-torch-fp32-bs8]"]
    assert entry.launch_s == pytest.approx(5e-5) and entry.gpu_compute_s == pytest.approx(2e-3)
    code, out, _ = run(["compare", *paths], capsys)
    assert code == 0 and "GPU-bound" in row_of(out, "m-torch-fp32-bs8") and "1 GPU-bound cases" in out
