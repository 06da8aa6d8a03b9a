"""Per-session state: settings, the resolved device, and caches of models, exports and references.

One instance lives in ``config.stash``; fixtures reach it through the ``trt_context`` fixture. The
caches are what make a matrix of many cases cheap: a model is built, exported, quantized and its fp32
reference computed once per session, not once per case.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.model import Dataset, ModelSpec
from pytest_trt.results import CaseResult
from pytest_trt.settings import Settings

if TYPE_CHECKING:
    import torch

    from pytest_trt.progress import Progress


class Context:
    def __init__(self, settings: Settings, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id  # pytest-xdist worker ("gw3") or None for the controller
        self._device: str | None = None
        self.results: list[CaseResult] = []
        self.baseline: Any = None  # pytest_trt.baseline.Baseline when --trt-baseline is given
        self.verdicts: list[Any] = []
        self._environment: dict[str, Any] | None = None
        self._modules: dict[str, torch.nn.Module] = {}
        self._onnx: dict[tuple[str, str], tuple[Path, dict[str, Any]]] = {}
        self._references: dict[tuple[str, int, int, str, tuple[int, ...] | None], np.ndarray] = {}
        self._metrics: dict[str, float] = {}
        self._flops: dict[tuple[str, int], int | None] = {}
        self._datasets: dict[str, Dataset | None] = {}
        self._progress: Progress | None = None

    @property
    def progress(self) -> Progress:
        """This process's current case and phase, mirrored to the cache dir (pytest_trt.progress)."""
        if self._progress is None:
            from pytest_trt.progress import Progress

            self._progress = Progress(self.cache_dir, self.worker_id)
        return self._progress

    @property
    def device(self) -> str:
        """The concrete device, resolved on first use (``auto`` imports torch only then)."""
        if self._device is None:
            self._device = resolve_device(self.settings, self.worker_id)
        return self._device

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        return self.settings.batch_sizes

    def dataset(self, spec: ModelSpec) -> Dataset | None:
        """The spec's data set, loaded once per session: loading reads files or generates the data."""
        if spec.dataset is None:
            return None
        if spec.name not in self._datasets:
            self._datasets[spec.name] = spec.dataset()
        return self._datasets[spec.name]

    def environment(self) -> dict[str, Any]:
        if self._environment is None:
            from pytest_trt.environment import fingerprint

            self._environment = fingerprint(self.device)
        return self._environment

    def module(self, spec: ModelSpec) -> torch.nn.Module:
        """The fp32 CPU module of a spec, built once; callers get their own copy to cast and move."""
        if spec.name not in self._modules:
            import torch

            torch.manual_seed(spec.seed)
            self._modules[spec.name] = spec.build().eval().float().cpu()
        return copy.deepcopy(self._modules[spec.name])

    def onnx(self, spec: ModelSpec, precision: str) -> tuple[Path, dict[str, Any]]:
        """The ONNX file for a spec at a precision (fp16 conversion, INT8/FP8 Q/DQ from calibration)."""
        key = (spec.name, precision)
        if key not in self._onnx:
            from pytest_trt import precision as precision_step
            from pytest_trt.export import export_onnx

            path, info = export_onnx(spec, self.module(spec), self.cache_dir)
            dataset = self.dataset(spec)
            calibration = dataset.calib_x if dataset is not None else None
            converted = precision_step.convert(
                path, precision, cache_dir=self.cache_dir, calibration=calibration,
                method=self.settings.calibration,
                reduce_range=precision_step.reduced_range_for(self.device, precision),
            )
            self._onnx[key] = (converted, {**info, "onnx_path": str(converted)})
        return self._onnx[key]

    def flops(self, spec: ModelSpec, batch_size: int) -> int | None:
        """FLOPs of one batch, counted on the fp32 ONNX graph; None where it cannot be exported."""
        key = (spec.name, batch_size)
        if key not in self._flops:
            from pytest_trt.flops import count_flops
            from pytest_trt.matrix import installed

            self._flops[key] = None
            if installed("onnx"):
                self._flops[key] = _cached_count(self.onnx(spec, "fp32")[0], batch_size, count_flops)
        return self._flops[key]

    def reference(
        self, spec: ModelSpec, inputs: np.ndarray, seed: int, items: tuple[int, ...] | None = None
    ) -> np.ndarray:
        """fp32 outputs of the PyTorch model (TF32 off) on the case device, cached per input set.

        ``items``: ``inputs`` are these items of a larger seeded batch (eval-mode models treat
        items independently), so a batch-256 check runs and keeps a few items, not 256.
        """
        key = (spec.name, inputs.shape[0], seed, self.device, items)
        if key not in self._references:
            self._references[key] = torch_fp32(self.module(spec), inputs, self.device)
        return self._references[key]

    def fp32_metric(self, spec: ModelSpec) -> float:
        """The task metric of the fp32 PyTorch model on the test split, on the CPU."""
        if spec.name not in self._metrics:
            from pytest_trt import accuracy

            dataset = self.dataset(spec)
            assert dataset is not None and spec.metric is not None
            module = self.module(spec)
            self._metrics[spec.name] = accuracy.evaluate(
                lambda x: torch_fp32(module, x, "cpu"), dataset.test_x, dataset.test_y, 64, spec.metric,
                dataset.num_classes,
            )
        return self._metrics[spec.name]


def _cached_count(onnx_path: Path, batch_size: int, count: Any) -> int | None:
    """FLOPs of an exported file at a batch size, kept beside the export: shape inference of a deep
    graph takes seconds, and every nightly process would pay them again. The export's name carries
    its model hash, so a changed model gets its own entry."""
    import json

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
    return flops if flops is None else int(flops)


def torch_fp32(module: torch.nn.Module, inputs: np.ndarray, device: str) -> np.ndarray:
    import torch

    from pytest_trt.backends.pytorch import first_tensor
    from pytest_trt.mathmode import tf32

    module = module.to(device)
    with tf32(False), torch.inference_mode():
        output = first_tensor(module(torch.from_numpy(np.require(inputs, requirements=["C", "W"])).to(device)))
        return np.asarray(output.float().cpu().numpy(), dtype=np.float32)


@contextmanager
def on_stream(stream: Any) -> Iterator[None]:
    """Make ``stream`` current (CUDA runners) so checks run where the timed work runs."""
    if stream is None:
        yield
        return
    import torch

    with torch.cuda.stream(stream):
        yield


def resolve_device(settings: Settings, worker: str | None) -> str:
    """auto/cuda/cuda:N → a concrete device; an xdist worker is pinned to its own GPU.

    ``worker`` comes from the worker's config, not the environment: a pytest started by a test
    inside a worker inherits PYTEST_XDIST_WORKER without being one.
    """
    from pytest_trt import devices, matrix

    device = matrix.resolve_device(settings.device)
    pinned_by_user = settings.device.startswith("cuda:")
    if device.startswith("cuda") and worker and (settings.devices or not pinned_by_user):
        import torch

        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0")) or None
        device = f"cuda:{devices.pick_device(worker, settings.devices, torch.cuda.device_count(), count)}"
    return device
