"""Environment fingerprint: the real CPU host, and the NVML mapping through a FAKE pynvml module.

This host has no GPU and no NVML driver library, so the NVML branch is exercised by putting
``FakeNvml`` in place of the ``pynvml`` module (the seam that cannot run here).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pytest_trt import environment, telemetry, versions
from pytest_trt.environment import fingerprint, hardware_key

SCHEMA = {
    "hardware": {
        "kind", "cpu_model", "cpu_count", "gpu_name", "gpu_count", "compute_capability", "mig",
        "gpu_uuids", "gpu_memory_bytes",
    },
    "software": {
        "python", "platform", "pytest_trt", "torch", "onnxruntime", "onnx", "tensorrt", "cuda_bindings",
        "driver", "cuda_driver", "cuda_runtime",
    },
    "state": {"power_limit_w", "sm_clock_mhz", "mem_clock_mhz", "temperature_c", "persistence", "ecc",
              "cpu_probe_s"},
}  # fmt: skip


class FakeNvml:
    """A FAKE ``pynvml`` module: two H100s, the second with MIG enabled and one 1g.10gb instance."""

    class NVMLError(Exception):
        pass

    class NVMLError_FunctionNotFound(NVMLError):  # noqa: N801 (pynvml's own name)
        pass

    class NVMLError_NotSupported(NVMLError):  # noqa: N801
        pass

    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, ecc_supported: bool = True) -> None:
        self.gpus = [
            SimpleNamespace(uuid="GPU-aaaa", name="NVIDIA H100 80GB HBM3", mig=False, parent=None),
            SimpleNamespace(uuid="GPU-bbbb", name="NVIDIA H100 80GB HBM3", mig=True, parent=None),
        ]
        self.mig = SimpleNamespace(
            uuid="MIG-cccc", name="NVIDIA H100 80GB HBM3 MIG 1g.10gb", parent=self.gpus[1]
        )
        self.ecc_supported = ecc_supported
        self.init_calls = 0

    def nvmlInit(self) -> None:  # noqa: N802 (pynvml's names)
        self.init_calls += 1

    def nvmlDeviceGetCount(self) -> int:  # noqa: N802
        return len(self.gpus)

    def nvmlSystemGetDriverVersion(self) -> str:  # noqa: N802
        return "550.54.15"

    def nvmlSystemGetCudaDriverVersion(self) -> int:  # noqa: N802
        return 12040

    def nvmlDeviceGetHandleByIndex(self, index: int) -> Any:  # noqa: N802
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> Any:  # noqa: N802
        for handle in [*self.gpus, self.mig]:
            if handle.uuid == uuid:
                return handle
        raise self.NVMLError("Not Found")

    def nvmlDeviceIsMigDeviceHandle(self, handle: Any) -> bool:  # noqa: N802
        return handle is self.mig

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: Any) -> Any:  # noqa: N802
        return handle.parent

    def nvmlDeviceGetUUID(self, handle: Any) -> str:  # noqa: N802
        return str(handle.uuid)

    def nvmlDeviceGetName(self, handle: Any) -> bytes:  # noqa: N802
        return str(handle.name).encode()  # old bindings return bytes

    def nvmlDeviceGetMigMode(self, handle: Any) -> list[int]:  # noqa: N802
        return [1, 1] if handle.mig else [0, 0]

    def nvmlDeviceGetCudaComputeCapability(self, handle: Any) -> tuple[int, int]:  # noqa: N802
        if handle is self.mig:
            raise self.NVMLError_NotSupported("Not Supported")
        return (9, 0)

    def nvmlDeviceGetMemoryInfo(self, handle: Any) -> Any:  # noqa: N802
        total = 10 * 2**30 if handle is self.mig else 80 * 2**30
        return SimpleNamespace(total=total, used=total // 4, free=total - total // 4)

    def _physical(self, handle: Any) -> Any:
        if handle is self.mig:
            raise self.NVMLError_NotSupported("Not Supported on a MIG device handle")
        return handle

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: Any) -> int:  # noqa: N802
        self._physical(handle)
        return 700_000

    def nvmlDeviceGetPersistenceMode(self, handle: Any) -> int:  # noqa: N802
        self._physical(handle)
        return 1

    def nvmlDeviceGetCurrentEccMode(self, handle: Any) -> int:  # noqa: N802
        if not self.ecc_supported:
            raise self.NVMLError_NotSupported("Not Supported")
        return 1

    def nvmlDeviceGetClockInfo(self, handle: Any, clock: int) -> int:  # noqa: N802
        self._physical(handle)
        return {1: 1980, 2: 2619}[clock]

    def nvmlDeviceGetTemperature(self, handle: Any, sensor: int) -> int:  # noqa: N802
        self._physical(handle)
        return 33

    def nvmlDeviceGetPowerUsage(self, handle: Any) -> int:  # noqa: N802
        self._physical(handle)
        return 412_345

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: Any) -> int:  # noqa: N802
        self._physical(handle)
        return 123_456_789

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: Any) -> int:  # noqa: N802
        raise self.NVMLError_FunctionNotFound("Function Not Found")  # an old driver

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: Any) -> int:  # noqa: N802
        return 0x4


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeNvml]:
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    telemetry._nvml_init.cache_clear()
    yield fake
    telemetry._nvml_init.cache_clear()


# --- this host (real) -------------------------------------------------------------------------


def test_cpu_fingerprint_has_exactly_the_schema_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in environment.MEASURED_ENV:
        monkeypatch.delenv(name, raising=False)
    env = fingerprint("cpu")
    assert {key: set(block) for key, block in env.items()} == SCHEMA
    assert env["hardware"]["kind"] == "cpu"
    assert env["hardware"]["cpu_model"]
    assert env["hardware"]["cpu_count"] >= 1
    json.dumps(env)  # it lands in results files


def test_versions_come_from_metadata() -> None:
    import importlib.metadata

    software = fingerprint("cpu")["software"]
    for name in ("torch", "onnx", "onnxruntime"):
        try:
            expected: str | None = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            expected = None
        assert software[name] == expected
    assert software["python"] == ".".join(map(str, sys.version_info[:3]))


def test_settings_that_change_a_measurement_are_recorded_and_listed_as_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_trt.gate import software_changes

    for name in environment.MEASURED_ENV:
        monkeypatch.delenv(name, raising=False)
    before = fingerprint("cpu")
    monkeypatch.setenv("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    monkeypatch.setenv("HOME", "/elsewhere")  # not a measured setting
    after = fingerprint("cpu")
    assert after["software"]["env PYTORCH_CUDA_ALLOC_CONF"] == "expandable_segments:True"
    assert not any("HOME" in key for key in after["software"])
    assert software_changes(before, after) == ["env PYTORCH_CUDA_ALLOC_CONF none → expandable_segments:True"]


def test_fingerprint_imports_no_heavy_module() -> None:
    code = (
        "import sys, pytest_trt.environment as e; e.fingerprint('cpu');"
        "print([m for m in ('torch', 'onnxruntime', 'onnx', 'tensorrt') if m in sys.modules])"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(root)},
    )
    assert out.stdout.strip() == "[]"


def test_tensorrt_stubs_do_not_count_as_tensorrt() -> None:
    spec = importlib.util.find_spec("tensorrt")
    if spec is None:
        assert versions.tensorrt_version() is None
        return
    if hasattr(importlib.import_module("tensorrt"), "Builder"):
        pytest.skip("a real TensorRT is installed here")
    assert versions.tensorrt_version() is None


def test_cuda_runtime_read_from_torch_version_file() -> None:
    torch = pytest.importorskip("torch")
    spec = importlib.util.find_spec("torch")
    assert spec is not None and spec.submodule_search_locations
    source = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text()
    assert versions._assigned_string(source, "cuda") == torch.version.cuda
    assert versions._assigned_string(source, "__version__") == torch.__version__
    assert versions._assigned_string("cuda: Optional[str] = '12.8'\n", "cuda") == "12.8"


def test_cpu_model_is_a_string() -> None:
    assert isinstance(environment.cpu_model(), str) and environment.cpu_model()


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "cuda:-1", "", "auto"])
def test_bad_device_is_rejected(bad: str) -> None:
    with pytest.raises(ValueError, match="device"):
        fingerprint(bad)


def test_hardware_key() -> None:
    cpu = fingerprint("cpu")
    assert hardware_key(cpu) == {
        "kind": "cpu", "cpu_model": cpu["hardware"]["cpu_model"], "gpu_name": None, "gpu_count": None,
        "compute_capability": None, "mig": None,
    }  # fmt: skip
    gpu = {"hardware": {"kind": "cuda", "cpu_model": "x", "gpu_name": "H100", "gpu_count": 1,
                        "compute_capability": "9.0", "mig": None, "gpu_uuids": ["GPU-1"]}}  # fmt: skip
    other_card = json.loads(json.dumps(gpu))
    other_card["hardware"].update(cpu_model="y", gpu_uuids=["GPU-2"])
    assert hardware_key(gpu) == hardware_key(other_card)  # another card/CPU of the same model
    other_card["hardware"]["gpu_name"] = "A100"
    assert hardware_key(gpu) != hardware_key(other_card)


# --- NVML mapping (FAKE pynvml) ---------------------------------------------------------------


def test_nvml_gpu_fingerprint(fake_nvml: FakeNvml) -> None:
    assert telemetry.nvml_available() == (True, "NVML driver 550.54.15, 2 GPU(s)")
    env = fingerprint("cuda:0")
    assert {key: set(block) for key, block in env.items()} == SCHEMA
    hw, sw, state = env["hardware"], env["software"], env["state"]
    assert hw["kind"] == "cuda"
    assert hw["gpu_name"] == "NVIDIA H100 80GB HBM3"
    assert hw["gpu_count"] == 2
    assert hw["gpu_uuids"] == ["GPU-aaaa", "GPU-bbbb"]
    assert hw["compute_capability"] == "9.0"
    assert hw["mig"] is None
    assert hw["gpu_memory_bytes"] == 80 * 2**30
    assert sw["driver"] == "550.54.15"
    assert sw["cuda_driver"] == "12.4"
    assert state.pop("cpu_probe_s") > 0
    assert state == {
        "power_limit_w": 700.0, "sm_clock_mhz": 1980, "mem_clock_mhz": 2619, "temperature_c": 33,
        "persistence": True, "ecc": True,
    }  # fmt: skip
    assert fake_nvml.init_calls == 1


def test_mig_mode_gpu_says_enabled(fake_nvml: FakeNvml) -> None:
    assert fingerprint("cuda:1")["hardware"]["mig"] == "enabled"


def test_cuda_visible_devices_maps_cuda_index_to_nvml(
    fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    hw = fingerprint("cuda:0")["hardware"]
    assert hw["gpu_count"] == 1
    assert hw["gpu_uuids"] == ["GPU-bbbb"]
    with pytest.raises(ValueError, match="only 1 CUDA device"):
        fingerprint("cuda:1")


def test_mig_instance_profile_and_parent_facts(fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-cccc")
    env = fingerprint("cuda")
    hw = env["hardware"]
    assert hw["mig"] == "1g.10gb"
    assert hw["gpu_name"] == "NVIDIA H100 80GB HBM3"  # the physical GPU's name and capability
    assert hw["compute_capability"] == "9.0"
    assert hw["gpu_memory_bytes"] == 10 * 2**30  # the slice's memory
    assert env["state"]["power_limit_w"] == 700.0  # read on the parent GPU


def test_unsupported_queries_are_null(fake_nvml: FakeNvml) -> None:
    fake_nvml.ecc_supported = False
    assert fingerprint("cuda:0")["state"]["ecc"] is None


def test_cpu_run_on_a_gpu_host_lists_gpus_but_keys_on_cpu(fake_nvml: FakeNvml) -> None:
    env = fingerprint("cpu")
    assert env["hardware"]["gpu_count"] == 2 and env["hardware"]["gpu_name"] is None
    assert hardware_key(env)["gpu_count"] is None


def test_nvml_reader_units_and_throttle_fallback(fake_nvml: FakeNvml) -> None:
    handle = telemetry.device_handle(0)
    reader = telemetry.NvmlReader(handle)
    assert reader.power_w() == pytest.approx(412.345)  # milliwatts → watts
    assert reader.clocks_mhz() == (1980, 2619)
    assert reader.temperature_c() == 33
    assert reader.throttle_mask() == 0x4  # old driver: the throttle-reasons call answered
    assert reader.energy_mj() == 123_456_789
    assert reader.memory_used_bytes() == 20 * 2**30
    sampler = telemetry.Sampler.open(0, interval_s=0.005)
    assert sampler is not None
    with sampler:
        pass
    assert sampler.record["throttle_reasons"] == ["sw_power_cap"] and sampler.record["throttled"]


# --- a real GPU -------------------------------------------------------------------------------


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_real_gpu_fingerprint_agrees_with_torch() -> None:
    import torch

    env = fingerprint("cuda:0")
    props = torch.cuda.get_device_properties(0)
    assert env["hardware"]["kind"] == "cuda"
    assert env["hardware"]["compute_capability"] == f"{props.major}.{props.minor}"
    assert env["hardware"]["gpu_count"] == torch.cuda.device_count()
    assert env["software"]["cuda_runtime"] == torch.version.cuda
    if telemetry.nvml_available()[0]:
        assert env["software"]["driver"]
        assert env["state"]["power_limit_w"] is None or env["state"]["power_limit_w"] > 0
