"""``pytest-trt compare``: which GPU (or build) is faster, case by case, the first file as reference.

Each later file is judged against the first with the gate's own rule (``pytest_trt.gate.judge``), so
the ratios, CIs and the reference median (the mode of the first file's runs nearest to the case) are
the gate's. On comparable hardware the gate's verdicts are shown; on other hardware the gate returns
INCOMPARABLE with its ratio and CI, and the table says faster or slower in words instead.

One orientation throughout: a speed-up is the reference's time over the other file's, so above 1 the
other file is faster. Whether a case measures the GPU or the host matters for a cross-GPU answer: a
host-bound case (ENQUEUE-BOUND, or a launch cost above 0.8 × its GPU time in the backlog probe)
compares the hosts, so the geo-means are split by it and the headline uses the GPU-bound cases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pytest_trt import baseline as baseline_mod
from pytest_trt import gate, jsonfile, schema
from pytest_trt.baseline import Baseline, BaselineError, Entry
from pytest_trt.case import Case
from pytest_trt.records import CaseResult, Flag, JSONDict
from pytest_trt.stats import ENQUEUE_BOUND_RATIO
from pytest_trt.verdict import Outcome, Verdict

GPU, HOST, UNKNOWN, CPU = "GPU", "host", "unknown", "cpu"
BOUNDS = (GPU, UNKNOWN, HOST, CPU)  # the order of the geo-mean columns
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass
class Source:
    """One input file: its reference view (all runs) and its current view (the newest results)."""

    path: str
    kind: str  # "baseline" or "results"
    environment: JSONDict
    reference: Baseline
    current: dict[str, CaseResult]  # key -> result
    bounds: dict[str, str]  # key -> GPU, host, unknown or cpu
    letter: str = "A"

    @property
    def label(self) -> str:
        return Path(self.path).name

    @property
    def device(self) -> str:
        return baseline_mod.describe_environment(self.environment)


@dataclass
class Row:
    """One case across the files: its verdict per later file (None: absent there)."""

    key: str
    case: Case
    present: list[bool]  # per source, the reference first
    verdicts: list[Verdict | None]  # per later source

    @property
    def common(self) -> bool:
        return all(self.present)


@dataclass
class Comparison:
    """Everything ``compare`` shows."""

    sources: list[Source]
    rows: list[Row]  # every case of any file, in case order (batch sizes numerically)
    hardware_notes: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Verdict]:
        return [v for row in self.rows for v in row.verdicts if v is not None and v.outcome is Outcome.REGRESSION]

    def comparable(self, later: int) -> bool:
        """Whether later file ``later`` (0 = the second file) ran on the reference's hardware."""
        return not gate.hardware_difference(self.sources[0].environment, self.sources[later + 1].environment)

    def bound(self, row: Row) -> str:
        """The case's pace-setter across the files: host-bound if any file says so, GPU-bound if all do."""
        found = [s.bounds.get(row.key, UNKNOWN) for s, here in zip(self.sources, row.present) if here]
        if HOST in found:
            return HOST
        for kind in (GPU, CPU):
            if found and all(b == kind for b in found):
                return kind
        return UNKNOWN


def bound_of(result: CaseResult) -> str:
    """GPU or host from the ENQUEUE-BOUND flag or the backlog probe; unknown without either."""
    timing = result.timing
    launch = timing.launch.median if timing is not None and timing.launch is not None else None
    compute = timing.gpu_compute.median if timing is not None and timing.gpu_compute is not None else None
    return _bound(result.case, result.flags, launch, compute)


def _bound_of_entry(entry: Entry) -> str:
    return _bound(entry.case, entry.flags, entry.launch_s, entry.gpu_compute_s)


def _bound(case: Case, flags: Sequence[Flag], launch: float | None, compute: float | None) -> str:
    if not case.is_cuda:
        return CPU
    if Flag.ENQUEUE_BOUND in flags:
        return HOST
    if launch is not None and compute:
        return HOST if launch > ENQUEUE_BOUND_RATIO * compute else GPU
    return UNKNOWN  # older files: back-to-back events cannot tell the host's pace from the GPU's


def load_source(path: str | Path) -> Source:
    """Read a baseline file or a results file; ``BaselineError`` naming the file otherwise."""
    where = str(path)
    try:
        data = jsonfile.read(path, "file")
    except jsonfile.FileFormatError as exc:
        raise BaselineError(str(exc)) from None
    if isinstance(data, dict) and "runs" in data:
        return _from_baseline(baseline_mod.from_dict(data, where))
    if isinstance(data, dict) and "cases" in data:
        try:
            document = schema.results(data, where)
        except schema.SchemaError as exc:
            raise BaselineError(str(exc)) from None
        run = baseline_mod.runs_from_results(document.cases, document.environment, Path(where).name,
                                             document.created or None)
        current = {key: result for result in document.cases if (key := _key(result)) in run.cases}
        return Source(where, "results", document.environment, Baseline(where, [run]), current,
                      {key: bound_of(result) for key, result in current.items()})
    raise BaselineError(f"{where}: neither a pytest-trt baseline file ('runs') nor a results file ('cases')")


def _key(result: CaseResult) -> str:
    from pytest_trt.records import case_key

    return result.key or case_key(result.nodeid)


