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
