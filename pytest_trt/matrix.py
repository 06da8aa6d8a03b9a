"""The benchmark matrix: which cases a test gets, and which of them this host cannot run (and why)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from pytest_trt import backends
from pytest_trt.backends.base import device_kind
from pytest_trt.backends.base import installed as installed  # re-exported: callers ask matrix.installed
from pytest_trt.case import PRECISIONS, Case, device_index
from pytest_trt.settings import Settings

ZOO = "zoo"  # marker value: the models chosen with --trt-model
GROUPS = ("small", "vision", "all")


@dataclass(frozen=True)
class Planned:
    case: Case
    skip: str | None  # why this host cannot run the case, or None


@cache
def cuda_available() -> bool:
    if not installed("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(requested: str) -> str:
    """Turn auto/cuda into a concrete device; raise ValueError when CUDA was asked for but is absent."""
    if requested == "auto":
        return "cuda:0" if cuda_available() else "cpu"
    if requested == "cpu":
        return "cpu"
    if not cuda_available():
        why = "torch is not installed" if not installed("torch") else "torch.cuda.is_available() is False"
        raise ValueError(f"--trt-device {requested}: no CUDA device on this host ({why}); use cpu or auto")
    import torch

    index = device_index(requested)
    if index >= torch.cuda.device_count():
        raise ValueError(
            f"--trt-device {requested}: this host has {torch.cuda.device_count()} CUDA device(s)"
        )
    return f"cuda:{index}"


def backend_missing(backend: str, device: str) -> str | None:
    """Why ``backend`` cannot run on this host, or None (the backend's own probe says)."""
    return backends.get(backend).missing(device)


def default_backends(device: str) -> tuple[str, ...]:
    return backends.defaults(device)


def unsupported(case: Case) -> str | None:
    """Why this combination makes no sense or cannot run; None when it can."""
    try:
        backend = backends.get(case.backend)
    except KeyError as exc:
        return str(exc.args[0])
    kind = device_kind(case.device)
    precisions = backend.precisions.get(kind, ())
    if not precisions:
        return backend.missing(case.device) or f"{backend.name} does not run on {kind} devices"
    if case.precision not in precisions:
        return (f"{case.precision} is not supported by {case.backend} on {kind} "
                f"(supported: {', '.join(precisions)})")
    if case.variant not in backend.all_variants:
        return f"variant {case.variant} does not apply to {case.backend}"
    return (backend.variant_missing(case.variant, case.device) or _variant_elsewhere(backend, case.variant, kind)
            or backend.missing(case.device))


def _variant_elsewhere(backend: backends.Backend, variant: str, kind: str) -> str | None:
    """Why a variant the backend has on another device kind does not run on this one."""
    if variant in backend.variants.get(kind, ()):
        return None
    if "cuda-graph" in variant and kind != "cuda":
        return "CUDA graphs need a CUDA device"
    where = ", ".join(k for k, names in backend.variants.items() if variant in names)
    return f"variant {variant} of {backend.name} runs on {where} devices only"


def expand_models(selection: tuple[str, ...]) -> tuple[str, ...]:
    from pytest_trt import zoo

    names: list[str] = []
    for item in selection:
        if item in GROUPS:
            for name in zoo.names():
                group = (zoo.get(name).extra or {}).get("group", "small")
                if item in ("all", group):
                    names.append(name)
        else:
            zoo.get(item)  # raises KeyError naming the known models
            names.append(item)
    return tuple(dict.fromkeys(names))


def plan(settings: Settings, device: str, marker: Mapping[str, Any]) -> list[Planned]:
    """The cases of one test: options, overridden per test by ``@pytest.mark.trt(...)``."""
    models: tuple[str | None, ...] = (None,)
    wanted_models = marker.get("models")
    if wanted_models == ZOO:
        models = expand_models(settings.models)
    elif wanted_models:
        models = expand_models(tuple(_as_tuple(wanted_models)))
    chosen = _as_tuple(marker.get("backends") or settings.backends or default_backends(device))
    # fp32 always runs: it is the base of every speed-up and accuracy drop in the table
    precisions = tuple(dict.fromkeys(("fp32", *_as_tuple(marker.get("precisions") or settings.precisions))))
    batch_sizes = tuple(int(b) for b in _as_tuple(marker.get("batch_sizes") or settings.batch_sizes))
    variants = _as_tuple(marker.get("variants") or settings.variants)
    _check_marker_values(chosen, precisions, variants, batch_sizes)
    planned = []
    for model, backend, precision, batch, variant in itertools.product(
        models, chosen, precisions, batch_sizes, variants
    ):
        case = Case(model, backend, precision, batch, device, variant)
        planned.append(Planned(case, model_missing(model) or unsupported(case)))
    return planned


def model_missing(model: str | None) -> str | None:
    """Why a zoo model cannot be built here (e.g. torchvision absent), or None."""
    if model is None:
        return None
    from pytest_trt import zoo

    missing = [m for m in (zoo.get(model).extra or {}).get("requires", []) if not installed(m)]
    return f"model {model} needs {', '.join(missing)}, which is not installed" if missing else None


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return tuple(value)


def _check_marker_values(
    names: tuple[str, ...], precisions: tuple[str, ...], variants: tuple[str, ...],
    batch_sizes: tuple[int, ...],
) -> None:
    checks = (("backends", names, backends.names()), ("precisions", precisions, PRECISIONS),
              ("variants", variants, backends.variants()))
    for name, values, valid in checks:
        bad = [v for v in values if v not in valid]
        if bad:
            raise ValueError(f"@pytest.mark.trt({name}=...): unknown {bad}; expected {', '.join(valid)}")
    if any(b <= 0 for b in batch_sizes):
        raise ValueError(f"@pytest.mark.trt(batch_sizes=...): {batch_sizes} must be positive integers")
