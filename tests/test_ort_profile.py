"""pytest_trt.ort_profile: placement and host time from ONNX Runtime's trace events."""

from __future__ import annotations

from typing import Any

from pytest_trt.backends import ort_profile


def _node(name: str, op: str, provider: str, ts: float, dur: float) -> dict[str, Any]:
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts, "dur": dur,
            "args": {"op_name": op, "provider": provider}}


def _run(ts: float, dur: float) -> dict[str, Any]:
    return {"cat": "Session", "name": "model_run", "ts": ts, "dur": dur}


def _trace() -> list[dict[str, Any]]:
    cuda, cpu = "CUDAExecutionProvider", "CPUExecutionProvider"
    events: list[dict[str, Any]] = [{"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 5}]
    for start in (100.0, 1000.0, 2000.0):  # three runs; the first carries one-off costs
        slow = 9000.0 if start == 100.0 else 600.0
        events += [_run(start, 800.0), _node("conv1", "Conv", cuda, start + 1, 50.0),
                   _node("conv2", "Conv", cuda, start + 60, 50.0), _node("resize", "Resize", cpu, start + 120, slow),
                   _node("shape", "Shape", cpu, start + 130, 0.0)]
    return events


def test_placement_counts_nodes_per_provider_and_names_cpu_ops() -> None:
    summary = ort_profile.summarize(_trace())
    assert summary["nodes_by_provider"] == {"CPUExecutionProvider": 2, "CUDAExecutionProvider": 2}
    assert summary["cpu_ops"] == ["Resize", "Shape"]


def test_the_first_run_is_left_out_and_time_is_per_run() -> None:
    summary = ort_profile.summarize(_trace())
    assert summary["runs_profiled"] == 2 and summary["run_ms_median"] == 0.8
    top = summary["top_ops"][0]
    assert (top["op"], top["provider"]) == ("Resize", "CPUExecutionProvider")
    assert top["ms_per_run"] == 0.6  # the first run's 9 ms (one-off) does not count
    assert abs(top["share"] - 0.6 / 0.7) < 1e-9
    line = ort_profile.describe(summary)
    assert abs(summary["node_ms_per_run"] - 0.7) < 1e-9  # 2 x 0.05 ms of Conv launches + 0.6 ms of Resize
    assert line == ("nodes 2 on CPU, 2 on CUDA; CPU ops: Resize, Shape; most host time: Resize (86%); "
                    "nodes' host time 0.7 of 0.8 ms per run")


def test_a_trace_of_one_run_keeps_it_and_an_empty_trace_summarizes_to_nothing() -> None:
    one = [_run(0, 100.0), _node("a", "Add", "CPUExecutionProvider", 1, 20.0)]
    assert ort_profile.summarize(one)["top_ops"][0]["ms_per_run"] == 0.02
    empty = ort_profile.summarize([])
    assert empty["nodes_by_provider"] == {} and empty["top_ops"] == [] and empty["run_ms_median"] is None
    assert ort_profile.describe(empty) == "no node events in the profile"
