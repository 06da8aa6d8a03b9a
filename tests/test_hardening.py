"""Audit findings a user meets through pytest: a model's NaN outputs and a crashed run's journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAST

NAN_CONFTEST = '''
import pytest
import torch
from pytest_trt import ModelSpec


class NanNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(x) * float("nan")


@pytest.fixture
def trt_model():
    return ModelSpec(name="nan-net", build=NanNet, input_shape=(8,))
'''


def test_a_model_whose_outputs_are_nan_is_recorded_as_nan(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(NAN_CONFTEST)
    pytester.makepyfile(test_bench="def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n")
    out = tmp_path / "r.json"
    result = pytester.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "--trt-results", str(out))
    cases = json.loads(out.read_text())["cases"]
    assert [c["status"] for c in cases] == ["nan"]
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert "Traceback" not in result.stdout.str()


def test_a_crashed_runs_journal_is_kept_by_the_next_run(user_project: pytest.Pytester, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    journal = tmp_path / "r.json.partial.jsonl"
    left = '{"case_id": "torch-fp32-bs8", "status": "ok"}\n'
    journal.write_text(left)  # what a run killed mid-way leaves
    result = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "--trt-results", str(out))
    assert result.ret == 0 and out.exists()
    kept = [p for p in tmp_path.glob("r.json.partial.jsonl.*")]
    assert len(kept) == 1 and kept[0].read_text() == left


HOSTILE = "evil\n# FAKE HEADING\n![x](https://example.invalid/x.png) <img src=x onerror=alert(1)> \x1b[2J"


def test_a_case_id_from_the_baseline_is_escaped_in_every_output(user_project: pytest.Pytester, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The baseline's case is not run tonight, so its id reaches each output as a MISSING verdict."""
    from pytest_trt import baseline
    from pytest_trt.case import Case
    from pytest_trt.records import CaseResult

    base = tmp_path / "b.json"
    result = CaseResult(Case(HOSTILE, "torch", "fp32", 1, "cpu"), f"test_x.py::t[{HOSTILE}]", HOSTILE)
    baseline.save(base, [baseline.new_run([result], {"hardware": {"kind": "cpu", "gpu_name": HOSTILE},
                                                      "software": {}})])
    summary, md, html = tmp_path / "summary.md", tmp_path / "r.md", tmp_path / "r.html"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    run = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1", "--trt-baseline", str(base),
                                 "--trt-report-md", str(md), "--trt-report-html", str(html))
    for text in (summary.read_text(), md.read_text()):
        assert "MISSING" in text and "evil" in text
        assert "\n# FAKE" not in text and "![x](" not in text and "\x1b" not in text
        assert "<img" not in text.replace("\\<img", "")
    page = html.read_text()
    assert "evil" in page and "<img src=x" not in page and "\x1b" not in page
    assert "evil" in run.stdout.str() and "\x1b[2J" not in run.stdout.str()
