"""``pytest-trt baseline``: list, show, grow, prune and accept a baseline's runs without editing JSON.

A baseline is worth what its runs are: several runs from separate processes show how much each case
varies between processes. ``add`` turns results files (one per process, ``--trt-results``) into
runs; ``prune`` drops runs; ``accept`` takes an intended change (a slower model that is worth it) by
restarting the history of the cases it names from the given results, without deleting the file.
Every change is written atomically under the baseline's lock.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pytest_trt import baseline, jsonfile, schema
from pytest_trt.baseline import Baseline, BaselineError, Run
from pytest_trt.report import escape
from pytest_trt.verdict import format_percent, format_seconds

EXIT_OK, EXIT_USAGE = 0, 2


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("baseline", help="list, show, add, prune or accept a baseline's runs",
                                 description=__doc__.splitlines()[0] if __doc__ else None)
    parser.set_defaults(handler=lambda _parser, args: run(args))
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the runs: id, date, source, device, cases")
    listing.add_argument("file", metavar="BASELINE")
    listing.set_defaults(baseline_handler=_list)
    show = actions.add_parser("show", help="each case's run medians, modes, noise and detectable slowdown")
    show.add_argument("file", metavar="BASELINE")
    show.add_argument("--case", default="*", metavar="PATTERN", help="case ids or keys to show (glob)")
    show.add_argument("--threshold", default="5%", metavar="PCT")
    show.set_defaults(baseline_handler=_show)
    grow = actions.add_parser("add", help="append results files (one per pytest process) as runs")
    grow.add_argument("file", metavar="BASELINE")
    grow.add_argument("results", nargs="+", metavar="RESULTS")
    grow.add_argument("--keep", type=int, default=baseline.MAX_RUNS, help="keep at most this many newest runs")
    grow.set_defaults(baseline_handler=_add)
    prune = actions.add_parser("prune", help="drop runs: the oldest beyond --keep, or those named by --run")
    prune.add_argument("file", metavar="BASELINE")
    prune.add_argument("--keep", type=int, metavar="N", help="keep the newest N runs")
    prune.add_argument("--run", action="append", default=[], metavar="RUN_ID", help="drop this run (repeatable)")
    prune.add_argument("--case", metavar="PATTERN", help="with --run: drop only these cases from it")
    prune.set_defaults(baseline_handler=_prune)
    accept = actions.add_parser("accept", help="accept an intended change: the cases' history restarts from RESULTS")
    accept.add_argument("file", metavar="BASELINE")
    accept.add_argument("results", nargs="+", metavar="RESULTS")
    accept.add_argument("--case", default="*", metavar="PATTERN", help="the cases whose change is accepted (glob)")
    accept.set_defaults(baseline_handler=_accept)


def _matches(pattern: str, key: str, case_id: str) -> bool:
    return fnmatch.fnmatchcase(case_id, pattern) or fnmatch.fnmatchcase(key, pattern)


def _runs_from(paths: Sequence[str]) -> list[Run]:
    runs = []
    for path in paths:
        document = schema.results(jsonfile.read(path, "results file"), path)
        runs.append(baseline.runs_from_results(document.cases, document.environment, Path(path).name,
                                               document.created or None))
    return sorted(runs, key=lambda run: run.created)  # oldest first, as the baseline keeps them


def _list(args: argparse.Namespace) -> int:
    loaded = baseline.load(args.file)
    print(f"{escape.terminal(args.file)}: {len(loaded.runs)} runs, {len(loaded.keys())} cases")
    for run in loaded.runs:
        device = baseline.describe_environment(run.environment)
        timed = sum(1 for e in run.cases.values() if e.samples)
        print(escape.terminal(f"  {run.run_id}  {run.created}  {run.source or 'pytest'}  {device}  "
                              f"{len(run.cases)} cases ({timed} timed)"))
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from pytest_trt.gate import parse_threshold
    from pytest_trt.gate.noise import model

    threshold = parse_threshold(args.threshold)
    loaded = baseline.load(args.file)
    for key in loaded.keys():
        entries = [e for _, e in loaded.entries(key) if e.median]
        if not entries or not _matches(args.case, key, entries[-1].case_id):
            continue
        import math

        logs = [math.log(e.median or 1.0) for e in entries]
        noise = model(logs, [], alpha=0.01)
        medians = ", ".join(format_seconds(e.median) for e in entries)
        modes = f"; {len(noise.modes)} modes" if len(noise.modes) > 1 else ""
        print(escape.terminal(f"{entries[-1].case_id}: {len(entries)} runs: {medians}{modes}; noise "
                              f"±{format_percent(noise.noise())}, detectable ≥"
                              f"{format_percent(noise.detectable(threshold, 3))} at {args.threshold}"))
    return EXIT_OK


def _write(args: argparse.Namespace, change: Callable[[Baseline], str], keep: int = baseline.MAX_RUNS,
           create: bool = False) -> int:
    said: list[str] = []
    baseline.update(args.file, lambda b: said.append(change(b)), keep_runs=keep, create=create)
    print(escape.terminal(f"{args.file}: {said[0]}"))
    return EXIT_OK


def _add(args: argparse.Namespace) -> int:
    runs = _runs_from(args.results)

    def change(target: Baseline) -> str:
        target.runs.extend(runs)
        return f"added {len(runs)} run(s); {len(target.runs)} in all"

    return _write(args, change, keep=args.keep, create=True)


def _prune(args: argparse.Namespace) -> int:
    if args.keep is None and not args.run:
        raise BaselineError("prune needs --keep N or --run RUN_ID")

    def change(target: Baseline) -> str:
        before = len(target.runs)
        unknown = [r for r in args.run if r not in {run.run_id for run in target.runs}]
        if unknown:
            raise BaselineError(f"{args.file}: no run {unknown[0]!r} (see pytest-trt baseline list)")
        if args.case:
            dropped = 0
            for run in target.runs:
                if run.run_id in args.run:
                    keys = [k for k, e in run.cases.items() if _matches(args.case, k, e.case_id)]
                    dropped += len(keys)
                    for key in keys:
                        del run.cases[key]
            return f"dropped {dropped} case entries"
        target.runs = [run for run in target.runs if run.run_id not in args.run]
        if args.keep is not None:
            target.runs = target.runs[-args.keep:] if args.keep > 0 else []
        return f"{before - len(target.runs)} run(s) dropped; {len(target.runs)} left"

    return _write(args, change)


def _accept(args: argparse.Namespace) -> int:
    runs = _runs_from(args.results)

    def change(target: Baseline) -> str:
        dropped = 0
        for run in target.runs:
            keys = [k for k, e in run.cases.items() if _matches(args.case, k, e.case_id)]
            dropped += len(keys)
            for key in keys:
                del run.cases[key]
        for run in runs:  # the accepted cases restart from these runs; others gain a run as with add
            target.runs.append(run)
        target.runs = [run for run in target.runs if run.cases]
        return f"accepted the change of the cases matching {args.case!r}: {dropped} older entries dropped, " \
               f"{len(runs)} run(s) added"

    return _write(args, change)


def run(args: argparse.Namespace) -> int:
    try:
        status: int = args.baseline_handler(args)
    except (BaselineError, jsonfile.FileFormatError, schema.SchemaError) as exc:
        print(f"pytest-trt baseline: error: {escape.terminal(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    return status
