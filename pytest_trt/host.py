"""How much of the host a case had while it was timed: the evidence behind an INCONCLUSIVE verdict.

A busy neighbour slows every case of a run together, and within-run statistics cannot see it: the
samples are consistently slow. Linux counts, per thread, the time it ran and the time it was
runnable but waiting for a CPU (``/proc/<pid>/task/<tid>/schedstat``); that waiting share is a
direct reading of contention. The process's CPU time and the load average back it up where
schedstat is missing.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CONTENDED_WAIT_SHARE = 0.10  # runnable-but-waiting share of thread time above which a case was contended


@dataclass(frozen=True)
class Snapshot:
    wall_ns: int
    cpu_s: float
    run_ns: int | None  # summed over the process's threads
    wait_ns: int | None


@dataclass(frozen=True)
class HostLoad:
    """What the host gave the process between two snapshots."""

    wall_s: float
    cpu_s: float  # this process's CPU time, all threads
    run_s: float | None  # thread time on a CPU (schedstat)
    wait_s: float | None  # thread time runnable but waiting for a CPU (schedstat)
    loadavg_1m: float | None
    cpu_count: int

    @property
    def wait_share(self) -> float | None:
        """Share of the threads' runnable time spent waiting for a CPU."""
        if self.run_s is None or self.wait_s is None or self.run_s + self.wait_s <= 0:
            return None
        return self.wait_s / (self.run_s + self.wait_s)

    @property
    def contended(self) -> bool:
        share = self.wait_share
        if share is not None:
            return share > CONTENDED_WAIT_SHARE
        return self.loadavg_1m is not None and self.loadavg_1m > self.cpu_count + 0.5

    def describe(self) -> str:
        share = self.wait_share
        parts = [f"waited for a CPU {share:.0%} of its runnable time"] if share is not None else []
        if self.loadavg_1m is not None:
            parts.append(f"load {self.loadavg_1m:.1f} on {self.cpu_count} cores")
        return ", ".join(parts) or "no host readings"

    def to_dict(self) -> dict[str, float | int | None]:
        data: dict[str, float | int | None] = dict(asdict(self))
        data["wait_share"] = self.wait_share
        return data


def _schedstat(task_root: Path) -> tuple[int, int] | None:
    run = wait = 0
    try:
        tasks = list(task_root.iterdir())
    except OSError:
        return None
    for task in tasks:
        try:
            fields = (task / "schedstat").read_text().split()
            run, wait = run + int(fields[0]), wait + int(fields[1])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended meanwhile
    return run, wait


def snapshot(task_root: Path = Path("/proc/self/task")) -> Snapshot:
    stat = _schedstat(task_root)
    return Snapshot(time.perf_counter_ns(), time.process_time(), *(stat if stat else (None, None)))


def since(start: Snapshot, task_root: Path = Path("/proc/self/task")) -> HostLoad:
    end = snapshot(task_root)
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    run_s = wait_s = None
    if None not in (start.run_ns, start.wait_ns, end.run_ns, end.wait_ns):
        run_s = (int(end.run_ns or 0) - int(start.run_ns or 0)) * 1e-9
        wait_s = (int(end.wait_ns or 0) - int(start.wait_ns or 0)) * 1e-9
    return HostLoad(
        wall_s=(end.wall_ns - start.wall_ns) * 1e-9,
        cpu_s=end.cpu_s - start.cpu_s,
        run_s=run_s,
        wait_s=wait_s,
        loadavg_1m=load,
        cpu_count=os.cpu_count() or 1,
    )


def calibration_s(repeats: int = 5) -> float:
    """Median seconds of a fixed CPU workload (Python and numpy): the machine's speed this run.

    A whole machine that is slower tonight (a neighbour, a governor, another instance type behind
    the same name) shows here as well as in every case, and the gate can tell that apart from code.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((192, 192))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        total = 0
        for i in range(60_000):
            total += i * i % 7
        for _ in range(8):
            a = np.tanh(a @ a.T * 1e-2)
        times.append(time.perf_counter() - start)
    return float(sorted(times)[len(times) // 2])
