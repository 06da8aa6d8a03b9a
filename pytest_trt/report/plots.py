"""The HTML report's plots: matplotlib figures rendered as inline SVG (docs/design.md, "Reports").

matplotlib is imported here only, when a report is written, and only through ``Figure`` (no pyplot,
no global backend or state). ``available()`` says whether it is installed; without it the report
falls back to ``report.svgbars``. Every function returns an ``<svg>`` element, or None when there is
nothing to draw (no baseline runs, no telemetry, a single batch size).
"""

from __future__ import annotations

import io
import math
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np

from pytest_trt.records import CaseResult
from pytest_trt.report import escape, palette
from pytest_trt.report.sections import CaseView

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

WIDTH_IN = 6.6


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def _figure(height_in: float, columns: int = 1, rows: int = 1) -> Iterator[tuple[Figure, list[Axes]]]:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context({
        "svg.fonttype": "none",  # text stays text: small, searchable, escaped by matplotlib's XML writer
        "svg.hashsalt": "pytest-trt",  # the same report twice is the same file
        "font.size": 8.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 9.5,
        "axes.titleweight": "bold",
        "axes.titlelocation": "left",
    }):
        fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained")
        axes = fig.subplots(rows, columns, squeeze=False)
        yield fig, [ax for row in axes for ax in row]


def _svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element; called inside ``_figure``, so its settings hold."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.find("<svg"):]  # no XML prolog or DOCTYPE inside an HTML page
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.DOTALL)


def _label(text: str, limit: int = 48) -> str:
    """Text from a file as a plot label: one line, bounded, and a '$' shown as itself, not as mathtext."""
    shown = escape.terminal(text)
    shown = shown if len(shown) <= limit else shown[:limit - 1] + "…"
    return shown.replace("$", r"\$")


def _case(result: CaseResult, limit: int = 48) -> str:
    """A case's label inside its model's section: the id without the model's name."""
    text, model = result.case.id, result.case.model
    return _label(text[len(model) + 1:] if model and text.startswith(model + "-") else text, limit)


def _ms(seconds: float) -> str:
    value = seconds * 1e3
    return f"{value:.3g} ms" if value >= 0.01 else f"{value * 1e3:.3g} µs"


def distribution(views: Sequence[CaseView]) -> str | None:
    """Each case's samples against its reference: a box (quartiles, whiskers at p5/p95) per case on a
    common scale of latency ÷ reference, the baseline runs' medians as ticks, the threshold dashed."""
    rows = [v for v in views if v.result.timing is not None and v.result.timing.samples]
    if not rows:
        return None
    with _figure(0.9 + 0.34 * len(rows)) as (fig, (ax,)):
        low, high = 1.0, 1.0
        for i, view in enumerate(rows):
            timing = view.result.timing
            assert timing is not None
            ref = view.reference or timing.stats.median
            p5, p25, p50, p75, p95 = np.percentile(np.asarray(timing.samples) / ref, [5, 25, 50, 75, 95])
            colour = palette.strong(view.outcome)
            ax.hlines(i, p5, p95, color=colour, linewidth=1)
            ax.add_patch(_box(p25, p75, i, colour, palette.light(view.outcome)))
            ax.vlines(p50, i - 0.3, i + 0.3, color=colour, linewidth=2)
            runs = [m / ref for m in view.history]
            if runs:
                ax.plot(runs, [i] * len(runs), "|", color="black", markersize=9, alpha=0.7)
            if view.reference:
                ax.plot([1.0], [i], "D", color="black", markersize=3.5)
            low, high = min(low, p5, *runs), max(high, p95, *runs, 1 + view.threshold)
            ax.text(1.005, i, _ms(timing.stats.median), transform=ax.get_yaxis_transform(), va="center",
                    fontsize=7.5, color=colour)
        threshold = max(v.threshold for v in rows)
        ax.axvline(1.0, color="#999999", linewidth=0.8)
        ax.axvline(1.0 + threshold, color=palette.strong("REGRESSION"), linewidth=0.8, linestyle="--")
        pad = (high - low) * 0.08 or 0.02
        ax.set_xlim(max(low - pad, 0.0), high + pad)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_yticks(range(len(rows)), [_case(v.result) for v in rows])
        ax.set_xlabel("latency ÷ the case's reference median")
        ax.set_title("Latency samples against the baseline")
        return _svg(fig)


def _box(left: float, right: float, row: int, edge: str, face: str) -> Rectangle:
    from matplotlib.patches import Rectangle

    return Rectangle((left, row - 0.28), max(right - left, 1e-9), 0.56, facecolor=face, edgecolor=edge,
                     linewidth=1)


def _series(results: Sequence[CaseResult]) -> dict[str, dict[int, CaseResult]]:
    """Timed cases by 'backend precision variant', then batch size."""
    found: dict[str, dict[int, CaseResult]] = defaultdict(dict)
    for r in sorted(results, key=lambda r: (r.case.backend, r.case.precision, r.case.variant, r.case.batch_size)):
        if r.timing is not None:
            variant = "" if r.case.variant == "eager" else f" {r.case.variant}"
            found[_label(f"{r.case.backend} {r.case.precision}{variant}", 36)][r.case.batch_size] = r
    return found


