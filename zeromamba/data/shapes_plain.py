"""The first Shapes renderer, kept for the model trained on it.

One object on a ``size x size`` canvas (64 px by default): a dim, weakly tinted grey background
with a soft gradient, the object's colour near a fixed RGB value per colour name, rotation within
30 degrees of upright, stripes or dots in a dark shade of the colour, drawn at twice the size and
reduced, pixel noise. The first ``shapes-zsl`` demo model (``zeromamba_nano``) was
trained on exactly these images (``zeromamba demo`` draws with this renderer for a model like it);
:mod:`~zeromamba.data.shapes_draw` draws the varied ones of today's dataset. The same generator
gives the same image as the renderer of that time, and the mask of the object.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from .shapes_draw import ShapeSample

__all__ = ["PLAIN_RGB", "draw_plain_sample"]

#: the mean RGB of each colour name; each image jitters it by up to 25 per channel
PLAIN_RGB: dict[str, tuple[int, int, int]] = {
    "red": (215, 45, 40),
    "green": (40, 175, 65),
    "blue": (45, 85, 225),
    "yellow": (235, 210, 40),
}
_SUPERSAMPLE = 2  # drawn at twice the size and reduced: smooth edges and stripes


def _corners(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        return [
            (
                cx + r * 1.05 * math.cos(angle + 2 * math.pi * k / 3),
                cy + r * 1.05 * math.sin(angle + 2 * math.pi * k / 3),
            )
            for k in range(3)
        ]
    if shape == "bar":  # a rectangle along the rotation angle, wide enough to show the fill
        half_len, half_wid = r * 1.05, r * 0.45
        ca, sa = math.cos(angle), math.sin(angle)
        corners = ((half_len, half_wid), (-half_len, half_wid), (-half_len, -half_wid), (half_len, -half_wid))
        return [(cx + u * ca - v * sa, cy + u * sa + v * ca) for u, v in corners]
    raise ValueError(shape)


def _pattern(fill: str, big: int, r: float, rng: np.random.Generator) -> np.ndarray:
    """1 where the fill's marks are, over the whole supersampled canvas."""
    if fill == "solid":
        return np.zeros((big, big), dtype=np.float32)
    if fill not in ("striped", "dotted"):
        raise ValueError(fill)
    period = rng.uniform(0.3, 0.4) * r
    theta = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:big, 0:big].astype(np.float32)
    u = (xx * math.cos(theta) + yy * math.sin(theta)) / period + rng.uniform(0, 1)
    if fill == "striped":
        return (np.mod(u, 1.0) < 0.45).astype(np.float32)
    v = (-xx * math.sin(theta) + yy * math.cos(theta)) / period + rng.uniform(0, 1)
    return ((np.mod(u, 1.0) - 0.5) ** 2 + (np.mod(v, 1.0) - 0.5) ** 2 < 0.27**2).astype(np.float32)


def draw_plain_sample(colour: str, fill: str, shape: str, rng: np.random.Generator, size: int = 64) -> ShapeSample:
    """Draw one object of class ``(colour, fill, shape)`` as the first renderer did, with its mask."""
    big = size * _SUPERSAMPLE
    bg = np.clip(rng.uniform(60, 190) + rng.uniform(-18, 18, size=3), 0, 255)
    ramp = np.linspace(-1.0, 1.0, big, dtype=np.float32)
    gx, gy = rng.uniform(-20, 20, size=2)
    background = bg[None, None, :] + (gx * ramp[None, :, None] + gy * ramp[:, None, None])

    r = rng.uniform(0.22, 0.36) * big
    cx, cy = rng.uniform(r * 1.05, big - r * 1.05, size=2)
    angle = -math.pi / 2 + rng.uniform(-math.pi / 6, math.pi / 6)
    silhouette = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(silhouette)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:
        draw.polygon(_corners(shape, cx, cy, r, angle), fill=255)
    mask = np.asarray(silhouette, dtype=np.float32) / 255.0
    rgb = np.clip(np.asarray(PLAIN_RGB[colour], dtype=np.float32) + rng.uniform(-25, 25, size=3), 0, 255)
    pattern = _pattern(fill, big, r, rng)
    shade = rng.uniform(0.25, 0.4)
    face = rgb[None, None, :] * (1.0 - (1.0 - shade) * pattern[..., None])
    img = background * (1.0 - mask[..., None]) + face * mask[..., None]
    img = img.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE, 3).mean(axis=(1, 3))
    img = img + rng.normal(0.0, rng.uniform(0.0, 14.0), size=img.shape)
    image = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")
    small_mask = mask.reshape(size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean(axis=(1, 3)) >= 0.5
    return ShapeSample(image=image, mask=small_mask, colour=colour, fill=fill, shape=shape)
