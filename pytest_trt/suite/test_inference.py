"""The built-in suite: the zoo's models over the backend × precision × batch-size matrix.

`pytest --pyargs pytest_trt.suite` (or `pytest benchmarks` in a checkout) runs the small trained
models on the CPU default; `--trt-device cuda`, `--trt-backend`, `--trt-precision`,
`--trt-batch-size` and `--trt-model` widen it.
"""

from collections.abc import Callable

import pytest

pytestmark = pytest.mark.trt(models="zoo")


# The fixtures' own types are internal to the plugin; a test module needs only that they call.
def test_latency(trt_bench: Callable[[object], object], trt_runner: object) -> None:
    """Time the case, check its outputs against fp32 and its task metric against fp32's."""
    trt_bench(trt_runner)
