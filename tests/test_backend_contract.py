"""The backend contract over the registry: every registered backend × device × batch size.

Here (CPU) that is torch, torch-compile and onnxruntime; on a GPU host the CUDA runners join, and
TensorRT joins wherever a real TensorRT is importable. Backends this host cannot run are skipped
with their own reason. The suite itself lives in pytest_trt.backends.contract, so a backend from
outside the package runs the same tests (tests/test_backend_plugin.py shows one).
"""

from pytest_trt.backends.contract import BackendContract


class TestBackendContract(BackendContract):
    backends = None  # every registered backend
