"""The timing engine: DESIGN.md measurement rules 1-7.

``measure`` warms up by time, then times iterations in chunks until both minimums are met and the
median's confidence interval is tight, or a maximum is reached. On CPU each iteration is bracketed by
``time.perf_counter_ns``; on CUDA by CUDA events on the caller's non-default stream, each ending one
sample and starting the next (a pair per call when the L2 is flushed between calls), with the host
enqueue time recorded separately. An event between two kernels costs the GPU about 2 us (measured on
an H100: a 49.7 us spin kernel times 51.7 us per call back to back, 53.5 us with an event after every
call), so calls shorter than ``EVENT_GPU_COST_S / MAX_EVENT_BIAS`` are timed in blocks of
``calls_per_sample`` calls per event, each sample being the block's mean. The per-iteration loop does nothing but the
call, the clock reads and an append; the stop rule runs between chunks of about ``CHECK_INTERVAL_S``.

Host time comes from one seam, a ``Clock`` (nanoseconds; ``time.perf_counter_ns`` unless ``measure``
or ``CudaApi`` is given another), so unit tests drive the loop with a fake clock and decide the same
on a quiet and a loaded host. A ``Deadline`` (the case's time bound, ``--trt-case-timeout``) is
checked between calls of the warm-up and between chunks of the timed loop; past it the loop stops and
raises ``CaseTimeout``. A call in progress cannot be interrupted, but no further call is made.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from itertools import repeat
from typing import Any, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from pytest_trt import cuda_events
from pytest_trt.cuda_events import EventPath
from pytest_trt.records import Stats, Timing
from pytest_trt.stats import median_ci_ranks, relative_ci_halfwidth, summarize, thin

NS = 1e-9

CHECK_INTERVAL_S = 0.02  # target duration of one chunk: the stop rule's granularity
MAX_CPU_CHUNK = 200_000  # iterations per chunk on CPU (a no-op call takes ~50 ns)
MAX_GPU_CHUNK = 1024  # iterations per chunk on CUDA
STAT_GROWTH = 1.25  # recompute the median CI only after the sample count grew by this factor
MAX_WARMUP_BATCH = 1024  # GPU warm-up calls between synchronizations
EVENT_GPU_COST_S = 2e-6  # GPU time one event record adds between two calls (H100, README-timer.md)
MAX_EVENT_BIAS = 0.0025  # auto blocks keep the events' share of a sample below this
MAX_CALLS_PER_SAMPLE = 64

Clock = Callable[[], int]  # nanoseconds from an arbitrary origin


def _now() -> int:
    """The default clock, looked up at each call (a test may replace this module's ``time``)."""
    return time.perf_counter_ns()


class CaseTimeout(Exception):
    """The case ran past its time bound; ``phase`` says where it was."""

    def __init__(self, phase: str, limit_s: float, elapsed_s: float) -> None:
        super().__init__(f"ran past its time bound of {limit_s:g} s (--trt-case-timeout) in phase {phase} "
                         f"after {elapsed_s:.1f} s")
        self.phase, self.limit_s, self.elapsed_s = phase, limit_s, elapsed_s


@dataclass(frozen=True)
class Deadline:
    """A case's time bound, on its own clock; ``limit_s`` None: unbounded."""

    limit_s: float | None
    start_ns: int
    clock: Clock = _now

    @classmethod
    def start(cls, limit_s: float | None, clock: Clock | None = None) -> Deadline:
        read = clock or _now
        return cls(limit_s if limit_s else None, read(), read)

    def elapsed_s(self) -> float:
        return (self.clock() - self.start_ns) * NS

    def expired(self) -> bool:
        return self.limit_s is not None and self.elapsed_s() >= self.limit_s

    def check(self, phase: str) -> None:
        """Raise ``CaseTimeout`` once the bound has passed: called before work that may be skipped."""
        if self.limit_s is not None:
            elapsed = self.elapsed_s()
            if elapsed >= self.limit_s:
                raise CaseTimeout(phase, self.limit_s, elapsed)


NO_DEADLINE = Deadline(None, 0)

STOP_CONVERGED = "converged"
STOP_MIN_REACHED = "min-reached"
STOP_MAX_TIME = "max-time"
STOP_MAX_ITERATIONS = "max-iterations"
STOP_REASONS = (STOP_CONVERGED, STOP_MIN_REACHED, STOP_MAX_TIME, STOP_MAX_ITERATIONS)

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Budget:
    """How long to time one case. Minimums are met together; either maximum ends the loop."""

    warmup_s: float = 0.2  # warm up by time (trtexec --warmUp 200 ms); warm-up iterations dropped
    min_time_s: float = 1.0
    min_iterations: int = 10
    max_time_s: float = 10.0
    max_iterations: int = 1_000_000
    target_rel_ci: float = 0.01  # 0 disables early stop: stop as soon as the minimums are met
    keep_samples: int = 5000  # samples kept in the Timing record (evenly thinned beyond this)
    flush_l2: bool = False  # CUDA: evict the L2 before each timed iteration (triton do_bench's condition)
    calls_per_sample: int = 0  # CUDA: calls between two events; 0 = auto (1 unless calls are short)

    def __post_init__(self) -> None:
        for name in ("warmup_s", "min_time_s", "target_rel_ci"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not (isinstance(self.max_time_s, int | float) and math.isfinite(self.max_time_s)):
            raise ValueError(f"max_time_s must be a finite number of seconds, got {self.max_time_s!r}")
        if self.max_time_s <= 0:
            raise ValueError(f"max_time_s must be > 0, got {self.max_time_s!r}")
        if isinstance(self.calls_per_sample, bool) or not isinstance(self.calls_per_sample, int) \
                or self.calls_per_sample < 0:
            raise ValueError(f"calls_per_sample must be an integer >= 0 (0: auto), got {self.calls_per_sample!r}")
        for name in ("min_iterations", "max_iterations", "keep_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.min_time_s > self.max_time_s:
            raise ValueError(f"min_time_s ({self.min_time_s}) must not exceed max_time_s ({self.max_time_s})")
        if self.min_iterations > self.max_iterations:
            raise ValueError(
                f"min_iterations ({self.min_iterations}) must not exceed "
                f"max_iterations ({self.max_iterations})"
            )


class _Samples:
    """Growable int64 nanosecond buffer: chunks are appended between timed loops, never inside."""

    def __init__(self) -> None:
        self._data: IntArray = np.empty(4096, dtype=np.int64)
        self.n = 0

    def extend(self, values: IntArray) -> None:
        need = self.n + values.size
        if need > self._data.size:
            grown = np.empty(max(need, 2 * self._data.size), dtype=np.int64)
            grown[: self.n] = self._data[: self.n]
            self._data = grown
        self._data[self.n : need] = values
        self.n = need

    def view(self) -> IntArray:
        return self._data[: self.n]

    def seconds(self) -> FloatArray:
        return self.view().astype(np.float64) * NS


class _StopRule:
    """Rule 2: both minimums, then early stop on a tight median CI, else a maximum."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._next_stat_n = 0
        median_ci_ranks(1)  # imports scipy.stats (about a second, once) before any clock starts

    def __call__(self, samples: _Samples, submitted: int, elapsed_s: float) -> str | None:
        b = self.budget
        n = samples.n
        if submitted >= b.max_iterations:  # never below the minimum: max_iterations >= min_iterations
            return STOP_MAX_ITERATIONS
        if n < b.min_iterations:
            # Rule 2: max-time never cuts a case short of its minimum count (a 3-second UNet batch
            # stopped at 2 samples by a 1-second max-time had no median worth the name).
            return None
        if elapsed_s >= b.min_time_s:
            if b.target_rel_ci == 0:
                return STOP_MIN_REACHED
            if n >= self._next_stat_n:
                # O(n) each time, so only after the sample count grew geometrically.
                self._next_stat_n = math.ceil(n * STAT_GROWTH)
                if relative_ci_halfwidth(samples.view()) <= b.target_rel_ci:
                    return STOP_CONVERGED
        if elapsed_s >= b.max_time_s:
            return STOP_MAX_TIME
        return None


def _next_chunk(per_call_s: float, cap: int, previous: int) -> int:
    """Iterations for the next chunk: about CHECK_INTERVAL_S of work, growing at most 8x at a time."""
    if per_call_s <= 0:
        return min(cap, max(1, previous * 8))
    want = int(CHECK_INTERVAL_S / per_call_s)
    return max(1, min(cap, want, max(1, previous) * 8))


def _check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")


# ---------------------------------------------------------------------------------------- CPU


def _warmup_limit_ns(budget: Budget) -> int:
    """Warm-up by time, never longer than the measurement itself may take (--trt-warmup above
    --trt-max-time would otherwise warm up past every bound the user set)."""
    return int(min(budget.warmup_s, budget.max_time_s) / NS)


def _warm_up_cpu(fn: Callable[[], object], budget: Budget, clock: Clock, deadline: Deadline) -> tuple[int, float]:
    """Call ``fn`` until the warm-up time has passed; returns (calls, seconds). No calls for 0 s."""
    limit = _warmup_limit_ns(budget)
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
    stop = _StopRule(budget)
    warm_calls, warm_s = _warm_up_cpu(fn, budget, clock, deadline)
    samples = _Samples()
    chunk = _next_chunk(warm_s / warm_calls if warm_calls else 0.0, MAX_CPU_CHUNK, 0)
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
        chunk = _next_chunk((stamps[-1] - stamps[0]) * NS / k, MAX_CPU_CHUNK, k)
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


# --------------------------------------------------------------------------------------- CUDA


class CudaEvent(Protocol):
    """The part of ``torch.cuda.Event`` the engine uses."""

    def record(self, stream: Any = None) -> None: ...

    def synchronize(self) -> None: ...

    def elapsed_time(self, end_event: Any) -> float: ...  # milliseconds


@dataclass(frozen=True)
class CudaApi:
    """The seam to CUDA: real in ``measure``; unit tests on CPU hosts pass a named fake.

    ``recorder(stream)`` returns the ``EventPath`` the loop records and reads events through
    (None: torch's). ``make_flush()`` returns a call that evicts the L2 cache on the current stream.
    """

    make_event: Callable[[], CudaEvent]
    stream_context: Callable[[Any], AbstractContextManager[Any]]
    is_default_stream: Callable[[Any], bool]
    recorder: Callable[[Any], EventPath] | None = None
    make_flush: Callable[[], Callable[[], object]] | None = None
    name: str = "torch"  # which event path the loop uses, for reports
    # make_hold(seconds) returns a call that enqueues GPU work lasting about that long (a spin kernel),
    # so calls enqueued behind it reach the GPU with no host gaps between their kernels.
    make_hold: Callable[[float], Callable[[], object]] | None = None
    clock: Clock | None = None  # host time (enqueue cost, wall time); None: time.perf_counter_ns


def torch_cuda_api(stream: Any = None) -> CudaApi:
    """The real seam. With ``stream``, the fastest event path that self-tests on this host."""
    import torch

    def is_default(s: Any) -> bool:
        return bool(s == torch.cuda.default_stream(s.device))

    def make_flush() -> Callable[[], object]:
        # Larger than any L2 so far, as triton's do_bench (256 MB) does; zeroing it evicts the cache.
        props = torch.cuda.get_device_properties(torch.cuda.current_device())
        size = max(256 * 2**20, 2 * int(getattr(props, "L2_cache_size", 0) or 0))
        buffer = torch.empty(size, dtype=torch.int8, device="cuda")
        return buffer.zero_

    event: Any = torch.cuda.Event  # untyped constructor in torch's stubs

    def make_event() -> CudaEvent:
        made: CudaEvent = event(enable_timing=True)
        return made

    path = cuda_events.best_path(stream, make_event) if stream is not None else cuda_events.torch_path
    return CudaApi(
        make_event=make_event,
        stream_context=torch.cuda.stream,
        is_default_stream=is_default,
        recorder=path,
        make_flush=make_flush,
        name=path(stream).name if stream is not None else "torch",
        make_hold=_spin_hold(make_event) if hasattr(torch.cuda, "_sleep") else None,
    )


def _spin_hold(make_event: Callable[[], CudaEvent]) -> Callable[[float], Callable[[], object]]:
    """Holds built on ``torch.cuda._sleep`` (a spin kernel of N cycles), calibrated once per device."""
    import torch

    spin: Callable[[int], object] = torch.cuda._sleep  # private and untyped, but in torch for years
    rate: list[float] = []  # cycles per second of the spin kernel, measured on first use

    def make_hold(seconds: float) -> Callable[[], object]:
        if not rate:
            cycles = 20_000_000
            start, end = make_event(), make_event()
            start.record()
            spin(cycles)
            end.record()
            end.synchronize()
            rate.append(cycles / max(start.elapsed_time(end) * 1e-3, 1e-6))
        cycles = max(1, int(seconds * rate[0]))
        return lambda: spin(cycles)

    return make_hold


class _EventPool:
    """Events, their handles and bound recorders, made in whole chunks outside the timed loop and reused."""

    def __init__(self, make_event: Callable[[], CudaEvent], path: EventPath) -> None:
        self._make, self._mark, self._bind = make_event, path.mark, cuda_events.binder(path)
        self._free: list[_Marked] = []

    def take(self, k: int) -> list[_Marked]:
        while len(self._free) < k:
            made = self._make()
            handle = self._mark(made)
            self._free.append(_Marked(made, handle, self._bind(handle)))
        taken, self._free = self._free[:k], self._free[k:]
        return taken

    def give(self, events: list[_Marked]) -> None:
        self._free.extend(events)


class _Marked(NamedTuple):
    event: CudaEvent
    handle: Any  # what the path's reader takes
    record: Callable[[], object]  # records this event on the timed stream


def _read_ns(events: list[_Marked], paired: bool, read: cuda_events.Reader, calls: int = 1) -> IntArray:
    """Wait for the chunk's last event, then read each sample's GPU time per call (ms → ns).

    Shared boundaries: k samples between k + 1 events. Paired: (start, end) per sample.
    """
    events[-1].event.synchronize()
    points = [m.handle for m in events]
    starts, ends = (points[0::2], points[1::2]) if paired else (points[:-1], points[1:])
    return np.rint(read(starts, ends) * (1e6 / calls)).astype(np.int64)


def _warm_up_gpu(fn: Callable[[], object], budget: Budget, stream: Any, clock: Clock,
                 deadline: Deadline) -> tuple[int, float]:
    """Warm up by synchronized wall time, in doubling batches so the queue never runs dry."""
    limit = _warmup_limit_ns(budget)
    if limit <= 0:
        return 0, 0.0
    stream.synchronize()
    start = clock()
    calls, batch = 0, 1
    while True:
        deadline.check("measure (warm-up)")
        for _ in repeat(None, batch):
            fn()
        calls += batch
        stream.synchronize()
        elapsed = clock() - start
        if elapsed >= limit:
            return calls, elapsed * NS
        batch = min(2 * batch, MAX_WARMUP_BATCH)


Recorder = Callable[[], object]  # records one event on the timed stream


def calls_per_sample(per_call_s: float, budget: Budget) -> int:
    """Calls between two events: the budget's, else enough that the event's GPU cost stays small.

    Cold L2 always times one call per event pair (the flush must precede each call), as do_bench does.
    """
    if budget.flush_l2:
        return 1
    if budget.calls_per_sample:
        return budget.calls_per_sample
    if per_call_s <= 0:  # no warm-up estimate
        return 1
    wanted = math.ceil(EVENT_GPU_COST_S / (MAX_EVENT_BIAS * per_call_s))
    return max(1, min(MAX_CALLS_PER_SAMPLE, wanted))


def _enqueue_shared(fn: Callable[[], object], records: list[Recorder], enqueue: list[int], calls: int,
                    clock: Clock) -> None:
    """The warm timed loop: one event per sample of ``calls`` calls, each ending one sample and
    starting the next.

    The chunk opens with its own event, so host work between chunks never lands in a sample.
    """
    append = enqueue.append
    records[0]()
    if calls == 1:  # its own loop: an inner loop of one call would add to the measured per-call host cost
        for record in records[1:]:
            t0 = clock()
            fn()
            t1 = clock()
            record()
            append(t1 - t0)
        return
    for record in records[1:]:
        t0 = clock()
        for _ in repeat(None, calls):
            fn()
        t1 = clock()
        record()
        append(t1 - t0)


def _enqueue_cold(fn: Callable[[], object], records: list[Recorder], enqueue: list[int],
                  flush: Callable[[], object], clock: Clock) -> None:
    """The cold-L2 loop: flush, then an event pair around the call (the flush stays outside)."""
    append = enqueue.append
    pairs = iter(records)
    for start, end in zip(pairs, pairs):
        flush()
        start()
        t0 = clock()
        fn()
        t1 = clock()
        end()
        append(t1 - t0)


def measure_events(
    fn: Callable[[], object], *, batch_size: int, budget: Budget, stream: Any, api: CudaApi,
    deadline: Deadline = NO_DEADLINE,
) -> Timing:
    """The CUDA path of ``measure`` through an explicit ``api`` seam.

    Chunks are double-buffered: chunk i+1 is enqueued before chunk i's events are read, so the GPU
    queue never drains between chunks; the only full synchronizations are at both ends of the loop.
    """
    _check_batch_size(batch_size)
    if stream is None or api.is_default_stream(stream):
        raise ValueError("stream must be a non-default torch.cuda.Stream (DESIGN.md rule 3)")
    if budget.flush_l2 and api.make_flush is None:
        raise ValueError("flush_l2 needs an api with make_flush")
    clock = api.clock or _now
    with api.stream_context(stream):
        path = (api.recorder or cuda_events.torch_path)(stream)
        loop = _EventLoop(fn, budget, stream, api, path, clock)
        try:
            warm_calls, warm_s = _warm_up_gpu(loop.timed, budget, stream, clock, deadline)
            reason = loop.run(warm_s / warm_calls if warm_calls else 0.0, deadline)
        except CaseTimeout:
            stream.synchronize()  # what was queued finishes here, not inside the next case
            raise
        seconds, calls = loop.samples.seconds(), loop.calls
        backlog = None
        if loop.flush is None and not deadline.expired():  # a nicety: skipped past the case's bound
            backlog = backlog_probe(fn, api, loop.pool, loop.read, stream, float(np.median(seconds)),
                                    float(np.median(loop.enqueue.seconds())), batch_size)
    return Timing(
        clock="cuda-event-cold-l2" if budget.flush_l2 else "cuda-event",
        samples=thin(seconds, budget.keep_samples),
        stats=summarize(seconds, batch_size, loop.wall_s, calls_per_sample=calls),
        warmup_iterations=warm_calls,
        warmup_s=warm_s,
        wall_s=loop.wall_s,
        stop_reason=reason,
        enqueue=summarize(loop.enqueue.seconds(), batch_size, loop.wall_s, calls_per_sample=calls),
        calls_per_sample=calls,
        gpu_compute=backlog[0] if backlog else None,
        launch=backlog[1] if backlog else None,
    )


class _EventLoop:
    """The timed loop of the CUDA path: chunks of event-bracketed calls until the stop rule says so."""

    def __init__(self, fn: Callable[[], object], budget: Budget, stream: Any, api: CudaApi, path: EventPath,
                 clock: Clock) -> None:
        self.fn, self.budget, self.stream, self.clock = fn, budget, stream, clock
        self.read = cuda_events.reader(path)
        self.flush = api.make_flush() if budget.flush_l2 and api.make_flush else None
        self.timed = fn if self.flush is None else _flushed(fn, self.flush)
        self.pool = _EventPool(api.make_event, path)
        self.samples, self.enqueue = _Samples(), _Samples()
        self.calls, self.wall_s = 1, 0.0

    def run(self, per_call: float, deadline: Deadline) -> str:
        budget, cold, stream, clock = self.budget, self.flush is not None, self.stream, self.clock
        stop = _StopRule(budget)
        self.calls = calls = calls_per_sample(per_call, budget)
        chunk = _next_chunk(per_call * calls, MAX_GPU_CHUNK, 0)
        pending: list[_Marked] = []
        submitted = 0
        reason = None
        stream.synchronize()
        begin = clock()
        while reason is None:
            deadline.check(f"measure (timed loop, {self.samples.n} samples)")
            k = max(1, min(chunk, (budget.max_iterations - submitted) // calls))
            events = self.pool.take(2 * k if cold else k + 1)
            host: list[int] = []
            records = [m.record for m in events]
            if self.flush is None:
                _enqueue_shared(self.fn, records, host, calls, clock)
            else:
                _enqueue_cold(self.fn, records, host, self.flush, clock)
            submitted += k * calls
            host_ns = np.rint(np.array(host, dtype=np.float64) / calls).astype(np.int64)
            self.enqueue.extend(host_ns)
            per_sample = float(host_ns.mean()) * calls
            if pending:
                done = _read_ns(pending, cold, self.read, calls)
                self.samples.extend(done)
                self.pool.give(pending)
                per_sample = max(float(done.mean()) * calls, per_sample)
            chunk = _next_chunk(per_sample * NS, MAX_GPU_CHUNK, k)
            pending = events
            reason = stop(self.samples, submitted, (clock() - begin) * NS)
        stream.synchronize()
        self.wall_s = (clock() - begin) * NS
        self.samples.extend(_read_ns(pending, cold, self.read, calls))
        self.pool.give(pending)
        return reason


PROBE_GPU_S = 0.05  # GPU time the backlog probe's calls aim to fill
MAX_HOLD_S = 0.5


def backlog_probe(
    fn: Callable[[], object], api: CudaApi, pool: _EventPool, read: cuda_events.Reader, stream: Any,
    per_call_s: float, enqueue_s: float, batch_size: int,
) -> tuple[Stats, Stats] | None:
    """Each call's GPU time with no host gaps inside it, and its pure launch cost on the host.

    Back-to-back events time a host-bound call as the host's pace (the GPU waits between kernels),
    so they cannot say whether the host or the GPU is the bottleneck. Here a spin kernel holds the
    stream while a few calls are enqueued behind it, each between its own pair of events. A call
    whose every kernel was queued before the GPU reached it runs with no host gaps, so its pair
    times the call's own work, and the host time of its enqueue is the launch cost without waiting.
    Calls queued after the hold ran out, or behind a full launch queue (which blocks the host until
    the GPU drains it), are left out. trtexec's rule then reads: the host is the bottleneck when
    launch > 0.8 x GPU compute. None when no call was queued in time.
    """
    if api.make_hold is None:
        return None
    calls = max(3, min(16, math.ceil(PROBE_GPU_S / max(per_call_s, 1e-6))))
    hold = api.make_hold(min(MAX_HOLD_S, max(0.002, 2 * calls * enqueue_s)))
    clock = api.clock or _now
    events = pool.take(2 * calls + 1)  # the hold's start, then a (start, end) pair per call
    events[0].record()
    begin = clock()
    hold()
    host: list[int] = []
    queued: list[int] = []  # when each call was wholly queued, from the hold's enqueue (host ns)
    for start, end in zip(events[1::2], events[2::2]):
        start.record()
        t0 = clock()
        fn()
        t1 = clock()
        end.record()
        host.append(t1 - t0)
        queued.append(t1 - begin)
    stream.synchronize()
    handles = [m.handle for m in events]
    reached = read([handles[0]] * calls, handles[1::2]) * 1e6  # GPU ns from the hold to each call
    gpu = read(handles[1::2], handles[2::2]) * 1e6
    pool.give(events)
    alone = reached >= np.asarray(queued, dtype=np.float64)
    if not alone.any():
        return None
    compute = gpu[alone] * NS
    wall = max(float(compute.sum()), NS)
    launch = np.asarray(host, dtype=np.float64)[alone] * NS
    return summarize(compute, batch_size, wall), summarize(launch, batch_size, wall)


def _flushed(fn: Callable[[], object], flush: Callable[[], object]) -> Callable[[], None]:
    def run() -> None:
        flush()
        fn()

    return run


# ------------------------------------------------------------------------------------ public


def measure(
    fn: Callable[[], object], *, batch_size: int, budget: Budget = Budget(), stream: Any = None,
    clock: Clock | None = None, deadline: Deadline = NO_DEADLINE,
) -> Timing:
    """Time ``fn`` (one inference of ``batch_size`` items) under ``budget``.

    ``stream`` None: host timing with ``clock`` (default ``time.perf_counter_ns``). A non-default
    ``torch.cuda.Stream``: CUDA events on that stream, ``fn`` enqueued under it, host enqueue time
    reported as ``Timing.enqueue``. Past ``deadline`` the loop stops with ``CaseTimeout``.
    """
    _check_batch_size(batch_size)
    if stream is None:
        return _measure_cpu(fn, batch_size, budget, clock or _now, deadline)
    api = cuda_api(stream)
    if clock is not None:
        api = replace(api, clock=clock)
    return measure_events(fn, batch_size=batch_size, budget=budget, stream=stream, api=api, deadline=deadline)


_APIS: dict[int, CudaApi] = {}


def cuda_api(stream: Any) -> CudaApi:
    """The real seam for ``stream``, self-tested once per device and reused."""
    device = int(getattr(stream.device, "index", 0) or 0)
    if device not in _APIS:
        _APIS[device] = torch_cuda_api(stream)
    return _APIS[device]


def measure_throughput(
    fn: Callable[[], object], *, batch_size: int, iterations: int, stream: Any = None, clock: Clock | None = None
) -> float:
    """Items per second of ``iterations`` back-to-back calls with one synchronization at the end (rule 5).

    Does not warm up: call it after ``measure`` (or warm up yourself).
    """
    _check_batch_size(batch_size)
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    read = clock or _now
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


def transfer_split_events(
    h2d: Callable[[], object],
    compute: Callable[[], object],
    d2h: Callable[[], object],
    stream: Any,
    iterations: int,
    api: CudaApi,
) -> dict[str, float]:
    """``transfer_split`` through an explicit ``api`` seam."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1, got {iterations!r}")
    if stream is None or api.is_default_stream(stream):
        raise ValueError("stream must be a non-default torch.cuda.Stream (DESIGN.md rule 3)")
    marks = [[api.make_event() for _ in range(4)] for _ in range(iterations)]
    with api.stream_context(stream):
        for e0, e1, e2, e3 in marks:
            e0.record(stream)
            h2d()
            e1.record(stream)
            compute()
            e2.record(stream)
            d2h()
            e3.record(stream)
        stream.synchronize()
    ms = np.array([[m[i].elapsed_time(m[i + 1]) for i in range(3)] for m in marks], dtype=np.float64)
    h2d_ms, compute_ms, d2h_ms = (float(x) for x in np.median(ms, axis=0))
    return {"h2d_s": h2d_ms * 1e-3, "compute_s": compute_ms * 1e-3, "d2h_s": d2h_ms * 1e-3}


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
