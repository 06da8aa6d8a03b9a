"""One table of the GPU zoo from the results files of several runs (the device's calls are <= 10 min,
so the zoo was measured in pieces).

    python lab/tools/zoo_table.py --out lab/results/README-zoo.md \
        "session 1=lab/results/h100_zoo1.json" "session 4=zoo5_ort.json" ...

Each argument is LABEL=PATH (results JSON, or the .partial.jsonl journal of a cut run). Where a cell
was measured in more than one file the later argument wins, and the source column says which; a case
that did not finish (interrupted, crashed) never replaces one that did. Cells of the issue's grid that
no file holds are listed as not measured, never filled in; unfinished ones are counted apart, and
every cell that is not OK gets its message under its model's table.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODELS = ("resnet50", "vgg16", "densenet201", "mobilenet_v3_large", "deeplabv3_resnet50", "unet")
BATCHES = (1, 32, 256)
# (label, backend, precision, variant): the issue's configurations
CONFIGS = (
    ("torch fp32", "torch", "fp32", "eager"),
    ("torch tf32", "torch", "tf32", "eager"),
    ("torch fp16", "torch", "fp16", "eager"),
    ("torch bf16", "torch", "bf16", "eager"),
    ("torch fp16 channels-last", "torch", "fp16", "channels-last"),
    ("torch fp16 CUDA graph", "torch", "fp16", "cuda-graph"),
    ("torch.compile fp16", "torch-compile", "fp16", "eager"),
    ("ONNX Runtime CUDA fp32", "onnxruntime", "fp32", "eager"),
    ("ONNX Runtime CUDA fp16", "onnxruntime", "fp16", "eager"),
)
Key = tuple[str, str, str, str, int]  # model, backend, precision, variant, batch
UNFINISHED = ("interrupted", "crashed")  # the run stopped inside the case: no result, only how far it got


@dataclass
class Cell:
    case: dict[str, Any]
    source: str


def load(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    cases: list[dict[str, Any]] = json.loads(text)["cases"]
    return cases


def key_of(case: dict[str, Any]) -> Key:
    c = case["case"]
    return (c["model"], c["backend"], c["precision"], c.get("variant", "eager"), int(c["batch_size"]))


def collect(sources: list[tuple[str, Path]]) -> dict[Key, Cell]:
    cells: dict[Key, Cell] = {}
    for label, path in sources:
        for case in load(path):
            if case.get("status") in ("skipped", None):
                continue
            key = key_of(case)
            if case["status"] in UNFINISHED and key in cells and cells[key].case["status"] not in UNFINISHED:
                continue
            cells[key] = Cell(case, label)
    return cells


def finished(cell: Cell | None) -> bool:
    return cell is not None and cell.case.get("status") not in UNFINISHED


def _num(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def row(label: str, batch: int, cell: Cell | None) -> str:
    if cell is None:
        return f"| {label} | {batch} | not measured |  |  |  |  |  |  |  |  |"
    case = cell.case
    status = str(case.get("status", "")).upper()
    stats = (case.get("timing") or {}).get("stats") or {}
    tele = case.get("telemetry") or {}
    build = case.get("build") or {}
    median = stats.get("median")
    flags = ",".join(case.get("flags") or [])
    return (
        f"| {label} | {batch} | {status} | {_num(median and median * 1e3, '.3f')} "
        f"| {_num(stats.get('throughput'), ',.0f')} | {_num(tele.get('power_mean_w'), '.0f')} "
        f"| {_num(tele.get('items_per_s_per_w'), '.2f')} | {_num(build.get('tflops'), '.1f')} "
        f"| {_num(build.get('percent_of_peak'), '.1f')} | {flags} | {cell.source} |"
    )


def markdown(cells: dict[Key, Cell], title: str, intro: str = "") -> str:
    grid = [(m, b, p, v, n) for m in MODELS for _, b, p, v in CONFIGS for n in BATCHES]
    grid_cells = [cells.get(key) for key in grid]
    measured = sum(1 for c in grid_cells if finished(c))
    unfinished = sum(1 for c in grid_cells if c is not None and not finished(c))
    total = len(grid)
    shape = f"{len(MODELS)} models x {len(CONFIGS)} configurations x batch {', '.join(map(str, BATCHES))}"
    stopped = f"; {unfinished} started but not finished" if unfinished else ""
    summary = (f"{measured} of the grid's {total} cells have a result (a measurement, or a state the case "
               f"reached: OOM, ERROR) ({shape}){stopped}.")
    lines = [f"# {title}", "", *([intro, ""] if intro else []), summary, ""]
    lines += coverage(cells)
    outside = sorted(set(cells) - set(grid))
    if outside:
        lines += ["", "Cases outside the grid:", ""]
        lines += [f"- {m} {b} {p} {v} batch {n}: {str(cells[(m, b, p, v, n)].case.get('status')).upper()} "
                  f"({cells[(m, b, p, v, n)].source}) {cells[(m, b, p, v, n)].case.get('message') or ''}".rstrip()
                  for m, b, p, v, n in outside]
    for model in MODELS:
        lines += ["", f"## {model}", "",
                  "| configuration | batch | status | median ms | img/s | W | img/s/W | TFLOP/s | % of peak | flags "
                  "| source |", "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for label, backend, precision, variant in CONFIGS:
            for batch in BATCHES:
                lines.append(row(label, batch, cells.get((model, backend, precision, variant, batch))))
        lines += notes(model, cells)
    return "\n".join(lines) + "\n"


def notes(model: str, cells: dict[Key, Cell]) -> list[str]:
    """The message of every grid cell of ``model`` that is not OK (why it failed, erred or stopped)."""
    found = []
    for label, backend, precision, variant in CONFIGS:
        for batch in BATCHES:
            cell = cells.get((model, backend, precision, variant, batch))
            if cell is not None and cell.case.get("status") != "ok" and cell.case.get("message"):
                text = " ".join(str(cell.case["message"]).split())
                found.append(f"- {label}, batch {batch}: {text[:600]}")
    return ["", *found] if found else []


def coverage(cells: dict[Key, Cell]) -> list[str]:
    """A grid of statuses: one column per configuration, batch 1/32/256 in each cell."""
    head = "| model | " + " | ".join(label for label, *_ in CONFIGS) + " |"
    lines = ["Status at batch 1 / 32 / 256 (`-`: not measured):", "", head,
             "|---" * (len(CONFIGS) + 1) + "|"]
    for model in MODELS:
        marks = []
        for _, backend, precision, variant in CONFIGS:
            found = [cells.get((model, backend, precision, variant, n)) for n in BATCHES]
            marks.append(" / ".join("-" if c is None else str(c.case.get("status", "?")) for c in found))
        lines.append(f"| {model} | " + " | ".join(marks) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", metavar="LABEL=PATH")
    parser.add_argument("--out", type=Path, help="markdown file (default: stdout)")
    parser.add_argument("--title", default="The GPU zoo, all runs")
    parser.add_argument("--intro", default="", help="a paragraph under the title (device, budget, how made)")
    args = parser.parse_args(argv)
    sources = []
    for item in args.sources:
        label, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            parser.error(f"{item!r}: expected LABEL=PATH to an existing results file")
        sources.append((label, Path(path)))
    try:
        text = markdown(collect(sources), args.title, args.intro)
    except (ValueError, KeyError) as exc:
        parser.error(f"not a results file: {exc}")
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
