"""What a session builds once and every case reuses: modules, ONNX files, data sets, references, FLOPs.

A matrix of many cases is cheap because a model is built, exported, quantized and its fp32
reference computed once per session, not once per case. Nothing here is run state: results and
verdicts belong to the controller (``pytest_trt.session``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.model import Dataset, ModelSpec
from pytest_trt.settings import Settings

if TYPE_CHECKING:
    import torch


class Artifacts:
    """The session's cache; ``device`` is the concrete device cases run on (references are made there)."""

    def __init__(self, settings: Settings, device: str) -> None:
        self.settings = settings
        self.device = device
        self._modules: dict[str, torch.nn.Module] = {}
        self._onnx: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
        self._datasets: dict[str, Dataset | None] = {}
        self._references: dict[tuple[str, int, int, tuple[int, ...] | None], np.ndarray] = {}
        self._metrics: dict[tuple[str, str], float] = {}
        self._flops: dict[tuple[str, int], int | None] = {}

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return self.settings.batch_sizes

    def module(self, spec: ModelSpec) -> torch.nn.Module:
        """The fp32 CPU module of a spec, built once; callers get their own copy to cast and move."""
        if spec.name not in self._modules:
            import torch

            torch.manual_seed(spec.seed)
            self._modules[spec.name] = spec.build().eval().float().cpu()
        return copy.deepcopy(self._modules[spec.name])

    def dataset(self, spec: ModelSpec) -> Dataset | None:
        """The spec's data set, loaded once (a loader may read and normalise a folder of images)."""
        if spec.name not in self._datasets:
            self._datasets[spec.name] = spec.dataset() if spec.dataset is not None else None
        return self._datasets[spec.name]

    def onnx(self, spec: ModelSpec, precision: str) -> tuple[Path, dict[str, Any]]:
        """The ONNX file for a spec at a precision (fp16 conversion, INT8/FP8 Q/DQ from calibration)."""
        key = (spec.name, precision)
        if key not in self._onnx:
            from pytest_trt import precision as precision_step
            from pytest_trt.export import export_onnx

            path, info = export_onnx(spec, self.module(spec), self.cache_dir)
            dataset = self.dataset(spec)
            converted = precision_step.convert(
                path, precision, cache_dir=self.cache_dir, calibration=dataset.calib_x if dataset else None,
                method=self.settings.calibration,
                reduce_range=precision_step.reduced_range_for(self.device, precision),
            )
            self._onnx[key] = (converted, {**info, "onnx_path": str(converted)})
        return self._onnx[key]

    def flops(self, spec: ModelSpec, batch_size: int) -> int | None:
        """FLOPs of one batch, counted on the fp32 ONNX graph; None where it cannot be exported."""
        key = (spec.name, batch_size)
        if key not in self._flops:
            import importlib.util

            from pytest_trt.flops import count_flops

            self._flops[key] = None
            if importlib.util.find_spec("onnx") is not None:
                self._flops[key] = cached_count(self.onnx(spec, "fp32")[0], batch_size, count_flops)
        return self._flops[key]

    def reference(
        self, spec: ModelSpec, inputs: np.ndarray, seed: int, items: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """fp32 outputs of the PyTorch model (TF32 off) on the case device, cached per input set.

        ``items``: ``inputs`` are these items of a larger seeded batch (eval-mode models treat
        items independently), so a batch-256 check runs and keeps a few items, not 256.
        """
        key = (spec.name, inputs.shape[0], seed, items)
        if key not in self._references:
            self._references[key] = torch_fp32(self.module(spec), inputs, self.device)
        return self._references[key]

    def fp32_metric(self, spec: ModelSpec, metric: str, before_batch: Callable[[], object] | None = None) -> float:
        """The task metric of the fp32 PyTorch model on the test split, on the CPU.

        ``before_batch`` runs before each batch: the case's time bound stops it between batches.
        """
        key = (spec.name, metric)
        if key not in self._metrics:
            from pytest_trt import accuracy

            dataset = self.dataset(spec)
            assert dataset is not None
            module = self.module(spec)

            def run_batch(x: np.ndarray) -> np.ndarray:
                if before_batch is not None:
                    before_batch()
                return torch_fp32(module, x, "cpu")

            self._metrics[key] = accuracy.evaluate(run_batch, dataset.test_x, dataset.test_y, 64, metric,
                                                   dataset.num_classes)
        return self._metrics[key]


def cached_count(onnx_path: Path, batch_size: int, count: Any) -> int | None:
    """FLOPs of an exported file at a batch size, kept beside the export: shape inference of a deep
    graph takes seconds, and every nightly process would pay them again. The export's name carries
    its model hash, so a changed model gets its own entry."""
    cache = onnx_path.parent / "flops" / f"{onnx_path.stem}-bs{batch_size}.json"
    try:
        return int(json.loads(cache.read_text())["flops"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    flops = count(onnx_path, batch_size)
    if flops is not None:
        from pytest_trt import atomic

        try:
            atomic.write_json(cache, {"flops": int(flops)})
        except OSError:
            pass  # a read-only cache only costs the recount
    return None if flops is None else int(flops)


def torch_fp32(module: torch.nn.Module, inputs: np.ndarray, device: str) -> np.ndarray:
    import torch

    from pytest_trt.backends.pytorch import first_tensor
    from pytest_trt.mathmode import tf32

    module = module.to(device)
    with tf32(False), torch.inference_mode():
        output = first_tensor(module(torch.from_numpy(np.require(inputs, requirements=["C", "W"])).to(device)))
        return np.asarray(output.float().cpu().numpy(), dtype=np.float32)
