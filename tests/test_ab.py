"""A/B mode's plain parts: the interleaved rounds (fake clocks, a fake GPU), the statistic and the rule,
the records, naming the sides. No wall-clock time is asserted anywhere here."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from pytest_trt.ab import decide, interleave
from pytest_trt.ab.arms import BASELINE, Arm, ArmError, as_arm
from pytest_trt.ab.record import AbArm, AbProcess, AbResult
from pytest_trt.case import Case
from pytest_trt.records import CaseResult
from pytest_trt.sampling import CaseTimeout, Deadline
from pytest_trt.timing import CudaApi
from pytest_trt.verdict import Outcome


class VirtualClock:
    """A host clock that only the calls under test move (each call advances it by its cost)."""

    def __init__(self) -> None:
        self.ns = 0

    def __call__(self) -> int:
        self.ns += 1  # every reading moves: loops always progress
        return self.ns

    def call(self, cost_ns: int) -> Any:
        def run() -> None:
            self.ns += cost_ns

        return run


def plan(**changes: Any) -> interleave.Plan:
    base: dict[str, Any] = dict(warmup_s=0.001, min_time_s=0.05, max_time_s=0.2, min_rounds=20, block_s=0.001)
    return interleave.Plan(**(base | changes))


# ------------------------------------------------------------------------------------ CPU rounds


def test_cpu_rounds_measure_each_side_by_its_own_calls():
    clock = VirtualClock()
    rounds = interleave.interleave_cpu([clock.call(100_000), clock.call(105_000)], plan(), random.Random(1), clock)
    assert rounds.clock == "perf_counter" and rounds.calls == 10  # 1 ms blocks of 0.1 ms calls
    assert len(rounds.a) == len(rounds.b) >= 20
    assert all(math.isclose(b / a, 1.05, rel_tol=1e-4) for a, b in zip(rounds.a, rounds.b))
    assert rounds.wall_s >= 0.05  # the minimum time counts both sides' timed blocks
    assert rounds.stop_reason == "min-reached"


def test_cpu_rounds_on_the_process_clock_read_process_time_not_the_wall(monkeypatch):
    """``--trt-ab-clock cpu``: a call that another process's time slice interrupted is charged its
    own work only (the wall clock here jumps by 50 ms in every tenth call of B; the CPU clock does not)."""
    cpu, wall = VirtualClock(), VirtualClock()
    count = [0]

    def b() -> None:
        count[0] += 1
        cpu.ns += 105_000
        wall.ns += 105_000 + (50_000_000 if count[0] % 10 == 0 else 0)

    def a() -> None:
        cpu.ns += 100_000
        wall.ns += 100_000

    monkeypatch.setattr(interleave, "time", type("T", (), {"process_time_ns": staticmethod(cpu),
                                                           "perf_counter_ns": staticmethod(wall)}))
    rounds = interleave.interleave_cpu([a, b], plan(host_clock="process_time", calls=1), random.Random(2))
    assert rounds.clock == "process_time"
    assert all(math.isclose(y / x, 1.05, rel_tol=1e-4) for x, y in zip(rounds.a, rounds.b))
    with pytest.raises(ValueError, match="host_clock"):
        plan(host_clock="tsc")


def test_rounds_come_in_balanced_pairs_of_opposite_orders():
    clock = VirtualClock()
    rounds = interleave.interleave_cpu([clock.call(1000), clock.call(1000)], plan(min_rounds=200),
                                       random.Random(3), clock)
    pairs = list(zip(rounds.b_first[0::2], rounds.b_first[1::2]))
    assert all(first != second for first, second in pairs)
    assert 0.3 < sum(first for first, _ in pairs) / len(pairs) < 0.7  # which order opens a pair is random


def test_running_second_in_a_round_cancels_in_every_pair():
    """The side that runs second in a round pays 8 % (warmer or colder caches): A/A reads exactly 1."""
    clock = VirtualClock()
    position = [0]

    def side() -> None:
        clock.ns += 108_000 if position[0] % 2 else 100_000
        position[0] += 1

    # One call per block, and a warm-up of two calls per side, so every round starts at an even position.
    rounds = interleave.interleave_cpu([side, side], plan(calls=1, warmup_s=0), random.Random(5), clock)
    logs = rounds.log_ratios
    assert max(abs(x) for x in logs) > 0.07  # single rounds see it
    assert max(abs(x) for x in interleave.paired(logs)) < 1e-9  # no pair does


def test_following_the_other_side_leaves_no_bias():
    """The block after a switch pays 8 % (the other session's threads still spin): within a pair it
    cancels, across pairs it is symmetric noise, so the median pair reads A/A as 1."""
    clock = VirtualClock()
    last: list[str] = [""]

    def side(name: str) -> Any:
        def run() -> None:
            clock.ns += 108_000 if last[0] not in ("", name) else 100_000
            last[0] = name

        return run

    rounds = interleave.interleave_cpu([side("A"), side("B")], plan(block_s=0.0001, min_rounds=400),
                                       random.Random(5), clock)
    assert max(abs(x) for x in rounds.log_ratios) > 0.07
    assert decide.estimate(rounds).ratio == pytest.approx(1.0, abs=1e-9)


def test_a_block_is_its_median_call_so_a_lost_time_slice_does_not_move_it():
    clock = VirtualClock()
    calls = [0]

    def preempted() -> None:  # every 7th call the scheduler takes the CPU away for 4 ms
        calls[0] += 1
        clock.ns += 100_000 + (4_000_000 if calls[0] % 7 == 0 else 0)

    rounds = interleave.interleave_cpu([clock.call(100_000), preempted], plan(calls=10), random.Random(0), clock)
    assert decide.estimate(rounds).ratio == pytest.approx(1.0, rel=1e-3)


def test_blocks_are_sized_from_the_warm_calls_not_the_first():
    clock = VirtualClock()
    calls = [0]

    def cold_first() -> None:
        calls[0] += 1
        clock.ns += 500_000_000 if calls[0] == 1 else 100_000

    rounds = interleave.interleave_cpu([cold_first, clock.call(100_000)], plan(warmup_s=0.6), random.Random(0), clock)
    assert rounds.calls == 10


def test_rounds_stop_early_once_the_interval_is_narrow_and_never_before_the_minimums():
    clock = VirtualClock()
    narrow = interleave.interleave_cpu([clock.call(100_000), clock.call(100_000)],
                                       plan(min_time_s=0.05, max_time_s=100, target_halfwidth=0.01),
                                       random.Random(0), clock)
    assert narrow.stop_reason == "converged" and len(narrow.a) >= 20 and narrow.wall_s >= 0.05
    noisy_rng = random.Random(9)

    def noisy() -> None:
        clock.ns += int(100_000 * (1 + noisy_rng.uniform(-0.5, 0.5)))

    wide = interleave.interleave_cpu([clock.call(100_000), noisy], plan(calls=1, max_time_s=0.3, target_halfwidth=1e-6),
                                     random.Random(0), clock)
    assert wide.stop_reason == "max-time" and wide.wall_s >= 0.3
    capped = interleave.interleave_cpu([clock.call(1000), clock.call(1000)], plan(min_rounds=4, max_rounds=6),
                                       random.Random(0), clock)
    assert capped.stop_reason == "max-rounds" and len(capped.a) == 6


def test_rounds_past_the_case_timeout_stop_between_two_rounds_naming_the_option():
    clock = VirtualClock()
    deadline = Deadline.start(0.03, clock)
    with pytest.raises(CaseTimeout, match=r"--trt-case-timeout\) in phase measure \(A/B, after \d+ rounds\)") as info:
        interleave.interleave_cpu([clock.call(100_000), clock.call(100_000)], plan(min_time_s=1, max_time_s=2),
                                  random.Random(0), clock, deadline)
    assert 0.03 <= info.value.elapsed_s < 0.05  # stopped at the first round boundary past the bound
    unbounded = interleave.interleave_cpu([clock.call(100_000), clock.call(100_000)], plan(), random.Random(0),
                                          clock, Deadline.start(None, clock))
    assert unbounded.stop_reason == "min-reached"


def test_plan_refuses_what_cannot_be_timed():
    with pytest.raises(ValueError, match="max_time_s"):
        interleave.Plan(min_time_s=2, max_time_s=1)
    with pytest.raises(ValueError, match="min_rounds"):
        interleave.Plan(min_rounds=0)
    with pytest.raises(ValueError, match="warmup_s"):
        interleave.Plan(warmup_s=math.nan)


# ----------------------------------------------------------------------------------- CUDA rounds


class FakeGpu:
    """One GPU timeline shared by its streams: a stream runs its work in order, and only an event it
    waits on orders it after another stream's work. ``busy`` records every kernel's span."""

    def __init__(self) -> None:
        self.busy: list[tuple[int, int, str]] = []
        self.current: FakeStream | None = None
        self.host_ns = 0  # what the host has waited for: work enqueued after it starts no earlier

    @contextmanager
    def stream_context(self, stream: Any) -> Iterator[None]:
        previous, self.current = self.current, stream
        try:
            yield
        finally:
            self.current = previous

    def api(self) -> CudaApi:
        return CudaApi(make_event=FakeEvent, stream_context=self.stream_context,
                       is_default_stream=lambda s: bool(getattr(s, "default", False)))

    def kernel(self, name: str, ns: int) -> Any:
        def launch() -> None:
            stream = self.current
            assert stream is not None, "work must be enqueued on the side's own stream"
            start = max(stream.ready, self.host_ns)
            stream.ready = start + ns
            self.busy.append((start, stream.ready, name))

        return launch


class FakeStream:
    def __init__(self, gpu: FakeGpu, default: bool = False) -> None:
        self.gpu = gpu
        self.ready = 0
        self.default = default
        self.waits = 0

    def wait_event(self, event: FakeEvent) -> None:
        assert event.stamp is not None
        self.ready = max(self.ready, event.stamp)
        self.waits += 1

    def synchronize(self) -> None:
        self.gpu.host_ns = max(self.gpu.host_ns, self.ready)


class FakeEvent:
    def __init__(self) -> None:
        self.stamp: int | None = None

    def record(self, stream: Any = None) -> None:
        assert isinstance(stream, FakeStream)
        self.stamp = max(stream.ready, stream.gpu.host_ns)
        stream.ready = self.stamp

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.stamp is not None and end.stamp is not None
        return (end.stamp - self.stamp) / 1e6


def cuda_rounds(gpu: FakeGpu, a_ns: int, b_ns: int, **changes: Any) -> interleave.Rounds:
    clock = VirtualClock()
    sides = [interleave.CudaSide(gpu.kernel("A", a_ns), FakeStream(gpu)),
             interleave.CudaSide(gpu.kernel("B", b_ns), FakeStream(gpu))]
    return interleave.interleave_cuda(sides, plan(warmup_s=0, min_time_s=0.02, **changes), random.Random(2),
                                      gpu.api(), clock)


def test_cuda_rounds_time_each_block_by_events_on_its_own_stream():
    gpu = FakeGpu()
    rounds = cuda_rounds(gpu, 50_000, 52_000, calls=20)
    assert rounds.clock == "cuda-event" and rounds.calls == 20
    assert len(rounds.a) >= 20
    assert all(math.isclose(b / a, 1.04, rel_tol=1e-9) for a, b in zip(rounds.a, rounds.b))
    assert rounds.a[0] == pytest.approx(50e-6)


def test_cuda_blocks_never_overlap_across_the_two_streams():
    """Each block's stream waits for the block before it, so B's kernels never run beside A's."""
    gpu = FakeGpu()
    cuda_rounds(gpu, 30_000, 40_000, calls=5)
    spans = sorted(gpu.busy)
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:]))
    assert {name for *_, name in spans} == {"A", "B"}


