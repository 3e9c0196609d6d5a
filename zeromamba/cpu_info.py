"""The CPU as the system describes it: its name and the feature flags that decide which code runs.

A leaf without torch, so that the kernel builds (:mod:`zeromamba.ops.cpu_build`), ``zeromamba env``
(:mod:`zeromamba.ops.status`) and the benchmarks' machine records read the same facts the same way,
and start-up benchmarks can read them without loading torch.
"""

from __future__ import annotations

import platform
import subprocess
import sys

__all__ = ["ISA_FLAGS", "cpu_fields", "cpu_flags", "cpu_model"]

#: the flags (``/proc/cpuinfo`` names) that choose the code PyTorch, oneDNN and the kernels run;
#: reports name ``amx_tile`` ``amx``
ISA_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_int8",
    "asimd", "sve",
)  # fmt: skip


def cpu_fields() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    if fields:
                        break
                    continue
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def cpu_flags(fields: dict[str, str] | None = None) -> set[str] | None:
    """The CPU's feature flags (``flags`` on x86, ``Features`` on ARM), or ``None`` where the system
    does not list them (not Linux). ``fields``: :func:`cpu_fields` already read."""
    fields = cpu_fields() if fields is None else fields
    listed = fields.get("flags", fields.get("Features"))
    return None if listed is None else set(listed.split())


def cpu_model(fields: dict[str, str] | None = None) -> str:
    """The CPU's name (``model name``; on macOS the brand string), else the platform's best guess."""
    fields = cpu_fields() if fields is None else fields
    if fields.get("model name"):
        return fields["model name"]
    if sys.platform == "darwin":
        try:
            out = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True)
            if out.stdout.strip():
                return out.stdout.strip()
        except OSError:
            pass
    return platform.processor() or platform.machine()
