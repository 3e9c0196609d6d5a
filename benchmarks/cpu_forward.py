"""CPU forward-pass benchmark: ZeroMamba-S (and, on request, Vim-S / ZeroMamba-Vim-S) against timm's
resnet101 and vit_small, one run.

Every case -- input size (224, 448) x batch (1, 8) x precision (float32, bfloat16) -- is run for
every model of :data:`MODELS` in the same process, in interleaved rounds: each round times one
forward pass of every model in every case, so that the load drifts of a shared machine reach all of
them alike. Per case the JSON gives each model's median and best time, and for every model the
median (and range) of its per-round ratios to each baseline (resnet101, vit_small) in the same
precision. Peak memory is measured per model and case in a fresh subprocess (Linux: the process's
resident high-water mark, reset after the model is built, so the figure is weights + one forward
pass). The machine's load average before and after the run is recorded as well; on a shared
machine, ``--threads 1 --clock thread`` (CPU time of the one working thread) is a cross-check that
other processes' load hardly moves.

    python benchmarks/cpu_forward.py --threads 2 --out benchmarks/results/cpu_forward_<date>.json

bfloat16 runs the models with bfloat16 weights (``model.to(torch.bfloat16)``, as
``zeromamba.from_pretrained(..., dtype="bfloat16")`` does on CPU); it is fast where the CPU has
AVX-512 BF16 or AMX and emulated (slow) elsewhere: ``bf16_native`` in the JSON says which.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torch.nn as nn

import zeromamba
from zeromamba.fileio import write_text
from zeromamba.ops import fused_linear_available, kernel_build, kernel_status
from zeromamba.ops.mixer_cpu import mixer_cpu_status


@dataclass(frozen=True)
class BenchModel:
    """A model of the benchmark: ``build(size)`` returns it in float32, untrained, in eval mode."""

    build: Callable[[int], nn.Module]
    per_size: bool = False  # build depends on the input size (e.g. a ViT's position embeddings)
    default: bool = True  # run unless --models names others


def _zeromamba(name: str, backend: str = "auto", sized: bool = False, **kwargs: object) -> Callable[[int], nn.Module]:
    """A builder of ``name`` with scan ``backend``; ``sized``: built at the input size (Vim's position
    embedding covers the patch grid)."""

    def build(size: int) -> nn.Module:
        model = zeromamba.create_model(name, **({"img_size": size} if sized else {}), **kwargs)
        model.set_scan_backend(backend)
        return model

    return build


_ZSL_HEAD = {"num_attributes": 312, "semantic_dim": 300}


#: name -> model; one entry per model. The Vim family runs on request:
#: ``--models vim_small zeromamba_vim_small resnet101 --sizes 448 --batches 1``
MODELS: dict[str, BenchModel] = {
    "zeromamba_small": BenchModel(_zeromamba("zeromamba_small", **_ZSL_HEAD)),
    "zeromamba_small_torch": BenchModel(_zeromamba("zeromamba_small", "torch", **_ZSL_HEAD), default=False),
    "vim_small": BenchModel(_zeromamba("vim_small", sized=True), per_size=True, default=False),
    "vim_small_torch": BenchModel(_zeromamba("vim_small", "torch", sized=True), per_size=True, default=False),
    "zeromamba_vim_small": BenchModel(
        _zeromamba("zeromamba_vim_small", sized=True, num_attributes=312), per_size=True, default=False
    ),
    "resnet101": BenchModel(lambda size: timm.create_model("resnet101")),
    "vit_small": BenchModel(lambda size: timm.create_model("vit_small_patch16_224", img_size=size), per_size=True),
}
BASELINES = ("resnet101", "vit_small")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def case_key(size: int, batch: int, dtype: str) -> str:
    return f"{size}_b{batch}_{dtype}"


def build_models(names: list[str], sizes: list[int], dtypes: list[str]) -> dict[tuple[str, int, str], nn.Module]:
    """``(name, size, dtype) -> model``; models that do not depend on the size are shared."""
    torch.manual_seed(0)
    out: dict[tuple[str, int, str], nn.Module] = {}
    for name in names:
        entry = MODELS[name]
        shared: dict[str, nn.Module] = {}
        for size in sizes:
            base = entry.build(size).eval() if entry.per_size or not shared else None
            for dtype in dtypes:
                if base is None:
                    out[(name, size, dtype)] = shared[dtype]
                    continue
                model = base if dtype == "float32" else copy.deepcopy(base).to(DTYPES[dtype])
                shared[dtype] = out[(name, size, dtype)] = model
    return out


def time_rounds(
    models: dict[tuple[str, int, str], nn.Module],
    names: list[str],
    cases: list[tuple[int, int, str]],
    rounds: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, list[float]]]:
    """Milliseconds per forward pass: ``case -> model -> one time per round``."""
    inputs = {c: torch.randn(c[1], 3, c[0], c[0]).to(DTYPES[c[2]]) for c in cases}
    times: dict[str, dict[str, list[float]]] = {case_key(*c): {n: [] for n in names} for c in cases}
    with torch.inference_mode():
        for c in cases:  # warm-up: kernel builds, self-checks, oneDNN primitives
            for n in names:
                models[(n, c[0], c[2])](inputs[c])
        for _ in range(rounds):
            for c in cases:
                for n in names:
                    model = models[(n, c[0], c[2])]
                    start = clock()
                    model(inputs[c])
                    times[case_key(*c)][n].append((clock() - start) * 1000)
    return times


def summarise(times: dict[str, list[float]]) -> dict[str, object]:
    """Medians and best times per model; per-round ratios of every other model to each baseline."""
    row: dict[str, object] = {}
    for name, ts in times.items():
        row[f"{name}_ms"] = round(statistics.median(ts), 1)
        row[f"{name}_best_ms"] = round(min(ts), 1)
        # how noisy the machine was: the spread of this model's own times over the rounds
        row[f"{name}_spread"] = round((max(ts) - min(ts)) / statistics.median(ts), 2)
    for name, ts in times.items():
        for base in BASELINES:
            if name in BASELINES or base not in times:
                continue
            ratios = [a / b for a, b in zip(ts, times[base])]
            row[f"{name}_vs_{base}"] = round(statistics.median(ratios), 3)
            row[f"{name}_vs_{base}_range"] = [round(min(ratios), 3), round(max(ratios), 3)]
    return row


MEMORY_PROBE = r"""
import gc, json, sys, torch
sys.path.insert(0, {bench_dir!r})
import cpu_forward as bench
from zeromamba.ops import fused_cpu_available, fused_linear_available
name, size, batch, dtype, threads = {args!r}
torch.set_num_threads(threads)

