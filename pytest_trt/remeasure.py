"""Re-measure a suspect case in a fresh process: a new interpreter, CUDA context and kernel choice.

What varies between nightly processes (host dispatch speed, the kernels cuDNN picks at start-up)
cannot be seen by measuring again in the same process, so the gate's confirmation runs the one test
item again in a child pytest: the same command line, rootdir and options, with the test paths
replaced by the item's node id and every output option dropped. The child writes only a results
file (``ENV``), judges nothing and re-measures nothing itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_trt.schema import ResultsDocument

ENV = "PYTEST_TRT_REMEASURE"  # set in the child: where it writes its results
# Options the child does without (files it must not write) or gets anew, with whether they take a value.
_REPLACED = {"--trt-save-baseline": True, "--trt-results": True, "--trt-report-md": True, "--trt-report-html": True,
            "--trt-benchmark-json": True, "--junitxml": True, "--junit-xml": True, "--numprocesses": True,
            "-n": True, "--dist": True, "--trt-devices": True, "--benchmark-json": True, "--benchmark-save": True,
            "--benchmark-autosave": False, "--html": True, "--trt-device": True, "--trt-save-artifacts": True}
TIMEOUT_S = 900.0


@dataclass(frozen=True)
class Child:
    """One fresh-process re-measurement: its results file, or why there is none."""

    results: Path | None
    seconds: float
    error: str = ""


def in_child() -> bool:
    return bool(os.environ.get(ENV))


def _without_outputs(args: Sequence[str]) -> list[str]:
    kept: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in _REPLACED:
            skip = _REPLACED[name] and "=" not in arg
            continue
        if arg.startswith("-n") and arg[2:].isdigit() or arg.startswith("--numprocesses="):
            continue  # -n4
        kept.append(arg)
    return kept


def command(config: pytest.Config, nodeid: str, device: str, results: Path) -> list[str]:
    """The child's command line: the parent's, selecting only ``nodeid``, writing only ``results``."""
    raw = list(config.invocation_params.args)
    selected = {str(a) for a in config.args}
    args = [a for a in _without_outputs(raw) if a not in selected]
    path, sep, rest = nodeid.partition("::")
    target = str(config.rootpath / path) + sep + rest
    extra = ["-n", "0"] if config.pluginmanager.hasplugin("xdist") else []
    return [sys.executable, "-m", "pytest", *args, "--rootdir", str(config.rootpath), "-p", "no:cacheprovider",
            "-q", "--trt-device", device, "--trt-results", str(results), *extra, target]


def run(config: pytest.Config, nodeid: str, device: str, timeout_s: float = TIMEOUT_S) -> Child:
    """Run one fresh process for ``nodeid``; its results land in a temp file the caller reads."""
    folder = Path(tempfile.mkdtemp(prefix="pytest-trt-remeasure-"))
    results = folder / "results.json"
    env = dict(os.environ, **{ENV: str(results)})
    env.pop("PYTEST_XDIST_WORKER", None)  # the child is no worker, whatever the parent is
    start = time.perf_counter()
    try:
        done = subprocess.run(command(config, nodeid, device, results), cwd=config.invocation_params.dir, env=env,
                              capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        return Child(None, time.perf_counter() - start, f"the fresh process ran past {timeout_s:.0f} s")
    seconds = time.perf_counter() - start
    if not results.is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        return Child(None, seconds, f"the fresh process exited {done.returncode} without results: "
                     + " / ".join(tail))
    return Child(results, seconds)


def fresh_document(config: pytest.Config, nodeid: str, device: str, what: str,
                   failures: list[str]) -> ResultsDocument | None:
    """One fresh process's results for ``nodeid``, read and validated, its temp folder removed; None
    (with why appended to ``failures``) when the process gave none that loads."""
    from pytest_trt import jsonfile, schema

    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()  # what this process cached, the child may need
    child = run(config, nodeid, device)
    try:
        if child.results is None:
            failures.append(child.error)
            return None
        return schema.results(jsonfile.read(child.results, what), str(child.results))
    except (jsonfile.FileFormatError, schema.SchemaError) as exc:
        failures.append(str(exc))
        return None
    finally:
        if child.results is not None:
            shutil.rmtree(child.results.parent, ignore_errors=True)
