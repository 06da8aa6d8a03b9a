"""Timer fidelity: do pytest-trt's ``measure`` medians agree with independent timers?

    python lab/timer_fidelity.py --device cpu  --out lab/results/timer_fidelity_cpu.json
    python lab/timer_fidelity.py --device cuda --out $OUT/timer_fidelity_cuda.json

CPU: three numpy float32 matmuls (BLAS pinned to one thread) sized at start to about 50 us, 1 ms and
20 ms, timed by ``measure`` and by ``timeit.Timer.repeat`` (per-call median, both with number=1 and
with ~2 ms blocks). CUDA: three fp16 matmuls sized to about 50 us, 1 ms and 50 ms, timed by
``measure`` (CUDA events), ``triton.testing.do_bench(return_mode="median")`` and
``torch.utils.benchmark.Timer.blocked_autorange``. Like is compared with like: our default (calls back
to back) with torch's Timer, which also submits back to back, and our cold-L2 mode (``--trt-l2 cold``:
the L2 is flushed before each call, outside the timed interval) with do_bench, which flushes the
same way; ours back to back against do_bench is shown too, as the size of the condition's effect.
Each workload also cycles through operand sets larger than twice the L2 (``--no-rotate`` turns
this off). ``--telemetry`` runs our timer with the NVML sampler on, as a benchmark case does.

Each timer runs once per repeat (default 21 rounds of 0.25 s), in an order rotated every repeat
(ABC, BCA, CAB, ...), and the median over repeats is reported, so slow drift does not favour one
timer. On CUDA an NVML sampler watches every timer's run alike, so each round also records the SM
clock and power it ran at, and each pair is shown in SM cycles as well (a diagnostic: clocks that
differ between timers' rounds explain a gap in time that vanishes in cycles). Also reported: the host
cost per iteration of our loop on a no-op callable (on CUDA, for each event-record path).
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import math
import os
import platform
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

try:
    from pytest_trt.timing import Budget, measure, measure_throughput
except ImportError:  # run from a checkout without installing: python lab/timer_fidelity.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pytest_trt.timing import Budget, measure, measure_throughput

TELEMETRY = {"on": False}  # --telemetry: sample NVML around each of our measurements

TARGETS = {"cpu_within": 0.02, "gpu_within": 0.01, "host_overhead_s": 2e-6}
Timer = Callable[[], float]  # runs one timing, returns a per-call median in seconds


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


Watch = Callable[[], Any]  # makes a started-able NVML sampler for one timer's run, or None


def interleaved(timers: dict[str, Timer], repeats: int, watch: Watch | None = None) -> dict[str, dict[str, Any]]:
    """Run every timer ``repeats`` times, rotating the order each round; median over repeats.

    ``watch``: an NVML sampler around every timer's run alike, so each round's result comes with the
    GPU's mean SM clock, power and throttling while that timer ran.
    """
    names = list(timers)
    runs: dict[str, dict[str, Any]] = {name: {"repeats_s": []} for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            sampler = watch() if watch is not None else None
            if sampler is not None:
                sampler.start()
            runs[name]["repeats_s"].append(timers[name]())
            if sampler is not None:
                seen = sampler.stop()
                for key in WATCHED:
                    runs[name].setdefault(f"repeats_{key}", []).append(seen.get(key))
    for run in runs.values():
        run["median_s"] = statistics.median(run["repeats_s"])
    return runs


WATCHED = ("sm_clock_mhz_mean", "power_mean_w", "throttled_fraction")


def clock_view(row: dict[str, Any]) -> dict[str, Any]:
    """Per timer: median SM clock and power over its rounds; per pair: ours/theirs in SM cycles.

    A compute-bound kernel's time scales with 1/clock, so if two timers disagree only because the
    GPU ran at other clocks while each ran, their medians in cycles (time x clock) agree. A diagnostic
    of where a disagreement comes from, not a verdict.
    """
    t = row["timers"]
    out: dict[str, Any] = {"timers": {}, "pairs": {}}
    for name, run in t.items():
        clocks = [c for c in run.get("repeats_sm_clock_mhz_mean", []) if c is not None]
        powers = [w for w in run.get("repeats_power_mean_w", []) if w is not None]
        if clocks:
            out["timers"][name] = {"sm_clock_mhz_median": statistics.median(clocks),
                                   "power_w_median": statistics.median(powers) if powers else None}
    for p in row["pairs"]:
        ours, theirs = t[p["ours"]], t[p["theirs"]]
        if p["ours"] in out["timers"] and p["theirs"] in out["timers"]:
            out["pairs"][f"{p['ours']} / {p['theirs']}"] = _median_cycles(ours) / _median_cycles(theirs)
    return out


def _median_cycles(run: dict[str, Any]) -> float:
    """Median over rounds of the round's median time x its mean SM clock (MHz: cycles per microsecond)."""
    pairs = zip(run["repeats_s"], run["repeats_sm_clock_mhz_mean"], strict=True)
    return float(statistics.median(s * 1e6 * c for s, c in pairs if c is not None))


