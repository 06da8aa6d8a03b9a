"""The regression gate: one entry point (``judge``) with one policy object (``Policy``).

Callers hand it tonight's measurement of a case (and, for a suspect case, re-measurements from fresh
processes) with the baseline; it returns a typed ``Verdict``. The fixtures, ``pytest-trt compare``
and the lab's validation of nights all call it, so a new statistic touches this package and its
tests only. The rule is in ``judge``'s docstring and docs/design.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from pytest_trt.baseline import Baseline
from pytest_trt.gate.comparability import hardware_difference, software_changes
from pytest_trt.gate.judge import Measurement, Policy, judge, wanted
from pytest_trt.gate.messages import finish
from pytest_trt.records import case_key
from pytest_trt.verdict import Outcome, Verdict

__all__ = ["Measurement", "Policy", "hardware_difference", "judge", "missing", "parse_threshold",
           "software_changes", "wanted"]


def parse_threshold(text: str | float) -> float:
    """'5%', '5' or 5 → 0.05. A bare number is a percentage; raises ValueError otherwise."""
    raw = str(text).strip()
    number = raw[:-1].strip() if raw.endswith("%") else raw
    try:
        value = float(number)
    except ValueError:
        raise ValueError(f"threshold {text!r} is not a percentage such as '5%' or '2.5'") from None
    if not math.isfinite(value) or not 0 < value < 1000:
        raise ValueError(f"threshold {text!r} must be a percentage above 0 (e.g. '5%')")
    return value / 100.0


def missing(baseline: Baseline, seen: Iterable[str]) -> list[Verdict]:
    """A MISSING verdict for each case of the newest baseline run that this session did not run."""
    if not baseline.runs:
        return []
    ran = {baseline.resolve(case_key(key)) for key in seen}
    verdicts = []
    for key, entry in baseline.runs[-1].cases.items():
        if key not in ran:
            verdict = Verdict(Outcome.MISSING, entry.nodeid, entry.case_id or key, 0.0)
            verdicts.append(finish(verdict, Outcome.MISSING, f"in baseline {baseline.path} but not run"))
    return verdicts
