"""The timing engine: budget rules on CPU, the CUDA event path through a fake, real GPU checks."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from pytest_trt.cuda_events import EventPath
from pytest_trt.stats import thin
from pytest_trt.timing import (
    CHECK_INTERVAL_S,
    MAX_CALLS_PER_SAMPLE,
    STOP_CONVERGED,
    STOP_MAX_ITERATIONS,
    STOP_MAX_TIME,
    STOP_MIN_REACHED,
    Budget,
    CaseTimeout,
    CudaApi,
    Deadline,
    calls_per_sample,
    measure,
    measure_events,
    measure_throughput,
    transfer_split_events,
)


class FakeClock:
    """A host clock in nanoseconds that only the code under test moves: a fake call advances it by
    its duration, so every assertion on time holds on a quiet and on a loaded host alike."""

    def __init__(self, tick_ns: int = 0) -> None:
        self.now = 0
        self.tick_ns = tick_ns  # what one reading costs (0: readings are free)

    def __call__(self) -> int:
        self.now += self.tick_ns
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)

    def call(self, seconds: float) -> Callable[[], None]:
        """A callable that takes ``seconds`` of this clock's time."""
        return lambda: self.advance(seconds)


def _timed(clock: FakeClock, fn: Callable[[], Any]) -> tuple[Any, float]:
    start = clock.now
    result = fn()
    return result, (clock.now - start) * 1e-9


