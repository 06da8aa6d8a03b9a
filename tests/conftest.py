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

FAST = ["--trt-warmup", "0.01", "--trt-min-time", "0.05", "--trt-max-time", "0.3", "-p", "no:cacheprovider"]


@pytest.fixture
def user_project(pytester):
    """A pytester project with the tiny user model and one benchmark test."""
    pytester.makeini("[pytest]\n")  # a fixed rootdir, as in a real project
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_bench="def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n")
    return pytester
