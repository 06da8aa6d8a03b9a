"""The verdict on one case: tonight's process medians against the baseline's between-process noise.

The rule (docs/design.md, "The gate"):

1. Each process's median is compared with the case's baseline history (``history``): with the mode
   nearest to it, within the band ``max(threshold, noise)`` (``noise``).
2. A first process that is slower than that band makes the case *suspect*; it is re-measured in
   ``policy.confirm`` fresh processes (a new CUDA context, fresh autotuning, a new host process).
3. It REGRESSES only when every one of those processes is slower too: so its slowdown exceeds both
   the threshold and its own noise, in processes that did not share tonight's start-up luck.
4. If the machine itself was disturbed while they ran (the process waited for a CPU, or the fixed
   calibration workloads ran slower than when the baseline was saved), it is INCONCLUSIVE instead.
5. A case whose own noise exceeds the threshold is UNSTABLE (not gateable at that threshold) unless
   it regressed beyond its noise: it is never failed on noise.

IMPROVED mirrors a slower first process. Status and accuracy regressions need no re-measurement.
Energy per item (``policy.energy_threshold``) is judged by the same rule on its own verdict line, and
so is each pipeline stage (``gate.stages``): a stage's REGRESSION fails the case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pytest_trt import host as host_mod
from pytest_trt.baseline import Baseline
from pytest_trt.gate import history as history_mod
from pytest_trt.gate import messages
from pytest_trt.gate.comparability import software_changes
from pytest_trt.gate.noise import Mode, Noise, model
from pytest_trt.records import CaseResult, CaseState, JSONDict, case_key
from pytest_trt.verdict import Outcome, Verdict

MACHINE_SLOWER = 0.10  # a calibration workload at least this much slower than usual: the machine, not the code
ENERGY_FLOOR = 0.005  # log spread below which no energy reading is trusted (NVML's counter resolution)


@dataclass(frozen=True)
class Policy:
    """What the gate decides with; the fixtures, ``compare`` and the lab's nights all use one."""

    threshold: float = 0.05  # the smallest slowdown that may fail (0.05 = 5 %)
    alpha: float = 0.01  # one process's false-alarm level against its mode's band
    confirm: int = 2  # fresh-process re-measurements of a suspect case (0: the first decides)
    window: int = 20  # newest usable baseline runs per case
    power: float = 0.95  # detection probability behind ``Verdict.detectable``
    max_accuracy_drop: float | None = None
    energy_threshold: float | None = None  # gate joules per item too (0.05 = 5 %)

    def __post_init__(self) -> None:
        if not self.threshold > 0 or not math.isfinite(self.threshold):
            raise ValueError(f"threshold must be a positive fraction, got {self.threshold!r}")
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha!r}")
        if self.confirm < 0 or self.window < 1:
            raise ValueError("confirm must be >= 0 and window >= 1")


@dataclass(frozen=True)
class Measurement:
    """One process's measurement of a case, with the environment that process recorded."""

    result: CaseResult
    environment: JSONDict

    @property
    def log_median(self) -> float | None:
        median = self.result.median
        return math.log(median) if median and median > 0 else None

    @property
    def log_energy(self) -> float | None:
        telemetry = self.result.telemetry
        joules = telemetry.joules_per_item if telemetry is not None else None
        return math.log(joules) if joules and joules > 0 else None


def judge(first: Measurement, baseline: Baseline, policy: Policy, again: Sequence[Measurement] = ()) -> Verdict:
    """The verdict on ``first`` (tonight's process) and the fresh re-measurements ``again``."""
    current = first.result
    key = current.key or case_key(current.nodeid)
    verdict = Verdict(Outcome.PASS, current.nodeid, current.case.id, policy.threshold)
    if current.status is CaseState.SKIPPED:
        return messages.finish(verdict, Outcome.MISSING, f"not run: {current.message or 'skipped'}")
    history = history_mod.of(baseline, key, current, first.environment, policy.window)
    if not history.entries:
        return messages.finish(verdict, Outcome.NEW, f"no baseline entry in {baseline.path}")
    if history.newest is not None:
        run, entry = history.newest
        verdict.changes = software_changes(run.environment, first.environment, entry.model_hash,
                                           current.build.model_hash)
    verdict.excluded_runs = history.excluded
    if current.status is not CaseState.OK or current.timing is None:
        return _untimed(verdict, current, history)
    if not history.points:
        if history.incomparable:
            return messages.finish(verdict, Outcome.INCOMPARABLE, f"{history.incomparable} — comparison, not a gate")
        return messages.finish(verdict, Outcome.NEW, "no usable baseline timing: "
                               + ("; ".join(history.excluded[-3:]) or "every entry is untimed"))
    _accuracy(verdict, current, history, policy)
    if history.incomparable:
        compared = _timing(verdict, [first], history, policy, "latency")
        return messages.finish(compared, Outcome.INCOMPARABLE, f"{history.incomparable} — comparison, not a gate; "
                               f"{messages.measured(compared)}")
    latency = _timing(verdict, [first, *again], history, policy, "latency")
    if latency.accuracy_failed and latency.outcome is not Outcome.REGRESSION:
        limit = policy.max_accuracy_drop or 0.0
        messages.finish(latency, Outcome.REGRESSION, f"accuracy dropped by {latency.accuracy_drop:.4g} "
                        f"(> {limit:.4g}); {latency.detail}")
    if policy.energy_threshold is not None:
        energy = Verdict(Outcome.PASS, current.nodeid, current.case.id, policy.energy_threshold, metric="energy")
        verdict.energy = _timing(energy, [first, *again], history, policy, "energy")
    if current.stages:
        from pytest_trt.gate.stages import judge_stages
        from pytest_trt.pipeline import GATED

        judge_stages(latency, first, again, baseline, policy, GATED)
    return latency


