"""Options resolved once (command line → ini → default) into a frozen Settings.

Every bad value becomes a ``pytest.UsageError`` naming the option and what it accepts, so users
see one line and exit status 4 instead of a traceback.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from pytest_trt import backends as backend_registry
from pytest_trt import paths
from pytest_trt.case import PRECISIONS

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
L2_STATES = ("warm", "cold")
MAX_STREAMS = 64  # concurrent execution contexts per case: a runner (and its memory) each
ARTIFACT_KINDS = ("onnx", "export")
AB_CLOCKS = ("wall", "cpu")
DEFAULT_CASE_TIMEOUT_S = 60.0
MAX_CONFIRM = 10  # fresh processes per suspect case: each one re-runs the case from scratch
MAX_MIN_ITERATIONS = 1_000_000  # the timing loop's own iteration cap (timing.Budget.max_iterations)


@dataclass(frozen=True)
class Settings:
    backends: tuple[str, ...] | None  # None: those installed that fit the device
    precisions: tuple[str, ...]
    batch_sizes: tuple[int, ...]
    device: str  # "auto", "cpu", "cuda", "cuda:N"
    models: tuple[str, ...]  # zoo names or groups, used where a test marks models="zoo"
    variants: tuple[str, ...]
    devices: tuple[int, ...] | None  # GPUs that pytest-xdist workers are pinned to
    baseline: Path | None
    save_baseline: Path | None
    results: Path | None
    threshold: float  # fraction, 0.05 = 5%
    warmup_s: float
    min_time_s: float
    max_time_s: float
    min_iterations: int
    cache_dir: Path
    report_html: Path | None
    report_md: Path | None
    benchmark_json: Path | None
    max_drop: float | None  # default task-metric drop limit against fp32
    calibration: str
    confirm: int = 2  # fresh-process re-measurements a suspect slowdown must survive (0: none)
    energy_threshold: float | None = None  # gate joules per item too (fraction)
    l2: str = "warm"  # "cold": flush the GPU's L2 before each timed iteration
    calls_per_sample: int = 0  # CUDA: calls between two timing events; 0 = auto
    ort_profile: bool = False  # after timing, profile ONNX Runtime node placement in a separate session
    case_timeout_s: float | None = None  # a case's time bound from its first call (None: unbounded)
    # Whether the user chose the timing method; otherwise a case is timed as its baseline entry was.
    l2_explicit: bool = False
    calls_per_sample_explicit: bool = False
    streams: tuple[int, ...] = (1,)  # concurrent execution contexts per case, a matrix dimension
    ab_processes: int | None = None  # A/B: fresh processes that repeat each measurement; None: auto
    ab_instances: int | None = None  # A/B: pairs of runner instances per process; None: auto
    ab_clock: str = "wall"  # A/B on the CPU: "wall" or "cpu" (the process's CPU time)
    ab_artifacts: Path | None = None  # A/B: where reference=BASELINE reads the baseline's model files
    save_artifacts: tuple[str, ...] = ()  # with --trt-save-baseline: keep the models' onnx / export files


_BUILTIN_VARIANTS = tuple(dict.fromkeys(v for b in backend_registry.BUILTIN for v in b.all_variants))

# name, help, default (as an ini string; None = unset)
OPTIONS: tuple[tuple[str, str, str | None], ...] = (
    ("backend", f"backends to run, comma separated: {', '.join(b.name for b in backend_registry.BUILTIN)} or one "
     "a pytest_trt_backends hook registers (default: installed ones that fit the device)", None),
    ("precision", f"precisions, comma separated: {', '.join(PRECISIONS)} (default: fp32)", "fp32"),
    ("batch-size", "batch sizes, comma separated positive integers (default: 1,8)", "1,8"),
    ("streams", f"concurrent execution contexts per case, comma separated whole numbers 1..{MAX_STREAMS}, "
     "e.g. 1,2,4,8: each stream is its own runner driven by its own thread; a case with more than one "
     "reports aggregate throughput and per-request latency (default: 1)", "1"),
    ("device", "auto (default), cpu, cuda or cuda:N", "auto"),
    ("model", "zoo models for tests marked models='zoo': names or the groups small, vision, all "
     "(default: small)", "small"),
    ("variant", f"execution variants: {', '.join(_BUILTIN_VARIANTS)} (default: eager)", "eager"),
    ("devices", "GPU indices that pytest-xdist workers are pinned to, one worker per GPU, e.g. 0,1,2,3",
     None),
    ("baseline", "compare against this baseline file; regressed cases fail their test", None),
    ("save-baseline", "write (or append this run to) a baseline file", None),
    ("results", "this run's full results JSON (default: <cache dir>/results/latest.json)", None),
    ("threshold", "smallest slowdown that may fail, a percentage such as 5% or 3 (default 5%)", "5%"),
    ("confirm", "re-measure a case the gate finds slower in this many fresh processes; it fails only if "
     "every one is slower too (default 2; 0: the first measurement decides)", "2"),
    ("energy-threshold", "also gate energy per item (NVML) at this slowdown, a percentage such as 10% "
     "(default: energy is recorded, not gated)", None),
    ("warmup", "warm-up time per case in seconds (default 0.2)", "0.2"),
    ("min-time", "minimum measured time per case in seconds (default 1.0)", "1.0"),
    ("max-time", "maximum measured time per case in seconds, once --trt-min-iterations are done (default 5.0)",
     "5.0"),
    ("min-iterations", "minimum measured iterations per case (default 10)", "10"),
    ("l2", f"GPU L2 cache before each timed iteration: {', '.join(L2_STATES)} (default warm: back to back, "
     "as a serving loop; cold: flushed first, as triton's do_bench)", "warm"),
    ("calls-per-sample", "CUDA: calls between two timing events, a whole number >= 1 or auto (default "
     "auto: one per call above ~0.8 ms; shorter calls in blocks of up to 64, so an event's ~2 us of GPU "
     "time stays under 0.25 percent of a sample; with --trt-l2 cold always 1)", "auto"),
    ("ort-profile", "off (default) or on: after timing an ONNX Runtime case, profile a separate session for a "
     "few runs and record which provider ran each node and the operators with the most host time "
     "(build.ort_profile)", "off"),
    ("case-timeout", "a case's time bound in seconds, from its first call to its last check (default: "
     "max(60, 10 x --trt-max-time); 0: none); past it the case stops between calls and is recorded as timeout "
     "with the phase it was in", None),
    ("cache-dir", "ONNX exports, engines, timing and calibration caches (default .trt-cache)", ".trt-cache"),
    ("report-html", "write an HTML report here", None),
    ("report-md", "write a markdown report here (also to $GITHUB_STEP_SUMMARY when set)", None),
    ("benchmark-json", "export results in pytest-benchmark's JSON schema", None),
    ("max-drop", "default largest task-metric drop against fp32, e.g. 0.01 (default: 0.02)", "0.02"),
    ("calibration", f"INT8 calibration method: {', '.join(CALIBRATION_METHODS)} (default minmax)", "minmax"),
    ("ab-processes", "A/B (trt_ab): repeat each interleaved measurement in N fresh processes and combine their "
     "ratios, a whole number >= 0 or auto (default auto: 2 on CUDA, where each process picks its own kernels; "
     "0 on the CPU)", "auto"),
    ("ab-instances", "A/B (trt_ab): split each process's rounds over N pairs of freshly built runners of both "
     "sides, a whole number from 1 to 16 or auto (default auto: 4 on CUDA, 8 on the CPU: two builds of one model "
     "can differ by where their memory landed; 1 with a torch-compile side, which compiles again per build)", "auto"),
    ("ab-clock", "A/B on the CPU device: wall (default: perf_counter) or cpu (the process's CPU time, all its "
     "threads: on a host whose cores other jobs share, the time the scheduler gives them is left out; for sides "
     "that run the same threads). CUDA sides are timed by events either way", "wall"),
    ("ab-artifacts", "A/B: where trt_ab(reference=BASELINE) finds the model files a baseline kept: the baseline "
     "file or its <baseline>.artifacts folder (default: beside --trt-baseline)", None),
    ("save-artifacts", f"with --trt-save-baseline: keep each model's files beside it for later A/B runs, "
     f"{', '.join(ARTIFACT_KINDS)} or both (onnx: the fp32 ONNX export; export: a torch.export program), "
     "in <baseline>.artifacts/<sha256>.onnx|.pt2 (default: off)", None),
)


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("trt", "pytest-trt inference benchmarks")
    for name, help_text, _default in OPTIONS:
        ini = "trt_" + name.replace("-", "_")
        # argparse %-formats option help ("5% or 3" would read as a format): escape it there only.
        group.addoption(f"--trt-{name}", dest=ini, default=None, help=help_text.replace("%", "%%"))
        # No ini default: resolve() applies the defaults, so it can tell an option the user set from one left alone.
        parser.addini(ini, help=help_text, default=None)


def _raw(config: pytest.Config, name: str) -> str | None:
    ini = "trt_" + name.replace("-", "_")
    value = config.getoption(ini)
    if value is None:
        value = config.getini(ini)
    if value is None or str(value).strip() == "":
        return None
    return str(value).strip()


def fail(option: str, value: object, expected: str) -> pytest.UsageError:
    return pytest.UsageError(f"--trt-{option}: invalid value {value!r}; expected {expected}")


def parse_list(option: str, text: str, valid: Sequence[str]) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))
    bad = [item for item in items if item not in valid]
    if bad or not items:
        raise fail(option, text, f"a comma-separated list of {', '.join(valid)}")
    return items


def parse_batch_sizes(text: str) -> tuple[int, ...]:
    """Positive batch sizes up to ``schema.MAX_BATCH``: results and baselines refuse larger ones on
    load, and 10^11 items of anything do not fit in memory."""
    from pytest_trt.schema import MAX_BATCH

    expected = f"a comma-separated list of positive integers up to {MAX_BATCH}, e.g. 1,8,64"
    sizes: list[int] = []
    for part in text.split(","):
        try:
            size = int(part.strip())
        except ValueError:
            raise fail("batch-size", text, expected) from None
        if not 0 < size <= MAX_BATCH:
            raise fail("batch-size", text, expected)
        sizes.append(size)
    return tuple(dict.fromkeys(sizes))


def parse_streams(text: str) -> tuple[int, ...]:
    expected = f"a comma-separated list of whole numbers from 1 to {MAX_STREAMS}, e.g. 1,2,4"
    counts: list[int] = []
    for part in text.split(","):
        word = part.strip()
        if not word.isdigit() or not 1 <= int(word) <= MAX_STREAMS:
            raise fail("streams", text, expected)
        counts.append(int(word))
    return tuple(dict.fromkeys(counts))


def input_bytes_limit() -> int:
    """The most bytes one input batch may take: a quarter of this host's memory (the timed and the
    checked inputs, the fp32 reference and the outputs all live beside it)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):  # no sysconf: 16 GiB
        return 16 << 30


