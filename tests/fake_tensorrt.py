"""A FAKE ``tensorrt`` module for seam tests. It is NOT TensorRT and builds nothing.

TensorRT cannot be installed on this project's machines, so pytest_trt/backends/trt takes the
module as a parameter. This fake imitates the slice of the TensorRT 10.x Python API that module
calls, records every call in order (``module.calls``), and lets a test choose the version and the
failures. Its "engine" is a JSON blob of the builder settings, so a test can tell what was built and
whether a cached engine was deserialized instead of rebuilt.
"""

from __future__ import annotations

import enum
import json
import types
from dataclasses import dataclass, field
from typing import Any

FP32_CONV = {
    "Name": "conv1 + relu1",
    "LayerType": "CaskConvolution",
    "Inputs": [{"Name": "x", "Format/Datatype": "Row major linear FP32"}],
    "Outputs": [{"Name": "y", "Format/Datatype": "Row major linear FP32"}],
}
FP16_CONV = {
    "Name": "conv2",
    "LayerType": "CaskConvolution",
    "Inputs": [{"Name": "y", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
    "Outputs": [{"Name": "z", "Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}],
}
INT8_CONV = {
    "Name": "conv3",
    "LayerType": "CaskConvolution",
    "Inputs": [{"Name": "z", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
    "Outputs": [{"Name": "w", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
}


@dataclass
class Behaviour:
    """What the fake does; tests set the fields they care about."""

    version: str = "10.13.0.35"
    input_name: str = "input"
    input_shape: tuple[int, ...] = (-1, 3, 8, 8)  # as the parser reports it: -1 = dynamic batch
    qdq: bool = False  # the parsed network holds Quantize/Dequantize layers
    parse_errors: list[str] = field(default_factory=list)
    build_log: list[str] = field(default_factory=list)  # messages logged at ERROR during the build
    build_returns_none: bool = False
    deserialize_returns_none: bool = False
    layers: list[dict[str, Any]] = field(default_factory=lambda: [FP32_CONV, FP16_CONV])
    device_memory: int = 123_456
    timing_cache_accepted: bool = True


def make_fake_tensorrt(**overrides: Any) -> types.ModuleType:
    """A fresh fake module; ``module.calls`` lists ``(name, *args)`` tuples in call order."""
    behaviour = Behaviour(**overrides)
    calls: list[tuple[Any, ...]] = []
    module = types.ModuleType("tensorrt")
    module.__version__ = behaviour.version  # type: ignore[attr-defined]
    module.calls = calls  # type: ignore[attr-defined]
    module.behaviour = behaviour  # type: ignore[attr-defined]
    for enum_type in _enums():
        setattr(module, enum_type.__name__, enum_type)
    for cls in _classes(module, behaviour, calls):
        setattr(module, cls.__name__, cls)
    return module


def _enums() -> list[type[enum.Enum]]:
    class NetworkDefinitionCreationFlag(enum.IntEnum):
        EXPLICIT_BATCH = 0
        STRONGLY_TYPED = 1

    class BuilderFlag(enum.IntEnum):
        FP16 = 0
        INT8 = 1
        TF32 = 7
        BF16 = 17
        FP8 = 19

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    class ProfilingVerbosity(enum.IntEnum):
        LAYER_NAMES_ONLY = 0
        NONE = 1
        DETAILED = 2

    class LayerInformationFormat(enum.IntEnum):
        ONELINE = 0
        JSON = 1

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class LayerType(enum.IntEnum):
        CONVOLUTION = 0
        QUANTIZE = 32
        DEQUANTIZE = 33

    class ExecutionContextAllocationStrategy(enum.IntEnum):
        STATIC = 0
        ON_PROFILE_CHANGE = 1
        USER_MANAGED = 2

    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1
        INT8 = 2
        INT32 = 3
        BOOL = 4
        BF16 = 7

    return [
        NetworkDefinitionCreationFlag,
        BuilderFlag,
        MemoryPoolType,
        ProfilingVerbosity,
        LayerInformationFormat,
        TensorIOMode,
        LayerType,
        ExecutionContextAllocationStrategy,
        DataType,
    ]


def _classes(module: types.ModuleType, behaviour: Behaviour, calls: list[tuple[Any, ...]]) -> list[type]:
    class ILogger:
        class Severity(enum.IntEnum):
            INTERNAL_ERROR = 0
            ERROR = 1
            WARNING = 2
            INFO = 3
            VERBOSE = 4

        def __init__(self) -> None:
            calls.append(("ILogger.__init__",))

        def log(self, severity: Any, msg: str) -> None:  # subclasses override
            raise NotImplementedError

    class IInt8EntropyCalibrator2:
        def __init__(self) -> None:
            calls.append(("IInt8EntropyCalibrator2.__init__",))

    class Dims(tuple):  # type: ignore[type-arg]
        pass

    class FakeLayer:
        def __init__(self, layer_type: Any) -> None:
            self.type = layer_type

    class FakeTensor:
        def __init__(self, name: str, shape: tuple[int, ...]) -> None:
            self.name = name
            self.shape = Dims(shape)

    class FakeNetwork:
        def __init__(self, flags: int) -> None:
            self.flags = flags
            self.parsed = False

        @property
        def num_inputs(self) -> int:
            return 1 if self.parsed else 0

        def get_input(self, index: int) -> FakeTensor:
            return FakeTensor(behaviour.input_name, behaviour.input_shape)

        @property
        def num_layers(self) -> int:
            return 3 if self.parsed else 0

        def get_layer(self, index: int) -> FakeLayer:
            kinds = [module.LayerType.QUANTIZE, module.LayerType.DEQUANTIZE] if behaviour.qdq else []
            kinds += [module.LayerType.CONVOLUTION] * 3
            return FakeLayer(kinds[index])

    class ParserError:
        def __init__(self, text: str) -> None:
            self.text = text

        def __str__(self) -> str:
            return f"In node 0 (parseGraph): {self.text}"

    class OnnxParser:
        def __init__(self, network: FakeNetwork, logger: Any) -> None:
            self.network = network
            self.errors: list[ParserError] = []

        def parse(self, model: bytes, path: str | None = None) -> bool:
            calls.append(("parse", len(bytes(model)), path))
            self.errors = [ParserError(text) for text in behaviour.parse_errors]
            self.network.parsed = not self.errors
            return not self.errors

        @property
        def num_errors(self) -> int:
            return len(self.errors)

        def get_error(self, index: int) -> ParserError:
            return self.errors[index]

    class FakeTimingCache:
        def __init__(self, data: bytes) -> None:
            self.data = data

        def serialize(self) -> memoryview:
            return memoryview(self.data + b"|tuned")

    class IOptimizationProfile:
        def __init__(self) -> None:
            self.shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

        def set_shape(self, name: str, low: Any, opt: Any, high: Any) -> None:
            calls.append(("set_shape", name, tuple(low), tuple(opt), tuple(high)))
            self.shapes[name] = (tuple(low), tuple(opt), tuple(high))

    class IBuilderConfig:
        def __init__(self) -> None:
            self.flags: set[str] = {"TF32"}  # TensorRT enables TF32 by default
            self.profiles: list[IOptimizationProfile] = []
            self.timing_cache: FakeTimingCache | None = None
            self.int8_calibrator: Any = None
            self.calibration_profile: IOptimizationProfile | None = None
            self.builder_optimization_level = 3
            self.profiling_verbosity = module.ProfilingVerbosity.LAYER_NAMES_ONLY

        def set_memory_pool_limit(self, pool: Any, size: int) -> None:
            calls.append(("set_memory_pool_limit", pool.name, size))

        def set_flag(self, flag: Any) -> None:
            calls.append(("set_flag", flag.name))
            self.flags.add(flag.name)

        def clear_flag(self, flag: Any) -> None:
            calls.append(("clear_flag", flag.name))
            self.flags.discard(flag.name)

        def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
            calls.append(("add_optimization_profile",))
            self.profiles.append(profile)
            return len(self.profiles) - 1

        def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
            calls.append(("set_calibration_profile",))
            self.calibration_profile = profile
            return True

        def create_timing_cache(self, data: bytes) -> FakeTimingCache:
            calls.append(("create_timing_cache", bytes(data)))
            return FakeTimingCache(bytes(data))

        def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
            calls.append(("set_timing_cache", ignore_mismatch))
            self.timing_cache = cache
            return behaviour.timing_cache_accepted

        def get_timing_cache(self) -> FakeTimingCache:
            calls.append(("get_timing_cache",))
            assert self.timing_cache is not None
            return self.timing_cache

    class Builder:
        def __init__(self, logger: Any) -> None:
            calls.append(("Builder",))
            self.logger = logger

        def create_network(self, flags: int = 0) -> FakeNetwork:
            calls.append(("create_network", flags))
            return FakeNetwork(flags)

        def create_builder_config(self) -> IBuilderConfig:
            calls.append(("create_builder_config",))
            return IBuilderConfig()

        def create_optimization_profile(self) -> IOptimizationProfile:
            return IOptimizationProfile()

        def build_serialized_network(self, network: FakeNetwork, config: IBuilderConfig) -> memoryview | None:
            calls.append(("build_serialized_network",))
            if config.int8_calibrator is not None:
                _calibrate(config.int8_calibrator)
            for message in behaviour.build_log:
                self.logger.log(ILogger.Severity.ERROR, message)
            if behaviour.build_returns_none:
                return None
            plan = {
                "flags": sorted(config.flags),
                "network_flags": network.flags,
                "profile": [list(map(list, p.shapes[behaviour.input_name])) for p in config.profiles],
                "optimization_level": config.builder_optimization_level,
                "verbosity": config.profiling_verbosity.name,
            }
            return memoryview(b"FAKE-ENGINE" + json.dumps(plan).encode())

    def _calibrate(calibrator: Any) -> None:
        cached = calibrator.read_calibration_cache()
        calls.append(("read_calibration_cache", cached))
        if cached:
            return
        assert calibrator.get_batch_size() == 1
        while (pointers := calibrator.get_batch([behaviour.input_name])) is not None:
            calls.append(("get_batch", list(pointers)))
        calibrator.write_calibration_cache(memoryview(b"FAKE-CALIBRATION-TABLE"))

    class EngineInspector:
        def __init__(self) -> None:
            self.execution_context: Any = None

        def get_engine_information(self, fmt: Any) -> str:
            shape = None if self.execution_context is None else self.execution_context.shapes
            calls.append(("get_engine_information", fmt.name, shape))
            return json.dumps({"Layers": behaviour.layers, "Bindings": [behaviour.input_name, "output"]})

    class FakeContext:
        def __init__(self, with_memory: bool) -> None:
            self.with_memory = with_memory
            self.shapes: dict[str, tuple[int, ...]] = {}

        def set_input_shape(self, name: str, shape: Any) -> bool:
            self.shapes[name] = tuple(shape)
            return True

    class FakeEngine:
        def __init__(self, plan: dict[str, Any]) -> None:
            self.plan = plan
            self.device_memory_size_v2 = behaviour.device_memory

        num_io_tensors = 2

        def get_tensor_name(self, index: int) -> str:
            return [behaviour.input_name, "output"][index]

        def get_tensor_mode(self, name: str) -> Any:
            io = module.TensorIOMode
            return io.INPUT if name == behaviour.input_name else io.OUTPUT

        def get_tensor_dtype(self, name: str) -> Any:
            return module.DataType.FLOAT

        def create_execution_context(self, strategy: Any = None) -> FakeContext:
            calls.append(("create_execution_context", getattr(strategy, "name", "STATIC")))
            return FakeContext(with_memory=getattr(strategy, "name", "STATIC") != "USER_MANAGED")

        def create_engine_inspector(self) -> EngineInspector:
            return EngineInspector()

    class Runtime:
        def __init__(self, logger: Any) -> None:
            self.logger = logger

        def deserialize_cuda_engine(self, data: bytes) -> FakeEngine | None:
            raw = bytes(data)
            calls.append(("deserialize_cuda_engine", len(raw)))
            if behaviour.deserialize_returns_none or not raw.startswith(b"FAKE-ENGINE"):
                self.logger.log(ILogger.Severity.ERROR, "fake: serialized engine is not valid")
                return None
            return FakeEngine(json.loads(raw[len(b"FAKE-ENGINE") :]))

    return [ILogger, IInt8EntropyCalibrator2, Dims, OnnxParser, Builder, Runtime, EngineInspector]
