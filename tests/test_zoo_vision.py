"""Vision zoo: specs list without torchvision; the UNet builds, exports, runs in ONNX Runtime and its
FLOPs match an independent count from forward hooks. torchvision models are built only where
torchvision is installed (not on this CPU host)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_trt.flops import count_flops
from pytest_trt.model import ModelSpec
from pytest_trt.zoo import vision

torch = pytest.importorskip("torch")

HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
ROOT = Path(__file__).resolve().parents[1]


def test_specs_list_every_model_without_importing_torch() -> None:
    code = (
        "import sys; from pytest_trt.zoo import vision; print(','.join(s.name for s in vision.specs()));"
        "print([m for m in ('torch', 'torchvision') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(ROOT)},
    )
    names, imported = out.stdout.strip().splitlines()
    assert names.split(",") == [
        "resnet50", "vgg16", "densenet201", "mobilenet_v3_large", "deeplabv3_resnet50", "unet",
    ]  # fmt: skip
    assert imported == "[]"


def test_spec_fields() -> None:
    by_name = {spec.name: spec for spec in vision.specs()}
    for name in ("resnet50", "vgg16", "densenet201", "mobilenet_v3_large"):
        assert by_name[name].task == "classification" and by_name[name].metric == "top1"
        assert by_name[name].input_shape == (3, 224, 224)
    for name in ("deeplabv3_resnet50", "unet"):
        assert by_name[name].task == "segmentation" and by_name[name].metric == "miou"
        assert by_name[name].input_shape == (3, 512, 512)
    for spec in by_name.values():
        assert spec.trained is False and spec.dataset is None
        assert spec.extra is not None
        assert spec.extra["gpu_only"] is (spec.name != "mobilenet_v3_large")
        assert spec.extra["requires"] == ([] if spec.name == "unet" else ["torchvision"])


def test_registry_finds_the_vision_models() -> None:
    from pytest_trt import zoo

    assert zoo.get("unet").input_shape == (3, 512, 512)
    assert {"resnet50", "deeplabv3_resnet50"} <= set(zoo.names())


def test_bad_names_and_weights_paths() -> None:
    with pytest.raises(ValueError, match="unknown vision model 'resnet18'"):
        vision.vision_spec("resnet18")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        vision.vision_spec("unet", "missing.pt")


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed here")
def test_torchvision_model_without_torchvision_says_so() -> None:
    with pytest.raises(ModuleNotFoundError, match="needs torchvision"):
        vision.vision_spec("resnet50").build()


def test_unet_spec_builds_seeded_and_keeps_size() -> None:
    spec = vision.vision_spec("unet", seed=3)
    model = spec.build()
    assert not model.training
    again = spec.build()
    other = vision.vision_spec("unet", seed=4).build()
    first = next(model.parameters())
    assert torch.equal(first, next(again.parameters()))
    assert not torch.equal(first, next(other.parameters()))
    with torch.no_grad():
        out = model(torch.from_numpy(ModelSpec.example_inputs(spec, 1)[:, :, :64, :64].copy()))
    assert out.shape == (1, vision.SEGMENTATION_CLASSES, 64, 64)
    assert (
        torch.isfinite(out).all() and 0.05 < float(out.std()) < 20
    )  # activations neither vanish nor explode


def _small_unet() -> Any:
    torch.manual_seed(0)
    model = vision.build_unet(base=8, depth=3).eval()
    with torch.no_grad():  # trained-looking batch-norm statistics, so BN is not an identity
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


def _hook_flops(model: Any, x: Any) -> int:
    """Independent count from the modules: 2 × MACs, plus one add per conv output for its bias.

    Every conv in the UNet either has a bias or is followed by a BatchNorm that the ONNX exporter
    folds into a bias, so each conv output element carries one add.
    """
    total = 0

    def hook(module: Any, inputs: Any, output: Any) -> None:
        nonlocal total
        k = int(np.prod(module.kernel_size))
        if isinstance(module, torch.nn.ConvTranspose2d):
            macs = inputs[0].numel() * (module.out_channels // module.groups) * k
        else:
            macs = output.numel() * (module.in_channels // module.groups) * k
        total += 2 * macs + output.numel()

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)
    ]
    with torch.no_grad():
        model(x)
    for handle in handles:
        handle.remove()
    return total


def test_small_unet_exports_runs_in_onnxruntime_and_counts(tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    model = _small_unet()
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32))
    path = tmp_path / "unet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (x,), str(path), dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}}
        )

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        want = model(x).numpy()
    assert got.shape == (2, vision.SEGMENTATION_CLASSES, 32, 32)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)

    one = _hook_flops(model, x[:1])
    assert count_flops(path, 1) == one
    assert count_flops(path, 4) == 4 * one


def test_weights_file_round_trip(tmp_path: Path) -> None:
    source = _small_unet()
    target = vision.build_unet(base=8, depth=3)
    pt = tmp_path / "unet.pt"
    torch.save({"state_dict": source.state_dict()}, pt)
    vision.load_weights(target, pt, "unet")
    want, got = source.state_dict(), target.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)

    npz = tmp_path / "unet.npz"
    np.savez(npz, **{k: v.numpy() for k, v in source.state_dict().items()})
    fresh = vision.build_unet(base=8, depth=3)
    vision.load_weights(fresh, npz, "unet")
    assert torch.equal(fresh.state_dict()["head.weight"], source.state_dict()["head.weight"])

    with pytest.raises(ValueError, match="does not fit model 'unet'"):
        vision.load_weights(vision.build_unet(base=4, depth=3), pt, "unet")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt"):
        vision.load_weights(target, junk, "unet")


def test_spec_with_weights_is_marked_trained(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    path.write_bytes(b"")
    spec = vision.vision_spec("unet", path)
    assert spec.trained is True
    assert spec.extra is not None and spec.extra["weights"] == str(path)


@pytest.mark.skipif(not HAS_TORCHVISION, reason="needs torchvision (no CPU wheel on this host)")
@pytest.mark.parametrize(
    "name", ["resnet50", "vgg16", "densenet201", "mobilenet_v3_large", "deeplabv3_resnet50"]
)
def test_torchvision_models_build_and_run(name: str) -> None:
    spec = vision.vision_spec(name)
    model = spec.build()
    x = torch.from_numpy(spec.example_inputs(1))
    with torch.no_grad():
        out = model(x)
    assert isinstance(out, torch.Tensor)  # deeplab's dict is unwrapped to its "out" tensor
    if spec.task == "classification":
        assert out.shape == (1, 1000)
    else:
        assert out.shape == (1, vision.SEGMENTATION_CLASSES, 512, 512)
