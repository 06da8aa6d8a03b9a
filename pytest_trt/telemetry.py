"""GPU telemetry during a measured case: power, energy, clocks, temperature, throttling, memory.

A ``Sampler`` polls NVML from a background daemon thread while the timed loop runs, so the loop
itself makes no NVML calls. Without NVML (no driver, no GPU) telemetry is simply absent: ``{}``,
never an error. The record shape is the "telemetry" block of docs/internal-schemas.md.

NVML is reached through a small ``Reader`` interface: ``NvmlReader`` is the real one; unit tests on
GPU-less hosts pass a fake reader through the ``reader`` argument.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

# Clock event ("throttle") reason bits, from nvml.h (stable across driver versions).
THROTTLE_REASONS: dict[int, str] = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}
# Reasons that mean the GPU ran slower than it could because of power or heat; idle and
# user/application clock settings are not throttling.
THROTTLING = frozenset(
    {"sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown"}
)

# Of those, what a disturbed machine shows: heat and hardware slowdowns. A GPU-bound case at the
# power limit is capped every night alike ("sw_power_cap"), which is its normal state, not a disturbance.
DISTURBING = THROTTLING - {"sw_power_cap"}

ENERGY_COUNTER = "counter"  # nvmlDeviceGetTotalEnergyConsumption difference
ENERGY_INTEGRATED = "power-integration"  # trapezoidal integral of the power samples


def decode_throttle(mask: int) -> list[str]:
    """Names of the reason bits set in ``mask``; unknown bits as ``bit_0x...``."""
    names = [name for bit, name in THROTTLE_REASONS.items() if mask & bit]
    known = functools.reduce(lambda a, b: a | b, THROTTLE_REASONS)
    rest = mask & ~known
    bit = 1
    while rest:
        if rest & bit:
            names.append(f"bit_{bit:#x}")
            rest &= ~bit
        bit <<= 1
    return names


def is_throttled(reasons: list[str]) -> bool:
    return any(reason in THROTTLING for reason in reasons)


# --------------------------------------------------------------------------------------------
# NVML access


@functools.cache
def _nvml_init() -> tuple[bool, str]:
    """Initialise NVML once per process; (ok, reason). Never shut down: handles stay valid."""
    try:
        import pynvml
    except ImportError:
        return False, "nvidia-ml-py (pynvml) is not installed"
    try:
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        driver = pynvml.nvmlSystemGetDriverVersion()
    except Exception as exc:  # pynvml.NVMLError subclasses; a missing library is one of them
        return False, f"NVML unavailable: {exc}"
    if count == 0:
        return False, f"NVML (driver {driver}) sees no GPU"
    return True, f"NVML driver {driver}, {count} GPU(s)"


def nvml_available() -> tuple[bool, str]:
    """Whether NVML can be used here, with the reason (shown when telemetry is absent)."""
    return _nvml_init()


def visible_nvml_handles() -> list[Any]:
    """NVML handles of the GPUs this process's CUDA sees, in CUDA order.

    Honours ``CUDA_VISIBLE_DEVICES`` (indices, GPU-/MIG- UUIDs); without it CUDA and NVML are
    assumed to enumerate the same way (true with ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and on
    single-GPU hosts). Empty when NVML is unavailable.
    """
    ok, _ = _nvml_init()
    if not ok:
        return []
    import pynvml

    count = pynvml.nvmlDeviceGetCount()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
    handles = []
    for entry in (e.strip() for e in visible.split(",")):
        if not entry:
            continue
        try:
            if entry.isdigit():
                if int(entry) >= count:
                    break  # CUDA stops at the first invalid entry
                handles.append(pynvml.nvmlDeviceGetHandleByIndex(int(entry)))
            else:
                handles.append(pynvml.nvmlDeviceGetHandleByUUID(entry))
        except pynvml.NVMLError:
            break
    return handles


def device_handle(cuda_index: int) -> Any | None:
    """NVML handle of CUDA device ``cuda_index``, or None (no NVML, index out of range)."""
    handles = visible_nvml_handles()
    return handles[cuda_index] if 0 <= cuda_index < len(handles) else None


def parent_handle(handle: Any) -> Any:
    """The physical GPU of a MIG device handle (power and clocks live there); else ``handle``."""
    import pynvml

    try:
        if pynvml.nvmlDeviceIsMigDeviceHandle(handle):
            return pynvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
    except pynvml.NVMLError:
        pass
    return handle


# --------------------------------------------------------------------------------------------
# Readers


class Reader(Protocol):
    """The few readings a sampler takes. Each returns None when the device does not support it."""

    def power_w(self) -> float | None: ...

    def clocks_mhz(self) -> tuple[int | None, int | None]:
        """(SM clock, memory clock)."""
        ...

    def temperature_c(self) -> int | None: ...

    def throttle_mask(self) -> int | None: ...

    def energy_mj(self) -> int | None:
        """Total energy counter in millijoules, or None when the device has none."""
        ...

    def memory_used_bytes(self) -> int | None: ...


def _optional(call: Any, *args: Any) -> Any:
    """Call an NVML function; None when the device does not support the query."""
    import pynvml

    try:
        return call(*args)
    except pynvml.NVMLError:
        return None


def _reasons_function(pynvml: Any, handle: Any) -> Any:
    """The clock-event-reasons query, or the older throttle-reasons one it replaced.

    Old bindings lack the new name; old drivers lack the new symbol (the call then fails).
    """
    new = getattr(pynvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
    if new is not None:
        try:
            new(handle)
            return new
        except pynvml.NVMLError_FunctionNotFound:
            pass
        except pynvml.NVMLError:
            return new  # the symbol exists; this device just does not support it
    return pynvml.nvmlDeviceGetCurrentClocksThrottleReasons


class NvmlReader:
    """Reads one GPU through NVML. Construct with a handle from ``device_handle``."""

    def __init__(self, handle: Any) -> None:
        import pynvml

        self._nvml = pynvml
        self._mem_handle = handle  # memory is per MIG instance when on MIG
        self._handle = parent_handle(handle)
        self._reasons = _reasons_function(pynvml, self._handle)
        self._has_energy = _optional(pynvml.nvmlDeviceGetTotalEnergyConsumption, self._handle) is not None

    def power_w(self) -> float | None:
        milliwatts = _optional(self._nvml.nvmlDeviceGetPowerUsage, self._handle)
        return None if milliwatts is None else milliwatts / 1000.0

    def clocks_mhz(self) -> tuple[int | None, int | None]:
        nvml = self._nvml
        return (
            _optional(nvml.nvmlDeviceGetClockInfo, self._handle, nvml.NVML_CLOCK_SM),
            _optional(nvml.nvmlDeviceGetClockInfo, self._handle, nvml.NVML_CLOCK_MEM),
        )

    def temperature_c(self) -> int | None:
        nvml = self._nvml
        value = _optional(nvml.nvmlDeviceGetTemperature, self._handle, nvml.NVML_TEMPERATURE_GPU)
        return None if value is None else int(value)

    def throttle_mask(self) -> int | None:
        value = _optional(self._reasons, self._handle)
        return None if value is None else int(value)

    def energy_mj(self) -> int | None:
        if not self._has_energy:
            return None
        value = _optional(self._nvml.nvmlDeviceGetTotalEnergyConsumption, self._handle)
        return None if value is None else int(value)

    def memory_used_bytes(self) -> int | None:
        info = _optional(self._nvml.nvmlDeviceGetMemoryInfo, self._mem_handle)
        return None if info is None else int(info.used)


def settle(device_index: int, timeout_s: float = 5.0, reader: Reader | None = None,
           clock: Any = time.monotonic, sleep: Any = time.sleep) -> float:
    """Wait until the GPU no longer reports throttling (after a burst of heavy work, such as the
    peak measurement, the power-cap reason lingers for a moment); returns the seconds waited."""
    if reader is None:
        handle = device_handle(device_index)
        if handle is None:
            return 0.0
        reader = NvmlReader(handle)
    start = clock()
    while clock() - start < timeout_s:
        mask = reader.throttle_mask()
        if mask is None or not is_throttled(decode_throttle(mask)):
            break
        sleep(0.05)
    return float(clock() - start)


# --------------------------------------------------------------------------------------------
# Sampler


@dataclass(frozen=True)
class Sample:
    t: float  # time.perf_counter()
    power_w: float | None
    sm_clock_mhz: int | None
    mem_clock_mhz: int | None
    temperature_c: int | None
    throttle_mask: int | None
    memory_used_bytes: int | None


def _read(reader: Reader) -> Sample:
    sm, mem = reader.clocks_mhz()
    return Sample(
        t=time.perf_counter(),
        power_w=reader.power_w(),
        sm_clock_mhz=sm,
        mem_clock_mhz=mem,
        temperature_c=reader.temperature_c(),
        throttle_mask=reader.throttle_mask(),
        memory_used_bytes=reader.memory_used_bytes(),
    )


class Sampler:
    """Samples one GPU every ``interval_s`` in a daemon thread between ``start()`` and ``stop()``.

    ``device_index`` is the CUDA device index (``cuda:N``). Use as a context manager (the record
    is then in ``.record``) or call ``start()``/``stop()``. Without NVML and without a ``reader``
    it records nothing and ``stop()`` returns ``{}``.
    """

    def __init__(self, device_index: int, interval_s: float = 0.01, reader: Reader | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"Sampler interval_s must be > 0 seconds, got {interval_s!r}")
        self.device_index = device_index
        self.interval_s = interval_s
        self.reader = reader
        self.record: dict[str, Any] = {}
        self.cpu_time_s = 0.0  # CPU time the sampling thread used (overhead check)
        self.error: str | None = None
        self._samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._energy_start: int | None = None
        self._t_start = 0.0

    @classmethod
    def open(cls, device_index: int, interval_s: float = 0.01) -> Sampler | None:
        """A sampler on a real GPU through NVML, or None where NVML or the device is unavailable."""
        handle = device_handle(device_index)
        if handle is None:
            return None
        try:
            reader = NvmlReader(handle)
        except Exception:  # pynvml.NVMLError: a device NVML lists but cannot query
            return None
        return cls(device_index, interval_s, reader)

    def start(self) -> Sampler:
        if self._thread is not None:
            raise RuntimeError("Sampler.start() called twice; create a new Sampler per case")
        if self.reader is None:
            opened = Sampler.open(self.device_index, self.interval_s)
            self.reader = opened.reader if opened else None
        if self.reader is None:
            return self
        self._t_start = time.perf_counter()
        self._energy_start = self.reader.energy_mj()
        self._thread = threading.Thread(target=self._loop, name="pytest-trt-telemetry", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        assert self.reader is not None
        cpu0 = time.thread_time()
        try:
            while True:
                self._samples.append(_read(self.reader))
                if self._stop.wait(self.interval_s):
                    break
            self._samples.append(_read(self.reader))  # the window's closing sample
        except Exception as exc:  # a failing reading must not take the measured case down
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.cpu_time_s = time.thread_time() - cpu0

    def stop(self) -> dict[str, Any]:
        """End sampling (prompt: at most one reading's latency) and return the telemetry record."""
        if self._thread is None or self.reader is None:
            self.record = {}
            return self.record
        self._stop.set()
        self._thread.join()
        t_stop = time.perf_counter()
        energy_stop = self.reader.energy_mj()
        self.record = summarize(
            self._samples,
            duration_s=t_stop - self._t_start,
            energy_start_mj=self._energy_start,
            energy_stop_mj=energy_stop,
        )
        self.record["interval_s"] = self.interval_s
        if self.error:
            self.record["error"] = self.error
        return self.record

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------
# Records


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def integrate_power(samples: list[Sample]) -> float | None:
    """Energy in joules: trapezoidal integral of power over the sample times."""
    points = [(s.t, s.power_w) for s in samples if s.power_w is not None]
    if len(points) < 2:
        return None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(points, points[1:], strict=False))