def size_for(
    target_s: float, time_at: Callable[[int], float], start: int, step: int, lo: int
) -> tuple[int, float]:
    """Square size whose matmul takes about ``target_s``: cube-root corrections until within 10 %."""
    n = start
    t = time_at(n)
    for _ in range(6):
        if abs(t / target_s - 1) <= 0.1:
            break
        nxt = max(lo, int(round(n * (target_s / t) ** (1 / 3) / step)) * step)
        if nxt == n:
            break
        n, t = nxt, time_at(nxt)
    return n, t


def our_budget(seconds: float, cold: bool = False, calls: int = 0) -> Budget:
    # Fixed duration, no early stop: every timer gets the same time per repeat.
    return Budget(warmup_s=0.1, min_time_s=seconds, max_time_s=seconds, target_rel_ci=0, max_iterations=10**9,
                  flush_l2=cold, calls_per_sample=calls)


def ours_median(fn: Callable[[], object], seconds: float, stream: Any = None, cold: bool = False,
                calls: int = 0) -> float:
    """Our timer's median per call; ``calls`` as Budget.calls_per_sample (0: the plugin's auto blocks)."""
    sampler = None
    if TELEMETRY["on"] and stream is not None:
        from pytest_trt.telemetry import Sampler

        sampler = Sampler.open(0)
        if sampler is None:
            raise SystemExit("--telemetry: NVML is not available on this host")
        sampler.start()
    try:
        return measure(fn, batch_size=1, budget=our_budget(seconds, cold, calls), stream=stream).stats.median
    finally:
        if sampler is not None:
            sampler.stop()


PER_CALL = "ours, an event per call"  # diagnostic on CUDA: its gap to "ours" is one event's GPU cost


# ----------------------------------------------------------------------------------------- CPU


def timeit_median(fn: Callable[[], object], number: int, seconds: float, per_call_s: float) -> float:
    """timeit.Timer.repeat with ``number`` calls per repeat for about ``seconds``; per-call median."""
    timer = timeit.Timer(fn)
    timer.timeit(number=max(1, int(0.1 / per_call_s)))  # warm-up, as ours gets 0.1 s
    repeat = max(5, int(seconds / (number * per_call_s)))
    return statistics.median(t / number for t in timer.repeat(repeat=repeat, number=number))