class InputTooLarge(ValueError):
    """A batch whose inputs cannot fit: a usage error before the run, a case's error during it."""


def check_input_size(batch_size: int, input_shape: Sequence[int], model: str, limit: int | None = None) -> None:
    """``InputTooLarge`` naming --trt-batch-size when one float32 input batch cannot fit, before numpy
    tries to allocate it (an ArrayMemoryError names neither the option nor the model)."""
    size = 4 * batch_size * math.prod(int(d) for d in input_shape)
    limit = input_bytes_limit() if limit is None else limit
    if size > limit:
        raise InputTooLarge(
            f"--trt-batch-size: invalid value {batch_size}; expected a batch whose inputs fit in memory: "
            f"{batch_size} x {tuple(input_shape)} float32 inputs of {model} take {size / 2**30:.1f} GiB, more "
            f"than the {limit / 2**30:.1f} GiB (a quarter of this host's memory) one batch may take")


def parse_device(text: str) -> str:
    device = text.strip().lower()
    if device in ("auto", "cpu", "cuda"):
        return device
    if device.startswith("cuda:") and device[5:].isdigit():
        return device
    raise fail("device", text, "auto, cpu, cuda or cuda:N")


def parse_threshold(text: str, option: str = "threshold") -> float:
    """'5%' or '5' → 0.05 (a bare number is a percentage, as in the gate and the compare CLI)."""
    from pytest_trt.gate import parse_threshold as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise fail(option, text, f"a percentage such as 5% ({exc})") from None


