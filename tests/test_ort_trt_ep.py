"""Provider options for ONNX Runtime's TensorRT EP. The options are checked as data, and handed to a
real ONNX Runtime session (CPU here) to show ONNX Runtime accepts their form and that a fallback
session is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_trt.backends import ort_trt_ep
from pytest_trt.backends.base import UnsupportedCase
from pytest_trt.case import Case


def _case(precision: str = "fp16", device: str = "cuda:1") -> Case:
    return Case("tiny", "onnxruntime", precision, 8, device, "trt-ep")


def _trt(providers: list) -> dict:
    name, options = providers[0]
    assert name == "TensorrtExecutionProvider"
    return options


def test_tensorrt_first_then_cuda_then_cpu_on_the_cases_device(tmp_path: Path) -> None:
    providers = ort_trt_ep.provider_options(_case(device="cuda:1"), tmp_path)
    assert [name for name, _ in providers] == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert providers[0][1]["device_id"] == 1 and providers[1][1] == {"device_id": 1}
    assert ort_trt_ep.device_id(_case(device="cuda")) == 0


def test_caches_persist_under_the_cache_dir(tmp_path: Path) -> None:
    options = _trt(ort_trt_ep.provider_options(_case("fp16"), tmp_path, namespace="H100/ort1.23"))
    assert options["trt_engine_cache_enable"] is True and options["trt_timing_cache_enable"] is True
    engines = Path(options["trt_engine_cache_path"])
    assert engines == tmp_path / "ort-trt-ep" / "H100-ort1.23" / "fp16"
    assert Path(options["trt_timing_cache_path"]) == engines.parent / "timing"
    other = _trt(ort_trt_ep.provider_options(_case("fp32"), tmp_path, namespace="H100/ort1.23"))
    assert other["trt_engine_cache_path"] != options["trt_engine_cache_path"]


def test_workspace_and_optimization_level(tmp_path: Path) -> None:
    options = _trt(
        ort_trt_ep.provider_options(_case(), tmp_path, workspace_bytes=1 << 30, optimization_level=5)
    )
    assert options["trt_max_workspace_size"] == 1 << 30
    assert options["trt_builder_optimization_level"] == 5


@pytest.mark.parametrize(
    ("precision", "on", "off"),
    [
        ("fp32", set(), {"trt_fp16_enable", "trt_int8_enable", "trt_bf16_enable"}),
        ("tf32", set(), {"trt_fp16_enable", "trt_int8_enable"}),
        ("fp16", {"trt_fp16_enable"}, {"trt_int8_enable"}),
        ("bf16", {"trt_bf16_enable"}, {"trt_fp16_enable", "trt_int8_enable"}),
        ("int8", {"trt_int8_enable", "trt_fp16_enable"}, {"trt_int8_calibration_table_name"}),
    ],
)
def test_precision_switches(tmp_path: Path, precision: str, on: set, off: set) -> None:
    options = _trt(ort_trt_ep.provider_options(_case(precision), tmp_path))
    assert all(options[key] is True for key in on)
    assert not off & options.keys()


def test_int8_with_a_calibration_table_from_the_engine_cache(tmp_path: Path) -> None:
    table = ort_trt_ep.engine_cache_dir(tmp_path, _case("int8")) / "calibration.flatbuffers"
    options = _trt(ort_trt_ep.provider_options(_case("int8"), tmp_path, calibration_table=table, qdq=False))
    assert options["trt_int8_calibration_table_name"] == "calibration.flatbuffers"
    assert options["trt_int8_use_native_calibration_table"] is True


def test_int8_table_elsewhere_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="engine cache dir"):
        ort_trt_ep.provider_options(_case("int8"), tmp_path, calibration_table=tmp_path / "t.cache")


def test_int8_without_qdq_or_table_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedCase, match="Q/DQ ONNX or a calibration table"):
        ort_trt_ep.provider_options(_case("int8"), tmp_path, qdq=False)


@pytest.mark.parametrize(
    ("precision", "device", "message"), [("fp8", "cuda", "no FP8"), ("fp16", "cpu", "CUDA")]
)
def test_unsupported_cases_say_why(tmp_path: Path, precision: str, device: str, message: str) -> None:
    with pytest.raises(UnsupportedCase, match=message):
        ort_trt_ep.provider_options(_case(precision, device), tmp_path)


def test_profile_shapes_cover_the_batch_sizes(tmp_path: Path) -> None:
    options = _trt(
        ort_trt_ep.provider_options(
            _case(), tmp_path, input_name="input", sample_shape=(3, 224, 224), batch_sizes=[32, 1, 256]
        )
    )
    assert options["trt_profile_min_shapes"] == "input:1x3x224x224"
    assert options["trt_profile_opt_shapes"] == "input:32x3x224x224"
    assert options["trt_profile_max_shapes"] == "input:256x3x224x224"
    assert "trt_profile_min_shapes" not in _trt(ort_trt_ep.provider_options(_case(), tmp_path))


def test_profile_shapes_refuse_unwritable_names_and_bad_sizes() -> None:
    with pytest.raises(ValueError, match="input name"):
        ort_trt_ep.profile_shapes("a:b", (3,), [1])
    with pytest.raises(ValueError, match="positive"):
        ort_trt_ep.profile_shapes("x", (3,), [0, 2])


def _relu_onnx(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 4])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "relu", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider':UserWarning")
def test_real_onnxruntime_takes_the_options_and_fallback_is_caught(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    providers = ort_trt_ep.provider_options(
        _case(device="cuda:0"), tmp_path, input_name="input", sample_shape=(4,), batch_sizes=[1, 8]
    )
    if ort_trt_ep.available():
        pytest.skip("this host has the TensorRT EP: the fallback path cannot be shown here")
    # ONNX Runtime normalizes every option (it would raise on a malformed list), warns that the GPU
    # providers are missing from this build, and falls back to the CPU.
    with pytest.warns(UserWarning, match="TensorrtExecutionProvider"):
        session = ort.InferenceSession(str(_relu_onnx(tmp_path / "relu.onnx")), providers=providers)
    with pytest.raises(UnsupportedCase, match="did not enable TensorrtExecutionProvider"):
        ort_trt_ep.check_session(session)


def test_available_matches_onnxruntime() -> None:
    ort = pytest.importorskip("onnxruntime")
    assert ort_trt_ep.available() == ("TensorrtExecutionProvider" in ort.get_available_providers())


@pytest.mark.parametrize("changed", ["ort", "trt", "gpu", "cc"])
def test_the_engine_cache_is_keyed_by_versions_and_gpu(tmp_path: Path, changed: str) -> None:
    """The EP's engine file names stay the same across these; only the folder tells them apart."""
    base = {"ort": "1.23.0", "trt": "10.13.0", "gpu": "NVIDIA H200", "cc": "90"}
    other = {**base, changed: base[changed] + "1"}

    def engines(v: dict[str, str]) -> str:
        namespace = ort_trt_ep.cache_namespace(v["ort"], v["trt"], v["gpu"], v["cc"])
        return str(_trt(ort_trt_ep.provider_options(_case("fp16"), tmp_path, namespace=namespace))
                   ["trt_engine_cache_path"])

    assert engines(base) != engines(other)
    assert Path(engines(base)).is_relative_to(tmp_path / "ort-trt-ep")


def test_without_a_known_tensorrt_version_nothing_is_cached(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import metadata

    def missing(name: str) -> str:
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "version", missing)
    assert ort_trt_ep.tensorrt_version() is None and ort_trt_ep.current_namespace(0) is None
    options = _trt(ort_trt_ep.provider_options(_case("fp16"), tmp_path, namespace=None))
    assert options["trt_engine_cache_enable"] is False and "trt_engine_cache_path" not in options
