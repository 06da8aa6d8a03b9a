"""The one results table, per model, drawn for the terminal, markdown and HTML.

In the spirit of the users' own tables: backend, precision, batch, median and p99 latency,
throughput, speed-up against the fp32 PyTorch runner of the same model and batch, accuracy, power,
the flags the timing raised, the gate's verdict and the slowdown it could detect. Two more tables
per model appear only when a case measured them: its pipeline stages (prepare / infer /
post-process / total, as a user's own per-frame split did) and its streams sweep (per-request
latency percentiles and aggregate throughput against one stream, as perf_analyzer reports them).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_trt.records import CaseResult, CaseState, Flag, Stats
from pytest_trt.report import escape
from pytest_trt.report.grid import markdown_grid, text_grid
from pytest_trt.verdict import Verdict, format_percent

COLUMNS = ("backend", "precision", "batch", "variant", "streams", "status", "median ms", "p99 ms", "calls/sample",
           "items/s", "speed-up", "vs own fp32", "TFLOP/s", "% peak", "metric", "value", "drop", "W", "items/s/W",
           "flags", "verdict", "detectable")
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
        cases.sort(key=lambda r: (r.case.backend, r.case.precision, r.case.batch_size, r.case.variant,
                                  r.case.streams))
        body = [_row(r, _fp32(cases, "torch", r), _fp32(cases, r.case.backend, r)) for r in cases]
        header, body = _drop_empty(COLUMNS, body)
        out.append(Table(model, header, body, [_outcome(r) for r in cases], [r.verdict for r in cases],
                         [list(r.flags) for r in cases]))
        out += [t for t in (_stage_table(model, cases), _streams_table(model, cases)) if t is not None]
    return out


def _outcome(r: CaseResult) -> str:
    return r.verdict.outcome.value if r.verdict else ("" if r.status is CaseState.OK else r.status.value)


def _fp32(cases: list[CaseResult], backend: str, result: CaseResult) -> CaseResult | None:
    """The timed fp32 eager case of ``backend`` at the batch size and streams of ``result``."""
    wanted = (backend, "fp32", "eager", result.case.batch_size, result.case.streams)
    for other in cases:
        c = other.case
        if (c.backend, c.precision, c.variant, c.batch_size, c.streams) == wanted and other.timing is not None:
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
        "" if r.case.streams == 1 else str(r.case.streams),
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


STAGE_COLUMNS = ("backend", "precision", "batch", "variant", "prepare ms", "infer ms", "post-process ms",
                 "of which d2h ms", "total ms", "items/s", "infer share", "stage verdicts")


def _stage_table(model: str, cases: list[CaseResult]) -> Table | None:
    """Where a batch's time goes from raw input to answer; None when no case measured stages.

    ``infer`` is the network's own timing (GPU time on CUDA); the other stages are host times and
    ``total`` is measured end to end, so it also holds the input copy and the wait for the device.
    """
    staged = [r for r in cases if r.stages]
    if not staged:
        return None

    def ms(r: CaseResult, stage: str) -> str:
        t = r.timing if stage == "infer" else r.stages.get(stage)
        return num(t.stats.median * 1e3 if t else None)

    body = []
    for r in staged:
        total, infer = r.stages.get("total"), r.timing
        share = f"{infer.stats.median / total.stats.median:.0%}" if total and infer else "-"
        body.append([r.case.backend, r.case.precision, str(r.case.batch_size),
                     "" if r.case.variant == "eager" else r.case.variant,
                     ms(r, "prepare"), ms(r, "infer"), ms(r, "post"), ms(r, "d2h"), ms(r, "total"),
                     num(total.stats.throughput if total else None), share, _stage_verdicts(r)])
    header, body = _drop_empty(STAGE_COLUMNS, body)
    return Table(f"{model} — pipeline stages (median per batch)", header, body, [_outcome(r) for r in staged],
                 [r.verdict for r in staged], [list(r.flags) for r in staged])


def _stage_verdicts(r: CaseResult) -> str:
    from pytest_trt.pipeline import LABELS

    stages = r.verdict.stages if r.verdict else {}
    return ", ".join(f"{LABELS.get(name, name)} {v.outcome.value}" for name, v in stages.items())


STREAM_COLUMNS = ("backend", "precision", "batch", "variant", "streams", "p50 ms", "p90 ms", "p99 ms", "items/s",
                  "vs 1 stream", "requests/stream", "streams made by")


def _streams_table(model: str, cases: list[CaseResult]) -> Table | None:
    """The streams sweep: per-request latency and aggregate throughput, each against one stream
    measured the same way (requests on the host); None when no case ran several streams."""
    swept = [r for r in cases if r.concurrency is not None]
    if not any(r.case.streams > 1 for r in swept):
        return None
    one = {(r.case.backend, r.case.precision, r.case.batch_size, r.case.variant): r.concurrency
           for r in swept if r.case.streams == 1}
    body = []
    for r in swept:
        c = r.concurrency
        assert c is not None
        ref = one.get((r.case.backend, r.case.precision, r.case.batch_size, r.case.variant))
        body.append([r.case.backend, r.case.precision, str(r.case.batch_size),
                     "" if r.case.variant == "eager" else r.case.variant, str(c.streams),
                     num(c.latency.median * 1e3), num(c.latency.p90 * 1e3), num(c.latency.p99 * 1e3),
                     num(c.throughput), f"{c.throughput / ref.throughput:.2f}x" if ref and ref.throughput else "-",
                     f"{min(c.requests)}–{max(c.requests)}" if len(c.requests) > 1 else str(sum(c.requests)),
                     c.made_by if c.streams > 1 else ""])
    header, body = _drop_empty(STREAM_COLUMNS, body)
    return Table(f"{model} — streams (per request, all streams pooled)", header, body, [_outcome(r) for r in swept],
                 [r.verdict for r in swept], [list(r.flags) for r in swept])


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
    return [escape.terminal(table.title)] + ["  " + line for line in text_grid(table.header, table.rows)]


def markdown(table: Table, level: str = "##") -> list[str]:
    return [f"{level} {escape.markdown(table.title)}", "", *markdown_grid(table.header, table.rows), ""]


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
