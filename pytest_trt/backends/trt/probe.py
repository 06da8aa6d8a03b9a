"""Which TensorRT is here, if any: a real installation, its version, and whether it builds strongly typed.

Every function takes the module as its ``trt`` argument. Production passes None and the real
``tensorrt`` is imported lazily; the seam tests pass a fake module (tests/fake_tensorrt.py).
"""

from __future__ import annotations

import re
from types import ModuleType

from pytest_trt.backends.base import UnsupportedCase

# TensorRT 10.12 deprecates the precision builder flags and implicit-INT8 calibration.
STRONGLY_TYPED_SINCE = (10, 12)


def _import_trt() -> ModuleType | None:
    try:
        import tensorrt as trt_module
    except ImportError:
        return None
    return trt_module


def _module(trt: ModuleType | None) -> ModuleType | None:
    return _import_trt() if trt is None else trt


def available(trt: ModuleType | None = None) -> str | None:
    """TensorRT's version when a real TensorRT (one with ``Builder``) can be imported, else None.

    ``import tensorrt`` alone proves nothing: tensorrt-stubs makes it an empty namespace package.
    """
    module = _module(trt)
    if module is None or not hasattr(module, "Builder"):
        return None
    return str(getattr(module, "__version__", "unknown"))


def unavailable_reason(trt: ModuleType | None = None) -> str:
    """Why TensorRT cannot be used here, in words fit for a skip reason ("" when it can)."""
    module = _module(trt)
    if module is None:
        return "TensorRT is not installed (pip install 'pytest-trt[tensorrt]' on a CUDA host)"
    if not hasattr(module, "Builder"):
        return (
            "TensorRT is not installed: 'import tensorrt' found only a namespace package without "
            "tensorrt.Builder (type stubs such as tensorrt-stubs, not the runtime)"
        )
    return ""


def require(trt: ModuleType | None = None) -> ModuleType:
    """The TensorRT module to use, or UnsupportedCase saying why there is none."""
    module = _module(trt)
    if module is None or available(module) is None:
        raise UnsupportedCase(unavailable_reason(module))
    return module


def version_tuple(version: str) -> tuple[int, ...]:
    """``"10.13.0.35"`` -> ``(10, 13, 0, 35)``; trailing non-numeric parts are ignored."""
    parts: list[int] = []
    for piece in version.split("."):
        match = re.match(r"\d+", piece)
        if match is None:
            break
        parts.append(int(match.group()))
    if not parts:
        raise ValueError(f"TensorRT version {version!r} does not start with a number")
    return tuple(parts)


def is_strongly_typed(version: str) -> bool:
    """Whether this TensorRT version builds strongly typed networks (>= 10.12)."""
    return version_tuple(version)[:2] >= STRONGLY_TYPED_SINCE
