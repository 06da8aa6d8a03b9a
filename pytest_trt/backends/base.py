"""The one runner protocol every backend implements, and the errors runners raise."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from pytest_trt.case import Case


class UnsupportedCase(Exception):
    """The backend cannot run this combination here; the case is skipped with this reason."""


class BuildError(Exception):
    """Export or engine build failed; the message carries the tool's own log."""


@runtime_checkable
class Runner(Protocol):
    """Runs one case's model. Inputs and outputs stay where the backend computes.

    Life cycle: ``prepare()`` once (load/compile/build, timed separately from inference), then
    ``load_inputs`` once per input set, ``run`` many times (the timed call), ``to_host`` to check
    outputs, ``close`` at the end. On CUDA, ``stream`` is the non-default ``torch.cuda.Stream``
    that ``run`` enqueues its work on, so the timing engine can put CUDA events around it.
    """

    case: Case
    stream: Any  # torch.cuda.Stream on CUDA, None on CPU
    info: dict[str, Any]  # recorded with the case: build time, engine size, providers, ...

    def prepare(self) -> None: ...

    def load_inputs(self, host: np.ndarray) -> Any:
        """Copy a host batch to where ``run`` reads it; returns the backend's input handle."""
        ...

    def run(self, inputs: Any) -> Any:
        """Enqueue one inference on ``inputs``; returns backend-resident outputs (no sync)."""
        ...

    def to_host(self, outputs: Any) -> np.ndarray:
        """Synchronize and return outputs as a float32 numpy array."""
        ...

    def close(self) -> None: ...
