"""Channels-last plumbing of the VMamba blocks: their layers work on ``(B, H, W, C)`` tensors, and a
convolution (NCHW by signature) gets that memory as a channels-last NCHW view, without a copy.
``ToChannelsLast`` / ``ToChannelsFirst`` fill slots of the authors' ``nn.Sequential`` numbering, so
parameter names match their release files."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops.fused_conv import conv2d as fused_conv2d

__all__ = ["ToChannelsFirst", "ToChannelsLast", "conv_channels_last", "run_conv"]

# torch.fx records the convolution as one call that chooses its kernel when the graph runs (as
# vmamba.py does for the linear layers)
torch.fx.wrap("fused_conv2d")


class ToChannelsLast(nn.Module):
    """``(B, C, H, W) -> (B, H, W, C)`` as a view (a slot in the official ``Sequential`` numbering)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class ToChannelsFirst(nn.Module):
    """``(B, H, W, C) -> (B, C, H, W)`` as a view."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


def run_conv(conv: nn.Conv2d, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    """``conv(x)``, then SiLU when ``activation == "silu"``: for CPU inference through oneDNN on the
    weight's packed copy with the SiLU fused in (:mod:`zeromamba.ops.fused_conv`); a conv with hooks
    or another padding mode runs as the module itself."""
    if conv.padding_mode != "zeros" or conv._forward_hooks or conv._forward_pre_hooks:
        y = conv(x)
        return F.silu(y) if activation == "silu" else y
    return fused_conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups, activation)


def conv_channels_last(conv: nn.Conv2d, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    """Run an NCHW conv (and SiLU, see :func:`run_conv`) on a channels-last input and hand back a
    contiguous NHWC tensor."""
    y = run_conv(conv, x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last), activation)
    return y.permute(0, 2, 3, 1).contiguous()
