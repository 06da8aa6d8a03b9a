"""Model and data set specifications: what ``trt_model`` returns and users override."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

TASKS = ("classification", "segmentation")
METRICS = {"classification": "top1", "segmentation": "miou"}


@dataclass(frozen=True)
class Dataset:
    """Arrays with ground truth, split for calibration, validation and test.

    ``*_x`` are float32 NCHW inputs; ``*_y`` are int64 class indices (N,) for classification or
    masks (N, H, W) for segmentation.
    """

    name: str
    num_classes: int
    calib_x: np.ndarray
    calib_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray


@dataclass(frozen=True)
class ModelSpec:
    """A model to benchmark: how to build it, what it eats, how to judge its outputs.

    ``build`` is called lazily (heavy imports happen there). ``dataset`` is optional: without it
    accuracy is output agreement with the fp32 reference only, and the results say so.
    """

    name: str
    build: Callable[[], torch.nn.Module]
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    task: str | None = None
    dataset: Callable[[], Dataset] | None = None
    trained: bool = False  # random weights make the task metric meaningless
    seed: int = 0
    extra: dict[str, Any] | None = None

    @property
    def metric(self) -> str | None:
        return METRICS.get(self.task or "")

    def example_inputs(self, batch_size: int, seed: int | None = None) -> np.ndarray:
        """Representative non-zero inputs (DESIGN.md rule 9): fixed-seed standard normal."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        return rng.standard_normal((batch_size, *self.input_shape), dtype=np.float32)
