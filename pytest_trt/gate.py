"""The regression gate: one verdict per case against a baseline.

A case REGRESSES only when all of these hold (DESIGN.md "The gate"):

1. the median ratio current/baseline exceeds ``1 + threshold`` (the effect is big enough to matter);
2. the slowdown is significant against the baseline's samples: the lower bound of a bootstrap
   confidence interval of the median ratio (two-sided level ``1 - 2*alpha``, so the bound is a
   one-sided ``1 - alpha`` bound) itself exceeds ``1 + threshold``. This is the primary rule; the
   one-sided Mann-Whitney U p-value is computed and reported alongside. The choice is justified
   by ``benchmarks/gate_validation.py``: with hundreds of samples per side Mann-Whitney finds any
   session-to-session shift significant, so "ratio > 1 + t and p < alpha" false-alarms about as
   often as a bare median threshold, while the CI bound asks that the data rule out a slowdown
   *smaller* than the threshold;
3. when the baseline holds several comparable runs, the slowdown also stands out from the
   run-to-run spread between those runs' medians: the ratio exceeds that spread (max/min), and
   the current median exceeds even the slowest run's median by more than the threshold. A shift
   the baseline itself has shown between nights is noise. (The second half was added because
   the validation benchmark showed max/min of three runs alone barely lowered A/A false alarms.)

A timing REGRESSION is then *confirmed* (``confirm``): the case is measured again right away, and
it fails only when every re-measurement regresses too. Session-to-session drift on shared hosts
comes and goes within minutes; a real slowdown is there on every measurement. The validation
benchmark measures what this buys.

IMPROVED is the mirror image. A case flagged UNSTABLE (current or newest baseline entry) whose
difference is not decided either way, yet whose CI reaches beyond the threshold band, is
UNSTABLE: the data cannot tell, and a noisy case must not pass silently. Hardware that differs
makes the case INCOMPARABLE; software differences never block and are listed in the verdict.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from pytest_trt.baseline import Baseline, BaselineRun, thin

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

PASS = "PASS"
REGRESSION = "REGRESSION"
IMPROVED = "IMPROVED"
UNSTABLE = "UNSTABLE"
INCOMPARABLE = "INCOMPARABLE"
NEW = "NEW"
MISSING = "MISSING"
OUTCOMES = (PASS, REGRESSION, IMPROVED, UNSTABLE, INCOMPARABLE, NEW, MISSING)

UNSTABLE_FLAG = "UNSTABLE"  # pytest_trt.results.UNSTABLE
HARDWARE_KEYS = ("kind", "cpu_model", "gpu_name", "gpu_count", "compute_capability", "mig")
FAILED_STATES = ("error", "oom", "nan", "build-failed")
MAX_GATE_SAMPLES = 1000  # per side; bounds the bootstrap's cost (about 60 ms per case)
MAX_BASELINE_RUNS = 5  # newest comparable runs pooled into the reference
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 20240607  # fixed: the same samples always give the same verdict


@dataclass
class Verdict:
    """The gate's outcome for one case. ``message`` is a single line."""

    outcome: str
    nodeid: str
    case_id: str
    threshold: float
    ratio: float | None = None  # current median / baseline median (> 1: slower)
    ratio_ci: tuple[float, float] | None = None
    confidence: float | None = None  # level of ratio_ci
    p_value: float | None = None  # one-sided Mann-Whitney U in the direction of the change
    baseline_median: float | None = None  # seconds
    current_median: float | None = None
    run_spread: float | None = None  # max/min of the comparable baseline runs' medians
    baseline_runs: int = 0
    accuracy_drop: float | None = None
    changes: list[str] = field(default_factory=list)
    message: str = ""
    timing_outcome: str | None = None  # what the timing alone decided
    accuracy_failed: bool = False  # the accuracy drop exceeded its limit (a REGRESSION on its own)
    confirmations: list[float] = field(default_factory=list)  # ratios of re-measurements (``confirm``)

    @property
    def detail(self) -> str:
        """The message without its leading 'OUTCOME case-id: '."""
        prefix = f"{self.outcome} {self.case_id}: "
        return self.message[len(prefix):] if self.message.startswith(prefix) else self.message

    @property
    def failed(self) -> bool:
        """Whether the test item of this case should fail."""
        return self.outcome == REGRESSION

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio_ci"] = list(self.ratio_ci) if self.ratio_ci else None
        return data


