"""Validate the regression gate: false alarms on A/A runs, detection of injected slowdowns.

Not a pytest test: a benchmark script whose output is the acceptance evidence of the gate.

    python benchmarks/gate_validation.py --device cpu --out benchmarks/results/gate_validation_cpu.json
    python benchmarks/gate_validation.py --device cuda --out $OUT/gate_validation_cuda.json

Design. A set of small workloads is timed in *sessions*; a session times every workload once (in a
shuffled order) under one condition: plain, or slowed by a calibrated fraction of extra work
(3, 5, 10, 15 %). Each *block* holds three plain sessions and one session per slowdown, in a
shuffled order, so conditions are interleaved in time and share the machine's drift. Comparisons
always take the baseline from block b and the current run from block b + 1 (a later time):

* A/A, single-run baseline: block b plain session i against block b+1 plain session i;
* A/A, 3-run baseline: block b's three plain sessions against each plain session of block b+1;
* injected: the same baselines against block b+1's slowed session.

Every comparison is judged by ``pytest_trt.gate.judge`` (the gate's own code) and, on the same
samples, by two alternative rules: pytest-benchmark's ``--benchmark-compare-fail=median:5%``
(newest baseline run only, as pytest-benchmark compares against one saved run) and
"ratio > 1 + t and one-sided Mann-Whitney p < alpha". The achieved slowdown of each level is
measured, not assumed: the median of the slowed session over the mean median of the same block's
plain sessions, per workload.

The timer is one function argument (``timer(fn, n) -> seconds per call``), so the project's
timing engine can replace the stand-in loops below.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Single-threaded BLAS: the host is shared, and threads fighting over two cores measure the neighbours.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from scipy import stats as sstats  # noqa: E402

from pytest_trt import gate  # noqa: E402
from pytest_trt.baseline import Baseline, BaselineRun  # noqa: E402

Work = Callable[[], object]
Timer = Callable[[Work, int], list[float]]
LEVELS = (0.03, 0.05, 0.10, 0.15)
THRESHOLD = 0.05
ALPHA = 0.01
PLAIN_SESSIONS = 3
CALL_TARGET_S = {"cpu": 500e-6, "cuda": 300e-6}  # one timed call; x samples = a case's measured time


# ----------------------------------------------------------------------------- timers
def perf_counter_timer(fn: Work, n: int) -> list[float]:
    """Stand-in CPU timer: perf_counter_ns around each call, after a short warm-up."""
    for _ in range(5):
        fn()
    clock = time.perf_counter_ns
    out = []
    for _ in range(n):
        start = clock()
        fn()
        out.append((clock() - start) * 1e-9)
    return out


def cuda_event_timer(fn: Work, n: int) -> list[float]:
    """Stand-in GPU timer: CUDA events around each call on a non-default stream."""
    import torch

    stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]
    with torch.cuda.stream(stream):
        for _ in range(5):
            fn()
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]  # type: ignore[no-untyped-call]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]  # type: ignore[no-untyped-call]
        for start, end in zip(starts, ends, strict=True):
            start.record(stream)
            fn()
            end.record(stream)
    stream.synchronize()
    return [s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends, strict=True)]


# ----------------------------------------------------------------------------- workloads
def cpu_workloads() -> dict[str, Work]:
    """Twenty CPU workloads of roughly 50-500 µs each: numpy kernels and plain Python."""
    import hashlib
    import zlib

    rng = np.random.default_rng(0)

    def arr(n: int) -> np.ndarray:
        return rng.standard_normal(n).astype(np.float32)

    mats = {k: (rng.standard_normal((k, k)), rng.standard_normal((k, k))) for k in (64, 96, 128)}
    solve_a, solve_b = rng.standard_normal((64, 64)) + 64 * np.eye(64), rng.standard_normal(64)
    data = {n: arr(n) for n in (10_000, 20_000, 50_000, 100_000, 200_000, 400_000)}
    signal, kernel = arr(8000), arr(64)
    blob = rng.integers(0, 255, 256_000, dtype=np.uint8).tobytes()
    text = (b"pytest-trt measures inference " * 2000)[:48_000]
    pylist = rng.permutation(5000).tolist()
    doc = {"cases": [{"id": i, "median": i * 1e-3, "flags": ["a", "b"]} for i in range(300)]}
    return {
        "matmul-64": lambda: mats[64][0] @ mats[64][1],
        "matmul-96": lambda: mats[96][0] @ mats[96][1],
        "matmul-128": lambda: mats[128][0] @ mats[128][1],
        "solve-64": lambda: np.linalg.solve(solve_a, solve_b),
        "sort-20k": lambda: np.sort(data[20_000]),
        "sort-50k": lambda: np.sort(data[50_000]),
        "argsort-10k": lambda: np.argsort(data[10_000]),
        "rfft-50k": lambda: np.fft.rfft(data[50_000]),
        "cumsum-200k": lambda: np.cumsum(data[200_000]),
        "tanh-100k": lambda: np.tanh(data[100_000]),
        "exp-200k": lambda: np.exp(data[200_000]),
        "sum-400k": lambda: data[400_000].sum(),
        "convolve-8k": lambda: np.convolve(signal, kernel),
        "py-squares": lambda: sum(i * i for i in range(3000)),
        "py-sorted-5k": lambda: sorted(pylist),
        "py-dict-2k": lambda: {i: str(i) for i in range(2000)},
        "json-dumps": lambda: json.dumps(doc),
        "sha256-256k": lambda: hashlib.sha256(blob).digest(),
        "zlib-48k": lambda: zlib.compress(text, 6),
        "unique-50k": lambda: np.unique(data[50_000]),
    }


def cuda_workloads() -> dict[str, Work]:
    """Twenty small GPU workloads of roughly 20-500 µs of device time, a few kernels each."""
    import torch

    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)

    def t(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return torch.randn(*shape, device=dev, dtype=dtype, generator=g)

    m = {
        (k, dt): (t(k, k, dtype=dt), t(k, k, dtype=dt))
        for k in (1024, 1536, 2048, 4096)  # fp32 4096 (~3 ms on an H100) is left out below
        for dt in (torch.float32, torch.float16)
        if (k, dt) != (4096, torch.float32)
    }
    img = t(32, 64, 56, 56)
    weight = t(64, 64, 3, 3)
    img16, weight16 = img.half(), weight.half()
    seq = t(64, 512, 768)
    ln = torch.nn.LayerNorm(768, device=dev)
    big = t(16_000_000)
    idx = torch.randint(0, 16_000_000, (4_000_000,), device=dev, generator=g)
    work: dict[str, Work] = {
        "mm-1024-fp32": lambda: m[(1024, torch.float32)][0] @ m[(1024, torch.float32)][1],
        "mm-2048-fp32": lambda: m[(2048, torch.float32)][0] @ m[(2048, torch.float32)][1],
        "mm-1536-fp32": lambda: m[(1536, torch.float32)][0] @ m[(1536, torch.float32)][1],
        "mm-1024-fp16": lambda: m[(1024, torch.float16)][0] @ m[(1024, torch.float16)][1],
        "mm-2048-fp16": lambda: m[(2048, torch.float16)][0] @ m[(2048, torch.float16)][1],
        "mm-4096-fp16": lambda: m[(4096, torch.float16)][0] @ m[(4096, torch.float16)][1],
        "conv3x3-fp32": lambda: torch.nn.functional.conv2d(img, weight, padding=1),
        "conv3x3-fp16": lambda: torch.nn.functional.conv2d(img16, weight16, padding=1),
        "softmax": lambda: torch.softmax(seq, dim=-1),
        "layernorm": lambda: ln(seq),
        "gelu": lambda: torch.nn.functional.gelu(seq),
        "add-16m": lambda: big + 1.0,
        "mul-16m": lambda: big * big,
        "sum-16m": lambda: big.sum(),
        "cumsum-16m": lambda: big.cumsum(0),
        "sort-4m": lambda: big[:4_000_000].sort(),
        "topk-16m": lambda: big.topk(16),
        "gather-4m": lambda: big[idx],
        "maxpool": lambda: torch.nn.functional.max_pool2d(img, 2),
        "bmm-fp16": lambda: torch.bmm(seq[:, :, :64].half(), seq[:, :64, :].half()),
    }
    torch.cuda.synchronize()  # inputs are filled on the default stream; the timer uses its own
    return work


# ----------------------------------------------------------------------------- extra work
def cpu_extra(units: int) -> Work:
    """Extra CPU work: a pure-Python loop of ``units`` iterations (~10-20 ns each)."""

    def spin() -> None:
        for _ in range(units):
            pass

    return spin


def cuda_extra(units: int) -> Work:
    """Extra GPU work: one in-place elementwise kernel over ``units`` floats."""
    import torch

    buf = torch.ones(max(units, 1), device="cuda")
    torch.cuda.synchronize()  # the timer's side stream must not race the allocation's fill
    return lambda: buf.mul_(1.0)


def repeated(fn: Work, times: int) -> Work:
    def run() -> None:
        for _ in range(times):
            fn()

    return run


def scale_workloads(setup: Setup, target_s: float) -> dict[str, int]:
    """Repeat each workload so one call lasts about ``target_s``: cases as long as real models'."""
    repeats = {}
    for name, fn in list(setup.workloads.items()):
        single = statistics.median(setup.timer(fn, 50))
        repeats[name] = max(1, round(target_s / max(single, 1e-9)))
        setup.workloads[name] = repeated(fn, repeats[name])
    return repeats


