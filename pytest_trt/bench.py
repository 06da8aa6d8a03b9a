"""Measure one case: check its outputs, time the runner, read telemetry and the host, judge accuracy.

The case walks through named phases (first run, check, measure, ...); each is recorded with its
seconds, and the progress file names the current one, so a case that is interrupted or dies says
where it was (``pytest_trt.progress``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import numpy as np

from pytest_trt import checks, diagnostics, host
from pytest_trt.backends.base import Runner
from pytest_trt.case import Case
from pytest_trt.checks import AccuracyLimits
from pytest_trt.context import Context, on_stream
from pytest_trt.model import ModelSpec
from pytest_trt.records import (
    Accuracy,
    BuildInfo,
    CaseResult,
    CaseState,
    HostLoad,
    JSONDict,
    TaskMetric,
    Telemetry,
    Timing,
)
from pytest_trt.settings import InputTooLarge, check_input_size
from pytest_trt.timing import NO_DEADLINE, CaseTimeout, Deadline

CHECK_SEED_OFFSET = 1  # the pre-timing check uses other inputs than the timed loop

__all__ = ["AccuracyLimits", "run_case", "representative_inputs", "timing_method"]


def run_case(
    ctx: Context, runner: Runner, spec: ModelSpec, case: Case, nodeid: str, limits: AccuracyLimits
) -> CaseResult:
    """The case's phases under its time bound (``--trt-case-timeout``, from its first call to its
    last check): past it, the phase it was in stops between calls, no later phase starts, and the
    case is recorded as ``timeout``. A call already running (native code) is not interrupted."""
    result = CaseResult(case, nodeid, spec.name, build=BuildInfo.from_dict(plain(runner.info)))
    phases: dict[str, float] = {}  # where the case's wall time went: set-up costs are not in the timing
    deadline = Deadline.start(ctx.settings.case_timeout_s)
    try:
        return _run_phases(ctx, runner, spec, limits, result, phases, deadline)
    except CaseTimeout as exc:
        done = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in phases.items())
        result.status, result.message = CaseState.TIMEOUT, f"{exc}" + (f" ({done})" if done else "")
        result.build.phase_s = phases
        return result
    except InputTooLarge as exc:  # a user's model: its input shape is known only now
        result.status, result.message = CaseState.ERROR, str(exc)
        return result


def _run_phases(ctx: Context, runner: Runner, spec: ModelSpec, limits: AccuracyLimits, result: CaseResult,
                phases: dict[str, float], deadline: Deadline) -> CaseResult:
    case, nodeid = result.case, result.nodeid
    prepared = {"prepare": result.build.prepare_s or 0.0}

    def phase(name: str) -> AbstractContextManager[None]:
        # past the case's bound no further phase starts; the bound passed in the one before
        deadline.check(f"{next(reversed(phases), 'inputs')}; {name} did not start")
        ctx.progress.phase(name, prepared | phases)  # an interrupted case is recorded in this phase
        return _phase(phases, name)

    if case.is_cuda:
        with phase("peaks"):  # once per session, before any timing (cached afterwards)
            diagnostics.measure_peaks(ctx)
    timed_inputs = representative_inputs(ctx, spec, case.batch_size, spec.seed)
    check_seed = spec.seed + CHECK_SEED_OFFSET
    check_inputs = representative_inputs(ctx, spec, case.batch_size, check_seed)

    def reference(seed: int) -> Callable[[np.ndarray, tuple[int, ...] | None], np.ndarray]:
        return lambda inputs, items: ctx.artifacts.reference(spec, inputs, seed, items)

    with on_stream(runner.stream):
        with phase("first_run"):  # a new shape: cuDNN autotuning, lazy allocations, ...
            check = runner.to_host(runner.run(runner.load_inputs(check_inputs)))
        with phase("check"):
            first = checks.agreement(check, check_inputs, case.precision, limits, reference(check_seed))
        with phase("measure"):
            timing, telemetry, load, last = _measure(ctx, runner, case, timed_inputs, nodeid, deadline)
        with phase("check_timed"):
            final = checks.agreement(runner.to_host(last), timed_inputs, case.precision, limits,
                                     reference(spec.seed))
            del last  # the transfer rounds below make their own outputs: not with this one alive too
        result.accuracy = Accuracy(first if not first.passed else final, None, True)
        if spec.dataset is not None and (limits.metric or spec.metric) is not None:
            with phase("task_metric"):
                task = _task_metric(ctx, runner, spec, case, limits, deadline)
            result.accuracy = dataclasses.replace(result.accuracy, task=task)
        if case.is_cuda:
            with phase("transfers"):
                transfers, result.build.transfers_error = diagnostics.transfer_split(runner, timed_inputs)
            timing = dataclasses.replace(timing, transfers=transfers)
    if ctx.settings.ort_profile and callable(getattr(runner, "profile", None)):
        with phase("ort_profile"):
            result.build.ort_profile = diagnostics.ort_profile(runner, timed_inputs)
    with phase("flops"):
        diagnostics.compute_rate(ctx, spec, case, timing.stats.median, result.build)
    return _finish(result, timing, telemetry, load, phases)


def _finish(result: CaseResult, timing: Timing, telemetry: Telemetry | None, load: HostLoad,
            phases: dict[str, float]) -> CaseResult:
    from pytest_trt.stats import flags

    result.timing, result.telemetry, result.host = timing, telemetry, load
    result.build.phase_s = phases
    result.flags = flags(timing, throttled=bool(telemetry and telemetry.throttled), load=load)
    result.status, result.message = checks.state(result.accuracy)
    return result


def plain(info: dict[str, Any]) -> JSONDict:
    """A runner's free-form facts as JSON values: numpy scalars, torch's version string, paths."""
    def default(value: Any) -> Any:
        item = getattr(value, "item", None)  # numpy scalars
        return item() if callable(item) else str(value)

    data: JSONDict = json.loads(json.dumps(info, default=default))
    return data


@contextmanager
def _phase(phases: dict[str, float], name: str) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        phases[name] = time.perf_counter() - start


def representative_inputs(ctx: Context, spec: ModelSpec, batch_size: int, seed: int) -> np.ndarray:
    """Real validation samples when the spec has data (INT8 is calibrated for that distribution),
    else the spec's seeded non-zero inputs (docs/design.md, rule 9)."""
    check_input_size(batch_size, spec.input_shape, spec.name)
    dataset = ctx.artifacts.dataset(spec)
    if dataset is None:
        return spec.example_inputs(batch_size, seed=seed)
    pool = dataset.val_x
    rows = np.random.default_rng(seed).choice(len(pool), size=batch_size, replace=batch_size > len(pool))
    return np.ascontiguousarray(pool[rows], dtype=np.float32)


