"""The built-in model zoo: a name → ModelSpec registry.

Each zoo module exposes ``specs() -> list[ModelSpec]`` and imports nothing heavy at import time
(its ``build`` functions import torch). Users may ``register`` their own specs from a conftest.
"""

from __future__ import annotations

import importlib

from pytest_trt.model import ModelSpec

# Zoo modules, loaded on first lookup.
_MODULES = ("pytest_trt.zoo.small", "pytest_trt.zoo.detector", "pytest_trt.zoo.vision")
_registry: dict[str, ModelSpec] = {}
_loaded = False


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module_name in _MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a real import error inside the module
                raise
            continue
        for spec in module.specs():
            _registry.setdefault(spec.name, spec)


def register(spec: ModelSpec) -> None:
    """Add or replace a model under ``spec.name``."""
    _load()
    _registry[spec.name] = spec


def get(name: str) -> ModelSpec:
    _load()
    try:
        return _registry[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(names())}") from None


def names() -> list[str]:
    _load()
    return sorted(_registry)
