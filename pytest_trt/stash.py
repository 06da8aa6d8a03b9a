"""Keys shared by the plugin hooks and fixtures."""

from __future__ import annotations

import pytest

from pytest_trt.context import Context

CONTEXT = pytest.StashKey[Context]()
RESULT_PROPERTY = "pytest_trt_result"  # user_properties name carrying a CaseResult dict
CASE_PROPERTY = "pytest_trt_case"  # the case a test is about to time, sent with its setup report
HOOK_BACKENDS = pytest.StashKey[list[str]]()  # names the pytest_trt_backends hook registered this session
