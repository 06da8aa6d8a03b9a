"""The user-facing fixtures: trt_case, trt_model, onnx_model, trt_engine, trt_runner, trt_gpu, trt_bench."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pytest_trt import results as R
from pytest_trt.backends.base import BuildError, Runner, UnsupportedCase
from pytest_trt.bench import AccuracyLimits, run_case
from pytest_trt.case import Case
from pytest_trt.context import Context
from pytest_trt.model import ModelSpec
from pytest_trt.stash import CONTEXT, RESULT_PROPERTY


@pytest.fixture(scope="session")
def trt_context(pytestconfig: pytest.Config) -> Context:
    """Session state: settings, device, caches. Mostly for plugin internals and power users."""
    return pytestconfig.stash[CONTEXT]


@pytest.fixture
def trt_case(request: pytest.FixtureRequest) -> Case:
    """The matrix point; pytest-trt parametrizes it, so reaching this body means it was not."""
    raise pytest.UsageError(f"{request.node.nodeid}: trt_case was not parametrized by pytest-trt")


@pytest.fixture
def trt_model(trt_case: Case) -> ModelSpec:
    """The model of the case from the zoo. Override it in a conftest to benchmark your own model."""
    from pytest_trt import zoo

    if trt_case.model is None:
        pytest.fail("no model for this test: mark it @pytest.mark.trt(models=[...]) or models='zoo', "
                    "or override the trt_model fixture in a conftest", pytrace=False)
    return zoo.get(trt_case.model)


@pytest.fixture
def onnx_model(request: pytest.FixtureRequest, trt_case: Case, trt_model: ModelSpec,
               trt_context: Context) -> Path:
    """The exported, precision-converted ONNX file of the case (cached)."""
    from pytest_trt.backends import onnx_precision

    with _recorded(request, trt_case, trt_model, trt_context):
        return trt_context.onnx(trt_model, onnx_precision(trt_case.precision))[0]


@pytest.fixture
def trt_engine(request: pytest.FixtureRequest, trt_case: Case, trt_model: ModelSpec,
               trt_context: Context) -> Iterator[Runner]:
    """A prepared TensorRT runner (engine built or loaded from the cache) for the case."""
    from pytest_trt.backends.trt import probe

    if not probe.available():
        pytest.skip(probe.unavailable_reason())
    if trt_case.backend != "tensorrt":
        trt_case = Case(trt_case.model, "tensorrt", trt_case.precision, trt_case.batch_size,
                        trt_case.device, trt_case.variant)
    yield from _runner(request, trt_case, trt_model, trt_context)


@pytest.fixture
def trt_runner(request: pytest.FixtureRequest, trt_case: Case, trt_model: ModelSpec,
               trt_context: Context) -> Iterator[Runner]:
    """A prepared runner for the case on its backend: load_inputs / run / to_host / close."""
    yield from _runner(request, trt_case, trt_model, trt_context)


def _runner(request: pytest.FixtureRequest, case: Case, spec: ModelSpec, ctx: Context) -> Iterator[Runner]:
    from pytest_trt import backends

    ctx.progress.case(request.node.nodeid, case.to_dict(), spec.name)
    with _recorded(request, case, spec, ctx):
        runner = backends.get(case.backend).create_runner(case, spec, ctx)
        start = time.perf_counter()
        runner.prepare()
        runner.info.setdefault("prepare_s", time.perf_counter() - start)
    ctx.progress.phase("test", {"prepare": float(runner.info["prepare_s"])})  # the test body runs next
    try:
        yield runner
    finally:
        runner.close()


class _recorded:
    """Turn setup failures into recorded case states: skip (unsupported, OOM) or error (build)."""

    def __init__(self, request: pytest.FixtureRequest, case: Case, spec: ModelSpec, ctx: Context) -> None:
        self.request, self.case, self.spec, self.ctx = request, case, spec, ctx

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            return
        if isinstance(exc, UnsupportedCase):
            record(self.request, self._result(R.SKIPPED, str(exc)))
            pytest.skip(str(exc))
        if is_oom(exc):
            release_memory(self.case)
            message = f"out of memory {self.ctx.progress.where()}: {first_line(exc, 600)}"
            record(self.request, self._result(R.OOM, message))
            pytest.skip(f"OOM at batch {self.case.batch_size}: {first_line(exc)}")
        if isinstance(exc, BuildError):
            record(self.request, self._result(R.BUILD_FAILED, str(exc)))
            # from None: the exporter's own chained traceback adds nothing to its message
            raise pytest.fail.Exception(f"{self.case.id}: {exc}", pytrace=False) from None

    def _result(self, status: str, message: str) -> R.CaseResult:
        return R.CaseResult(self.case, self.request.node.nodeid, self.spec.name, status, message)


@dataclass(frozen=True)
class GpuInfo:
    device: str
    index: int
    name: str
    compute_capability: tuple[int, int]
    total_memory: int
    stream: Any  # a non-default torch.cuda.Stream
    nvml: Any  # pynvml device handle, or None where NVML is unavailable
    properties: Any  # torch.cuda.get_device_properties


@pytest.fixture(scope="session")
def trt_gpu(trt_context: Context) -> GpuInfo:
    """The case device's GPU: properties, a non-default stream, an NVML handle. Skips on CPU hosts."""
    if not trt_context.device.startswith("cuda"):
        pytest.skip(f"needs a CUDA GPU (device is {trt_context.device})")
    import torch

    index = torch.device(trt_context.device).index or 0
    props = torch.cuda.get_device_properties(index)
    stream = torch.cuda.Stream(index)  # type: ignore[no-untyped-call]
    return GpuInfo(trt_context.device, index, props.name, (props.major, props.minor), props.total_memory,
                   stream, _nvml_handle(index), props)


