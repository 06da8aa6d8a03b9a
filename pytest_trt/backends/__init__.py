"""The backend registry: the built-in backends, and those a ``pytest_trt_backends`` hook adds.

One backend is one ``Backend`` object (``pytest_trt.backends.base``). The matrix, option
validation and the environment record ask this registry, so adding a backend is adding its module
and one line to ``BUILTIN`` (or, from outside the package, returning it from the hook).
"""

from __future__ import annotations

from collections.abc import Iterable

from pytest_trt.backends import ort, pytorch, trt
from pytest_trt.backends.base import (
    Artifacts,
    Backend,
    BuildError,
    Runner,
    UnsupportedCase,
    device_kind,
    onnx_precision,
)

__all__ = [
    "BUILTIN", "Artifacts", "Backend", "BuildError", "Runner", "UnsupportedCase", "available", "defaults",
    "device_kind", "get", "names", "onnx_precision", "register", "registered", "unregister", "variants",
    "versions",
]

# The order is the order of option help, error messages and the default matrix.
BUILTIN: tuple[Backend, ...] = (pytorch.TORCH, pytorch.TORCH_COMPILE, ort.ONNXRUNTIME, trt.TENSORRT)

_registry: dict[str, Backend] = {backend.name: backend for backend in BUILTIN}


def register(backend: Backend) -> Backend:
    """Add ``backend``; a second backend under a registered name is an error, the same one a no-op."""
    if not isinstance(backend, Backend):
        raise TypeError(f"expected a pytest_trt.backends.Backend, got {type(backend).__name__}")
    known = _registry.get(backend.name)
    if known is not None and known is not backend:
        raise ValueError(f"a backend named {backend.name!r} is already registered")
    _registry[backend.name] = backend
    return backend


def register_all(found: Iterable[Iterable[Backend] | Backend | None]) -> list[Backend]:
    """Register what the hook implementations returned (backends, one backend or None each), in order.

    On an error nothing stays registered, so a failed configuration leaves the registry as it was.
    """
    added: list[Backend] = []
    try:
        for batch in found:
            for backend in (batch,) if isinstance(batch, Backend) else batch or ():
                new = getattr(backend, "name", None) not in _registry
                register(backend)
                if new:
                    added.append(backend)
    except (TypeError, ValueError):
        for backend in added:
            unregister(backend.name)
        raise
    return added


def unregister(name: str) -> None:
    """Remove a backend added by ``register`` (built-ins stay)."""
    if any(backend.name == name for backend in BUILTIN):
        raise ValueError(f"{name!r} is a built-in backend")
    _registry.pop(name, None)


def get(name: str) -> Backend:
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(f"unknown backend {name!r}; registered: {', '.join(names())}") from None


def registered() -> tuple[Backend, ...]:
    return tuple(_registry.values())


def names() -> tuple[str, ...]:
    return tuple(_registry)


def variants() -> tuple[str, ...]:
    """Every variant some registered backend runs, in registration order."""
    return tuple(dict.fromkeys(v for backend in _registry.values() for v in backend.all_variants))


def available(device: str) -> tuple[str, ...]:
    """The registered backends that can run on ``device`` here."""
    return tuple(b.name for b in _registry.values() if b.precisions.get(device_kind(device)) and not b.missing(device))


def defaults(device: str) -> tuple[str, ...]:
    """What runs when ``--trt-backend`` is not given: the available backends marked default."""
    return tuple(name for name in available(device) if _registry[name].default)


def versions() -> dict[str, str | None]:
    """The software versions every registered backend records (``{"onnxruntime": "1.22.0", ...}``)."""
    found: dict[str, str | None] = {}
    for backend in _registry.values():
        found.update(backend.versions())
    return found
