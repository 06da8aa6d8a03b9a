"""Re-run the audit's inputs (issue #17) against this checkout and print what happens to each.

    python lab/hardening_repro.py BASELINE [--out lab/results/hardening_repro.json]

BASELINE is a baseline file pytest-trt wrote (``--trt-save-baseline``). Each row mutates it the way
the audit did, runs ``pytest-trt compare BASELINE MUTATED --md`` in a child process with a time limit,
and records the exit status, the first line of stderr, the wall time and whether a traceback or an
unescaped injection reached the output. Rows that need a pytest run are covered by the tests named in
lab/results/hardening.md instead.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LIMIT_S = 60
Doc = dict[str, Any]


def _entry(doc: Doc) -> Doc:
    entry: Doc = next(iter(doc["runs"][0]["cases"].values()))
    return entry


def _set(path: tuple[str, ...], value: object) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        target: Any = doc["runs"][0]
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return apply


def _entry_set(key: str, value: object) -> Callable[[Doc], None]:
    def apply(doc: Doc) -> None:
        _entry(doc)[key] = value
    return apply


def _agreement_list(doc: Doc) -> None:
    _entry(doc)["accuracy"] = {"agreement": [1]}


def _one_sample(doc: Doc) -> None:
    entry = _entry(doc)
    entry["samples"] = entry["samples"][:1]


def _injected_id(doc: Doc) -> None:
    for run in doc["runs"]:
        cases = {}
        for key, entry in run["cases"].items():
            entry["nodeid"] = key + "\n# FAKE HEADING\n![x](https://example.invalid/x.png)"
            entry["case_id"] = entry["case_id"] + "\n# FAKE HEADING\n![x](https://example.invalid/x.png)"
            cases[entry["nodeid"]] = entry
        run["cases"] = cases


JSON_ROWS: list[tuple[str, Callable[[Doc], None]]] = [
    ("one-sample entry", _one_sample),
    ("software=[1]", _set(("environment", "software"), [1])),
    ('software="x"', _set(("environment", "software"), "x")),
    ('calls_per_sample="abc"', _entry_set("calls_per_sample", "abc")),
    ("accuracy.agreement=[1]", _agreement_list),
    ("sample -1", _entry_set("samples", [-1.0] * 20)),
    ("samples all 0", _entry_set("samples", [0.0] * 20)),
    ("case id with newline, heading, image", _injected_id),
    ("GPU name with ESC sequence", _set(("environment", "hardware", "gpu_name"), "\x1b[2J\x1b[31mEVIL")),
]

# Raw text substitutions: values json.dumps cannot write
RAW_ROWS: list[tuple[str, Callable[[str], str]]] = [
    ("integer sample 10^400", lambda t: _first_samples(t, "1" + "0" * 400)),
    ("5001-digit integer", lambda t: _first_samples(t, "9" * 5001)),
    ("NaN samples", lambda t: _first_samples(t, "NaN")),
    ("Infinity samples", lambda t: _first_samples(t, "Infinity")),
    ("deep nesting (100000 levels)", lambda t: t.rstrip()[:-1] + ', "x": ' + "[" * 100000 + "]" * 100000 + "}"),
    ("11M samples in one entry", lambda t: _first_samples(t, ", ".join(["0.001"] * 11_000_000))),
]


def _first_samples(text: str, value: str) -> str:
    start = text.index('"samples": [') + len('"samples": [')
    end = text.index("]", start)
    return text[:start] + value + text[end:]


def compare(base: Path, other: str) -> Doc:
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "pytest_trt.cli", "compare", str(base), other, "--md"],
                              capture_output=True, text=True, timeout=LIMIT_S)
    except subprocess.TimeoutExpired:
        return {"rc": None, "hang": True, "wall_s": round(time.perf_counter() - start, 2)}
    out = proc.stdout + proc.stderr
    return {"rc": proc.returncode, "hang": False, "wall_s": round(time.perf_counter() - start, 2),
            "traceback": "Traceback" in out, "stderr": (proc.stderr.strip().splitlines() or [""])[0][:200],
            "raw_heading": "\n# FAKE" in proc.stdout, "raw_image": "![x](" in proc.stdout,
            "raw_esc": "\x1b" in out}


def rows(base: Path, scratch: Path) -> list[Doc]:
    text = base.read_text()
    found = []
    for name, mutate in JSON_ROWS:
        doc = json.loads(text)
        mutate(doc)
        path = scratch / "mutated.json"
        path.write_text(json.dumps(copy.deepcopy(doc)))
        found.append({"input": name, **compare(base, str(path))})
    for name, rewrite in RAW_ROWS:
        path = scratch / "mutated.json"
        path.write_text(rewrite(text))
        found.append({"input": name, **compare(base, str(path))})
    fifo = scratch / "fifo"
    os.mkfifo(fifo)
    found.append({"input": "compare on a FIFO", **compare(base, str(fifo))})
    found.append({"input": "compare on /dev/zero", **compare(base, "/dev/zero")})
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        found = rows(args.baseline, Path(tmp))
    for row in found:
        print(json.dumps(row))
    if args.out:
        args.out.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
