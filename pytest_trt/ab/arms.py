"""The two sides of an A/B case: how a user names them, and what each becomes (a case, a model spec
and the artifacts its backend builds a runner from).

A side (``Arm``) is the test's own case with some of it replaced: the model (a ``ModelSpec``, a model
factory, an ONNX file, a ``torch.export`` program, or ``BASELINE``, the artifact a baseline kept)
and/or the backend, precision or variant. The runner is always made by the side's backend from the
registry, so every backend, built-in or from a ``pytest_trt_backends`` hook, runs an A/B case.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import pytest

from pytest_trt.artifacts import Artifacts
from pytest_trt.atomic import file_sha256 as sha256
from pytest_trt.backends.base import UnsupportedCase
from pytest_trt.case import PRECISIONS, Case
from pytest_trt.model import ModelSpec
from pytest_trt.settings import Settings

if TYPE_CHECKING:
    import torch


class _Baseline:
    """The model as the baseline saved it (``--trt-save-artifacts``): "main", without checking it out."""

    def __repr__(self) -> str:
        return "BASELINE"


BASELINE = _Baseline()
FILE_SUFFIXES = (".onnx", ".pt2")

ModelLike: TypeAlias = "ModelSpec | Callable[[], torch.nn.Module] | str | os.PathLike[str] | _Baseline | None"


class ArmError(ValueError):
    """A side named wrongly; the message is one line naming the argument."""


@dataclass(frozen=True)
class Arm:
    """One side of an A/B case: the test's case with these parts replaced (None: the test's own)."""

    model: ModelLike = None
    backend: str | None = None
    precision: str | None = None
    variant: str | None = None
    label: str | None = None


def as_arm(value: object, where: str) -> Arm:
    """An ``Arm`` from what a user passed: an Arm, a model-like value, or None (the test's case)."""
    if isinstance(value, Arm):
        arm = value
    elif value is None or isinstance(value, ModelSpec | _Baseline | str | os.PathLike) or callable(value):
        arm = Arm(model=value)
    else:
        raise ArmError(f"{where}: expected a ModelSpec, a model factory, an .onnx or .pt2 path, "
                       f"pytest_trt.ab.BASELINE or pytest_trt.ab.Arm(...), got {type(value).__name__}")
    check(arm, where)
    return arm


def check(arm: Arm, where: str) -> None:
    """Names the registry does not know and files that are not there are one-line errors."""
    from pytest_trt import backends

    if arm.backend is not None and arm.backend not in backends.names():
        raise ArmError(f"{where}: unknown backend {arm.backend!r}; registered: {', '.join(backends.names())}")
    if arm.precision is not None and arm.precision not in PRECISIONS:
        raise ArmError(f"{where}: unknown precision {arm.precision!r}; expected {', '.join(PRECISIONS)}")
    if arm.variant is not None and arm.variant not in backends.variants():
        raise ArmError(f"{where}: unknown variant {arm.variant!r}; expected {', '.join(backends.variants())}")
    path = model_path(arm.model)
    if path is not None:
        if path.suffix not in FILE_SUFFIXES:
            raise ArmError(f"{where}: {path}: expected an .onnx file or a torch.export .pt2 program")
        if not path.is_file() or not os.access(path, os.R_OK):
            raise ArmError(f"{where}: {path}: no such readable file")


def check_markers(items: Sequence[pytest.Item]) -> None:
    """``@pytest.mark.trt_ab(...)`` of each A/B test, checked once per test function."""
    seen: set[str] = set()
    for item in items:
        marker = item.get_closest_marker("trt_ab")
        name = item.nodeid.split("[", 1)[0]
        if marker is None or name in seen or "trt_ab" not in getattr(item, "fixturenames", ()):
            continue
        seen.add(name)
        where = f"{name}: @pytest.mark.trt_ab"
        unknown = sorted(set(marker.kwargs) - {"reference", "candidate", "compare_outputs"})
        if unknown or marker.args:
            raise pytest.UsageError(f"{where}: takes reference=, candidate= and compare_outputs= only, got "
                                    f"{', '.join(unknown) or 'positional arguments'}")
        try:
            for role in ("reference", "candidate"):
                as_arm(marker.kwargs.get(role), f"{where}({role}=...)")
        except ArmError as exc:
            raise pytest.UsageError(str(exc)) from None


def model_path(model: ModelLike) -> Path | None:
    if isinstance(model, str) and model == "baseline":
        return None
    return Path(model).expanduser() if isinstance(model, str | os.PathLike) else None


def is_baseline(model: ModelLike) -> bool:
    return isinstance(model, _Baseline) or model == "baseline"


@dataclass
class Side:
    """An arm made concrete: the case it runs as, its spec, the artifacts its runner is built from."""

    role: str  # "A" or "B"
    case: Case
    spec: ModelSpec
    artifacts: Artifacts
    source: str
    checkable: bool  # its outputs can be checked against its own model's fp32 reference
    label: str = ""  # the user's name for it (Arm.label), else its role


def side(arm: Arm, role: str, base: Case, spec: ModelSpec, session: Artifacts,
         stored: Callable[[ModelSpec], Mapping[str, Path]]) -> Side:
    """The side ``arm`` of the test's ``base`` case; ``stored(spec)`` finds the baseline's artifacts.

    Raises ``UnsupportedCase`` (a skip with the reason) where the side's backend cannot run here.
    """
    made = _side(arm, role, base, spec, session, stored)
    made.label = arm.label or role
    return made


def _side(arm: Arm, role: str, base: Case, spec: ModelSpec, session: Artifacts,
          stored: Callable[[ModelSpec], Mapping[str, Path]]) -> Side:
    from pytest_trt import matrix

    case = Case(base.model, arm.backend or base.backend, arm.precision or base.precision, base.batch_size,
                base.device, arm.variant or base.variant)
    reason = matrix.unsupported(case)
    if reason:
        raise UnsupportedCase(f"{role}: {reason}")
    settings, device, model = session.settings, session.device, arm.model
    if model is None:
        return Side(role, case, spec, session, f"model {spec.name}", True)
    if isinstance(model, ModelSpec):
        return Side(role, case, model, Artifacts(settings, device), f"model {model.name}", True)
    if is_baseline(model):
        files = stored(spec)
        onnx, program = files.get("onnx"), files.get("export")
        text = ", ".join(f"{kind} {path.name[:12]}…" for kind, path in files.items())
        return Side(role, case, spec, FileArtifacts(settings, device, onnx, program), f"baseline artifact ({text})",
                    program is not None)
    path = model_path(model)
    if path is not None:
        digest = sha256(path)[:12]
        if path.suffix == ".onnx":
            return Side(role, case, spec, FileArtifacts(settings, device, path, None), f"ONNX {path.name} "
                        f"(sha256 {digest}…)", False)
        return Side(role, case, spec, FileArtifacts(settings, device, None, path), f"program {path.name} "
                    f"(sha256 {digest}…)", True)
    assert callable(model)
    named = getattr(model, "__qualname__", type(model).__name__)
    return Side(role, case, dataclasses.replace(spec, build=model), Artifacts(settings, device),
                f"model factory {named}", True)


class FileArtifacts(Artifacts):
    """The session's artifacts with the model read from files: an ONNX file for backends that run
    ONNX, a ``torch.export`` program for those that run a module (and, exported, for ONNX ones)."""

    def __init__(self, settings: Settings, device: str, onnx: Path | None, program: Path | None) -> None:
        super().__init__(settings, device)
        self.onnx_file, self.program = onnx, program
        self._program_module: torch.nn.Module | None = None

    def module(self, spec: ModelSpec) -> torch.nn.Module:
        if self.program is None:
            assert self.onnx_file is not None
            raise UnsupportedCase(f"{self.onnx_file.name} is an ONNX file: it runs on backends that run ONNX "
                                  "files (onnxruntime, tensorrt); give a torch.export .pt2 program for this one")
        if self._program_module is None:
            self._program_module = load_program(self.program)
        return copy.deepcopy(self._program_module)

    def onnx(self, spec: ModelSpec, precision: str) -> tuple[Path, dict[str, Any]]:
        if self.onnx_file is None:
            return super().onnx(spec, precision)  # the program, exported as any module is
        from pytest_trt import precision as precision_step

        key = (spec.name, precision)
        if key not in self._onnx:
            dataset = self.dataset(spec)
            converted = precision_step.convert(
                self.onnx_file, precision, cache_dir=self.cache_dir, method=self.settings.calibration,
                calibration=dataset.calib_x if dataset else None,
                reduce_range=precision_step.reduced_range_for(self.device, precision))
            self._onnx[key] = (converted, {"model_hash": sha256(self.onnx_file), "onnx_path": str(converted)})
        return self._onnx[key]


def load_program(path: Path) -> torch.nn.Module:
    """A saved ``torch.export`` program as a module the runners can cast, move and call."""
    import torch

    try:
        exported = torch.export.load(str(path))
    except Exception as exc:  # a file that is not a program: say which, in one line
        raise ArmError(f"{path}: not a torch.export program ({type(exc).__name__}: {exc})") from None
    return program_module(exported.module())


def program_module(graph: torch.nn.Module) -> torch.nn.Module:
    """Wrap an exported program's module: it refuses ``train()``/``eval()``, which every runner calls
    (an exported graph stays in the mode it was exported in). Defined here, not at import: the
    plugin imports no torch until a case needs it."""
    import torch

    class Program(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.program = inner

        def train(self, mode: bool = True) -> Program:
            self.training = mode
            return self

        def forward(self, x: torch.Tensor) -> Any:
            return self.program(x)

    return Program(graph)
