"""The CUDA path of the timing engine: CUDA events on the caller's non-default stream.

Each event ends one sample and starts the next (a pair per call when the L2 is flushed between
calls), with the host enqueue time recorded separately. An event between two kernels costs the GPU
about 2 us (measured on an H100: a 49.7 us spin kernel times 51.7 us per call back to back, 53.5 us
with an event after every call; lab/results/README-timer.md), so calls shorter than
``EVENT_GPU_COST_S / MAX_EVENT_BIAS`` are timed in blocks of ``calls_per_sample`` calls per event,
each sample being the block's mean. After the loop the backlog probe times a few calls queued behind
a spin kernel, which tells a host-bound call from a GPU-bound one (docs/design.md, rule 7).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from itertools import repeat
from typing import Any, NamedTuple, Protocol

import numpy as np

from pytest_trt import cuda_events
from pytest_trt.cuda_events import EventPath
from pytest_trt.records import Stats, Timing
from pytest_trt.sampling import (
    NO_DEADLINE,
    NS,
    Budget,
    CaseTimeout,
    Clock,
    Deadline,
    IntArray,
    Samples,
    StopRule,
    check_batch_size,
    next_chunk,
    now,
    warmup_limit_ns,
)
from pytest_trt.stats import summarize, thin

MAX_GPU_CHUNK = 1024  # iterations per chunk on CUDA
MAX_WARMUP_BATCH = 1024  # GPU warm-up calls between synchronizations
EVENT_GPU_COST_S = 2e-6  # GPU time one event record adds between two calls (H100, lab/results/README-timer.md)
MAX_EVENT_BIAS = 0.0025  # auto blocks keep the events' share of a sample below this
MAX_CALLS_PER_SAMPLE = 64

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
    limit = warmup_limit_ns(budget)
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
    _check_call(batch_size, budget, stream, api)
    clock = api.clock or now
    with api.stream_context(stream):
        path = (api.recorder or cuda_events.torch_path)(stream)
        loop = _EventLoop(fn, budget, stream, api, path, clock)
        try:
            warm_calls, warm_s = _warm_up_gpu(loop.timed, budget, stream, clock, deadline)
            reason = loop.run(warm_s / warm_calls if warm_calls else 0.0, deadline)
        except CaseTimeout:
            stream.synchronize()  # what was queued finishes here, not inside the next case
            raise
        backlog = None
        if loop.flush is None and not deadline.expired():  # a nicety: skipped past the case's bound
            backlog = backlog_probe(fn, api, loop.pool, loop.read, stream, float(np.median(loop.samples.seconds())),
                                    float(np.median(loop.enqueue.seconds())), batch_size)
    return loop.timing(batch_size, warm_calls, warm_s, reason, backlog)


def _check_call(batch_size: int, budget: Budget, stream: Any, api: CudaApi) -> None:
    check_batch_size(batch_size)
    if stream is None or api.is_default_stream(stream):
        raise ValueError("stream must be a non-default torch.cuda.Stream (docs/design.md, rule 3)")
    if budget.flush_l2 and api.make_flush is None:
        raise ValueError("flush_l2 needs an api with make_flush")


class _EventLoop:
    """The timed loop of the CUDA path: chunks of event-bracketed calls until the stop rule says so."""

    def __init__(self, fn: Callable[[], object], budget: Budget, stream: Any, api: CudaApi, path: EventPath,
                 clock: Clock) -> None:
        self.fn, self.budget, self.stream, self.clock = fn, budget, stream, clock
        self.read = cuda_events.reader(path)
        self.flush = api.make_flush() if budget.flush_l2 and api.make_flush else None
        self.timed = fn if self.flush is None else _flushed(fn, self.flush)
        self.pool = _EventPool(api.make_event, path)
        self.samples, self.enqueue = Samples(), Samples()
        self.calls, self.wall_s = 1, 0.0

    def timing(self, batch_size: int, warm_calls: int, warm_s: float, reason: str,
               backlog: tuple[Stats, Stats] | None) -> Timing:
        """The record of a finished loop; ``backlog`` is the probe's (GPU compute, launch), if any."""
        seconds, calls, budget = self.samples.seconds(), self.calls, self.budget
        return Timing(
            clock="cuda-event-cold-l2" if budget.flush_l2 else "cuda-event",
            samples=thin(seconds, budget.keep_samples),
            stats=summarize(seconds, batch_size, self.wall_s, calls_per_sample=calls),
            warmup_iterations=warm_calls,
            warmup_s=warm_s,
            wall_s=self.wall_s,
            stop_reason=reason,
            enqueue=summarize(self.enqueue.seconds(), batch_size, self.wall_s, calls_per_sample=calls),
            calls_per_sample=calls,
            gpu_compute=backlog[0] if backlog else None,
            launch=backlog[1] if backlog else None,
        )

    def run(self, per_call: float, deadline: Deadline) -> str:
        budget, cold, stream, clock = self.budget, self.flush is not None, self.stream, self.clock
        stop = StopRule(budget)
        self.calls = calls = calls_per_sample(per_call, budget)
        chunk = next_chunk(per_call * calls, MAX_GPU_CHUNK, 0)
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
            chunk = next_chunk(per_sample * NS, MAX_GPU_CHUNK, k)
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
    clock = api.clock or now
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


_APIS: dict[int, CudaApi] = {}


def cuda_api(stream: Any) -> CudaApi:
    """The real seam for ``stream``, self-tested once per device and reused."""
    device = int(getattr(stream.device, "index", 0) or 0)
    if device not in _APIS:
        _APIS[device] = torch_cuda_api(stream)
    return _APIS[device]


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
        raise ValueError("stream must be a non-default torch.cuda.Stream (docs/design.md, rule 3)")
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
