"""Users' own data: a folder of samples or in-memory arrays, checked and split into a Dataset.

Folder layouts (``load_folder``):

- classification: one sub-folder per class, class index = position in the sorted folder names::

      data/cat/0001.npy  data/dog/0002.png ...

- segmentation: ``images/`` and ``masks/`` with matching file stems::

      data/images/a.npy  data/masks/a.npy ...

- either of the above inside ``calib/``, ``val/`` and ``test/`` to fix the splits yourself;
  otherwise the samples are shuffled with ``seed`` and split by ``fractions``;
- or a single ``.npz`` file holding ``x`` and ``y`` arrays.

Samples are ``.npy`` arrays, (C, H, W) or (H, W); masks (H, W) integer class indices. Image files
(PNG, JPEG, BMP) are read when Pillow is installed (H×W×C pixels become C×H×W). 8-bit data is
scaled to [0, 1]; ``mean``/``std`` then normalize per channel. All samples must share one shape,
since engines are built for fixed input shapes.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pytest_trt.model import Dataset

ARRAY_SUFFIXES = (".npy",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
SPLITS = ("calib", "val", "test")
DEFAULT_FRACTIONS = (0.2, 0.2, 0.6)
# The tasks whose labels a folder or plain arrays can hold; detection boxes need their own format.
TASKS = ("classification", "segmentation")


class DatasetError(ValueError):
    """The data cannot be used; the message names the file, split or array and what was expected."""


# --- reading files --------------------------------------------------------------------------


def _read(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        try:
            return np.asarray(np.load(path, allow_pickle=False))
        except ValueError as exc:
            raise DatasetError(f"{path}: not a plain numpy array ({exc})") from None
    try:
        image_module = importlib.import_module("PIL.Image")  # optional dependency
    except ImportError:
        raise DatasetError(
            f"{path}: reading {suffix} files needs Pillow (pip install pillow); or save samples as .npy"
        ) from None
    with image_module.open(path) as image:
        return np.asarray(image)


def _as_image(array: np.ndarray, path: Path) -> np.ndarray:
    """(H, W) or image-file (H, W, C) or array (C, H, W) → float32 (C, H, W)."""
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and path.suffix.lower() in IMAGE_SUFFIXES:
        array = array.transpose(2, 0, 1)
    elif array.ndim != 3:
        raise DatasetError(f"{path}: expected an image of shape (C, H, W) or (H, W), got {array.shape}")
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0
    return array.astype(np.float32)


def _files(folder: Path) -> list[Path]:
    suffixes = ARRAY_SUFFIXES + IMAGE_SUFFIXES
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


def _stack(images: list[np.ndarray], paths: list[Path], what: str) -> np.ndarray:
    first = images[0].shape
    for image, path in zip(images, paths, strict=True):
        if image.shape != first:
            raise DatasetError(
                f"{path}: {what} shape {image.shape} differs from {first} of {paths[0]}; "
                "all samples must share one shape (resize them first)"
            )
    return np.stack(images)


def _read_classification(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    if not classes:
        raise DatasetError(
            f"{folder}: no class sub-folders (classification expects <folder>/<class>/<files>)"
        )
    paths: list[Path] = []
    labels: list[int] = []
    for index, class_dir in enumerate(classes):
        found = _files(class_dir)
        paths += found
        labels += [index] * len(found)
    if not paths:
        kinds = ", ".join(ARRAY_SUFFIXES + IMAGE_SUFFIXES)
        raise DatasetError(f"{folder}: no samples ({kinds}) in its class folders")
    images = [_as_image(_read(p), p) for p in paths]
    return _stack(images, paths, "image"), np.asarray(labels, dtype=np.int64)


def _read_segmentation(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    image_dir, mask_dir = folder / "images", folder / "masks"
    for sub in (image_dir, mask_dir):
        if not sub.is_dir():
            raise DatasetError(f"{folder}: missing {sub.name}/ (segmentation expects images/ and masks/)")
    images = _files(image_dir)
    if not images:
        raise DatasetError(f"{image_dir}: no samples")
    masks_by_stem = {p.stem: p for p in _files(mask_dir)}
    xs, ys = [], []
    for path in images:
        mask_path = masks_by_stem.get(path.stem)
        if mask_path is None:
            raise DatasetError(f"{path}: no mask named {path.stem}.* in {mask_dir}")
        image = _as_image(_read(path), path)
        mask = _read(mask_path)
        if mask.ndim != 2 or mask.shape != image.shape[1:]:
            raise DatasetError(
                f"{mask_path}: mask shape {mask.shape} does not match image {path.name} of shape "
                f"{image.shape} (expected {image.shape[1:]})"
            )
        xs.append(image)
        ys.append(mask)
    return _stack(xs, images, "image"), np.stack(ys)


def _read_split(folder: Path, task: str) -> tuple[np.ndarray, np.ndarray]:
    return _read_classification(folder) if task == "classification" else _read_segmentation(folder)


# --- arrays → Dataset -----------------------------------------------------------------------


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}")


def _labels(y: np.ndarray, x: np.ndarray, task: str, where: str) -> np.ndarray:
    if len(y) != len(x):
        raise DatasetError(f"{where}: {len(x)} samples but {len(y)} labels")
    if task == "classification" and y.ndim != 1:
        raise DatasetError(f"{where}: classification labels must have shape (N,), got {y.shape}")
    if task == "segmentation" and y.shape[1:] != x.shape[2:]:
        raise DatasetError(
            f"{where}: masks of shape {y.shape[1:]} do not match images of shape {x.shape[2:]}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.isfinite(y)) or not np.all(np.mod(y, 1) == 0):
            raise DatasetError(f"{where}: labels must be integer class indices, got {y.dtype} with fractions")
    return y.astype(np.int64)


def _samples(x: np.ndarray, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.size == 0 or len(x) == 0:
        raise DatasetError(f"{where}: no samples")
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DatasetError(f"{where}: samples must be (N, C, H, W) or (N, H, W), got {x.shape}")
    x = x.astype(np.float32)
    if not np.all(np.isfinite(x)):
        raise DatasetError(f"{where}: samples hold NaN/Inf values")
    return x


def _split(n: int, fractions: Sequence[float], seed: int, where: str) -> list[np.ndarray]:
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise DatasetError(
            f"fractions must be three positive shares (calib, val, test) summing to 1, got {fractions}"
        )
    counts = np.floor(np.asarray(fractions) * n).astype(int)
    counts[-1] = n - counts[:-1].sum()
    if counts.min() < 1:
        raise DatasetError(f"{where}: {n} samples cannot fill calib/val/test with shares {tuple(fractions)}")
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum(counts)[:-1]
    return [np.sort(part) for part in np.split(order, bounds)]


def _normalize(x: np.ndarray, mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    if mean is None and std is None:
        return x
    channels = x.shape[1]
    m = np.asarray(mean if mean is not None else [0.0] * channels, dtype=np.float32).reshape(1, -1, 1, 1)
    s = np.asarray(std if std is not None else [1.0] * channels, dtype=np.float32).reshape(1, -1, 1, 1)
    if m.shape[1] not in (1, channels) or s.shape[1] not in (1, channels) or np.any(s == 0):
        raise DatasetError(f"mean/std need 1 or {channels} values (std non-zero); got {mean}, {std}")
    return ((x - m) / s).astype(np.float32)


def _build(
    parts: list[tuple[np.ndarray, np.ndarray]], task: str, name: str, num_classes: int | None
) -> Dataset:
    highest = max(int(y.max()) for _, y in parts)
    classes = num_classes if num_classes is not None else max(highest + 1, 2)
    for (_, y), split in zip(parts, SPLITS, strict=True):
        bad = y[(y < 0) | (y >= classes)]
        if bad.size:
            raise DatasetError(
                f"data set {name!r}, {split} split: labels {np.unique(bad)[:5].tolist()} out of range "
                f"[0, {classes}) for num_classes={classes}"
            )
    shapes = {x.shape[1:] for x, _ in parts}
    if len(shapes) != 1:
        raise DatasetError(f"data set {name!r}: the splits have different sample shapes {sorted(shapes)}")
    arrays = [a for pair in parts for a in pair]
    return Dataset(name, classes, *arrays)


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    task: str,
    name: str,
    *,
    num_classes: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> Dataset:
    """A Dataset from samples ``x`` (N, C, H, W) and labels ``y`` ((N,) classes or (N, H, W) masks),
    shuffled with ``seed`` and split into calib/val/test by ``fractions``."""
    _check_task(task)
    xs = _samples(x, f"data set {name!r}")
    ys = _labels(np.asarray(y), xs, task, f"data set {name!r}")
    parts = [(xs[i], ys[i]) for i in _split(len(xs), fractions, seed, f"data set {name!r}")]
    return _build(parts, task, name, num_classes)


def load_folder(
    path: str | Path,
    task: str,
    *,
    name: str | None = None,
    num_classes: int | None = None,
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Dataset:
    """Read a data set from ``path`` (see the module docs for the layouts)."""
    _check_task(task)
    root = Path(path)
    label = name or root.stem
    if root.is_file() and root.suffix == ".npz":
        with np.load(root, allow_pickle=False) as data:
            if not {"x", "y"} <= set(data.files):
                raise DatasetError(f"{root}: expected arrays 'x' and 'y', found {data.files}")
            x, y = data["x"], data["y"]
        return from_arrays(_normalize(_samples(x, str(root)), mean, std), y, task, label,
                           num_classes=num_classes, fractions=fractions, seed=seed)
    if not root.is_dir():
        raise DatasetError(f"{root}: no such folder or .npz file")
    if all((root / split).is_dir() for split in SPLITS):
        parts = []
        for split in SPLITS:
            x, y = _read_split(root / split, task)
            xs = _normalize(_samples(x, str(root / split)), mean, std)
            parts.append((xs, _labels(y, xs, task, str(root / split))))
        return _build(parts, task, label, num_classes)
    x, y = _read_split(root, task)
    return from_arrays(_normalize(_samples(x, str(root)), mean, std), y, task, label,
                       num_classes=num_classes, fractions=fractions, seed=seed)


def check_calibration(dataset: Dataset, batch_size: int) -> None:
    """Fail early when the calibration split cannot fill one batch of the engine being built."""
    if batch_size < 1:
        raise DatasetError(f"batch size must be >= 1, got {batch_size}")
    have = len(dataset.calib_x)
    if have < batch_size:
        raise DatasetError(
            f"data set {dataset.name!r}: the calibration split has {have} samples, fewer than one batch "
            f"of {batch_size}; add calibration data or use a smaller batch size"
        )