def summarize(
    samples: list[Sample],
    *,
    duration_s: float,
    energy_start_mj: int | None,
    energy_stop_mj: int | None,
) -> dict[str, Any]:
    """The telemetry record of one sampling window (without the per-item fields; see ``finish``).

    ``power_mean_w`` is the window's energy over its duration, so it is time-weighted and, with the
    energy counter, includes what happened between samples.
    """
    powers = [s.power_w for s in samples if s.power_w is not None]
    masks = [s.throttle_mask for s in samples if s.throttle_mask is not None]
    union = functools.reduce(lambda a, b: a | b, masks, 0)
    reasons = decode_throttle(union)
    throttled_samples = sum(is_throttled(decode_throttle(m)) for m in masks)
    memory = [s.memory_used_bytes for s in samples if s.memory_used_bytes is not None]

    energy_j: float | None = None
    source: str | None = None
    span_s = duration_s
    if energy_start_mj is not None and energy_stop_mj is not None and energy_stop_mj > energy_start_mj:
        energy_j, source = (energy_stop_mj - energy_start_mj) / 1000.0, ENERGY_COUNTER
    else:  # no counter, or a window shorter than the counter's update period
        energy_j = integrate_power(samples)
        if energy_j is not None:
            source = ENERGY_INTEGRATED
            span_s = samples[-1].t - samples[0].t  # the integral covers the sampled span only
    power_mean = energy_j / span_s if energy_j is not None and span_s > 0 else _mean(powers)

    temperatures = [s.temperature_c for s in samples if s.temperature_c is not None]
    return {
        "power_mean_w": power_mean,
        "power_peak_w": max(powers) if powers else None,
        "energy_j": energy_j,
        "energy_source": source,
        "duration_s": duration_s,
        "joules_per_item": None,
        "items_per_s_per_w": None,
        "sm_clock_mhz_mean": _mean([float(s.sm_clock_mhz) for s in samples if s.sm_clock_mhz is not None]),
        "mem_clock_mhz_mean": _mean([float(s.mem_clock_mhz) for s in samples if s.mem_clock_mhz is not None]),
        "temperature_c_max": max(temperatures) if temperatures else None,
        "throttle_reasons": reasons,
        "throttled": is_throttled(reasons),
        "throttled_fraction": throttled_samples / len(masks) if masks else None,
        "samples": len(samples),
        "peak_memory_bytes": None,
        "nvml_memory_used_max_bytes": max(memory) if memory else None,
    }


