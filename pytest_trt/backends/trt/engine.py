"""TensorRT engines from ONNX: build, cache, inspect.

Every function that touches TensorRT takes the module as its ``trt`` argument. Production passes
None and the real ``tensorrt`` is imported lazily; the seam tests pass a fake module
(tests/fake_tensorrt.py). The ONNX handed in is already in the case's precision (fp16 ONNX, or
INT8/FP8 Q/DQ ONNX from the precision step), so on TensorRT >= 10.12 the network is built strongly
typed and no precision builder flag is set (DESIGN.md, "TensorRT"). Older TensorRT gets the
deprecated builder flags, and an entropy calibrator for INT8 without Q/DQ, behind a version check.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt import atomic
from pytest_trt.backends.base import BuildError, UnsupportedCase
from pytest_trt.case import PRECISIONS

if TYPE_CHECKING:
    import tensorrt

# TensorRT 10.12 deprecates the precision builder flags and implicit-INT8 calibration.
STRONGLY_TYPED_SINCE = (10, 12)
DEFAULT_WORKSPACE_BYTES = 4 << 30
DEFAULT_OPTIMIZATION_LEVEL = 3  # TensorRT's own default
# An int8 case whose engine runs fewer than this share of its layers in int8 gets a warning.
INT8_FEW_FRACTION = 0.25
# Precision -> the builder flags the pre-10.12 path sets. Reduced-precision cases also allow FP16
# so layers without an int8/fp8 kernel fall back to fp16 rather than fp32, as deployments do.
WEAK_FLAGS = {
    "fp16": ("FP16",),
    "bf16": ("BF16",),
    "int8": ("INT8", "FP16"),
    "fp8": ("FP8", "FP16"),
}
QUANTIZED = ("int8", "fp8")


# -- availability --------------------------------------------------------------------------------


def _import_trt() -> ModuleType | None:
    try:
        import tensorrt as trt_module
    except ImportError:
        return None
    return trt_module


def _module(trt: ModuleType | None) -> ModuleType | None:
    return _import_trt() if trt is None else trt


def available(trt: ModuleType | None = None) -> str | None:
    """TensorRT's version when a real TensorRT (one with ``Builder``) can be imported, else None.

    ``import tensorrt`` alone proves nothing: tensorrt-stubs makes it an empty namespace package.
    """
    module = _module(trt)
    if module is None or not hasattr(module, "Builder"):
        return None
    return str(getattr(module, "__version__", "unknown"))


def unavailable_reason(trt: ModuleType | None = None) -> str:
    """Why TensorRT cannot be used here, in words fit for a skip reason ("" when it can)."""
    module = _module(trt)
    if module is None:
        return "TensorRT is not installed (pip install 'pytest-trt[tensorrt]' on a CUDA host)"
    if not hasattr(module, "Builder"):
        return (
            "TensorRT is not installed: 'import tensorrt' found only a namespace package without "
            "tensorrt.Builder (type stubs such as tensorrt-stubs, not the runtime)"
        )
    return ""


def require(trt: ModuleType | None = None) -> ModuleType:
    """The TensorRT module to use, or UnsupportedCase saying why there is none."""
    module = _module(trt)
    if module is None or available(module) is None:
        raise UnsupportedCase(unavailable_reason(module))
    return module


def version_tuple(version: str) -> tuple[int, ...]:
    """``"10.13.0.35"`` -> ``(10, 13, 0, 35)``; trailing non-numeric parts are ignored."""
    parts: list[int] = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    if not parts:
        raise ValueError(f"TensorRT version {version!r} does not start with a number")
    return tuple(parts)


def is_strongly_typed(version: str) -> bool:
    """Whether this TensorRT version builds strongly typed networks (>= 10.12)."""
    return version_tuple(version)[:2] >= STRONGLY_TYPED_SINCE


# -- what to build -------------------------------------------------------------------------------


@dataclass(frozen=True)
class EngineSpec:
    """Everything that decides an engine: one optimization profile covers every batch size."""

    onnx_path: Path
    precision: str
    min_batch: int
    opt_batch: int
    max_batch: int
    input_shape: tuple[int, ...]  # one sample, without the batch dimension
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL
    cuda_graph: bool = False  # a runtime choice: it does not change the engine or its cache key

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"EngineSpec.precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise ValueError(
                "EngineSpec batches must satisfy 1 <= min_batch <= opt_batch <= max_batch, got "
                f"{self.min_batch}/{self.opt_batch}/{self.max_batch}"
            )
        if not self.input_shape or any(int(d) < 1 for d in self.input_shape):
            raise ValueError(f"EngineSpec.input_shape must be positive sizes, got {self.input_shape!r}")
        if not 0 <= self.optimization_level <= 5:
            raise ValueError(f"EngineSpec.optimization_level must be 0..5, got {self.optimization_level}")
        if self.workspace_bytes < 1:
            raise ValueError(f"EngineSpec.workspace_bytes must be positive, got {self.workspace_bytes}")

    @classmethod
    def for_batches(
        cls,
        onnx_path: Path,
        precision: str,
        batch_sizes: Sequence[int],
        input_shape: Sequence[int],
        **options: Any,
    ) -> EngineSpec:
        """A spec whose profile spans ``batch_sizes``; the kernels are tuned for their median."""
        sizes = sorted({int(b) for b in batch_sizes})
        if not sizes or sizes[0] < 1:
            raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)!r}")
        return cls(
            onnx_path=Path(onnx_path),
            precision=precision,
            min_batch=sizes[0],
            opt_batch=sizes[len(sizes) // 2],
            max_batch=sizes[-1],
            input_shape=tuple(int(d) for d in input_shape),
            **options,
        )

    def shapes(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
        """The profile's min, opt and max input shapes."""
        low, opt, high = ((b, *self.input_shape) for b in (self.min_batch, self.opt_batch, self.max_batch))
        return low, opt, high


