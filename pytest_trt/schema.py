"""The one validated schema of baseline and results files: typed parsing with limits.

``jsonfile`` bounds the text (size, depth, integer size, no NaN); this checks the shape and turns
it into records. Every field that reaches the gate is checked for its type and range: samples are
finite, positive and at most ``baseline.MAX_SAMPLES`` per entry; strings are bounded; versions and
environments hold scalars. The first defect is a ``SchemaError`` naming where it is, so a file the
gate cannot use is refused up front instead of crashing a comparison an hour later.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from pytest_trt.case import Case
from pytest_trt.records import (
    JSON,
    Accuracy,
    CaseResult,
    CaseState,
    Flag,
    HostLoad,
    JSONDict,
    Stats,
    Telemetry,
)
from pytest_trt.verdict import Verdict

if TYPE_CHECKING:
    from pytest_trt.baseline import Baseline, Entry, Run, StageEntry

MAX_TEXT = 4096  # ids, names and messages
MAX_CASES = 100_000
MAX_BATCH = 1 << 20
MAX_STAGES = 16  # pipeline stages per case (pytest_trt.pipeline has four)
MAX_AB_PROCESSES = 64  # this process and its fresh ones (--trt-ab-processes is at most 10)
MAX_LATENCY_S = 1e5  # a day per call: beyond it a "latency" is a corrupt or hand-made number
RESULTS_SCHEMA_VERSION = 1
T = TypeVar("T")


class SchemaError(ValueError):
    """A document that breaks the schema; the message names the file and where."""


@dataclass
class ResultsDocument:
    """A results file (``--trt-results``) or the journal a crashed run left."""

    source: str
    environment: JSONDict
    cases: list[CaseResult]
    verdicts: list[Verdict] = field(default_factory=list)
    created: str = ""
    settings: JSONDict = field(default_factory=dict)


def _obj(value: JSON, where: str) -> JSONDict:
    if not isinstance(value, dict):
        raise SchemaError(f"{where}: expected an object, got {_kind(value)}")
    return value


def _list(value: JSON, where: str, limit: int) -> list[JSON]:
    if not isinstance(value, list):
        raise SchemaError(f"{where}: expected a list, got {_kind(value)}")
    if len(value) > limit:
        raise SchemaError(f"{where}: {len(value)} items, more than the {limit} allowed")
    return value


def _text(value: JSON, where: str, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise SchemaError(f"{where}: expected a string, got {_kind(value)}")
    if len(value) > MAX_TEXT:
        raise SchemaError(f"{where}: a string of {len(value)} characters, more than {MAX_TEXT}")
    return value


def _int(value: JSON, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SchemaError(f"{where}: expected a whole number in {low}..{high}, got {_shown(value)}")
    return value


def _kind(value: JSON) -> str:
    return "null" if value is None else {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number")


def _shown(value: JSON) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parsed(where: str, parse: Callable[[], T]) -> T:
    """A record's own from_dict, its type errors reported at ``where``."""
    try:
        return parse()
    except (TypeError, ValueError, KeyError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        raise SchemaError(f"{where}: {detail}") from None


def samples(value: JSON, where: str, limit: int, zero: bool = False) -> list[float]:
    """Latency samples: finite, positive seconds, at most ``limit`` of them. ``zero``: 0 is a reading
    too (a results file keeps what the timer read; events with no GPU work between them read 0)."""
    items = _list(value, where, limit)
    out: list[float] = []
    low = "0" if zero else "above 0"
    for i, item in enumerate(items):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise SchemaError(f"{where}[{i}]: expected a number of seconds, got {_kind(item)}")
        number = float(item)
        if not math.isfinite(number) or not (0 <= number if zero else 0 < number) or number > MAX_LATENCY_S:
            raise SchemaError(f"{where}[{i}]: a latency must be a finite number of seconds {low} to "
                              f"{MAX_LATENCY_S:g}, got {_shown(item)}")
        out.append(number)
    return out


def case(value: JSON, where: str) -> Case:
    data = _obj(value, where)
    model = _text(data.get("model"), f"{where}.model", optional=True)
    for key in ("backend", "precision", "device"):
        _text(data.get(key), f"{where}.{key}")
    _text(data.get("variant", "eager"), f"{where}.variant")
    _int(data.get("batch_size"), f"{where}.batch_size", 1, MAX_BATCH)
    return _parsed(where, lambda: Case.from_dict({**data, "model": model}))


def environment(value: JSON, where: str) -> JSONDict:
    """An environment: ``hardware``, ``software`` and ``state`` objects of scalars."""
    data = _obj(value, where)
    for part in ("hardware", "software", "state"):
        if part not in data and part != "hardware":
            continue
        block = _obj(data.get(part), f"{where}.{part}")
        for key, item in block.items():
            _text(key, f"{where}.{part} key")
            if isinstance(item, dict):
                raise SchemaError(f"{where}.{part}[{key!r}]: expected a value, got an object")  # repr: one line
            if isinstance(item, list) and not all(isinstance(x, (str, int, float)) or x is None for x in item):
                raise SchemaError(f"{where}.{part}[{key!r}]: expected a list of values")
            if isinstance(item, str):
                _text(item, f"{where}.{part}[{key!r}]")
    return data


def stats(value: JSON, where: str, zero: bool = False) -> Stats | None:
    """Statistics of samples; ``zero`` as for ``samples``."""
    if value is None:
        return None
    data = _obj(value, where)
    parsed = _parsed(where, lambda: Stats.from_dict(data))
    in_range = (0 <= parsed.median if zero else 0 < parsed.median) and parsed.median <= MAX_LATENCY_S
    if not all(math.isfinite(v) for v in vars(parsed).values()) or not in_range or parsed.n < 1:
        raise SchemaError(f"{where}: statistics must be finite, with a median {'>= 0' if zero else 'above 0'} "
                          f"and at most {MAX_LATENCY_S:g} s, and n >= 1")
    return parsed


def flags(value: JSON, where: str) -> list[Flag]:
    found = []
    for i, item in enumerate(_list(value if value is not None else [], where, 16)):
        flag = Flag.parse(_text(item, f"{where}[{i}]") or "")
        if flag is not None:
            found.append(flag)
    return found


def state(value: JSON, where: str) -> CaseState:
    text = _text(value if value is not None else "ok", where) or "ok"
    if text not in CaseState._value2member_map_:
        raise SchemaError(f"{where}: unknown case state {text!r}; expected one of "
                          f"{', '.join(s.value for s in CaseState)}")
    return CaseState(text)


def accuracy(value: JSON, where: str) -> Accuracy:
    return _parsed(where, lambda: Accuracy.from_dict(_obj(value if value is not None else {}, where)))


def telemetry(value: JSON, where: str) -> Telemetry | None:
    data = _obj(value if value is not None else {}, where)
    return _parsed(where, lambda: Telemetry.from_dict(data)) if data else None


def host(value: JSON, where: str) -> HostLoad | None:
    return None if value is None else _parsed(where, lambda: HostLoad.from_dict(_obj(value, where)))


def _timing(value: JSON, where: str) -> None:
    """A timing of a results file: a sample of 0 is kept there (two CUDA events with no work between
    them read 0 ns); baselines leave such samples out."""
    timing_data = _obj(value, where)
    samples(timing_data.get("samples"), f"{where}.samples", 1_000_000, zero=True)
    stats(timing_data.get("stats"), f"{where}.stats", zero=True)
    _int(timing_data.get("calls_per_sample", 1), f"{where}.calls_per_sample", 1, 1_000_000)


def _stage_names(value: JSON, where: str) -> JSONDict:
    """A case's (or entry's) pipeline stages by name; absent in files written before stages."""
    data = _obj(value if value is not None else {}, where)
    if len(data) > MAX_STAGES:
        raise SchemaError(f"{where}: {len(data)} stages, more than {MAX_STAGES}")
    for name in data:
        _text(name, f"{where} name")
    return data


def result(value: JSON, where: str) -> CaseResult:
    """One case result of a results file (``CaseResult.to_dict()``), validated."""
    data = _obj(value, where)
    case(data.get("case"), f"{where}.case")
    _text(data.get("nodeid"), f"{where}.nodeid")
    state(data.get("status"), f"{where}.status")
    timing = data.get("timing")
    if timing is not None:
        _timing(timing, f"{where}.timing")
    for name, stage in _stage_names(data.get("stages"), f"{where}.stages").items():
        _timing(stage, f"{where}.stages.{name}")
    concurrency = data.get("concurrency")
    if concurrency is not None:
        stats(_obj(concurrency, f"{where}.concurrency").get("latency"), f"{where}.concurrency.latency", zero=True)
    accuracy(data.get("accuracy"), f"{where}.accuracy")
    if data.get("ab") is not None:
        comparison(data.get("ab"), f"{where}.ab")
    return _parsed(where, lambda: CaseResult.from_dict(data))


def comparison(value: JSON, where: str) -> None:
    """An A/B comparison (``CaseResult.ab``): bounded lists of finite, positive ratios and log ratios."""
    from pytest_trt.ab.record import MAX_INSTANCES, MAX_ROUNDS_KEPT

    data = _obj(value, where)
    _text(data.get("message", ""), f"{where}.message")
    for i, item in enumerate(_list(data.get("processes"), f"{where}.processes", MAX_AB_PROCESSES)):
        process = _obj(item, f"{where}.processes[{i}]")
        for name in ("ratio", "ci_low", "ci_high"):
            _ratio(process.get(name), f"{where}.processes[{i}].{name}")
        for j, x in enumerate(_list(process.get("log_ratios") or [], f"{where}.processes[{i}].log_ratios",
                                    MAX_ROUNDS_KEPT)):
            if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
                raise SchemaError(f"{where}.processes[{i}].log_ratios[{j}]: expected a finite number, got {_shown(x)}")
        for j, x in enumerate(_list(process.get("instance_ratios") or [], f"{where}.processes[{i}].instance_ratios",
                                    MAX_INSTANCES)):
            _ratio(x, f"{where}.processes[{i}].instance_ratios[{j}]")
    if data.get("ratio") is not None:
        _ratio(data.get("ratio"), f"{where}.ratio")


def _ratio(value: JSON, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value > 0):
        raise SchemaError(f"{where}: expected a finite ratio above 0, got {_shown(value)}")


def _verdict(value: JSON, where: str) -> Verdict:
    data = _obj(value, where)
    return _parsed(where, lambda: Verdict.from_dict(data))


def results(value: JSON, source: str) -> ResultsDocument:
    """A results file, validated; ``source`` names it in errors."""
    data = _obj(value, source)
    version = data.get("schema_version")
    if version != RESULTS_SCHEMA_VERSION:
        raise SchemaError(f"{source}: results file has schema_version {_shown(version)}, "
                          f"expected {RESULTS_SCHEMA_VERSION}")
    env = environment(data.get("environment"), f"{source}: environment")
    cases = [result(item, f"{source}: cases[{i}]")
             for i, item in enumerate(_list(data.get("cases"), f"{source}: cases", MAX_CASES))]
    verdicts = [_verdict(item, f"{source}: verdicts[{i}]")
                for i, item in enumerate(_list(data.get("verdicts") or [], f"{source}: verdicts", MAX_CASES))]
    settings = data.get("settings")
    return ResultsDocument(source, env, cases, verdicts, _text(data.get("created", ""), f"{source}: created") or "",
                           settings if isinstance(settings, dict) else {})


def baseline(value: JSON, source: str) -> Baseline:
    """A baseline document, validated; ``source`` names it in errors."""
    from pytest_trt.baseline import MAX_RUNS, SCHEMA_VERSION, Baseline

    data = _obj(value, source)
    version = data.get("schema_version")
    if version is None:
        raise SchemaError(f"{source}: missing 'schema_version' (is this a pytest-trt baseline file?)")
    if isinstance(version, bool) or not isinstance(version, int):
        raise SchemaError(f"{source}: 'schema_version' must be an integer, got {_shown(version)}")
    if version > SCHEMA_VERSION:
        raise SchemaError(f"{source}: schema_version {version} was written by a newer pytest-trt "
                          f"(this one reads version {SCHEMA_VERSION}); upgrade pytest-trt")
    if version != SCHEMA_VERSION:
        raise SchemaError(f"{source}: unsupported schema_version {version} (expected {SCHEMA_VERSION})")
    runs = _list(data.get("runs"), f"{source}: runs", MAX_RUNS)
    return Baseline(source, [_run(raw, f"{source}: runs[{i}]") for i, raw in enumerate(runs)])


def _run(value: JSON, where: str) -> Run:
    from pytest_trt.baseline import Run
    from pytest_trt.records import case_key

    data = _obj(value, where)
    run_id = _text(data.get("run_id"), f"{where}.run_id") or ""
    created = _text(data.get("created"), f"{where}.created") or ""
    env = environment(data.get("environment"), f"{where}.environment")
    raw_cases = _obj(data.get("cases"), f"{where}.cases")
    if len(raw_cases) > MAX_CASES:
        raise SchemaError(f"{where}.cases: {len(raw_cases)} cases, more than {MAX_CASES}")
    shorts = [case_key(k) for k in raw_cases]
    cases = {}
    for stored, short in zip(raw_cases, shorts):
        # a short key two node ids share stays long: the entries must not merge
        key = short if shorts.count(short) == 1 else stored
        cases[key] = _entry(raw_cases[stored], f"{where}.cases[{stored!r}]", stored)
    source = data.get("source")
    return Run(run_id, created, env, cases, source if isinstance(source, str) else "")


def _entry(value: JSON, where: str, stored_key: str) -> Entry:
    from pytest_trt.baseline import MAX_SAMPLES, Entry

    data = _obj(value, where)
    peak, launch, gpu = (_positive(data.get(k), f"{where}.{k}") for k in ("peak_tflops", "launch_s", "gpu_compute_s"))
    return Entry(
        case=case(data.get("case"), f"{where}.case"),
        case_id=_text(data.get("case_id"), f"{where}.case_id") or "",
        status=state(data.get("status"), f"{where}.status"),
        nodeid=_text(data.get("nodeid", stored_key), f"{where}.nodeid") or stored_key,
        samples=samples(data.get("samples"), f"{where}.samples", MAX_SAMPLES),
        stats=stats(data.get("stats"), f"{where}.stats"),
        clock=_text(data.get("clock"), f"{where}.clock", optional=True),
        calls_per_sample=_int(data.get("calls_per_sample") or 1, f"{where}.calls_per_sample", 1, 1_000_000),
        model_hash=_text(data.get("model_hash"), f"{where}.model_hash", optional=True),
        accuracy=accuracy(data.get("accuracy"), f"{where}.accuracy"),
        telemetry=telemetry(data.get("telemetry"), f"{where}.telemetry"),
        host=host(data.get("host"), f"{where}.host"),
        flags=flags(data.get("flags"), f"{where}.flags"),
        peak_tflops=peak, launch_s=launch, gpu_compute_s=gpu,
        stages={name: _stage_entry(stage, f"{where}.stages.{name}")
                for name, stage in _stage_names(data.get("stages"), f"{where}.stages").items()},
    )


def _stage_entry(value: JSON, where: str) -> StageEntry:
    from pytest_trt.baseline import MAX_SAMPLES, StageEntry

    data = _obj(value, where)
    parsed = stats(data.get("stats"), f"{where}.stats")
    if parsed is None:
        raise SchemaError(f"{where}.stats: a stage needs its statistics")
    return StageEntry(_text(data.get("clock"), f"{where}.clock") or "",
                      samples(data.get("samples"), f"{where}.samples", MAX_SAMPLES), parsed)


def _positive(value: JSON, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 or not math.isfinite(value):
        raise SchemaError(f"{where}: expected a positive number, got {_shown(value)}")
    return float(value)
