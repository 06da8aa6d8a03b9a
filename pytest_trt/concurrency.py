"""Concurrency: N independent execution contexts of one case driven at once (``--trt-streams``).

Each stream is its own runner (its own ONNX Runtime session, torch module copy and CUDA stream, or
TensorRT execution context of the shared engine) driven by its own thread, back to back, as Triton's
perf_analyzer drives a model at a fixed concurrency. A request is one call with its answer on the
host (``run`` then ``to_host``), timed by the thread that made it. The window the stop rule ends is
measured from the end of the warm-up; requests that *finish* inside it count, so its throughput has
no edge bias, and per-request latencies are pooled over the streams (docs/design.md, "Concurrency").

Threads share no mutable state: each writes its own stamps list (one append per request, atomic
under the GIL and under free-threaded CPython's per-list locks) and the monitor only reads them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from pytest_trt.backends.base import Runner
from pytest_trt.case import Case
from pytest_trt.jsontypes import JSONDict, as_dict, as_list, as_number
from pytest_trt.latency import Stats, Timing
from pytest_trt.sampling import (
    CHECK_INTERVAL_S,
    NO_DEADLINE,
    STAT_GROWTH,
    STOP_CONVERGED,
    STOP_MAX_ITERATIONS,
    STOP_MAX_TIME,
    STOP_MIN_REACHED,
    Budget,
    Clock,
    Deadline,
    now,
)
from pytest_trt.stats import median_ci_ranks, relative_ci_halfwidth, summarize, thin

CLOCK = "perf_counter-requests"  # per request on the host, all streams pooled: not the network's clock
STREAM_SEED_OFFSET = 100  # stream i's inputs: spec seed + offset + i (other inputs than check and timing)
WARM_REQUESTS = 2  # per stream, finished on its own thread before the window opens
NS = 1e-9

Request = Callable[[], object]


class StreamError(RuntimeError):
    """A stream's request raised; the message names the stream and keeps the cause's own text
    (so an out-of-memory error still reads as one)."""


@dataclass(frozen=True)
class Concurrency:
    """What a case measured with ``streams`` contexts at once.

    ``latency`` is per request, pooled over the streams (median = p50, p90, p99); its ``throughput``
    is the aggregate: items of every request that finished in the window over the window.
    """

    streams: int
    latency: Stats
    requests: list[int]  # requests finished in the window, per stream
    wall_s: float
    made_by: str  # "spawn": the runner's own (a TensorRT execution context); "runner": a new runner each
    stop_reason: str = ""

    @property
    def throughput(self) -> float:
        return self.latency.throughput

    def to_dict(self) -> JSONDict:
        from dataclasses import asdict

        data: JSONDict = {"streams": self.streams, "latency": dict(asdict(self.latency)),
                          "requests": list(self.requests), "wall_s": self.wall_s, "made_by": self.made_by,
                          "stop_reason": self.stop_reason}
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> Concurrency:
        return cls(
            streams=int(as_number(data["streams"])),
            latency=Stats.from_dict(as_dict(data["latency"])),
            requests=[int(as_number(r)) for r in as_list(data.get("requests") or [])],
            wall_s=as_number(data.get("wall_s", 0.0)),
            made_by=str(data.get("made_by", "")),
            stop_reason=str(data.get("stop_reason", "")),
        )


def streams_unsupported(case: Case) -> str | None:
    """Why ``case.streams`` contexts cannot run side by side on its backend, or None."""
    if case.backend == "torch-compile":
        return ("torch-compile runs one stream: dynamo keeps one compiled-code cache per process and each "
                "new compiled runner resets it, so compiled copies cannot run side by side")
    return None


# -- the streams' runners -----------------------------------------------------------------------


def open_runners(first: Runner, count: int, make: Callable[[], Runner]) -> tuple[list[Runner], str]:
    """``first`` and ``count - 1`` independent, prepared runners of the same case.

    A runner with a ``spawn()`` method makes its own siblings (TensorRT: another execution context
    of the loaded engine, with its own CUDA stream and buffers); otherwise ``make()`` builds a new
    runner of the case's backend (a session, or a module copy, of its own). Either way no two
    streams may share a runner or a CUDA stream: that would be shared mutable state.
    """
    spawn = getattr(first, "spawn", None)
    made_by = "spawn" if callable(spawn) else "runner"
    runners: list[Runner] = [first]
    try:
        for _ in range(count - 1):
            if callable(spawn):
                runners.append(spawn())
                continue
            runner = make()
            runners.append(runner)  # listed before prepare(), so a failed prepare is closed too
            runner.prepare()
        _check_independent(runners)
    except BaseException:
        close_runners(runners[1:])
        raise
    return runners, made_by


def _check_independent(runners: Sequence[Runner]) -> None:
    for i, runner in enumerate(runners):
        for j in range(i):
            other = runners[j]
            if runner is other:
                raise RuntimeError(f"stream {i} got the runner of stream {j}: every stream needs its own")
            if runner.stream is not None and runner.stream is other.stream:
                raise RuntimeError(f"stream {i} shares its CUDA stream with stream {j}")


def close_runners(runners: Sequence[Runner]) -> None:
    """Close every runner, the first failure raised after all were tried."""
    failure: BaseException | None = None
    for runner in runners:
        try:
            runner.close()
        except Exception as exc:  # one runner failing to close must not leak the others
            failure = failure or exc
    if failure is not None:
        raise failure


# -- the measured loop --------------------------------------------------------------------------


@dataclass
class Lane:
    """One stream: its request, the context its thread enters (a CUDA stream), and what only its
    own thread writes: (start, end) nanoseconds per finished request, or the error it raised."""

    request: Request
    context: Callable[[], AbstractContextManager[object]] = nullcontext
    stamps: list[tuple[int, int]] = field(default_factory=list)
    error: BaseException | None = None


def _drive(lane: Lane, stop: threading.Event, clock: Clock) -> None:
    append, request = lane.stamps.append, lane.request
    try:
        with lane.context():
            while not stop.is_set():
                t0 = clock()
                request()
                append((t0, clock()))  # one append: the monitor never sees half a request
    except BaseException as exc:  # recorded for the main thread, which re-raises it
        lane.error = exc
        stop.set()


class _Window:
    """Incremental view of the lanes' requests that finished in ``(begin, end]``: the monitor reads
    only what is new since its last look, so its cost per poll follows the request rate, not the
    run's length (it shares the GIL with the streams it measures)."""

    def __init__(self, lanes: Sequence[Lane], begin: int) -> None:
        self.lanes, self.begin, self.end = lanes, begin, begin
        self.seen = [0] * len(lanes)
        self.counts = [0] * len(lanes)
        self.latencies: list[int] = []
        self.dropped = 0  # finished before the window opened: warm-up

    def update(self, end: int) -> None:
        self.end = end
        for i, lane in enumerate(self.lanes):
            stamps, j = lane.stamps, self.seen[i]
            while j < len(stamps):
                t0, t1 = stamps[j]
                if t1 > end:  # a lane's requests finish in order: nothing after this one is in yet
                    break
                if t1 <= self.begin:
                    self.dropped += 1
                else:
                    self.counts[i] += 1
                    self.latencies.append(t1 - t0)
                j += 1
            self.seen[i] = j


