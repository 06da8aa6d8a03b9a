"""What a case records beside its timing: the transfer split, the compute rate, ONNX Runtime's profile.

Each is a nicety: a failure is recorded on the case, never fails it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.backends.base import Runner
from pytest_trt.case import Case
from pytest_trt.model import ModelSpec
from pytest_trt.records import BuildInfo, JSONDict

if TYPE_CHECKING:
    from pytest_trt.context import Context

TRANSFER_ITERATIONS = 3  # H2D / compute / D2H split: medians of this many event-timed rounds
# Which measured dense peak a precision is compared with: tensor-core fp16 for the reduced ones.
_PEAK_DTYPE = {"fp32": "fp32", "tf32": "tf32"}


def transfer_split(
    runner: Runner, inputs: np.ndarray, split: Callable[..., dict[str, float]] | None = None
) -> tuple[dict[str, float], str | None]:
    """trtexec's H2D / compute / D2H split from CUDA events around the runner's own calls (rule 4).

    The timed loop keeps inputs and outputs on the device (``includes_transfers`` False); this says
    what the copies would add. D2H ends when the host has the array, so it includes the return from
    the blocking copy.
    """
    from pytest_trt import timing

    split_events = split if split is not None else timing.transfer_split
    state: dict[str, Any] = {}

    def h2d() -> None:
        state.clear()  # the previous round's device buffers go before this round's are made
        state["inputs"] = runner.load_inputs(inputs)

    def compute() -> None:
        state["outputs"] = runner.run(state["inputs"])

    def d2h() -> None:
        runner.to_host(state["outputs"])

    try:
        return split_events(h2d, compute, d2h, runner.stream, TRANSFER_ITERATIONS), None
    except Exception as exc:
        return {}, f"{type(exc).__name__}: {exc}"


def ort_profile(runner: Runner, inputs: np.ndarray) -> JSONDict:
    """Node placement and host time per operator from a separate, profiled ONNX Runtime session."""
    from pytest_trt.bench import plain

    try:
        summary: dict[str, Any] = runner.profile(inputs)  # type: ignore[attr-defined]
        return plain(summary)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def measure_peaks(ctx: Context) -> None:
    """Measure the session's matmul peaks before its first CUDA case is timed, then let the GPU
    settle: measured after a case, the next case's telemetry caught the power cap they leave behind,
    and every process's first fp16 case read as throttled."""
    from pytest_trt import telemetry
    from pytest_trt.peak import measure_peak

    dtypes = dict.fromkeys(_PEAK_DTYPE.get(p, "fp16") for p in ctx.settings.precisions)
    for dtype in dtypes:
        measure_peak(ctx.device, dtype)
    telemetry.settle(ctx.device_index)


def compute_rate(ctx: Context, spec: ModelSpec, case: Case, median_s: float, build: BuildInfo) -> None:
    """Achieved TFLOP/s from the ONNX graph's FLOPs, and its share of the device's measured peak."""
    from pytest_trt.flops import achieved_tflops

    try:
        flops = ctx.artifacts.flops(spec, case.batch_size)
    except Exception as exc:
        build.flops_error = f"{type(exc).__name__}: {exc}"
        return
    if not flops:
        return
    build.flops, build.tflops = flops, achieved_tflops(flops, median_s)
    if case.is_cuda:
        from pytest_trt.peak import measure_peak, percent_of_peak

        build.peak_dtype = _PEAK_DTYPE.get(case.precision, "fp16")
        build.peak_tflops = measure_peak(case.device, build.peak_dtype)
        build.percent_of_peak = percent_of_peak(build.tflops, build.peak_tflops)
