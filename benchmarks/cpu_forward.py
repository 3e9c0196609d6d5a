"""CPU forward-pass benchmark: ZeroMamba-small vs timm's resnet101 and vit_small, batch 1.

Prints one JSON document: milliseconds per forward (best of ``--repeats`` rounds after a warm-up)
at each input size, for ZeroMamba-small with the default scan backend (``auto``), the pure-PyTorch
backend and the reference backend, for timm's ``resnet101`` and ``vit_small_patch16_224``, all in
this one process. The models are timed in interleaved rounds (one call each per round), and the
ratios to resnet101 are given both from the best times and as the median of per-round ratios, so
that load drifts on a shared, noisy machine affect both sides alike.

    python benchmarks/cpu_forward.py --threads 2 --sizes 224 448
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
from zeromamba.ops import kernel_status


def once_ms(model: torch.nn.Module, x: torch.Tensor) -> float:
    t = time.perf_counter()
    model(x)
    return (time.perf_counter() - t) * 1000


def interleaved(models: dict[str, torch.nn.Module], size: int, rounds: int) -> dict[str, list[float]]:
    """Time every model once per round, round after round, so that the machine's load drifts
    affect all of them alike; a warm-up call per model first."""
    x = torch.randn(1, 3, size, size)
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for m in models.values():
            m(x)
        for _ in range(rounds):
            for name, m in models.items():
                times[name].append(once_ms(m, x))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 448])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reference-repeats", type=int, default=1, help="the reference scan is slow")
    ap.add_argument("--skip-reference", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    zm_auto = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval()
    zm_torch = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval()
    zm_torch.load_state_dict(zm_auto.state_dict())
    zm_torch.set_scan_backend("torch")
    resnet = timm.create_model("resnet101").eval()
    results: dict[str, dict[str, float]] = {}
    for size in args.sizes:
        vit = timm.create_model("vit_small_patch16_224", img_size=size).eval()
        models = {
            "resnet101": resnet,
            "vit_small": vit,
            "zeromamba_small_auto": zm_auto,
            "zeromamba_small_torch": zm_torch,
        }
        times = interleaved(models, size, args.repeats)
        row: dict[str, float] = {f"{name}_ms": round(min(t), 1) for name, t in times.items()}
        for name in ("auto", "torch"):
            ratios = [z / r for z, r in zip(times[f"zeromamba_small_{name}"], times["resnet101"])]
            row[f"{name}_vs_resnet101"] = round(row[f"zeromamba_small_{name}_ms"] / row["resnet101_ms"], 2)
            row[f"{name}_vs_resnet101_median_of_rounds"] = round(statistics.median(ratios), 2)
        row["auto_vs_vit_small"] = round(row["zeromamba_small_auto_ms"] / row["vit_small_ms"], 2)
        if not args.skip_reference:
            zm_auto.set_scan_backend("reference")
            ref = interleaved({"reference": zm_auto}, size, args.reference_repeats)["reference"]
            zm_auto.set_scan_backend("auto")
            row["zeromamba_small_reference_ms"] = round(min(ref), 1)
            for name in ("auto", "torch"):
                row[f"{name}_speedup_over_reference"] = round(min(ref) / row[f"zeromamba_small_{name}_ms"], 1)
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
