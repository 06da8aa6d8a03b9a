"""A procedurally generated segmentation set with exact masks: ellipses, rectangles, triangles.

Each 3×64×64 image has a textured, shaded background, one to four objects of random size,
rotation, colour and stripe texture (colour says nothing about the class), objects occluding one
another, background-class clutter strokes drawn over them, and sensor noise. Classes:
0 background, 1 ellipse, 2 rectangle, 3 triangle. Thin occlusions, small objects and
ellipse/rectangle look-alikes at low resolution keep a small model well below 100% mIoU.

Seeded with ``numpy.random.SeedSequence``: each split has its own child seed, and the training
set of the reference model another one, so they never share images.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from pytest_trt.model import Dataset

NAME = "shapes"
CLASSES = ("background", "ellipse", "rectangle", "triangle")
NUM_CLASSES = len(CLASSES)
SIZE = 64
INPUT_SHAPE = (3, SIZE, SIZE)
SPLIT_SIZES = {"calib": 256, "val": 256, "test": 512}
SEED = 0
_TRAIN_CHILD = 3  # SeedSequence child for the training set; 0..2 are calib/val/test
_MEAN, _STD = 0.5, 0.25

_YY, _XX = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5


def _background(rng: np.random.Generator) -> np.ndarray:
    """Base colour, a linear shading ramp and a low-frequency sinusoid texture."""
    base = rng.uniform(0.15, 0.85, size=(3, 1, 1)).astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * _XX + np.sin(angle) * _YY) / SIZE - 0.5
    freq = rng.uniform(0.05, 0.3, size=2)
    wave = np.sin(freq[0] * _XX + rng.uniform(0, 6.3)) * np.sin(freq[1] * _YY + rng.uniform(0, 6.3))
    strength = rng.uniform(0.0, 0.3, size=(3, 1, 1)).astype(np.float32)
    return np.asarray(base + strength * ramp + rng.uniform(0.0, 0.15) * wave, dtype=np.float32)


def _rotated(rng: np.random.Generator, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    theta = rng.uniform(0, np.pi)
    dx, dy = _XX - cx, _YY - cy
    return np.cos(theta) * dx + np.sin(theta) * dy, -np.sin(theta) * dx + np.cos(theta) * dy


def _shape_mask(rng: np.random.Generator, cls: int) -> np.ndarray:
    cx, cy = rng.uniform(6, SIZE - 6, size=2)
    radius = rng.uniform(5, 17)
    if cls == 3:  # triangle: three vertices around a circle, jittered angles
        start = rng.uniform(0, 2 * np.pi)
        angles = start + np.array([0.0, 2.1, 4.2]) + rng.uniform(-0.35, 0.35, size=3)
        px, py = cx + radius * np.cos(angles), cy + radius * np.sin(angles)
        sides = [
            (px[(i + 1) % 3] - px[i]) * (_YY - py[i]) - (py[(i + 1) % 3] - py[i]) * (_XX - px[i])
            for i in range(3)
        ]
        inside = ((sides[0] >= 0) & (sides[1] >= 0) & (sides[2] >= 0)) | (
            (sides[0] <= 0) & (sides[1] <= 0) & (sides[2] <= 0)
        )  # either winding order
        return np.asarray(inside, dtype=bool)
    u, v = _rotated(rng, cx, cy)
    a, b = radius, radius * rng.uniform(0.5, 1.0)
    if cls == 1:
        return np.asarray((u / a) ** 2 + (v / b) ** 2 <= 1.0)
    return np.asarray((np.abs(u) <= a * 0.85) & (np.abs(v) <= b * 0.85))


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A random colour, flat or striped, independent of the class."""
    colour = rng.uniform(0.0, 1.0, size=(3, 1, 1)).astype(np.float32)
    if rng.random() < 0.4:
        return np.broadcast_to(colour, (3, SIZE, SIZE))
    u, _ = _rotated(rng, SIZE / 2, SIZE / 2)
    stripes = np.sin(u * rng.uniform(0.4, 1.5)) > 0
    other = rng.uniform(0.0, 1.0, size=(3, 1, 1)).astype(np.float32)
    return np.asarray(np.where(stripes, colour, other), dtype=np.float32)


def _clutter(rng: np.random.Generator) -> np.ndarray:
    """A thin straight stroke (background class) that occludes whatever it crosses."""
    x0, y0 = rng.uniform(0, SIZE, size=2)
    angle = rng.uniform(0, np.pi)
    dist = np.abs(-np.sin(angle) * (_XX - x0) + np.cos(angle) * (_YY - y0))
    along = np.abs(np.cos(angle) * (_XX - x0) + np.sin(angle) * (_YY - y0))
    return np.asarray((dist <= rng.uniform(0.6, 1.6)) & (along <= rng.uniform(8, 30)))


def _sample(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    image = _background(rng)
    mask = np.zeros((SIZE, SIZE), dtype=np.int64)
    for _ in range(rng.integers(1, 5)):  # later objects occlude earlier ones
        cls = int(rng.integers(1, NUM_CLASSES))
        region = _shape_mask(rng, cls)
        image = np.where(region, _texture(rng), image)
        mask[region] = cls
    for _ in range(rng.integers(0, 4)):
        region = _clutter(rng)
        image = np.where(region, rng.uniform(0.0, 1.0, size=(3, 1, 1)).astype(np.float32), image)
        mask[region] = 0
    image = image + rng.normal(0.0, rng.uniform(0.02, 0.12), size=image.shape)
    return ((np.clip(image, 0.0, 1.0) - _MEAN) / _STD).astype(np.float32), mask


def generate(n: int, seed: int | np.random.SeedSequence) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images (n×3×64×64 float32, normalized) and masks (n×64×64 int64)."""
    if n < 1:
        raise ValueError(f"shapes.generate: n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    pairs = [_sample(rng) for _ in range(n)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def _children(seed: int) -> list[np.random.SeedSequence]:
    return np.random.SeedSequence(seed).spawn(_TRAIN_CHILD + 1)


@lru_cache(maxsize=4)
def load(seed: int = SEED) -> Dataset:
    """Calibration / validation / test splits, each from its own child seed."""
    children = _children(seed)
    arrays: list[np.ndarray] = []
    for child, n in zip(children, SPLIT_SIZES.values(), strict=False):
        x, y = generate(n, child)
        x.setflags(write=False)  # the instance is cached and shared
        y.setflags(write=False)
        arrays += [x, y]
    return Dataset(NAME, NUM_CLASSES, *arrays)


def train_arrays(n: int = 2048, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """The reference model's training set, disjoint from every split of ``load(seed)``."""
    return generate(n, _children(seed)[_TRAIN_CHILD])
