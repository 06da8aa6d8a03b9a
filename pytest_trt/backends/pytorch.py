"""The PyTorch backends: eager (``torch``) and ``torch-compile``, on CPU and CUDA.

fp16/bf16 run natively (module and inputs cast); fp32 on CUDA runs with TF32 off, tf32 with it on,
so the two are different cases. Variants: channels-last memory format and CUDA-graph replay.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from pytest_trt.backends.base import Artifacts, Backend, Runner, installed
from pytest_trt.case import Case
from pytest_trt.model import ModelSpec

if TYPE_CHECKING:
    import torch

_DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def first_tensor(output: Any) -> torch.Tensor:
    """Models may return a tensor, a tuple or a dict (torchvision segmenters): take the main one."""
    if isinstance(output, dict):
        output = output.get("out", next(iter(output.values())))
    if isinstance(output, (tuple, list)):
        output = output[0]
    tensor: torch.Tensor = output
    return tensor


class TorchRunner:
    def __init__(self, case: Case, spec: ModelSpec, *, module: torch.nn.Module | None = None) -> None:
        self.case = case
        self.spec = spec
        self.stream: Any = None
        self.info: dict[str, Any] = {}
        self._module = module
        self._model: Any = None
        self._graph: Any = None
        self._static_in: Any = None
        self._static_out: Any = None

    @property
    def _channels_last(self) -> bool:
        return "channels-last" in self.case.variant

    def prepare(self) -> None:
        import torch

        device = torch.device(self.case.device)
        dtype = getattr(torch, _DTYPES[self.case.precision])
        module: Any = self._module if self._module is not None else self.spec.build()
        module = module.eval().to(device=device, dtype=dtype)
        if self._channels_last:
            module = module.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            from pytest_trt.mathmode import set_tf32

            set_tf32(self.case.precision == "tf32")
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest kernels, as deployments do
            self.stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
        self._model = module
        if self.case.backend == "torch-compile":
            self._compile()
        self.info.update(torch=str(torch.__version__), dtype=str(dtype), channels_last=self._channels_last)

    def _compile(self) -> None:
        """Compile and trigger compilation once, outside any timed loop.

        Dynamo keeps compiled code per Python function, shared by every case of a model class in the
        process: without a reset, the second batch size of a model would recompile with a dynamic
        batch dimension (automatic dynamic shapes), later ones would reuse that generic code, and
        past the recompile limit dynamo falls back to eager. A deployment compiles one fixed shape,
        so each case starts from an empty cache and compiles static shapes. (A compiled runner kept
        alive past the next one's prepare would recompile on its next call; the fixtures hold one.)
        """
        import torch

        torch._dynamo.reset()
        self._model = torch.compile(self._model, dynamic=False)
        self.info.update(compile_mode="default", compile_dynamic=False)
        start = time.perf_counter()
        warm = self.load_inputs(self.spec.example_inputs(self.case.batch_size))
        self._sync_run(warm)
        self.info["compile_s"] = time.perf_counter() - start

    def _sync_run(self, inputs: Any) -> None:
        import torch

        with torch.inference_mode():
            if self.stream is None:
                self._model(inputs)
                return
            with torch.cuda.stream(self.stream):
                self._model(inputs)
            self.stream.synchronize()

    def load_inputs(self, host: np.ndarray) -> Any:
        import torch

        dtype = getattr(torch, _DTYPES[self.case.precision])
        tensor = torch.from_numpy(np.require(host, requirements=["C", "W"])).to(self.case.device, dtype)
        if self._channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        if "cuda-graph" not in self.case.variant:
            return tensor
        if self._graph is None:
            self._capture(tensor)
        else:
            self._static_in.copy_(tensor)
        return self._static_in

    def _capture(self, example: torch.Tensor) -> None:
        """Capture one forward into a CUDA graph; run() then replays it (static input buffer)."""
        import torch

        self._static_in = example.clone()
        for _ in range(3):  # warm up on the side stream, as CUDA-graph capture requires
            self._sync_run(self._static_in)
        graph = torch.cuda.CUDAGraph()
        with torch.inference_mode(), torch.cuda.graph(graph, stream=self.stream):
            self._static_out = self._model(self._static_in)
        self._graph = graph

    def run(self, inputs: Any) -> Any:
        import torch

        if self._graph is not None:
            self._graph.replay()
            return self._static_out
        with torch.inference_mode():
            return self._model(inputs)

    def to_host(self, outputs: Any) -> np.ndarray:
        if self.stream is not None:
            self.stream.synchronize()
        tensor = first_tensor(outputs)
        return np.asarray(tensor.detach().float().cpu().numpy(), dtype=np.float32)

    def close(self) -> None:
        self._graph = self._static_in = self._static_out = self._model = None
        if self.case.is_cuda:
            import torch

            torch.cuda.empty_cache()


def _missing(device: str) -> str | None:
    return None if installed("torch") else "torch is not installed (pip install 'pytest-trt[torch]')"


def _versions() -> Mapping[str, str | None]:
    from pytest_trt.versions import package_version

    return {"torch": package_version("torch")}


def _create(case: Case, spec: ModelSpec, artifacts: Artifacts) -> Runner:
    return TorchRunner(case, spec, module=artifacts.module(spec))


_CPU_PRECISIONS = ("fp32", "bf16")
# tf32 is an fp32 math mode of CUDA matrix units.
_CUDA_PRECISIONS = ("fp32", "tf32", "fp16", "bf16")

TORCH = Backend(
    name="torch",
    precisions={"cpu": _CPU_PRECISIONS, "cuda": _CUDA_PRECISIONS},
    variants={"cpu": ("eager", "channels-last"),
              "cuda": ("eager", "channels-last", "cuda-graph", "channels-last+cuda-graph")},
    create_runner=_create, missing=_missing, versions=_versions,
)
# Opt-in: each case compiles its own static shape, for minutes on large models.
TORCH_COMPILE = Backend(
    name="torch-compile",
    precisions={"cpu": _CPU_PRECISIONS, "cuda": _CUDA_PRECISIONS},
    variants={"cpu": ("eager", "channels-last"), "cuda": ("eager", "channels-last")},
    create_runner=_create, missing=_missing, versions=_versions, default=False,
)
