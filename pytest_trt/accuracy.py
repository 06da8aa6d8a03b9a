"""Output agreement with the fp32 reference, task metrics, batched evaluation and the accuracy gate.

Two questions are asked of every case (docs/design.md, rule 11):
1. Did it compute the same thing as fp32? ``agreement`` compares raw outputs within limits that
   depend on the precision. A zero, stale, constant or partly written output fails it at every
   precision; NaN/Inf always fails.
2. Is it still good at the task? ``evaluate`` runs a data split through the case, ``gate``
   compares the task metric with the fp32 value under ``max_drop``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from pytest_trt import detection
from pytest_trt.case import PRECISIONS
from pytest_trt.records import Agreement


@dataclass(frozen=True)
class Limits:
    """How far an output may be from the fp32 reference and still count as "the same".

    ``rel_err`` bounds ‖o − r‖/‖r‖ over the batch AND for each sample alone (so one missing sample
    fails even in a big batch); ``cosine`` is a floor on the per-sample cosine similarity;
    ``top1_agreement`` a floor on the share of decisive positions whose argmax matches.
    """

    rel_err: float
    cosine: float
    top1_agreement: float
    max_abs: float | None = None  # unbounded by default: logits have no common scale

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)


# Set from errors measured on the two reference models through ONNX Runtime CPU (64 test samples,
# lab/results/README-models.md): ORT fp32 vs torch fp32 rel. error ≤ 4.6e-7; fp16 ≤ 1.2e-3
# (worst sample 2.5e-3); int8 ≤ 3.2e-2 (worst 6.3e-2, cosine ≥ 0.998); fp8 ≤ 0.18 (worst 0.40,
# cosine ≥ 0.917, per-pixel top-1 0.986). A stale output (the previous batch's) measured rel. error
# 0.72-1.23, worst sample ≥ 1.2, cosine ≤ 0.48, top-1 agreement ≤ 0.82; zero or missing samples
# are 1.0. tf32 and bf16 (not runnable here) sit between by their mantissa widths (10 and 7 bits).
DEFAULT_LIMITS: dict[str, Limits] = {
    # GPU fp32 kernels (cuDNN Winograd/FFT, other reduction orders) measured 1.1e-4 on ResNet-50 at
    # batch 256 on an H100; stale or missing outputs sit near 1, so 1e-3 still catches them.
    "fp32": Limits(rel_err=1e-3, cosine=0.99999, top1_agreement=1.0),
    "tf32": Limits(rel_err=1e-2, cosine=0.9995, top1_agreement=0.99),
    "fp16": Limits(rel_err=2e-2, cosine=0.999, top1_agreement=0.98),
    "bf16": Limits(rel_err=6e-2, cosine=0.995, top1_agreement=0.95),
    "int8": Limits(rel_err=0.3, cosine=0.95, top1_agreement=0.9),
    "fp8": Limits(rel_err=0.5, cosine=0.85, top1_agreement=0.9),
}


def default_limits(precision: str) -> Limits:
    try:
        return DEFAULT_LIMITS[precision]
    except KeyError:
        raise ValueError(
            f"unknown precision {precision!r}; valid precisions: {', '.join(PRECISIONS)}"
        ) from None


def _per_sample(array: np.ndarray) -> np.ndarray:
    return array.reshape(array.shape[0], -1) if array.ndim > 1 else array.reshape(-1, 1)


def _cosines(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    num = np.sum(out * ref, axis=1)
    den = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
    # Two all-zero vectors agree; one zero vector against a non-zero one does not.
    both_zero = den == 0
    cos = np.where(both_zero, 0.0, num / np.where(both_zero, 1.0, den))
    return np.where(both_zero & (np.linalg.norm(out - ref, axis=1) == 0), 1.0, cos)


def _rel(diff_norm: np.ndarray | float, ref_norm: np.ndarray | float) -> np.ndarray:
    diff, ref = np.asarray(diff_norm, dtype=np.float64), np.asarray(ref_norm, dtype=np.float64)
    return np.where(ref > 0, diff / np.where(ref > 0, ref, 1.0), np.where(diff > 0, np.inf, 0.0))


def _top1_agreement(out: np.ndarray, ref: np.ndarray, tolerance: float) -> tuple[float | None, int]:
    """Argmax agreement over the class axis (axis 1) at decisive positions only.

    A position is decisive when the reference's best class leads the runner-up by more than
    ``tolerance``: near-ties may flip under any reduced precision, and counting them would make
    a batch of one fail at random. Returns (agreement or None, number of decisive positions).
    """
    if ref.ndim < 2 or ref.shape[1] < 2:
        return None, 0
    top2 = np.sort(ref, axis=1)[:, -2:]  # (N, 2, ...)
    decisive = (top2[:, 1] - top2[:, 0]) > tolerance
    count = int(decisive.sum())
    if count == 0:
        return None, 0
    same = np.argmax(out, axis=1) == np.argmax(ref, axis=1)
    return float(same[decisive].mean()), count


# Checking every element of a big output costs minutes of CPU per case (DeepLabV3 at batch 256:
# 5.6 GB of logits, ~100 s in float64) for no added power: past this many elements only evenly
# spaced items are compared, always the first and the last (a runner that fills only item 0, or a
# prefix of the batch, still fails).
CHECK_ELEMENTS = 1 << 24
MIN_CHECKED_ITEMS = 4


def checked_items(batch: int, per_item: int, budget: int = CHECK_ELEMENTS) -> tuple[int, ...] | None:
    """Which items of a batch the output check compares; None means all of them."""
    if batch <= MIN_CHECKED_ITEMS or batch * max(per_item, 1) <= budget:
        return None
    count = min(batch, max(MIN_CHECKED_ITEMS, budget // max(per_item, 1)))
    return tuple(sorted({round(i * (batch - 1) / (count - 1)) for i in range(count)}))


def agreement(
    output: np.ndarray, reference: np.ndarray, precision: str, limits: Limits | None = None,
    items: tuple[int, ...] | None = None,
) -> Agreement:
    """Compare a case's output with the fp32 reference for the same inputs.

    ``items``: the outputs are these items of the case's batch (``checked_items``); messages and
    the record name them by their place in the batch.

    Outputs are (N, C) logits or (N, C, H, W) per-pixel logits (class axis 1); ``reason`` is empty
    when the output passed.
    """
    lim = limits or default_limits(precision)
    out = np.asarray(output, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if out.shape != ref.shape:
        raise ValueError(f"output shape {out.shape} differs from the reference shape {ref.shape}")
    if not np.all(np.isfinite(ref)):
        raise ValueError("the fp32 reference itself holds NaN/Inf; it cannot judge other cases")
    nonfinite = int(out.size - np.count_nonzero(np.isfinite(out)))
    if nonfinite:
        return _with_items(_record(math.inf, math.inf, 0.0, None, nonfinite, math.inf, lim,
                                   f"{nonfinite} NaN/Inf values in the output"), items)
    flat_out, flat_ref = _per_sample(out), _per_sample(ref)
    diff = flat_out - flat_ref
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    rel_err = float(_rel(float(np.linalg.norm(diff)), float(np.linalg.norm(flat_ref))))
    sample_rel = _rel(np.linalg.norm(diff, axis=1), np.linalg.norm(flat_ref, axis=1))
    worst = float(np.max(sample_rel)) if sample_rel.size else 0.0
    cosine = float(np.min(_cosines(flat_out, flat_ref))) if flat_ref.size else 1.0
    rms = float(np.sqrt(np.mean(flat_ref**2))) if flat_ref.size else 0.0
    top1, _ = _top1_agreement(out, ref, tolerance=2.0 * lim.rel_err * rms)
    reasons = []
    if rel_err > lim.rel_err:
        reasons.append(f"relative error {rel_err:.3g} > {lim.rel_err:g}")
    if worst > lim.rel_err:
        worst_index = int(np.argmax(sample_rel))
        worst_index = items[worst_index] if items is not None else worst_index
        reasons.append(f"sample {worst_index} relative error {worst:.3g} > {lim.rel_err:g}")
    if cosine < lim.cosine:
        reasons.append(f"cosine similarity {cosine:.6f} < {lim.cosine:g}")
    if top1 is not None and top1 < lim.top1_agreement:
        reasons.append(f"top-1 agreement {top1:.4f} < {lim.top1_agreement:g}")
    if lim.max_abs is not None and max_abs > lim.max_abs:
        reasons.append(f"max abs error {max_abs:.3g} > {lim.max_abs:g}")
    return _with_items(_record(max_abs, rel_err, cosine, top1, 0, worst, lim, "; ".join(reasons)), items)


def nonfinite(count: int, precision: str, limits: Limits | None = None, items: tuple[int, ...] | None = None,
              where: str = "the output") -> Agreement:
    """The agreement record of an output (or reference) holding ``count`` NaN/Inf values."""
    lim = limits or default_limits(precision)
    return _with_items(_record(math.inf, math.inf, 0.0, None, count, math.inf, lim,
                               f"{count} NaN/Inf values in {where}"), items)


def _with_items(record: Agreement, items: tuple[int, ...] | None) -> Agreement:
    return replace(record, checked_items="all" if items is None else list(items))


def _record(
    max_abs: float, rel_err: float, cosine: float, top1: float | None, nonfinite: int,
    worst: float, lim: Limits, reason: str,
) -> Agreement:
    return Agreement(max_abs, rel_err, cosine, top1, nonfinite, worst, not reason, reason, lim.to_dict())


# --- task metrics -------------------------------------------------------------------------


def _predictions(outputs: np.ndarray, label_ndim: int) -> np.ndarray:
    """Class indices: argmax over axis 1 when ``outputs`` carries a class axis, else as is."""
    outputs = np.asarray(outputs)
    if outputs.ndim == label_ndim + 1:
        return np.asarray(np.argmax(outputs, axis=1))
    if outputs.ndim == label_ndim:
        return outputs.astype(np.int64, copy=False)
    raise ValueError(
        f"outputs of shape {outputs.shape} fit neither labels of rank {label_ndim} (predicted classes)"
        f" nor rank {label_ndim + 1} (scores with the class axis 1)"
    )


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of samples whose predicted class (argmax of (N, C) logits, or (N,) classes) is right."""
    labels = np.asarray(labels)
    pred = _predictions(logits, labels.ndim)
    if pred.shape != labels.shape:
        raise ValueError(f"predictions of shape {pred.shape} do not match labels of shape {labels.shape}")
    if labels.size == 0:
        raise ValueError("top1 of an empty set is undefined")
    return float(np.mean(pred == labels))


