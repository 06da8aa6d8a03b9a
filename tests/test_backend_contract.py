"""The backend contract: the same tests against every runner this host can run.

Here (CPU) that is torch and onnxruntime; on a GPU host the CUDA runners join, and TensorRT joins
wherever a real TensorRT is importable. Backends this host cannot run are skipped with the reason.
"""

import numpy as np
import pytest

from pytest_trt import matrix, settings
from pytest_trt.backends import create
from pytest_trt.case import Case
from pytest_trt.context import Context, on_stream, torch_fp32
from pytest_trt.model import ModelSpec

torch = pytest.importorskip("torch")


class ContractNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 6, 3, padding=1)
        self.head = torch.nn.Linear(6, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


SPEC = ModelSpec(name="contract-net", build=ContractNet, input_shape=(3, 8, 8))
DEVICES = ["cpu"] + (["cuda:0"] if matrix.cuda_available() else [])
CASES = [
    Case(None, backend, "fp32", batch, device)
    for device in DEVICES for backend in ("torch", "torch-compile", "onnxruntime", "tensorrt") for batch in (1, 3)
]


@pytest.fixture(params=CASES, ids=[f"{c.device}-{c.backend}-bs{c.batch_size}" for c in CASES])
def runner(request, tmp_path_factory):
    case = request.param
    reason = matrix.unsupported(case)
    if reason:
        pytest.skip(reason)
    ctx = Context(settings.defaults(cache_dir=tmp_path_factory.mktemp("cache"), batch_sizes=(1, 3),
                                    device=case.device))
    runner = create(ctx, case, SPEC)
    runner.prepare()
    yield runner
    runner.close()


def _run(runner, host):
    with on_stream(runner.stream):
        return runner.to_host(runner.run(runner.load_inputs(host)))


def test_outputs_match_fp32_reference(runner):
    host = SPEC.example_inputs(runner.case.batch_size)
    out = _run(runner, host)
    ref = torch_fp32(_reference_model(), host, "cpu")
    assert out.dtype == np.float32
    assert out.shape == (runner.case.batch_size, 4)
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)


def _reference_model():
    """The fp32 model with the weights the runner got (Context builds under the spec's seed)."""
    torch.manual_seed(SPEC.seed)
    return SPEC.build().eval()


def test_new_inputs_give_new_outputs(runner):
    first = _run(runner, SPEC.example_inputs(runner.case.batch_size, seed=1))
    second = _run(runner, SPEC.example_inputs(runner.case.batch_size, seed=2))
    assert not np.allclose(first, second)


def test_repeated_runs_on_loaded_inputs_are_deterministic_enough(runner):
    handle = None
    with on_stream(runner.stream):
        handle = runner.load_inputs(SPEC.example_inputs(runner.case.batch_size))
        a = runner.to_host(runner.run(handle))
        b = runner.to_host(runner.run(handle))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_cuda_runners_use_a_non_default_stream(runner):
    if not runner.case.is_cuda:
        pytest.skip("CPU runner: no stream")
    assert runner.stream is not None
    assert runner.stream != torch.cuda.default_stream(runner.stream.device)


def test_cuda_runners_split_transfers_from_compute(runner):
    """trtexec's H2D / compute / D2H split works through every CUDA runner's own calls."""
    from pytest_trt.bench import transfer_split

    if not runner.case.is_cuda:
        pytest.skip("CPU runner: no host-device transfers")
    host = SPEC.example_inputs(runner.case.batch_size)
    _run(runner, host)  # warm
    split, error = transfer_split(runner, host)
    assert error is None
    assert set(split) == {"h2d_s", "compute_s", "d2h_s"} and all(v > 0 for v in split.values())


def test_info_is_json_serialisable(runner):
    import json

    json.dumps(runner.info, default=str)
