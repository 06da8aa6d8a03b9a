"""``pytest-trt compare`` for people: the files, the answer in one sentence per file, the per-case
table and the geo-means, as text or markdown. Text from files is escaped for the medium."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_trt import compare as cmp
from pytest_trt.report import escape
from pytest_trt.verdict import Verdict, format_seconds

BOUND_WORDS = {cmp.GPU: "GPU-bound", cmp.HOST: "host-bound", cmp.UNKNOWN: "unknown", cmp.CPU: "CPU"}


def render(result: cmp.Comparison, *, markdown: bool = False, show_all: bool = False) -> str:
    """The whole answer: header, one headline per later file, the table, the geo-means."""
    rows = [row for row in result.rows if show_all or row.common]
    shown = escape.markdown if markdown else escape.terminal
    lines = ["pytest-trt compare: A is the reference; a speed-up is A's median over the other file's "
             "(above 1: faster than A)"]
    for source in result.sources:
        lines.append(shown(f"  {source.letter}  {source.label}: {source.kind}, {len(source.current)} cases, "
                           f"{source.device}"))
    lines += [shown(f"  {note}") for note in result.hardware_notes]
    common = [row for row in result.rows if row.common]
    lines += [""] + [shown(cmp.headline(result, i, common)) for i in range(len(result.sources) - 1)]
    header, body = _table(result, rows)
    lines.append("")
    lines += _markdown_table(header, body) if markdown else _text_table(header, body)
    lines += [_coverage(result, len(rows), show_all), ""]
    for i in range(len(result.sources) - 1):
        lines += _geomean_lines(result, i, common, markdown)
    if markdown:
        lines = [line if line.startswith("|") or not line.strip() else line.strip() + "  " for line in lines]
    return "\n".join(lines) + "\n"


def _table(result: cmp.Comparison, rows: Sequence[cmp.Row]) -> tuple[list[str], list[list[str]]]:
    sources, several = result.sources, len(result.sources) > 2
    header = ["case"]
    for other in sources[1:]:
        header += [f"A ref ({other.letter})" if several else "A ref", other.letter,
                   f"{other.letter} vs A (CI)", "verdict" if not several else f"verdict {other.letter}"]
    header += ["bound " + "/".join(s.letter for s in sources)] + [f"flags {s.letter}" for s in sources]
    body = []
    for row in rows:
        cells = [row.case.id]
        for i, other in enumerate(sources[1:]):
            cells += _cells(result, i, row, other.current.get(row.key) is not None)
        cells.append(_bounds(result, row))
        cells += [",".join(f.value for f in s.current[row.key].flags) if row.key in s.current else "—"
                  for s in sources]
        body.append(cells)
    return header, body


def _cells(result: cmp.Comparison, later: int, row: cmp.Row, here: bool) -> list[str]:
    """A's reference median, this file's median, the speed-up with its CI, the verdict or words."""
    verdict = row.verdicts[later]
    first = result.sources[0].current.get(row.key)
    other = result.sources[later + 1].current.get(row.key)
    reference = verdict.baseline_median if verdict and verdict.baseline_median else (first.median if first else None)
    median = other.median if other else None
    return [format_seconds(reference) if reference else "—", format_seconds(median) if median else "—",
            _speedup(verdict), _verdict(result, later, verdict) if here else "MISSING"]


def _speedup(verdict: Verdict | None) -> str:
    found = cmp.speedup(verdict)
    if found is None:
        return "—"
    value, ci = found
    return f"{value:.3f}×" + (f" ({ci[0]:.3f}–{ci[1]:.3f})" if ci else "")


def _verdict(result: cmp.Comparison, later: int, verdict: Verdict | None) -> str:
    if verdict is None:
        return "MISSING"
    return verdict.outcome.value if result.comparable(later) else cmp.in_words(verdict)


def _bounds(result: cmp.Comparison, row: cmp.Row) -> str:
    """The bound the geo-means file the case under, and each file's own when they differ."""
    found = [s.bounds.get(row.key, cmp.UNKNOWN) if here else "—" for s, here in zip(result.sources, row.present)]
    combined = BOUND_WORDS[result.bound(row)]
    return combined if len(set(found)) == 1 else f"{combined} ({'/'.join(found)})"


def _coverage(result: cmp.Comparison, shown_rows: int, show_all: bool) -> str:
    others = [row for row in result.rows if not row.common]
    if show_all or not others:
        return f"{shown_rows} cases."
    only = {s.letter: sum(1 for row in others if row.present[i]) for i, s in enumerate(result.sources)}
    where = ", ".join(f"{n} in {letter}" for letter, n in only.items() if n)
    return f"{shown_rows} cases in every file; --all adds the {len(others)} in some files only ({where})."


def _geomean_lines(result: cmp.Comparison, later: int, rows: Sequence[cmp.Row], markdown: bool) -> list[str]:
    other = result.sources[later + 1]
    found = cmp.geomeans(result, later, rows)
    title = f"geo-mean speed-up of {other.letter} over A (above 1: {other.letter} faster; cases in brackets):"
    if not found:
        return [title, "  (no common timed cases)", ""]
    bounds = [b for b in cmp.BOUNDS if any(b in by for by in found.values())]
    header = ["backend/precision"] + [BOUND_WORDS[b] for b in bounds]
    body = [[group] + [f"{by[b][0]:.3f}× ({by[b][1]})" if b in by else "—" for b in bounds]
            for group, by in sorted(found.items(), key=lambda kv: (kv[0] == "all", kv[0]))]
    table = _markdown_table(header, body) if markdown else ["  " + line for line in _text_table(header, body)]
    return [title, *table, ""]


def _text_table(header: list[str], body: list[list[str]]) -> list[str]:
    cells = [[escape.terminal(c) for c in row] for row in [header, *body]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    left = [i == 0 or header[i].startswith(("verdict", "bound", "flags")) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if left[i] else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*cells[0]), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in cells[1:]]
    return [line.rstrip() for line in lines]


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(escape.markdown(c) for c in cells) + " |"

    rule = "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"
    return [line(header), rule] + [line(r) for r in body]
