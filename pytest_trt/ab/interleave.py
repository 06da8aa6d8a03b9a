"""Interleaved timing of a reference (A) and a candidate (B): randomised rounds of one block each.

Each round times a block of ``calls`` back-to-back calls of A and a block of B, in an order drawn
at random for that round. A slow patch of the machine (a neighbour's burst, a clock change, drift
over minutes) then lands on both sides of most rounds, and the round's ratio B/A cancels it: the
unit of evidence is the ratio of two blocks measured a few milliseconds apart, never two medians
measured at different times. The random order keeps "the side that runs second" (which may find
warmer or colder caches, or a thread pool the other side just left spinning) from favouring one.

On the CPU a block is bracketed by ``perf_counter_ns`` reads (``process_time_ns`` with
``--trt-ab-clock cpu``). On CUDA each block is bracketed by
CUDA events on its own runner's stream, and each block's stream first waits for the previous
block's end event, so the two runners' work never overlaps on the GPU while the host keeps
enqueueing ahead (the queue never drains between blocks); events are read a chunk behind, as the
timing engine does (``pytest_trt.timing``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import repeat
from typing import Any, Protocol

import numpy as np

from pytest_trt.sampling import NO_DEADLINE, Deadline
from pytest_trt.stats import median_ci_ranks
from pytest_trt.timing import CudaApi, CudaEvent

NS = 1e-9
BLOCK_S = 0.005  # target duration of one block: short next to any drift, long next to an event (2 us)
MAX_BLOCK_CALLS = 4096
CHUNK_S = 0.05  # CUDA: GPU time of the rounds enqueued between two reads of their events
MAX_CHUNK_PAIRS = 64  # events in flight stay bounded, however short the warm-up made a call look
WARMUP_BATCH = 64  # GPU warm-up calls between synchronizations, at most
HOST_CLOCKS = ("perf_counter", "process_time")


@dataclass(frozen=True)
class Plan:
    """How long to interleave. The times count both sides' timed blocks together."""

    warmup_s: float = 0.2  # per side, before the first round (dropped)
    min_time_s: float = 1.0
    max_time_s: float = 5.0
    min_rounds: int = 20
    max_rounds: int = 100_000
    block_s: float = BLOCK_S
    calls: int = 0  # calls per block; 0: enough for about ``block_s``
    target_halfwidth: float = 0.0  # stop early once the CI of the median log ratio is this narrow (0: never)
    confidence: float = 0.98
    host_clock: str = "perf_counter"  # CPU rounds: "perf_counter" (wall) or "process_time" (the process's CPU)

    def __post_init__(self) -> None:
        for name in ("warmup_s", "min_time_s", "max_time_s", "block_s", "target_halfwidth"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.max_time_s < self.min_time_s:
            raise ValueError(f"max_time_s ({self.max_time_s}) must not be below min_time_s ({self.min_time_s})")
        if not 1 <= self.min_rounds <= self.max_rounds:
            raise ValueError(f"need 1 <= min_rounds <= max_rounds, got {self.min_rounds}, {self.max_rounds}")
        if self.calls < 0:
            raise ValueError(f"calls must be >= 0 (0: automatic), got {self.calls}")
        if self.host_clock not in HOST_CLOCKS:
            raise ValueError(f"host_clock must be one of {', '.join(HOST_CLOCKS)}, got {self.host_clock!r}")


@dataclass
class Rounds:
    """What the rounds measured: seconds per call of each round's A and B blocks, in round order."""

    clock: str
    calls: int  # calls per block
    a: list[float] = field(default_factory=list)
    b: list[float] = field(default_factory=list)
    b_first: list[bool] = field(default_factory=list)  # whether B's block ran first in the round
    warmup_s: float = 0.0
    wall_s: float = 0.0  # seconds of timed blocks, both sides
    stop_reason: str = ""
    instances: list[int] = field(default_factory=list)  # rounds per pair of runner instances, in order (``joined``)

    @property
    def log_ratios(self) -> list[float]:
        return [math.log(b / a) for a, b in zip(self.a, self.b) if a > 0 and b > 0]


def split(plan: Plan, count: int) -> tuple[Plan, Plan]:
    """(the first instance pair's plan, each later one's) when ``count`` pairs share one plan's budget.

    Times and round counts are divided among the pairs (rounds up to whole balanced pairs); a later
    pair's warm-up is a share of the first's, since the first already paid for what a process does
    once (kernel choice, lazy initialization) and a new instance needs only its own first calls.
    """
    if count <= 1:
        return plan, plan
    per = math.ceil(plan.min_rounds / count)
    first = replace(plan, min_time_s=plan.min_time_s / count, max_time_s=plan.max_time_s / count,
                    min_rounds=per + per % 2, max_rounds=max(per + per % 2, math.ceil(plan.max_rounds / count)))
    return first, replace(first, warmup_s=plan.warmup_s / count)


def joined(parts: Sequence[Rounds]) -> Rounds:
    """The rounds of several instance pairs as one record, each part cut to whole balanced pairs, so
    that ``paired`` never pairs a round of one instance pair with one of the next."""
    if not parts:
        raise ValueError("no instance pair was measured")
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if any(p.calls != first.calls or p.clock != first.clock for p in parts):
        raise ValueError("instance pairs must time blocks of the same calls on the same clock")
    out = Rounds(first.clock, first.calls)
    for part in parts:
        n = len(part.a) - len(part.a) % 2
        out.a += part.a[:n]
        out.b += part.b[:n]
        out.b_first += part.b_first[:n]
        out.instances.append(n)
        out.warmup_s += part.warmup_s
        out.wall_s += part.wall_s
    reasons = [p.stop_reason for p in parts]
    out.stop_reason = "max-time" if "max-time" in reasons else reasons[-1]
    return out


def halfwidth(log_ratios: Sequence[float], confidence: float) -> float:
    """Half the width of the distribution-free CI of the median log ratio (inf with too few rounds)."""
    n = len(log_ratios)
    if n < 2:
        return math.inf
    lo, hi = median_ci_ranks(n, confidence)
    ordered = np.sort(np.asarray(log_ratios, dtype=np.float64))
    return float(ordered[hi] - ordered[lo]) / 2


def block_calls(per_call_s: Sequence[float], plan: Plan) -> int:
    """Calls per block: the plan's, else about ``block_s`` of the two sides' mean call."""
    if plan.calls:
        return plan.calls
    mean = sum(per_call_s) / len(per_call_s)
    if mean <= 0:
        return 1
    return max(1, min(MAX_BLOCK_CALLS, math.ceil(plan.block_s / mean)))


class _Stop:
    """Both minimums, then an early stop on a narrow CI, else a maximum."""

    def __init__(self, plan: Plan, deadline: Deadline = NO_DEADLINE) -> None:
        self.plan, self.deadline = plan, deadline
        self._next_check = plan.min_rounds

    def __call__(self, rounds: Rounds) -> str:
        plan, n = self.plan, len(rounds.a)
        self.deadline.check(f"measure (A/B, after {n} rounds)")  # between rounds: a CaseTimeout, never mid-block
        if n >= plan.max_rounds:
            return "max-rounds"
        if n < plan.min_rounds:
            return ""
        if rounds.wall_s >= plan.min_time_s:
            if plan.target_halfwidth == 0:
                return "min-reached"
            if n >= self._next_check:
                self._next_check = math.ceil(n * 1.25)  # sorting grows with n: check geometrically
                if halfwidth(paired(rounds.log_ratios), plan.confidence) <= plan.target_halfwidth:
                    return "converged"
        return "max-time" if rounds.wall_s >= plan.max_time_s else ""


def orders(rng: random.Random) -> Iterator[tuple[int, int]]:
    """Round orders in balanced pairs: a random order, then its reverse (AB BA or BA AB).

    Whichever side runs second in a round may be slower for it (measured on a 2-core host: ONNX
    Runtime's intra-op threads, left spinning by the first session, took the CPU from the second,
    a 3-8 % effect). Random order alone cancels that only on average, and leaves the rounds split
    into two groups a few percent apart; a pair holds each order once, so its mean log ratio
    (``paired``) has the effect cancelled in every pair.
    """
    while True:
        first = (1, 0) if rng.random() < 0.5 else (0, 1)
        yield first
        yield (first[1], first[0])


def paired(log_ratios: Sequence[float]) -> list[float]:
    """The mean log ratio of each balanced pair of rounds (rounds 0-1, 2-3, ...; an odd last one is dropped)."""
    return [(log_ratios[i] + log_ratios[i + 1]) / 2 for i in range(0, len(log_ratios) - 1, 2)]


# ---------------------------------------------------------------------------------------- CPU


def _warm_cpu(fn: Callable[[], object], seconds: float, clock: Callable[[], int]) -> tuple[float, float]:
    """Call ``fn`` for ``seconds`` (at least twice); returns (its median call after the first, seconds).

    The median, not the mean: the first calls of a new shape pay for allocations and kernel choice,
    and a block sized by them would hold a tenth of the calls it should.
    """
    start = previous = clock()
    spent: list[int] = []
    while True:
        fn()
        now = clock()
        spent.append(now - previous)
        previous = now
        if (now - start) * NS >= seconds and len(spent) >= 2:
            return float(np.median(spent[1:])) * NS, (now - start) * NS


def _block_cpu(fn: Callable[[], object], calls: int, clock: Callable[[], int], stamps: np.ndarray) -> tuple[float, int]:
    """One block: (its median call in seconds, its nanoseconds in all).

    The median call, not the mean: on a shared host the scheduler takes the CPU away for whole time
    slices (milliseconds), which lands on one call of a block and would move the block's mean by
    as much as the call itself takes; the median call of the block does not move.
    """
    stamps[0] = clock()
    for i in range(1, calls + 1):
        fn()
        stamps[i] = clock()
    return float(np.median(np.diff(stamps))) * NS, int(stamps[-1] - stamps[0])


def interleave_cpu(fns: Sequence[Callable[[], object]], plan: Plan, rng: random.Random,
                   clock: Callable[[], int] | None = None, deadline: Deadline = NO_DEADLINE) -> Rounds:
    """Rounds of A and B on the host clock (the plan's unless given): ``fns`` are (A's call, B's call).

    ``process_time`` counts the CPU the process spent (all its threads), not the wall time: on a host
    whose cores other jobs share, a call that the scheduler set aside for another process's time
    slice is charged for its own work only. It measures work, so it suits two sides that run the
    same threads; a side that is faster by using more threads is slower by this clock.
    """
    if clock is None:  # looked up per call: a test's virtual clock replaces the module's
        clock = time.process_time_ns if plan.host_clock == "process_time" else time.perf_counter_ns
    warm = [_warm_cpu(fn, plan.warmup_s, clock) for fn in fns]
    calls = block_calls([per_call for per_call, _ in warm], plan)
    rounds = Rounds(plan.host_clock, calls, warmup_s=sum(s for _, s in warm))
    stop = _Stop(plan, deadline)
    stamps = np.empty(calls + 1, dtype=np.int64)
    sequence = orders(rng)
    while not rounds.stop_reason:
        order = next(sequence)
        typical, spent = [0.0, 0.0], [0, 0]
        for side in order:
            typical[side], spent[side] = _block_cpu(fns[side], calls, clock, stamps)
        rounds.a.append(typical[0])
        rounds.b.append(typical[1])
        rounds.b_first.append(order[0] == 1)
        rounds.wall_s += (spent[0] + spent[1]) * NS
        rounds.stop_reason = stop(rounds)
    return rounds


# --------------------------------------------------------------------------------------- CUDA


class Stream(Protocol):
    """The part of ``torch.cuda.Stream`` the CUDA rounds use."""

    def wait_event(self, event: Any) -> None: ...

    def synchronize(self) -> None: ...


@dataclass(frozen=True)
class CudaSide:
    fn: Callable[[], object]
    stream: Stream


def _warm_cuda(side: CudaSide, seconds: float, api: CudaApi, clock: Callable[[], int]) -> tuple[int, float]:
    """Warm up by synchronized wall time, in doubling batches so the queue never runs dry."""
    with api.stream_context(side.stream):
        side.stream.synchronize()
        start, calls, batch = clock(), 0, 1
        while True:
            for _ in repeat(None, batch):
                side.fn()
            calls += batch
            side.stream.synchronize()
            elapsed = (clock() - start) * NS
            if elapsed >= seconds:
                return calls, elapsed
            batch = min(2 * batch, WARMUP_BATCH)


Block = tuple[int, CudaEvent, CudaEvent]  # (side, start event, end event)


def _enqueue(sides: Sequence[CudaSide], order: tuple[int, int], calls: int, api: CudaApi,
             after: CudaEvent | None, blocks: list[Block]) -> CudaEvent:
    """Enqueue one round; each block's stream first waits for the block before it. Returns the last end."""
    for side in order:
        stream, fn = sides[side].stream, sides[side].fn
        start, end = api.make_event(), api.make_event()
        with api.stream_context(stream):
            if after is not None:
                stream.wait_event(after)
            start.record(stream)
            for _ in repeat(None, calls):
                fn()
            end.record(stream)
        blocks.append((side, start, end))
        after = end
    assert after is not None
    return after


def _read(blocks: list[Block], chunk: list[tuple[int, int]], calls: int, rounds: Rounds) -> None:
    """Wait for a chunk's last block, then add its rounds (ms → seconds per call)."""
    blocks[-1][2].synchronize()
    for i, order in enumerate(chunk):
        spent = [0.0, 0.0]
        for side, start, end in blocks[2 * i: 2 * i + 2]:
            spent[side] = start.elapsed_time(end) * 1e-3
        rounds.a.append(spent[0] / calls)
        rounds.b.append(spent[1] / calls)
        rounds.b_first.append(order[0] == 1)
        rounds.wall_s += spent[0] + spent[1]


def interleave_cuda(sides: Sequence[CudaSide], plan: Plan, rng: random.Random, api: CudaApi,
                    clock: Callable[[], int] | None = None, deadline: Deadline = NO_DEADLINE) -> Rounds:
    """Rounds of A and B timed by CUDA events on each side's own (non-default) stream; ``clock``
    (``perf_counter_ns`` unless given) times the warm-up only."""
    clock = clock or time.perf_counter_ns
    for side in sides:
        if api.is_default_stream(side.stream):
            raise ValueError("each side needs a non-default CUDA stream (docs/design.md, rule 3)")
    warm = [_warm_cuda(side, plan.warmup_s, api, clock) for side in sides]
    per_call = [seconds / count for count, seconds in warm]
    calls = block_calls(per_call, plan)
    rounds = Rounds("cuda-event", calls, warmup_s=sum(s for _, s in warm))
    pairs = math.ceil(CHUNK_S / max(calls * sum(per_call), 1e-9))
    per_chunk = 2 * max(1, min(MAX_CHUNK_PAIRS, pairs))  # whole pairs
    stop = _Stop(plan, deadline)
    sequence = orders(rng)
    pending: tuple[list[Block], list[tuple[int, int]]] | None = None
    last: CudaEvent | None = None
    enqueued = 0
    while True:
        wanted = min(per_chunk, plan.max_rounds - enqueued)
        blocks: list[Block] = []
        chunk = [next(sequence) for _ in range(wanted)]
        for order in chunk:
            last = _enqueue(sides, order, calls, api, last, blocks)
        enqueued += wanted
        if pending is not None:  # read the chunk before this one: the GPU queue stays full meanwhile
            _read(*pending, calls, rounds)
        pending = (blocks, chunk) if blocks else None
        rounds.stop_reason = stop(rounds)
        if rounds.stop_reason or enqueued >= plan.max_rounds:
            break
    if pending is not None:
        _read(*pending, calls, rounds)  # measured, so kept: the stop rule only ends the loop
    rounds.stop_reason = rounds.stop_reason or "max-rounds"
    return rounds