def test_cuda_rounds_refuse_the_default_stream():
    gpu = FakeGpu()
    sides = [interleave.CudaSide(gpu.kernel("A", 1), FakeStream(gpu, default=True)),
             interleave.CudaSide(gpu.kernel("B", 1), FakeStream(gpu))]
    with pytest.raises(ValueError, match="non-default"):
        interleave.interleave_cuda(sides, plan(), random.Random(0), gpu.api(), VirtualClock())


# ---------------------------------------------------------------------------- statistic and rule


def process(ratio: float, half: float = 0.01, rounds: int = 100, fresh: bool = False) -> AbProcess:
    return AbProcess(ratio, ratio * (1 - half), ratio * (1 + half), rounds, 10, "perf_counter", 1e-3, ratio * 1e-3,
                     fresh=fresh)


def test_estimate_is_the_median_pair_with_its_sign_test_interval():
    logs = [math.log(1.02)] * 40 + [math.log(5.0), math.log(0.2)]  # two outlier rounds of one pair cancel
    rounds = interleave.Rounds("perf_counter", 1, a=[1.0] * 42, b=[math.exp(x) for x in logs])
    estimate = decide.estimate(rounds)
    assert estimate.ratio == pytest.approx(1.02)
    assert estimate.ci_low <= estimate.ratio <= estimate.ci_high
    assert estimate.rounds == 42 and len(estimate.log_ratios) == 42


