"""The built-in suite, run from a checkout: `pytest benchmarks`.

The tests live in the package (`pytest_trt/suite/test_inference.py`) so that an installed wheel runs
them too (`pytest --pyargs pytest_trt.suite`); importing them here collects the same cases under this
file's node ids.
"""

from pytest_trt.suite.test_inference import pytestmark, test_latency

__all__ = ["pytestmark", "test_latency"]
