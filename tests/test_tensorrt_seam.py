"""The TensorRT backend through its seam: a FAKE tensorrt module (tests/fake_tensorrt.py) stands in
for TensorRT, which cannot be installed here. The ONNX files are real. Tests that need a CUDA GPU (or
real TensorRT) skip with the reason."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from pytest_trt import atomic
from pytest_trt.backends.base import BuildError, Runner, UnsupportedCase
from pytest_trt.backends.trt import engine, layers, probe
from pytest_trt.backends.trt.build import EngineSpec
from pytest_trt.backends.trt.runner import TensorRTRunner, onnx_input, torch_dtype
from pytest_trt.case import Case


def _load_fake() -> types.ModuleType:
    """tests/fake_tensorrt.py, loaded by path: works with or without tests/__init__.py and in any
    pytest import mode."""
    spec = importlib.util.spec_from_file_location(
        "fake_tensorrt", Path(__file__).with_name("fake_tensorrt.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_tensorrt", module)
    spec.loader.exec_module(module)
    return module


_fake = _load_fake()
make_fake_tensorrt = _fake.make_fake_tensorrt
FP16_CONV, FP32_CONV, INT8_CONV = _fake.FP16_CONV, _fake.FP32_CONV, _fake.INT8_CONV

GPU = "NVIDIA H100 80GB HBM3"
CC = "9.0"
SAMPLE = (3, 8, 8)


def _onnx_model(path: Path, batch: int | str = "N") -> Path:
    """A real ONNX file: input (batch, 3, 8, 8) -> Relu -> output."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, *SAMPLE])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, [batch, *SAMPLE])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "relu", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    return _onnx_model(tmp_path / "tiny.onnx")


def _spec(onnx_file: Path, precision: str = "fp16", batches: tuple[int, ...] = (1, 8, 32), **kw: object):
    return EngineSpec.for_batches(onnx_file, precision, batches, SAMPLE, **kw)


def _build(spec, cache: Path, trt: types.ModuleType, **kw: object) -> engine.EngineBuild:
    return engine.load_or_build(spec, cache, gpu_name=GPU, compute_capability=CC, trt=trt, **kw)


def _names(trt: types.ModuleType) -> list[str]:
    return [call[0] for call in trt.calls]


def _flags_set(trt: types.ModuleType) -> set[str]:
    return {call[1] for call in trt.calls if call[0] == "set_flag"}


# -- availability --------------------------------------------------------------------------------


def test_available_needs_a_real_builder_not_a_namespace_package() -> None:
    stubs_only = types.ModuleType("tensorrt")  # what 'import tensorrt' gives with tensorrt-stubs alone
    assert probe.available(stubs_only) is None
    assert "tensorrt.Builder" in probe.unavailable_reason(stubs_only)
    with pytest.raises(UnsupportedCase, match="namespace package"):
        probe.require(stubs_only)
    fake = make_fake_tensorrt(version="10.13.0.35")
    assert probe.available(fake) == "10.13.0.35"
    assert probe.unavailable_reason(fake) == ""


def test_installed_tensorrt_here_is_reported_consistently() -> None:
    version = probe.available()
    assert (version is None) == bool(probe.unavailable_reason())


@pytest.mark.parametrize(
    ("version", "strong"),
    [("10.13.0.35", True), ("10.12", True), ("10.8", False), ("10.11.0.33", False), ("11.4.0.106", True)],
)
def test_strong_typing_starts_at_10_12(version: str, strong: bool) -> None:
    assert probe.is_strongly_typed(version) is strong


def test_version_must_start_with_a_number() -> None:
    with pytest.raises(ValueError, match="version"):
        probe.version_tuple("dev")


# -- spec and cache key --------------------------------------------------------------------------


