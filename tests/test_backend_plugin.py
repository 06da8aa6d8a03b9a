"""A backend from outside the package: a user's conftest registers a numpy backend through the
``pytest_trt_backends`` hook, and it joins the matrix, passes the backend contract, is timed, checked
against fp32 and gated, with no file of the package changed."""

import json

import pytest

from tests.conftest import FAST, QUIET_HOST, USER_CONFTEST

pytest.importorskip("torch")

# The user's conftest: the tiny model of tests/conftest.py plus a backend that runs its
# Conv2d -> ReLU -> spatial mean -> Linear forward in numpy from the module's fp32 weights.
# "numpy-norelu" is the same backend with the ReLU forgotten: what the checks must catch.
NUMPY_CONFTEST = USER_CONFTEST + QUIET_HOST + '''
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from pytest_trt.backends import Backend, UnsupportedCase


class NumpyRunner:
    def __init__(self, case, module, relu=True):
        self.case, self.stream, self.info = case, None, {}
        self._module, self._relu = module, relu

    def prepare(self):
        convs = [m for m in self._module.modules() if isinstance(m, torch.nn.Conv2d)]
        heads = [m for m in self._module.modules() if isinstance(m, torch.nn.Linear)]
        if len(convs) != 1 or len(heads) != 1 or convs[0].stride != (1, 1) or convs[0].groups != 1:
            raise UnsupportedCase("the numpy backend runs Conv2d -> ReLU -> mean -> Linear nets only")
        conv, head = convs[0], heads[0]
        self._w, self._b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
        self._pad = conv.padding
        self._hw, self._hb = head.weight.detach().numpy(), head.bias.detach().numpy()
        self.info["numpy"] = np.__version__

    def load_inputs(self, host):
        return np.ascontiguousarray(host, dtype=np.float32)

    def run(self, x):
        (ph, pw), (kh, kw) = self._pad, self._w.shape[2:]
        windows = sliding_window_view(np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))), (kh, kw), axis=(2, 3))
        y = np.einsum("nchwij,ocij->nohw", windows, self._w, optimize=True) + self._b[:, None, None]
        pooled = (np.maximum(y, 0) if self._relu else y).mean(axis=(2, 3))
        return pooled @ self._hw.T + self._hb

    def to_host(self, outputs):
        return np.asarray(outputs, dtype=np.float32)

    def close(self):
        self._module = None


def numpy_backend(name, relu):
    return Backend(
        name=name, precisions={"cpu": ("fp32",)}, variants={"cpu": ("eager",)}, default=False,
        create_runner=lambda case, spec, artifacts: NumpyRunner(case, artifacts.module(spec), relu),
        versions=lambda: {"numpy": np.__version__},
    )


def pytest_trt_backends(config):
    return [numpy_backend("numpy", relu=True), numpy_backend("numpy-norelu", relu=False)]
'''
BENCH = "def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n"
MARKED = '''import pytest

@pytest.mark.trt(backends=["numpy"], batch_sizes=[2])
def test_marked(trt_bench, trt_runner):
    trt_bench(trt_runner)
'''
CONTRACT = '''from pytest_trt.backends.contract import BackendContract


class TestNumpy(BackendContract):
    backends = ("numpy",)


class TestNumpyNoRelu(BackendContract):
    backends = ("numpy-norelu",)
'''


