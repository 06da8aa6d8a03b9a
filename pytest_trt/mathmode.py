"""The fp32 math mode of CUDA matmuls and convolutions (IEEE fp32 or TF32), set in one place.

Recent torch refuses a mix of the legacy ``allow_tf32`` flags and the newer ``fp32_precision``
settings, so everything in pytest-trt goes through these two functions, which use the newer API
where torch has it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

State = tuple[Any, Any]


def _targets() -> tuple[tuple[Any, str], tuple[Any, str]]:
    import torch

    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    conv = getattr(cudnn, "conv", None)
    if hasattr(matmul, "fp32_precision") and hasattr(conv, "fp32_precision"):
        return (matmul, "fp32_precision"), (conv, "fp32_precision")
    return (matmul, "allow_tf32"), (cudnn, "allow_tf32")


def set_tf32(enabled: bool) -> State:
    """Enable or disable TF32 for matmuls and convolutions; return the previous state."""
    previous = []
    for owner, name in _targets():
        previous.append(getattr(owner, name))
        setattr(owner, name, ("tf32" if enabled else "ieee") if name == "fp32_precision" else enabled)
    return previous[0], previous[1]


def restore(state: State) -> None:
    for (owner, name), value in zip(_targets(), state):
        setattr(owner, name, value)


@contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    state = set_tf32(enabled)
    try:
        yield
    finally:
        restore(state)