def test_the_interval_covers_the_true_ratio_at_its_confidence():
    """Simulated processes of iid noisy rounds: the 98 % interval misses the truth in about 2 %."""
    rng = random.Random(11)
    misses, trials = 0, 400
    for _ in range(trials):
        logs = [math.log(1.05) + rng.gauss(0, 0.03) for _ in range(60)]
        _, low, high = decide.median_interval(interleave.paired(logs))
        misses += not low <= 1.05 <= high
    assert misses / trials < 0.05


@pytest.mark.parametrize(("ratios", "outcome"), [
    ([1.10], Outcome.REGRESSION),
    ([1.10, 1.09, 1.11], Outcome.REGRESSION),
    ([1.10, 1.01], Outcome.UNSTABLE),  # one process does not see it: not failed, not passed
    ([0.90, 0.91], Outcome.IMPROVED),
    ([1.00], Outcome.PASS),
    ([1.015], Outcome.PASS),  # slower, but by less than the threshold with the interval inside it
])
def test_every_process_must_agree(ratios, outcome):
    decision = decide.decide([process(r) for r in ratios], threshold=0.03)
    assert decision.outcome is outcome
    assert decision.ratio == pytest.approx(math.exp(statistics.median(math.log(r) for r in ratios)))
    assert decision.ci[0] <= min(ratios) and decision.ci[1] >= max(ratios)


