"""CPU forward-pass benchmark for the Vim family: Vim-S and ZeroMamba-Vim-S vs timm's resnet101,
448 x 448, batch 1 (the zero-shot resolution; Vim-S then runs 785 tokens through 24 layers).

Prints one JSON document: milliseconds per forward for ``vim_small`` (1000-way head, built at 448
so its position embedding covers the 28 x 28 patch grid) and ``zeromamba_vim_small`` (312
attributes) with the default mixer backend (``auto``: the fused C kernels on CPU), optionally
with the pure-PyTorch backend, and for ``resnet101``, all in this one process. The models run in
interleaved rounds (one call each per round, after a warm-up call) so that the load drifts of a
shared machine hit every model alike; ratios to resnet101 are given from the best times and as
the median of the per-round ratios. The target: at most 2x resnet101's time.

    python benchmarks/cpu_forward_vim.py --threads 2 --rounds 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import timm
import torch

import zeromamba
from zeromamba.ops.mixer_cpu import mixer_cpu_status


def timed_rounds(models: dict[str, torch.nn.Module], x: torch.Tensor, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for m in models.values():
            m(x)  # warm-up: kernel build and self-check, allocator
        for _ in range(rounds):
            for name, m in models.items():
                t = time.perf_counter()
                m(x)
                times[name].append((time.perf_counter() - t) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--with-torch-backend", action="store_true", help="also time the pure-PyTorch mixer (slow)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    models: dict[str, torch.nn.Module] = {
        "resnet101": timm.create_model("resnet101").eval(),
        "vim_small": zeromamba.create_model("vim_small", img_size=args.size).eval(),
        "zeromamba_vim_small": zeromamba.create_model(
            "zeromamba_vim_small", img_size=args.size, num_attributes=312
        ).eval(),
    }
    if args.with_torch_backend:
        slow = zeromamba.create_model("vim_small", img_size=args.size).eval()
        slow.set_scan_backend("torch")
        models["vim_small_torch_backend"] = slow
    times = timed_rounds(models, torch.randn(1, 3, args.size, args.size), args.rounds)
    best = {name: round(min(t), 1) for name, t in times.items()}
    ratios = {}
    for name in models:
        if name == "resnet101":
            continue
        per_round = [a / b for a, b in zip(times[name], times["resnet101"])]
        ratios[f"{name}_vs_resnet101"] = round(best[name] / best["resnet101"], 2)
        ratios[f"{name}_vs_resnet101_median_of_rounds"] = round(statistics.median(per_round), 2)
    print(
        json.dumps(
            {
                "benchmark": "cpu_forward_vim_batch1",
                "input": [1, 3, args.size, args.size],
                "torch": torch.__version__,
                "timm": timm.__version__,
                "threads": args.threads,
                "cpu_count": os.cpu_count(),
                "machine": platform.machine(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "mixer_cpu_kernels": mixer_cpu_status(),
                "rounds": args.rounds,
                "best_ms": best,
                "ratios": ratios,
                "target": "vim_small and zeromamba_vim_small at most 2x resnet101",
                "all_ms": {name: [round(v, 1) for v in t] for name, t in times.items()},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
