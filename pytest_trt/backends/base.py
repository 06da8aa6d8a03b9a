"""What a backend is: one ``Backend`` object that says what it runs where and makes runners; the
``Runner`` protocol every runner implements; ``Artifacts``, what runners get from the session; and the
errors runners raise.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from pytest_trt.case import PRECISIONS, Case
from pytest_trt.model import Dataset, ModelSpec

if TYPE_CHECKING:
    import torch

DEVICE_KINDS = ("cpu", "cuda")
# A backend name is one item of a --trt-backend list and one part of a test id.
_NAME = re.compile(r"[a-z0-9][a-z0-9_.+-]*")


class UnsupportedCase(Exception):
    """The backend cannot run this combination here; the case is skipped with this reason."""


class BuildError(Exception):
    """Export or engine build failed; the message carries the tool's own log."""


@runtime_checkable
class Runner(Protocol):
    """Runs one case's model. Inputs and outputs stay where the backend computes.

    Life cycle: ``prepare()`` once (load/compile/build, timed separately from inference), then
    ``load_inputs`` once per input set, ``run`` many times (the timed call), ``to_host`` to check
    outputs, ``close`` at the end. On CUDA, ``stream`` is the non-default ``torch.cuda.Stream``
    that ``run`` enqueues its work on, so the timing engine can put CUDA events around it.
    """

    case: Case
    stream: Any  # torch.cuda.Stream on CUDA, None on CPU
    info: dict[str, Any]  # recorded with the case: build time, engine size, providers, ...

    def prepare(self) -> None: ...

    def load_inputs(self, host: np.ndarray) -> Any:
        """Copy a host batch to where ``run`` reads it; returns the backend's input handle."""
        ...

    def run(self, inputs: Any) -> Any:
        """Enqueue one inference on ``inputs``; returns backend-resident outputs (no sync)."""
        ...

    def to_host(self, outputs: Any) -> np.ndarray:
        """Synchronize and return outputs as a float32 numpy array."""
        ...

    def close(self) -> None: ...


class Artifacts(Protocol):
    """What runners need from the session, built once per session and shared by every case.

    ``pytest_trt.context.Context`` provides it; a backend's ``create_runner`` receives it.
    """

    @property
    def cache_dir(self) -> Path:
        """Where backends keep what they build (exports, engines, timing caches)."""
        ...

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Every batch size of the session: an engine built once can cover them all."""
        ...

    def module(self, spec: ModelSpec) -> torch.nn.Module:
        """A fresh fp32 CPU copy of the spec's module (seeded weights), the caller's to cast and move."""
        ...

    def onnx(self, spec: ModelSpec, precision: str) -> tuple[Path, dict[str, Any]]:
        """The exported ONNX file at ``precision`` (fp16 conversion, INT8/FP8 Q/DQ) and what the export recorded."""
        ...

    def dataset(self, spec: ModelSpec) -> Dataset | None:
        """The spec's data set, loaded once per session; None when the spec has none."""
        ...


RunnerFactory = Callable[[Case, ModelSpec, Artifacts], Runner]


def _nothing_missing(device: str) -> str | None:
    return None


def _no_variant_missing(variant: str, device: str) -> str | None:
    return None


def _no_versions() -> Mapping[str, str | None]:
    return {}


@dataclass(frozen=True)
class Backend:
    """One backend: what it runs per device kind, whether it can run here, and how to make a runner.

    ``precisions`` and ``variants`` map a device kind (``cpu``, ``cuda``) to what the backend runs
    there; a kind it does not list is a kind it does not run on. ``missing(device)`` says why this
    host cannot run it ("onnxruntime/onnx are not installed (...)"), or None; ``variant_missing``
    does the same for a variant that needs more than the backend (ONNX Runtime's TensorRT EP).
    ``versions()`` gives the software keys recorded in every run's environment (None: not
    installed). ``default`` puts the backend in the set that runs when ``--trt-backend`` is not
    given. ``create_runner(case, spec, artifacts)`` returns a runner that is not yet prepared, or
    raises ``UnsupportedCase`` (a skip) or ``BuildError``.
    """

    name: str
    precisions: Mapping[str, tuple[str, ...]]
    variants: Mapping[str, tuple[str, ...]]
    create_runner: RunnerFactory
    missing: Callable[[str], str | None] = _nothing_missing
    versions: Callable[[], Mapping[str, str | None]] = _no_versions
    default: bool = True
    variant_missing: Callable[[str, str], str | None] = _no_variant_missing

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"backend name {self.name!r} must be lower-case letters, digits and . _ + - "
                             "(it is a --trt-backend item and part of test ids)")
        object.__setattr__(self, "precisions", _frozen(self.name, "precisions", self.precisions))
        object.__setattr__(self, "variants", _frozen(self.name, "variants", self.variants))
        for kind, precisions in self.precisions.items():
            unknown = [p for p in precisions if p not in PRECISIONS]
            if unknown:
                raise ValueError(f"backend {self.name!r}: precisions {unknown} on {kind} are not among "
                                 f"{', '.join(PRECISIONS)}")
            if precisions and not self.variants.get(kind):
                raise ValueError(f"backend {self.name!r} runs on {kind} but declares no variants there "
                                 "(at least 'eager')")
        if not callable(self.create_runner):
            raise ValueError(f"backend {self.name!r}: create_runner must be callable")

    @property
    def all_variants(self) -> tuple[str, ...]:
        """Every variant the backend runs on any device kind, in declaration order."""
        return tuple(dict.fromkeys(v for variants in self.variants.values() for v in variants))


def _frozen(name: str, field: str, table: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    unknown = [kind for kind in table if kind not in DEVICE_KINDS]
    if unknown:
        raise ValueError(f"backend {name!r}: {field} keys {unknown} are not device kinds ({', '.join(DEVICE_KINDS)})")
    for kind, values in table.items():
        if isinstance(values, str) or not all(isinstance(v, str) and v and "," not in v for v in values):
            raise ValueError(f"backend {name!r}: {field}[{kind!r}] must be a tuple of names, got {values!r}")
    return MappingProxyType({kind: tuple(values) for kind, values in table.items()})


def device_kind(device: str) -> str:
    """``cuda:N`` -> ``cuda``; anything else is the CPU."""
    return "cuda" if device.startswith("cuda") else "cpu"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here, without importing it."""
    return importlib.util.find_spec(module) is not None


def onnx_precision(precision: str) -> str:
    """The ONNX file a precision runs: tf32 is a math mode of fp32 files, not a file format."""
    return "fp32" if precision == "tf32" else precision


def onnx_for(case: Case, spec: ModelSpec, artifacts: Artifacts) -> tuple[Path, dict[str, Any]]:
    """The case's ONNX file and its export facts, for backends that run ONNX.

    int8/fp8 files carry Q/DQ scales from calibration on real data: a spec without a data set has none.
    """
    if case.precision in ("int8", "fp8") and spec.dataset is None:
        raise UnsupportedCase(
            f"{case.precision} needs calibration on real data and model {spec.name!r} has no dataset"
        )
    return artifacts.onnx(spec, onnx_precision(case.precision))