def test_a_wide_interval_is_unstable_and_says_what_would_help():
    decision = decide.decide([process(1.0, half=0.10)], threshold=0.03)
    assert decision.outcome is Outcome.UNSTABLE
    assert "not decidable at 3.0%" in decision.detail and "would help" in decision.detail


def test_a_significant_slowdown_below_the_threshold_is_not_a_regression():
    assert decide.decide([process(1.02, half=0.005)], threshold=0.03).outcome is Outcome.PASS
    assert decide.decide([process(1.04, half=0.005)], threshold=0.03).outcome is Outcome.REGRESSION


def test_spread_between_processes_is_reported_from_two():
    one = decide.decide([process(1.0)], 0.05)
    two = decide.decide([process(1.0), process(1.02)], 0.05)
    assert one.spread is None and two.spread == pytest.approx(math.log(1.02) / math.sqrt(2), rel=1e-6)
    assert "between processes" in two.detail


def test_decide_refuses_nothing_to_decide():
    with pytest.raises(ValueError):
        decide.decide([], 0.05)
    with pytest.raises(ValueError):
        decide.decide([process(1.0)], 0.0)


def test_kept_rounds_stay_whole_pairs_when_thinned():
    logs = [float(i) for i in range(21)]
    assert decide.kept(logs) == logs[:20]  # the odd last round had no partner
    thinned = decide.kept([float(i) for i in range(1000)], limit=10)
    assert len(thinned) == 10 and all(b == a + 1 and a % 2 == 0 for a, b in zip(thinned[0::2], thinned[1::2]))


