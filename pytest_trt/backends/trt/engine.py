"""TensorRT engines from ONNX, cached: keyed by everything that changes the engine, loaded or built.

Every function that touches TensorRT takes the module as its ``trt`` argument (None: the real
``tensorrt``, imported lazily; the seam tests pass tests/fake_tensorrt.py). Building is in
``build``, layer inspection in ``layers``, availability in ``probe``.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt import atomic, cachefile
from pytest_trt.backends.base import BuildError
from pytest_trt.backends.trt.build import BuildInputs, EngineSpec, MessageLog, build_serialized, make_logger
from pytest_trt.backends.trt.layers import inspect_layers, layer_precisions, low_precision_warning
from pytest_trt.backends.trt.probe import is_strongly_typed, require

if TYPE_CHECKING:
    import tensorrt

# -- cache keys and files ------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "x"


def cache_key(
    spec: EngineSpec, onnx_sha256: str, trt_version: str, gpu_name: str, compute_capability: str
) -> str:
    """A file-name-safe key that changes whenever the engine would: model, precision, shapes, TensorRT, GPU.

    The model file enters by content hash, not path; ``cuda_graph`` is left out because the same
    engine serves both variants.
    """
    fields = {
        "onnx_sha256": onnx_sha256,
        "precision": spec.precision,
        "batches": [spec.min_batch, spec.opt_batch, spec.max_batch],
        "input_shape": list(spec.input_shape),
        "workspace_bytes": spec.workspace_bytes,
        "optimization_level": spec.optimization_level,
        "trt_version": trt_version,
        "gpu_name": gpu_name,
        "compute_capability": compute_capability,
    }
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]
    stem = _slug(spec.onnx_path.stem)[:40]
    return f"{stem}-{spec.precision}-bs{spec.min_batch}-{spec.opt_batch}-{spec.max_batch}-{digest}"


def engine_path(cache_dir: Path, key: str) -> Path:
    return Path(cache_dir) / "tensorrt" / "engines" / f"{key}.engine"


def timing_cache_path(cache_dir: Path, trt_version: str, gpu_name: str, compute_capability: str) -> Path:
    """One timing cache per GPU model and TensorRT version, shared by every model built there."""
    name = f"{_slug(gpu_name)}-sm{_slug(compute_capability)}-trt{_slug(trt_version)}.timing"
    return Path(cache_dir) / "tensorrt" / "timing" / name


def calibration_cache_path(
    cache_dir: Path, onnx_sha256: str, spec: EngineSpec, calibration: np.ndarray
) -> Path:
    """Keyed by model and calibration data: a different data set must recalibrate."""
    data = hashlib.sha256(np.ascontiguousarray(calibration).tobytes()).hexdigest()[:16]
    name = f"{onnx_sha256[:16]}-{data}-bs{spec.opt_batch}.calib"
    return Path(cache_dir) / "tensorrt" / "calibration" / name


# -- load or build -------------------------------------------------------------------------------


@dataclass
class EngineBuild:
    """An engine ready to run, and what its build or load recorded."""

    engine: Any  # tensorrt.ICudaEngine
    key: str
    engine_path: Path
    from_cache: bool
    build_s: float | None  # None when loaded from the cache
    load_s: float
    engine_bytes: int
    device_memory_bytes: int | None
    trt_version: str
    strongly_typed: bool
    input_name: str
    layer_precisions: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    runtime: Any = None  # tensorrt.Runtime: must outlive the engine it deserialized

    def info(self) -> dict[str, Any]:
        """JSON-able facts for ``Runner.info`` / ``CaseResult.build``."""
        return {
            "engine_cache_key": self.key,
            "engine_path": str(self.engine_path),
            "engine_from_cache": self.from_cache,
            "build_s": self.build_s,
            "load_s": self.load_s,
            "engine_bytes": self.engine_bytes,
            "device_memory_bytes": self.device_memory_bytes,
            "tensorrt": self.trt_version,
            "strongly_typed": self.strongly_typed,
            "layer_precisions": dict(self.layer_precisions),
            "warnings": list(self.warnings),
        }


def _deserialize(trt: ModuleType, data: bytes, log: MessageLog) -> Any:
    runtime: tensorrt.Runtime = trt.Runtime(make_logger(trt, log))
    engine = runtime.deserialize_cuda_engine(data)
    return None if engine is None else _KeepRuntime(engine, runtime)


class _KeepRuntime:
    """The engine plus the runtime that made it (the runtime must outlive its engines)."""

    def __init__(self, engine: Any, runtime: Any) -> None:
        self.engine = engine
        self.runtime = runtime


def _device_memory(engine: Any) -> int | None:
    for name in ("device_memory_size_v2", "device_memory_size"):
        value = getattr(engine, name, None)
        if value is not None:
            return int(value)
    return None


def _input_name(trt: ModuleType, engine: Any) -> str:
    for i in range(engine.num_io_tensors):
        name = str(engine.get_tensor_name(i))
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            return name
    raise BuildError("the TensorRT engine has no input tensor")


def _timed_build(
    trt: ModuleType, spec: EngineSpec, strongly_typed: bool, extra: BuildInputs
) -> tuple[bytes, float]:
    start = time.perf_counter()
    data = build_serialized(trt, spec, strongly_typed, extra)
    return data, time.perf_counter() - start


def load_or_build(
    spec: EngineSpec,
    cache_dir: Path,
    *,
    gpu_name: str,
    compute_capability: str,
    calibration: np.ndarray | None = None,
    calibration_device: str = "cuda",
    trt: ModuleType | None = None,
) -> EngineBuild:
    """Deserialize the cached engine for ``spec``, or build, cache and deserialize it.

    Builds of one key are serialized across processes (pytest-xdist workers) by a file lock.
    """
    module = require(trt)
    if not spec.onnx_path.is_file():
        raise BuildError(f"ONNX file {spec.onnx_path} does not exist")
    version = str(module.__version__)
    strongly_typed = is_strongly_typed(version)
    onnx_sha = atomic.file_sha256(spec.onnx_path)
    key = cache_key(spec, onnx_sha, version, gpu_name, compute_capability)
    path = engine_path(cache_dir, key)
    extra = BuildInputs(
        timing_cache=timing_cache_path(cache_dir, version, gpu_name, compute_capability),
        log=MessageLog(),
        calibration=calibration,
        calibration_cache=None
        if calibration is None
        else calibration_cache_path(cache_dir, onnx_sha, spec, calibration),
        calibration_device=calibration_device,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    with _file_lock(path):
        return _load_or_build_locked(module, spec, key, path, strongly_typed, extra)


def _file_lock(path: Path) -> Any:
    from filelock import FileLock

    return FileLock(str(path) + ".lock")


def _load_or_build_locked(
    trt: ModuleType, spec: EngineSpec, key: str, path: Path, strongly_typed: bool, extra: BuildInputs
) -> EngineBuild:
    build_s: float | None = None
    start = time.perf_counter()
    damage = cachefile.problem(path) if path.is_file() else None
    if damage is not None:
        extra.notes.append(f"cached engine {path.name} {damage}; rebuilt")
        cachefile.discard(path)
    data = path.read_bytes() if path.is_file() else b""
    loaded = _deserialize(trt, data, extra.log) if data else None
    if data and loaded is None:  # written by an incompatible TensorRT or damaged: rebuild it
        extra.notes.append(f"cached engine {path.name} could not be deserialized; rebuilt")
    if loaded is None:
        data, build_s = _timed_build(trt, spec, strongly_typed, extra)
        cachefile.record_digest(path, hashlib.sha256(data).hexdigest())
        atomic.write_bytes(path, data)
        start = time.perf_counter()
        loaded = _deserialize(trt, data, extra.log)
        if loaded is None:
            raise BuildError(f"TensorRT could not deserialize the engine it just built:\n{extra.log.text()}")
    load_s = time.perf_counter() - start
    return _describe(trt, spec, key, path, loaded, data, build_s, load_s, strongly_typed, extra)


def _describe(
    trt: ModuleType,
    spec: EngineSpec,
    key: str,
    path: Path,
    loaded: _KeepRuntime,
    data: bytes,
    build_s: float | None,
    load_s: float,
    strongly_typed: bool,
    extra: BuildInputs,
) -> EngineBuild:
    engine = loaded.engine
    name = _input_name(trt, engine)
    counts = layer_precisions(inspect_layers(trt, engine, name, spec.shapes()[1]))
    warnings = list(extra.notes)
    warning = low_precision_warning(spec.precision, counts)
    if warning:
        warnings.append(warning)
    return EngineBuild(
        engine=engine,
        key=key,
        engine_path=path,
        from_cache=build_s is None,
        build_s=build_s,
        load_s=load_s,
        engine_bytes=len(data),
        device_memory_bytes=_device_memory(engine),
        trt_version=str(trt.__version__),
        strongly_typed=strongly_typed,
        input_name=name,
        layer_precisions=counts,
        warnings=warnings,
        runtime=loaded.runtime,
    )