def test_spec_profile_spans_the_batch_sizes(onnx_file: Path) -> None:
    spec = _spec(onnx_file, batches=(32, 1, 8, 8))
    assert (spec.min_batch, spec.opt_batch, spec.max_batch) == (1, 8, 32)
    assert spec.shapes() == ((1, *SAMPLE), (8, *SAMPLE), (32, *SAMPLE))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"precision": "int4"}, "precision"),
        ({"batches": (0, 4)}, "batch sizes"),
        ({"batches": ()}, "batch sizes"),
        ({"optimization_level": 9}, "optimization_level"),
        ({"workspace_bytes": 0}, "workspace_bytes"),
    ],
)
def test_spec_rejects_bad_values_by_name(onnx_file: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _spec(onnx_file, **kwargs)


def test_cache_key_changes_with_everything_that_changes_the_engine(onnx_file: Path) -> None:
    spec = _spec(onnx_file)
    base = engine.cache_key(spec, "a" * 64, "10.13.0.35", GPU, CC)
    assert base == engine.cache_key(_spec(onnx_file), "a" * 64, "10.13.0.35", GPU, CC)
    variants = [
        engine.cache_key(_spec(onnx_file, "int8"), "a" * 64, "10.13.0.35", GPU, CC),
        engine.cache_key(spec, "a" * 64, "10.13.0.35", "NVIDIA A100-SXM4-80GB", "8.0"),
        engine.cache_key(spec, "a" * 64, "10.13.0.35", GPU, "8.9"),
        engine.cache_key(spec, "a" * 64, "10.14.1.48", GPU, CC),
        engine.cache_key(spec, "b" * 64, "10.13.0.35", GPU, CC),
        engine.cache_key(_spec(onnx_file, batches=(1, 64)), "a" * 64, "10.13.0.35", GPU, CC),
        engine.cache_key(_spec(onnx_file, optimization_level=5), "a" * 64, "10.13.0.35", GPU, CC),
    ]
    assert len({base, *variants}) == len(variants) + 1
    # The CUDA-graph variant runs the same engine.
    assert engine.cache_key(_spec(onnx_file, cuda_graph=True), "a" * 64, "10.13.0.35", GPU, CC) == base
    assert "/" not in base and " " not in base


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "engine.bin"
    atomic.write_bytes(target, b"one")
    atomic.write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["engine.bin"]


# -- the build, in order -------------------------------------------------------------------------


def test_build_parses_configures_profiles_and_caches_in_order(onnx_file: Path, tmp_path: Path) -> None:
    trt = make_fake_tensorrt(version="10.13.0.35")
    spec = _spec(onnx_file, "fp16", (1, 8, 32), optimization_level=4)
    build = _build(spec, tmp_path / "cache", trt)

    names = _names(trt)
    order = [
        "parse",
        "create_builder_config",
        "set_shape",
        "create_timing_cache",
        "set_timing_cache",
        "build_serialized_network",
        "get_timing_cache",
        "deserialize_cuda_engine",
    ]
    positions = [names.index(name) for name in order]
    assert positions == sorted(positions), names
    assert ("set_shape", "input", (1, *SAMPLE), (8, *SAMPLE), (32, *SAMPLE)) in trt.calls
    assert ("set_memory_pool_limit", "WORKSPACE", spec.workspace_bytes) in trt.calls
    assert ("create_timing_cache", b"") in trt.calls  # nothing cached yet

    key = engine.cache_key(spec, atomic.file_sha256(onnx_file), "10.13.0.35", GPU, CC)
    expected = engine.engine_path(tmp_path / "cache", key)
    assert build.engine_path == expected and expected.is_file()
    assert build.key == key and not build.from_cache and build.build_s is not None
    plan = json.loads(expected.read_bytes()[len(b"FAKE-ENGINE") :])
    assert plan["optimization_level"] == 4 and plan["verbosity"] == "DETAILED"
    assert build.engine.plan == plan  # the engine handed back is the one written
    timing = engine.timing_cache_path(tmp_path / "cache", "10.13.0.35", GPU, CC)
    assert timing.read_bytes() == b"|tuned"
    info = build.info()
    assert info["engine_bytes"] == expected.stat().st_size
    assert info["device_memory_bytes"] == 123_456 and info["tensorrt"] == "10.13.0.35"


def test_second_build_with_same_key_deserializes_instead(onnx_file: Path, tmp_path: Path) -> None:
    first = _build(_spec(onnx_file), tmp_path, make_fake_tensorrt())
    trt = make_fake_tensorrt()
    second = _build(_spec(onnx_file), tmp_path, trt)
    assert second.from_cache and second.build_s is None
    assert "build_serialized_network" not in _names(trt) and "parse" not in _names(trt)
    assert _names(trt).count("deserialize_cuda_engine") == 1
    assert second.key == first.key and second.engine.plan == first.engine.plan


def test_other_precision_builds_a_new_engine_and_reuses_the_timing_cache(
    onnx_file: Path, tmp_path: Path
) -> None:
    _build(_spec(onnx_file, "fp16"), tmp_path, make_fake_tensorrt())
    trt = make_fake_tensorrt()
    build = _build(_spec(onnx_file, "fp32"), tmp_path, trt)
    assert not build.from_cache
    assert ("create_timing_cache", b"|tuned") in trt.calls  # loaded what the first build saved
    assert len(list((tmp_path / "tensorrt" / "engines").glob("*.engine"))) == 2


def test_damaged_cached_engine_is_rebuilt(onnx_file: Path, tmp_path: Path) -> None:
    first = _build(_spec(onnx_file), tmp_path, make_fake_tensorrt())
    first.engine_path.write_bytes(b"garbage")
    trt = make_fake_tensorrt()
    again = _build(_spec(onnx_file), tmp_path, trt)
    assert not again.from_cache and "build_serialized_network" in _names(trt)
    assert any("does not match the content hash" in w for w in again.warnings)
    assert again.engine_path.read_bytes().startswith(b"FAKE-ENGINE")


def test_an_engine_that_deserializes_but_differs_from_what_was_written_is_rebuilt(onnx_file: Path,
                                                                                    tmp_path: Path) -> None:
    """A flipped byte TensorRT would load anyway: the content hash, not deserialization, catches it."""
    first = _build(_spec(onnx_file), tmp_path, make_fake_tensorrt())
    data = bytearray(first.engine_path.read_bytes())
    data[-1] ^= 0x01
    first.engine_path.write_bytes(bytes(data))
    trt = make_fake_tensorrt()
    again = _build(_spec(onnx_file), tmp_path, trt)
    assert not again.from_cache and "build_serialized_network" in _names(trt)
    assert any("does not match the content hash" in w for w in again.warnings)


def test_an_engine_whose_deserialization_fails_is_rebuilt(onnx_file: Path, tmp_path: Path) -> None:
    first = _build(_spec(onnx_file), tmp_path, make_fake_tensorrt())
    from pytest_trt import cachefile

    first.engine_path.write_bytes(b"garbage")
    cachefile.record(first.engine_path, source=first.engine_path)  # hash matches: TensorRT must refuse it
    again = _build(_spec(onnx_file), tmp_path, make_fake_tensorrt())
    assert not again.from_cache
    assert any("could not be deserialized" in w for w in again.warnings)


def test_fp32_clears_tf32_and_tf32_keeps_it(onnx_file: Path, tmp_path: Path) -> None:
    fp32 = _build(_spec(onnx_file, "fp32"), tmp_path, make_fake_tensorrt())
    tf32 = _build(_spec(onnx_file, "tf32"), tmp_path, make_fake_tensorrt())
    assert "TF32" not in fp32.engine.plan["flags"]
    assert "TF32" in tf32.engine.plan["flags"]


# -- the version branch --------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp16", "int8", "bf16", "fp8"])
def test_trt_10_13_builds_strongly_typed_without_precision_flags(
    onnx_file: Path, tmp_path: Path, precision: str
) -> None:
    trt = make_fake_tensorrt(version="10.13.0.35", qdq=precision in ("int8", "fp8"))
    build = _build(_spec(onnx_file, precision), tmp_path, trt, calibration=np.ones((8, *SAMPLE), np.float32))
    assert ("create_network", 1 << 1) in trt.calls  # 1 << STRONGLY_TYPED
    assert not _flags_set(trt) & {"FP16", "INT8", "BF16", "FP8"}
    assert "IInt8EntropyCalibrator2.__init__" not in _names(trt)
    assert build.strongly_typed


def test_strongly_typed_int8_without_qdq_says_so(onnx_file: Path, tmp_path: Path) -> None:
    build = _build(_spec(onnx_file, "int8"), tmp_path, make_fake_tensorrt(qdq=False))
    assert any("has no Q/DQ nodes" in w for w in build.warnings)


def test_trt_10_8_sets_builder_flags(onnx_file: Path, tmp_path: Path) -> None:
    trt = make_fake_tensorrt(version="10.8.0.43")
    build = _build(_spec(onnx_file, "fp16"), tmp_path, trt)
    assert ("create_network", 0) in trt.calls
    assert _flags_set(trt) == {"FP16"}
    assert not build.strongly_typed


def test_trt_10_8_int8_calibrates_from_the_array_and_caches_the_table(
    onnx_file: Path, tmp_path: Path
) -> None:
    calibration = np.random.default_rng(0).standard_normal((20, *SAMPLE)).astype(np.float32)
    trt = make_fake_tensorrt(version="10.8.0.43")
    spec = _spec(onnx_file, "int8", (1, 8, 32))
    _build(spec, tmp_path, trt, calibration=calibration, calibration_device="cpu")

    assert {"INT8", "FP16"} <= _flags_set(trt)
    assert "IInt8EntropyCalibrator2.__init__" in _names(trt)
    assert ("set_calibration_profile",) in trt.calls
    # Calibration batch = opt batch (8): 20 samples give 2 full batches.
    assert ("set_shape", "input", (8, *SAMPLE), (8, *SAMPLE), (8, *SAMPLE)) in trt.calls
    batches = [call for call in trt.calls if call[0] == "get_batch"]
    assert len(batches) == 2 and all(call[1][0] != 0 for call in batches)
    table = engine.calibration_cache_path(tmp_path, atomic.file_sha256(onnx_file), spec, calibration)
    assert table.read_bytes() == b"FAKE-CALIBRATION-TABLE"

    # Another engine from the same model and data reads the table instead of calibrating again.
    trt2 = make_fake_tensorrt(version="10.8.0.43")
    _build(
        _spec(onnx_file, "int8", (1, 8, 32), optimization_level=5),
        tmp_path,
        trt2,
        calibration=calibration,
        calibration_device="cpu",
    )
    assert ("read_calibration_cache", b"FAKE-CALIBRATION-TABLE") in trt2.calls
    assert "get_batch" not in _names(trt2)


def test_trt_10_8_int8_with_qdq_needs_no_calibrator(onnx_file: Path, tmp_path: Path) -> None:
    trt = make_fake_tensorrt(version="10.8.0.43", qdq=True)
    _build(_spec(onnx_file, "int8"), tmp_path, trt)
    assert "INT8" in _flags_set(trt)
    assert "IInt8EntropyCalibrator2.__init__" not in _names(trt)


def test_trt_10_8_int8_without_qdq_or_data_is_a_build_error(onnx_file: Path, tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="needs Q/DQ nodes"):
        _build(_spec(onnx_file, "int8"), tmp_path, make_fake_tensorrt(version="10.8.0.43"))


# -- failures ------------------------------------------------------------------------------------


def test_parser_failure_is_a_build_error_with_every_parser_message(onnx_file: Path, tmp_path: Path) -> None:
    trt = make_fake_tensorrt(parse_errors=["No importer registered for op: FancyOp", "second problem"])
    with pytest.raises(BuildError) as info:
        _build(_spec(onnx_file), tmp_path, trt)
    assert "No importer registered for op: FancyOp" in str(info.value)
    assert "second problem" in str(info.value) and str(onnx_file) in str(info.value)
    assert not list(tmp_path.rglob("*.engine"))


def test_failed_build_is_a_build_error_with_the_logger_messages(onnx_file: Path, tmp_path: Path) -> None:
    trt = make_fake_tensorrt(build_returns_none=True, build_log=["Error Code 4: out of tactics for conv1"])
    with pytest.raises(BuildError, match="Error Code 4: out of tactics for conv1"):
        _build(_spec(onnx_file), tmp_path, trt)
    assert not list(tmp_path.rglob("*.engine"))


def test_missing_onnx_file_is_a_build_error_naming_it(tmp_path: Path) -> None:
    spec = EngineSpec.for_batches(tmp_path / "absent.onnx", "fp16", [1], SAMPLE)
    with pytest.raises(BuildError, match="absent.onnx does not exist"):
        _build(spec, tmp_path, make_fake_tensorrt())


def test_refused_timing_cache_is_noted(onnx_file: Path, tmp_path: Path) -> None:
    build = _build(_spec(onnx_file), tmp_path, make_fake_tensorrt(timing_cache_accepted=False))
    assert any("was refused by TensorRT" in w for w in build.warnings)


def test_fixed_batch_onnx_cannot_serve_several_batches(tmp_path: Path) -> None:
    path = _onnx_model(tmp_path / "fixed.onnx", batch=4)
    trt = make_fake_tensorrt(input_shape=(4, *SAMPLE))
    with pytest.raises(BuildError, match="fixed batch of 4"):
        _build(_spec(path, batches=(1, 8)), tmp_path, trt)


def test_per_sample_shape_must_match_the_spec(onnx_file: Path, tmp_path: Path) -> None:
    trt = make_fake_tensorrt(input_shape=(-1, 3, 16, 16))
    with pytest.raises(BuildError, match="per-sample shape"):
        _build(_spec(onnx_file), tmp_path, trt)


# -- layer precisions ----------------------------------------------------------------------------


def test_int8_case_without_int8_layers_warns(onnx_file: Path, tmp_path: Path) -> None:
    trt = make_fake_tensorrt(qdq=True, layers=[FP32_CONV, FP16_CONV, FP16_CONV])
    build = _build(_spec(onnx_file, "int8"), tmp_path, trt)
    assert build.layer_precisions == {"fp32": 1, "fp16": 2}
    assert "int8 case ran 3 of 3 layers in fp32/fp16 (0 in int8)" in build.info()["warnings"]
    # The inspector saw the opt shape through a context without device memory.
    inspected = [call for call in trt.calls if call[0] == "get_engine_information"]
    assert inspected == [("get_engine_information", "JSON", {"input": (8, *SAMPLE)})]
    assert ("create_execution_context", "USER_MANAGED") in trt.calls


def test_int8_case_with_int8_layers_does_not_warn(onnx_file: Path, tmp_path: Path) -> None:
    trt = make_fake_tensorrt(qdq=True, layers=[INT8_CONV, INT8_CONV, FP32_CONV])
    build = _build(_spec(onnx_file, "int8"), tmp_path, trt)
    assert build.layer_precisions == {"int8": 2, "fp32": 1}
    assert build.warnings == []


def test_layer_precisions_reads_trt10_and_trt11_layouts() -> None:
    info = json.dumps(
        {
            "Layers": [
                INT8_CONV,
                {"Name": "a", "Inputs": [{"DataType": "Half", "Format": "kLINEAR"}], "Outputs": []},
                {
                    "Name": "b",
                    "Inputs": [{"Format/Datatype": "Float"}],
                    "Outputs": [{"Format/Datatype": "Float"}],
                },
                {"Name": "c", "Inputs": [{"Format/Datatype": "N/A due to dynamic shapes"}], "Outputs": []},
                "layer names only",
            ]
        }
    )
    assert layers.layer_precisions(info) == {"int8": 1, "fp16": 1, "fp32": 1, "unknown": 2}
    with pytest.raises(ValueError, match="not JSON"):
        layers.layer_precisions("conv1 + relu1")


def test_low_precision_warning_only_for_quantized_cases() -> None:
    assert layers.low_precision_warning("fp16", {"fp32": 5}) is None
    assert layers.low_precision_warning("int8", {"unknown": 5}) is None  # nothing known: no claim
    assert layers.low_precision_warning("int8", {"int8": 1, "fp16": 9}) == (
        "int8 case ran 9 of 10 layers in fp32/fp16 (1 in int8)"
    )
    assert layers.low_precision_warning("fp8", {"fp8": 4, "fp32": 4}) is None


# -- the runner ----------------------------------------------------------------------------------


def _case(device: str = "cuda:0", precision: str = "fp32", batch: int = 8, variant: str = "eager") -> Case:
    return Case("tiny", "tensorrt", precision, batch, device, variant)


def _runner(
    onnx_file: Path, tmp_path: Path, case: Case, trt: types.ModuleType | None = None
) -> TensorRTRunner:
    return TensorRTRunner(case, onnx_file, cache_dir=tmp_path, batch_sizes=[1, 8], trt=trt)


def test_runner_follows_the_protocol_and_covers_its_own_batch(onnx_file: Path, tmp_path: Path) -> None:
    runner = TensorRTRunner(_case(batch=4), onnx_file, cache_dir=tmp_path, batch_sizes=[8, 1])
    assert isinstance(runner, Runner)
    assert runner.batch_sizes == (1, 4, 8) and runner.stream is None and runner.info == {}


def test_runner_rejects_another_backends_case(onnx_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backend 'onnxruntime'"):
        TensorRTRunner(
            Case("tiny", "onnxruntime", "fp32", 1, "cpu"), onnx_file, cache_dir=tmp_path, batch_sizes=[1]
        )


def test_runner_on_cpu_is_unsupported(onnx_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedCase, match="CUDA devices only"):
        _runner(onnx_file, tmp_path, _case(device="cpu"), make_fake_tensorrt()).prepare()


def test_runner_rejects_variants_it_does_not_have(onnx_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedCase, match="channels-last"):
        _runner(onnx_file, tmp_path, _case(variant="channels-last"), make_fake_tensorrt()).prepare()


def test_runner_without_tensorrt_is_unsupported_with_the_reason(onnx_file: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedCase, match="TensorRT is not installed"):
        _runner(onnx_file, tmp_path, _case(), types.ModuleType("tensorrt")).prepare()


def test_runner_on_a_host_without_cuda_is_unsupported(onnx_file: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this host has a CUDA GPU")
    with pytest.raises(UnsupportedCase, match="needs a CUDA GPU"):
        _runner(onnx_file, tmp_path, _case(), make_fake_tensorrt()).prepare()


def test_runner_checks_inputs_before_prepare(onnx_file: Path, tmp_path: Path) -> None:
    runner = _runner(onnx_file, tmp_path, _case(), make_fake_tensorrt())
    with pytest.raises(RuntimeError, match="before prepare"):
        runner.load_inputs(np.zeros((1, *SAMPLE), np.float32))


def test_torch_dtype_of_tensorrt_types() -> None:
    torch = pytest.importorskip("torch")
    trt = make_fake_tensorrt()
    assert torch_dtype(trt.DataType.FLOAT) is torch.float32
    assert torch_dtype(trt.DataType.HALF) is torch.float16
    assert torch_dtype(trt.DataType.BF16) is torch.bfloat16
    with pytest.raises(BuildError, match="no torch equivalent"):
        torch_dtype(types.SimpleNamespace(name="INT4"))


def test_onnx_input_reads_name_and_sample_shape(onnx_file: Path, tmp_path: Path) -> None:
    assert onnx_input(onnx_file) == ("input", SAMPLE)
    with pytest.raises(BuildError, match="does not exist"):
        onnx_input(tmp_path / "absent.onnx")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3, "H", "W"])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph), str(tmp_path / "dynamic_hw.onnx"))
    with pytest.raises(BuildError, match="fixed sizes after the batch axis"):
        onnx_input(tmp_path / "dynamic_hw.onnx")


