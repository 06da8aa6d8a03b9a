"""The A/B statistic and what it decides.

Per process: rounds come in balanced pairs (AB then BA, or BA then AB: ``interleave.orders``), and
each pair's mean log(B/A) has any "who ran second" effect cancelled. The estimate is the median of
the pairs' values, with the distribution-free (sign-test) confidence interval of that median: with
n pairs, the number below the true median is Binomial(n, 1/2), so two order statistics bound it at
the chosen confidence whatever the pairs' distribution (``stats.median_ci_ranks``). A burst of load
that hits one block makes that pair an outlier, which moves a median by one rank at most.

Within a process (``--trt-ab-instances``, 4 on CUDA): two builds of one model differ by where their
memory landed, a draw that every round of one pair of builds shares. The rounds are split over
several pairs of new builds, and with three or more pairs the interval is widened to cover the t
interval of the pairs' mean log ratio (``widened``), so that difference is noise, not a change.

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
    builds = instance_ratios(rounds)
    low, high = widened((low, high), builds, confidence)
    return AbProcess(ratio=ratio, ci_low=low, ci_high=high, rounds=len(logs), calls_per_block=rounds.calls,
                     clock=rounds.clock, a_median_s=float(np.median(rounds.a)), b_median_s=float(np.median(rounds.b)),
                     log_ratios=kept(logs), fresh=fresh, seed=seed, wall_s=rounds.wall_s,
                     stop_reason=rounds.stop_reason, instance_ratios=builds)


MIN_INSTANCES_FOR_INTERVAL = 3  # a t interval from two pairs (1 degree of freedom) is 32 spreads wide


def widened(ci: tuple[float, float], builds: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The rounds' interval, widened to the t interval of the mean log B/A over the instance pairs.

    The rounds' sign-test interval sees only round-to-round noise within each pair of builds; what
    two builds of one model differ by (where their memory landed: up to 2 % on an H100,
    lab/results/ab_h100) is one draw per pair, and the pairs' own spread is the only measure of it
    this process has. An interval that ignored it would call that difference a change.
    """
    if len(builds) < MIN_INSTANCES_FOR_INTERVAL:
        return ci
    from scipy.stats import t

    logs = [math.log(r) for r in builds]
    centre, sd = statistics.fmean(logs), statistics.stdev(logs)
    half = float(t.ppf(1 - (1 - confidence) / 2, len(logs) - 1)) * sd / math.sqrt(len(logs))
    return min(ci[0], math.exp(centre - half)), max(ci[1], math.exp(centre + half))


def instance_spread(process: AbProcess) -> float | None:
    """The standard deviation of a process's log B/A between its pairs of builds (None under two pairs)."""
    builds = process.instance_ratios
    return statistics.stdev(math.log(r) for r in builds) if len(builds) >= 2 else None


def instance_ratios(rounds: Rounds) -> list[float]:
    """The median B/A of each pair of runner instances (``Rounds.instances``); empty for a single pair."""
    if len(rounds.instances) <= 1:
        return []
    out, start = [], 0
    for count in rounds.instances:
        logs = [math.log(b / a) for a, b in zip(rounds.a[start:start + count], rounds.b[start:start + count])
                if a > 0 and b > 0]
        start += count
        pairs = paired(logs)
        if pairs:
            out.append(math.exp(statistics.median(pairs)))
    return out


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
    low, high = widened((low, high), process.instance_ratios, confidence)
    return AbProcess(ratio, low, high, process.rounds, process.calls_per_block, process.clock, process.a_median_s,
                     process.b_median_s, process.log_ratios, process.fresh, process.seed, process.wall_s,
                     process.stop_reason, process.instance_ratios)


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
    spreads = [s for s in map(instance_spread, processes) if s is not None]
    if spreads and max(spreads) > threshold / 4:
        tips.append(f"a threshold above what two builds of the same model differ by here (±{max(spreads):.1%} "
                    "between pairs of builds)")
    tips.append("a quieter machine or a larger batch")
    tips.append("a larger threshold (@pytest.mark.trt(threshold=...))")
    return "; ".join(tips)
