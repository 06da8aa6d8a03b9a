"""The streams harness: its window, stop rule, threads and errors, on a virtual clock (no wall time)."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from pytest_trt import concurrency
from pytest_trt.case import Case
from pytest_trt.concurrency import Lane, StreamError, _Window, open_runners, run_lanes, window_timing
from pytest_trt.fixtures import is_oom
from pytest_trt.timing import STOP_REASONS, Budget, CaseTimeout, Deadline


class VirtualClock:
    """Nanoseconds that move only when read (by ``step``) or advanced: the harness's only clock."""

    def __init__(self, step_ns: int = 1_000) -> None:
        self._lock = threading.Lock()
        self.now, self.step = 0, step_ns

    def __call__(self) -> int:
        with self._lock:
            self.now += self.step
            return self.now

    def advance(self, ns: int) -> None:
        with self._lock:
            self.now += ns


def _yield(_: float) -> None:
    time.sleep(0.0002)  # let the stream threads run between the monitor's looks; asserts never read it


def _release() -> None:
    # A request that gives up the GIL, as inference calls do; one that never does starves the monitor,
    # which only makes the window longer (its end is read when it closes).
    time.sleep(0)


QUICK = Budget(warmup_s=0.0, min_time_s=0.002, max_time_s=0.01, min_iterations=5)


def test_every_stream_runs_on_its_own_thread_and_the_window_adds_up() -> None:
    clock = VirtualClock()
    threads: list[set[int]] = [set(), set(), set()]

    def request(i: int) -> Any:
        return lambda: (threads[i].add(threading.get_ident()), _release())

    measured = run_lanes([Lane(request(i)) for i in range(3)], batch_size=4, budget=QUICK, clock=clock, sleep=_yield)
    timing = measured.timing
    assert all(len(seen) == 1 for seen in threads) and len(set.union(*threads)) == 3  # one thread each
    assert len(measured.requests) == 3 and min(measured.requests) >= QUICK.min_iterations
    assert timing.stats.n == sum(measured.requests) and timing.clock == concurrency.CLOCK
    assert timing.stats.throughput == pytest.approx(4 * timing.stats.n / timing.wall_s)
    assert timing.stop_reason in STOP_REASONS and timing.wall_s >= QUICK.min_time_s
    assert not [t for t in threading.enumerate() if t.name.startswith("pytest-trt-stream")]  # all joined


def test_a_slow_stream_holds_the_window_open_until_it_has_its_minimum_too() -> None:
    clock = VirtualClock()
    slow = Lane(lambda: (clock.advance(1_000_000), _release()))  # each request takes a virtual millisecond
    fast = Lane(_release)
    budget = Budget(warmup_s=0.0, min_time_s=0.0001, max_time_s=0.0002, min_iterations=8)
    measured = run_lanes([fast, slow], batch_size=1, budget=budget, clock=clock, sleep=_yield)
    assert measured.requests[1] >= 8  # max-time never cuts a stream below its minimum
    assert measured.requests[0] >= 8


def test_warm_up_requests_are_dropped() -> None:
    clock = VirtualClock()
    budget = Budget(warmup_s=0.001, min_time_s=0.001, max_time_s=0.01, min_iterations=3)
    lane = Lane(lambda: (clock.advance(50_000), _release()))
    measured = run_lanes([lane], batch_size=1, budget=budget, clock=clock, sleep=_yield)
    finished_before = sum(1 for _, t1 in lane.stamps if t1 <= lane.stamps[0][0] + 1_000_000)
    assert measured.timing.warmup_iterations >= 1 and finished_before >= 1
    assert measured.timing.stats.n < len(lane.stamps)
    assert measured.timing.warmup_s >= budget.warmup_s


def test_each_streams_slow_first_requests_stay_in_the_warm_up_however_short_it_is() -> None:
    # A thread's first call can pay for per-thread set-up (seen on an H100: 1.4 s, then 6 ms a call);
    # a warm-up that is over before that call returns must not let it into the window.
    clock = VirtualClock()
    calls = [0, 0]

    def request(i: int) -> Any:
        def call() -> None:
            calls[i] += 1
            clock.advance(1_000_000_000 if calls[i] == 1 else 10_000)
            _release()
        return call

    budget = Budget(warmup_s=0.0, min_time_s=0.0001, max_time_s=0.001, min_iterations=3)
    measured = run_lanes([Lane(request(0)), Lane(request(1))], batch_size=1, budget=budget, clock=clock, sleep=_yield)
    assert measured.timing.stats.max < 0.5  # neither stream's 1 s first request is in the window
    assert measured.timing.warmup_iterations >= 2 * concurrency.WARM_REQUESTS