def status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024

model = bench.build_models([name], [size], [dtype])[(name, size, dtype)]
x = torch.randn(batch, 3, size, size).to(bench.DTYPES[dtype])
with torch.inference_mode():
    # the kernels' builds and first-use checks, outside the measured forward pass
    fused_cpu_available() and fused_linear_available(x.dtype)
    gc.collect()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the resident high-water mark
    before = status("VmRSS")
    model(x)
    peak = status("VmHWM")
print(json.dumps({{"peak_rss_mib": round(peak), "forward_mib": round(peak - before)}}))
"""


def peak_memory(name: str, size: int, batch: int, dtype: str, threads: int) -> dict[str, float] | str:
    """Peak resident memory of a fresh process running one forward pass (Linux only)."""
    if not Path("/proc/self/clear_refs").exists():
        return "not measured (needs Linux /proc)"
    code = MEMORY_PROBE.format(bench_dir=str(Path(__file__).parent), args=(name, size, batch, dtype, threads))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1200)
    if res.returncode != 0:
        return "failed: " + res.stderr.strip().splitlines()[-1][:200]
    return json.loads(res.stdout.strip().splitlines()[-1])


def environment(threads: int) -> dict[str, object]:
    bf16_native = False
    try:
        bf16_native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        pass
    return {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "timm": timm.__version__,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_native,
        "fused_cpu_kernel": kernel_status(),
        "fused_cpu_build": kernel_build(),
        "mixer_cpu_kernels": mixer_cpu_status(),
        # OpenMP workers spin between parallel regions unless told otherwise; on a loaded machine
        # that spinning competes with the other processes (PASSIVE makes them sleep instead)
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "onednn_fused_linear": {d: fused_linear_available(t) for d, t in DTYPES.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[224, 448])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--dtypes", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    ap.add_argument("--models", nargs="+", default=[n for n, m in MODELS.items() if m.default], choices=list(MODELS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument(
        "--clock",
        choices=["wall", "thread"],
        default="wall",
        help="wall: elapsed time; thread: CPU time of the calling thread (only with --threads 1, where all "
        "work runs on it): what other processes' load cannot inflate much",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread measures one thread: use it with --threads 1")
    torch.set_num_threads(args.threads)

    report: dict[str, object] = {"benchmark": "cpu_forward", **environment(args.threads)}
    report["rounds"] = args.rounds
    report["clock"] = args.clock
    report["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    cases = [(s, b, d) for d in args.dtypes for s in args.sizes for b in args.batches]
    models = build_models(args.models, args.sizes, args.dtypes)
    start = time.time()
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    times = time_rounds(models, args.models, cases, args.rounds, clock)
    report["timing_s"] = round(time.time() - start)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    del models
    gc.collect()
    results: dict[str, dict[str, object]] = {}
    for c in cases:
        key = case_key(*c)
        results[key] = summarise(times[key])
        if not args.no_memory:
            results[key]["peak_memory"] = {n: peak_memory(n, *c, args.threads) for n in args.models}
    report["results"] = results
    report["times_ms"] = {k: {n: [round(t, 1) for t in ts] for n, ts in v.items()} for k, v in times.items()}
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, text + "\n")


if __name__ == "__main__":
    main()