def miou(logits_or_pred: np.ndarray, masks: np.ndarray, num_classes: int) -> float:
    """Mean intersection over union, accumulated over the whole set, averaged over the classes
    present (in the masks or the predictions); classes absent from both are not counted."""
    masks = np.asarray(masks)
    pred = _predictions(logits_or_pred, masks.ndim)
    if pred.shape != masks.shape:
        raise ValueError(f"predictions of shape {pred.shape} do not match masks of shape {masks.shape}")
    valid = (masks >= 0) & (masks < num_classes)
    if not np.all(valid):
        raise ValueError(f"mask values must lie in [0, {num_classes}); found {np.unique(masks[~valid])[:5]}")
    pred = np.clip(pred, 0, num_classes)  # an out-of-range prediction is wrong, as its own bin
    joint = np.bincount(masks.ravel() * (num_classes + 1) + pred.ravel(),
                        minlength=num_classes * (num_classes + 1))
    confusion = joint.reshape(num_classes, num_classes + 1)[:, :num_classes]
    truth = joint.reshape(num_classes, num_classes + 1).sum(axis=1)
    predicted = confusion.sum(axis=0)
    inter = np.diag(confusion)
    union = truth + predicted - inter
    present = union > 0
    if not np.any(present):
        raise ValueError("miou of an empty set is undefined")
    return float(np.mean(inter[present] / union[present]))


