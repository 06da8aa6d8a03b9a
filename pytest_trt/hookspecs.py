"""Hooks pytest-trt adds to pytest: a conftest or another plugin implements them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from pytest_trt.backends.base import Backend


@pytest.hookspec
def pytest_trt_backends(config: pytest.Config) -> Iterable[Backend] | Backend | None:
    """Return backends (``pytest_trt.backends.Backend`` objects) to add to the built-in ones.

    Called once at configure time, before the options are validated, so ``--trt-backend NAME`` and
    ``@pytest.mark.trt(backends=[NAME])`` accept the names returned here. Implement it in a plugin
    or in a conftest that pytest loads at start-up (the rootdir's, or one beside the test paths
    given on the command line), as for ``pytest_addoption``.
    """
