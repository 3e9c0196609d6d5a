"""Packed against plain linear weights (``ZEROMAMBA_PACK_WEIGHTS``) in one process, pass by pass.

One model, one input; the two settings alternate forward pass by forward pass (which goes first
alternates too), so a shared machine's load drifts reach both alike and the ratio of each pair is
a clean comparison even where absolute times wander by 10-20%. The JSON gives per build
(``--builds``, by default ``native`` and, on an AVX-512 CPU, ``avx2``: see ``benchmarks/machine.py``)
both medians, the median and range of the per-pair ratios packed / plain, that the two settings gave
the same output, and the resident memory the packed copies add.

    python benchmarks/packed_weights.py --size 448 --pairs 16 \
        --out benchmarks/results/packed_weights_<date>.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import time
from pathlib import Path

import torch
from machine import add_builds_argument, default_builds, machine_info, run_per_build, write_report

import zeromamba.models  # noqa: F401  (registers the architectures with timm)
from zeromamba.ops.packed_weights import packed_weight_count


def _rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(arch: str, size: int, batch: int, pairs: int, threads: int) -> dict:
    """Time ``pairs`` alternating pairs of forward passes, plain and packed, in this process."""
    import timm

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = timm.create_model(arch).eval()
    x = torch.randn(batch, 3, size, size)
    times: dict[str, list[float]] = {"plain": [], "packed": []}
    outputs = {}
    with torch.inference_mode():
        for setting in ("plain", "packed"):  # warm-up; the first packed pass makes the copies
            os.environ["ZEROMAMBA_PACK_WEIGHTS"] = "1" if setting == "packed" else "0"
            before = _rss_mib()
            outputs[setting] = model.forward_features(x)
            model.forward_features(x)
            if setting == "packed":
                added_mib = _rss_mib() - before
        for i in range(pairs):
            for setting in ("plain", "packed") if i % 2 == 0 else ("packed", "plain"):
                os.environ["ZEROMAMBA_PACK_WEIGHTS"] = "1" if setting == "packed" else "0"
                t = time.perf_counter()
                model(x)
                times[setting].append(time.perf_counter() - t)
    ratios = [b / a for a, b in zip(times["plain"], times["packed"])]
    return {
        "arch": arch,
        "input": [batch, 3, size, size],
        "threads": threads,
        "pairs": pairs,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "packed_copies": packed_weight_count(),
        "same_output": bool(torch.equal(outputs["plain"], outputs["packed"])),
        "max_abs_difference": float((outputs["plain"] - outputs["packed"]).abs().max()),
        "rss_added_by_packing_mib": round(added_mib, 1),
        "plain_ms_median": round(statistics.median(times["plain"]) * 1e3, 1),
        "packed_ms_median": round(statistics.median(times["packed"]) * 1e3, 1),
        "packed_over_plain": round(statistics.median(ratios), 3),
        "packed_over_plain_range": [round(min(ratios), 3), round(max(ratios), 3)],
        "machine": machine_info(kernels=True),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="zeromamba_small")
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--pairs", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    add_builds_argument(ap)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.single:
        print(json.dumps(measure(args.arch, args.size, args.batch, args.pairs, args.threads)))
        return
    builds = args.builds or default_builds()
    argv = ["--single", "--arch", args.arch, "--size", str(args.size), "--batch", str(args.batch)]
    argv += ["--pairs", str(args.pairs), "--threads", str(args.threads)]
    report: dict[str, object] = {"benchmark": "packed_weights", "machine": machine_info(), "builds_run": builds}
    report["builds"] = run_per_build(str(Path(__file__).resolve()), argv, builds)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