# -- on a GPU with real TensorRT (the lead's backend contract suite covers the rest) ---------------


def _needs_gpu_and_tensorrt() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    if probe.available() is None:
        pytest.skip(probe.unavailable_reason())


@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["eager", "cuda-graph"])
def test_real_tensorrt_runs_relu_at_every_batch(onnx_file: Path, tmp_path: Path, variant: str) -> None:
    _needs_gpu_and_tensorrt()
    runner = TensorRTRunner(_case(variant=variant), onnx_file, cache_dir=tmp_path, batch_sizes=[1, 8])
    runner.prepare()
    try:
        assert runner.info["engine_bytes"] > 0 and runner.stream is not None
        for batch in (1, 8):
            host = np.random.default_rng(batch).standard_normal((batch, *SAMPLE)).astype(np.float32)
            inputs = runner.load_inputs(host)
            for _ in range(3):  # repeated runs replay the same bindings / graph
                out = runner.to_host(runner.run(inputs))
            np.testing.assert_allclose(out, np.maximum(host, 0), rtol=0, atol=1e-6)
    finally:
        runner.close()
    again = TensorRTRunner(_case(variant=variant), onnx_file, cache_dir=tmp_path, batch_sizes=[1, 8])
    again.prepare()
    assert again.info["engine_from_cache"] is True
    again.close()


