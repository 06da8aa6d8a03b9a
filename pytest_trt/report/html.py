"""The HTML report: a self-contained page (no external assets), coloured by verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pytest_trt.report import ab, escape, table, verdicts

if TYPE_CHECKING:
    from pytest_trt.report import Run

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin-bottom:1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}tr.regression td{background:#fde2e1}tr.improved td{background:#e3f6e5}
tr.unstable td,tr.inconclusive td{background:#fff4d6}tr.incomparable td,tr.new td{background:#eef2fb}"""


def document(run: Run) -> str:
    device = escape.html(verdicts.describe_hardware(run.environment))
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>pytest-trt results</title>",
             f"<style>{STYLE}</style></head><body><h1>pytest-trt results — {device}</h1>"]
    if run.verdicts:
        lines = verdicts.terminal(run.verdicts)
        parts += ["<ul>", *(f"<li>{escape.html(line.strip())}</li>" for line in lines), "</ul>"]
    parts += [table.html(model) for model in table.tables(ab.others(run.results))]
    parts.append(ab.html(run.results))
    return "\n".join(parts) + "\n</body></html>\n"
