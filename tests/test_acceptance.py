"""What users type: options, test ids, outcomes, exit codes and the files a run writes."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAST

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")


def test_matrix_runs_with_readable_ids_and_writes_results(user_project, tmp_path):
    out, page = tmp_path / "results.json", tmp_path / "report.html"
    result = user_project.runpytest(
        *FAST, "--trt-backend", "torch,onnxruntime", "--trt-batch-size", "1,4", "--trt-results", str(out), "-v",
        "--trt-report-html", str(page),
    )
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "*test_latency?torch-fp32-bs1? PASSED*", "*test_latency?onnxruntime-fp32-bs4? PASSED*",
        "*pytest-trt results*", "tiny-net", "*backend*precision*batch*median ms*p99 ms*items/s*speed-up*",
    ])
    html = page.read_text()
    table = html[html.index("<h3>tiny-net</h3>"):]
    assert table[:table.index("</table>")].count("<tr") == 5  # the header row and the four cases
    data = json.loads(out.read_text())
    assert data["schema_version"] == 1
    assert data["environment"]["hardware"]["kind"] == "cpu"
    cases = {c["case_id"]: c for c in data["cases"]}
    assert set(cases) == {"torch-fp32-bs1", "torch-fp32-bs4", "onnxruntime-fp32-bs1", "onnxruntime-fp32-bs4"}
    for case in cases.values():
        stats = case["timing"]["stats"]
        assert case["status"] == "ok"
        assert 0 < stats["min"] <= stats["median"] <= stats["p99"] <= stats["max"]
        assert len(case["timing"]["samples"]) == min(stats["n"], 5000) and stats["n"] >= 10
        assert case["accuracy"]["agreement"]["passed"] is True
        phases = case["build"]["phase_s"]  # where a case's wall time went, beyond its timing
        assert {"first_run", "check", "measure", "check_timed", "flops"} <= set(phases) and phases["measure"] > 0
        assert case["build"]["prepare_s"] > 0 and "transfers" not in phases  # no copies to split on CPU


def test_unsupported_combination_is_a_skip_with_its_reason(user_project):
    result = user_project.runpytest(*FAST, "--trt-backend", "onnxruntime", "--trt-precision", "bf16",
                                    "--trt-batch-size", "1", "-rs")
    result.assert_outcomes(passed=1, skipped=1)  # fp32 always runs: it is the base of the table
    result.stdout.fnmatch_lines(["*bf16 is not supported by onnxruntime on cpu*"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trt-precision", "int9"], "--trt-precision: invalid value 'int9'; expected *fp32, tf32, fp16*"),
        (["--trt-backend", "tensorflow"], "--trt-backend: invalid value 'tensorflow'*torch, torch-compile*"),
        (["--trt-batch-size", "0"], "--trt-batch-size: invalid value '0'; expected *positive integers*"),
        (["--trt-batch-size", "eight"], "--trt-batch-size: invalid value 'eight'*"),
        (["--trt-threshold", "lots"], "--trt-threshold: invalid value 'lots'*"),
        (["--trt-model", "no-such-model"], "--trt-model: unknown model 'no-such-model'; known models: *"),
        (["--trt-min-time", "3", "--trt-max-time", "1"], "--trt-min-time*not above --trt-max-time*"),
        (["--trt-confirm", "-1"], "--trt-confirm: invalid value '-1'; expected a whole number from 0 to 10"),
        (["--trt-confirm", "twice"], "--trt-confirm: invalid value 'twice'; expected a whole number from 0 to 10"),
        (["--trt-l2", "lukewarm"], "--trt-l2: invalid value 'lukewarm'; expected *warm, cold"),
        (["--trt-ort-profile", "maybe"], "--trt-ort-profile: invalid value 'maybe'; expected *off, on"),
        (["--trt-calls-per-sample", "0"], "--trt-calls-per-sample: invalid value '0'; expected auto or a whole*"),
        (["--trt-calls-per-sample", "some"], "--trt-calls-per-sample: invalid value 'some'; expected auto*"),
    ],
)
def test_bad_options_are_usage_errors_without_traceback(user_project, args, message):
    result = user_project.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_unwritable_results_path_is_a_usage_error(user_project, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = user_project.runpytest("--trt-results", str(blocker / "results.json"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-results: invalid value*expected a path in a writable directory*"])


def test_cuda_device_without_cuda_is_a_usage_error(user_project):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this host has CUDA")
    result = user_project.runpytest("--trt-device", "cuda")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-device cuda: no CUDA device on this host*"])


def test_export_failure_errors_that_case_and_the_others_run(pytester):
    pytester.makeconftest('''
import pytest, torch
from pytest_trt import ModelSpec

class Unexportable(torch.nn.Module):
    def forward(self, x):
        if torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting():
            raise RuntimeError("custom kernel has no ONNX symbolic")
        return x * 2

@pytest.fixture
def trt_model():
    return ModelSpec(name="unexportable", build=Unexportable, input_shape=(4,))
''')
    pytester.makepyfile(test_bench="def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n")
    result = pytester.runpytest(*FAST, "--trt-backend", "torch,onnxruntime", "--trt-batch-size", "2")
    result.assert_outcomes(passed=1, errors=1)  # an export failure is an error of its case, at set-up
    result.stdout.fnmatch_lines(["*onnxruntime-fp32-bs2: ONNX export failed*custom kernel has no ONNX symbolic*"])
    assert "Traceback" not in result.stdout.str()


def test_plugin_import_does_not_import_heavy_frameworks():
    code = ("import sys, pytest_trt.plugin, pytest_trt.fixtures, pytest_trt.session; "
            "heavy = [m for m in ('torch', 'onnxruntime', 'tensorrt', 'onnx') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_coexists_with_pytest_benchmark(pytester):
    pytest.importorskip("pytest_benchmark")
    pytester.makeconftest(open(__file__.replace("test_acceptance.py", "conftest.py")).read().split("'''")[1])
    pytester.makepyfile(test_both='''
def test_plain_benchmark(benchmark):
    assert benchmark(sum, range(100)) == 4950

def test_trt(trt_bench, trt_runner):
    trt_bench(trt_runner)
''')
    result = pytester.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "-p", "pytest_benchmark")
    result.assert_outcomes(passed=2)


def test_xdist_gives_the_same_cases_and_one_merged_results_file(user_project, tmp_path):
    pytest.importorskip("xdist")
    args = [*FAST, "--trt-backend", "torch,onnxruntime", "--trt-batch-size", "1,2"]
    serial, parallel = tmp_path / "serial.json", tmp_path / "parallel.json"
    user_project.runpytest(*args, "--trt-results", str(serial)).assert_outcomes(passed=4)
    result = user_project.runpytest(*args, "-n", "2", "--trt-results", str(parallel))
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*2 pytest-xdist workers are timing on CPU*"])
    ids = [sorted(c["nodeid"] for c in json.loads(p.read_text())["cases"]) for p in (serial, parallel)]
    assert ids[0] == ids[1] and len(ids[0]) == 4
    workers = {c["build"]["ran_on"]["worker"] for c in json.loads(parallel.read_text())["cases"]}
    assert workers <= {"gw0", "gw1"} and workers  # each case says which worker (and device) ran it
    assert not list(tmp_path.glob("parallel.json.*"))  # only the controller wrote, once, atomically


def test_a_crashed_run_leaves_a_journal_of_the_cases_it_finished(user_project, tmp_path):
    """A native abort inside a backend kills the process before pytest can write results."""
    user_project.makepyfile(test_crash='''
import os

def test_latency(trt_bench, trt_runner, trt_case):
    trt_bench(trt_runner)
    if trt_case.batch_size == 2:
        os.abort()
''')
    out = tmp_path / "results.json"
    result = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1,2",
                                    "--trt-results", str(out), "test_crash.py")
    assert result.ret != 0 and not out.exists()
    journal = tmp_path / "results.json.partial.jsonl"
    lines = journal.read_text().splitlines()
    assert [json.loads(line)["case_id"] for line in lines] == ["torch-fp32-bs1"]
    report = subprocess.run([sys.executable, "-m", "pytest_trt.cli", "report", str(journal)],
                            capture_output=True, text=True)
    assert report.returncode == 0 and "| torch | fp32 | 1 |" in report.stdout


def test_under_xdist_a_crashed_case_is_recorded_and_the_session_goes_on(user_project, tmp_path):
    """With -n, pytest-xdist restarts a worker that died; the crashed case becomes a CRASHED state."""
    pytest.importorskip("xdist")
    user_project.makepyfile(test_crash='''
import os

def test_latency(trt_bench, trt_runner, trt_case):
    if trt_case.batch_size == 2:
        os.abort()  # what a native abort inside a backend's C++ code does to the process
    trt_bench(trt_runner)
''')
    out = tmp_path / "results.json"
    result = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1,2,4", "-n", "1",
                                    "--trt-results", str(out), "test_crash.py")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*torch*fp32*2*CRASHED*", "*torch-fp32-bs2: CRASHED: worker 'gw0' crashed*"])
    cases = _cases(out)
    assert set(cases) == {"torch-fp32-bs1", "torch-fp32-bs2", "torch-fp32-bs4"}
    assert cases["torch-fp32-bs2"]["status"] == "crashed" and cases["torch-fp32-bs2"]["timing"] is None
    assert cases["torch-fp32-bs4"]["status"] == "ok"  # the case after the crash ran on a new worker
    assert "it was in phase test for" in cases["torch-fp32-bs2"]["message"]  # its runner was built


def test_an_interrupted_run_records_the_case_it_stopped_in_and_its_phase(user_project, tmp_path):
    """Ctrl-C or a time limit's SIGINT inside a case: the results say which case and how far it got."""
    user_project.makepyfile(test_stop=TEST_STOP)
    out, base = tmp_path / "results.json", tmp_path / "baseline.json"
    result = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1,2,4",
                                    "--trt-results", str(out), "--trt-save-baseline", str(base), "test_stop.py")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    saved = json.loads(base.read_text())["runs"][-1]
    assert [nodeid.rsplit("[", 1)[1] for nodeid in saved["cases"]] == ["torch-fp32-bs1]"]  # not the stopped one
    cases = _cases(out)
    assert set(cases) == {"torch-fp32-bs1", "torch-fp32-bs2"}  # bs4 never started
    stopped = cases["torch-fp32-bs2"]
    assert stopped["status"] == "interrupted" and stopped["timing"] is None
    assert "it was in phase measure for" in stopped["message"]
    assert "first_run" in stopped["message"] and "check" in stopped["message"]  # the phases it finished
    assert not list((user_project.path / ".trt-cache" / "progress").glob("*.json"))  # cleaned up


