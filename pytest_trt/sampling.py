"""What every timed loop shares: the budget, the clock seam, the case's deadline and the stop rule.

``timing`` (host clock) and ``cuda_timing`` (CUDA events) both time in chunks of calls and consult
``StopRule`` between chunks: both minimums (time and count), then an early stop once the median's
confidence interval is tight, else a maximum (docs/design.md, rule 2). Host time comes from one seam,
a ``Clock`` in nanoseconds (``now``, i.e. ``time.perf_counter_ns``, unless a caller passes another),
so unit tests drive the loops with a fake clock and decide the same on a quiet and a loaded host.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from pytest_trt.stats import median_ci_ranks, relative_ci_halfwidth

NS = 1e-9

CHECK_INTERVAL_S = 0.02  # target duration of one chunk: the stop rule's granularity
STAT_GROWTH = 1.25  # recompute the median CI only after the sample count grew by this factor

Clock = Callable[[], int]  # nanoseconds from an arbitrary origin


def now() -> int:
    """The default clock, looked up at each call, so a test may replace this module's ``time``."""
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
    clock: Clock = now

    @classmethod
    def start(cls, limit_s: float | None, clock: Clock | None = None) -> Deadline:
        read = clock or now
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


class Samples:
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


class StopRule:
    """Rule 2: both minimums, then early stop on a tight median CI, else a maximum."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self._next_stat_n = 0
        median_ci_ranks(1)  # imports scipy.stats (about a second, once) before any clock starts

    def __call__(self, samples: Samples, submitted: int, elapsed_s: float) -> str | None:
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


def next_chunk(per_call_s: float, cap: int, previous: int) -> int:
    """Iterations for the next chunk: about CHECK_INTERVAL_S of work, growing at most 8x at a time."""
    if per_call_s <= 0:
        return min(cap, max(1, previous * 8))
    want = int(CHECK_INTERVAL_S / per_call_s)
    return max(1, min(cap, want, max(1, previous) * 8))


def check_batch_size(batch_size: int) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")


def warmup_limit_ns(budget: Budget) -> int:
    """Warm-up by time, never longer than the measurement itself may take (--trt-warmup above
    --trt-max-time would otherwise warm up past every bound the user set)."""
    return int(min(budget.warmup_s, budget.max_time_s) / NS)