def cpu_rows(seconds: float, repeats: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)

    def operands(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = rng.standard_normal((n, n), dtype=np.float32)
        return a, rng.standard_normal((n, n), dtype=np.float32), np.empty((n, n), dtype=np.float32)

    def time_at(n: int) -> float:
        a, b, c = operands(n)
        timer = timeit.Timer(lambda: np.matmul(a, b, out=c))
        first = timer.timeit(number=1)
        number = max(1, int(0.03 / first))
        return min(timer.repeat(repeat=3, number=number)) / number

    rows = []
    for target in (50e-6, 1e-3, 20e-3):
        n, t = size_for(target, time_at, start=128, step=8, lo=8)
        a, b, c = operands(n)

        def fn(a: np.ndarray = a, b: np.ndarray = b, c: np.ndarray = c) -> None:
            np.matmul(a, b, out=c)

        block = max(1, round(2e-3 / t))
        timers: dict[str, Timer] = {
            "ours": partial(ours_median, fn, seconds),
            "timeit(number=1)": partial(timeit_median, fn, 1, seconds, t),
            f"timeit(number={block})": partial(timeit_median, fn, block, seconds, t),
        }
        rows.append(
            {
                "workload": f"numpy float32 matmul {n}x{n} (1 BLAS thread)",
                "target_s": target,
                "sized_s": t,
                "timers": interleaved(timers, repeats),
                "pairs": [pair("ours", name) for name in timers if name != "ours"],
            }
        )
    return rows


def cpu_overhead(seconds: float) -> dict[str, Any]:
    def noop() -> None:
        return None

    t = measure(noop, batch_size=1, budget=our_budget(seconds))
    number = 2_000_000
    bare = min(timeit.Timer(noop).repeat(repeat=5, number=number)) / number
    per_iter = t.wall_s / t.stats.n
    return {
        "callable": "no-op Python function",
        "our_loop_per_iteration_s": per_iter,
        "our_median_sample_s": t.stats.median,
        "bare_call_loop_per_iteration_s": bare,
        "added_by_our_loop_s": per_iter - bare,
        "iterations": t.stats.n,
        "definition": "our loop: wall time of the measured chunks / iterations with a no-op callable; "
        "bare: timeit's own loop calling the same no-op (best of 5 x 2e6)",
    }


# ---------------------------------------------------------------------------------------- CUDA


def gpu_rows(seconds: float, repeats: int, rotate: bool, workload: str = "matmul"
             ) -> tuple[list[dict[str, Any]], list[str]]:
    import torch

    cuda: Any = torch.cuda  # untyped constructors
    notes: list[str] = []
    props = cuda.get_device_properties(0)
    l2 = int(getattr(props, "L2_cache_size", 0) or 50 * 2**20)
    stream = cuda.Stream()
    try:
        from triton.testing import do_bench
    except ImportError:
        do_bench = None
        notes.append("triton is not installed: the do_bench column is missing")
    from torch.utils.benchmark import Timer as TorchTimer

    from pytest_trt.telemetry import Sampler

    watch: Watch | None = None
    if Sampler.open(0) is not None:
        watch = partial(Sampler.open, 0, 0.02)
    else:
        notes.append("NVML is not available: no SM clock or power per round")

    def operand_sets(n: int) -> list[tuple[Any, ...]]:
        set_bytes = 3 * n * n * 2
        count = max(1, math.ceil(2 * l2 / set_bytes)) if rotate else 1
        gen = torch.Generator(device="cuda").manual_seed(0)
        sets = [
            (
                torch.randn(n, n, device="cuda", dtype=torch.float16, generator=gen),
                torch.randn(n, n, device="cuda", dtype=torch.float16, generator=gen),
                torch.empty(n, n, device="cuda", dtype=torch.float16),
            )
            for _ in range(count)
        ]
        cuda.synchronize()  # filled on the default stream, read on ours
        return sets

    def rotating(sets: list[tuple[Any, ...]]) -> Callable[[], None]:
        cycle = itertools.cycle(sets)

        def fn() -> None:
            a, b, c = next(cycle)
            torch.mm(a, b, out=c)

        return fn

    def time_at(n: int) -> float:
        return time_fn(rotating(operand_sets(n)))

    def do_bench_median(fn: Callable[[], object]) -> float:
        assert do_bench is not None
        with cuda.stream(stream):
            return float(do_bench(fn, warmup=100, rep=int(seconds * 1000), return_mode="median")) * 1e-3

    def torch_timer_median(fn: Callable[[], object]) -> float:
        with cuda.stream(stream):
            return float(
                TorchTimer(stmt="fn()", globals={"fn": fn}).blocked_autorange(min_run_time=seconds).median
            )

    def spin_time(cycles: int) -> float:
        return time_fn(partial(cuda._sleep, cycles))

    def time_fn(fn: Callable[[], object]) -> float:
        with cuda.stream(stream):
            for _ in range(3):
                fn()
            events = [(cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)) for _ in range(5)]
            for s, e in events:
                s.record(stream)
                fn()
                e.record(stream)
        stream.synchronize()
        return float(np.median([s.elapsed_time(e) for s, e in events])) * 1e-3

    rows = []
    for target in (50e-6, 1e-3, 50e-3):
        sets: list[tuple[Any, ...]] = []
        if workload == "spin":  # a one-thread spin: low power, so no power cap moves the clocks
            cycles = int(target * 1e6 / spin_time(10**6))
            t = spin_time(cycles)
            fn: Callable[[], object] = partial(cuda._sleep, cycles)
            described: dict[str, Any] = {"workload": f"spin kernel torch.cuda._sleep({cycles}) (cycles)"}
        else:
            n, t = size_for(target, time_at, start=2048, step=256, lo=256)
            sets = operand_sets(n)
            fn = rotating(sets)
            described = {"workload": f"torch fp16 matmul {n}x{n}, {len(sets)} rotating operand set(s)",
                         "working_set_bytes": 3 * n * n * 2 * len(sets), "l2_bytes": l2}
        timers: dict[str, Timer] = {
            "ours": partial(ours_median, fn, seconds, stream),
            "ours (cold L2)": partial(ours_median, fn, seconds, stream, True),
            "torch.utils.benchmark": partial(torch_timer_median, fn),
        }
        pairs = [pair("ours", "torch.utils.benchmark")]
        if target < 1e-3:  # where an event's GPU cost shows (auto blocks make "ours" per call above ~1 ms)
            timers[PER_CALL] = partial(ours_median, fn, seconds, stream, False, 1)
            pairs.append(pair(PER_CALL, "torch.utils.benchmark", False))
        if do_bench is not None:
            timers["triton.do_bench"] = partial(do_bench_median, fn)
            pairs += [pair("ours (cold L2)", "triton.do_bench"), pair("ours", "triton.do_bench", False)]
        rows.append(described | {"target_s": target, "sized_s": t, "timers": interleaved(timers, repeats, watch),
                                  "pairs": pairs})
        del sets, fn, timers
        cuda.empty_cache()
    notes.append(
        f"'{PER_CALL}' is a diagnostic: our loop forced to one event per call (what 'ours' does for "
        "calls above ~1 ms); its gap to 'ours' (auto blocks of calls per event) is the GPU time an event adds"
    )
    notes.append(
        "do_bench zeroes a large buffer before each call (L2 flush); "
        + (
            "every workload here cycles through operand sets totalling > 2x L2, "
            "so no timer sees warm operands"
            if rotate
            else "--no-rotate: operands may sit in L2 for ours and torch.utils.benchmark, not for do_bench"
        )
    )
    return rows, notes


