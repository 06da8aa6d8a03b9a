"""What a run leaves behind: every output is a ``Writer`` in one registry, drawn from one table.

A writer names the option that asks for it, where it writes and how. ``write_all`` runs each one
that is asked for; one that fails (a full disk, a corrupt existing baseline) costs only its own
file: the failure is one line for the terminal, and the others are still written.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_trt import __version__, atomic
from pytest_trt.context import Context
from pytest_trt.records import JSON, CaseResult, CaseState, JSONDict
from pytest_trt.report import ab, table
from pytest_trt.report import verdicts as verdicts_mod
from pytest_trt.verdict import Verdict

if TYPE_CHECKING:
    from pytest_trt.schema import ResultsDocument

RESULTS_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Run:
    """What the writers draw from: the session, its results and the gate's verdicts."""

    ctx: Context
    results: Sequence[CaseResult]
    verdicts: Sequence[Verdict]

    @property
    def environment(self) -> JSONDict:
        return self.ctx.environment()


@dataclass(frozen=True)
class Writer:
    name: str  # what the terminal line and a failure call it
    target: Callable[[Context], Path | None]  # where it writes; None: not asked for this run
    write: Callable[[Run, Path], None]


def finite(value: JSON) -> JSON:
    """JSON has no NaN or infinity: they are written as null, which every reader takes."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    return value


def results_document(run: Run) -> JSONDict:
    settings: JSONDict = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(run.ctx.settings).items()}
    document: JSONDict = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "tool": "pytest-trt",
        "version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": run.ctx.device,
        "environment": run.environment,
        "settings": finite(settings),
        "cases": [r.to_dict() for r in run.results],
        "verdicts": [v.to_dict() for v in run.verdicts],
    }
    return document


def results_file(ctx: Context) -> Path:
    """``--trt-results``, else the cache dir's latest.json; a re-measuring child writes where it is told."""
    from pytest_trt import remeasure

    child = os.environ.get(remeasure.ENV)
    if child:
        return Path(child)
    return ctx.settings.results or ctx.cache_dir / "results" / "latest.json"


def _write_results(run: Run, path: Path) -> None:
    atomic.write_json(path, finite(results_document(run)))


def _write_baseline(run: Run, path: Path) -> None:
    from pytest_trt import baseline

    # An interrupted case says nothing about the code under test: it must not become the newest
    # baseline entry that later runs are judged against.
    # An A/B case's timing is B's blocks interleaved with A's: not a measurement later nights compare with.
    kept = [r for r in run.results if r.status is not CaseState.INTERRUPTED and r.ab is None]
    baseline.save(path, [baseline.new_run(kept, run.environment)])


def _write_benchmark_json(run: Run, path: Path) -> None:
    from pytest_trt.report import benchmark_json

    benchmark_json.write(path, [r.to_dict() for r in run.results], run.environment)


def markdown(results: Sequence[CaseResult], verdicts: Sequence[Verdict], environment: JSONDict) -> str:
    """The markdown report: the device, a table per model, the states, the gate's summary."""
    from pytest_trt.report import escape

    device = verdicts_mod.describe_hardware(environment)
    parts = [f"# pytest-trt results — {escape.markdown(device)}", ""]
    for model in table.tables(ab.others(results)):
        parts += table.markdown(model)
    parts += [f"{escape.markdown(r.case.id)}: {r.status.value.upper()}: {escape.markdown(r.message)}  "
              for r in results if r.status is not CaseState.OK and r.message]
    parts += ab.markdown(results)
    if verdicts:
        parts.append(verdicts_mod.markdown(verdicts, environment))
    return "\n".join(parts)


def markdown_of(document: ResultsDocument) -> str:
    """The markdown report of a saved results file (``pytest-trt report``)."""
    return markdown(document.cases, document.verdicts, document.environment)


def _write_markdown(run: Run, path: Path) -> None:
    atomic.write_text(path, markdown(run.results, run.verdicts, run.environment))


def _write_step_summary(run: Run, path: Path) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(markdown(run.results, run.verdicts, run.environment) + "\n")


def _write_html(run: Run, path: Path) -> None:
    from pytest_trt.report import html

    atomic.write_text(path, html.of_run(run))


def _step_summary(ctx: Context) -> Path | None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    return Path(target) if target else None


def _no_child(target: Callable[[Context], Path | None]) -> Callable[[Context], Path | None]:
    """A re-measuring child writes its results file only."""
    from pytest_trt import remeasure

    return lambda ctx: None if remeasure.in_child() else target(ctx)


WRITERS: list[Writer] = [
    Writer("results", results_file, _write_results),
    Writer("baseline", _no_child(lambda ctx: ctx.settings.save_baseline), _write_baseline),
    Writer("pytest-benchmark JSON", _no_child(lambda ctx: ctx.settings.benchmark_json), _write_benchmark_json),
    Writer("markdown report", _no_child(lambda ctx: ctx.settings.report_md), _write_markdown),
    Writer("HTML report", _no_child(lambda ctx: ctx.settings.report_html), _write_html),
    Writer("GitHub step summary", _no_child(_step_summary), _write_step_summary),
]


def register(writer: Writer) -> None:
    """Add an output (a plugin's own format): it is written at the end of every run that asks for it."""
    WRITERS.append(writer)


def write_all(ctx: Context, results: Sequence[CaseResult], verdicts: Sequence[Verdict]) -> tuple[list[str], list[str]]:
    """Run every writer that is asked for; return (paths written, one line per failed writer)."""
    from pytest_trt.baseline import BaselineError

    run = Run(ctx, results, verdicts)
    written, failed = [], []
    for writer in WRITERS:
        path = writer.target(ctx)
        if path is None:
            continue
        try:
            writer.write(run, path)
        except (OSError, BaselineError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            failed.append(f"the {writer.name} {path}: {reason}")
            continue
        except Exception as exc:  # a writer's own bug (a plugin's, say) costs its file, not the others
            failed.append(f"the {writer.name} {path}: {type(exc).__name__}: {exc}")
            continue
        written.append(str(path))
    return written, failed


def terminal_lines(results: Sequence[CaseResult], verdicts: Sequence[Verdict]) -> list[str]:
    from pytest_trt.report import escape

    lines: list[str] = []
    for model in table.tables(ab.others(results)):
        lines += table.text(model) + [""]
    lines += [escape.terminal(f"{r.case.id}: {r.status.value.upper()}: {r.message}") for r in results
              if r.status is not CaseState.OK and r.message]
    lines += _profile_lines(results)
    return lines + ab.terminal(results) + verdicts_mod.terminal(verdicts)


def _profile_lines(results: Sequence[CaseResult]) -> list[str]:
    """One line per ONNX Runtime case profiled with --trt-ort-profile on."""
    from pytest_trt.backends import ort_profile
    from pytest_trt.report import escape

    found = []
    for r in results:
        summary = r.build.ort_profile
        if summary is not None:
            text = str(summary["error"]) if "error" in summary else ort_profile.describe(summary)
            found.append(escape.terminal(f"{r.case.id}: ONNX Runtime profile: {text}"))
    return found
