"""Collect per-process results for the A/B validation: one pytest process per PR job, as users run it.

    python lab/ab/collect.py --out DIR --schedule A:60,B5:60 [--hogs 2] -- <pytest options>

Each process runs this folder's project (``conftest.py``: the residual CNN of lab/nights, main at 40
blocks) with the given options, in a seeded shuffled order of conditions so drift reaches them all
alike: ``A`` is the change at main's depth (an A/A job: the same model twice), ``B2``/``B5``/``B10``
one with 2/5/10 % more blocks (``--base-depth``: main's blocks, 40 unless given). Every process runs
``test_ab`` (the A/B rule, in that process) and
``test_latency`` (the same cases timed alone, which ``analyze.py`` judges with the stored-baseline
gate on baselines drawn from other processes). ``--hogs N`` starts N busy loops
(``python3 -c 'while True: pass'``) for the whole collection and stops them (by pid) at the end.
The results files and a manifest in lab/nights' format go to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BASE_DEPTH = 40
LEVELS = {"A": 0.0, "B2": 0.02, "B5": 0.05, "B10": 0.10}


def schedule(text: str, seed: int) -> list[str]:
    items: list[str] = []
    for part in text.split(","):
        name, _, count = part.partition(":")
        if name not in LEVELS:
            raise SystemExit(f"--schedule: unknown condition {name!r}; expected {', '.join(LEVELS)}")
        items += [name] * int(count)
    random.Random(seed).shuffle(items)
    return items


def depth(condition: str, base: int = BASE_DEPTH) -> int:
    """Blocks of the change: +2 % is one block more than 50, +5 % two more than 40 (the manifest keeps both)."""
    return round(base * (1 + LEVELS[condition]))


def run_one(index: int, condition: str, out: Path, options: list[str], timeout: float,
            base: int = BASE_DEPTH) -> dict[str, object]:
    results = out / f"p{index:03d}-{condition}.json"
    command = [sys.executable, "-m", "pytest", "test_ab.py", "-q", *options, "--trt-results", str(results)]
    env = dict(os.environ, NIGHTS_DEPTH=str(depth(condition, base)), AB_MAIN_DEPTH=str(base), PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=HERE, env=env, capture_output=True, text=True, timeout=timeout)
        rc, tail = done.returncode, (done.stdout + done.stderr)[-4000:]
    except subprocess.TimeoutExpired as exc:
        rc, tail = -9, str(exc)[-4000:]
    (out / f"p{index:03d}-{condition}.log").write_text(tail)
    return {"index": index, "condition": condition, "depth": depth(condition, base), "main_depth": base, "rc": rc,
            "wall_s": time.perf_counter() - start, "results": results.name if results.exists() else None}


def hogs(count: int) -> list[subprocess.Popen[bytes]]:
    """Busy loops beside the benchmark: a neighbour that takes CPUs for the whole collection."""
    return [subprocess.Popen(["python3", "-c", "while True: pass"]) for _ in range(count)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--schedule", default="A:60,B5:60")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--start", type=int, default=0, help="first index of this call's processes")
    parser.add_argument("--hogs", type=int, default=0, help="busy loops to run beside the processes")
    parser.add_argument("--base-depth", type=int, default=BASE_DEPTH, help="main's blocks (50 for a +2 %% change)")
    parser.add_argument("--budget-s", type=float, default=3600.0)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    args, options = parser.parse_known_args(argv)
    options = [o for o in options if o != "--"]
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_path = args.out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {"processes": []}
    manifest["options"] = options
    manifest["hogs"] = args.hogs
    # A collection stopped from outside (kill PID, or Ctrl-C where a background job ignores it) still
    # stops its busy loops: both signals unwind through the finally below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    began = time.perf_counter()
    neighbours = hogs(args.hogs)
    try:
        for offset, condition in enumerate(schedule(args.schedule, args.seed)[args.start:]):
            spent = time.perf_counter() - began
            done = len(manifest["processes"])
            if offset and spent + 1.5 * spent / offset > args.budget_s:
                print(f"budget: stopping after {offset} processes in {spent:.0f} s", flush=True)
                break
            entry = run_one(args.start + offset, condition, args.out, options, args.timeout_s, args.base_depth)
            manifest["processes"].append(entry)
            manifest_path.write_text(json.dumps(manifest, indent=1))
            print(json.dumps(entry), f"({done + 1} in all)", flush=True)
    finally:
        for hog in neighbours:
            hog.kill()
            hog.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
