"""The benchmark matrix: which cases a test gets, and which of them this host cannot run (and why)."""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pytest_trt.case import BACKENDS, PRECISIONS, VARIANTS, Case
from pytest_trt.settings import Settings

ZOO = "zoo"  # marker value: the models chosen with --trt-model
GROUPS = ("small", "vision", "all")
DEFAULT_BACKENDS = ("torch", "onnxruntime", "tensorrt")  # torch-compile compiles for minutes: opt in


@dataclass(frozen=True)
class Planned:
    case: Case
    skip: str | None  # why this host cannot run the case, or None


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@cache
def cuda_available() -> bool:
    if not installed("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


@cache
def ort_providers() -> tuple[str, ...]:
    if not (installed("onnxruntime") and installed("onnx")):
        return ()
    import onnxruntime

    return tuple(onnxruntime.get_available_providers())


@cache
def tensorrt_missing() -> str | None:
    from pytest_trt.backends.trt import probe

    return None if probe.available() else probe.unavailable_reason()


def resolve_device(requested: str) -> str:
    """Turn auto/cuda into a concrete device; raise ValueError when CUDA was asked for but is absent."""
    if requested == "auto":
        return "cuda:0" if cuda_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if not cuda_available():
        why = "torch is not installed" if not installed("torch") else "torch.cuda.is_available() is False"
        raise ValueError(f"--trt-device {requested}: no CUDA device on this host ({why}); use cpu or auto")
    import torch

    index = int(requested.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"--trt-device {requested}: this host has {torch.cuda.device_count()} CUDA device(s)"
        )
    return f"cuda:{index}"


def backend_missing(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on this host, or None."""
    if backend in ("torch", "torch-compile"):
        return None if installed("torch") else "torch is not installed (pip install 'pytest-trt[torch]')"
    if backend == "onnxruntime":
        if not ort_providers():
            return "onnxruntime/onnx are not installed (pip install 'pytest-trt[onnxruntime]')"
        if device != "cpu" and "CUDAExecutionProvider" not in ort_providers():
            return "onnxruntime has no CUDAExecutionProvider here (install onnxruntime-gpu)"
        return None
    if device == "cpu":
        return "TensorRT runs on CUDA devices only"
    return tensorrt_missing()


def default_backends(device: str) -> tuple[str, ...]:
    return tuple(b for b in DEFAULT_BACKENDS if backend_missing(b, device) is None)


# Precisions each backend can run, by device kind. tf32 is an fp32 math mode of CUDA matrix units.
_PRECISIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("torch", "cpu"): ("fp32", "bf16"),
    ("torch", "cuda"): ("fp32", "tf32", "fp16", "bf16"),
    ("torch-compile", "cpu"): ("fp32", "bf16"),
    ("torch-compile", "cuda"): ("fp32", "tf32", "fp16", "bf16"),
    ("onnxruntime", "cpu"): ("fp32", "int8", "fp8"),
    ("onnxruntime", "cuda"): ("fp32", "tf32", "fp16", "int8"),
    ("tensorrt", "cuda"): PRECISIONS,
}
_VARIANTS: dict[str, tuple[str, ...]] = {
    "torch": ("eager", "channels-last", "cuda-graph", "channels-last+cuda-graph"),
    "torch-compile": ("eager", "channels-last"),
    "onnxruntime": ("eager", "trt-ep"),
    "tensorrt": ("eager", "cuda-graph"),
}


def unsupported(case: Case) -> str | None:
    """Why this combination makes no sense or cannot run; None when it can."""
    kind = "cuda" if case.is_cuda else "cpu"
    if case.backend == "tensorrt" and not case.is_cuda:
        return "TensorRT runs on CUDA devices only"
    precisions = _PRECISIONS.get((case.backend, kind), ())
    if case.precision not in precisions:
        return (f"{case.precision} is not supported by {case.backend} on {kind} "
                f"(supported: {', '.join(precisions) or 'none'})")
    if case.variant not in _VARIANTS[case.backend]:
        return f"variant {case.variant} does not apply to {case.backend}"
    if "cuda-graph" in case.variant and not case.is_cuda:
        return "CUDA graphs need a CUDA device"
    if case.variant == "trt-ep" and "TensorrtExecutionProvider" not in ort_providers():
        return "onnxruntime has no TensorrtExecutionProvider here"
    return backend_missing(case.backend, case.device)


def expand_models(selection: tuple[str, ...]) -> tuple[str, ...]:
    from pytest_trt import zoo

    names: list[str] = []
    for item in selection:
        if item in GROUPS:
            for name in zoo.names():
                group = (zoo.get(name).extra or {}).get("group", "small")
                if item in ("all", group):
                    names.append(name)
        else:
            zoo.get(item)  # raises KeyError naming the known models
            names.append(item)
    return tuple(dict.fromkeys(names))


def plan(settings: Settings, device: str, marker: Mapping[str, Any]) -> list[Planned]:
    """The cases of one test: options, overridden per test by ``@pytest.mark.trt(...)``."""
    models: tuple[str | None, ...] = (None,)
    wanted_models = marker.get("models")
    if wanted_models == ZOO:
        models = expand_models(settings.models)
    elif wanted_models:
        models = expand_models(tuple(_as_tuple(wanted_models)))
    backends = _as_tuple(marker.get("backends") or settings.backends or default_backends(device))
    # fp32 always runs: it is the base of every speed-up and accuracy drop in the table
    precisions = tuple(dict.fromkeys(("fp32", *_as_tuple(marker.get("precisions") or settings.precisions))))
    batch_sizes = tuple(int(b) for b in _as_tuple(marker.get("batch_sizes") or settings.batch_sizes))
    variants = _as_tuple(marker.get("variants") or settings.variants)
    _check_marker_values(backends, precisions, variants, batch_sizes)
    planned = []
    for model, backend, precision, batch, variant in itertools.product(
        models, backends, precisions, batch_sizes, variants
    ):
        case = Case(model, backend, precision, batch, device, variant)
        planned.append(Planned(case, model_missing(model) or unsupported(case)))
    return planned


def model_missing(model: str | None) -> str | None:
    """Why a zoo model cannot be built here (e.g. torchvision absent), or None."""
    if model is None:
        return None
    from pytest_trt import zoo

    missing = [m for m in (zoo.get(model).extra or {}).get("requires", []) if not installed(m)]
    return f"model {model} needs {', '.join(missing)}, which is not installed" if missing else None


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def _check_marker_values(
    backends: tuple[str, ...], precisions: tuple[str, ...], variants: tuple[str, ...],
    batch_sizes: tuple[int, ...],
) -> None:
    for name, values, valid in (("backends", backends, BACKENDS), ("precisions", precisions, PRECISIONS),
                                ("variants", variants, VARIANTS)):
        bad = [v for v in values if v not in valid]
        if bad:
            raise ValueError(f"@pytest.mark.trt({name}=...): unknown {bad}; expected {', '.join(valid)}")
    if any(b <= 0 for b in batch_sizes):
        raise ValueError(f"@pytest.mark.trt(batch_sizes=...): {batch_sizes} must be positive integers")
