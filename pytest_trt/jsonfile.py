"""Reading JSON the plugin did not necessarily write: bounded, strict, one clear error per defect.

Baselines and results files are shared between machines and edited by hand, so a file may be a
FIFO, endless (/dev/zero), huge, nested thousands deep, hold 5000-digit integers or NaN. Each of
those becomes a ``FileFormatError`` naming the file and the problem, never a hang or a traceback.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

from pytest_trt.records import JSON

MAX_FILE_BYTES = 256 * 2**20  # a 20-run baseline of 500 cases at 1000 samples is ~200 MB of JSON
MAX_INT_DIGITS = 30
MAX_DEPTH = 32  # the formats nest 6 deep; far below Python's recursion limit
MAX_ITEMS = 1_000_000  # the longest list a pytest-trt file holds: a results file's samples of one case


class FileFormatError(ValueError):
    """A file that cannot be used; the message names the file and the problem."""


def read(path: str | os.PathLike[str], what: str, max_bytes: int = MAX_FILE_BYTES,
         max_items: int = MAX_ITEMS) -> JSON:
    """Parse ``path`` as JSON; ``what`` names the kind of file in errors ("baseline file").

    A list longer than ``max_items`` is refused before parsing: a file of 11 million samples in one
    list fits in ``max_bytes`` but took 13 s to parse before the schema refused it.
    """
    target = Path(path)
    try:
        info = target.stat()
    except FileNotFoundError:
        raise FileFormatError(f"{target}: {what} does not exist") from None
    except OSError as exc:
        raise FileFormatError(f"{target}: cannot read {what}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise FileFormatError(f"{target}: {what} is not a regular file")
    if info.st_size > max_bytes:
        raise FileFormatError(f"{target}: {what} is {info.st_size / 2**20:.0f} MiB, more than the "
                              f"{max_bytes / 2**20:.0f} MiB a pytest-trt file can be")
    try:
        with target.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise FileFormatError(f"{target}: cannot read {what}: {exc.strerror or exc}") from None
    if len(raw) > max_bytes:
        raise FileFormatError(f"{target}: {what} grew past {max_bytes / 2**20:.0f} MiB while being read")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"{target}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not text.strip():
        raise FileFormatError(f"{target}: {what} is empty")
    longest = longest_list(raw, max_items)
    if longest > max_items:
        raise FileFormatError(f"{target}: {what} holds a list of {longest} items, more than the {max_items} "
                              "any pytest-trt file holds")
    return loads(text, f"{target}: {what}")


def longest_list(raw: bytes, limit: int) -> int:
    """The item count of the longest list of scalars long enough in bytes to hold more than ``limit``
    items (``limit + 1`` one-digit items and their commas), else 0. A regex scan runs in C, at a
    few hundred MB/s: far cheaper than parsing what the schema would refuse anyway. Strings can hold
    brackets, so a count may include a string's commas; only lists of more than ``limit`` are counted,
    and no real file's strings come near that."""
    found = 0
    for match in re.finditer(rb"\[[^\[\]{}]{%d,}\]" % (2 * limit + 1), raw):
        found = max(found, match.group().count(b",") + 1)
    return found


def loads(text: str, where: str) -> JSON:
    """Strict JSON: no NaN/Infinity, integers of at most MAX_INT_DIGITS digits, bounded nesting."""
    try:
        data: JSON = json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int,
                                parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{where} is not valid JSON (truncated or corrupt?): {exc}") from None
    except RecursionError:
        raise FileFormatError(f"{where} nests deeper than any pytest-trt file") from None
    except ValueError as exc:
        raise FileFormatError(f"{where}: {exc}") from None
    if _depth(data) > MAX_DEPTH:
        raise FileFormatError(f"{where} nests {MAX_DEPTH}+ levels deep; pytest-trt files nest 6")
    return data


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a pytest-trt file may hold")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:20]} overflows a float")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is too large")
    return int(text)


def _depth(value: JSON) -> int:
    """Nesting depth, iteratively (a crafted document must not recurse our way)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            return level
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest
