"""Property-based fuzzing of what reads files: the baseline and results loaders, the gate on whatever
they accept, and ``pytest-trt compare``.

Documents start from the shapes pytest-trt writes (baselines and results with any number of runs,
entries of 0, 1 or many samples, every case state) and are then mutated at random places with
arbitrary JSON: wrong types, huge or negative numbers, deep nesting, odd text. The only exceptions a
reader may raise are the documented ``BaselineError`` / ``SchemaError`` / ``FileFormatError``; what
it accepts, the gate must judge without raising, and ``compare`` must answer with an exit status.
Each example runs under an alarm, so a hang fails the test instead of stalling CI.
"""

from __future__ import annotations

import copy
import json
import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_trt import baseline, cli, gate, jsonfile, schema
from pytest_trt.baseline import BaselineError
from pytest_trt.records import CaseResult, CaseState

# Documents per run: 2 per example of the baseline and compare tests, 1 of the results test; 1150.
EXAMPLES = {"baseline": 250, "results": 250, "compare": 200}
HANG_S = 60  # one document takes milliseconds; only a loop that never ends reaches this
KEYS = ["test_a.py::test_x[torch-fp32-bs1]", "test_a.py::test_x[onnxruntime-fp32-bs8]", "t.py::y"]
TEXT = st.sampled_from(["", "x", "m-1", "../../etc", "a\nb", "<script>", "\x1b[2J", "é", "#" * 5])


def fuzz(examples: int) -> settings:
    """No deadline (a loaded host must not fail it) and no example database (CI has no memory)."""
    return settings(max_examples=examples, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


class Hang(Exception):
    pass


@contextmanager
def hang_guard() -> Iterator[None]:
    def alarm(signum: int, frame: Any) -> None:
        raise Hang(f"one document took more than {HANG_S} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# -- documents -----------------------------------------------------------------------------------
# Strategies are built once, at import: building one inside a draw costs more than the draw itself,
# and generation is where a fuzzer's time goes. Entries come from a few templates in a few draws; the
# mutations bring the wrong values.

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**40), 10**40),
    st.sampled_from([0, -1, 1, 1e-320, 1e308, 10**31]),
)
ANY_JSON = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, TEXT), lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)), max_leaves=6)
CASES = [{"model": model, "backend": backend, "precision": precision, "batch_size": batch, "device": device,
          "variant": "eager"}
         for model, backend, precision, batch, device in [
             (None, "torch", "fp32", 1, "cpu"), ("m-1", "onnxruntime", "int8", 8, "cpu"),
             ("../../etc", "tensorrt", "fp16", 256, "cuda:0"), ("a\nb<script>\x1b[2J", "x", "fp32", 1, "cuda:0")]]
AGREEMENT = {"max_abs": 0.01, "rel_err": 0.01, "cosine": 0.999, "top1_agreement": 1.0, "nonfinite": 0,
             "worst_sample_rel_err": 0.01, "passed": True, "reason": "", "limits": {}}
ACCURACY = [{}, {"agreement": AGREEMENT}, {"agreement": {**AGREEMENT, "top1_agreement": None, "cosine": 0.5}},
            {"metric": "top1", "value": 0.98, "reference": 0.99, "max_drop": 0.02, "passed": True},
            {"metric": "top1", "value": 0.5, "reference": 0.99, "max_drop": 0.02, "passed": False}]
TELEMETRY = [{}, {"joules_per_item": 0.5}, {"joules_per_item": 0.0}, {"throttle_reasons": ["hw_slowdown"]}]
HOSTS = [None, {"wall_s": 1.0, "cpu_s": 1.0, "run_s": None, "wait_s": None, "loadavg_1m": None, "cpu_count": 2,
                "others_cpu_s": 0.0},
         {"wall_s": 1.0, "cpu_s": 1.0, "run_s": 0.5, "wait_s": 0.5, "loadavg_1m": 9.0, "cpu_count": 2,
          "others_cpu_s": 1.9}]
