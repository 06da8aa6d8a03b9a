"""Accuracy as users meet it: the task-metric gate against fp32, and runners that cheat."""

import pytest

from tests.conftest import FAST

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

INT8 = [*FAST, "--trt-backend", "onnxruntime", "--trt-precision", "int8", "--trt-batch-size", "8",
        "--trt-calibration", "percentile", "-k", "int8"]  # fp32 is added as the base; select int8


def _drop_test(max_drop):
    return f'''
import pytest

@pytest.mark.trt(models=["digits-cnn"])
@pytest.mark.trt_accuracy(max_drop={max_drop})
def test_quantized(trt_bench, trt_runner):
    trt_bench(trt_runner)
'''


def _measured_drop(pytester):
    """Run once without a limit to learn the real int8 drop of this build."""
    import json

    pytester.makepyfile(test_drop=_drop_test(1.0))
    result = pytester.runpytest(*INT8, "--trt-results", "r.json")
    result.assert_outcomes(passed=1)
    accuracy = json.loads((pytester.path / "r.json").read_text())["cases"][0]["accuracy"]
    return accuracy["drop"], accuracy["value"], accuracy["reference"]


def test_max_drop_below_the_measured_drop_fails_with_one_line(pytester):
    pytester.makeini("[pytest]\n")
    drop, value, reference = _measured_drop(pytester)
    if drop <= 0:
        pytest.skip(f"int8 lost nothing on this build (drop {drop}); the gate cannot be shown failing")
    pytester.makepyfile(test_drop=_drop_test(drop / 2))
    result = pytester.runpytest(*INT8)
    result.assert_outcomes(failed=1)
    line = f"accuracy gate failed: top1 {value:.4f} vs fp32 {reference:.4f}, drop {drop:.4f} > max_drop {drop / 2:.4f}"
    result.stdout.fnmatch_lines([f"*{line}*"])


def test_max_drop_above_the_measured_drop_passes(pytester):
    pytester.makeini("[pytest]\n")
    drop, _, _ = _measured_drop(pytester)
    pytester.makepyfile(test_drop=_drop_test(max(drop, 0) + 0.01))
    pytester.runpytest(*INT8).assert_outcomes(passed=1)


CHEATS = '''
import numpy as np
import pytest

pytestmark = pytest.mark.trt(models=["digits-cnn"])


class Cheat:
    """Wraps a real runner and lies about its outputs."""

    def __init__(self, runner, mode):
        self.runner, self.mode, self.first = runner, mode, None
        self.case, self.stream, self.info = runner.case, runner.stream, runner.info

    def prepare(self):
        pass

    def load_inputs(self, host):
        return self.runner.load_inputs(host)

    def run(self, inputs):
        if self.mode == "stale" and self.first is not None:
            return self.first  # fast because it did not run
        out = self.runner.to_host(self.runner.run(inputs))
        if self.mode == "zero":
            out = np.zeros_like(out)
        if self.mode == "partial":
            out[1:] = 0  # only the first sample of the batch was computed (seed 003's bug)
        self.first = self.first if self.first is not None else out
        return out

    def to_host(self, outputs):
        return np.asarray(outputs, dtype=np.float32)

    def close(self):
        pass


@pytest.mark.parametrize("mode", ["honest", "stale", "zero", "partial"])
def test_cheat(trt_bench, trt_runner, mode):
    trt_bench(Cheat(trt_runner, mode))
'''


def test_stale_zero_or_partial_outputs_fail_however_fast(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(test_cheats=CHEATS)
    result = pytester.runpytest(*FAST, "--trt-backend", "onnxruntime", "--trt-batch-size", "4", "-v")
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines([
        "*test_cheat?digits-cnn-onnxruntime-fp32-bs4-honest? PASSED*",
        "*test_cheat?digits-cnn-onnxruntime-fp32-bs4-stale? FAILED*",
        "*test_cheat?digits-cnn-onnxruntime-fp32-bs4-zero? FAILED*",
        "*test_cheat?digits-cnn-onnxruntime-fp32-bs4-partial? FAILED*",
    ])
    result.stdout.fnmatch_lines(["*outputs disagree with the fp32 reference*"])
