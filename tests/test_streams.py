"""A case with several streams through ``bench.run_case``: real ONNX Runtime sessions and torch
module copies, one per stream; each stream's outputs checked; shared state between streams caught."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pytest_trt import bench, concurrency
from pytest_trt.case import Case
from pytest_trt.checks import AccuracyLimits
from pytest_trt.model import ModelSpec

torch = pytest.importorskip("torch")


def _build() -> Any:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                               torch.nn.Flatten(), torch.nn.Linear(8, 5))


SPEC = ModelSpec(name="tiny-streams", build=_build, input_shape=(3, 16, 16))


def _context(tmp_path: Any, streams: tuple[int, ...] = (1, 2)) -> Any:
    from pytest_trt import settings
    from pytest_trt.context import Context

    return Context(settings.defaults(warmup_s=0.01, min_time_s=0.05, max_time_s=0.3, min_iterations=5, device="cpu",
                                     cache_dir=tmp_path, streams=streams))


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_two_streams_are_two_runners_timed_per_request_and_each_checked(tmp_path: Any, backend: str) -> None:
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    from pytest_trt.backends import get

    ctx = _context(tmp_path)
    case = Case(None, backend, "fp32", 2, "cpu", streams=2)
    runner = get(backend).create_runner(case, SPEC, ctx.artifacts)
    runner.prepare()
    try:
        result = bench.run_case(ctx, runner, SPEC, case, "t.py::t[x2]", AccuracyLimits())
    finally:
        runner.close()
    record = result.concurrency
    assert result.status.value == "ok" and record is not None and record.streams == 2
    assert record.made_by == "runner" and len(record.requests) == 2 and min(record.requests) >= 5
    assert result.timing is not None and result.timing.clock == concurrency.CLOCK
    assert result.timing.stats == record.latency and result.timing.stats.n == sum(record.requests)
    phases = result.build.phase_s
    assert {"streams_open", "streams_first_run", "measure", "check_timed"} <= set(phases)
    assert "flops" not in phases and not result.stages  # no per-call compute rate from latencies under load
    assert result.accuracy.agreement is not None and result.accuracy.agreement.passed


def test_one_stream_records_the_sweeps_reference_measured_the_same_way(tmp_path: Any) -> None:
    pytest.importorskip("onnxruntime")
    from pytest_trt.backends import get

    case = Case(None, "onnxruntime", "fp32", 2, "cpu")
    found = {}
    for streams in ((1, 4), (1,)):
        ctx = _context(tmp_path, streams=streams)
        runner = get("onnxruntime").create_runner(case, SPEC, ctx.artifacts)
        runner.prepare()
        try:
            found[streams] = bench.run_case(ctx, runner, SPEC, case, "t.py::t[x1]", AccuracyLimits())
        finally:
            runner.close()
    swept = found[(1, 4)]
    assert swept.timing is not None and swept.timing.clock == "perf_counter"  # the network's timing as ever
    assert swept.concurrency is not None and swept.concurrency.streams == 1 and swept.concurrency.requests[0] >= 5
    assert found[(1,)].concurrency is None  # no sweep, no reference measured


class SharedInput:
    """A runner whose streams share one input slot (spawned siblings holding the same dict): each
    stream's ``load_inputs`` overwrites the others', the bug a runner per stream rules out."""

    def __init__(self, module: Any, shared: dict[str, np.ndarray], case: Case) -> None:
        self.module, self.shared, self.case = module, shared, case
        self.stream, self.info = None, {}

    def spawn(self) -> SharedInput:
        return SharedInput(self.module, self.shared, self.case)

    def prepare(self) -> None:
        return None

    def load_inputs(self, host: np.ndarray) -> str:
        self.shared["x"] = np.ascontiguousarray(host, dtype=np.float32)
        return "x"

    def run(self, handle: str) -> np.ndarray:
        with torch.inference_mode():
            return np.asarray(self.module(torch.from_numpy(self.shared[handle])).numpy())

    def to_host(self, outputs: np.ndarray) -> np.ndarray:
        return outputs

    def close(self) -> None:
        return None


def test_streams_that_share_state_fail_their_output_check(tmp_path: Any) -> None:
    ctx = _context(tmp_path)
    case = Case(None, "numpy", "fp32", 2, "cpu", streams=3)
    runner = SharedInput(ctx.artifacts.module(SPEC), {}, case)
    result = bench.run_case(ctx, runner, SPEC, case, "t.py::t[x3]", AccuracyLimits())  # type: ignore[arg-type]
    assert result.concurrency is not None and result.concurrency.made_by == "spawn"
    assert result.status.value == "accuracy-failed" and "disagree" in result.message
    assert result.accuracy.agreement is not None and result.accuracy.agreement.reason.startswith("stream 1 of 3")
