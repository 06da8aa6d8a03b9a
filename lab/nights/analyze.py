"""Judge many nights offline from per-process results, with the product's own gate.

    python lab/nights/analyze.py SOURCE [SOURCE ...] --threshold 3% --out nights.json

Each SOURCE is what ``collect.py`` packed (its .tar.xz, or the folder unpacked): one results file
per pytest process and a manifest of their conditions (A: the model as it is; B5/B10/B15: 5/10/15 %
more work). A night is resampled:
a baseline of ``--runs`` A processes (``pytest_trt.baseline.new_run``, as ``pytest-trt baseline add``
builds it), tonight's process from the condition's pool, and, for each case the gate finds suspect
(``gate.wanted``), fresh re-measurements drawn from the same pool; no process is used twice in one
night. ``gate.judge`` decides. A night is red when any case is a REGRESSION.

Reported per condition: nights red, per case its REGRESSION rate and its median detectable slowdown
(``Verdict.detectable``), which cases the rule calls gateable, pytest-benchmark's
``--benchmark-compare-fail=median:T`` on the same processes (tonight's median against the newest
baseline run, as pytest-benchmark compares against one saved run), and the share of a night's wall
time that re-measuring in fresh processes costs (a fresh process: the start-up of a process of the
pool plus that case's own time in it).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pytest_trt import gate, jsonfile, schema  # noqa: E402
from pytest_trt.baseline import Baseline, new_run  # noqa: E402
from pytest_trt.gate import Measurement, Policy  # noqa: E402
from pytest_trt.records import CaseState, JSONDict, case_key  # noqa: E402
from pytest_trt.verdict import Outcome  # noqa: E402

LEVELS = {"A": 0.0, "B5": 0.05, "B10": 0.10, "B15": 0.15}


@dataclass
class Process:
    """One pytest process: its cases by key, its environment, where its wall time went."""

    name: str
    condition: str
    measurements: dict[str, Measurement]
    wall_s: float
    case_s: dict[str, float]  # each case's own time in the process (set-up and phases)

    @property
    def startup_s(self) -> float:
        return max(0.0, self.wall_s - sum(self.case_s.values()))


@dataclass
class Tally:
    nights: int = 0
    red: int = 0
    pytest_benchmark_red: int = 0
    remeasure_s: float = 0.0
    wall_s: float = 0.0
    outcomes: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    detectable: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    pytest_benchmark: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def unpacked(source: Path) -> Path:
    """A folder of ``collect.py``'s output, unpacking its tarball first where given one."""
    if source.is_dir():
        return source
    import tarfile
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="nights-"))
    with tarfile.open(source) as tar:
        tar.extractall(target, filter="data")
    (folder,) = [p for p in target.iterdir() if p.is_dir()]
    return folder


def load(source: Path) -> list[Process]:
    folder = unpacked(source)
    manifest = json.loads((folder / "manifest.json").read_text())
    processes = []
    for entry in manifest["processes"]:
        if not entry.get("results"):
            continue
        path = folder / entry["results"]
        document = schema.results(jsonfile.read(path, "results file"), str(path))
        cases = {(r.key or case_key(r.nodeid)): r for r in document.cases
                 if r.status is CaseState.OK and r.timing is not None}
        spent = {key: (r.build.prepare_s or 0.0) + sum(r.build.phase_s.values()) for key, r in cases.items()}
        processes.append(Process(f"{folder.name}/{path.stem}", entry["condition"],
                                 {k: Measurement(r, document.environment) for k, r in cases.items()},
                                 float(entry["wall_s"]), spent))
    return processes


def _baseline(runs: list[Process]) -> Baseline:
    return Baseline("resampled", [new_run([m.result for m in p.measurements.values()], p.measurements[next(iter(
        p.measurements))].environment) for p in runs])


def night(pools: dict[str, list[Process]], condition: str, rules: Policy, runs: int, rng: random.Random,
          tally: Tally, nights: dict[str, list[Process]] | None = None) -> None:
    """One resampled night of ``condition``: a baseline of A processes, tonight's, fresh re-measures
    (drawn from ``nights`` when tonight ran elsewhere: on a loaded host, say)."""
    history = rng.sample(pools["A"], runs)
    used = {p.name for p in history}
    pool = [p for p in (nights or pools)[condition] if p.name not in used]
    rng.shuffle(pool)
    tonight, spare = pool[0], pool[1:]
    baseline = _baseline(history)
    newest = history[-1]
    red = pb_red = False
    tally.wall_s += tonight.wall_s
    for key, first in tonight.measurements.items():
        verdict = gate.judge(first, baseline, rules)
        again: list[Measurement] = []
        while gate.wanted(verdict, rules) and spare[len(again):]:
            fresh = spare[len(again)]
            tally.remeasure_s += fresh.startup_s + fresh.case_s.get(key, 0.0)
            if key in fresh.measurements:
                again.append(fresh.measurements[key])
            verdict = gate.judge(first, baseline, rules, again)
        tally.outcomes[key][verdict.outcome.value] += 1
        if verdict.detectable is not None:
            tally.detectable[key].append(verdict.detectable)
        red |= verdict.outcome is Outcome.REGRESSION
        old = newest.measurements.get(key)
        if old is not None and old.result.median and first.result.median:
            slower = first.result.median > old.result.median * (1 + rules.threshold)
            tally.pytest_benchmark[key] += slower
            pb_red |= slower
    tally.nights += 1
    tally.red += red
    tally.pytest_benchmark_red += pb_red