ENTRY_CHOICES = st.tuples(
    st.sampled_from(CASES), st.sampled_from([s.value for s in CaseState]), st.sampled_from([None, "abc", "def"]),
    st.sampled_from(["perf_counter", "cuda-event", "cuda-event-cold-l2", None]), st.sampled_from([1, 4, 64]),
    st.sampled_from(ACCURACY), st.sampled_from(TELEMETRY), st.sampled_from(HOSTS),
    st.sampled_from([[], ["NOISY"], ["UNSTABLE", "?"]]), st.sampled_from([None, 0.5, 100.0]),
)
# 0, 1 or many latencies around a drawn median, and how the entry's statistics relate to them
# (a spread of 20 in log space puts runs of one case 10^17 apart: the gate's exp must not overflow)
SAMPLE_CHOICES = st.tuples(st.sampled_from([0, 1, 2, 3, 10, 50]),
                           st.one_of(st.floats(min_value=1e-9, max_value=10.0),
                                     st.sampled_from([5e-324, 1e-300, 1e-12, 1e4])),
                           st.sampled_from([0.0, 0.001, 0.05, 0.5, 20.0]),
                           st.sampled_from(["computed", "computed", None]))
ENVIRONMENTS = st.tuples(st.sampled_from([None, "H100", "A100"]), st.sampled_from(["X", "Y"]),
                         st.sampled_from([{}, {"torch": "1.0"}, {"torch": "2.0", "onnxruntime": None}]),
                         st.sampled_from([{}, {"cpu_probe_s": 0.1}, {"cpu_probe_s": 0.2}]))
RUN_KEYS = st.lists(st.lists(st.sampled_from(KEYS), unique=True, max_size=2), max_size=3)
RESULT_KEYS = st.lists(st.sampled_from(KEYS), unique=True, max_size=3)
MUTATIONS = st.integers(0, 3)
PLACE = st.integers(0, 2**16)
REMOVE = st.booleans()


def _stats(samples: list[float], kind: str | None) -> Any:
    if kind is None or not samples:
        return None
    ordered = sorted(samples)
    median = ordered[len(ordered) // 2]
    data = dict.fromkeys(["min", "max", "mean", "median", "p90", "p95", "p99"], median)
    data.update(n=len(samples), stddev=0.0, cv=0.0, throughput=1.0,
                median_ci_low=ordered[0], median_ci_high=ordered[-1])
    return data


@st.composite
def entry_dict(draw: st.DrawFn, key: str) -> dict[str, Any]:
    """An entry as pytest-trt writes one (copies of the templates: a mutation must not change them)."""
    case, status, model_hash, clock, calls, accuracy, telemetry, host, flags, peak = draw(ENTRY_CHOICES)
    n, median, step, stats = draw(SAMPLE_CHOICES)
    samples = [min(max(median * math.exp(step * ((i * 7) % 5 - 2)), 5e-324), schema.MAX_LATENCY_S)
               for i in range(n)]
    return copy.deepcopy({
        "case": case, "case_id": "id", "nodeid": key, "status": status, "model_hash": model_hash,
        "clock": clock, "calls_per_sample": calls, "samples": samples, "stats": _stats(samples, stats),
        "accuracy": accuracy, "telemetry": telemetry, "host": host, "flags": flags, "peak_tflops": peak,
    })


@st.composite
def environment(draw: st.DrawFn) -> dict[str, Any]:
    gpu, cpu, software, state = draw(ENVIRONMENTS)
    return copy.deepcopy({"hardware": {"kind": "cuda" if gpu else "cpu", "cpu_model": cpu, "gpu_name": gpu,
                                       "gpu_count": 1 if gpu else 0},
                          "software": software, "state": state})


@st.composite
def baseline_doc(draw: st.DrawFn) -> dict[str, Any]:
    runs = [{"run_id": f"r{i}", "created": f"2026-01-0{i + 1}T00:00:00+00:00", "environment": draw(environment()),
             "cases": {key: draw(entry_dict(key)) for key in keys}} for i, keys in enumerate(draw(RUN_KEYS))]
    return {"schema_version": 1, "tool": "pytest-trt", "runs": runs}


@st.composite
def results_doc(draw: st.DrawFn) -> dict[str, Any]:
    cases = []
    for key in draw(RESULT_KEYS):
        entry = draw(entry_dict(key))
        timing = None
        if entry["samples"] and isinstance(entry["stats"], dict) and "p99" in entry["stats"]:
            timing = {"clock": entry["clock"] or "perf_counter", "samples": entry["samples"],
                      "stats": entry["stats"], "calls_per_sample": entry["calls_per_sample"]}
        cases.append({"case": entry["case"], "nodeid": key, "key": key, "model_name": "m",
                      "status": entry["status"], "message": "a\n# heading <script>", "timing": timing,
                      "accuracy": entry["accuracy"], "telemetry": entry["telemetry"], "host": entry["host"],
                      "flags": entry["flags"]})
    return {"schema_version": 1, "tool": "pytest-trt", "environment": draw(environment()), "cases": cases}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*prefix, i))


