"""Check an install without a checkout: python tools/wheel_check.py [--torch torch==2.13.0]

Builds the wheel, installs it into a fresh virtual environment (torch first, then the wheel with its
torch and onnxruntime extras, versions held to requirements/ci.txt so CI stays reproducible), and from
an empty folder, where nothing of the checkout can be imported, runs the shipped suite:

    python -m pytest --pyargs pytest_trt.suite --trt-device cpu ...

It passes only if the wheel holds the package data (digits, zoo weights, the suite) and none of the
lab or tests, the suite ran the same cases `pytest benchmarks` collects here with none failed or
skipped, the package imported from the new environment, and `pytest-trt --help` works.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIRED = ("pytest_trt/suite/test_inference.py", "pytest_trt/suite/conftest.py", "pytest_trt/data/digits.npz",
            "pytest_trt/py.typed", "pytest_trt/zoo/weights/digits-cnn.npz", "pytest_trt/zoo/weights/shapes-unet.npz")
FORBIDDEN = ("lab/", "tests/", "benchmarks/", "tools/", "docker/")
FAST = ["--trt-device", "cpu", "--trt-warmup", "0.05", "--trt-min-time", "0.1", "--trt-max-time", "0.5",
        "-q", "-p", "no:cacheprovider"]


class CheckFailed(Exception):
    """One step failed; the message says which and why."""


def run(step: str, cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    """Run one step, print how long it took; its output, or CheckFailed with the output's tail."""
    began = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(f"wheel-check: {step} ({time.monotonic() - began:.0f} s)", flush=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-30:])
        raise CheckFailed(f"{step}: exit status {proc.returncode}\n{tail}")
    return proc.stdout


def clean_env() -> dict[str, str]:
    """The environment without anything that would put the checkout on sys.path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.pop("VIRTUAL_ENV", None)
    return env


def build_wheel(src: Path, out: Path) -> Path:
    """Build from a copy of what the package is made of (as the image's build context), so the
    checkout gets no build/ folder and a stale one can never leak removed modules into the wheel."""
    shutil.copytree(ROOT / "pytest_trt", src / "pytest_trt", ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    run("build the wheel", [sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(src)], src)
    wheels = sorted(out.glob("pytest_trt-*.whl"))
    if len(wheels) != 1:
        raise CheckFailed(f"build the wheel: expected one pytest_trt wheel in {out}, found {wheels}")
    return wheels[0]


def check_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    missing = [name for name in REQUIRED if name not in names]
    stray = sorted({name for name in names for prefix in FORBIDDEN if name.startswith(prefix)})
    if missing or stray:
        raise CheckFailed(f"{wheel.name}: missing {missing}, should not hold {stray[:5]}")


def install(wheel: Path, venv: Path, torch_pin: str) -> Path:
    run("create a fresh venv", [sys.executable, "-m", "venv", str(venv)], venv.parent)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    constraints = ["--constraint", str(ROOT / "requirements" / "ci.txt")]
    run(f"install {torch_pin}", [*pip, torch_pin], venv.parent, clean_env())
    run("install the wheel [torch,onnxruntime]", [*pip, *constraints, f"{wheel}[torch,onnxruntime]"],
        venv.parent, clean_env())
    return python


def expected_cases() -> set[str]:
    """What `pytest benchmarks` collects in this checkout, as test names."""
    out = run("collect pytest benchmarks in the checkout",
              [sys.executable, "-m", "pytest", "benchmarks", "--collect-only", *FAST], ROOT)
    return {line.split("::", 1)[1] for line in out.splitlines() if line.startswith("benchmarks/") and "::" in line}


def run_suite(python: Path, empty: Path, junit: Path) -> None:
    where = run("import the package", [str(python), "-c", "import pytest_trt; print(pytest_trt.__file__)"],
                empty, clean_env()).strip()
    if not Path(where).resolve().is_relative_to(python.parent.parent.resolve()):
        raise CheckFailed(f"import the package: pytest_trt came from {where}, not from the new venv")
    run("pytest --pyargs pytest_trt.suite in an empty folder",
        [str(python), "-m", "pytest", "--pyargs", "pytest_trt.suite", *FAST, "--junitxml", str(junit)],
        empty, clean_env())
    run("pytest-trt --help", [str(python.parent / "pytest-trt"), "--help"], empty, clean_env())


def check_junit(junit: Path, expected: set[str]) -> int:
    """The suite's cases: every expected one passed, none skipped or failed. How many ran."""
    cases = ET.parse(junit).getroot().iter("testcase")
    ran: set[str] = set()
    bad: list[str] = []
    for case in cases:
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        if outcome == "passed":
            ran.add(case.get("name", ""))
        else:
            bad.append(f"{case.get('name')}: {outcome}")
    if bad or not ran or ran != expected:
        raise CheckFailed(f"suite from the wheel: {len(ran)} passed; not passed {bad}; "
                          f"missing {sorted(expected - ran)}; unexpected {sorted(ran - expected)}")
    return len(ran)


def check(torch_pin: str, workdir: Path) -> int:
    expected = expected_cases()
    if not expected:
        raise CheckFailed("collect pytest benchmarks in the checkout: no cases")
    wheel = build_wheel(workdir / "src", workdir / "dist")
    check_contents(wheel)
    python = install(wheel, workdir / "venv", torch_pin)
    empty = workdir / "empty"
    empty.mkdir()
    run_suite(python, empty, workdir / "junit.xml")
    return check_junit(workdir / "junit.xml", expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch", default="torch==2.13.0", help="torch requirement installed first")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (wheel, venv, junit.xml)")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="pytest-trt-wheel-"))
    try:
        ran = check(args.torch, workdir)
    except CheckFailed as exc:
        print(f"wheel-check FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"wheel-check: kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"wheel-check: ok, {ran} cases of the shipped suite passed from the installed wheel")
    return 0


if __name__ == "__main__":
    sys.exit(main())
