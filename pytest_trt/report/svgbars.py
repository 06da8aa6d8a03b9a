"""The plot the HTML report draws without matplotlib: each judged case's ratio to its reference,
with the gate's confidence interval, as hand-made SVG bars (every label escaped here)."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_trt.report import escape, palette
from pytest_trt.verdict import Verdict

ROW, LABEL, PLOT, PAD = 18, 300, 380, 60


def ratios(verdicts: Sequence[Verdict]) -> str | None:
    """Bars from 1 to tonight's ratio, a whisker for its CI, a dashed line at 1 + threshold."""
    rows = [v for v in verdicts if v.ratio is not None and v.metric == "latency"]
    if not rows:
        return None
    values = [x for v in rows for x in (v.ratio or 1.0, *(v.ratio_ci or ()), 1 + v.threshold)]
    low: float = min(0.9, *values)
    high: float = max(1.1, *values)

    def x(value: float) -> float:
        return LABEL + PLOT * (value - low) / (high - low)

    height = ROW * len(rows) + 34
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{LABEL + PLOT + PAD}' height='{height}' "
             f"viewBox='0 0 {LABEL + PLOT + PAD} {height}' font-family='sans-serif' font-size='11'>"]
    for i, v in enumerate(rows):
        y, colour = 8 + i * ROW, palette.strong(v.outcome.value)
        ratio = v.ratio or 1.0
        left, right = sorted((x(1.0), x(ratio)))
        parts.append(f"<text x='{LABEL - 6}' y='{y + 11}' text-anchor='end'>{escape.html(v.case_id[:48])}</text>")
        parts.append(f"<rect x='{left:.1f}' y='{y + 3}' width='{max(right - left, 1):.1f}' height='10' "
                     f"fill='{colour}' opacity='0.75'><title>{escape.html(v.message)}</title></rect>")
        if v.ratio_ci:
            lo, hi = x(v.ratio_ci[0]), x(v.ratio_ci[1])
            parts.append(f"<line x1='{lo:.1f}' x2='{hi:.1f}' y1='{y + 8}' y2='{y + 8}' stroke='black'/>")
        parts.append(f"<text x='{LABEL + PLOT + 4}' y='{y + 11}' fill='{colour}'>×{ratio:.3f}</text>")
    bottom = 8 + len(rows) * ROW
    threshold = max(v.threshold for v in rows)
    parts.append(f"<line x1='{x(1.0):.1f}' x2='{x(1.0):.1f}' y1='4' y2='{bottom}' stroke='#777'/>")
    parts.append(f"<line x1='{x(1 + threshold):.1f}' x2='{x(1 + threshold):.1f}' y1='4' y2='{bottom}' "
                 f"stroke='{palette.strong('REGRESSION')}' stroke-dasharray='4 3'/>")
    parts.append(f"<text x='{LABEL}' y='{bottom + 18}'>tonight ÷ reference median (bar), its CI (line); dashed: "
                 f"+{threshold:.0%}</text></svg>")
    return "".join(parts)
