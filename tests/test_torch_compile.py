"""torch.compile cases compile their own static shape, whatever ran before them in the process."""

import pytest

from pytest_trt.case import Case
from pytest_trt.model import ModelSpec

torch = pytest.importorskip("torch")


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.lin(x).relu()


def test_each_batch_size_compiles_afresh_with_static_shapes():
    # Without a reset, dynamo recompiles the second batch size with a dynamic batch dimension and the
    # third reuses that generic code (compile_s ~0): the cell would time code no deployment runs.
    from torch._dynamo.eval_frame import _debug_get_cache_entry_list

    from pytest_trt.backends.pytorch import TorchRunner

    spec = ModelSpec(name="tiny", build=TinyNet, input_shape=(4,))
    for batch in (1, 3, 5):
        runner = TorchRunner(Case(None, "torch-compile", "fp32", batch, "cpu"), spec)
        runner.prepare()
        entries = _debug_get_cache_entry_list(TinyNet.forward.__code__)
        assert len(entries) == 1, f"batch {batch}: {len(entries)} compiled entries, expected only its own"
        assert runner.info["compile_dynamic"] is False
        runner.close()
