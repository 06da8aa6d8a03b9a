"""The event paths' self-test and fallback, on hosts with and without a GPU.

On CPU hosts the raw paths cannot load a driver: they must fail their self-test quietly and leave
torch's path. The FakeEvent/FakeStream below are named fakes of torch's CUDA event and stream.
"""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from pytest_trt import cuda_events
from pytest_trt.cuda_events import EventPath


class FakeEvent:
    clock = 0.0

    def __init__(self) -> None:
        self.at: float | None = None
        self.cuda_event = 0

    def record(self, stream: Any = None) -> None:
        FakeEvent.clock += 1.0
        self.at = FakeEvent.clock

    def synchronize(self) -> None:
        pass

    def elapsed_time(self, end: FakeEvent) -> float:
        assert self.at is not None and end.at is not None
        return end.at - self.at


class FakeStream:
    cuda_stream = 0

    def synchronize(self) -> None:
        pass


def _fake_path(elapsed_bias: float = 0.0, result: object = 0) -> EventPath:
    def record(event: FakeEvent) -> object:
        event.record()
        return result

    def elapsed(start: FakeEvent, end: FakeEvent) -> float:
        return start.elapsed_time(end) + elapsed_bias

    return EventPath(lambda e: e, record, elapsed, "fake")


def test_a_path_that_reads_what_torch_reads_passes_its_self_test() -> None:
    assert cuda_events.works(_fake_path(), FakeStream(), FakeEvent)


def test_a_path_that_reads_other_times_than_torch_fails_its_self_test() -> None:
    assert not cuda_events.works(_fake_path(elapsed_bias=0.01), FakeStream(), FakeEvent)


@pytest.mark.parametrize("result", [1, (type("R", (), {"value": 700})(),)])
def test_a_path_whose_record_reports_an_error_fails_its_self_test(result: object) -> None:
    assert not cuda_events.works(_fake_path(result=result), FakeStream(), FakeEvent)


def test_a_path_that_raises_fails_its_self_test() -> None:
    def boom(_: Any) -> object:
        raise OSError("libcuda.so.1: cannot open shared object file")

    broken = EventPath(lambda e: e, boom, lambda s, e: 0.0, "broken")
    assert not cuda_events.works(broken, FakeStream(), FakeEvent)


def test_best_path_falls_back_to_torch_when_no_raw_path_works(monkeypatch: pytest.MonkeyPatch) -> None:
    def unloadable(stream: Any) -> EventPath:
        raise OSError("no driver")

    monkeypatch.setattr(cuda_events, "PATHS", (unloadable, lambda s: _fake_path(elapsed_bias=1.0)))
    chosen = cuda_events.best_path(FakeStream(), FakeEvent)
    assert chosen is cuda_events.torch_path
    assert chosen(FakeStream()).name == "torch"


def test_best_path_takes_the_first_that_works(monkeypatch: pytest.MonkeyPatch) -> None:
    def good(stream: Any) -> EventPath:
        return _fake_path()

    monkeypatch.setattr(cuda_events, "PATHS", (good,))
    assert cuda_events.best_path(FakeStream(), FakeEvent) is good


def test_the_real_raw_paths_fail_quietly_without_a_gpu() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: tests/test_timing.py checks the raw paths on it")
    for factory in cuda_events.PATHS:
        try:
            path = factory(FakeStream())
        except Exception:
            continue  # no libcuda or no cuda-bindings here: best_path skips it the same way
        assert not cuda_events.works(path, FakeStream(), FakeEvent)
    assert cuda_events.best_path(FakeStream(), FakeEvent) is cuda_events.torch_path


class FakeLibcuda:
    """A named fake of libcuda's two entry points, so the ctypes path's wiring runs on CPU hosts."""

    def __init__(self) -> None:
        self.recorded: list[tuple[int | None, int | None]] = []

        def record(handle: Any, stream: Any) -> int:
            self.recorded.append((handle.value, stream.value))
            return 0

        def elapsed(out: Any, start: Any, end: Any) -> int:
            # What the driver writes through the float pointer: a byref() for one read, a plain
            # address into the chunk's float array for a bulk read.
            target = ctypes.c_float.from_address(out) if isinstance(out, int) else out._obj
            target.value = 2.5
            return 0

        self.cuEventRecord = record
        self.cuEventElapsedTime = elapsed

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


def test_the_libcuda_path_passes_raw_handles_and_reads_through_the_pointer(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = FakeLibcuda()
    monkeypatch.setattr(cuda_events, "_libcuda", lambda: lib)
    stream = FakeStream()
    stream.cuda_stream = 0x5000
    event = FakeEvent()
    event.cuda_event = 0x1234
    path = cuda_events.libcuda_path(stream)
    handle = path.mark(event)
    assert event.at is not None  # marked through torch first, so the handle exists
    assert path.record(handle) == 0 and lib.recorded == [(0x1234, 0x5000)]
    assert path.elapsed(handle, handle) == 2.5
    assert list(cuda_events.reader(path)([handle, handle], [handle, handle])) == [2.5, 2.5]
    cuda_events.binder(path)(handle)()  # the loop's zero-argument recorder passes the same handles
    assert lib.recorded == [(0x1234, 0x5000)] * 2
    assert path.name == "libcuda"


def test_the_bindings_path_reads_a_chunk_at_once_and_names_a_failed_read(monkeypatch: pytest.MonkeyPatch) -> None:
    driver = pytest.importorskip("cuda.bindings.driver", reason="cuda-bindings is not installed")
    ok, not_ready = driver.CUresult.CUDA_SUCCESS, driver.CUresult.CUDA_ERROR_NOT_READY
    answers = {(1, 2): (ok, 0.5), (2, 3): (ok, 0.25), (3, 4): (not_ready, 0.0)}
    # A named fake of the driver's cuEventElapsedTime: handles are plain ints here.
    monkeypatch.setattr(driver, "cuEventElapsedTime", lambda s, e: answers[(s, e)])
    read = cuda_events.reader(cuda_events.bindings_path(FakeStream()))
    assert list(read([1, 2], [2, 3])) == [0.5, 0.25]
    assert read([], []).size == 0
    with pytest.raises(RuntimeError, match="NOT_READY"):
        read([1, 3], [2, 4])
