"""Option parsing that does not need a pytest run (the acceptance tests cover the UsageErrors)."""

from __future__ import annotations

import pytest

from pytest_trt.settings import parse_calls_per_sample


@pytest.mark.parametrize(("text", "value"), [("auto", 0), ("AUTO", 0), ("1", 1), (" 16 ", 16)])
def test_calls_per_sample_is_auto_or_a_whole_number(text: str, value: int) -> None:
    assert parse_calls_per_sample(text) == value


@pytest.mark.parametrize("text", ["0", "-2", "1.5", "many", ""])
def test_other_calls_per_sample_values_are_usage_errors(text: str) -> None:
    with pytest.raises(pytest.UsageError, match="--trt-calls-per-sample"):
        parse_calls_per_sample(text)


def test_the_case_timeout_defaults_to_ten_max_times_and_at_least_a_minute() -> None:
    from pytest_trt.settings import _case_timeout

    assert _case_timeout(None, 2.0) == 60.0 and _case_timeout(None, 30.0) == 300.0
    assert _case_timeout("0", 5.0) is None  # none
    assert _case_timeout("7.5", 5.0) == 7.5


def test_an_input_batch_is_checked_against_a_byte_limit() -> None:
    from pytest_trt.settings import InputTooLarge, check_input_size

    check_input_size(1024, (3, 32, 32), "m", limit=1024 * 3 * 32 * 32 * 4)  # exactly at the limit
    with pytest.raises(InputTooLarge, match=r"--trt-batch-size: invalid value 1025; .* 1025 x \(3, 32, 32\)"):
        check_input_size(1025, (3, 32, 32), "m", limit=1024 * 3 * 32 * 32 * 4)
