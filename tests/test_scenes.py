"""The procedural detection set (pytest_trt.data.scenes): exact boxes, padding, splits, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_trt import data as data_registry
from pytest_trt.data import scenes


def _rows(x: np.ndarray) -> set[bytes]:
    return {bytes(sample) for sample in np.ascontiguousarray(x).reshape(len(x), -1)}


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    raw, labels, masks = scenes.generate_with_masks(200, seed=11)
    return raw, labels, masks


def test_box_convention_on_a_known_disc() -> None:
    # Pixel i covers [i, i + 1); its centre is i + 0.5. A disc of radius 5 at (32, 32) covers the
    # pixel centres 27.5 ... 36.5 on its axes, so columns/rows 27..36: box [27, 27, 37, 37].
    mask = scenes.shape_mask(0, 32.0, 32.0, 5.0, np.random.default_rng(0))
    assert scenes.box_of(mask) == (27.0, 27.0, 37.0, 37.0)
    assert mask[32, 27] and not mask[32, 26] and mask[32, 36] and not mask[32, 37]


def test_boxes_are_the_tight_bounds_of_each_objects_pixels(
    sample: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    _, labels, masks = sample
    checked = 0
    for image_labels, image_masks in zip(labels, masks, strict=True):
        for row, mask in zip(image_labels, image_masks, strict=True):
            if row[0] < 0:
                assert not mask.any()
                continue
            rows, cols = np.nonzero(mask)
            assert row[1:].tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
            checked += 1
    assert checked > 400  # 200 scenes of 1-4 objects


def test_objects_are_disjoint_with_a_gap_so_each_mask_is_what_is_visible(
    sample: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    raw, labels, masks = sample
    for image, image_masks in zip(raw, masks, strict=True):
        count = image_masks.sum(axis=0)
        assert count.max() <= 1  # no pixel belongs to two objects: nothing occludes a box
        for i, mask in enumerate(image_masks):
            if not mask.any():
                continue
            grown = mask.copy()
            grown[1:] |= mask[:-1]
            grown[:-1] |= mask[1:]
            grown[:, 1:] |= mask[:, :-1]
            grown[:, :-1] |= mask[:, 1:]
            others = np.delete(image_masks, i, axis=0).any(axis=0)
            assert not (grown & others).any()
            # The object stands out from the pixels just outside it (it is drawn to contrast).
            ring = grown & ~mask & ~others
            inside, outside = image[mask].astype(float).mean(0), image[ring].astype(float).mean(0)
            assert np.abs(inside - outside).max() > 20


def test_padding_counts_classes_and_sizes(sample: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    raw, labels, _ = sample
    assert raw.dtype == np.uint8 and raw.shape == (200, *scenes.RAW_SHAPE)
    assert labels.dtype == np.float32 and labels.shape == (200, scenes.MAX_OBJECTS, 5)
    real = labels[..., 0] >= 0
    assert np.all(labels[~real] == [scenes.PAD, 0, 0, 0, 0])
    # Real rows first, padding after; every scene has at least one object and some have four.
    assert np.all(np.diff(real.astype(int), axis=1) <= 0)
    per_image = real.sum(axis=1)
    assert per_image.min() >= 1 and per_image.max() == scenes.MAX_OBJECTS
    classes = labels[real, 0].astype(int)
    assert set(classes) == set(range(scenes.NUM_CLASSES)) and np.all(labels[real, 0] == classes)
    sides = np.concatenate([labels[real, 3] - labels[real, 1], labels[real, 4] - labels[real, 2]])
    assert sides.min() >= 4 and sides.max() <= 30 and sides.std() > 3  # varied sizes
    assert np.all(labels[real, 1:] >= 0) and np.all(labels[real, 1:] <= scenes.SIZE)


def test_generation_is_seeded() -> None:
    a_raw, a_labels = scenes.generate(5, seed=3)
    b_raw, b_labels = scenes.generate(5, seed=3)
    c_raw, _ = scenes.generate(5, seed=4)
    assert np.array_equal(a_raw, b_raw) and np.array_equal(a_labels, b_labels)
    assert not np.array_equal(a_raw, c_raw)
    with pytest.raises(ValueError, match="n must be >= 1"):
        scenes.generate(0, seed=0)


def test_load_splits_are_disjoint_cached_and_preprocessed_from_raw() -> None:
    d = scenes.load()
    assert d is scenes.load() and data_registry.get("scenes") is d
    assert (d.name, d.num_classes) == ("scenes", 4)
    assert d.raw is not None
    sizes = tuple(scenes.SPLIT_SIZES.values())
    assert (len(d.calib_x), len(d.val_x), len(d.test_x)) == sizes
    for x, y, raw in ((d.calib_x, d.calib_y, d.raw.calib), (d.val_x, d.val_y, d.raw.val),
                      (d.test_x, d.test_y, d.raw.test)):
        assert x.shape[1:] == scenes.INPUT_SHAPE and x.dtype == np.float32 and len(y) == len(x) == len(raw)
        assert np.array_equal(x, scenes.preprocess(raw))  # the network input is exactly preprocess(raw)
        assert not x.flags.writeable and not raw.flags.writeable and not y.flags.writeable
    assert not (_rows(d.raw.calib) & _rows(d.raw.test)) and not (_rows(d.raw.val) & _rows(d.raw.test))
    assert not (_rows(d.raw.calib) & _rows(d.raw.val))
    x, y = scenes.train_arrays()
    assert x is d.calib_x and y is d.calib_y  # the training split is the calibration split


def test_preprocess_normalizes_and_checks_its_input() -> None:
    raw = np.zeros((1, 2, 2, 3), dtype=np.uint8)
    raw[0, 0, 1] = (255, 0, 128)
    x = scenes.preprocess(raw)
    assert x.shape == (1, 3, 2, 2) and x.dtype == np.float32 and x.flags.c_contiguous
    assert x[0, :, 0, 1].tolist() == pytest.approx([2.0, -2.0, (128 / 255 - 0.5) / 0.25], abs=1e-6)
    with pytest.raises(ValueError, match=r"uint8 \(N, H, W, 3\)"):
        scenes.preprocess(raw.astype(np.float32))
    with pytest.raises(ValueError, match=r"uint8 \(N, H, W, 3\)"):
        scenes.preprocess(raw[0])
