"""Where ZeroMamba-S spends its CPU time, next to ResNet-101's total in the same run.

Prints one JSON document. ZeroMamba-S (scan backend ``auto``) and timm's ``resnet101`` are first timed
plainly in interleaved rounds (the ratio is the median of per-round ratios); then ZeroMamba-S runs
under :mod:`torch.profiler` and every operator's time is put into one category:

* ``gemm.<kind>`` -- matrix multiplies by the layer they belong to (``in_proj``, ``x_proj``,
  ``dt_proj``, ``out_proj``, ``mlp_fc1``, ``mlp_fc2``, ``heads``);
* ``conv.depthwise`` (SS2D's 3x3 depthwise conv), ``conv.stem_downsample`` (the strided 3x3 convs);
* ``norm.<where>`` -- LayerNorms (``block``: before SS2D and MLP, ``out_norm``: after the scan,
  ``other``: stem, downsample, classifier);
* ``scan`` -- the selective scan: its operator (``zeromamba::ss2d_scan_dstate1`` for the fused CPU
  kernel) and any other operator inside SS2D that no category below claims;
* ``activation`` (GELU, SiLU), ``layout`` (copies, contiguous, gathers), ``residual`` (the adds),
  ``heads`` (the ZSL heads and the classifier, GEMMs excluded), ``other`` (everything else: small ops);
* ``untracked`` -- time inside a module's range that none of its operators accounts for: Python
  between operators and the profiler's own work (so it shrinks without the profiler).

Categories come from module scopes (forward hooks that open profiler ranges) and operator shapes, so
a change that fuses or removes an operator moves its time between categories rather than hiding it.
The profiler adds a few percent of overhead: compare categories with each other and the profiled
total with the plain timing.

Each instruction-set build (``--builds``, by default ``native`` and, on an AVX-512 CPU, ``avx2``:
see ``benchmarks/machine.py``) runs in a subprocess of its own, one after the other; the JSON has
one report per build.

    python benchmarks/profile_cpu.py --threads 2 --size 448 --batch 1 --out benchmarks/results/profile_cpu_<date>.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import timm
import torch
import torch.nn as nn
from machine import add_builds_argument, default_builds, machine_info, run_per_build, write_report
from torch.utils.flop_counter import FlopCounterMode

import zeromamba
from zeromamba.models.vmamba import SS2D, ClassifierHead, Downsample, Mlp, PatchEmbed, VSSBlock
from zeromamba.models.zeromamba import SemanticFusion, SemanticLocalProjection
from zeromamba.ops import kernel_status

GEMM_OPS = {
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::matmul",
    "aten::linear",
    "mkl::_mkl_linear",
    "mkldnn::_linear_pointwise",
    "aten::mkldnn_linear",
}
CONV_OPS = {
    "aten::conv2d",
    "aten::mkldnn_convolution",
    "aten::convolution",
    "aten::_convolution",
    "mkldnn::_convolution_pointwise",
}
NORM_OPS = {"aten::native_layer_norm", "aten::layer_norm", "aten::group_norm"}
ACT_OPS = {"aten::gelu", "aten::silu", "aten::silu_", "aten::gelu_"}
LAYOUT_OPS = {
    "aten::copy_",
    "aten::contiguous",
    "aten::clone",
    "aten::index_select",
    "aten::index",
    "aten::cat",
    "aten::stack",
    "aten::to",
    "aten::_to_copy",
}
ADD_OPS = {"aten::add", "aten::add_"}

# module class -> the scope name its operators are attributed to
SCOPES: dict[type, str] = {
    SS2D: "ss2d",
    Mlp: "mlp",
    VSSBlock: "block",
    PatchEmbed: "stem",
    Downsample: "downsample",
    ClassifierHead: "heads",
    SemanticLocalProjection: "heads",
    SemanticFusion: "heads",
}


def _gemm_width(op: str, shapes: list[list[int]]) -> int | None:
    """The output width ``N`` of a 2-D GEMM from its operand shapes (``None`` for batched ones)."""
    if op == "mkldnn::_linear_pointwise":
        # (X, W, B, attr, scalars, algorithm), or the binary form (X, other, W, B, attr)
        weight = shapes[2] if len(shapes) == 5 else shapes[1]
        return weight[0] if len(weight) == 2 else None
    if op == "aten::linear" and len(shapes) > 1 and len(shapes[1]) == 2:
        return shapes[1][0]  # weight (N, K)
    mats = [s for s in shapes if len(s) >= 2]
    if len(mats) >= 2 and len(mats[1]) == 2:
        return mats[1][-1]  # mm(a, b) / addmm(bias, a, b) / matmul(a, b): b is (K, N)
    return None


def _gemm_kind(module: nn.Module | None, op: str, shapes: list[list[int]]) -> str | None:
    """Which projection of an SS2D or MLP a GEMM is, from its output width."""
    width = _gemm_width(op, shapes)
    if isinstance(module, SS2D):
        if width is None:
            return "dt_proj"  # the per-direction (4, L, R) x (4, R, D) batched product
        if width == module.d_inner:
            return "in_proj"
        if width == 4 * (module.dt_rank + 2 * module.d_state):
            return "x_proj"
        return "out_proj"
    if isinstance(module, Mlp):
        return "mlp_fc1" if width == module.fc1.out_features else "mlp_fc2"
    return None


def _category(op: str, scope: str, module: nn.Module | None, shapes: list[list[int]]) -> str:
    if op in GEMM_OPS:
        kind = _gemm_kind(module, op, shapes)
        if kind is not None:
            return "gemm." + kind
        return "gemm.heads" if scope in ("heads", "other") else f"gemm.{scope}"
    if op in CONV_OPS:
        return "conv.depthwise" if scope == "ss2d" else "conv.stem_downsample"
    if op in NORM_OPS:
        if scope == "ss2d":
            return "norm.out_norm"
        return "norm.block" if scope == "block" else "norm.other"
    if op in ACT_OPS:
        return "activation"
    if op in LAYOUT_OPS:
        return "layout"
    if op in ADD_OPS and scope == "block":
        return "residual"
    if scope == "ss2d":
        return "scan"
    if scope == "heads":
        return "heads"
    return "other"


class ScopeTracker:
    """Forward hooks that open a profiler range per module of interest."""

    def __init__(self, model: nn.Module):
        self.modules: dict[str, nn.Module] = {}
        self.handles = []
        for name, m in model.named_modules():
            scope = SCOPES.get(type(m))
            if scope is None:
                continue
            label = f"zmscope::{scope}::{name}"
            self.modules[label] = m
            self.handles.append(m.register_forward_pre_hook(self._enter(label)))
            self.handles.append(m.register_forward_hook(self._exit))
        self.stack: list = []

    def _enter(self, label: str) -> Callable[..., None]:
        def hook(module: nn.Module, args: object) -> None:
            rf = torch.profiler.record_function(label)
            rf.__enter__()
            self.stack.append(rf)

        return hook

    def _exit(self, module: nn.Module, args: object, output: object) -> None:
        self.stack.pop().__exit__(None, None, None)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def categorise(events, modules: dict[str, nn.Module]) -> dict[str, float]:
    """Milliseconds per category, from the profiler's event tree of one forward pass."""
    out: dict[str, float] = defaultdict(float)

    def scope_of(ev) -> tuple[str, nn.Module | None]:
        p = ev.cpu_parent
        while p is not None and not p.name.startswith("zmscope::"):
            p = p.cpu_parent
        if p is None:
            return "other", None
        return p.name.split("::")[1], modules.get(p.name)

    for ev in events:
        if ev.name.startswith("zmscope::"):
            # time inside a scope that no operator accounts for: Python and the profiler itself (the
            # scan kernel is an operator of its own, so it is not in here)
            child_ops = sum(c.cpu_time_total for c in ev.cpu_children)
            out["untracked"] += max(ev.cpu_time_total - child_ops, 0.0) / 1000
            continue
        parent = ev.cpu_parent
        if parent is not None and not parent.name.startswith("zmscope::"):
            continue  # counted with its top-level operator
        scope, module = scope_of(ev)
        shapes = [list(s) for s in (ev.input_shapes or [])]
        out[_category(ev.name, scope, module, shapes)] += ev.cpu_time_total / 1000
    return dict(out)


