"""bench.transfer_split and the per-case phase record, with a stand-in runner (CPU hosts have no CUDA)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_trt import bench


class Recorder:
    """A runner that logs its calls; ``stream`` stands for the case's CUDA stream."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[str] = []
        self.stream = object()
        self.fail_on = fail_on

    def load_inputs(self, host: np.ndarray) -> Any:
        self._log("load_inputs")
        return ("in", host.shape)

    def run(self, inputs: Any) -> Any:
        self._log("run")
        assert inputs[0] == "in"
        return "out"

    def to_host(self, outputs: Any) -> np.ndarray:
        self._log("to_host")
        assert outputs == "out"
        return np.zeros(1, dtype=np.float32)

    def _log(self, name: str) -> None:
        self.calls.append(name)
        if name == self.fail_on:
            raise RuntimeError(f"{name} broke")


def fake_split(h2d: Any, compute: Any, d2h: Any, stream: Any, iterations: int) -> dict[str, float]:
    """Runs the three steps in order, as transfer_split_events does around its CUDA events."""
    for _ in range(iterations):
        h2d(), compute(), d2h()
    return {"h2d_s": 1e-4, "compute_s": 1e-3, "d2h_s": 2e-4}


def test_transfer_split_drives_the_runners_own_calls_in_order() -> None:
    runner = Recorder()
    split, error = bench.transfer_split(runner, np.ones((2, 3), np.float32), split=fake_split)  # type: ignore[arg-type]
    assert error is None and split["compute_s"] == 1e-3
    assert runner.calls == ["load_inputs", "run", "to_host"] * bench.TRANSFER_ITERATIONS


def test_a_runner_that_cannot_be_split_is_recorded_not_raised() -> None:
    runner = Recorder(fail_on="to_host")
    split, error = bench.transfer_split(runner, np.ones((2, 3), np.float32), split=fake_split)  # type: ignore[arg-type]
    assert split == {} and error == "RuntimeError: to_host broke"
