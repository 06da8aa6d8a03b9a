"""The gate's verdicts for people: a count per outcome, and each case that did not simply pass."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from pytest_trt.records import JSON, Flag
from pytest_trt.report import escape
from pytest_trt.verdict import SEVERITY, Outcome, Verdict, format_percent, format_seconds

EXPLAINED = {
    Outcome.PASS: "no slowdown beyond the threshold and the case's noise",
    Outcome.REGRESSION: "slower than the threshold and its noise in every process: the test failed",
    Outcome.IMPROVED: "faster beyond the threshold and its noise",
    Outcome.UNSTABLE: "not gateable at this threshold: its noise between processes is larger",
    Outcome.INCONCLUSIVE: "slower, but the machine itself was disturbed meanwhile",
    Outcome.INCOMPARABLE: "other hardware or timing method: compared, not gated",
    Outcome.NEW: "no baseline entry yet",
    Outcome.MISSING: "in the baseline, not run",
}

# What the timing said about a case: shown beside the verdict, never one (docs/design.md, rule 7).
FLAGS_EXPLAINED = {
    Flag.NOISY: "its samples' CV is above 2.5 % (trtexec's rule); a flag, not a verdict",
    Flag.THROTTLED: "NVML reported clock throttling while it was timed",
    Flag.ENQUEUE_BOUND: "launching a call takes more than 0.8 × its GPU time: the host sets the pace "
                        "(CUDA graphs help)",
    Flag.CONTENDED: "other processes took a telling share of the CPUs while it was timed",
}


def _lines(verdict: Verdict) -> list[Verdict]:
    return [verdict] + ([verdict.energy] if verdict.energy is not None else [])


def counts(verdicts: Sequence[Verdict]) -> Counter[Outcome]:
    return Counter(v.outcome for verdict in verdicts for v in _lines(verdict))


def terminal(verdicts: Sequence[Verdict]) -> list[str]:
    """'gate: 1 REGRESSION, 11 PASS' and one line for every verdict that did not simply pass."""
    if not verdicts:
        return []
    found = counts(verdicts)
    lines = ["gate: " + ", ".join(f"{found[o]} {o.value}" for o in SEVERITY if found[o])]
    for verdict in sorted(verdicts, key=_order):
        lines += [f"  {escape.terminal(v.message)}" for v in _lines(verdict) if v.outcome is not Outcome.PASS]
    return lines


def _order(verdict: Verdict) -> tuple[int, str]:
    return SEVERITY.index(verdict.outcome), verdict.case_id


def markdown(verdicts: Sequence[Verdict], environment: Mapping[str, JSON]) -> str:
    """Counts per outcome and a table of every case that did not simply pass."""
    found = counts(verdicts)
    lines = ["## pytest-trt gate", "", f"Hardware: {escape.markdown(describe_hardware(environment))}", "",
             "| " + " | ".join(o.value for o in SEVERITY) + " |", "|" + "---:|" * len(SEVERITY),
             "| " + " | ".join(str(found[o]) for o in SEVERITY) + " |", ""]
    flagged = [v for verdict in sorted(verdicts, key=_order) for v in _lines(verdict) if v.outcome is not Outcome.PASS]
    if not flagged:
        lines.append(f"All {len(verdicts)} cases passed." if verdicts else "No cases were judged.")
        return "\n".join(lines) + "\n"
    lines += ["| outcome | case | baseline | tonight | ratio (CI) | detectable | details |",
              "|---|---|---:|---:|---:|---:|---|"]
    for v in flagged:
        ratio = "—" if v.ratio is None else f"×{v.ratio:.3f}"
        if v.ratio_ci is not None:
            ratio += f" ({v.ratio_ci[0]:.3f}–{v.ratio_ci[1]:.3f})"
        cells = [f"**{v.outcome.value}**" if v.failed else v.outcome.value,
                 escape.markdown(v.case_id + ("" if v.metric == "latency" else f" ({v.metric})")),
                 format_seconds(v.baseline_median) if v.metric == "latency" else "—",
                 format_seconds(v.current_median) if v.metric == "latency" else "—",
                 ratio, format_percent(v.detectable), escape.markdown(v.detail)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "; ".join(f"**{o.value}**: {EXPLAINED[o]}" for o in SEVERITY if found[o])]
    return "\n".join(lines) + "\n"


def describe_hardware(environment: Mapping[str, JSON]) -> str:
    hardware = environment.get("hardware")
    hw: Mapping[str, JSON] = hardware if isinstance(hardware, dict) else {}
    if hw.get("kind") == "cuda" or hw.get("gpu_name"):
        count = hw.get("gpu_count") or 1
        text = f"{count} × {hw.get('gpu_name')}"
        if hw.get("compute_capability"):
            text += f" (sm {hw['compute_capability']})"
        if hw.get("mig"):
            text += f", MIG {hw['mig']}"
        return text
    return f"CPU {hw.get('cpu_model') or 'unknown'}" + (f", {hw['cpu_count']} cores" if hw.get("cpu_count") else "")
