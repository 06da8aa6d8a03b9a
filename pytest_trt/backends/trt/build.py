"""Building a TensorRT engine from ONNX: the spec that decides it, the logger, the calibrator, the build.

The ONNX handed in is already in the case's precision (fp16 ONNX, or INT8/FP8 Q/DQ ONNX from the
precision step), so on TensorRT >= 10.12 the network is built strongly typed and no precision builder
flag is set. Older TensorRT gets the deprecated builder flags, and an entropy calibrator for INT8
without Q/DQ, behind a version check. The TensorRT module is always an argument (the seam).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt import cachefile
from pytest_trt.backends.base import BuildError
from pytest_trt.backends.trt.layers import QUANTIZED
from pytest_trt.backends.trt.probe import STRONGLY_TYPED_SINCE
from pytest_trt.case import PRECISIONS

if TYPE_CHECKING:
    import tensorrt

DEFAULT_WORKSPACE_BYTES = 4 << 30
DEFAULT_OPTIMIZATION_LEVEL = 3  # TensorRT's own default
# Precision -> the builder flags the pre-10.12 path sets. Reduced-precision cases also allow FP16
# so layers without an int8/fp8 kernel fall back to fp16 rather than fp32, as deployments do.
WEAK_FLAGS = {
    "fp16": ("FP16",),
    "bf16": ("BF16",),
    "int8": ("INT8", "FP16"),
    "fp8": ("FP8", "FP16"),
}


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
        return cachefile.read_verified(self.cache_path)  # damaged scales would be used silently

    def write_cache(self, cache: Any) -> None:
        cachefile.write_recorded(self.cache_path, bytes(cache))


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
    data = cachefile.read_verified(path) or b""
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
    cachefile.write_recorded(extra.timing_cache, bytes(config.get_timing_cache().serialize()))
    del parser, calibrator
    return bytes(serialized)
