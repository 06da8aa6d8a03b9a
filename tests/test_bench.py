"""diagnostics.transfer_split and bench's timed loop, with a stand-in runner (CPU hosts have no CUDA)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pytest_trt import bench, diagnostics


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
    split, error = diagnostics.transfer_split(runner, np.ones((2, 3), np.float32), split=fake_split)  # type: ignore[arg-type]
    assert error is None and split["compute_s"] == 1e-3
    assert runner.calls == ["load_inputs", "run", "to_host"] * diagnostics.TRANSFER_ITERATIONS


def test_a_transfer_round_frees_the_previous_rounds_buffers_before_making_its_own() -> None:
    import weakref

    class Buffer:  # stands for a device tensor
        pass

    made: list[weakref.ref[Buffer]] = []
    alive_when_made: list[int] = []

    def make(*_: Any) -> Buffer:
        alive_when_made.append(sum(ref() is not None for ref in made))
        buffer = Buffer()
        made.append(weakref.ref(buffer))
        return buffer

    runner = Recorder()
    runner.load_inputs = make  # type: ignore[method-assign]
    runner.run = make  # type: ignore[method-assign]
    runner.to_host = lambda outputs: np.zeros(1, np.float32)  # type: ignore[method-assign]
    diagnostics.transfer_split(runner, np.ones((2, 3), np.float32), split=fake_split)  # type: ignore[arg-type]
    assert alive_when_made == [0, 1] * diagnostics.TRANSFER_ITERATIONS  # a round's outputs see only its inputs


def test_a_runner_that_cannot_be_split_is_recorded_not_raised() -> None:
    runner = Recorder(fail_on="to_host")
    split, error = diagnostics.transfer_split(runner, np.ones((2, 3), np.float32), split=fake_split)  # type: ignore[arg-type]
    assert split == {} and error == "RuntimeError: to_host broke"


def test_energy_per_item_counts_every_call_of_a_blocked_case(monkeypatch: Any) -> None:
    """A CUDA case timed in blocks of 16 calls per sample did 16 x n calls: energy is shared by all."""
    from types import SimpleNamespace

    from pytest_trt import settings, telemetry, timing
    from pytest_trt.case import Case
    from pytest_trt.context import Context
    from pytest_trt.records import Stats, Timing

    stats = Stats(n=100, min=1e-4, max=1e-4, mean=1e-4, median=1e-4, p90=1e-4, p95=1e-4, p99=1e-4, stddev=0.0,
                  cv=0.0, median_ci_low=1e-4, median_ci_high=1e-4, throughput=4 * 1600 / 2.0)
    blocked = Timing(clock="cuda-event", samples=[1e-4], stats=stats, warmup_iterations=1, warmup_s=0.1,
                     wall_s=2.0, stop_reason="converged", calls_per_sample=16)

    class FakeSampler:  # stands for NVML: 100 W over the loop
        def start(self) -> None:
            pass

        def stop(self) -> dict[str, Any]:
            return {"power_mean_w": 100.0}

    monkeypatch.setattr(timing, "measure", lambda *args, **kwargs: blocked)
    monkeypatch.setattr(telemetry.Sampler, "open", classmethod(lambda cls, index, interval_s=0.01: FakeSampler()))
    monkeypatch.setattr(telemetry, "reset_peak_memory", lambda device: None)
    monkeypatch.setattr(telemetry, "peak_memory_bytes", lambda device: 1)
    runner = SimpleNamespace(load_inputs=lambda x: x, run=lambda handle: handle, stream=None)
    case = Case("m", "torch", "fp16", 4, "cuda:0")
    _, record, _, _ = bench._measure(Context(settings.defaults()), runner, case, np.zeros((4, 3)), "t.py::t")
    assert record is not None
    assert record.joules_per_item == 100.0 * 2.0 / (4 * 100 * 16)
    assert record.items_per_s_per_w == (4 * 100 * 16) / 2.0 / 100.0


def test_the_timed_loop_holds_no_earlier_output_while_the_runner_runs() -> None:
    """Only the last output is kept (for the timed-output check); an older one would add to the peak."""
    import weakref
    from types import SimpleNamespace

    from pytest_trt import settings
    from pytest_trt.case import Case
    from pytest_trt.context import Context

    class Output:  # stands for a device tensor
        pass

    alive_during_call: list[bool] = []
    previous: list[Any] = [lambda: None]  # a weak reference to the output of the call before

    def run(handle: Any) -> Output:
        alive_during_call.append(previous[0]() is not None)
        out = Output()
        previous[0] = weakref.ref(out)
        return out

    runner = SimpleNamespace(load_inputs=lambda x: x, run=run, stream=None)
    quick = settings.defaults(warmup_s=0.0, min_time_s=0.01, max_time_s=0.05, min_iterations=5)
    case = Case("m", "torch", "fp32", 1, "cpu")
    timing, _, _, last = bench._measure(Context(quick), runner, case, np.zeros((1, 3)), "t.py::t")
    assert len(alive_during_call) >= 5 and not any(alive_during_call)
    assert isinstance(last, Output) and previous[0]() is last
