"""Pipeline stages: what each stage times, in which order, and the checks of the end-to-end path.

The unit tests drive ``pipeline.measure`` with a logging runner and a stand-in for the timing
engine (no clock is read); the last ones run the real detector (real ONNX Runtime session, real box
decoding and NMS) and a stale-input runner through ``bench.run_case``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from pytest_trt import pipeline
from pytest_trt.model import ModelSpec
from pytest_trt.records import Timing
from pytest_trt.stats import summarize
from pytest_trt.timing import NO_DEADLINE, Budget, CaseTimeout, Deadline


class Logged:
    """A runner that logs its calls; ``stream`` set: its outputs stay on a "device"."""

    def __init__(self, log: list[str], stream: object = None) -> None:
        self.log, self.stream, self.info = log, stream, {}

    def load_inputs(self, host: np.ndarray) -> Any:
        self.log.append("load")
        return host

    def run(self, inputs: Any) -> Any:
        self.log.append("run")
        return ("device", inputs.sum(axis=(1, 2, 3)))

    def to_host(self, outputs: Any) -> np.ndarray:
        self.log.append("to_host")
        assert outputs[0] == "device"
        return np.asarray(outputs[1], dtype=np.float32)[:, None]


class Timer:
    """Stands for ``timing.measure``: calls each timed function twice and returns a fixed Timing,
    recording what it was asked to time."""

    def __init__(self, log: list[str]) -> None:
        self.log, self.budgets, self.batches = log, [], []

    def __call__(self, fn: Callable[[], object], *, batch_size: int, budget: Budget,
                 deadline: Deadline = NO_DEADLINE) -> Timing:
        self.log.append("timed:")
        self.budgets.append(budget)
        self.batches.append(batch_size)
        for _ in range(2):
            fn()
        self.log.append(":end")
        values = [1e-3, 1.1e-3]
        return Timing("perf_counter", values, summarize(values, batch_size, sum(values)), 0, 0.0, sum(values), "x")


def _spec(log: list[str], pre: bool = True, post: bool = True) -> ModelSpec:
    def preprocess(raw: np.ndarray) -> np.ndarray:
        log.append("pre")
        return (raw.astype(np.float32) / 255.0).transpose(0, 3, 1, 2)

    def postprocess(outputs: np.ndarray) -> list[float]:
        log.append("post")
        return [float(x) for x in outputs[:, 0]]

    return ModelSpec(name="toy", build=lambda: pytest.fail("not built"), input_shape=(3, 4, 4),
                     preprocess=preprocess if pre else None, postprocess=postprocess if post else None)


RAW = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
BUDGET = Budget(warmup_s=0.0, min_time_s=0.01, max_time_s=0.1, min_iterations=3, keep_samples=5000)


def _segments(log: list[str]) -> list[list[str]]:
    """What each timed stage's function did, in order, and (first) what ran outside any timing."""
    untimed: list[str] = []
    timed: list[list[str]] = []
    inside = False
    for entry in log:
        if entry in ("timed:", ":end"):
            inside = entry == "timed:"
            if inside:
                timed.append([])
        elif inside:
            timed[-1].append(entry)
        else:
            untimed.append(entry)
    return [untimed, *timed]


def test_a_cpu_pipeline_times_prepare_post_and_total_and_no_copy() -> None:
    log: list[str] = []
    timer = Timer(log)
    staged = pipeline.measure(Logged(log), _spec(log), RAW, 2, BUDGET, timer=timer)
    assert list(staged.timings) == ["prepare", "post", "total"]  # outputs already on the host: no d2h
    setup, prepare, post, total = _segments(log)
    assert prepare == ["pre", "pre"]  # preprocess alone
    assert setup == ["pre", "load", "run"] and post == ["to_host", "post"] * 2  # the answer from one output
    assert total == ["pre", "load", "run", "to_host", "post"] * 2  # raw batch → answer, every step
    assert all(b.keep_samples == pipeline.KEEP_SAMPLES for b in timer.budgets) and set(timer.batches) == {2}
    assert all(b.min_time_s == BUDGET.min_time_s and b.min_iterations == 3 for b in timer.budgets)
    np.testing.assert_array_equal(staged.inputs, (RAW / 255.0).astype(np.float32).transpose(0, 3, 1, 2))
    np.testing.assert_allclose(staged.outputs[:, 0], staged.inputs.sum(axis=(1, 2, 3)), rtol=1e-6)


def test_a_device_pipeline_reports_the_copy_apart_and_post_includes_it() -> None:
    log: list[str] = []
    staged = pipeline.measure(Logged(log, stream=object()), _spec(log), RAW, 2, BUDGET, timer=Timer(log))
    assert list(staged.timings) == ["prepare", "d2h", "post", "total"]
    _, _, d2h, post, _ = _segments(log)
    assert d2h == ["to_host", "to_host"] and post == ["to_host", "post"] * 2


def test_a_spec_with_only_a_postprocess_feeds_the_network_its_input() -> None:
    log: list[str] = []
    x = np.ones((2, 3, 4, 4), np.float32)
    staged = pipeline.measure(Logged(log), _spec(log, pre=False), x, 2, BUDGET, timer=Timer(log))
    assert list(staged.timings) == ["post", "total"] and "pre" not in log
    assert staged.inputs is x or np.array_equal(staged.inputs, x)


