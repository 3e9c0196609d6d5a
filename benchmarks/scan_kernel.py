"""The CPU scan kernels alone, per instruction set and compiler, next to their arithmetic bound.

For every build asked for (``--isa all``: each x86-64 level this CPU runs, ``x86-64`` (SSE2) to
``x86-64-v4`` (AVX-512), plus ``native``; ``--compilers gcc clang``), in one run and in
interleaved rounds:

* ZeroMamba's fused four-direction scan (``ss2d_scan.c``) at ZeroMamba-S's four stage shapes
  (448 x 448, batch 1): nanoseconds per (channel, position, direction) step per stage, and the
  whole network's scan time (stage times x blocks);
* Vim's selective scan (``mamba_mixer.c``) at Vim-S's shape (448 x 448: 785 tokens, 768 channels,
  d_state 16, the SiLU gate): nanoseconds per (channel, token) step of one direction;
* the ``torch`` backend on the same problems, for scale;
* the arithmetic bound of each build: the kernel's floating-point operations per step (counted in
  the C sources' headers: ``R + 41.25`` for the scan at dt rank ``R``, ``16 N + 44`` for the mixer
  at state size ``N``; a multiply-add is one operation with FMA, two without) divided by the SIMD
  width and by the build's peak rate of vector operations, measured in the same run with a probe
  built like the kernel (independent multiplies at the same width: two per cycle at the clock the
  core keeps at that width); ``x_bound`` = measured / bound;
* each build's largest error against the ``torch`` backend (relative to the output's largest value).

One thread, timed by the thread's own CPU clock by default (what the kernel used, whatever else
the machine runs); ``--threads 2`` times the OpenMP builds on two threads by the wall clock.

``--against REV`` also builds the kernels' C sources as they are at git revision ``REV`` with the
same compiler and flags, times them in the same rounds (alternating which goes first) and reports
each build's speed-up over them: a before/after that a busy machine disturbs far less than two
separate runs.

    python benchmarks/scan_kernel.py --isa all --out benchmarks/results/scan_kernel_isa_<date>.json
    python benchmarks/scan_kernel.py --isa native x86-64-v3 --compilers gcc --against HEAD~1
"""

from __future__ import annotations

import argparse
import ctypes
import math
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from machine import machine_info, write_report

from zeromamba.ops import cpu_build
from zeromamba.ops.cpu_build import build_library, compile_flags, isa_levels
from zeromamba.ops.mixer_torch import selective_scan_torch
from zeromamba.ops.torch_scan import cross_scan_torch

#: (feature grid side, d_inner, dt_rank, blocks) of ZeroMamba-S's stages at 448 x 448
STAGES = ((112, 192, 6, 2), (56, 384, 12, 2), (28, 768, 24, 15), (14, 1536, 48, 2))
#: Vim-S at 448 x 448: (tokens, channels, d_state); 24 layers x 2 directions
MIXER = (785, 768, 16)
MIXER_CALLS = 48


def scan_ops(rank: int, fma: bool) -> float:
    """Vector operations per step of ss2d_scan.c (R + 20 of them multiply-adds: two without FMA)."""
    return rank + 41.25 + (0 if fma else rank + 20)


def mixer_ops(state: int, fma: bool) -> float:
    """Vector operations per (channel, token) step of mamba_mixer.c (7 N + 22 of them multiply-adds)."""
    return 16 * state + 44 + (0 if fma else 7 * state + 22)


PEAK_SOURCE = r"""
#include <stdint.h>
#include "zm_simd.h"
/* 12 independent chains of vector multiplies, n rounds: 12 n multiplies at the build's width,
   as many per cycle as the core has vector multiply pipes (2 on current x86 at any width) */
float zm_peak_mul(int64_t n) {
    vf a[12], m = splat(0.9999999f);
    for (int i = 0; i < 12; ++i) a[i] = splat(1.0f + (float)i);
    for (int64_t k = 0; k < n; ++k) {
        _Pragma("GCC unroll 12") for (int i = 0; i < 12; ++i) a[i] = a[i] * m;
    }
    vf s = a[0];
    for (int i = 1; i < 12; ++i) s = s + a[i];
    return s[0];
}
"""


