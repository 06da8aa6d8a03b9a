"""Model and data set specifications: what ``trt_model`` returns and users override."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

TASKS = ("classification", "segmentation", "detection")
METRICS = {"classification": "top1", "segmentation": "miou", "detection": "map50"}


@dataclass(frozen=True)
class RawSplits:
    """A data set's splits in the form a deployed pipeline receives them (e.g. uint8 N×H×W×C
    camera frames), before ``ModelSpec.preprocess`` turns them into the network input; row ``i``
    of a split is the same sample as row ``i`` of the matching ``Dataset.*_x``."""

    calib: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class Dataset:
    """Arrays with ground truth, split for calibration, validation and test.

    ``*_x`` are float32 NCHW inputs; ``*_y`` are int64 class indices (N,) for classification,
    masks (N, H, W) for segmentation, or for detection float32 boxes (N, M, 5) of
    ``[class, x1, y1, x2, y2]`` in pixels, padded to M objects per image with class -1.
    ``raw``: the same samples before preprocessing, when the data set has such a form.
    """

    name: str
    num_classes: int
    calib_x: np.ndarray
    calib_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    # Keyword-only: loaders build a Dataset from a list of the six arrays, positionally.
    raw: RawSplits | None = field(default=None, kw_only=True)


@dataclass(frozen=True)
class ModelSpec:
    """A model to benchmark: how to build it, what it eats, how to judge its outputs.

    ``build`` is called lazily (heavy imports happen there). ``dataset`` is optional: without it
    accuracy is output agreement with the fp32 reference only, and the results say so.

    The network is one stage of a deployed pipeline; the others are optional plain callables:
    ``preprocess`` maps the data set's raw form (``Dataset.raw``, e.g. uint8 N×H×W×C frames; see
    ``raw_inputs``) to the network input (float32, ``(N, *input_shape)``); ``postprocess`` maps
    the network's output batch to the task's answer (for a detector: decoded boxes after NMS).
    """

    name: str
    build: Callable[[], torch.nn.Module]
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    task: str | None = None
    dataset: Callable[[], Dataset] | None = None
    trained: bool = False  # random weights make the task metric meaningless
    seed: int = 0
    extra: dict[str, Any] | None = None
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None
    postprocess: Callable[[np.ndarray], object] | None = None

    @property
    def metric(self) -> str | None:
        return METRICS.get(self.task or "")

    def example_inputs(self, batch_size: int, seed: int | None = None) -> np.ndarray:
        """Representative non-zero inputs (docs/design.md, rule 9): fixed-seed standard normal."""
        rng = np.random.default_rng(self.seed if seed is None else seed)
        return rng.standard_normal((batch_size, *self.input_shape), dtype=np.float32)

    def raw_inputs(self, batch_size: int, seed: int | None = None) -> np.ndarray:
        """A batch in the pipeline's raw form, for timing ``preprocess`` → network → ``postprocess``.

        With a data set that has a raw form: validation rows drawn as the timed network inputs are
        (``default_rng(seed).choice(len(val), batch_size, replace=batch_size > len(val))``), so
        ``preprocess(raw_inputs(b, s))`` is that same network batch. Otherwise seeded uint8
        H×W×C noise of the input's size (non-zero, like ``example_inputs``).
        """
        seed = self.seed if seed is None else seed
        dataset = self.dataset() if self.dataset is not None else None
        rng = np.random.default_rng(seed)
        if dataset is not None and dataset.raw is not None:
            pool = dataset.raw.val
            rows = rng.choice(len(pool), size=batch_size, replace=batch_size > len(pool))
            return np.ascontiguousarray(pool[rows])
        channels, *spatial = self.input_shape
        return rng.integers(1, 256, size=(batch_size, *spatial, channels), dtype=np.uint8)
