"""Which precision each layer of a built engine runs in, from TensorRT's engine inspector."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tensorrt

# An int8 case whose engine runs fewer than this share of its layers in int8 gets a warning.
INT8_FEW_FRACTION = 0.25
QUANTIZED = ("int8", "fp8")  # precisions whose engines are checked for low-precision layers

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