def build_serial(source: Path, headers: Path, cc: str, isa: str) -> ctypes.CDLL:
    """A serial build of ``source`` (headers from ``headers``) with the flags the package uses for
    ``isa``, next to the source."""
    lib = source.with_name(f"{source.stem}_{cc}_{isa}.so")
    cmd = [cc, *compile_flags(isa), "-shared", "-I", str(headers), str(source), "-o", str(lib), "-lm"]
    subprocess.run(cmd, check=True, capture_output=True)
    return ctypes.CDLL(str(lib))


def peak_probe(cc: str, isa: str) -> ctypes.CDLL:
    """A one-function library built like the kernels for ``isa``: multiplies at the build's width."""
    folder = Path(tempfile.mkdtemp(prefix="zm-peak-"))
    (folder / "peak.c").write_text(PEAK_SOURCE)
    probe = build_serial(folder / "peak.c", Path(cpu_build.__file__).with_name("csrc"), cc, isa)
    probe.zm_peak_mul.restype = ctypes.c_float
    probe.zm_peak_mul.argtypes = [ctypes.c_int64]
    return probe


def vector_ops_per_ns(probe: ctypes.CDLL, clock) -> float:
    """The build's peak rate of vector operations (2 per cycle at its width's clock), measured now."""
    n = 1_000_000
    start = clock()
    probe.zm_peak_mul(n)
    return 12 * n / ((clock() - start) * 1e9)


def _dt_bias(n: int, g: torch.Generator) -> torch.Tensor:
    """Mamba's dt bias initialisation: softplus(bias) log-uniform in [1e-3, 0.1]."""
    dt = torch.exp(torch.rand(n, generator=g) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
    return dt + torch.log(-torch.expm1(-dt))


def scan_problem(side: int, d: int, rank: int, g: torch.Generator) -> list[torch.Tensor]:
    """Random inputs at ZeroMamba's initialisation scales (what sets the kernels' value ranges)."""
    return [
        torch.randn(1, side, side, d, generator=g),
        (torch.rand(4, rank + 2, d, generator=g) * 2 - 1) * d**-0.5,
        (torch.rand(4, d, rank, generator=g) * 2 - 1) * rank**-0.5,
        _dt_bias(4 * d, g).view(4, d),
        torch.randn(4 * d, 1, generator=g) * 0.5,
        torch.ones(4 * d),
    ]


class ScanCall:
    """The ss2d kernel of one build, called straight through ctypes on a prepared problem."""

    def __init__(self, lib: ctypes.CDLL, problem: list[torch.Tensor], threads: int):
        from zeromamba.ops.fused_cpu import _kernel_inputs

        fn = lib.ss2d_scan_dstate1
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p] * 7 + [ctypes.c_int64] * 8
        u, xdbl, w_dt, bias, A, Dsum, H, W = _kernel_inputs(*problem)
        self.tensors = [t.float().contiguous() for t in (u, xdbl, w_dt, bias, A, Dsum)]
        B, L, D = u.shape
        self.y = torch.empty(B, L, D)
        ptrs = [t.data_ptr() for t in self.tensors] + [self.y.data_ptr()]
        self.args = (*ptrs, B, H, W, D, w_dt.shape[1], 0, D, threads)
        self.fn, self.shape = fn, (B, H, W, D)

    def __call__(self) -> torch.Tensor:
        if self.fn(*self.args) != 0:
            raise MemoryError("kernel buffers")
        return self.y.view(self.shape)