Metric = Callable[[np.ndarray, np.ndarray, int], float]
METRICS: dict[str, Metric] = {
    "top1": lambda out, y, num_classes: top1(out, y),
    "miou": miou,
    "map50": detection.map50,
}
# Metrics scored from the raw output batch, not from per-position class predictions: mAP decodes
# boxes and runs NMS itself (pytest_trt.detection), which an argmax over axis 1 would destroy.
RAW_OUTPUT_METRICS = frozenset({"map50"})


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; valid metrics: {', '.join(sorted(METRICS))}") from None


def evaluate(
    run_batch: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int,
    metric: str,
    num_classes: int,
) -> float:
    """The task metric of ``run_batch`` over (x, y), fed in batches of exactly ``batch_size``.

    Engines may be built for one fixed shape, so the last batch is padded by repeating its own
    samples (cyclically) and the padded outputs are dropped before scoring.
    """
    score = get_metric(metric)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"need as many labels as inputs, at least one: got {len(x)} inputs, {len(y)} labels")
    predictions = []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        real = len(chunk)
        if real < batch_size:
            chunk = chunk[np.arange(batch_size) % real]
        out = np.asarray(run_batch(np.ascontiguousarray(chunk)))
        if out.shape[0] != batch_size:
            raise ValueError(f"run_batch returned {out.shape[0]} outputs for a batch of {batch_size} inputs")
        raw = metric in RAW_OUTPUT_METRICS
        predictions.append(out[:real] if raw else _predictions(out[:real], np.asarray(y).ndim))
    return score(np.concatenate(predictions), np.asarray(y), num_classes)


# --- the gate ------------------------------------------------------------------------------


def gate(value: float, reference: float, max_drop: float, metric: str) -> tuple[bool, str]:
    """Pass when the metric fell by at most ``max_drop`` from its fp32 value; one-line message."""
    drop = reference - value
    text = f"{metric} {value:.4f} vs fp32 {reference:.4f}, drop {drop:.4f}"
    if not (math.isfinite(value) and math.isfinite(reference)) or drop > max_drop:
        return False, f"accuracy gate failed: {text} > max_drop {max_drop:.4f}"
    return True, f"accuracy ok: {text} <= max_drop {max_drop:.4f}"
