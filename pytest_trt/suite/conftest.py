"""Collect the suite's test modules whatever ``python_files`` the host project sets.

`pytest --pyargs pytest_trt.suite` runs under the ini file of the folder it is started in; a project
with ``python_files = perf_*.py`` would otherwise collect nothing here and report "no tests ran". This
conftest is loaded only for this folder, so nothing else is affected.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import pytest

SUITE_DIR = Path(__file__).resolve().parent


@pytest.hookimpl(wrapper=True)
def pytest_collect_file(
    file_path: Path, parent: pytest.Collector
) -> Generator[None, list[pytest.Collector | None], list[pytest.Collector | None]]:
    collected = yield
    ours = file_path.parent.resolve() == SUITE_DIR and file_path.name.startswith("test_") and file_path.suffix == ".py"
    if ours and not any(isinstance(node, pytest.Module) for node in collected):
        collected.append(pytest.Module.from_parent(parent, path=file_path))
    return collected
