"""Regenerate the weights of the small reference models: ``python -m pytest_trt.zoo.train``.

Fixed seeds, deterministic torch algorithms and one CPU thread make a rerun on the same
software reproduce the committed ``.npz`` files (other CPUs or torch versions may differ in the
last bits). ``--measure`` then reports fp32 / fp16 / int8 / fp8 task metrics of the committed
weights through real ONNX Runtime sessions (the numbers in lab/results/README-models.md).
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pytest_trt import accuracy
from pytest_trt.data import digits, scenes, shapes
from pytest_trt.model import Dataset
from pytest_trt.zoo import detector, small

if TYPE_CHECKING:
    import torch

SEED = 0


def _setup(threads: int) -> None:
    import torch

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(threads)


def _torch_runner(model: torch.nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out: np.ndarray = model(torch.from_numpy(batch.copy())).numpy()
        return out

    return run


def _fit(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    lr: float,
    class_weights: list[float] | None,
    augment: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
) -> None:
    """Adam with a one-cycle schedule over ``epochs``; batches drawn from a seeded permutation."""
    import torch

    gen = torch.Generator().manual_seed(SEED)
    inputs, labels = torch.from_numpy(np.array(x)), torch.from_numpy(np.array(y))
    weight = None if class_weights is None else torch.tensor(class_weights)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * (len(inputs) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(inputs), generator=gen)
        total = 0.0
        for i in range(len(inputs) // batch_size):
            idx = order[i * batch_size : (i + 1) * batch_size]
            batch = inputs[idx] if augment is None else augment(inputs[idx], gen)
            loss = loss_fn(model(batch), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / (len(inputs) // batch_size):.4f}", flush=True)
    model.eval()


def _shift(batch: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random translation by up to 2 pixels (digits are centred; this teaches a little slack)."""
    import torch

    dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(batch, shifts=(dy, dx), dims=(2, 3))


def train_digits() -> torch.nn.Module:
    model = small.digits_net()
    x, y = digits.train_arrays()
    _fit(model, x, y, epochs=20, batch_size=32, lr=5e-3, class_weights=None, augment=_shift)
    return model


def train_shapes() -> torch.nn.Module:
    model = small.shapes_net()
    x, y = shapes.train_arrays()
    # Background covers ~87% of the pixels; weight the shapes up so they are not ignored.
    _fit(model, x, y, epochs=8, batch_size=16, lr=1e-2, class_weights=[0.4, 1.0, 1.0, 1.0])
    return model


