"""Detection post-processing and mAP@0.5 (pytest_trt.detection), checked against references.

NMS: a brute-force reference here, and torchvision's batched_nms where torchvision imports.
mAP: pycocotools' COCOeval (the reference implementation, pinned in requirements/ci.txt so it runs
in CI), and torchmetrics' MeanAveragePrecision where it can run (it needs torchvision).
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np
import pytest

from pytest_trt import accuracy, detection
from pytest_trt.detection import Detections

C = 3  # classes in the random tests


def _random_boxes(rng: np.random.Generator, n: int, size: float = 64.0) -> np.ndarray:
    xy = rng.uniform(0, size * 0.8, size=(n, 2))
    wh = rng.uniform(2, size * 0.4, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1)


def _crowded(rng: np.random.Generator, n: int) -> np.ndarray:
    """Jittered copies of a few boxes: overlaps of every IoU, as a detector's raw candidates have."""
    base = _random_boxes(rng, -(-n // 6))
    return _jitter(rng, np.repeat(base, 6, axis=0)[:n], 1.5)


def _jitter(rng: np.random.Generator, boxes: np.ndarray, sd: float) -> np.ndarray:
    """Boxes moved by Gaussian noise, kept proper (x1 < x2, y1 < y2, at least 1 pixel)."""
    moved = boxes + rng.normal(0, sd, size=boxes.shape)
    moved[:, 2:] = np.maximum(moved[:, 2:], moved[:, :2] + 1.0)
    return moved


# --- decode and NMS ------------------------------------------------------------------------


def test_decode_reads_the_documented_layout() -> None:
    out = np.full((1, 5 + C, 2, 2), -20.0, dtype=np.float32)  # objectness ~0 everywhere ...
    out[0, :, 1, 0] = [3.0, 20.0, 30.0, 10.0, 8.0, 0.0, 0.0, 4.0]  # ... but one cell: class 2
    [(boxes, scores, labels)] = detection.decode(out, score_threshold=0.1)
    expected = 1 / (1 + np.exp(-3.0)) * np.exp(4.0) / (2 + np.exp(4.0))
    assert labels.tolist() == [2] and scores == pytest.approx([expected], rel=1e-6)
    assert boxes.tolist() == [[15.0, 26.0, 25.0, 34.0]]
    # Every class above the threshold is a candidate (multi-label): at 0.001 classes 0 and 1 join.
    [(_, low_scores, low_labels)] = detection.decode(out, score_threshold=0.001)
    assert sorted(low_labels.tolist()) == [0, 1, 2] and len(low_scores) == 3
    with pytest.raises(ValueError, match=r"\(N, 5 \+ C, S, S\)"):
        detection.decode(np.zeros((1, 5, 2, 2)), 0.1)


def _brute_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    def iou(a: np.ndarray, b: np.ndarray) -> float:
        w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = w * h
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    kept: list[int] = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
        if all(iou(boxes[i], boxes[k]) <= thr for k in kept):
            kept.append(i)
    return kept


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.7])
def test_nms_matches_a_brute_force_reference(seed: int, thr: float) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores = _crowded(rng, 60), rng.uniform(0, 1, 60)
    kept = detection.nms(boxes, scores, thr)
    assert kept.tolist() == _brute_nms(boxes, scores, thr)
    assert 1 < len(kept) < 60  # the case really suppresses something and keeps something


@pytest.mark.parametrize("seed", range(4))
def test_batched_nms_is_nms_within_each_class(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes, scores, labels = _crowded(rng, 80), rng.uniform(0, 1, 80), rng.integers(0, C, 80)
    kept = detection.batched_nms_numpy(boxes, scores, labels, 0.5)
    expected = [i for c in range(C) for i in np.nonzero(labels == c)[0][_brute_nms(boxes[labels == c],
                                                                                  scores[labels == c], 0.5)]]
    assert sorted(kept.tolist()) == sorted(expected)
    assert np.all(np.diff(scores[kept]) <= 0)  # best first


def test_nms_threshold_is_strict_and_classes_do_not_suppress_each_other() -> None:
    boxes = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], dtype=np.float32)  # IoU exactly 0.5
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert detection.nms(boxes, scores, 0.5).tolist() == [0, 1]  # suppressed only when IoU > threshold
    assert detection.nms(boxes, scores, 0.49).tolist() == [0]
    same = np.array([0, 0])
    assert detection.batched_nms_numpy(boxes, scores, same, 0.49).tolist() == [0]
    assert detection.batched_nms_numpy(boxes, scores, np.array([0, 1]), 0.49).tolist() == [0, 1]
    assert detection.batched_nms_numpy(boxes[:0], scores[:0], same[:0], 0.5).tolist() == []


