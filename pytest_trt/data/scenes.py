"""A procedurally generated detection set with exact boxes: discs, squares, triangles and crosses.

Each 64×64 RGB scene has a textured, shaded background with clutter strokes and specks (background,
never labelled), one to four objects of random class, size, rotation, colour and shading, and
sensor noise. Objects never overlap (each keeps a 1-pixel gap to the others), so every object's
pixels are its own mask and its box is exactly their tight bounds: ``[x1, y1, x2, y2]`` in pixels
with ``x2``/``y2`` one past the last column/row (pixel ``i`` covers ``[i, i + 1)``). Objects may be
cut by the image border; the box then bounds the visible part.

The raw form is what a camera pipeline hands over: uint8 N×H×W×C. ``preprocess`` maps it to the
network input (float32 N×C×H×W, normalized); ``Dataset.*_x`` are exactly ``preprocess`` of
``Dataset.raw``. Labels are a padded float32 array (N, MAX_OBJECTS, 5) of
``[class, x1, y1, x2, y2]``, class -1 (and zero box) for padding.

Seeded with ``numpy.random.SeedSequence``: each split has its own child seed. The calibration
split is also the reference detector's training split (calibration data comes from the training
distribution, as for the digits set); validation and test are held out.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pytest_trt.model import Dataset, RawSplits

NAME = "scenes"
CLASSES = ("disc", "square", "triangle", "cross")
NUM_CLASSES = len(CLASSES)
SIZE = 64
INPUT_SHAPE = (3, SIZE, SIZE)
RAW_SHAPE = (SIZE, SIZE, 3)
MAX_OBJECTS = 4
PAD = -1.0  # class of a padding row
SPLIT_SIZES = {"calib": 1024, "val": 256, "test": 512}
SEED = 0
MEAN, STD = 0.5, 0.25
RADIUS = (4.5, 13.0)  # circumradius of an object in pixels: boxes of ~7 to ~26 pixels
_TRIES = 30  # placements tried per object before the scene keeps fewer objects

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5  # pixel centres
_AXIS = np.arange(SIZE, dtype=np.float32) + 0.5


def preprocess(raw: np.ndarray) -> np.ndarray:
    """Raw uint8 (N, H, W, 3) → normalized float32 (N, 3, H, W), the network input."""
    raw = np.asarray(raw)
    if raw.dtype != np.uint8 or raw.ndim != 4 or raw.shape[-1] != 3:
        raise ValueError(f"preprocess expects uint8 (N, H, W, 3) images, got {raw.dtype} {raw.shape}")
    scaled = raw.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.ascontiguousarray(((scaled - MEAN) / STD).transpose(0, 3, 1, 2), dtype=np.float32)


def _background(rng: np.random.Generator) -> np.ndarray:
    """Base colour, a shading ramp and a low-frequency texture, (3, H, W) in [0, 1]-ish. Both
    patterns are separable in x and y, so they are built from 1-D profiles (generation speed)."""
    base = rng.uniform(0.2, 0.8, size=(3, 1, 1)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * _AXIS[None, :] + np.sin(angle) * _AXIS[:, None]) / SIZE - 0.5
    freq, phase = rng.uniform(0.08, 0.4, size=2), rng.uniform(0, 6.3, size=2)
    wave = np.sin(freq[1] * _AXIS + phase[1])[:, None] * np.sin(freq[0] * _AXIS + phase[0])[None, :]
    strength = rng.uniform(0.0, 0.3, size=(3, 1, 1)).astype(np.float32)
    return np.asarray(base + strength * ramp + rng.uniform(0.0, 0.12) * wave, dtype=np.float32)


def _clutter(rng: np.random.Generator) -> np.ndarray:
    """A thin stroke or a small speck: background that looks a little like an edge or a corner."""
    x0, y0 = rng.uniform(0, SIZE, size=2)
    if rng.random() < 0.3:  # a speck, smaller than the smallest object
        return np.asarray((_XX - x0) ** 2 + (_YY - y0) ** 2 <= rng.uniform(1.0, 4.0))
    angle = rng.uniform(0, np.pi)
    dist = np.abs(-np.sin(angle) * (_XX - x0) + np.cos(angle) * (_YY - y0))
    along = np.abs(np.cos(angle) * (_XX - x0) + np.sin(angle) * (_YY - y0))
    return np.asarray((dist <= rng.uniform(0.5, 1.2)) & (along <= rng.uniform(5, 20)))


def _rotated(theta: float, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    dx, dy = _XX - cx, _YY - cy
    return np.cos(theta) * dx + np.sin(theta) * dy, -np.sin(theta) * dx + np.cos(theta) * dy


def _triangle(cx: float, cy: float, radius: float, rng: np.random.Generator) -> np.ndarray:
    angles = rng.uniform(0, 2 * np.pi) + np.array([0.0, 2.09, 4.19]) + rng.uniform(-0.25, 0.25, size=3)
    px, py = cx + radius * np.cos(angles), cy + radius * np.sin(angles)
    sides = [(px[(i + 1) % 3] - px[i]) * (_YY - py[i]) - (py[(i + 1) % 3] - py[i]) * (_XX - px[i])
             for i in range(3)]
    same = [s >= 0 for s in sides]
    return np.asarray((same[0] & same[1] & same[2]) | (~same[0] & ~same[1] & ~same[2]))


def shape_mask(cls: int, cx: float, cy: float, radius: float, rng: np.random.Generator) -> np.ndarray:
    """The rasterised (H, W) mask of one object: pixel centres inside the shape."""
    if cls == 0:  # disc
        return np.asarray((_XX - cx) ** 2 + (_YY - cy) ** 2 <= radius**2)
    if cls == 2:
        return _triangle(cx, cy, radius, rng)
    u, v = _rotated(rng.uniform(0, np.pi / 2), cx, cy)
    if cls == 1:  # square, half-side radius/√2 so its corners sit on the circumcircle
        half = radius / np.sqrt(2.0)
        return np.asarray((np.abs(u) <= half) & (np.abs(v) <= half))
    arm = radius * rng.uniform(0.18, 0.3)  # cross: two bars of half-width ``arm``
    return np.asarray(((np.abs(u) <= radius) & (np.abs(v) <= arm)) | ((np.abs(v) <= radius) & (np.abs(u) <= arm)))


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask dilated by one pixel (4-neighbourhood), for the gap between objects."""
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def _place(rng: np.random.Generator, taken: np.ndarray) -> tuple[int, np.ndarray] | None:
    """A class and a mask that fits beside the objects already placed, or None."""
    for _ in range(_TRIES):
        cls = int(rng.integers(0, NUM_CLASSES))
        radius = float(rng.uniform(*RADIUS))
        cx, cy = rng.uniform(0.5 * radius, SIZE - 0.5 * radius, size=2)
        mask = shape_mask(cls, float(cx), float(cy), radius, rng)
        if mask.sum() >= 16 and not np.any(_grow(mask) & taken):
            return cls, mask
    return None