def slowed(fn: Work, extra: Work) -> Work:
    def run() -> None:
        fn()
        extra()

    return run


@dataclass
class Setup:
    device: str
    timer: Timer
    workloads: dict[str, Work]
    make_extra: Callable[[int], Work]
    samples: int
    blocks: int


def calibrate(setup: Setup, name: str) -> dict[float, tuple[int, float]]:
    """Units of extra work that raise the workload's median by each level: {level: (units, achieved)}."""
    fn, n = setup.workloads[name], 100
    base = statistics.median(setup.timer(fn, n))
    probe_units = 2048 if setup.device == "cpu" else 1 << 20
    per_unit = max(statistics.median(setup.timer(setup.make_extra(probe_units), n)) / probe_units, 1e-15)
    return {lvl: _calibrate_level(setup, fn, n, lvl, max(int(lvl * base / per_unit), 1)) for lvl in LEVELS}


def _calibrate_level(setup: Setup, fn: Work, n: int, fraction: float, units: int) -> tuple[int, float]:
    achieved = 0.0
    for _ in range(3):  # correct the additive estimate by measuring the combined runner
        combined = statistics.median(setup.timer(slowed(fn, setup.make_extra(units)), n))
        plain = statistics.median(setup.timer(fn, n))
        achieved = combined / plain - 1
        if abs(achieved - fraction) <= 0.15 * fraction or achieved <= 0:
            break
        units = max(int(units * fraction / achieved), 1)
    return units, achieved