def _from_baseline(reference: Baseline) -> Source:
    if not reference.runs:
        raise BaselineError(f"{reference.path}: baseline file holds no runs")
    newest = reference.runs[-1]
    current = {key: entry.to_result(key) for key, entry in newest.cases.items()}
    bounds = {key: _bound_of_entry(entry) for key, entry in newest.cases.items()}
    return Source(reference.path, "baseline", newest.environment, reference, current, bounds)


def compare(paths: Sequence[str | Path], *, threshold: float = 0.05, alpha: float = 0.01) -> Comparison:
    """Judge every later file against the first, case by case."""
    if len(paths) < 2:
        raise ValueError("compare needs at least two files")
    if len(paths) > len(LETTERS):
        raise ValueError(f"compare takes at most {len(LETTERS)} files")
    sources = [load_source(p) for p in paths]
    for letter, source in zip(LETTERS, sources):
        source.letter = letter
    first = sources[0]
    keys: dict[str, Case] = {}
    for source in sources:
        keys.update({k: r.case for k, r in source.current.items() if k not in keys})
    policy = gate.Policy(threshold=threshold, alpha=alpha, confirm=0)
    rows = []
    for key, case in sorted(keys.items(), key=lambda kv: _order(kv[1])):
        verdicts = [gate.judge(gate.Measurement(other.current[key], other.environment), first.reference, policy)
                    if key in other.current else None for other in sources[1:]]
        rows.append(Row(key, case, [key in s.current for s in sources], verdicts))
    notes = [f"{other.letter} vs A: {difference} — compared, not gated: speed-ups with the gate's CI, in words"
             for other in sources[1:] if (difference := gate.hardware_difference(first.environment, other.environment))]
    return Comparison(sources, rows, notes)


def _order(case: Case) -> tuple[str, str, str, bool, str, int]:
    return case.model or "", case.backend, case.precision, case.variant != "eager", case.variant, case.batch_size


def speedup(verdict: Verdict | None) -> tuple[float, tuple[float, float] | None] | None:
    """The other file's speed-up over the reference (>1: faster) and its CI, from the gate's ratio."""
    if verdict is None or not verdict.ratio or not math.isfinite(verdict.ratio) or verdict.ratio <= 0:
        return None
    ci = verdict.ratio_ci
    return 1.0 / verdict.ratio, (1.0 / ci[1], 1.0 / ci[0]) if ci and ci[0] > 0 else None


def in_words(verdict: Verdict | None) -> str:
    """Faster or slower when the CI says so, on hardware the gate does not judge."""
    found = speedup(verdict)
    if found is None:
        return verdict.outcome.value if verdict is not None else "MISSING"
    value, ci = found
    if ci is None:
        return "faster" if value > 1 else "slower"
    return "faster" if ci[0] > 1 else "slower" if ci[1] < 1 else "no clear difference"


def geomeans(result: Comparison, later: int, rows: Sequence[Row]) -> dict[str, dict[str, tuple[float, int]]]:
    """Geo-mean speed-up of later file ``later`` per backend/precision (and "all"), per bound."""
    logs: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        found = speedup(row.verdicts[later])
        if found is None:
            continue
        bound = result.bound(row)
        for group in (f"{row.case.backend}/{row.case.precision}", "all"):
            logs.setdefault(group, {}).setdefault(bound, []).append(math.log(found[0]))
    return {group: {b: (math.exp(sum(v) / len(v)), len(v)) for b, v in by.items()} for group, by in logs.items()}


def headline(result: Comparison, later: int, rows: Sequence[Row]) -> str:
    """'NVIDIA H200 is 1.12× faster than NVIDIA H100 ... (geo-mean of 12 GPU-bound cases)'."""
    first, other = result.sources[0], result.sources[later + 1]
    by_bound = geomeans(result, later, rows).get("all", {})
    chosen, what = _headline_cases(by_bound)
    if chosen is None:
        return f"{other.letter} and A share no timed case to compare."
    value, n = chosen
    if what == UNKNOWN:
        lacking = [s.letter for s in (first, other) if any(s.bounds.get(r.key) == UNKNOWN for r in rows)]
        what = (f"cases not known to be host-bound; none is known to be GPU-bound: {' and '.join(lacking)} "
                f"{'have' if len(lacking) > 1 else 'has'} no backlog-probe timing")
    same = first.device == other.device
    name, ref = (other.label, first.label) if same else (other.device, first.device)
    words = f"{value:.2f}× faster than" if value >= 1 else f"{1 / value:.2f}× slower than"
    return f"{name} ({other.letter}) is {words} {ref} (A) (geo-mean of {n} {what})"


def _headline_cases(by_bound: dict[str, tuple[float, int]]) -> tuple[tuple[float, int] | None, str]:
    if GPU in by_bound:
        return by_bound[GPU], "GPU-bound cases"
    logs = [(math.log(v) * n, n) for b, (v, n) in by_bound.items() if b in (UNKNOWN, CPU)]
    if logs:
        n = sum(k for _, k in logs)
        kind = "CPU cases" if UNKNOWN not in by_bound else UNKNOWN  # the caller names the files that lack it
        return (math.exp(sum(x for x, _ in logs) / n), n), kind
    if HOST in by_bound:
        return by_bound[HOST], "cases, all host-bound: this compares the hosts more than the GPUs"
    return None, ""
