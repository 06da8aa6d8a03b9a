"""The run's state and its end: results as they arrive, the cases that never reported, the files.

Only the controlling process (no xdist, or the xdist controller) has a ``Controller``. It keeps the
run's results and verdicts, journals each result as it arrives (a native abort in a backend loses
nothing), records cases that crashed or were cut short with the phase they were in, and at the end
has every writer write its file. A writer that fails (a full disk, a path that became unwritable)
costs only its own file: the others are still written, the failure is one line, and the run's exit
status becomes 4.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest

from pytest_trt import progress
from pytest_trt.case import Case
from pytest_trt.context import Context
from pytest_trt.records import CaseResult, CaseState, JSONDict
from pytest_trt.stash import CASE_PROPERTY, RESULT_ATTRIBUTE
from pytest_trt.verdict import Verdict

EXIT_OUTPUT_FAILED = 4


class Controller:
    """Collects case results from reports; writes results, baseline and reports at the end."""

    def __init__(self, config: pytest.Config, ctx: Context) -> None:
        self.config = config
        self.ctx = ctx
        self.results: dict[str, CaseResult] = {}  # by node id
        self.planned: dict[str, dict[str, Any]] = {}  # node id → the case announced at setup
        self.finished: set[str] = set()  # node ids whose teardown was reported
        self.verdicts: list[Verdict] = []
        self.written: list[str] = []
        self.failures: list[str] = []  # end-of-run writes that failed, one line each
        self.started = time.time()  # progress files older than this belong to other runs
        self._journal: IO[str] | None = None
        self.on_result: list[Callable[[CaseResult], None]] = []  # hear each case's result once (live display)

    # -- while the run goes ----------------------------------------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        planned = getattr(report, CASE_PROPERTY, None)
        if isinstance(planned, dict):
            self.planned[report.nodeid] = planned
        data = getattr(report, RESULT_ATTRIBUTE, None)
        if isinstance(data, dict):
            result = CaseResult.from_dict(data)
            first = result.nodeid not in self.results
            if first:
                self._journal_write(data)
            self.results[result.nodeid] = result
            for listener in self.on_result if first else []:
                listener(result)
        if report.when == "teardown":
            self.finished.add(report.nodeid)

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem: str, report: pytest.TestReport, sched: object) -> None:
        """pytest-xdist: the worker running ``crashitem`` died; it starts a new worker and goes on."""
        if crashitem not in self.results:
            self._record(crashitem, CaseState.CRASHED,
                         f"{report.longrepr}: the process died inside the case (a native abort or segfault, "
                         "e.g. in a backend's C++ code); pytest-xdist started a new worker")

    def _record(self, nodeid: str, status: CaseState, message: str, where: dict[str, Any] | None = None) -> None:
        """A case that never reported a result: recorded with the phase its process last announced."""
        where = where or progress.read(self.ctx.cache_dir, self.started).get(nodeid)
        if where is not None:
            message = f"{message}; it was {progress.describe(where)}"
        planned = self.planned.get(nodeid) or where
        if planned is None:
            return  # not a pytest-trt case
        from pytest_trt.records import case_key

        result = CaseResult(Case.from_dict(planned["case"]), nodeid, str(planned["model_name"]), status, message,
                            key=case_key(nodeid))
        self._journal_write(result.to_dict())
        self.results[nodeid] = result

    def _record_interrupted(self) -> None:
        """Cases started but never finished: the run stopped inside them (their setup included)."""
        running = progress.read(self.ctx.cache_dir, self.started)
        for nodeid in dict.fromkeys([*self.planned, *running]):
            if nodeid not in self.results and nodeid not in self.finished:
                self._record(nodeid, CaseState.INTERRUPTED, "the run was interrupted inside the case (Ctrl-C or a "
                             "time limit) before it finished", running.get(nodeid))

    def _journal_write(self, value: JSONDict) -> None:
        """Append each result as it arrives; a journal a crashed run left is kept, never truncated."""
        if self._journal is None:
            path = journal_path(self.ctx)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._journal = _fresh_journal(path).open("w", encoding="utf-8")
            except OSError as exc:
                self.failures.append(f"journal {path}: {exc.strerror or exc}")
                return
        self._journal.write(json.dumps(value, default=str) + "\n")
        self._journal.flush()

    # -- at the end ------------------------------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pytest_trt import report

        self._record_interrupted()
        progress.clear(self.ctx.cache_dir, self.started)
        if not self.results:
            return
        results = sorted(self.results.values(), key=lambda r: r.nodeid)
        self.verdicts = self._verdicts(results)
        self.written, failures = report.write_all(self.ctx, results, self.verdicts)
        self.failures += failures
        if self._journal is not None and not failures:
            self._journal.close()  # the complete file is written: the journal has done its job
            journal_path(self.ctx).unlink(missing_ok=True)
        if self.failures:
            session.exitstatus = EXIT_OUTPUT_FAILED

    def _verdicts(self, results: list[CaseResult]) -> list[Verdict]:
        verdicts = [r.verdict for r in results if r.verdict is not None]
        if self.ctx.baseline is not None:
            from pytest_trt import gate

            verdicts += gate.missing(self.ctx.baseline, [r.key or r.nodeid for r in results])
        return verdicts

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        from pytest_trt import report

        if self.results:
            terminalreporter.write_sep("=", "pytest-trt results")
            for line in report.terminal_lines(sorted(self.results.values(), key=lambda r: r.nodeid), self.verdicts):
                terminalreporter.write_line(line)
        for path in self.written:
            terminalreporter.write_line(f"pytest-trt: wrote {path}")
        for failure in self.failures:
            terminalreporter.write_line(f"pytest-trt: error: could not write {failure}", red=True)
        warning = self._xdist_cpu_warning()
        if warning:
            terminalreporter.write_line(f"pytest-trt: warning: {warning}", yellow=True)

    def _xdist_cpu_warning(self) -> str | None:
        from pytest_trt.devices import cpu_worker_warning
        from pytest_trt.session import worker_count

        workers = worker_count(self.config)
        if workers is None or self.ctx.device != "cpu":
            return None
        return cpu_worker_warning(workers)


def journal_path(ctx: Context) -> Path:
    """Where results stream during the run: beside the results file, as JSON lines."""
    from pytest_trt.report import results_file

    results = results_file(ctx)
    return results.with_name(results.name + ".partial.jsonl")


def _fresh_journal(path: Path) -> Path:
    """The journal a crashed run left is evidence: a new run moves it aside instead of replacing it."""
    if path.exists() and path.stat().st_size > 0:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(path.stat().st_mtime))
        path.rename(path.with_name(f"{path.name}.{stamp}"))
    return path