TEST_STOP = """
def test_latency(trt_bench, trt_runner, trt_case):
    if trt_case.batch_size == 2:
        real, calls = trt_runner.run, []

        def run(inputs):
            calls.append(1)
            if len(calls) > 3:  # the first call and the check pass; the timing loop is interrupted
                raise KeyboardInterrupt
            return real(inputs)

        trt_runner.run = run
    trt_bench(trt_runner)
"""


def test_ort_profile_records_where_onnx_runtime_ran_each_node(user_project, tmp_path):
    out = tmp_path / "results.json"
    result = user_project.runpytest(*FAST, "--trt-backend", "torch,onnxruntime", "--trt-batch-size", "2",
                                    "--trt-ort-profile", "on", "--trt-results", str(out))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*onnxruntime-fp32-bs2: ONNX Runtime profile: nodes * on CPU; most host time: *"])
    cases = {c["case"]["backend"]: c for c in json.loads(out.read_text())["cases"]}
    profile = cases["onnxruntime"]["build"]["ort_profile"]
    assert profile["nodes_by_provider"]["CPUExecutionProvider"] >= 3  # conv, relu, mean, gemm of the tiny net
    assert profile["runs_profiled"] == 2 and profile["top_ops"] and Path(profile["trace"]).is_file()
    assert "ort_profile" in cases["onnxruntime"]["build"]["phase_s"]
    assert "ort_profile" not in cases["torch"]["build"]


