"""What every benchmark's JSON records about the machine it ran on: one helper for all of them.

    from machine import machine_info      # benchmarks/ is the script's folder, so on sys.path
    report = {"benchmark": "...", "machine": machine_info(), ...}

The CPU model and the instruction-set flags that decide which code runs (SSE4.2, AVX2, FMA,
AVX-512, AVX-512 BF16, AMX; NEON / ASIMD on ARM), the C compiler the kernels are built with and
its version, the environment variables that cap or force an instruction set
(``ATEN_CPU_CAPABILITY``, ``ONEDNN_MAX_CPU_ISA``, ``MKL_ENABLE_INSTRUCTIONS``, ``ZEROMAMBA_CPU_ISA``)
and the load average. :data:`BUILDS` names the instruction-set builds a benchmark can run in one
command (each in a subprocess with its environment: :func:`run_per_build`); :func:`write_report` prints the
JSON and writes it to ``--out``.
With ``kernels=True`` also which build of each CPU kernel is in use (this builds them if needed,
so benchmarks that time start-up leave it off); PyTorch's version and CPU capability when the
script has imported torch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

# the package's torch-free CPU facts (importing zeromamba loads neither torch nor timm)
from zeromamba.cpu_info import ISA_FLAGS, cpu_fields, cpu_flags, cpu_model

#: environment variables that change which instruction set (or allocator) the measured code uses
ISA_ENV = (
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "ZEROMAMBA_CPU_ISA",
    "FBGEMM_ENABLE_INSTRUCTIONS",
    "ZEROMAMBA_INT8_KERNEL",
    "CC",
    "OMP_NUM_THREADS",
    "OMP_WAIT_POLICY",
    "LD_PRELOAD",  # another memory allocator (benchmarks/allocator.py)
    "MALLOC_MMAP_MAX_",
    "MALLOC_TRIM_THRESHOLD_",
)


def _compiler() -> dict[str, str]:
    """The C compiler the kernels are built with (as zeromamba.ops.cpu_build picks it: $CC, cc, gcc,
    clang), found here without importing torch, so that start-up benchmarks stay unaffected."""
    for cc in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cc and shutil.which(cc):
            try:
                out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
            except (OSError, subprocess.SubprocessError):
                out = ""
            return {"command": cc, "version": out.strip().splitlines()[0] if out.strip() else ""}
    return {"command": "", "version": "none found"}


def machine_info(kernels: bool = False) -> dict[str, Any]:
    """The machine, its CPU and what decides the code it runs (see the module docstring)."""
    info = cpu_fields()
    flags = cpu_flags(info) or set()
    out: dict[str, Any] = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu_model": cpu_model(info),
        "cpu_id": {k: info[k] for k in ("vendor_id", "cpu family", "model", "stepping", "CPU part") if k in info},
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "virtualised": "hypervisor" in flags,
        "isa_flags": {("amx" if f == "amx_tile" else f): f in flags for f in ISA_FLAGS} if flags else "unknown",
        "compiler": _compiler(),
        "env": {k: os.environ[k] for k in ISA_ENV if k in os.environ},
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = torch.__version__
        out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    if kernels:
        from zeromamba.ops.fused_cpu import kernel_info
        from zeromamba.ops.mixer_cpu import mixer_cpu_info

        out["kernels"] = {"ss2d_scan": kernel_info(), "mamba_mixer": mixer_cpu_info()}
    return out


#: instruction-set builds a benchmark can run in one command, as the environment of a subprocess:
#: ``avx2`` emulates an AVX2-only CPU (no AVX-512) on a newer one by capping PyTorch's kernels,
#: oneDNN and MKL at AVX2 and building zeromamba's C kernels for x86-64-v3 (AVX2 + FMA)
BUILDS: dict[str, dict[str, str]] = {
    "native": {},
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ZEROMAMBA_CPU_ISA": "x86-64-v3",
    },
}


def add_builds_argument(parser: argparse.ArgumentParser) -> None:
    """A benchmark's ``--builds``: which of :data:`BUILDS` to run (``None``: :func:`default_builds`)."""
    parser.add_argument(
        "--builds", nargs="+", default=None, choices=list(BUILDS), help="default: native, and avx2 on an AVX-512 CPU"
    )


def default_builds() -> list[str]:
    """``native``, plus ``avx2`` where the CPU has AVX-512 (so that capping it at AVX2 means something)."""
    flags = machine_info()["isa_flags"]
    emulate = isinstance(flags, dict) and flags.get("avx512f") and flags.get("avx2") and flags.get("fma")
    return ["native", "avx2"] if emulate else ["native"]


def write_report(report: dict[str, Any], out: Any = None) -> None:
    """Print ``report`` as indented JSON and, given a path ``out``, also write it there atomically
    (its folder created), so an interrupted run never leaves half a result file."""
    from zeromamba.fileio import write_text

    text = json.dumps(report, indent=2)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_text(out, text + "\n")


def run_per_build(script: str, argv: list[str], builds: list[str]) -> dict[str, dict[str, Any]]:
    """``script argv`` once per build, each in a subprocess with the build's environment (:data:`BUILDS`);
    ``build -> {"environment": ..., **the JSON the script printed}``. A failed build ends the run
    with its stderr."""
    per_build: dict[str, dict[str, Any]] = {}
    for build in builds:
        env = dict(os.environ, **BUILDS[build])
        res = subprocess.run([sys.executable, script, *argv], env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise SystemExit(f"the {build} build failed:\n{res.stderr[-3000:]}")
        per_build[build] = {"environment": BUILDS[build], **json.loads(res.stdout)}
    return per_build
