"""Real ONNX export of a model spec, cached on disk by content hash.

The key covers the weights, the module's class, the input shape, the opset and the torch version,
so a changed model is re-exported and an unchanged one is not.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pytest_trt.backends.base import BuildError
from pytest_trt.model import ModelSpec

if TYPE_CHECKING:
    import torch

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "output"


def model_hash(module: torch.nn.Module, input_shape: tuple[int, ...]) -> str:
    """sha256 over the module's class, parameters/buffers and input shape."""
    digest = hashlib.sha256(f"{type(module).__qualname__}:{input_shape}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def export_onnx(spec: ModelSpec, module: torch.nn.Module, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Export ``module`` (fp32, eval, CPU) with a dynamic batch axis; reuse a cached file."""
    import filelock
    import torch

    from pytest_trt import cachefile

    key = model_hash(module, spec.input_shape)
    target = cache_dir / "onnx" / (
        f"{cachefile.safe_name(spec.name)}-{key[:16]}-op{OPSET}-torch{cachefile.safe_name(torch.__version__)}.onnx")
    info: dict[str, Any] = {"model_hash": key, "onnx_path": str(target)}
    target.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(target) + ".lock"):  # xdist workers may export the same model
        if cachefile.verified(target):
            info["export_cached"] = True
            return target, info
        start = time.perf_counter()
        _export_atomically(module, spec.input_shape, target)
        info.update(export_cached=False, export_s=time.perf_counter() - start)
    return target, info


def _export_atomically(module: torch.nn.Module, input_shape: tuple[int, ...], target: Path) -> None:
    import torch

    from pytest_trt import cachefile

    example = torch.randn(2, *input_shape)
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's concern
            try:
                _legacy_export(module.eval(), example, tmp)
            except Exception as legacy_error:  # fall back to the dynamo exporter before giving up
                try:
                    _dynamo_export(module.eval(), example, tmp)
                except Exception as exc:
                    raise BuildError(
                        f"ONNX export failed: {_one_line(legacy_error)}; dynamo exporter: {_one_line(exc)}"
                    ) from exc
        cachefile.record(target, source=Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _legacy_export(module: torch.nn.Module, example: torch.Tensor, path: str) -> None:
    import torch

    torch.onnx.export(
        module, (example,), path, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        opset_version=OPSET, dynamo=False,
        dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
    )


def _dynamo_export(module: torch.nn.Module, example: torch.Tensor, path: str) -> None:
    import torch

    batch = torch.export.Dim("batch", min=1, max=4096)
    torch.onnx.export(
        module, (example,), path, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
        opset_version=max(OPSET, 18), dynamo=True, dynamic_shapes=({0: batch},), external_data=False,
    )


def _one_line(exc: BaseException) -> str:
    """The exporter's own message, first line, without terminal colour codes."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).strip()
    return f"{type(exc).__name__}: {(text.splitlines() or [''])[0]}"