# ------------------------------------------------------------------------------------ Budget


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_time_s": 2.0, "max_time_s": 1.0}, r"min_time_s \(2.0\) must not exceed max_time_s \(1.0\)"),
        (
            {"min_iterations": 50, "max_iterations": 10},
            r"min_iterations \(50\) must not exceed max_iterations",
        ),
        ({"warmup_s": -0.1}, "warmup_s must be a finite number >= 0"),
        ({"max_time_s": 0.0}, "max_time_s must be > 0"),
        ({"max_time_s": math.inf}, "max_time_s must be a finite number"),
        ({"min_iterations": 0}, "min_iterations must be an integer >= 1"),
        ({"keep_samples": 0}, "keep_samples must be an integer >= 1"),
        ({"target_rel_ci": -0.01}, "target_rel_ci must be a finite number >= 0"),
    ],
)
def test_budget_rejects_bad_fields(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Budget(**kwargs)


def test_measure_rejects_bad_batch_size() -> None:
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        measure(lambda: None, batch_size=0)


# --------------------------------------------------------------------------------------- CPU


def test_warmup_iterations_are_dropped() -> None:
    clock = FakeClock()
    calls = 0

    def slow_start() -> None:
        nonlocal calls
        calls += 1
        clock.advance(0.02 if calls <= 3 else 2e-5)

    budget = Budget(warmup_s=0.1, min_time_s=0.05, max_time_s=0.5, target_rel_ci=0)
    t = measure(slow_start, batch_size=1, budget=budget, clock=clock)
    assert t.warmup_iterations == 3 + 2000  # 60 ms of slow calls, then 40 ms of 20 us ones
    assert t.warmup_s == pytest.approx(0.1)
    assert t.stats.max == pytest.approx(2e-5)  # none of the 20 ms calls is a sample
    assert t.stats.n + t.warmup_iterations == calls


def test_warmup_never_runs_past_max_time() -> None:
    clock = FakeClock()
    budget = Budget(warmup_s=30.0, min_time_s=0.1, max_time_s=2.0, min_iterations=1, target_rel_ci=0)
    t = measure(clock.call(0.1), batch_size=1, budget=budget, clock=clock)
    assert t.warmup_iterations == 20 and t.warmup_s == pytest.approx(2.0)


def test_both_minimums_hold_time_bound() -> None:
    clock = FakeClock()
    budget = Budget(warmup_s=0.01, min_time_s=0.2, min_iterations=10, max_time_s=2.0, target_rel_ci=0)
    t, elapsed = _timed(clock, lambda: measure(clock.call(2e-5), batch_size=1, budget=budget, clock=clock))
    assert t.stop_reason == STOP_MIN_REACHED
    assert elapsed >= 0.2 + 0.01
    assert t.stats.n >= 10_000  # 0.2 s of 20 us calls: time, not the count of 10, decided


def test_both_minimums_hold_iteration_bound() -> None:
    clock = FakeClock()
    budget = Budget(warmup_s=0.0, min_time_s=0.01, min_iterations=60, max_time_s=5.0, target_rel_ci=0)
    t = measure(clock.call(0.002), batch_size=1, budget=budget, clock=clock)
    assert t.stop_reason == STOP_MIN_REACHED
    assert t.stats.n >= 60
    assert t.warmup_iterations == 0


def test_max_time_never_cuts_a_case_short_of_its_minimum_count() -> None:
    clock = FakeClock()
    budget = Budget(warmup_s=0.0, min_time_s=0.01, min_iterations=5, max_time_s=0.05, target_rel_ci=0)
    t = measure(clock.call(0.03), batch_size=1, budget=budget, clock=clock)
    assert t.stats.n == 5 and t.stop_reason == STOP_MIN_REACHED


def test_max_time_bounds_a_callable_that_never_converges() -> None:
    clock = FakeClock()
    rng = np.random.default_rng(0)
    budget = Budget(warmup_s=0.0, min_time_s=0.05, max_time_s=0.3, target_rel_ci=1e-9)
    t, elapsed = _timed(clock, lambda: measure(lambda: clock.advance(float(rng.uniform(0, 4e-3))), batch_size=1,
                                               budget=budget, clock=clock))
    assert t.stop_reason == STOP_MAX_TIME
    # a chunk is ~CHECK_INTERVAL_S of calls, so the loop ends less than two chunks past the limit
    assert 0.3 <= elapsed < 0.3 + 2 * CHECK_INTERVAL_S + 4e-3


def test_max_iterations_is_exact() -> None:
    clock = FakeClock()
    budget = Budget(warmup_s=0.0, min_time_s=1.0, min_iterations=5, max_time_s=5.0, max_iterations=37)
    t = measure(clock.call(1e-6), batch_size=1, budget=budget, clock=clock)
    assert t.stop_reason == STOP_MAX_ITERATIONS
    assert t.stats.n == 37


def test_early_stop_on_a_stable_callable_but_not_before_min_time() -> None:
    clock = FakeClock()
    rng = np.random.default_rng(2)
    budget = Budget(warmup_s=0.02, min_time_s=0.3, max_time_s=5.0, target_rel_ci=0.01)
    t, elapsed = _timed(clock, lambda: measure(lambda: clock.advance(2e-4 * (1 + 0.01 * rng.random())),
                                               batch_size=1, budget=budget, clock=clock))
    assert t.stop_reason == STOP_CONVERGED
    assert 0.3 <= elapsed < 0.3 + 0.02 + 2 * CHECK_INTERVAL_S
    assert t.stats.median == pytest.approx(2.01e-4, rel=0.01)


def test_no_early_stop_on_a_noisy_callable() -> None:
    # Half the calls take ~0, half 2 ms: the median's CI spans both modes and never tightens.
    clock = FakeClock()
    rng = np.random.default_rng(1)

    def noisy() -> None:
        clock.advance(2e-3 if rng.random() < 0.5 else 1e-7)

    budget = Budget(warmup_s=0.0, min_time_s=0.05, max_time_s=0.4, target_rel_ci=0.01)
    t = measure(noisy, batch_size=1, budget=budget, clock=clock)
    assert t.stop_reason == STOP_MAX_TIME


def test_samples_are_thinned_evenly_and_stats_use_all() -> None:
    clock = FakeClock()
    budget = Budget(warmup_s=0.0, min_time_s=0.05, max_time_s=1.0, target_rel_ci=0, keep_samples=100)
    t = measure(clock.call(1e-6), batch_size=4, budget=budget, clock=clock)
    assert len(t.samples) == 100
    assert t.stats.n >= 50_000
    assert t.stats.throughput == pytest.approx(4 * t.stats.n / t.wall_s)
    assert thin(np.arange(1000.0), 10) == [
        0.0,
        111.0,
        222.0,
        333.0,
        444.0,
        555.0,
        666.0,
        777.0,
        888.0,
        999.0,
    ]


def test_cpu_samples_track_the_callable() -> None:
    clock = FakeClock(tick_ns=50)  # each reading of the clock costs 50 ns, as a real one does
    budget = Budget(warmup_s=0.01, min_time_s=0.1, max_time_s=1.0, target_rel_ci=0)
    t = measure(clock.call(1e-3), batch_size=1, budget=budget, clock=clock)
    assert t.clock == "perf_counter"
    assert t.enqueue is None
    assert t.stats.median == pytest.approx(1e-3 + 50e-9)  # the call and one reading
    assert t.wall_s == pytest.approx(sum(t.samples), rel=1e-6)  # back-to-back, nothing kept out


def test_the_default_clock_is_read_at_each_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a clock, measure reads ``sampling.time.perf_counter_ns`` when it runs: a conftest may
    replace it (the gate's acceptance tests do), and real host time is what a user's run measures."""
    import types

    import pytest_trt.sampling
    import pytest_trt.timing as timing_mod

    ticks = iter(range(0, 10**12, 1_000_000))  # every reading one millisecond after the last
    monkeypatch.setattr(pytest_trt.sampling, "time", types.SimpleNamespace(perf_counter_ns=lambda: next(ticks)))
    budget = Budget(warmup_s=0.0, min_time_s=0.0, min_iterations=3, max_iterations=3, target_rel_ci=0)
    t = timing_mod.measure(lambda: None, batch_size=1, budget=budget)
    assert t.stats.n == 3 and t.stats.median == pytest.approx(1e-3)


def test_measure_throughput_cpu() -> None:
    clock = FakeClock()
    items_per_s = measure_throughput(clock.call(1e-3), batch_size=8, iterations=50, clock=clock)
    assert items_per_s == pytest.approx(8 / 1e-3)


# -- the case's time bound -------------------------------------------------------------------------


def test_a_one_second_call_stops_at_the_case_deadline_not_after_its_minimum_count() -> None:
    """1 s per call under --trt-max-time 2 with 10 minimum iterations took 12 s; past its deadline the
    loop stops between calls and says where it was."""
    clock = FakeClock()
    calls = []

    def one_second() -> None:
        calls.append(clock.now)
        clock.advance(1.0)

    budget = Budget(warmup_s=0.2, min_time_s=1.0, max_time_s=2.0, min_iterations=10)
    deadline = Deadline.start(4.5, clock)
    with pytest.raises(CaseTimeout, match=r"time bound of 4.5 s .* in phase measure \(timed loop, 4 samples\) "
                                          r"after 5.0 s") as info:
        measure(one_second, batch_size=1, budget=budget, clock=clock, deadline=deadline)
    assert len(calls) == 5  # the warm-up call and four timed ones: none after the bound had passed
    assert info.value.phase.startswith("measure (timed loop")


def test_the_warm_up_stops_at_the_case_deadline() -> None:
    clock = FakeClock()
    budget = Budget(warmup_s=5.0, min_time_s=1.0, max_time_s=5.0)
    with pytest.raises(CaseTimeout, match="in phase measure \\(warm-up\\)"):
        measure(clock.call(0.4), batch_size=1, budget=budget, clock=clock, deadline=Deadline.start(1.0, clock))
    assert clock.now == round(1.2e9)  # three calls of 0.4 s: the third ended past the bound


def test_no_deadline_and_a_zero_deadline_never_expire() -> None:
    clock = FakeClock()
    for deadline in (Deadline.start(None, clock), Deadline.start(0, clock)):
        clock.advance(1e6)
        assert not deadline.expired()
        deadline.check("anywhere")


# ------------------------------------------------------------------- CUDA path through a fake


class FakeStream:
    """Fake of a torch.cuda.Stream: a virtual device timeline that kernels advance when enqueued."""

    def __init__(self) -> None:
        self.device_ns = 0
        self.syncs = 0

    def launch(self, ns: int) -> None:
        self.device_ns += ns

    def synchronize(self) -> None:
        self.syncs += 1


class FakeEvent:
    """Fake of a timing torch.cuda.Event: stamps the stream's virtual device time when recorded."""

    waits = 0
    created = 0

    def __init__(self) -> None:
        FakeEvent.created += 1
        self.stamp: int | None = None

    def record(self, stream: Any = None) -> None:
        assert isinstance(stream, FakeStream), "events must be recorded on the measuring stream"
        self.stamp = stream.device_ns

    def synchronize(self) -> None:
        FakeEvent.waits += 1

    def elapsed_time(self, end_event: Any) -> float:
        assert self.stamp is not None and end_event.stamp is not None
        return float(end_event.stamp - self.stamp) / 1e6


class FakeCuda:
    """Fake of the torch.cuda seam, remembering which stream is current."""

    def __init__(self, default: bool = False) -> None:
        self.current: FakeStream | None = None
        self.default = default
        FakeEvent.waits = FakeEvent.created = 0

    @contextmanager
    def stream_context(self, stream: Any) -> Iterator[None]:
        self.current = stream
        try:
            yield
        finally:
            self.current = None

    def api(self) -> CudaApi:
        return CudaApi(
            make_event=FakeEvent, stream_context=self.stream_context, is_default_stream=lambda s: self.default
        )


def _kernel_ns(k: int) -> int:
    """Virtual GPU time of the k-th call: 1 s for the first three (cold), then a 7-step pattern."""
    return 1_000_000_000 if k < 3 else (k % 7 + 1) * 10_000


def test_events_path_samples_are_the_device_times_in_order() -> None:
    cuda, stream, clock = FakeCuda(), FakeStream(), FakeClock()
    calls = 0

    def fn() -> None:
        nonlocal calls
        assert cuda.current is stream, "fn must run under the measuring stream"
        stream.launch(_kernel_ns(calls))
        calls += 1
        clock.advance(2e-5)  # host enqueue cost

    budget = Budget(warmup_s=0.01, min_time_s=0.0, min_iterations=500, max_iterations=500, target_rel_ci=0,
                    calls_per_sample=1)
    t = measure_events(fn, batch_size=2, budget=budget, stream=stream, api=replace(cuda.api(), clock=clock))
    w = t.warmup_iterations
    assert w == 511  # doubling batches (1, 2, ..., 256) until 10 ms of 20 us launches had passed
    assert t.clock == "cuda-event"
    assert t.stats.n == 500 and calls == w + 500
    assert t.samples == pytest.approx([_kernel_ns(k) * 1e-9 for k in range(w, w + 500)])
    assert t.enqueue is not None and t.enqueue.n == 500
    assert t.enqueue.median == pytest.approx(2e-5)
    assert t.stats.throughput == pytest.approx(2 * 500 / t.wall_s)


def test_events_path_stops_at_the_case_deadline() -> None:
    cuda, stream, clock = FakeCuda(), FakeStream(), FakeClock()
    calls = 0

    def fn() -> None:
        nonlocal calls
        calls += 1
        stream.launch(1_000_000_000)
        clock.advance(1.0)  # a call that holds the host for its whole second (a synchronizing runner)

    budget = Budget(warmup_s=0.2, min_time_s=1.0, max_time_s=2.0, min_iterations=10, calls_per_sample=1)
    api = replace(cuda.api(), clock=clock)
    with pytest.raises(CaseTimeout, match="timed loop"):
        measure_events(fn, batch_size=1, budget=budget, stream=stream, api=api, deadline=Deadline.start(3.5, clock))
    assert calls == 4 and stream.syncs >= 3  # and what was queued is waited for before the case ends


def test_short_calls_are_timed_in_blocks_so_the_events_gpu_cost_stays_small() -> None:
    assert calls_per_sample(50e-6, Budget()) == 16  # 2 us per event over 16 x 50 us: 0.25 %
    assert calls_per_sample(1e-3, Budget()) == 1
    assert calls_per_sample(1e-7, Budget()) == MAX_CALLS_PER_SAMPLE
    assert calls_per_sample(0.0, Budget()) == 1  # no warm-up estimate: per call
    assert calls_per_sample(50e-6, Budget(flush_l2=True)) == 1  # cold: a pair per call, as do_bench
    assert calls_per_sample(1e-3, Budget(calls_per_sample=8)) == 8
    with pytest.raises(ValueError, match="calls_per_sample"):
        Budget(calls_per_sample=-1)


def test_a_block_sample_is_the_mean_call_and_throughput_counts_every_call() -> None:
    cuda, stream = FakeCuda(), FakeStream()
    calls = 0

    def fn() -> None:
        nonlocal calls
        stream.launch(10_000 if calls % 2 else 30_000)  # alternating calls: a block of 4 averages 20 us
        calls += 1

    budget = Budget(warmup_s=0.0, min_time_s=0.0, min_iterations=100, max_iterations=400, target_rel_ci=0,
                    calls_per_sample=4)
    t = measure_events(fn, batch_size=3, budget=budget, stream=stream, api=cuda.api())
    assert t.calls_per_sample == 4 and t.stats.n == 100 and calls == 400
    assert t.samples == pytest.approx([20e-6] * 100)
    assert t.enqueue is not None and t.enqueue.n == 100
    assert t.stats.throughput == pytest.approx(3 * 400 / t.wall_s)


def test_events_path_synchronizes_per_chunk_not_per_iteration() -> None:
    cuda, stream = FakeCuda(), FakeStream()
    budget = Budget(warmup_s=0.0, min_time_s=0.0, min_iterations=3000, max_iterations=3000, target_rel_ci=0)
    t = measure_events(
        lambda: stream.launch(5_000), batch_size=1, budget=budget, stream=stream, api=cuda.api()
    )
    assert t.stats.n == 3000
    assert t.stats.median == pytest.approx(5e-6)
    assert stream.syncs == 2  # both ends of the measured loop only (no warm-up here)
    assert FakeEvent.waits < 3000 / 50  # one wait per chunk
    assert FakeEvent.created < 2 * 3000  # event pairs are reused across chunks


def test_events_path_rejects_the_default_stream() -> None:
    with pytest.raises(ValueError, match="non-default torch.cuda.Stream"):
        measure_events(
            lambda: None, batch_size=1, budget=Budget(), stream=FakeStream(), api=FakeCuda(True).api()
        )
    with pytest.raises(ValueError, match="non-default torch.cuda.Stream"):
        measure_events(lambda: None, batch_size=1, budget=Budget(), stream=None, api=FakeCuda().api())


def test_transfer_split_reads_each_segment() -> None:
    cuda, stream = FakeCuda(), FakeStream()
    split = transfer_split_events(
        lambda: stream.launch(3_000),
        lambda: stream.launch(10_000),
        lambda: stream.launch(5_000),
        stream,
        iterations=5,
        api=cuda.api(),
    )
    assert split == pytest.approx({"h2d_s": 3e-6, "compute_s": 1e-5, "d2h_s": 5e-6})
    assert all(type(v) is float for v in split.values())  # plain floats for the JSON results


# ------------------------------------------------------------------------------ real CUDA GPU


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


needs_gpu = pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU")
# Timing checks against known kernel durations need the GPU to themselves: xdist workers share it.
alone_on_gpu = pytest.mark.skipif(
    int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1, reason="GPU timing check needs the GPU alone (no -n)"
)


@needs_gpu
@alone_on_gpu
def test_gpu_events_match_a_sleep_kernel() -> None:
    import torch

    cuda: Any = torch.cuda  # torch.cuda's constructors and _sleep are untyped
    cycles = 1_000_000
    stream = cuda.Stream()
    with cuda.stream(stream):
        cuda._sleep(cycles)  # warm the kernel
        pairs = [(cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)) for _ in range(20)]
        for start, end in pairs:
            start.record(stream)
            cuda._sleep(cycles)
            end.record(stream)
    stream.synchronize()
    reference = float(np.median([s.elapsed_time(e) for s, e in pairs])) * 1e-3

    budget = Budget(warmup_s=0.05, min_time_s=0.2, max_time_s=2.0)
    t = measure(lambda: cuda._sleep(cycles), batch_size=1, budget=budget, stream=stream)
    assert t.clock == "cuda-event"
    assert t.stats.median == pytest.approx(reference, rel=0.1)
    assert t.enqueue is not None and 0 < t.enqueue.median < t.stats.median
    assert measure_throughput(
        lambda: cuda._sleep(cycles), batch_size=1, iterations=50, stream=stream
    ) == pytest.approx(1 / t.stats.median, rel=0.2)


@needs_gpu
@alone_on_gpu
def test_gpu_cold_l2_and_the_event_paths_agree_on_a_sleep_kernel() -> None:
    """Every event path (libcuda via ctypes, cuda-bindings where installed, torch) and the cold-L2
    loop time a fixed-cycle kernel alike; a sleep kernel touches no memory, so flushing must not
    change it."""
    import importlib.util

    import torch

    from pytest_trt import cuda_events
    from pytest_trt.timing import cuda_api, measure_events, torch_cuda_api

    cuda: Any = torch.cuda
    stream = cuda.Stream()
    make_event = lambda: cuda.Event(enable_timing=True)  # noqa: E731
    assert cuda_events.works(cuda_events.libcuda_path(stream), stream, make_event), "libcuda path failed"
    if importlib.util.find_spec("cuda.bindings") is not None:
        assert cuda_events.works(cuda_events.bindings_path(stream), stream, make_event), "cuda-bindings failed"
    has_bindings = importlib.util.find_spec("cuda.bindings") is not None
    assert cuda_api(stream).name == ("cuda-bindings" if has_bindings else "libcuda")
    budget = Budget(warmup_s=0.05, min_time_s=0.2, max_time_s=2.0)
    fn = lambda: cuda._sleep(500_000)  # noqa: E731
    plain = measure_events(fn, batch_size=1, budget=budget, stream=stream,
                           api=replace(torch_cuda_api(), recorder=None))
    for factory in cuda_events.PATHS:
        if factory is cuda_events.bindings_path and importlib.util.find_spec("cuda.bindings") is None:
            continue
        api = replace(torch_cuda_api(), recorder=factory)
        raw = measure_events(fn, batch_size=1, budget=budget, stream=stream, api=api)
        assert raw.stats.median == pytest.approx(plain.stats.median, rel=0.05), factory.__name__
    cold = measure(fn, batch_size=1, budget=replace(budget, flush_l2=True), stream=stream)
    assert cold.clock == "cuda-event-cold-l2"
    assert cold.stats.median == pytest.approx(plain.stats.median, rel=0.05)


@needs_gpu
def test_gpu_transfer_split() -> None:
    import torch

    from pytest_trt.timing import transfer_split

    cuda: Any = torch.cuda
    stream = cuda.Stream()
    host = torch.randn(4096, 4096).pin_memory()
    device = torch.empty_like(host, device="cuda")
    back = torch.empty_like(host).pin_memory()
    split = transfer_split(
        lambda: device.copy_(host, non_blocking=True),
        lambda: torch.mm(device, device),
        lambda: back.copy_(device, non_blocking=True),
        stream,
        iterations=5,
    )
    assert set(split) == {"h2d_s", "compute_s", "d2h_s"}
    assert all(v > 0 for v in split.values())


def test_cold_l2_flushes_before_each_call_outside_the_timed_interval() -> None:
    cuda, stream = FakeCuda(), FakeStream()
    flushes = 0

    def flush() -> None:
        nonlocal flushes
        flushes += 1
        stream.launch(1_000_000)  # a long flush kernel: must not show in any sample

    api = replace(cuda.api(), make_flush=lambda: flush)
    budget = Budget(warmup_s=0.0, min_time_s=0.0, min_iterations=300, max_iterations=300, target_rel_ci=0,
                    flush_l2=True)
    t = measure_events(lambda: stream.launch(7_000), batch_size=1, budget=budget, stream=stream, api=api)
    assert t.clock == "cuda-event-cold-l2"
    assert t.stats.n == 300 and flushes == 300
    assert t.samples == pytest.approx([7e-6] * 300)


def test_cold_l2_needs_a_flush() -> None:
    cuda, stream = FakeCuda(), FakeStream()
    with pytest.raises(ValueError, match="make_flush"):
        measure_events(lambda: None, batch_size=1, budget=Budget(flush_l2=True), stream=stream, api=cuda.api())


def test_a_custom_recorder_records_every_event_through_its_marks() -> None:
    """The cuda-bindings path hands raw handles to its record call; the loop must use only those."""
    cuda, stream = FakeCuda(), FakeStream()
    recorded: list[int] = []

    def recorder(s: Any) -> EventPath:
        def mark(event: Any) -> Any:
            return event  # stands for a raw handle

        def record(handle: Any) -> None:
            recorded.append(id(handle))
            handle.record(s)

        return EventPath(mark, record, lambda start, end: start.elapsed_time(end), "fake-raw")

    api = replace(cuda.api(), recorder=recorder)
    budget = Budget(warmup_s=0.0, min_time_s=0.0, min_iterations=200, max_iterations=200, target_rel_ci=0)
    t = measure_events(lambda: stream.launch(3_000), batch_size=1, budget=budget, stream=stream, api=api)
    assert t.samples == pytest.approx([3e-6] * 200)
    assert len(recorded) >= 201  # one per call, plus one opening each chunk


def test_cold_l2_keeps_one_call_per_event_pair_even_when_a_block_is_asked_for() -> None:
    """The flush must precede every call, so a block of calls cannot share one pair of events."""
    assert calls_per_sample(1e-3, Budget(flush_l2=True, calls_per_sample=8)) == 1


def _held_api(cuda: FakeCuda, stream: FakeStream) -> CudaApi:
    """The fake seam with a hold: a spin kernel of ``seconds`` on the virtual device timeline."""

    def make_hold(seconds: float) -> Callable[[], object]:
        return lambda: stream.launch(int(seconds * 1e9))

    return replace(cuda.api(), make_hold=make_hold)


def test_backlog_probe_times_each_call_alone_behind_a_held_stream() -> None:
    cuda, stream = FakeCuda(), FakeStream()
    calls = 0

    def fn() -> None:  # the GPU part of a call: 40 us the first 7 calls' pattern, then 30 us
        nonlocal calls
        stream.launch(40_000 if calls % 2 else 20_000)
        calls += 1

    budget = Budget(warmup_s=0.0, min_time_s=0.0, min_iterations=200, max_iterations=200, target_rel_ci=0,
                    calls_per_sample=1)
    t = measure_events(fn, batch_size=1, budget=budget, stream=stream, api=_held_api(cuda, stream))
    assert t.gpu_compute is not None and t.launch is not None
    assert 3 <= t.gpu_compute.n <= 16 and calls == 200 + t.gpu_compute.n  # the probe's own calls
    assert set(np.round(np.array([t.gpu_compute.min, t.gpu_compute.max]) * 1e9)) <= {20_000.0, 40_000.0}
    assert t.launch.n == t.gpu_compute.n


def test_without_a_hold_there_is_no_probe() -> None:
    cuda, stream = FakeCuda(), FakeStream()
    budget = Budget(warmup_s=0.0, min_time_s=0.0, min_iterations=50, max_iterations=50, target_rel_ci=0)
    t = measure_events(lambda: stream.launch(5_000), batch_size=1, budget=budget, stream=stream, api=cuda.api())
    assert t.gpu_compute is None and t.launch is None


@needs_gpu
@alone_on_gpu
def test_gpu_backlog_probe_tells_a_host_bound_call_from_a_gpu_bound_one() -> None:
    """Back-to-back events read both calls at the host's pace or the kernel's; the probe's launch
    cost against GPU compute says which one sets it."""
    import torch

    from pytest_trt.stats import flags

    cuda: Any = torch.cuda
    stream = cuda.Stream()
    x = torch.zeros(16, device="cuda")

    def many_tiny_kernels() -> None:  # ~100 launches of next to no GPU work: host-bound
        for _ in range(100):
            x.add_(1.0)

    budget = Budget(warmup_s=0.05, min_time_s=0.2, max_time_s=2.0)
    host_bound = measure(many_tiny_kernels, batch_size=1, budget=budget, stream=stream)
    assert host_bound.gpu_compute is not None and host_bound.launch is not None
    assert host_bound.gpu_compute.median < 0.8 * host_bound.stats.median  # events read the host's pace
    assert "ENQUEUE-BOUND" in flags(host_bound)
    gpu_bound = measure(lambda: cuda._sleep(2_000_000), batch_size=1, budget=budget, stream=stream)
    assert gpu_bound.gpu_compute is not None
    assert gpu_bound.gpu_compute.median == pytest.approx(gpu_bound.stats.median, rel=0.05)
    assert "ENQUEUE-BOUND" not in flags(gpu_bound)