# ----------------------------------------------------------------------------- data collection
Samples = dict[tuple[int, str, str], list[float]]  # (block, session, workload) -> seconds


def collect(setup: Setup, units: dict[tuple[str, float], int], seed: int) -> Samples:
    rng = random.Random(seed)
    sessions = [f"P{i + 1}" for i in range(PLAIN_SESSIONS)] + [f"S{lvl:g}" for lvl in LEVELS]
    runners: dict[tuple[str, str], Work] = {}
    for name, fn in setup.workloads.items():
        for i in range(PLAIN_SESSIONS):
            runners[(f"P{i + 1}", name)] = fn
        for lvl in LEVELS:
            runners[(f"S{lvl:g}", name)] = slowed(fn, setup.make_extra(units[(name, lvl)]))
    out: Samples = {}
    names = list(setup.workloads)
    for block in range(setup.blocks):
        order = sessions[:]
        rng.shuffle(order)
        for session in order:
            rng.shuffle(names)
            for name in names:
                out[(block, session, name)] = setup.timer(runners[(session, name)], setup.samples)
        print(f"  block {block + 1}/{setup.blocks} timed", file=sys.stderr, flush=True)
    return out


# ----------------------------------------------------------------------------- judging
HW = {"hardware": {"kind": "bench"}, "software": {}}


