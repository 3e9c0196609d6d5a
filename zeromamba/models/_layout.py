"""Channels-last plumbing of the VMamba blocks: their layers work on ``(B, H, W, C)`` tensors, and a
convolution (NCHW by signature) gets that memory as a channels-last NCHW view, without a copy.
``ToChannelsLast`` / ``ToChannelsFirst`` fill slots of the authors' ``nn.Sequential`` numbering, so
parameter names match their release files."""

from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["ToChannelsFirst", "ToChannelsLast", "conv_channels_last"]


class ToChannelsLast(nn.Module):
    """``(B, C, H, W) -> (B, H, W, C)`` as a view (a slot in the official ``Sequential`` numbering)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 2, 3, 1)


class ToChannelsFirst(nn.Module):
    """``(B, H, W, C) -> (B, C, H, W)`` as a view."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(0, 3, 1, 2)


def conv_channels_last(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Run an NCHW conv on a channels-last input and hand back a contiguous NHWC tensor."""
    y = conv(x.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last))
    return y.permute(0, 2, 3, 1).contiguous()
