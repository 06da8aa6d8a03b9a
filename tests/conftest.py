"""Shared helpers for the plugin's own tests."""

import pytest

# A tiny user model: what a user's conftest looks like when benchmarking their own network.
USER_CONFTEST = '''
import pytest
import torch
from pytest_trt import ModelSpec


class TinyNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 5)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture
def trt_model():
    return ModelSpec(name="tiny-net", build=TinyNet, input_shape=(3, 16, 16))
'''

# For pytester projects whose assertions are about the gate's outcome: the host reads as quiet (no other
# process took its CPUs), so a loaded CI host does not make every baseline run "contended" and left out.
QUIET_HOST = '''
import pytest_trt.host
from pytest_trt.records import HostLoad
pytest_trt.host.since = lambda start, *a, **k: HostLoad(1.0, 1.0, None, None, 0.5, 2, others_cpu_s=0.0)
'''

FAST = ["--trt-warmup", "0.01", "--trt-min-time", "0.05", "--trt-max-time", "0.3", "-p", "no:cacheprovider"]


@pytest.fixture
def user_project(pytester):
    """A pytester project with the tiny user model and one benchmark test."""
    pytester.makeini("[pytest]\n")  # a fixed rootdir, as in a real project
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_bench="def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n")
    return pytester


@pytest.fixture(scope="session")
def repo_script():
    """Load a script of the repository (lab/, lab/tools/) by its path, as a module: they are not
    packages, and loading by path works in any pytest import mode."""
    import importlib.util
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]

    def load(relative: str):
        path = root / relative
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules.setdefault(path.stem, module)
        spec.loader.exec_module(module)
        return module

    return load