def judge(current: Sequence[float], baseline_runs: Sequence[Sequence[float]]) -> dict[str, bool]:
    """Decisions of the three rules on the same samples."""
    runs = [BaselineRun(f"r{i}", "", HW, {"w": _entry(s)}) for i, s in enumerate(baseline_runs)]
    verdict = gate.judge(
        {"nodeid": "w", "case_id": "w", "status": "ok", "timing": {"samples": list(current)}, "flags": []},
        Baseline("<memory>", runs),
        HW,
        threshold=THRESHOLD,
        alpha=ALPHA,
    )
    assert verdict.ratio is not None and verdict.p_value is not None and verdict.run_spread is not None
    newest = statistics.median(baseline_runs[-1])
    return {
        "gate": verdict.outcome == gate.REGRESSION,
        "mwu": verdict.ratio > 1 + THRESHOLD
        and verdict.p_value < ALPHA
        and verdict.ratio > verdict.run_spread
        and statistics.median(current) > max(map(statistics.median, baseline_runs)) * (1 + THRESHOLD),
        "pb_median5": statistics.median(current) > newest * (1 + THRESHOLD),
    }


def _entry(samples: Sequence[float]) -> dict[str, Any]:
    return {"case": {}, "case_id": "w", "status": "ok", "samples": list(samples), "stats": None, "flags": []}


RULES = ("gate", "mwu", "pb_median5")


def rate(hits: int, n: int) -> dict[str, Any]:
    ci = sstats.binomtest(hits, n).proportion_ci(0.95, method="exact") if n else None
    return {"hits": hits, "n": n, "rate": hits / n if n else None, "ci95": [ci.low, ci.high] if ci else None}


def evaluate(data: Samples, setup: Setup) -> dict[str, Any]:
    names = sorted(setup.workloads)
    plains = [f"P{i + 1}" for i in range(PLAIN_SESSIONS)]
    Pair = tuple[str, list[float], list[list[float]]]
    pairs: dict[str, list[Pair]] = {}
    for b in range(setup.blocks - 1):
        for name in names:
            base_runs = [data[(b, p, name)] for p in plains]
            for i, p in enumerate(plains):
                pairs.setdefault("aa_single", []).append((name, data[(b + 1, p, name)], [base_runs[i]]))
                pairs.setdefault("aa_multi", []).append((name, data[(b + 1, p, name)], base_runs))
            for lvl in LEVELS:
                cur = data[(b + 1, f"S{lvl:g}", name)]
                single = [base_runs[b % PLAIN_SESSIONS]]  # one plain run, rotating over blocks
                pairs.setdefault(f"slow{lvl:g}_single", []).append((name, cur, single))
                pairs.setdefault(f"slow{lvl:g}_multi", []).append((name, cur, base_runs))
    results: dict[str, Any] = {}
    for key, items in pairs.items():
        hits = dict.fromkeys(RULES, 0)
        by_workload: dict[str, dict[str, int]] = {}
        for name, cur, base in items:
            for rule, fired in judge(cur, base).items():
                hits[rule] += int(fired)
                if fired:
                    by_workload.setdefault(rule, {}).setdefault(name, 0)
                    by_workload[rule][name] += 1
        results[key] = {rule: rate(hits[rule], len(items)) for rule in RULES}
        if key.startswith("aa_"):
            results[key]["false_alarms_by_workload"] = by_workload
    return results


def achieved_slowdowns(data: Samples, setup: Setup) -> dict[str, Any]:
    """Measured median rise of each level: slowed session vs the same block's plain sessions."""
    out: dict[str, Any] = {}
    for lvl in LEVELS:
        per_workload = {}
        for name in setup.workloads:
            ratios = []
            for b in range(setup.blocks):
                plain = statistics.fmean(
                    statistics.median(data[(b, f"P{i + 1}", name)]) for i in range(PLAIN_SESSIONS)
                )
                ratios.append(statistics.median(data[(b, f"S{lvl:g}", name)]) / plain - 1)
            per_workload[name] = statistics.median(ratios)
        values = list(per_workload.values())
        out[f"{lvl:g}"] = {
            "target": lvl,
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "per_workload": per_workload,
        }
    return out


def aa_noise(data: Samples, setup: Setup) -> dict[str, float]:
    """Spread of A/A median ratios (block b+1 vs block b, same plain session)."""
    ratios = [
        statistics.median(data[(b + 1, p, n)]) / statistics.median(data[(b, p, n)])
        for b in range(setup.blocks - 1)
        for p in ("P1", "P2", "P3")
        for n in setup.workloads
    ]
    logs = np.log(ratios)
    return {
        "ratio_p50": float(np.exp(np.median(logs))),
        "ratio_p99": float(np.quantile(ratios, 0.99)),
        "ratio_max": float(max(ratios)),
        "log_ratio_sd": float(np.std(logs)),
    }