def _window(stamps: list[list[tuple[int, int]]], begin: int, end: int) -> _Window:
    window = _Window([Lane(lambda: None, stamps=list(s)) for s in stamps], begin)
    window.update(end)
    return window


def test_the_window_counts_requests_that_finish_inside_it() -> None:
    # begin 100, end 400: a request started in the warm-up that finishes inside counts; one
    # finishing after the end does not, and neither does anything finished before the start.
    window = _window([[(0, 50), (50, 150), (150, 250), (250, 450)], [(90, 390), (390, 401)]], 100, 400)
    assert window.counts == [2, 1] and window.dropped == 1
    assert sorted(window.latencies) == [100, 100, 300]
    timing = window_timing(window, 8, QUICK, "min-reached", 1e-7)
    assert timing.stats.n == 3 and timing.wall_s == pytest.approx(300e-9)
    assert timing.stats.throughput == pytest.approx(8 * 3 / 300e-9)  # items of finished requests over the window
    assert timing.stats.median == pytest.approx(100e-9) and timing.warmup_iterations == 1


def test_the_window_reads_only_what_is_new_and_waits_for_unfinished_requests() -> None:
    lane = Lane(lambda: None, stamps=[(0, 150), (150, 300)])
    window = _Window([lane], 100)
    window.update(200)
    assert window.counts == [1] and window.seen == [1]  # (150, 300) has not finished by 200
    lane.stamps.append((300, 350))
    window.update(400)
    assert window.counts == [3] and window.seen == [3] and len(window.latencies) == 3


def test_a_failing_stream_stops_all_and_is_raised_naming_it() -> None:
    calls = {"n": 0}

    def broken() -> None:
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    lanes = [Lane(_release), Lane(broken)]
    with pytest.raises(StreamError, match=r"stream 2 of 2: RuntimeError: CUDA out of memory") as caught:
        run_lanes(lanes, batch_size=1, budget=Budget(warmup_s=0.0, min_time_s=1.0, max_time_s=2.0),
                  clock=VirtualClock(), sleep=_yield)
    assert is_oom(caught.value)  # still an OOM state for the case
    assert not [t for t in threading.enumerate() if t.name.startswith("pytest-trt-stream")]


def test_past_the_case_timeout_every_stream_stops_and_the_case_times_out() -> None:
    clock = VirtualClock()
    deadline = Deadline.start(0.005, clock)  # 5 virtual ms; the window alone would run 2 s
    lanes = [Lane(lambda: (clock.advance(100_000), _release())) for _ in range(2)]
    # On a loaded host one thread can run 50 requests (the whole bound) before the other finishes its
    # second, so the bound may fall in the warm-up (each stream's two requests) as well as the window.
    phase = r"streams \((warm-up|window, \d+ requests)\)"
    with pytest.raises(CaseTimeout, match=rf"--trt-case-timeout\) in phase {phase}"):
        run_lanes(lanes, batch_size=1, budget=Budget(warmup_s=0.0, min_time_s=1.0, max_time_s=2.0),
                  clock=clock, sleep=_yield, deadline=deadline)
    assert not [t for t in threading.enumerate() if t.name.startswith("pytest-trt-stream")]  # all joined
    assert clock.now < 1_000_000_000  # stopped at the bound, not at the window's minimum time


def test_each_thread_enters_its_lanes_context() -> None:
    entered: list[tuple[str, int]] = []

    class Marker:
        def __init__(self, name: str) -> None:
            self.name = name

        def __enter__(self) -> None:
            entered.append((self.name, threading.get_ident()))

        def __exit__(self, *exc: object) -> None:
            return None

    lanes = [Lane(_release, lambda name=name: Marker(name)) for name in ("s0", "s1")]
    run_lanes(lanes, batch_size=1, budget=QUICK, clock=VirtualClock(), sleep=_yield)
    assert sorted(name for name, _ in entered) == ["s0", "s1"] and entered[0][1] != entered[1][1]
    assert threading.get_ident() not in {ident for _, ident in entered}


# -- the streams' runners -------------------------------------------------------------------------


class FakeRunner:
    made = 0

    def __init__(self, stream: object = None, fail_prepare: bool = False) -> None:
        FakeRunner.made += 1
        self.case = Case("m", "numpy", "fp32", 1, "cpu")
        self.stream, self.info = stream, {}
        self.prepared = self.closed = False
        self.fail_prepare = fail_prepare

    def prepare(self) -> None:
        if self.fail_prepare:
            raise RuntimeError("no memory for another session")
        self.prepared = True

    def load_inputs(self, host: np.ndarray) -> Any:
        return host

    def run(self, inputs: Any) -> Any:
        return inputs

    def to_host(self, outputs: Any) -> np.ndarray:
        return np.asarray(outputs)

    def close(self) -> None:
        self.closed = True


