"""Write a copy of the installed tensorrt-stubs that mypy can parse: python tools/tensorrt_stubs.py DIR

tensorrt-stubs 10.13 ships generated .pyi files with a few lines that are not valid Python (parameters
named `in`, a required parameter after defaulted ones) and an import of the runtime-only tensorrt_libs.
Each def that does not parse is loosened to (*args, **kwargs); everything else is kept as shipped.
"""

import ast
import re
import sys
import sysconfig
from pathlib import Path

FILES = ("tensorrt/__init__.pyi", "tensorrt_bindings/__init__.pyi", "tensorrt_bindings/tensorrt.pyi")


def loosen(lines: list[str], index: int) -> None:
    match = re.match(r"(\s*def \w+)\(.*\)( -> .*)?:\s*$", lines[index])
    if match is None:
        raise SystemExit(f"cannot repair stub line {index + 1}: {lines[index]!r}")
    lines[index] = f"{match.group(1)}(*args: typing.Any, **kwargs: typing.Any){match.group(2) or ''}:"


def repair(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip() != "import tensorrt_libs as tensorrt_libs"]
    if "import typing" not in lines:
        lines.insert(1, "import typing")
    while True:
        try:
            ast.parse("\n".join(lines))
            return "\n".join(lines) + "\n"
        except SyntaxError as exc:
            loosen(lines, (exc.lineno or 1) - 1)


def main() -> None:
    site = Path(sysconfig.get_paths()["purelib"])
    out = Path(sys.argv[1])
    for rel in FILES:
        if not (site / rel).is_file():
            raise SystemExit(f"{site / rel} not found: pip install --no-deps tensorrt-stubs")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_text(repair((site / rel).read_text()))


if __name__ == "__main__":
    main()
