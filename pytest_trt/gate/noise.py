"""The noise between processes: what a case's baseline history says a night may vary by.

Within one process a case is often steady to 0.3 %, yet separate processes differ far more: host
dispatch speed for eager small batches, and the kernels each process picks at start-up (cuDNN
autotuning), which makes some cases bimodal across processes. So the unit of evidence is one
process's median, and a case's noise is the spread of those medians over its baseline runs.

Everything here works on natural logs of medians, so a ratio is a difference. A case's runs are
split into *modes* where the sorted log medians jump by much more than they otherwise vary; the
spread is the pooled standard deviation within modes, never less than the runs' own within-run
uncertainty. A process is compared with the mode nearest to it: it *matches* a mode within the
band ``max(threshold, k x spread x sqrt(1 + 1/runs))``, with k the Student-t quantile at the
gate's false-alarm level for the degrees of freedom behind the spread.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

ASSUMED_SPREAD = 0.02  # log spread used when no run-to-run spread could be measured (one run)
MIN_SPREAD = 5e-4  # timer resolution and rounding: no case is steadier than 0.05 % between processes
MODE_GAP = 5.0  # a jump this many times the typical gap between sorted run medians splits modes
NIGHT_AGREEMENT = math.log(1.10)  # tonight's processes within 10 % of each other count toward the spread


@dataclass(frozen=True)
class Mode:
    center: float  # mean log median of its runs
    runs: int


@dataclass(frozen=True)
class Noise:
    """A case's between-process noise, from its baseline runs (and tonight's processes)."""

    modes: tuple[Mode, ...]
    spread: float  # pooled within-mode standard deviation of log medians
    df: int  # degrees of freedom behind ``spread``; 0: not measured, ASSUMED_SPREAD stands in
    k: float  # the band's quantile: Student-t at (1 - alpha) with df, normal when df == 0

    @property
    def main(self) -> Mode:
        return max(self.modes, key=lambda m: m.runs)

    @property
    def multimodal(self) -> bool:
        return sum(1 for m in self.modes if m.runs >= 2) >= 2 or len(self.modes) > 1

    def band(self, mode: Mode, threshold: float) -> float:
        """How far (log) a process may sit from ``mode`` and still match it."""
        return max(math.log1p(threshold), self.noise_band(mode))

    def noise_band(self, mode: Mode) -> float:
        """The log slowdown an A/A process exceeds with probability alpha against ``mode``."""
        return self.k * self.spread * math.sqrt(1.0 + 1.0 / mode.runs)

    def nearest(self, value: float) -> Mode:
        return min(self.modes, key=lambda m: abs(value - m.center))

    def classify(self, value: float, threshold: float) -> tuple[str, Mode]:
        """'within' a mode it matches, else 'slower' or 'faster' than the nearest mode."""
        matched = [m for m in self.modes if abs(value - m.center) <= self.band(m, threshold)]
        if matched:
            return "within", min(matched, key=lambda m: abs(value - m.center))
        mode = self.nearest(value)
        return ("slower" if value > mode.center else "faster"), mode

    def gateable(self, threshold: float) -> bool:
        """Whether the case's own noise stays inside the threshold (else: not gateable at it)."""
        return self.noise_band(self.main) <= math.log1p(threshold)

    def detectable(self, threshold: float, processes: int, power: float = 0.95) -> float:
        """The smallest slowdown (fraction) caught with probability ``power`` when every one of
        ``processes`` processes must be slower than the band."""
        from scipy.stats import norm

        mode = self.main
        z = float(norm.ppf(power ** (1.0 / max(1, processes))))
        return expm1(self.band(mode, threshold) + z * self.spread * math.sqrt(1.0 + 1.0 / mode.runs))

    def noise(self) -> float:
        """The A/A band of the main mode as a fraction (0.012 = 1.2 %)."""
        return expm1(self.noise_band(self.main))


def exp(value: float) -> float:
    """``math.exp`` that saturates: a baseline may hold medians 10^300 apart (it validates each as a
    positive number, not their ratio), and its verdict must still be a verdict, not an OverflowError."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def expm1(value: float) -> float:
    try:
        return math.expm1(value)
    except OverflowError:
        return math.inf


def modes(values: Sequence[float]) -> list[list[float]]:
    """Split sorted log medians where one jump is far larger than the others (kernel choice per
    process), and larger than any spread worth gating (2 %); otherwise one mode."""
    ordered = sorted(values)
    if len(ordered) < 3:
        return [ordered] if ordered else []
    gaps = [b - a for a, b in zip(ordered, ordered[1:])]
    typical = statistics.median(gaps)
    cut = max(math.log1p(0.02), MODE_GAP * typical)
    groups: list[list[float]] = [[ordered[0]]]
    for gap, value in zip(gaps, ordered[1:]):
        if gap > cut:
            groups.append([])
        groups[-1].append(value)
    return groups


def model(
    history: Sequence[float], floors: Sequence[float], alpha: float, night: Sequence[float] = ()
) -> Noise:
    """The noise of a case from its history's log medians (``floors``: each run's own log-median
    uncertainty) and, where several, tonight's processes' log medians."""
    from scipy.stats import norm, t

    groups = modes(history)
    squares, df = 0.0, 0
    for group in groups:
        if len(group) >= 2:
            mean = sum(group) / len(group)
            squares += sum((x - mean) ** 2 for x in group)
            df += len(group) - 1
    # Tonight's processes add to a thin history only, and only when they agree: they may hold a real
    # shift (fine: each is judged against the baseline) or a mode the baseline never saw (not fine).
    if df < 2 and len(night) >= 2 and max(night) - min(night) < NIGHT_AGREEMENT:
        mean = sum(night) / len(night)
        squares += sum((x - mean) ** 2 for x in night)
        df += len(night) - 1
    floor = max(MIN_SPREAD, statistics.median(floors) if floors else 0.0)
    spread = max(floor, math.sqrt(squares / df)) if df else max(floor, ASSUMED_SPREAD)
    k = float(t.ppf(1.0 - alpha, df)) if df else float(norm.ppf(1.0 - alpha))
    centers = tuple(Mode(sum(g) / len(g), len(g)) for g in groups)
    return Noise(centers, spread, df, k)


def log_median_uncertainty(median: float, ci_low: float, ci_high: float) -> float:
    """The within-run standard error of a log median, from its 95 % confidence interval."""
    if median <= 0 or ci_low <= 0 or ci_high < ci_low:
        return 0.0
    return (math.log(ci_high) - math.log(ci_low)) / (2 * 1.96)
