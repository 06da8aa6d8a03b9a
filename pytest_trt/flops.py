"""Floating-point operations per inference, counted from an ONNX graph.

What is counted (one multiply-accumulate = 2 FLOPs):

* dense ops — Conv (any ``group``, so depthwise too), ConvTranspose, Gemm, MatMul (batched,
  broadcast) and their integer twins ConvInteger / MatMulInteger: 2 × MACs, plus one add per output
  element for a bias (Conv/ConvTranspose ``B``, Gemm ``C``);
* with ``include_minor=True`` also: elementwise ops 1 per output element, pooling the kernel size per
  output element, global pooling / reductions 1 per input element, BatchNormalization 2 per element
  (scale and shift), Layer/Instance/Group normalization 5 per element, Softmax 3 per element.

Data movement (Reshape, Concat, Resize, Transpose, ...) counts 0, and so do ops inside control-flow
subgraphs (If, Loop, Scan). The default (dense only) is the number to compare with a dense matmul
peak (``pytest_trt.peak``): the minor ops are bound by memory bandwidth, not arithmetic.

Shapes come from ``onnx.shape_inference`` with the graph inputs' batch dimension set to
``batch_size``; a counted node whose shapes remain unknown is an error, never a silent zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx

Shape = list[int]
Shapes = dict[str, Shape | None]

ELEMENTWISE = frozenset(
    "Add Sub Mul Div Pow Sqrt Exp Log Neg Abs Reciprocal Max Min Sum Mean Relu LeakyRelu PRelu Elu Selu "
    "Celu Sigmoid HardSigmoid HardSwish Tanh Softplus Softsign Mish Gelu Erf Clip ThresholdedRelu".split()
)
POOLS = frozenset({"MaxPool", "AveragePool", "LpPool"})
REDUCTIONS = frozenset(
    "GlobalAveragePool GlobalMaxPool GlobalLpPool ReduceMean ReduceSum ReduceMax ReduceMin ReduceL2".split()
)
NORM_COST = {"BatchNormalization": 2, "LayerNormalization": 5, "InstanceNormalization": 5,
             "GroupNormalization": 5, "Softmax": 3, "LogSoftmax": 3}  # fmt: skip


def count_flops(
    onnx_path_or_model: str | Path | onnx.ModelProto, batch_size: int, *, include_minor: bool = False
) -> int:
    """FLOPs of one inference of a batch of ``batch_size`` (see the module doc for what counts)."""
    return sum(flops_by_op(onnx_path_or_model, batch_size, include_minor=include_minor).values())


def flops_by_op(
    onnx_path_or_model: str | Path | onnx.ModelProto, batch_size: int, *, include_minor: bool = False
) -> dict[str, int]:
    """FLOPs per op type, e.g. ``{"Conv": ..., "Gemm": ...}`` (op types that count only)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    model = _load(onnx_path_or_model)
    fixed_batch = _set_batch(model, batch_size)
    shapes = _infer_shapes(model)
    totals: dict[str, int] = {}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        flops = _node_flops(node, shapes, include_minor)
        if flops:
            totals[node.op_type] = totals.get(node.op_type, 0) + flops
    if fixed_batch is not None and fixed_batch != batch_size:
        # The graph's batch is baked in: count it there and scale (the counted ops are per-sample).
        totals = {op: flops * batch_size // fixed_batch for op, flops in totals.items()}
    return totals


def achieved_tflops(flops: int | float, median_s: float) -> float:
    """TFLOP/s achieved when ``flops`` (one batch's count) took ``median_s`` seconds."""
    if median_s <= 0 or not math.isfinite(median_s):
        raise ValueError(f"median_s must be a positive number of seconds, got {median_s!r}")
    return float(flops) / median_s / 1e12


# --------------------------------------------------------------------------------------------


def _load(source: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    import onnx

    if isinstance(source, onnx.ModelProto):
        copy = onnx.ModelProto()
        copy.CopyFrom(source)
        return copy
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=False)  # shapes need no weight values
    except Exception as exc:
        raise ValueError(f"{path} is not a readable ONNX model: {exc}") from exc


def _set_batch(model: onnx.ModelProto, batch_size: int) -> int | None:
    """Give the graph inputs' symbolic batch dimension the value ``batch_size``.

    Returns the batch the graph has baked in (the first fixed leading dim), or None if symbolic.
    """
    initializers = {init.name for init in model.graph.initializer}
    fixed: list[int] = []
    for graph_input in model.graph.input:
        if graph_input.name in initializers or not graph_input.type.HasField("tensor_type"):
            continue
        dims = graph_input.type.tensor_type.shape.dim
        if not dims:
            continue
        if dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            fixed.append(dims[0].dim_value)
        else:
            dims[0].Clear()
            dims[0].dim_value = batch_size
    return fixed[0] if fixed else None


def _infer_shapes(model: onnx.ModelProto) -> Shapes:
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        raise ValueError(f"ONNX shape inference failed on model {model.graph.name!r}: {exc}") from exc
    shapes: Shapes = {init.name: list(init.dims) for init in inferred.graph.initializer}
    graph = inferred.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.name in shapes and shapes[value.name] is not None:
            continue
        shapes[value.name] = _shape(value)
    for node in graph.node:  # Constant nodes carry their shape in the attribute
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    shapes[node.output[0]] = list(attr.t.dims)
    return shapes


def _shape(value: Any) -> Shape | None:
    tensor = value.type.tensor_type
    if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return None if any(d < 0 for d in dims) else dims


def _attr(node: onnx.NodeProto, name: str, default: Any) -> Any:
    import onnx

    for attr in node.attribute:
        if attr.name == name:
            return onnx.helper.get_attribute_value(attr)
    return default


def _need(node: onnx.NodeProto, shapes: Shapes, name: str) -> Shape:
    shape = shapes.get(name)
    if shape is None:
        raise ValueError(
            f"cannot count FLOPs of {node.op_type} node {node.name or '(unnamed)'!r}: the shape of "
            f"tensor {name!r} is unknown after ONNX shape inference (give the model static shapes "
            "apart from the batch dimension)"
        )
    return shape


def _has_input(node: onnx.NodeProto, index: int) -> bool:
    return len(node.input) > index and node.input[index] != ""


def _conv(node: onnx.NodeProto, shapes: Shapes) -> int:
    # Each output element sums (C/group) × kernel products; W is (M, C/group, k1, k2, ...).
    out = math.prod(_need(node, shapes, node.output[0]))
    per_output = math.prod(_need(node, shapes, node.input[1])[1:])
    return 2 * out * per_output + (out if _has_input(node, 2) else 0)


def _conv_transpose(node: onnx.NodeProto, shapes: Shapes) -> int:
    # Each input element scatters into (M/group) × kernel outputs; W is (C, M/group, k1, ...).
    inputs = math.prod(_need(node, shapes, node.input[0]))
    per_input = math.prod(_need(node, shapes, node.input[1])[1:])
    bias = math.prod(_need(node, shapes, node.output[0])) if _has_input(node, 2) else 0
    return 2 * inputs * per_input + bias


def _gemm(node: onnx.NodeProto, shapes: Shapes) -> int:
    a = _need(node, shapes, node.input[0])
    b = _need(node, shapes, node.input[1])
    m, k = (a[1], a[0]) if _attr(node, "transA", 0) else (a[0], a[1])
    n = b[0] if _attr(node, "transB", 0) else b[1]
    return 2 * m * n * k + (m * n if _has_input(node, 2) else 0)


def _matmul(node: onnx.NodeProto, shapes: Shapes) -> int:
    # Every output element (batch dims broadcast) is a K-long dot product.
    k = _need(node, shapes, node.input[0])[-1]
    return 2 * math.prod(_need(node, shapes, node.output[0])) * k


DENSE: dict[str, Callable[[onnx.NodeProto, Shapes], int]] = {
    "Conv": _conv,
    "ConvInteger": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
}


def _minor(node: onnx.NodeProto, shapes: Shapes) -> int:
    op = node.op_type
    if op in ELEMENTWISE:
        return math.prod(_need(node, shapes, node.output[0]))
    if op in POOLS:
        return math.prod(_need(node, shapes, node.output[0])) * int(
            math.prod(_attr(node, "kernel_shape", [1]))
        )
    if op in REDUCTIONS:
        return math.prod(_need(node, shapes, node.input[0]))
    if op in NORM_COST:
        return NORM_COST[op] * math.prod(_need(node, shapes, node.output[0]))
    return 0


def _node_flops(node: onnx.NodeProto, shapes: Shapes, include_minor: bool) -> int:
    dense = DENSE.get(node.op_type)
    if dense is not None:
        return dense(node, shapes)
    return _minor(node, shapes) if include_minor else 0