def test_streams_are_new_prepared_runners_unless_the_runner_spawns_its_own() -> None:
    first = FakeRunner()
    runners, made_by = open_runners(first, 3, FakeRunner)
    assert made_by == "runner" and runners[0] is first and len({id(r) for r in runners}) == 3
    assert all(r.prepared for r in runners[1:])

    class Spawning(FakeRunner):
        def spawn(self) -> FakeRunner:
            return FakeRunner(stream=object())

    runners, made_by = open_runners(Spawning(stream=object()), 4, lambda: pytest.fail("spawn, not make"))
    assert made_by == "spawn" and len({id(r.stream) for r in runners}) == 4


def test_a_stream_that_fails_to_open_closes_the_ones_made_before() -> None:
    made: list[FakeRunner] = []

    def make() -> FakeRunner:
        made.append(FakeRunner(fail_prepare=len(made) == 1))
        return made[-1]

    with pytest.raises(RuntimeError, match="no memory for another session"):
        open_runners(FakeRunner(), 3, make)
    assert [r.closed for r in made] == [True, True]  # the failed one too


def test_streams_sharing_a_runner_or_a_cuda_stream_are_refused() -> None:
    shared = object()
    first = FakeRunner(stream=shared)
    with pytest.raises(RuntimeError, match="stream 1 shares its CUDA stream with stream 0"):
        open_runners(first, 2, lambda: FakeRunner(stream=shared))

    class Lazy(FakeRunner):
        def spawn(self) -> FakeRunner:
            return self

    with pytest.raises(RuntimeError, match="stream 1 got the runner of stream 0"):
        open_runners(Lazy(), 2, FakeRunner)


def test_torch_compile_runs_one_stream_and_says_why() -> None:
    from pytest_trt import matrix

    assert "one stream" in (matrix.unsupported(Case("m", "torch-compile", "fp32", 1, "cpu", streams=2)) or "")
    assert matrix.unsupported(Case("m", "torch", "fp32", 1, "cpu", streams=4)) is None


def test_the_record_round_trips_and_older_results_have_none() -> None:
    from pytest_trt.records import CaseResult
    from pytest_trt.stats import summarize

    stats = summarize([1e-3, 2e-3, 3e-3], 8, 0.01)
    record = concurrency.Concurrency(4, stats, [10, 11, 9, 12], 1.5, "runner", "converged")
    result = CaseResult(Case("m", "onnxruntime", "fp32", 8, "cpu", streams=4), "t.py::t[x]", "m", concurrency=record)
    again = CaseResult.from_dict(result.to_dict())
    assert again.concurrency == record and again.case.streams == 4
    plain = CaseResult(Case("m", "onnxruntime", "fp32", 8, "cpu"), "t.py::t[y]", "m").to_dict()
    assert "concurrency" not in plain and "streams" not in plain["case"]  # files without streams look as before
    assert CaseResult.from_dict(plain).concurrency is None


# -- streams as a matrix dimension ----------------------------------------------------------------


def test_streams_are_a_dimension_whose_one_stream_ids_stay_as_they_were() -> None:
    from pytest_trt import matrix, settings

    assert Case("m", "torch", "fp32", 8, "cpu").id == "m-torch-fp32-bs8"
    assert Case("m", "torch", "fp32", 8, "cpu", streams=4).id == "m-torch-fp32-bs8-x4"
    assert Case.from_dict(Case("m", "onnxruntime", "fp32", 8, "cpu", streams=2).to_dict()).streams == 2
    planned = matrix.plan(settings.defaults(backends=("onnxruntime",), batch_sizes=(1,), streams=(1, 2, 4)),
                          "cpu", {})
    assert [p.case.id for p in planned] == ["onnxruntime-fp32-bs1", "onnxruntime-fp32-bs1-x2",
                                            "onnxruntime-fp32-bs1-x4"]
    marked = matrix.plan(settings.defaults(backends=("onnxruntime",), batch_sizes=(1,)), "cpu", {"streams": [8]})
    assert [p.case.streams for p in marked] == [8]
    with pytest.raises(ValueError, match="streams"):
        Case("m", "torch", "fp32", 8, "cpu", streams=0)


@pytest.mark.parametrize("text", ["0", "-1", "two", "1,65", "1.5", ""])
def test_bad_streams_name_the_option(text: str) -> None:
    from pytest_trt import settings

    with pytest.raises(pytest.UsageError, match="--trt-streams: invalid value"):
        settings.parse_streams(text)


def test_streams_keep_order_and_drop_duplicates() -> None:
    from pytest_trt import settings

    assert settings.parse_streams("1, 2,4,2") == (1, 2, 4)
