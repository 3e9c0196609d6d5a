"""A/B eager CPU forward time of one architecture between two checkouts of zeromamba.

Each round starts one process per checkout (``PYTHONPATH`` set to it; A first in even rounds, B in
odd ones), and each process builds the model, warms up and times ``--runs`` forward passes
(``torch.inference_mode``; ``--clock cpu`` with ``--threads 1``: CPU time, which others' load hardly moves);
the round's ratio is B's median over A's (and B's best over A's best). Rounds interleave so that a
shared machine's load drifts reach both sides alike; the load average before and after is recorded.

    python benchmarks/ab_forward.py /path/to/main /path/to/branch --arch zeromamba_small --size 224 \
        --out benchmarks/results/ab_forward_<date>.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from machine import machine_info

_CHILD = r"""
import json, statistics, sys, time
import torch, timm
import zeromamba, zeromamba.models
arch, size, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
clock = time.process_time if sys.argv[5] == "cpu" else time.perf_counter
torch.set_num_threads(threads)
torch.manual_seed(0)
model = timm.create_model(arch).eval()
x = torch.randn(1, 3, size, size)
times = []
with torch.inference_mode():
    for _ in range(2):
        model(x)
    for _ in range(runs):
        t = clock()
        model(x)
        times.append(clock() - t)
print(json.dumps({"zeromamba": zeromamba.__file__, "median_s": statistics.median(times), "best_s": min(times)}))
"""


def _time(root: Path, arch: str, size: int, runs: int, threads: int, clock: str) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(root))
    cmd = [sys.executable, "-c", _CHILD, arch, str(size), str(runs), str(threads), clock]
    # run in the checkout itself: ``python -c`` puts the working directory first on sys.path
    res = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="checkout A (the baseline)")
    parser.add_argument("b", type=Path, help="checkout B")
    parser.add_argument("--arch", default="zeromamba_small")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--clock", choices=("wall", "cpu"), default="wall", help="cpu: the process's CPU time (use with --threads 1)"
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    load_before = os.getloadavg()
    rounds = []
    for i in range(args.rounds):
        sides = [args.a, args.b] if i % 2 == 0 else [args.b, args.a]  # ABBA: neither always goes first
        timed = {side: _time(side, args.arch, args.size, args.runs, args.threads, args.clock) for side in sides}
        a, b = timed[args.a], timed[args.b]
        rounds.append(
            {
                "a": a,
                "b": b,
                "ratio_b_over_a": b["median_s"] / a["median_s"],
                "best_ratio_b_over_a": b["best_s"] / a["best_s"],
            }
        )
    result = {
        "machine": machine_info(),
        "date": datetime.date.today().isoformat(),
        "arch": args.arch,
        "input": [1, 3, args.size, args.size],
        "threads": args.threads,
        "clock": args.clock,
        "runs_per_process": args.runs,
        "a": str(args.a),
        "b": str(args.b),
        "rounds": rounds,
        "median_ratio_b_over_a": statistics.median(r["ratio_b_over_a"] for r in rounds),
        "median_best_ratio_b_over_a": statistics.median(r["best_ratio_b_over_a"] for r in rounds),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
