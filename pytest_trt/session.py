"""What the plugin hooks do: validate options, parametrize tests, carry results, run the controller.

Results ride on test reports (an attribute pytest-xdist carries from workers), so only the
controller (no xdist, or the xdist controller) owns a ``Controller`` and writes files; workers
send reports and never write results, baselines or reports themselves.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_trt import matrix
from pytest_trt.case import Case
from pytest_trt.context import Context
from pytest_trt.records import JSONDict
from pytest_trt.stash import CASE_PROPERTY, RESULT, RESULT_ATTRIBUTE, SUMMARY_PROPERTY

SENT = pytest.StashKey[bool]()


def validate(config: pytest.Config, ctx: Context) -> None:
    """Checks that need more than parsing: model names, CUDA presence, a readable baseline."""
    try:
        matrix.expand_models(ctx.settings.models)
    except KeyError as exc:
        raise pytest.UsageError(f"--trt-model: {exc.args[0]}") from None
    if ctx.settings.device.startswith("cuda"):
        try:
            ctx.device  # noqa: B018 - resolving now turns "no CUDA here" into a usage error
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    if ctx.settings.baseline is not None:
        from pytest_trt import baseline

        try:
            ctx.baseline = baseline.load(ctx.settings.baseline)
        except baseline.BaselineError as exc:
            raise pytest.UsageError(f"--trt-baseline: {exc}") from None


def parametrize(metafunc: pytest.Metafunc, ctx: Context) -> None:
    marker: dict[str, Any] = {}
    for mark in reversed(list(metafunc.definition.iter_markers("trt"))):
        marker.update(mark.kwargs)  # closest marker wins per keyword
    try:
        planned = matrix.plan(ctx.settings, ctx.device, marker)
    except (ValueError, KeyError) as exc:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: {exc.args[0]}") from None
    params = [
        pytest.param(p.case, id=p.case.id, marks=[pytest.mark.skip(reason=p.skip)] if p.skip else [])
        for p in planned
    ]
    metafunc.parametrize("trt_case", params)


def check_input_sizes(items: list[pytest.Item]) -> None:
    """A zoo model's batch that cannot fit in memory is a usage error before anything runs (a user's
    own model is checked when its case makes its inputs: its shape is known only then). After
    collection, so it is exit status 4 and not a collection error of one module."""
    from pytest_trt import zoo
    from pytest_trt.settings import InputTooLarge, check_input_size

    largest: dict[str, int] = {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("trt_case") if callspec is not None else None
        if isinstance(case, Case) and case.model is not None and not item.get_closest_marker("skip"):
            largest[case.model] = max(largest.get(case.model, 0), case.batch_size)
    try:
        for model, batch in largest.items():
            check_input_size(batch, zoo.get(model).input_shape, model)
    except InputTooLarge as exc:
        raise pytest.UsageError(str(exc)) from None


def annotate(item: pytest.Item, report: pytest.TestReport) -> None:
    """Put on the report what the controller needs: the case a test is about to time (with its setup
    report, so a process that dies in the case still names it) and, once, the case's result."""
    if report.when == "setup":
        callspec = getattr(item, "callspec", None)
        case = callspec.params.get("trt_case") if callspec is not None else None
        if isinstance(case, Case):
            model = getattr(item, "funcargs", {}).get("trt_model")
            name = getattr(model, "name", None) or case.model or case.id
            setattr(report, CASE_PROPERTY, {"case": case.to_dict(), "model_name": name})
    result = item.stash.get(RESULT, None)
    if result is not None and not item.stash.get(SENT, False):
        item.stash[SENT] = True
        # execnet carries exact built-in types only: normalise through JSON (numpy scalars, str subclasses)
        setattr(report, RESULT_ATTRIBUTE, json.loads(json.dumps(result.to_dict(), default=str)))


def junit_summary(item: pytest.Item) -> None:
    """A compact JSON summary of the case as a JUnit property: median, ratio, verdict; no samples."""
    result = item.stash.get(RESULT, None)
    if result is None or any(name == SUMMARY_PROPERTY for name, _ in item.user_properties):
        return
    summary: JSONDict = {"case": result.case.id, "status": result.status.value,
                         "median_s": result.median, "flags": [f.value for f in result.flags]}
    if result.verdict is not None:
        summary.update(verdict=result.verdict.outcome.value, ratio=result.verdict.ratio,
                       detectable=result.verdict.detectable)
    item.user_properties.append((SUMMARY_PROPERTY, json.dumps(summary, separators=(",", ":"))))


def worker_count(config: pytest.Config) -> int | None:
    workers = getattr(config, "workerinput", None) or config.getoption("numprocesses", None)
    return workers if isinstance(workers, int) else None