def achieved(pools: dict[str, list[Process]], condition: str) -> dict[str, float]:
    """Each case's achieved slowdown: median of the condition's process medians over A's."""
    out = {}
    for key in pools["A"][0].measurements:
        base = [p.measurements[key].result.median for p in pools["A"] if key in p.measurements]
        cond = [p.measurements[key].result.median for p in pools[condition] if key in p.measurements]
        if base and cond:
            out[key] = statistics.median(x for x in cond if x) / statistics.median(x for x in base if x) - 1
    return out


def summary(tally: Tally, slowdown: dict[str, float], level: float) -> JSONDict:
    cases: JSONDict = {}
    for key, counts in sorted(tally.outcomes.items()):
        mds = sorted(tally.detectable.get(key, []))
        cases[key] = {
            "outcomes": dict(counts),
            "regression_rate": counts.get("REGRESSION", 0) / tally.nights,
            "detectable_median": mds[len(mds) // 2] if mds else None,
            "pytest_benchmark_rate": tally.pytest_benchmark.get(key, 0) / tally.nights,
            "achieved_slowdown": slowdown.get(key),
        }
    gateable = [k for k, c in cases.items() if isinstance(c, dict) and (c["detectable_median"] or 1) <= 0.04]
    caught = [c["regression_rate"] for k, c in cases.items() if k in gateable and isinstance(c, dict)]
    return {
        "level": level, "nights": tally.nights, "nights_red": tally.red / tally.nights,
        "pytest_benchmark_nights_red": tally.pytest_benchmark_red / tally.nights,
        "remeasure_share": tally.remeasure_s / (tally.wall_s + tally.remeasure_s),
        "cases_detectable_le_4pct": gateable, "min_catch_rate_of_those": min(caught) if caught else None,
        "cases": cases,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--threshold", default="3%")
    parser.add_argument("--runs", type=int, default=5, help="baseline runs (processes) per night")
    parser.add_argument("--confirm", type=int, default=2)
    parser.add_argument("--nights", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--tonight", nargs="+", type=Path, default=[],
                        help="draw tonight's processes and re-measurements from these (the baseline from SOURCE)")
    args = parser.parse_args(argv)
    pools: dict[str, list[Process]] = defaultdict(list)
    for folder in args.folders:
        for process in load(folder):
            pools[process.condition].append(process)
    tonight: dict[str, list[Process]] = defaultdict(list)
    for folder in args.tonight:
        for process in load(folder):
            tonight[process.condition].append(process)
    rules = Policy(threshold=gate.parse_threshold(args.threshold), confirm=args.confirm)
    sources = tonight or pools
    report: JSONDict = {"threshold": rules.threshold, "runs": args.runs, "confirm": args.confirm,
                        "processes": {c: len(p) for c, p in pools.items()},
                        "tonight_processes": {c: len(p) for c, p in tonight.items()}, "conditions": {}}
    for condition in [c for c in LEVELS if c in sources]:
        tally, rng = Tally(), random.Random(f"{args.seed}-{condition}")
        for _ in range(args.nights):
            night(pools, condition, rules, args.runs, rng, tally, tonight or None)
        both = {**pools, condition: sources[condition]}
        report["conditions"][condition] = summary(tally, achieved(both, condition), LEVELS[condition])  # type: ignore[index]
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    print(render(report))
    return 0


def render(report: JSONDict) -> str:
    lines = [f"threshold {report['threshold']:.0%}, baseline of {report['runs']} processes, "  # type: ignore[str-format]
             f"{report['confirm']} fresh re-measurements; processes: {report['processes']}"]
    conditions = report["conditions"]
    assert isinstance(conditions, dict)
    for name, c in conditions.items():
        assert isinstance(c, dict)
        lines.append(f"{name}: {c['nights']} nights, red {c['nights_red']:.1%} (pytest-benchmark median rule: "
                     f"{c['pytest_benchmark_nights_red']:.1%}), re-measuring {c['remeasure_share']:.1%} of wall time")
        cases = c["cases"]
        assert isinstance(cases, dict)
        for key, case in cases.items():
            assert isinstance(case, dict)
            mds = case["detectable_median"]
            lines.append(f"  {key:60s} REGRESSION {case['regression_rate']:6.1%}  pytest-benchmark "
                         f"{case['pytest_benchmark_rate']:6.1%}  detectable {mds if mds is None else f'{mds:.1%}'}  "
                         f"achieved {case['achieved_slowdown']:+.1%}  {dict(case['outcomes'])}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