def gpu_overhead(seconds: float) -> dict[str, Any]:
    """Host cost per iteration of the event loop, and of reading one event back, for each event path."""
    from dataclasses import replace

    import torch

    from pytest_trt import cuda_events
    from pytest_trt.timing import cuda_api, measure_events

    cuda: Any = torch.cuda
    stream = cuda.Stream()
    tiny = torch.ones(1, device="cuda")

    def noop() -> None:
        return None

    def kernel() -> None:
        tiny.add_(1.0)

    fast = cuda_api(stream)
    make_event = lambda: cuda.Event(enable_timing=True)  # noqa: E731
    apis = {fast.name: fast}
    for factory in (*cuda_events.PATHS, cuda_events.torch_path):
        try:
            path = factory(stream)
        except Exception:
            continue
        if path.name not in apis and cuda_events.works(path, stream, make_event):
            apis[path.name] = replace(fast, recorder=factory, name=path.name)
    out: dict[str, Any] = {"default_recorder": fast.name}
    for api_name, api in apis.items():
        for name, fn in (("no-op", noop), ("tiny kernel (1-element add_)", kernel)):
            for blocks, calls in (("", 0), (", an event per call", 1)):
                budget = replace(our_budget(seconds), calls_per_sample=calls)
                t = measure_events(fn, batch_size=1, budget=budget, stream=stream, api=api)
                iterations = t.stats.n * t.calls_per_sample
                bare = 1.0 / measure_throughput(fn, batch_size=1, iterations=iterations, stream=stream)
                assert t.enqueue is not None
                out[f"{name}, {api_name} record{blocks}"] = {
                    "event_loop_per_iteration_s": t.wall_s / iterations,
                    "bare_loop_per_iteration_s": bare,
                    "added_by_event_path_s": t.wall_s / iterations - bare,
                    "enqueue_median_s": t.enqueue.median,
                    "event_median_s": t.stats.median,
                    "iterations": iterations,
                    "calls_per_sample": t.calls_per_sample,
                }
        out[f"read-back, {api_name}"] = {"per_event_s": _read_back_cost(api, stream, make_event)}
    out["definition"] = (
        "event loop: wall time of measure() on the stream / calls (one event record and two "
        "perf_counter reads per sample of calls_per_sample calls, and reading every event back; 'an "
        "event per call' forces one call per sample); bare: the same number of "
        "back-to-back calls with one sync; event median: the GPU time between consecutive events, "
        "which for a no-op is the loop's in-loop host cost; read-back: host time to read one interval"
    )
    return out