def test_a_process_is_re_estimated_offline_from_its_rounds():
    logs = [math.log(1.05)] * 30 + [math.log(1.0)] * 10
    rounds = interleave.Rounds("perf_counter", 1, a=[1.0] * 40, b=[math.exp(x) for x in logs])
    kept = decide.estimate(rounds)
    assert decide.reestimate(kept, 0.9).ratio == pytest.approx(kept.ratio)
    assert decide.reestimate(kept, 0.5).ci_high <= kept.ci_high


# -------------------------------------------------------------------------- pairs of runner instances


def test_instance_pairs_share_one_plans_budget_and_later_ones_warm_up_briefly():
    first, later = interleave.split(plan(warmup_s=0.4, min_time_s=1.0, max_time_s=4.0, min_rounds=20), 4)
    assert (first.min_time_s, first.max_time_s, first.warmup_s) == (0.25, 1.0, 0.4)
    assert first.min_rounds == 6 and first.min_rounds % 2 == 0  # 20 / 4 rounded up to whole balanced pairs
    assert later.warmup_s == pytest.approx(0.1) and later.min_rounds == first.min_rounds
    assert interleave.split(plan(), 1) == (plan(), plan())


def test_joined_rounds_keep_whole_pairs_of_each_instance_pair():
    parts = [interleave.Rounds("perf_counter", 3, a=[1.0] * n, b=[r] * n, b_first=[False] * n, wall_s=1.0,
                               stop_reason=reason)
             for n, r, reason in ((6, 1.1, "min-reached"), (7, 0.9, "max-time"), (4, 1.0, "converged"))]
    rounds = interleave.joined(parts)
    assert rounds.instances == [6, 6, 4] and len(rounds.a) == len(rounds.b) == 16  # the odd 7th round is dropped
    assert rounds.wall_s == 3.0 and rounds.stop_reason == "max-time" and rounds.calls == 3
    assert [round(r, 6) for r in decide.instance_ratios(rounds)] == [1.1, 0.9, 1.0]
    assert all(a == b for a, b in zip(decide.paired(rounds.log_ratios)[:3], [math.log(1.1)] * 3))
    with pytest.raises(ValueError, match="same calls"):
        interleave.joined([parts[0], interleave.Rounds("perf_counter", 5, a=[1.0, 1.0], b=[1.0, 1.0])])
    assert decide.instance_ratios(parts[0]) == []  # one pair: nothing to tell apart


def test_builds_that_disagree_widen_the_interval_and_ones_that_agree_do_not():
    """Seen on an H100 (lab/results/ab_h100): the rounds of one pair of builds agree to 0.03 %, while
    four pairs of builds of the same model gave B/A 1.019, 0.999, 1.004, 1.016. The interval must
    cover what the builds differ by, or that difference reads as a change."""
    tight = (1.0095, 1.0105)
    wide = decide.widened(tight, [1.019, 0.999, 1.004, 1.016])
    assert wide[0] < 1.0 < 1.02 < wide[1]
    assert decide.widened(tight, [1.0101, 1.0099, 1.0100, 1.0102]) == pytest.approx(tight, abs=1e-3)
    assert decide.widened(tight, [1.05, 0.95]) == tight  # two pairs: too few for a t interval
    builds = [1.019, 0.999, 1.004, 1.016]
    disagreeing = AbProcess(1.0095, *wide, 100, 3, "cuda-event", 1e-3, 1e-3, instance_ratios=builds)
    decision = decide.decide([disagreeing], 0.01)
    assert decision.outcome is Outcome.UNSTABLE and "two builds of the same model differ" in decision.detail


def test_a_re_estimate_keeps_the_builds_in_its_interval():
    b = [1.02] * 10 + [1.0] * 10 + [0.99] * 10 + [1.0] * 10
    rounds = interleave.Rounds("perf_counter", 1, a=[1.0] * 40, b=b, instances=[10, 10, 10, 10])
    kept = decide.estimate(rounds)
    assert [round(r, 3) for r in kept.instance_ratios] == [1.02, 1.0, 0.99, 1.0]
    again = decide.reestimate(kept, decide.CONFIDENCE)
    assert again.ci_low == pytest.approx(kept.ci_low) and again.ci_high == pytest.approx(kept.ci_high)
    assert kept.ci_high > 1.02  # wider than any one pair's rounds


