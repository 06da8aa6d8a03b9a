"""Runner factory: one module per backend, imported only when its backend is used."""

from __future__ import annotations

from pytest_trt.backends.base import BuildError, Runner, UnsupportedCase
from pytest_trt.case import Case
from pytest_trt.context import Context
from pytest_trt.model import ModelSpec

__all__ = ["BuildError", "Runner", "UnsupportedCase", "create"]

# tf32 is a math mode, not a file format: those cases run the fp32 ONNX file.
_ONNX_PRECISION = {"tf32": "fp32"}


def create(ctx: Context, case: Case, spec: ModelSpec) -> Runner:
    """A runner for ``case``, not yet prepared. Exports/quantizes ONNX through the session caches."""
    if case.backend in ("torch", "torch-compile"):
        from pytest_trt.backends.pytorch import TorchRunner

        return TorchRunner(case, spec, module=ctx.module(spec))
    if case.precision in ("int8", "fp8") and spec.dataset is None:
        raise UnsupportedCase(
            f"{case.precision} needs calibration on real data and model {spec.name!r} has no dataset"
        )
    onnx_path, info = ctx.onnx(spec, _ONNX_PRECISION.get(case.precision, case.precision))
    runner: Runner
    if case.backend == "onnxruntime":
        from pytest_trt.backends.ort import OnnxRuntimeRunner

        runner = OnnxRuntimeRunner(case, onnx_path, cache_dir=ctx.cache_dir)
    elif case.backend == "tensorrt":
        from pytest_trt.backends.trt.runner import TensorRTRunner

        calibration = spec.dataset().calib_x if spec.dataset is not None else None
        runner = TensorRTRunner(case, onnx_path, cache_dir=ctx.cache_dir,
                                batch_sizes=ctx.settings.batch_sizes, calibration=calibration)
    else:
        raise UnsupportedCase(f"unknown backend {case.backend!r}")
    runner.info.update(info)
    return runner
