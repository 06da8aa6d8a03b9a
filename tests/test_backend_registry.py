"""The backend registry: built-ins, registration rules, and the matrix asking the backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pytest_trt import backends, matrix
from pytest_trt.backends import Backend
from pytest_trt.case import Case


def _never(case, spec, artifacts):  # a runner factory these tests never call
    raise AssertionError("not called")


def _cpu_only(name: str = "cpu-only", **changes: object) -> Backend:
    fields: dict[str, object] = {"name": name, "precisions": {"cpu": ("fp32",)}, "variants": {"cpu": ("eager",)},
                                 "create_runner": _never}
    return Backend(**{**fields, **changes})  # type: ignore[arg-type]


@pytest.fixture
def registered() -> Iterator[Backend]:
    backend = backends.register(_cpu_only(versions=lambda: {"cpu-only-lib": "2.0", "python": "0.0"}))
    yield backend
    backends.unregister(backend.name)


def test_builtins_in_their_order_and_torch_compile_is_opt_in() -> None:
    assert backends.names()[:4] == ("torch", "torch-compile", "onnxruntime", "tensorrt")
    assert not backends.get("torch-compile").default
    assert "torch-compile" not in backends.defaults("cpu")


def test_variants_are_the_union_of_the_backends_variants() -> None:
    assert backends.variants() == ("eager", "channels-last", "cuda-graph", "channels-last+cuda-graph", "trt-ep")


def test_cuda_graph_is_declared_only_on_cuda() -> None:
    torch_backend = backends.get("torch")
    assert "cuda-graph" not in torch_backend.variants["cpu"] and "cuda-graph" in torch_backend.variants["cuda"]
    assert "trt-ep" in backends.get("onnxruntime").variants["cuda"]
    assert "trt-ep" not in backends.get("onnxruntime").variants["cpu"]


def test_a_registered_backend_is_known_to_the_matrix(registered: Backend) -> None:
    assert "cpu-only" in backends.names() and backends.get("cpu-only") is registered
    assert "cpu-only" in backends.available("cpu") and "cpu-only" in backends.defaults("cpu")
    assert "cpu-only" not in backends.available("cuda:0")
    assert matrix.unsupported(Case(None, "cpu-only", "fp32", 1, "cpu")) is None
    assert matrix.unsupported(Case(None, "cpu-only", "fp32", 1, "cuda:0")) == "cpu-only does not run on cuda devices"
    assert "fp16 is not supported by cpu-only on cpu (supported: fp32)" == matrix.unsupported(
        Case(None, "cpu-only", "fp16", 1, "cpu"))


def test_its_versions_join_the_software_record_without_overwriting_others(registered: Backend) -> None:
    from pytest_trt.environment import software_versions

    software = software_versions()
    assert software["cpu-only-lib"] == "2.0"
    assert software["python"] != "0.0"


def test_unregistered_names_are_unknown() -> None:
    with pytest.raises(KeyError, match="unknown backend 'nope'; registered: torch, torch-compile"):
        backends.get("nope")
    assert matrix.unsupported(Case(None, "nope", "fp32", 1, "cpu")) == (
        "unknown backend 'nope'; registered: " + ", ".join(backends.names()))


def test_a_second_backend_under_a_taken_name_is_refused(registered: Backend) -> None:
    backends.register(registered)  # the same object again: nothing happens
    with pytest.raises(ValueError, match="'cpu-only' is already registered"):
        backends.register(_cpu_only())
    with pytest.raises(ValueError, match="'torch' is already registered"):
        backends.register(_cpu_only("torch"))
    with pytest.raises(ValueError, match="built-in"):
        backends.unregister("torch")


def test_a_failed_batch_registers_nothing() -> None:
    with pytest.raises(ValueError, match="already registered"):
        backends.register_all([[_cpu_only("first")], [_cpu_only("torch")]])
    assert "first" not in backends.names()
    with pytest.raises(TypeError, match="expected a pytest_trt.backends.Backend, got str"):
        backends.register_all([["numpy"]])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "My Backend"}, "lower-case letters"),
        ({"name": "a,b"}, "lower-case letters"),
        ({"precisions": {"cpu": ("fp33",)}}, r"precisions \['fp33'\] on cpu"),
        ({"precisions": {"tpu": ("fp32",)}}, r"keys \['tpu'\] are not device kinds"),
        ({"variants": {"cpu": "eager"}}, "must be a tuple of names"),
        ({"variants": {"cuda": ("eager",)}}, "runs on cpu but declares no variants there"),
    ],
)
def test_malformed_declarations_are_refused_with_what_is_wrong(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _cpu_only(**changes)


def test_declarations_cannot_change_after_registration(registered: Backend) -> None:
    with pytest.raises(TypeError):
        registered.precisions["cuda"] = ("fp16",)  # type: ignore[index]


def test_trt_ep_on_a_cpu_case_is_a_skip_with_a_reason() -> None:
    reason = matrix.unsupported(Case(None, "onnxruntime", "fp32", 1, "cpu", "trt-ep"))
    assert reason in ("onnxruntime has no TensorrtExecutionProvider here",
                      "variant trt-ep of onnxruntime runs on cuda devices only")