def _dihedral(x: np.ndarray, labels: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each image flipped and/or transposed at random (8 symmetries of the square); the boxes
    follow exactly, and every class of the scenes set maps to itself under them."""
    x, labels = x.copy(), labels.copy()
    size = x.shape[-1]
    for i, k in enumerate(rng.integers(0, 8, size=len(x))):
        real = labels[i, :, 0] >= 0
        b = labels[i, real, 1:]
        if k & 1:  # mirror left-right
            x[i], b = x[i, :, :, ::-1], np.stack([size - b[:, 2], b[:, 1], size - b[:, 0], b[:, 3]], axis=1)
        if k & 2:  # mirror top-bottom
            x[i], b = x[i, :, ::-1, :], np.stack([b[:, 0], size - b[:, 3], b[:, 2], size - b[:, 1]], axis=1)
        if k & 4:  # transpose
            x[i], b = x[i].transpose(0, 2, 1), b[:, [1, 0, 3, 2]]
        labels[i, real, 1:] = b
    return x, labels


def _fit_detector(model: torch.nn.Module, x: np.ndarray, y: np.ndarray, *, epochs: int, batch_size: int,
                  lr: float) -> None:
    """Adam with a one-cycle schedule; seeded batches and augmentation; the detector's own loss."""
    import torch

    rng = np.random.default_rng(SEED)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * (len(x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(x))
        total = 0.0
        for i in range(len(x) // batch_size):
            idx = np.sort(order[i * batch_size : (i + 1) * batch_size])
            batch, labels = _dihedral(np.asarray(x[idx]), np.asarray(y[idx]), rng)
            has, cls, box = (torch.from_numpy(a) for a in detector.targets(labels))
            loss = detector.loss(model(torch.from_numpy(batch)), has, cls, box)
            opt.zero_grad()
            torch.autograd.backward(loss)
            opt.step()
            sched.step()
            total += float(loss.detach())
        print(f"  epoch {epoch + 1}/{epochs}: loss {total / (len(x) // batch_size):.4f}", flush=True)
    model.eval()


def train_detector() -> torch.nn.Module:
    model = detector.net()
    x, y = scenes.train_arrays()
    _fit_detector(model, x, y, epochs=DETECTOR_EPOCHS, batch_size=32, lr=4e-3)
    return model


DETECTOR_EPOCHS = 30
TRAINERS: dict[str, tuple[Callable[[], torch.nn.Module], Callable[[], Dataset]]] = {
    small.DIGITS_CNN: (train_digits, digits.load),
    small.SHAPES_UNET: (train_shapes, shapes.load),
    detector.NAME: (train_detector, scenes.load),
}
ARCHITECTURES: dict[str, Callable[[], torch.nn.Module]] = {**small.ARCHITECTURES, detector.NAME: detector.net}
METRIC = {digits.NAME: "top1", shapes.NAME: "miou", scenes.NAME: "map50"}


def _score(model: torch.nn.Module, data: Dataset, split: str) -> float:
    metric = METRIC[data.name]
    x, y = getattr(data, f"{split}_x"), getattr(data, f"{split}_y")
    return accuracy.evaluate(_torch_runner(model), x, y, 64, metric, data.num_classes)


def train(names: list[str], out_dir: Path) -> None:
    for name in names:
        trainer, dataset = TRAINERS[name]
        _setup(threads=1)
        start = time.perf_counter()
        print(f"training {name} (seed {SEED}, 1 thread)", flush=True)
        model = trainer()
        seconds = time.perf_counter() - start
        data = dataset()
        path = out_dir / f"{name}.npz"
        small.save_weights(model, path)
        print(f"{name}: trained in {seconds:.1f} s; val {_score(model, data, 'val'):.4f}, "
              f"test {_score(model, data, 'test'):.4f}; wrote {path} ({path.stat().st_size} bytes)")


MEASURED = (("fp32", "minmax"), ("fp16", "minmax"), ("int8", "minmax"), ("int8", "entropy"),
            ("int8", "percentile"), ("fp8", "minmax"))


def _export(model: torch.nn.Module, sample: np.ndarray, path: Path) -> Path:
    import warnings

    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.from_numpy(np.array(sample)),), str(path), input_names=["input"],
                          output_names=["output"], dynamo=False,
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    return path


def _ort_runner(path: Path, level: str) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        out: np.ndarray = session.run(None, {"input": batch})[0]
        return out

    return run


def measure(names: list[str], weights_dir: Path, cache_dir: Path, batch_size: int = 32) -> None:
    """Test-split metric per precision through ONNX Runtime (CPU), calibrated on the calib split."""
    from pytest_trt import precision

    _setup(threads=1)
    print("| model | backend | precision | calibration | metric | test value | drop vs fp32 | "
          "rel. error vs fp32 (64 test samples) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        data = TRAINERS[name][1]()
        metric = METRIC[data.name]
        model = small.load_weights(ARCHITECTURES[name](), weights_dir / f"{name}.npz")
        torch_value = _score(model, data, "test")
        print(f"| {name} | torch | fp32 | - | {metric} | {torch_value:.4f} | - | - |", flush=True)
        fp32_path = _export(model, data.test_x[:2], cache_dir / f"{name}.onnx")
        probe = np.ascontiguousarray(data.test_x[:64])
        reference = _ort_runner(fp32_path, "ORT_ENABLE_ALL")(probe)
        fp32_value = None
        for name_precision, method in MEASURED:
            path = precision.convert(fp32_path, name_precision, cache_dir=cache_dir,
                                     calibration=np.asarray(data.calib_x), method=method)
            run = _ort_runner(path, precision.ort_optimization_level(name_precision))
            value = accuracy.evaluate(run, data.test_x, data.test_y, batch_size, metric, data.num_classes)
            fp32_value = value if fp32_value is None else fp32_value
            rel = accuracy.agreement(run(probe), reference, name_precision).rel_err
            calib = "-" if name_precision == "fp32" or name_precision == "fp16" else path.name.split("-")[-2]
            print(f"| {name} | onnxruntime-cpu | {name_precision} | {calib} | {metric} | {value:.4f} | "
                  f"{fp32_value - value:+.4f} | {rel:.2e} |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pytest_trt.zoo.train", description=__doc__)
    parser.add_argument("--model", choices=[*TRAINERS, "all"], default="all")
    parser.add_argument("--out", type=Path, default=small.WEIGHTS_DIR, help="where the .npz files go")
    parser.add_argument("--measure", action="store_true",
                        help="skip training; report metrics of the weights in --out through ONNX Runtime")
    parser.add_argument("--cache-dir", type=Path, default=Path(".pytest-trt-cache/zoo-measure"))
    args = parser.parse_args(argv)
    names = list(TRAINERS) if args.model == "all" else [args.model]
    if args.measure:
        print(f"machine: {platform.processor() or platform.machine()}, {platform.platform()}")
        measure(names, args.out, args.cache_dir)
    else:
        train(names, args.out)


if __name__ == "__main__":
    main()
