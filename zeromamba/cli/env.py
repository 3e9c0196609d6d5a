"""``zeromamba env``: what this machine runs (versions, the CPU, the fast paths in use or why not)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..terminal import terminal_safe

__all__ = ["register"]


def _kernel_line(info: dict[str, Any]) -> str:
    if info.get("status") != "ok":
        return f"not used: {info.get('status')} (the plain PyTorch path runs instead)"
    fma = ", FMA" if info.get("fma") else ""
    threads = "OpenMP" if info.get("variant") == "openmp" else "a thread pool"
    isa = "this CPU (native)" if info.get("isa") == "native" else info.get("isa")
    compiler = info.get("compiler_version") or info.get("compiler")
    return f"in use: {isa} build, {info.get('vector_lanes')} float lanes{fma}, on {threads}; {compiler}"


def _isa_text(isa: list[str] | None) -> str:
    if isa is None:
        return "not listed by this system (no /proc/cpuinfo)"
    return " ".join(isa) or "none of those that matter here (no SSE4.2, AVX2, AVX-512 or NEON)"


def _int8_line(info: dict[str, Any]) -> str:
    if info.get("kernel") is None:
        return f"unavailable: {info.get('reason')}"
    line = f"{info['kernel']} kernel, {info['weight_bits']}-bit weights, {info['activation_bits']}-bit activations"
    return line + (f" ({info['engine']})" if info.get("engine") else "")


def _cuda_line(info: dict[str, Any]) -> str:
    if not info.get("available"):
        return "none (CUDA not available to PyTorch)"
    scan = "Triton scan kernels" if info.get("triton_scan") else "no Triton (the scan runs in PyTorch)"
    mamba = ", mamba-ssm" if info.get("mamba_ssm") else ""
    return f"{', '.join(info.get('devices', []))}; {scan}{mamba}"


def report_text(report: dict[str, Any]) -> str:
    """The human-readable form of :func:`zeromamba.ops.status.runtime_report`."""
    cpu, tor = report["cpu"], report["torch"]
    vm = ", virtual machine" if cpu.get("virtualised") else ""
    fused = report["fused_layers"]
    rows = [
        (
            "versions",
            f"zeromamba {report['zeromamba']}, torch {tor['version']}, timm {report['timm']}, "
            f"Python {report['python']} ({report['platform']})",
        ),
        ("CPU", f"{cpu['model']} ({cpu['machine']}, {cpu['cores']} cores{vm})"),
        ("instruction sets", _isa_text(cpu["isa"])),
        (
            "PyTorch on the CPU",
            f"{tor['cpu_capability']} kernels, {tor['threads']} threads, oneDNN {'yes' if tor['onednn'] else 'no'}",
        ),
        ("VMamba scan kernel", _kernel_line(report["kernels"]["ss2d_scan"])),
        ("Vim mixer kernels", _kernel_line(report["kernels"]["mamba_mixer"])),
        (
            "fused linear layers",
            f"float32 {'yes' if fused['float32'] else 'no'}, bfloat16 {'yes' if fused['bfloat16'] else 'no'}",
        ),
        ("int8", _int8_line(report["int8"])),
        ("GPU", _cuda_line(report["cuda"])),
        ("settings", " ".join(f"{k}={v}" for k, v in report["settings"].items()) or "none set"),
    ]
    width = max(len(name) for name, _ in rows)
    # each value on its own line, made safe for the terminal (reasons quote settings and compiler output)
    return "\n".join(f"{name:<{width}}  {terminal_safe(value)}" for name, value in rows)


def cmd_env(args: argparse.Namespace) -> int:
    from ..ops.status import runtime_report

    report = runtime_report()
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "env",
        help="what this machine runs: versions, the CPU's instruction sets, the C kernels, int8 and the GPU",
        description=(
            "Print what a model run here gets: the versions, the CPU and its instruction sets, whether the "
            "C scan kernels are in use (built now if they are not yet) and for which instruction set, or why "
            "not; oneDNN's fused layers, int8 and the GPU. Include it in bug reports about speed."
        ),
    )
    p.add_argument("--json", action="store_true", help="print it as JSON")
    p.set_defaults(func=cmd_env)