def _read_back_cost(api: Any, stream: Any, make_event: Callable[[], Any], count: int = 2000) -> float:
    from pytest_trt import cuda_events

    path = (api.recorder or cuda_events.torch_path)(stream)
    events = [make_event() for _ in range(count + 1)]
    marks = [path.mark(e) for e in events]
    for m in marks:  # torch's mark does not record; every path's record does
        path.record(m)
    stream.synchronize()
    read = cuda_events.reader(path)  # what the timed loop reads a chunk with
    start = time.perf_counter_ns()
    read(marks[:-1], marks[1:])
    return (time.perf_counter_ns() - start) * 1e-9 / count


# -------------------------------------------------------------------------------------- output


def pair(ours: str, theirs: str, like_for_like: bool = True) -> dict[str, Any]:
    """A comparison; ``like_for_like`` False: the timers measure different conditions (shown, not judged)."""
    return {"ours": ours, "theirs": theirs, "like_for_like": like_for_like}


def ratios(row: dict[str, Any]) -> dict[str, float]:
    """Ours over theirs for each pair: ratio of the medians over rounds."""
    t = row["timers"]
    return {f"{p['ours']} / {p['theirs']}": t[p["ours"]]["median_s"] / t[p["theirs"]]["median_s"]
            for p in row["pairs"]}