def wanted(verdict: Verdict, policy: Policy) -> int:
    """How many more fresh processes the verdict needs before it stands (0: it stands)."""
    def missing(v: Verdict) -> int:
        # Only a verdict the gate may still fail asks for confirmation: another machine's case is
        # compared, never gated, so more processes could never change it.
        if v.timing_outcome != "slower" or v.outcome in (Outcome.INCOMPARABLE, Outcome.NEW, Outcome.MISSING):
            return 0
        return max(0, policy.confirm - (len(v.night) - 1))

    return max(missing(verdict), missing(verdict.energy) if verdict.energy is not None else 0,
               *(missing(stage) for stage in verdict.stages.values()))


def _untimed(verdict: Verdict, current: CaseResult, history: history_mod.History) -> Verdict:
    if history.newest is None:
        return messages.finish(verdict, Outcome.INCOMPARABLE, f"{history.incomparable} — comparison, not a gate")
    _, entry = history.newest
    if current.status.failed and entry.status is CaseState.OK and entry.samples:
        why = current.message or "no timing"
        return messages.finish(verdict, Outcome.REGRESSION, f"status {entry.status.value} → "
                               f"{current.status.value}: {why}")
    return messages.finish(verdict, Outcome.PASS, f"status {current.status.value}, no timing to compare "
                           f"(baseline: {entry.status.value})")


def _accuracy(verdict: Verdict, current: CaseResult, history: history_mod.History, policy: Policy) -> None:
    from pytest_trt.gate.accuracy import accuracy_drop

    if history.newest is None:
        return
    drop = accuracy_drop(history.newest[1].accuracy, current.accuracy)
    verdict.accuracy_drop = drop
    limit = policy.max_accuracy_drop
    verdict.accuracy_failed = limit is not None and drop is not None and drop > limit


def _values(processes: Sequence[Measurement], metric: str) -> list[float]:
    logs = [p.log_median if metric == "latency" else p.log_energy for p in processes]
    return [x for x in logs if x is not None]


def _noise(history: history_mod.History, night: list[float], policy: Policy, metric: str) -> Noise | None:
    if metric == "latency":
        return model([p.log_median for p in history.points], [p.floor for p in history.points], policy.alpha, night)
    logs = [p.log_energy for p in history.points if p.log_energy is not None]
    return model(logs, [ENERGY_FLOOR] * len(logs), policy.alpha, night) if logs else None


def _timing(verdict: Verdict, processes: Sequence[Measurement], history: history_mod.History, policy: Policy,
            metric: str) -> Verdict:
    night = _values(processes, metric)
    noise = _noise(history, night, policy, metric)
    if noise is None or not night:
        return messages.finish(verdict, Outcome.NEW, f"no {metric} reading in the baseline or tonight")
    threshold = verdict.threshold
    kinds = [noise.classify(x, threshold) for x in night]
    kind, mode = kinds[0]
    try:
        _fill(verdict, noise, mode, night, threshold, policy)
    except OverflowError:  # runs 10^300 apart, or a spread whose CI leaves the floats
        return messages.beyond_range(verdict, noise, night[0])
    verdict.timing_outcome = kind
    if kind == "slower":
        slower = sum(1 for k, _ in kinds if k == "slower")
        if slower == len(kinds):
            evidence = disturbed(processes, history)
            if evidence:
                return messages.inconclusive(verdict, noise, evidence)
            return messages.regression(verdict, noise, len(kinds), mode)
        verdict.timing_outcome = "unconfirmed"
        return messages.unconfirmed(verdict, noise, slower, len(kinds))
    if kind == "faster":
        return messages.improved(verdict, noise)
    if noise.df > 0 and not noise.gateable(threshold):  # an assumed spread says nothing of the case itself
        return messages.unstable(verdict, noise, processes[0].result)
    return messages.passed(verdict, noise, mode)


