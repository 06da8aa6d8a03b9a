"""Measure one case: check outputs, time the runner, sample telemetry, judge accuracy.

DESIGN.md rule 11: the outputs of the timed iterations themselves are checked against the fp32
reference, so a runner that is fast because it returned stale, zero or partial outputs fails.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_trt import host
from pytest_trt import results as R
from pytest_trt.backends.base import Runner
from pytest_trt.case import Case
from pytest_trt.context import Context, on_stream
from pytest_trt.model import ModelSpec

CHECK_SEED_OFFSET = 1  # the pre-timing check uses other inputs than the timed loop
TRANSFER_ITERATIONS = 3  # H2D / compute / D2H split: medians of this many event-timed rounds


@dataclass(frozen=True)
class AccuracyLimits:
    max_drop: float | None = None  # task-metric drop against fp32; None: not gated
    metric: str | None = None  # override the spec's metric
    agreement: dict[str, float] | None = None  # override output-agreement limits


def run_case(
    ctx: Context, runner: Runner, spec: ModelSpec, case: Case, nodeid: str, limits: AccuracyLimits
) -> R.CaseResult:
    from pytest_trt import accuracy

    result = R.CaseResult(case=case, nodeid=nodeid, model_name=spec.name, build=dict(runner.info))
    phases: dict[str, float] = {}  # where the case's wall time went: set-up costs are not in the timing
    prepared = {"prepare": float(runner.info.get("prepare_s", 0.0))}

    def phase(name: str) -> AbstractContextManager[None]:
        ctx.progress.phase(name, prepared | phases)  # an interrupted case is recorded in this phase
        return _phase(phases, name)

    timed_inputs = representative_inputs(spec, case.batch_size, spec.seed)
    check_seed = spec.seed + CHECK_SEED_OFFSET
    check_inputs = representative_inputs(spec, case.batch_size, check_seed)
    with on_stream(runner.stream):
        with phase("first_run"):  # a new shape: cuDNN autotuning, lazy allocations, ...
            check = runner.to_host(runner.run(runner.load_inputs(check_inputs)))
        with phase("check"):
            first = _agreement(ctx, spec, case, check, check_inputs, check_seed, limits)
        with phase("measure"):
            timing, telemetry, last = _measure(ctx, runner, case, timed_inputs, nodeid=nodeid)
        with phase("check_timed"):
            final = _agreement(ctx, spec, case, runner.to_host(last), timed_inputs, spec.seed, limits)
            del last  # the transfer rounds below make their own outputs: not with this one alive too
        worst = first if not first["passed"] else final
        result.accuracy = {"agreement": worst, "checked_timed_outputs": True}
        if spec.dataset is not None and spec.metric is not None:
            with phase("task_metric"):
                result.accuracy.update(_task_metric(ctx, runner, spec, case, limits, accuracy))
        if case.is_cuda:
            with phase("transfers"):
                transfers, error = transfer_split(runner, timed_inputs)
            timing = dataclasses.replace(timing, transfers=transfers)
            if error:
                result.build["transfers_error"] = error
    if ctx.settings.ort_profile and callable(getattr(runner, "profile", None)):
        with phase("ort_profile"):
            result.build["ort_profile"] = _ort_profile(runner, timed_inputs)
    result.timing = timing
    with phase("flops"):
        result.build.update(_compute_rate(ctx, spec, case, timing.stats.median))
    result.build["phase_s"] = phases
    result.telemetry = telemetry
    result.flags = _flags(timing, telemetry)
    result.status, result.message = _status(result.accuracy)
    return result


@contextmanager
def _phase(phases: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - start


def _ort_profile(runner: Runner, inputs: np.ndarray) -> dict[str, Any]:
    """A diagnostic like the FLOP count: a failure is recorded, the case stands."""
    try:
        summary: dict[str, Any] = runner.profile(inputs)  # type: ignore[attr-defined]
        return summary
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def transfer_split(
    runner: Runner, inputs: np.ndarray, split: Callable[..., dict[str, float]] | None = None
) -> tuple[dict[str, float], str | None]:
    """trtexec's H2D / compute / D2H split from CUDA events around the runner's own calls (rule 4).

    The timed loop keeps inputs and outputs on the device (``includes_transfers`` False); this says
    what the copies would add. D2H ends when the host has the array, so it includes the return from
    the blocking copy. A runner that cannot be split is recorded, never fails the case.
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
    except Exception as exc:  # a nicety like the FLOP count: the timing stands without it
        return {}, f"{type(exc).__name__}: {exc}"


