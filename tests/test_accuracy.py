"""Output agreement, task metrics, batched evaluation and the accuracy gate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_trt import accuracy
from pytest_trt.accuracy import Limits, agreement, evaluate, gate, miou, top1
from pytest_trt.case import PRECISIONS

RNG = np.random.default_rng(0)


@pytest.fixture(scope="module")
def digits_logits() -> tuple[np.ndarray, np.ndarray]:
    """Real fp32 logits of the trained digits CNN on two consecutive test batches."""
    torch = pytest.importorskip("torch")
    from pytest_trt.data import digits
    from pytest_trt.zoo import small

    model = small.build(small.DIGITS_CNN)
    x = np.array(digits.load().test_x[:32])
    with torch.inference_mode():
        out = model(torch.from_numpy(x)).numpy()
    return out[:16], out[16:]


@pytest.fixture(scope="module")
def shapes_logits() -> tuple[np.ndarray, np.ndarray]:
    """Real fp32 per-pixel logits of the trained shapes UNet on two consecutive test batches."""
    torch = pytest.importorskip("torch")
    from pytest_trt.data import shapes
    from pytest_trt.zoo import small

    model = small.build(small.SHAPES_UNET)
    x = np.array(shapes.load().test_x[:8])
    with torch.inference_mode():
        out = model(torch.from_numpy(x)).numpy()
    return out[:4], out[4:]


# --- agreement -----------------------------------------------------------------------------


@pytest.mark.parametrize("precision", PRECISIONS)
def test_identical_output_passes_every_precision(precision: str) -> None:
    ref = RNG.standard_normal((4, 10))
    ref[np.arange(4), [1, 3, 5, 7]] += 10.0  # a clear winner, so every position is decisive
    result = agreement(ref.copy(), ref, precision)
    assert result.passed, result.reason
    assert result.rel_err == 0.0 and result.max_abs == 0.0 and result.nonfinite == 0
    assert result.top1_agreement == 1.0
    assert result.limits == accuracy.default_limits(precision).to_dict()


def test_small_noise_passes_fp16_but_not_fp32() -> None:
    ref = RNG.standard_normal((8, 10))
    noisy = ref + 2e-3 * RNG.standard_normal(ref.shape)
    assert agreement(noisy, ref, "fp16").passed
    failed = agreement(noisy, ref, "fp32")
    assert not failed.passed
    assert "relative error" in failed.reason


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("which", ["digits", "shapes"])
def test_zero_output_fails(precision: str, which: str, request: pytest.FixtureRequest) -> None:
    ref, _ = request.getfixturevalue(f"{which}_logits")
    result = agreement(np.zeros_like(ref), ref, precision)
    assert not result.passed
    assert result.rel_err == pytest.approx(1.0)


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("which", ["digits", "shapes"])
def test_stale_output_from_the_previous_batch_fails(precision: str, which: str,
                                                    request: pytest.FixtureRequest) -> None:
    current, previous = request.getfixturevalue(f"{which}_logits")
    result = agreement(previous, current, precision)
    assert not result.passed, result


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("which", ["digits", "shapes"])
def test_constant_output_fails(precision: str, which: str, request: pytest.FixtureRequest) -> None:
    ref, _ = request.getfixturevalue(f"{which}_logits")
    assert not agreement(np.full_like(ref, ref.mean()), ref, precision).passed
    # Every sample answered with sample 0's output: constant over the batch.
    assert not agreement(np.broadcast_to(ref[:1], ref.shape), ref, precision).passed


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("rest", ["zeros", "garbage"])
@pytest.mark.parametrize("which", ["digits", "shapes"])
def test_partial_output_only_first_sample_written_fails(precision: str, rest: str, which: str,
                                                        request: pytest.FixtureRequest) -> None:
    ref, _ = request.getfixturevalue(f"{which}_logits")
    out = np.zeros_like(ref) if rest == "zeros" else RNG.standard_normal(ref.shape).astype(ref.dtype)
    out[0] = ref[0]
    result = agreement(out, ref, precision)
    assert not result.passed
    assert "relative error" in result.reason and "sample 0 " not in result.reason


def test_one_missing_sample_in_a_big_batch_fails_even_at_int8() -> None:
    ref = RNG.standard_normal((256, 10)).astype(np.float32)
    out = ref.copy()
    out[200] = 0.0  # the batch-level error is only ~1/16, the sample's own is 1.0
    result = agreement(out, ref, "int8")
    assert result.rel_err < accuracy.default_limits("int8").rel_err
    assert not result.passed
    assert "sample 200" in result.reason


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_nan_or_inf_always_fails(bad: float, precision: str) -> None:
    ref = RNG.standard_normal((2, 10))
    out = ref.copy()
    out[1, 3] = bad
    result = agreement(out, ref, precision)
    assert not result.passed and result.nonfinite == 1
    assert "NaN/Inf" in result.reason


def test_near_tie_flip_is_not_counted_but_a_decisive_flip_is() -> None:
    ref = np.array([[5.0, 4.99999, -3.0, 0.0]])
    flipped_tie = np.array([[4.99999, 5.0, -3.0, 0.0]])
    result = agreement(flipped_tie, ref, "fp16")
    assert result.passed and result.top1_agreement is None  # no decisive position
    decisive = np.array([[10.0, 0.0], [0.0, 10.0], [10.0, 0.0], [0.0, 10.0]])
    swapped = decisive.copy()
    swapped[0] = [0.0, 10.0]
    result = agreement(swapped, decisive, "int8")
    assert result.top1_agreement == 0.75 and not result.passed
    assert "top-1 agreement 0.7500 < 0.9" in result.reason


def test_max_abs_limit_is_optional_and_checked_when_set() -> None:
    ref = np.ones((2, 4)) * 100
    out = ref + 0.5
    assert agreement(out, ref, "int8").passed
    assert not agreement(out, ref, "int8", Limits(0.3, 0.9, 0.9, max_abs=0.1)).passed


def test_shape_mismatch_and_bad_reference_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        agreement(np.zeros((2, 10)), np.zeros((1, 10)), "fp32")
    with pytest.raises(ValueError, match="reference"):
        agreement(np.zeros((1, 2)), np.array([[np.nan, 1.0]]), "fp32")
    with pytest.raises(ValueError, match="valid precisions: fp32, tf32, fp16, bf16, int8, fp8"):
        agreement(np.zeros((1, 2)), np.zeros((1, 2)), "int4")


# --- metrics -------------------------------------------------------------------------------


def test_top1_from_logits_and_from_classes() -> None:
    logits = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 0, 0, 0])
    assert top1(logits, labels) == 0.75
    assert top1(np.array([1, 0, 1, 0]), labels) == 0.75
    with pytest.raises(ValueError, match="do not match"):
        top1(logits[:3], labels)


def test_miou_by_hand() -> None:
    masks = np.array([[[0, 0], [1, 1]]])
    pred = np.array([[[0, 1], [1, 1]]])
    # class 0: inter 1, union 2 → 0.5; class 1: inter 2, union 3 → 2/3; class 2 absent → not counted.
    assert miou(pred, masks, num_classes=3) == pytest.approx((0.5 + 2 / 3) / 2)
    logits = np.stack([pred == c for c in range(3)], axis=1).astype(np.float32)  # (N, C, H, W)
    assert miou(logits, masks, num_classes=3) == pytest.approx((0.5 + 2 / 3) / 2)
    assert miou(masks, masks, num_classes=3) == 1.0
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        miou(pred, masks + 2, num_classes=3)


def test_metrics_registry() -> None:
    assert set(accuracy.METRICS) == {"top1", "miou", "map50"}
    with pytest.raises(ValueError, match="unknown metric 'map'; valid metrics: map50, miou, top1"):
        accuracy.get_metric("map")
    with pytest.raises(ValueError, match="valid metrics"):
        evaluate(lambda b: b, np.zeros((2, 1)), np.zeros(2), 1, "f1", 2)


# --- evaluate ------------------------------------------------------------------------------


def test_evaluate_feeds_exact_batches_and_drops_padding() -> None:
    x = RNG.standard_normal((10, 3)).astype(np.float32)
    y = np.argmax(x, axis=1)
    seen: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        seen.append(len(batch))
        return batch.copy()  # the "model" predicts argmax of its input: always right

    assert evaluate(run, x, y, 4, "top1", 3) == 1.0
    assert seen == [4, 4, 4]  # 10 samples → the last batch padded from 2 to 4

    def wrong_for_padding(batch: np.ndarray) -> np.ndarray:
        out = batch.copy()
        out[2:] = -out[2:]  # wrong on positions 2..3, which are padding in the last batch only
        return out

    # Batches 1 and 2 lose 2 of 4 each; the padded last batch keeps both real samples right.
    assert evaluate(wrong_for_padding, x, y, 4, "top1", 3) == pytest.approx(6 / 10)


def test_evaluate_rejects_a_wrong_number_of_outputs() -> None:
    x = np.zeros((4, 2), dtype=np.float32)
    with pytest.raises(ValueError, match="returned 1 outputs for a batch of 2"):
        evaluate(lambda b: b[:1], x, np.zeros(4, dtype=np.int64), 2, "top1", 2)
    with pytest.raises(ValueError, match="batch_size"):
        evaluate(lambda b: b, x, np.zeros(4, dtype=np.int64), 0, "top1", 2)


def test_evaluate_segmentation_matches_miou_over_the_whole_set() -> None:
    masks = RNG.integers(0, 3, size=(5, 4, 4))
    logits = RNG.standard_normal((5, 3, 4, 4)).astype(np.float32)
    table = dict(zip(map(bytes, masks.astype(np.float32)), logits, strict=True))

    def run(batch: np.ndarray) -> np.ndarray:
        return np.stack([table[bytes(sample[0])] for sample in batch])

    x = masks.astype(np.float32)[:, None]
    assert evaluate(run, x, masks, 2, "miou", 3) == pytest.approx(miou(logits, masks, 3))


# --- gate ----------------------------------------------------------------------------------


def test_gate_failure_message_is_the_one_line_the_issue_asks_for() -> None:
    passed, message = gate(0.8123, 0.8301, 0.01, "miou")
    assert not passed
    assert message == "accuracy gate failed: miou 0.8123 vs fp32 0.8301, drop 0.0178 > max_drop 0.0100"
    assert "\n" not in message


def test_gate_passes_within_the_drop_and_on_improvement() -> None:
    assert gate(0.825, 0.8301, 0.01, "miou")[0]
    passed, message = gate(0.99, 0.98, 0.0, "top1")
    assert passed and message.startswith("accuracy ok: top1 0.9900 vs fp32 0.9800")
    assert not gate(math.nan, 0.98, 0.5, "top1")[0]


def test_accuracy_record_keeps_the_file_shape_and_round_trips() -> None:
    from pytest_trt.records import Accuracy, TaskMetric

    ref = RNG.standard_normal((2, 10))
    passed, message = gate(0.97, 0.99, 0.01, "top1")
    rec = Accuracy(agreement(ref, ref, "int8"), TaskMetric("top1", 0.97, 0.99, 0.01, passed, message), True)
    data = rec.to_dict()
    assert set(data) == {"agreement", "checked_timed_outputs", "metric", "value", "reference", "drop", "max_drop",
                         "passed", "message"}
    assert data["drop"] == pytest.approx(0.02) and not rec.passed
    assert "accuracy gate failed: top1 0.9700 vs fp32 0.9900" in str(data["message"])
    assert Accuracy.from_dict(data) == rec
    no_data = Accuracy(agreement(ref, ref, "int8"))
    assert no_data.passed and "metric" not in no_data.to_dict()


# --- bounded checks of big outputs ---------------------------------------------------------


def test_small_outputs_are_checked_whole() -> None:
    assert accuracy.checked_items(256, 1000) is None  # ResNet-50 logits at batch 256
    assert accuracy.checked_items(4, 10**9) is None  # never fewer items than the batch's first few


def test_big_outputs_check_spread_items_with_first_and_last() -> None:
    per_item = 21 * 512 * 512  # DeepLabV3 logits at 512x512
    items = accuracy.checked_items(256, per_item)
    assert items is not None
    assert items[0] == 0 and items[-1] == 255
    assert len(items) == accuracy.MIN_CHECKED_ITEMS == len(set(items))
    assert len(items) * per_item <= max(accuracy.CHECK_ELEMENTS, accuracy.MIN_CHECKED_ITEMS * per_item)
    many = accuracy.checked_items(1000, 100_000)
    assert many is not None and len(many) == accuracy.CHECK_ELEMENTS // 100_000


def test_a_runner_that_fills_only_the_first_item_fails_a_bounded_check() -> None:
    ref = RNG.standard_normal((64, 3, 8, 8))
    out = np.zeros_like(ref)
    out[0] = ref[0]  # the seed-003 bug: batch > 1 silently computes item 0 only
    items = accuracy.checked_items(64, ref[0].size, budget=4 * ref[0].size)
    assert items is not None and items[-1] == 63
    result = agreement(out[list(items)], ref[list(items)], "fp16", items=items)
    assert not result.passed
    assert result.checked_items == list(items)
    assert "sample 21 relative error" in result.reason  # named by its place in the batch
