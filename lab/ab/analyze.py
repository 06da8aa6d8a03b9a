"""Judge the A/B validation offline from per-process results, with the product's own code.

    python lab/ab/analyze.py SOURCE [SOURCE ...] --threshold 2.5% --also 2%,5% --out ab.json --md ab.md

Each SOURCE is what ``collect.py`` wrote (the folder, or a .tar.xz of it): one results file per
pytest process (one PR job) and a manifest of their conditions (A: an A/A job; B2/B5/B10: the
change has 2.5/5/10 % more blocks). Per condition:

- A/B: each A/B case's processes re-decided by ``pytest_trt.ab.decide.decide`` at the threshold
  (what the job's test item decided, recomputed from its kept rounds, so other thresholds can be
  read off the same jobs); the share of cases that are REGRESSION is "red" for A/A and "caught" for
  a slowdown, with its exact (Clopper-Pearson) 95 % interval, since a share of a few dozen cases is
  no proof of a 1 % rate.
- The stored-baseline gate on the same processes: each process's ``test_latency`` case judged by
  ``gate.judge`` against a baseline of ``--runs`` other A/A processes, with fresh re-measurements
  drawn from the condition's other processes (lab/nights/analyze.py's resampled night).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import random
import statistics
import sys
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pytest_trt import gate, jsonfile, schema  # noqa: E402
from pytest_trt.ab import decide  # noqa: E402
from pytest_trt.ab.record import AbResult  # noqa: E402
from pytest_trt.records import CaseState, JSONDict, case_key  # noqa: E402
from pytest_trt.verdict import Outcome  # noqa: E402

LEVELS = {"A": 0.0, "B2": 0.02, "B5": 0.05, "B10": 0.10}  # collect.py: 51 blocks against 50 for B2


def _nights() -> ModuleType:
    """lab/nights/analyze.py, loaded by path (lab/ holds no packages): its loader and resampled night."""
    path = Path(__file__).resolve().parents[1] / "nights" / "analyze.py"
    spec = importlib.util.spec_from_file_location("lab_nights_analyze", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class Job:
    """One pytest process: its A/B comparisons by case key."""

    name: str
    condition: str
    comparisons: dict[str, AbResult]


def load_jobs(folder: Path) -> list[Job]:
    manifest = json.loads((folder / "manifest.json").read_text())
    jobs = []
    for entry in manifest["processes"]:
        if not entry.get("results"):
            continue
        path = folder / entry["results"]
        document = schema.results(jsonfile.read(path, "results file"), str(path))
        found = {(r.key or case_key(r.nodeid)): r.ab for r in document.cases
                 if r.ab is not None and r.status is CaseState.OK}
        jobs.append(Job(f"{folder.name}/{path.stem}", entry["condition"], found))  # type: ignore[arg-type]
    return jobs


def exact_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson interval of a share k/n, by bisection on the binomial tails."""
    def at_least(p: float) -> float:  # P(X >= k), increasing in p
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    def at_most(p: float) -> float:  # P(X <= k), decreasing in p
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(0, k + 1))

    def root(f: Callable[[float], float], target: float, increasing: bool) -> float:
        lo, hi = 0.0, 1.0
        for _ in range(60):
            mid = (lo + hi) / 2
            if (f(mid) < target) == increasing:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    tail = (1 - level) / 2
    low = 0.0 if k == 0 else root(at_least, tail, True)
    high = 1.0 if k == n else root(at_most, tail, False)
    return low, high


def ab_summary(jobs: list[Job], threshold: float, group: int = 1) -> JSONDict:
    """Outcomes of every A/B case of these jobs, re-decided at ``threshold``. ``group`` > 1 decides
    each case over the processes of that many jobs together, as ``--trt-ab-processes group-1`` would
    (a fresh process is another process of the same condition); an incomplete last group is dropped."""
    outcomes: Counter[str] = Counter()
    per_key: dict[str, Counter[str]] = defaultdict(Counter)
    ratios, widths = [], []
    for start in range(0, len(jobs) - group + 1, group):
        members = jobs[start:start + group]
        for key in members[0].comparisons:
            if not all(key in job.comparisons for job in members):
                continue
            # re-estimated from the kept rounds (and pairs of builds) by today's rule, not as recorded
            processes = [decide.reestimate(p, decide.CONFIDENCE) for job in members
                         for p in job.comparisons[key].processes]
            decision = decide.decide(processes, threshold)
            outcomes[decision.outcome.value] += 1
            per_key[key][decision.outcome.value] += 1
            ratios.append(decision.ratio)
            widths.append(decision.ci[1] / decision.ci[0] - 1)
    n = sum(outcomes.values())
    red = outcomes[Outcome.REGRESSION.value]
    low, high = exact_interval(red, n) if n else (0.0, 1.0)
    quartiles = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else []
    return {"cases": n, "jobs": len(jobs), "jobs_per_decision": group, "regression": red,
            "regression_share": red / n if n else None,
            "regression_share_95ci": [low, high], "outcomes": dict(outcomes),
            "per_case": {k: dict(v) for k, v in sorted(per_key.items())},
            "ratio_median": statistics.median(ratios) if ratios else None, "ratio_quartiles": quartiles,
            "ci_width_median": statistics.median(widths) if widths else None}


