"""Which baseline runs a case may be gated against, and what changed since them.

Hardware decides comparability: another GPU model or count, MIG profile, compute capability or
CPU model makes a run INCOMPARABLE. So does another timing method (warm or cold L2, one call per
CUDA event or block means), which a case only gets when the user forces it. Software never blocks:
a slower driver or model file is a regression users want to see, and every verdict lists it.
"""

from __future__ import annotations

from collections.abc import Mapping

from pytest_trt.records import JSON

HARDWARE_KEYS = ("kind", "cpu_model", "gpu_name", "gpu_count", "compute_capability", "mig")


def _block(environment: Mapping[str, JSON], name: str) -> Mapping[str, JSON]:
    block = environment.get(name)
    return block if isinstance(block, dict) else {}


def hardware_difference(baseline_env: Mapping[str, JSON], current_env: Mapping[str, JSON]) -> str:
    """'' when the hardware is comparable, else a reason naming both sides."""
    old, new = _block(baseline_env, "hardware"), _block(current_env, "hardware")
    if old.get("kind") != new.get("kind"):
        return f"different devices: {old.get('kind')} vs {new.get('kind')}"
    if old.get("gpu_name") != new.get("gpu_name"):
        return f"different GPUs: {old.get('gpu_name')} vs {new.get('gpu_name')}"
    if old.get("kind") == "cpu" and old.get("cpu_model") != new.get("cpu_model"):
        return f"different CPUs: {old.get('cpu_model')} vs {new.get('cpu_model')}"
    for key in ("gpu_count", "compute_capability", "mig"):
        if old.get(key) != new.get(key):
            return f"different {key.replace('_', ' ')}: {old.get(key)} vs {new.get(key)}"
    return ""


def software_changes(baseline_env: Mapping[str, JSON], current_env: Mapping[str, JSON],
                     old_hash: str | None = None, new_hash: str | None = None) -> list[str]:
    """What changed since the baseline: ['tensorrt 10.3 → 10.8', 'model file changed', ...]."""
    old, new = _block(baseline_env, "software"), _block(current_env, "software")
    changes = [f"{key} {old.get(key) or 'none'} → {new.get(key) or 'none'}"
               for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    if old_hash and new_hash and old_hash != new_hash:
        changes.append("model file changed")
    return changes


def describe_method(method: tuple[str | None, int]) -> str:
    clock, calls = method
    return f"{clock}, {calls} call(s) per sample"
