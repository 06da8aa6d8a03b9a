"""Live progress on the terminal: which case of how many, its model, backend, precision and batch,
the phase it is in, how long it has run, and its median when done.

The display hears the phases a case announces (``Progress``, fed by ``bench.run_case``) and the
results the controller receives. It redraws only then, at phase boundaries: a clock ticking during
the timed loop would need a thread competing with the measured one for the GIL.

- On a terminal: one status line under pytest's current line, rewritten in place, erased (and the
  cursor put back at the end of pytest's line) before pytest writes anything, so pytest's own
  output is never overwritten.
- Elsewhere (a CI log, ``-s``): plain lines, no cursor movement. Two per case (its start, which
  names a case that hangs, and its end with the median), plus a phase line at most every
  ``INTERVAL_S`` seconds, so a slow export or autotuning says where it is.
- Off with ``-q``, in pytest-xdist runs (workers report to the controller, whose own output
  already shows each finished item; a case that dies is named from the progress files) and in a
  fresh-process re-measurement.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Protocol

import pytest

from pytest_trt.case import Case
from pytest_trt.records import CaseResult, CaseState

INTERVAL_S = 10.0
PHASES = {
    "prepare": "prepare (export, build, calibrate)",
    "test": "test body",
    "peaks": "GPU peak calibration",
    "first_run": "first run (autotune)",
    "check": "check outputs",
    "measure": "measure",
    "check_timed": "check timed outputs",
    "task_metric": "task metric",
    "transfers": "transfers",
    "ort_profile": "ONNX Runtime profile",
    "flops": "FLOPs",
}
ERASE_LINE = "\r\x1b[K"


class Terminal(Protocol):
    """Where the display writes: pytest's terminal, or a fake in tests."""

    def line(self, text: str) -> None: ...  # a whole line, after ending pytest's current one

    def raw(self, text: str) -> None: ...  # control sequences, outside pytest's line accounting

    def width(self) -> int: ...

    def current(self) -> int: ...  # the width of pytest's current line


class Live:
    """What the display shows; the events come from ``Progress`` and the controller."""

    def __init__(self, out: Terminal, tty: bool, clock: Callable[[], float] = time.monotonic,
                 interval: float = INTERVAL_S) -> None:
        self.out, self.tty, self.clock, self.interval = out, tty, clock, interval
        self.total = 0
        self.seen: dict[str, int] = {}  # node id -> its number
        self.label = ""
        self.started = 0.0
        self.last = ""  # the previous case's end, shown beside the running one on a terminal
        self.printed = -interval  # when the last plain line went out
        self.visible = False
        self.lifted = 0  # the status sits a line below pytest's line, which is this wide

    # -- events ----------------------------------------------------------------------------------

    def case_started(self, nodeid: str, case: dict[str, Any], model_name: str) -> None:
        self.seen.setdefault(nodeid, len(self.seen) + 1)
        self.label = f"[{self._count(nodeid)}] {describe(Case.from_dict(case), model_name)}"
        self.started = self.clock()
        self._say(PHASES["prepare"], always=True)

    def phase_started(self, name: str) -> None:
        if self.label:
            self._say(PHASES.get(name, name), always=False)

    def finished(self, result: CaseResult) -> None:
        if result.nodeid not in self.seen:
            return  # a case that never started here (a setup skip): nothing to close
        if result.status is CaseState.OK and result.median is not None:
            outcome = f"median {_ms(result.median)}"
        else:
            outcome = result.status.value.upper()
        label = f"[{self._count(result.nodeid)}] {describe(result.case, result.model_name)}"
        elapsed = self.clock() - self.started if label == self.label else None
        if self.tty:
            self.last = f"[{self._count(result.nodeid)}] {outcome}"
        else:
            self.out.line(f"pytest-trt {label}: {outcome}" + (f" ({elapsed:.1f} s)" if elapsed is not None else ""))
            self.printed = self.clock()
        self.label = ""

    def hide(self) -> None:
        """Before pytest writes: erase the status line and put the cursor back where pytest left it."""
        if not self.visible:
            return
        back = f"\x1b[A\x1b[{self.lifted + 1}G" if self.lifted else ""
        self.out.raw(ERASE_LINE + back)
        self.visible = False

    # -- drawing ---------------------------------------------------------------------------------

    def _count(self, nodeid: str) -> str:
        number = self.seen.get(nodeid, len(self.seen))
        return f"{number}/{self.total}" if self.total >= number else str(number)

    def _say(self, phase: str, always: bool) -> None:
        elapsed = self.clock() - self.started
        if self.tty:
            done = f"  (done: {self.last})" if self.last else ""
            self._show(f"pytest-trt {self.label} · {phase} · {elapsed:.1f} s{done}")
        elif always or self.clock() - self.printed >= self.interval:
            shown = f" ({elapsed:.1f} s in)" if elapsed >= 0.05 else ""
            self.out.line(f"pytest-trt {self.label}: {phase}{shown}")
            self.printed = self.clock()

    def _show(self, text: str) -> None:
        width = max(self.out.width() - 1, 20)
        text = text if len(text) <= width else text[:width - 1] + "…"
        if not self.visible:
            self.lifted = self.out.current()
            self.out.raw("\n" if self.lifted else "")  # below pytest's line, which stays as it is
        self.out.raw(ERASE_LINE + text)
        self.visible = True


