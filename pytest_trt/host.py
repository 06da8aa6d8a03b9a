"""How much of the host a case had while it was timed: the evidence behind an INCONCLUSIVE verdict.

A busy neighbour slows every case of a run together, and within-run statistics cannot see it: the
samples are consistently slow. The reading that tells a neighbour from the case's own threads is
the CPU time *other* processes used meanwhile: the machine's busy time (``/proc/stat``, a VM's
steal time included) less this process's own. A case's threads may well wait for each other (an
intra-op pool as wide as the machine plus the Python thread), so their own run-queue wait
(``schedstat``) is recorded but does not decide. The load average stands in where /proc is missing.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from pytest_trt.conditions import HostLoad

CONTENDED_SHARE = 0.10  # other processes' share of the machine's CPU above which a case was contended
HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Snapshot:
    wall_ns: int
    cpu_s: float
    run_ns: int | None  # summed over the process's threads
    wait_ns: int | None
    busy_s: float | None  # the whole machine's busy CPU time (/proc/stat)


def contended(load: HostLoad) -> bool:
    """Whether other processes took a telling share of the machine while the case was timed."""
    share = load.others_share
    if share is not None:
        return share > CONTENDED_SHARE
    return load.loadavg_1m is not None and load.loadavg_1m > load.cpu_count + 0.5


def describe(load: HostLoad) -> str:
    parts = []
    if load.others_share is not None:
        parts.append(f"other processes used {load.others_share:.0%} of the {load.cpu_count} cores")
    if load.wait_share is not None:
        parts.append(f"its threads waited for a CPU {load.wait_share:.0%} of their runnable time")
    if load.loadavg_1m is not None:
        parts.append(f"load {load.loadavg_1m:.1f}")
    return ", ".join(parts) or "no host readings"


def _busy_s(stat_path: Path) -> float | None:
    """Busy CPU seconds of the whole machine since boot: everything but idle and iowait."""
    try:
        first = stat_path.read_text().split("\n", 1)[0].split()
        ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    if first[0] != "cpu" or len(ticks) < 8:
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / HZ


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


def snapshot(task_root: Path = Path("/proc/self/task"), stat_path: Path = Path("/proc/stat")) -> Snapshot:
    stat = _schedstat(task_root)
    run, wait = stat if stat else (None, None)
    return Snapshot(time.perf_counter_ns(), time.process_time(), run, wait, _busy_s(stat_path))


def since(start: Snapshot, task_root: Path = Path("/proc/self/task"), stat_path: Path = Path("/proc/stat")) -> HostLoad:
    end = snapshot(task_root, stat_path)
    try:
        load: float | None = os.getloadavg()[0]
    except OSError:
        load = None
    run_s = wait_s = None
    if None not in (start.run_ns, start.wait_ns, end.run_ns, end.wait_ns):
        run_s = (int(end.run_ns or 0) - int(start.run_ns or 0)) * 1e-9
        wait_s = (int(end.wait_ns or 0) - int(start.wait_ns or 0)) * 1e-9
    cpu_s = end.cpu_s - start.cpu_s
    others = None
    if start.busy_s is not None and end.busy_s is not None:
        others = max(0.0, end.busy_s - start.busy_s - cpu_s)
    return HostLoad(
        wall_s=(end.wall_ns - start.wall_ns) * 1e-9,
        cpu_s=cpu_s,
        run_s=run_s,
        wait_s=wait_s,
        loadavg_1m=load,
        cpu_count=os.cpu_count() or 1,
        others_cpu_s=others,
    )


def calibration_s(repeats: int = 9) -> float:
    """Median seconds of a fixed CPU workload (Python and numpy): the machine's speed this run.

    A whole machine that is slower tonight (a neighbour, a governor, another instance type behind
    the same name) shows here as well as in every case, and the gate can tell that apart from code.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((192, 192))
    times = []
    for _ in range(repeats + 1):  # the first pass warms caches and numpy up: left out
        start = time.perf_counter()
        total = 0
        for i in range(60_000):
            total += i * i % 7
        for _ in range(8):
            a = np.tanh(a @ a.T * 1e-2)
        times.append(time.perf_counter() - start)
    kept = sorted(times[1:])
    return float(kept[len(kept) // 2])
