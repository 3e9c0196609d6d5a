"""The fused CPU scan kernel alone, at ZeroMamba-S's four stage shapes (448 x 448, batch 1).

Prints one JSON document: per stage, the kernel's median milliseconds, nanoseconds per
(channel, position, direction) step, and its total over the stage's blocks; the sum is the scan's
share of a forward pass, without the rest of the model around it.

    python benchmarks/scan_kernel.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from zeromamba.ops.fused_cpu import kernel_build, kernel_status, ss2d_scan_dstate1

#: (feature grid side, d_inner, dt_rank, blocks) of ZeroMamba-S's stages at 448 x 448
STAGES = ((112, 192, 6, 2), (56, 384, 12, 2), (28, 768, 24, 15), (14, 1536, 48, 2))


def median_ms(args: tuple, repeats: int) -> float:
    for _ in range(3):
        ss2d_scan_dstate1(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        ss2d_scan_dstate1(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    stages, total = [], 0.0
    for side, d, rank, blocks in STAGES:
        length = side * side
        u = torch.randn(1, length, d, generator=g)
        xdbl = torch.randn(1, length, 4, rank + 2, generator=g) * 0.3
        w_dt = torch.randn(4, rank, d, generator=g) * 0.2
        bias = torch.randn(4, d, generator=g) * 0.5
        a = -torch.rand(4, d, generator=g)
        skip = torch.randn(d, generator=g)
        ms = median_ms((u, xdbl, w_dt, bias, a, skip, side, side), args.repeats)
        steps = 4 * length * d
        stages.append(
            {
                "grid": side,
                "d_inner": d,
                "dt_rank": rank,
                "blocks": blocks,
                "ms": round(ms, 2),
                "ns_per_step": round(ms * 1e6 / steps, 3),
                "stage_ms": round(ms * blocks, 1),
            }
        )
        total += ms * blocks
    report = {
        "benchmark": "scan_kernel",
        "torch": torch.__version__,
        "threads": args.threads,
        "kernel": kernel_status(),
        "build": kernel_build(),
        "stages": stages,
        "total_ms": round(total, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
