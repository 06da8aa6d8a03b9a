"""The one results table, per model, drawn for the terminal, markdown and HTML.

In the spirit of the users' own tables: backend, precision, batch, median and p99 latency,
throughput, speed-up against the fp32 PyTorch runner of the same model and batch, accuracy, power,
the flags the timing raised, the gate's verdict and the slowdown it could detect.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_trt.records import CaseResult, CaseState, Flag, Stats
from pytest_trt.report import escape
from pytest_trt.verdict import Verdict, format_percent

COLUMNS = ("backend", "precision", "batch", "variant", "status", "median ms", "p99 ms", "calls/sample", "items/s",
           "speed-up", "vs own fp32", "TFLOP/s", "% peak", "metric", "value", "drop", "W", "items/s/W", "flags",
           "verdict", "detectable")
ALWAYS = ("backend", "precision", "batch", "status")


@dataclass(frozen=True)
class Table:
    """One model's rows; ``outcomes`` is each row's verdict (or state) for colouring, ``verdicts`` and
    ``flags`` what the HTML report explains in a cell's tooltip."""

    title: str
    header: list[str]
    rows: list[list[str]]
    outcomes: list[str]
    verdicts: list[Verdict | None] = field(default_factory=list)
    flags: list[list[Flag]] = field(default_factory=list)


def tables(results: Sequence[CaseResult]) -> list[Table]:
    """A table per model name, rows sorted by backend, precision, batch (numerically), variant."""
    by_model: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_model[result.model_name].append(result)
    out = []
    for model, cases in sorted(by_model.items()):
        cases.sort(key=lambda r: (r.case.backend, r.case.precision, r.case.batch_size, r.case.variant))
        body = [_row(r, _fp32(cases, "torch", r), _fp32(cases, r.case.backend, r)) for r in cases]
        header, body = _drop_empty(COLUMNS, body)
        outcomes = [r.verdict.outcome.value if r.verdict else ("" if r.status is CaseState.OK else r.status.value)
                    for r in cases]
        out.append(Table(model, header, body, outcomes, [r.verdict for r in cases], [list(r.flags) for r in cases]))
    return out


def _fp32(cases: list[CaseResult], backend: str, result: CaseResult) -> CaseResult | None:
    """The timed fp32 eager case of ``backend`` at the batch size of ``result``."""
    for other in cases:
        c = other.case
        if (c.backend, c.precision, c.variant, c.batch_size) == (backend, "fp32", "eager", result.case.batch_size) \
                and other.timing is not None:
            return other
    return None


def _speedup(t: Stats | None, ref: CaseResult | None) -> str:
    return f"{ref.timing.stats.median / t.median:.2f}x" if t and ref and ref.timing else "-"


def _row(r: CaseResult, ref: CaseResult | None, own: CaseResult | None) -> list[str]:
    """``ref``: fp32 PyTorch of the same batch (the table's reference runner); ``own``: this backend's fp32."""
    t = r.timing.stats if r.timing else None
    task, agreed, tel = r.accuracy.task, r.accuracy.agreement, r.telemetry
    verdict = r.verdict
    return [
        r.case.backend, r.case.precision, str(r.case.batch_size),
        "" if r.case.variant == "eager" else r.case.variant,
        r.status.value.upper() if r.status is not CaseState.OK else "ok",
        num(t.median * 1e3 if t else None), num(t.p99 * 1e3 if t else None),
        # > 1: short CUDA calls timed in blocks, so the percentiles are of block means
        str(r.timing.calls_per_sample) if r.timing and r.timing.calls_per_sample > 1 else "",
        num(t.throughput if t else None), _speedup(t, ref), _speedup(t, own),
        num(r.build.tflops if t else None), num(r.build.percent_of_peak if t else None),
        task.metric if task else ("agree" if agreed else "-"),
        num(task.value if task else None), "-" if task is None else f"{task.drop:+.4f}",
        num(tel.power_mean_w if tel else None), num(tel.items_per_s_per_w if tel else None),
        ",".join(f.value for f in r.flags),
        verdict.outcome.value if verdict else "",
        f"≥{format_percent(verdict.detectable)}" if verdict and verdict.detectable is not None else "",
    ]


def num(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _drop_empty(header: tuple[str, ...], body: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Hide columns with nothing to say (no telemetry on CPU, no verdicts without a baseline)."""
    keep = [i for i, name in enumerate(header) if name in ALWAYS or any(row[i] not in ("", "-") for row in body)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in body]


def text(table: Table) -> list[str]:
    cells = [[escape.terminal(c) for c in row] for row in [table.header, *table.rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(table.header))]
    lines = [escape.terminal(table.title)]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return lines


def markdown(table: Table, level: str = "##") -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(escape.markdown(c) for c in cells) + " |"

    return [f"{level} {escape.markdown(table.title)}", "", line(table.header), "|" + "---|" * len(table.header),
            *(line(row) for row in table.rows), ""]


def html(table: Table, level: str = "h2") -> str:
    """The table as HTML: rows classed by outcome; the verdict and flags cells explain themselves on hover."""
    from pytest_trt.report.verdicts import EXPLAINED, FLAGS_EXPLAINED

    head = "".join(f"<th>{escape.html(h)}</th>" for h in table.header)
    verdict_at = table.header.index("verdict") if "verdict" in table.header else -1
    flags_at = table.header.index("flags") if "flags" in table.header else -1
    body = []
    for i, (row, outcome) in enumerate(zip(table.rows, table.outcomes)):
        verdict = table.verdicts[i] if i < len(table.verdicts) else None
        flags = table.flags[i] if i < len(table.flags) else []
        titles = {verdict_at: f"{verdict.outcome.value}: {EXPLAINED[verdict.outcome]}. {verdict.message}"
                  if verdict else "",
                  flags_at: "; ".join(f"{f.value}: {FLAGS_EXPLAINED[f]}" for f in flags)}
        cells = "".join(f"<td title='{escape.html(titles[j])}'>{escape.html(c)}</td>" if titles.get(j)
                        else f"<td>{escape.html(c)}</td>" for j, c in enumerate(row))
        body.append(f"<tr class='{escape.html(outcome.lower())}'>{cells}</tr>")
    title = f"<{level}>{escape.html(table.title)}</{level}>"
    return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
