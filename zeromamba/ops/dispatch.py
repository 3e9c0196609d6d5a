"""The entry point of SS2D's four-direction selective scan, and the choice of its implementation.

:func:`cross_selective_scan` runs cross-scan, scan and cross-merge (the layout is in
:mod:`zeromamba.ops.cross_scan`); ``backend`` picks the implementation:

* ``"reference"`` -- the official layout (cross-scan copies, per-direction einsums, the sequential
  float32 recurrence, cross-merge). Slow; kept as the ground truth for the tests.
* ``"torch"`` -- the fast pure-PyTorch path, differentiable, on any device (what ``"auto"`` picks
  for training and wherever the fused kernels do not apply): everything stays sequence-major,
  the four directions become index arithmetic (one gather in, one gather out), and the
  recurrence is a two-level scan (:mod:`zeromamba.ops.torch_scan`).
* ``"fused_cpu"`` -- a one-pass C kernel for ``d_state == 1`` inference on CPU, built on first use
  with the system compiler (:mod:`zeromamba.ops.fused_cpu`); forward only.
* ``"triton"`` -- the same one-pass scan as Triton kernels on CUDA with ``d_state == 1``
  (:mod:`zeromamba.ops.fused_triton`); forward and backward, so training too.
* ``"mamba"`` -- mamba-ssm's fused CUDA kernel on the official layout.
* ``"chunked"`` -- graph-friendly ops only (flips, matmuls, ``cumsum``, ``exp``), any ``d_state``,
  differentiable (:mod:`zeromamba.ops.chunked_scan`): what ONNX / TorchScript / ``torch.export``
  graphs get, and ``torch.compile`` where the fused kernel does not apply.
* ``"auto"`` -- while ``torch.compile`` traces CPU inference with ``d_state == 1``: ``"fused_cpu"``
  (a registered custom op, opaque to inductor); while ``torch.export`` / ``torch.jit.trace`` / the
  ONNX exporter traces, or ``torch.compile`` any other case: ``"chunked"``; otherwise on CUDA:
  ``"mamba"`` when mamba-ssm imports, else ``"triton"`` with ``d_state == 1`` when its self-check
  passes (the gradient self-check too when training); on CPU: ``"fused_cpu"`` for inference with
  ``d_state == 1`` when the kernel builds; otherwise ``"torch"``.
"""

from __future__ import annotations

import os

import torch

from .chunked_scan import cross_scan_chunked
from .fused_cpu import cross_scan_fused_cpu, fused_cpu_available, fused_cpu_available_when_compiling, kernel_status
from .fused_triton import cross_scan_fused_triton, fused_triton_available
from .selective_scan import mamba_ssm_available, selective_scan_mamba, selective_scan_reference
from .torch_scan import cross_scan_official, cross_scan_torch
from .tracing import is_compiling_in_process, is_tracing

__all__ = ["SCAN_BACKENDS", "cross_selective_scan", "resolve_backend"]

SCAN_BACKENDS = ("auto", "reference", "torch", "fused_cpu", "triton", "mamba", "chunked")


def resolve_backend(backend: str, x: torch.Tensor, d_state: int = 1, needs_grad: bool = False) -> str:
    """Turn ``"auto"`` (or the ``ZEROMAMBA_SCAN_BACKEND`` override) into a concrete backend."""
    if backend == "auto":
        backend = os.environ.get("ZEROMAMBA_SCAN_BACKEND", "auto") or "auto"
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"unknown scan backend {backend!r}; choose one of {', '.join(SCAN_BACKENDS)}")
    if backend == "auto":
        if is_tracing():  # the kernels below are opaque to a graph; this backend is plain ops
            cpu_inference = x.device.type == "cpu" and d_state == 1 and not needs_grad
            if cpu_inference and is_compiling_in_process() and fused_cpu_available_when_compiling():
                return "fused_cpu"  # a custom op: inductor keeps it as one call
            return "chunked"
        if x.is_cuda:
            if mamba_ssm_available():
                return "mamba"
            if d_state == 1 and fused_triton_available(x.device, gradients=needs_grad):
                return "triton"
            return "torch"
        if x.device.type == "cpu" and d_state == 1 and not needs_grad and fused_cpu_available():
            return "fused_cpu"
        return "torch"
    if backend == "triton":
        if not x.is_cuda or d_state != 1:
            raise RuntimeError(
                "scan backend 'triton' runs on CUDA with d_state=1 only; use 'torch' for other d_state values "
                "or other devices"
            )
        if not fused_triton_available(x.device, gradients=needs_grad):
            raise RuntimeError("scan backend 'triton' is unavailable (Triton missing or its self-check failed)")
    if backend == "fused_cpu":
        if x.device.type != "cpu" or d_state != 1 or needs_grad:
            raise RuntimeError(
                "scan backend 'fused_cpu' runs CPU inference with d_state=1 only; use 'torch' for training, "
                "other d_state values or other devices"
            )
        if not fused_cpu_available():
            raise RuntimeError(f"scan backend 'fused_cpu' is unavailable ({kernel_status()}); use 'torch'")
    if backend == "mamba" and not mamba_ssm_available():
        raise RuntimeError(
            "scan backend 'mamba' needs mamba-ssm with its CUDA extension "
            "(pip install 'zeromamba[cuda]'); use backend='torch' or 'auto' instead"
        )
    return backend


def cross_selective_scan(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """SS2D's core on a channels-last map.

    Args:
        x: ``(B, H, W, D)`` input (after SS2D's depthwise conv and SiLU).
        x_proj_weight: ``(4, R + 2N, D)`` per-direction projection to ``(dt_low, B, C)``.
        dt_projs_weight: ``(4, D, R)``; dt_projs_bias: ``(4, D)``.
        A_logs: ``(4 * D, N)``, ``A = -exp(A_logs)``; Ds: ``(4 * D,)`` skip weights.
        backend: see the module docstring.

    Returns:
        ``(B, H, W, D)`` float32: the four directions' outputs summed at each position.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a (B, H, W, D) tensor, got shape {tuple(x.shape)}")
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    )
    backend = resolve_backend(backend, x, A_logs.shape[1], needs_grad)
    if backend == "triton":
        return cross_scan_fused_triton(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    if backend == "fused_cpu":
        return cross_scan_fused_cpu(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    if backend == "chunked":
        return cross_scan_chunked(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    if backend == "torch":
        return cross_scan_torch(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    scan = selective_scan_reference if backend == "reference" else selective_scan_mamba
    return cross_scan_official(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scan)