def timing_method(ctx: Context, nodeid: str) -> tuple[bool, int]:
    """(flush L2, calls per sample): what the user set, else how the case's baseline entry was timed.

    Samples of one call and block means, or warm and cold L2, are different quantities: left to
    pick its own block size, each process may pick another, and the gate could compare none of them.
    """
    settings = ctx.settings
    cold, calls = settings.l2 == "cold", settings.calls_per_sample
    entries = ctx.baseline.entries(nodeid) if ctx.baseline is not None else []
    timed = [entry for _, entry in entries if entry.samples and entry.clock]
    if timed:
        clock = timed[-1].clock or ""
        if not settings.l2_explicit:
            cold = clock.endswith("cold-l2")
        if not settings.calls_per_sample_explicit and clock.startswith("cuda"):
            calls = timed[-1].calls_per_sample
    return cold, calls


def _measure(
    ctx: Context, runner: Runner, case: Case, inputs: np.ndarray, nodeid: str, deadline: Deadline = NO_DEADLINE
) -> tuple[Timing, Telemetry | None, HostLoad, Any]:
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
    sampler = telemetry_mod.Sampler.open(ctx.device_index) if case.is_cuda else None
    telemetry_mod.reset_peak_memory(case.device)
    if sampler is not None:
        sampler.start()
    start = host.snapshot()
    try:
        timing = measure(step, batch_size=case.batch_size, budget=budget, stream=runner.stream, deadline=deadline)
    finally:
        record = sampler.stop() if sampler is not None else {}
    load = host.since(start)
    telemetry = None
    if record:
        items = case.batch_size * timing.stats.n * timing.calls_per_sample  # every call, not every sample
        peak = telemetry_mod.peak_memory_bytes(case.device)
        finished = telemetry_mod.finish(record, items=items, wall_s=timing.wall_s, peak_memory_bytes=peak)
        telemetry = Telemetry.from_dict(plain(finished))
    return timing, telemetry, load, last[0]


def _task_metric(ctx: Context, runner: Runner, spec: ModelSpec, case: Case, limits: AccuracyLimits,
                 deadline: Deadline = NO_DEADLINE) -> TaskMetric:
    dataset = ctx.artifacts.dataset(spec)
    metric = limits.metric or spec.metric
    assert dataset is not None and metric is not None

    def run_batch(x: np.ndarray) -> np.ndarray:
        deadline.check("task_metric")  # a test split of many batches stops between them
        return runner.to_host(runner.run(runner.load_inputs(x)))

    reference = ctx.artifacts.fp32_metric(spec, metric, lambda: deadline.check("task_metric (fp32 reference)"))
    return checks.task_metric(run_batch, dataset.test_x, dataset.test_y, case.batch_size, metric,
                              dataset.num_classes, reference, limits.max_drop)
