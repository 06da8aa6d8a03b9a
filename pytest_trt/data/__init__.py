"""Data sets with real ground truth that need no network, and loaders for users' own data.

Every loader returns a ``pytest_trt.model.Dataset`` (calibration / validation / test splits).
"""

from __future__ import annotations

from collections.abc import Callable

from pytest_trt.model import Dataset


def _digits() -> Dataset:
    from pytest_trt.data import digits

    return digits.load()


def _shapes() -> Dataset:
    from pytest_trt.data import shapes

    return shapes.load()


def _scenes() -> Dataset:
    from pytest_trt.data import scenes

    return scenes.load()


BUILTIN: dict[str, Callable[[], Dataset]] = {"digits": _digits, "shapes": _shapes, "scenes": _scenes}


def get(name: str) -> Dataset:
    """A built-in data set by name."""
    try:
        loader = BUILTIN[name]
    except KeyError:
        raise ValueError(f"unknown data set {name!r}; built-in data sets: {', '.join(BUILTIN)}") from None
    return loader()