def _optional_threshold(config: pytest.Config, option: str) -> float | None:
    text = _raw(config, option)
    return None if text is None else parse_threshold(text, option)


def parse_drop(text: str) -> float:
    """A task-metric drop in the metric's own units: 0.01 is one point of top-1 or mIoU."""
    try:
        value = float(text)
    except ValueError:
        raise fail("max-drop", text, "a number such as 0.01 (one point of top-1 or mIoU)") from None
    if not 0 <= value <= 1:
        raise fail("max-drop", text, "a number between 0 and 1, such as 0.01")
    return value


def _seconds(option: str, text: str, zero: bool = False) -> float:
    """A finite number of seconds, above 0 (or from 0 with ``zero``): inf and nan are refused, since
    an endless warm-up or a NaN bound would make the loop run forever or never."""
    expected = f"a finite number of seconds {'>= 0' if zero else 'above 0'}, such as 1.5"
    try:
        value = float(text)
    except ValueError:
        raise fail(option, text, expected) from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise fail(option, text, expected)
    return value


def _whole(option: str, text: str, low: int, high: int) -> int:
    """A whole number in low..high."""
    expected = f"a whole number from {low} to {high}"
    try:
        value = int(text)
    except ValueError:
        raise fail(option, text, expected) from None
    if not low <= value <= high:
        raise fail(option, text, expected)
    return value


