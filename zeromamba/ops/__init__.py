"""Scan kernels: the plain references and the fast implementations, side by side.

VMamba's four-direction cross scan (:mod:`.dispatch`) and the Mamba mixer's selective scan and
causal conv1d for Vim (:mod:`.mixer_dispatch`)."""

from .cross_scan import cross_merge, cross_scan, scan_order
from .dispatch import SCAN_BACKENDS, cross_selective_scan, resolve_backend
from .fused_cpu import fused_cpu_available, kernel_build, kernel_info, kernel_status, select_kernel
from .fused_linear import fused_linear_available
from .fused_triton import fused_triton_available
from .mixer_dispatch import MIXER_BACKENDS, mixer_causal_conv1d, mixer_selective_scan, resolve_mixer_backend
from .packed_weights import release_packed_weights
from .selective_scan import (
    linear_recurrence,
    mamba_ssm_available,
    selective_scan_chunked,
    selective_scan_mamba,
    selective_scan_reference,
)

__all__ = [
    "MIXER_BACKENDS",
    "SCAN_BACKENDS",
    "cross_merge",
    "cross_scan",
    "cross_selective_scan",
    "fused_cpu_available",
    "fused_linear_available",
    "fused_triton_available",
    "kernel_build",
    "kernel_info",
    "kernel_status",
    "linear_recurrence",
    "mamba_ssm_available",
    "mixer_causal_conv1d",
    "mixer_selective_scan",
    "release_packed_weights",
    "resolve_backend",
    "resolve_mixer_backend",
    "scan_order",
    "select_kernel",
    "selective_scan_chunked",
    "selective_scan_mamba",
    "selective_scan_reference",
]
