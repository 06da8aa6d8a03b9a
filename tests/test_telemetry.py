"""Telemetry sampler: thread life cycle, energy (counter vs integration), throttle decoding.

There is no GPU here, so the sampler is driven through its ``reader`` seam by ``FakeReader``; the
NVML path itself is checked only for its "absent, not an error" behaviour and by a GPU-only test.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pytest_trt import telemetry
from pytest_trt.telemetry import Sample, Sampler, decode_throttle, finish, integrate_power, summarize


class FakeReader:
    """A FAKE NVML reader: constant readings, an optional scripted energy counter, a call count."""

    def __init__(
        self,
        power_w: float | None = 200.0,
        throttle_mask: int = 0,
        energy_mj: list[int] | None = None,
        fail_after: int | None = None,
    ) -> None:
        self._power = power_w
        self._mask = throttle_mask
        self._energy = iter(energy_mj) if energy_mj is not None else None
        self._fail_after = fail_after
        self.reads = 0

    def power_w(self) -> float | None:
        self.reads += 1
        if self._fail_after is not None and self.reads > self._fail_after:
            raise OSError("fake NVML went away")
        return self._power

    def clocks_mhz(self) -> tuple[int | None, int | None]:
        return 1980, 2619

    def temperature_c(self) -> int | None:
        return 40 + self.reads % 5

    def throttle_mask(self) -> int | None:
        return self._mask

    def energy_mj(self) -> int | None:
        return next(self._energy) if self._energy is not None else None

    def memory_used_bytes(self) -> int | None:
        return 1000 * self.reads


def _run(sampler: Sampler, seconds: float) -> dict[str, Any]:
    with sampler:
        time.sleep(seconds)
    return sampler.record


@pytest.fixture
def no_new_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.is_alive()]
    assert not leaked, f"sampler threads left running: {leaked}"


@pytest.mark.usefixtures("no_new_threads")
def test_samples_at_the_interval_while_running() -> None:
    reader = FakeReader()
    record = _run(Sampler(0, interval_s=0.01, reader=reader), 0.2)
    # ~20 ticks in 0.2 s plus the closing sample; a loaded 2-core host may drop some ticks.
    assert 5 <= record["samples"] <= 25
    assert record["samples"] == reader.reads
    assert record["sm_clock_mhz_mean"] == 1980
    assert record["mem_clock_mhz_mean"] == 2619
    assert 40 <= record["temperature_c_max"] <= 44
    assert record["interval_s"] == 0.01
    assert record["nvml_memory_used_max_bytes"] == 1000 * reader.reads
    assert record["duration_s"] == pytest.approx(0.2, abs=0.1)


@pytest.mark.usefixtures("no_new_threads")
def test_energy_from_counter_difference() -> None:
    record = _run(Sampler(0, reader=FakeReader(energy_mj=[10_000, 14_500])), 0.05)
    assert record["energy_source"] == telemetry.ENERGY_COUNTER
    assert record["energy_j"] == pytest.approx(4.5)
    assert record["power_mean_w"] == pytest.approx(4.5 / record["duration_s"])


@pytest.mark.usefixtures("no_new_threads")
def test_energy_falls_back_to_integrating_power() -> None:
    record = _run(Sampler(0, interval_s=0.01, reader=FakeReader(power_w=150.0)), 0.1)
    assert record["energy_source"] == telemetry.ENERGY_INTEGRATED
    # Constant power: the integral is power × sampled span, and the mean power is that power.
    assert record["power_mean_w"] == pytest.approx(150.0)
    assert record["energy_j"] == pytest.approx(150.0 * 0.1, rel=0.5)
    assert record["power_peak_w"] == 150.0


def test_stalled_counter_falls_back_to_integration() -> None:
    # The counter did not tick within a short window: a zero difference is not zero energy.
    record = _run(Sampler(0, reader=FakeReader(power_w=90.0, energy_mj=[5000, 5000])), 0.05)
    assert record["energy_source"] == telemetry.ENERGY_INTEGRATED
    assert record["power_mean_w"] == pytest.approx(90.0)


def test_integrate_power_is_trapezoidal() -> None:
    def at(t: float, p: float) -> Sample:
        return Sample(t, p, None, None, None, None, None)

    assert integrate_power([at(0.0, 100.0), at(1.0, 200.0), at(3.0, 200.0)]) == pytest.approx(550.0)
    assert integrate_power([at(0.0, 100.0)]) is None


@pytest.mark.usefixtures("no_new_threads")
def test_stop_is_prompt_with_a_long_interval() -> None:
    # An hour between samples: a stop that waited for the next one would take an hour. Not a speed
    # limit (a loaded host stops in milliseconds or seconds), but a stop that never waits.
    sampler = Sampler(0, interval_s=3600.0, reader=FakeReader()).start()
    records: list[dict[str, Any]] = []
    stopper = threading.Thread(target=lambda: records.append(sampler.stop()))
    stopper.start()
    stopper.join(timeout=120)
    assert not stopper.is_alive(), "stop() waited for the sampling interval"
    assert records[0]["samples"] == 2  # the opening and the closing sample


@pytest.mark.usefixtures("no_new_threads")
def test_thread_is_a_daemon_and_ends_on_stop() -> None:
    sampler = Sampler(0, reader=FakeReader()).start()
    thread = sampler._thread
    assert thread is not None and thread.daemon and thread.is_alive()
    sampler.stop()
    assert not thread.is_alive()
    assert sampler.cpu_time_s >= 0.0


def test_start_twice_is_an_error() -> None:
    sampler = Sampler(0, reader=FakeReader()).start()
    try:
        with pytest.raises(RuntimeError, match="start"):
            sampler.start()
    finally:
        sampler.stop()


def test_bad_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Sampler(0, interval_s=0)


@pytest.mark.usefixtures("no_new_threads")
def test_a_failing_reader_is_recorded_not_raised() -> None:
    record = _run(Sampler(0, interval_s=0.005, reader=FakeReader(fail_after=3)), 0.05)
    assert "fake NVML went away" in record["error"]
    assert record["samples"] == 3


@pytest.mark.parametrize(
    ("mask", "names", "throttled"),
    [
        (0x0, [], False),
        (0x1, ["gpu_idle"], False),
        (0x2 | 0x100, ["applications_clocks_setting", "display_clock_setting"], False),
        (0x4, ["sw_power_cap"], True),
        (0x1 | 0x40, ["gpu_idle", "hw_thermal_slowdown"], True),
        (0x8 | 0x20 | 0x80, ["hw_slowdown", "sw_thermal_slowdown", "hw_power_brake_slowdown"], True),
        (0x10 | 0x1000, ["sync_boost", "bit_0x1000"], False),
    ],
)
def test_throttle_decoding(mask: int, names: list[str], throttled: bool) -> None:
    assert decode_throttle(mask) == names
    assert telemetry.is_throttled(names) is throttled


@pytest.mark.parametrize(("mask", "throttled"), [(0x1 | 0x2, False), (0x4, True), (0x40, True)])
@pytest.mark.usefixtures("no_new_threads")
def test_sampler_reports_throttling(mask: int, throttled: bool) -> None:
    record = _run(Sampler(0, reader=FakeReader(throttle_mask=mask)), 0.03)
    assert record["throttle_reasons"] == decode_throttle(mask)
    assert record["throttled"] is throttled
    assert record["throttled_fraction"] == (1.0 if throttled else 0.0)


def test_finish_adds_per_item_fields() -> None:
    samples = [Sample(0.0, 250.0, 1, 1, 50, 0, 10), Sample(2.0, 250.0, 1, 1, 50, 0, 30)]
    record = summarize(samples, duration_s=2.0, energy_start_mj=None, energy_stop_mj=None)
    finish(record, items=1000, wall_s=2.0)
    assert record["joules_per_item"] == pytest.approx(250.0 * 2.0 / 1000)
    assert record["items_per_s_per_w"] == pytest.approx(1000 / 2.0 / 250.0)
    assert record["peak_memory_bytes"] == 30  # NVML's reading stands in for the allocator's
    finish(record, items=1000, wall_s=2.0, peak_memory_bytes=7)
    assert record["peak_memory_bytes"] == 7
    with pytest.raises(ValueError, match="items"):
        finish(record, items=0, wall_s=1.0)


def test_record_has_the_schema_keys() -> None:
    record = _run(Sampler(0, reader=FakeReader()), 0.02)
    finish(record, items=10, wall_s=0.02)
    schema = {
        "power_mean_w", "power_peak_w", "energy_j", "joules_per_item", "items_per_s_per_w",
        "sm_clock_mhz_mean", "mem_clock_mhz_mean", "temperature_c_max", "throttle_reasons",
        "throttled", "samples", "peak_memory_bytes",
    }  # fmt: skip
    assert schema <= set(record)


# --- hosts without NVML ---------------------------------------------------------------------


def _has_nvml() -> bool:
    return telemetry.nvml_available()[0]


@pytest.mark.skipif(_has_nvml(), reason="this host has NVML; the absent path is not reachable")
def test_without_nvml_telemetry_is_absent_not_an_error() -> None:
    ok, reason = telemetry.nvml_available()
    assert ok is False and reason
    assert Sampler.open(0) is None
    assert telemetry.device_handle(0) is None
    sampler = Sampler(0).start()  # no reader, no NVML: a silent no-op
    assert sampler.stop() == {}
    assert finish({}, items=1, wall_s=1.0) == {}


def test_peak_memory_is_none_on_cpu() -> None:
    pytest.importorskip("torch")
    assert telemetry.peak_memory_bytes("cpu") is None
    telemetry.reset_peak_memory("cpu")  # a no-op, not an error


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.skipif(not _has_cuda() or not _has_nvml(), reason="needs a CUDA GPU with NVML")
def test_real_gpu_sampler_and_peak_memory() -> None:
    import torch

    sampler = Sampler.open(0, interval_s=0.01)
    assert sampler is not None
    telemetry.reset_peak_memory(0)
    a = torch.randn(4096, 4096, device="cuda")
    with sampler:
        for _ in range(50):
            a = a @ a / 64.0
        torch.cuda.synchronize()
    wall_s = float(sampler.record["duration_s"])
    record = finish(sampler.record, items=50, wall_s=wall_s, peak_memory_bytes=telemetry.peak_memory_bytes(0))
    assert record["samples"] >= 2
    assert record["power_mean_w"] > 0
    assert record["energy_j"] > 0
    assert record["peak_memory_bytes"] >= 2 * 4096 * 4096 * 4
