"""Versions of installed software, read without importing it where possible (backends' cache keys
and the environment fingerprint both use them)."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path


def package_version(*distributions: str) -> str | None:
    """Installed version of the first of ``distributions`` that is installed, from metadata."""
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def loaded_version(module: str) -> str | None:
    """The version of a module this process already imported: what actually ran, even where two
    distributions provide it (seen on an H100 host: onnxruntime 1.30 metadata, onnxruntime-gpu 1.31.1
    imported first from PYTHONPATH)."""
    loaded = sys.modules.get(module)
    version = getattr(loaded, "__version__", None)
    return str(version) if version else None


def tensorrt_version() -> str | None:
    """TensorRT's version, only for a real installation.

    The type-stub package makes ``import tensorrt`` succeed as an empty namespace package, so
    the check is for a regular package (one with an ``__init__`` module), not importability.
    """
    spec = importlib.util.find_spec("tensorrt")
    if spec is None or spec.origin in (None, "namespace"):
        return None
    version = package_version("tensorrt", "tensorrt-cu13", "tensorrt-cu12", "tensorrt-cu11")
    if version is not None:
        return version
    # e.g. installed from the TensorRT tarball without pip metadata
    found = getattr(importlib.import_module("tensorrt"), "__version__", None)
    return str(found) if found else None


def torch_cuda_version() -> str | None:
    """``torch.version.cuda`` without importing torch (read from torch/version.py)."""
    torch = sys.modules.get("torch")
    if torch is not None:
        cuda = getattr(getattr(torch, "version", None), "cuda", None)
        return str(cuda) if cuda else None
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "version.py"
        if path.is_file():
            return _assigned_string(path.read_text(), "cuda")
    return None


def _assigned_string(source: str, name: str) -> str | None:
    """The string literal assigned to module-level ``name`` in ``source``, if any."""
    for node in ast.parse(source).body:
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        if any(isinstance(t, ast.Name) and t.id == name for t in targets):
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                return value.value
            return None
    return None
