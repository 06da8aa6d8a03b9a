"""pytest_trt.progress: the per-process record of the running case and its phase."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pytest_trt import progress
from pytest_trt.progress import Progress

CASE = {"model": "unet", "backend": "torch", "precision": "fp16", "batch_size": 256, "device": "cuda:0",
        "variant": "eager"}


def test_the_current_phase_and_the_finished_ones_are_readable_by_node_id(tmp_path: Path) -> None:
    start = time.time()
    worker = Progress(tmp_path, "gw0")
    worker.case("t.py::test[unet-torch-fp16-bs256]", CASE, "unet")
    worker.phase("first_run", {"prepare": 3.25})
    found = progress.read(tmp_path, start)
    record = found["t.py::test[unet-torch-fp16-bs256]"]
    assert record["case"] == CASE and record["model_name"] == "unet" and record["pid"] == os.getpid()
    assert record["phase"] == "first_run" and record["phases_s"] == {"prepare": 3.25}
    text = progress.describe(record, now=record["since"] + 212.4)
    assert text == "in phase first_run for 212.4 s (prepare 3.2 s)"


def test_where_names_the_running_case_phase_or_says_no_case_began(tmp_path: Path) -> None:
    worker = Progress(tmp_path, None)
    assert worker.where() == "before any case"
    worker.case("t.py::test[unet-torch-fp16-bs256]", CASE, "unet")
    worker.phase("first_run", {"prepare": 3.25})
    assert worker.where().startswith("in phase first_run for 0.") and worker.where().endswith("(prepare 3.2 s)")


def test_records_of_earlier_runs_and_unreadable_files_are_ignored(tmp_path: Path) -> None:
    Progress(tmp_path, None).case("old::test", CASE, "unet")
    (tmp_path / progress.DIRECTORY / "gw1.json").write_text("{not json")
    later = time.time() + 1
    assert progress.read(tmp_path, later) == {}
    assert progress.read(tmp_path / "nowhere", 0) == {}


def test_clear_removes_this_runs_files_only(tmp_path: Path) -> None:
    old = Progress(tmp_path, "gw0")
    old.case("a::t", CASE, "unet")
    os.utime(old.path, (1_000, 1_000))  # written by a run long ago
    start = time.time()
    new = Progress(tmp_path, "gw1")
    new.case("b::t", CASE, "unet")
    progress.clear(tmp_path, start)
    assert old.path.exists() and not new.path.exists()


def test_a_phase_without_a_case_writes_nothing_and_an_unwritable_dir_is_no_error(tmp_path: Path) -> None:
    idle = Progress(tmp_path, "gw0")
    idle.phase("measure", {})
    assert not idle.path.exists()
    blocked = tmp_path / "file"
    blocked.write_text("")
    Progress(blocked, "gw0").case("a::t", CASE, "unet")  # cannot create a directory under a file
