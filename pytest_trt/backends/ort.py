"""The ONNX Runtime backend: CPU EP, or CUDA EP with IOBinding so inputs and outputs stay on the GPU.

On CUDA the session computes on our non-default stream (``user_compute_stream``) and is told not to
synchronize after each run, so CUDA events bracket exactly its GPU work and host enqueue time is a
separate number. A session that silently fell back to the CPU is an error, not a slow case.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from pytest_trt.backends.base import Artifacts, Backend, BuildError, Runner, installed, onnx_for
from pytest_trt.case import Case
from pytest_trt.model import ModelSpec

_ORT_TO_NUMPY = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64}


class OnnxRuntimeRunner:
    def __init__(self, case: Case, onnx_path: Path, *, cache_dir: Path) -> None:
        self.case = case
        self.onnx_path = onnx_path
        self.cache_dir = cache_dir
        self.stream: Any = None
        self.info: dict[str, Any] = {}
        self._session: Any = None
        self._binding: Any = None
        self._run_options: Any = None
        self._outputs: Any = None
        self._output_shapes: dict[tuple[int, ...], tuple[int, ...]] = {}

    def _providers(self) -> list[Any]:
        if not self.case.is_cuda:
            return ["CPUExecutionProvider"]
        import torch

        self.stream = torch.cuda.Stream(self.case.device)  # type: ignore[no-untyped-call]
        index = self.case.device_index
        cuda = ("CUDAExecutionProvider", {
            "device_id": index,
            "user_compute_stream": str(self.stream.cuda_stream),
            "use_tf32": int(self.case.precision == "tf32"),  # ORT enables TF32 by default: fp32 means fp32
        })
        if self.case.variant == "trt-ep":
            from pytest_trt.backends import ort_trt_ep
            from pytest_trt.export import INPUT_NAME

            trt = ort_trt_ep.provider_options(self.case, self.cache_dir, input_name=INPUT_NAME)
            return [p for p in trt if p[0] == "TensorrtExecutionProvider"] + [cuda, "CPUExecutionProvider"]
        return [cuda, "CPUExecutionProvider"]

    def _options(self) -> Any:
        import onnxruntime as ort

        from pytest_trt.precision import ort_optimization_level

        options = ort.SessionOptions()
        level = ort_optimization_level(self.case.precision)  # float8 QDQ miscomputes above BASIC
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        options.log_severity_level = 3
        return options

    def prepare(self) -> None:
        import onnxruntime as ort

        options = self._options()
        start = time.perf_counter()
        try:
            self._session = ort.InferenceSession(str(self.onnx_path), options, providers=self._providers())
        except Exception as exc:
            raise BuildError(f"onnxruntime could not load {self.onnx_path.name}: {exc}") from exc
        self.info.update(
            onnxruntime=ort.__version__, providers=self._session.get_providers(),
            session_s=time.perf_counter() - start,
        )
        wanted = self._providers_wanted()
        if wanted not in self._session.get_providers():
            raise BuildError(f"onnxruntime fell back to {self._session.get_providers()}; {wanted} did not load")
        self._run_options = ort.RunOptions()
        if self.case.is_cuda:
            self._run_options.add_run_config_entry("disable_synchronize_execution_providers", "1")

    def _providers_wanted(self) -> str:
        if not self.case.is_cuda:
            return "CPUExecutionProvider"
        return "TensorrtExecutionProvider" if self.case.variant == "trt-ep" else "CUDAExecutionProvider"

    @property
    def _input(self) -> Any:
        return self._session.get_inputs()[0]

    def load_inputs(self, host: np.ndarray) -> Any:
        dtype = _ORT_TO_NUMPY.get(self._input.type, np.float32)
        array = np.ascontiguousarray(host, dtype=dtype)
        if not self.case.is_cuda:
            return {self._input.name: array}
        return self._bind(array)

    def _bind(self, array: np.ndarray) -> Any:
        """Device-resident input and preallocated output, bound once (ORT IOBinding)."""
        import torch

        device = torch.device(self.case.device)
        tensor = torch.from_numpy(np.require(array, requirements=["W"])).to(device)
        output = self._session.get_outputs()[0]
        out_dtype = _ORT_TO_NUMPY.get(output.type, np.float32)
        shape = self._output_shape(array)
        out = torch.empty(shape, dtype=getattr(torch, np.dtype(out_dtype).name), device=device)
        binding = self._session.io_binding()
        binding.bind_input(self._input.name, "cuda", self.case.device_index, array.dtype, list(array.shape),
                           tensor.data_ptr())
        binding.bind_output(output.name, "cuda", self.case.device_index, out_dtype, list(shape), out.data_ptr())
        self._binding, self._outputs = binding, (tensor, out)  # keep tensors alive while bound
        return binding

    def _output_shape(self, array: np.ndarray) -> tuple[int, ...]:
        """One run per input shape to learn the output shape (dynamic axes are symbolic)."""
        if array.shape not in self._output_shapes:
            result = self._session.run(None, {self._input.name: array})[0]
            self._output_shapes[array.shape] = tuple(result.shape)
        return self._output_shapes[array.shape]

    def run(self, inputs: Any) -> Any:
        if not self.case.is_cuda:
            return self._session.run(None, inputs, self._run_options)
        self._session.run_with_iobinding(inputs, self._run_options)
        return self._outputs[1]

    def to_host(self, outputs: Any) -> np.ndarray:
        if self.case.is_cuda:
            self.stream.synchronize()
            return np.asarray(outputs.float().cpu().numpy(), dtype=np.float32)
        return np.asarray(outputs[0], dtype=np.float32)

    def profile(self, host: np.ndarray, runs: int = 3) -> dict[str, Any]:
        """Node placement and host time per operator from a separate, profiled session (ort_profile).

        The timed session is never profiled; this one sees the same model, options and providers.
        """
        import onnxruntime as ort

        from pytest_trt.backends import ort_profile

        options = self._options()
        options.enable_profiling = True
        folder = self.cache_dir / "ort-profiles"
        folder.mkdir(parents=True, exist_ok=True)
        options.profile_file_prefix = str(folder / self.case.id)
        session = ort.InferenceSession(str(self.onnx_path), options, providers=self._providers())
        feed = {self._input.name: np.ascontiguousarray(host, dtype=_ORT_TO_NUMPY.get(self._input.type, np.float32))}
        for _ in range(runs):
            session.run(None, feed)
        trace = session.end_profiling()
        summary = ort_profile.summarize(ort_profile.read_trace(trace))
        summary["trace"] = str(trace)
        return summary

    def close(self) -> None:
        """Release in dependency order: pending GPU work, the binding, its buffers, the session."""
        if self.stream is not None:
            self.stream.synchronize()
        if self._binding is not None:
            self._binding.clear_binding_inputs()
            self._binding.clear_binding_outputs()
        self._binding = None
        self._outputs = None
        self._session = None


@cache
def providers() -> tuple[str, ...]:
    """The execution providers of the installed ONNX Runtime (empty without onnxruntime and onnx)."""
    if not (installed("onnxruntime") and installed("onnx")):
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


def _missing(device: str) -> str | None:
    if not providers():
        return "onnxruntime/onnx are not installed (pip install 'pytest-trt[onnxruntime]')"
    if device != "cpu" and "CUDAExecutionProvider" not in providers():
        return "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)"
    return None


def _variant_missing(variant: str, device: str) -> str | None:
    if variant == "trt-ep" and "TensorrtExecutionProvider" not in providers():
        return "onnxruntime has no TensorrtExecutionProvider here"
    return None


def _versions() -> Mapping[str, str | None]:
    from pytest_trt.environment import loaded_version, package_version

    return {
        "onnxruntime": loaded_version("onnxruntime") or package_version("onnxruntime-gpu", "onnxruntime"),
        "onnx": package_version("onnx"),
    }


def _create(case: Case, spec: ModelSpec, artifacts: Artifacts) -> Runner:
    onnx_path, info = onnx_for(case, spec, artifacts)
    runner = OnnxRuntimeRunner(case, onnx_path, cache_dir=artifacts.cache_dir)
    runner.info.update(info)
    return runner


ONNXRUNTIME = Backend(
    name="onnxruntime",
    precisions={"cpu": ("fp32", "int8", "fp8"), "cuda": ("fp32", "tf32", "fp16", "int8")},
    # trt-ep: ONNX Runtime's TensorRT EP, on CUDA and only where this ONNX Runtime has it.
    variants={"cpu": ("eager",), "cuda": ("eager", "trt-ep")},
    create_runner=_create, missing=_missing, versions=_versions, variant_missing=_variant_missing,
)
