"""One colour per verdict (and per case state) for the HTML report's rows, chips and plots."""

from __future__ import annotations

# outcome or state → (strong colour for marks and text, light colour for table rows)
COLOURS: dict[str, tuple[str, str]] = {
    "REGRESSION": ("#c62828", "#fde2e1"),
    "INCONCLUSIVE": ("#e07b00", "#ffe9cc"),
    "UNSTABLE": ("#b58900", "#fff4d6"),
    "MISSING": ("#757575", "#eeeeee"),
    "INCOMPARABLE": ("#5c6bc0", "#e8eaf6"),
    "NEW": ("#00838f", "#e0f4f5"),
    "IMPROVED": ("#2e7d32", "#e3f6e5"),
    "PASS": ("#4a6fa5", "#ffffff"),
    "ok": ("#4a6fa5", "#ffffff"),
}
FAILED_STATE = ("#c62828", "#fde2e1")  # error, oom, nan, build-failed, accuracy-failed, crashed, ...
QUIET_STATE = ("#757575", "#f3f3f3")  # skipped, interrupted
QUIET_STATES = {"skipped", "interrupted"}


def strong(outcome: str) -> str:
    return colours(outcome)[0]


def light(outcome: str) -> str:
    return colours(outcome)[1]


def colours(outcome: str) -> tuple[str, str]:
    if outcome in COLOURS:
        return COLOURS[outcome]
    return QUIET_STATE if outcome in QUIET_STATES else FAILED_STATE
