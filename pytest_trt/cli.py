"""The ``pytest-trt`` console script: subcommands around result and baseline files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from pytest_trt import gate

EXIT_OK, EXIT_REGRESSION, EXIT_USAGE = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pytest-trt", description="pytest-trt utilities")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    cmp = commands.add_parser(
        "compare",
        help="compare baseline or results files case by case",
        description="Compare two or more baseline or results files; the first is the reference.",
    )
    cmp.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="baseline (--trt-save-baseline) or results (--trt-results) JSON",
    )
    cmp.add_argument("--md", action="store_true", help="print markdown instead of a text table")
    cmp.add_argument("--all", action="store_true", dest="show_all",
                     help="also the cases some files lack (NEW: not in the reference; MISSING: not in a later file)")
    cmp.add_argument(
        "--fail-on-regression",
        action="store_true",
        help="exit 1 when a case regressed by the gate's rule (comparable hardware only)",
    )
    cmp.add_argument(
        "--threshold",
        default="5%",
        metavar="PCT",
        help="smallest slowdown that counts as a regression (default 5%%)",
    )
    cmp.set_defaults(handler=_compare)
    rep = commands.add_parser(
        "report",
        help="the report of results and baseline files: markdown, or one HTML page for several GPUs",
        description="Render results files (--trt-results), the .partial.jsonl journal a crashed run left, and "
                    "baselines. A results file measured on a given baseline's hardware is re-judged against that "
                    "baseline by the gate (as one process); a baseline no results file matches shows its newest "
                    "run judged against the runs before it.",
    )
    rep.add_argument("files", nargs="+", metavar="FILE",
                     help="results JSON, a .partial.jsonl journal, or a baseline (--trt-save-baseline)")
    rep.add_argument("--html", metavar="OUT", help="write one self-contained HTML page here instead of markdown")
    rep.add_argument("--threshold", metavar="PCT",
                     help="judge at this threshold (default: each case's own, else the file's, else 5%%)")
    rep.set_defaults(handler=_report)
    from pytest_trt import baseline_cli

    baseline_cli.add_parser(commands)
    return parser


def _report(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from pytest_trt import atomic, report
    from pytest_trt.baseline import BaselineError
    from pytest_trt.report import escape, html, sections

    prog = "pytest-trt report"
    try:
        threshold = None if args.threshold is None else gate.parse_threshold(args.threshold)
    except ValueError as exc:
        print(f"{prog}: error: --threshold: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        parts = sections.from_files(args.files, threshold)
    except BaselineError as exc:
        print(f"{prog}: error: {escape.terminal(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    if args.html is None:
        for part in parts:
            sys.stdout.write(report.markdown(part.results, part.verdicts, part.environment) + "\n")
        return EXIT_OK
    try:
        atomic.write_text(Path(args.html), html.document(parts))
    except OSError as exc:
        print(f"{prog}: error: --html {args.html}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    cases = sum(len(p.results) for p in parts)
    print(f"{prog}: wrote {args.html} ({len(parts)} section{'s' if len(parts) != 1 else ''}, {cases} cases)")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 ok, 1 regression, 2 usage or file error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage; keep main() returning an int
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    status: int = args.handler(parser, args)
    return status


def _compare(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from pytest_trt.baseline import BaselineError
    from pytest_trt.compare import compare
    from pytest_trt.report import escape
    from pytest_trt.report.comparison import render

    prog = "pytest-trt compare"
    if len(args.files) < 2:
        print(f"{prog}: error: give at least two files (the first is the reference)", file=sys.stderr)
        return EXIT_USAGE
    try:
        threshold = gate.parse_threshold(args.threshold)
    except ValueError as exc:
        print(f"{prog}: error: --threshold: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = compare(args.files, threshold=threshold)
    except BaselineError as exc:
        print(f"{prog}: error: {escape.terminal(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render(result, markdown=args.md, show_all=args.show_all))
    if args.fail_on_regression:
        regressions = result.regressions
        for verdict in regressions:
            print(verdict.message, file=sys.stderr)
        if regressions:
            return EXIT_REGRESSION
        if result.hardware_notes:
            print(f"{prog}: hardware differs, nothing was gated", file=sys.stderr)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
