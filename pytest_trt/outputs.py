"""Files written at the end of a session by the controller: results, baseline, exports, reports."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pytest_trt import __version__, atomic
from pytest_trt.context import Context
from pytest_trt.results import INTERRUPTED, CaseResult

RESULTS_SCHEMA_VERSION = 1


def results_document(ctx: Context, results: list[CaseResult]) -> dict[str, Any]:
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(ctx.settings).items()}
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "tool": "pytest-trt",
        "version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": ctx.device,
        "environment": ctx.environment(),
        "settings": settings,
        "cases": [r.to_dict() for r in sorted(results, key=lambda r: r.nodeid)],
        "verdicts": [_as_dict(v) for v in ctx.verdicts],
    }


def write_all(ctx: Context, results: list[CaseResult]) -> list[str]:
    """Write every requested file; return the paths written (for the terminal summary)."""
    _collect_verdicts(ctx, results)
    written = []
    settings = ctx.settings
    results_path = results_file(ctx)
    atomic.write_json(results_path, results_document(ctx, results))
    written.append(str(results_path))
    if settings.save_baseline is not None:
        from pytest_trt import baseline

        # An interrupted case says nothing about the code under test: it must not become the newest
        # baseline entry that later runs are judged against.
        kept = [r.to_dict() for r in results if r.status != INTERRUPTED]
        baseline.save(settings.save_baseline, kept, ctx.environment())
        written.append(str(settings.save_baseline))
    if settings.benchmark_json is not None:
        from pytest_trt import benchmark_json

        benchmark_json.write(settings.benchmark_json, [r.to_dict() for r in results], ctx.environment())
        written.append(str(settings.benchmark_json))
    markdown = None
    if settings.report_md is not None or os.environ.get("GITHUB_STEP_SUMMARY"):
        from pytest_trt import report

        markdown = report.markdown(results, ctx.environment(), ctx.verdicts)
        if settings.report_md is not None:
            atomic.write_text(settings.report_md, markdown)
            written.append(str(settings.report_md))
        _append_step_summary(markdown)
    if settings.report_html is not None:
        from pytest_trt import report

        atomic.write_text(settings.report_html, report.html(results, ctx.verdicts))
        written.append(str(settings.report_html))
    return written


def results_file(ctx: Context) -> Path:
    return ctx.settings.results or ctx.cache_dir / "results" / "latest.json"


def _collect_verdicts(ctx: Context, results: list[CaseResult]) -> None:
    ctx.verdicts = [r.verdict for r in results if r.verdict]
    if ctx.baseline is not None:
        from pytest_trt import gate

        ctx.verdicts += [_as_dict(v) for v in gate.missing(ctx.baseline, {r.nodeid for r in results})]


def _as_dict(verdict: Any) -> dict[str, Any]:
    return verdict if isinstance(verdict, dict) else dict(verdict.to_dict())


def _append_step_summary(markdown: str) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
