"""The built-in suite ships in the package: `pytest --pyargs pytest_trt.suite` from any folder collects
the cases `pytest benchmarks` collects in a checkout. (`make wheel-check` runs it from an installed
wheel; these run it from the editable install, in a folder that is not the checkout.)"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _collected(pytester: pytest.Pytester, *args: str) -> Counter[tuple[str, str]]:
    """(file name, test name) of each collected item, counted."""
    result = pytester.runpytest("--collect-only", "-q", "-p", "no:cacheprovider", "--trt-device", "cpu", *args)
    items = [line for line in result.outlines if "::" in line]
    assert items, result.stdout.str()
    return Counter((Path(line.split("::")[0]).name, line.split("::", 1)[1]) for line in items)


def test_pyargs_collects_what_benchmarks_collects(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    both = _collected(pytester, "--pyargs", "pytest_trt.suite", str(ROOT / "benchmarks"))
    assert set(both.values()) == {2}  # each case once from the package and once from benchmarks/
    names = {name for _, name in both}
    assert {"test_latency[digits-cnn-torch-fp32-bs1]", "test_latency[shapes-unet-onnxruntime-fp32-bs8]"} <= names


def test_the_host_projects_python_files_does_not_hide_the_suite(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    everything = _collected(pytester, "--pyargs", "pytest_trt.suite")
    pytester.makeini("[pytest]\npython_files = perf_*.py\n")
    pytester.makepyfile(perf_own="def test_own():\n    pass\n")
    collected = _collected(pytester, "--pyargs", "pytest_trt.suite")
    assert collected == everything and set(collected.values()) == {1}  # all of it, nothing twice
    assert {file for file, _ in collected} == {"test_inference.py"}


def test_benchmarks_holds_no_second_copy_of_the_suite() -> None:
    source = (ROOT / "benchmarks" / "test_inference.py").read_text(encoding="utf-8")
    assert "from pytest_trt.suite.test_inference import" in source and "def test_" not in source