def matrix_gmacs(model: nn.Module, x: torch.Tensor) -> float:
    """Multiply-accumulates (in G) of the model's matrix products and convolutions for input ``x``.

    Counted with gradients enabled, which routes the fused CPU paths (whose operators the counter
    does not know) through plain PyTorch operators that compute the same products.
    """
    with torch.enable_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2 / 1e9


def timed_rounds(models: dict[str, nn.Module], x: torch.Tensor, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {n: [] for n in models}
    with torch.inference_mode():
        for m in models.values():
            m(x)
        for _ in range(rounds):
            for n, m in models.items():
                t = time.perf_counter()
                m(x)
                times[n].append((time.perf_counter() - t) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--rounds", type=int, default=5, help="plain timed rounds (interleaved with resnet101)")
    ap.add_argument("--profiled", type=int, default=3, help="profiled forward passes (median per category)")
    ap.add_argument("--top", type=int, default=15, help="how many of the most expensive operators to list")
    add_builds_argument(ap)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not args.single:
        run_builds(args)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)

    zm = zeromamba.create_model("zeromamba_small", num_attributes=312, semantic_dim=300).eval().to(dtype)
    resnet = timm.create_model("resnet101").eval().to(dtype)
    x = torch.randn(args.batch, 3, args.size, args.size, dtype=dtype)
    times = timed_rounds({"zeromamba_small": zm, "resnet101": resnet}, x, args.rounds)
    ratios = [a / b for a, b in zip(times["zeromamba_small"], times["resnet101"])]

    gmacs = {name: matrix_gmacs(m, x) for name, m in (("zeromamba_small", zm), ("resnet101", resnet))}
    tracker = ScopeTracker(zm)
    per_run: list[dict[str, float]] = []
    op_rows: dict[tuple[str, str], float] = defaultdict(float)
    with torch.inference_mode():
        zm(x)
        for _ in range(args.profiled):
            with torch.profiler.profile(record_shapes=True) as prof:
                zm(x)
            events = [e for e in prof.events() if e.device_type.name == "CPU"]
            per_run.append(categorise(events, tracker.modules))
            for e in events:
                top_level = e.cpu_parent is not None and e.cpu_parent.name.startswith("zmscope::")
                if top_level and not e.name.startswith("zmscope::"):
                    op_rows[(e.name, str(e.input_shapes))] += e.cpu_time_total / 1000 / args.profiled
    tracker.remove()
    cats = sorted({c for run in per_run for c in run})
    profile = {c: round(statistics.median(run.get(c, 0.0) for run in per_run), 1) for c in cats}
    total = sum(profile.values())
    matrix = sum(v for c, v in profile.items() if c.startswith("gemm.") or c == "conv.stem_downsample")
    # the matrix products' share of the profile, applied to the plain (unprofiled) time ratio
    plain_ratio = statistics.median(times["zeromamba_small"]) / statistics.median(times["resnet101"])
    top = sorted(op_rows.items(), key=lambda kv: -kv[1])[: args.top]
    print(
        json.dumps(
            {
                "benchmark": "profile_cpu",
                "machine": machine_info(kernels=True),
                "torch": torch.__version__,
                "threads": args.threads,
                "cpu_count": os.cpu_count(),
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "fused_cpu_kernel": kernel_status(),
                "size": args.size,
                "batch": args.batch,
                "dtype": args.dtype,
                "zeromamba_small_ms_median": round(statistics.median(times["zeromamba_small"]), 1),
                "resnet101_ms_median": round(statistics.median(times["resnet101"]), 1),
                "zeromamba_vs_resnet101_median_of_rounds": round(statistics.median(ratios), 3),
                "profiled_total_ms": round(total, 1),
                # the matrix products alone (every GEMM and the strided convs), against resnet101's
                # whole forward pass: what is left for everything else if ZeroMamba is to match it
                "matrix_products_ms": round(matrix, 1),
                "matrix_products_share": round(matrix / total, 3),
                "matrix_products_vs_resnet101_total": round(matrix / total * plain_ratio, 3),
                # the arithmetic: matrix products (and convs) in G multiply-accumulates, and the rate
                # ZeroMamba-S's run at (from the profile; resnet101 is almost nothing else)
                "matrix_gmac": {k: round(v, 2) for k, v in gmacs.items()},
                "zeromamba_matrix_gmac_per_s": round(gmacs["zeromamba_small"] / (matrix / 1000), 1),
                "resnet101_gmac_per_s": round(gmacs["resnet101"] / (statistics.median(times["resnet101"]) / 1000), 1),
                "profile_ms": dict(sorted(profile.items(), key=lambda kv: -kv[1])),
                "profile_share": {c: round(v / total, 3) for c, v in sorted(profile.items(), key=lambda kv: -kv[1])},
                "scan_share": round(profile.get("scan", 0.0) / total, 3),
                "top_operators_ms": [{"op": k[0], "shapes": k[1], "ms": round(v, 2)} for k, v in top],
            },
            indent=2,
        )
    )


def run_builds(args: argparse.Namespace) -> None:
    """This script once per build, each in a subprocess with the build's environment; one JSON."""
    builds = args.builds or default_builds()
    argv = ["--single", "--threads", str(args.threads), "--size", str(args.size), "--batch", str(args.batch)]
    argv += ["--dtype", args.dtype, "--rounds", str(args.rounds), "--profiled", str(args.profiled)]
    argv += ["--top", str(args.top)]
    report: dict[str, object] = {"benchmark": "profile_cpu", "machine": machine_info(), "builds_run": builds}
    report["builds"] = run_per_build(str(Path(__file__).resolve()), argv, builds)
    write_report(report, args.out)


if __name__ == "__main__":
    main()
