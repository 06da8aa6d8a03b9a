"""The built-in suite: the zoo's models over the backend × precision × batch-size matrix.

`pytest benchmarks` runs the small trained models on the CPU default; `--trt-device cuda`,
`--trt-backend`, `--trt-precision`, `--trt-batch-size` and `--trt-model` widen it.
"""

import pytest

pytestmark = pytest.mark.trt(models="zoo")


def test_latency(trt_bench, trt_runner):
    """Time the case, check its outputs against fp32 and its task metric against fp32's."""
    trt_bench(trt_runner)
