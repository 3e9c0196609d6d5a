"""VMamba's convolutional parts: the stem (``patch_embed``) and the downsampling between stages.

Both keep the authors' module indices (``patch_embed.5.weight``, ``layers.0.downsample.1.weight``)
so release files load as they are, and take channels-last tensors where the blocks do: the stem
turns an NCHW image into ``(B, H/4, W/4, C)``, a downsample halves a channels-last map.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ._layout import ToChannelsFirst, ToChannelsLast, conv_channels_last, run_conv

__all__ = ["Downsample", "PatchEmbed"]


class PatchEmbed(nn.Sequential):
    """Stem: two stride-2 3x3 convs, LayerNorm after each, GELU between (official ``patch_embed``)."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 96):
        super().__init__(
            nn.Conv2d(in_chans, embed_dim // 2, kernel_size=3, stride=2, padding=1),  # 0
            ToChannelsLast(),  # 1
            nn.LayerNorm(embed_dim // 2),  # 2
            ToChannelsFirst(),  # 3
            nn.GELU(),  # 4
            nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=2, padding=1),  # 5
            ToChannelsLast(),  # 6
            nn.LayerNorm(embed_dim),  # 7
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` NCHW in, ``(B, H/4, W/4, C)`` channels-last out."""
        x = run_conv(self[0], x.contiguous(memory_format=torch.channels_last)).permute(0, 2, 3, 1)
        x = F.gelu(self[2](x))
        return self[7](conv_channels_last(self[5], x))


class Downsample(nn.Sequential):
    """Stride-2 3x3 conv then LayerNorm (official ``downsample`` "v3")."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__(
            ToChannelsFirst(),  # 0
            nn.Conv2d(dim, out_dim, kernel_size=3, stride=2, padding=1),  # 1
            ToChannelsLast(),  # 2
            nn.LayerNorm(out_dim),  # 3
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[3](conv_channels_last(self[1], x))
