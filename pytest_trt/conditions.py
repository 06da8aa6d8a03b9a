"""What the machine was doing while a case ran: GPU telemetry (NVML) and the host's load."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from pytest_trt.jsontypes import JSONDict, as_list, as_number


@dataclass(frozen=True)
class Telemetry:
    """NVML readings over a case's timed loop; absent without NVML."""

    power_mean_w: float | None = None
    power_peak_w: float | None = None
    energy_j: float | None = None
    energy_source: str | None = None  # "counter" or "integrated"
    duration_s: float | None = None
    joules_per_item: float | None = None
    items_per_s_per_w: float | None = None
    sm_clock_mhz_mean: float | None = None
    mem_clock_mhz_mean: float | None = None
    temperature_c_max: float | None = None
    throttle_reasons: list[str] = field(default_factory=list)
    throttled: bool = False
    throttled_fraction: float | None = None
    samples: int = 0
    peak_memory_bytes: int | None = None
    nvml_memory_used_max_bytes: int | None = None

    def to_dict(self) -> JSONDict:
        data: JSONDict = asdict(self)
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> Telemetry:
        def number(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else as_number(value)

        def count(key: str) -> int | None:
            value = number(key)
            return None if value is None else int(value)

        source = data.get("energy_source")
        return cls(
            power_mean_w=number("power_mean_w"), power_peak_w=number("power_peak_w"), energy_j=number("energy_j"),
            energy_source=None if source is None else str(source), duration_s=number("duration_s"),
            joules_per_item=number("joules_per_item"), items_per_s_per_w=number("items_per_s_per_w"),
            sm_clock_mhz_mean=number("sm_clock_mhz_mean"), mem_clock_mhz_mean=number("mem_clock_mhz_mean"),
            temperature_c_max=number("temperature_c_max"),
            throttle_reasons=[str(r) for r in as_list(data.get("throttle_reasons") or [])],
            throttled=bool(data.get("throttled", False)), throttled_fraction=number("throttled_fraction"),
            samples=count("samples") or 0, peak_memory_bytes=count("peak_memory_bytes"),
            nvml_memory_used_max_bytes=count("nvml_memory_used_max_bytes"),
        )


@dataclass(frozen=True)
class HostLoad:
    """What the host gave the process while a case was timed (pytest_trt.host)."""

    wall_s: float
    cpu_s: float  # this process's CPU time, all threads
    run_s: float | None  # thread time on a CPU (Linux schedstat)
    wait_s: float | None  # thread time runnable but waiting for a CPU (schedstat)
    loadavg_1m: float | None
    cpu_count: int
    others_cpu_s: float | None = None  # CPU time every other process (and a hypervisor's steal) used meanwhile

    @property
    def wait_share(self) -> float | None:
        """Share of the threads' runnable time spent waiting for a CPU."""
        if self.run_s is None or self.wait_s is None or self.run_s + self.wait_s <= 0:
            return None
        return self.wait_s / (self.run_s + self.wait_s)

    @property
    def others_share(self) -> float | None:
        """Share of the machine's CPU capacity that other processes used meanwhile."""
        if self.others_cpu_s is None or self.wall_s <= 0:
            return None
        return max(0.0, self.others_cpu_s) / (self.wall_s * self.cpu_count)

    def to_dict(self) -> JSONDict:
        data: JSONDict = asdict(self)
        data["wait_share"] = self.wait_share
        data["others_share"] = self.others_share
        return data

    @classmethod
    def from_dict(cls, data: JSONDict) -> HostLoad:
        def optional(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else as_number(value)

        return cls(as_number(data.get("wall_s", 0.0)), as_number(data.get("cpu_s", 0.0)), optional("run_s"),
                   optional("wait_s"), optional("loadavg_1m"), int(as_number(data.get("cpu_count") or 1)),
                   optional("others_cpu_s"))
