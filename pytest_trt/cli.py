"""The ``pytest-trt`` console script: subcommands around result and baseline files."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

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
        help="print the tables of one or more results files (markdown)",
        description="Render results files (--trt-results) as the markdown tables a run prints.",
    )
    rep.add_argument("files", nargs="+", metavar="FILE",
                     help="results JSON (--trt-results), or the .partial.jsonl journal a crashed run left")
    rep.set_defaults(handler=_report)
    from pytest_trt import baseline_cli

    baseline_cli.add_parser(commands)
    return parser


def _report(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from pytest_trt import jsonfile, report, schema

    for name in args.files:
        try:
            if name.endswith(".jsonl"):  # the journal a crashed run left: cases only
                document = _journal(name)
            else:
                document = schema.results(jsonfile.read(name, "results file"), name)
        except (jsonfile.FileFormatError, schema.SchemaError) as exc:
            print(f"pytest-trt report: error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        sys.stdout.write(report.markdown_of(document) + "\n")
    return EXIT_OK


def _journal(name: str) -> Any:
    from pytest_trt import jsonfile, schema

    try:
        with open(name, encoding="utf-8") as handle:
            lines = [line for line in handle if line.strip()]
    except OSError as exc:
        raise jsonfile.FileFormatError(f"{name}: cannot read the journal: {exc.strerror or exc}") from None
    cases = [schema.result(jsonfile.loads(line, f"{name}: line {i + 1}"), f"{name}: line {i + 1}")
             for i, line in enumerate(lines)]
    return schema.ResultsDocument(name, {}, cases)


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
    from pytest_trt.compare import compare, render

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
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render(result, markdown=args.md))
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