def finish(
    record: dict[str, Any], items: int, wall_s: float, peak_memory_bytes: int | None = None
) -> dict[str, Any]:
    """Add the throughput-dependent fields to a sampler record, in place; returns it.

    ``items`` inferences (batch × iterations) took ``wall_s`` in the timed loop. Energy per item
    uses the window's mean power over the loop's wall time, so a sampling window a little wider
    than the loop does not inflate it. ``peak_memory_bytes`` is the allocator's peak (see
    ``peak_memory_bytes()``); without it, NVML's largest used-memory reading stands in, which also
    counts the CUDA context and other processes. An empty record (no NVML) stays empty.
    """
    if not record:
        return record
    if items <= 0 or wall_s <= 0:
        raise ValueError(f"finish() needs items > 0 and wall_s > 0, got items={items}, wall_s={wall_s}")
    power = record.get("power_mean_w")
    if power:
        record["joules_per_item"] = power * wall_s / items
        record["items_per_s_per_w"] = items / wall_s / power
    record["peak_memory_bytes"] = (
        peak_memory_bytes if peak_memory_bytes is not None else record.get("nvml_memory_used_max_bytes")
    )
    return record


# --------------------------------------------------------------------------------------------
# Allocator peak memory (torch)


def _torch_cuda_device(device: str | int | torch.device) -> Any | None:
    import torch

    dev = torch.device(f"cuda:{device}" if isinstance(device, int) else device)
    if dev.type != "cuda" or not torch.cuda.is_available():
        return None
    return dev


def reset_peak_memory(device: str | int | torch.device) -> None:
    """Start a case's peak-memory window on a CUDA device (no-op on CPU)."""
    dev = _torch_cuda_device(device)
    if dev is not None:
        import torch

        torch.cuda.reset_peak_memory_stats(dev)


def peak_memory_bytes(device: str | int | torch.device) -> int | None:
    """Largest memory torch's CUDA allocator held for tensors since ``reset_peak_memory``.

    None on CPU. Allocations outside torch (ONNX Runtime, TensorRT) are not seen: use the
    record's ``nvml_memory_used_max_bytes`` for those.
    """
    dev = _torch_cuda_device(device)
    if dev is None:
        return None
    import torch

    return int(torch.cuda.max_memory_allocated(dev))