@pytest.mark.parametrize("seed", range(4))
def test_numpy_nms_agrees_with_torchvision(seed: int) -> None:
    if not detection.torchvision_available():
        pytest.skip("torchvision does not import here (PyPI's torchvision needs the torch it was built for)")
    import torch
    import torchvision.ops

    rng = np.random.default_rng(seed)
    boxes = _crowded(rng, 300).astype(np.float32)
    scores, labels = rng.uniform(0, 1, 300).astype(np.float32), rng.integers(0, C, 300)
    theirs = torchvision.ops.batched_nms(torch.from_numpy(boxes), torch.from_numpy(scores),
                                         torch.from_numpy(labels), 0.5).numpy()
    assert detection.batched_nms_numpy(boxes, scores, labels, 0.5).tolist() == theirs.tolist()
    assert detection.batched_nms(boxes, scores, labels, 0.5).tolist() == theirs.tolist()


def test_postprocess_keeps_confident_boxes_after_nms() -> None:
    out = np.full((2, 5 + C, 2, 2), -20.0, dtype=np.float32)
    out[0, :, 0, 0] = [4.0, 20.0, 20.0, 10.0, 10.0, 5.0, 0.0, 0.0]
    out[0, :, 0, 1] = [3.0, 21.0, 20.0, 10.0, 10.0, 5.0, 0.0, 0.0]  # a duplicate of the first: suppressed
    out[0, :, 1, 1] = [3.0, 21.0, 20.0, 10.0, 10.0, 0.0, 5.0, 0.0]  # same place, other class: kept
    first, second = detection.postprocess(out)
    assert first.labels.tolist() == [0, 1] and len(second) == 0
    assert first.boxes[0].tolist() == [15.0, 15.0, 25.0, 25.0]


# --- mAP by hand ---------------------------------------------------------------------------


def _labels(*images: list[tuple[int, float, float, float, float]], slots: int = 4) -> np.ndarray:
    out = np.zeros((len(images), slots, 5), dtype=np.float32)
    out[..., 0] = -1
    for i, objects in enumerate(images):
        for j, obj in enumerate(objects):
            out[i, j] = obj
    return out


def _dets(*rows: tuple[int, float, float, float, float, float]) -> Detections:
    array = np.array(rows, dtype=np.float32).reshape(-1, 6)
    return Detections(array[:, 1:5], array[:, 5], array[:, 0].astype(np.int64))


def test_average_precision_by_hand() -> None:
    labels = _labels([(0, 0, 0, 10, 10), (1, 20, 20, 30, 30)])
    perfect = _dets((0, 0, 0, 10, 10, 0.9), (1, 20, 20, 30, 30, 0.8))
    assert detection.average_precision([perfect], labels, 2) == pytest.approx(1.0)
    # Class 0: a false positive ranked above the hit → precision 0.5 at every recall point; class 1
    # has no detection → 0. Class 2 has no ground truth: left out of the mean.
    fp_first = _dets((0, 40, 40, 50, 50, 0.95), (0, 0, 0, 10, 10, 0.9), (2, 0, 0, 5, 5, 0.99))
    assert detection.average_precision([fp_first], labels, 3) == pytest.approx((0.5 + 0.0) / 2, abs=1e-12)
    # IoU 0.5 exactly counts (COCO: IoU >= threshold); a box shifted a little further does not.
    half = _labels([(0, 0, 0, 10, 10)])
    assert detection.average_precision([_dets((0, 0, 0, 10, 20, 0.9))], half, 1) == pytest.approx(1.0)
    assert detection.average_precision([_dets((0, 0, 0, 10, 21, 0.9))], half, 1) == 0.0


