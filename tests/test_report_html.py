"""The HTML report: self-contained, verdicts on top and explained, plots or their fallback, nothing
from a file reaching the page as markup; ``pytest-trt report --html`` over results and baselines."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt import baseline, cli
from pytest_trt.case import Case
from pytest_trt.records import CaseResult, CaseState, Flag, Telemetry, Timing
from pytest_trt.report import html, plots, sections
from pytest_trt.stats import summarize
from pytest_trt.verdict import Outcome, Verdict

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<script>alert(1)</script><img src=x onerror=alert(1)>'\"><svg onload=alert(2)> $x^$ \x1b[2J"


def env(gpu: str = "NVIDIA H200") -> dict[str, Any]:
    return {"hardware": {"kind": "cuda", "cpu_model": "Xeon", "gpu_name": gpu, "gpu_count": 1,
                         "compute_capability": "9.0", "mig": None}, "software": {"torch": "2.13.0"}}


def result(median: float, seed: int, batch: int = 8, precision: str = "fp32", variant: str = "eager",
           model: str = "net", joules: float | None = 0.01) -> CaseResult:
    samples = list(median * np.exp(np.random.default_rng(seed).normal(0, 0.004, 200)))
    case = Case(model, "torch", precision, batch, "cuda:0", variant)
    timing = Timing("cuda-event", samples, summarize(samples, batch, sum(samples)), 3, 0.1, sum(samples), "converged")
    telemetry = Telemetry(power_mean_w=300.0, joules_per_item=joules) if joules else None
    return CaseResult(case, f"bench/test_m.py::test_latency[{case.id}]", model, timing=timing, telemetry=telemetry)


def matrix(scale: float, seed: int, model: str = "net") -> list[CaseResult]:
    return [result(1e-3 * scale * (1 + 0.5 * i), seed + i, batch, precision, model=model)
            for i, (batch, precision) in enumerate([(1, "fp32"), (8, "fp32"), (1, "fp16"), (8, "fp16")])]


def write_baseline(path: Path, runs: int, gpu: str = "NVIDIA H200") -> Path:
    for k in range(runs):
        baseline.save(path, [baseline.new_run(matrix(1.0 + 0.003 * k, 10 * k), env(gpu))])
    return path


def write_results(path: Path, cases: list[CaseResult], gpu: str = "NVIDIA H200") -> Path:
    document = {"schema_version": 1, "environment": env(gpu), "settings": {"threshold": 0.05},
                "cases": [c.to_dict() for c in cases], "verdicts": [c.verdict.to_dict() for c in cases if c.verdict]}
    path.write_text(json.dumps(document))
    return path


class Tags(HTMLParser):
    """Every tag and attribute name the browser would build from the page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            self.attributes.add(name)
            if name in ("href", "src", "xlink:href") and value:
                self.hrefs.append(value)


def parsed(page: str) -> Tags:
    tags = Tags()
    tags.feed(page)
    return tags


def page_of(tmp_path: Path, tonight: list[CaseResult], runs: int = 3) -> str:
    base = baseline.load(write_baseline(tmp_path / "base.json", runs))
    cases, verdicts = sections.rejudge(tonight, env(), base, {}, None)
    return html.document([sections.Section("tonight.json", env(), cases, verdicts, base, "re-judged")])


def test_the_verdicts_are_on_top_worst_first_each_explained(tmp_path: Path) -> None:
    tonight = matrix(1.0, 100)
    tonight[1] = result(1.5e-3 * 1.3, 7, 8, "fp32")  # 30 % slower than its baseline
    page = page_of(tmp_path, tonight)
    gate = page.index("<h2 style='margin-top:0'>Gate</h2>")
    assert gate < page.index("<h3>net</h3>")  # the gate's summary comes before any table
    assert "1 REGRESSION" in page and "3 PASS" in page and "0 UNSTABLE" in page
    first = page.index("chip o-regression", gate)
    assert first < page.index("<h3>net</h3>") and "slower than threshold 5.0%" in page
    assert "noise between processes" in page  # what UNSTABLE means, in the legend
    assert "NOISY" in page and "a flag, not a verdict" in page
    # the table's verdict cell explains itself: what the outcome means and the verdict's own message
    assert "title='REGRESSION: slower than the threshold and its noise" in page
    assert "1 × NVIDIA H200 (sm 9.0)" in page


