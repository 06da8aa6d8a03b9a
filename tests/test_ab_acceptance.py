"""A/B mode as users meet it: ``trt_ab`` in a pytest run, its outcomes, reports, fresh processes,
pytest-xdist, the baseline's artifacts, and its usage errors."""

import json
import os
import stat

import pytest

from tests.conftest import FAST

pytest.importorskip("torch")

# Models whose cost a test sets exactly: the rounds read a virtual clock that each forward advances by
# the model's delay, so the ratio B/A is what the test chose on a quiet and on a loaded host alike.
# The test's own model (B by default) is delayed by PYTEST_TRT_TEST_DELAY_MS, or in a fresh
# re-measuring process by PYTEST_TRT_TEST_CHILD_DELAY_MS when that is set.
VIRTUAL_CONFTEST = '''
import os, types
import pytest, torch
import pytest_trt.ab.interleave, pytest_trt.sampling, pytest_trt.timing
from pytest_trt import ModelSpec

_now = {"ns": 0}

def _clock():
    _now["ns"] += 1_000
    return _now["ns"]

pytest_trt.ab.interleave.time = types.SimpleNamespace(perf_counter_ns=_clock)
pytest_trt.timing.time = types.SimpleNamespace(perf_counter_ns=_clock)
pytest_trt.sampling.time = types.SimpleNamespace(perf_counter_ns=_clock)  # the case's deadline

def _delay_ms():
    child = os.environ.get("PYTEST_TRT_REMEASURE") and "PYTEST_TRT_TEST_CHILD_DELAY_MS" in os.environ
    return float(os.environ["PYTEST_TRT_TEST_CHILD_DELAY_MS" if child else "PYTEST_TRT_TEST_DELAY_MS"])

class Delayed(torch.nn.Module):
    def __init__(self, delay_ms=None):
        super().__init__()
        self.lin = torch.nn.Linear(16, 4)
        self.delay_ms = delay_ms

    def forward(self, x):
        _now["ns"] += int((self.delay_ms if self.delay_ms is not None else _delay_ms()) * 1e6)
        return self.lin(x)

def main(delay_ms=1.0):
    return lambda: Delayed(delay_ms)

@pytest.fixture
def trt_model():
    return ModelSpec(name="delayed", build=Delayed, input_shape=(16,))
'''
AB_TEST = '''
from pytest_trt.ab import Arm
from conftest import main

def test_ab(trt_ab):
    trt_ab(reference=Arm(model=main(1.0), label="main"))
'''
RUN = [*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "--trt-min-time", "0.2", "--trt-max-time", "1"]


@pytest.fixture
def project(pytester, monkeypatch):
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(VIRTUAL_CONFTEST)
    pytester.makepyfile(test_ab=AB_TEST)
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.0")
    monkeypatch.delenv("PYTEST_TRT_TEST_CHILD_DELAY_MS", raising=False)
    return pytester


def ab_results(path):
    return [c for c in json.loads(path.read_text())["cases"] if c.get("ab")]


def test_a_slower_candidate_fails_its_own_test_with_one_line(project, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.1")  # B: 10 % slower than main's 1.0 ms
    results, report, page = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "r.html"
    run = project.runpytest(*RUN, "--trt-results", str(results), "--trt-report-md", str(report),
                            "--trt-report-html", str(page))
    run.assert_outcomes(failed=1)
    failure = [line for line in run.outlines if line.startswith("REGRESSION torch-fp32-bs1: ")]
    assert len(failure) == 1  # the failure is this one line, no traceback
    assert "B is slower than A beyond the threshold 5.0% in its process: B/A ×1.100" in failure[0]
    assert "A = model factory main.<locals>.<lambda> (torch-fp32-bs1)" in failure[0]
    (case,) = ab_results(results)
    ab = case["ab"]
    assert ab["outcome"] == "REGRESSION" and ab["ratio"] == pytest.approx(1.1, rel=1e-3)
    assert ab["reference"]["label"] == "main" and ab["candidate"]["case"]["backend"] == "torch"
    assert ab["agreement"]["passed"] and ab["processes"][0]["rounds"] >= 20
    assert case["timing"]["stats"]["median"] == pytest.approx(1.1e-3, rel=1e-3)  # the row is B's timing
    text = report.read_text()
    assert "## A/B: B/A from interleaved rounds" in text and "REGRESSION" in text
    assert "## delayed" not in text  # an A/B case is not a row of the per-model table
    html = page.read_text()
    section = html[html.index("<section>"):html.index("</section>")]  # the device's section holds the A/B card
    assert "<h3>A/B: B/A from interleaved rounds</h3>" in section and "<tr class='regression'>" in section
    assert "B is slower than A beyond the threshold 5.0%" in section and "<h3>delayed" not in section


def test_an_unchanged_candidate_passes_and_a_faster_one_is_improved(project, monkeypatch):
    run = project.runpytest(*RUN)
    run.assert_outcomes(passed=1)
    run.stdout.fnmatch_lines(["*test_ab.py::test_ab*main: model factory*×1.000*PASS*",
                              "a/b (threshold 5.0%): 1 PASS"])
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "0.8")
    improved = project.runpytest(*RUN)
    improved.assert_outcomes(passed=1)
    improved.stdout.fnmatch_lines(["a/b (threshold 5.0%): 1 IMPROVED", "  IMPROVED torch-fp32-bs1: B is faster*"])


