"""The timing engine: the measurement rules of docs/design.md (rules 1-7).

``measure`` warms up by time, then times iterations in chunks until both minimums are met and the
median's confidence interval is tight, or a maximum is reached. On CPU each iteration is bracketed by
the host clock (``sampling.now``: ``time.perf_counter_ns``); on CUDA by CUDA events on the caller's
non-default stream (``cuda_timing``). The per-iteration loop does nothing but the call, the clock
reads and an append; the stop rule runs between chunks of about ``CHECK_INTERVAL_S``.

A ``Deadline`` (the case's time bound, ``--trt-case-timeout``) is checked between calls of the
warm-up and between chunks of the timed loop; past it the loop stops and raises ``CaseTimeout``.
A call in progress cannot be interrupted, but no further call is made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from itertools import repeat
from typing import Any

import numpy as np

from pytest_trt.cuda_timing import (
    EVENT_GPU_COST_S,
    MAX_CALLS_PER_SAMPLE,
    MAX_EVENT_BIAS,
    CudaApi,
    CudaEvent,
    backlog_probe,
    calls_per_sample,
    cuda_api,
    measure_events,
    torch_cuda_api,
    transfer_split_events,
)
from pytest_trt.records import Timing
from pytest_trt.sampling import (
    CHECK_INTERVAL_S,
    NO_DEADLINE,
    NS,
    STOP_CONVERGED,
    STOP_MAX_ITERATIONS,
    STOP_MAX_TIME,
    STOP_MIN_REACHED,
    STOP_REASONS,
    Budget,
    CaseTimeout,
    Clock,
    Deadline,
    Samples,
    StopRule,
    check_batch_size,
    next_chunk,
    now,
    warmup_limit_ns,
)
from pytest_trt.stats import summarize, thin

__all__ = [
    "CHECK_INTERVAL_S", "EVENT_GPU_COST_S", "MAX_CALLS_PER_SAMPLE", "MAX_CPU_CHUNK", "MAX_EVENT_BIAS",
    "NO_DEADLINE", "STOP_CONVERGED", "STOP_MAX_ITERATIONS", "STOP_MAX_TIME", "STOP_MIN_REACHED",
    "STOP_REASONS", "Budget", "CaseTimeout", "Clock", "CudaApi", "CudaEvent", "Deadline", "backlog_probe",
    "calls_per_sample", "cuda_api", "measure", "measure_events", "measure_throughput", "torch_cuda_api",
    "transfer_split", "transfer_split_events",
]

MAX_CPU_CHUNK = 200_000  # iterations per chunk on CPU (a no-op call takes ~50 ns)
DEFAULT_BUDGET = Budget()


def _warm_up_cpu(fn: Callable[[], object], budget: Budget, clock: Clock, deadline: Deadline) -> tuple[int, float]:
    """Call ``fn`` until the warm-up time has passed; returns (calls, seconds). No calls for 0 s."""
    limit = warmup_limit_ns(budget)
    if limit <= 0:
        return 0, 0.0
    start = clock()
    calls = 0
    while True:
        deadline.check("measure (warm-up)")
        fn()
        calls += 1
        now = clock()
        if now - start >= limit:
            return calls, (now - start) * NS


def _measure_cpu(fn: Callable[[], object], batch_size: int, budget: Budget, clock: Clock,
                 deadline: Deadline) -> Timing:
    stop = StopRule(budget)
    warm_calls, warm_s = _warm_up_cpu(fn, budget, clock, deadline)
    samples = Samples()
    chunk = next_chunk(warm_s / warm_calls if warm_calls else 0.0, MAX_CPU_CHUNK, 0)
    begin = clock()
    reason = None
    while reason is None:
        deadline.check(f"measure (timed loop, {samples.n} samples)")
        k = min(chunk, budget.max_iterations - samples.n)
        stamps = [clock()]
        append = stamps.append
        for _ in repeat(None, k):
            fn()
            append(clock())
        samples.extend(np.diff(np.asarray(stamps, dtype=np.int64)).astype(np.int64))
        chunk = next_chunk((stamps[-1] - stamps[0]) * NS / k, MAX_CPU_CHUNK, k)
        reason = stop(samples, samples.n, (clock() - begin) * NS)
    seconds = samples.seconds()
    # Back-to-back stamps: the samples add up to the time spent inside the measured chunks.
    wall_s = float(samples.view().sum()) * NS
    return Timing(
        clock="perf_counter",
        samples=thin(seconds, budget.keep_samples),
        stats=summarize(seconds, batch_size, wall_s if wall_s > 0 else NS),
        warmup_iterations=warm_calls,
        warmup_s=warm_s,
        wall_s=wall_s,
        stop_reason=reason,
    )


# ------------------------------------------------------------------------------------ public


def measure(
    fn: Callable[[], object], *, batch_size: int, budget: Budget = DEFAULT_BUDGET, stream: Any = None,
    clock: Clock | None = None, deadline: Deadline = NO_DEADLINE,
) -> Timing:
    """Time ``fn`` (one inference of ``batch_size`` items) under ``budget``.

    ``stream`` None: host timing with ``clock`` (default ``time.perf_counter_ns``). A non-default
    ``torch.cuda.Stream``: CUDA events on that stream, ``fn`` enqueued under it, host enqueue time
    reported as ``Timing.enqueue``. Past ``deadline`` the loop stops with ``CaseTimeout``.
    """
    check_batch_size(batch_size)
    if stream is None:
        return _measure_cpu(fn, batch_size, budget, clock or now, deadline)
    api = cuda_api(stream)
    if clock is not None:
        api = replace(api, clock=clock)
    return measure_events(fn, batch_size=batch_size, budget=budget, stream=stream, api=api, deadline=deadline)


def measure_throughput(
    fn: Callable[[], object], *, batch_size: int, iterations: int, stream: Any = None, clock: Clock | None = None
) -> float:
    """Items per second of ``iterations`` back-to-back calls with one synchronization at the end (rule 5).

    Does not warm up: call it after ``measure`` (or warm up yourself).
    """
    check_batch_size(batch_size)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    read = clock or now
    if stream is None:
        start = read()
        for _ in repeat(None, iterations):
            fn()
        wall = read() - start
    else:
        import torch

        with torch.cuda.stream(stream):
            stream.synchronize()
            start = read()
            for _ in repeat(None, iterations):
                fn()
            stream.synchronize()
            wall = read() - start
    return batch_size * iterations / (max(wall, 1) * NS)


def transfer_split(
    h2d: Callable[[], object],
    compute: Callable[[], object],
    d2h: Callable[[], object],
    stream: Any,
    iterations: int,
) -> dict[str, float]:
    """Median seconds of host→device copy, compute and device→host copy from CUDA events (rule 4).

    The three steps run back to back on ``stream``; call it after warming up ``compute``.
    """
    return transfer_split_events(h2d, compute, d2h, stream, iterations, torch_cuda_api())
