"""Which execution provider ran each ONNX Runtime node, and where a run's host time went.

``--trt-ort-profile on`` profiles a separate session (the timed one is never profiled) for a few runs
and keeps a summary with the case. The first question it answers is placement: a node the CUDA EP
cannot run falls back to the CPU, with copies both ways, and a slow case often has one such node.
Node times are host-side: CUDA kernels run asynchronously, so on the CUDA EP a node's time is its
launch, not its kernel, except where a node waits for the GPU (copies to the host, CPU nodes).
So the second answer is the nodes' host time against the run's: on an H100 (lab/results/h100_s5/), DeepLabV3's nodes
took 2.8 ms of a 43.7 ms run, which says the run waits on GPU kernels, not on a CPU fallback.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

KERNEL_SUFFIX = "_kernel_time"
TOP_OPS = 8


def summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Placement and the slowest operators from ORT's Chrome-trace profile, the first run left out
    (it carries one-off costs such as cuDNN's algorithm search)."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: float(e.get("ts", 0)))
    kept_runs = runs[1:] or runs
    since = float(kept_runs[0]["ts"]) if kept_runs else float("-inf")
    nodes = [e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith(KERNEL_SUFFIX)
             and float(e.get("ts", 0)) >= since]
    placement: dict[str, set[str]] = defaultdict(set)
    spent: dict[tuple[str, str], float] = defaultdict(float)
    cpu_ops: set[str] = set()
    for event in nodes:
        args = event.get("args") or {}
        provider, op = str(args.get("provider", "?")), str(args.get("op_name", "?"))
        placement[provider].add(str(event["name"])[: -len(KERNEL_SUFFIX)])
        spent[(op, provider)] += float(event.get("dur", 0)) / 1000.0  # µs → ms
        if provider == "CPUExecutionProvider":
            cpu_ops.add(op)
    per_run = max(1, len(kept_runs))
    node_ms = sum(spent.values())
    total = node_ms or 1.0
    top = sorted(spent.items(), key=lambda item: -item[1])[:TOP_OPS]
    return {
        "runs_profiled": len(kept_runs),
        "run_ms_median": statistics.median(float(e.get("dur", 0)) / 1000.0 for e in kept_runs) if kept_runs else None,
        "node_ms_per_run": node_ms / per_run,  # host time inside nodes; the run's rest waits or copies
        "nodes_by_provider": {provider: len(names) for provider, names in sorted(placement.items())},
        "cpu_ops": sorted(cpu_ops),
        "top_ops": [{"op": op, "provider": provider, "ms_per_run": ms / per_run, "share": ms / total}
                    for (op, provider), ms in top],
    }


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    events = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(events, list):
        raise ValueError(f"{path}: not an ONNX Runtime profile (expected a JSON list of trace events)")
    return events


def describe(summary: dict[str, Any]) -> str:
    """One line for a report: placement, CPU fallbacks and the top operator."""
    placed = ", ".join(f"{count} on {provider.removesuffix('ExecutionProvider')}"
                       for provider, count in summary.get("nodes_by_provider", {}).items())
    if not placed:
        return "no node events in the profile"
    top = summary.get("top_ops") or []
    lead = f"; most host time: {top[0]['op']} ({top[0]['share']:.0%})" if top else ""
    cpu = summary.get("cpu_ops") or []
    fallback = f"; CPU ops: {', '.join(cpu)}" if cpu and len(summary.get("nodes_by_provider", {})) > 1 else ""
    return f"nodes {placed}{fallback}{lead}{_host_share(summary)}"


def _host_share(summary: dict[str, Any]) -> str:
    """How much of a run the nodes' host time covers (absent from summaries written before it existed)."""
    node_ms, run_ms = summary.get("node_ms_per_run"), summary.get("run_ms_median")
    if node_ms is None or not run_ms:
        return ""
    return f"; nodes' host time {node_ms:.3g} of {run_ms:.3g} ms per run"