def test_a_changed_calibration_table_or_timing_cache_is_not_used(onnx_file: Path, tmp_path: Path) -> None:
    """Scales from a damaged table would be used silently: the table is calibrated again instead."""
    from pytest_trt import cachefile

    calibration = np.random.default_rng(0).standard_normal((20, *SAMPLE)).astype(np.float32)
    spec = _spec(onnx_file, "int8", (1, 8, 32))
    _build(spec, tmp_path, make_fake_tensorrt(version="10.8.0.43"), calibration=calibration,
           calibration_device="cpu")
    table = engine.calibration_cache_path(tmp_path, atomic.file_sha256(onnx_file), spec, calibration)
    timing = engine.timing_cache_path(tmp_path, "10.8.0.43", GPU, CC)
    table.write_bytes(b"FAKE-CALIBRATION-TABLF")
    timing.write_bytes(b"|tunee")
    trt = make_fake_tensorrt(version="10.8.0.43")
    with pytest.warns(cachefile.CacheWarning) as caught:
        _build(_spec(onnx_file, "int8", (1, 8, 32), optimization_level=5), tmp_path, trt,
               calibration=calibration, calibration_device="cpu")
    assert {Path(str(w.message).split()[2]).name for w in caught} == {table.name, timing.name}
    assert "get_batch" in _names(trt)  # calibrated again
    assert ("create_timing_cache", b"|tunee") not in trt.calls
    assert table.read_bytes() == b"FAKE-CALIBRATION-TABLE" and cachefile.problem(table) is None
