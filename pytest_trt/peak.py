"""The device's measured dense matmul peak, for "% of peak" next to a case's achieved TFLOP/s.

A datasheet peak assumes boost clocks and ideal kernels; a measured one says what a large cuBLAS
matmul actually reaches on this card, at its current clocks and power limit. Measured once per
process and device/dtype (about a second), on CUDA only.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pytest_trt.mathmode import tf32

if TYPE_CHECKING:
    import torch

DTYPES = ("fp16", "bf16", "tf32", "fp32")


def measure_peak(device: str = "cuda", dtype: str = "fp16", *, size: int = 8192) -> float:
    """Dense matmul TFLOP/s: median over repeats of ``size``² × ``size``² products, CUDA events.

    ``tf32`` is fp32 storage with TF32 tensor-core math; ``fp32`` forces full-precision math.
    """
    if dtype not in DTYPES:
        raise ValueError(f"measure_peak dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if size < 256:
        raise ValueError(f"measure_peak size must be >= 256 to be compute-bound, got {size}")
    import torch

    dev = torch.device(device)
    if dev.type != "cuda":
        raise ValueError(f"measure_peak needs a CUDA device, got {device!r}")
    if not torch.cuda.is_available():
        raise RuntimeError("measure_peak: no CUDA device is available on this host")
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    return _measure(index, dtype, size)


def percent_of_peak(achieved_tflops: float, peak_tflops: float) -> float:
    """Achieved throughput as a percentage of the measured peak."""
    if peak_tflops <= 0:
        raise ValueError(f"peak_tflops must be positive, got {peak_tflops!r}")
    return 100.0 * achieved_tflops / peak_tflops


@functools.cache
def _measure(index: int, dtype: str, size: int) -> float:
    import torch

    per_matmul = _time_matmuls(torch.device("cuda", index), dtype, size)
    torch.cuda.empty_cache()  # the operands are gone: hand their memory back before the cases run
    return 2.0 * size**3 / statistics.median(per_matmul) / 1e12


def _time_matmuls(dev: torch.device, dtype: str, size: int) -> list[float]:
    """Seconds per matmul, one figure per repeat."""
    import torch

    torch_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype, torch.float32)
    with tf32(dtype == "tf32"), torch.cuda.device(dev):
        gen = torch.Generator(device=dev).manual_seed(0)
        # Non-zero inputs: zeros draw less power and can clock higher (docs/design.md, rule 9).
        a = torch.randn(size, size, device=dev, dtype=torch_dtype, generator=gen)
        b = torch.randn(size, size, device=dev, dtype=torch_dtype, generator=gen)
        out = torch.empty(size, size, device=dev, dtype=torch_dtype)
        stream = torch.cuda.Stream(dev)  # type: ignore[no-untyped-call]

        def matmul() -> None:
            torch.matmul(a, b, out=out)

        with torch.cuda.stream(stream):
            _warm_up(matmul, stream, seconds=0.2)
            return [_timed(matmul, stream, inner=10) for _ in range(7)]


def _warm_up(fn: Callable[[], None], stream: Any, seconds: float) -> None:
    """Run until ``seconds`` have passed: cuBLAS picks its kernel, clocks settle."""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for _ in range(5):
            fn()
        stream.synchronize()


def _timed(fn: Callable[[], None], stream: Any, inner: int) -> float:
    """Seconds per call of ``inner`` back-to-back calls between two CUDA events."""
    import torch

    start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    start.record(stream)
    for _ in range(inner):
        fn()
    end.record(stream)
    end.synchronize()
    return float(start.elapsed_time(end)) / 1000.0 / inner