def describe(case: Case, model_name: str) -> str:
    """'resnet50 torch fp16 bs32 cuda-graph'."""
    parts = [case.model or model_name, case.backend, case.precision, f"bs{case.batch_size}"]
    return " ".join(parts + ([case.variant] if case.variant != "eager" else []))


def _ms(seconds: float) -> str:
    from pytest_trt.verdict import format_seconds

    return format_seconds(seconds)


class PytestTerminal:
    """pytest's terminal reporter, written to with capturing suspended (as pytest's live logging does)."""

    def __init__(self, config: pytest.Config, reporter: pytest.TerminalReporter) -> None:
        self.config, self.reporter = config, reporter
        self.capture = config.pluginmanager.get_plugin("capturemanager")

    def _uncaptured(self) -> AbstractContextManager[None]:
        disabled = getattr(self.capture, "global_and_fixture_disabled", None)
        return disabled() if callable(disabled) else nullcontext()

    def line(self, text: str) -> None:
        with self._uncaptured():
            self.reporter.write_line(text)
            self.reporter.flush()

    def raw(self, text: str) -> None:
        with self._uncaptured():
            self.reporter.write_raw(text, flush=True)

    def width(self) -> int:
        return self.config.get_terminal_writer().fullwidth

    def current(self) -> int:
        return max(self.config.get_terminal_writer().width_of_current_line, 0)


class LivePlugin:
    """The display's pytest hooks: the number of cases, and getting out of pytest's way."""

    def __init__(self, live: Live) -> None:
        self.live = live

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.live.total = sum(1 for item in session.items if _is_case(item))

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logstart(self) -> None:
        self.live.hide()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self) -> None:
        self.live.hide()

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logfinish(self) -> None:
        self.live.hide()

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.live.hide()

    @pytest.hookimpl(tryfirst=True)
    def pytest_keyboard_interrupt(self) -> None:
        self.live.hide()


def _is_case(item: pytest.Item) -> bool:
    """A pytest-trt case that will run (the matrix marks unsupported ones skipped up front)."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    return isinstance(params.get("trt_case"), Case) and item.get_closest_marker("skip") is None


def wanted(config: pytest.Config) -> bool:
    """Not with -q, not in pytest-xdist runs (workers or controller), not in a re-measuring child."""
    from pytest_trt import remeasure

    workers = config.getoption("numprocesses", None)
    return (config.get_verbosity() >= 0 and getattr(config, "workerinput", None) is None
            and not (isinstance(workers, int) and workers > 0) and not remeasure.in_child())


def install(config: pytest.Config, listen: Callable[[Live], None]) -> Live | None:
    """Register the display when it is wanted; ``listen`` connects it to the progress and results."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if not wanted(config) or not isinstance(reporter, pytest.TerminalReporter):
        return None
    tty = bool(reporter.isatty) and config.getoption("capture", "fd") != "no" and hasattr(reporter, "write_raw")
    live = Live(PytestTerminal(config, reporter), tty)
    listen(live)
    config.pluginmanager.register(LivePlugin(live), "pytest-trt-live")
    return live
