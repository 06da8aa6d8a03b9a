"""scikit-learn's bundled handwritten digits as a classification data set (no network needed).

1797 real 8×8 grey images of the digits 0-9 (UCI "optdigits", shipped inside scikit-learn),
upsampled bilinearly to 1×32×32 so that a few conv/pool stages make sense, scaled to [-1, 1].
The split is stratified and seeded, so every call returns the same samples. The calibration
split is also the training split of the reference model (calibration data normally comes from
the training distribution); validation and test are held out.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pytest_trt.model import Dataset

NAME = "digits"
NUM_CLASSES = 10
SIZE = 32  # upsampled side length
INPUT_SHAPE = (1, SIZE, SIZE)
TEST_FRACTION = 0.25
VAL_FRACTION = 0.15
SEED = 0


def _images() -> tuple[np.ndarray, np.ndarray]:
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = np.asarray(bunch.images, dtype=np.float32) / 16.0  # pixel values are 0..16
    big = zoom(raw, (1, SIZE / 8, SIZE / 8), order=1, grid_mode=True, mode="nearest")
    x = ((np.clip(big, 0.0, 1.0) - 0.5) / 0.5).astype(np.float32)[:, None]  # N×1×32×32
    return x, np.asarray(bunch.target, dtype=np.int64)


@lru_cache(maxsize=1)
def load() -> Dataset:
    """The digits data set: calibration (= training) / validation / test, fixed by ``SEED``."""
    from sklearn.model_selection import train_test_split

    x, y = _images()
    index = np.arange(len(y))
    rest, test = train_test_split(index, test_size=TEST_FRACTION, stratify=y, random_state=SEED)
    val_share = VAL_FRACTION / (1.0 - TEST_FRACTION)
    calib, val = train_test_split(rest, test_size=val_share, stratify=y[rest], random_state=SEED)
    parts = [a for i in (calib, val, test) for a in (x[np.sort(i)], y[np.sort(i)])]
    for array in parts:
        array.setflags(write=False)  # the instance is cached and shared
    return Dataset(NAME, NUM_CLASSES, *parts)


def train_arrays() -> tuple[np.ndarray, np.ndarray]:
    """What the reference model is trained on: the calibration split."""
    data = load()
    return data.calib_x, data.calib_y
