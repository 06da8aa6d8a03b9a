"""The TensorRT runner: an engine from the case's ONNX, device buffers as torch tensors.

``run`` binds the input and output addresses, sets the input shape, and enqueues
``execute_async_v3`` on the runner's non-default stream; with the "cuda-graph" variant it replays a
CUDA graph captured from that same call instead. Engines are built or loaded by
pytest_trt.backends.trt.engine. ``trt`` is the seam: tests pass a fake module, production imports
``tensorrt`` lazily.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.backends.base import BuildError, UnsupportedCase
from pytest_trt.backends.trt.build import EngineSpec
from pytest_trt.backends.trt.engine import EngineBuild, load_or_build
from pytest_trt.backends.trt.probe import require
from pytest_trt.case import Case

if TYPE_CHECKING:
    import tensorrt
    import torch

VARIANTS = ("eager", "cuda-graph")
# TensorRT DataType member name -> torch dtype name.
TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
    "FP8": "float8_e4m3fn",
}


def torch_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of a TensorRT ``DataType``."""
    import torch

    name = str(getattr(dtype, "name", dtype))
    if name not in TORCH_DTYPES:
        raise BuildError(f"TensorRT tensor type {name} has no torch equivalent here")
    result: torch.dtype = getattr(torch, TORCH_DTYPES[name])
    return result


def onnx_input(onnx_path: Path) -> tuple[str, tuple[int, ...]]:
    """Name and per-sample shape of the ONNX model's one graph input."""
    import onnx

    if not Path(onnx_path).is_file():
        raise BuildError(f"ONNX file {onnx_path} does not exist")
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise BuildError(f"{onnx_path} has {len(inputs)} graph inputs; pytest-trt runs single-input models")
    dims = inputs[0].type.tensor_type.shape.dim
    sample = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in dims[1:])
    if not sample or min(sample) < 1:
        raise BuildError(
            f"{onnx_path} input {inputs[0].name!r} needs fixed sizes after the batch axis, got {sample}"
        )
    return str(inputs[0].name), sample


class _Graph:
    """A captured CUDA graph and the input tensor whose address it was captured with."""

    def __init__(self, graph: torch.cuda.CUDAGraph, inputs: torch.Tensor, output: torch.Tensor) -> None:
        self.graph = graph
        self.inputs = inputs  # referenced so the memory the graph reads is never freed
        self.output = output