@pytest.mark.parametrize(("raw", "message"), [
    (np.zeros((2, 4, 4, 3), np.uint8)[:, :3], r"preprocess returned float32 \(2, 3, 3, 4\)"),
    (np.zeros((3, 4, 4, 3), np.uint8), r"\(3, 3, 4, 4\); the network takes floating-point \(2, 3, 4, 4\)"),
])
def test_a_preprocess_that_does_not_make_the_network_input_is_an_error(raw: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pipeline.measure(Logged([]), _spec([]), raw, 2, BUDGET, timer=Timer([]))


def test_past_the_case_timeout_the_stage_being_timed_stops() -> None:
    log: list[str] = []
    now = [0]

    def clock() -> int:  # every read is a virtual millisecond later
        now[0] += 1_000_000
        return now[0]

    deadline = Deadline.start(0.05, clock)  # 50 virtual ms; one stage's minimum time alone is 10 ms
    spec = dataclasses.replace(_spec(log), postprocess=lambda outputs: now.__setitem__(0, now[0] + 100_000_000))
    with pytest.raises(CaseTimeout, match=r"in phase measure \((warm-up|timed loop)"):
        pipeline.measure(Logged(log), spec, RAW, 2, BUDGET, deadline=deadline)
    assert log.count("pre") >= 2  # prepare was timed; the slow post-process ran into the bound


def test_which_specs_have_stages() -> None:
    from pytest_trt import zoo

    assert pipeline.has_stages(zoo.get("scenes-det"))
    assert not pipeline.has_stages(zoo.get("digits-cnn"))


# -- the real detector and a stale runner through bench.run_case ------------------------------------


def _context(tmp_path: Any) -> Any:
    from pytest_trt import settings
    from pytest_trt.context import Context

    quick = settings.defaults(warmup_s=0.01, min_time_s=0.05, max_time_s=0.2, min_iterations=5, device="cpu",
                              cache_dir=tmp_path)
    return Context(quick)


def test_the_detector_pipeline_on_onnx_runtime_times_every_stage_and_checks_it(tmp_path: Any) -> None:
    pytest.importorskip("onnxruntime")
    from pytest_trt import bench, zoo
    from pytest_trt.backends import get
    from pytest_trt.case import Case
    from pytest_trt.checks import AccuracyLimits

    ctx, spec = _context(tmp_path), zoo.get("scenes-det")
    case = Case("scenes-det", "onnxruntime", "fp32", 2, "cpu")
    runner = get("onnxruntime").create_runner(case, spec, ctx.artifacts)
    runner.prepare()
    try:
        result = bench.run_case(ctx, runner, spec, case, "t.py::t[x]", AccuracyLimits())
    finally:
        runner.close()
    assert result.status.value == "ok" and result.accuracy.agreement and result.accuracy.agreement.passed
    assert list(result.stages) == ["prepare", "post", "total"]
    for timing in result.stages.values():
        assert timing.clock == "perf_counter" and timing.stats.n >= 5 and len(timing.samples) <= 1000
    assert result.timing is not None and result.timing.clock == "perf_counter"  # the network, timed as before
    assert "stages" in result.build.phase_s
    raw = spec.raw_inputs(2, spec.seed + pipeline.STAGE_SEED_OFFSET)
    answers = spec.postprocess(runner_outputs(spec, raw)) if spec.postprocess else None
    assert answers is not None and len(answers) == 2  # a batch of per-image detections


def runner_outputs(spec: ModelSpec, raw: np.ndarray) -> np.ndarray:
    from pytest_trt.artifacts import torch_fp32

    assert spec.preprocess is not None
    return torch_fp32(spec.build(), spec.preprocess(raw), "cpu")


def test_a_runner_that_misreads_the_pipelines_own_inputs_fails_on_the_end_to_end_path(tmp_path: Any) -> None:
    """A runner that binds an input's memory as if it were C-contiguous (a raw pointer, strides ignored)
    is right on the contiguous batches the network is timed and checked on, and wrong on what a
    preprocess returning a transposed view hands it: only the end-to-end path's check can see that."""
    torch = pytest.importorskip("torch")
    from numpy.lib.stride_tricks import as_strided

    from pytest_trt import bench
    from pytest_trt.case import Case
    from pytest_trt.checks import AccuracyLimits

    def build() -> Any:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 5))

    spec = ModelSpec(name="strided", build=build, input_shape=(3, 4, 4),
                     preprocess=lambda raw: (raw.astype(np.float32) / 255.0).transpose(0, 3, 1, 2))  # a view
    ctx = _context(tmp_path)
    module = ctx.artifacts.module(spec)
    case = Case(None, "numpy", "fp32", 2, "cpu")

    class PointerRunner:
        stream, info = None, {}

        def load_inputs(self, host: np.ndarray) -> np.ndarray:
            contiguous = tuple(int(np.prod(host.shape[i + 1:])) * host.itemsize for i in range(host.ndim))
            return as_strided(host, host.shape, contiguous)  # the bug: the buffer read in C order

        def run(self, x: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return np.asarray(module(torch.from_numpy(np.ascontiguousarray(x))).numpy())

        def to_host(self, outputs: np.ndarray) -> np.ndarray:
            return outputs

    runner = PointerRunner()
    runner.case = case  # type: ignore[attr-defined]
    result = bench.run_case(ctx, runner, spec, case, "t.py::t[s]", AccuracyLimits())  # type: ignore[arg-type]
    assert result.timing is not None and result.stages  # the network was timed and passed its own checks ...
    assert result.status.value == "accuracy-failed" and "disagree" in result.message  # ... the pipeline did not
    plain = dataclasses.replace(spec, name="strided-plain", preprocess=None)
    assert bench.run_case(ctx, runner, plain, case, "t.py::t[p]", AccuracyLimits()).status.value == "ok"  # type: ignore[arg-type]
