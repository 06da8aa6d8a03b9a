"""One process's A/B measurement: both runners checked, interleaved, their timed outputs compared.

A's outputs are checked against its own model's fp32 reference where it has one (a model, a
program), B's against A's on the same inputs (the precision limits of the looser of the two), on a
check batch before the timing and on the last timed call of each side after it, so a side that is
fast because it did not run fails (docs/design.md, rule 11). With a data set, both sides' task
metric is scored on its test split and B's drop below A's is gated by ``max_drop``.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from pytest_trt import bench, checks
from pytest_trt.ab import decide, interleave
from pytest_trt.ab.arms import Side
from pytest_trt.ab.record import AbProcess
from pytest_trt.backends.base import Runner
from pytest_trt.checks import AccuracyLimits
from pytest_trt.context import Context, on_stream
from pytest_trt.records import Agreement, TaskMetric, Timing
from pytest_trt.sampling import NO_DEADLINE, Deadline

# Least to most lenient: B against A is held to the looser side's limits.
LENIENCY = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")
MIN_ROUNDS = 20


@dataclass
class Measured:
    process: AbProcess
    timings: tuple[Timing, Timing]  # A's and B's block means, as the timing engine records them
    agreement: Agreement | None  # B against A
    reference_agreement: Agreement | None  # A against its fp32 reference
    task: TaskMetric | None  # B's metric, with A's as its reference


def looser(a: str, b: str) -> str:
    return max(a, b, key=LENIENCY.index)


def plan(ctx: Context, threshold: float) -> interleave.Plan:
    """The rounds' budget from the options; stop early once the CI is a quarter of the threshold."""
    s = ctx.settings
    return interleave.Plan(warmup_s=s.warmup_s, min_time_s=s.min_time_s, max_time_s=s.max_time_s,
                           min_rounds=max(MIN_ROUNDS, s.min_iterations), target_halfwidth=threshold / 4,
                           confidence=decide.CONFIDENCE,
                           host_clock="process_time" if s.ab_clock == "cpu" else "perf_counter")


Reopen = Callable[[], Sequence[Runner]]  # closes both runners and returns a new, prepared pair


def measure(ctx: Context, sides: Sequence[Side], runners: Sequence[Runner], limits: AccuracyLimits,
            compare_outputs: bool, threshold: float,
            phase: Callable[[str], AbstractContextManager[None]], deadline: Deadline = NO_DEADLINE,
            reopen: Reopen | None = None, instances: int = 1) -> Measured:
    """Both sides' checks, rounds and task metric; past ``deadline`` no later phase starts and the rounds
    stop between two of them (``CaseTimeout``).

    With ``instances`` > 1 the rounds are split over that many pairs of runner instances, ``reopen``
    making each pair after the first: two builds of one model in one process can differ by a
    percent or two (where their weights and buffers landed, measured on an H100: lab/results/ab_h100),
    a difference that one pair would carry into every round as if it were the change. The later
    checks and the task metric use the last pair."""
    a, b = sides
    spec = a.spec
    batch = a.case.batch_size
    timed_inputs = bench.representative_inputs(ctx, spec, batch, spec.seed)
    check_seed = spec.seed + bench.CHECK_SEED_OFFSET
    check_inputs = bench.representative_inputs(ctx, spec, batch, check_seed)
    deadline.check("first_run (A/B)")
    with phase("first_run"):
        first = [_once(runner, check_inputs) for runner in runners]
    with phase("check"):
        agreed = _agreements(sides, first, check_inputs, check_seed, limits, compare_outputs)
    deadline.check("measure (A/B)")
    with phase("measure"):
        rounds, last, seed, runners = _over_instances(runners, reopen, instances, timed_inputs, plan(ctx, threshold),
                                                      deadline, phase)
    with phase("check_timed"):
        timed = [runner.to_host(out) for runner, out in zip(runners, last)]
        del last
        again = _agreements(sides, timed, timed_inputs, spec.seed, limits, compare_outputs)
    agreement, reference = (x if x is None or not x.passed else y for x, y in zip(agreed, again))
    task = None
    metric = limits.metric or spec.metric
    if spec.dataset is not None and metric is not None:
        deadline.check("task_metric (A/B)")
        with phase("task_metric"):
            task = _task(ctx, sides, runners, metric, limits)
    process = decide.estimate(rounds, fresh=_fresh(), seed=seed)
    return Measured(process, _timings(rounds, batch), agreement, reference, task)


def _fresh() -> bool:
    from pytest_trt import remeasure

    return remeasure.in_child()


def _once(runner: Runner, host: np.ndarray) -> np.ndarray:
    with on_stream(runner.stream):
        return runner.to_host(runner.run(runner.load_inputs(host)))