def test_pairs_of_builds_default_by_device_and_stay_one_for_torch_compile():
    from types import SimpleNamespace

    from pytest_trt.ab.run import instance_pairs

    def ctx(device: str, wanted: int | None = None) -> Any:
        return SimpleNamespace(device=device, settings=SimpleNamespace(ab_instances=wanted))

    def side(backend: str) -> Any:
        return SimpleNamespace(case=Case("m", backend, "fp16", 1, "cuda"))

    assert instance_pairs(ctx("cuda:0")) == 4 and instance_pairs(ctx("cpu")) == 8
    assert instance_pairs(ctx("cuda:0"), [side("torch"), side("torch-compile")]) == 1  # each build compiles again
    assert instance_pairs(ctx("cuda:0", 6), [side("torch-compile")]) == 6  # the option is the user's word


class FakeRunner:
    """A CPU runner whose every call costs ``cost_ns`` on the virtual clock (the seam measure uses)."""

    stream = None

    def __init__(self, clock: VirtualClock, cost_ns: int, log: list[str], name: str) -> None:
        self.clock, self.cost_ns, self.log, self.name = clock, cost_ns, log, name

    def load_inputs(self, host: Any) -> Any:
        return host

    def run(self, handle: Any) -> Any:
        self.clock.ns += self.cost_ns
        return handle

    def close(self) -> None:
        self.log.append(f"close {self.name}")


def test_rounds_over_instance_pairs_average_what_each_build_landed_on(monkeypatch):
    """Each pair of builds has its own B/A (1.04, 1.00, 0.98, 1.02 here: where their memory landed);
    one pair would carry its own into every round, four give each its share."""
    from pytest_trt.ab import measure

    clock = VirtualClock()
    monkeypatch.setattr(interleave, "time", type("T", (), {"perf_counter_ns": staticmethod(clock)}))
    log: list[str] = []
    b_costs = iter([104_000, 100_000, 98_000, 102_000])
    made = [0]

    def pair() -> list[FakeRunner]:
        made[0] += 1
        return [FakeRunner(clock, 100_000, log, f"A{made[0]}"), FakeRunner(clock, next(b_costs), log, f"B{made[0]}")]

    current = pair()

    def reopen() -> list[FakeRunner]:
        for runner in current:
            runner.close()
        current[:] = pair()
        return list(current)

    phases: list[str] = []

    @contextmanager
    def phase(name: str) -> Iterator[None]:
        phases.append(name)
        yield

    rounds, last, _, runners = measure._over_instances(list(current), reopen, 4, [0.0], plan(min_rounds=20),
                                                       Deadline.start(0), phase)
    assert made[0] == 4 and phases == ["reopen"] * 3 and log == ["close A1", "close B1", "close A2", "close B2",
                                                                 "close A3", "close B3"]
    assert [r.name for r in runners] == ["A4", "B4"] and len(last) == 2  # the checks after use the last pair
    assert len(rounds.instances) == 4 and all(n >= 6 and n % 2 == 0 for n in rounds.instances)
    estimate = decide.estimate(rounds)
    assert [round(r, 3) for r in estimate.instance_ratios] == [1.04, 1.0, 0.98, 1.02]
    assert 0.98 <= estimate.ratio <= 1.04 and len({r.calls_per_block for r in [estimate]}) == 1
    one, *_ = measure._over_instances(list(current), None, 4, [0.0], plan(min_rounds=20), Deadline.start(0), phase)
    assert one.instances == [] and made[0] == 4  # no way to reopen: one pair


# ----------------------------------------------------------------------------------------- records


def comparison() -> AbResult:
    case_a = Case("m", "torch", "fp32", 1, "cpu")
    case_b = Case("m", "onnxruntime", "fp32", 1, "cpu")
    return AbResult(Outcome.REGRESSION, 0.03, 0.98, AbArm("main", "model m", case_a, 1e-3, "abc"),
                    AbArm("B", "ONNX x.onnx (sha256 1234…)", case_b, 1.1e-3), [process(1.1), process(1.09, fresh=True)],
                    1.095, (1.07, 1.12), 0.007, failures=["a child died"], message="REGRESSION m: slower")


