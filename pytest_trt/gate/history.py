"""A case's history in a baseline: the runs it may be judged against, and those left out (and why).

Runs on other hardware, runs timed another way, untimed entries and runs that measured a disturbed
machine (the process waited for a CPU, or the GPU throttled) are left out, each with its reason,
so one bad night never silently widens the spread that later nights are judged by. The newest
``window`` usable runs are kept: a rolling history that nightly saves grow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_trt import host as host_mod
from pytest_trt.baseline import Baseline, Entry, Run
from pytest_trt.gate.comparability import describe_method, hardware_difference
from pytest_trt.gate.noise import log_median_uncertainty
from pytest_trt.records import CaseResult, CaseState, JSONDict


@dataclass(frozen=True)
class Point:
    """One usable baseline run of a case."""

    run_id: str
    log_median: float
    floor: float  # the run's own log-median uncertainty
    log_energy: float | None  # log joules per item
    cpu_probe_s: float | None  # the run's fixed CPU calibration
    peak_tflops: float | None  # the run's GPU calibration


@dataclass
class History:
    points: list[Point] = field(default_factory=list)  # oldest first, at most the window
    excluded: list[str] = field(default_factory=list)
    newest: tuple[Run, Entry] | None = None  # newest entry on this hardware, timed or not
    incomparable: str = ""  # why no run is comparable, when none is
    entries: int = 0


def _why_excluded(entry: Entry) -> str:
    if entry.status is not CaseState.OK:
        return f"status {entry.status.value}"
    if not entry.samples or entry.median is None or entry.median <= 0:
        return "no timing"
    if entry.host is not None and host_mod.contended(entry.host):
        return f"contended ({host_mod.describe(entry.host)})"
    reasons = disturbing(entry.telemetry.throttle_reasons) if entry.telemetry is not None else []
    if reasons:
        return f"GPU slowed down ({', '.join(reasons)})"
    return ""


def disturbing(reasons: list[str]) -> list[str]:
    """The throttle reasons that mean heat or a hardware slowdown, not the normal power cap."""
    from pytest_trt.telemetry import DISTURBING

    return [r for r in reasons if r in DISTURBING]


def _point(run: Run, entry: Entry) -> Point:
    median = entry.median
    assert median is not None and median > 0
    stats = entry.stats
    floor = log_median_uncertainty(median, stats.median_ci_low, stats.median_ci_high) if stats else 0.0
    joules = entry.telemetry.joules_per_item if entry.telemetry is not None else None
    state = run.environment.get("state")
    probe = state.get("cpu_probe_s") if isinstance(state, dict) else None
    return Point(run.run_id, math.log(median), floor,
                 math.log(joules) if joules and joules > 0 else None,
                 float(probe) if isinstance(probe, (int, float)) and probe > 0 else None, entry.peak_tflops)


def of(baseline: Baseline, key: str, current: CaseResult, environment: JSONDict, window: int) -> History:
    """The history of the case ``key`` for a current result measured in ``environment``."""
    found = baseline.entries(key)
    history = History(entries=len(found))
    same = [(r, e) for r, e in found if not hardware_difference(r.environment, environment)]
    if found and not same:
        history.incomparable = hardware_difference(found[-1][0].environment, environment) or "different hardware"
    history.newest = same[-1] if same else None
    method = current.timing.method if current.timing is not None else None
    usable: list[tuple[Run, Entry]] = []
    # On other hardware the runs are still compared (a cross-GPU table), never gated.
    for run, entry in same or found:
        why = _why_excluded(entry)
        if not why and method is not None and entry.method != method:
            why = f"timed another way ({describe_method(entry.method)})"
        if why:
            history.excluded.append(f"{run.run_id}: {why}")
        else:
            usable.append((run, entry))
    if same and not usable and method is not None:
        methods = {e.method for _, e in same if e.samples}
        if methods and method not in methods:
            history.incomparable = (f"timed another way: baseline {describe_method(sorted(methods, key=str)[-1])}; "
                                    f"this run {describe_method(method)} (re-save the baseline, or pin "
                                    "--trt-calls-per-sample / --trt-l2)")
    history.points = [_point(r, e) for r, e in usable[-window:]]
    return history


def probes(points: Sequence[Point]) -> tuple[list[float], list[float]]:
    """The history's logs of its CPU calibration seconds and of its GPU peak's inverse: both grow
    when the machine is slower, and are judged like a case's medians."""
    cpu = [math.log(p.cpu_probe_s) for p in points if p.cpu_probe_s]
    gpu = [-math.log(p.peak_tflops) for p in points if p.peak_tflops]
    return cpu, gpu
