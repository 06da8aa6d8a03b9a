"""The gate as users meet it: save a baseline, compare, a regressed case fails its own test item."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FAST

pytest.importorskip("torch")

# A model whose speed a test controls: PYTEST_TRT_TEST_DELAY_MS adds host work to each forward.
SLOW_CONFTEST = '''
import os, time
import pytest, torch
import pytest_trt.bench
from pytest_trt import ModelSpec

# PYTEST_TRT_TEST_LATER_DELAY_MS: the delay once the gate re-measures (a machine that got quiet again).
_state = {"remeasured": False}
_remeasure = pytest_trt.bench.remeasure

def remeasure(*args, **kwargs):
    _state["remeasured"] = True
    return _remeasure(*args, **kwargs)

pytest_trt.bench.remeasure = remeasure

class Delayed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 4)

    def forward(self, x):
        later = _state["remeasured"] and "PYTEST_TRT_TEST_LATER_DELAY_MS" in os.environ
        delay = float(os.environ.get("PYTEST_TRT_TEST_LATER_DELAY_MS" if later else "PYTEST_TRT_TEST_DELAY_MS",
                                     "0")) / 1000
        end = time.perf_counter() + delay
        while time.perf_counter() < end:
            pass
        return self.lin(x)

@pytest.fixture
def trt_model():
    return ModelSpec(name="delayed", build=Delayed, input_shape=(16,))
'''
TEST = "def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n"
GATE = [*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "--trt-min-time", "0.3", "--trt-max-time", "1"]


@pytest.fixture
def project(pytester, monkeypatch):
    # An ini file fixes the rootdir, as in a real project: node ids (the baseline's keys) are relative
    # to it, and without one pytest derives the rootdir from existing paths among the arguments.
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(SLOW_CONFTEST)
    pytester.makepyfile(test_gate=TEST)
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.0")
    return pytester


def test_a_regressed_case_fails_its_own_test_and_junit_shows_it(project, tmp_path, monkeypatch):
    baseline = tmp_path / "base.json"
    project.runpytest(*GATE, "--trt-save-baseline", str(baseline)).assert_outcomes(passed=1)
    data = json.loads(baseline.read_text())
    assert data["schema_version"] == 1 and len(data["runs"]) == 1

    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.5")  # +50%: far beyond noise and threshold
    junit = tmp_path / "junit.xml"
    md = tmp_path / "gate.md"
    result = project.runpytest(*GATE, "--trt-baseline", str(baseline), f"--junitxml={junit}",
                               "--trt-report-md", str(md))
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    line = "REGRESSION torch-fp32-bs1: median * ms → * ms (×1.*, 98% CI *–*, p=*) exceeds threshold 5%*"
    result.stdout.fnmatch_lines([line])
    assert "Traceback" not in result.stdout.str()
    assert 'failures="1"' in junit.read_text() and "REGRESSION" in junit.read_text()
    assert "REGRESSION" in md.read_text()
    assert json.loads(baseline.read_text()) == data  # comparing never writes the baseline


def test_a_slowdown_that_a_re_measurement_does_not_confirm_passes(project, tmp_path, monkeypatch):
    baseline = tmp_path / "base.json"
    project.runpytest(*GATE, "--trt-save-baseline", str(baseline)).assert_outcomes(passed=1)
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.5")  # slow at first ...
    monkeypatch.setenv("PYTEST_TRT_TEST_LATER_DELAY_MS", "1.0")  # ... as fast as the baseline when re-measured
    results = tmp_path / "results.json"
    project.runpytest(*GATE, "--trt-baseline", str(baseline), "--trt-results", str(results)).assert_outcomes(
        passed=1)
    verdict = json.loads(results.read_text())["cases"][0]["verdict"]
    assert verdict["outcome"] == "PASS" and verdict["ratio"] > 1.3
    assert "not confirmed: re-measured" in verdict["message"] and len(verdict["confirmations"]) == 1
    failed = project.runpytest(*GATE, "--trt-baseline", str(baseline), "--trt-confirm", "0")
    failed.assert_outcomes(failed=1)  # without confirmation the first measurement decides


def test_an_unchanged_case_passes_and_runs_append_to_the_baseline(project, tmp_path):
    baseline = tmp_path / "base.json"
    for _ in range(2):
        project.runpytest(*GATE, "--trt-save-baseline", str(baseline)).assert_outcomes(passed=1)
    assert len(json.loads(baseline.read_text())["runs"]) == 2
    result = project.runpytest(*GATE, "--trt-baseline", str(baseline), "--trt-threshold", "20%")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gate: 1 PASS*"])


def test_other_hardware_is_incomparable_and_never_gated(project, tmp_path, monkeypatch):
    baseline = tmp_path / "base.json"
    project.runpytest(*GATE, "--trt-save-baseline", str(baseline)).assert_outcomes(passed=1)
    data = json.loads(baseline.read_text())
    data["runs"][0]["environment"]["hardware"]["cpu_model"] = "Some Other CPU"
    baseline.write_text(json.dumps(data))
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "3")
    result = project.runpytest(*GATE, "--trt-baseline", str(baseline))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*INCOMPARABLE*Some Other CPU*"])


def test_cases_missing_from_the_run_are_reported(project, tmp_path):
    baseline = tmp_path / "base.json"
    project.runpytest(*GATE, "--trt-batch-size", "1,2", "--trt-save-baseline", str(baseline))
    result = project.runpytest(*GATE, "--trt-baseline", str(baseline), "--trt-threshold", "50%")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*MISSING*torch-fp32-bs2*"])


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "an existing, readable baseline file"),
        ("", "empty"),
        ('{"schema_version": 1, "runs": [', "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"schema_version": 99, "tool": "pytest-trt", "runs": []}', "newer"),
        ('{"schema_version": "one", "tool": "pytest-trt", "runs": []}', "schema_version"),
    ],
)
def test_bad_baselines_are_usage_errors_and_stay_untouched(project, tmp_path, content, problem):
    baseline = tmp_path / "base.json"
    if content is not None:
        baseline.write_text(content)
    result = project.runpytest("--trt-baseline", str(baseline))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--trt-baseline*{problem}*"])
    assert "Traceback" not in result.stderr.str()
    assert (baseline.read_text() if content is not None else None) == content


def test_a_killed_run_leaves_the_previous_baseline_intact(project, tmp_path):
    """SIGKILL the whole pytest run at random moments while it saves; the old file always loads."""
    from pytest_trt import baseline as baseline_mod

    baseline = tmp_path / "base.json"
    project.runpytest(*GATE, "--trt-save-baseline", str(baseline)).assert_outcomes(passed=1)
    before = baseline.read_bytes()
    env = {**os.environ, "PYTEST_TRT_TEST_DELAY_MS": "1.0"}
    for delay in (0.5, 1.5, 2.5, 3.5):
        proc = subprocess.Popen([sys.executable, "-m", "pytest", *GATE, "--trt-save-baseline", str(baseline)],
                                cwd=project.path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        runs = baseline_mod.load(baseline).runs  # never a half-written file
        assert runs and runs[0].to_dict() == baseline_mod.from_dict(json.loads(before), "before").runs[0].to_dict()


def test_compare_cli_reads_two_baselines(project, tmp_path, monkeypatch):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    project.runpytest(*GATE, "--trt-save-baseline", str(a)).assert_outcomes(passed=1)
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.5")
    project.runpytest(*GATE, "--trt-save-baseline", str(b)).assert_outcomes(passed=1)
    done = subprocess.run([sys.executable, "-m", "pytest_trt.cli", "compare", str(a), str(b), "--md",
                           "--fail-on-regression"], capture_output=True, text=True)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "torch-fp32-bs1" in done.stdout and "|" in done.stdout


def test_pytest_benchmark_compare_reads_our_export(project, tmp_path):
    pytest.importorskip("pytest_benchmark")
    outs = [tmp_path / "first.json", tmp_path / "second.json"]
    for out in outs:
        project.runpytest(*GATE, "--trt-benchmark-json", str(out)).assert_outcomes(passed=1)
    exe = os.path.join(os.path.dirname(sys.executable), "pytest-benchmark")
    done = subprocess.run([exe, "compare", *map(str, outs)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "torch-fp32-bs1" in done.stdout


def test_markdown_summary_goes_to_github_step_summary(project, tmp_path, monkeypatch):
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    project.runpytest(*GATE).assert_outcomes(passed=1)
    assert "delayed" in summary.read_text() and "| backend |" in summary.read_text()