def _nvml_handle(index: int) -> Any:
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:  # NVML is optional: absent drivers or containers without it
        return None


@pytest.fixture
def trt_bench(request: pytest.FixtureRequest, trt_case: Case, trt_model: ModelSpec,
              trt_context: Context) -> Callable[..., R.CaseResult]:
    """Measure a runner for this case, check its outputs and accuracy, record and gate the result."""

    def bench(runner: Runner | None = None) -> R.CaseResult:
        runner = runner if runner is not None else request.getfixturevalue("trt_runner")
        limits = _accuracy_limits(request, trt_context)
        try:
            result = run_case(trt_context, runner, trt_model, trt_case, request.node.nodeid, limits)
        except Exception as exc:
            # Where it failed, and after how long: the UNet's fp32 batch-256 OOM came after 265 s of
            # cuDNN autotuning, which the next session's time limits must allow for.
            where = trt_context.progress.where()
            if not is_oom(exc):
                # A backend that refuses the case at run time (ONNX Runtime's CUDA EP refused the
                # segmenters' batch-256 convolutions) is an ERROR cell of the table; the traceback
                # still reaches the terminal for a bug report. 600 characters: ONNX Runtime names
                # the failing cuDNN call after the first 300.
                message = f"{type(exc).__name__} {where}: {first_line(exc, 600)}"
                record(request, R.CaseResult(trt_case, request.node.nodeid, trt_model.name, R.ERROR, message))
                raise
            release_memory(trt_case)
            message = f"out of memory {where}: {first_line(exc, 600)}"
            record(request, R.CaseResult(trt_case, request.node.nodeid, trt_model.name, R.OOM, message))
            pytest.skip(f"OOM at batch {trt_case.batch_size}: {first_line(exc)}")
        result.build["ran_on"] = _ran_on(trt_context)
        _judge(request, trt_context, result, runner, trt_model)
        record(request, result)
        if result.status != R.OK:
            pytest.fail(f"{trt_case.id}: {result.message}", pytrace=False)
        if result.verdict and result.verdict.get("outcome") == "REGRESSION":
            pytest.fail(result.verdict["message"], pytrace=False)
        return result

    return bench


def _ran_on(ctx: Context) -> dict[str, Any]:
    """Which device ran the case: with one xdist worker per GPU, each case names its own GPU."""
    hardware = ctx.environment().get("hardware", {})
    uuids = hardware.get("gpu_uuids") or [None]
    return {"device": ctx.device, "gpu_name": hardware.get("gpu_name"), "gpu_uuid": uuids[0],
            "cpu_model": hardware.get("cpu_model"), "worker": ctx.worker_id}


def _accuracy_limits(request: pytest.FixtureRequest, ctx: Context) -> AccuracyLimits:
    marker = request.node.get_closest_marker("trt_accuracy")
    kwargs = dict(marker.kwargs) if marker else {}
    max_drop = kwargs.pop("max_drop", ctx.settings.max_drop)
    metric = kwargs.pop("metric", None)
    return AccuracyLimits(max_drop=max_drop, metric=metric, agreement=kwargs or None)


def _judge(request: pytest.FixtureRequest, ctx: Context, result: R.CaseResult, runner: Runner,
           spec: ModelSpec) -> None:
    if ctx.baseline is None:
        return
    from pytest_trt import gate
    from pytest_trt.bench import remeasure
    from pytest_trt.settings import parse_threshold

    marker = request.node.get_closest_marker("trt")
    threshold = ctx.settings.threshold
    if marker and "threshold" in marker.kwargs:
        threshold = parse_threshold(str(marker.kwargs["threshold"]))
    limits = _accuracy_limits(request, ctx)
    current = result.to_dict()

    def judge(case: dict[str, Any]) -> gate.Verdict:
        return gate.judge(case, ctx.baseline, ctx.environment(), threshold=threshold,
                          max_accuracy_drop=limits.max_drop)

    def rejudge() -> gate.Verdict:
        timing = remeasure(ctx, runner, spec, result.case, result.nodeid)
        return judge({**current, "timing": timing.to_dict()})

    result.verdict = gate.confirm(judge(current), rejudge, ctx.settings.confirm).to_dict()


def record(request: pytest.FixtureRequest, result: R.CaseResult) -> None:
    """Attach the result to the test report: it travels to the xdist controller with it.

    execnet serializes only exact built-in types, so the dict is normalised through JSON first
    (numpy scalars, str subclasses such as torch's version string, tuples).
    """
    plain = json.loads(json.dumps(result.to_dict(), default=_plain))
    request.node.user_properties.append((RESULT_PROPERTY, plain))


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)


def is_oom(exc: BaseException) -> bool:
    text = f"{type(exc).__name__}: {exc}".lower()
    return "outofmemory" in text.replace(" ", "") or "out of memory" in text or "cudaerrormemoryallocation" in text


def release_memory(case: Case) -> None:
    """Free what an OOM left in the caching allocator so the next case starts clean."""
    import gc

    gc.collect()
    if case.is_cuda:
        import torch

        torch.cuda.empty_cache()


def first_line(exc: BaseException, limit: int = 300) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:limit]
