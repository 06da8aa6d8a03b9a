"""The gate as users meet it: save a baseline, compare, a regressed case fails its own test item."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import FAST

pytest.importorskip("torch")

# A model whose speed a test sets exactly: the timing engine reads a virtual clock that each forward
# advances by PYTEST_TRT_TEST_DELAY_MS (PYTEST_TRT_TEST_CHILD_DELAY_MS in a fresh re-measuring process),
# and the host readings are fixed (PYTEST_TRT_TEST_BUSY=1: other processes took the CPUs), so these
# tests decide the same on a quiet and on a loaded host.
SLOW_CONFTEST = '''
import os, types
import pytest, torch
import pytest_trt.host, pytest_trt.sampling
from pytest_trt import ModelSpec
from pytest_trt.records import HostLoad

_now = {"ns": 0}

def _clock():
    _now["ns"] += 1_000  # every reading moves a microsecond: loops always progress
    return _now["ns"]

pytest_trt.sampling.time = types.SimpleNamespace(perf_counter_ns=_clock)
_others = 1.5 if os.environ.get("PYTEST_TRT_TEST_BUSY") == "1" else 0.0
pytest_trt.host.since = lambda start, *a, **k: HostLoad(1.0, 1.0, None, None, 0.5, 2, others_cpu_s=_others)
pytest_trt.host.calibration_s = lambda repeats=9: 0.1

def _delay_ms():
    child = os.environ.get("PYTEST_TRT_REMEASURE") and "PYTEST_TRT_TEST_CHILD_DELAY_MS" in os.environ
    return float(os.environ["PYTEST_TRT_TEST_CHILD_DELAY_MS" if child else "PYTEST_TRT_TEST_DELAY_MS"])

class Delayed(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 4)

    def forward(self, x):
        _now["ns"] += int(_delay_ms() * 1e6)
        return self.lin(x)

@pytest.fixture
def trt_model():
    return ModelSpec(name="delayed", build=Delayed, input_shape=(16,))
'''
TEST = "def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n"
GATE = [*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "--trt-min-time", "0.3", "--trt-max-time", "1"]


@pytest.fixture
def project(pytester, monkeypatch):
    # An ini file fixes the rootdir, as in a real project.
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(SLOW_CONFTEST)
    pytester.makepyfile(test_gate=TEST)
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.0")
    monkeypatch.delenv("PYTEST_TRT_TEST_CHILD_DELAY_MS", raising=False)
    monkeypatch.delenv("PYTEST_TRT_TEST_BUSY", raising=False)
    return pytester


def saved(project, baseline, runs=3):
    """A baseline of ``runs`` runs, each its own pytest process, as the README recommends."""
    for _ in range(runs):
        project.runpytest(*GATE, "--trt-save-baseline", str(baseline)).assert_outcomes(passed=1)
    return baseline


def test_a_regressed_case_fails_its_own_test_after_fresh_processes_confirm_it(project, tmp_path, monkeypatch):
    baseline = saved(project, tmp_path / "base.json")
    data = json.loads(baseline.read_text())
    assert data["schema_version"] == 1 and len(data["runs"]) == 3
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.5")  # +50%: far beyond noise and threshold
    junit, md, results = tmp_path / "junit.xml", tmp_path / "gate.md", tmp_path / "results.json"
    result = project.runpytest(*GATE, "--trt-baseline", str(baseline), f"--junitxml={junit}",
                               "--trt-report-md", str(md), "--trt-results", str(results))
    result.assert_outcomes(failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*REGRESSION torch-fp32-bs1: median 1.0* ms → 1.5* ms (×1.5*, 98% CI *) slower "
                                 "than threshold 5.0% and its noise ±* over 3 runs, detectable ≥*in all 3 processes "
                                 "(re-measured in fresh processes: ×1.5*, ×1.5*)*"])
    assert "Traceback" not in result.stdout.str()
    xml = junit.read_text()
    assert 'failures="1"' in xml and "REGRESSION" in xml
    assert "samples" not in xml and len(xml) < 4000  # a compact summary property, no raw samples
    assert "REGRESSION" in md.read_text() and "detectable" in md.read_text()
    verdict = json.loads(results.read_text())["cases"][0]["verdict"]
    assert len(verdict["night"]) == 3 and verdict["detectable"] < 0.06
    assert json.loads(baseline.read_text()) == data  # comparing never writes the baseline


def test_a_slowdown_fresh_processes_do_not_confirm_passes(project, tmp_path, monkeypatch):
    baseline = saved(project, tmp_path / "base.json")
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.5")  # slow in tonight's process ...
    monkeypatch.setenv("PYTEST_TRT_TEST_CHILD_DELAY_MS", "1.0")  # ... as fast as the baseline in fresh ones
    results = tmp_path / "results.json"
    project.runpytest(*GATE, "--trt-baseline", str(baseline), "--trt-results", str(results)).assert_outcomes(
        passed=1)
    verdict = json.loads(results.read_text())["cases"][0]["verdict"]
    assert verdict["outcome"] == "PASS" and verdict["ratio"] > 1.3
    # the first fresh process that is not slower settles it: no second one is started
    assert "only 1 of 2 processes were slower" in verdict["message"] and len(verdict["confirmations"]) == 1
    failed = project.runpytest(*GATE, "--trt-baseline", str(baseline), "--trt-confirm", "0")
    failed.assert_outcomes(failed=1)  # without confirmation the first process decides


def test_a_slowdown_on_a_contended_host_is_inconclusive_not_red(project, tmp_path, monkeypatch):
    baseline = saved(project, tmp_path / "base.json")
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "3.0")
    monkeypatch.setenv("PYTEST_TRT_TEST_BUSY", "1")
    result = project.runpytest(*GATE, "--trt-baseline", str(baseline))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*INCONCLUSIVE torch-fp32-bs1*other processes used 75% of the 2 cores*"])


def test_baseline_keys_do_not_move_with_the_rootdir(project, tmp_path, monkeypatch):
    baseline = saved(project, tmp_path / "base.json", runs=2)
    outer = project.path.parent
    monkeypatch.chdir(outer)  # started from elsewhere, naming the test by its path: another rootdir
    result = project.runpytest(*GATE, "--trt-baseline", str(baseline), "--rootdir", str(outer),
                               str(project.path / "test_gate.py"))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["gate: 1 PASS*"])


def test_an_unchanged_case_passes_and_nightly_runs_grow_the_baseline(project, tmp_path):
    baseline = saved(project, tmp_path / "base.json", runs=2)
    assert len(json.loads(baseline.read_text())["runs"]) == 2
    result = project.runpytest(*GATE, "--trt-baseline", str(baseline), "--trt-save-baseline", str(baseline))
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*torch*fp32*1*ok*PASS*", "gate: 1 PASS*"])
    assert len(json.loads(baseline.read_text())["runs"]) == 3


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
        ("[1, 2]", "expected an object"),
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