def _paint(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    """Fill ``mask`` (in place) with a colour that stands out from the background under it,
    lightly shaded."""
    under = image[:, mask].mean(axis=1)
    colour = rng.uniform(0.0, 1.0, size=3)
    while np.max(np.abs(colour - under)) < 0.3:  # a shape the same colour as its surround is invisible
        colour = rng.uniform(0.0, 1.0, size=3)
    xs = _XX[mask]
    shade = rng.uniform(-0.12, 0.12) * (xs - xs.mean()) / SIZE * 4
    image[:, mask] = colour.astype(np.float32)[:, None] + shade[None, :]


def box_of(mask: np.ndarray) -> tuple[float, float, float, float]:
    """Tight pixel bounds of a non-empty mask: x1, y1, x2, y2 with x2/y2 exclusive."""
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene: raw uint8 (H, W, 3), labels (MAX_OBJECTS, 5), object masks (MAX_OBJECTS, H, W)."""
    image = _background(rng)
    for _ in range(rng.integers(0, 6)):  # clutter first: objects are drawn over it, never under
        region = _clutter(rng)
        image[:, region] = rng.uniform(0.0, 1.0, size=(3, 1)).astype(np.float32)
    labels = np.zeros((MAX_OBJECTS, 5), dtype=np.float32)
    labels[:, 0] = PAD
    masks = np.zeros((MAX_OBJECTS, SIZE, SIZE), dtype=bool)
    taken = np.zeros((SIZE, SIZE), dtype=bool)
    for slot in range(int(rng.integers(1, MAX_OBJECTS + 1))):
        placed = _place(rng, taken)
        if placed is None:
            break
        cls, mask = placed
        _paint(rng, image, mask)
        taken |= mask
        masks[slot] = mask
        labels[slot] = (cls, *box_of(mask))
    image = image + np.float32(rng.uniform(0.01, 0.06)) * rng.standard_normal(image.shape, dtype=np.float32)
    raw = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(raw), labels, masks


def generate_with_masks(n: int, seed: int | np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` scenes: raw uint8 (n, 64, 64, 3), labels (n, MAX_OBJECTS, 5), masks (n, MAX_OBJECTS, 64, 64)."""
    if n < 1:
        raise ValueError(f"scenes.generate: n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    parts = [scene(rng) for _ in range(n)]
    raw, labels, masks = (np.stack([p[i] for p in parts]) for i in range(3))
    return raw, labels, masks


def generate(n: int, seed: int | np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """``n`` scenes: raw uint8 (n, 64, 64, 3) and labels (n, MAX_OBJECTS, 5)."""
    raw, labels, _ = generate_with_masks(n, seed)
    return raw, labels


def load(seed: int = SEED) -> Dataset:
    """Calibration (= training) / validation / test splits, each from its own child seed (cached:
    ``load()`` and ``load(0)`` are one instance)."""
    return _load(int(seed))


@lru_cache(maxsize=2)
def _load(seed: int) -> Dataset:
    children = np.random.SeedSequence(seed).spawn(len(SPLIT_SIZES))
    raws: list[np.ndarray] = []
    arrays: list[np.ndarray] = []
    for child, n in zip(children, SPLIT_SIZES.values(), strict=True):
        raw, labels = generate(n, child)
        raws.append(raw)
        arrays += [preprocess(raw), labels]
    for array in [*raws, *arrays]:
        array.setflags(write=False)  # the instance is cached and shared
    return Dataset(NAME, NUM_CLASSES, *arrays, raw=RawSplits(*raws))


def train_arrays(seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """What the reference detector is trained on: the calibration split (inputs, labels)."""
    data = load(seed)
    return data.calib_x, data.calib_y
