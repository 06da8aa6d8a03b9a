"""What a report shows, one section per device: tonight's results, their verdicts, and the baseline
they were judged against (whose runs the plots draw).

A run's own report (``--trt-report-html``) is one section. ``pytest-trt report`` makes one per results
file, so a CI job matrix with one runner per GPU gives one report for the fleet. A baseline file
given with them is the reference of every results file measured on its hardware: those results are
re-judged against it with ``gate.judge`` (docs/design.md, "Reports"). A baseline that no results
file matches is shown by its newest run, judged against the runs before it.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pytest_trt import baseline as baseline_mod
from pytest_trt import gate, jsonfile, schema
from pytest_trt.baseline import Baseline, BaselineError
from pytest_trt.gate import history as gate_history
from pytest_trt.records import JSON, CaseResult, CaseState, JSONDict, case_key
from pytest_trt.report.verdicts import describe_hardware
from pytest_trt.verdict import Verdict

if TYPE_CHECKING:
    from pytest_trt.report import Run

DEFAULT_THRESHOLD = 0.05


@dataclass(frozen=True)
class CaseView:
    """One case as the plots draw it: tonight's result against its baseline history."""

    result: CaseResult
    outcome: str  # the verdict's outcome, else the case's state ("ok" when timed and unjudged)
    reference: float | None  # the gate's reference median (the nearest mode), else the history's median
    history: list[float]  # median of each usable baseline run, oldest first
    history_energy: list[float]  # joules per item of those runs, where telemetry had it
    threshold: float


@dataclass
class Section:
    """One device's results with what they were judged against and how."""

    source: str  # the file(s) the section comes from, or "this run"
    environment: JSONDict
    results: list[CaseResult]
    verdicts: list[Verdict]
    baseline: Baseline | None
    judged: str  # one sentence: where the verdicts come from

    @property
    def device(self) -> str:
        return describe_hardware(self.environment) if self.environment.get("hardware") else "unknown device"

    def views(self, results: Sequence[CaseResult]) -> list[CaseView]:
        return [self._view(r) for r in results]

    def _view(self, result: CaseResult) -> CaseView:
        verdict = result.verdict
        history: list[float] = []
        energy: list[float] = []
        if self.baseline is not None and result.timing is not None:
            found = gate_history.of(self.baseline, result.key or case_key(result.nodeid), result, self.environment,
                                    window=gate.Policy().window)
            if not found.incomparable:  # another GPU's runs are no history of this one
                history = [math.exp(p.log_median) for p in found.points]
                energy = [math.exp(p.log_energy) for p in found.points if p.log_energy is not None]
        reference = verdict.baseline_median if verdict and verdict.baseline_median else None
        if reference is None and history:
            reference = statistics.median(history)
        outcome = verdict.outcome.value if verdict else result.status.value
        threshold = verdict.threshold if verdict and verdict.threshold > 0 else DEFAULT_THRESHOLD
        return CaseView(result, outcome, reference, history, energy, threshold)


def of_run(run: Run) -> Section:
    """The section of the session that just ran."""
    base = run.ctx.baseline
    if base is not None:
        judged = (f"judged by this run against {base.path} ({len(base.runs)} runs), suspect cases re-measured in "
                  f"{run.ctx.settings.confirm} fresh processes")
    else:
        judged = "no baseline given (--trt-baseline): nothing was judged"
    return Section("this run", run.environment, list(run.results), list(run.verdicts), base, judged)


@dataclass
class _Results:
    path: str
    document: schema.ResultsDocument


def from_files(paths: Sequence[str], threshold: float | None = None) -> list[Section]:
    """Sections of results files (and journals) and baselines; raises ``BaselineError`` naming a bad file.

    ``threshold`` overrides the one each case was judged at (its verdict's, else the file's setting).
    """
    results: list[_Results] = []
    baselines: list[Baseline] = []
    for path in paths:
        loaded = _load(path)
        if isinstance(loaded, Baseline):
            baselines.append(loaded)
        else:
            results.append(_Results(path, loaded))
    used: set[str] = set()
    sections = []
    for item in results:
        reference = _matching(baselines, item.document.environment)
        if reference is not None:
            used.add(reference.path)
        sections.append(_results_section(item, reference, threshold))
    sections += [_baseline_section(b, threshold) for b in baselines if b.path not in used]
    return sections


