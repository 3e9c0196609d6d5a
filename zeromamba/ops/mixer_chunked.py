"""The Mamba mixer's selective scan with graph-friendly ops only (the ``"chunked"`` mixer backend):
the hierarchical ``cumsum`` / ``exp`` scan of :func:`~zeromamba.ops.chunked_scan.log_space_scan`,
for ONNX / TorchScript / ``torch.export`` graphs and ``torch.compile``. The convolution of that
backend is :func:`~zeromamba.ops.mixer_torch.causal_conv1d_torch` (shifted multiply-adds)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .chunked_scan import log_space_scan
from .chunked_scan import softplus as softplus_graph  # the parameter `softplus` shadows the name

__all__ = ["selective_scan_chunked_mixer"]


def selective_scan_chunked_mixer(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    softplus: bool = True,
    reverse: bool = False,
) -> torch.Tensor:
    """The result of :func:`~zeromamba.ops.mixer_torch.selective_scan_ref`, any ``N``, differentiable."""
    x, dt = x.float(), dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    if softplus:
        dt = softplus_graph(dt)
    if reverse:
        x, dt, B, C = x.flip(1), dt.flip(1), B.flip(1), C.flip(1)
    batch, length, E = x.shape
    N = A.shape[1]
    log_a = dt.unsqueeze(-1) * A.float()  # (batch, L, E, N)
    b = (dt * x).unsqueeze(-1) * B.float().unsqueeze(2)
    h = log_space_scan(log_a.reshape(batch, length, E * N), b.reshape(batch, length, E * N))
    y = (h.view(batch, length, E, N) * C.float().unsqueeze(2)).sum(-1)
    if D is not None:
        y = y + D.float() * x
    if reverse:
        y = y.flip(1)
    if z is not None:
        y = y * F.silu(z.float())
    return y
