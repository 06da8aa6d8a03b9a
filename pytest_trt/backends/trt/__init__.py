"""The TensorRT backend: engines built and cached from the case's ONNX, run by ``runner.TensorRTRunner``.

``probe`` says which TensorRT is here, ``build`` builds a network into an engine, ``layers`` reads
the engine's layer precisions, ``engine`` keys the cache and loads or builds.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache

from pytest_trt.backends.base import Artifacts, Backend, Runner, device_kind, onnx_for
from pytest_trt.backends.trt import probe
from pytest_trt.backends.trt.runner import VARIANTS, TensorRTRunner
from pytest_trt.case import PRECISIONS, Case
from pytest_trt.model import ModelSpec


@cache
def _import_missing() -> str | None:
    return None if probe.available() else probe.unavailable_reason()


def _missing(device: str) -> str | None:
    if device_kind(device) != "cuda":
        return "TensorRT runs on CUDA devices only"
    return _import_missing()


def _versions() -> Mapping[str, str | None]:
    from pytest_trt.versions import tensorrt_version

    return {"tensorrt": tensorrt_version()}


def _create(case: Case, spec: ModelSpec, artifacts: Artifacts) -> Runner:
    onnx_path, info = onnx_for(case, spec, artifacts)
    dataset = artifacts.dataset(spec)
    runner = TensorRTRunner(case, onnx_path, cache_dir=artifacts.cache_dir, batch_sizes=artifacts.batch_sizes,
                            calibration=dataset.calib_x if dataset is not None else None)
    runner.info.update(info)
    return runner


TENSORRT = Backend(
    name="tensorrt",
    precisions={"cuda": PRECISIONS},
    variants={"cuda": VARIANTS},
    create_runner=_create, missing=_missing, versions=_versions,
)
