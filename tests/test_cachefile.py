"""Cached files are checked against the hash recorded when they were written; names stay inside the cache."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from pytest_trt import cachefile
from pytest_trt.model import ModelSpec

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")


class Tiny(torch.nn.Module):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


@pytest.mark.parametrize("name", ["../../etc/passwd", "..", ".", "a/b\\c", "x\x00y", "é" * 200, ""])
def test_a_safe_name_is_one_file_name_component(tmp_path: Path, name: str) -> None:
    safe = cachefile.safe_name(name)
    assert safe not in ("", ".", "..") and "/" not in safe and "\\" not in safe and len(safe) <= 80
    assert (tmp_path / safe).resolve().parent == tmp_path.resolve()


def test_long_names_that_share_a_prefix_stay_apart() -> None:
    assert cachefile.safe_name("m" * 100 + "a") != cachefile.safe_name("m" * 100 + "b")


def _entry(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "entry.bin"
    path.write_bytes(data)
    cachefile.record(path, source=path)
    return path


@pytest.mark.parametrize("damage", ["truncate", "flip", "no-hash"])
def test_a_damaged_entry_is_removed_with_a_warning(tmp_path: Path, damage: str) -> None:
    path = _entry(tmp_path, b"0123456789" * 100)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:500])
    elif damage == "flip":
        data = bytearray(path.read_bytes())
        data[3] ^= 0x40
        path.write_bytes(bytes(data))
    else:
        cachefile.sidecar(path).unlink()
    with pytest.warns(cachefile.CacheWarning, match="entry.bin .*rebuilding it"):
        assert not cachefile.verified(path)
    assert not path.exists() and not cachefile.sidecar(path).exists()


def test_bytes_read_once_are_the_bytes_checked(tmp_path: Path) -> None:
    path = tmp_path / "table.bin"
    cachefile.write_recorded(path, b"scales")
    assert cachefile.read_verified(path) == b"scales"
    path.write_bytes(b"scaleS")
    with pytest.warns(cachefile.CacheWarning, match="does not match"):
        assert cachefile.read_verified(path) is None
    assert not path.exists() and cachefile.read_verified(path) is None


def test_an_intact_entry_is_used_without_a_warning(tmp_path: Path) -> None:
    path = _entry(tmp_path, b"intact")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cachefile.verified(path)


def _export(tmp_path: Path, name: str = "tiny") -> tuple[Path, dict[str, object]]:
    from pytest_trt.export import export_onnx

    torch.manual_seed(0)
    return export_onnx(ModelSpec(name=name, build=Tiny, input_shape=(4,)), Tiny().eval(), tmp_path)


def test_a_truncated_onnx_export_is_exported_again(tmp_path: Path) -> None:
    import onnx

    path, info = _export(tmp_path)
    assert info["export_cached"] is False
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # a disk that filled, a copy that was cut short
    with pytest.warns(cachefile.CacheWarning, match="does not match the content hash"):
        again, info = _export(tmp_path)
    assert again == path and info["export_cached"] is False
    onnx.checker.check_model(onnx.load(str(again)))
    assert _export(tmp_path)[1]["export_cached"] is True  # and the rebuilt one is used from then on


def test_a_model_name_cannot_place_an_export_outside_the_cache(tmp_path: Path) -> None:
    path, _ = _export(tmp_path / "cache", name="../../outside")
    assert path.resolve().parent == (tmp_path / "cache" / "onnx").resolve()
    assert list(tmp_path.iterdir()) == [tmp_path / "cache"]


def test_a_converted_model_with_a_flipped_byte_is_converted_again(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    from pytest_trt import precision

    path, _ = _export(tmp_path)
    fp16 = precision.convert(path, "fp16", cache_dir=tmp_path / "fp16")
    data = bytearray(fp16.read_bytes())
    data[-5] ^= 0x01
    fp16.write_bytes(bytes(data))
    with pytest.warns(cachefile.CacheWarning):
        again = precision.convert(path, "fp16", cache_dir=tmp_path / "fp16")
    assert again == fp16 and cachefile.problem(again) is None


def test_an_ort_profile_of_a_model_named_with_dot_dots_stays_in_the_cache(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import numpy as np

    from pytest_trt.backends.ort import OnnxRuntimeRunner
    from pytest_trt.case import Case

    path, _ = _export(tmp_path / "export")
    cache = tmp_path / "deep" / "cache"
    runner = OnnxRuntimeRunner(Case("../../../escaped", "onnxruntime", "fp32", 1, "cpu"), path, cache_dir=cache)
    runner.prepare()
    summary = runner.profile(np.zeros((1, 4), dtype=np.float32), runs=2)
    trace = Path(summary["trace"]).resolve()
    assert trace.parent == (cache / "ort-profiles").resolve() and trace.is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "export"]
    assert list((tmp_path / "deep").iterdir()) == [cache]
