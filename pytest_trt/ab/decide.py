"""The A/B statistic and what it decides.

Per process: rounds come in balanced pairs (AB then BA, or BA then AB: ``interleave.orders``), and
each pair's mean log(B/A) has any "who ran second" effect cancelled. The estimate is the median of
the pairs' values, with the distribution-free (sign-test) confidence interval of that median: with
n pairs, the number below the true median is Binomial(n, 1/2), so two order statistics bound it at
the chosen confidence whatever the pairs' distribution (``stats.median_ci_ranks``). A burst of load
that hits one block makes that pair an outlier, which moves a median by one rank at most.

Across processes (``--trt-ab-processes``): each fresh process draws its own kernels, memory layout
and thread placement, which a within-process CI cannot see. So the rule asks every process:

- REGRESSION: in every process B/A exceeds 1 + threshold and the CI's lower bound exceeds 1
  (significantly slower, by more than the threshold, whatever that process's luck);
- IMPROVED: the mirror image (every process faster than 1 / (1 + threshold), CI below 1);
- UNSTABLE: neither, and some process's CI still reaches beyond 1 + threshold: too wide to decide
  at this threshold (a slowdown of that size is not excluded);
- PASS: every process's CI stays at or below 1 + threshold.

The combined ratio is the median of the processes' ratios, its interval the hull of theirs, and
their spread (standard deviation of log ratios) is reported with two or more processes. Each
process's one-sided error is (1 - confidence) / 2 = 1 % at the default 98 %; requiring every
process lowers the false-alarm rate further when processes differ.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pytest_trt.ab.interleave import Rounds, paired
from pytest_trt.ab.record import MAX_ROUNDS_KEPT, AbProcess
from pytest_trt.stats import median_ci_ranks
from pytest_trt.verdict import Outcome, format_percent

CONFIDENCE = 0.98  # two-sided: 1 % one-sided, the stored-baseline gate's alpha


def estimate(rounds: Rounds, confidence: float = CONFIDENCE, *, fresh: bool = False, seed: int = 0) -> AbProcess:
    """One process's B/A and its CI from its rounds."""
    logs = rounds.log_ratios
    if len(logs) < 2:
        raise ValueError("fewer than two rounds timed both sides: no balanced pair to compare")
    ratio, low, high = median_interval(paired(logs), confidence)
    return AbProcess(ratio=ratio, ci_low=low, ci_high=high, rounds=len(logs), calls_per_block=rounds.calls,
                     clock=rounds.clock, a_median_s=float(np.median(rounds.a)), b_median_s=float(np.median(rounds.b)),
                     log_ratios=kept(logs), fresh=fresh, seed=seed, wall_s=rounds.wall_s,
                     stop_reason=rounds.stop_reason)


def kept(log_ratios: Sequence[float], limit: int = MAX_ROUNDS_KEPT) -> list[float]:
    """At most ``limit`` rounds, as whole pairs picked evenly across the run (``paired`` pairs them again)."""
    pairs = len(log_ratios) // 2
    if 2 * pairs <= limit:
        return [float(x) for x in log_ratios[: 2 * pairs]]
    chosen = np.linspace(0, pairs - 1, limit // 2).round().astype(np.int64)
    return [float(log_ratios[2 * i + k]) for i in chosen for k in (0, 1)]


def median_interval(log_ratios: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(ratio, low, high): the median of ``log_ratios`` and its sign-test interval, as ratios."""
    ordered = np.sort(np.asarray(log_ratios, dtype=np.float64))
    lo, hi = median_ci_ranks(int(ordered.size), confidence)
    return math.exp(float(np.median(ordered))), math.exp(float(ordered[lo])), math.exp(float(ordered[hi]))


def reestimate(process: AbProcess, confidence: float) -> AbProcess:
    """The same process's estimate at another confidence, from its kept rounds (offline analysis)."""
    ratio, low, high = median_interval(paired(process.log_ratios), confidence)
    return AbProcess(ratio, low, high, process.rounds, process.calls_per_block, process.clock, process.a_median_s,
                     process.b_median_s, process.log_ratios, process.fresh, process.seed, process.wall_s,
                     process.stop_reason)


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    ratio: float
    ci: tuple[float, float]
    spread: float | None
    detail: str


def decide(processes: Sequence[AbProcess], threshold: float, confidence: float = CONFIDENCE) -> Decision:
    """The outcome of one A/B case from its processes' estimates (the rule in the module docstring)."""
    if not processes:
        raise ValueError("no process measured the case")
    if not threshold > 0:
        raise ValueError(f"threshold must be a positive fraction, got {threshold!r}")
    logs = [math.log(p.ratio) for p in processes]
    ratio = math.exp(statistics.median(logs))
    ci = (min(p.ci_low for p in processes), max(p.ci_high for p in processes))
    spread = statistics.stdev(logs) if len(logs) >= 2 else None
    limit = 1.0 + threshold
    shown = _shown(processes, ratio, ci, spread, confidence)
    pct = format_percent(threshold)
    if all(p.ratio > limit and p.ci_low > 1.0 for p in processes):
        where = "its process" if len(processes) == 1 else f"all {len(processes)} processes"
        return Decision(Outcome.REGRESSION, ratio, ci, spread,
                        f"B is slower than A beyond the threshold {pct} in {where}: {shown}")
    if all(p.ratio < 1.0 / limit and p.ci_high < 1.0 for p in processes):
        return Decision(Outcome.IMPROVED, ratio, ci, spread, f"B is faster than A beyond {pct}: {shown}")
    if ci[1] > limit:
        return Decision(Outcome.UNSTABLE, ratio, ci, spread,
                        f"not decidable at {pct}: the CI reaches ×{ci[1]:.3f}, so a slowdown of {pct} is not "
                        f"excluded; {shown}; would help: {advice(processes, threshold)}")
    return Decision(Outcome.PASS, ratio, ci, spread, f"B is not slower than A by {pct}: {shown}")


def _shown(processes: Sequence[AbProcess], ratio: float, ci: tuple[float, float], spread: float | None,
           confidence: float) -> str:
    first = processes[0]
    rounds = sum(p.rounds for p in processes)  # rounds, not pairs: what the user's budget bought
    where = f"{rounds} rounds" if len(processes) == 1 else f"{rounds} rounds in {len(processes)} processes"
    text = (f"B/A ×{ratio:.3f} ({confidence:.0%} CI {ci[0]:.3f}–{ci[1]:.3f}, {where}; "
            f"A {_ms(first.a_median_s)}, B {_ms(first.b_median_s)} per call")
    if spread is not None:
        text += f"; between processes ±{format_percent(math.expm1(spread))}: " + ", ".join(
            f"×{p.ratio:.3f}" for p in processes)
    return text + ")"


def _ms(seconds: float) -> str:
    from pytest_trt.verdict import format_seconds

    return format_seconds(seconds)


def advice(processes: Sequence[AbProcess], threshold: float) -> str:
    """What would narrow the interval enough to decide."""
    tips = []
    if any(p.stop_reason == "max-time" for p in processes):
        tips.append("more rounds (a larger --trt-max-time)")
    else:
        tips.append("more rounds (a larger --trt-min-time)")
    if len(processes) >= 2 and max(p.ratio for p in processes) / min(p.ratio for p in processes) > 1 + threshold:
        tips.append("fixing what each process chooses at start-up (its processes disagree)")
    tips.append("a quieter machine or a larger batch")
    tips.append("a larger threshold (@pytest.mark.trt(threshold=...))")
    return "; ".join(tips)
