"""TensorRT streams through the seam: a spawned stream is a new execution context of the same engine,
with its own CUDA stream and buffers (tests/fake_tensorrt.py stands in for TensorRT; no GPU here)."""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from pytest_trt.backends.trt import engine
from pytest_trt.backends.trt.build import EngineSpec
from pytest_trt.backends.trt.runner import TensorRTRunner
from pytest_trt.case import Case
from pytest_trt.concurrency import open_runners

SAMPLE = (3, 8, 8)


def _fake_tensorrt() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("fake_tensorrt", Path(__file__).with_name("fake_tensorrt.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fake_tensorrt", module)
    spec.loader.exec_module(module)
    trt: types.ModuleType = module.make_fake_tensorrt()
    return trt


def _relu(path: Path) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", *SAMPLE])
    y = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", *SAMPLE])
    graph = helper.make_graph([helper.make_node("Relu", ["input"], ["output"])], "relu", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


Prepared = tuple[TensorRTRunner, types.ModuleType]


@pytest.fixture
def prepared(tmp_path: Path) -> Prepared:
    """A runner in the state ``prepare()`` leaves it in, minus the CUDA calls this host cannot make."""
    pytest.importorskip("torch")
    trt = _fake_tensorrt()
    onnx_file = _relu(tmp_path / "relu.onnx")
    case = Case("relu", "tensorrt", "fp16", 8, "cuda:0", streams=3)
    runner = TensorRTRunner(case, onnx_file, cache_dir=tmp_path, batch_sizes=[1, 8], trt=trt)
    spec = EngineSpec.for_batches(onnx_file, "fp16", (1, 8), SAMPLE)
    built = engine.load_or_build(spec, tmp_path, gpu_name="NVIDIA H100", compute_capability="9.0", trt=trt)
    runner._build, runner._context, runner.stream = built, built.engine.create_execution_context(), "stream-0"
    runner._sample_shape = SAMPLE
    runner._read_io(built.engine)
    return runner, trt


def test_a_spawned_stream_is_a_new_context_of_the_same_engine(prepared: Prepared) -> None:
    runner, trt = prepared
    before = [call[0] for call in trt.calls]
    made: list[object] = []
    twin = runner.spawn(make_stream=lambda device: made.append(device) or f"stream-{len(made)}")
    after = [call[0] for call in trt.calls][len(before):]
    assert after == ["create_execution_context"]  # no build, no second engine deserialized
    assert twin._build is runner._build and twin._context is not runner._context
    assert twin.stream == "stream-1" and twin.stream != runner.stream
    assert twin._buffers is not runner._buffers and twin._graphs is not runner._graphs  # buffers of its own
    assert twin._outputs == runner._outputs and twin._outputs is not runner._outputs
    assert twin.case == runner.case and twin.info["spawned"].startswith("execution context")


def test_the_streams_of_a_tensorrt_case_are_spawned(prepared: Prepared) -> None:
    runner, _ = prepared
    streams = iter(["stream-1", "stream-2"])
    original = runner.spawn
    runner.spawn = lambda: original(make_stream=lambda device: next(streams))  # type: ignore[method-assign]
    runners, made_by = open_runners(runner, 3, lambda: pytest.fail("TensorRT streams share the engine"))
    assert made_by == "spawn" and [r.stream for r in runners] == ["stream-0", "stream-1", "stream-2"]
    assert len({id(r._context) for r in runners}) == 3


def test_spawn_needs_a_prepared_runner(tmp_path: Path) -> None:
    runner = TensorRTRunner(Case("relu", "tensorrt", "fp16", 8, "cuda:0"), tmp_path / "x.onnx", cache_dir=tmp_path,
                            batch_sizes=[8])
    with pytest.raises(RuntimeError, match="spawn called before prepare"):
        runner.spawn(make_stream=lambda device: None)
