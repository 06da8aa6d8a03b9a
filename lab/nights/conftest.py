"""A user project of our own for the gate's nights: a residual CNN whose cost is set by its depth.

``NIGHTS_DEPTH`` blocks (default 40) of two 3x3 convolutions each (``NIGHTS_CHANNELS`` wide, on
``NIGHTS_SIZE`` square inputs); the stem and head are small next
to one block, so 42 blocks is 5 % more work than 40, on the GPU and in host launches alike. The
model keeps one name whatever its depth, as a changed model keeps its test ids in a real project.
"""

import os

import pytest
import torch

from pytest_trt import ModelSpec

# The GPU nights use the defaults; the CPU nights a lighter net (NIGHTS_CHANNELS=16, NIGHTS_SIZE=16).
CHANNELS = int(os.environ.get("NIGHTS_CHANNELS", "64"))
SIZE = int(os.environ.get("NIGHTS_SIZE", "32"))


class Block(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = torch.nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)
        self.conv2 = torch.nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x + self.conv2(torch.relu(self.conv1(x))) * 0.1)


class ResCNN(torch.nn.Module):
    def __init__(self, depth: int) -> None:
        super().__init__()
        self.stem = torch.nn.Conv2d(3, CHANNELS, 3, padding=1)
        self.blocks = torch.nn.Sequential(*[Block() for _ in range(depth)])
        self.head = torch.nn.Linear(CHANNELS, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(torch.relu(self.stem(x))).mean(dim=(2, 3)))


@pytest.fixture
def trt_model() -> ModelSpec:
    depth = int(os.environ.get("NIGHTS_DEPTH", "40"))
    return ModelSpec(name="res-cnn", build=lambda: ResCNN(depth), input_shape=(3, SIZE, SIZE))
