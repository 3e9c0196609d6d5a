"""What this machine runs: its CPU, the instruction sets that decide the code, and which fast paths
(the C scan kernels, oneDNN's fused layers, int8, the GPU kernels) are in use here, or why not.

:func:`runtime_report` builds the kernels it reports on if they are not built yet (the first use
would), so what it says is what a model run in this process gets. ``zeromamba env`` prints it.
"""

from __future__ import annotations

import os
import platform
import sys
from typing import Any

import torch

from ..cpu_info import ISA_FLAGS, cpu_fields, cpu_flags, cpu_model

__all__ = ["SETTINGS", "runtime_report"]

#: environment variables that change which CPU code runs (zeromamba's own, and the caps that make a
#: newer CPU run as an older one)
SETTINGS = (
    "ZEROMAMBA_CPU_ISA",
    "ZEROMAMBA_DISABLE_CPU_KERNEL",
    "ZEROMAMBA_CPU_KERNEL_OPENMP",
    "ZEROMAMBA_SCAN_BACKEND",
    "ZEROMAMBA_DISABLE_ONEDNN",
    "ZEROMAMBA_PACK_WEIGHTS",
    "ZEROMAMBA_INT8_KERNEL",
    "CC",
    "OMP_NUM_THREADS",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "FBGEMM_ENABLE_INSTRUCTIONS",
)


def _cuda() -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"available": False}
    from .fused_triton import fused_triton_available
    from .selective_scan import mamba_ssm_available

    return {
        "available": True,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "triton_scan": fused_triton_available(torch.device("cuda")),
        "mamba_ssm": mamba_ssm_available(),
    }


def runtime_report() -> dict[str, Any]:
    """Versions, the CPU and the fast paths in use, as a JSON-ready dict:

    * ``cpu``: ``model``, ``machine``, ``cores``, ``virtualised``, ``isa`` (those of
      :data:`zeromamba.cpu_info.ISA_FLAGS` it has; ``amx_tile`` reads ``amx``; ``None`` where the
      system does not list them);
    * ``torch``: ``version``, ``cpu_capability`` (the vector width PyTorch's own kernels use), ``threads``,
      ``onednn``;
    * ``kernels``: the C kernels (``ss2d_scan``: VMamba's cross scan; ``mamba_mixer``: Vim's), each
      ``status`` (``"ok"`` or why it is not used) and, when built, its ``variant``, ``isa``,
      ``vector_lanes``, ``fma`` and compiler;
    * ``fused_layers``: whether oneDNN's fused linear layers run in ``float32`` and ``bfloat16``;
    * ``int8``: the int8 kernel and the bits of weights and activations, or ``reason`` it is unavailable;
    * ``cuda``: ``available``, and where it is, the devices and the GPU scan paths;
    * ``settings``: the variables of :data:`SETTINGS` that are set.
    """
    from ..version import __version__
    from .fused_cpu import kernel_info
    from .fused_linear import fused_linear_available
    from .int8_linear import int8_status
    from .mixer_cpu import mixer_cpu_info

    fields = cpu_fields()
    known = cpu_flags(fields)  # None where the system does not list them (not Linux)
    flags = known or set()
    try:
        import timm

        timm_version = timm.__version__
    except ImportError:  # pragma: no cover - a dependency
        timm_version = None
    return {
        "zeromamba": __version__,
        "python": platform.python_version(),
        "platform": sys.platform,
        "timm": timm_version,
        "cpu": {
            "model": cpu_model(fields),
            "machine": platform.machine(),
            "cores": os.cpu_count(),
            "virtualised": "hypervisor" in flags,
            "isa": None if known is None else [("amx" if f == "amx_tile" else f) for f in ISA_FLAGS if f in flags],
        },
        "torch": {
            "version": torch.__version__,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(),
            "onednn": torch.backends.mkldnn.is_available(),
        },
        "kernels": {"ss2d_scan": kernel_info(), "mamba_mixer": mixer_cpu_info()},
        "fused_layers": {
            "float32": fused_linear_available(torch.float32),
            "bfloat16": fused_linear_available(torch.bfloat16),
        },
        "int8": int8_status(),
        "cuda": _cuda(),
        "settings": {k: os.environ[k] for k in SETTINGS if k in os.environ},
    }
