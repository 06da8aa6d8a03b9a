"""Summary statistics of latency samples and the flags of docs/design.md, rules 6 and 7.

Plain numpy; scipy is imported lazily (only the binomial quantile of the median's confidence
interval needs it) so importing this module stays cheap for the plugin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from pytest_trt.conditions import HostLoad
from pytest_trt.latency import Flag, Stats, Timing

# trtexec's rules (docs/design.md, rule 7).
NOISY_CV = 0.025  # coefficient of variation above which a case is NOISY (trtexec's "unstable")
ENQUEUE_BOUND_RATIO = 0.8  # median enqueue > this × median compute: the host, not the GPU, is timed
# ...and the GPU sat idle: busy for less than this share of the loop's wall time. Without this, a
# GPU-bound model of many kernels looks enqueue-bound once the launch queue fills and every launch
# blocks (seen on an H100: DenseNet-201 at batch 256, 123 ms per batch, enqueue ≈ compute).
GPU_BUSY_SHARE = 0.9

FloatArray = npt.NDArray[np.float64]


def _as_samples(samples: Sequence[float] | npt.NDArray[Any]) -> FloatArray:
    data = np.asarray(samples, dtype=np.float64)
    if data.ndim != 1:
        raise ValueError(f"samples must be a flat sequence of latencies, got shape {data.shape}")
    if data.size == 0:
        raise ValueError("samples is empty: at least one latency sample is needed for statistics")
    if not np.all(np.isfinite(data)):
        raise ValueError("samples contain NaN or Inf: every latency sample must be a finite number")
    if np.any(data < 0):
        raise ValueError(f"samples contain a negative latency ({data.min()!r}): latencies must be >= 0")
    return data


@lru_cache(maxsize=4096)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks (lo, hi) of the order statistics bounding the median at ``confidence``.

    Distribution-free: the number of samples below the true median is Binomial(n, 1/2), so
    [x_(j), x_(n-j+1)] (1-based) covers it with probability 1 - 2 * P(B <= j - 1). j is the largest
    rank keeping that at or above ``confidence``; for tiny n no rank does and the full range is used.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1 to bound a median, got {n}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence}")
    from scipy.stats import binom

    alpha = 1.0 - confidence
    # ppf gives the smallest j with P(B <= j) >= alpha/2, so P(B <= j - 1) < alpha/2.
    j = max(1, int(binom.ppf(alpha / 2.0, n, 0.5)))
    j = min(j, (n + 1) // 2)
    return j - 1, n - j


def _median_ci(sorted_or_partitioned: FloatArray, confidence: float) -> tuple[float, float]:
    lo, hi = median_ci_ranks(int(sorted_or_partitioned.size), confidence)
    return float(sorted_or_partitioned[lo]), float(sorted_or_partitioned[hi])


def summarize(
    samples: Sequence[float] | FloatArray, batch_size: int, wall_s: float, confidence: float = 0.95,
    calls_per_sample: int = 1,
) -> Stats:
    """Rule 6 statistics of per-iteration latencies (seconds); throughput in items per second.

    ``calls_per_sample``: each sample is the mean of that many back-to-back calls (the CUDA loop's
    blocks for short calls), so throughput counts samples x calls.
    """
    data = _as_samples(samples)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not (wall_s > 0 and math.isfinite(wall_s)):
        raise ValueError(f"wall_s must be a positive number of seconds, got {wall_s!r}")
    ordered = np.sort(data)
    p50, p90, p95, p99 = np.percentile(ordered, [50, 90, 95, 99])
    mean = float(ordered.mean())
    stddev = float(ordered.std(ddof=1)) if ordered.size > 1 else 0.0
    low, high = _median_ci(ordered, confidence)
    return Stats(
        n=int(ordered.size),
        min=float(ordered[0]),
        max=float(ordered[-1]),
        mean=mean,
        median=float(p50),
        p90=float(p90),
        p95=float(p95),
        p99=float(p99),
        stddev=stddev,
        cv=stddev / mean if mean > 0 else 0.0,
        median_ci_low=low,
        median_ci_high=high,
        throughput=batch_size * calls_per_sample * ordered.size / wall_s,
    )


def relative_ci_halfwidth(samples: Sequence[float] | npt.NDArray[Any], confidence: float = 0.95) -> float:
    """Half-width of the median's confidence interval over the median: the early-stop criterion.

    O(n) (a partition, not a sort), so the timing loop can afford it every few hundred milliseconds.
    """
    data = _as_samples(samples)
    n = int(data.size)
    lo, hi = median_ci_ranks(n, confidence)
    mid = (n - 1) // 2
    part = np.partition(data, sorted({lo, mid, hi, n // 2}))
    median = float(part[mid] + part[n // 2]) / 2.0
    half = (float(part[hi]) - float(part[lo])) / 2.0
    if median <= 0.0:
        return 0.0 if half == 0.0 else math.inf
    return half / median


def thin(samples: Sequence[float] | npt.NDArray[Any], limit: int) -> list[float]:
    """At most ``limit`` samples picked evenly across the run, first and last included, so a slow
    drift stays visible in what is kept (results keep 5000, baselines 1000)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    data = np.asarray(samples, dtype=np.float64)
    if data.size <= limit:
        return [float(x) for x in data]
    index = np.linspace(0, data.size - 1, limit).round().astype(np.int64)
    return [float(x) for x in data[index]]


def flags(timing: Timing, throttled: bool = False, load: HostLoad | None = None) -> list[Flag]:
    """NOISY (CV > 2.5 %, trtexec's rule), THROTTLED (NVML saw clock throttling), ENQUEUE-BOUND
    (enqueueing a call takes more than 0.8 x its GPU compute time: the host sets the pace) and
    CONTENDED (the process waited for a CPU while it was timed).

    The launch cost and the GPU compute time come from the backlog probe (``timing.backlog_probe``),
    where the GPU is held while calls are queued: back-to-back events cannot tell the two apart, since
    a host-bound call's events read the host's pace. Without the probe (older results, no spin
    kernel) the timed loop's enqueue time stands in, with the old guard that the GPU sat idle.
    """
    from pytest_trt import host

    found: list[Flag] = []
    if timing.stats.cv > NOISY_CV:
        found.append(Flag.NOISY)
    if throttled:
        found.append(Flag.THROTTLED)
    if _enqueue_bound(timing):
        found.append(Flag.ENQUEUE_BOUND)
    if load is not None and host.contended(load):
        found.append(Flag.CONTENDED)
    return found


def _enqueue_bound(timing: Timing) -> bool:
    if timing.launch is not None and timing.gpu_compute is not None:
        return timing.launch.median > ENQUEUE_BOUND_RATIO * timing.gpu_compute.median
    if timing.enqueue is None or timing.enqueue.median <= ENQUEUE_BOUND_RATIO * timing.stats.median:
        return False
    busy = timing.stats.mean * timing.stats.n * timing.calls_per_sample / timing.wall_s
    return busy < GPU_BUSY_SHARE
