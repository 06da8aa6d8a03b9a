"""Does NVML telemetry perturb the timed loop? (GPU only; about a minute on an H100.)

The same CUDA workloads are timed with the telemetry sampler off and on (10 ms interval), in
interleaved repeats whose order rotates, plus a second "off" run per repeat as an A/A control: the
on/off ratio should sit inside the off/off spread. Two workloads: a large fp16 GEMM (GPU-bound) and
a chain of tiny layers at batch 1 (host-enqueue-bound, where a Python sampler thread competing for
the GIL would show). Also reports the sampler thread's own CPU use.

    python lab/telemetry_overhead.py --device cuda:0 --out telemetry_overhead.json

Prints a markdown table; writes every measured number, the timer used and the environment to --out.
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# seconds per call of fn (enqueued on stream), median over a short timed loop
Timer = Callable[[Callable[[], None], Any], float]
MODES = ("off", "on", "off-again")


def events_timer(
    fn: Callable[[], None], stream: Any, *, warmup_s: float = 0.1, min_time_s: float = 0.3
) -> float:
    """Fallback timer: per-iteration CUDA events on ``stream``, median, warm-up by time dropped."""
    import torch

    with torch.cuda.stream(stream):
        deadline = time.perf_counter() + warmup_s
        while time.perf_counter() < deadline:
            fn()
        stream.synchronize()
        pairs: list[tuple[Any, Any]] = []
        deadline = time.perf_counter() + min_time_s
        while time.perf_counter() < deadline and len(pairs) < 20_000:
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            start.record(stream)
            fn()
            end.record(stream)
            pairs.append((start, end))
        stream.synchronize()
    return float(statistics.median(s.elapsed_time(e) / 1000.0 for s, e in pairs))


def default_timer() -> tuple[str, Timer]:
    """pytest_trt.timing.measure where it exists (short budget), else the local events loop."""
    try:
        timing: Any = importlib.import_module("pytest_trt.timing")
    except ImportError:
        return "local CUDA-events loop", events_timer
    try:
        budget = timing.Budget(warmup_s=0.1, min_time_s=0.3, max_time_s=0.6, target_rel_ci=0.0)
    except TypeError:  # a different Budget shape: keep its defaults
        budget = timing.Budget()

    def timer(fn: Callable[[], None], stream: Any) -> float:
        return float(timing.measure(fn, batch_size=1, budget=budget, stream=stream).stats.median)

    return "pytest_trt.timing.measure", timer


def workloads(device: Any) -> dict[str, Callable[[], None]]:
    import torch

    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(4096, 4096, device=device, dtype=torch.float16, generator=gen)
    b = torch.randn(4096, 4096, device=device, dtype=torch.float16, generator=gen)
    c = torch.empty_like(a)
    layers = [torch.nn.Linear(256, 256).to(device=device, dtype=torch.float16).eval() for _ in range(20)]
    x = torch.randn(1, 256, device=device, dtype=torch.float16, generator=gen)

    def gemm() -> None:
        torch.matmul(a, b, out=c)

    @torch.inference_mode()
    def tiny_chain() -> None:
        y = x
        for layer in layers:
            y = torch.relu(layer(y))

    return {"gemm-4096-fp16": gemm, "20x-linear-256-bs1": tiny_chain}


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) >= 2 else [ordered[0]] * 3
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "q1": quartiles[0], "q3": quartiles[2]}  # fmt: skip


def run(device_index: int, repeats: int, interval_s: float, timer: Timer) -> dict[str, Any]:
    import torch

    from pytest_trt.telemetry import Sampler

    device = torch.device("cuda", device_index)
    torch.cuda.set_device(device)
    stream = torch.cuda.Stream(device)  # type: ignore[no-untyped-call]
    results: dict[str, Any] = {}
    for name, fn in workloads(device).items():
        medians: dict[str, list[float]] = {mode: [] for mode in MODES}
        cpu_fraction: list[float] = []
        sample_rate: list[float] = []
        for repeat in range(repeats):
            order = MODES[repeat % 3 :] + MODES[: repeat % 3]  # rotate so no mode always goes first
            for mode in order:
                sampler = Sampler.open(device_index, interval_s) if mode == "on" else None
                if mode == "on" and sampler is None:
                    raise SystemExit("NVML is unavailable on this host: nothing to compare")
                if sampler is not None:
                    sampler.start()
                medians[mode].append(timer(fn, stream))
                if sampler is not None:
                    record = sampler.stop()
                    cpu_fraction.append(sampler.cpu_time_s / record["duration_s"])
                    sample_rate.append(record["samples"] / record["duration_s"])
        ratio = [on / off for on, off in zip(medians["on"], medians["off"], strict=True)]
        control = [again / off for again, off in zip(medians["off-again"], medians["off"], strict=True)]
        results[name] = {
            "median_s": {mode: _spread(values) for mode, values in medians.items()},
            "on_over_off": _spread(ratio),
            "off_again_over_off": _spread(control),
            "sampler_cpu_fraction_of_one_core": _spread(cpu_fraction),
            "samples_per_s": _spread(sample_rate),
            "raw": {"median_s": medians, "on_over_off": ratio, "off_again_over_off": control},
        }
    return results


def markdown(results: dict[str, Any], interval_s: float) -> str:
    lines = [
        f"Telemetry overhead: sampler off vs on ({interval_s * 1000:g} ms interval), "
        "medians of interleaved repeats",
        "",
        "| workload | off median | on median | on/off (median, IQR) | off/off A/A (IQR) "
        "| sampler CPU | samples/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        ratio, control = r["on_over_off"], r["off_again_over_off"]
        lines.append(
            f"| {name} | {r['median_s']['off']['median'] * 1e3:.4f} ms"
            f" | {r['median_s']['on']['median'] * 1e3:.4f} ms"
            f" | {ratio['median']:.4f} ({ratio['q1']:.4f}–{ratio['q3']:.4f})"
            f" | {control['median']:.4f} ({control['q1']:.4f}–{control['q3']:.4f})"
            f" | {100 * r['sampler_cpu_fraction_of_one_core']['median']:.2f}% of a core"
            f" | {r['samples_per_s']['median']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0", help="CUDA device, cuda or cuda:N (default cuda:0)")
    parser.add_argument(
        "--repeats", type=int, default=12, help="interleaved repeats per workload (default 12)"
    )
    parser.add_argument("--interval", type=float, default=0.01, help="sampling interval in s (default 0.01)")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    args = parser.parse_args(argv)
    if args.repeats < 2:
        parser.error("--repeats must be at least 2")

    import torch

    from pytest_trt.environment import fingerprint, parse_device
    from pytest_trt.telemetry import nvml_available

    kind, index = parse_device(args.device)
    if kind != "cuda" or not torch.cuda.is_available():
        print(f"telemetry_overhead needs a CUDA GPU (--device {args.device}; CUDA available: "
              f"{torch.cuda.is_available()})", file=sys.stderr)  # fmt: skip
        return 2
    ok, reason = nvml_available()
    if not ok:
        print(f"telemetry_overhead needs NVML: {reason}", file=sys.stderr)
        return 2

    timer_name, timer = default_timer()
    started = time.perf_counter()
    results = run(index, args.repeats, args.interval, timer)
    table = markdown(results, args.interval)
    print(table)
    print(f"\ntimer: {timer_name}; {args.repeats} repeats; {time.perf_counter() - started:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "timer": timer_name,
            "repeats": args.repeats,
            "interval_s": args.interval,
            "environment": fingerprint(args.device),
            "results": results,
            "markdown": table,
        }
        args.out.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
    raise SystemExit(main())
