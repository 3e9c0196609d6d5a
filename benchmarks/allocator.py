"""ZeroMamba-S and resnet101 on the CPU under each memory allocator, at batch 1 and 8.

Why it matters: glibc's ``malloc`` serves every block of 32 MiB or more with a fresh ``mmap`` and
hands it back to the system on ``free``. A forward pass at 448 x 448 and batch 8 allocates many
such tensors, so every pass starts on fresh pages that the kernel maps and zeroes 4 KiB at a time
(page faults, counted here, and system CPU time). An allocator that keeps freed memory avoids it.

Allocators (``--allocators``; those not installed are skipped, and said so):

* ``glibc``: the C library's own, as a Linux process gets it;
* ``glibc-retain``: the same told to keep freed memory (``MALLOC_MMAP_MAX_=0``,
  ``MALLOC_TRIM_THRESHOLD_=1073741824``): no install, but blocks of every size then come from one
  heap that fragments, so peak memory grows;
* ``tcmalloc``: gperftools' (``LD_PRELOAD`` of ``libtcmalloc_minimal``; Debian and Ubuntu package
  ``libtcmalloc-minimal4``, conda ``gperftools``);
* ``jemalloc``: (``LD_PRELOAD`` of ``libjemalloc``, its default settings).

Each (round, model, allocator) is a fresh process, the allocators' order alternating between rounds;
it builds the model, runs one pass per batch size to warm up, then times ``--runs`` passes per batch
size (wall clock), with the page faults of those passes (``getrusage``) and the process's peak
resident memory. Per allocator, model and batch: the median pass time over all rounds, faults per
pass, peak memory, and the speed-up over ``glibc`` (median of the per-round ratios).

    python benchmarks/allocator.py --out benchmarks/results/allocator_<date>.json
"""

from __future__ import annotations

import argparse
import ctypes.util
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from machine import machine_info, write_report

MODELS = ("zeromamba_small", "resnet101")

_CHILD = r"""
import json, resource, sys, time
import torch, timm
import zeromamba.models
name, size, runs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
batches = [int(b) for b in sys.argv[5].split(",")]
torch.set_num_threads(threads)
torch.manual_seed(0)
model = timm.create_model(name).eval()
out = {"batches": {}}
with torch.inference_mode():
    for batch in batches:
        x = torch.randn(batch, 3, size, size)
        model(x)
        times = []
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(runs):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
        out["batches"][str(batch)] = {"times_s": times, "faults_per_pass": faults / runs}
out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def allocator_env(name: str) -> dict[str, str] | None:
    """The environment that selects allocator ``name``, or None when it is not installed here."""
    if name == "glibc":
        return {}
    if name == "glibc-retain":
        return {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**30)}
    library = {"tcmalloc": "tcmalloc_minimal", "jemalloc": "jemalloc"}[name]
    found = ctypes.util.find_library(library)
    return {"LD_PRELOAD": found} if found else None


def _median_s(run: dict[str, Any], batch: str) -> float:
    return statistics.median(run["batches"][batch]["times_s"])


def run_child(model: str, env: dict[str, str], args: argparse.Namespace) -> dict[str, Any]:
    environ = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("MALLOC_")}
    environ.update(env)
    argv = [model, str(args.size), str(args.runs), str(args.threads), ",".join(map(str, args.batches))]
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, env=environ, timeout=3600
    )
    if run.returncode != 0:
        raise RuntimeError(f"{model} with {env or 'glibc'} failed:\n{run.stderr[-3000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--allocators", nargs="+", default=["glibc", "glibc-retain", "tcmalloc", "jemalloc"],
                    choices=["glibc", "glibc-retain", "tcmalloc", "jemalloc"])  # fmt: skip
    ap.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3, help="timed passes per process and batch size")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    if "glibc" not in args.allocators:
        ap.error("--allocators must include glibc, the baseline")
    envs = {name: allocator_env(name) for name in args.allocators}
    missing = [name for name, env in envs.items() if env is None]
    if missing:
        print(f"not installed, not measured: {', '.join(missing)}", file=sys.stderr)
    allocators = [name for name, env in envs.items() if env is not None]

    load_before = machine_info()["load_average"]
    results: dict[str, dict[str, list[dict[str, Any]]]] = {a: {m: [] for m in args.models} for a in allocators}
    for r in range(args.rounds):
        for model in args.models:
            for name in allocators if r % 2 == 0 else allocators[::-1]:
                results[name][model].append(run_child(model, envs[name], args))
                print(f"round {r + 1}/{args.rounds}: {model} {name}", file=sys.stderr, flush=True)

    report_allocators: dict[str, Any] = {}
    for name in allocators:
        entry: dict[str, Any] = {"environment": envs[name], "models": {}}
        for model in args.models:
            runs = results[name][model]
            per_batch = {}
            for batch in map(str, args.batches):
                times = [t for run in runs for t in run["batches"][batch]["times_s"]]
                row = {
                    "median_ms": round(statistics.median(times) * 1e3, 1),
                    "best_ms": round(min(times) * 1e3, 1),
                    "faults_per_pass": round(
                        statistics.median(run["batches"][batch]["faults_per_pass"] for run in runs)
                    ),
                }
                if name != "glibc":  # per round: this allocator's median over glibc's, same round
                    base = results["glibc"][model]
                    ratios = [_median_s(glibc_run, batch) / _median_s(run, batch) for run, glibc_run in zip(runs, base)]
                    row["speedup_over_glibc"] = round(statistics.median(ratios), 3)
                    row["speedup_over_glibc_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
                per_batch[f"b{batch}"] = row
            entry["models"][model] = {
                "batches": per_batch,
                "peak_rss_mib": round(statistics.median(run["peak_rss_mib"] for run in runs)),
            }
        report_allocators[name] = entry
    report = {
        "benchmark": "allocator",
        "machine": machine_info(),
        "size": args.size,
        "threads": args.threads,
        "runs_per_process": args.runs,
        "rounds": args.rounds,
        "clock": "wall",
        "load_average_before": load_before,
        "load_average_after": machine_info()["load_average"],
        "not_installed": missing,
        "allocators": report_allocators,
    }
    write_report(report, args.out)


if __name__ == "__main__":
    main()