class TensorRTRunner:
    """Runs one case through a TensorRT engine (Runner protocol, pytest_trt/backends/base.py).

    ``batch_sizes`` are all batch sizes the session will run for this model and precision: one
    engine with one optimization profile serves them all, so each is built once.
    """

    def __init__(
        self,
        case: Case,
        onnx_path: Path,
        *,
        cache_dir: Path,
        batch_sizes: Sequence[int],
        calibration: np.ndarray | None = None,
        trt: ModuleType | None = None,
    ) -> None:
        if case.backend != "tensorrt":
            raise ValueError(f"TensorRTRunner got a case for backend {case.backend!r}, expected 'tensorrt'")
        sizes = sorted({int(b) for b in (*batch_sizes, case.batch_size)})
        if sizes[0] < 1:
            raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)!r}")
        self.case = case
        self.onnx_path = Path(onnx_path)
        self.cache_dir = Path(cache_dir)
        self.batch_sizes = tuple(sizes)
        self.calibration = calibration
        self.stream: Any = None
        self.info: dict[str, Any] = {}
        self._trt = trt
        self._build: EngineBuild | None = None
        self._context: Any = None
        self._device: Any = None
        self._input_name = ""
        self._input_dtype: Any = None
        self._sample_shape: tuple[int, ...] = ()
        self._outputs: dict[str, Any] = {}  # output name -> torch dtype
        self._buffers: dict[tuple[int, ...], dict[str, torch.Tensor]] = {}  # input shape -> outputs
        self._bound: tuple[tuple[int, ...], int] | None = None
        self._graphs: dict[tuple[int, ...], _Graph] = {}

    # -- prepare ---------------------------------------------------------------------------------

    def _check_case(self) -> None:
        if not self.case.is_cuda:
            raise UnsupportedCase(
                f"TensorRT runs on CUDA devices only; this case's device is {self.case.device!r}"
            )
        if self.case.variant not in VARIANTS:
            raise UnsupportedCase(
                f"variant {self.case.variant!r} is not a TensorRT runner variant ({', '.join(VARIANTS)})"
            )

    def prepare(self) -> None:
        """Build or load the engine, then make the context, the stream and the I/O bookkeeping."""
        self._check_case()
        trt = require(self._trt)
        import torch

        if not torch.cuda.is_available():
            raise UnsupportedCase("needs a CUDA GPU: torch.cuda.is_available() is False")
        device = torch.device(self.case.device)
        self._device = torch.device(
            "cuda", torch.cuda.current_device() if device.index is None else device.index
        )
        torch.cuda.set_device(self._device)  # TensorRT works on the current device
        name, sample = onnx_input(self.onnx_path)
        spec = EngineSpec.for_batches(
            self.onnx_path, self.case.precision, self.batch_sizes, sample, cuda_graph=self._graph_mode
        )
        major, minor = torch.cuda.get_device_capability(self._device)
        self._build = load_or_build(
            spec,
            self.cache_dir,
            gpu_name=torch.cuda.get_device_name(self._device),
            compute_capability=f"{major}.{minor}",
            calibration=self.calibration,
            calibration_device=str(self._device),
            trt=trt,
        )
        engine: tensorrt.ICudaEngine = self._build.engine
        self._context = engine.create_execution_context()
        self.stream = torch.cuda.Stream(self._device)  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        self._sample_shape = sample
        self._read_io(engine)
        self.info = self._describe(spec, name)

    @property
    def _graph_mode(self) -> bool:
        return self.case.variant == "cuda-graph"

    def _read_io(self, engine: tensorrt.ICudaEngine) -> None:
        trt = require(self._trt)
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            dtype = torch_dtype(engine.get_tensor_dtype(name))
            if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._input_name, self._input_dtype = name, dtype
            else:
                self._outputs[name] = dtype
        if not self._input_name or not self._outputs:
            raise BuildError(f"engine for {self.onnx_path} needs one input and at least one output tensor")

    def _describe(self, spec: EngineSpec, onnx_input_name: str) -> dict[str, Any]:
        assert self._build is not None
        return {
            **self._build.info(),
            "variant": self.case.variant,
            "cuda_graph": self._graph_mode,
            "profile_batches": {"min": spec.min_batch, "opt": spec.opt_batch, "max": spec.max_batch},
            "input": {
                "name": self._input_name,
                "onnx_name": onnx_input_name,
                "dtype": str(self._input_dtype),
            },
            "outputs": {name: str(dtype) for name, dtype in self._outputs.items()},
        }

    def spawn(self, make_stream: Any = None) -> TensorRTRunner:
        """Another stream of this case (``--trt-streams``): a new execution context of the same
        engine, with its own CUDA stream, bindings and output buffers.

        TensorRT runs one engine concurrently through one execution context per stream; a context
        must never be used from two streams at once, so nothing mutable is shared but the engine,
        which is read-only once built. ``make_stream(device)`` makes the stream (tests pass a fake).
        """
        if self._build is None or self._context is None:
            raise RuntimeError("TensorRTRunner.spawn called before prepare() or after close()")
        if make_stream is None:
            import torch

            make_stream = torch.cuda.Stream
        twin = TensorRTRunner(self.case, self.onnx_path, cache_dir=self.cache_dir, batch_sizes=self.batch_sizes,
                              trt=self._trt)
        engine: tensorrt.ICudaEngine = self._build.engine
        twin._build, twin._device = self._build, self._device
        twin._context = engine.create_execution_context()
        twin.stream = make_stream(self._device)
        twin._input_name, twin._input_dtype = self._input_name, self._input_dtype
        twin._sample_shape, twin._outputs = self._sample_shape, dict(self._outputs)
        twin.info = {**self.info, "spawned": "execution context of the same engine"}
        return twin

    # -- run ---------------------------------------------------------------------------------------

    def load_inputs(self, host: np.ndarray) -> torch.Tensor:
        """Copy a host batch to a device tensor of the engine's input type, on the runner's stream."""
        import torch

        if self._context is None:
            raise RuntimeError("TensorRTRunner.load_inputs called before prepare() or after close()")
        expected = self._sample_shape
        if host.ndim != len(expected) + 1 or tuple(host.shape[1:]) != expected:
            raise ValueError(
                f"input batch has shape {host.shape}, expected (batch, {', '.join(map(str, expected))})"
            )
        if not self.batch_sizes[0] <= host.shape[0] <= self.batch_sizes[-1]:
            raise ValueError(
                f"input batch of {host.shape[0]} is outside the engine's profile "
                f"{self.batch_sizes[0]}..{self.batch_sizes[-1]}"
            )
        source = torch.from_numpy(np.require(host, requirements=["C", "W"])).to(self._input_dtype).pin_memory()
        with torch.cuda.stream(self.stream):
            device = torch.empty(source.shape, dtype=self._input_dtype, device=self._device)
            device.copy_(source, non_blocking=True)
        return device

    def _output_buffers(self, shape: tuple[int, ...]) -> dict[str, torch.Tensor]:
        """Output tensors for one input shape, allocated once (the shape must be set already)."""
        import torch

        if shape not in self._buffers:
            context: tensorrt.IExecutionContext = self._context
            buffers = {}
            for name, dtype in self._outputs.items():
                dims = context.get_tensor_shape(name)
                size = tuple(int(dims[i]) for i in range(len(dims)))
                buffers[name] = torch.empty(size, dtype=dtype, device=self._device)
            self._buffers[shape] = buffers
        return self._buffers[shape]

    def _bind(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Set the input shape and every I/O tensor address for ``inputs``."""
        if inputs.dtype != self._input_dtype or not inputs.is_contiguous():
            raise ValueError(
                f"inputs must be a contiguous {self._input_dtype} device tensor (from load_inputs)"
            )
        context: tensorrt.IExecutionContext = self._context
        shape = tuple(int(d) for d in inputs.shape)
        if not context.set_input_shape(self._input_name, shape):
            raise ValueError(f"TensorRT refused input shape {shape} for {self._input_name!r}")
        context.set_tensor_address(self._input_name, int(inputs.data_ptr()))
        outputs = self._output_buffers(shape)
        for name, tensor in outputs.items():
            context.set_tensor_address(name, int(tensor.data_ptr()))
        self._bound = (shape, int(inputs.data_ptr()))
        return outputs

    def _enqueue(self) -> None:
        context: tensorrt.IExecutionContext = self._context
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"TensorRT execute_async_v3 failed for {self.case.id}")

    def run(self, inputs: torch.Tensor) -> torch.Tensor:
        """Enqueue one inference; returns the first output tensor (no sync).

        The output tensor is reused by the next ``run`` of the same batch size: read it with
        ``to_host`` first. Addresses are rebound only when the input tensor changes, so the timed
        call is the enqueue itself.
        """
        if self._context is None:
            raise RuntimeError("TensorRTRunner.run called before prepare() or after close()")
        if self._graph_mode:
            return self._replay(inputs)
        shape = tuple(int(d) for d in inputs.shape)
        if self._bound != (shape, int(inputs.data_ptr())):
            self._bind(inputs)
        self._enqueue()
        return self._buffers[shape][next(iter(self._outputs))]

    def _replay(self, inputs: torch.Tensor) -> torch.Tensor:
        import torch

        shape = tuple(int(d) for d in inputs.shape)
        graph = self._graphs.get(shape)
        if graph is None or graph.inputs.data_ptr() != inputs.data_ptr():
            graph = self._capture(inputs)
            self._graphs[shape] = graph
        with torch.cuda.stream(self.stream):
            graph.graph.replay()
        return graph.output

    def _capture(self, inputs: torch.Tensor) -> _Graph:
        """Capture ``execute_async_v3`` into a CUDA graph after one plain run with the same bindings.

        The plain run first lets TensorRT finish its shape-dependent setup outside the capture, as
        TensorRT's CUDA-graph guidance asks.
        """
        import torch

        outputs = self._bind(inputs)
        self._enqueue()
        self.stream.synchronize()
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph, stream=self.stream):
                self._enqueue()
        except RuntimeError as exc:
            raise UnsupportedCase(f"this engine cannot be captured in a CUDA graph: {exc}") from exc
        return _Graph(graph, inputs, outputs[next(iter(self._outputs))])

    def to_host(self, outputs: torch.Tensor) -> np.ndarray:
        """Wait for the stream, then return the outputs as float32 numpy."""
        import torch

        self.stream.synchronize()
        host: np.ndarray = outputs.detach().to(device="cpu", dtype=torch.float32).numpy()
        return host

    def close(self) -> None:
        """Wait for pending work, then free graphs, buffers, the context and the engine."""
        if self.stream is not None:
            self.stream.synchronize()
        self._graphs.clear()
        self._buffers.clear()
        self._bound = None
        self._context = None
        self._build = None
        self.stream = None
