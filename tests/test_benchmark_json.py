"""pytest-benchmark JSON export: same layout as pytest-benchmark's own, readable by its compare."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt.report import benchmark_json

ENV = {"hardware": {"kind": "cpu", "cpu_model": "AMD EPYC", "cpu_count": 2, "gpu_name": None, "gpu_count": 0}}


def result(case_id: str, median: float, seed: int, n: int = 200, **extra: Any) -> dict[str, Any]:
    samples = list(median * np.exp(np.random.default_rng(seed).normal(0, 0.02, n)))
    model = case_id.split("-")[0]
    case = {
        "model": model,
        "backend": "onnxruntime",
        "precision": "fp32",
        "batch_size": 8,
        "device": "cpu",
        "variant": "eager",
    }
    return {
        "nodeid": f"tests/test_zoo.py::test_latency[{case_id}]",
        "case": case,
        "case_id": case_id,
        "status": "ok",
        "timing": {"clock": "perf_counter", "samples": samples, "stats": None, "warmup_iterations": 10},
        "flags": [],
        **extra,
    }


@pytest.fixture(scope="module")
def reference_document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What pytest-benchmark itself writes for a one-test session."""
    pytest.importorskip("pytest_benchmark")
    folder = tmp_path_factory.mktemp("pb")
    (folder / "test_tiny.py").write_text("def test_tiny(benchmark):\n    benchmark(lambda: sum(range(50)))\n")
    out = folder / "out.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "--benchmark-max-time=0.05",
            f"--benchmark-json={out}",
            "test_tiny.py",
        ],
        cwd=folder,
        check=True,
        capture_output=True,
        # an outer xdist worker's variables make pytest-benchmark disable itself in the child
        env={k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")},
    )
    document: dict[str, Any] = json.loads(out.read_text())
    return document


def test_layout_matches_pytest_benchmark(tmp_path: Path, reference_document: dict[str, Any]) -> None:
    ours = benchmark_json.write(
        tmp_path / "ours.json",
        [result("digits-cnn-onnxruntime-fp32-bs8", 1e-3, 1)],
        ENV,
        commit_info={"id": "abc"},
    )
    assert json.loads((tmp_path / "ours.json").read_text()) == ours
    assert list(ours) == list(reference_document)
    ref_bench, our_bench = reference_document["benchmarks"][0], ours["benchmarks"][0]
    assert list(our_bench) == list(ref_bench)
    assert list(our_bench["stats"]) == list(ref_bench["stats"])
    assert set(ref_bench["options"]) - {"precision", "confidence"} <= set(our_bench["options"])
    assert set(reference_document["machine_info"]) - {"cpu"} <= set(ours["machine_info"])
    for key, value in ref_bench["stats"].items():
        assert type(our_bench["stats"][key]) is type(value), key
    assert our_bench["fullname"] == "tests/test_zoo.py::test_latency[digits-cnn-onnxruntime-fp32-bs8]"
    assert our_bench["name"] == "test_latency[digits-cnn-onnxruntime-fp32-bs8]"


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 10, 201])
def test_stats_agree_with_pytest_benchmark(n: int) -> None:
    pb_stats = pytest.importorskip("pytest_benchmark.stats")
    samples = list(np.random.default_rng(n).lognormal(-7, 0.3, n))
    theirs = pb_stats.Stats()
    for s in samples:
        theirs.update(s)
    ours = benchmark_json.stats(samples)
    from importlib.metadata import version

    older = tuple(int(p) for p in version("pytest-benchmark").split(".")[:2]) < (5, 3)
    for key in pb_stats.Stats.fields:
        if older and key in ("ld15iqr", "hd15iqr"):
            continue  # pytest-benchmark 5.3 changed how these outlier fences are computed; we follow 5.3
        expected = getattr(theirs, key)
        assert ours[key] == (expected if isinstance(expected, (str, int)) else pytest.approx(expected)), key
    assert ours["data"] == samples and ours["iterations"] == 1


def test_full_sample_stats_take_precedence() -> None:
    summary = {"n": 5000, "min": 1.0, "max": 9.0, "mean": 2.0, "median": 1.5, "stddev": 0.5}
    out = benchmark_json.stats([1.0, 2.0, 3.0], summary)
    assert out["rounds"] == 5000 and out["median"] == 1.5 and out["total"] == pytest.approx(10_000.0)
    assert out["ops"] == pytest.approx(0.5)


def test_a_cuda_block_of_calls_is_pytest_benchmarks_iterations_per_round(tmp_path: Path) -> None:
    blocked = result("a-b", 1e-4, 3)
    blocked["timing"]["calls_per_sample"] = 16
    doc = benchmark_json.write(tmp_path / "o.json", [blocked, result("c-d", 1e-3, 4)], ENV, commit_info={})
    assert [b["stats"]["iterations"] for b in doc["benchmarks"]] == [16, 1]


def test_untimed_cases_are_left_out(tmp_path: Path) -> None:
    oom = {"nodeid": "t.py::oom", "case": {}, "case_id": "x", "status": "oom", "timing": None}
    doc = benchmark_json.write(tmp_path / "o.json", [oom, result("a-b", 1e-3, 2)], ENV, commit_info={})
    assert [b["param"] for b in doc["benchmarks"]] == ["a-b"]


def test_pytest_benchmark_compare_reads_our_files(tmp_path: Path) -> None:
    exe = shutil.which("pytest-benchmark", path=os.path.dirname(sys.executable)) or shutil.which(
        "pytest-benchmark"
    )
    if exe is None:
        pytest.skip("pytest-benchmark's console script is not installed")
    ids = ["digits-cnn-onnxruntime-fp32-bs8", "segnet-onnxruntime-fp32-bs1"]
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    benchmark_json.write(a, [result(ids[0], 1e-3, 1), result(ids[1], 4e-3, 2)], ENV)
    benchmark_json.write(b, [result(ids[0], 1.2e-3, 3), result(ids[1], 4e-3, 4)], ENV)
    done = subprocess.run(
        [exe, "compare", a.name, b.name, "--columns=min,median,max"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    for case_id in ids:
        assert f"test_latency[{case_id}] (a)" in done.stdout
        assert f"test_latency[{case_id}] (b)" in done.stdout
    assert "benchmark 'digits': 2 tests" in done.stdout


def test_git_commit_info_outside_a_repository(tmp_path: Path) -> None:
    info = benchmark_json.git_commit_info(str(tmp_path))
    assert info["id"] == "unversioned" and info["project"] == tmp_path.name
