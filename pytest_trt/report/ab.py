"""The A/B section of every report: one table of the run's A/B cases, and a line for each that did not
simply pass. Drawn from ``CaseResult.ab`` (``pytest_trt.ab``) with the one table's renderers, so it
looks like the rest of the terminal, markdown and HTML output.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pytest_trt.ab.record import AbArm, AbResult
from pytest_trt.records import CaseResult
from pytest_trt.report import escape, table
from pytest_trt.verdict import SEVERITY, Outcome, format_percent

HEADER = ["test", "A", "B", "A ms", "B ms", "B/A", "CI", "processes", "rounds", "outputs", "metric drop", "outcome"]
TITLE = "A/B: B/A from interleaved rounds"
EXPLAINED = {
    Outcome.PASS: "B is not slower than A by the threshold",
    Outcome.REGRESSION: "B is slower than A beyond the threshold in every process: the test failed",
    Outcome.IMPROVED: "B is faster than A beyond the threshold",
    Outcome.UNSTABLE: "the interval is too wide to decide at the threshold",
    Outcome.INCONCLUSIVE: "slower, but a fresh process could not confirm it",
}


def others(results: Sequence[CaseResult]) -> list[CaseResult]:
    """The results that are not A/B cases: an A/B case's B timing is its own table's, and beside the
    per-model table's cases it would set their speed-ups against another test's interleaved blocks."""
    return [r for r in results if r.ab is None]


def compared(results: Sequence[CaseResult]) -> list[tuple[CaseResult, AbResult]]:
    return [(r, r.ab) for r in sorted(results, key=lambda r: r.nodeid) if r.ab is not None]


def _arm(arm: AbArm) -> str:
    case = arm.case
    how = f"{case.backend} {case.precision}" + ("" if case.variant == "eager" else f" {case.variant}")
    label = "" if arm.label in ("A", "B") else f"{arm.label}: "
    return f"{label}{arm.source}, {how}"


def _ms(seconds: float | None) -> str:
    return table.num(None if seconds is None else seconds * 1e3)


def _row(result: CaseResult, ab: AbResult) -> list[str]:
    ci = f"{ab.ci[0]:.3f}–{ab.ci[1]:.3f}" if ab.ci else "-"
    outputs = "-" if ab.agreement is None else ("agree" if ab.agreement.passed else "DISAGREE")
    drop = "-" if ab.task is None else f"{ab.task.drop:+.4f}"
    fresh = sum(p.fresh for p in ab.processes)
    processes = f"{len(ab.processes)}" + (f" ({fresh} fresh)" if fresh else "")
    return [result.key or result.nodeid, _arm(ab.reference), _arm(ab.candidate), _ms(ab.reference.median_s),
            _ms(ab.candidate.median_s), "-" if ab.ratio is None else f"×{ab.ratio:.3f}", ci, processes,
            str(sum(p.rounds for p in ab.processes)), outputs, drop,
            ab.outcome.value + (" (accuracy)" if ab.accuracy_failed else "")]


def _table(found: list[tuple[CaseResult, AbResult]]) -> table.Table:
    rows = [_row(r, ab) for r, ab in found]
    outcomes = ["regression" if ab.failed else ab.outcome.value for _, ab in found]
    return table.Table(TITLE, list(HEADER), rows, outcomes)


def counts(found: list[tuple[CaseResult, AbResult]]) -> str:
    seen = Counter(ab.outcome for _, ab in found)
    return ", ".join(f"{seen[o]} {o.value}" for o in SEVERITY if seen[o])


def _flagged(found: list[tuple[CaseResult, AbResult]]) -> list[str]:
    worst = sorted(found, key=lambda f: (SEVERITY.index(f[1].outcome), f[0].nodeid))
    return [ab.message for _, ab in worst if ab.outcome is not Outcome.PASS or ab.accuracy_failed]


def terminal(results: Sequence[CaseResult]) -> list[str]:
    found = compared(results)
    if not found:
        return []
    lines = table.text(_table(found))
    lines.append(f"a/b (threshold {format_percent(found[0][1].threshold)}): {counts(found)}")
    return lines + [f"  {escape.terminal(line)}" for line in _flagged(found)] + [""]


def markdown(results: Sequence[CaseResult]) -> list[str]:
    found = compared(results)
    if not found:
        return []
    lines = table.markdown(_table(found))
    lines += [f"A/B: {escape.markdown(counts(found))}", ""]
    lines += [f"- {escape.markdown(line)}" for line in _flagged(found)]
    seen = {ab.outcome for _, ab in found}
    lines += ["", "; ".join(f"**{o.value}**: {EXPLAINED[o]}" for o in SEVERITY if o in seen and o in EXPLAINED), ""]
    return lines


def html(results: Sequence[CaseResult]) -> str:
    found = compared(results)
    if not found:
        return ""
    items = "".join(f"<li>{escape.html(line)}</li>" for line in _flagged(found))
    return (table.html(_table(found), level="h3") + f"<p>A/B: {escape.html(counts(found))}</p>"
            + (f"<ul>{items}</ul>" if items else ""))