@pytest.fixture
def project(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(NUMPY_CONFTEST)
    pytester.makepyfile(test_bench=BENCH, test_marked=MARKED, test_contract=CONTRACT)
    return pytester


def _cases(path):
    return {c["nodeid"]: c for c in json.loads(path.read_text())["cases"]}


def test_the_hooks_backend_joins_the_matrix_by_name_and_by_marker(project, tmp_path):
    results = tmp_path / "results.json"
    result = project.runpytest_subprocess(*FAST, "--trt-backend", "numpy,torch", "--trt-batch-size", "1,4",
                                          "--trt-results", str(results), "-v", "test_bench.py", "test_marked.py")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines_random([
        "*test_latency?numpy-fp32-bs1? PASSED*", "*test_latency?numpy-fp32-bs4? PASSED*",
        "*test_latency?torch-fp32-bs1? PASSED*", "*test_marked?numpy-fp32-bs2? PASSED*",
    ])
    cases = _cases(results)
    numpy_case = cases["test_bench.py::test_latency[numpy-fp32-bs4]"]
    assert numpy_case["status"] == "ok" and numpy_case["timing"]["stats"]["median"] > 0
    assert numpy_case["accuracy"]["agreement"]["passed"] and numpy_case["accuracy"]["checked_timed_outputs"]
    software = json.loads(results.read_text())["environment"]["software"]
    assert software["numpy"] and software["torch"]  # its version key beside the built-ins'


def test_the_hooks_backends_run_the_contract_suite_and_a_wrong_one_fails_it(project):
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-v", "test_contract.py")
    stdout = result.stdout.str()
    for check in ("test_outputs_match_fp32_reference", "test_new_inputs_give_new_outputs",
                  "test_repeated_runs_on_loaded_inputs_are_deterministic_enough", "test_runner_follows_the_protocol"):
        for batch in (1, 3):
            assert f"TestNumpy::{check}[cpu-numpy-bs{batch}] PASSED" in stdout, check
    assert "TestNumpy::test_declarations_are_well_formed[numpy] PASSED" in stdout
    result.stdout.fnmatch_lines_random([
        "*TestNumpyNoRelu::test_outputs_match_fp32_reference?cpu-numpy-norelu-bs1? FAILED*",
        "*TestNumpyNoRelu::test_outputs_match_fp32_reference?cpu-numpy-norelu-bs3? FAILED*",
    ])
    assert result.parseoutcomes()["failed"] == 2  # only the reference check: the rest holds for it too


def test_a_wrong_backend_fails_its_benchmark_on_the_fp32_check(project):
    result = project.runpytest_subprocess(*FAST, "--trt-backend", "numpy-norelu", "--trt-batch-size", "4",
                                          "test_bench.py")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["numpy-norelu-fp32-bs4: outputs disagree with the fp32 reference*"])


def test_the_hooks_backend_is_gated_against_its_baseline(project, tmp_path):
    baseline = tmp_path / "base.json"
    args = [*FAST, "--trt-backend", "numpy", "--trt-batch-size", "1", "test_bench.py"]
    project.runpytest_subprocess(*args, "--trt-save-baseline", str(baseline)).assert_outcomes(passed=1)
    saved = json.loads(baseline.read_text())["runs"][0]
    assert list(saved["cases"]) == ["test_bench.py::test_latency[numpy-fp32-bs1]"]
    # A wide threshold: this checks that the case is gated, not how finely (test_gate_acceptance does).
    result = project.runpytest_subprocess(*args, "--trt-baseline", str(baseline), "--trt-threshold", "50%")
    result.assert_outcomes(passed=1)
    # judged against its entry: a verdict other than "no entry" or "other hardware"
    result.stdout.fnmatch_lines(["gate: 1 *"])
    assert not any(f"gate: 1 {word}" in result.stdout.str() for word in ("NEW", "INCOMPARABLE", "MISSING"))


def test_option_errors_list_the_hooks_backends(project):
    result = project.runpytest_subprocess("--trt-backend", "numpyy", "test_bench.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([
        "*--trt-backend: invalid value 'numpyy'; expected a comma-separated list of torch, torch-compile, "
        "onnxruntime, tensorrt, numpy, numpy-norelu*",
    ])


def test_a_hook_backend_under_a_taken_name_is_a_usage_error(pytester):
    pytester.makeconftest('''
from pytest_trt.backends import Backend

def pytest_trt_backends(config):
    return Backend(name="torch", precisions={"cpu": ("fp32",)}, variants={"cpu": ("eager",)},
                   create_runner=lambda case, spec, artifacts: None)
''')
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*pytest_trt_backends: a backend named 'torch' is already registered*"])
    assert "Traceback" not in result.stderr.str()