def _load(path: str) -> schema.ResultsDocument | Baseline:
    try:
        if path.endswith(".jsonl"):
            return journal(path)
        data = jsonfile.read(path, "file")
        if isinstance(data, dict) and "runs" in data:
            loaded = baseline_mod.from_dict(data, path)
            if not loaded.runs:
                raise BaselineError(f"{path}: baseline file holds no runs")
            return loaded
        if isinstance(data, dict) and "cases" in data:
            return schema.results(data, path)
    except (jsonfile.FileFormatError, schema.SchemaError) as exc:
        raise BaselineError(str(exc)) from None
    raise BaselineError(f"{path}: neither a pytest-trt results file ('cases') nor a baseline file ('runs')")


def journal(path: str) -> schema.ResultsDocument:
    """The ``.partial.jsonl`` journal a crashed run left: its cases, no environment."""
    try:
        with open(path, encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip()]
    except OSError as exc:
        raise jsonfile.FileFormatError(f"{path}: cannot read the journal: {exc.strerror or exc}") from None
    cases = [schema.result(jsonfile.loads(line, f"{path}: line {i + 1}"), f"{path}: line {i + 1}")
             for i, line in enumerate(lines)]
    return schema.ResultsDocument(path, {}, cases)


def _matching(baselines: Sequence[Baseline], environment: JSONDict) -> Baseline | None:
    """The first baseline holding a run on this hardware (a journal, with no environment, has none)."""
    if not environment.get("hardware"):
        return None
    for candidate in baselines:
        if any(not gate.hardware_difference(run.environment, environment) for run in candidate.runs):
            return candidate
    return None


def _threshold(result: CaseResult, settings: JSONDict, override: float | None) -> float:
    if override is not None:
        return override
    if result.verdict is not None and result.verdict.threshold > 0:
        return result.verdict.threshold  # a marker's per-test threshold included
    value: JSON = settings.get("threshold")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 \
        else DEFAULT_THRESHOLD


def rejudge(results: Sequence[CaseResult], environment: JSONDict, reference: Baseline, settings: JSONDict,
            threshold: float | None) -> tuple[list[CaseResult], list[Verdict]]:
    """Each result judged against ``reference`` by the gate, as one process (no fresh re-measurements)."""
    judged, verdicts = [], []
    for result in results:
        policy = gate.Policy(threshold=_threshold(result, settings, threshold), confirm=0)
        verdict = gate.judge(gate.Measurement(result, environment), reference, policy)
        judged.append(dataclasses.replace(result, verdict=verdict))
        verdicts.append(verdict)
    verdicts += gate.missing(reference, [r.key or r.nodeid for r in results])
    return judged, verdicts


def _results_section(item: _Results, reference: Baseline | None, threshold: float | None) -> Section:
    document, name = item.document, Path(item.path).name
    results = sorted(document.cases, key=lambda r: r.nodeid)
    if reference is None:
        judged = (f"verdicts as the run that wrote {name} judged them" if document.verdicts
                  else f"no baseline for this hardware among the files: {name} is shown unjudged")
        return Section(name, document.environment, results, list(document.verdicts), None, judged)
    results, verdicts = rejudge(results, document.environment, reference, document.settings, threshold)
    judged = (f"re-judged by pytest-trt report against {reference.path} ({len(reference.runs)} runs): tonight's "
              "process alone, without the fresh re-measurements a run makes of a suspect case (as --trt-confirm 0)")
    return Section(name, document.environment, results, verdicts, reference, judged)


def _baseline_section(reference: Baseline, threshold: float | None) -> Section:
    newest = reference.runs[-1]
    results = sorted((e.to_result(key) for key, e in newest.cases.items() if e.status is not CaseState.SKIPPED),
                     key=lambda r: r.nodeid)
    name = Path(reference.path).name
    where = f"{name}, newest run {newest.run_id}"
    if len(reference.runs) < 2:
        return Section(where, newest.environment, results, [], None, f"{name} holds one run: nothing to judge it by")
    earlier = Baseline(reference.path, reference.runs[:-1])
    results, verdicts = rejudge(results, newest.environment, earlier, {}, threshold)
    judged = (f"the newest run of {name} judged against its {len(earlier.runs)} earlier runs by pytest-trt report, "
              "as one process (as --trt-confirm 0)")
    return Section(where, newest.environment, results, verdicts, earlier, judged)
