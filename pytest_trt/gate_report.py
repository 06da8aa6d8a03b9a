"""Markdown summary of the gate's verdicts, for terminals, files and GitHub job summaries."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_trt.gate import OUTCOMES, PASS, Verdict, format_p, format_seconds

# Worst first: what a reader of a failed nightly wants to see at the top.
_ORDER = {
    outcome: i
    for i, outcome in enumerate(
        ("REGRESSION", "UNSTABLE", "MISSING", "INCOMPARABLE", "NEW", "IMPROVED", "PASS")
    )
}


def markdown(verdicts: Sequence[Verdict], environment: Mapping[str, Any]) -> str:
    """Counts per outcome and a table of every case that did not simply pass."""
    counts = Counter(v.outcome for v in verdicts)
    lines = ["## pytest-trt gate", "", f"Hardware: {describe_hardware(environment)}", ""]
    lines.append("| " + " | ".join(OUTCOMES) + " |")
    lines.append("|" + "---:|" * len(OUTCOMES))
    lines.append("| " + " | ".join(str(counts.get(o, 0)) for o in OUTCOMES) + " |")
    flagged = sorted(
        (v for v in verdicts if v.outcome != PASS), key=lambda v: (_ORDER.get(v.outcome, 99), v.case_id)
    )
    lines.append("")
    if not flagged:
        lines.append(f"All {len(verdicts)} cases passed." if verdicts else "No cases were judged.")
        return "\n".join(lines) + "\n"
    lines.append("| outcome | case | baseline median | current median | ratio (CI) | p | details |")
    lines.append("|---|---|---:|---:|---:|---:|---|")
    for v in flagged:
        ratio = "—" if v.ratio is None else f"×{v.ratio:.3f}"
        if v.ratio_ci is not None:
            ratio += f" ({v.ratio_ci[0]:.3f}–{v.ratio_ci[1]:.3f})"
        p = "—" if v.p_value is None else format_p(v.p_value)
        cells = [
            f"**{v.outcome}**" if v.failed else v.outcome,
            f"`{v.case_id}`",
            format_seconds(v.baseline_median) if v.baseline_median is not None else "—",
            format_seconds(v.current_median) if v.current_median is not None else "—",
            ratio,
            p,
            v.detail,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def describe_hardware(environment: Mapping[str, Any]) -> str:
    hw = environment.get("hardware") or {}
    if hw.get("kind") == "cuda" or hw.get("gpu_name"):
        count = hw.get("gpu_count") or 1
        text = f"{count} × {hw.get('gpu_name')}"
        if hw.get("compute_capability"):
            text += f" (sm {hw['compute_capability']})"
        if hw.get("mig"):
            text += f", MIG {hw['mig']}"
        return text
    return f"CPU {hw.get('cpu_model') or 'unknown'}" + (
        f", {hw['cpu_count']} cores" if hw.get("cpu_count") else ""
    )


def write_step_summary(text: str) -> bool:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` when set; returns whether it was written."""
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        return False
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return True