def _fill(verdict: Verdict, noise: Noise, mode: Mode, night: list[float], threshold: float, policy: Policy) -> None:
    from scipy.stats import norm, t

    mean = sum(night) / len(night)
    scale = noise.spread * math.sqrt(1.0 / len(night) + 1.0 / mode.runs)
    # the band's own quantile: Student-t on a measured spread, normal on the assumed one (one run),
    # where a t with one degree of freedom would turn an assumed 2 % into a CI of ×0.4–×2.5
    quantile = noise.k
    verdict.ratio = math.exp(night[0] - mode.center)
    shift = mean - mode.center
    verdict.ratio_ci = (math.exp(shift - quantile * scale), math.exp(shift + quantile * scale))
    verdict.confidence = 1.0 - 2.0 * policy.alpha
    tail = t.sf((mean - mode.center) / scale, noise.df) if noise.df else norm.sf((mean - mode.center) / scale)
    verdict.p_value = float(tail) if scale > 0 else None
    verdict.baseline_median = math.exp(mode.center)
    verdict.current_median = math.exp(night[0])
    verdict.run_spread = noise.spread
    verdict.baseline_runs = sum(m.runs for m in noise.modes)
    verdict.noise = noise.noise()
    verdict.detectable = noise.detectable(threshold, 1 + policy.confirm, policy.power)
    verdict.modes = [math.exp(m.center) for m in noise.modes] if len(noise.modes) > 1 else []
    verdict.night = [math.exp(x) for x in night]
    verdict.confirmations = [math.exp(x - noise.nearest(x).center) for x in night[1:]]


def disturbed(processes: Sequence[Measurement], history: history_mod.History) -> list[str]:
    """What says the machine, not the code, was slower while tonight's processes ran: other
    processes took its CPUs, its fixed calibration workloads ran slower than their own history's
    noise allows, or the GPU slowed down for heat or a hardware reason."""
    seen: list[str] = []
    cpu_history, gpu_history = history_mod.probes(history.points)
    for i, process in enumerate(processes):
        name = "the first process" if i == 0 else f"re-measurement {i}"
        host_bound = host_sensitive(process.result)
        load = process.result.host
        if host_bound and load is not None and host_mod.contended(load):
            seen.append(f"{name}: {host_mod.describe(load)}")
        state = process.environment.get("state")
        probe = state.get("cpu_probe_s") if isinstance(state, dict) else None
        if host_bound and isinstance(probe, (int, float)) and probe > 0 \
                and _machine_slower(cpu_history, math.log(probe)):
            usual = math.exp(sorted(cpu_history)[len(cpu_history) // 2])
            seen.append(f"{name}: the machine ran its fixed CPU workload ×{probe / usual:.2f} slower than "
                        "the baseline's")
        peak = process.result.build.peak_tflops
        if peak and _machine_slower(gpu_history, -math.log(peak)):
            usual = math.exp(-sorted(gpu_history)[len(gpu_history) // 2])
            seen.append(f"{name}: the GPU reached {peak / usual:.0%} of the baseline's measured matmul peak")
        telemetry = process.result.telemetry
        reasons = history_mod.disturbing(telemetry.throttle_reasons) if telemetry is not None else []
        if reasons:
            seen.append(f"{name}: the GPU slowed down ({', '.join(reasons)})")
    return seen


HOST_SHARE = 0.3  # launch cost over GPU compute above which the host's speed shows in a CUDA case


def host_sensitive(result: CaseResult) -> bool:
    """Whether the host's speed can move this case: a CPU case, or a CUDA case whose launch cost is
    a telling share of its GPU time (a CUDA-graph replay, or a large GPU-bound batch, is not)."""
    timing = result.timing
    if not result.case.is_cuda or timing is None:
        return True
    if timing.launch is None or timing.gpu_compute is None or timing.gpu_compute.median <= 0:
        return True  # no probe: the host may matter
    return timing.launch.median > HOST_SHARE * timing.gpu_compute.median


def _machine_slower(history: list[float], tonight: float) -> bool:
    """A calibration reading slower than its own history's noise band and than MACHINE_SLOWER."""
    if len(history) < 2:
        return False
    noise = model(history, [], alpha=0.001)
    kind, _ = noise.classify(tonight, MACHINE_SLOWER)
    return kind == "slower"
