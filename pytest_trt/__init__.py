"""pytest-trt: performance-regression testing of GPU inference as a pytest plugin.

Importing this package imports no torch, onnxruntime or tensorrt: they load where used.
"""

from pytest_trt.case import Case
from pytest_trt.model import Dataset, ModelSpec
from pytest_trt.records import CaseResult, Stats, Timing

__all__ = ["Case", "CaseResult", "Dataset", "ModelSpec", "Stats", "Timing"]
__version__ = "0.1.0"
