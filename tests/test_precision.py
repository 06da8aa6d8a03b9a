"""Precision as an ONNX → ONNX step: real torch export, real ONNX Runtime sessions."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt import precision
from pytest_trt.accuracy import agreement
from pytest_trt.backends.base import UnsupportedCase
from pytest_trt.precision import UnsupportedPrecision, convert

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


def _export(path: Path, dynamic: bool, batch: int = 2) -> Path:
    from pytest_trt.zoo import small

    model = small.build(small.DIGITS_CNN)  # a real, trained small conv net
    example = torch.zeros((batch, *small.digits.INPUT_SHAPE))
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(path), input_names=["input"], output_names=["logits"],
                          dynamo=False, dynamic_axes=axes)
    return path


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _export(tmp_path_factory.mktemp("export") / "digits.onnx", dynamic=True)


@pytest.fixture(scope="module")
def data() -> Any:
    from pytest_trt.data import digits

    return digits.load()


@pytest.fixture(scope="module")
def calib(data: Any) -> np.ndarray:
    return np.array(data.calib_x[:96])


def _run(path: Path, x: np.ndarray, level: str = "ORT_ENABLE_ALL") -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out: np.ndarray = session.run(None, {session.get_inputs()[0].name: x})[0]
    return out


def _ops(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


@pytest.mark.parametrize("name", ["fp32", "tf32"])
def test_fp32_and_tf32_return_the_input_file(fp32_onnx: Path, tmp_path: Path, name: str) -> None:
    assert convert(fp32_onnx, name, cache_dir=tmp_path) == fp32_onnx
    assert not any(tmp_path.iterdir())


def test_fp16_is_close_to_fp32_and_keeps_fp32_io(fp32_onnx: Path, tmp_path: Path, data: Any) -> None:
    path = convert(fp32_onnx, "fp16", cache_dir=tmp_path)
    assert path != fp32_onnx and path.parent == tmp_path
    model = onnx.load(str(path))
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer)
    x = np.array(data.test_x[:16])
    result = agreement(_run(path, x), _run(fp32_onnx, x), "fp16")
    assert result.passed, result.reason
    assert 0 < result.rel_err < 1e-2  # it really computed in fp16, and closely


def test_fp16_without_fp32_io_takes_fp16_inputs(fp32_onnx: Path, tmp_path: Path, data: Any) -> None:
    path = convert(fp32_onnx, "fp16", cache_dir=tmp_path, keep_io_fp32=False)
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    x = np.array(data.test_x[:4])
    out = _run(path, x.astype(np.float16))
    assert out.dtype == np.float16
    assert agreement(out.astype(np.float32), _run(fp32_onnx, x), "fp16").passed


def _zero_points(path: Path) -> list[np.ndarray]:
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    return [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear" and len(n.input) > 2]


def test_int8_is_symmetric_per_channel_qdq_and_agrees(fp32_onnx: Path, tmp_path: Path, calib: np.ndarray,
                                                     data: Any) -> None:
    from onnx import numpy_helper

    # 7-bit weights where this host's int8 kernels saturate (x86 without VNNI), as the plugin does
    path = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib,
                   reduce_range=precision.int8_saturates_here())
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(path)
    zero_points = _zero_points(path)
    assert zero_points and all(zp.dtype == np.int8 and not zp.any() for zp in zero_points)  # symmetric
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    weight_scales = [inits[n.input[1]] for n in model.graph.node
                     if n.op_type == "DequantizeLinear" and inits.get(n.input[0], np.zeros(0)).ndim == 4]
    assert weight_scales and all(s.size > 1 for s in weight_scales)  # one scale per output channel
    x = np.array(data.test_x[:64])
    int8_out, ref = _run(path, x), _run(fp32_onnx, x)
    result = agreement(int8_out, ref, "int8")
    assert result.passed, result.reason
    assert result.rel_err > 1e-4  # really quantized, not a copy of fp32
    assert np.mean(int8_out.argmax(1) == data.test_y[:64]) >= 0.95


def test_calibration_methods_get_their_own_cache_entries(fp32_onnx: Path, tmp_path: Path,
                                                        calib: np.ndarray) -> None:
    minmax = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[:32])
    percentile = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[:32], method="percentile")
    assert minmax != percentile and "percentile" in percentile.name and "minmax" in minmax.name
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(percentile)


def test_fp8_is_float8_qdq_and_agrees_at_basic_optimization(fp32_onnx: Path, tmp_path: Path,
                                                           calib: np.ndarray, data: Any) -> None:
    path = convert(fp32_onnx, "fp8", cache_dir=tmp_path, calibration=calib)
    assert "distribution" in path.name
    zero_points = _zero_points(path)
    assert zero_points and all(str(zp.dtype) == "float8_e4m3fn" for zp in zero_points)
    x = np.array(data.test_x[:64])
    level = precision.ort_optimization_level("fp8")
    result = agreement(_run(path, x, level), _run(fp32_onnx, x), "fp8")
    assert result.passed, result.reason
    with pytest.raises(UnsupportedPrecision, match="distribution"):
        convert(fp32_onnx, "fp8", cache_dir=tmp_path, calibration=calib, method="entropy")


def test_second_call_is_a_cache_hit(fp32_onnx: Path, tmp_path: Path, calib: np.ndarray,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime.quantization as quantization

    calls: list[str] = []
    real = quantization.quantize_static

    def spy(*args: Any, **kwargs: Any) -> None:
        calls.append(str(args[1]))
        real(*args, **kwargs)

    monkeypatch.setattr(quantization, "quantize_static", spy)
    first = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[:32])
    mtime = first.stat().st_mtime_ns
    second = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[:32])
    # a hit: no second quantization and the file untouched (how fast a hit is is not a test's question)
    assert second == first and len(calls) == 1 and first.stat().st_mtime_ns == mtime
    # Other calibration data is another key: quantized again, into another file.
    third = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[32:64])
    assert third != first and len(calls) == 2


def test_cache_key_covers_model_precision_method_data_and_options(fp32_onnx: Path, tmp_path: Path,
                                                                 calib: np.ndarray) -> None:
    base = precision.cache_key(fp32_onnx, "int8", "minmax", calib, True)
    other_model = tmp_path / "other.onnx"
    other_model.write_bytes(fp32_onnx.read_bytes() + b" ")
    assert precision.cache_key(other_model, "int8", "minmax", calib, True) != base
    assert precision.cache_key(fp32_onnx, "fp8", "minmax", calib, True) != base
    assert precision.cache_key(fp32_onnx, "int8", "entropy", calib, True) != base
    assert precision.cache_key(fp32_onnx, "int8", "minmax", calib[:-1], True) != base
    assert precision.cache_key(fp32_onnx, "int8", "minmax", calib, False) != base
    assert precision.cache_key(fp32_onnx, "int8", "minmax", calib.copy(), True) == base


def test_a_crash_mid_conversion_leaves_no_file_in_the_cache(fp32_onnx: Path, tmp_path: Path,
                                                            calib: np.ndarray,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime.quantization as quantization

    def crash(model_input: str, model_output: str, *args: Any, **kwargs: Any) -> None:
        Path(model_output).write_bytes(b"half a model")
        raise RuntimeError("killed mid-write")

    monkeypatch.setattr(quantization, "quantize_static", crash)
    with pytest.raises(RuntimeError, match="killed"):
        convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[:32])
    assert not list(tmp_path.rglob("*.onnx"))
    monkeypatch.undo()
    path = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[:32])
    assert "QuantizeLinear" in _ops(path)


def test_fixed_batch_model_is_calibrated_in_its_own_batch(tmp_path: Path, calib: np.ndarray) -> None:
    fixed = _export(tmp_path / "fixed.onnx", dynamic=False, batch=8)
    path = convert(fixed, "int8", cache_dir=tmp_path, calibration=calib[:20])  # two batches of 8
    assert "QuantizeLinear" in _ops(path)
    with pytest.raises(ValueError, match="fixed batch of 8 but only 4 calibration samples"):
        convert(fixed, "int8", cache_dir=tmp_path, calibration=calib[:4])


def test_bad_arguments_are_clear_errors(fp32_onnx: Path, tmp_path: Path, calib: np.ndarray) -> None:
    valid = "unknown precision 'int4'; valid precisions: fp32, tf32, fp16, bf16, int8, fp8"
    with pytest.raises(ValueError, match=valid):
        convert(fp32_onnx, "int4", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="valid methods: minmax, entropy, percentile"):
        convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib, method="kl")
    with pytest.raises(ValueError, match="int8 needs calibration data"):
        convert(fp32_onnx, "int8", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="NaN"):
        convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=np.full((2, 1, 32, 32), np.nan))
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        convert(tmp_path / "missing.onnx", "fp16", cache_dir=tmp_path)


def test_bf16_is_unsupported_with_a_reason(fp32_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedPrecision, match="bf16") as info:
        convert(fp32_onnx, "bf16", cache_dir=tmp_path)
    assert isinstance(info.value, UnsupportedCase)  # the plugin turns it into a skip with the reason


def test_int8_saturation_is_read_from_the_cpu_flags() -> None:
    avx2_only = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert precision.int8_saturates_here(avx2_only)
    assert not precision.int8_saturates_here("flags\t\t: sse2 avx2 avx512f avx512_vnni\n")
    assert not precision.int8_saturates_here("flags\t\t: sse2 avx2 avx_vnni\n")
    assert not precision.int8_saturates_here("Features\t: fp asimd asimddp\n")  # Arm: no x86 flags line
    assert not precision.reduced_range_for("cuda:0", "int8")  # GPU cases keep 8-bit weights
    assert not precision.reduced_range_for("cpu", "fp8")


def test_reduced_range_int8_is_its_own_cache_entry_and_agrees(fp32_onnx: Path, tmp_path: Path,
                                                             calib: np.ndarray, data: Any) -> None:
    full = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[:32])
    reduced = convert(fp32_onnx, "int8", cache_dir=tmp_path, calibration=calib[:32], reduce_range=True)
    assert full != reduced and reduced.name.endswith(".onnx") and "-r7" in reduced.name
    x = np.array(data.test_x[:64])
    assert agreement(_run(reduced, x), _run(fp32_onnx, x), "int8").passed