class MixerCall:
    """The mixer's selective scan of one build (one direction, gated), through ctypes."""

    def __init__(self, lib: ctypes.CDLL, problem: tuple[torch.Tensor, ...]):
        fn = lib.mamba_scan_f32
        fn.restype = ctypes.c_int
        i64, ptr = ctypes.c_int64, ctypes.c_void_p
        fn.argtypes = [ptr, i64, ptr, i64, ptr, ctypes.c_int, ptr, ptr, i64, ptr, ptr, ptr, i64, ptr] + [i64] * 6
        fn.argtypes += [ctypes.c_int]
        x, dt, A, B, C, D, z, bias = problem
        self.At = A.t().contiguous()
        self.bc = torch.cat([B, C], dim=-1).contiguous()
        batch, L, E = x.shape
        N = A.shape[1]
        self.keep = (x, dt, D, z, bias)
        self.y = torch.empty(batch, L, E)
        self.args = (
            *(x.data_ptr(), x.stride(1), dt.data_ptr(), dt.stride(1), bias.data_ptr(), 1),
            *(self.bc.data_ptr(), self.bc.data_ptr() + 4 * N, 2 * N, self.At.data_ptr(), D.data_ptr()),
            *(z.data_ptr(), z.stride(1), self.y.data_ptr(), batch, L, E, N, 0, E, 0),
        )
        self.fn = fn

    def __call__(self) -> torch.Tensor:
        if self.fn(*self.args) != 0:
            raise RuntimeError("d_state too large")
        return self.y


