"""Detection post-processing and its task metric: box decoding, class-wise NMS, mAP@0.5.

The head layout this module reads (the layout of YOLOv5's exported ONNX, channel-first): one
float tensor ``(N, 5 + C, S, S)`` (or ``(N, 5 + C, K)`` for K candidates), per candidate
``[objectness logit, cx, cy, w, h, class logits × C]`` with the box centre and size already
decoded into input pixels inside the graph (grid offsets and strides are part of the network, as
deployed, so the output needs no side information to be scored). Scores are
``sigmoid(objectness) × softmax(class logits)``; every class above the score threshold is a
candidate (multi-label, as detection benchmarks evaluate), then NMS runs per class.

``average_precision`` is COCO's: greedy matching by score per image and class at IoU ≥ 0.5,
101-point interpolated precision, averaged over the classes that have ground truth. It follows
pycocotools' ``COCOeval`` step by step (stable sort orders, tie rules, at most 100 detections per
image and class), so the two agree to rounding (tests/test_detection.py checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

IOU_THRESHOLD = 0.5
# Evaluation keeps nearly every candidate (the precision-recall curve needs the low scores too);
# a deployed pipeline keeps the confident ones (``postprocess``'s default).
EVAL_SCORE_THRESHOLD = 0.001
SCORE_THRESHOLD = 0.25
MAX_DETECTIONS = 100  # per image, COCO's maxDets
_RECALL_POINTS = np.linspace(0.0, 1.0, 101)  # COCO's recThrs


@dataclass(frozen=True)
class Detections:
    """One image's detections, best first: boxes (K, 4) x1 y1 x2 y2 in pixels, scores, classes."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _candidates_first(outputs: np.ndarray) -> np.ndarray:
    """(N, 5 + C, S, S) or (N, 5 + C, K) → (N, K, 5 + C) float32."""
    outputs = np.asarray(outputs, dtype=np.float32)
    if outputs.ndim not in (3, 4) or outputs.shape[1] < 6:
        raise ValueError(
            f"detection outputs must be (N, 5 + C, S, S) or (N, 5 + C, K) with C >= 1, got {outputs.shape}"
        )
    return np.ascontiguousarray(outputs.reshape(outputs.shape[0], outputs.shape[1], -1).transpose(0, 2, 1))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow for large |x|
    return out


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    out: np.ndarray = e / e.sum(axis=-1, keepdims=True)
    return out


def decode(outputs: np.ndarray, score_threshold: float) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per image: candidate boxes (xyxy, float32), scores and classes with score > threshold."""
    rows = _candidates_first(outputs)
    scores = _sigmoid(rows[..., :1]) * _softmax(rows[..., 5:])  # (N, K, C)
    cx, cy, w, h = (rows[..., i] for i in range(1, 5))
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1).astype(np.float32)
    result = []
    for image in range(rows.shape[0]):
        cand, cls = np.nonzero(scores[image] > score_threshold)
        result.append((boxes[image, cand], scores[image, cand, cls].astype(np.float32), cls.astype(np.int64)))
    return result


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy boxes, in their dtype, in torchvision's operation order."""
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):  # two empty boxes: NaN, never "overlapping"
        out: np.ndarray = inter / (area_a[:, None] + area_b[None, :] - inter)
    return out


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS with torchvision.ops.nms's semantics: keep the best box, drop every later box
    whose IoU with a kept one is > ``iou_threshold``; kept indices by decreasing score (ties in
    input order, where torchvision's unstable sort may pick either)."""
    order = np.argsort(-scores, kind="stable")
    if len(order) == 0:
        return order.astype(np.int64)
    iou = box_iou(boxes[order], boxes[order])
    suppressed = np.zeros(len(order), dtype=bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed[i + 1 :] |= iou[i, i + 1 :] > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)]


