"""The one-line messages of verdicts: what was measured, against what, and what was decided."""

from __future__ import annotations

import math

from pytest_trt.gate.noise import Mode, Noise, exp
from pytest_trt.records import CaseResult, Flag
from pytest_trt.verdict import Outcome, Verdict, format_percent, format_seconds


def finish(verdict: Verdict, outcome: Outcome, detail: str) -> Verdict:
    verdict.outcome = outcome
    line = f"{outcome.value} {verdict.case_id}: {detail}"
    if verdict.changes:
        line += "; changed: " + ", ".join(verdict.changes)
    verdict.message = " ".join(line.split())  # one line whatever the details held
    return verdict


def _unit(verdict: Verdict) -> str:
    return "energy per item" if verdict.metric == "energy" else "median"


def _value(verdict: Verdict, value: float | None) -> str:
    if verdict.metric == "energy":
        return "n/a" if value is None else f"{value * 1e3:.4g} mJ"
    return format_seconds(value)


def measured(verdict: Verdict) -> str:
    low, high = verdict.ratio_ci or (math.nan, math.nan)
    ci = f", {verdict.confidence:.0%} CI {low:.3f}–{high:.3f}" if verdict.confidence else ""
    return (f"{_unit(verdict)} {_value(verdict, verdict.baseline_median)} → {_value(verdict, verdict.current_median)} "
            f"(×{verdict.ratio or math.nan:.3f}{ci})")


def _noise_text(verdict: Verdict, noise: Noise) -> str:
    runs = f"{verdict.baseline_runs} run{'s' if verdict.baseline_runs != 1 else ''}"
    if noise.df == 0:
        return f"noise unknown from {runs}: ±{format_percent(noise.noise())} assumed; save more runs"
    return f"noise ±{format_percent(noise.noise())} over {runs}, detectable ≥{format_percent(verdict.detectable)}"


def _modes_text(verdict: Verdict, noise: Noise, mode: Mode) -> str:
    if len(noise.modes) < 2:
        return ""
    shown = ", ".join(f"{_value(verdict, math.exp(m.center))} ({m.runs} run{'s' if m.runs != 1 else ''})"
                      for m in sorted(noise.modes, key=lambda m: m.center))
    return f"; multimodal between processes: {shown}; tonight nearest {_value(verdict, math.exp(mode.center))}"


def regression(verdict: Verdict, noise: Noise, processes: int, mode: Mode) -> Verdict:
    where = "the only process" if processes == 1 else f"all {processes} processes"
    pct = format_percent(verdict.threshold)
    again = ", ".join(f"×{r:.3f}" for r in verdict.confirmations)
    confirmed = f" (re-measured in fresh processes: {again})" if again else ""
    return finish(verdict, Outcome.REGRESSION,
                  f"{measured(verdict)} slower than threshold {pct} and its {_noise_text(verdict, noise)} "
                  f"in {where}{confirmed}" + _modes_text(verdict, noise, mode))


def unconfirmed(verdict: Verdict, noise: Noise, slower: int, processes: int) -> Verdict:
    again = ", ".join(f"×{r:.3f}" for r in verdict.confirmations)
    return finish(verdict, Outcome.PASS,
                  f"first process {measured(verdict)} but only {slower} of {processes} processes were slower "
                  f"(fresh re-measurements: {again}); {_noise_text(verdict, noise)}")


def inconclusive(verdict: Verdict, noise: Noise, evidence: list[str]) -> Verdict:
    return finish(verdict, Outcome.INCONCLUSIVE,
                  f"{measured(verdict)} but the machine was disturbed: {'; '.join(evidence)}; "
                  f"{_noise_text(verdict, noise)}")


def improved(verdict: Verdict, noise: Noise) -> Verdict:
    return finish(verdict, Outcome.IMPROVED, f"{measured(verdict)} faster by more than threshold "
                  f"{format_percent(verdict.threshold)} and its {_noise_text(verdict, noise)}")


def passed(verdict: Verdict, noise: Noise, mode: Mode) -> Verdict:
    return finish(verdict, Outcome.PASS, f"{measured(verdict)} within threshold {format_percent(verdict.threshold)}; "
                  f"{_noise_text(verdict, noise)}" + _modes_text(verdict, noise, mode))


def advice(result: CaseResult, noise: Noise, threshold: float) -> str:
    """What would make a case gateable at ``threshold``, from what its measurement says about it."""
    tips: list[str] = []
    case = result.case
    host_bound = Flag.ENQUEUE_BOUND in result.flags
    if case.is_cuda and "cuda-graph" not in case.variant and (host_bound or case.batch_size <= 8):
        tips.append("CUDA graphs (--trt-variant cuda-graph) or torch.compile, which take the Python launch "
                    "cost that varies between processes out of the timing")
    if case.batch_size <= 8:
        tips.append("a larger batch")
    if len(noise.modes) > 1:
        tips.append("fixing the kernel choice (each process autotunes its own)")
    if noise.df < 4:
        tips.append("more baseline runs from separate processes (pytest-trt baseline add)")
    if math.isfinite(noise.noise()):  # runs orders of magnitude apart: no threshold would help
        needed = math.ceil(noise.noise() * 100 * 1.2)
        tips.append(f"a per-case threshold of {max(needed, 1)}% (@pytest.mark.trt(threshold=\"{max(needed, 1)}%\"))")
    return "; ".join(tips)


def beyond_range(verdict: Verdict, noise: Noise, tonight: float) -> Verdict:
    """Medians so far apart (each a valid latency) that their ratio or its CI leaves the floats."""
    runs = ", ".join(format_seconds(exp(m.center)) for m in noise.modes)
    return finish(verdict, Outcome.UNSTABLE,
                  f"not gateable: its medians are too far apart to compare (baseline {runs}, spread ±"
                  f"{format_percent(noise.noise())} between processes; tonight {format_seconds(exp(tonight))}); "
                  "check the baseline's runs (pytest-trt baseline show)")


def unstable(verdict: Verdict, noise: Noise, result: CaseResult) -> Verdict:
    verdict.advice = advice(result, noise, verdict.threshold)
    limit = exp(noise.band(noise.main, verdict.threshold))
    return finish(verdict, Outcome.UNSTABLE,
                  f"not gateable at {format_percent(verdict.threshold)}: its noise between processes "
                  f"(±{format_percent(noise.noise())}, {verdict.baseline_runs} runs) exceeds it, so it fails only "
                  f"beyond ×{limit:.2f}; {measured(verdict)}; would help: {verdict.advice}")
