"""Export results in pytest-benchmark's JSON schema (``--trt-benchmark-json``).

The layout follows what pytest-benchmark 5.x writes with ``--benchmark-json``, so its own
``pytest-benchmark compare`` and the dashboards built on that format read our files. Cases without
timing (errors, OOM, skips) are left out, as pytest-benchmark leaves out benchmarks that errored.

Summary statistics come from the timing engine's full-sample stats where present; quartiles and
outlier counts are computed from the stored samples with pytest-benchmark's quartile definitions.
"""

from __future__ import annotations

import bisect
import json
import os
import platform
import statistics
import subprocess
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FORMAT_VERSION = "5.3.1"  # the pytest-benchmark release whose JSON layout this reproduces


def write(
    path: str | os.PathLike[str],
    results: Sequence[Mapping[str, Any]],
    environment: Mapping[str, Any],
    *,
    commit_info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``results`` (``CaseResult.to_dict()`` dicts) to ``path``; returns the document."""
    document = {
        "machine_info": machine_info(environment),
        "commit_info": dict(commit_info) if commit_info is not None else git_commit_info(),
        "benchmarks": [bench for r in results if (bench := benchmark(r)) is not None],
        "datetime": datetime.now(timezone.utc).isoformat(),
        "version": FORMAT_VERSION,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(document, indent=4) + "\n", encoding="utf-8")
    return document


def benchmark(result: Mapping[str, Any]) -> dict[str, Any] | None:
    """One entry of ``benchmarks``; None for a case that was not timed."""
    timing = result.get("timing") or {}
    samples = [float(s) for s in timing.get("samples") or []]
    if not samples:
        return None
    nodeid = str(result["nodeid"])
    case = dict(result.get("case") or {})
    return {
        "group": case.get("model") or nodeid.split("::")[0],
        "name": nodeid.split("::")[-1],
        "fullname": nodeid,
        "params": case or None,
        "param": result.get("case_id"),
        "extra_info": {
            "status": result.get("status"),
            "flags": list(result.get("flags") or []),
            "clock": timing.get("clock"),
            "throughput_items_per_s": (timing.get("stats") or {}).get("throughput"),
            "stats_from": "all samples" if timing.get("stats") else "stored samples",
        },
        "options": {
            "disable_gc": False,
            "timer": timing.get("clock") or "perf_counter",
            "min_rounds": None,
            "max_time": None,
            "min_time": None,
            "warmup": bool(timing.get("warmup_iterations")),
        },
        "stats": stats(samples, timing.get("stats"), int(timing.get("calls_per_sample") or 1)),
    }


def stats(samples: Sequence[float], summary: Mapping[str, Any] | None = None, iterations: int = 1) -> dict[str, Any]:
    """pytest-benchmark's ``stats`` block for samples in seconds per call.

    ``iterations``: calls per round, as pytest-benchmark counts them (the CUDA loop's block of short
    calls between two events); its per-round times are per call too, as ours are.
    """
    data = sorted(samples)
    rounds = int(summary["n"]) if summary and summary.get("n") else len(data)
    mean = float(summary["mean"]) if summary else statistics.fmean(data)
    stddev = float(summary["stddev"]) if summary else (statistics.stdev(data) if len(data) > 1 else 0.0)
    q1, q3 = _quartiles(data)
    iqr = q3 - q1
    low_fence, high_fence = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    iqr_outliers = sum(1 for x in data if x < low_fence or x > high_fence)
    stddev_outliers = sum(1 for x in data if abs(x - mean) > stddev)
    return {
        "min": float(summary["min"]) if summary else data[0],
        "max": float(summary["max"]) if summary else data[-1],
        "mean": mean,
        "stddev": stddev,
        "rounds": rounds,
        "median": float(summary["median"]) if summary else statistics.median(data),
        "iqr": iqr,
        "q1": q1,
        "q3": q3,
        "iqr_outliers": iqr_outliers,
        "stddev_outliers": stddev_outliers,
        "outliers": f"{stddev_outliers};{iqr_outliers}",
        "ld15iqr": data[bisect.bisect_left(data, low_fence)],
        "hd15iqr": data[bisect.bisect_right(data, high_fence) - 1],
        "ops": 1.0 / mean if mean > 0 else 0.0,
        "total": mean * rounds,
        "data": list(samples),
        "iterations": iterations,
    }


def _quartiles(data: Sequence[float]) -> tuple[float, float]:
    """Q1 and Q3 as pytest-benchmark computes them (Wikipedia's methods 2 and 3) on sorted data."""
    n = len(data)
    if n == 1:
        return data[0], data[0]
    if n % 2 == 0:  # method 2: medians of the lower and upper halves
        return statistics.median(data[: n // 2]), statistics.median(data[n // 2 :])
    k, rest = divmod(n, 4)  # method 3 for odd n, n = 4k + 1 or 4k + 3
    if rest == 1:
        return 0.25 * data[k - 1] + 0.75 * data[k], 0.75 * data[3 * k] + 0.25 * data[3 * k + 1]
    return 0.75 * data[k] + 0.25 * data[k + 1], 0.25 * data[3 * k + 1] + 0.75 * data[3 * k + 2]


def machine_info(environment: Mapping[str, Any]) -> dict[str, Any]:
    """pytest-benchmark's ``machine_info`` fields, plus this run's environment record."""
    hardware = environment.get("hardware") or {}
    uname = platform.uname()
    return {
        "node": uname.node,
        "processor": uname.processor,
        "machine": uname.machine,
        "python_compiler": platform.python_compiler(),
        "python_implementation": platform.python_implementation(),
        "python_implementation_version": platform.python_version(),
        "python_version": platform.python_version(),
        "python_build": list(platform.python_build()),
        "release": uname.release,
        "system": uname.system,
        "cpu": {"brand_raw": hardware.get("cpu_model"), "count": hardware.get("cpu_count")},
        "gpu": {
            "name": hardware.get("gpu_name"),
            "count": hardware.get("gpu_count"),
            "compute_capability": hardware.get("compute_capability"),
        },
        "pytest_trt_environment": dict(environment),
    }


def git_commit_info(cwd: str | None = None) -> dict[str, Any]:
    """The current git commit, like pytest-benchmark's; 'unversioned' outside a repository."""
    info: dict[str, Any] = {
        "id": "unversioned",
        "time": None,
        "author_time": None,
        "dirty": False,
        "project": Path(cwd or os.getcwd()).name,
        "branch": "(unknown)",
    }

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
        return done.stdout.strip()

    try:
        info["id"] = git("rev-parse", "HEAD")
        info["time"] = git("log", "-1", "--format=%cI")
        info["author_time"] = git("log", "-1", "--format=%aI")
        info["dirty"] = bool(git("status", "--porcelain", "--untracked-files=no"))
        info["branch"] = git("rev-parse", "--abbrev-ref", "HEAD")
        info["project"] = Path(git("rev-parse", "--show-toplevel")).name
    except (OSError, subprocess.SubprocessError):
        pass
    return info
