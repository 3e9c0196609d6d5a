"""The entry points of the Mamba mixer's two operations (Vim's bidirectional blocks), and the
choice of their implementation.

:func:`mixer_selective_scan` and :func:`mixer_causal_conv1d` take token-major ``(batch, L, E)``
sequences; ``reverse=True`` runs the operation on the reversed sequence and reverses the result
back (the backward direction of the bidirectional mixer). ``backend`` picks the implementation,
with the same names as the cross scan's (:mod:`zeromamba.ops.dispatch`):

* ``"reference"`` -- the plain sequential recurrence and ``F.conv1d`` (:mod:`.mixer_torch`), the
  ground truth of the tests.
* ``"torch"`` -- the fast differentiable PyTorch path on any device (the two-level scan, the
  convolution as shifted multiply-adds): training, and wherever no kernel applies.
* ``"fused_cpu"`` -- C kernels for CPU inference, any ``d_state`` up to 256 (:mod:`.mixer_cpu`).
* ``"triton"`` -- Triton kernels for CUDA inference (:mod:`.mixer_triton`); with
  ``TRITON_INTERPRET=1`` the same kernels run on CPU tensors (how they are tested without a GPU).
* ``"mamba"`` -- mamba-ssm's ``selective_scan_fn`` and causal-conv1d's ``causal_conv1d_fn`` on
  CUDA (the ``cuda`` extra; :mod:`.mixer_cuda`), differentiable.
* ``"chunked"`` -- graph-friendly ops only (:mod:`.mixer_chunked`'s ``cumsum`` / ``exp`` scan, the
  shifted multiply-add convolution): for ONNX / ``torch.export`` graphs, and ``torch.compile``
  with gradients.
* ``"auto"`` -- while ``torch.compile`` traces CPU inference: ``"fused_cpu"`` (the kernels are
  registered custom ops); while any other graph is traced (``torch.export``, ``torch.jit.trace``,
  the ONNX exporter, ``torch.compile`` with gradients or on CUDA): ``"chunked"``; otherwise on CUDA:
  ``"mamba"`` when the package imports (mamba-ssm for the scan, causal-conv1d for the
  convolution), else ``"triton"`` for inference when its self-check passes, else ``"torch"``;
  on CPU: ``"fused_cpu"`` for inference when the kernels build, else ``"torch"``.
  ``ZEROMAMBA_SCAN_BACKEND`` overrides ``"auto"``, as for the cross scan.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch

from .mixer_chunked import selective_scan_chunked_mixer
from .mixer_cpu import (
    causal_conv1d_cpu,
    mixer_cpu_available,
    mixer_cpu_available_when_compiling,
    mixer_cpu_status,
    selective_scan_cpu,
)
from .mixer_cuda import causal_conv1d_available, causal_conv1d_cuda, mamba_ssm_available, selective_scan_cuda
from .mixer_torch import causal_conv1d_ref, causal_conv1d_torch, selective_scan_ref, selective_scan_torch
from .mixer_triton import (
    causal_conv1d_triton,
    mixer_triton_available,
    mixer_triton_interpreted,
    selective_scan_triton,
)
from .tracing import is_compiling_in_process, is_tracing

__all__ = ["MIXER_BACKENDS", "mixer_causal_conv1d", "mixer_selective_scan", "resolve_mixer_backend"]

MIXER_BACKENDS = ("auto", "reference", "torch", "fused_cpu", "triton", "mamba", "chunked")

_SCANS: dict[str, Callable[..., torch.Tensor]] = {
    "reference": selective_scan_ref,
    "torch": selective_scan_torch,
    "fused_cpu": selective_scan_cpu,
    "triton": selective_scan_triton,
    "mamba": selective_scan_cuda,
    "chunked": selective_scan_chunked_mixer,
}
_CONVS: dict[str, Callable[..., torch.Tensor]] = {
    "reference": causal_conv1d_ref,
    "torch": causal_conv1d_torch,
    "fused_cpu": causal_conv1d_cpu,
    "triton": causal_conv1d_triton,
    "mamba": causal_conv1d_cuda,
    "chunked": causal_conv1d_torch,
}


def _cuda_package_available(op: str) -> bool:
    return mamba_ssm_available() if op == "scan" else causal_conv1d_available()


def resolve_mixer_backend(backend: str, x: torch.Tensor, op: str = "scan", needs_grad: bool = False) -> str:
    """Turn ``"auto"`` (or the ``ZEROMAMBA_SCAN_BACKEND`` override) into a concrete backend for
    ``op`` (``"scan"`` or ``"conv"``) on ``x``'s device; check that a forced one can run.

    Raises:
        ValueError: an unknown backend name.
        RuntimeError: a backend that cannot run here (wrong device, autograd needed, not installed).
    """
    if backend == "auto":
        backend = os.environ.get("ZEROMAMBA_SCAN_BACKEND", "auto") or "auto"
    if backend not in MIXER_BACKENDS:
        raise ValueError(f"unknown mixer backend {backend!r}; choose one of {', '.join(MIXER_BACKENDS)}")
    if backend == "auto":
        if is_tracing():  # the kernels below are opaque to a graph
            cpu_inference = x.device.type == "cpu" and not needs_grad
            if cpu_inference and is_compiling_in_process() and mixer_cpu_available_when_compiling():
                return "fused_cpu"  # custom ops: inductor keeps each as one call
            return "chunked"
        if x.is_cuda:
            if _cuda_package_available(op):
                return "mamba"
            if not needs_grad and mixer_triton_available(x.device):
                return "triton"
            return "torch"
        if x.device.type == "cpu" and not needs_grad and mixer_cpu_available():
            return "fused_cpu"
        return "torch"
    if backend in ("fused_cpu", "triton") and needs_grad:
        raise RuntimeError(f"mixer backend {backend!r} is forward only; use 'torch' (or 'mamba' on CUDA) to train")
    if backend == "fused_cpu":
        if x.device.type != "cpu":
            raise RuntimeError("mixer backend 'fused_cpu' runs on CPU tensors only")
        if not mixer_cpu_available():
            raise RuntimeError(f"mixer backend 'fused_cpu' is unavailable ({mixer_cpu_status()}); use 'torch'")
    if backend == "triton" and not (mixer_triton_interpreted() or (x.is_cuda and mixer_triton_available(x.device))):
        raise RuntimeError(
            "mixer backend 'triton' needs CUDA tensors, Triton and a passing self-check (or TRITON_INTERPRET=1, "
            "which runs the kernels on CPU); use 'torch'"
        )
    if backend == "mamba":
        package = "mamba-ssm" if op == "scan" else "causal-conv1d"
        if not x.is_cuda:
            raise RuntimeError("mixer backend 'mamba' needs CUDA tensors; use 'torch' or 'fused_cpu' on CPU")
        if not _cuda_package_available(op):
            raise RuntimeError(
                f"mixer backend 'mamba' needs {package} with its CUDA extension (pip install 'zeromamba[cuda]'); "
                "use backend='auto' instead"
            )
    return backend


def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def mixer_selective_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    *,
    softplus: bool = True,
    reverse: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """One direction of the Mamba selective scan, any state size ``N``.

    Per channel ``e`` and state ``n``, along the sequence (backwards with ``reverse``)::

        dt_t = softplus(dt_t + dt_bias)                     (softplus when ``softplus``)
        h_t  = exp(dt_t * A[e, n]) * h_{t-1} + dt_t * B_t[n] * x_t
        y_t  = (sum_n C_t[n] h_t[n] + D[e] x_t) * silu(z_t)   (the gate when ``z`` is given)

    Args:
        x, dt, z: ``(batch, L, E)`` (views with a contiguous last dimension are read in place).
        A: ``(E, N)``, the (negative) state matrix ``-exp(A_log)``.
        B, C: ``(batch, L, N)`` input and output projections per position.
        D, dt_bias: ``(E,)`` skip weight and dt bias.
        backend: see the module docstring.

    Returns:
        ``(batch, L, E)`` float32.
    """
    if x.dim() != 3 or dt.shape != x.shape or A.dim() != 2 or A.shape[0] != x.shape[2]:
        raise ValueError(
            f"expected x, dt (batch, L, E) and A (E, N); got {tuple(x.shape)}, {tuple(dt.shape)}, {tuple(A.shape)}"
        )
    expected_bc = (x.shape[0], x.shape[1], A.shape[1])
    if tuple(B.shape) != expected_bc or tuple(C.shape) != expected_bc:
        raise ValueError(f"B and C must be {expected_bc}; got {tuple(B.shape)} and {tuple(C.shape)}")
    name = resolve_mixer_backend(backend, x, "scan", _needs_grad(x, dt, A, B, C, D, z, dt_bias))
    return _SCANS[name](x, dt, A, B, C, D, z, dt_bias, softplus, reverse)


def mixer_causal_conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    activation: str | None = "silu",
    reverse: bool = False,
    backend: str = "auto",
) -> torch.Tensor:
    """Depthwise causal conv1d of kernel ``K`` along the sequence, then SiLU (``activation="silu"``).

    ``y_t = bias + sum_k w_k x_{t-K+1+k}`` with zeros before the first position; with ``reverse``,
    ``y_t = bias + sum_k w_k x_{t+K-1-k}`` (the causal conv of the reversed sequence, reversed back).

    Args:
        x: ``(batch, L, E)``; weight: ``(E, K)`` or ``(E, 1, K)``; bias: ``(E,)``.
        backend: see the module docstring.

    Returns:
        ``(batch, L, E)`` (float32 from the kernels, ``x``'s dtype from the PyTorch paths).
    """
    if x.dim() != 3 or weight.shape[0] != x.shape[2]:
        raise ValueError(
            f"expected x (batch, L, E) and weight (E, [1,] K); got {tuple(x.shape)}, {tuple(weight.shape)}"
        )
    if activation not in (None, "silu"):
        raise ValueError(f"activation must be None or 'silu' (got {activation!r})")
    name = resolve_mixer_backend(backend, x, "conv", _needs_grad(x, weight, bias))
    return _CONVS[name](x, weight, bias, activation, reverse)
