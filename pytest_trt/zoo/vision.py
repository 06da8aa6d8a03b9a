"""Vision models of the seeds' tables: torchvision classifiers and segmenters, plus a UNet.

Weights are random (seeded) unless the user gives a weights file, so accuracy is judged as agreement
with the fp32 reference only (``trained=False``). torchvision is imported inside ``build`` only:
``specs()`` lists every model on hosts without it (the UNet needs no torchvision).

Input sizes: 3×224×224 for the classifiers (their ImageNet training and benchmark size). 3×512×512
for segmentation: near the 520-pixel evaluation size of torchvision's DeepLabV3 reference, a
multiple of 32 so every encoder stage divides evenly (the UNet needs a multiple of 2**depth), and the
usual crop in segmentation benchmarks. Every model here is marked ``gpu_only`` except
mobilenet_v3_large, which is light enough for a CPU suite when torchvision is installed.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_trt.model import ModelSpec

if TYPE_CHECKING:
    import torch

CLASSIFIER_INPUT = (3, 224, 224)
SEGMENTATION_INPUT = (3, 512, 512)
SEGMENTATION_CLASSES = 21  # Pascal VOC, torchvision's DeepLabV3 default

# name → (task, input shape, needs torchvision, heavy)
MODELS: dict[str, tuple[str, tuple[int, ...], bool, bool]] = {
    "resnet50": ("classification", CLASSIFIER_INPUT, True, True),
    "vgg16": ("classification", CLASSIFIER_INPUT, True, True),
    "densenet201": ("classification", CLASSIFIER_INPUT, True, True),
    "mobilenet_v3_large": ("classification", CLASSIFIER_INPUT, True, False),
    "deeplabv3_resnet50": ("segmentation", SEGMENTATION_INPUT, True, True),
    "unet": ("segmentation", SEGMENTATION_INPUT, False, True),
}


def specs() -> list[ModelSpec]:
    """Every vision model with random weights."""
    return [vision_spec(name) for name in MODELS]


def vision_spec(name: str, weights_path: str | Path | None = None, *, seed: int = 0) -> ModelSpec:
    """The spec of model ``name``; with ``weights_path`` (a state_dict saved by ``torch.save`` or an
    ``.npz`` of named arrays) its weights are loaded instead of the seeded random ones."""
    if name not in MODELS:
        raise ValueError(f"unknown vision model {name!r}; known: {', '.join(MODELS)}")
    path = Path(weights_path) if weights_path is not None else None
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"weights file for {name!r} not found: {path}")
    task, shape, needs_torchvision, heavy = MODELS[name]
    return ModelSpec(
        name=name,
        build=functools.partial(_build, name, path, seed),
        input_shape=shape,
        task=task,
        dataset=None,
        trained=path is not None,
        seed=seed,
        extra={
            "group": "vision",
            "gpu_only": heavy,
            "requires": ["torchvision"] if needs_torchvision else [],
            "weights": str(path) if path is not None else None,
        },
    )


def _build(name: str, weights_path: Path | None, seed: int) -> torch.nn.Module:
    import torch

    with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's RNG
        torch.manual_seed(seed)
        model = build_unet() if name == "unet" else _torchvision_model(name)
    if weights_path is not None:
        load_weights(model, weights_path, name)
    if name == "deeplabv3_resnet50":
        model = _out_only(model)
    return model.eval()


def _torchvision_model(name: str) -> torch.nn.Module:
    try:
        import torchvision.models as models
        import torchvision.models.segmentation as segmentation
    except ImportError as exc:
        raise ModuleNotFoundError(
            f"model {name!r} needs torchvision: pip install the torchvision build that matches your torch",
            name="torchvision",
        ) from exc
    if name == "deeplabv3_resnet50":
        model: torch.nn.Module = segmentation.deeplabv3_resnet50(
            weights=None, weights_backbone=None, num_classes=SEGMENTATION_CLASSES, aux_loss=False
        )
        return model
    factory = {
        "resnet50": models.resnet50,
        "vgg16": models.vgg16,
        "densenet201": models.densenet201,
        "mobilenet_v3_large": models.mobilenet_v3_large,
    }[name]
    built: torch.nn.Module = factory(weights=None)
    return built


def load_weights(model: torch.nn.Module, path: Path, name: str) -> None:
    """Load a state_dict (``torch.save``, optionally under a "state_dict" key) or an ``.npz``."""
    import torch

    if path.suffix == ".npz":
        import numpy as np

        with np.load(path) as arrays:
            state: Any = {key: torch.from_numpy(arrays[key]) for key in arrays.files}
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(
                f"weights file {path} for {name!r} is not a readable torch state_dict: {exc}"
            ) from exc
        if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
            state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(
            f"weights file {path}: expected a state_dict of named tensors, got {type(state).__name__}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"weights file {path} does not fit model {name!r}: {exc}") from exc


def _out_only(model: torch.nn.Module) -> torch.nn.Module:
    """Wrap a torchvision segmenter so forward returns its "out" tensor, not a dict."""
    import torch

    class OutOnly(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.inner(x)["out"]
            return out

    return OutOnly(model)


def build_unet(
    in_channels: int = 3, num_classes: int = SEGMENTATION_CLASSES, base: int = 64, depth: int = 4
) -> torch.nn.Module:
    """A standard UNet (Ronneberger et al. 2015) with padded convolutions and batch norm.

    ``depth`` 2×2 max-pool downsamplings, each stage two 3×3 conv–BN–ReLU, widths ``base``·2^i;
    the decoder upsamples with 2×2 transposed convolutions and concatenates the skip. The output
    has the input's height and width, which must be multiples of 2**depth.
    """
    if min(in_channels, num_classes, base, depth) < 1:
        raise ValueError(
            f"build_unet needs positive sizes, got in_channels={in_channels}, num_classes={num_classes}, "
            f"base={base}, depth={depth}"
        )
    import torch
    from torch import nn

    def double_conv(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            widths = [base * 2**i for i in range(depth + 1)]
            self.encoder = nn.ModuleList(
                [double_conv(in_channels, widths[0])]
                + [double_conv(widths[i], widths[i + 1]) for i in range(depth)]
            )
            self.pool = nn.MaxPool2d(2)
            levels = list(reversed(range(depth)))
            self.up = nn.ModuleList(
                [nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in levels]
            )
            self.decoder = nn.ModuleList([double_conv(2 * widths[i], widths[i]) for i in levels])
            self.head = nn.Conv2d(widths[0], num_classes, 1)
            for module in self.modules():
                # He init keeps activations at unit scale through the ~20 random layers, so reduced
                # precisions are compared on realistic magnitudes, not on vanishing ones.
                if isinstance(module, nn.Conv2d | nn.ConvTranspose2d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            skips = []
            for level, block in enumerate(self.encoder):
                x = block(self.pool(x) if level else x)
                skips.append(x)
            skips.pop()  # the bottleneck is not a skip
            for up, block in zip(self.up, self.decoder, strict=True):
                x = block(torch.cat([skips.pop(), up(x)], dim=1))
            out: torch.Tensor = self.head(x)
            return out

    return UNet()
