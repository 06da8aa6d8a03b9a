"""What a session reads: settings, the resolved device, the artifact cache, the baseline.

One instance lives in ``config.stash``; fixtures reach it through the ``trt_context`` fixture.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_trt.artifacts import Artifacts
from pytest_trt.case import device_index
from pytest_trt.records import JSONDict
from pytest_trt.settings import Settings

if TYPE_CHECKING:
    from pytest_trt.baseline import Baseline
    from pytest_trt.progress import Progress


class Context:
    """The session's settings, device, artifact cache, baseline and progress file: what a case reads.

    It holds no results: the controller (``pytest_trt.session.Controller``) owns the run's state.
    """

    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id  # pytest-xdist worker ("gw3") or None for the controller
        self.baseline: Baseline | None = None  # loaded once at configure time (--trt-baseline)
        self._device: str | None = None
        self._artifacts: Artifacts | None = None
        self._environment: JSONDict | None = None
        self._progress: Progress | None = None

    @property
    def progress(self) -> Progress:
        """This process's current case and phase, mirrored to the cache dir (pytest_trt.progress)."""
        if self._progress is None:
            from pytest_trt.progress import Progress

            self._progress = Progress(self.cache_dir, self.worker_id)
        return self._progress

    @property
    def device(self) -> str:
        """The concrete device, resolved on first use (``auto`` imports torch only then)."""
        if self._device is None:
            self._device = resolve_device(self.settings, self.worker_id)
        return self._device

    @property
    def device_index(self) -> int:
        return device_index(self.device)

    @property
    def artifacts(self) -> Artifacts:
        if self._artifacts is None:
            self._artifacts = Artifacts(self.settings, self.device)
        return self._artifacts

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir

    def environment(self) -> JSONDict:
        if self._environment is None:
            from pytest_trt.environment import fingerprint

            self._environment = fingerprint(self.device)
        return self._environment


@contextmanager
def on_stream(stream: Any) -> Iterator[None]:
    """Make ``stream`` current (CUDA runners) so checks run where the timed work runs."""
    if stream is None:
        yield
        return
    import torch

    with torch.cuda.stream(stream):
        yield


def resolve_device(settings: Settings, worker: str | None) -> str:
    """auto/cuda/cuda:N → a concrete device; an xdist worker is pinned to its own GPU.

    ``worker`` comes from the worker's config, not the environment: a pytest started by a test
    inside a worker inherits PYTEST_XDIST_WORKER without being one.
    """
    from pytest_trt import devices, matrix

    device = matrix.resolve_device(settings.device)
    pinned_by_user = settings.device.startswith("cuda:")
    if device.startswith("cuda") and worker and (settings.devices or not pinned_by_user):
        import torch

        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")) or None
        device = f"cuda:{devices.pick_device(worker, settings.devices, torch.cuda.device_count(), count)}"
    return device
