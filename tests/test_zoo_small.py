"""The two small trained reference models and their committed weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pytest_trt import zoo
from pytest_trt.accuracy import evaluate
from pytest_trt.zoo import small

torch = pytest.importorskip("torch")


def test_specs_describe_trained_models_with_data() -> None:
    specs = {spec.name: spec for spec in small.specs()}
    assert set(specs) == {"digits-cnn", "shapes-unet"}
    assert specs["digits-cnn"].task == "classification" and specs["digits-cnn"].metric == "top1"
    assert specs["shapes-unet"].task == "segmentation" and specs["shapes-unet"].metric == "miou"
    for spec in specs.values():
        assert spec.trained and spec.dataset is not None
        assert spec.dataset().test_x.shape[1:] == spec.input_shape
    assert "digits-cnn" in zoo.names() and zoo.get("shapes-unet").trained


@pytest.mark.parametrize("name", ["digits-cnn", "shapes-unet"])
def test_weights_are_small_and_load_strictly(name: str) -> None:
    path = small.weights_path(name)
    assert path.is_file() and path.stat().st_size < 1_000_000
    model = small.build(name)
    assert not model.training
    spec = zoo.get(name)
    out = model(torch.from_numpy(spec.example_inputs(2)))
    classes = spec.dataset().num_classes if spec.dataset else 0
    assert out.shape[:2] == (2, classes)


def test_missing_weights_say_how_to_regenerate(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="python -m pytest_trt.zoo.train"):
        small.load_weights(small.digits_net(), tmp_path / "none.npz")


def _torch_run(model: torch.nn.Module):  # type: ignore[no-untyped-def]
    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = model(torch.from_numpy(np.array(batch))).numpy()
        return out

    return run


def test_digits_cnn_is_accurate_on_the_test_split() -> None:
    d = small.digits.load()
    value = evaluate(_torch_run(small.build("digits-cnn")), d.test_x, d.test_y, 64, "top1", d.num_classes)
    assert value >= 0.97  # measured 0.9911 (lab/results/README-models.md)


def test_shapes_unet_is_good_but_not_perfect() -> None:
    d = small.shapes.load()
    value = evaluate(_torch_run(small.build("shapes-unet")), d.test_x[:256], d.test_y[:256], 64, "miou",
                     d.num_classes)
    assert 0.6 <= value < 0.95  # a real task: far above chance, below perfect


def test_training_is_deterministic() -> None:
    from pytest_trt.zoo import train

    def one_run() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        train._setup(threads=1)
        model = small.digits_net()
        initial = model.state_dict()["0.0.weight"].clone()
        x, y = small.digits.train_arrays()
        train._fit(model, x[:64], y[:64], epochs=1, batch_size=32, lr=1e-2, class_weights=None,
                   augment=train._shift)
        return model.state_dict(), initial

    (first, initial), (second, _) = one_run(), one_run()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["0.0.weight"], initial)  # it did train
