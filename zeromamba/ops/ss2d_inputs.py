"""What the fused ``d_state == 1`` scan kernels (C and Triton) read, computed the same way for both."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .fused_linear import linear

__all__ = ["DState1Inputs", "dstate1_inputs"]


class DState1Inputs(NamedTuple):
    """Float32, contiguous kernel inputs for ``B`` images of ``H x W`` positions and ``D`` channels."""

    delta: torch.Tensor  # (4, B, L, D) dt projection, bias not yet added
    bias: torch.Tensor  # (4, D)
    u: torch.Tensor  # (B, L, D)
    Bs: torch.Tensor  # (4, B, L)
    Cs: torch.Tensor  # (4, B, L)
    A: torch.Tensor  # (4, D), -exp(A_logs)
    Dsum: torch.Tensor  # (D,) the four directions' skip weights summed


def dstate1_inputs(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    delta_buffer: torch.Tensor | None = None,
) -> DState1Inputs:
    """Per-position projections in row-major order (they commute with the scan orders).

    Projections run in the input dtype, as the official code does; what the scan reads is float32.
    ``delta_buffer`` (float32, ``4 * B * L * D`` elements) receives the dt projection when the input
    is float32, so a caller can reuse one allocation across calls.
    """
    B, H, W, D = x.shape
    K, _, R = dt_projs_weight.shape
    L = H * W
    f32 = torch.float32
    xr = x.reshape(B * L, D)
    x_dbl = linear(xr, x_proj_weight.to(x.dtype).reshape(K * (R + 2), D))
    x_dbl = x_dbl.view(B * L, K, R + 2).permute(1, 0, 2)  # (K, B*L, R+2)
    dt_low, dt_w = x_dbl[..., :R], dt_projs_weight.to(x.dtype).transpose(1, 2)
    if delta_buffer is not None and x.dtype == f32:
        delta = torch.bmm(dt_low, dt_w, out=delta_buffer.view(K, B * L, D))
    else:
        delta = torch.bmm(dt_low, dt_w).to(f32)
    x_dbl = x_dbl.to(f32)
    return DState1Inputs(
        delta=delta.view(K, B, L, D),
        bias=dt_projs_bias.to(f32).contiguous(),
        u=xr.to(f32).contiguous(),
        Bs=x_dbl[..., R].contiguous().view(K, B, L),
        Cs=x_dbl[..., R + 1].contiguous().view(K, B, L),
        A=(-torch.exp(A_logs.to(f32))).reshape(K, D).contiguous(),
        Dsum=Ds.to(f32).view(K, D).sum(0).contiguous(),
    )
