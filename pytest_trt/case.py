"""The matrix point: one model × backend × precision × batch size × device × variant."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

# Backends and their variants are declared by the backends themselves (pytest_trt.backends); the
# precisions are fixed here because the ONNX precision step and the accuracy checks know only these.
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8", "fp8")


def device_index(device: str) -> int:
    """``cuda:3`` -> 3; ``cuda`` and ``cpu`` -> 0: the one place a device string becomes an ordinal."""
    _, _, index = device.partition(":")
    if index and not index.isdigit():
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    return int(index or 0)


@dataclass(frozen=True, order=True)
class Case:
    """One benchmark case. Frozen and hashable so it can key caches and baselines.

    ``model`` is None when the test supplies its own model through an overridden ``trt_model``
    fixture: the test node id then names the case.
    """

    model: str | None
    backend: str
    precision: str
    batch_size: int
    device: str  # "cpu", "cuda:0", ...
    variant: str = "eager"  # the plain execution of a backend; left out of test ids

    @property
    def id(self) -> str:
        """Readable id used in test ids: ``digits-cnn-onnxruntime-fp32-bs8``."""
        parts = [self.model] if self.model else []
        parts += [self.backend, self.precision, f"bs{self.batch_size}"]
        if self.variant != "eager":
            parts.append(self.variant)
        return "-".join(parts)

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def device_index(self) -> int:
        return device_index(self.device)

    def reference(self) -> Case:
        """The fp32 case of the same model, batch and device that accuracy is judged against."""
        return Case(self.model, "torch", "fp32", self.batch_size, self.device)

    def to_dict(self) -> dict[str, str | int | None]:
        data: dict[str, str | int | None] = asdict(self)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Case:
        return cls(
            model=None if data.get("model") is None else str(data["model"]),
            backend=str(data["backend"]),
            precision=str(data["precision"]),
            batch_size=int(str(data["batch_size"])),
            device=str(data["device"]),
            variant=str(data.get("variant", "eager")),
        )