def test_the_page_is_self_contained_and_draws_its_plots(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    page = page_of(tmp_path, matrix(1.02, 200))
    tags = parsed(page)
    assert all(h.startswith("#") for h in tags.hrefs)  # only references inside the page
    assert "script" not in tags.tags and "link" not in tags.tags
    assert not [h for h in page.split("http")[1:] if not h.startswith(("://www.w3.org/", "://creativecommons"))]
    assert page.count("<svg") == 5  # distribution, trend, speed-up, throughput, energy
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert "Latency samples against the baseline" in page and "Median per baseline run" in page


def test_nothing_from_a_file_becomes_markup_on_the_page(tmp_path: Path) -> None:
    tonight = [result(1e-3, 1, model=HOSTILE), result(2e-3, 2, 8, model=HOSTILE)]
    tonight[0].status, tonight[0].message = CaseState.ERROR, HOSTILE
    tonight[1].flags = [Flag.NOISY]
    tonight[1].verdict = Verdict(Outcome.REGRESSION, tonight[1].nodeid, HOSTILE, 0.05, ratio=1.2,
                                 ratio_ci=(1.1, 1.3), message=HOSTILE, baseline_median=1e-3, current_median=1.2e-3)
    environment = env(HOSTILE)
    for available in (True, False):
        if available and not plots.available():
            continue
        part = sections.Section(HOSTILE, environment, tonight, [tonight[1].verdict], None, HOSTILE)
        page = _with_plots(available, lambda part=part: html.document([part]))
        tags = parsed(page)
        assert "script" not in tags.tags and "img" not in tags.tags
        assert not [a for a in tags.attributes if a.startswith("on")], "an event handler got through"
        assert "\x1b" not in page and "&lt;script&gt;" in page


def _with_plots(available: bool, make: Any) -> str:
    if available:
        return str(make())
    saved = sys.modules.get("matplotlib")
    sys.modules["matplotlib"] = None  # type: ignore[assignment]  # import matplotlib now raises ImportError
    try:
        return str(make())
    finally:
        if saved is None:
            del sys.modules["matplotlib"]
        else:
            sys.modules["matplotlib"] = saved


def test_without_matplotlib_the_page_says_so_and_draws_plain_bars(tmp_path: Path) -> None:
    tonight = matrix(1.0, 300)
    tonight[0] = result(1.3e-3, 9, 1)
    page = _with_plots(False, lambda: page_of(tmp_path, tonight))
    assert "Plots need matplotlib" in page and "pytest-trt[html]" in page
    assert page.count("<svg") == 1 and "×1.29" in page  # the fallback: each judged case's ratio
    assert "Latency samples against the baseline" not in page


def test_writing_no_html_imports_no_matplotlib() -> None:
    code = ("import sys, pytest_trt.plugin, pytest_trt.report, pytest_trt.report.html, pytest_trt.compare; "
            "assert 'matplotlib' not in sys.modules, 'imported at import time'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_report_command_rejudges_results_against_the_baseline_of_their_gpu(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_baseline(tmp_path / "h200-base.json", 3)
    tonight = matrix(1.0, 400)
    tonight[2] = result(1e-3 * 2.0 * 1.4, 5, 1, "fp16")
    tonight[2].verdict = Verdict(Outcome.PASS, tonight[2].nodeid, tonight[2].case.id, 0.05, message="PASS stored")
    h200 = write_results(tmp_path / "h200.json", tonight)
    h100 = write_results(tmp_path / "h100.json", matrix(1.6, 500), gpu="NVIDIA H100")
    out = tmp_path / "fleet.html"
    code, stdout, err = run(["report", "--html", str(out), str(h200), str(h100), str(base)], capsys)
    assert code == 0, err
    assert stdout.strip() == f"pytest-trt report: wrote {out} (2 sections, 8 cases)"
    page = out.read_text()
    assert "1 × NVIDIA H200 (sm 9.0)" in page and "1 × NVIDIA H100 (sm 9.0)" in page
    assert "1 REGRESSION" in page and "PASS stored" not in page  # re-judged, not the stored verdict
    assert "re-judged by pytest-trt report against" in page and "h100.json): no baseline for this hardware" in page
    code, stdout, _ = run(["report", str(h200), str(base)], capsys)  # markdown: the same verdicts
    assert code == 0 and "**REGRESSION**" in stdout


def test_a_baseline_alone_shows_its_newest_run_against_the_runs_before(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = write_baseline(tmp_path / "base.json", 4)
    parts = sections.from_files([str(base)])
    assert len(parts) == 1 and "judged against its 3 earlier runs" in parts[0].judged
    assert {v.outcome for v in parts[0].verdicts} <= {Outcome.PASS, Outcome.UNSTABLE}
    assert len(parts[0].results) == 4


@pytest.mark.parametrize(("content", "expected"), [
    (None, "does not exist"), ("{", "not valid JSON"), ('{"x": 1}', "neither a pytest-trt results file"),
    ('{"schema_version": 1, "runs": []}', "holds no runs"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None,
                                          expected: str) -> None:
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    code, out, err = run(["report", "--html", str(tmp_path / "r.html"), str(bad)], capsys)
    assert code == 2 and str(bad) in err and expected in err and len(err.strip().splitlines()) == 1
    assert out == "" and not (tmp_path / "r.html").exists()


def test_bad_options_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_results(tmp_path / "r.json", matrix(1.0, 1))
    code, _, err = run(["report", "--threshold", "lots", str(good)], capsys)
    assert code == 2 and err.startswith("pytest-trt report: error: --threshold")
    blocked = tmp_path / "file"
    blocked.write_text("")
    code, _, err = run(["report", "--html", str(blocked / "r.html"), str(good)], capsys)
    assert code == 2 and err.startswith(f"pytest-trt report: error: --html {blocked / 'r.html'}")


def test_a_plot_that_fails_costs_its_figure_not_the_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("matplotlib")

    def broken(*args: object) -> str:
        raise ValueError("Axis limits cannot be NaN or Inf")

    monkeypatch.setattr(plots, "trend", broken)
    page = page_of(tmp_path, matrix(1.0, 600))
    assert "The trend plot could not be drawn: Axis limits cannot be NaN or Inf" in page
    assert page.count("<svg") == 4 and page.rstrip().endswith("</html>")


def test_a_gated_run_writes_its_page_with_the_baselines_history(pytester: pytest.Pytester,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """--trt-report-html in a run against a 3-run baseline: the regression on top, the plots drawn
    from the baseline's runs."""
    pytest.importorskip("torch")
    from tests.test_gate_acceptance import GATE, SLOW_CONFTEST, TEST, saved

    pytester.makeini("[pytest]\n")
    pytester.makeconftest(SLOW_CONFTEST)
    pytester.makepyfile(test_gate=TEST)
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.0")
    base = saved(pytester, pytester.path / "base.json")
    monkeypatch.setenv("PYTEST_TRT_TEST_DELAY_MS", "1.5")
    page_path = pytester.path / "report.html"
    result = pytester.runpytest(*GATE, "--trt-baseline", str(base), "--trt-confirm", "0",
                                "--trt-report-html", str(page_path))
    result.assert_outcomes(failed=1)
    page = page_path.read_text()
    assert page.index("1 REGRESSION") < page.index("<h3>delayed</h3>")
    assert f"judged by this run against {base} (3 runs)" in page
    if plots.available():
        assert "Latency samples against the baseline" in page and "Median per baseline run" in page
