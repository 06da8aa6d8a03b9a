"""What the plugin hooks do: validate options, parametrize tests, collect results, write files.

Only the controller (no xdist, or the xdist controller) owns a ``Controller``: workers send their
results on test reports and never write results, baselines or reports themselves.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pytest_trt import matrix
from pytest_trt.case import Case
from pytest_trt.context import Context
from pytest_trt.results import CRASHED, INTERRUPTED, CaseResult
from pytest_trt.stash import CASE_PROPERTY, RESULT_PROPERTY


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


def announce_case(item: pytest.Item) -> None:
    """Send the case with the setup report, so the controller can record it if the process dies in it."""
    callspec = getattr(item, "callspec", None)
    case = callspec.params.get("trt_case") if callspec is not None else None
    if not isinstance(case, Case):
        return
    model = getattr(item, "funcargs", {}).get("trt_model")
    name = getattr(model, "name", None) or case.model or case.id
    item.user_properties.append((CASE_PROPERTY, {"case": case.to_dict(), "model_name": name}))


def _worker_crashed(report: pytest.TestReport) -> bool:
    """pytest-xdist's report for an item whose worker died (it then starts a new worker)."""
    return bool(report.failed and report.when == "???" and "crashed" in str(report.longrepr))  # type: ignore[comparison-overlap]


class Controller:
    """Collects case results from reports; writes results, baseline and reports at the end."""

    def __init__(self, config: pytest.Config, ctx: Context) -> None:
        self.config = config
        self.ctx = ctx
        self.results: dict[str, CaseResult] = {}
        self.planned: dict[str, dict[str, Any]] = {}  # nodeid → case announced at setup
        self.written: list[str] = []
        self.partial = partial_path(ctx)
        self._journal: Any = None
        self.finished: set[str] = set()  # node ids whose teardown was reported
        self.started = time.time()  # progress files older than this belong to other runs

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name == CASE_PROPERTY and isinstance(value, dict):
                self.planned[report.nodeid] = value
            if name == RESULT_PROPERTY and isinstance(value, dict):
                result = CaseResult.from_dict(value)
                if result.nodeid not in self.results:  # setup + call reports carry the same entries
                    self._journal_write(value)
                self.results[result.nodeid] = result
        if report.when == "teardown":
            self.finished.add(report.nodeid)
        if report.nodeid in self.planned and report.nodeid not in self.results and _worker_crashed(report):
            self._record(report.nodeid, CRASHED,
                         f"{report.longrepr}: the process died inside the case (a native abort or segfault, "
                         "e.g. in a backend's C++ code); pytest-xdist started a new worker")

    def _record(self, nodeid: str, status: str, message: str, where: dict[str, Any] | None = None) -> None:
        """A case that never reported a result: recorded with the phase its process last announced."""
        from pytest_trt import progress

        where = where or progress.read(self.ctx.cache_dir, self.started).get(nodeid)
        if where is not None:
            message = f"{message}; it was {progress.describe(where)}"
        planned = self.planned.get(nodeid) or where
        assert planned is not None
        result = CaseResult(Case.from_dict(planned["case"]), nodeid, planned["model_name"], status, message)
        self._journal_write(result.to_dict())
        self.results[nodeid] = result

    def _record_interrupted(self) -> None:
        """Cases started but never finished: the run stopped inside them (their setup included)."""
        from pytest_trt import progress

        running = progress.read(self.ctx.cache_dir, self.started)
        for nodeid in dict.fromkeys([*self.planned, *running]):
            if nodeid not in self.results and nodeid not in self.finished:
                self._record(nodeid, INTERRUPTED, "the run was interrupted inside the case (Ctrl-C or a "
                             "time limit) before it finished", running.get(nodeid))

    def _journal_write(self, value: dict[str, Any]) -> None:
        """Append each result as it arrives, so a crash (a native abort in a backend) loses nothing."""
        import json

        if self._journal is None:
            self.partial.parent.mkdir(parents=True, exist_ok=True)
            self._journal = self.partial.open("w", encoding="utf-8")
        self._journal.write(json.dumps(value) + "\n")
        self._journal.flush()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_trt import progress

        self._record_interrupted()
        progress.clear(self.ctx.cache_dir, self.started)
        if not self.results:
            return
        from pytest_trt import outputs

        results = list(self.results.values())
        self.written = outputs.write_all(self.ctx, results)
        if self._journal is not None:  # the complete file is written: the journal has done its job
            self._journal.close()
            self.partial.unlink(missing_ok=True)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        from pytest_trt import report

        terminalreporter.write_sep("=", "pytest-trt results")
        for line in report.table(list(self.results.values())):
            terminalreporter.write_line(line)
        for line in report.gate_lines(self.ctx.verdicts):
            terminalreporter.write_line(line)
        for path in self.written:
            terminalreporter.write_line(f"pytest-trt: wrote {path}")
        warning = self._xdist_cpu_warning()
        if warning:
            terminalreporter.write_line(f"pytest-trt: warning: {warning}", yellow=True)

    def _xdist_cpu_warning(self) -> str | None:
        from pytest_trt.devices import cpu_worker_warning

        workers = getattr(self.config, "workerinput", None) or self.config.getoption("numprocesses", None)
        if not isinstance(workers, int) or self.ctx.device != "cpu":
            return None
        return cpu_worker_warning(workers)


def partial_path(ctx: Context) -> Path:
    """Where results stream during the run: beside the results file, as JSON lines."""
    from pytest_trt.outputs import results_file

    results = results_file(ctx)
    return results.with_name(results.name + ".partial.jsonl")
