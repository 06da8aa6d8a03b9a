"""A user project for the A/B validation: the residual CNN of lab/nights, whose cost is set by its depth.

The test's own model (``trt_model``) is the change under review: ``NIGHTS_DEPTH`` blocks (default 40).
The reference is the model as it is on "main": ``AB_MAIN_DEPTH`` blocks (default 40), built by the
same code under the same seed. So ``NIGHTS_DEPTH=40`` is an A/A run (the same model twice) and 42 a
calibrated +5 % (42 blocks are 5 % more work than 40; the stem and head are small next to a block).
The network is lab/nights/conftest.py's, loaded by path (lab/ holds no packages), with its knobs
(``NIGHTS_CHANNELS``, ``NIGHTS_SIZE``).
"""

import importlib.util
import os
from pathlib import Path

import pytest

from pytest_trt import ModelSpec

_path = Path(__file__).resolve().parents[1] / "nights" / "conftest.py"
_spec = importlib.util.spec_from_file_location("lab_nights_model", _path)
assert _spec is not None and _spec.loader is not None
nights = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nights)


def spec(depth: int) -> ModelSpec:
    # One name whatever the depth, as a changed model keeps its name (and test ids) in a real project.
    return ModelSpec(name="res-cnn", build=lambda: nights.ResCNN(depth), input_shape=(3, nights.SIZE, nights.SIZE))


@pytest.fixture
def trt_model() -> ModelSpec:
    return spec(int(os.environ.get("NIGHTS_DEPTH", "40")))


@pytest.fixture
def main_model() -> ModelSpec:
    return spec(int(os.environ.get("AB_MAIN_DEPTH", "40")))
