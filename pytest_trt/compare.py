"""``pytest-trt compare``: a table of two or more baseline or results files, the first as reference.

Each later file is judged case by case against the first with the gate's own rule
(``pytest_trt.gate.judge``), so the table's ratios and CIs are the gate's. When hardware differs the
files are still compared (a cross-GPU table is a common question) but nothing is gated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_trt import baseline as baseline_mod
from pytest_trt import gate, jsonfile, schema
from pytest_trt.baseline import Baseline, BaselineError
from pytest_trt.records import CaseResult, JSONDict
from pytest_trt.verdict import Outcome, Verdict, format_seconds


@dataclass
class Source:
    """One input file: its reference view (all runs) and its current view (newest results)."""

    path: str
    kind: str  # "baseline" or "results"
    environment: JSONDict
    reference: Baseline
    current: dict[str, CaseResult]  # key -> result

    @property
    def label(self) -> str:
        return Path(self.path).name


@dataclass
class Comparison:
    """Everything ``compare`` shows: sources, verdicts per later source, per-group speed-ups."""

    sources: list[Source]
    keys: list[str]
    verdicts: list[dict[str, Verdict]]  # one dict per source after the first
    hardware_notes: list[str]
    geomeans: list[dict[str, tuple[float, int]]] = field(default_factory=list)

    @property
    def regressions(self) -> list[Verdict]:
        return [v for per in self.verdicts for v in per.values() if v.outcome is Outcome.REGRESSION]


def load_source(path: str | Path) -> Source:
    """Read a baseline file or a results file; ``BaselineError`` naming the file otherwise."""
    where = str(path)
    try:
        data = jsonfile.read(path, "file")
    except jsonfile.FileFormatError as exc:
        raise BaselineError(str(exc)) from None
    if isinstance(data, dict) and "runs" in data:
        return _from_baseline(baseline_mod.from_dict(data, where))
    if isinstance(data, dict) and "cases" in data:
        try:
            document = schema.results(data, where)
        except schema.SchemaError as exc:
            raise BaselineError(str(exc)) from None
        run = baseline_mod.runs_from_results(document.cases, document.environment, Path(where).name,
                                             document.created or None)
        current = {key: entry.to_result(key) for key, entry in run.cases.items()}
        return Source(where, "results", document.environment, Baseline(where, [run]), current)
    raise BaselineError(f"{where}: neither a pytest-trt baseline file ('runs') nor a results file ('cases')")


def _from_baseline(reference: Baseline) -> Source:
    if not reference.runs:
        raise BaselineError(f"{reference.path}: baseline file holds no runs")
    newest = reference.runs[-1]
    current = {key: entry.to_result(key) for key, entry in newest.cases.items()}
    return Source(reference.path, "baseline", newest.environment, reference, current)


def compare(paths: Sequence[str | Path], *, threshold: float = 0.05, alpha: float = 0.01) -> Comparison:
    """Judge every later file against the first."""
    if len(paths) < 2:
        raise ValueError("compare needs at least two files")
    sources = [load_source(p) for p in paths]
    first = sources[0]
    keys = list(first.current)
    for other in sources[1:]:
        keys += [k for k in other.current if k not in keys]
    policy = gate.Policy(threshold=threshold, alpha=alpha, confirm=0)
    verdicts, notes, geomeans = [], [], []
    for other in sources[1:]:
        per = {key: gate.judge(gate.Measurement(other.current[key], other.environment), first.reference, policy)
               for key in keys if key in other.current}
        verdicts.append(per)
        difference = gate.hardware_difference(first.environment, other.environment)
        if difference:
            notes.append(f"{other.label} vs {first.label}: {difference} — comparison, not a gate")
        geomeans.append(_geomeans(per, other.current))
    return Comparison(sources, keys, verdicts, notes, geomeans)


def _geomeans(verdicts: dict[str, Verdict], cases: dict[str, CaseResult]) -> dict[str, tuple[float, int]]:
    """Geometric-mean speed-up (reference median / this median) per backend/precision."""
    logs: dict[str, list[float]] = {}
    for key, verdict in verdicts.items():
        if verdict.ratio and math.isfinite(verdict.ratio) and verdict.ratio > 0:
            case = cases[key].case
            logs.setdefault(f"{case.backend}/{case.precision}", []).append(-math.log(verdict.ratio))
    return {g: (math.exp(sum(v) / len(v)), len(v)) for g, v in sorted(logs.items())}


def _median(case: CaseResult) -> float | None:
    return case.median


def rows(result: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and body of the per-case table."""
    first = result.sources[0]
    header = ["case"] + [f"median {s.label}" for s in result.sources]
    for other in result.sources[1:]:
        header += [f"{other.label}/{first.label} (CI)", "verdict"]
    body = []
    for key in result.keys:
        holder = next(s.current[key] for s in result.sources if key in s.current)
        row = [holder.case.id]
        for source in result.sources:
            case = source.current.get(key)
            row.append(format_seconds(_median(case)) if case else "—")
        for per in result.verdicts:
            verdict = per.get(key)
            row += _verdict_cells(verdict)
        body.append(row)
    return header, body


def _verdict_cells(verdict: Verdict | None) -> list[str]:
    if verdict is None:
        return ["—", "MISSING"]
    if verdict.ratio is None:
        return ["—", verdict.outcome.value]
    ratio = f"×{verdict.ratio:.3f}"
    if verdict.ratio_ci:
        ratio += f" ({verdict.ratio_ci[0]:.3f}–{verdict.ratio_ci[1]:.3f})"
    return [ratio, verdict.outcome.value]


def render(result: Comparison, *, markdown: bool = False) -> str:
    """The whole report: header lines, the table, geo-mean speed-ups."""
    lines = [f"pytest-trt compare: reference {result.sources[0].path}"]
    for source in result.sources:
        device = baseline_mod.describe_environment(source.environment)
        lines.append(f"  {source.label}: {source.kind}, {len(source.current)} cases, {device}")
    lines += [f"  {note}" for note in result.hardware_notes]
    header, body = rows(result)
    lines.append("")
    lines += _markdown_table(header, body) if markdown else _text_table(header, body)
    lines.append("")
    for other, geo in zip(result.sources[1:], result.geomeans, strict=True):
        lines.append(f"geo-mean speed-up of {other.label} over {result.sources[0].label} (>1: faster):")
        groups = [f"  {group}: ×{value:.3f} over {n} cases" for group, (value, n) in geo.items()]
        lines += groups or ["  (no cases)"]
    if markdown:
        lines = [line if line.startswith("|") or not line.strip() else line.strip() + "  " for line in lines]
    return "\n".join(lines) + "\n"


def _text_table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in body]


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"
    return [line(header), rule] + [line(r) for r in body]
