"""CPU forward-pass benchmark: ZeroMamba-S, Vim-S and ZeroMamba-Vim-S against timm's resnet101
(and vit_small), per instruction-set build, in one run.

Every case -- input size x batch x precision, by default 448 x (1, 8) x float32 -- is run for every
model of ``--models`` in interleaved rounds: each round times one forward pass of every model in
every case, so that the load drifts of a shared machine reach all of them alike; the models take
turns at going first, after one untimed pass per case (:func:`run_round`). Per case the JSON
gives each model's median and best time, and for every model the median (and range) of its
per-round ratios to each baseline (resnet101, vit_small) in the same precision.

``--builds native avx2`` (the default on a CPU with AVX-512) runs each instruction-set build in a
worker process of its own (``benchmarks/machine.py``'s ``BUILDS``: ``avx2`` caps PyTorch, oneDNN and
MKL at AVX2 and builds zeromamba's C kernels for x86-64-v3, standing in for an AVX2-only CPU), and
the workers take turns round by round, so both builds see the same machine. Peak memory is measured
per model and case in a fresh subprocess of the native build (Linux: the process's resident
high-water mark, reset after the model is built, so the figure is weights + one forward pass). The
load average before and after the run is recorded; on a shared machine, ``--threads 1 --clock
thread`` (CPU time of the one working thread) is a cross-check that other processes' load hardly
moves.

    python benchmarks/cpu_forward.py --out benchmarks/results/cpu_forward_<date>.json
    python benchmarks/cpu_forward.py --sizes 224 448 --batches 1 8 --dtypes float32 bfloat16 \
        --models zeromamba_small resnet101 vit_small --builds native

bfloat16 runs the models with bfloat16 weights (``model.to(torch.bfloat16)``, as
``zeromamba.from_pretrained(..., dtype="bfloat16")`` does on CPU); it is fast where the CPU has
AVX-512 BF16 or AMX and emulated (slow) elsewhere: ``bf16_native`` in the JSON says which.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
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
from machine import BUILDS, add_builds_argument, default_builds, machine_info, write_report

import zeromamba
from zeromamba.ops import fused_linear_available, kernel_build, kernel_status
from zeromamba.ops.mixer_cpu import mixer_cpu_status


@dataclass(frozen=True)
class BenchModel:
    """A model of the benchmark: ``build(size)`` returns it in float32, untrained, in eval mode."""

    build: Callable[[int], nn.Module]
    per_size: bool = False  # build depends on the input size (e.g. a ViT's position embeddings)
    default: bool = True  # run unless --models names others


def _zeromamba(
    name: str, backend: str = "auto", sized: bool = False, whole_batch: bool = False, **kwargs: object
) -> Callable[[int], nn.Module]:
    """A builder of ``name`` with scan ``backend``; ``sized``: built at the input size (Vim's position
    embedding covers the patch grid); ``whole_batch``: a VMamba backbone never splits a CPU batch into
    micro-batches (``cpu_micro_batch_bytes = None``)."""

    def build(size: int) -> nn.Module:
        model = zeromamba.create_model(name, **({"img_size": size} if sized else {}), **kwargs)
        model.set_scan_backend(backend)
        if whole_batch:
            model.backbone.cpu_micro_batch_bytes = None
        return model

    return build


_ZSL_HEAD = {"num_attributes": 312, "semantic_dim": 300}


#: name -> model; one entry per model (the ``*_torch`` variants and vit_small run on request)
MODELS: dict[str, BenchModel] = {
    "zeromamba_small": BenchModel(_zeromamba("zeromamba_small", **_ZSL_HEAD)),
    "zeromamba_small_torch": BenchModel(_zeromamba("zeromamba_small", "torch", **_ZSL_HEAD), default=False),
    "zeromamba_small_whole_batch": BenchModel(
        _zeromamba("zeromamba_small", whole_batch=True, **_ZSL_HEAD), default=False
    ),
    "vim_small": BenchModel(_zeromamba("vim_small", sized=True), per_size=True),
    "vim_small_torch": BenchModel(_zeromamba("vim_small", "torch", sized=True), per_size=True, default=False),
    "zeromamba_vim_small": BenchModel(_zeromamba("zeromamba_vim_small", sized=True, num_attributes=312), per_size=True),
    "resnet101": BenchModel(lambda size: timm.create_model("resnet101")),
    "vit_small": BenchModel(
        lambda size: timm.create_model("vit_small_patch16_224", img_size=size), per_size=True, default=False
    ),
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


def run_round(
    models: dict[tuple[str, int, str], nn.Module],
    names: list[str],
    cases: list[tuple[int, int, str]],
    inputs: dict[tuple[int, int, str], torch.Tensor],
    clock: Callable[[], float],
    index: int = 0,
) -> dict[str, dict[str, float]]:
    """One forward pass of every model in every case: ``case -> model -> milliseconds``.

    The models take turns at going first (round ``index`` starts with model ``index % n``), and each
    case begins with one untimed pass of its last model: the first pass after a change of batch size
    pays for the allocator growing (or re-faulting) its heap, which would otherwise always fall on
    the same model."""
    out: dict[str, dict[str, float]] = {}
    order = names[index % len(names) :] + names[: index % len(names)]
    with torch.inference_mode():
        for c in cases:
            models[(order[-1], c[0], c[2])](inputs[c])
            for n in order:
                model = models[(n, c[0], c[2])]
                start = clock()
                model(inputs[c])
                out.setdefault(case_key(*c), {})[n] = (clock() - start) * 1000
    return out


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
        "torch": torch.__version__,
        "timm": timm.__version__,
        "threads": threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "bf16_native": bf16_native,
        "fused_cpu_kernel": kernel_status(),
        "fused_cpu_build": kernel_build(),
        "mixer_cpu_kernels": mixer_cpu_status(),
        # OpenMP workers spin between parallel regions unless told otherwise; on a loaded machine
        # that spinning competes with the other processes (PASSIVE makes them sleep instead)
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "onednn_fused_linear": {d: fused_linear_available(t) for d, t in DTYPES.items()},
        "machine": machine_info(kernels=True),
    }


WORKER_MARK = "@@cpu_forward "  # the worker's protocol lines on stdout (anything else is passed on)


def worker(args: argparse.Namespace) -> None:
    """One build's models in this process: announce the environment, then run a round for every
    ``round`` line read from stdin."""
    torch.set_num_threads(args.threads)
    cases = [(s, b, d) for d in args.dtypes for s in args.sizes for b in args.batches]
    models = build_models(args.models, args.sizes, args.dtypes)
    inputs = {c: torch.randn(c[1], 3, c[0], c[0]).to(DTYPES[c[2]]) for c in cases}
    clock = time.thread_time if args.clock == "thread" else time.perf_counter
    run_round(models, args.models, cases, inputs, clock)  # warm-up: kernel builds, checks, oneDNN primitives
    print(WORKER_MARK + json.dumps(environment(args.threads)), flush=True)
    for index, line in enumerate(sys.stdin):
        if line.strip() != "round":
            break
        print(WORKER_MARK + json.dumps(run_round(models, args.models, cases, inputs, clock, index)), flush=True)


class Worker:
    """A worker subprocess for one build (its environment from ``machine.BUILDS``)."""

    def __init__(self, build: str, argv: list[str]):
        env = dict(os.environ, **BUILDS[build])
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", *argv]
        self.build = build
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.environment = self.read()

    def read(self) -> dict:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(WORKER_MARK):
                return json.loads(line[len(WORKER_MARK) :])
            sys.stderr.write(line)
        raise RuntimeError(f"the {self.build} worker ended early (exit code {self.proc.wait()})")

    def round(self) -> dict[str, dict[str, float]]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("round\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=600)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", type=int, nargs="+", default=[448])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--dtypes", nargs="+", default=["float32"], choices=list(DTYPES))
    ap.add_argument("--models", nargs="+", default=[n for n, m in MODELS.items() if m.default], choices=list(MODELS))
    add_builds_argument(ap)
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
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread measures one thread: use it with --threads 1")
    if args.worker:
        worker(args)
        return
    builds = args.builds or default_builds()
    argv = ["--threads", str(args.threads), "--clock", args.clock, "--sizes", *map(str, args.sizes)]
    argv += ["--batches", *map(str, args.batches), "--dtypes", *args.dtypes, "--models", *args.models]

    report: dict[str, object] = {"benchmark": "cpu_forward", "machine": machine_info(), "threads": args.threads}
    report.update(rounds=args.rounds, clock=args.clock, builds_run=builds)
    report["load_average_before"] = [round(x, 2) for x in os.getloadavg()]
    start = time.time()
    workers = [Worker(b, argv) for b in builds]  # each builds its models and warms up
    times: dict[str, dict[str, dict[str, list[float]]]] = {b: {} for b in builds}
    try:
        for _ in range(args.rounds):
            for w in workers:  # the builds take turns, round by round
                for case, row in w.round().items():
                    for name, ms in row.items():
                        times[w.build].setdefault(case, {}).setdefault(name, []).append(ms)
    finally:
        for w in workers:
            w.close()
    report["timing_s"] = round(time.time() - start)
    report["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    cases = [(s, b, d) for d in args.dtypes for s in args.sizes for b in args.batches]
    per_build: dict[str, dict[str, object]] = {}
    for w in workers:
        results = {key: summarise(rows) for key, rows in times[w.build].items()}
        if w.build == "native" and not args.no_memory:
            for c in cases:
                results[case_key(*c)]["peak_memory"] = {n: peak_memory(n, *c, args.threads) for n in args.models}
        per_build[w.build] = {
            "environment": BUILDS[w.build],
            **w.environment,
            "results": results,
            "times_ms": {k: {n: [round(t, 1) for t in ts] for n, ts in v.items()} for k, v in times[w.build].items()},
        }
    report["builds"] = per_build
    write_report(report, args.out)


if __name__ == "__main__":
    main()
