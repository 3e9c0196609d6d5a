"""Resizing Vim's absolute position embedding to another patch grid (the class token sits in the
middle of the sequence, as in the authors' ``midclstok`` releases)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import CheckpointError

__all__ = ["resample_pos_embed"]


def resample_pos_embed(
    pos_embed: torch.Tensor, new_grid: tuple[int, int], old_grid: tuple[int, int] | None = None
) -> torch.Tensor:
    """A ``(1, M + 1, D)`` position embedding with its class token at ``M // 2``, resized to
    ``new_grid``: the ``M`` patch positions are interpolated as a 2-D grid (bicubic), the class
    token's entry is kept and put back in the middle of the new sequence.

    ``old_grid`` defaults to a square grid of ``M`` positions.

    Raises:
        CheckpointError: ``M`` is not ``old_grid``'s size, or not a square when ``old_grid`` is not given.
    """
    M = pos_embed.shape[1] - 1
    if old_grid is None:
        side = math.isqrt(M)
        if side * side != M:
            raise CheckpointError(
                f"the position embedding has {M} patch positions, not a square grid: build the model at the "
                "checkpoint's input size (img_size=(H, W)) to load it"
            )
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != M:
        raise CheckpointError(f"a position embedding of {M} patch positions does not cover a {old_grid} grid")
    if tuple(old_grid) == tuple(new_grid):
        return pos_embed
    middle = M // 2
    cls = pos_embed[:, middle : middle + 1]
    patches = torch.cat([pos_embed[:, :middle], pos_embed[:, middle + 1 :]], dim=1)
    grid = patches.reshape(1, old_grid[0], old_grid[1], -1).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    patches = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], -1).to(pos_embed.dtype)
    new_middle = patches.shape[1] // 2
    return torch.cat([patches[:, :new_middle], cls, patches[:, new_middle:]], dim=1)
