"""The timer-fidelity benchmark's bookkeeping (lab/timer_fidelity.py), without timing anything."""

from __future__ import annotations

import types
from typing import Any

import pytest


@pytest.fixture(scope="module")
def tf(repo_script: Any) -> types.ModuleType:
    module: types.ModuleType = repo_script("lab/timer_fidelity.py")
    return module


class FakeSampler:
    """Stands for an NVML sampler: reports the clock the fake GPU ran at while a timer ran."""

    clock = {"a": 1980.0, "b": 1755.0}
    current = "a"

    def start(self) -> None:
        pass

    def stop(self) -> dict[str, Any]:
        return {"sm_clock_mhz_mean": self.clock[FakeSampler.current], "power_mean_w": 500.0,
                "throttled_fraction": 0.0}


def _timer(name: str, cycles: float) -> Any:
    def run() -> float:
        FakeSampler.current = name
        return cycles / (FakeSampler.clock[name] * 1e6)  # a compute-bound kernel: time = cycles / clock

    return run


def test_rounds_rotate_and_every_timer_run_is_watched(tf: types.ModuleType) -> None:
    order: list[str] = []

    def timer(name: str) -> Any:
        def run() -> float:
            order.append(name)
            return 1.0

        return run

    runs = tf.interleaved({"x": timer("x"), "y": timer("y"), "z": timer("z")}, 3, watch=FakeSampler)
    assert order == ["x", "y", "z", "y", "z", "x", "z", "x", "y"]
    assert all(len(r["repeats_sm_clock_mhz_mean"]) == 3 and r["median_s"] == 1.0 for r in runs.values())


def test_a_disagreement_from_clocks_alone_vanishes_in_cycles(tf: types.ModuleType) -> None:
    row = {
        "timers": tf.interleaved({"a": _timer("a", 1e5), "b": _timer("b", 1e5)}, 5, watch=FakeSampler),
        "pairs": [tf.pair("a", "b")],
    }
    assert tf.ratios(row)["a / b"] == pytest.approx(1755 / 1980)  # 11 % apart in time
    view = tf.clock_view(row)
    assert view["pairs"]["a / b"] == pytest.approx(1.0)  # identical in SM cycles
    assert view["timers"]["b"]["sm_clock_mhz_median"] == 1755.0


def test_without_a_watch_there_is_no_clock_view(tf: types.ModuleType) -> None:
    row = {"timers": tf.interleaved({"a": lambda: 1.0, "b": lambda: 2.0}, 2), "pairs": [tf.pair("a", "b")]}
    assert tf.clock_view(row) == {"timers": {}, "pairs": {}}
