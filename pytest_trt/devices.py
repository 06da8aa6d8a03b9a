"""One pytest-xdist worker per GPU: parse ``--trt-devices`` and pin worker ``gwK`` to its own device.

Two workers timing on one GPU slow each other down and both report wrong numbers, so an assignment
that would share a GPU is an error, never a silent fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

OPTION = "--trt-devices"
_WORKER = re.compile(r"gw(\d+)")


class DeviceAssignmentError(ValueError):
    """More xdist workers than GPUs, or a listed GPU that is not visible."""


def parse_devices(text: str) -> tuple[int, ...]:
    """``"0,1,2,3"`` → ``(0, 1, 2, 3)``: distinct non-negative CUDA ordinals, in the given order."""
    parts = [p.strip() for p in text.split(",")]
    if not text.strip() or any(not p for p in parts):
        raise ValueError(
            f"{OPTION}: expected a comma-separated list of GPU indices such as 0,1,2,3, got {text!r}"
        )
    devices: list[int] = []
    for part in parts:
        if not part.isdigit():
            raise ValueError(
                f"{OPTION}: {part!r} is not a GPU index; expected non-negative integers such as 0,1,2,3"
            )
        devices.append(int(part))
    repeated = sorted({d for d in devices if devices.count(d) > 1})
    if repeated:
        raise ValueError(
            f"{OPTION}: GPU {', '.join(map(str, repeated))} listed more than once; "
            "each worker needs its own GPU"
        )
    return tuple(devices)


def worker_index(worker_id: str | None) -> int | None:
    """``"gw3"`` → 3; None for the xdist controller (``"master"``) or a run without xdist."""
    if worker_id is None or worker_id == "master":
        return None
    match = _WORKER.fullmatch(worker_id)
    if match is None:
        raise ValueError(f"unexpected pytest-xdist worker id {worker_id!r}; expected 'gw<N>' or 'master'")
    return int(match.group(1))


def pick_device(
    worker_id: str | None, devices: Sequence[int] | None, visible: int, n_workers: int | None = None
) -> int:
    """The CUDA ordinal worker ``worker_id`` times on: ``devices[k]`` for ``gwK`` (``k`` without a list).

    The controller / a run without xdist gets the first device. ``n_workers`` (xdist's
    ``PYTEST_XDIST_WORKER_COUNT``), when given, is checked up front so every worker fails alike.
    """
    if visible < 1:
        raise DeviceAssignmentError("no CUDA GPU is visible, so there is no device to pin this worker to")
    pool = tuple(devices) if devices is not None else tuple(range(visible))
    if not pool:
        raise DeviceAssignmentError(f"{OPTION} is empty; list at least one GPU index")
    hidden = [d for d in pool if not 0 <= d < visible]
    if hidden:
        raise DeviceAssignmentError(
            f"{OPTION} lists GPU {', '.join(map(str, hidden))} but only {visible} GPU(s) are visible "
            f"(indices 0..{visible - 1}; check CUDA_VISIBLE_DEVICES)"
        )
    if len(set(pool)) != len(pool):
        raise DeviceAssignmentError(
            f"{OPTION} lists a GPU more than once: {pool}; each worker needs its own GPU"
        )
    index = worker_index(worker_id)
    if n_workers is not None and n_workers > len(pool):
        raise DeviceAssignmentError(_too_many(n_workers, pool, devices is not None))
    if index is None:
        return pool[0]
    if index >= len(pool):
        raise DeviceAssignmentError(_too_many(index + 1, pool, devices is not None))
    return pool[index]


def _too_many(n_workers: int, pool: tuple[int, ...], listed: bool) -> str:
    source = f"{OPTION} lists {len(pool)}" if listed else f"{len(pool)} are visible"
    return (
        f"{n_workers} pytest-xdist workers need {n_workers} GPUs but {source} ({', '.join(map(str, pool))}); "
        f"two workers on one GPU would corrupt both timings: run with -n {len(pool)} or fewer"
    )


def cpu_worker_warning(n_workers: int) -> str | None:
    """A warning when several xdist workers time on CPU: they share cores and slow each other."""
    if n_workers <= 1:
        return None
    return (
        f"{n_workers} pytest-xdist workers are timing on CPU: they compete for the same cores and caches, "
        "so latencies are inflated and noisy; use -n 0 (or -n 1) for CPU timings you intend to keep"
    )