class _Rule:
    """Rule 2 over all streams: every stream has its minimum count and the minimum time has passed;
    then a tight median CI of the pooled latencies, else the maximum time."""

    def __init__(self, budget: Budget) -> None:
        self.budget, self._next_stat = budget, 0
        median_ci_ranks(1)  # imports scipy.stats (a second or more) before any thread starts, not mid-window

    def __call__(self, window: _Window, elapsed_s: float) -> str | None:
        b = self.budget
        if sum(window.counts) >= b.max_iterations:
            return STOP_MAX_ITERATIONS
        if min(window.counts) < b.min_iterations:
            return None  # never cut below the minimum, in any stream
        if elapsed_s >= b.min_time_s:
            if b.target_rel_ci == 0:
                return STOP_MIN_REACHED
            n = len(window.latencies)
            if n >= self._next_stat:
                self._next_stat = int(n * STAT_GROWTH) + 1
                if relative_ci_halfwidth(np.asarray(window.latencies, dtype=np.float64)) <= b.target_rel_ci:
                    return STOP_CONVERGED
        return STOP_MAX_TIME if elapsed_s >= b.max_time_s else None


@dataclass(frozen=True)
class Measured:
    timing: Timing  # per request, pooled: what a case with several streams is gated on
    requests: list[int]