def test_a_slowdown_that_fresh_processes_do_not_see_does_not_fail(project, tmp_path, monkeypatch):
    """This process's B is 10 % slower; in two fresh processes it is not: not every process agrees, so
    it does not fail, and it does not pass either (one process's interval reaches past the threshold)."""
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.1")
    monkeypatch.setenv("PYTEST_TRT_TEST_CHILD_DELAY_MS", "1.0")
    results = tmp_path / "r.json"
    run = project.runpytest(*RUN, "--trt-ab-processes", "2", "--trt-results", str(results))
    run.assert_outcomes(passed=1)
    ab = ab_results(results)[0]["ab"]
    assert [p["fresh"] for p in ab["processes"]] == [False, True, True]
    assert [round(p["ratio"], 3) for p in ab["processes"]] == [1.1, 1.0, 1.0]
    assert ab["outcome"] == "UNSTABLE" and ab["ratio"] == pytest.approx(1.0, rel=1e-3)
    assert "its processes disagree" in ab["message"]
    monkeypatch.setenv("PYTEST_TRT_TEST_CHILD_DELAY_MS", "1.1")
    confirmed = project.runpytest(*RUN, "--trt-ab-processes", "1")
    confirmed.assert_outcomes(failed=1)
    confirmed.stdout.fnmatch_lines(["*in all 2 processes*"])


def test_rounds_split_over_pairs_of_new_builds_record_each_pairs_ratio(project, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.1")
    results = tmp_path / "r.json"
    run = project.runpytest(*RUN, "--trt-ab-instances", "3", "--trt-results", str(results))
    run.assert_outcomes(failed=1)
    (case,) = ab_results(results)
    (process,) = case["ab"]["processes"]
    assert [round(r, 3) for r in process["instance_ratios"]] == [1.1, 1.1, 1.1]
    assert process["rounds"] >= 20 and "reopen" in case["build"]["phase_s"]
    one = project.runpytest(*RUN, "--trt-ab-instances", "1", "--trt-results", str(results))
    one.assert_outcomes(failed=1)
    assert ab_results(results)[0]["ab"]["processes"][0]["instance_ratios"] == []
    auto = project.runpytest(*RUN, "--trt-results", str(results))  # auto: 8 pairs on the CPU
    auto.assert_outcomes(failed=1)
    assert len(ab_results(results)[0]["ab"]["processes"][0]["instance_ratios"]) == 8


def test_results_ride_to_the_controller_under_xdist(project, tmp_path):
    pytest.importorskip("xdist")
    project.makepyfile(test_more=AB_TEST.replace("def test_ab", "def test_ab_again"))
    results = tmp_path / "r.json"
    run = project.runpytest(*RUN, "-n", "2", "--trt-results", str(results))
    run.assert_outcomes(passed=2)
    found = ab_results(results)
    assert sorted(c["key"] for c in found) == ["test_ab.py::test_ab[torch-fp32-bs1]",
                                                "test_more.py::test_ab_again[torch-fp32-bs1]"]
    assert {c["build"]["ran_on"]["worker"] for c in found} <= {"gw0", "gw1"}
    run.stdout.fnmatch_lines(["a/b (threshold 5.0%): 2 PASS"])


def test_the_marker_names_the_sides_and_a_wrong_one_is_a_usage_error(project):
    project.makepyfile(test_ab='''
import pytest
from pytest_trt.ab import Arm
from conftest import main

@pytest.mark.trt_ab(reference=Arm(model=main(1.0)))
def test_marked(trt_ab):
    assert trt_ab().ratio is not None
''')
    project.runpytest(*RUN).assert_outcomes(passed=1)
    project.makepyfile(test_ab='''
import pytest
from pytest_trt.ab import Arm

@pytest.mark.trt_ab(candidate=Arm(precision="int9"))
def test_marked(trt_ab):
    trt_ab()
''')
    bad = project.runpytest(*RUN)
    assert bad.ret == 4
    bad.stderr.fnmatch_lines(["ERROR: test_ab.py::test_marked: @pytest.mark.trt_ab(candidate=...): unknown "
                              "precision 'int9'; expected fp32, *"])


def test_rounds_past_the_case_timeout_fail_the_item_as_a_timeout(project, tmp_path):
    results = tmp_path / "r.json"
    run = project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "--trt-min-time", "3",
                            "--trt-max-time", "5", "--trt-case-timeout", "0.5", "--trt-results", str(results))
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(["*torch-fp32-bs1: A/B ran past its time bound of 0.5 s (--trt-case-timeout) in phase "
                              "measure (A/B, after * rounds)*"])
    (case,) = json.loads(results.read_text())["cases"]
    assert case["status"] == "timeout" and "ab" not in case and "measure" in case["build"]["phase_s"]


