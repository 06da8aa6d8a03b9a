"""How the GPU timing loop records and reads CUDA events: three paths, fastest first.

The loop records one event per call, so the host cost of one record is the floor of what can be
timed (a call shorter than it measures the host). Reading the events back happens outside the
samples but bounds how many iterations per second the loop can time. Measured on an H100 (session 3,
benchmarks/results/README-timer.md), in-loop cost per call / read-back per event: cuda-bindings
1.60 us / 0.73 us, ctypes into libcuda 1.66 us / 1.01 us, torch 3.17 us / 1.88 us. So cuda-bindings
comes first; libcuda serves hosts without it.

Every path but torch's is used only after a self-test on the host (two records must give a
non-negative interval that torch reads the same), so a driver or bindings mismatch falls back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable
from typing import Any, NamedTuple

# libcuda's cuEventElapsedTime reports milliseconds with ~0.5 us resolution; torch reads the same events.
SELF_TEST_TOLERANCE_MS = 0.002


class EventPath(NamedTuple):
    """``mark(event)`` turns a torch event into what ``record`` and ``elapsed`` take, outside the loop.

    ``record(handle)`` records it on the timed stream; ``elapsed(start, end)`` reads milliseconds
    between two recorded handles.
    """

    mark: Callable[[Any], Any]
    record: Callable[[Any], object]
    elapsed: Callable[[Any, Any], float]
    name: str


def torch_path(stream: Any) -> EventPath:
    def record(event: Any) -> None:
        event.record(stream)

    def elapsed(start: Any, end: Any) -> float:
        return float(start.elapsed_time(end))

    return EventPath(lambda event: event, record, elapsed, "torch")


def _raw_mark(stream: Any, wrap: Callable[[int], Any]) -> Callable[[Any], Any]:
    """torch creates an event's handle on its first record: record once through torch, keep the handle."""

    def mark(event: Any) -> Any:
        event.record(stream)
        return wrap(int(event.cuda_event))

    return mark


def _raw_record(cu_record: Callable[[Any, Any], object], raw_stream: Any) -> Callable[[Any], object]:
    def record(handle: Any) -> object:
        return cu_record(handle, raw_stream)

    return record


def bindings_path(stream: Any) -> EventPath:
    """cuEventRecord / cuEventElapsedTime through cuda-bindings."""
    from cuda.bindings import driver

    raw_stream = driver.CUstream(int(stream.cuda_stream))
    cu_record, cu_elapsed = driver.cuEventRecord, driver.cuEventElapsedTime
    success = driver.CUresult.CUDA_SUCCESS

    def elapsed(start: Any, end: Any) -> float:
        err, ms = cu_elapsed(start, end)
        if err != success:
            raise RuntimeError(f"cuEventElapsedTime failed: {err}")
        return float(ms)

    return EventPath(_raw_mark(stream, driver.CUevent), _raw_record(cu_record, raw_stream), elapsed,
                     "cuda-bindings")


def _libcuda() -> Any:
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    return ctypes.CDLL(name)


def libcuda_path(stream: Any) -> EventPath:
    """The same driver calls through ctypes: no argument wrapping or result enums per call."""
    lib = _libcuda()
    cu_record = lib.cuEventRecord
    cu_record.argtypes, cu_record.restype = [ctypes.c_void_p, ctypes.c_void_p], ctypes.c_int
    cu_elapsed = getattr(lib, "cuEventElapsedTime_v2", None) or lib.cuEventElapsedTime
    cu_elapsed.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_void_p]
    cu_elapsed.restype = ctypes.c_int
    raw_stream = ctypes.c_void_p(int(stream.cuda_stream))
    out = ctypes.c_float()
    out_ref = ctypes.byref(out)

    def elapsed(start: Any, end: Any) -> float:
        err = cu_elapsed(out_ref, start, end)
        if err:
            raise RuntimeError(f"cuEventElapsedTime failed: CUresult {err}")
        return float(out.value)

    return EventPath(_raw_mark(stream, ctypes.c_void_p), _raw_record(cu_record, raw_stream), elapsed, "libcuda")


PATHS: tuple[Callable[[Any], EventPath], ...] = (bindings_path, libcuda_path)  # fastest first


def works(path: EventPath, stream: Any, make_event: Callable[[], Any]) -> bool:
    """Self-test on this host: raw records succeed and read back as torch reads the same events."""
    try:
        first, second = make_event(), make_event()
        handles = [path.mark(first), path.mark(second)]
        stream.synchronize()
        results = [path.record(h) for h in handles]
        second.synchronize()
        if not all(_succeeded(r) for r in results):
            return False
        theirs = first.elapsed_time(second)
        ours = path.elapsed(*handles)
        return bool(theirs >= 0 and abs(ours - theirs) <= SELF_TEST_TOLERANCE_MS)
    except Exception:  # not installed, no libcuda, or a driver/bindings mismatch: torch's path works
        return False


def _succeeded(result: object) -> bool:
    if result is None or isinstance(result, int):
        return not result
    return bool(getattr(result[0], "value", result[0]) == 0)  # type: ignore[index]


def best_path(stream: Any, make_event: Callable[[], Any]) -> Callable[[Any], EventPath]:
    """The first path that passes its self-test on ``stream``'s device; torch's always works."""
    for factory in PATHS:
        try:
            path = factory(stream)
        except Exception:
            continue
        if works(path, stream, make_event):
            return factory
    return torch_path
