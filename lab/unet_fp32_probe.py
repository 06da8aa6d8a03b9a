"""Which layer of the zoo's UNet goes wrong in fp32 at batch 256 (session 6's ACCURACY-FAILED cell).

Session 6 ran UNet torch fp32 at batch 256 (with expandable segments, else it is OOM) and its outputs
disagreed with the fp32 reference: relative error 0.39, while fp16 at batch 256 agreed to 9e-4. At
batch 256 the top level's tensors hold 256×64×512×512 = 2^32 elements, past 32-bit indexing.

This probe runs the model once per cuDNN setting (benchmark off, then on) with a forward hook on
every layer whose input or output has 2^31 elements or more. The hook re-runs that layer alone on
single items of its own input and compares, so a wrong layer is found where it is, not where its
error lands. The whole model's items are then compared with the model run on those items alone.

    PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True python lab/unet_fp32_probe.py --out probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pytest_trt.mathmode import tf32
from pytest_trt.zoo.vision import vision_spec

ITEMS = (0, 85, 127, 128, 170, 255)  # 128 items of 2^24 elements each fill 2^31: both sides of it


def rel_err(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref.double()).norm() / ref.double().norm().clamp_min(1e-30))


def probe(model: torch.nn.Module, x: torch.Tensor, benchmark: bool, huge: int) -> dict[str, Any]:
    torch.backends.cudnn.benchmark = benchmark
    rows: list[dict[str, Any]] = []

    def hook(name: str) -> Any:
        def check(module: torch.nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
            inp = args[0]
            if max(inp.numel(), output.numel()) < huge or isinstance(module, torch.nn.ReLU):
                return  # ReLU runs in place: its input is already its output
            # forward(), not __call__: the hook must not run on its own single-item calls
            errors = [rel_err(output[i:i + 1], module.forward(inp[i:i + 1])) for i in ITEMS]
            rows.append({"layer": name, "type": type(module).__name__, "input": list(inp.shape),
                         "output": list(output.shape), "rel_err": errors})
        return check

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children())]
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            out = model(x)
            sync(x.device)
            seconds = time.perf_counter() - start
            picked = out[list(ITEMS)].clone()
            del out
            empty_cache(x.device)
    finally:
        for handle in handles:
            handle.remove()
    with torch.inference_mode():
        alone = [rel_err(picked[k:k + 1], model(x[i:i + 1])) for k, i in enumerate(ITEMS)]
    empty_cache(x.device)
    peak = torch.cuda.max_memory_allocated() if x.is_cuda else None
    return {"cudnn_benchmark": benchmark, "forward_s": seconds, "items": list(ITEMS), "model_rel_err": alone,
            "peak_memory_bytes": peak, "layers": rows}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the per-layer errors")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cuda", help="cuda, or cpu for a dry run with a small --huge")
    parser.add_argument("--huge", type=int, default=2**31, help="check layers with this many elements or more")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("unet_fp32_probe: --device cuda needs a CUDA GPU", file=sys.stderr)
        return 2
    if max(ITEMS) >= args.batch_size:
        print(f"unet_fp32_probe: --batch-size must exceed {max(ITEMS)} (items {ITEMS} are checked)", file=sys.stderr)
        return 2
    spec = vision_spec("unet")
    model = spec.build().to(args.device).eval()
    x = torch.from_numpy(spec.example_inputs(args.batch_size)).to(args.device)
    gpu = torch.cuda.get_device_name(x.device) if x.is_cuda else None
    report: dict[str, Any] = {
        "gpu": gpu, "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(),
        "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"), "batch_size": args.batch_size, "runs": []}
    with tf32(False):
        for benchmark in (False, True):
            run = probe(model, x, benchmark, args.huge)
            report["runs"].append(run)
            args.out.write_text(json.dumps(report, indent=1))  # a cut second run keeps the first
            bad = [r for r in run["layers"] if max(r["rel_err"]) > 1e-4]
            print(f"cudnn.benchmark={benchmark}: forward {run['forward_s']:.1f} s, model rel err per item "
                  f"{np.round(run['model_rel_err'], 4).tolist()}; {len(run['layers'])} huge layers checked, "
                  f"{len(bad)} off by > 1e-4:")
            for row in bad:
                print(f"  {row['layer']} {row['type']} {row['input']} -> {row['output']}: "
                      f"{np.round(row['rel_err'], 4).tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