@pytest.mark.parametrize(("args", "message"), [
    (["--trt-ab-processes", "many"], "ERROR: --trt-ab-processes: invalid value 'many'; expected auto or a whole*"),
    (["--trt-ab-processes", "1000"], "ERROR: --trt-ab-processes: invalid value '1000'; expected auto or a whole "
                                     "number from 0 to 10"),
    (["--trt-ab-instances", "0"], "ERROR: --trt-ab-instances: invalid value '0'; expected auto or a whole number "
                                  "from 1 to 16"),
    (["--trt-ab-clock", "tsc"], "ERROR: --trt-ab-clock: invalid value 'tsc'; expected one of wall, cpu"),
    (["--trt-save-artifacts", "onnx"], "ERROR: --trt-save-artifacts onnx: needs --trt-save-baseline PATH*"),
    (["--trt-ab-artifacts", "nowhere.json"], "ERROR: --trt-ab-artifacts: invalid value 'nowhere.json'; expected a "
                                             "baseline saved with --trt-save-artifacts*"),
    (["--trt-save-baseline", "b.json", "--trt-save-artifacts", "onnx,weights"],
     "ERROR: --trt-save-artifacts: invalid value 'onnx,weights'; expected a comma-separated list of onnx, export"),
])
def test_bad_options_are_one_line_and_exit_4(project, args, message):
    run = project.runpytest(*RUN, *args)
    assert run.ret == 4
    run.stderr.fnmatch_lines([message])


def test_a_side_named_wrongly_in_the_call_fails_the_test_with_one_line(project):
    project.makepyfile(test_ab='''
def test_ab(trt_ab):
    trt_ab(reference="exports/main.onnx")
''')
    run = project.runpytest(*RUN)
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(["trt_ab(reference=...): exports/main.onnx: no such readable file"])
    assert "Traceback" not in run.stdout.str()


def test_outputs_that_disagree_with_the_reference_fail(project):
    project.makepyfile(test_ab='''
import dataclasses
from pytest_trt.ab import Arm

def test_ab(trt_ab, trt_model):
    other = dataclasses.replace(trt_model, seed=7)  # other weights: other outputs
    trt_ab(candidate=Arm(model=other))
''')
    run = project.runpytest(*RUN)
    run.assert_outcomes(failed=1)
    run.stdout.fnmatch_lines(["A/B torch-fp32-bs1: B's outputs disagree with A's: max_abs=*"])


# ---------------------------------------------------------------- files: ONNX, baseline artifacts

