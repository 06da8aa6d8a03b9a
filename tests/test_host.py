"""Host readings behind INCONCLUSIVE: schedstat waiting share, from a fake /proc task tree."""

from __future__ import annotations

from pathlib import Path

from pytest_trt import host


def _tasks(root: Path, stats: dict[str, tuple[int, int]]) -> Path:
    for tid, (run, wait) in stats.items():
        (root / tid).mkdir(parents=True, exist_ok=True)
        (root / tid / "schedstat").write_text(f"{run} {wait} 42\n")
    return root


def test_waiting_share_sums_the_threads_between_snapshots(tmp_path: Path) -> None:
    root = _tasks(tmp_path / "task", {"1": (1_000, 0), "2": (500, 500)})
    start = host.snapshot(root)
    _tasks(root, {"1": (1_000 + 6_000_000, 4_000_000), "2": (500 + 2_000_000, 500 + 8_000_000)})
    load = host.since(start, root)
    assert load.run_s is not None and load.wait_s is not None
    assert abs(load.run_s - 8e-3) < 1e-12 and abs(load.wait_s - 12e-3) < 1e-12
    assert load.wait_share is not None and abs(load.wait_share - 0.6) < 1e-9
    assert load.contended and "60%" in load.describe()


def test_a_quiet_share_is_not_contended_and_no_schedstat_falls_back_to_load(tmp_path: Path) -> None:
    root = _tasks(tmp_path / "task", {"1": (0, 0)})
    start = host.snapshot(root)
    _tasks(root, {"1": (10_000_000, 100_000)})
    assert not host.since(start, root).contended
    missing = host.since(host.snapshot(tmp_path / "absent"), tmp_path / "absent")
    assert missing.wait_share is None and missing.run_s is None
    busy = host.HostLoad(1.0, 1.0, None, None, loadavg_1m=5.0, cpu_count=2)
    assert busy.contended and "load 5.0 on 2 cores" in busy.describe()


def test_calibration_workload_returns_a_positive_duration() -> None:
    assert host.calibration_s(repeats=1) > 0