# -- cache keys and files ------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower() or "x"


def cache_key(
    spec: EngineSpec, onnx_sha256: str, trt_version: str, gpu_name: str, compute_capability: str
) -> str:
    """A file-name-safe key that changes whenever the engine would (DESIGN.md rule 10).

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


# -- logger and calibrator (subclasses of the TensorRT module handed in) -------------------------


@dataclass
class MessageLog:
    """What TensorRT logged: kept to explain a failed build."""

    messages: list[tuple[str, str]] = field(default_factory=list)

    def record(self, severity: str, message: str) -> None:
        self.messages.append((severity, message))

    def text(self, severities: Sequence[str] = ("INTERNAL_ERROR", "ERROR", "WARNING"), last: int = 40) -> str:
        lines = [f"[{sev}] {msg}" for sev, msg in self.messages if sev in severities]
        return "\n".join(lines[-last:])


def make_logger(trt: ModuleType, log: MessageLog) -> tensorrt.ILogger:
    """An instance of a ``trt.ILogger`` subclass that appends every message to ``log``.

    The base class belongs to the module handed in (real or fake), so the class is made here.
    """

    def init(self: Any) -> None:
        trt.ILogger.__init__(self)

    def log_message(self: Any, severity: Any, msg: str) -> None:
        log.record(str(getattr(severity, "name", severity)), str(msg))

    cls = type("RecordingLogger", (trt.ILogger,), {"__init__": init, "log": log_message})
    logger: tensorrt.ILogger = cls()
    return logger


class CalibrationFeed:
    """Calibration batches on the device, one per ``next_pointer`` call, and the cache file.

    The data is copied to ``device`` through torch; the last batch stays referenced so its memory
    lives until TensorRT has read it.
    """

    def __init__(self, calibration: np.ndarray, batch_size: int, cache_path: Path, device: str) -> None:
        data = np.ascontiguousarray(calibration, dtype=np.float32)
        count = len(data) // batch_size
        if count < 1:
            raise BuildError(
                f"calibration data has {len(data)} samples, fewer than one calibration batch of {batch_size}"
            )
        self.batches = [data[i * batch_size : (i + 1) * batch_size] for i in range(count)]
        self.batch_size = batch_size
        self.cache_path = cache_path
        self.device = device
        self.served = 0
        self._current: Any = None

    def next_pointer(self) -> int | None:
        if self.served >= len(self.batches):
            return None
        import torch

        self._current = torch.from_numpy(np.require(self.batches[self.served], requirements=["C", "W"])).to(self.device)
        self.served += 1
        return int(self._current.data_ptr())

    def read_cache(self) -> bytes | None:
        return self.cache_path.read_bytes() if self.cache_path.is_file() else None

    def write_cache(self, cache: Any) -> None:
        atomic.write_bytes(self.cache_path, bytes(cache))


def make_calibrator(trt: ModuleType, feed: CalibrationFeed) -> tensorrt.IInt8EntropyCalibrator2:
    """An ``IInt8EntropyCalibrator2`` subclass instance of the module handed in, fed by ``feed``."""

    def init(self: Any) -> None:
        trt.IInt8EntropyCalibrator2.__init__(self)

    def get_batch_size(self: Any) -> int:
        return 1  # explicit-batch networks: the batch is part of the calibration profile's shape

    def get_batch(self: Any, names: list[str]) -> list[int] | None:
        pointer = feed.next_pointer()
        return None if pointer is None else [pointer] * len(names)

    def read_calibration_cache(self: Any) -> bytes | None:
        return feed.read_cache()

    def write_calibration_cache(self: Any, cache: Any) -> None:
        feed.write_cache(cache)

    methods = {
        "__init__": init,
        "get_batch_size": get_batch_size,
        "get_batch": get_batch,
        "read_calibration_cache": read_calibration_cache,
        "write_calibration_cache": write_calibration_cache,
    }
    cls = type("FeedCalibrator", (trt.IInt8EntropyCalibrator2,), methods)
    calibrator: tensorrt.IInt8EntropyCalibrator2 = cls()
    return calibrator


# -- build ---------------------------------------------------------------------------------------


@dataclass
class BuildInputs:
    """What one build needs besides the spec."""

    timing_cache: Path
    log: MessageLog
    calibration: np.ndarray | None = None
    calibration_cache: Path | None = None
    calibration_device: str = "cuda"
    notes: list[str] = field(default_factory=list)  # warnings found while building


def _parse(
    trt: ModuleType, network: tensorrt.INetworkDefinition, logger: tensorrt.ILogger, onnx: Path
) -> Any:
    parser: tensorrt.OnnxParser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx.read_bytes(), str(onnx)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["(no parser error text)"]
        raise BuildError(f"TensorRT could not parse {onnx}:\n" + "\n".join(errors))
    return parser  # kept alive with the network: the parser owns weights the network points at


def _network_input(network: tensorrt.INetworkDefinition, spec: EngineSpec) -> tensorrt.ITensor:
    if network.num_inputs != 1:
        raise BuildError(
            f"{spec.onnx_path} has {network.num_inputs} inputs; pytest-trt builds single-input models"
        )
    tensor = network.get_input(0)
    shape = tensor.shape  # Dims: indexable and sized (the stubs do not declare it iterable)
    dims = tuple(int(shape[i]) for i in range(len(shape)))
    if tuple(dims[1:]) != spec.input_shape:
        raise BuildError(
            f"{spec.onnx_path} input {tensor.name!r} has per-sample shape {dims[1:]}, "
            f"expected {spec.input_shape}"
        )
    if dims[0] != -1 and not spec.min_batch == spec.max_batch == dims[0]:
        raise BuildError(
            f"{spec.onnx_path} input {tensor.name!r} has a fixed batch of {dims[0]}; export it with a "
            f"dynamic batch axis to build for batches {spec.min_batch}..{spec.max_batch}"
        )
    return tensor


def _has_qdq(trt: ModuleType, network: tensorrt.INetworkDefinition) -> bool:
    kinds = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    return any(network.get_layer(i).type in kinds for i in range(network.num_layers))


def _configure(trt: ModuleType, config: tensorrt.IBuilderConfig, spec: EngineSpec) -> None:
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, spec.workspace_bytes)
    config.builder_optimization_level = spec.optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # per-layer precisions for inspection
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if tf32 is not None and spec.precision == "fp32":
        config.clear_flag(tf32)  # fp32 means IEEE fp32; TF32 is its own precision
    elif tf32 is not None and spec.precision == "tf32":
        config.set_flag(tf32)


def _add_profile(
    trt: ModuleType, builder: tensorrt.Builder, config: tensorrt.IBuilderConfig, name: str, spec: EngineSpec
) -> None:
    profile: tensorrt.IOptimizationProfile = builder.create_optimization_profile()
    low, opt, high = (trt.Dims(list(shape)) for shape in spec.shapes())
    profile.set_shape(name, low, opt, high)
    config.add_optimization_profile(profile)


def _load_timing_cache(config: tensorrt.IBuilderConfig, path: Path, notes: list[str]) -> None:
    data = path.read_bytes() if path.is_file() else b""
    cache: tensorrt.ITimingCache = config.create_timing_cache(data)
    # ignore_mismatch=False: a cache from other hardware is refused, not half-used.
    if not config.set_timing_cache(cache, False):
        notes.append(f"timing cache {path.name} was refused by TensorRT; tactics were timed afresh")


def _weak_precision(
    trt: ModuleType,
    builder: tensorrt.Builder,
    config: tensorrt.IBuilderConfig,
    network: tensorrt.INetworkDefinition,
    spec: EngineSpec,
    extra: BuildInputs,
) -> Any:
    """TensorRT < 10.12: precision builder flags, and a calibrator for INT8 without Q/DQ."""
    for flag in WEAK_FLAGS.get(spec.precision, ()):
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if spec.precision != "int8" or _has_qdq(trt, network):
        return None
    if extra.calibration is None or extra.calibration_cache is None:
        raise BuildError(
            f"int8 on TensorRT < {'.'.join(map(str, STRONGLY_TYPED_SINCE))} needs Q/DQ nodes in "
            f"{spec.onnx_path} or calibration data; got neither"
        )
    batch = min(spec.opt_batch, len(extra.calibration))
    feed = CalibrationFeed(extra.calibration, batch, extra.calibration_cache, extra.calibration_device)
    calibrator = make_calibrator(trt, feed)
    config.int8_calibrator = calibrator
    profile: tensorrt.IOptimizationProfile = builder.create_optimization_profile()
    shape = trt.Dims([batch, *spec.input_shape])
    profile.set_shape(network.get_input(0).name, shape, shape, shape)
    config.set_calibration_profile(profile)
    return calibrator  # must outlive the build


def build_serialized(trt: ModuleType, spec: EngineSpec, strongly_typed: bool, extra: BuildInputs) -> bytes:
    """Parse the ONNX, configure, build; returns the serialized engine or raises BuildError."""
    logger = make_logger(trt, extra.log)
    builder: tensorrt.Builder = trt.Builder(logger)
    flags = 0
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network: tensorrt.INetworkDefinition = builder.create_network(flags)
    parser = _parse(trt, network, logger, spec.onnx_path)
    tensor = _network_input(network, spec)
    if spec.precision in QUANTIZED and strongly_typed and not _has_qdq(trt, network):
        extra.notes.append(
            f"{spec.precision} case: {spec.onnx_path.name} has no Q/DQ nodes, so the strongly typed "
            "engine runs in the ONNX's own types"
        )
    config: tensorrt.IBuilderConfig = builder.create_builder_config()
    _configure(trt, config, spec)
    calibrator = None if strongly_typed else _weak_precision(trt, builder, config, network, spec, extra)
    _add_profile(trt, builder, config, tensor.name, spec)
    _load_timing_cache(config, extra.timing_cache, extra.notes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT failed to build {spec.onnx_path} ({spec.precision}):\n{extra.log.text()}")
    atomic.write_bytes(extra.timing_cache, bytes(config.get_timing_cache().serialize()))
    del parser, calibrator
    return bytes(serialized)


# -- inspection ----------------------------------------------------------------------------------

_PRECISION_TOKENS = (
    ("int8", ("int8",)),
    ("fp8", ("fp8", "e4m3")),
    ("bf16", ("bf16", "bfloat16")),
    ("fp16", ("fp16", "half")),
    ("fp32", ("fp32", "float")),
    ("int32", ("int32",)),
    ("int64", ("int64",)),
    ("bool", ("bool",)),
)


def _tensor_precision(tensor: Any) -> str:
    """Precision of one tensor entry of the inspector JSON (TensorRT 10 and 11 layouts)."""
    if not isinstance(tensor, dict):
        return "unknown"
    text = str(tensor.get("DataType") or tensor.get("Format/Datatype") or tensor.get("Format") or "").lower()
    for name, tokens in _PRECISION_TOKENS:
        if any(token in text for token in tokens):
            return name
    return "unknown"


def _layer_precision(layer: Any) -> str:
    """A layer counts in the lowest precision among its inputs: an int8 conv reads int8."""
    if not isinstance(layer, dict):
        return "unknown"
    found = {_tensor_precision(t) for t in [*layer.get("Inputs", []), *layer.get("Outputs", [])]}
    for name, _ in _PRECISION_TOKENS:
        if name in found:
            return name
    return "unknown"


def layer_precisions(engine_information: str) -> dict[str, int]:
    """Count the layers of an engine per precision from ``get_engine_information(JSON)``."""
    try:
        data = json.loads(engine_information)
    except json.JSONDecodeError as exc:
        raise ValueError(f"engine inspector output is not JSON: {exc}") from exc
    layers = data.get("Layers", []) if isinstance(data, dict) else []
    counts: dict[str, int] = {}
    for layer in layers:
        precision = _layer_precision(layer)
        counts[precision] = counts.get(precision, 0) + 1
    return counts


def low_precision_warning(precision: str, counts: dict[str, int]) -> str | None:
    """The warning for an int8/fp8 case whose engine runs few or none of its layers in that type."""
    if precision not in QUANTIZED:
        return None
    known = sum(n for p, n in counts.items() if p != "unknown")
    low = counts.get(precision, 0)
    if known == 0 or low >= INT8_FEW_FRACTION * known:
        return None
    floating = counts.get("fp32", 0) + counts.get("fp16", 0) + counts.get("bf16", 0)
    return f"{precision} case ran {floating} of {known} layers in fp32/fp16 ({low} in {precision})"


def inspect_layers(
    trt: ModuleType, engine: tensorrt.ICudaEngine, input_name: str, shape: Sequence[int]
) -> str:
    """Engine information as JSON, resolved for one input shape.

    With dynamic shapes the inspector reports formats only through an execution context whose
    shapes are set; a context without device memory (USER_MANAGED, never run) is enough for that.
    """
    strategy = trt.ExecutionContextAllocationStrategy.USER_MANAGED
    context: tensorrt.IExecutionContext = engine.create_execution_context(strategy)
    context.set_input_shape(input_name, tuple(shape))
    inspector: tensorrt.EngineInspector = engine.create_engine_inspector()
    inspector.execution_context = context
    return str(inspector.get_engine_information(trt.LayerInformationFormat.JSON))


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
    data = path.read_bytes() if path.is_file() else b""
    loaded = _deserialize(trt, data, extra.log) if data else None
    if data and loaded is None:  # written by an incompatible TensorRT or damaged: rebuild it
        extra.notes.append(f"cached engine {path.name} could not be deserialized; rebuilt")
    if loaded is None:
        data, build_s = _timed_build(trt, spec, strongly_typed, extra)
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
