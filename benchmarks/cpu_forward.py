"""CPU forward-pass benchmark: ZeroMamba-small vs timm's resnet101 and vit_small, batch 1.

Prints one JSON document: milliseconds per forward (best of ``--repeats`` after a warm-up) at
each input size, for ZeroMamba-small with the default scan backend (``auto``), the pure-PyTorch
backend and the reference backend, for timm's ``resnet101`` and ``vit_small_patch16_224``, all in
this one process so the ratios compare like with like on a shared, noisy machine.

    python benchmarks/cpu_forward.py --threads 2 --sizes 224 448
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import timm
import torch

import zeromamba
from zeromamba.ops import kernel_status


def best_ms(model: torch.nn.Module, size: int, repeats: int) -> float:
    x = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        model(x)  # warm-up (builds caches, first-touch of buffers)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    return round(min(times) * 1000, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 448])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--reference-repeats", type=int, default=1, help="the reference scan is slow")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    zm = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval()
    resnet = timm.create_model("resnet101").eval()
    results: dict[str, dict[str, float]] = {}
    for size in args.sizes:
        vit = timm.create_model("vit_small_patch16_224", img_size=size).eval()
        row: dict[str, float] = {}
        row["resnet101_ms"] = best_ms(resnet, size, args.repeats)
        row["vit_small_ms"] = best_ms(vit, size, args.repeats)
        zm.set_scan_backend("auto")
        row["zeromamba_small_auto_ms"] = best_ms(zm, size, args.repeats)
        zm.set_scan_backend("torch")
        row["zeromamba_small_torch_ms"] = best_ms(zm, size, args.repeats)
        if not args.skip_reference:
            zm.set_scan_backend("reference")
            row["zeromamba_small_reference_ms"] = best_ms(zm, size, args.reference_repeats)
        zm.set_scan_backend("auto")
        row["resnet101_ms_again"] = best_ms(resnet, size, args.repeats)  # drift check on a shared box
        r = min(row["resnet101_ms"], row["resnet101_ms_again"])
        row["auto_vs_resnet101"] = round(row["zeromamba_small_auto_ms"] / r, 2)
        row["torch_vs_resnet101"] = round(row["zeromamba_small_torch_ms"] / r, 2)
        row["auto_vs_vit_small"] = round(row["zeromamba_small_auto_ms"] / row["vit_small_ms"], 2)
        if "zeromamba_small_reference_ms" in row:
            row["auto_speedup_over_reference"] = round(
                row["zeromamba_small_reference_ms"] / row["zeromamba_small_auto_ms"], 1
            )
            row["torch_speedup_over_reference"] = round(
                row["zeromamba_small_reference_ms"] / row["zeromamba_small_torch_ms"], 1
            )
        results[str(size)] = row
    print(
        json.dumps(
            {
                "benchmark": "cpu_forward_batch1",
                "torch": torch.__version__,
                "timm": timm.__version__,
                "threads": args.threads,
                "cpu_count": os.cpu_count(),
                "machine": platform.machine(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "fused_cpu_kernel": kernel_status(),
                "repeats": args.repeats,
                "results_ms": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