def remeasure(ctx: Context, runner: Runner, spec: ModelSpec, case: Case, nodeid: str) -> R.Timing:
    """Time the case again on the same inputs (the gate's confirmation of a suspected slowdown)."""
    with on_stream(runner.stream):
        timing, _, _ = _measure(ctx, runner, case, representative_inputs(spec, case.batch_size, spec.seed),
                                telemetry=False, nodeid=nodeid)
    return timing


def timing_method(ctx: Context, nodeid: str) -> tuple[bool, int]:
    """(flush L2, calls per sample): what the user set, else how the case's baseline entry was timed.

    Samples of one call and block means, or warm and cold L2, are different quantities: left to
    pick its own block size, each process may pick another, and the gate could compare none of them.
    """
    settings = ctx.settings
    cold, calls = settings.l2 == "cold", settings.calls_per_sample
    entries = ctx.baseline.entries(nodeid) if ctx.baseline is not None else []
    timed = [entry for _, entry in entries if entry.get("samples")]
    if timed:
        newest = timed[-1]
        if not settings.l2_explicit:
            cold = str(newest.get("clock") or "").endswith("cold-l2")
        if not settings.calls_per_sample_explicit and str(newest.get("clock") or "").startswith("cuda"):
            calls = int(newest.get("calls_per_sample") or 1)
    return cold, calls


def representative_inputs(spec: ModelSpec, batch_size: int, seed: int) -> np.ndarray:
    """Real validation samples when the spec has data (INT8 is calibrated for that distribution),
    else the spec's seeded non-zero inputs (DESIGN.md rule 9)."""
    if spec.dataset is None:
        return spec.example_inputs(batch_size, seed=seed)
    pool = spec.dataset().val_x
    rows = np.random.default_rng(seed).choice(len(pool), size=batch_size, replace=batch_size > len(pool))
    return np.ascontiguousarray(pool[rows], dtype=np.float32)


def _measure(
    ctx: Context, runner: Runner, case: Case, inputs: np.ndarray, telemetry: bool = True, nodeid: str = ""
) -> tuple[R.Timing, dict[str, Any], Any]:
    from pytest_trt import telemetry as telemetry_mod
    from pytest_trt.timing import Budget, measure

    handle = runner.load_inputs(inputs)
    last: list[Any] = [None]

    def step() -> None:
        # Drop the previous output before the next call, not after it: holding it added an output's
        # size to the peak (5.25 GiB for the UNet at batch 256, where tf32 then ran out of memory).
        last[0] = None
        last[0] = runner.run(handle)

    settings = ctx.settings
    cold, calls = timing_method(ctx, nodeid)
    budget = Budget(warmup_s=settings.warmup_s, min_time_s=settings.min_time_s,
                    max_time_s=settings.max_time_s, min_iterations=settings.min_iterations,
                    flush_l2=cold, calls_per_sample=calls)
    index = int(case.device.partition(":")[2] or 0)
    sampler = telemetry_mod.Sampler.open(index) if case.is_cuda and telemetry else None
    telemetry_mod.reset_peak_memory(case.device)
    if sampler is not None:
        sampler.start()
    start = host.snapshot()
    try:
        timing = measure(step, batch_size=case.batch_size, budget=budget, stream=runner.stream)
    finally:
        record = sampler.stop() if sampler is not None else {}
    load = host.since(start)
    if record:
        items = case.batch_size * timing.stats.n * timing.calls_per_sample  # every call, not every sample
        peak = telemetry_mod.peak_memory_bytes(case.device)
        record = telemetry_mod.finish(record, items=items, wall_s=timing.wall_s, peak_memory_bytes=peak)
    return timing, {**record, "host": load.to_dict()}, last[0]


