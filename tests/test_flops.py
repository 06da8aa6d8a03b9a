"""FLOP counts from ONNX graphs against hand counts (real torch.onnx.export where a model is needed)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from pytest_trt.flops import achieved_tflops, count_flops, flops_by_op

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")  # the dynamo exporter


def _export(module: Any, example: Any, path: Path, dynamic_batch: bool) -> Path:
    shapes = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(), (example,), str(path), dynamo=True, dynamic_shapes=shapes, verbose=False
        )
    return path


def _conv_linear() -> Any:
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 16 * 16, 10),
    )


# Hand count for one 3×16×16 sample (MAC = 2 FLOPs, bias = 1 add per output element):
CONV_OUT = 8 * 16 * 16
CONV = 2 * CONV_OUT * (3 * 3 * 3) + CONV_OUT
LINEAR = 2 * 10 * (8 * 16 * 16) + 10
RELU = CONV_OUT


@pytest.fixture(scope="module")
def conv_linear_dynamic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("flops") / "conv_linear.onnx"
    return _export(_conv_linear(), torch.randn(2, 3, 16, 16), path, dynamic_batch=True)


def test_conv_linear_matches_hand_count(conv_linear_dynamic: Path) -> None:
    assert count_flops(conv_linear_dynamic, 1) == CONV + LINEAR
    assert count_flops(conv_linear_dynamic, 4) == 4 * (CONV + LINEAR)
    assert flops_by_op(conv_linear_dynamic, 1) == {"Conv": CONV, "Gemm": LINEAR}


def test_minor_ops_are_opt_in(conv_linear_dynamic: Path) -> None:
    assert count_flops(conv_linear_dynamic, 3, include_minor=True) == 3 * (CONV + LINEAR + RELU)


def test_model_proto_is_accepted_and_left_unchanged(conv_linear_dynamic: Path) -> None:
    model = onnx.load(str(conv_linear_dynamic))
    before = model.SerializeToString()
    assert count_flops(model, 2) == 2 * (CONV + LINEAR)
    assert model.SerializeToString() == before


def test_fixed_batch_graph_is_scaled(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = _export(_conv_linear(), torch.randn(2, 3, 16, 16), tmp_path / "fixed.onnx", dynamic_batch=False)
    assert count_flops(path, 2) == 2 * (CONV + LINEAR)
    assert count_flops(path, 6) == 6 * (CONV + LINEAR)


def _res_block() -> Any:
    """A ResNet-style basic block, then a depthwise conv and a 2× transposed-conv upsample."""

    class ResBlock(torch.nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
            self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
            self.depthwise = torch.nn.Conv2d(16, 16, 3, padding=1, groups=16)
            self.up = torch.nn.ConvTranspose2d(16, 8, 2, stride=2)

        def forward(self, x: Any) -> Any:
            y = torch.relu(self.conv1(x))
            y = torch.relu(self.conv2(y) + x)
            return self.up(self.depthwise(y))

    return ResBlock()


def test_resnet_block_with_depthwise_and_transpose(tmp_path: Path) -> None:
    torch.manual_seed(0)
    path = _export(_res_block(), torch.randn(2, 16, 8, 8), tmp_path / "block.onnx", dynamic_batch=True)
    hw = 8 * 8
    conv3x3 = 2 * (16 * hw) * (16 * 9)  # no bias
    depthwise = 2 * (16 * hw) * (1 * 9) + 16 * hw  # one input channel per group, with bias
    up = 2 * (16 * hw) * (8 * 2 * 2) + 8 * 16 * 16  # each input element feeds 8×2×2 outputs
    assert flops_by_op(path, 1) == {"Conv": 2 * conv3x3 + depthwise, "ConvTranspose": up}
    minor = 16 * hw * 3  # relu, add, relu
    assert count_flops(path, 5, include_minor=True) == 5 * (2 * conv3x3 + depthwise + up + minor)


def _graph_model(nodes: list[Any], inputs: list[Any], outputs: list[Any], inits: tuple[Any, ...] = ()) -> Any:
    graph = onnx.helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])


def _value(name: str, shape: list[Any] | None) -> Any:
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def test_gemm_transposes_and_batched_matmul() -> None:
    import numpy as np

    weight = onnx.numpy_helper.from_array(np.ones((32, 64), np.float32), "W")  # (N, K), transB=1
    bias = onnx.numpy_helper.from_array(np.ones((32,), np.float32), "C")
    other = onnx.numpy_helper.from_array(np.ones((4, 32, 7), np.float32), "B2")
    model = _graph_model(
        [
            onnx.helper.make_node("Gemm", ["x", "W", "C"], ["g"], transB=1),
            onnx.helper.make_node("Unsqueeze", ["g", "axes"], ["g3"]),
            onnx.helper.make_node("MatMul", ["g3", "B2"], ["y"]),  # (n,1,1,32) @ (4,32,7) broadcast
        ],
        [_value("x", ["n", 64])],
        [_value("y", None)],
        (weight, bias, other, onnx.numpy_helper.from_array(np.array([1, 2], np.int64), "axes")),
    )
    n = 3
    gemm = 2 * n * 32 * 64 + n * 32
    matmul = 2 * (n * 4 * 1 * 7) * 32
    assert flops_by_op(model, n) == {"Gemm": gemm, "MatMul": matmul}


def test_unknown_shape_is_an_error_naming_the_node() -> None:
    model = _graph_model(
        [onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="stem")],
        [_value("x", ["n", 3, 8, 8]), _value("w", [8, 3, "k", "k"])],  # a kernel of unknown size
        [_value("y", None)],
    )
    with pytest.raises(ValueError, match="Conv node 'stem'.*unknown"):
        count_flops(model, 1)


def test_bad_arguments() -> None:
    with pytest.raises(FileNotFoundError, match="no_such.onnx"):
        count_flops("no_such.onnx", 1)
    with pytest.raises(ValueError, match="batch_size"):
        count_flops(_graph_model([], [], []), 0)


def test_achieved_tflops() -> None:
    assert achieved_tflops(3e12, 1.5) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="median_s"):
        achieved_tflops(1e9, 0.0)


# --- measured dense peak (pytest_trt.peak) ----------------------------------------------------


def test_peak_rejects_bad_arguments_on_any_host() -> None:
    from pytest_trt.peak import measure_peak, percent_of_peak

    with pytest.raises(ValueError, match="dtype"):
        measure_peak("cuda", "int4")
    with pytest.raises(ValueError, match="CUDA device"):
        measure_peak("cpu", "fp16")
    assert percent_of_peak(250.0, 500.0) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="peak_tflops"):
        percent_of_peak(1.0, 0.0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has CUDA")
def test_peak_without_cuda_is_a_clear_error() -> None:
    from pytest_trt.peak import measure_peak

    with pytest.raises(RuntimeError, match="no CUDA device"):
        measure_peak("cuda", "fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_peak_on_gpu_is_positive_cached_and_tensor_cores_win() -> None:
    from pytest_trt.peak import measure_peak

    precision = torch.backends.cuda.matmul.fp32_precision
    fp16 = measure_peak("cuda", "fp16", size=4096)
    assert fp16 > 0
    assert measure_peak("cuda:0", "fp16", size=4096) == fp16  # cached per process
    fp32 = measure_peak("cuda", "fp32", size=4096)
    assert fp16 > fp32  # tensor cores beat full-precision fp32 on every CUDA GPU with them
    assert torch.backends.cuda.matmul.fp32_precision == precision  # the caller's setting is restored
