"""lab/tools/zoo_table.py: merging the zoo's results files into one grid without inventing cells."""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="module")
def zt(repo_script: Any) -> types.ModuleType:
    module: types.ModuleType = repo_script("lab/tools/zoo_table.py")
    return module


def _case(model: str, batch: int, status: str = "ok", median_s: float = 0.002, message: str = "") -> dict[str, Any]:
    c = {"model": model, "backend": "torch", "precision": "fp32", "batch_size": batch, "device": "cuda:0",
         "variant": "eager"}
    stats = {"median": median_s, "throughput": batch / median_s}
    return {"case": c, "status": status, "message": message, "timing": {"stats": stats},
            "telemetry": {"power_mean_w": 300.0, "items_per_s_per_w": batch / median_s / 300},
            "build": {"tflops": 12.5, "percent_of_peak": 24.0}, "flags": []}


def test_later_files_win_missing_cells_say_so_and_journals_are_read(zt: types.ModuleType, tmp_path: Path) -> None:
    first = tmp_path / "a.json"
    first.write_text(json.dumps({"cases": [_case("unet", 1, median_s=0.004), _case("unet", 32)]}))
    second = tmp_path / "b.partial.jsonl"
    second.write_text(json.dumps(_case("unet", 1, median_s=0.003)) + "\n"
                      + json.dumps(_case("vgg16", 4096, "oom", message="CUDA out of memory")) + "\n")
    out = tmp_path / "zoo.md"
    assert zt.main([f"s1={first}", f"s2={second}", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| torch fp32 | 1 | OK | 3.000 | 333 | 300 | 1.11 | 12.5 | 24.0 |  | s2 |" in text
    assert "| torch fp32 | 32 | OK | 2.000 |" in text and "| torch fp32 | 256 | not measured |" in text
    assert "2 of the grid's 162 cells have a result" in text
    assert "| unet | ok / ok / - |" in text
    assert "vgg16 torch fp32 eager batch 4096: OOM (s2) CUDA out of memory" in text


def test_a_missing_file_is_a_usage_error_naming_it(zt: types.ModuleType, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        zt.main([f"s1={tmp_path / 'nope.json'}"])
    assert exit_info.value.code == 2


def test_unfinished_cases_never_hide_a_result_and_are_counted_apart(zt: types.ModuleType, tmp_path: Path) -> None:
    first = tmp_path / "a.json"
    first.write_text(json.dumps({"cases": [_case("unet", 1)]}))
    second = tmp_path / "b.json"
    stopped = "interrupted inside the case; it was in phase first_run for 175.7 s"
    second.write_text(json.dumps({"cases": [
        _case("unet", 1, "interrupted", message="in phase measure"),
        _case("unet", 256, "interrupted", message=stopped),
        _case("unet", 32, "error", message="Fail in phase first_run: CUDNN_STATUS_NOT_SUPPORTED"),
    ]}))
    out = tmp_path / "zoo.md"
    assert zt.main([f"s1={first}", f"s2={second}", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| torch fp32 | 1 | OK | 2.000 |" in text and "| unet | ok / error / interrupted |" in text
    assert "2 of the grid's 162 cells have a result (a measurement, or a state the case reached: OOM, ERROR) " \
           "(6 models x 9 configurations x batch 1, 32, 256); 1 started but not finished." in text
    assert f"- torch fp32, batch 256: {stopped}" in text
    assert "- torch fp32, batch 32: Fail in phase first_run: CUDNN_STATUS_NOT_SUPPORTED" in text
