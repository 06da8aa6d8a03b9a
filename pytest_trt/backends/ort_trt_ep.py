"""ONNX Runtime's TensorRT execution provider: the provider list for the "trt-ep" variant.

The ONNX Runtime runner (the lead's) creates its session with ``provider_options(...)`` when a case's
variant is "trt-ep", then calls ``check_session`` so a session that silently fell back to CUDA or CPU
is a skip with the reason, not a mislabelled TensorRT number. Precision comes from the ONNX (the
precision step converts it), plus the EP's switches where TensorRT needs them: the EP builds weakly
typed networks, so fp16 needs ``trt_fp16_enable`` and Q/DQ int8 needs ``trt_int8_enable``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_trt.backends.base import UnsupportedCase
from pytest_trt.case import Case

TRT_EP = "TensorrtExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
CPU_EP = "CPUExecutionProvider"
DEFAULT_WORKSPACE_BYTES = 4 << 30
DEFAULT_OPTIMIZATION_LEVEL = 3

ProviderList = list[tuple[str, dict[str, Any]]]


def available() -> bool:
    """Whether this ONNX Runtime build has the TensorRT EP.

    ONNX Runtime lists the EP whenever it was built with it, even if TensorRT's libraries are
    missing at run time; ``check_session`` confirms it on a real session.
    """
    try:
        import onnxruntime
    except ImportError:
        return False
    return TRT_EP in onnxruntime.get_available_providers()


def device_id(case: Case) -> int:
    """``cuda`` -> 0, ``cuda:N`` -> N; a CPU case cannot use the TensorRT EP."""
    if not case.is_cuda:
        raise UnsupportedCase(
            f"ONNX Runtime's TensorRT EP needs a CUDA device; this case's device is {case.device!r}"
        )
    return case.device_index


def engine_cache_dir(cache_dir: Path, case: Case, namespace: str = "") -> Path:
    """Where the EP keeps engines (and INT8 calibration tables) for this case's precision.

    ``namespace`` should name what invalidates the EP's engines that its own file names do not
    (ONNX Runtime and TensorRT versions, GPU): the EP does not rebuild them on its own.
    """
    parts = [p for p in ("ort-trt-ep", namespace, case.precision) if p]
    return Path(cache_dir).joinpath(*[re.sub(r"[^A-Za-z0-9._-]+", "-", p) for p in parts])


def profile_shapes(
    input_name: str, sample_shape: Sequence[int], batch_sizes: Sequence[int]
) -> dict[str, str]:
    """``trt_profile_{min,opt,max}_shapes`` for one input: ``name:1x3x224x224`` (opt = median batch)."""
    if not input_name or re.search(r"[:,]", input_name):
        raise ValueError(f"input name {input_name!r} cannot be written in a TensorRT EP shape string")
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1 or not sample_shape or min(sample_shape) < 1:
        raise ValueError(
            f"profile needs positive batch sizes and sample shape, got {batch_sizes}, {sample_shape}"
        )
    dims = "x".join(str(int(d)) for d in sample_shape)
    chosen = {"min": sizes[0], "opt": sizes[len(sizes) // 2], "max": sizes[-1]}
    return {f"trt_profile_{k}_shapes": f"{input_name}:{b}x{dims}" for k, b in chosen.items()}


def _precision_options(
    case: Case, engines: Path, calibration_table: Path | None, qdq: bool
) -> dict[str, Any]:
    precision = case.precision
    if precision in ("fp32", "tf32"):
        return {}
    if precision == "fp16":
        return {"trt_fp16_enable": True}
    if precision == "bf16":
        return {"trt_bf16_enable": True}
    if precision == "fp8":
        raise UnsupportedCase("fp8 on ONNX Runtime's TensorRT EP: the EP has no FP8 switch")
    # int8: Q/DQ ONNX carries its scales; otherwise TensorRT's own calibration table is needed.
    options: dict[str, Any] = {"trt_int8_enable": True, "trt_fp16_enable": True}
    if calibration_table is not None:
        if Path(calibration_table).parent != engines:
            raise ValueError(
                f"calibration table {calibration_table} must be in the EP's engine cache dir {engines}"
            )
        options["trt_int8_calibration_table_name"] = Path(calibration_table).name
        options["trt_int8_use_native_calibration_table"] = True
    elif not qdq:
        raise UnsupportedCase("int8 on ONNX Runtime's TensorRT EP needs a Q/DQ ONNX or a calibration table")
    return options


def provider_options(
    case: Case,
    cache_dir: Path,
    *,
    input_name: str | None = None,
    sample_shape: Sequence[int] | None = None,
    batch_sizes: Sequence[int] | None = None,
    calibration_table: Path | None = None,
    qdq: bool = True,
    workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
    optimization_level: int = DEFAULT_OPTIMIZATION_LEVEL,
    namespace: str = "",
) -> ProviderList:
    """The ``providers`` argument of ``onnxruntime.InferenceSession`` for a "trt-ep" case.

    TensorRT EP first, then CUDA and CPU for whatever TensorRT does not take. Engines and timing
    caches persist under ``cache_dir``. Without ``input_name``/``sample_shape``/``batch_sizes`` no
    profile is given and the EP rebuilds its engine when it meets a new shape. ``qdq`` says whether
    the int8 ONNX carries Q/DQ nodes (the precision step's output does).
    """
    device = device_id(case)
    engines = engine_cache_dir(cache_dir, case, namespace)
    trt: dict[str, Any] = {
        "device_id": device,
        "trt_max_workspace_size": int(workspace_bytes),
        "trt_builder_optimization_level": int(optimization_level),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engines),
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": str(engines.parent / "timing"),
        **_precision_options(case, engines, calibration_table, qdq),
    }
    if input_name is not None and sample_shape is not None and batch_sizes is not None:
        trt.update(profile_shapes(input_name, sample_shape, batch_sizes))
    return [(TRT_EP, trt), (CUDA_EP, {"device_id": device}), (CPU_EP, {})]


def check_session(session: Any) -> None:
    """UnsupportedCase unless the session really runs with the TensorRT EP."""
    providers = list(session.get_providers())
    if TRT_EP not in providers:
        raise UnsupportedCase(
            f"ONNX Runtime did not enable {TRT_EP} (session providers: {', '.join(providers)}); "
            "onnxruntime-gpu with TensorRT libraries is needed"
        )