@dataclass(frozen=True)
class Comparison:
    ratio: float
    ci: tuple[float, float]
    confidence: float
    p_slower: float
    p_faster: float
    baseline_median: float
    current_median: float
    spread: float  # max/min of the runs' medians (1.0 for one run)
    slowest: float  # largest and smallest run median
    fastest: float
    runs: int


def parse_threshold(text: str | float) -> float:
    """'5%', '5' or 5 → 0.05. A bare number is a percentage; raises ValueError otherwise."""
    raw = str(text).strip()
    number = raw[:-1].strip() if raw.endswith("%") else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"threshold {text!r} is not a percentage such as '5%' or '2.5'") from None
    if not 0 < value < 1000 or not math.isfinite(value):
        raise ValueError(f"threshold {text!r} must be a percentage above 0 (e.g. '5%')")
    return value / 100.0


def judge(
    current: Mapping[str, Any],
    baseline: Baseline,
    environment: Mapping[str, Any],
    *,
    threshold: float = 0.05,
    alpha: float = 0.01,
    max_accuracy_drop: float | None = None,
) -> Verdict:
    """Judge one ``CaseResult.to_dict()`` against ``baseline`` on this run's ``environment``."""
    if not 0 < threshold:
        raise ValueError(f"threshold must be positive, got {threshold}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    nodeid = str(current["nodeid"])
    case_id = str(current.get("case_id") or nodeid)
    verdict = Verdict(PASS, nodeid, case_id, threshold)
    entries = baseline.entries(nodeid)
    if not entries:
        return _finish(verdict, NEW, f"no baseline entry in {baseline.path}")
    same_hardware = [(r, e) for r, e in entries if not hardware_difference(r.environment, environment)]
    newest_run, newest_entry = (same_hardware or entries)[-1]
    verdict.changes = software_changes(newest_run.environment, environment, newest_entry, current)

    status = str(current.get("status", "ok"))
    samples = _samples(current)
    if status == "skipped":
        return _finish(verdict, MISSING, f"not run: {current.get('message') or 'skipped'}")
    if status in FAILED_STATES or not samples:
        if not same_hardware:
            return _finish(verdict, INCOMPARABLE, _incomparable(newest_run, environment))
        if newest_entry["status"] not in FAILED_STATES and newest_entry["samples"]:
            why = current.get("message") or "no timing"
            return _finish(verdict, REGRESSION, f"status {newest_entry['status']} → {status}: {why}")
        detail = f"status {status}, no timing to compare (baseline: {newest_entry['status']})"
        return _finish(verdict, PASS, detail)

    # Timed the same way too: samples of one call and block means, or warm and cold L2, are not one quantity.
    comparable = [(r, e) for r, e in same_hardware if method(e) == method(current.get("timing") or {})]
    timed = [(run, entry) for run, entry in (comparable or same_hardware or entries) if entry["samples"]]
    if not timed:
        return _finish(verdict, NEW, f"baseline entry has status {newest_entry['status']} and no timing")
    comparison = compare_samples(samples, [e["samples"] for _, e in timed[-MAX_BASELINE_RUNS:]], alpha)
    _fill(verdict, comparison)
    if not same_hardware:
        return _finish(verdict, INCOMPARABLE, _incomparable(newest_run, environment))
    if not comparable:
        return _finish(verdict, INCOMPARABLE, _other_method(timed[-1][1], current.get("timing") or {}))

    timing_outcome = outcome = decide(comparison, threshold)
    verdict.timing_outcome = timing_outcome
    notes: list[str] = []
    drop = accuracy_drop(newest_entry.get("accuracy") or {}, current.get("accuracy") or {})
    verdict.accuracy_drop = drop
    if max_accuracy_drop is not None and drop is not None and drop > max_accuracy_drop:
        notes.append(f"accuracy dropped by {drop:.4g} (> {max_accuracy_drop:.4g})")
        verdict.accuracy_failed = True
        outcome = REGRESSION
    undecided = outcome == PASS and _reaches_beyond(comparison, threshold)
    if undecided and _flagged_unstable(current, newest_entry):
        outcome = UNSTABLE
        notes.append("flagged UNSTABLE; the CI reaches beyond the threshold, so the gate cannot decide")
    return _finish(verdict, outcome, _describe(verdict, comparison, timing_outcome, notes))


def confirm(verdict: Verdict, rejudge: Callable[[], Verdict], attempts: int) -> Verdict:
    """Re-measure a timing REGRESSION up to ``attempts`` times; it stands only if each one regresses.

    ``rejudge`` measures the case again and judges the new samples against the same baseline.
    Accuracy and status regressions fail whatever the timing says and are not re-measured. The verdict keeps
    the first measurement's numbers (choosing the faster run would bias saved baselines) and lists
    the re-measured ratios; an unconfirmed one becomes PASS and says so.
    """
    timing_only = verdict.timing_outcome == REGRESSION and not verdict.accuracy_failed
    if verdict.outcome != REGRESSION or not timing_only or attempts <= 0:
        return verdict
    for _ in range(attempts):
        again = rejudge()
        if again.ratio is not None:
            verdict.confirmations.append(again.ratio)
        if again.timing_outcome != REGRESSION:
            shown = f"×{again.ratio:.3f}" if again.ratio is not None else again.outcome
            first = f"×{verdict.ratio:.3f}" if verdict.ratio is not None else "?"
            detail = verdict.detail
            verdict.outcome = PASS
            verdict.message = (f"{verdict.outcome} {verdict.case_id}: slowdown {first} not confirmed: "
                               f"re-measured {shown} ({again.outcome}); first measurement: {detail}")
            return verdict
    verdict.message += f"; confirmed by {len(verdict.confirmations)} re-measurement(s): " + ", ".join(
        f"×{r:.3f}" for r in verdict.confirmations)
    return verdict


def method(timing: Mapping[str, Any]) -> tuple[str | None, int]:
    """How samples were taken: the clock (CUDA events warm or cold L2, perf_counter) and the calls per sample."""
    return timing.get("clock"), int(timing.get("calls_per_sample") or 1)


def _other_method(entry: Mapping[str, Any], timing: Mapping[str, Any]) -> str:
    (was_clock, was_calls), (now_clock, now_calls) = method(entry), method(timing)
    return (f"timed another way: baseline {was_clock}, {was_calls} call(s) per sample; this run {now_clock}, "
            f"{now_calls} call(s) per sample (re-save the baseline, or pin --trt-calls-per-sample / --trt-l2) "
            "— comparison, not a gate")


def _incomparable(run: BaselineRun, environment: Mapping[str, Any]) -> str:
    reason = hardware_difference(run.environment, environment) or "different hardware"
    return f"{reason} — comparison, not a gate"


def decide(comparison: Comparison, threshold: float) -> str:
    """PASS, REGRESSION or IMPROVED from the three conditions of the module docstring."""
    limit = 1.0 + threshold
    low, high = comparison.ci
    if comparison.ratio > limit and low > limit and _beyond_runs(comparison, limit):
        return REGRESSION
    if comparison.ratio < 1 / limit and high < 1 / limit and _beyond_runs(comparison, 1 / limit):
        return IMPROVED
    return PASS


def _beyond_runs(comparison: Comparison, limit: float) -> bool:
    """Condition 3 for a slowdown (limit > 1) or a speed-up (limit < 1)."""
    if limit > 1:
        return comparison.ratio > comparison.spread and comparison.current_median > comparison.slowest * limit
    return comparison.ratio < 1 / comparison.spread and comparison.current_median < comparison.fastest * limit


def compare_samples(
    current: Sequence[float], baseline_runs: Sequence[Sequence[float]], alpha: float
) -> Comparison:
    """Statistics of current samples against one or more baseline runs' samples (seconds)."""
    import numpy as np
    from scipy import stats

    cur = np.asarray(thin(current, MAX_GATE_SAMPLES), dtype=float)
    per_run = max(MAX_GATE_SAMPLES // len(baseline_runs), 50)
    base = np.concatenate([np.asarray(thin(r, per_run), dtype=float) for r in baseline_runs])
    medians = [float(np.median(r)) for r in baseline_runs]
    spread = max(medians) / min(medians) if len(medians) > 1 and min(medians) > 0 else 1.0
    base_median, cur_median = float(np.median(base)), float(np.median(cur))
    ratio = cur_median / base_median if base_median > 0 else math.inf
    confidence = 1.0 - 2.0 * alpha
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate (constant) samples
        p_slower = float(stats.mannwhitneyu(cur, base, alternative="greater").pvalue)
        p_faster = float(stats.mannwhitneyu(cur, base, alternative="less").pvalue)
        ci = _ratio_ci(cur, base, confidence)
    return Comparison(
        ratio,
        ci,
        confidence,
        p_slower,
        p_faster,
        base_median,
        cur_median,
        spread,
        max(medians),
        min(medians),
        len(medians),
    )


def _ratio_ci(
    cur: npt.NDArray[np.float64], base: npt.NDArray[np.float64], confidence: float
) -> tuple[float, float]:
    """Percentile-bootstrap CI of median(cur)/median(base), resampling each side independently."""
    import numpy as np
    from scipy import stats

    def median_ratio(c: Any, b: Any, axis: int = -1) -> Any:
        return np.median(c, axis=axis) / np.median(b, axis=axis)

    if np.ptp(cur) == 0 and np.ptp(base) == 0:
        value = float(cur[0] / base[0])
        return value, value
    result = stats.bootstrap(
        (cur, base),
        median_ratio,
        vectorized=True,
        paired=False,
        n_resamples=BOOTSTRAP_RESAMPLES,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def missing(baseline: Baseline, seen_nodeids: Iterable[str]) -> list[Verdict]:
    """A MISSING verdict for each case of the newest baseline run that this session did not run."""
    seen = {baseline.resolve(nodeid) for nodeid in seen_nodeids}
    if not baseline.runs:
        return []
    verdicts = []
    for nodeid, entry in baseline.runs[-1].cases.items():
        if nodeid not in seen:
            verdict = Verdict(MISSING, nodeid, str(entry.get("case_id") or nodeid), 0.0)
            verdicts.append(_finish(verdict, MISSING, f"in baseline {baseline.path} but not run"))
    return verdicts


def hardware_difference(baseline_env: Mapping[str, Any], current_env: Mapping[str, Any]) -> str:
    """'' when the hardware is comparable, else a reason naming both sides."""
    old = baseline_env.get("hardware") or {}
    new = current_env.get("hardware") or {}
    if old.get("kind") != new.get("kind"):
        return f"different devices: {old.get('kind')} vs {new.get('kind')}"
    if old.get("gpu_name") != new.get("gpu_name"):
        return f"different GPUs: {old.get('gpu_name')} vs {new.get('gpu_name')}"
    if old.get("kind") == "cpu" and old.get("cpu_model") != new.get("cpu_model"):
        return f"different CPUs: {old.get('cpu_model')} vs {new.get('cpu_model')}"
    for key in ("gpu_count", "compute_capability", "mig"):
        if old.get(key) != new.get(key):
            return f"different {key.replace('_', ' ')}: {old.get(key)} vs {new.get(key)}"
    return ""


def software_changes(
    baseline_env: Mapping[str, Any],
    current_env: Mapping[str, Any],
    baseline_entry: Mapping[str, Any] | None = None,
    current: Mapping[str, Any] | None = None,
) -> list[str]:
    """What changed since the baseline: ['tensorrt 10.3 → 10.8', 'model file changed', ...]."""
    old = baseline_env.get("software") or {}
    new = current_env.get("software") or {}
    changes = [
        f"{key} {old.get(key) or 'none'} → {new.get(key) or 'none'}"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]
    old_hash = (baseline_entry or {}).get("model_hash")
    new_hash = ((current or {}).get("build") or {}).get("model_hash")
    if old_hash and new_hash and old_hash != new_hash:
        changes.append("model file changed")
    return changes


def accuracy_drop(baseline_acc: Mapping[str, Any], current_acc: Mapping[str, Any]) -> float | None:
    """How much the task metric (else top-1 agreement, else cosine) fell; None if not comparable."""
    if baseline_acc.get("metric") and baseline_acc.get("metric") == current_acc.get("metric"):
        old, new = baseline_acc.get("value"), current_acc.get("value")
        if isinstance(old, (int, float)) and isinstance(new, (int, float)):
            return float(old) - float(new)
    old_agree = baseline_acc.get("agreement") or {}
    new_agree = current_acc.get("agreement") or {}
    for key in ("top1_agreement", "cosine"):
        old, new = old_agree.get(key), new_agree.get(key)
        if isinstance(old, (int, float)) and isinstance(new, (int, float)):
            return float(old) - float(new)
    return None


def _samples(result: Mapping[str, Any]) -> list[float]:
    timing = result.get("timing") or {}
    return list(timing.get("samples") or [])


def _flagged_unstable(current: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return UNSTABLE_FLAG in (current.get("flags") or []) or UNSTABLE_FLAG in (entry.get("flags") or [])


def _reaches_beyond(comparison: Comparison, threshold: float) -> bool:
    low, high = comparison.ci
    return high > 1 + threshold or low < 1 / (1 + threshold)


def _fill(verdict: Verdict, comparison: Comparison) -> None:
    verdict.ratio = comparison.ratio
    verdict.ratio_ci = comparison.ci
    verdict.confidence = comparison.confidence
    verdict.p_value = comparison.p_slower if comparison.ratio >= 1 else comparison.p_faster
    verdict.baseline_median = comparison.baseline_median
    verdict.current_median = comparison.current_median
    verdict.run_spread = comparison.spread
    verdict.baseline_runs = comparison.runs


def _describe(verdict: Verdict, comparison: Comparison, timing_outcome: str, notes: list[str]) -> str:
    low, high = comparison.ci
    text = (
        f"median {format_seconds(comparison.baseline_median)} → {format_seconds(comparison.current_median)} "
        f"(×{comparison.ratio:.3f}, {comparison.confidence:.0%} CI {low:.3f}–{high:.3f}, "
        f"p={format_p(verdict.p_value)})"
    )
    pct = f"{verdict.threshold * 100:g}%"
    limit = 1 + verdict.threshold
    if timing_outcome == REGRESSION:
        text += f" exceeds threshold {pct}"
    elif timing_outcome == IMPROVED:
        text += f" faster by more than threshold {pct}"
    elif low > limit or high < 1 / limit:  # significant beyond the threshold, but not beyond the runs
        text += (
            f" within the baseline's run-to-run spread (run medians {format_seconds(comparison.fastest)}"
            f"–{format_seconds(comparison.slowest)})"
        )
    elif comparison.ratio > limit or comparison.ratio < 1 / limit:
        text += f" beyond threshold {pct} but not significant"
    else:
        text += f" within threshold {pct}"
    if comparison.runs > 1:
        text += f" (baseline: {comparison.runs} runs)"
    return "; ".join([text, *notes])


def _finish(verdict: Verdict, outcome: str, detail: str) -> Verdict:
    verdict.outcome = outcome
    line = f"{outcome} {verdict.case_id}: {detail}"
    if verdict.changes:
        line += "; changed: " + ", ".join(verdict.changes)
    verdict.message = line.replace("\n", " ")
    return verdict


def format_seconds(value: float | None) -> str:
    """1.234e-3 → '1.234 ms'."""
    if value is None or not math.isfinite(value):
        return "n/a"
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if abs(value) >= scale:
            return f"{value / scale:.3f} {unit}"
    return f"{value * 1e9:.1f} ns"


def format_p(p: float | None) -> str:
    """2.1e-9 → '2e-9'; 0.0312 → '0.031'."""
    if p is None or not math.isfinite(p):
        return "n/a"
    if p >= 0.001:
        return f"{p:.2g}"
    if p == 0:
        return "<1e-300"
    mantissa, exponent = f"{p:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"
