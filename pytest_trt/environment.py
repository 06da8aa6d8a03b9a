"""The environment fingerprint recorded with every run (docs/design.md, rule 8).

``fingerprint(device)`` returns the "environment" record of docs/internal-schemas.md: ``hardware``
(decides comparability), ``software`` (listed in verdicts, never blocks the gate) and ``state``
(clocks, power limit, temperature at the time of the run). Absent things are None.

Versions come from package metadata so that recording them imports no torch, onnxruntime or
tensorrt. GPU facts come from NVML; without NVML, torch (already needed to run on CUDA) fills in
what it can.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

from pytest_trt import host, telemetry

_DEVICE = re.compile(r"^(cpu|cuda)(?::(\d+))?$")


def parse_device(device: str) -> tuple[str, int]:
    """``"cpu"`` → ("cpu", 0); ``"cuda"``/``"cuda:N"`` → ("cuda", N)."""
    match = _DEVICE.match(device.strip())
    if not match:
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return match.group(1), int(match.group(2) or 0)


def fingerprint(device: str) -> dict[str, Any]:
    """Hardware, software and state of this host for ``device`` (``cpu``, ``cuda``, ``cuda:N``)."""
    kind, index = parse_device(device)
    hardware: dict[str, Any] = {
        "kind": kind,
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count() or 0,
        "gpu_name": None,
        "gpu_count": 0,
        "compute_capability": None,
        "mig": None,
        "gpu_uuids": [],
        "gpu_memory_bytes": None,
    }
    software = software_versions()
    state: dict[str, Any] = {
        "power_limit_w": None,
        "sm_clock_mhz": None,
        "mem_clock_mhz": None,
        "temperature_c": None,
        "persistence": None,
        "ecc": None,
        "cpu_probe_s": host.calibration_s(),
    }
    handles = telemetry.visible_nvml_handles()
    if handles:
        software.update(_nvml_software())
        hardware["gpu_count"] = len(handles)
        hardware["gpu_uuids"] = [_nvml(lambda n, h=h: n.nvmlDeviceGetUUID(h)) for h in handles]
        if kind == "cuda":
            if index >= len(handles):
                raise ValueError(f"device {device!r}: only {len(handles)} CUDA device(s) are visible")
            hardware.update(_nvml_hardware(handles[index]))
            state.update(_nvml_state(handles[index]))
    elif kind == "cuda":
        hardware.update(_torch_hardware(index))
    return {"hardware": hardware, "software": software, "state": state}


def hardware_key(env: dict[str, Any]) -> dict[str, Any]:
    """The part of a fingerprint that decides whether two runs may be compared for gating."""
    hw = env.get("hardware") or {}
    kind = hw.get("kind")
    gpu = kind == "cuda"  # a CPU run does not depend on which GPUs sit idle in the host
    return {
        "kind": kind,
        "cpu_model": hw.get("cpu_model") if kind == "cpu" else None,
        "gpu_name": hw.get("gpu_name") if gpu else None,
        "gpu_count": hw.get("gpu_count") if gpu else None,
        "compute_capability": hw.get("compute_capability") if gpu else None,
        "mig": hw.get("mig") if gpu else None,
    }


# --------------------------------------------------------------------------------------------
# CPU


def cpu_model() -> str:
    """The CPU's marketing name; falls back to platform strings where /proc/cpuinfo has none (Arm)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model") and value.strip():
            return value.strip()
    return platform.processor() or platform.machine() or "unknown"


# --------------------------------------------------------------------------------------------
# Software


def package_version(*distributions: str) -> str | None:
    """Installed version of the first of ``distributions`` that is installed, from metadata."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def loaded_version(module: str) -> str | None:
    """The version of a module this process already imported: what actually ran, even where two
    distributions provide it (seen on an H100 host: onnxruntime 1.30 metadata, onnxruntime-gpu 1.31.1
    imported first from PYTHONPATH)."""
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None)
    return str(version) if version else None


def tensorrt_version() -> str | None:
    """TensorRT's version, only for a real installation.

    The type-stub package makes ``import tensorrt`` succeed as an empty namespace package, so
    the check is for a regular package (one with an ``__init__`` module), not importability.
    """
    spec = importlib.util.find_spec("tensorrt")
    if spec is None or spec.origin in (None, "namespace"):
        return None
    version = package_version("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")
    if version is not None:
        return version
    # e.g. installed from the TensorRT tarball without pip metadata
    found = getattr(importlib.import_module("tensorrt"), "__version__", None)
    return str(found) if found else None


def torch_cuda_version() -> str | None:
    """``torch.version.cuda`` without importing torch (read from torch/version.py)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        cuda = getattr(getattr(torch, "version", None), "cuda", None)
        return str(cuda) if cuda else None
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "version.py"
        if path.is_file():
            return _assigned_string(path.read_text(), "cuda")
    return None


def _assigned_string(source: str, name: str) -> str | None:
    """The string literal assigned to module-level ``name`` in ``source``, if any."""
    for node in ast.parse(source).body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            return None
    return None