def test_average_precision_rejects_bad_labels() -> None:
    with pytest.raises(ValueError, match=r"\(N, M, 5\)"):
        detection.average_precision([_dets()], np.zeros((1, 4)), 2)
    with pytest.raises(ValueError, match=r"whole numbers in \[0, 2\)"):
        detection.average_precision([_dets()], _labels([(5, 0, 0, 1, 1)]), 2)
    with pytest.raises(ValueError, match="without ground-truth objects"):
        detection.average_precision([_dets()], _labels([]), 2)
    with pytest.raises(ValueError, match="2 images of detections for 1"):
        detection.average_precision([_dets(), _dets()], _labels([(0, 0, 0, 1, 1)]), 2)


# --- against pycocotools and torchmetrics --------------------------------------------------


def _random_case(seed: int, ties: bool) -> tuple[list[Detections], np.ndarray]:
    """Ground truth of 0-5 objects per image; detections that are jittered copies (IoU on both
    sides of 0.5), wrong-class copies and pure false positives, at most 100 per image."""
    rng = np.random.default_rng(seed)
    images, labels = 24, np.zeros((24, 6, 5), dtype=np.float32)
    labels[..., 0] = -1
    dets = []
    for i in range(images):
        count = int(rng.integers(0, 6))
        gt = _random_boxes(rng, count)
        labels[i, :count, 0], labels[i, :count, 1:] = rng.integers(0, C, count), gt
        copies = _jitter(rng, np.repeat(gt, 3, axis=0), 2.5)
        boxes = np.concatenate([copies, _random_boxes(rng, int(rng.integers(0, 8)))]).astype(np.float32)
        cls = np.concatenate([np.repeat(labels[i, :count, 0], 3), rng.integers(0, C, len(boxes) - 3 * count)])
        flip = rng.random(len(cls)) < 0.15
        cls[flip] = rng.integers(0, C, int(flip.sum()))
        scores = rng.uniform(0, 1, len(boxes)).astype(np.float32)
        if ties:
            scores = np.round(scores * 4) / 4  # many equal scores: the tie rules must match too
        order = np.argsort(-scores, kind="stable")
        dets.append(Detections(boxes[order], scores[order], cls[order].astype(np.int64)))
    return dets, labels


def _coco_map50(detections: list[Detections], labels: np.ndarray, num_classes: int) -> float:
    """mAP@0.5 from pycocotools' COCOeval (area 'all', maxDets 100)."""
    coco_mod = pytest.importorskip("pycocotools.coco", reason="pycocotools is not installed")
    from pycocotools.cocoeval import COCOeval

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    gt_ann = [{"id": len(labels) * 10 + k, "image_id": i + 1, "category_id": int(row[0]) + 1,
               "bbox": xywh(row[1:]), "area": float((row[3] - row[1]) * (row[4] - row[2])), "iscrowd": 0}
              for i, image in enumerate(labels) for k, row in enumerate(image) if row[0] >= 0]
    gt_ann = [dict(a, id=n + 1) for n, a in enumerate(gt_ann)]
    gt = coco_mod.COCO()
    gt.dataset = {"images": [{"id": i + 1} for i in range(len(labels))], "annotations": gt_ann,
                  "categories": [{"id": c + 1} for c in range(num_classes)]}
    results = [{"image_id": i + 1, "category_id": int(c) + 1, "bbox": xywh(b), "score": float(s)}
               for i, d in enumerate(detections) for b, s, c in zip(d.boxes, d.scores, d.labels, strict=True)]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(results), "bbox")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0])


@pytest.mark.parametrize("ties", [False, True], ids=["distinct-scores", "tied-scores"])
@pytest.mark.parametrize("seed", range(5))
def test_map_agrees_with_pycocotools_on_random_detections(seed: int, ties: bool) -> None:
    dets, labels = _random_case(seed, ties)
    ours = detection.average_precision(dets, labels, C)
    assert 0.05 < ours < 0.95  # neither trivial end: the matching rules decide the value
    assert ours == pytest.approx(_coco_map50(dets, labels, C), abs=1e-6)


