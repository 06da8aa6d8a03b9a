"""tools/wheel_check.py: what makes the wheel check fail, without building or installing anything."""

from __future__ import annotations

import types
import zipfile
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def wc(repo_script: Any) -> types.ModuleType:
    module: types.ModuleType = repo_script("tools/wheel_check.py")
    return module


def _wheel(path: Path, names: list[str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, "x")
    return path


def _junit(path: Path, cases: dict[str, str]) -> Path:
    rows = []
    for name, outcome in cases.items():
        inner = "" if outcome == "passed" else f"<{outcome} message='m'/>"
        rows.append(f"<testcase classname='test_inference' name='{name}'>{inner}</testcase>")
    path.write_text(f"<testsuites><testsuite name='pytest'>{''.join(rows)}</testsuite></testsuites>")
    return path


def test_a_wheel_with_the_package_data_and_nothing_else_passes(wc: types.ModuleType, tmp_path: Path) -> None:
    wc.check_contents(_wheel(tmp_path / "ok.whl", [*wc.REQUIRED, "pytest_trt/gate.py"]))


def test_a_wheel_missing_the_digits_or_holding_the_lab_fails(wc: types.ModuleType, tmp_path: Path) -> None:
    names = [n for n in wc.REQUIRED if not n.endswith("digits.npz")]
    with pytest.raises(wc.CheckFailed, match=r"missing \['pytest_trt/data/digits.npz'\]"):
        wc.check_contents(_wheel(tmp_path / "a.whl", names))
    with pytest.raises(wc.CheckFailed, match="should not hold.*lab/nights/collect.py"):
        wc.check_contents(_wheel(tmp_path / "b.whl", [*wc.REQUIRED, "lab/nights/collect.py"]))


def test_the_suite_must_run_every_expected_case_and_pass_it(wc: types.ModuleType, tmp_path: Path) -> None:
    expected = {"test_latency[a]", "test_latency[b]"}
    assert wc.check_junit(_junit(tmp_path / "ok.xml", dict.fromkeys(expected, "passed")), expected) == 2
    for cases in ({"test_latency[a]": "passed", "test_latency[b]": "skipped"},  # a skip is not a run
                  {"test_latency[a]": "passed", "test_latency[b]": "failure"},
                  {"test_latency[a]": "passed"},  # one case missing
                  dict.fromkeys([*expected, "test_latency[c]"], "passed")):  # one the checkout does not run
        with pytest.raises(wc.CheckFailed, match="suite from the wheel"):
            wc.check_junit(_junit(tmp_path / "bad.xml", cases), expected)


def test_all_skipped_fails_even_when_nothing_was_expected(wc: types.ModuleType, tmp_path: Path) -> None:
    with pytest.raises(wc.CheckFailed, match="0 passed"):
        wc.check_junit(_junit(tmp_path / "skip.xml", {"test_latency[a]": "skipped"}), set())


def test_the_environment_of_the_installed_run_cannot_see_the_checkout(
    wc: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", "/checkout")
    monkeypatch.setenv("VIRTUAL_ENV", "/checkout/.venv")
    env = wc.clean_env()
    assert "PYTHONPATH" not in env and "VIRTUAL_ENV" not in env
