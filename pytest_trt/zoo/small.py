"""Two small trained reference models on the built-in data sets, with committed weights.

``digits-cnn`` classifies the UCI handwritten digits (1×32×32); ``shapes-unet`` segments the
procedural shapes set (3×64×64, 4 classes). Both train on a CPU in about a minute
(``python -m pytest_trt.zoo.train``) and their weights live next to this file as ``.npz``
(float32 state dicts), so accuracy gates compare real task metrics, not random-weight noise.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_trt.data import digits, shapes
from pytest_trt.model import ModelSpec

if TYPE_CHECKING:
    import torch

WEIGHTS_DIR = Path(__file__).with_name("weights")
DIGITS_CNN = "digits-cnn"
SHAPES_UNET = "shapes-unet"


def _conv_block(cin: int, cout: int) -> torch.nn.Sequential:
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


def digits_net() -> torch.nn.Module:
    """Three conv stages, global average pool, a linear classifier (about 24k parameters)."""
    from torch import nn

    return nn.Sequential(
        _conv_block(1, 16),
        nn.MaxPool2d(2),
        _conv_block(16, 32),
        nn.MaxPool2d(2),
        _conv_block(32, 64),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, digits.NUM_CLASSES),
    )


@lru_cache(maxsize=1)
def _unet_class() -> type[torch.nn.Module]:
    import torch
    from torch import nn

    class SmallUNet(nn.Module):
        """Two-level UNet: encoder 16/32/64 channels, transposed-conv decoder with skips."""

        def __init__(self, in_channels: int, num_classes: int, width: int = 12) -> None:
            super().__init__()
            w = width
            self.enc1 = nn.Sequential(_conv_block(in_channels, w), _conv_block(w, w))
            self.enc2 = nn.Sequential(_conv_block(w, 2 * w), _conv_block(2 * w, 2 * w))
            self.mid = nn.Sequential(_conv_block(2 * w, 4 * w), _conv_block(4 * w, 4 * w))
            self.pool = nn.MaxPool2d(2)
            self.up2 = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
            self.dec2 = nn.Sequential(_conv_block(4 * w, 2 * w), _conv_block(2 * w, 2 * w))
            self.up1 = nn.ConvTranspose2d(2 * w, w, 2, stride=2)
            self.dec1 = nn.Sequential(_conv_block(2 * w, w), _conv_block(w, w))
            self.head = nn.Conv2d(w, num_classes, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            m = self.mid(self.pool(e2))
            d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
            out: torch.Tensor = self.head(d1)
            return out

    return SmallUNet


def shapes_net() -> torch.nn.Module:
    return _unet_class()(shapes.INPUT_SHAPE[0], shapes.NUM_CLASSES)


ARCHITECTURES = {DIGITS_CNN: digits_net, SHAPES_UNET: shapes_net}


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}.npz"


def save_weights(module: torch.nn.Module, path: Path) -> None:
    arrays = {key: value.detach().cpu().numpy() for key, value in module.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load_weights(module: torch.nn.Module, path: Path) -> torch.nn.Module:
    import torch

    if not path.is_file():
        raise FileNotFoundError(
            f"weights file {path} is missing; regenerate it with: python -m pytest_trt.zoo.train"
        )
    with np.load(path) as arrays:
        state = {key: torch.from_numpy(arrays[key].copy()) for key in arrays.files}
    module.load_state_dict(state, strict=True)
    return module.eval()


def build(name: str) -> torch.nn.Module:
    """The architecture ``name`` with its committed trained weights, in eval mode."""
    return load_weights(ARCHITECTURES[name](), weights_path(name))


def _build_digits() -> torch.nn.Module:
    return build(DIGITS_CNN)


def _build_shapes() -> torch.nn.Module:
    return build(SHAPES_UNET)


def specs() -> list[ModelSpec]:
    return [
        ModelSpec(
            name=DIGITS_CNN,
            build=_build_digits,
            input_shape=digits.INPUT_SHAPE,
            task="classification",
            dataset=digits.load,
            trained=True,
        ),
        ModelSpec(
            name=SHAPES_UNET,
            build=_build_shapes,
            input_shape=shapes.INPUT_SHAPE,
            task="segmentation",
            dataset=shapes.load,
            trained=True,
        ),
    ]
