"""Columns for the terminal and markdown tables: padded or piped, every cell escaped for its medium."""

from __future__ import annotations

from collections.abc import Sequence

from pytest_trt.report import escape


class Markup(str):
    """A markdown cell already written for the medium (a bold verdict): the grid does not escape it again."""


def text_grid(header: Sequence[str], body: Sequence[Sequence[str]], *, left: Sequence[bool] | None = None,
              rule: bool = False) -> list[str]:
    """Columns padded to their widest cell, escaped for a terminal; ``left[i]`` False right-aligns column i."""
    cells = [[escape.terminal(c) for c in row] for row in [header, *body]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lefts = list(left) if left is not None else [True] * len(header)
    fmt = "  ".join(f"{{:{'<' if lefts[i] else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*cells[0])]
    if rule:
        lines.append(fmt.format(*("-" * w for w in widths)))
    return [line.rstrip() for line in lines + [fmt.format(*row) for row in cells[1:]]]


def markdown_grid(header: Sequence[str], body: Sequence[Sequence[str]], *,
                  right: Sequence[bool] | None = None) -> list[str]:
    """A markdown table, every cell escaped (but ``Markup``); ``right[i]`` right-aligns column i."""
    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(c if isinstance(c, Markup) else escape.markdown(c) for c in row) + " |"

    rights = list(right) if right is not None else [False] * len(header)
    return [line(header), "|" + "".join("---:|" if r else "---|" for r in rights), *(line(row) for row in body)]