def test_help_lists_every_option_with_its_help(user_project):
    from pytest_trt.settings import OPTIONS

    result = user_project.runpytest("--help")
    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["*--trt-threshold=*", "*a percentage such as 5%*"])
    assert all(f"--trt-{name}=" in result.stdout.str() for name, _, _ in OPTIONS)


def test_a_backend_error_at_run_time_is_an_error_cell_with_its_phase(user_project, tmp_path):
    """A runner that raises while timing (say cuDNN refusing a huge tensor) is recorded, not lost."""
    user_project.makepyfile(test_refuse='''
def test_latency(trt_bench, trt_runner, trt_case):
    if trt_case.batch_size == 2:
        real, calls = trt_runner.run, []

        def run(inputs):
            calls.append(1)
            if len(calls) > 1:  # the first call passes; the check's reference is fine; timing fails
                raise RuntimeError("CUDNN_STATUS_NOT_SUPPORTED while running Conv node")
            return real(inputs)

        trt_runner.run = run
    trt_bench(trt_runner)
''')
    out = tmp_path / "results.json"
    result = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1,2",
                                    "--trt-results", str(out), "test_refuse.py")
    result.assert_outcomes(passed=1, failed=1)
    cases = _cases(out)
    refused = cases["torch-fp32-bs2"]
    assert refused["status"] == "error" and refused["timing"] is None
    assert re.fullmatch(r"RuntimeError in phase measure for [0-9.]+ s \(.*first_run [0-9.]+ s.*\): "
                        "CUDNN_STATUS_NOT_SUPPORTED while running Conv node", refused["message"])
    result.stdout.fnmatch_lines(["*torch*fp32*2*ERROR*"])


def test_an_oom_at_run_time_is_an_oom_cell_with_its_phase_and_the_next_case_runs(user_project, tmp_path):
    """The UNet's fp32 batch-256 OOM came after minutes of autotuning: the cell says where and when."""
    user_project.makepyfile(test_oom='''
def test_latency(trt_bench, trt_runner, trt_case):
    if trt_case.batch_size == 2:
        def run(inputs):
            raise RuntimeError("CUDA out of memory. Tried to allocate 32.00 GiB.")

        trt_runner.run = run
    trt_bench(trt_runner)
''')
    out = tmp_path / "results.json"
    result = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "2,1",
                                    "--trt-results", str(out), "test_oom.py")
    result.assert_outcomes(passed=1, skipped=1)
    cases = _cases(out)
    oom = cases["torch-fp32-bs2"]
    assert oom["status"] == "oom" and oom["timing"] is None
    assert re.fullmatch(r"out of memory in phase first_run for [0-9.]+ s \(prepare [0-9.]+ s\): "
                        r"CUDA out of memory\. Tried to allocate 32\.00 GiB\.", oom["message"])
    assert cases["torch-fp32-bs1"]["status"] == "ok"
    result.stdout.fnmatch_lines(["*torch*fp32*2*OOM*"])


def _cases(results: Path) -> dict[str, dict]:
    """A results file's cases by case id."""
    return {c["case_id"]: c for c in json.loads(results.read_text())["cases"]}
