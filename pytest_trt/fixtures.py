"""The user-facing fixtures: trt_case, trt_model, onnx_model, trt_engine, trt_runner, trt_gpu, trt_bench, trt_ab."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from pytest_trt import judging
from pytest_trt.backends.base import BuildError, Runner, UnsupportedCase
from pytest_trt.bench import AccuracyLimits, run_case
from pytest_trt.case import Case
from pytest_trt.context import Context
from pytest_trt.model import ModelSpec
from pytest_trt.records import CaseResult, CaseState, RanOn, case_key
from pytest_trt.stash import CONTEXT, RESULT
from pytest_trt.verdict import Outcome

if TYPE_CHECKING:
    from pytest_trt.ab import AbResult


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
        return trt_context.artifacts.onnx(trt_model, onnx_precision(trt_case.precision))[0]


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
        runner = backends.get(case.backend).create_runner(case, spec, ctx.artifacts)
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
            record(self.request, self._result(CaseState.SKIPPED, str(exc)))
            pytest.skip(str(exc))
        if is_oom(exc):
            release_memory(self.case)
            message = f"out of memory {self.ctx.progress.where()}: {first_line(exc, 600)}"
            record(self.request, self._result(CaseState.OOM, message))
            pytest.skip(f"OOM at batch {self.case.batch_size}: {first_line(exc)}")
        if isinstance(exc, BuildError):
            record(self.request, self._result(CaseState.BUILD_FAILED, str(exc)))
            # from None: the exporter's own chained traceback adds nothing to its message
            raise pytest.fail.Exception(f"{self.case.id}: {exc}", pytrace=False) from None

    def _result(self, status: CaseState, message: str) -> CaseResult:
        return CaseResult(self.case, self.request.node.nodeid, self.spec.name, status, message,
                          key=case_key(self.request.node.nodeid))


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

    index = trt_context.device_index
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
              trt_context: Context) -> Callable[..., CaseResult]:
    """Measure a runner for this case, check its outputs and accuracy, record and gate the result."""

    def bench(runner: Runner | None = None) -> CaseResult:
        runner = runner if runner is not None else request.getfixturevalue("trt_runner")
        limits = _accuracy_limits(request, trt_context)
        try:
            result = run_case(trt_context, runner, trt_model, trt_case, request.node.nodeid, limits)
        except Exception as exc:
            _record_failure(request, trt_case, trt_model, trt_context, exc)
            raise
        result.build.ran_on = _ran_on(trt_context)
        result.key = case_key(request.node.nodeid)
        _keep_artifacts(trt_context, trt_model, result)
        rules = judging.policy(trt_context, _marker(request), limits.max_drop)
        result.verdict = judging.judge(request.config, trt_context, result, rules)
        record(request, result)
        if result.status is not CaseState.OK:
            pytest.fail(f"{trt_case.id}: {result.message}", pytrace=False)
        if result.verdict is not None and result.verdict.failed:
            failed = result.verdict if result.verdict.outcome is Outcome.REGRESSION else result.verdict.energy
            assert failed is not None
            pytest.fail(failed.message, pytrace=False)
        return result

    return bench


def _keep_artifacts(ctx: Context, spec: ModelSpec, result: CaseResult) -> None:
    """With --trt-save-artifacts, the model's files beside the baseline (for trt_ab(reference=BASELINE))."""
    if ctx.settings.save_artifacts:
        from pytest_trt.ab import store

        store.keep(ctx, spec, result)


@pytest.fixture
def trt_ab(request: pytest.FixtureRequest, trt_case: Case, trt_model: ModelSpec,
           trt_context: Context) -> Callable[..., AbResult]:
    """``trt_ab(reference=None, candidate=None, compare_outputs=None)``: measure A and B of this case
    interleaved, check B's outputs against A's, record, and fail the test when B is slower.

    Each side is the test's case with parts replaced: ``pytest_trt.ab.Arm(model=..., backend=...,
    precision=..., variant=...)``, or only a model (a ModelSpec, a model factory, an .onnx or .pt2
    path, ``pytest_trt.ab.BASELINE``). Called without sides, it reads ``@pytest.mark.trt_ab``.
    """

    def ab(reference: object = None, candidate: object = None, compare_outputs: bool | None = None) -> AbResult:
        from pytest_trt.ab import run

        return run.run(request, trt_context, trt_case, trt_model, reference, candidate, compare_outputs)

    return ab


def _record_failure(request: pytest.FixtureRequest, case: Case, spec: ModelSpec, ctx: Context,
                    exc: Exception) -> None:
    """A backend that fails at run time is an ERROR cell (or OOM, then a skip) naming its phase.

    Where it failed, and after how long: an OOM that comes after minutes of cuDNN autotuning needs
    other time limits than one at the first allocation. 600 characters: ONNX Runtime names the
    failing cuDNN call after the first 300.
    """
    where = ctx.progress.where()
    if not is_oom(exc):
        message = f"{type(exc).__name__} {where}: {first_line(exc, 600)}"
        record(request, CaseResult(case, request.node.nodeid, spec.name, CaseState.ERROR, message,
                                   key=case_key(request.node.nodeid)))
        return
    release_memory(case)
    message = f"out of memory {where}: {first_line(exc, 600)}"
    record(request, CaseResult(case, request.node.nodeid, spec.name, CaseState.OOM, message,
                               key=case_key(request.node.nodeid)))
    pytest.skip(f"OOM at batch {case.batch_size}: {first_line(exc)}")


def _marker(request: pytest.FixtureRequest) -> dict[str, object]:
    marker = request.node.get_closest_marker("trt")
    return dict(marker.kwargs) if marker else {}


def _ran_on(ctx: Context) -> RanOn:
    """Which device ran the case: with one xdist worker per GPU, each case names its own GPU."""
    hardware = ctx.environment().get("hardware")
    hw = hardware if isinstance(hardware, dict) else {}
    uuids = hw.get("gpu_uuids")
    first = uuids[0] if isinstance(uuids, list) and uuids else None

    def text(value: object) -> str | None:
        return None if value is None else str(value)

    return RanOn(ctx.device, text(hw.get("gpu_name")), text(first), text(hw.get("cpu_model")), ctx.worker_id)


def _accuracy_limits(request: pytest.FixtureRequest, ctx: Context) -> AccuracyLimits:
    marker = request.node.get_closest_marker("trt_accuracy")
    kwargs = dict(marker.kwargs) if marker else {}
    max_drop = kwargs.pop("max_drop", ctx.settings.max_drop)
    metric = kwargs.pop("metric", None)
    return AccuracyLimits(max_drop=max_drop, metric=metric, agreement=kwargs or None)


def record(request: pytest.FixtureRequest, result: CaseResult) -> None:
    """Keep the result on the item: the report hook hands it to the controller (across xdist too)."""
    request.node.stash[RESULT] = result


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