@st.composite
def mutated(draw: st.DrawFn, documents: st.SearchStrategy[dict[str, Any]]) -> Any:
    """A document with up to three places replaced by arbitrary JSON or removed."""
    doc: Any = draw(documents)
    for _ in range(draw(MUTATIONS)):
        paths = list(_paths(doc))
        path = paths[draw(PLACE) % len(paths)]
        if not path:
            doc = draw(ANY_JSON)
            continue
        parent: Any = doc
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(REMOVE):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(ANY_JSON)
    return doc


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc, allow_nan=True))  # NaN/Infinity too: the loader must refuse them
    return path


# -- properties ----------------------------------------------------------------------------------


def _judge_all(loaded: baseline.Baseline, results: list[CaseResult], env: dict[str, Any]) -> None:
    """Every result against the baseline, with and without re-measurements: a verdict, never a raise."""
    policy = gate.Policy(threshold=0.05, confirm=1, energy_threshold=0.1, max_accuracy_drop=0.01)
    for result in results:
        first = gate.Measurement(result, env)
        verdict = gate.judge(first, loaded, policy)
        assert verdict.message and verdict.message.count("\n") == 0
        gate.judge(first, loaded, policy, [first])
    gate.missing(loaded, [r.key for r in results])


@fuzz(EXAMPLES["baseline"])
@given(doc=mutated(baseline_doc()), other=baseline_doc(), env=environment())
def test_baseline_loader_and_gate_never_crash(tmp_path: Path, doc: Any, other: dict[str, Any],
                                              env: dict[str, Any]) -> None:
    path = _write(tmp_path / "b.json", doc)
    with hang_guard():
        try:
            loaded = baseline.load(path)
        except BaselineError as exc:
            assert str(path) in str(exc) and "\n" not in str(exc)
            return
        # tonight's results: the entries of another generated baseline, and of this one
        tonight = baseline.from_dict(other, "other")
        results = [e.to_result(k) for run in tonight.runs for k, e in run.cases.items()]
        results += [e.to_result(k) for run in loaded.runs for k, e in run.cases.items()]
        _judge_all(loaded, results, env)


@fuzz(EXAMPLES["results"])
@given(doc=mutated(results_doc()))
def test_results_loader_never_crashes(tmp_path: Path, doc: Any) -> None:
    path = _write(tmp_path / "r.json", doc)
    with hang_guard():
        try:
            document = schema.results(jsonfile.read(path, "results file"), str(path))
        except (schema.SchemaError, jsonfile.FileFormatError) as exc:
            assert str(path) in str(exc)
            return
        run = baseline.runs_from_results(document.cases, document.environment, path.name)
        _judge_all(baseline.Baseline(str(path), [run]), document.cases, document.environment)


@fuzz(EXAMPLES["compare"])
@given(first=st.one_of(mutated(baseline_doc()), mutated(results_doc())),
       second=st.one_of(mutated(baseline_doc()), mutated(results_doc())))
def test_compare_answers_with_an_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str], first: Any,
                                             second: Any) -> None:
    a, b = _write(tmp_path / "a.json", first), _write(tmp_path / "b.json", second)
    with hang_guard():
        for argv in (["compare", str(a), str(b)], ["compare", str(b), str(a), "--md", "--fail-on-regression"],
                     ["report", str(a)], ["baseline", "show", str(a)], ["baseline", "list", str(b)]):
            code = cli.main(argv)
            out, err = capsys.readouterr()
            assert code in (0, 1, 2), argv
            assert "Traceback" not in out + err
            if code == 2:
                assert err.count("\n") == 1, err  # one line naming the file


@fuzz(100)
@given(doc=baseline_doc(), tonight=results_doc())
def test_what_pytest_trt_writes_loads_and_is_judged(doc: dict[str, Any], tonight: dict[str, Any]) -> None:
    """Unmutated documents are what pytest-trt writes (entries of no, one or many samples, every
    state): each must load, and the gate must judge each of its entries. This also keeps the fuzzer
    honest: its documents reach the gate, not only the loader's first check."""
    loaded = baseline.from_dict(json.loads(json.dumps(doc)), "written")
    document = schema.results(json.loads(json.dumps(tonight)), "tonight")
    results = document.cases + [e.to_result(k) for run in loaded.runs for k, e in run.cases.items()]
    _judge_all(loaded, results, document.environment)