# Environment variables that change what a case measures (CUDA_LAUNCH_BLOCKING serialises every
# launch; an allocator setting decided whether the UNet's fp32 batch 256 fits). Recorded only when
# set, as "env NAME" keys, so a verdict lists a change of them like a version change.
MEASURED_ENV = ("CUDA_LAUNCH_BLOCKING", "CUDA_MODULE_LOADING", "CUDA_DEVICE_MAX_CONNECTIONS",
                "PYTORCH_CUDA_ALLOC_CONF", "PYTORCH_NO_CUDA_MEMORY_CACHING", "CUBLAS_WORKSPACE_CONFIG",
                "TORCHINDUCTOR_MAX_AUTOTUNE", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def software_versions() -> dict[str, Any]:
    """Versions of what ran: the host's, then each registered backend's own keys
    (torch, onnxruntime, onnx, tensorrt for the built-ins), then the CUDA stack's."""
    from pytest_trt import __version__, backends

    settings = {f"env {name}": os.environ[name] for name in MEASURED_ENV if name in os.environ}
    head = {"python": platform.python_version(), "platform": platform.platform(), "pytest_trt": __version__}
    tail = {
        "cuda_bindings": package_version("cuda-bindings", "cuda-python"),  # the CUDA event timer's, not a backend's
        "driver": None,
        "cuda_driver": None,
        "cuda_runtime": torch_cuda_version(),
    }
    # A backend cannot overwrite a key that is not its own.
    versions = {k: v for k, v in backends.versions().items() if k not in head and k not in tail}
    return settings | head | versions | tail


# --------------------------------------------------------------------------------------------
# NVML


def _nvml(query: Any) -> Any:
    """Run ``query(pynvml)``; None when NVML says the device does not support it."""
    import pynvml

    try:
        return query(pynvml)
    except pynvml.NVMLError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvml_software() -> dict[str, Any]:
    cuda = _nvml(lambda n: n.nvmlSystemGetCudaDriverVersion())  # e.g. 12040
    return {
        "driver": _text(_nvml(lambda n: n.nvmlSystemGetDriverVersion())),
        "cuda_driver": f"{cuda // 1000}.{cuda % 1000 // 10}" if cuda else None,
    }


def _mig_profile(handle: Any) -> str | None:
    """A MIG instance's profile ("1g.10gb"), "enabled" on a MIG-mode GPU, else None."""
    if _nvml(lambda n: n.nvmlDeviceIsMigDeviceHandle(handle)):
        name = _text(_nvml(lambda n: n.nvmlDeviceGetName(handle))) or ""
        match = re.search(r"\d+g\.\d+gb", name)
        return match.group(0) if match else (name or "enabled")
    modes = _nvml(lambda n: n.nvmlDeviceGetMigMode(handle))
    return "enabled" if modes and modes[0] == 1 else None


def _nvml_hardware(handle: Any) -> dict[str, Any]:
    gpu = telemetry.parent_handle(handle)
    capability = _nvml(lambda n: n.nvmlDeviceGetCudaComputeCapability(gpu))
    memory = _nvml(lambda n: n.nvmlDeviceGetMemoryInfo(handle))  # the MIG slice's own on MIG
    return {
        "gpu_name": _text(_nvml(lambda n: n.nvmlDeviceGetName(gpu))),
        "compute_capability": f"{capability[0]}.{capability[1]}" if capability else None,
        "mig": _mig_profile(handle),
        "gpu_memory_bytes": int(memory.total) if memory is not None else None,
    }


def _nvml_state(handle: Any) -> dict[str, Any]:
    gpu = telemetry.parent_handle(handle)
    limit_mw = _nvml(lambda n: n.nvmlDeviceGetEnforcedPowerLimit(gpu))
    persistence = _nvml(lambda n: n.nvmlDeviceGetPersistenceMode(gpu))
    ecc = _nvml(lambda n: n.nvmlDeviceGetCurrentEccMode(gpu))
    return {
        "power_limit_w": limit_mw / 1000.0 if limit_mw is not None else None,
        "sm_clock_mhz": _nvml(lambda n: n.nvmlDeviceGetClockInfo(gpu, n.NVML_CLOCK_SM)),
        "mem_clock_mhz": _nvml(lambda n: n.nvmlDeviceGetClockInfo(gpu, n.NVML_CLOCK_MEM)),
        "temperature_c": _nvml(lambda n: n.nvmlDeviceGetTemperature(gpu, n.NVML_TEMPERATURE_GPU)),
        "persistence": bool(persistence) if persistence is not None else None,
        "ecc": bool(ecc) if ecc is not None else None,
    }


# --------------------------------------------------------------------------------------------
# torch fallback (CUDA without NVML, e.g. some containers and WSL)


def _torch_hardware(index: int) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {}
    if not torch.cuda.is_available() or index >= torch.cuda.device_count():
        return {}
    count = torch.cuda.device_count()
    props = torch.cuda.get_device_properties(index)
    uuids = [getattr(torch.cuda.get_device_properties(i), "uuid", None) for i in range(count)]
    return {
        "gpu_name": props.name,
        "gpu_count": count,
        "compute_capability": f"{props.major}.{props.minor}",
        "gpu_memory_bytes": int(props.total_memory),
        "gpu_uuids": [f"GPU-{uuid}" for uuid in uuids if uuid is not None],
    }
