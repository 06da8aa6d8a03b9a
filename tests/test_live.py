"""Live progress: case n of N, its phase, elapsed time and median; one updating line on a terminal,
plain rate-limited lines elsewhere, nothing with -q or under pytest-xdist. Times come from a fake
clock; the pytester runs check what is said and in which order, never how fast."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_trt.case import Case
from pytest_trt.live import ERASE_LINE, Live
from pytest_trt.records import CaseResult, CaseState, Stats, Timing
from tests.conftest import FAST

CASE = Case("resnet50", "torch", "fp16", 32, "cuda:0", "cuda-graph")


class FakeTerminal:
    def __init__(self, width: int = 80, current: int = 0) -> None:
        self.lines: list[str] = []
        self.raws: list[str] = []
        self._width, self._current = width, current

    def line(self, text: str) -> None:
        self.lines.append(text)

    def raw(self, text: str) -> None:
        self.raws.append(text)

    def width(self) -> int:
        return self._width

    def current(self) -> int:
        return self._current


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def timed(case: Case, median: float, nodeid: str) -> CaseResult:
    stats = Stats(10, median, median, median, median, median, median, median, 0.0, 0.0, median, median, 1.0)
    timing = Timing("cuda-event", [median], stats, 1, 0.1, 1.0, "converged")
    return CaseResult(case, nodeid, "resnet50", timing=timing)


def test_plain_lines_name_each_case_and_its_median_and_rate_limit_the_phases() -> None:
    out, clock = FakeTerminal(), Clock()
    live = Live(out, tty=False, clock=clock, interval=10.0)
    live.total = 12
    live.case_started("t::a", CASE.to_dict(), "resnet50")
    for phase, at in (("first_run", 0.1), ("check", 1.0), ("measure", 15.0), ("check_timed", 17.0)):
        clock.now = 1000.0 + at
        live.phase_started(phase)
    clock.now = 1020.0
    live.finished(timed(CASE, 1.234e-3, "t::a"))
    assert out.lines == [
        "pytest-trt [1/12] resnet50 torch fp16 bs32 cuda-graph: prepare (export, build, calibrate)",
        "pytest-trt [1/12] resnet50 torch fp16 bs32 cuda-graph: measure (15.0 s in)",  # 10 s after the last line
        "pytest-trt [1/12] resnet50 torch fp16 bs32 cuda-graph: median 1.234 ms (20.0 s)",
    ]
    assert out.raws == []  # no cursor movement outside a terminal
    clock.now = 1021.0
    live.case_started("t::b", CASE.to_dict(), "resnet50")  # a case's start is always said: it may hang
    live.finished(CaseResult(CASE, "t::b", "resnet50", CaseState.OOM, "out of memory"))
    assert out.lines[-2:] == ["pytest-trt [2/12] resnet50 torch fp16 bs32 cuda-graph: prepare (export, build, "
                              "calibrate)", "pytest-trt [2/12] resnet50 torch fp16 bs32 cuda-graph: OOM (0.0 s)"]


def test_on_a_terminal_one_line_is_rewritten_below_pytests_and_erased_before_pytest_writes() -> None:
    out, clock = FakeTerminal(width=100, current=14), Clock()  # pytest's line: 'test_bench.py '
    live = Live(out, tty=True, clock=clock)
    live.total = 2
    live.case_started("t::a", CASE.to_dict(), "resnet50")
    clock.now += 2.5
    live.phase_started("measure")
    assert out.raws[0] == "\n"  # a line of its own, below pytest's, which is left as it is
    assert out.raws[1].startswith(ERASE_LINE + "pytest-trt [1/2] resnet50 torch fp16 bs32 cuda-graph · prepare")
    assert out.raws[2] == ERASE_LINE + "pytest-trt [1/2] resnet50 torch fp16 bs32 cuda-graph · measure · 2.5 s"
    assert all(len(r) - len(ERASE_LINE) <= 99 for r in out.raws[1:])  # never wider than the terminal
    live.hide()
    assert out.raws[-1] == ERASE_LINE + "\x1b[A\x1b[15G"  # back to the end of pytest's line
    live.hide()
    assert len(out.raws) == 4  # hidden once
    live.finished(timed(CASE, 2e-3, "t::a"))
    live.case_started("t::b", Case("resnet50", "torch", "fp32", 1, "cuda:0").to_dict(), "resnet50")
    assert out.raws[-1].endswith("(done: [1/2] median 2.000 ms)") or out.raws[-1].endswith("…")
    assert "pytest-trt [2/2] resnet50 torch fp32 bs1 · prepare" in out.raws[-1]
    assert out.lines == []


def test_a_terminal_line_on_an_empty_line_needs_no_cursor_movement() -> None:
    out = FakeTerminal(current=0)
    live = Live(out, tty=True, clock=Clock())
    live.case_started("t::a", CASE.to_dict(), "resnet50")
    live.hide()
    assert out.raws == ["", ERASE_LINE + out.raws[1][len(ERASE_LINE):], ERASE_LINE]


def test_long_lines_are_cut_to_the_terminal() -> None:
    out = FakeTerminal(width=40)
    live = Live(out, tty=True, clock=Clock())
    live.case_started("t::a", Case("a-model-with-a-very-long-name", "onnxruntime", "int8", 256, "cuda:0",
                                   "trt-ep").to_dict(), "x")
    shown = out.raws[-1][len(ERASE_LINE):]
    assert len(shown) == 39 and shown.endswith("…")


# -- in pytest --------------------------------------------------------------------------------------

ARGS = [*FAST, "--trt-backend", "torch", "--trt-batch-size", "1,2"]
LINE = re.compile(r"pytest-trt \[(\d)/2\] tiny-net torch fp32 bs(\d): (.*)")


def test_a_run_in_a_ci_log_says_each_case_in_plain_lines(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest(*ARGS)
    result.assert_outcomes(passed=2)
    said = [LINE.match(line) for line in result.outlines]
    found = [(m.group(1), m.group(2), m.group(3)) for m in said if m]
    assert [(n, b) for n, b, _ in found] == [("1", "1"), ("1", "1"), ("2", "2"), ("2", "2")]
    assert found[0][2] == "prepare (export, build, calibrate)"
    assert re.fullmatch(r"median \d+\.\d{3} (ms|µs) \(\d+\.\d s\)", found[1][2])
    assert "\x1b[" not in result.stdout.str() and "\r" not in result.stdout.str()


def test_quiet_runs_say_nothing_live(user_project: pytest.Pytester) -> None:
    result = user_project.runpytest(*ARGS, "-q")
    result.assert_outcomes(passed=2)
    assert not any(LINE.match(line) for line in result.outlines)


def test_xdist_runs_say_nothing_live(user_project: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = user_project.runpytest(*ARGS, "-n", "1")
    result.assert_outcomes(passed=2)
    assert not any("pytest-trt [" in line for line in result.outlines)


def _in_a_terminal(cwd: Path, args: list[str]) -> str:
    """Run pytest with a pseudo-terminal as its stdout; everything it wrote, escapes included."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "LINES": "40", "PY_COLORS": "0"}
    process = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=cwd, stdin=slave, stdout=slave,
                               stderr=slave, env=env, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    assert process.wait(timeout=600) == 0
    return b"".join(chunks).decode("utf-8", errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_on_a_terminal_the_status_is_one_line_rewritten_and_gone_before_each_result(
        user_project: pytest.Pytester) -> None:
    text = _in_a_terminal(user_project.path, ARGS)
    statuses = re.findall(r"\r\x1b\[K(pytest-trt [^\r\n\x1b]*)", text)
    assert any(s.startswith("pytest-trt [1/2] tiny-net torch fp32 bs1 · measure · ") for s in statuses)
    assert any(s.startswith("pytest-trt [2/2] tiny-net torch fp32 bs2 · ") and "(done: [1/2] median " in s
               for s in statuses)
    # each status is erased, the cursor back at the end of pytest's line ('test_bench.py ' and its dots),
    # right before pytest writes its next dot there
    assert re.findall(re.escape(ERASE_LINE) + r"\x1b\[A\x1b\[(\d+)G\.", text) == ["15", "16"]
    assert "pytest-trt results" in text