def gate_summary(nights: ModuleType, sources: list[Path], threshold: float, runs: int, confirm: int,
                 count: int, seed: int) -> JSONDict:
    """The stored-baseline gate on the same processes' ``test_latency`` cases (resampled nights)."""
    pools: dict[str, list[object]] = defaultdict(list)
    for source in sources:
        for process in nights.load(source):
            process.measurements = {k: m for k, m in process.measurements.items() if m.result.ab is None}
            process.case_s = {k: s for k, s in process.case_s.items() if k in process.measurements}
            if process.measurements:  # a job run with -k "not test_latency" has none
                pools[process.condition].append(process)
    rules = gate.Policy(threshold=threshold, confirm=confirm)
    out: JSONDict = {}
    for condition in [c for c in LEVELS if c in pools]:
        if len(pools["A"]) <= runs + (condition == "A"):
            out[condition] = {"skipped": f"too few A processes with test_latency cases ({len(pools['A'])}) "
                                     f"for a baseline of {runs}"}
            continue
        tally, rng = nights.Tally(), random.Random(f"{seed}-{condition}")
        for _ in range(count):
            nights.night(pools, condition, rules, runs, rng, tally)
        out[condition] = nights.summary(tally, nights.achieved(pools, condition), LEVELS[condition])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--threshold", default="2.5%", help="the threshold the claim is made at")
    parser.add_argument("--also", default="", help="other thresholds to show, comma-separated")
    parser.add_argument("--group", default="1", help="jobs whose processes one decision combines, comma-separated "
                        "(2: as --trt-ab-processes 1)")
    parser.add_argument("--runs", type=int, default=5, help="stored-baseline gate: baseline runs per night")
    parser.add_argument("--confirm", type=int, default=2)
    parser.add_argument("--nights", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--machine", default="")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--md", type=Path)
    args = parser.parse_args(argv)
    nights = _nights()
    folders = [nights.unpacked(s) for s in args.sources]
    jobs = [job for folder in folders for job in load_jobs(folder)]
    by_condition: dict[str, list[Job]] = defaultdict(list)
    for job in jobs:
        by_condition[job.condition].append(job)
    thresholds = [gate.parse_threshold(args.threshold)] + [gate.parse_threshold(t) for t in args.also.split(",") if t]
    groups = [int(g) for g in args.group.split(",")]
    report: JSONDict = {"machine": args.machine, "threshold": thresholds[0],
                        "jobs": {c: len(j) for c, j in by_condition.items()},
                        "ab": {f"{t:g}/{g}": {c: ab_summary(by_condition[c], t, g) for c in LEVELS if c in by_condition}
                               for t in thresholds for g in groups},
                        "gate": gate_summary(nights, folders, thresholds[0], args.runs, args.confirm, args.nights,
                                             args.seed),
                        "gate_settings": {"runs": args.runs, "confirm": args.confirm, "nights": args.nights}}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    text = render(report)
    if args.md:
        args.md.write_text(text + "\n")
    print(text)
    return 0


def _pct(x: object) -> str:
    return "n/a" if not isinstance(x, int | float) else f"{x:.1%}"


def _ratio(x: object) -> str:
    return "n/a" if not isinstance(x, int | float) else f"×{x:.3f}"


def render(report: JSONDict) -> str:
    ab, gates = report["ab"], report["gate"]
    assert isinstance(ab, dict) and isinstance(gates, dict)
    lines = [f"# A/B validation: {report['machine']}", "", f"Jobs (one pytest process each): {report['jobs']}", "",
             "## A/B rule (`pytest_trt.ab.decide`), per case", "",
             "| threshold | jobs per decision | condition | decisions | REGRESSION | share (95 % CI) | outcomes | "
             "B/A median | CI width median |", "|---|---|---|---|---|---|---|---|---|"]
    for setting, conditions in ab.items():
        assert isinstance(conditions, dict)
        threshold, group = setting.split("/")
        for name, c in conditions.items():
            low, high = c["regression_share_95ci"]
            lines.append(f"| {float(threshold):.1%} | {group} | {name} | {c['cases']} | {c['regression']} | "
                         f"{_pct(c['regression_share'])} ({low:.1%}–{high:.1%}) | {c['outcomes']} | "
                         f"{_ratio(c['ratio_median'])} | {_pct(c['ci_width_median'])} |")
    lines += ["", f"## Stored-baseline gate on the same processes' `test_latency` cases (threshold "
              f"{report['threshold']:.1%}, {report['gate_settings']})", "",
              "| condition | nights | red | per case REGRESSION | achieved slowdown |", "|---|---|---|---|---|"]
    for name, g in gates.items():
        assert isinstance(g, dict)
        if "skipped" in g:
            lines.append(f"| {name} | — | {g['skipped']} | | |")
            continue
        cases = g["cases"]
        per = "; ".join(f"{k.split('::')[-1]} {_pct(c['regression_rate'])}" for k, c in cases.items())
        achieved = "; ".join(f"{c['achieved_slowdown']:+.1%}" for c in cases.values()
                             if c["achieved_slowdown"] is not None)
        lines.append(f"| {name} | {g['nights']} | {_pct(g['nights_red'])} | {per} | {achieved} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