def paired_ratios(row: dict[str, Any]) -> dict[str, float]:
    """Median over rounds of ours/theirs within a round: cancels drift slower than one round."""
    t = row["timers"]
    return {
        f"{p['ours']} / {p['theirs']}": statistics.median(
            o / x for o, x in zip(t[p["ours"]]["repeats_s"], t[p["theirs"]]["repeats_s"], strict=True))
        for p in row["pairs"]
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"### Timer fidelity ({result['device']}: {result['machine']['device_name']})",
        "",
        "| workload | target | ours | median | theirs | median | ours / theirs | paired ratio | in SM cycles |",
        "|---|---:|---|---:|---|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        for p in row["pairs"]:
            key = f"{p['ours']} / {p['theirs']}"
            ours, theirs = (row["timers"][p[k]]["median_s"] for k in ("ours", "theirs"))
            shown = p["theirs"] + ("" if p["like_for_like"] else " (other condition)")
            lines.append(
                f"| {row['workload']} | {row['target_s'] * 1e6:.0f} us | {p['ours']} | {ours * 1e6:.2f} us "
                f"| {shown} | {theirs * 1e6:.2f} us | {row['ratios'][key]:.4f} | {row['paired_ratios'][key]:.4f} "
                f"| {_shown(row.get('clocks', {}).get('pairs', {}).get(key))} |"
            )
        for name, seen in row.get("clocks", {}).get("timers", {}).items():
            lines.append(f"|  |  | SM clock while {name} ran: {seen['sm_clock_mhz_median']:.0f} MHz, "
                         f"{_shown(seen['power_w_median'], '.0f')} W (medians over rounds) |  |  |  |  |  |  |")
    lines.append("")
    config = result["config"]
    lines.append(
        f"Medians over {config['repeats']} rounds of {config['seconds_per_timer']} s per timer, "
        "order rotated each round; paired ratio = median of the per-round ours/theirs."
    )
    lines.append("")
    for key, value in result["host_overhead"].items():
        if isinstance(value, dict):
            shown = ", ".join(f"{k}={v * 1e9:.0f} ns" for k, v in value.items() if k.endswith("_s"))
            lines.append(f"- host overhead, {key}: {shown}")
        elif key.endswith("_s"):
            lines.append(f"- host overhead, {key}: {value * 1e9:.0f} ns")
    lines.append("")
    for key, value in result["verdicts"].items():
        lines.append(f"- {key}: {value}")
    for note in result["notes"]:
        lines.append(f"- note: {note}")
    return "\n".join(lines)


def _shown(value: float | None, spec: str = ".4f") -> str:
    return "" if value is None else format(value, spec)


def verdicts(device: str, rows: list[dict[str, Any]], overhead: dict[str, Any]) -> dict[str, str]:
    within = TARGETS["cpu_within"] if device == "cpu" else TARGETS["gpu_within"]
    found = {}
    for key, label in (("ratios", "ratio of medians"), ("paired_ratios", "paired ratio")):
        judged = [row[key][f"{p['ours']} / {p['theirs']}"] for row in rows for p in row["pairs"] if p["like_for_like"]]
        worst = max(abs(r - 1) for r in judged)
        found[f"median agreement, like for like, {label} (target within {within:.0%})"] = (
            f"worst |ours/theirs - 1| = {worst:.2%}: " + ("meets" if worst <= within else "misses")
        )
    if not overhead:
        return found
    limit = TARGETS["host_overhead_s"]
    label = f"host overhead (target <= {limit * 1e6:.0f} us/iteration)"
    if device == "cpu":
        measured = {label: overhead["our_loop_per_iteration_s"]}
    else:
        noop = overhead[f"no-op, {overhead['default_recorder']} record"]
        single = overhead[f"no-op, {overhead['default_recorder']} record, an event per call"]
        measured = {f"{label}, in the loop (GPU gap between events per call, no-op call)": noop["event_median_s"],
                    f"{label}, loop wall incl. reading events back": noop["event_loop_per_iteration_s"],
                    f"{label}, an event per call, in the loop": single["event_median_s"],
                    f"{label}, an event per call, loop wall": single["event_loop_per_iteration_s"]}
    for key, value in measured.items():
        found[key] = f"{value * 1e9:.0f} ns/iteration: " + ("meets" if value <= limit else "misses")
    return found


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_start": list(os.getloadavg()),
    }
    if device == "cuda":
        import torch

        info["torch"] = torch.__version__
        info["device_name"] = torch.cuda.get_device_name(0)
        info["cuda_runtime"] = torch.version.cuda
        try:
            import triton

            info["triton"] = triton.__version__
        except ImportError:
            info["triton"] = None
    else:
        info["device_name"] = info["cpu_model"]
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), required=True)
    parser.add_argument("--out", type=Path, required=True, help="JSON results file")
    parser.add_argument("--seconds", type=float, default=0.25, help="time per timer per round (default 0.25)")
    parser.add_argument("--repeats", type=int, default=21, help="interleaved rounds per workload (default 21)")
    parser.add_argument("--no-rotate", action="store_true", help="CUDA: one operand set (L2 may stay warm)")
    parser.add_argument("--note", action="append", default=[], help="free text recorded in the output")
    parser.add_argument("--telemetry", action="store_true", help="CUDA: NVML sampler on during our timings")
    parser.add_argument("--workload", choices=("matmul", "spin"), default="matmul",
                        help="CUDA: fp16 matmuls (power-hungry: an H100 runs them at its power cap) or a "
                             "one-thread spin kernel of fixed cycles (clocks stay put) (default matmul)")
    parser.add_argument("--skip-overhead", action="store_true", help="leave out the host-overhead part")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be > 0 and --repeats >= 1")

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA GPU")
    began = time.perf_counter()
    info = machine(args.device)
    notes = list(args.note)
    if args.device == "cpu":
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # pinned in requirements/ci.txt

        with threadpool_limits(limits=1):
            rows = cpu_rows(args.seconds, args.repeats)
            overhead = cpu_overhead(args.seconds)
        notes.append("BLAS limited to 1 thread (threadpoolctl) so the matmuls do not compete for cores")
    else:
        TELEMETRY["on"] = args.telemetry
        rows, gpu_notes = gpu_rows(args.seconds, args.repeats, rotate=not args.no_rotate, workload=args.workload)
        overhead = {} if args.skip_overhead else gpu_overhead(args.seconds)
        notes += gpu_notes
        if args.telemetry:
            notes.append("telemetry on: our timer ran with the NVML sampler (10 ms interval) sampling")
    for row in rows:
        row["ratios"] = ratios(row)
        row["paired_ratios"] = paired_ratios(row)
        row["clocks"] = clock_view(row)
    info["load_average_end"] = list(os.getloadavg())
    result: dict[str, Any] = {
        "tool": "lab/timer_fidelity.py",
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": args.device,
        "machine": info,
        "config": {"seconds_per_timer": args.seconds, "repeats": args.repeats, "order": "rotated per repeat",
                   "telemetry": args.telemetry, "workload": args.workload},
        "rows": rows,
        "host_overhead": overhead,
        "targets": TARGETS,
        "notes": notes,
    }
    result["verdicts"] = verdicts(args.device, rows, overhead)
    result["elapsed_s"] = time.perf_counter() - began
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"\nwrote {args.out} in {result['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
