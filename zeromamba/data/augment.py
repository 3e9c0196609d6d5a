"""Training augmentations that change how an image is drawn, not what it shows.

Both act on a ``(3, H, W)`` tensor in ``[0, 1]`` (after ``ToTensor``, before normalisation) and
draw their randomness from torch's generator, so a seeded run (and its loader workers) repeats:

- ``warp`` (:class:`RandomWarp`): a smooth random displacement of a few pixels, so straight
  stripes come out wavy, dot grids uneven and outlines slightly bent;
- ``pixelate`` (:class:`RandomPixelate`): the image redrawn on a coarser grid and enlarged back
  with nearest neighbour, so edges become staircases of blocks, as in pixel art or a screenshot
  enlarged without smoothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = ["AUGMENTATIONS", "RandomPixelate", "RandomWarp", "augmentation_problem", "build_augmentations"]


class RandomWarp:
    """With probability ``p``, move every pixel by a smooth random displacement.

    The displacement along each axis is a sum of two plane waves of 1-4 cycles across the image,
    in random directions, with a peak of ``max_shift`` of the image's side (bilinear resampling,
    edges repeated)."""

    def __init__(self, p: float = 0.3, max_shift: float = 0.025):
        self.p = float(p)
        self.max_shift = float(max_shift)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(())) >= self.p:
            return x
        _, h, w = x.shape
        ys = torch.linspace(-1.0, 1.0, h)
        xs = torch.linspace(-1.0, 1.0, w)
        gy, gx = torch.meshgrid(ys, xs, indexing="ij")
        shifts = []
        for _axis in range(2):
            field = torch.zeros(h, w)
            for _wave in range(2):
                cycles = 1.0 + 3.0 * float(torch.rand(()))
                angle, phase = (2 * math.pi * torch.rand(2)).tolist()
                along = gx * math.cos(angle) + gy * math.sin(angle)  # -1..1 across the image
                field += torch.sin(math.pi * cycles * along + phase)
            peak = self.max_shift * float(torch.rand(()))
            shifts.append(field * peak)  # field/2 is within +-1; the side spans 2 grid units
        grid = torch.stack([gx + shifts[0], gy + shifts[1]], dim=-1)[None]
        out = F.grid_sample(x[None], grid, mode="bilinear", padding_mode="border", align_corners=True)
        return out[0]

    def __repr__(self) -> str:
        return f"RandomWarp(p={self.p}, max_shift={self.max_shift})"


class RandomPixelate:
    """With probability ``p``, average the image down by a factor drawn from ``factors`` (at least
    4 pixels a side remain) and enlarge it back to its size with nearest neighbour."""

    def __init__(self, p: float = 0.3, factors: tuple[float, float] = (2.0, 6.0)):
        lo, hi = factors
        if not 1.0 <= lo <= hi:
            raise ValueError(f"pixelate factors must satisfy 1 <= low <= high, got {factors}")
        self.p = float(p)
        self.factors = (float(lo), float(hi))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if float(torch.rand(())) >= self.p:
            return x
        _, h, w = x.shape
        lo, hi = self.factors
        factor = lo + (hi - lo) * float(torch.rand(()))
        small = (max(4, round(h / factor)), max(4, round(w / factor)))
        coarse = F.interpolate(x[None], size=small, mode="area")
        return F.interpolate(coarse, size=(h, w), mode="nearest")[0]

    def __repr__(self) -> str:
        return f"RandomPixelate(p={self.p}, factors={self.factors})"


#: the augmentations a training configuration can name (``augment``), by name
AUGMENTATIONS = {"warp": RandomWarp, "pixelate": RandomPixelate}


def augmentation_problem(names: Sequence[str]) -> str | None:
    """What is wrong with the augmentation names ``names`` (an unknown or repeated one), or ``None``."""
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        return f"unknown augmentation(s) {', '.join(map(repr, unknown))}; use {', '.join(AUGMENTATIONS)}"
    if len(set(names)) != len(names):
        return f"augmentations are named twice: {list(names)}"
    return None


def build_augmentations(names: Sequence[str]) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """The augmentations ``names`` (each a key of :data:`AUGMENTATIONS`), in that order.

    Raises:
        ValueError: an unknown or repeated name (:func:`augmentation_problem`).
    """
    problem = augmentation_problem(names)
    if problem is not None:
        raise ValueError(problem)
    return [AUGMENTATIONS[n]() for n in names]