def test_the_comparison_rides_on_case_results_and_back():
    ab = comparison()
    result = CaseResult(ab.candidate.case, "t.py::test_ab[x]", "m", ab=ab)
    data = result.to_dict()
    again = CaseResult.from_dict(data)
    assert again.ab is not None and again.ab.to_dict() == ab.to_dict()
    assert again.ab.failed and again.ab.processes[1].fresh
    assert "ab" not in CaseResult(ab.candidate.case, "t.py::x", "m").to_dict()  # files without A/B are unchanged


def test_results_files_with_a_comparison_pass_the_schema():
    from pytest_trt import schema

    data = CaseResult(comparison().candidate.case, "t.py::test_ab[x]", "m", ab=comparison()).to_dict()
    document = schema.results({"schema_version": 1, "environment": {"hardware": {"kind": "cpu"}}, "cases": [data]},
                              "r.json")
    assert document.cases[0].ab is not None and document.cases[0].ab.ratio == pytest.approx(1.095)


@pytest.mark.parametrize(("change", "message"), [
    (lambda ab: ab["processes"][0].update(ratio=float("nan")), r"cases\[0\]\.ab\.processes\[0\]\.ratio: expected a "
                                                               r"finite ratio above 0, got nan"),
    (lambda ab: ab["processes"][0].update(log_ratios=[0.0] * 5001), r"log_ratios: 5001 items, more than the 5000"),
    (lambda ab: ab["processes"][1].update(log_ratios=[0.0, "x"]), r"log_ratios\[1\]: expected a finite number"),
    (lambda ab: ab.update(processes=[ab["processes"][0]] * 65), r"processes: 65 items, more than the 64 allowed"),
    (lambda ab: ab.update(ratio=-1), r"\.ab\.ratio: expected a finite ratio above 0, got -1"),
    (lambda ab: ab["processes"][0].update(instance_ratios=[1.0] * 17), r"instance_ratios: 17 items, more than the 16"),
    (lambda ab: ab["processes"][0].update(instance_ratios=[1.0, 0.0]), r"instance_ratios\[1\]: expected a finite "
                                                                        r"ratio above 0, got 0"),
])
def test_a_comparison_beyond_the_schema_limits_is_refused_naming_where(change, message):
    from pytest_trt import schema

    data = CaseResult(comparison().candidate.case, "t.py::test_ab[x]", "m", ab=comparison()).to_dict()
    change(data["ab"])
    with pytest.raises(schema.SchemaError, match=message):
        schema.results({"schema_version": 1, "environment": {"hardware": {"kind": "cpu"}}, "cases": [data]}, "r.json")


# ---------------------------------------------------------------------------------------- the sides


def test_sides_are_named_in_many_ways(tmp_path):
    onnx = tmp_path / "main.onnx"
    onnx.write_bytes(b"x")
    assert as_arm(None, "r") == Arm()
    assert as_arm(str(onnx), "r") == Arm(model=str(onnx))
    assert as_arm(BASELINE, "r").model is BASELINE
    assert as_arm(Arm(precision="fp16", backend="onnxruntime"), "r").precision == "fp16"
    factory = lambda: None  # noqa: E731
    assert as_arm(factory, "r").model is factory


@pytest.mark.parametrize(("value", "message"), [
    (Arm(backend="tensor-rt"), "unknown backend 'tensor-rt'; registered: torch"),
    (Arm(precision="int9"), "unknown precision 'int9'"),
    (Arm(variant="graph"), "unknown variant 'graph'"),
    ("nowhere.onnx", "nowhere.onnx: no such readable file"),
    ("model.h5", "expected an .onnx file or a torch.export .pt2 program"),
    (3, "expected a ModelSpec, a model factory"),
])
def test_a_side_named_wrongly_is_one_line_naming_the_argument(value, message):
    with pytest.raises(ArmError, match=None) as raised:
        as_arm(value, "trt_ab(candidate=...)")
    text = str(raised.value)
    assert text.startswith("trt_ab(candidate=...): ") and message in text and "\n" not in text
