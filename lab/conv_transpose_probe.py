"""One ConvTranspose2d, the UNet's top upsampling, at sizes around 2^31 output elements.

`unet_fp32_probe.py` found the UNet's two top ConvTranspose2d layers wrong at batch 256 in fp32
(outputs of 2^31 and 2^32 elements), with or without cuDNN autotuning, while a first run of a
128→64 layer alone at batch 128 and 256 was right in every dtype and setting. This runs the UNet's
own shapes alone, each configuration in a fresh process (PyTorch caches cuDNN's algorithm choice per
shape, whatever the benchmark flag), and compares items of the batch with the layer run on each
item alone, with ample memory and with the device nearly full.

    python lab/conv_transpose_probe.py --out conv_transpose_probe.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

# The UNet's two top upsamplings at batch 256: up.2 maps 256×128×128 to 128×256×256 per item (output
# 2^31 elements at batch 256), up.3 maps 128×256×256 to 64×512×512 (2^32). "filler" leaves only
# 256 MiB free besides the output, as in the model near the top of its memory; "expandable" runs the
# child with PyTorch's expandable segments, as the model had to be.
UP2, UP3 = [256, 128, 128], [128, 64, 256]  # lists: what a JSON round trip gives back
BASE: dict[str, Any] = {"layer": UP2, "dtype": "fp32", "batch": 256, "benchmark": False, "cudnn": True,
                        "layout": "nchw", "filler": False, "expandable": False}
CONFIGS: list[dict[str, Any]] = [BASE | change for change in (
    {}, {"layer": UP3}, {"filler": True}, {"layer": UP3, "filler": True}, {"expandable": True},
    {"expandable": True, "filler": True}, {"batch": 128}, {"batch": 128, "filler": True},
    {"benchmark": True}, {"cudnn": False}, {"layout": "nhwc"}, {"dtype": "tf32"}, {"dtype": "fp16"},
    {"dtype": "fp16", "filler": True}, {"layer": [128, 64, 256], "batch": 128},
)]


def one(config: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process; per-item relative errors of the batched layer."""
    import torch

    dtype, batch, (cin, cout, hw) = config["dtype"], config["batch"], config["layer"]
    torch.backends.cudnn.benchmark, torch.backends.cudnn.enabled = config["benchmark"], config["cudnn"]
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
    kind = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(dtype, torch.float32)
    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(cin, cout, 2, stride=2).cuda().to(kind).eval()
    x = torch.randn(batch, cin, hw, hw, device="cuda").to(kind)
    if config["layout"] == "nhwc":
        layer, x = layer.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    items = sorted({0, batch // 2 - 1, batch // 2, batch - 1})
    refs = {i: layer(x[i:i + 1]).double().cpu() for i in items}  # before the filler: ample memory
    filler = None
    if config["filler"]:
        out_bytes = batch * cout * (2 * hw) ** 2 * x.element_size()
        free = torch.cuda.mem_get_info()[0]
        filler = torch.empty(max(free - out_bytes - 2**28, 0), dtype=torch.uint8, device="cuda")
    with torch.inference_mode():
        out = layer(x)
        free_after = torch.cuda.mem_get_info()[0]
        del filler
        errors = [float((out[i:i + 1].double().cpu() - refs[i]).norm() / refs[i].norm()) for i in items]
        zero_items = int((out.flatten(1).abs().amax(dim=1) == 0).sum())
    return config | {"output_elements": out.numel(), "items": items, "rel_err": errors,
                     "all_zero_items": zero_items, "free_after_gib": free_after / 2**30}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="JSON file for every configuration's errors")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process's configuration, as JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return 0
    if args.out is None:
        parser.error("--out is required")
    rows = []
    for config in CONFIGS:
        env = os.environ | ({"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"} if config["expandable"] else {})
        done = subprocess.run([sys.executable, __file__, "--one", json.dumps(config)], capture_output=True,
                              text=True, check=False, env=env)
        row = json.loads(done.stdout) if done.returncode == 0 else {
            "config": config, "error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        rows.append(row)
        args.out.write_text(json.dumps(rows, indent=1))
        print(row if "error" in row else
              f"{ {k: v for k, v in row.items() if k in BASE and v != BASE[k]} or 'base'}: "
              f"{row['output_elements']} elements, rel err per item {[round(e, 4) for e in row['rel_err']]} "
              f"(items {row['items']}), all-zero items {row['all_zero_items']}, "
              f"{row['free_after_gib']:.2f} GiB free after", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
