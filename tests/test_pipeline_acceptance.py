"""Stages and streams as users meet them: a model with pre- and post-processing, a streams sweep, the
tables, the results file, a bad option, and a post-processing slowdown failing its own test."""

import json

import pytest

from tests.conftest import FAST

pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

# A user's model with the two stages around its network: uint8 H×W×C frames in, class ids out.
STAGED_MODEL = '''
import numpy as np
import pytest
import torch
from pytest_trt import ModelSpec


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def preprocess(raw):
    return np.ascontiguousarray((raw.astype(np.float32) / 255.0 - 0.5).transpose(0, 3, 1, 2))


def postprocess(outputs):
    return outputs.argmax(axis=1)


@pytest.fixture
def trt_model():
    return ModelSpec(name="framed", build=Net, input_shape=(3, 16, 16), preprocess=preprocess,
                     postprocess=postprocess)
'''
TEST = "def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n"


@pytest.fixture
def framed(pytester):
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(STAGED_MODEL)
    pytester.makepyfile(test_framed=TEST)
    return pytester


def test_a_stage_split_and_a_streams_sweep_end_to_end(framed, tmp_path):
    out = tmp_path / "results.json"
    result = framed.runpytest(*FAST, "--trt-backend", "torch,onnxruntime", "--trt-batch-size", "2",
                              "--trt-streams", "1,2", "--trt-results", str(out), "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "*test_latency?torch-fp32-bs2? PASSED*", "*test_latency?torch-fp32-bs2-x2? PASSED*",
        "*test_latency?onnxruntime-fp32-bs2-x2? PASSED*",
        "framed — pipeline stages (median per batch)",
        "*backend*precision*batch*prepare ms*infer ms*post-process ms*total ms*items/s*infer share*",
        "framed — streams (per request, all streams pooled)",
        "*backend*streams*p50 ms*p90 ms*p99 ms*items/s*vs 1 stream*requests/stream*",
    ])
    cases = {c["case_id"]: c for c in json.loads(out.read_text())["cases"]}
    one, two = cases["onnxruntime-fp32-bs2"], cases["onnxruntime-fp32-bs2-x2"]
    assert list(one["stages"]) == ["prepare", "post", "total"] and one["timing"]["clock"] == "perf_counter"
    assert one["concurrency"]["streams"] == 1  # the sweep's reference, measured as the streams are
    assert two["case"]["streams"] == 2 and "stages" not in two
    assert two["concurrency"]["streams"] == 2 and len(two["concurrency"]["requests"]) == 2
    assert two["timing"]["clock"] == "perf_counter-requests" and two["accuracy"]["agreement"]["passed"]
    assert "streams" not in one["case"]  # one-stream cases keep the keys they always had


@pytest.mark.parametrize("value", ["0", "1,many", "65", "2.5"])
def test_bad_streams_are_one_usage_error_line(framed, value):
    result = framed.runpytest("--trt-streams", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--trt-streams: invalid value '{value}'; expected a comma-separated list of "
                                 "whole numbers from 1 to 64*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# The same model on a virtual clock (as tests/test_gate_acceptance.py): the network costs 1 ms, the
# preprocess 0.2 ms and the postprocess PYTEST_TRT_TEST_POST_MS, so a slowdown is exactly what the
# test sets, on a quiet and on a loaded host alike.
VIRTUAL = STAGED_MODEL + '''
import os, types
import pytest_trt.host, pytest_trt.sampling
from pytest_trt.records import HostLoad

_now = {"ns": 0}


def _clock():
    _now["ns"] += 1_000
    return _now["ns"]


pytest_trt.sampling.time = types.SimpleNamespace(perf_counter_ns=_clock)
pytest_trt.host.since = lambda start, *a, **k: HostLoad(1.0, 1.0, None, None, 0.5, 2, others_cpu_s=0.0)
pytest_trt.host.calibration_s = lambda repeats=9: 0.1
_forward, _pre, _post = Net.forward, preprocess, postprocess


def _timed_forward(self, x):
    _now["ns"] += 1_000_000
    return _forward(self, x)


def preprocess(raw):
    _now["ns"] += 200_000
    return _pre(raw)


def postprocess(outputs):
    _now["ns"] += int(float(os.environ["PYTEST_TRT_TEST_POST_MS"]) * 1e6)
    return _post(outputs)


Net.forward = _timed_forward
'''
GATE = [*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "--trt-min-time", "0.2", "--trt-max-time", "0.5"]


def test_a_post_processing_slowdown_fails_its_test_and_names_the_stage(pytester, tmp_path, monkeypatch):
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(VIRTUAL)
    pytester.makepyfile(test_framed=TEST)
    baseline = tmp_path / "base.json"
    monkeypatch.setenv("PYTEST_TRT_TEST_POST_MS", "2.0")
    for _ in range(2):  # two processes: the stages' between-process noise is measured, not assumed
        pytester.runpytest(*GATE, "--trt-save-baseline", str(baseline)).assert_outcomes(passed=1)
    entry = next(iter(json.loads(baseline.read_text())["runs"][0]["cases"].values()))
    assert set(entry["stages"]) == {"prepare", "post", "total"}
    monkeypatch.setenv("PYTEST_TRT_TEST_POST_MS", "3.0")  # +50 % in post-processing, the network unchanged
    result = pytester.runpytest(*GATE, "--trt-baseline", str(baseline))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*REGRESSION torch-fp32-bs1: post-process stage median 2.0* ms → 3.0* ms (×1.50*"
                                 "in all 3 processes*; total stage median 3.2* ms → 4.2* ms*; network median 1.0* ms "
                                 "→ 1.0* ms*within threshold*",
                                 "*prepare PASS, post-process REGRESSION, total REGRESSION*"])