def batched_nms_numpy(
    boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """NMS within each class independently (torchvision.ops.batched_nms), indices by decreasing score."""
    kept = [np.nonzero(labels == c)[0][nms(boxes[labels == c], scores[labels == c], iou_threshold)]
            for c in np.unique(labels)]
    if not kept:
        return np.zeros(0, dtype=np.int64)
    index = np.concatenate(kept)
    return index[np.argsort(-scores[index], kind="stable")]


@lru_cache(maxsize=1)
def torchvision_available() -> bool:
    """Whether torchvision's NMS runs here (PyPI's torchvision fails to import beside a torch it
    was not built for, with a RuntimeError about its operators, not an ImportError)."""
    try:
        import torchvision.ops  # noqa: F401
    except (ImportError, RuntimeError):
        return False
    return True


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-wise NMS: torchvision's ``batched_nms`` where torchvision imports, else the numpy one."""
    if not torchvision_available() or len(scores) == 0:
        return batched_nms_numpy(boxes, scores, labels, iou_threshold)
    import torch
    import torchvision.ops

    keep = torchvision.ops.batched_nms(torch.from_numpy(np.ascontiguousarray(boxes)),
                                       torch.from_numpy(np.ascontiguousarray(scores)),
                                       torch.from_numpy(np.ascontiguousarray(labels)), iou_threshold)
    return np.asarray(keep.numpy(), dtype=np.int64)


def postprocess(
    outputs: np.ndarray,
    score_threshold: float = SCORE_THRESHOLD,
    iou_threshold: float = IOU_THRESHOLD,
    max_detections: int = MAX_DETECTIONS,
) -> list[Detections]:
    """A batch of head outputs → per image, the detections after class-wise NMS, best first."""
    result = []
    for boxes, scores, labels in decode(outputs, score_threshold):
        keep = batched_nms(boxes, scores, labels, iou_threshold)[:max_detections]
        result.append(Detections(boxes[keep], scores[keep], labels[keep]))
    return result


# --- mAP -------------------------------------------------------------------------------------


def _ground_truth(labels: np.ndarray, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim != 3 or labels.shape[2] != 5:
        raise ValueError(f"detection labels must be (N, M, 5) [class, x1, y1, x2, y2], got {labels.shape}")
    classes = labels[..., 0]
    real = classes >= 0
    bad = classes[real & ((classes >= num_classes) | (classes != np.round(classes)))]
    if bad.size:
        raise ValueError(f"label classes must be whole numbers in [0, {num_classes}) or -1; found {bad[:5]}")
    return labels


def _match(dets: Detections, gt: np.ndarray, cls: int, iou_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.evaluateImg for one image and class: scores and true-positive flags of its
    (at most MAX_DETECTIONS) detections. Each detection, best first, takes the unmatched
    ground truth of highest IoU ≥ the threshold (the last such one on ties, as COCO does)."""
    mine = np.nonzero(dets.labels == cls)[0]
    mine = mine[np.argsort(-dets.scores[mine], kind="mergesort")][:MAX_DETECTIONS]
    truth = gt[gt[:, 0] == cls, 1:].astype(np.float64)
    scores = dets.scores[mine].astype(np.float64)
    tp = np.zeros(len(mine), dtype=bool)
    if len(mine) == 0 or len(truth) == 0:
        return scores, tp
    iou = box_iou(dets.boxes[mine].astype(np.float64), truth)
    limit = min(iou_threshold, 1 - 1e-10)
    taken = np.zeros(len(truth), dtype=bool)
    for d in range(len(mine)):
        best, best_iou = -1, limit
        for g in range(len(truth)):
            if not taken[g] and iou[d, g] >= best_iou:
                best, best_iou = g, float(iou[d, g])
        if best >= 0:
            taken[best], tp[d] = True, True
    return scores, tp


def _class_ap(scores: np.ndarray, tp: np.ndarray, positives: int) -> float:
    """COCOeval.accumulate for one class: 101-point interpolated precision, averaged."""
    if len(scores) == 0:
        return 0.0  # ground truth but no detection: precision 0 at every recall point
    order = np.argsort(-scores, kind="mergesort")
    tps = np.cumsum(tp[order]).astype(np.float64)
    fps = np.cumsum(~tp[order]).astype(np.float64)
    recall = tps / positives
    precision = tps / (fps + tps + np.spacing(1))
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the envelope from the right
    index = np.searchsorted(recall, _RECALL_POINTS, side="left")
    sampled = np.where(index < len(precision), precision[np.minimum(index, len(precision) - 1)], 0.0)
    return float(np.mean(sampled))


def average_precision(
    detections: list[Detections], labels: np.ndarray, num_classes: int, iou_threshold: float = IOU_THRESHOLD
) -> float:
    """COCO-style AP at one IoU threshold over a data set, averaged over the classes with ground truth."""
    gt = _ground_truth(labels, num_classes)
    if len(detections) != len(gt):
        raise ValueError(f"{len(detections)} images of detections for {len(gt)} images of labels")
    per_class = []
    for cls in range(num_classes):
        positives = int(np.count_nonzero(gt[..., 0] == cls))
        if positives == 0:
            continue  # COCO leaves classes without ground truth out of the mean
        matched = [_match(dets, image_gt, cls, iou_threshold) for dets, image_gt in zip(detections, gt, strict=True)]
        scores = np.concatenate([m[0] for m in matched])
        tp = np.concatenate([m[1] for m in matched])
        per_class.append(_class_ap(scores, tp, positives))
    if not per_class:
        raise ValueError("mAP of a set without ground-truth objects is undefined")
    return float(np.mean(per_class))


def map50(outputs: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """mAP@0.5 of a batch of raw head outputs against padded labels (N, M, 5)."""
    outputs = np.asarray(outputs)
    if outputs.ndim in (3, 4) and outputs.shape[1] != 5 + num_classes:
        raise ValueError(f"outputs of shape {outputs.shape} do not hold 5 + {num_classes} channels on axis 1")
    detections = postprocess(outputs, EVAL_SCORE_THRESHOLD, IOU_THRESHOLD, MAX_DETECTIONS)
    return average_precision(detections, labels, num_classes, IOU_THRESHOLD)