# ----------------------------------------------------------------------------- report
def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if hasattr(os, "getloadavg"):
        info["loadavg_start"] = list(os.getloadavg())
    if device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name()
        info["torch"] = torch.__version__
    return info


def markdown(report: dict[str, Any]) -> str:
    res, ach = report["results"], report["achieved_slowdown"]
    rows = [
        "| comparison | n | gate (CI rule) | MWU rule | pytest-benchmark median:5% |",
        "|---|---|---|---|---|",
    ]

    def cell(r: dict[str, Any]) -> str:
        low, high = r["ci95"]
        return f"{r['rate']:.1%} ({r['hits']}; 95% CI {low:.1%}–{high:.1%})"

    labels = [
        ("aa_single", "A/A, 1-run baseline: false alarms"),
        ("aa_multi", "A/A, 3-run baseline: false alarms"),
    ]
    for lvl in LEVELS:
        a = ach[f"{lvl:g}"]
        achieved = f"achieved {a['median']:+.1%}, {a['min']:+.1%}…{a['max']:+.1%}"
        labels.append((f"slow{lvl:g}_single", f"+{lvl:.0%} injected ({achieved}), 1-run: detected"))
        labels.append((f"slow{lvl:g}_multi", f"+{lvl:.0%} injected, 3-run: detected"))
    for key, label in labels:
        r = res[key]
        rows.append(f"| {label} | {r['gate']['n']} | " + " | ".join(cell(r[rule]) for rule in RULES) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--quick", action="store_true", help="fewer blocks and samples (a smoke run)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--samples", type=int, help="samples per case (default: 250 on CPU, 300 on CUDA)")
    parser.add_argument("--dump-samples", type=Path, help="also write the raw samples (pickle) for study")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU is available")
        setup = Setup("cuda", cuda_event_timer, cuda_workloads(), cuda_extra, 300, 8)  # ~0.09 s a case
    else:
        setup = Setup("cpu", perf_counter_timer, cpu_workloads(), cpu_extra, 250, 8)  # ~0.13 s a case
    if args.quick:
        setup.samples, setup.blocks = 100, 3
    setup.samples = args.samples or setup.samples
    info = machine(args.device)
    repeats = scale_workloads(setup, CALL_TARGET_S[args.device])

    print(f"calibrating extra work for {len(setup.workloads)} workloads...", file=sys.stderr, flush=True)
    units, calibration = {}, {}
    for name in setup.workloads:
        for lvl, (unit_count, achieved) in calibrate(setup, name).items():
            units[(name, lvl)], calibration[f"{name}@{lvl:g}"] = unit_count, achieved
    data = collect(setup, units, args.seed)
    timed_s = time.perf_counter() - started
    if args.dump_samples:
        import pickle

        args.dump_samples.write_bytes(
            pickle.dumps({"data": data, "blocks": setup.blocks, "workloads": sorted(setup.workloads)})
        )
    print("judging...", file=sys.stderr, flush=True)
    report = {
        "device": args.device,
        "quick": args.quick,
        "machine": info,
        "config": {
            "workloads": len(setup.workloads),
            "samples_per_case": setup.samples,
            "blocks": setup.blocks,
            "plain_sessions_per_block": PLAIN_SESSIONS,
            "levels": LEVELS,
            "threshold": THRESHOLD,
            "alpha": ALPHA,
            "timer": setup.timer.__name__,
            "call_target_s": CALL_TARGET_S[args.device],
            "repeats": repeats,
        },
        "workload_median_s": {n: statistics.median(data[(0, "P1", n)]) for n in sorted(setup.workloads)},
        "calibration_achieved": calibration,
        "achieved_slowdown": achieved_slowdowns(data, setup),
        "aa_noise": aa_noise(data, setup),
        "results": evaluate(data, setup),
    }
    report["wall_s"] = {"timing": timed_s, "total": time.perf_counter() - started}
    if hasattr(os, "getloadavg"):
        info["loadavg_end"] = list(os.getloadavg())
    table = markdown(report)
    report["markdown"] = table
    print(table)
    print(f"\nwall time {report['wall_s']['total']:.0f} s on {info.get('gpu') or info.get('cpu_model')}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
