"""Bad input and bad luck as users meet them: option values, the case time bound, output paths and
failures at the end of a run. Each is one line naming the option or file, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAST

pytest.importorskip("torch")

# A model of a set speed on a virtual clock: every forward advances the timing engine's clock by
# DELAY_S (the case's time bound reads the same clock), so these tests decide alike on any host.
# Each forward is counted in calls.txt: what ran after the bound had passed would show there.
VIRTUAL = '''
import os, types
from pathlib import Path
import numpy as np
import pytest, torch
import pytest_trt.sampling
from pytest_trt import ModelSpec
from pytest_trt.data.folder import from_arrays

_now = {"ns": 0}
DELAY_S = float(os.environ.get("DELAY_S", "1.0"))

def _clock():
    _now["ns"] += 1_000
    return _now["ns"]

pytest_trt.sampling.time = types.SimpleNamespace(perf_counter_ns=_clock)
CALLS = Path(__file__).with_name("calls.txt")

class Slow(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(16, 4)

    def forward(self, x):
        _now["ns"] += int(DELAY_S * 1e9)
        with CALLS.open("a") as f:
            f.write("call\\n")
        return self.lin(x.flatten(1))

def _data():
    rng = np.random.default_rng(0)
    return from_arrays(rng.standard_normal((120, 1, 4, 4)).astype(np.float32), rng.integers(0, 4, 120),
                       "classification", "virtual")

@pytest.fixture
def trt_model():
    return ModelSpec(name="slow", build=Slow, input_shape=(1, 4, 4), task="classification", trained=True,
                     dataset=_data if os.environ.get("WITH_DATA") else None)
'''
TEST = "def test_latency(trt_bench, trt_runner):\n    trt_bench(trt_runner)\n"
ONE_CASE = [*FAST, "--trt-backend", "torch", "--trt-batch-size", "1"]


@pytest.fixture
def virtual(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(VIRTUAL)
    pytester.makepyfile(test_bench=TEST)
    return pytester


def _calls(pytester: pytest.Pytester) -> int:
    path = pytester.path / "calls.txt"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _cases(path: Path) -> list[dict[str, object]]:
    cases = json.loads(path.read_text())["cases"]
    assert isinstance(cases, list)
    return cases


# -- the case's time bound -------------------------------------------------------------------------


def test_a_case_past_its_time_bound_is_a_timeout_with_its_phase(virtual: pytest.Pytester, tmp_path: Path) -> None:
    """1 s per call under --trt-max-time 2 and 10 minimum iterations: the timing alone took 11 s.
    With a 5 s bound the loop stops between calls, the case is `timeout`, and nothing runs after."""
    out = tmp_path / "r.json"
    result = virtual.runpytest(*ONE_CASE, "--trt-max-time", "2", "--trt-min-time", "1", "--trt-min-iterations",
                               "10", "--trt-warmup", "0.2", "--trt-case-timeout", "5", "--trt-results", str(out))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*ran past its time bound of 5 s (--trt-case-timeout) in phase measure "
                                 "(timed loop, 2 samples) after 5.0 s*"])
    (case,) = _cases(out)
    assert case["status"] == "timeout" and "phase measure" in str(case["message"])
    # first run, the check's fp32 reference, one warm-up call, two timed calls: 5 s, then nothing
    assert _calls(virtual) == 5
    assert "Traceback" not in result.stdout.str()


def test_the_task_metric_stops_at_the_bound_between_batches(virtual: pytest.Pytester, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WITH_DATA", "1")
    out = tmp_path / "r.json"
    result = virtual.runpytest(*ONE_CASE, "--trt-max-time", "1", "--trt-min-time", "0.5", "--trt-min-iterations",
                               "1", "--trt-warmup", "0", "--trt-case-timeout", "12", "--trt-results", str(out))
    result.assert_outcomes(failed=1)
    (case,) = _cases(out)
    assert case["status"] == "timeout" and "in phase task_metric after 12.0 s" in str(case["message"])
    assert _calls(virtual) == 12  # 120 test items at batch 1 would have been 120 more calls


def test_without_a_bound_the_same_case_runs_to_its_minimum_count(virtual: pytest.Pytester, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    result = virtual.runpytest(*ONE_CASE, "--trt-max-time", "2", "--trt-min-time", "1", "--trt-min-iterations",
                               "10", "--trt-warmup", "0.2", "--trt-case-timeout", "0", "--trt-results", str(out))
    result.assert_outcomes(passed=1)
    (case,) = _cases(out)
    assert case["status"] == "ok" and case["timing"]["stats"]["n"] == 10  # type: ignore[index]


# -- option values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trt-max-time", "inf"], "--trt-max-time: invalid value 'inf'; expected a finite number of seconds*"),
        (["--trt-max-time", "1e400"], "--trt-max-time: invalid value '1e400'*"),
        (["--trt-max-time", "nan"], "--trt-max-time: invalid value 'nan'; expected a finite number*"),
        (["--trt-min-time", "inf"], "--trt-min-time: invalid value 'inf'; expected a finite number*"),
        (["--trt-min-time=-1"], "--trt-min-time: invalid value '-1'; expected a finite number of seconds above 0*"),
        (["--trt-warmup", "nan"], "--trt-warmup: invalid value 'nan'; expected a finite number of seconds >= 0*"),
        (["--trt-warmup", "infinity"], "--trt-warmup: invalid value 'infinity'*"),
        (["--trt-case-timeout", "inf"], "--trt-case-timeout: invalid value 'inf'*"),
        (["--trt-case-timeout=-5"], "--trt-case-timeout: invalid value '-5'*"),
        (["--trt-batch-size", str(10**11)], "--trt-batch-size: invalid value '100000000000'; expected *up to 1048576*"),
        (["--trt-energy-threshold", "inf"], "--trt-energy-threshold: invalid value 'inf'; expected a percentage*"),
        (["--trt-energy-threshold=-3%"], "--trt-energy-threshold: invalid value '-3%'*"),
        (["--trt-energy-threshold", "many"], "--trt-energy-threshold: invalid value 'many'*"),
        (["--trt-confirm", "1e9"], "--trt-confirm: invalid value '1e9'; expected a whole number from 0 to 10"),
        (["--trt-confirm", "1000000"], "--trt-confirm: invalid value '1000000'; expected a whole number from 0 to 10"),
        (["--trt-min-iterations", "0"], "--trt-min-iterations: invalid value '0'; expected a whole number from 1*"),
        (["--trt-min-iterations", "2000000"], "--trt-min-iterations: invalid value '2000000'*"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_option(pytester: pytest.Pytester, args: list[str],
                                                      message: str) -> None:
    """Parsed as a run parses them (the acceptance tests run a few end to end: exit status 4, one line)."""
    from fnmatch import fnmatch

    from pytest_trt import settings

    config = pytester.parseconfig(*args)
    with pytest.raises(pytest.UsageError) as info:
        settings.resolve(config)
    assert fnmatch(str(info.value), message), str(info.value)


def test_a_bad_value_stops_the_run_with_exit_status_4(virtual: pytest.Pytester) -> None:
    result = virtual.runpytest("--trt-max-time", "inf")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-max-time: invalid value 'inf'; expected a finite number of seconds*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_an_empty_ini_value_means_the_default(virtual: pytest.Pytester, tmp_path: Path) -> None:
    virtual.makeini("[pytest]\ntrt_max_drop =\ntrt_case_timeout =\ntrt_warmup =\n")
    out = tmp_path / "r.json"
    result = virtual.runpytest(*ONE_CASE, "--trt-results", str(out), "--trt-min-iterations", "1")
    result.assert_outcomes(passed=1)
    settings = json.loads(out.read_text())["settings"]
    assert settings["max_drop"] == 0.02 and settings["warmup_s"] == 0.01  # FAST gives the warm-up
    assert settings["case_timeout_s"] == 60.0  # max(60, 10 x the 0.3 s max-time)


# The runs below see a host whose input batches may take 1 GiB, whatever this host has.
ONE_GIB = "import pytest_trt.settings\npytest_trt.settings.input_bytes_limit = lambda: 1 << 30\n"


def test_a_zoo_batch_that_cannot_fit_in_memory_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(ONE_GIB)
    pytester.makepyfile(test_zoo='''
import pytest

@pytest.mark.trt(models="zoo")
def test_latency(trt_bench, trt_runner):
    trt_bench(trt_runner)
''')
    result = pytester.runpytest("--trt-model", "shapes-unet", "--trt-batch-size", "1,1048576",
                                "--trt-backend", "torch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--trt-batch-size: invalid value 1048576; expected a batch whose inputs fit in "
                                 "memory: 1048576 x (*) float32 inputs of shapes-unet take * GiB, more than the "
                                 "1.0 GiB*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_user_models_batch_that_cannot_fit_is_that_cases_error(user_project: pytest.Pytester,
                                                                 tmp_path: Path) -> None:
    """A user's model shows its input shape only when its case runs: that case errors, naming the
    option, instead of numpy's ArrayMemoryError; the other batch sizes run."""
    from tests.conftest import USER_CONFTEST

    user_project.makeconftest(ONE_GIB + USER_CONFTEST)
    out = tmp_path / "r.json"
    result = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1,1048576",
                                    "--trt-results", str(out))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*torch-fp32-bs1048576: --trt-batch-size: invalid value 1048576; expected a "
                                 "batch whose inputs fit in memory*"])
    assert "ArrayMemoryError" not in result.stdout.str() and "Traceback" not in result.stdout.str()
    assert {c["status"] for c in _cases(out)} == {"ok", "error"}
