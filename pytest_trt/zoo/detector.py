"""``scenes-det``: a small YOLO-style single-stage detector for the procedural scenes set.

A conv backbone (stride 8) and a 1×1 head give one tensor ``(N, 5 + C, 8, 8)``: per grid cell an
objectness logit, the box centre and size, and C class logits. The box is decoded inside the
graph, YOLOv5-style: centre ``(2·sigmoid(t) − 0.5 + cell) × 8`` and size ``(2·sigmoid(t))² × 16``
pixels. So the deployed ONNX/TensorRT engine includes the decoding, as an exported YOLOv5 does,
and the one output is self-describing: ``pytest_trt.detection`` scores it with no side
information. ``preprocess`` (uint8 frames → network input) and ``postprocess`` (head tensor →
boxes after class-wise NMS) are the other two stages of the pipeline, set on the spec.

Trained on the scenes' calibration split (``python -m pytest_trt.zoo.train --model scenes-det``);
its weights live in ``weights/scenes-det.npz``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from pytest_trt import detection
from pytest_trt.data import scenes
from pytest_trt.model import ModelSpec
from pytest_trt.zoo import small

if TYPE_CHECKING:
    import torch

NAME = "scenes-det"
STRIDE = 8
GRID = scenes.SIZE // STRIDE
ANCHOR = 16.0  # pixels: (2·sigmoid)² × 16 spans 0-64, the objects are 6-26
OUTPUTS = 5 + scenes.NUM_CLASSES
# Loss weights: the box term is a mean over the few cells with an object, objectness a mean over
# all 64 cells (~2.5 positive), so it is weighted up to keep both in play.
BOX_WEIGHT, OBJ_WEIGHT, CLS_WEIGHT = 2.0, 4.0, 0.5


@lru_cache(maxsize=1)
def _detector_class() -> type[torch.nn.Module]:
    import torch
    from torch import nn

    block = small._conv_block

    class SceneDetector(nn.Module):
        """Backbone 12-24-48-72 channels with three 2×2 max-pools, a 1×1 head and in-graph decoding."""

        def __init__(self, num_classes: int = scenes.NUM_CLASSES, width: int = 12) -> None:
            super().__init__()
            w = width
            self.backbone = nn.Sequential(
                block(3, w), nn.MaxPool2d(2),
                block(w, 2 * w), nn.MaxPool2d(2),
                block(2 * w, 4 * w), block(4 * w, 4 * w), nn.MaxPool2d(2),
                block(4 * w, 6 * w), block(6 * w, 6 * w),
            )
            self.head = nn.Conv2d(6 * w, 5 + num_classes, 1)
            cells = torch.arange(GRID, dtype=torch.float32)
            grid = torch.stack(torch.meshgrid(cells, cells, indexing="xy"))[None]  # (1, 2, S, S): x, y
            self.register_buffer("grid", grid, persistent=False)  # a constant, not a weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            t = self.head(self.backbone(x))
            grid: torch.Tensor = self.grid  # type: ignore[assignment]
            centre = (2.0 * torch.sigmoid(t[:, 1:3]) - 0.5 + grid) * STRIDE
            size = (2.0 * torch.sigmoid(t[:, 3:5])) ** 2 * ANCHOR
            return torch.cat([t[:, :1], centre, size, t[:, 5:]], dim=1)

    return SceneDetector


def net() -> torch.nn.Module:
    """The architecture with fresh (seeded by the caller) weights."""
    return _detector_class()()


def build() -> torch.nn.Module:
    """The detector with its committed trained weights, in eval mode."""
    return small.load_weights(net(), small.weights_path(NAME))


def preprocess(raw: np.ndarray) -> np.ndarray:
    """Raw uint8 frames (N, 64, 64, 3) → the network input (N, 3, 64, 64), normalized float32."""
    return scenes.preprocess(raw)


def postprocess(outputs: np.ndarray) -> list[detection.Detections]:
    """A batch of head outputs → per image, boxes after class-wise NMS (score > 0.25, IoU 0.5)."""
    return detection.postprocess(outputs)


def spec() -> ModelSpec:
    return ModelSpec(
        name=NAME,
        build=build,
        input_shape=scenes.INPUT_SHAPE,
        task="detection",
        dataset=scenes.load,
        trained=True,
        extra={"group": "small"},  # fast enough for the default CPU suite (README-detector.md)
        preprocess=preprocess,
        postprocess=postprocess,
    )


def specs() -> list[ModelSpec]:
    return [spec()]


# --- training targets and loss (used by pytest_trt.zoo.train) ---------------------------------


def targets(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: has-object (N, S, S) bool, class (N, S, S) int64, box xyxy (N, 4, S, S) float32.

    Each object belongs to the cell holding its box centre; two centres in one cell keep the
    later object (rare with at most four objects on an 8×8 grid).
    """
    n = len(labels)
    has = np.zeros((n, GRID, GRID), dtype=bool)
    cls = np.zeros((n, GRID, GRID), dtype=np.int64)
    box = np.zeros((n, 4, GRID, GRID), dtype=np.float32)
    for image, slot in zip(*np.nonzero(labels[..., 0] >= 0), strict=True):
        c, x1, y1, x2, y2 = labels[image, slot]
        gx = min(int((x1 + x2) / 2 // STRIDE), GRID - 1)
        gy = min(int((y1 + y2) / 2 // STRIDE), GRID - 1)
        has[image, gy, gx], cls[image, gy, gx] = True, int(c)
        box[image, :, gy, gx] = (x1, y1, x2, y2)
    return has, cls, box


def _giou(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Generalized IoU of matching xyxy rows (K, 4)."""
    import torch

    lt, rb = torch.maximum(pred[:, :2], target[:, :2]), torch.minimum(pred[:, 2:], target[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=1)
    area_p = (pred[:, 2:] - pred[:, :2]).prod(dim=1)
    area_t = (target[:, 2:] - target[:, :2]).prod(dim=1)
    union = area_p + area_t - inter
    hull = (torch.maximum(pred[:, 2:], target[:, 2:]) - torch.minimum(pred[:, :2], target[:, :2])).prod(dim=1)
    iou = inter / union
    return iou - (hull - union) / hull


def loss(
    outputs: torch.Tensor, has: torch.Tensor, cls: torch.Tensor, box: torch.Tensor
) -> torch.Tensor:
    """1 − GIoU on the cells with an object, objectness BCE on all cells, class cross-entropy."""
    import torch
    import torch.nn.functional as F

    objectness = F.binary_cross_entropy_with_logits(outputs[:, 0], has.float())
    if not bool(has.any()):
        return OBJ_WEIGHT * objectness
    cells = outputs.permute(0, 2, 3, 1)[has]  # (K, 5 + C)
    centre, size = cells[:, 1:3], cells[:, 3:5]
    pred = torch.cat([centre - size / 2, centre + size / 2], dim=1)
    box_loss = (1.0 - _giou(pred, box.permute(0, 2, 3, 1)[has])).mean()
    cls_loss = F.cross_entropy(cells[:, 5:], cls[has])
    return BOX_WEIGHT * box_loss + OBJ_WEIGHT * objectness + CLS_WEIGHT * cls_loss