def mixer_problem(g: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Vim's scan inputs at its initialisation scales: A = -(1..N), dt from the dt bias init."""
    L, E, N = MIXER
    x, z = torch.randn(1, L, E, generator=g), torch.randn(1, L, E, generator=g)
    dt = torch.randn(1, L, E, generator=g) * 0.3
    A = -torch.arange(1, N + 1, dtype=torch.float32).repeat(E, 1)
    B, C = torch.randn(1, L, N, generator=g) * 0.6, torch.randn(1, L, N, generator=g) * 0.6
    return x, dt, A, B, C, torch.ones(E), z, _dt_bias(E, g)


KERNEL_SOURCES = ("ss2d_scan.c", "mamba_mixer.c")


def sources_at(revision: str, folder: Path) -> str:
    """Write the kernels' C sources as they are at git ``revision`` into ``folder``; its full hash."""
    repo = Path(__file__).resolve().parents[1]
    csrc = "zeromamba/ops/csrc"

    def git(*argv: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *argv], check=True, capture_output=True, text=True).stdout

    commit = git("rev-parse", "--verify", f"{revision}^{{commit}}").strip()
    for name in git("ls-tree", "--name-only", commit, f"{csrc}/").split():
        (folder / Path(name).name).write_text(git("show", f"{commit}:{name}"))
    return commit


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isa", nargs="+", default=["native"], help="levels to build, or 'all' (default: native)")
    ap.add_argument("--compilers", nargs="+", default=["gcc", "clang"])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--against", metavar="REV", default=None, help="also time the kernels of git revision REV")
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    args = ap.parse_args()
    if args.against and args.threads != 1:
        ap.error("--against compares serial builds: use it with --threads 1")
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter
    isas = [*isa_levels(), "native"] if args.isa == ["all"] else args.isa
    compilers = [cc for cc in args.compilers if shutil.which(cc)]
    missing = sorted(set(args.compilers) - set(compilers))
    if missing:
        print(f"not found, not measured: {', '.join(missing)}", file=sys.stderr)

    baseline = None
    if args.against:
        folder = Path(tempfile.mkdtemp(prefix="zm-against-"))
        try:
            commit = sources_at(args.against, folder)
        except (OSError, subprocess.CalledProcessError) as exc:
            ap.error(f"--against {args.against}: not a revision of this git checkout ({exc})")
        baseline = {"revision": args.against, "commit": commit, "folder": folder}

    g = torch.Generator().manual_seed(0)
    problems = [scan_problem(side, d, rank, g) for side, d, rank, _ in STAGES]
    mixer_args = mixer_problem(g)
    with torch.inference_mode():
        want = [cross_scan_torch(*p) for p in problems]
        want_mixer = selective_scan_torch(*mixer_args)

    builds = []
    for cc in compilers:
        for isa in isas:
            scan_lib, build = build_library("ss2d_scan.c", openmp=args.threads > 1, isa=isa, compiler=cc)
            mixer_lib, _ = build_library("mamba_mixer.c", openmp=False, isa=isa, compiler=cc)
            builds.append(
                {
                    "compiler": cc,
                    "compiler_version": build.compiler_version,
                    "isa": isa,
                    "variant": build.variant,
                    "lanes": int(scan_lib.ss2d_scan_vector_lanes()),
                    "fma": bool(scan_lib.ss2d_scan_has_fma()),
                    "calls": [ScanCall(scan_lib, p, args.threads) for p in problems],
                    "mixer": MixerCall(mixer_lib, mixer_args),
                    "peak": peak_probe(cc, isa),
                    "peaks": [],
                    "times": [[] for _ in STAGES],
                    "mixer_times": [],
                }
            )
            if baseline is not None:
                folder = baseline["folder"]
                old_scan, old_mixer = (build_serial(folder / f, folder, cc, isa) for f in KERNEL_SOURCES)
                builds[-1].update(
                    old_calls=[ScanCall(old_scan, p, 1) for p in problems],
                    old_mixer=MixerCall(old_mixer, mixer_args),
                    old_times=[[] for _ in STAGES],
                    old_mixer_times=[],
                )
    torch_times: list[list[float]] = [[] for _ in STAGES]
    torch_mixer: list[float] = []
    load_before = machine_info()["load_average"]

    def timed(fn) -> float:
        start = clock()
        fn()
        return clock() - start

    with torch.inference_mode():
        for b in builds:  # warm-up, and each build's error against the torch backend
            b["error"] = max(relative_error(call(), w) for call, w in zip(b["calls"], want))
            b["mixer_error"] = relative_error(b["mixer"](), want_mixer)
            if baseline is not None:
                b["old_error"] = max(relative_error(call(), w) for call, w in zip(b["old_calls"], want))
                b["old_mixer"]()
        for round_index in range(args.rounds):
            for b in builds:
                b["peaks"].append(vector_ops_per_ns(b["peak"], clock))
                sides = (
                    [("", "calls", "mixer"), ("old_", "old_calls", "old_mixer")]
                    if baseline
                    else [("", "calls", "mixer")]
                )
                for prefix, calls, mixer in sides if round_index % 2 == 0 else sides[::-1]:
                    for i, call in enumerate(b[calls]):
                        b[prefix + "times"][i].append(timed(call))
                    b[prefix + "mixer_times"].append(timed(b[mixer]))
            for i, p in enumerate(problems):
                torch_times[i].append(timed(lambda p=p: cross_scan_torch(*p)))
            torch_mixer.append(timed(lambda: selective_scan_torch(*mixer_args)))

    def stage_rows(times: list[list[float]], bound=None) -> tuple[list[dict], float, float]:
        """Per stage: ns per step and (given ``bound(rank) -> ns``) the bound and the ratio to it;
        the network's scan time and its bound (ms)."""
        rows, total_ms, bound_ms = [], 0.0, 0.0
        for (side, d, rank, blocks), ts in zip(STAGES, times):
            steps = 4 * side * side * d
            ns = min(ts) * 1e9 / steps
            row = {"grid": side, "d_inner": d, "dt_rank": rank, "blocks": blocks, "ns_per_step": round(ns, 3)}
            if bound is not None:
                row["bound_ns_per_step"] = round(bound(rank), 3)
                row["x_bound"] = round(ns / bound(rank), 2)
                bound_ms += bound(rank) * steps * blocks / 1e6
            rows.append(row)
            total_ms += min(ts) * 1e3 * blocks
        return rows, total_ms, bound_ms

    results = []
    mixer_steps = MIXER[0] * MIXER[1]
    for b in builds:
        # the build's peak: vector operations per ns at its own width (so at its own clock: wide
        # vectors may run a core slower), in the least disturbed round
        peak = max(b["peaks"])
        rows, total_ms, bound_ms = stage_rows(b["times"], lambda r, b=b, p=peak: scan_ops(r, b["fma"]) / b["lanes"] / p)
        mixer_ns = min(b["mixer_times"]) * 1e9 / mixer_steps
        mixer_bound = mixer_ops(MIXER[2], b["fma"]) / b["lanes"] / peak
        entry = {
            "compiler": b["compiler"],
            "compiler_version": b["compiler_version"],
            "isa": b["isa"],
            "variant": b["variant"],
            "vector_lanes": b["lanes"],
            "fma": b["fma"],
            "peak_vector_ops_per_ns": round(peak, 3),
            "clock_ghz_at_this_width": round(peak / 2, 3),
            "max_relative_error_vs_torch": float(f"{b['error']:.2e}"),
            "stages": rows,
            "network_scan_ms": round(total_ms, 1),
            "network_bound_ms": round(bound_ms, 1),
            "network_x_bound": round(total_ms / bound_ms, 2),
            "mixer": {
                "ns_per_step": round(mixer_ns, 3),
                "bound_ns_per_step": round(mixer_bound, 3),
                "x_bound": round(mixer_ns / mixer_bound, 2),
                "vim_small_448_ms": round(min(b["mixer_times"]) * 1e3 * MIXER_CALLS, 1),
                "max_relative_error_vs_torch": float(f"{b['mixer_error']:.2e}"),
            },
        }
        if baseline is not None:
            old_rows, old_total_ms, _ = stage_rows(b["old_times"])
            entry["against"] = {
                "revision": baseline["revision"],
                "commit": baseline["commit"],
                "max_relative_error_vs_torch": float(f"{b['old_error']:.2e}"),
                "stages_ns_per_step": [r["ns_per_step"] for r in old_rows],
                "network_scan_ms": round(old_total_ms, 1),
                "network_speedup": round(old_total_ms / total_ms, 3),
                "stages_speedup": [round(o["ns_per_step"] / r["ns_per_step"], 3) for o, r in zip(old_rows, rows)],
                "mixer_speedup": round(min(b["old_mixer_times"]) / min(b["mixer_times"]), 3),
            }
        results.append(entry)
    torch_rows, torch_total, _ = stage_rows(torch_times)
    report = {
        "benchmark": "scan_kernel",
        "machine": machine_info(),
        "threads": args.threads,
        "clock": "thread CPU time" if clock is time.thread_time else "wall",
        "rounds": args.rounds,
        "load_average_before": load_before,
        "load_average_after": machine_info()["load_average"],
        "arithmetic": {
            "ss2d_scan_ops_per_step": "R + 41.25 (R + 20 multiply-adds; 2R + 61.25 without FMA)",
            "mamba_mixer_ops_per_step": "16 N + 44 (7 N + 22 multiply-adds; 23 N + 66 without FMA)",
            "bound": "ops / (lanes x the build's measured peak vector operations per ns: 2 per cycle)",
        },
        "builds": results,
        "torch_backend": {
            "stages": torch_rows,
            "network_scan_ms": round(torch_total, 1),
            "mixer_ns_per_step": round(min(torch_mixer) * 1e9 / mixer_steps, 3),
        },
    }
    write_report(report, args.out)
    print(summary(report), file=sys.stderr)


def summary(report: dict) -> str:
    """One line per build: ns per step (network average), x bound, and the mixer's."""
    lines = ["compiler isa lanes | scan ns/step (stage 3) x_bound(network) | mixer ns/step x_bound"]
    for b in report["builds"]:
        s3 = b["stages"][2]
        line = (
            f"{b['compiler']} {b['isa']} {b['vector_lanes']} | {s3['ns_per_step']} {b['network_x_bound']} | "
            f"{b['mixer']['ns_per_step']} {b['mixer']['x_bound']}"
        )
        if "against" in b:
            a = b["against"]
            line += f" | speed-up over {a['revision']}: scan {a['network_speedup']}, mixer {a['mixer_speedup']}"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