def run_lanes(lanes: Sequence[Lane], *, batch_size: int, budget: Budget, clock: Clock = now,
              sleep: Callable[[float], None] = time.sleep, poll_s: float = CHECK_INTERVAL_S,
              deadline: Deadline = NO_DEADLINE) -> Measured:
    """Drive every lane from its own thread until the stop rule ends the window, then summarize it.

    All lanes warm up together for ``budget.warmup_s`` and until each has finished
    ``WARM_REQUESTS`` requests on its own thread (what finishes then is dropped), so the window
    opens on a steady state rather than on N first calls at once: a thread's first call can pay for
    per-thread set-up that the case's own warm-up, on another thread, never saw (on an H100,
    ResNet-50's first request on a new thread took 1.4 s against 6 ms after it:
    lab/results/README-pipeline.md). Past ``deadline`` the monitor stops every stream (each
    finishes the request it is in) and raises ``CaseTimeout``.
    """
    if not lanes:
        raise ValueError("run_lanes needs at least one lane")
    stop, rule = threading.Event(), _Rule(budget)
    threads = [threading.Thread(target=_drive, args=(lane, stop, clock), name=f"pytest-trt-stream-{i}", daemon=True)
               for i, lane in enumerate(lanes)]
    for thread in threads:
        thread.start()
    try:
        start = clock()
        while not stop.is_set() and not _warm(lanes, (clock() - start) * NS, budget.warmup_s):
            deadline.check("streams (warm-up)")
            sleep(poll_s)
        window, reason = _Window(lanes, clock()), None
        end = window.begin
        while reason is None and not stop.is_set():
            deadline.check(f"streams (window, {len(window.latencies)} requests)")
            sleep(poll_s)
            end = clock()
            window.update(end)
            reason = rule(window, (end - window.begin) * NS)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    _raise_first_error(lanes)
    window.update(end)  # requests that finished just before the window closed
    return Measured(window_timing(window, batch_size, budget, reason or STOP_MAX_TIME, (window.begin - start) * NS),
                    list(window.counts))


def _warm(lanes: Sequence[Lane], elapsed_s: float, warmup_s: float) -> bool:
    """Whether the warm-up is over: its time has passed and every stream has its warm requests."""
    return elapsed_s >= warmup_s and min(len(lane.stamps) for lane in lanes) >= WARM_REQUESTS


def _raise_first_error(lanes: Sequence[Lane]) -> None:
    for i, lane in enumerate(lanes):
        if lane.error is not None:
            error = lane.error
            raise StreamError(f"stream {i + 1} of {len(lanes)}: {type(error).__name__}: {error}") from error


def window_timing(window: _Window, batch_size: int, budget: Budget, reason: str, warmup_s: float) -> Timing:
    """The window's pooled per-request latencies and its aggregate throughput as a ``Timing``."""
    if not window.latencies:
        raise RuntimeError("no request finished inside the measured window")
    seconds = np.asarray(window.latencies, dtype=np.float64) * NS
    wall_s = max(window.end - window.begin, 1) * NS
    return Timing(clock=CLOCK, samples=thin(seconds, budget.keep_samples),
                  stats=summarize(seconds, batch_size, wall_s), warmup_iterations=window.dropped,
                  warmup_s=warmup_s, wall_s=wall_s, stop_reason=reason)
