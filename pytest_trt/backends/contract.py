"""The backend contract: what every backend's runners must do, as a test suite anyone can run.

The plugin's own tests run it over every registered backend; a backend from elsewhere runs the same
suite by subclassing it in a test module::

    from pytest_trt.backends.contract import BackendContract

    class TestMyBackend(BackendContract):
        backends = ("my-backend",)  # None (the default): every registered backend

Each test runs per backend × device × batch size on a small Conv → ReLU → mean → Linear network in
fp32, against the PyTorch fp32 outputs of the same weights. Cases this host cannot run are skipped
with the backend's own reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest

from pytest_trt import backends as registry
from pytest_trt.backends.base import Runner, UnsupportedCase
from pytest_trt.case import Case
from pytest_trt.model import ModelSpec

if TYPE_CHECKING:
    import torch

OUTPUTS = 4  # the contract network's output width


def _contract_net() -> torch.nn.Module:
    import torch

    class ContractNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
            self.head = torch.nn.Linear(6, OUTPUTS)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))
            return out

    return ContractNet()


SPEC = ModelSpec(name="contract-net", build=_contract_net, input_shape=(3, 8, 8))


def default_devices() -> tuple[str, ...]:
    from pytest_trt.matrix import cuda_available

    return ("cpu", "cuda:0") if cuda_available() else ("cpu",)


def cases(names: Sequence[str] | None = None, devices: Sequence[str] | None = None,
          batch_sizes: Sequence[int] = (1, 3)) -> list[Case]:
    """The contract's fp32 cases: each backend × device × batch size."""
    chosen = registry.names() if names is None else tuple(names)
    return [Case(None, backend, "fp32", batch, device)
            for device in (devices or default_devices()) for backend in chosen for batch in batch_sizes]


def case_id(case: Case) -> str:
    return f"{case.device}-{case.backend}-bs{case.batch_size}"


def reference(host: np.ndarray) -> np.ndarray:
    """fp32 PyTorch outputs of the contract network with the weights every runner gets (built under
    the spec's seed, as the session builds it)."""
    import torch

    from pytest_trt.artifacts import torch_fp32

    torch.manual_seed(SPEC.seed)
    return torch_fp32(SPEC.build().eval(), host, "cpu")


def run_once(runner: Runner, host: np.ndarray) -> np.ndarray:
    from pytest_trt.context import on_stream

    with on_stream(runner.stream):
        return runner.to_host(runner.run(runner.load_inputs(host)))


def open_runner(case: Case, cache_dir: Path, batch_sizes: Sequence[int]) -> Runner:
    """A prepared runner for ``case`` from its registered backend; skips with the backend's reason."""
    from pytest_trt import matrix, settings
    from pytest_trt.context import Context

    reason = matrix.unsupported(case)
    if reason:
        pytest.skip(reason)
    ctx = Context(settings.defaults(cache_dir=cache_dir, batch_sizes=tuple(batch_sizes), device=case.device))
    try:
        runner = registry.get(case.backend).create_runner(case, SPEC, ctx.artifacts)
        runner.prepare()
    except UnsupportedCase as exc:
        pytest.skip(str(exc))
    return runner


class BackendContract:
    """The contract tests; subclass it as ``Test...`` to collect them (see the module docstring)."""

    backends: tuple[str, ...] | None = None  # None: every registered backend
    devices: tuple[str, ...] | None = None  # None: cpu, and cuda:0 where CUDA is available
    batch_sizes: tuple[int, ...] = (1, 3)
    rtol, atol = 1e-3, 1e-4  # against fp32 PyTorch: the same math in another order

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "contract_case" in metafunc.fixturenames:
            found = cases(self.backends, self.devices, self.batch_sizes)
            metafunc.parametrize("contract_case", found, ids=[case_id(c) for c in found])
        if "contract_backend" in metafunc.fixturenames:
            names = registry.names() if self.backends is None else self.backends
            metafunc.parametrize("contract_backend", names)

    @pytest.fixture
    def runner(self, contract_case: Case, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
        pytest.importorskip("torch")  # the reference outputs come from PyTorch
        runner = open_runner(contract_case, tmp_path_factory.mktemp("cache"), self.batch_sizes)
        try:
            yield runner
        finally:
            runner.close()

    def test_declarations_are_well_formed(self, contract_backend: str) -> None:
        backend = registry.get(contract_backend)
        for device in ("cpu", "cuda:0"):
            reason = backend.missing(device)
            assert reason is None or (isinstance(reason, str) and reason), f"missing({device!r}) gave {reason!r}"
        versions = dict(backend.versions())
        assert all(isinstance(k, str) and (v is None or isinstance(v, str)) for k, v in versions.items()), versions

    def test_runner_follows_the_protocol(self, runner: Runner, contract_case: Case) -> None:
        assert isinstance(runner, Runner)
        assert runner.case == contract_case

    def test_outputs_match_fp32_reference(self, runner: Runner) -> None:
        host = SPEC.example_inputs(runner.case.batch_size)
        out = run_once(runner, host)
        assert out.dtype == np.float32
        assert out.shape == (runner.case.batch_size, OUTPUTS)
        np.testing.assert_allclose(out, reference(host), rtol=self.rtol, atol=self.atol)

    def test_new_inputs_give_new_outputs(self, runner: Runner) -> None:
        first = run_once(runner, SPEC.example_inputs(runner.case.batch_size, seed=1))
        second = run_once(runner, SPEC.example_inputs(runner.case.batch_size, seed=2))
        assert not np.allclose(first, second)

    def test_repeated_runs_on_loaded_inputs_are_deterministic_enough(self, runner: Runner) -> None:
        from pytest_trt.context import on_stream

        with on_stream(runner.stream):
            handle = runner.load_inputs(SPEC.example_inputs(runner.case.batch_size))
            a = runner.to_host(runner.run(handle))
            b = runner.to_host(runner.run(handle))
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    def test_cuda_runners_use_a_non_default_stream(self, runner: Runner) -> None:
        if not runner.case.is_cuda:
            pytest.skip("CPU runner: no stream")
        import torch

        assert runner.stream is not None
        assert runner.stream != torch.cuda.default_stream(runner.stream.device)

    def test_cuda_runners_split_transfers_from_compute(self, runner: Runner) -> None:
        """trtexec's H2D / compute / D2H split works through every CUDA runner's own calls."""
        from pytest_trt.diagnostics import transfer_split

        if not runner.case.is_cuda:
            pytest.skip("CPU runner: no host-device transfers")
        host = SPEC.example_inputs(runner.case.batch_size)
        run_once(runner, host)  # warm
        split, error = transfer_split(runner, host)
        assert error is None
        assert set(split) == {"h2d_s", "compute_s", "d2h_s"} and all(v > 0 for v in split.values())

    def test_info_is_json_serialisable(self, runner: Runner) -> None:
        json.dumps(runner.info, default=str)
