"""Latency statistics against numpy, the median's confidence interval, and the rule-7 flags."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom

from pytest_trt.records import Flag, Stats, Timing
from pytest_trt.stats import (
    ENQUEUE_BOUND_RATIO,
    NOISY_CV,
    median_ci_ranks,
    relative_ci_halfwidth,
    summarize,
)
from pytest_trt.stats import flags as case_flags

ENQUEUE_BOUND, NOISY, THROTTLED = Flag.ENQUEUE_BOUND, Flag.NOISY, Flag.THROTTLED


def test_summarize_matches_numpy() -> None:
    rng = np.random.default_rng(7)
    data = rng.lognormal(mean=-7.0, sigma=0.3, size=1001)
    s = summarize(list(data), batch_size=8, wall_s=2.5)
    assert s.n == 1001
    assert s.min == pytest.approx(data.min())
    assert s.max == pytest.approx(data.max())
    assert s.mean == pytest.approx(data.mean())
    assert s.median == pytest.approx(np.median(data))
    for q, got in ((90, s.p90), (95, s.p95), (99, s.p99)):
        assert got == pytest.approx(np.percentile(data, q))
    assert s.stddev == pytest.approx(data.std(ddof=1))
    assert s.cv == pytest.approx(data.std(ddof=1) / data.mean())
    assert s.throughput == pytest.approx(8 * 1001 / 2.5)
    assert s.median_ci_low <= s.median <= s.median_ci_high
    assert s.median_ci_low < s.median_ci_high


def test_summarize_single_sample() -> None:
    s = summarize([0.004], batch_size=1, wall_s=0.004)
    assert (s.min, s.median, s.max, s.p99) == (0.004, 0.004, 0.004, 0.004)
    assert s.stddev == 0.0 and s.cv == 0.0
    assert s.median_ci_low == s.median_ci_high == 0.004


@pytest.mark.parametrize(
    ("samples", "wall_s", "match"),
    [
        ([], 1.0, "samples is empty"),
        ([0.1, 0.2], 0.0, "wall_s must be a positive"),
        ([0.1, 0.2], -1.0, "wall_s must be a positive"),
        ([0.1, float("nan")], 1.0, "NaN or Inf"),
        ([0.1, -0.2], 1.0, "negative latency"),
    ],
)
def test_summarize_rejects_bad_input(samples: list[float], wall_s: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        summarize(samples, batch_size=1, wall_s=wall_s)


def test_summarize_rejects_zero_batch() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        summarize([0.1], batch_size=0, wall_s=1.0)


def test_median_ci_ranks_are_the_tightest_with_nominal_coverage() -> None:
    for n in (6, 10, 25, 100, 1000):
        lo, hi = median_ci_ranks(n, 0.95)
        assert hi == n - 1 - lo  # symmetric
        coverage = 1 - 2 * binom.cdf(lo, n, 0.5)  # P(lo < B <= hi) with 0-based ranks
        assert coverage >= 0.95
        tighter = 1 - 2 * binom.cdf(lo + 1, n, 0.5)
        assert tighter < 0.95


def test_median_ci_covers_the_true_median_at_the_nominal_rate() -> None:
    # Exponential(1) has median ln 2; the interval is distribution-free, so coverage is the
    # binomial probability, conservative because of its discreteness.
    rng = np.random.default_rng(20240601)
    n, trials = 25, 2000
    lo, _ = median_ci_ranks(n, 0.95)
    exact = 1 - 2 * binom.cdf(lo, n, 0.5)
    hits = 0
    for _ in range(trials):
        s = summarize(rng.exponential(size=n), batch_size=1, wall_s=1.0)
        hits += s.median_ci_low <= math.log(2) <= s.median_ci_high
    sigma = math.sqrt(exact * (1 - exact) / trials)
    assert abs(hits / trials - exact) < 4 * sigma


def test_relative_ci_halfwidth_agrees_with_summarize() -> None:
    rng = np.random.default_rng(3)
    data = rng.normal(1e-3, 1e-5, size=501)
    s = summarize(data, batch_size=1, wall_s=1.0)
    expected = (s.median_ci_high - s.median_ci_low) / 2 / s.median
    assert relative_ci_halfwidth(data) == pytest.approx(expected)
    # More samples from the same distribution: a tighter interval.
    assert relative_ci_halfwidth(rng.normal(1e-3, 1e-5, size=20001)) < expected


def test_relative_ci_halfwidth_of_zero_latencies() -> None:
    assert relative_ci_halfwidth([0.0] * 50) == 0.0
    # Median 0 but the upper bound is not: the relative width is unbounded, never "converged".
    assert relative_ci_halfwidth([0.0] * 30 + [1.0] * 25) == math.inf


def _stats(median: float, cv: float) -> Stats:
    return Stats(
        n=100,
        min=median,
        max=median,
        mean=median,
        median=median,
        p90=median,
        p95=median,
        p99=median,
        stddev=cv * median,
        cv=cv,
        median_ci_low=median,
        median_ci_high=median,
        throughput=1.0 / median,
    )


def _timing(cv: float, enqueue_median: float | None = None, wall_s: float = 1.0, calls: int = 1) -> Timing:
    return Timing(
        clock="cuda-event" if enqueue_median is not None else "perf_counter",
        samples=[1e-3],
        stats=_stats(1e-3, cv),
        warmup_iterations=1,
        warmup_s=0.2,
        wall_s=wall_s,
        stop_reason="converged",
        enqueue=_stats(enqueue_median, 0.0) if enqueue_median is not None else None,
        calls_per_sample=calls,
    )


def test_flags_noisy_on_cv_and_throttled_on_nvml() -> None:
    assert case_flags(_timing(cv=NOISY_CV * 0.9)) == []
    assert case_flags(_timing(cv=NOISY_CV * 1.1)) == [NOISY]
    assert case_flags(_timing(cv=0.001), throttled=True) == [THROTTLED]


def test_flags_enqueue_bound_follows_trtexec_rule() -> None:
    assert case_flags(_timing(cv=0.001, enqueue_median=1e-3 * ENQUEUE_BOUND_RATIO * 0.95)) == []
    assert case_flags(_timing(cv=0.001, enqueue_median=1e-3 * ENQUEUE_BOUND_RATIO * 1.05)) == [ENQUEUE_BOUND]
    assert case_flags(_timing(cv=0.05, enqueue_median=2e-3)) == [NOISY, ENQUEUE_BOUND]


def test_a_full_launch_queue_is_not_enqueue_bound() -> None:
    """Enqueue as slow as compute but the GPU busy all the time: launches blocked on a full queue."""
    n = _stats(1e-3, 0.0).n
    busy_loop = n * 1e-3 / 0.95  # the GPU computed for 95 % of the wall time
    assert case_flags(_timing(cv=0.001, enqueue_median=1e-3, wall_s=busy_loop)) == []
    assert case_flags(_timing(cv=0.001, enqueue_median=1e-3, wall_s=n * 1e-3 / 0.5)) == [ENQUEUE_BOUND]


def test_a_blocked_case_counts_every_call_as_gpu_time() -> None:
    """16 calls per sample: the GPU was busy for n x 16 calls, not n; a busy GPU is not enqueue-bound."""
    n = _stats(1e-3, 0.0).n
    wall = 16 * n * 1e-3 / 0.95
    assert case_flags(_timing(cv=0.001, enqueue_median=1e-3, wall_s=wall, calls=16)) == []
    assert case_flags(_timing(cv=0.001, enqueue_median=1e-3, wall_s=wall, calls=1)) == [ENQUEUE_BOUND]


def test_enqueue_bound_reads_the_probes_launch_cost_against_gpu_compute() -> None:
    from dataclasses import replace

    from pytest_trt.stats import summarize

    # back-to-back events read both as ~1 ms with enqueue ~1 ms: only the probe tells them apart
    base = _timing(cv=0.001, enqueue_median=1e-3, wall_s=1.0)
    host_bound = replace(base, gpu_compute=summarize([1e-4] * 8, 1, 8e-4), launch=summarize([9e-4] * 8, 1, 8e-4))
    gpu_bound = replace(base, gpu_compute=summarize([1e-3] * 8, 1, 8e-3), launch=summarize([5e-5] * 8, 1, 8e-3))
    assert case_flags(host_bound) == [ENQUEUE_BOUND]
    assert case_flags(gpu_bound) == []


def test_enqueue_bound_on_recorded_h200_data() -> None:
    """The rule on an H200's recorded timings (lab/results/h200_nights): eager residual-CNN cases at
    batch 1-32 launch as slowly as the GPU computes them; their CUDA-graph replays do not."""
    import json
    import tarfile
    from pathlib import Path

    archive = Path(__file__).resolve().parents[1] / "lab" / "results" / "h200_nights" / "gpu2.tar.xz"
    with tarfile.open(archive) as tar:
        handle = tar.extractfile("gpu2/p001-A.json")
        assert handle is not None
        document = json.load(handle)
    timings = {case["case_id"]: Timing.from_dict(case["timing"]) for case in document["cases"]}
    assert len(timings) == 12
    for case_id, timing in timings.items():
        assert timing.launch is not None and timing.gpu_compute is not None, case_id
        bound = ENQUEUE_BOUND in case_flags(timing)
        if "cuda-graph" not in case_id:
            assert bound, case_id
        elif "fp16-bs32" not in case_id:  # that graph's launch takes as long as its GPU work
            assert not bound, case_id