TWO_FILES = '''
import pytest, torch
from pytest_trt.ab import Arm

@pytest.fixture(scope="session")
def exports(tmp_path_factory):
    folder = tmp_path_factory.mktemp("exports")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 5)).eval()
    paths = []
    for name, opset in (("main.onnx", 17), ("pr.onnx", 18)):
        path = folder / name
        torch.onnx.export(net, (torch.randn(2, 3, 16, 16),), str(path), input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          opset_version=opset, dynamo=False)
        paths.append(str(path))
    return paths

def test_two_files(trt_ab, exports):
    trt_ab(reference=exports[0], candidate=exports[1], compare_outputs=False)
'''
REAL = [*FAST, "--trt-batch-size", "1", "--trt-min-time", "0.1", "--trt-max-time", "0.5"]


def test_two_onnx_files_run_where_onnx_runs_and_skip_elsewhere_saying_why(user_project, tmp_path):
    pytest.importorskip("onnxruntime")
    user_project.makepyfile(test_bench=TWO_FILES)
    results = tmp_path / "r.json"
    run = user_project.runpytest(*REAL, "--trt-backend", "torch,onnxruntime", "--trt-results", str(results), "-rs")
    run.assert_outcomes(passed=1, skipped=1)
    # either file may be the one named: the sides are prepared in a random order (ab.run._open_both)
    assert any(f"{name} is an ONNX file: it runs on backends that run ONNX files (onnxruntime, tensorrt)" in line
               for line in run.outlines for name in ("main.onnx", "pr.onnx"))
    (case,) = ab_results(results)
    assert case["ab"]["reference"]["source"].startswith("ONNX main.onnx (sha256 ")
    assert case["ab"]["candidate"]["source"].startswith("ONNX pr.onnx (sha256 ")


BASELINE_TESTS = '''
from pytest_trt.ab import BASELINE

def test_latency(trt_bench, trt_runner):
    trt_bench(trt_runner)

def test_against_main(trt_ab):
    trt_ab(reference=BASELINE)
'''


def test_main_is_re_measured_from_the_files_its_baseline_kept(user_project, tmp_path):
    pytest.importorskip("onnxruntime")
    user_project.makepyfile(test_bench=BASELINE_TESTS)
    base = tmp_path / "main" / "base.json"
    saved = user_project.runpytest(*REAL, "--trt-backend", "torch,onnxruntime", "-k", "latency",
                                   "--trt-save-baseline", str(base), "--trt-save-artifacts", "onnx,export")
    saved.assert_outcomes(passed=2, deselected=2)
    folder = tmp_path / "main" / "base.json.artifacts"
    index = json.loads((folder / "index.json").read_text())
    files = index["models"]["tiny-net"]["files"]
    assert sorted(files) == ["export", "onnx"] and files["onnx"].endswith(".onnx") and files["export"].endswith(".pt2")
    from pytest_trt.atomic import file_sha256

    for name in files.values():
        assert file_sha256(folder / name) == name.split(".")[0]
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666 & ~_umask()
    results = tmp_path / "r.json"
    run = user_project.runpytest(*REAL, "--trt-backend", "torch,onnxruntime", "-k", "against",
                                 "--trt-ab-artifacts", str(base), "--trt-results", str(results))
    run.assert_outcomes(passed=2, deselected=2)
    found = {c["case"]["backend"]: c["ab"] for c in ab_results(results)}
    assert found["onnxruntime"]["reference"]["source"] == f"baseline artifact (onnx {files['onnx'][:12]}…, " \
                                                         f"export {files['export'][:12]}…)"
    assert found["torch"]["reference_agreement"]["passed"]  # the kept program computes what the model does
    assert all(ab["agreement"]["passed"] for ab in found.values())


def test_main_without_kept_files_fails_saying_how_to_keep_them(user_project, tmp_path):
    user_project.makepyfile(test_bench=BASELINE_TESTS)
    base = tmp_path / "base.json"
    user_project.runpytest(*REAL, "--trt-backend", "torch", "-k", "latency",
                           "--trt-save-baseline", str(base)).assert_outcomes(passed=1, deselected=1)
    run = user_project.runpytest(*REAL, "--trt-backend", "torch", "-k", "against", "--trt-baseline", str(base))
    run.assert_outcomes(failed=1, deselected=1)
    run.stdout.fnmatch_lines([f"trt_ab(reference=BASELINE): {base}.artifacts{os.sep}index.json: *"])


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
