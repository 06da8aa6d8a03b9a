"""Precision as an ONNX → ONNX step, shared by ONNX Runtime and TensorRT.

TensorRT 10.12+ deprecates its FP16/INT8 builder flags and implicit-INT8 calibrators, so the
precision lives in the ONNX file instead: fp16 weights and compute, or INT8/FP8 Quantize/
DequantizeLinear (QDQ) nodes whose scales come from calibration on real data. ONNX Runtime runs
these files as they are; TensorRT builds them as strongly typed networks.

Results are cached by everything that decides them (input model bytes, precision, calibration
method and data, ONNX Runtime version, options) and written atomically, so concurrent pytest-xdist
workers and crashes never leave a half-written model in the cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt import atomic, cachefile
from pytest_trt.backends.base import UnsupportedCase
from pytest_trt.case import PRECISIONS

PASSTHROUGH = ("fp32", "tf32")  # tf32 is a math mode of the runtime, not a property of the file
CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
CALIBRATION_BATCH = 32  # samples per calibration run when the model's batch axis is dynamic
RECIPE_VERSION = "1"  # bump when the conversion recipe changes, to invalidate cached files


class UnsupportedPrecision(UnsupportedCase):
    """No sound ONNX → ONNX path for this precision here; the case is skipped with the reason."""


def _check(precision: str, method: str, calibration: np.ndarray | None) -> str:
    """Validate the arguments; return the calibration method that will really be used."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; valid precisions: {', '.join(PRECISIONS)}")
    if precision == "bf16":
        raise UnsupportedPrecision(
            "bf16: ONNX Runtime's CPU provider has no bf16 Conv/MatMul/Gemm kernels and its float16 "
            "converter writes fp16 only, so a bf16 ONNX file could be neither produced soundly nor "
            "checked against fp32 here"
        )
    if precision not in ("int8", "fp8"):
        return ""
    if method not in CALIBRATION_METHODS:
        raise ValueError(
            f"unknown calibration method {method!r}; valid methods: {', '.join(CALIBRATION_METHODS)}"
        )
    if precision == "fp8":
        if method != "minmax":
            raise UnsupportedPrecision(
                f"fp8 with calibration method {method!r}: onnxruntime computes float8 scales only with "
                "its 'distribution' calibrator (used for fp8 in place of the default minmax)"
            )
        method = "distribution"
    if calibration is None:
        raise ValueError(f"{precision} needs calibration data (the data set's calibration split); got None")
    if calibration.ndim < 2 or len(calibration) == 0:
        raise ValueError(
            f"calibration data must be a batch of samples (N, ...) with N >= 1; got shape {calibration.shape}"
        )
    if not np.all(np.isfinite(calibration)):
        raise ValueError("calibration data holds NaN/Inf values")
    return method