def _agreements(sides: Sequence[Side], outputs: Sequence[np.ndarray], inputs: np.ndarray, seed: int,
                limits: AccuracyLimits, compare_outputs: bool) -> tuple[Agreement | None, Agreement | None]:
    """(B against A, A against its fp32 reference); None where that check does not apply."""
    a, b = sides
    out_a, out_b = outputs
    reference = None
    if a.checkable:
        reference = checks.agreement(out_a, inputs, a.case.precision, limits,
                                     lambda x, items: a.artifacts.reference(a.spec, x, seed, items))
    if not compare_outputs:
        if not b.checkable:
            return None, reference
        own = checks.agreement(out_b, inputs, b.case.precision, limits,
                               lambda x, items: b.artifacts.reference(b.spec, x, seed, items))
        return own, reference
    precision = looser(a.case.precision, b.case.precision)

    def of_a(x: np.ndarray, items: tuple[int, ...] | None) -> np.ndarray:
        return np.asarray(out_a if items is None else out_a[list(items)], dtype=np.float32)

    return checks.agreement(out_b, inputs, precision, limits, of_a), reference


def _over_instances(runners: Sequence[Runner], reopen: Reopen | None, instances: int, host: np.ndarray,
                    budget: interleave.Plan, deadline: Deadline, phase: Callable[[str], AbstractContextManager[None]]
                    ) -> tuple[interleave.Rounds, list[Any], int, Sequence[Runner]]:
    """The rounds over ``instances`` pairs of runners (one plan's budget shared among them), the last
    pair's outputs, the seed of the rounds' order and the last pair."""
    count = instances if reopen is not None else 1
    first, later = interleave.split(budget, count)
    seed = secrets.randbits(32)
    rng = random.Random(seed)
    parts: list[interleave.Rounds] = []
    last: list[Any] = []
    for k in range(count):
        if k:
            assert reopen is not None
            deadline.check(f"measure (A/B, instance pair {k + 1} of {count})")
            last = []  # the outputs live in the runners about to be closed
            with phase("reopen"):
                runners = reopen()
        rounds, last = _interleave(runners, host, first if k == 0 else replace(later, calls=parts[0].calls),
                                   deadline, rng)
        parts.append(rounds)
    return interleave.joined(parts), last, seed, runners


def _interleave(runners: Sequence[Runner], host: np.ndarray, budget: interleave.Plan, deadline: Deadline,
                rng: random.Random) -> tuple[interleave.Rounds, list[Any]]:
    """The rounds and each side's last timed output (kept one call at a time, as bench does)."""
    handles = []
    for runner in runners:
        with on_stream(runner.stream):
            handles.append(runner.load_inputs(host))
    last: list[Any] = [None, None]

    def step(i: int) -> Callable[[], None]:
        run, handle = runners[i].run, handles[i]

        def call() -> None:
            last[i] = None  # drop the previous output before the next call: not two alive at the peak
            last[i] = run(handle)

        return call

    fns = [step(0), step(1)]
    streams = [runner.stream for runner in runners]
    if streams[0] is None and streams[1] is None:
        rounds = interleave.interleave_cpu(fns, budget, rng, deadline=deadline)
    elif None in streams:
        raise ValueError("A and B run on one device: a CUDA A/B case needs both runners on their own stream")
    else:
        from pytest_trt import timing

        api = timing.cuda_api(runners[0].stream)
        sides = [interleave.CudaSide(fn, runner.stream) for fn, runner in zip(fns, runners)]
        rounds = interleave.interleave_cuda(sides, budget, rng, api, deadline=deadline)
    return rounds, last


def _timings(rounds: interleave.Rounds, batch: int) -> tuple[Timing, Timing]:
    from pytest_trt.stats import summarize, thin

    def of(samples: list[float]) -> Timing:
        wall = sum(samples) * rounds.calls
        return Timing(clock=rounds.clock, samples=thin(samples, 5000),
                      stats=summarize(samples, batch, wall, calls_per_sample=rounds.calls),
                      warmup_iterations=0, warmup_s=rounds.warmup_s / 2, wall_s=wall,
                      stop_reason=rounds.stop_reason, calls_per_sample=rounds.calls)

    return of(rounds.a), of(rounds.b)


def _task(ctx: Context, sides: Sequence[Side], runners: Sequence[Runner], metric: str,
          limits: AccuracyLimits) -> TaskMetric:
    """B's task metric on the test split with A's as the reference it may not fall below by max_drop."""
    from pytest_trt import accuracy

    a = sides[0]
    dataset = a.artifacts.dataset(a.spec)
    assert dataset is not None

    def run_batch(runner: Runner) -> Callable[[np.ndarray], np.ndarray]:
        return lambda x: _once(runner, x)

    batch = a.case.batch_size
    value_a = accuracy.evaluate(run_batch(runners[0]), dataset.test_x, dataset.test_y, batch, metric,
                                dataset.num_classes)
    task = checks.task_metric(run_batch(runners[1]), dataset.test_x, dataset.test_y, batch, metric,
                              dataset.num_classes, value_a, limits.max_drop)
    return TaskMetric(task.metric, task.value, task.reference, task.max_drop, task.passed,
                      task.message.replace("vs fp32", "vs A"))
