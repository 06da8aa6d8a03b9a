"""Human-readable tables of a run: terminal summary, markdown and HTML reports.

Grouped by model, in the spirit of the seeds' tables: backend, precision, batch, median and p99
latency, throughput, speed-up against the fp32 PyTorch runner of the same model and batch, accuracy.
"""

from __future__ import annotations

import html as html_mod
from collections import defaultdict
from typing import Any

from pytest_trt.results import OK, CaseResult

COLUMNS = ("backend", "precision", "batch", "variant", "status", "median ms", "p99 ms", "calls/sample", "items/s",
           "speed-up", "vs own fp32", "TFLOP/s", "% peak", "metric", "value", "drop", "W", "items/s/W", "flags",
           "verdict")


def rows(results: list[CaseResult]) -> dict[str, list[list[str]]]:
    """Table rows per model name, sorted by backend, precision, batch."""
    by_model: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_model[result.model_name].append(result)
    tables = {}
    for model, cases in sorted(by_model.items()):
        cases.sort(key=lambda r: (r.case.backend, r.case.precision, r.case.batch_size, r.case.variant))
        tables[model] = [_row(r, _find(cases, "torch", r), _find(cases, r.case.backend, r)) for r in cases]
    return tables


def _find(cases: list[CaseResult], backend: str, result: CaseResult) -> CaseResult | None:
    """The timed fp32 eager case of ``backend`` at the batch size of ``result``."""
    for other in cases:
        c = other.case
        if (c.backend, c.precision, c.variant, c.batch_size) == (backend, "fp32", "eager", result.case.batch_size) \
                and other.timing is not None:
            return other
    return None


def _speedup(t: Any, ref: CaseResult | None) -> str:
    return f"{ref.timing.stats.median / t.median:.2f}x" if t and ref and ref.timing else "-"


def _row(r: CaseResult, ref: CaseResult | None, own: CaseResult | None) -> list[str]:
    """``ref``: fp32 PyTorch of the same batch (the table's reference runner); ``own``: this backend's fp32."""
    t = r.timing.stats if r.timing else None
    acc = r.accuracy
    speedup = _speedup(t, ref)
    verdict = (r.verdict or {}).get("outcome", "")
    return [
        r.case.backend, r.case.precision, str(r.case.batch_size),
        "" if r.case.variant == "eager" else r.case.variant,
        r.status.upper() if r.status != OK else "ok",
        _num(t.median * 1e3 if t else None), _num(t.p99 * 1e3 if t else None),
        # > 1: short CUDA calls timed in blocks, so the percentiles are of block means (README)
        str(r.timing.calls_per_sample) if r.timing and r.timing.calls_per_sample > 1 else "",
        _num(t.throughput if t else None), speedup, _speedup(t, own),
        _num(r.build.get("tflops") if t else None), _num(r.build.get("percent_of_peak") if t else None),
        str(acc.get("metric") or ("agree" if acc.get("agreement") else "-")),
        _num(acc.get("value")), _signed(acc.get("drop")),
        _num(r.telemetry.get("power_mean_w")), _num(r.telemetry.get("items_per_s_per_w")),
        ",".join(r.flags), verdict,
    ]


def _num(value: Any) -> str:
    if value is None:
        return "-"
    value = float(value)
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _signed(value: Any) -> str:
    return "-" if value is None else f"{float(value):+.4f}"


def _drop_empty(header: tuple[str, ...], body: list[list[str]]) -> tuple[list[str], list[list[str]]]:
    """Hide columns with nothing to say (no telemetry on CPU, no verdicts without a baseline)."""
    keep = [i for i, name in enumerate(header)
            if name in ("backend", "precision", "batch", "status") or any(row[i] not in ("", "-") for row in body)]
    return [header[i] for i in keep], [[row[i] for i in keep] for row in body]


def table(results: list[CaseResult]) -> list[str]:
    lines = []
    for model, body in rows(results).items():
        header, body = _drop_empty(COLUMNS, body)
        widths = [max(len(h), *(len(row[i]) for row in body)) for i, h in enumerate(header)]
        lines.append(f"{model}")
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)))
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in body]
        lines.append("")
    for r in results:
        if r.status != OK and r.message:
            lines.append(f"{r.case.id}: {r.status.upper()}: {r.message}")
    lines += _profile_lines(results)
    return lines


def _profile_lines(results: list[CaseResult]) -> list[str]:
    """One line per ONNX Runtime case profiled with --trt-ort-profile on."""
    from pytest_trt.backends import ort_profile

    found = []
    for r in results:
        summary = r.build.get("ort_profile")
        if isinstance(summary, dict):
            text = summary["error"] if "error" in summary else ort_profile.describe(summary)
            found.append(f"{r.case.id}: ONNX Runtime profile: {text}")
    return found


def gate_lines(verdicts: list[dict[str, Any]]) -> list[str]:
    if not verdicts:
        return []
    counts: dict[str, int] = defaultdict(int)
    for verdict in verdicts:
        counts[verdict["outcome"]] += 1
    lines = ["gate: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))]
    lines += [f"  {v['message']}" for v in verdicts if v["outcome"] != "PASS"]
    return lines


def markdown(results: list[CaseResult], env: dict[str, Any], verdicts: list[dict[str, Any]]) -> str:
    hw = env.get("hardware", {})
    device = hw.get("gpu_name") or hw.get("cpu_model") or "unknown device"
    parts = [f"# pytest-trt results — {device}", ""]
    for model, body in rows(results).items():
        header, body = _drop_empty(COLUMNS, body)
        parts += [f"## {model}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        parts += ["| " + " | ".join(row) + " |" for row in body]
        parts.append("")
    if verdicts:
        from pytest_trt import gate, gate_report

        objects = [gate.Verdict(**{**v, "ratio_ci": tuple(v["ratio_ci"]) if v.get("ratio_ci") else None})
                   for v in verdicts]
        parts.append(gate_report.markdown(objects, env))
    return "\n".join(parts)


def html(results: list[CaseResult], verdicts: list[dict[str, Any]]) -> str:
    esc = html_mod.escape
    out = ["<!doctype html><meta charset='utf-8'><title>pytest-trt results</title>",
           "<style>table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"]
    for model, body in rows(results).items():
        header, body = _drop_empty(COLUMNS, body)
        out.append(f"<h2>{esc(model)}</h2><table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>")
        out += ["<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in body]
        out.append("</table>")
    for verdict in verdicts:
        if verdict["outcome"] != "PASS":
            out.append(f"<p>{esc(verdict['message'])}</p>")
    return "\n".join(out) + "\n"