def _sha256_array(array: np.ndarray) -> str:
    digest = hashlib.sha256(f"{array.dtype.str}{array.shape}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def int8_saturates_here(cpuinfo: str | None = None) -> bool:
    """Whether ONNX Runtime's int8 CPU kernels saturate on this host: x86 without VNNI.

    Without VNNI the fused int8 convolutions multiply-add pairs of int8 products into int16 (the
    AVX2 path), which overflows with full 8-bit weights. Measured on an AVX2-only AMD EPYC with
    onnxruntime 1.32: digits-cnn int8 top-1 0.83 against fp32's 0.99, and 0.99 with 7-bit weights
    (ONNX Runtime's ``reduce_range``, documented for non-VNNI machines). Other architectures and
    VNNI hosts keep full 8-bit weights.
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            break
    x86 = "avx2" in flags or "sse2" in flags
    return x86 and not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def reduced_range_for(device: str, precision: str) -> bool:
    """7-bit int8 weights only where the case's own int8 kernels would saturate (CPU cases)."""
    return precision == "int8" and device == "cpu" and int8_saturates_here()


def cache_key(
    onnx_path: Path, precision: str, method: str, calibration: np.ndarray | None, keep_io_fp32: bool,
    reduce_range: bool = False,
) -> str:
    """Hex digest of everything that decides the converted file."""
    import onnxruntime

    parts = [
        RECIPE_VERSION,
        atomic.file_sha256(onnx_path),
        precision,
        method,
        _sha256_array(calibration) if calibration is not None and method else "-",
        onnxruntime.__version__,
        f"keep_io_fp32={keep_io_fp32}",
        *(["reduce_range"] if reduce_range else []),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def convert(
    onnx_path: Path,
    precision: str,
    *,
    cache_dir: Path,
    calibration: np.ndarray | None = None,
    method: str = "minmax",
    keep_io_fp32: bool = True,
    reduce_range: bool = False,
) -> Path:
    """Return an ONNX file that computes in ``precision``, converting and caching it if needed.

    fp32/tf32: ``onnx_path`` itself. fp16: fp16 weights and compute (inputs and outputs stay fp32
    when ``keep_io_fp32``). int8: static QDQ quantization, per-channel symmetric weights and
    symmetric activations (what TensorRT expects), calibrated on ``calibration`` with ``method``.
    fp8: float8 E4M3FN QDQ, calibrated with onnxruntime's distribution calibrator.
    bf16: raises ``UnsupportedPrecision``. ``reduce_range``: int8 weights in 7 bits, for CPUs whose int8
    kernels saturate with 8 (``reduced_range_for``).
    """
    onnx_path = Path(onnx_path)
    effective = _check(precision, method, calibration)
    if precision in PASSTHROUGH:
        return onnx_path
    if not onnx_path.is_file():
        raise FileNotFoundError(f"ONNX model {onnx_path} does not exist")
    reduce_range = reduce_range and precision == "int8"
    key = cache_key(onnx_path, precision, effective, calibration, keep_io_fp32, reduce_range)
    suffix = f"-{effective}" if effective else ""
    suffix += "-r7" if reduce_range else ""
    target = Path(cache_dir) / f"{cachefile.safe_name(onnx_path.stem)}-{precision}{suffix}-{key[:16]}.onnx"
    if cachefile.verified(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if cachefile.verified(target):  # another process finished it while we waited
            return target
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
            scratch = Path(tmp) / "model.onnx"
            if precision == "fp16":
                _to_fp16(onnx_path, scratch, keep_io_fp32)
            else:
                assert calibration is not None  # checked in _check
                _quantize(onnx_path, scratch, precision, effective, calibration, Path(tmp), reduce_range)
            cachefile.record(target, source=scratch)
            os.replace(scratch, target)  # atomic on one file system: readers see all or nothing
    with suppress(OSError):
        Path(str(target) + ".lock").unlink()
    return target


def _to_fp16(source: Path, dest: Path, keep_io_fp32: bool) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(source)), keep_io_types=keep_io_fp32)
    onnx.save(model, str(dest))


def _input_spec(model_path: Path) -> tuple[str, int | None]:
    """Name of the single graph input and its fixed batch size (None when dynamic)."""
    import onnx

    graph = onnx.load(str(model_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise ValueError(
            f"{model_path}: calibration supports models with one input; found {[i.name for i in inputs]}"
        )
    dims = inputs[0].type.tensor_type.shape.dim
    batch = dims[0].dim_value if dims and dims[0].HasField("dim_value") else None
    return inputs[0].name, batch or None


def _reader(name: str, data: np.ndarray, batch: int) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class ArrayReader(CalibrationDataReader):  # type: ignore[misc]
        """Feeds the calibration array in equal batches: a fixed batch axis rejects any other
        size, and the histogram calibrators (entropy, percentile) stack batches, so a trailing
        partial batch is left out."""

        def __init__(self) -> None:
            self._next = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            start = self._next
            if start + batch > len(data):
                return None
            self._next = start + batch
            return {name: np.ascontiguousarray(data[start : start + batch], dtype=np.float32)}

        def rewind(self) -> None:
            self._next = 0

    return ArrayReader()


def _preprocess(source: Path, dest: Path) -> Path:
    """Shape inference and graph clean-up (Conv+BN folding...) so more nodes get quantized."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    try:
        quant_pre_process(str(source), str(dest))
    except Exception as exc:  # noqa: BLE001 - optional step; quantizing the raw model still works
        warnings.warn(f"quant_pre_process failed on {source} ({exc}); quantizing it unprocessed",
                      stacklevel=3)
        return source
    return dest


def _quantize(
    source: Path, dest: Path, precision: str, method: str, calibration: np.ndarray, tmp: Path,
    reduce_range: bool = False,
) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    name, fixed_batch = _input_spec(source)
    batch = fixed_batch or min(CALIBRATION_BATCH, len(calibration))
    if fixed_batch and len(calibration) < fixed_batch:
        raise ValueError(
            f"{source} has a fixed batch of {fixed_batch} but only {len(calibration)} calibration samples"
        )
    qtype = QuantType.QInt8 if precision == "int8" else QuantType.QFLOAT8E4M3FN
    methods = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
        "distribution": CalibrationMethod.Distribution,
    }
    quantize_static(
        str(_preprocess(source, tmp / "preprocessed.onnx")),
        str(dest),
        _reader(name, calibration, batch),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=qtype,
        weight_type=qtype,
        calibrate_method=methods[method],
        reduce_range=reduce_range,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )


def ort_optimization_level(precision: str) -> str:
    """The ONNX Runtime graph optimization level a converted file must run at on the CPU provider.

    Measured with onnxruntime 1.32 (CPU): a float8 QDQ model of digits-cnn scores top-1 0.987 at
    ``ORT_DISABLE_ALL``/``ORT_ENABLE_BASIC`` but 0.136 at ``ORT_ENABLE_EXTENDED``/``ORT_ENABLE_ALL``:
    an extended-level QDQ fusion miscomputes float8. The other precisions run at full level.
    Returns the ``onnxruntime.GraphOptimizationLevel`` member name.
    """
    return "ORT_ENABLE_BASIC" if precision == "fp8" else "ORT_ENABLE_ALL"
