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


# -- output paths, checked before any work ---------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    import os

    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    ("option", "where", "reason"),
    [
        ("--trt-results", "/proc/self/results.json", "it is under /proc"),
        ("--trt-report-md", "/sys/kernel/report.md", "it is under /sys"),
        ("--trt-benchmark-json", "/dev/null", "it is under /dev"),
        ("--trt-report-html", "/dev/full", "it is under /dev"),
        ("--trt-save-baseline", "{tmp}", "it is a directory"),
        ("--trt-results", "{fifo}", "it is a FIFO, not a regular file"),
        ("--trt-results", "{tmp}/a-file/results.json", "a-file is not a directory"),
        ("--trt-cache-dir", "{tmp}/a-file", "it is not a regular file, not a directory"),
        ("--trt-cache-dir", "/proc/cache", "it is under /proc"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_refused_up_front(pytester: pytest.Pytester, tmp_path: Path,
                                                                  fifo: Path, option: str, where: str,
                                                                  reason: str) -> None:
    from pytest_trt import settings

    (tmp_path / "a-file").write_text("not a directory")
    path = where.format(tmp=tmp_path, fifo=fifo)
    with pytest.raises(pytest.UsageError) as info:
        settings.resolve(pytester.parseconfig(option, path))
    assert str(info.value).startswith(f"{option}: invalid value {path!r}; expected a ")
    assert reason in str(info.value)


def test_a_directory_that_refuses_new_files_is_refused(pytester: pytest.Pytester, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Permission bits do not tell (root passes os.access; a read-only mount passes some checks), so
    a temp file is made there: here it fails as on a read-only file system."""
    import errno
    import tempfile

    from pytest_trt import settings

    def read_only(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EROFS, "Read-only file system")

    config = pytester.parseconfig("--trt-results", str(tmp_path / "r.json"))
    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(pytest.UsageError, match="--trt-results: .*cannot create a file in .*Read-only file system"):
        settings.resolve(config)


def test_a_probe_leaves_nothing_behind(tmp_path: Path) -> None:
    from pytest_trt import paths

    paths.output_file(tmp_path / "sub" / "r.json")
    paths.output_dir(tmp_path / "cache")
    assert list(tmp_path.iterdir()) == []  # neither the probe nor the missing directories


def test_results_over_the_baseline_would_replace_it_and_are_refused(pytester: pytest.Pytester,
                                                                   tmp_path: Path) -> None:
    from pytest_trt import settings

    base = tmp_path / "b.json"
    base.write_text("{}")
    with pytest.raises(pytest.UsageError, match="--trt-baseline: .*expected another file than --trt-results"):
        settings.resolve(pytester.parseconfig("--trt-results", str(base), "--trt-baseline", str(base)))
    same = settings.resolve(pytester.parseconfig("--trt-save-baseline", str(base), "--trt-baseline", str(base)))
    assert same.save_baseline == same.baseline  # appending to the baseline judged against: the nightly way


def test_a_corrupt_baseline_to_append_to_is_a_usage_error_before_the_run(user_project: pytest.Pytester,
                                                                       tmp_path: Path) -> None:
    base = tmp_path / "b.json"
    base.write_text('{"schema_version": 1, "runs": [')
    result = user_project.runpytest(*ONE_CASE, "--trt-save-baseline", str(base))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--trt-save-baseline: {base}: baseline file is not valid JSON*never replaced*"])
    assert base.read_text() == '{"schema_version": 1, "runs": ['
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


# -- failures at the end of a run ------------------------------------------------------------------

# A full disk for one path: every atomic write of a file named full.json fails as ENOSPC would.
FULL_DISK = '''
import errno
import pytest_trt.atomic

_write_with = pytest_trt.atomic.write_with

def _full(path, write):
    if str(path).endswith("full.json"):
        raise OSError(errno.ENOSPC, "No space left on device")
    return _write_with(path, write)

pytest_trt.atomic.write_with = _full
'''


def test_a_full_disk_at_the_end_costs_only_its_own_file(user_project: pytest.Pytester, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The step summary on /dev/full and the results on a full disk: one line each, exit status 4,
    the markdown report and the baseline still written, the run's pass/fail line printed."""
    from tests.conftest import USER_CONFTEST

    user_project.makeconftest(FULL_DISK + USER_CONFTEST)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/dev/full")
    md, base, results = tmp_path / "r.md", tmp_path / "b.json", tmp_path / "full.json"
    result = user_project.runpytest(*ONE_CASE, "--trt-report-md", str(md), "--trt-save-baseline", str(base),
                                    "--trt-results", str(results))
    assert result.ret == 4
    result.stdout.fnmatch_lines([
        f"pytest-trt: error: could not write the results {results}: No space left on device",
        "pytest-trt: error: could not write the GitHub step summary /dev/full: No space left on device",
        "*1 passed*",
    ])
    assert md.read_text().startswith("# pytest-trt results") and json.loads(base.read_text())["runs"]
    assert not results.exists()
    assert (tmp_path / "full.json.partial.jsonl").exists()  # the journal stays: the results did not land
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_baseline_corrupted_during_the_run_is_left_alone_and_the_rest_written(pytester: pytest.Pytester,
                                                                                tmp_path: Path) -> None:
    from tests.conftest import USER_CONFTEST

    base, results = tmp_path / "b.json", tmp_path / "r.json"
    pytester.makeini("[pytest]\n")
    pytester.makeconftest(USER_CONFTEST)
    pytester.makepyfile(test_bench=f'''
def test_latency(trt_bench, trt_runner):
    trt_bench(trt_runner)
    open({str(base)!r}, "w").write('{{"schema_version": 1, "runs": [')  # another process broke it meanwhile
''')
    base.write_text(json.dumps({"schema_version": 1, "tool": "pytest-trt", "runs": []}))
    result = pytester.runpytest(*ONE_CASE, "--trt-save-baseline", str(base), "--trt-results", str(results))
    assert result.ret == 4
    result.stdout.fnmatch_lines([f"pytest-trt: error: could not write the baseline {base}: {base}: baseline file is "
                                 "not valid JSON*", "*1 passed*"])
    assert base.read_text() == '{"schema_version": 1, "runs": ['  # not replaced
    assert json.loads(results.read_text())["cases"][0]["status"] == "ok"


def test_a_journal_that_cannot_be_written_is_one_line_and_the_run_goes_on(user_project: pytest.Pytester,
                                                                          tmp_path: Path) -> None:
    from tests.conftest import USER_CONFTEST

    # every journal write lands on /dev/full, which fails each flush as a full disk does
    user_project.makeconftest("import pathlib, pytest_trt.controller\n"
                              "pytest_trt.controller._fresh_journal = lambda path: pathlib.Path('/dev/full')\n"
                              + USER_CONFTEST)
    results = tmp_path / "r.json"
    result = user_project.runpytest(*FAST, "--trt-backend", "torch", "--trt-batch-size", "1,2",
                                    "--trt-results", str(results))
    assert result.ret == 4
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([f"pytest-trt: error: could not write journal {results}.partial.jsonl*"])
    assert len(json.loads(results.read_text())["cases"]) == 2
    assert "INTERNALERROR" not in result.stdout.str()


BROKEN_END = '''
import pytest_trt.gate
import pytest_trt.report


def _broken(*args, **kwargs):
    raise RuntimeError("a bug at the end of the run")


pytest_trt.gate.missing = _broken
pytest_trt.report.terminal_lines = _broken
'''


def test_an_error_in_judging_or_the_table_at_the_end_is_one_line_and_the_rest_written(
        user_project: pytest.Pytester, tmp_path: Path) -> None:
    from tests.conftest import USER_CONFTEST

    base, results, md = tmp_path / "b.json", tmp_path / "r.json", tmp_path / "r.md"
    first = user_project.runpytest(*ONE_CASE, "--trt-save-baseline", str(base))
    assert first.ret == 0
    user_project.makeconftest(BROKEN_END + USER_CONFTEST)
    result = user_project.runpytest(*ONE_CASE, "--trt-baseline", str(base), "--trt-results", str(results),
                                    "--trt-report-md", str(md))
    assert result.ret == 4
    result.stdout.fnmatch_lines([
        "pytest-trt: error: the baseline's cases not run could not be listed: RuntimeError: a bug at the end*",
        "pytest-trt: error: the results table could not be shown: RuntimeError: a bug at the end of the run",
        "*1 passed*",
    ])
    assert json.loads(results.read_text())["cases"] and md.read_text().startswith("# pytest-trt results")
    assert "INTERNALERROR" not in result.stdout.str() and "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(("option", "where", "reason"), [
    ("--trt-results", "/proc/self/r.json", "it is under /proc"),
    ("--trt-report-md", "{fifo}", "it is a FIFO, not a regular file"),
    ("--trt-cache-dir", "/sys/cache", "it is under /sys"),
])
def test_an_unusable_output_path_stops_the_run_before_any_case(user_project: pytest.Pytester, fifo: Path,
                                                                option: str, where: str, reason: str) -> None:
    path = where.format(fifo=fifo)
    result = user_project.runpytest(*ONE_CASE, option, path)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option}: invalid value {path!r}; expected a *{reason}*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert "passed" not in result.stdout.str() and not (user_project.path / ".trt-cache").exists()
