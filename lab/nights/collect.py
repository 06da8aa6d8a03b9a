"""Collect per-process results for the gate's nights: one pytest process per night, as users run it.

    python lab/nights/collect.py --out DIR --schedule A:24,B5:12,B10:12 -- <pytest options>

Each process runs this folder's project (``conftest.py``: a residual CNN whose depth sets its cost)
with the given options, in a shuffled order of conditions so drift reaches them all alike:
``A`` is the model as it is, ``B5``/``B10``/``B15`` one with 5/10/15 % more blocks. The first process
saves ``base.json`` with ``--trt-save-baseline``; every later one reads it with ``--trt-baseline``, so
each case is timed the way its baseline entry was (the same block of calls per CUDA event), as a
nightly job does. Re-measurement is off here (``--trt-confirm 0``): the analysis draws fresh
processes from the pool instead (``lab/nights/analyze.py``). Each process's results file is kept,
its samples thinned to the baseline's 1000 per case, with a manifest of conditions, exit codes and
wall times; ``--budget-s`` stops launching processes in time to pack them up.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_DEPTH = 40
LEVELS = {"A": 0.0, "B5": 0.05, "B10": 0.10, "B15": 0.15}


def schedule(text: str, seed: int) -> list[str]:
    """'A:24,B5:12' -> the conditions in a seeded shuffled order, an A first (it saves the baseline)."""
    items: list[str] = []
    for part in text.split(","):
        name, _, count = part.partition(":")
        if name not in LEVELS:
            raise SystemExit(f"--schedule: unknown condition {name!r}; expected {', '.join(LEVELS)}")
        items += [name] * int(count)
    random.Random(seed).shuffle(items)
    if "A" in items:
        items.remove("A")
        items.insert(0, "A")
    return items


def depth(condition: str) -> int:
    return round(BASE_DEPTH * (1 + LEVELS[condition]))


def compact(path: Path) -> None:
    """Thin each case's samples to the baseline's bound: the files come back through a small pipe."""
    from pytest_trt.baseline import MAX_SAMPLES
    from pytest_trt.stats import thin

    data = json.loads(path.read_text())
    for case in data.get("cases", []):
        timing = case.get("timing") or {}
        if timing.get("samples"):
            timing["samples"] = thin(timing["samples"], MAX_SAMPLES)
    path.write_text(json.dumps(data))


def run_one(
    index: int, condition: str, work: Path, base: Path, options: list[str], timeout: float
) -> dict[str, object]:
    results = work / f"p{index:03d}-{condition}.json"
    gate = ["--trt-baseline", str(base)] if base.exists() else ["--trt-save-baseline", str(base)]
    command = [sys.executable, "-m", "pytest", "test_nights.py", "-q", *options, "--trt-confirm", "0",
               "--trt-results", str(results), *gate]
    env = dict(os.environ, NIGHTS_DEPTH=str(depth(condition)), PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout)
        rc, tail = done.returncode, (done.stdout + done.stderr)[-3000:]
    except subprocess.TimeoutExpired as exc:
        rc, tail = -9, str(exc)[-3000:]
    wall = time.perf_counter() - start
    (work / f"p{index:03d}-{condition}.log").write_text(tail)
    if results.exists():
        compact(results)
    return {"index": index, "condition": condition, "depth": depth(condition), "rc": rc, "wall_s": wall,
            "results": results.name if results.exists() else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="where the packed results go")
    parser.add_argument("--tag", default="nights")
    parser.add_argument("--schedule", default="A:24,B5:12,B10:12")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first index of this call's processes")
    parser.add_argument("--baseline", type=Path, help="an existing base.json (a later call of the same pool)")
    parser.add_argument("--budget-s", type=float, default=540.0)
    parser.add_argument("--timeout-s", type=float, default=120.0)
    args, options = parser.parse_known_args(argv)
    options = [o for o in options if o != "--"]
    work = Path("/tmp") / f"nights-{args.tag}"
    work.mkdir(parents=True, exist_ok=True)
    base = work / "base.json"
    if args.baseline is not None:
        base.write_bytes(args.baseline.read_bytes())
    began = time.perf_counter()
    manifest: list[dict[str, object]] = []
    conditions = schedule(args.schedule, args.seed)[args.start:]
    for offset, condition in enumerate(conditions):
        spent = time.perf_counter() - began
        mean = spent / len(manifest) if manifest else 0.0
        if spent + 1.5 * mean > args.budget_s:
            print(f"budget: stopping after {len(manifest)} processes in {spent:.0f} s", flush=True)
            break
        entry = run_one(args.start + offset, condition, work, base, options, args.timeout_s)
        manifest.append(entry)
        print(json.dumps(entry), flush=True)
    (work / "manifest.json").write_text(json.dumps({"options": options, "processes": manifest}, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    with tarfile.open(args.out / f"{args.tag}.tar.xz", "w:xz") as tar:
        tar.add(work, arcname=args.tag)
    print(f"packed {len(manifest)} processes into {args.out / (args.tag + '.tar.xz')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
