"""Text from files reaches a terminal, markdown and HTML: each gets it escaped for that medium.

Case ids, GPU names, messages and model names come from baselines and results that anyone may have
edited. A newline in a case id must not start a fake heading in a job summary, an ESC sequence must
not repaint the terminal, and ``<img>`` must stay text.
"""

from __future__ import annotations

import html as html_mod
import re

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_\[\]<>#!|~])")


def terminal(text: str) -> str:
    """Control characters (ESC sequences among them) shown as ``\\xNN``; newlines and tabs as spaces."""
    text = text.replace("\n", " ").replace("\r", " ").replace("\t", " ")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def markdown(text: str) -> str:
    """Inline markdown text: one line, every character markdown or inline HTML gives meaning escaped."""
    text = _MARKDOWN.sub(r"\\\1", terminal(text).replace("&", "&amp;"))
    return "\\" + text if text[:1] in "-+=" and text else text  # a list or rule marker at a line start


def html(text: str) -> str:
    return html_mod.escape(terminal(text), quote=True)