@pytest.fixture(scope="module")
def detector_outputs() -> tuple[np.ndarray, np.ndarray]:
    """The trained scenes-det's raw head outputs on 128 test scenes, with their labels."""
    torch = pytest.importorskip("torch")
    from pytest_trt.data import scenes
    from pytest_trt.zoo import detector

    data = scenes.load()
    with torch.inference_mode():
        out = detector.build()(torch.from_numpy(np.array(data.test_x[:128]))).numpy()
    return out, np.asarray(data.test_y[:128])


def test_map_agrees_with_pycocotools_on_real_detector_outputs(detector_outputs: tuple[np.ndarray, np.ndarray]) -> None:
    out, labels = detector_outputs
    dets = detection.postprocess(out, detection.EVAL_SCORE_THRESHOLD)
    ours = detection.map50(out, labels, 4)
    assert ours == detection.average_precision(dets, labels, 4)
    assert ours == pytest.approx(_coco_map50(dets, labels, 4), abs=1e-6)


def _torchmetrics_map50(detections: list[Detections], labels: np.ndarray) -> float:
    torch = pytest.importorskip("torch")
    if not detection.torchvision_available():
        pytest.skip("torchmetrics' MeanAveragePrecision needs torchvision, which does not import here")
    mean_ap = pytest.importorskip("torchmetrics.detection.mean_ap", reason="torchmetrics is not installed")
    metric: Any = mean_ap.MeanAveragePrecision(iou_thresholds=[0.5], box_format="xyxy", iou_type="bbox")
    preds = [{"boxes": torch.from_numpy(d.boxes), "scores": torch.from_numpy(d.scores),
              "labels": torch.from_numpy(d.labels)} for d in detections]
    target = [{"boxes": torch.from_numpy(image[image[:, 0] >= 0, 1:]),
               "labels": torch.from_numpy(image[image[:, 0] >= 0, 0].astype(np.int64))} for image in labels]
    metric.update(preds, target)
    return float(metric.compute()["map"])


@pytest.mark.parametrize("seed", range(3))
def test_map_agrees_with_torchmetrics_on_random_detections(seed: int) -> None:
    dets, labels = _random_case(seed, ties=False)
    assert detection.average_precision(dets, labels, C) == pytest.approx(_torchmetrics_map50(dets, labels), abs=1e-6)


def test_map_agrees_with_torchmetrics_on_real_detector_outputs(detector_outputs: tuple[np.ndarray, np.ndarray]) -> None:
    out, labels = detector_outputs
    dets = detection.postprocess(out, detection.EVAL_SCORE_THRESHOLD)
    assert detection.map50(out, labels, 4) == pytest.approx(_torchmetrics_map50(dets, labels), abs=1e-6)


# --- wiring into accuracy.evaluate ---------------------------------------------------------


def test_evaluate_scores_detection_outputs_whole_and_drops_padding(
    detector_outputs: tuple[np.ndarray, np.ndarray],
) -> None:
    out, labels = detector_outputs
    out, labels = out[:50], labels[:50]
    table = {i: out[i] for i in range(len(out))}

    def run(batch: np.ndarray) -> np.ndarray:  # the "model" looks its answer up by the sample's index
        return np.stack([table[int(sample[0, 0, 0])] for sample in batch])

    x = np.arange(50, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 2, 2), dtype=np.float32)
    value = accuracy.evaluate(run, x, labels, 16, "map50", 4)  # 50 = 3 × 16 + 2: the last batch padded
    assert value == detection.map50(out, labels, 4)
    assert 0.5 < value < 1.0
    assert accuracy.evaluate(run, x, labels, 16, "map50", 4) == value
    with pytest.raises(ValueError, match="5 \\+ 3 channels"):
        accuracy.evaluate(run, x, labels, 16, "map50", 3)
