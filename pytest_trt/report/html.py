"""The HTML report: one self-contained page (inline CSS and SVG, no script, no external asset).

On top: the devices, the gate's counts per outcome and every case that did not simply pass, worst
first, each with its message, noise and detectable slowdown; then what each outcome and flag means.
Then per device and model: the one results table (``report.table``) and the plots (``report.plots``,
or ``report.svgbars`` without matplotlib). Every string from a file goes through ``report.escape``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from pytest_trt.records import CaseResult, CaseState, Flag
from pytest_trt.report import ab, escape, palette, table, verdicts
from pytest_trt.report.sections import Section
from pytest_trt.verdict import SEVERITY, Outcome, Verdict, format_percent, format_seconds

if TYPE_CHECKING:
    from pytest_trt.report import Run

CAPTIONS = {
    "distribution": "Tonight's samples of each case as a box (quartiles; whiskers at p5 and p95), all on one scale: "
                    "latency ÷ the case's reference. ◆ the gate's reference median (the baseline mode nearest "
                    "tonight), | each baseline run's median, dashed: the threshold. Right: tonight's median.",
    "trend": "Each case's median in every usable baseline run, oldest first, then tonight's process (●, coloured by "
             "its verdict); the grey band is the reference ± the threshold.",
    "speedup": "Median of fp32 PyTorch (eager) at the same batch ÷ each case's median: above 1 is faster.",
    "throughput": "Items per second: batch × calls ÷ wall time of the timed loop.",
    "energy": "Energy per item over the timed loop (NVML), coloured by the latency verdict; ◆ the baseline "
              "runs' median.",
}
NO_PLOTS = ("Plots need matplotlib, which is not installed here: <code>pip install 'pytest-trt[html]'</code>. "
            "Below, each judged case's ratio to its reference as plain bars.")

STYLE = """body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px 32px;color:#1f2328;
font-size:14px;background:#fafafa}h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 6px;
border-bottom:2px solid #d0d7de;padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
.card{background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:12px 16px;margin:12px 0}
.muted{color:#57606a}.small{font-size:12px}code{background:#eef;padding:0 3px;border-radius:3px}
table{border-collapse:collapse;margin:6px 0 12px;background:#fff;font-size:12.5px}
td,th{border:1px solid #d0d7de;padding:2px 6px;text-align:right;white-space:nowrap}
.wide{overflow-x:auto;max-width:100%}figcaption{font-size:11.5px;color:#57606a;margin:2px 6px 4px}
th{background:#f0f3f6;white-space:normal;vertical-align:bottom}td:first-child,th:first-child{text-align:left}
td.msg{text-align:left;white-space:normal;max-width:820px;min-width:360px}td.case{text-align:left}
td[title]{text-decoration:underline dotted #888;cursor:help}
.chip{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-weight:600;font-size:12px;margin:2px}
.counts .chip{font-size:14px;padding:3px 12px}.counts .chip.zero{opacity:.28}
dl.legend{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:4px 0;font-size:12.5px}
dl.legend dt{font-weight:600}dl.legend dd{margin:0}
.plots{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:12px}
.plots figure{margin:0;background:#fff;border:1px solid #d0d7de;border-radius:8px;padding:6px}
.plots svg{max-width:100%;height:auto;display:block}"""


def _css() -> str:
    rows = "".join(f"tr.{name.lower()} td{{background:{light}}}.o-{name.lower()}{{background:{strong}}}"
                   for name, (strong, light) in palette.COLOURS.items())
    failed, quiet = palette.FAILED_STATE, palette.QUIET_STATE
    states = "".join(f"tr.{s.value} td{{background:{(quiet if s.value in palette.QUIET_STATES else failed)[1]}}}"
                     f".o-{s.value}{{background:{(quiet if s.value in palette.QUIET_STATES else failed)[0]}}}"
                     for s in CaseState if s is not CaseState.OK)
    return STYLE + rows + states


def chip(outcome: str, text: str | None = None, title: str = "", extra: str = "") -> str:
    tip = f" title='{escape.html(title)}'" if title else ""
    return (f"<span class='chip o-{escape.html(outcome.lower())}{extra}'{tip}>"
            f"{escape.html(text or outcome)}</span>")


def of_run(run: Run) -> str:
    """The report of the session that just ran (``--trt-report-html``)."""
    from pytest_trt.report import sections

    return document([sections.of_run(run)])


def document(parts: Sequence[Section]) -> str:
    """The page for one or more sections (one per device or results file)."""
    from pytest_trt.report import plots

    with_plots = plots.available()
    devices = "; ".join(f"{escape.html(s.device)} <span class='muted'>({escape.html(s.source)}, "
                        f"{len(s.results)} cases)</span>" for s in parts)
    body = ["<!doctype html><html lang='en'><head><meta charset='utf-8'>",
            "<meta name='viewport' content='width=device-width'><title>pytest-trt report</title>",
            f"<style>{_css()}</style></head><body>",
            f"<h1>pytest-trt report</h1><p><b>{'Devices' if len(parts) > 1 else 'Device'}:</b> {devices}</p>",
            _summary(parts), _legend()]
    body += [_section(s, with_plots) for s in parts]
    return "\n".join(body) + "\n</body></html>\n"


def _summary(parts: Sequence[Section]) -> str:
    judged = [(s, v) for s in parts for verdict in s.verdicts for v in _lines(verdict)]
    found = {o: sum(1 for _, v in judged if v.outcome is o) for o in SEVERITY}
    counts = "".join(chip(o.value, f"{found[o]} {o.value}", verdicts.EXPLAINED[o], "" if found[o] else " zero")
                     for o in SEVERITY)
    how = "".join(f"<li>{escape.html(s.device)} ({escape.html(s.source)}): {escape.html(s.judged)}</li>"
                  for s in parts)
    flagged = sorted(((s, v) for s, v in judged if v.outcome is not Outcome.PASS),
                     key=lambda sv: (SEVERITY.index(sv[1].outcome), sv[1].case_id))
    if flagged:
        detail = _flagged_table(flagged, len(parts) > 1)
    elif judged:
        detail = f"<p>All {len(judged)} judged cases passed.</p>"
    else:
        detail = "<p class='muted'>No verdicts: no baseline was given.</p>"
    return (f"<div class='card'><h2 style='margin-top:0'>Gate</h2><div class='counts'>{counts}</div>"
            f"{detail}{_states(parts)}<ul class='small muted'>{how}</ul></div>")


def _lines(verdict: Verdict) -> list[Verdict]:
    return [verdict] + ([verdict.energy] if verdict.energy is not None else [])


def _flagged_table(flagged: Sequence[tuple[Section, Verdict]], with_device: bool) -> str:
    head = ["outcome", *(["device"] if with_device else []), "case", "baseline", "tonight", "ratio (CI)",
            "noise", "detectable", "what the gate said"]
    rows = []
    for section, v in flagged:
        ratio = "—" if v.ratio is None else f"×{v.ratio:.3f}"
        if v.ratio_ci is not None:
            ratio += f" ({v.ratio_ci[0]:.3f}–{v.ratio_ci[1]:.3f})"
        latency = v.metric == "latency"
        cells = [f"<td>{chip(v.outcome.value, title=verdicts.EXPLAINED[v.outcome])}</td>"]
        if with_device:
            cells.append(f"<td class='case'>{escape.html(section.device)}</td>")
        cells += [f"<td class='case'>{escape.html(v.case_id + ('' if latency else f' ({v.metric})'))}</td>",
                  f"<td>{format_seconds(v.baseline_median) if latency else '—'}</td>",
                  f"<td>{format_seconds(v.current_median) if latency else '—'}</td>", f"<td>{ratio}</td>",
                  f"<td>{'±' + format_percent(v.noise) if v.noise is not None else 'n/a'}</td>",
                  f"<td>{'≥' + format_percent(v.detectable) if v.detectable is not None else 'n/a'}</td>",
                  f"<td class='msg'>{escape.html(v.detail)}</td>"]
        rows.append(f"<tr class='{v.outcome.value.lower()}'>{''.join(cells)}</tr>")
    header = "".join(f"<th>{h}</th>" for h in head)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _states(parts: Sequence[Section]) -> str:
    """Cases that ended in a state other than ok (errors, OOM, ...), with their messages."""
    rows = [f"<tr class='{r.status.value}'><td>{chip(r.status.value, r.status.value.upper())}</td>"
            f"<td class='case'>{escape.html(r.case.id)}</td><td class='msg'>{escape.html(r.message)}</td></tr>"
            for s in parts for r in s.results if r.status is not CaseState.OK]
    if not rows:
        return ""
    return ("<h3>Cases that did not finish ok</h3><table><thead><tr><th>state</th><th>case</th><th>message</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _legend() -> str:
    outcomes = "".join(f"<dt>{chip(o.value)}</dt><dd>{escape.html(verdicts.EXPLAINED[o])}</dd>" for o in SEVERITY)
    flags = "".join(f"<dt>{f.value}</dt><dd>{escape.html(verdicts.FLAGS_EXPLAINED[f])}</dd>" for f in Flag)
    return ("<details class='card small'><summary><b>What the outcomes and flags mean</b> "
            "<span class='muted'>(hover a verdict or flag in a table for its own message)</span></summary>"
            f"<h3>Verdicts (the gate's decision on a case)</h3><dl class='legend'>{outcomes}</dl>"
            f"<h3>Flags (what the timing itself said; never a verdict)</h3><dl class='legend'>{flags}</dl>"
            "</details>")


def _section(section: Section, with_plots: bool) -> str:
    parts = [f"<h2>{escape.html(section.device)} <span class='muted small'>{escape.html(section.source)}</span>"
             "</h2>"]
    timed = ab.others(section.results)  # an A/B case is its own table's, not a row of its model's
    for model in table.tables(timed):
        cases = [r for r in timed if r.model_name == model.title]
        parts.append(f"<div class='wide'>{table.html(model, level='h3')}</div>")
        if cases:  # a model's stage and streams tables follow its own, whose plots cover its cases
            parts.append(_plots(section, cases, with_plots))
    compared = ab.html(section.results)
    if compared:
        parts.append(f"<div class='card wide'>{compared}</div>")
    return "<section>" + "".join(parts) + "</section>"


def _plots(section: Section, cases: list[CaseResult], with_plots: bool) -> str:
    if not with_plots:
        from pytest_trt.report import svgbars

        bars = svgbars.ratios([r.verdict for r in cases if r.verdict is not None])
        figure = f"<div class='plots'><figure>{bars}</figure></div>" if bars else ""
        return f"<p class='muted small'>{NO_PLOTS}</p>{figure}"
    from pytest_trt.report import plots

    views = section.views(cases)
    draw: dict[str, Callable[[], str | None]] = {
        "distribution": lambda: plots.distribution(views), "trend": lambda: plots.trend(views),
        "speedup": lambda: plots.speedup(cases), "throughput": lambda: plots.throughput(cases),
        "energy": lambda: plots.energy(views)}
    drawn = []
    for name, make in draw.items():
        try:
            svg = make()
        except (ValueError, OverflowError, RuntimeError) as exc:  # one odd figure must not cost the page
            drawn.append(f"<p class='muted small'>The {name} plot could not be drawn: {escape.html(str(exc))}</p>")
            continue
        if svg:
            drawn.append(f"<figure>{svg}<figcaption>{escape.html(CAPTIONS[name])}</figcaption></figure>")
    return f"<div class='plots'>{''.join(drawn)}</div>" if drawn else ""