def _count(option: str, text: str) -> int:
    """A whole number >= 0 (0 switches the feature off)."""
    return _whole(option, text, 0, MAX_CONFIRM)


def _case_timeout(text: str | None, max_time: float) -> float | None:
    """The case's time bound: the option, else max(60, 10 x max-time); 0 means none."""
    if text is None:
        return max(DEFAULT_CASE_TIMEOUT_S, 10 * max_time)
    return _seconds("case-timeout", text, zero=True) or None


def _writable_file(option: str, text: str | None) -> Path | None:
    """A path we will write at the end of the session: fail now, not after an hour of benchmarks."""
    if text is None:
        return None
    try:
        return paths.output_file(Path(text))
    except paths.PathProblem as exc:
        raise fail(option, text, f"a path in a writable directory ({exc})") from None


def _writable_dir(option: str, text: str) -> Path:
    try:
        return paths.output_dir(Path(text))
    except paths.PathProblem as exc:
        raise fail(option, text, f"a directory this process can write ({exc})") from None


def _check_outputs(settings: Settings) -> None:
    """Each output its own file, none the baseline read: results written over the --trt-baseline
    would replace it with a file of another format at the end of the run. Appending this run to the
    baseline it is judged against (--trt-save-baseline = --trt-baseline) is the nightly pattern."""
    named = [(name, path) for name, path in (
        ("results", settings.results), ("save-baseline", settings.save_baseline),
        ("report-md", settings.report_md), ("report-html", settings.report_html),
        ("benchmark-json", settings.benchmark_json)) if path is not None]
    if settings.baseline is not None:
        named += [("baseline", settings.baseline)]
    for i, (name, path) in enumerate(named):
        for other, other_path in named[i + 1:]:
            if {name, other} != {"save-baseline", "baseline"} and paths.same_file(path, other_path):
                raise fail(other, str(other_path), f"another file than --trt-{name}")


def _readable_file(option: str, text: str | None) -> Path | None:
    if text is None:
        return None
    path = Path(text).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise fail(option, text, "an existing, readable baseline file")
    return path


def resolve(config: pytest.Config) -> Settings:
    """Read every option once; raise UsageError on the first bad one.

    Backend and variant names are checked against the registry, so this runs after the
    ``pytest_trt_backends`` hook has added its backends.
    """
    from pytest_trt.devices import parse_devices

    backend = _raw(config, "backend")
    min_time = _seconds("min-time", _raw(config, "min-time") or "1.0")
    max_time = _seconds("max-time", _raw(config, "max-time") or "5.0")
    if min_time > max_time:
        raise fail("min-time", min_time, f"a value not above --trt-max-time ({max_time})")
    devices_text = _raw(config, "devices")
    try:
        devices = parse_devices(devices_text) if devices_text else None
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    settings = Settings(
        backends=parse_list("backend", backend, backend_registry.names()) if backend else None,
        precisions=parse_list("precision", _raw(config, "precision") or "fp32", PRECISIONS),
        batch_sizes=parse_batch_sizes(_raw(config, "batch-size") or "1,8"),
        streams=parse_streams(_raw(config, "streams") or "1"),
        device=parse_device(_raw(config, "device") or "auto"),
        models=tuple(m.strip() for m in (_raw(config, "model") or "small").split(",") if m.strip()),
        variants=parse_list("variant", _raw(config, "variant") or "eager", backend_registry.variants()),
        devices=devices,
        baseline=_readable_file("baseline", _raw(config, "baseline")),
        save_baseline=_writable_file("save-baseline", _raw(config, "save-baseline")),
        results=_writable_file("results", _raw(config, "results")),
        threshold=parse_threshold(_raw(config, "threshold") or "5%"),
        warmup_s=_seconds("warmup", _raw(config, "warmup") or "0.2", zero=True),
        min_time_s=min_time,
        max_time_s=max_time,
        min_iterations=_whole("min-iterations", _raw(config, "min-iterations") or "10", 1, MAX_MIN_ITERATIONS),
        cache_dir=_writable_dir("cache-dir", _raw(config, "cache-dir") or ".trt-cache"),
        report_html=_writable_file("report-html", _raw(config, "report-html")),
        report_md=_writable_file("report-md", _raw(config, "report-md")),
        benchmark_json=_writable_file("benchmark-json", _raw(config, "benchmark-json")),
        max_drop=parse_drop(_raw(config, "max-drop") or "0.02"),
        calibration=parse_list("calibration", _raw(config, "calibration") or "minmax",
                               CALIBRATION_METHODS)[0],
        confirm=_count("confirm", _raw(config, "confirm") or "2"),
        energy_threshold=_optional_threshold(config, "energy-threshold"),
        l2=parse_list("l2", _raw(config, "l2") or "warm", L2_STATES)[0],
        calls_per_sample=parse_calls_per_sample(_raw(config, "calls-per-sample") or "auto"),
        ort_profile=parse_list("ort-profile", _raw(config, "ort-profile") or "off", ("off", "on"))[0] == "on",
        case_timeout_s=_case_timeout(_raw(config, "case-timeout"), max_time),
        l2_explicit=_raw(config, "l2") is not None,
        calls_per_sample_explicit=_raw(config, "calls-per-sample") is not None,
        **_ab_settings(config),
    )
    _check_outputs(settings)
    return settings


