"""Validate the regression gate: false alarms on A/A runs, detection of injected slowdowns.

Not a pytest test: a benchmark script whose output is the acceptance evidence of the gate.

    python lab/gate_validation.py --device cpu --out lab/results/gate_validation_cpu.json
    python lab/gate_validation.py --device cuda --out $OUT/gate_validation_cuda.json

Design. Twenty workloads are timed in *sessions* by the project's own timing engine
(``pytest_trt.timing.measure``: perf_counter on CPU, CUDA events on a non-default stream on GPU) with
a fixed budget per case; a session times every workload once (in a shuffled order) under one
condition: plain, or slowed by a calibrated fraction of extra work (3, 5, 10, 15 %). Each *block*
holds several plain sessions and one session per slowdown, in a shuffled order, so conditions are
interleaved in time and share the machine's drift. Comparisons always take the baseline from block
b and the current run from block b + 1 (a later time):

* A/A, single-run baseline: block b plain session i against block b+1 plain session i;
* A/A, 3-run baseline: block b's first three plain sessions against each plain session of block b+1;
* injected: the same baselines against block b+1's slowed session.

Every comparison is judged by ``pytest_trt.gate.judge`` (the gate's own code) at each threshold in
``--thresholds``, then, as the plugin does with ``--trt-confirm 1`` (and 2), a REGRESSION is confirmed
by timing the same runner again right away and judging those samples (``gate.confirm``); a second
re-measurement is taken while the first still regresses. On the same
samples two other rules are scored: pytest-benchmark's ``--benchmark-compare-fail=median:T``
(newest baseline run only, as pytest-benchmark compares against one saved run) and "ratio > 1 + T
and one-sided Mann-Whitney p < alpha". The achieved slowdown of each level is measured, not
assumed: the median of the slowed session over the mean median of the same block's plain sessions.
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
from pytest_trt.timing import Budget, measure  # noqa: E402

Work = Callable[[], object]
Timer = Callable[[Work], list[float]]  # one case's samples (seconds) under the device's budget
LEVELS = (0.03, 0.05, 0.10, 0.15)
ALPHA = 0.01
MULTI_RUNS = 3  # runs in the multi-run baseline
CONFIRMATIONS = 2  # re-measurements taken while each still regresses (--trt-confirm 1 and 2 are judged)
CALIBRATION_CALLS = {"cpu": 200, "cuda": 60}  # calls per calibration timing (CPU medians need more)
# Budget per case: the plugin's defaults on CPU; on GPU the short budget of the zoo runs, so the
# whole validation fits one device call. Plain sessions per block and blocks give >= 400 A/A pairs.
DEVICE_PLAN: dict[str, dict[str, Any]] = {
    "cpu": {"budget": Budget(warmup_s=0.2, min_time_s=1.0, max_time_s=5.0), "call_s": 500e-6,
            "blocks": 8, "plain": 3, "thresholds": (0.05, 0.06, 0.07, 0.08, 0.10)},
    "cuda": {"budget": Budget(warmup_s=0.03, min_time_s=0.2, max_time_s=1.0, target_rel_ci=0), "call_s": 1e-3,
             "blocks": 6, "plain": 4, "thresholds": (0.02, 0.03, 0.04, 0.05)},
}


# ----------------------------------------------------------------------------- timers
def engine_timer(device: str, budget: Budget) -> tuple[Timer, Callable[[Work, int], list[float]]]:
    """The project's timing engine, as a case timer and as an n-call timer for calibration."""
    stream: Any = None
    if device == "cuda":
        import torch

        stream = torch.cuda.Stream()  # type: ignore[no-untyped-call]

    def case(fn: Work) -> list[float]:
        return measure(fn, batch_size=1, budget=budget, stream=stream).samples

    def calls(fn: Work, n: int) -> list[float]:
        fixed = Budget(warmup_s=0.02, min_time_s=0.0, min_iterations=n, max_iterations=n, target_rel_ci=0)
        return measure(fn, batch_size=1, budget=fixed, stream=stream).samples

    return case, calls


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
    """Twenty GPU workloads whose kernels each run >= ~50 µs, so the GPU, not Python's launch cost,
    sets the pace (a 1 ms call is then a handful of launches, and the queue stays full)."""
    import torch

    dev = torch.device("cuda")
    g = torch.Generator(device=dev).manual_seed(0)
    f16, bf16, f32 = torch.float16, torch.bfloat16, torch.float32
    F = torch.nn.functional

    def t(*shape: int, dtype: torch.dtype = f32) -> torch.Tensor:
        return torch.randn(*shape, device=dev, dtype=dtype, generator=g)

    mm = {(k, dt): (t(k, k, dtype=dt), t(k, k, dtype=dt)) for k, dt in
          ((2048, f32), (3072, f32), (4096, f16), (6144, f16), (4096, bf16))}
    img, weight = t(32, 64, 56, 56), t(64, 64, 3, 3)
    img16 = t(64, 128, 56, 56, dtype=f16).to(memory_format=torch.channels_last)
    weight16 = t(128, 128, 3, 3, dtype=f16).to(memory_format=torch.channels_last)
    seq = t(64, 2048, 768)
    scores = t(64, 1024, 1024)
    ln = torch.nn.LayerNorm(768, device=dev)
    big = t(64_000_000)
    idx = torch.randint(0, 64_000_000, (16_000_000,), device=dev, generator=g)
    q, k, v = (t(8, 16, 2048, 64, dtype=f16) for _ in range(3))
    a16, b16 = t(64, 512, 1024, dtype=f16), t(64, 1024, 512, dtype=f16)
    pool_in = t(64, 64, 112, 112)
    work: dict[str, Work] = {
        "mm-2048-fp32": lambda: torch.mm(*mm[(2048, f32)]),
        "mm-3072-fp32": lambda: torch.mm(*mm[(3072, f32)]),
        "mm-4096-fp16": lambda: torch.mm(*mm[(4096, f16)]),
        "mm-6144-fp16": lambda: torch.mm(*mm[(6144, f16)]),
        "mm-4096-bf16": lambda: torch.mm(*mm[(4096, bf16)]),
        "bmm-fp16": lambda: torch.bmm(a16, b16),
        "conv3x3-fp32": lambda: F.conv2d(img, weight, padding=1),
        "conv3x3-fp16-nhwc": lambda: F.conv2d(img16, weight16, padding=1),
        "sdpa-fp16": lambda: F.scaled_dot_product_attention(q, k, v),
        "softmax-256mb": lambda: torch.softmax(scores, dim=-1),
        "layernorm": lambda: ln(seq),
        "gelu": lambda: F.gelu(seq),
        "add-64m": lambda: big + 1.0,
        "mul-64m": lambda: big * big,
        "sum-64m": lambda: big.sum(),
        "cumsum-16m": lambda: big[:16_000_000].cumsum(0),
        "sort-4m": lambda: big[:4_000_000].sort(),
        "topk-64m": lambda: big.topk(16),
        "gather-16m": lambda: big[idx],
        "maxpool": lambda: F.max_pool2d(pool_in, 2),
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
        single = statistics.median(setup.calls(fn, 30))
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
    case: Timer  # one case under the budget, as the plugin times it
    calls: Callable[[Work, int], list[float]]  # n calls, for sizing and calibration
    workloads: dict[str, Work]
    make_extra: Callable[[int], Work]
    blocks: int
    plain: int
    thresholds: tuple[float, ...]

    @property
    def plains(self) -> list[str]:
        return [f"P{i + 1}" for i in range(self.plain)]


def calibrate(setup: Setup, name: str) -> dict[float, tuple[int, float]]:
    """Units of extra work that raise the workload's median by each level: {level: (units, achieved)}."""
    fn, n = setup.workloads[name], CALIBRATION_CALLS[setup.device]
    base = statistics.median(setup.calls(fn, n))
    probe_units = 2048 if setup.device == "cpu" else 1 << 22
    per_unit = max(statistics.median(setup.calls(setup.make_extra(probe_units), n)) / probe_units, 1e-15)
    return {lvl: _calibrate_level(setup, fn, n, lvl, max(int(lvl * base / per_unit), 1)) for lvl in LEVELS}


def _calibrate_level(setup: Setup, fn: Work, n: int, fraction: float, units: int) -> tuple[int, float]:
    achieved = 0.0
    for _ in range(4):  # correct the additive estimate by measuring the combined runner
        achieved = _rise(setup, fn, slowed(fn, setup.make_extra(units)), n)
        if abs(achieved - fraction) <= 0.05 * fraction or achieved <= 0:
            break
        units = max(int(units * fraction / achieved), 1)
    return units, achieved


def _rise(setup: Setup, plain: Work, slow: Work, n: int) -> float:
    """Median slowdown over three interleaved plain/slowed pairs: one loaded moment cannot skew it."""
    pairs = []
    for _ in range(3):
        base = statistics.median(setup.calls(plain, n))
        pairs.append(statistics.median(setup.calls(slow, n)) / base - 1)
    return statistics.median(pairs)


# ----------------------------------------------------------------------------- data collection
Key = tuple[int, str, str]  # (block, session, workload)
Samples = dict[Key, list[float]]  # seconds


def baselines(setup: Setup, data: Samples, key: Key) -> dict[str, list[list[float]]]:
    """The baselines a current run at ``key`` is compared with: always from the previous block."""
    block, session, name = key
    prev = [data[(block - 1, p, name)] for p in setup.plains]
    own = session if session in setup.plains else setup.plains[(block - 1) % setup.plain]
    return {"single": [data[(block - 1, own, name)]], "multi": prev[:MULTI_RUNS]}


def regresses(setup: Setup, current: Sequence[float], runs: list[list[float]]) -> dict[float, bool]:
    comparison = gate.compare_samples(current, runs, ALPHA)
    return {t: gate.decide(comparison, t) == gate.REGRESSION for t in setup.thresholds}


def collect(
    setup: Setup, units: dict[tuple[str, float], int], seed: int,
    checkpoint: Callable[[Samples, list[Samples], int], None] | None = None,
) -> tuple[Samples, list[Samples]]:
    """Time every session; a run the gate finds regressed (any threshold, either baseline) is timed
    again at once, as ``--trt-confirm`` does in the plugin, up to ``CONFIRMATIONS`` times while each
    re-measurement still regresses. Returns (runs, [first confirmations, second confirmations, ...]).

    ``checkpoint(data, confirms, blocks_done)`` runs after each block, so a run cut short by a time
    limit still leaves its finished blocks to judge."""
    rng = random.Random(seed)
    sessions = setup.plains + [f"S{lvl:g}" for lvl in LEVELS]
    runners: dict[tuple[str, str], Work] = {}
    for name, fn in setup.workloads.items():
        for p in setup.plains:
            runners[(p, name)] = fn
        for lvl in LEVELS:
            runners[(f"S{lvl:g}", name)] = slowed(fn, setup.make_extra(units[(name, lvl)]))
    data: Samples = {}
    confirms: list[Samples] = [{} for _ in range(CONFIRMATIONS)]
    names = list(setup.workloads)
    for block in range(setup.blocks):
        order = sessions[:]
        rng.shuffle(order)
        for session in order:
            rng.shuffle(names)
            for name in names:
                key = (block, session, name)
                data[key] = setup.case(runners[(session, name)])
                latest = data[key]
                for confirm in confirms if block else []:
                    if not any(any(regresses(setup, latest, runs).values())
                               for runs in baselines(setup, data, key).values()):
                        break
                    latest = confirm[key] = setup.case(runners[(session, name)])
        print(f"  block {block + 1}/{setup.blocks} timed, {len(confirms[0])} re-measured so far",
              file=sys.stderr, flush=True)
        if checkpoint is not None:
            checkpoint(data, confirms, block + 1)
    return data, confirms


# ----------------------------------------------------------------------------- judging
RULES = ("gate", "gate_confirmed", "gate_confirmed2", "mwu", "pb_median")


def decisions(
    comparison: gate.Comparison, again: list[gate.Comparison | None], newest: float, current_median: float,
    threshold: float,
) -> dict[str, bool]:
    """The rules on the same samples. ``again``: the confirmation runs' comparisons (None: not taken)."""
    fired = gate.decide(comparison, threshold) == gate.REGRESSION
    held = [c is not None and gate.decide(c, threshold) == gate.REGRESSION for c in again]
    confirmed = fired and len(held) > 0 and held[0]
    return {
        "gate": fired,
        "gate_confirmed": confirmed,
        "gate_confirmed2": confirmed and len(held) > 1 and held[1],
        "mwu": comparison.ratio > 1 + threshold
        and comparison.p_slower < ALPHA
        and comparison.ratio > comparison.spread
        and comparison.current_median > comparison.slowest * (1 + threshold),
        "pb_median": current_median > newest * (1 + threshold),
    }


def rate(hits: int, n: int) -> dict[str, Any]:
    ci = sstats.binomtest(hits, n).proportion_ci(0.95, method="exact") if n else None
    return {"hits": hits, "n": n, "rate": hits / n if n else None, "ci95": [ci.low, ci.high] if ci else None}


def evaluate(data: Samples, confirms: list[Samples], setup: Setup, rules: Sequence[str] = RULES) -> dict[str, Any]:
    """{threshold: {comparison: {rule: rate}}} over every current run of blocks 1..n-1.

    The bootstrap comparisons do not depend on the threshold: each is computed once.
    """
    judged = []  # (label, workload, comparison, confirmation comparisons, newest median, current median)
    for key in sorted(k for k in data if k[0] > 0):
        _, session, name = key
        kind = "aa" if session in setup.plains else f"slow{session[1:]}"
        for base_kind, runs in baselines(setup, data, key).items():
            comparison = gate.compare_samples(data[key], runs, ALPHA)
            again = [gate.compare_samples(c[key], runs, ALPHA) if key in c else None for c in confirms]
            judged.append((f"{kind}_{base_kind}", name, comparison, again, statistics.median(runs[-1]),
                           statistics.median(data[key])))
    results: dict[str, Any] = {}
    for threshold in setup.thresholds:
        hits: dict[str, dict[str, int]] = {}
        counts: dict[str, int] = {}
        alarms: dict[str, dict[str, int]] = {}
        for label, name, comparison, again, newest, current in judged:
            counts[label] = counts.get(label, 0) + 1
            for rule, fired in decisions(comparison, again, newest, current, threshold).items():
                if rule not in rules:
                    continue
                hits.setdefault(label, dict.fromkeys(rules, 0))[rule] += int(fired)
                if fired and label.startswith("aa"):
                    per = alarms.setdefault(f"{label}/{rule}", {})
                    per[name] = per.get(name, 0) + 1
        table = {label: {rule: rate(hits[label][rule], counts[label]) for rule in rules} for label in counts}
        table["false_alarms_by_workload"] = alarms
        results[f"{threshold:g}"] = table
    return results


def achieved_slowdowns(data: Samples, setup: Setup) -> dict[str, Any]:
    """Measured median rise of each level: slowed session vs the same block's plain sessions."""
    out: dict[str, Any] = {}
    for lvl in LEVELS:
        per_workload = {}
        for name in setup.workloads:
            ratios = []
            for b in range(setup.blocks):
                plain = statistics.fmean(statistics.median(data[(b, p, name)]) for p in setup.plains)
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
    """Spread of A/A median ratios (block b+1 vs block b, same plain session), and within a block."""
    between = [
        statistics.median(data[(b + 1, p, n)]) / statistics.median(data[(b, p, n)])
        for b in range(setup.blocks - 1)
        for p in setup.plains
        for n in setup.workloads
    ]
    logs = np.log(between)
    return {
        "ratio_p50": float(np.exp(np.median(logs))),
        "ratio_p99": float(np.quantile(between, 0.99)),
        "ratio_max": float(max(between)),
        "log_ratio_sd": float(np.std(logs)),
    }


def confirmation_noise(data: Samples, confirm: Samples) -> dict[str, Any]:
    """How far a confirmation run's median sits from the run it re-measures (A/A within seconds)."""
    ratios = [statistics.median(confirm[k]) / statistics.median(data[k]) for k in confirm]
    return {"count": len(ratios), "ratio_median": float(np.median(ratios)) if ratios else None,
            "log_ratio_sd": float(np.std(np.log(ratios))) if ratios else None}


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
    ach = report["achieved_slowdown"]
    out = []
    for threshold, res in report["results"].items():
        pct = f"{float(threshold):.0%}"
        rules = [r for r in RULES if r in res["aa_single"]]
        headers = {"gate": "gate", "gate_confirmed": "gate + confirmation",
                   "gate_confirmed2": "gate + 2 confirmations", "mwu": "MWU rule",
                   "pb_median": f"pytest-benchmark median:{pct}"}
        out += [
            f"Threshold {pct}:",
            "",
            "| comparison | n | " + " | ".join(headers[r] for r in rules) + " |",
            "|---|---|" + "---|" * len(rules),
        ]
        labels = [("aa_single", "A/A, 1-run baseline: false alarms"),
                  ("aa_multi", f"A/A, {MULTI_RUNS}-run baseline: false alarms")]
        for lvl in LEVELS:
            a = ach[f"{lvl:g}"]
            achieved = f"achieved {a['median']:+.1%}, {a['min']:+.1%}…{a['max']:+.1%}"
            labels.append((f"slow{lvl:g}_single", f"+{lvl:.0%} injected ({achieved}), 1-run: detected"))
            labels.append((f"slow{lvl:g}_multi", f"+{lvl:.0%} injected, {MULTI_RUNS}-run: detected"))
        for key, label in labels:
            r = res[key]
            out.append(f"| {label} | {r['gate']['n']} | " + " | ".join(_cell(r[rule]) for rule in rules) + " |")
        out.append("")
    return "\n".join(out)


def _cell(r: dict[str, Any]) -> str:
    low, high = r["ci95"]
    return f"{r['rate']:.1%} ({r['hits']}; {low:.1%}–{high:.1%})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--quick", action="store_true", help="3 blocks, 6 workloads, 0.1 s cases (a smoke run)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dump-samples", type=Path, help="write the raw samples (pickle) before judging")
    parser.add_argument("--collect-only", action="store_true",
                        help="stop after --dump-samples (judging costs minutes of CPU: do it elsewhere)")
    parser.add_argument("--judge", type=Path, metavar="DUMP", help="judge a --dump-samples file; time nothing")
    args = parser.parse_args(argv)
    if args.collect_only and not args.dump_samples:
        parser.error("--collect-only needs --dump-samples")
    if args.judge:
        import pickle

        run = pickle.loads(args.judge.read_bytes())
    else:
        run = collect_run(args, parser)
        if args.dump_samples:
            _dump(args.dump_samples, run)
        if args.collect_only:
            print(f"wrote {args.dump_samples}; judge it with --judge", file=sys.stderr)
            return 0
    report = judge_run(run)
    print(report["markdown"])
    where = run["machine"].get("gpu") or run["machine"].get("cpu_model")
    print(f"wall time {report['wall_s']['total']:.0f} s on {where}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


def _dump(path: Path, run: dict[str, Any]) -> None:
    """Write the samples atomically: a kill mid-write keeps the previous checkpoint."""
    import pickle

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(pickle.dumps(run))
    os.replace(tmp, path)


def collect_run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """Size, calibrate and time everything; returns what judging needs (picklable).

    With ``--dump-samples`` every finished block is dumped at once (``config.blocks`` says how many),
    so a device call that hits its time limit still returns something to judge."""
    started = time.perf_counter()
    plan = dict(DEVICE_PLAN[args.device])
    if args.quick:
        plan.update(blocks=3, budget=Budget(warmup_s=0.02, min_time_s=0.1, max_time_s=0.5, target_rel_ci=0))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU is available")
        workloads, extra = cuda_workloads(), cuda_extra
    else:
        workloads, extra = cpu_workloads(), cpu_extra
    if args.quick:
        workloads = dict(list(workloads.items())[:6])
    case, calls = engine_timer(args.device, plan["budget"])
    setup = Setup(args.device, case, calls, workloads, extra, plan["blocks"], plan["plain"], plan["thresholds"])
    info = machine(args.device)
    repeats = scale_workloads(setup, plan["call_s"])
    print(f"calibrating extra work for {len(setup.workloads)} workloads...", file=sys.stderr, flush=True)
    units, calibration = {}, {}
    for name in setup.workloads:
        for lvl, (unit_count, achieved) in calibrate(setup, name).items():
            units[(name, lvl)], calibration[f"{name}@{lvl:g}"] = unit_count, achieved
    calibrated_s = time.perf_counter() - started

    def record(data: Samples, confirms: list[Samples], blocks_done: int) -> dict[str, Any]:
        return _record(args, setup, plan, info, repeats, calibration, data, confirms, blocks_done,
                       {"calibration": calibrated_s, "timing": time.perf_counter() - started})

    def checkpoint(data: Samples, confirms: list[Samples], blocks_done: int) -> None:
        if args.dump_samples and blocks_done >= 2:  # comparisons need two blocks
            _dump(args.dump_samples, record(data, confirms, blocks_done))

    data, confirms = collect(setup, units, args.seed, checkpoint)
    if hasattr(os, "getloadavg"):
        info["loadavg_end"] = list(os.getloadavg())
    return record(data, confirms, setup.blocks)


def _record(
    args: argparse.Namespace, setup: Setup, plan: dict[str, Any], info: dict[str, Any], repeats: dict[str, int],
    calibration: dict[str, float], data: Samples, confirms: list[Samples], blocks_done: int,
    wall_s: dict[str, float],
) -> dict[str, Any]:
    budget = plan["budget"]
    return {
        "device": args.device,
        "quick": args.quick,
        "machine": info,
        "config": {
            "workloads": len(setup.workloads),
            "budget": {"warmup_s": budget.warmup_s, "min_time_s": budget.min_time_s,
                       "max_time_s": budget.max_time_s, "target_rel_ci": budget.target_rel_ci},
            "timer": "pytest_trt.timing.measure",
            "blocks": blocks_done,
            "blocks_planned": setup.blocks,
            "plain_sessions_per_block": setup.plain,
            "multi_run_baseline_runs": MULTI_RUNS,
            "levels": LEVELS,
            "thresholds": setup.thresholds,
            "alpha": ALPHA,
            "call_target_s": plan["call_s"],
            "repeats": repeats,
        },
        "calibration_achieved": calibration,
        "workloads": sorted(setup.workloads),
        "data": data,
        "confirm": confirms[0],  # first re-measurements (the key older dumps have)
        "confirm_more": confirms[1:],  # second and later, each taken while the previous still regressed
        "wall_s": wall_s,
    }


def judge_run(run: dict[str, Any]) -> dict[str, Any]:
    """The report of a collected run: rates per threshold and rule, noise, achieved slowdowns."""
    started = time.perf_counter()
    config, data, confirm = run["config"], run["data"], run["confirm"]
    confirms = [confirm, *run.get("confirm_more", [])]
    rules = tuple(r for r in RULES if r != "gate_confirmed2" or len(confirms) > 1)  # older dumps: one
    setup = Setup(run["device"], lambda fn: [], lambda fn, n: [], dict.fromkeys(run["workloads"], lambda: None),
                  lambda units: lambda: None, config["blocks"], config["plain_sessions_per_block"],
                  tuple(config["thresholds"]))
    print("judging...", file=sys.stderr, flush=True)
    report = {key: run[key] for key in ("device", "quick", "machine", "config", "calibration_achieved")}
    report.update(
        samples_per_case_median=statistics.median(len(v) for v in data.values()),
        workload_median_s={n: statistics.median(data[(0, "P1", n)]) for n in sorted(setup.workloads)},
        achieved_slowdown=achieved_slowdowns(data, setup),
        aa_noise=aa_noise(data, setup),
        confirmation_noise=confirmation_noise(data, confirm),
        results=evaluate(data, confirms, setup, rules),
    )
    report["wall_s"] = {**run["wall_s"], "judging": time.perf_counter() - started}
    report["wall_s"]["total"] = report["wall_s"]["timing"] + report["wall_s"]["judging"]
    report["markdown"] = markdown(report)
    return report


if __name__ == "__main__":
    raise SystemExit(main())