def speedup(results: Sequence[CaseResult]) -> str | None:
    """Speed-up of every backend × precision × variant over fp32 PyTorch (eager) at the same batch."""
    series = _series(results)
    reference = {b: r for b, r in series.get("torch fp32", {}).items()}
    bars = {name: {b: reference[b].median / r.median for b, r in by_batch.items()  # type: ignore[operator]
                   if b in reference and r.median}
            for name, by_batch in series.items() if name != "torch fp32"}
    bars = {name: values for name, values in bars.items() if values}
    if not bars:
        return None
    batches = sorted({b for values in bars.values() for b in values})
    width = 0.8 / len(bars)
    with _figure(2.9) as (fig, (ax,)):
        for k, (name, values) in enumerate(bars.items()):
            xs = [batches.index(b) + (k - (len(bars) - 1) / 2) * width for b in values]
            ax.bar(xs, list(values.values()), width=width * 0.92, label=name)
        ax.axhline(1.0, color="#555555", linewidth=0.8)
        ax.set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        ax.set_ylabel("× faster than torch fp32")
        ax.set_title("Speed-up over fp32 PyTorch at the same batch")
        ax.legend(fontsize=7, ncols=min(len(bars), 3), frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.1))
        return _svg(fig)


def throughput(results: Sequence[CaseResult]) -> str | None:
    """Items per second against batch size, one line per backend × precision × variant."""
    series = {name: by_batch for name, by_batch in _series(results).items() if by_batch}
    batches = sorted({b for by_batch in series.values() for b in by_batch})
    if len(batches) < 2:
        return None
    with _figure(2.9) as (fig, (ax,)):
        for name, by_batch in series.items():
            points = sorted((b, r.timing.stats.throughput) for b, r in by_batch.items() if r.timing is not None)
            ax.plot([b for b, _ in points], [t for _, t in points], "o-", markersize=3.5, linewidth=1.2, label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.minorticks_off()
        ax.set_xlabel("batch size")
        ax.set_ylabel("items/s")
        ax.set_title("Throughput against batch size")
        ax.legend(fontsize=7, frameon=False, ncols=2 if len(series) > 4 else 1)
        return _svg(fig)


def trend(views: Sequence[CaseView], columns: int = 4) -> str | None:
    """Each case's median over its baseline's runs (oldest first), tonight's process last, coloured
    by its verdict; the band is the reference ± the threshold."""
    panels = [v for v in views if v.history and v.result.median]
    if not panels:
        return None
    rows = math.ceil(len(panels) / columns)
    with _figure(0.5 + 1.45 * rows, columns, rows) as (fig, axes):
        for ax, view in zip(axes, panels):
            _trend_panel(ax, view)
        for ax in axes[len(panels):]:
            ax.set_axis_off()
        fig.suptitle("Median per baseline run, then tonight", x=0.01, ha="left", fontsize=9.5, fontweight="bold")
        return _svg(fig)


def _trend_panel(ax: Axes, view: CaseView) -> None:
    tonight = view.result.median or 0.0
    xs = list(range(1, len(view.history) + 1))
    ms = [m * 1e3 for m in view.history]
    ax.plot(xs, ms, "o-", color="#777777", markersize=2.5, linewidth=0.9)
    if view.reference:
        ref = view.reference * 1e3
        ax.axhspan(ref * (1 - view.threshold), ref * (1 + view.threshold), color="#dddddd", alpha=0.6, linewidth=0)
    ax.plot([len(xs) + 1], [tonight * 1e3], "o", color=palette.strong(view.outcome), markersize=6)
    ax.set_title(_case(view.result, 30), fontsize=7, fontweight="normal")
    ax.set_xticks([1, len(xs) + 1], ["1", "tonight"])
    ax.tick_params(labelsize=6.5)
    ax.set_ylabel("ms", fontsize=6.5)


def energy(views: Sequence[CaseView]) -> str | None:
    """Energy per item tonight (bars) against the baseline runs' median (◆), where NVML measured it."""
    rows = [v for v in views if v.result.telemetry is not None and v.result.telemetry.joules_per_item]
    if not rows:
        return None
    with _figure(0.9 + 0.3 * len(rows)) as (fig, (ax,)):
        for i, view in enumerate(rows):
            telemetry = view.result.telemetry
            assert telemetry is not None and telemetry.joules_per_item is not None
            ax.barh(i, telemetry.joules_per_item * 1e3, height=0.6, color=palette.strong(view.outcome), alpha=0.55,
                    edgecolor=palette.strong(view.outcome))
            if view.history_energy:
                ax.plot([float(np.median(view.history_energy)) * 1e3], [i], "D", color="black", markersize=3.5)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_yticks(range(len(rows)), [_case(v.result) for v in rows])
        ax.set_xlabel("mJ per item")
        ax.set_title("Energy per item")
        return _svg(fig)
