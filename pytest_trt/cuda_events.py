"""How the GPU timing loop records and reads CUDA events: three paths, fastest first.

The loop records one event per sample (a call, or a block of short calls: see cuda_timing.py), so
the host cost of one record is the floor of what a per-call sample can time. Reading the events back
happens outside the samples but bounds how many iterations per second the loop can time. Measured on
an H100 (lab/results/README-timer.md), in-loop cost per call / read-back per event: cuda-bindings
1.60 us / 0.73 us, ctypes into libcuda 1.66 us / 1.01 us, torch 3.17 us / 1.88 us; with the bound
recorders and bulk reads below, 1.54 us / 0.47 us for cuda-bindings in one run and 2.37 us / 0.78 us
in another. So cuda-bindings comes first; libcuda serves hosts without it.

Per call the loop runs only ``bind``'s zero-argument recorder (a C-level ``functools.partial`` made
outside the loop, so no Python frame per record), and reads a whole chunk back with ``read``, which
maps the driver call over the chunk in C instead of calling a Python wrapper per event.

Every path but torch's is used only after a self-test on the host (two records must give a
non-negative interval that torch reads the same), so a driver or bindings mismatch falls back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

# libcuda's cuEventElapsedTime reports milliseconds with ~0.5 us resolution; torch reads the same events.
SELF_TEST_TOLERANCE_MS = 0.002


FloatArray = npt.NDArray[np.float64]
Reader = Callable[[Sequence[Any], Sequence[Any]], FloatArray]


class EventPath(NamedTuple):
    """``mark(event)`` turns a torch event into what ``record`` and ``elapsed`` take, outside the loop.

    ``record(handle)`` records it on the timed stream; ``elapsed(start, end)`` reads milliseconds
    between two recorded handles. Optional fast forms: ``bind(handle)`` gives a zero-argument call
    that records the handle, ``read(starts, ends)`` the milliseconds of many intervals at once;
    ``binder``/``reader`` derive them from ``record``/``elapsed`` where a path has none.
    """

    mark: Callable[[Any], Any]
    record: Callable[[Any], object]
    elapsed: Callable[[Any, Any], float]
    name: str
    bind: Callable[[Any], Callable[[], object]] | None = None
    read: Reader | None = None


def binder(path: EventPath) -> Callable[[Any], Callable[[], object]]:
    return path.bind or (lambda handle: partial(path.record, handle))


def reader(path: EventPath) -> Reader:
    if path.read is not None:
        return path.read
    elapsed = path.elapsed

    def read(starts: Sequence[Any], ends: Sequence[Any]) -> FloatArray:
        return np.fromiter(map(elapsed, starts, ends), dtype=np.float64, count=len(ends))

    return read


def torch_path(stream: Any) -> EventPath:
    def record(event: Any) -> None:
        event.record(stream)

    def elapsed(start: Any, end: Any) -> float:
        return float(start.elapsed_time(end))

    def bind(event: Any) -> Callable[[], object]:
        return partial(event.record, stream)

    return EventPath(lambda event: event, record, elapsed, "torch", bind)


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


def _raw_bind(cu_record: Callable[[Any, Any], object], raw_stream: Any) -> Callable[[Any], Callable[[], object]]:
    def bind(handle: Any) -> Callable[[], object]:
        return partial(cu_record, handle, raw_stream)

    return bind


def bindings_path(stream: Any) -> EventPath:
    """cuEventRecord / cuEventElapsedTime through cuda-bindings."""
    from cuda.bindings import driver

    raw_stream = driver.CUstream(int(stream.cuda_stream))
    cu_record, cu_elapsed = driver.cuEventRecord, driver.cuEventElapsedTime
    success = driver.CUresult.CUDA_SUCCESS

    def elapsed(start: Any, end: Any) -> float:
        err, ms = cu_elapsed(start, end)
        if err != success:
            raise RuntimeError(f"cuEventElapsedTime failed: {_named(err)}")
        return float(ms)

    def read(starts: Sequence[Any], ends: Sequence[Any]) -> FloatArray:
        if not ends:
            return np.empty(0, dtype=np.float64)
        errors, values = zip(*map(cu_elapsed, starts, ends), strict=True)
        if errors.count(success) != len(errors):  # C-level scan; enum members compare by identity first
            raise RuntimeError(f"cuEventElapsedTime failed: {_named(next(e for e in errors if e != success))}")
        return np.array(values, dtype=np.float64)

    return EventPath(_raw_mark(stream, driver.CUevent), _raw_record(cu_record, raw_stream), elapsed,
                     "cuda-bindings", _raw_bind(cu_record, raw_stream), read)


def _named(result: Any) -> str:
    return f"{getattr(result, 'name', '')} ({int(result)})"


def _libcuda() -> Any:
    name = ctypes.util.find_library("cuda") or "libcuda.so.1"
    # PyDLL keeps the GIL across the call: both calls are short and never block (cuEventElapsedTime
    # returns NOT_READY instead of waiting), so releasing and retaking the GIL would be pure cost.
    return ctypes.PyDLL(name)


def libcuda_path(stream: Any) -> EventPath:
    """The same driver calls through ctypes: no argument wrapping or result enums per call."""
    lib = _libcuda()
    cu_record = lib.cuEventRecord
    cu_record.argtypes, cu_record.restype = [ctypes.c_void_p, ctypes.c_void_p], ctypes.c_int
    name = "cuEventElapsedTime_v2" if hasattr(lib, "cuEventElapsedTime_v2") else "cuEventElapsedTime"
    cu_elapsed, cu_bulk = lib[name], lib[name]  # two function objects: typed for a pointer, and for an address
    cu_elapsed.argtypes = [ctypes.POINTER(ctypes.c_float), ctypes.c_void_p, ctypes.c_void_p]
    cu_elapsed.restype = ctypes.c_int
    cu_bulk.argtypes, cu_bulk.restype = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p], ctypes.c_int
    raw_stream = ctypes.c_void_p(int(stream.cuda_stream))
    out = ctypes.c_float()
    out_ref = ctypes.byref(out)

    def elapsed(start: Any, end: Any) -> float:
        err = cu_elapsed(out_ref, start, end)
        if err:
            raise RuntimeError(f"cuEventElapsedTime failed: CUresult {err}")
        return float(out.value)

    def read(starts: Sequence[Any], ends: Sequence[Any]) -> FloatArray:
        values = (ctypes.c_float * len(ends))()
        # Each result goes to its own slot: the float pointers are plain addresses stepped in C.
        base, step = ctypes.addressof(values), ctypes.sizeof(ctypes.c_float)
        errors = list(map(cu_bulk, range(base, base + step * len(ends), step), starts, ends))
        if errors.count(0) != len(errors):
            raise RuntimeError(f"cuEventElapsedTime failed: CUresult {next(e for e in errors if e)}")
        return np.array(memoryview(values), dtype=np.float64)

    return EventPath(_raw_mark(stream, ctypes.c_void_p), _raw_record(cu_record, raw_stream), elapsed, "libcuda",
                     _raw_bind(cu_record, raw_stream), read)


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
        ours = [path.elapsed(*handles), float(reader(path)(handles[:1], handles[1:])[0])]
        return bool(theirs >= 0 and all(abs(x - theirs) <= SELF_TEST_TOLERANCE_MS for x in ours))
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
