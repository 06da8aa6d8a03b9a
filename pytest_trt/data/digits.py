"""Handwritten digits as a classification data set, shipped with the package (no network needed).

1797 real 8×8 grey images of the digits 0-9, upsampled bilinearly to 1×32×32 so that a few
conv/pool stages make sense, scaled to [-1, 1]. The split is stratified and fixed, so every call
returns the same samples. The calibration split is also the training split of the reference model
(calibration data normally comes from the training distribution); validation and test are held out.

Origin and licence: the test set of the UCI "Optical Recognition of Handwritten Digits" data set
(E. Alpaydin, C. Kaynak, 1998, https://doi.org/10.24432/C50P49), licensed CC BY 4.0, as bundled
with scikit-learn (``sklearn.datasets.load_digits``).

``digits.npz`` holds ``images`` (1797×8×8 uint8, 0..16), ``labels`` (uint8) and the sorted index
arrays ``calib``, ``val`` and ``test``. It was made once with scikit-learn 1.9.1, so that the package
does not depend on it; the split is the one this module computed before the data shipped:

    b = sklearn.datasets.load_digits(); y = b.target; index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=0.25, stratify=y, random_state=0)
    calib, val = train_test_split(rest, test_size=0.15 / 0.75, stratify=y[rest], random_state=0)
    np.savez_compressed("digits.npz", images=b.images.astype(np.uint8), labels=y.astype(np.uint8),
                        **{k: np.sort(v).astype(np.uint16) for k, v in dict(calib=calib, val=val, test=test).items()})
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from pytest_trt.data.folder import DatasetError
from pytest_trt.model import Dataset

NAME = "digits"
NUM_CLASSES = 10
SIZE = 32  # upsampled side length
INPUT_SHAPE = (1, SIZE, SIZE)
DATA_FILE = Path(__file__).with_name("digits.npz")
SPLITS = ("calib", "val", "test")


def _read(path: Path) -> dict[str, np.ndarray]:
    """The shipped arrays, checked: a damaged install fails here with the file named."""
    keys = ("images", "labels", *SPLITS)
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: np.asarray(archive[key]) for key in keys}
    except (OSError, KeyError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read the built-in digits data ({exc}); reinstall pytest-trt") from None
    if arrays["images"].shape[1:] != (8, 8) or len(arrays["images"]) != len(arrays["labels"]):
        raise DatasetError(f"{path}: expected N×8×8 images and N labels; reinstall pytest-trt")
    return arrays


def _upsample(images: np.ndarray) -> np.ndarray:
    from scipy.ndimage import zoom

    raw = images.astype(np.float32) / 16.0  # pixel values are 0..16
    big = zoom(raw, (1, SIZE / 8, SIZE / 8), order=1, grid_mode=True, mode="nearest")
    x: np.ndarray = ((np.clip(big, 0.0, 1.0) - 0.5) / 0.5).astype(np.float32)[:, None]  # N×1×32×32
    return x


@lru_cache(maxsize=1)
def load() -> Dataset:
    """The digits data set: calibration (= training) / validation / test, as shipped."""
    arrays = _read(DATA_FILE)
    x = _upsample(arrays["images"])
    y = arrays["labels"].astype(np.int64)
    parts = [a for split in SPLITS for a in (x[arrays[split]], y[arrays[split]])]
    for array in parts:
        array.setflags(write=False)  # the instance is cached and shared
    return Dataset(NAME, NUM_CLASSES, *parts)


def train_arrays() -> tuple[np.ndarray, np.ndarray]:
    """What the reference model is trained on: the calibration split."""
    data = load()
    return data.calib_x, data.calib_y
