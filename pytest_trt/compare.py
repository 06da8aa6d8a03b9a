"""``pytest-trt compare``: a table of two or more baseline or results files, the first as reference.

Each later file is judged case by case against the first with the gate's own rule
(``pytest_trt.gate.judge``), so the table's ratios and CIs are the gate's. When hardware differs the
files are still compared (a cross-GPU table is a common question) but nothing is gated.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_trt import baseline as baseline_mod
from pytest_trt import gate
from pytest_trt.baseline import Baseline, BaselineError, BaselineRun


@dataclass
class Source:
    """One input file: its reference view (all runs) and its current view (newest results)."""

    path: str
    kind: str  # "baseline" or "results"
    environment: dict[str, Any]
    reference: Baseline
    current: dict[str, dict[str, Any]]  # nodeid -> CaseResult-shaped dict

    @property
    def label(self) -> str:
        return Path(self.path).name


@dataclass
class Comparison:
    """Everything ``compare`` shows: sources, verdicts per later source, per-group speed-ups."""

    sources: list[Source]
    nodeids: list[str]
    verdicts: list[dict[str, gate.Verdict]]  # one dict per source after the first
    hardware_notes: list[str]
    geomeans: list[dict[str, tuple[float, int]]] = field(default_factory=list)

    @property
    def regressions(self) -> list[gate.Verdict]:
        return [v for per in self.verdicts for v in per.values() if v.outcome == gate.REGRESSION]


def load_source(path: str | Path) -> Source:
    """Read a baseline file or a results file; ``BaselineError`` naming the file otherwise."""
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{where}: file does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{where}: cannot read file: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BaselineError(f"{where}: not valid JSON (truncated or corrupt?): {exc}") from None
    if isinstance(data, dict) and "runs" in data:
        return _from_baseline(baseline_mod.from_dict(data, where))
    if isinstance(data, dict) and "cases" in data:
        return _from_results(data, where)
    raise BaselineError(f"{where}: neither a pytest-trt baseline file ('runs') nor a results file ('cases')")


def _from_baseline(reference: Baseline) -> Source:
    if not reference.runs:
        raise BaselineError(f"{reference.path}: baseline file holds no runs")
    newest = reference.runs[-1]
    current = {nodeid: baseline_mod.entry_to_result(nodeid, e) for nodeid, e in newest.cases.items()}
    return Source(reference.path, "baseline", newest.environment, reference, current)


def _from_results(data: dict[str, Any], where: str) -> Source:
    if data.get("schema_version") != 1:
        version = data.get("schema_version")
        raise BaselineError(f"{where}: results file has schema_version {version!r}, expected 1")
    environment, cases = data.get("environment"), data.get("cases")
    if not isinstance(environment, dict) or not isinstance(environment.get("hardware"), dict):
        raise BaselineError(f"{where}: results file lacks 'environment.hardware'")
    if not isinstance(cases, list) or not all(_is_case(c) for c in cases):
        raise BaselineError(f"{where}: 'cases' must be a list of case results with 'nodeid' and 'case'")
    current = {str(c["nodeid"]): c for c in cases}
    try:
        run = baseline_mod.new_run(cases, environment)
    except (KeyError, TypeError, ValueError) as exc:
        raise BaselineError(f"{where}: malformed case result: {exc}") from None
    created = str(data.get("created", run.created))
    reference = Baseline(where, [BaselineRun(run.run_id, created, environment, run.cases)])
    return Source(where, "results", environment, reference, current)


def _is_case(item: object) -> bool:
    return isinstance(item, dict) and "nodeid" in item and "case" in item


def compare(paths: Sequence[str | Path], *, threshold: float = 0.05, alpha: float = 0.01) -> Comparison:
    """Judge every later file against the first."""
    if len(paths) < 2:
        raise ValueError("compare needs at least two files")
    sources = [load_source(p) for p in paths]
    first = sources[0]
    nodeids = list(first.current)
    for other in sources[1:]:
        nodeids += [n for n in other.current if n not in nodeids]
    verdicts, notes, geomeans = [], [], []
    for other in sources[1:]:
        per = {
            nodeid: gate.judge(
                other.current[nodeid], first.reference, other.environment, threshold=threshold, alpha=alpha
            )
            for nodeid in nodeids
            if nodeid in other.current
        }
        verdicts.append(per)
        difference = gate.hardware_difference(first.environment, other.environment)
        if difference:
            notes.append(f"{other.label} vs {first.label}: {difference} — comparison, not a gate")
        geomeans.append(_geomeans(per, other.current))
    return Comparison(sources, nodeids, verdicts, notes, geomeans)


def _geomeans(
    verdicts: dict[str, gate.Verdict], cases: dict[str, dict[str, Any]]
) -> dict[str, tuple[float, int]]:
    """Geometric-mean speed-up (reference median / this median) per backend/precision."""
    logs: dict[str, list[float]] = {}
    for nodeid, verdict in verdicts.items():
        if verdict.ratio and math.isfinite(verdict.ratio) and verdict.ratio > 0:
            case = cases[nodeid].get("case") or {}
            group = f"{case.get('backend', '?')}/{case.get('precision', '?')}"
            logs.setdefault(group, []).append(-math.log(verdict.ratio))
    return {g: (math.exp(sum(v) / len(v)), len(v)) for g, v in sorted(logs.items())}


def _median(case: dict[str, Any]) -> float | None:
    timing = case.get("timing") or {}
    stats = timing.get("stats") or {}
    if isinstance(stats.get("median"), (int, float)):
        return float(stats["median"])
    samples = [float(s) for s in timing.get("samples") or []]
    return statistics.median(samples) if samples else None


def rows(result: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and body of the per-case table."""
    first = result.sources[0]
    header = ["case"] + [f"median {s.label}" for s in result.sources]
    for other in result.sources[1:]:
        header += [f"{other.label}/{first.label} (CI)", "verdict"]
    body = []
    for nodeid in result.nodeids:
        holder = next(s.current[nodeid] for s in result.sources if nodeid in s.current)
        case_id = str(holder.get("case_id") or nodeid)
        row = [case_id]
        for source in result.sources:
            case = source.current.get(nodeid)
            row.append(gate.format_seconds(_median(case)) if case else "—")
        for per in result.verdicts:
            verdict = per.get(nodeid)
            row += _verdict_cells(verdict)
        body.append(row)
    return header, body


def _verdict_cells(verdict: gate.Verdict | None) -> list[str]:
    if verdict is None:
        return ["—", "MISSING"]
    if verdict.ratio is None:
        return ["—", verdict.outcome]
    ratio = f"×{verdict.ratio:.3f}"
    if verdict.ratio_ci:
        ratio += f" ({verdict.ratio_ci[0]:.3f}–{verdict.ratio_ci[1]:.3f})"
    return [ratio, verdict.outcome]


def render(result: Comparison, *, markdown: bool = False) -> str:
    """The whole report: header lines, the table, geo-mean speed-ups."""
    lines = [f"pytest-trt compare: reference {result.sources[0].path}"]
    for source in result.sources:
        hw = source.environment.get("hardware") or {}
        device = hw.get("gpu_name") or hw.get("cpu_model") or hw.get("kind")
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