# Which measured dense peak a precision is compared with: tensor-core fp16 for the reduced ones.
_PEAK_DTYPE = {"fp32": "fp32", "tf32": "tf32"}


def _compute_rate(ctx: Context, spec: ModelSpec, case: Case, median_s: float) -> dict[str, Any]:
    """Achieved TFLOP/s from the ONNX graph's FLOPs, and its share of the device's measured peak."""
    from pytest_trt.flops import achieved_tflops

    try:
        flops = ctx.flops(spec, case.batch_size)
    except Exception as exc:  # counting is a nicety: never fail a timed case over it
        return {"flops_error": f"{type(exc).__name__}: {exc}"}
    if not flops:
        return {}
    rate: dict[str, Any] = {"flops": flops, "tflops": achieved_tflops(flops, median_s)}
    if case.is_cuda:
        from pytest_trt.peak import measure_peak, percent_of_peak

        dtype = _PEAK_DTYPE.get(case.precision, "fp16")
        peak = measure_peak(case.device, dtype)
        rate.update(peak_tflops=peak, peak_dtype=dtype, percent_of_peak=percent_of_peak(rate["tflops"], peak))
    return rate


def _agreement(
    ctx: Context, spec: ModelSpec, case: Case, output: np.ndarray, inputs: np.ndarray, seed: int,
    limits: AccuracyLimits,
) -> dict[str, Any]:
    from pytest_trt import accuracy

    output = np.asarray(output)
    items = accuracy.checked_items(output.shape[0], output[:1].size) if output.ndim else None
    if items is not None:
        output, inputs = output[list(items)], inputs[list(items)]
    reference = ctx.reference(spec, inputs, seed, items)
    custom = accuracy.Limits(**limits.agreement) if limits.agreement else None
    agreement: dict[str, Any] = accuracy.agreement(output, reference, case.precision, custom, items)
    return agreement


def _task_metric(
    ctx: Context, runner: Runner, spec: ModelSpec, case: Case, limits: AccuracyLimits, accuracy: Any
) -> dict[str, Any]:
    assert spec.dataset is not None
    dataset = spec.dataset()
    metric = limits.metric or spec.metric
    assert metric is not None

    def run_batch(x: np.ndarray) -> np.ndarray:
        return runner.to_host(runner.run(runner.load_inputs(x)))

    value = accuracy.evaluate(run_batch, dataset.test_x, dataset.test_y, case.batch_size, metric,
                              dataset.num_classes)
    reference = ctx.fp32_metric(spec)
    max_drop = limits.max_drop
    passed, message = accuracy.gate(value, reference, max_drop, metric)
    return {"metric": metric, "value": value, "reference": reference, "drop": reference - value,
            "max_drop": max_drop, "passed": passed, "message": message}


def _flags(timing: R.Timing, telemetry: dict[str, Any]) -> list[str]:
    from pytest_trt.stats import flags

    return flags(timing, throttled=bool(telemetry.get("throttled")))


def _status(acc: dict[str, Any]) -> tuple[str, str]:
    agreement = acc["agreement"]
    if agreement.get("nonfinite"):
        return R.NAN, f"outputs contain {agreement['nonfinite']} NaN/Inf values"
    if not agreement["passed"]:
        return R.ACCURACY_FAILED, "outputs disagree with the fp32 reference: " + _describe(agreement)
    if acc.get("passed") is False:
        return R.ACCURACY_FAILED, str(acc["message"])
    return R.OK, ""


def _describe(agreement: dict[str, Any]) -> str:
    keys = ("max_abs", "rel_err", "cosine", "top1_agreement")
    shown = ", ".join(f"{k}={agreement[k]:.4g}" for k in keys if agreement.get(k) is not None)
    return f"{shown} (limits {agreement.get('limits')})"
