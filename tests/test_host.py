"""Host readings behind INCONCLUSIVE, from a fake /proc: other processes' CPU share decides."""

from __future__ import annotations

from pathlib import Path

from pytest_trt import host
from pytest_trt.records import HostLoad


def _proc(root: Path, stats: dict[str, tuple[int, int]], busy_ticks: int, idle_ticks: int) -> tuple[Path, Path]:
    for tid, (run, wait) in stats.items():
        (root / "task" / tid).mkdir(parents=True, exist_ok=True)
        (root / "task" / tid / "schedstat").write_text(f"{run} {wait} 42\n")
    (root / "stat").write_text(f"cpu  {busy_ticks} 0 0 {idle_ticks} 0 0 0 0 0 0\ncpu0 1 2 3 4\n")
    return root / "task", root / "stat"


def test_schedstat_waits_are_summed_over_threads(tmp_path: Path) -> None:
    tasks, stat = _proc(tmp_path, {"1": (1_000, 0), "2": (500, 500)}, 100, 100)
    start = host.snapshot(tasks, stat)
    _proc(tmp_path, {"1": (1_000 + 6_000_000, 4_000_000), "2": (500 + 2_000_000, 500 + 8_000_000)}, 100, 100)
    load = host.since(start, tasks, stat)
    assert load.run_s is not None and load.wait_s is not None
    assert abs(load.run_s - 8e-3) < 1e-12 and abs(load.wait_s - 12e-3) < 1e-12
    assert load.wait_share is not None and abs(load.wait_share - 0.6) < 1e-9


def test_other_processes_cpu_decides_contention_not_the_cases_own_threads(tmp_path: Path) -> None:
    tasks, stat = _proc(tmp_path, {"1": (0, 0)}, 1_000, 1_000)
    start = host.snapshot(tasks, stat)
    # the machine got busier by 10 000 ticks while this process used ~no CPU itself: other processes did
    _proc(tmp_path, {"1": (0, 0)}, 1_000 + 10_000, 1_000)
    load = host.since(start, tasks, stat)
    assert load.others_cpu_s is not None and load.others_cpu_s > 0
    quiet = HostLoad(1.0, 1.0, 1.0, 0.9, loadavg_1m=1.0, cpu_count=2, others_cpu_s=0.05)
    assert not host.contended(quiet)  # its own threads waited for each other: no neighbour
    busy = HostLoad(1.0, 1.0, 1.0, 0.1, loadavg_1m=3.0, cpu_count=2, others_cpu_s=1.2)
    assert host.contended(busy) and "other processes used 60% of the 2 cores" in host.describe(busy)


def test_without_proc_the_load_average_stands_in(tmp_path: Path) -> None:
    missing = host.since(host.snapshot(tmp_path / "absent", tmp_path / "nostat"), tmp_path / "absent",
                         tmp_path / "nostat")
    assert missing.wait_share is None and missing.others_share is None
    assert host.contended(HostLoad(1.0, 1.0, None, None, loadavg_1m=5.0, cpu_count=2))
    assert not host.contended(HostLoad(1.0, 1.0, None, None, loadavg_1m=1.0, cpu_count=2))


def test_calibration_workload_returns_a_positive_duration() -> None:
    assert host.calibration_s(repeats=1) > 0
