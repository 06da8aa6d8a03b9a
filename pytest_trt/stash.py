"""Keys shared by the plugin hooks and fixtures."""

from __future__ import annotations

import pytest

from pytest_trt.context import Context
from pytest_trt.records import CaseResult

CONTEXT = pytest.StashKey[Context]()
RESULT = pytest.StashKey[CaseResult]()  # a test item's case result, set by trt_bench or a setup failure
RESULT_ATTRIBUTE = "pytest_trt_result"  # the report attribute carrying it to the controller (xdist too)
SUMMARY_PROPERTY = "pytest_trt"  # the JUnit property: a compact JSON summary of the case
CASE_PROPERTY = "pytest_trt_case"  # the case a test is about to time, sent with its setup report
HOOK_BACKENDS = pytest.StashKey[list[str]]()  # names the pytest_trt_backends hook registered this session