def _ab_settings(config: pytest.Config) -> dict[str, Any]:
    """The A/B options; ``--trt-save-artifacts`` only means something beside ``--trt-save-baseline``."""
    processes = _raw(config, "ab-processes") or "auto"
    artifacts = _raw(config, "ab-artifacts")
    kinds = _raw(config, "save-artifacts")
    saved = () if kinds in (None, "off") else parse_list("save-artifacts", kinds, ARTIFACT_KINDS)
    from pytest_trt import remeasure

    if saved and _raw(config, "save-baseline") is None and not remeasure.in_child():
        raise pytest.UsageError(f"--trt-save-artifacts {kinds}: needs --trt-save-baseline PATH (the files are kept "
                                "beside the baseline)")
    where = None
    if artifacts is not None:
        where = Path(artifacts).expanduser()
        folder = where if where.is_dir() else where.with_name(where.name + ".artifacts")
        if not (folder / "index.json").is_file():
            raise fail("ab-artifacts", artifacts, "a baseline saved with --trt-save-artifacts, or its "
                       "<baseline>.artifacts folder (no index.json there)")
    count = None
    if processes.strip().lower() != "auto":  # each one is a child pytest re-running the item: bounded as confirm
        if not processes.strip().isdigit() or int(processes) > MAX_CONFIRM:
            raise fail("ab-processes", processes, f"auto or a whole number from 0 to {MAX_CONFIRM}")
        count = int(processes)
    from pytest_trt.ab.record import MAX_INSTANCES

    instances = _raw(config, "ab-instances") or "auto"
    pairs = None
    if instances.strip().lower() != "auto":
        if not instances.strip().isdigit() or not 1 <= int(instances) <= MAX_INSTANCES:
            raise fail("ab-instances", instances, f"auto or a whole number from 1 to {MAX_INSTANCES}")
        pairs = int(instances)
    clock = (_raw(config, "ab-clock") or "wall").strip().lower()
    if clock not in AB_CLOCKS:
        raise fail("ab-clock", clock, f"one of {', '.join(AB_CLOCKS)}")
    return {"ab_processes": count, "ab_instances": pairs, "ab_clock": clock,
            "ab_artifacts": where, "save_artifacts": saved}


def parse_calls_per_sample(text: str) -> int:
    """``auto`` (0) or a whole number >= 1."""
    word = text.strip().lower()
    if word == "auto":
        return 0
    if not word.isdigit() or int(word) < 1:
        raise fail("calls-per-sample", text, "auto or a whole number >= 1")
    return int(word)


def defaults(**changes: Any) -> Settings:
    """Settings as the options' defaults give them, for programmatic use and tests."""
    base = Settings(
        backends=None, precisions=("fp32",), batch_sizes=(1, 8), device="auto", models=("small",),
        variants=("eager",), devices=None, baseline=None, save_baseline=None, results=None, threshold=0.05,
        warmup_s=0.2, min_time_s=1.0, max_time_s=5.0, min_iterations=10, cache_dir=Path(".trt-cache"),
        report_html=None, report_md=None, benchmark_json=None, max_drop=0.02, calibration="minmax",
        case_timeout_s=DEFAULT_CASE_TIMEOUT_S,
    )
    return replace(base, **changes)
