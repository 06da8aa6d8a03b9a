"""JSON at the edges of the typed records: the value type and strict readers of its parts.

A file is read into these types and then into records; a wrong type is the file's defect and raises
``TypeError`` (or ``ValueError``), which the loaders turn into one line naming the file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import TypeAlias

# A JSON value: what a record keeps of facts it does not model itself (a backend's build details).
JSON: TypeAlias = "None | bool | int | float | str | list[JSON] | dict[str, JSON]"
JSONDict = dict[str, JSON]


def as_number(value: JSON) -> float:
    """A JSON number as float; bools and non-numbers are refused (a file's defect, not ours)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    number = float(value)
    if math.isnan(number):
        raise ValueError("expected a number, got NaN")
    return number


def as_dict(value: JSON) -> JSONDict:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


def as_list(value: JSON) -> list[JSON]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def plain(info: Mapping[str, object]) -> JSONDict:
    """Free-form facts (a runner's) as JSON values: numpy scalars as numbers, anything else as text."""
    def default(value: object) -> object:
        item = getattr(value, "item", None)  # numpy scalars
        return item() if callable(item) else str(value)

    data: JSONDict = json.loads(json.dumps(info, default=default))
    return data
