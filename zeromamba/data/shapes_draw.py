"""The Shapes renderer: one object of a class on a canvas, drawn in any of the ways a person varies a
drawing, with the object's exact mask.

What varies (all drawn from the image's own random generator):

* the canvas: longer side 64-160 px, aspect ratio 0.6-1.67, drawn at 1x (aliased), 2x or 3x and
  reduced (anti-aliased);
* the background: plain light of any hue (most often), a dim grey with a gradient, or noisy;
* the object: size (radius 0.2-0.36 of the canvas's longer side, within the shorter side),
  position, rotation (bars any way, triangles within 40 degrees of upright), a little
  irregularity, the colour's exact hue, saturation and brightness (from pure RGB primaries to
  muted shades);
* the fill's style: stripes or dots in a dark shade of the colour, in black or white on the colour,
  or in the colour on a light inside (as drawn with a pen); stripe angle, count (2.5-4.5 across)
  and width; dot grid, spacing, size and jitter; an outline (none, the colour, a dark shade or
  black) of any width;
* the finish: pixel noise and JPEG compression (quality 45-90).

``variety="wide"`` (:data:`VARIETIES`) widens what the fill and the paper may be: stripes 1.8-7 and
dots 2.2-7 across (log-uniform, fewer where the object is small: a period spans at least
:data:`MIN_PERIOD_AT_80PX` pixels at 80 px), stripe widths 30-65% of a period, dots on square or
hexagonal grids, the marks covering 15-85% of the object (else drawn again, so that a pattern never
reads as a solid or as one band), and coloured paper backgrounds (a pastel of any hue, saturation
0.2-0.55, away from the object's colour). The default, ``"standard"``, is the renderer the demo
model's first training stage saw; ``"wide"`` is its second (fine-tuning) stage's. ``"uneven"`` is
``"wide"`` plus two things hands and paints do: stripes bent into gentle waves (a third of striped
objects: up to 0.45 of a period, one or two waves along a stripe) and bodies of uneven density (a
third of all objects: the inside drawn towards the paper, by up to 10-40%, in a few smooth blotches).

The mask is the object's silhouette (outline included) at the canvas's resolution: what the
explanation metrics (:mod:`zeromamba.explanation_metrics`) count as "on the object".
"""

from __future__ import annotations

import colorsys
import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "ANY_COLOUR",
    "BLOB",
    "COLOUR_RANGES",
    "MIN_PERIOD_AT_80PX",
    "VARIETIES",
    "ShapeSample",
    "draw_sample",
    "draw_swatch",
]

#: how widely the renderer varies fills and backgrounds (see the module docs)
VARIETIES = ("standard", "wide", "uneven")

#: with ``variety="wide"``: the fewest pixels a stripe or dot period may span when the canvas's
#: longer side is 80 px (the demo model's input); finer marks are lost in the resize and teach noise
MIN_PERIOD_AT_80PX = 4.5

#: the colour and shape of a texture swatch (:func:`draw_swatch`): no class has them
ANY_COLOUR, BLOB = "any", "blob"

#: HSV ranges of each colour name: hue (degrees), saturation, value
COLOUR_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "red": ((-12.0, 8.0), (0.6, 1.0), (0.6, 1.0)),
    "yellow": ((47.0, 60.0), (0.65, 1.0), (0.82, 1.0)),
    "green": ((95.0, 145.0), (0.5, 1.0), (0.4, 0.92)),
    "blue": ((205.0, 242.0), (0.55, 1.0), (0.55, 1.0)),
}


@dataclass
class ShapeSample:
    """One drawn object: ``image`` (RGB), ``mask`` (``H x W`` bool, the object's pixels) and its class."""

    image: Image.Image
    mask: np.ndarray
    colour: str
    fill: str
    shape: str


def _object_rgb(colour: str, rng: np.random.Generator) -> np.ndarray:
    # a swatch's colour is any hue, so that its fill cannot be told from its colour
    (h0, h1), (s0, s1), (v0, v1) = (
        ((0.0, 360.0), (0.45, 1.0), (0.45, 1.0)) if colour == ANY_COLOUR else COLOUR_RANGES[colour]
    )
    hue = (rng.uniform(h0, h1) % 360.0) / 360.0
    r, g, b = colorsys.hsv_to_rgb(hue, rng.uniform(s0, s1), rng.uniform(v0, v1))
    return np.array([r, g, b], dtype=np.float32) * 255.0


def _light_rgb(rng: np.random.Generator) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.0, 0.18), rng.uniform(0.86, 1.0))
    return np.array([r, g, b], dtype=np.float32) * 255.0


def _paper_rgb(rng: np.random.Generator, avoid: np.ndarray) -> np.ndarray:
    """A coloured paper: a pastel of any hue, at least 100 (RGB distance) from the object's colour."""
    for _ in range(16):
        r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.2, 0.55), rng.uniform(0.75, 1.0))
        paper = np.array([r, g, b], dtype=np.float32) * 255.0
        if float(np.linalg.norm(paper - avoid)) >= 100.0:
            break
    return paper


def _background(
    rng: np.random.Generator, w: int, h: int, avoid: np.ndarray | None = None
) -> tuple[Image.Image, np.ndarray]:
    """``(background image of w x h, its mean colour)``; smooth, so computed coarsely and enlarged.
    ``avoid`` (the object's colour; the wide variety only) allows coloured paper kept away from it."""
    if avoid is None:
        kind = rng.choice(4, p=[0.45, 0.2, 0.15, 0.2])
    else:
        kind = rng.choice(5, p=[0.35, 0.15, 0.12, 0.15, 0.23])
    cw, ch = max(2, w // 8), max(2, h // 8)
    yy = np.linspace(-1.0, 1.0, ch, dtype=np.float32)[:, None, None]
    xx = np.linspace(-1.0, 1.0, cw, dtype=np.float32)[None, :, None]
    if kind == 1:  # dim, weakly tinted grey (the first renderer's backgrounds)
        base = np.clip(rng.uniform(60, 190) + rng.uniform(-18, 18, size=3), 0, 255).astype(np.float32)
    elif kind == 4:  # coloured paper
        assert avoid is not None
        base = _paper_rgb(rng, avoid)
    else:
        base = _light_rgb(rng)
    bg = np.broadcast_to(base, (ch, cw, 3)).astype(np.float32)
    if kind in (1, 2):  # a soft gradient
        gx, gy = rng.uniform(-22, 22, size=2)
        bg = bg + gx * xx + gy * yy
    if kind == 3:  # blotchy: a few low-frequency waves of brightness
        for _ in range(3):
            fx, fy, phase = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * math.pi)
            bg = bg + rng.uniform(4, 14) * np.sin(math.pi * (fx * xx + fy * yy) + phase)
    small = Image.fromarray(np.clip(bg, 0, 255).round().astype(np.uint8), mode="RGB")
    return small.resize((w, h), Image.Resampling.BILINEAR), bg.reshape(-1, 3).mean(0)


def _outline_points(shape: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> list[tuple[float, float]]:
    """Polygon corners of a triangle or bar (circles are drawn as ellipses)."""
    if shape == "triangle":
        angle = -math.pi / 2 + math.radians(rng.uniform(-40, 40))
        pts = []
        for k in range(3):
            a = angle + 2 * math.pi * k / 3 + math.radians(rng.uniform(-6, 6))
            rr = r * rng.uniform(0.95, 1.12)
            pts.append((cx + rr * math.cos(a), cy + rr * math.sin(a)))
        return pts
    if shape == "bar":
        angle = rng.uniform(0, math.pi)
        half_len, half_wid = r * rng.uniform(1.0, 1.1), r * rng.uniform(0.3, 0.48)
        ca, sa = math.cos(angle), math.sin(angle)
        corners = ((half_len, half_wid), (-half_len, half_wid), (-half_len, -half_wid), (half_len, -half_wid))
        return [(cx + u * ca - v * sa, cy + u * sa + v * ca) for u, v in corners]
    if shape == BLOB:  # an irregular polygon of 6-10 corners: none of the class shapes
        corners = int(rng.integers(6, 11))
        start = rng.uniform(0, 2 * math.pi)
        return [
            (
                cx + r * rng.uniform(0.7, 1.1) * math.cos(start + 2 * math.pi * (k + rng.uniform(-0.3, 0.3)) / corners),
                cy + r * rng.uniform(0.7, 1.1) * math.sin(start + 2 * math.pi * (k + rng.uniform(-0.3, 0.3)) / corners),
            )
            for k in range(corners)
        ]
    raise ValueError(shape)


def _silhouette(shape: str, size: tuple[int, int], cx: float, cy: float, r: float, rng: np.random.Generator):
    """``(silhouette mask image "L", draw(target, **style))``: the shape filled, and a function that
    draws the same shape again (for the outline)."""
    if shape == "circle":
        rx, ry = r * rng.uniform(0.96, 1.04), r * rng.uniform(0.96, 1.04)
        box = (cx - rx, cy - ry, cx + rx, cy + ry)

        def draw(target: ImageDraw.ImageDraw, **style) -> None:
            target.ellipse(box, **style)

    else:
        pts = _outline_points(shape, cx, cy, r, rng)

        def draw(target: ImageDraw.ImageDraw, **style) -> None:
            target.polygon(pts, **style)

    solid = Image.new("L", size, 0)
    draw(ImageDraw.Draw(solid), fill=255)
    return solid, draw


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return math.exp(rng.uniform(math.log(lo), math.log(hi)))


def _pattern(
    fill: str,
    w: int,
    h: int,
    cx: float,
    cy: float,
    r: float,
    rng: np.random.Generator,
    max_count: float | None = None,
    bend: bool = False,
) -> Image.Image:
    """An ``L`` image of ``w x h``: 255 where the fill's marks are (stripes or dots), computed only
    around the object. ``max_count`` (the wide variety only): its ranges, with at most so many
    periods across the object's diameter. ``bend`` (the uneven variety): stripes may wave."""
    wide = max_count is not None
    out = np.zeros((h, w), dtype=np.uint8)
    if fill == "solid":
        return Image.fromarray(out)
    x0, x1 = max(0, int(cx - 1.2 * r)), min(w, int(cx + 1.2 * r) + 2)
    y0, y1 = max(0, int(cy - 1.2 * r)), min(h, int(cy + 1.2 * r) + 2)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = ((xx - cx) * math.cos(theta) + (yy - cy) * math.sin(theta)) / (2 * r)
    v = (-(xx - cx) * math.sin(theta) + (yy - cy) * math.cos(theta)) / (2 * r)
    if fill == "striped":
        if wide:
            count, duty = min(_log_uniform(rng, 1.8, 7.0), max_count), rng.uniform(0.3, 0.65)
        else:
            count, duty = rng.uniform(2.5, 4.5), rng.uniform(0.35, 0.6)  # stripes across the object
        if bend and rng.uniform() < 1 / 3:  # a stripe waves sideways, a fraction of a period
            amplitude, waves, phase = rng.uniform(0.1, 0.45), rng.uniform(0.5, 2.0), rng.uniform(0, 2 * math.pi)
            u = u + amplitude / count * np.sin(2 * math.pi * waves * v + phase)
        marks = np.mod(u * count + rng.uniform(0, 1), 1.0) < duty
    elif fill == "dotted":
        if wide:
            count, radius = min(_log_uniform(rng, 2.2, 7.0), max_count), rng.uniform(0.2, 0.4)
        else:
            count, radius = rng.uniform(3.0, 4.5), rng.uniform(0.24, 0.36)  # radius: of the dot spacing
        gu, gv = u * count + rng.uniform(0, 1), v * count + rng.uniform(0, 1)
        if wide and rng.uniform() < 0.35:  # a hexagonal grid: every second row shifted by half a spacing
            gv = gv / 0.866
            gu = gu + 0.5 * np.mod(np.floor(gv), 2)
        cu, cv = np.floor(gu), np.floor(gv)
        # a little jitter per dot (from the cell's integer coordinates), so grids need not be perfect
        jitter = rng.uniform(0.0, 0.18)
        seed = rng.uniform(0, 100)
        du = gu - cu - 0.5 - jitter * np.sin(12.9898 * cu + 78.233 * cv + seed)
        dv = gv - cv - 0.5 - jitter * np.cos(39.346 * cu + 11.135 * cv + seed)
        marks = du * du + dv * dv < radius * radius
    else:
        raise ValueError(fill)
    out[y0:y1, x0:x1] = marks.astype(np.uint8) * 255
    return Image.fromarray(out)


def _fill_colours(
    fill: str, rgb: np.ndarray, bg: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, bool]:
    """``(inside colour, mark colour, drawn with a pen)`` for a fill style."""
    if fill == "solid":
        return rgb, rgb, False
    style = rng.choice(4, p=[0.35, 0.15, 0.15, 0.35])
    if style == 0:  # marks in a dark shade of the colour
        return rgb, rgb * rng.uniform(0.25, 0.45), False
    if style == 1:  # black marks
        return rgb, np.full(3, rng.uniform(0, 40), dtype=np.float32), False
    if style == 2:  # white marks
        return rgb, np.full(3, rng.uniform(225, 255), dtype=np.float32), False
    # drawn with a pen: coloured marks on a light inside (white, or the background's colour), outlined
    inside = bg if rng.uniform() < 0.5 else np.full(3, rng.uniform(235, 255), dtype=np.float32)
    return inside.astype(np.float32), rgb, True


def _solid(colour: np.ndarray, size: tuple[int, int]) -> Image.Image:
    return Image.new("RGB", size, tuple(int(v) for v in np.clip(colour, 0, 255).round()))


def _uneven(face: Image.Image, paper: np.ndarray, rng: np.random.Generator) -> Image.Image:
    """``face`` drawn towards ``paper`` in a few smooth blotches, by up to 10-40% of the way (uneven paint)."""
    w, h = face.size
    cells = int(rng.integers(3, 9))
    coarse = rng.uniform(0, 1, size=(cells, cells)).astype(np.float32)
    field = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BICUBIC), dtype=np.float32)
    amount = np.clip(field, 0, 1)[..., None] * rng.uniform(0.1, 0.4)
    out = np.asarray(face, dtype=np.float32) * (1 - amount) + paper.astype(np.float32) * amount
    return Image.fromarray(np.clip(out, 0, 255).round().astype(np.uint8), mode="RGB")


def draw_sample(colour: str, fill: str, shape: str, rng: np.random.Generator, variety: str = "standard") -> ShapeSample:
    """Draw one object of class ``(colour, fill, shape)`` with ``rng``, of ``variety`` (see the module docs).

    Raises:
        ValueError: ``variety`` is not one of :data:`VARIETIES`.
    """
    if variety not in VARIETIES:
        raise ValueError(f"unknown variety {variety!r}; use one of {', '.join(VARIETIES)}")
    long_side = int(rng.integers(64, 161))
    aspect = math.exp(rng.uniform(math.log(0.6), math.log(1 / 0.6)))
    if aspect >= 1:
        width, height = long_side, max(32, round(long_side / aspect))
    else:
        width, height = max(32, round(long_side * aspect)), long_side
    ss = int(rng.choice([1, 2, 3], p=[0.25, 0.5, 0.25]))
    w, h = width * ss, height * ss

    r = min(rng.uniform(0.2, 0.36) * long_side, 0.44 * min(width, height)) * ss
    margin = r * 1.12
    cx, cy = rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)
    silhouette, draw = _silhouette(shape, (w, h), cx, cy, r, rng)

    if variety == "standard":
        img, bg_mean = _background(rng, w, h)
        rgb = _object_rgb(colour, rng)
        inside, marks, pen = _fill_colours(fill, rgb, bg_mean, rng)
        pattern = _pattern(fill, w, h, cx, cy, r, rng)
    else:
        rgb = _object_rgb(colour, rng)
        img, bg_mean = _background(rng, w, h, avoid=rgb)
        inside, marks, pen = _fill_colours(fill, rgb, bg_mean, rng)
        max_count = max(2.0, 2 * r / ss * 80.0 / long_side / MIN_PERIOD_AT_80PX)
        on_object = np.asarray(silhouette) >= 128
        for _ in range(12):  # the marks must show as a pattern on this object (not one band over a bar)
            pattern = _pattern(fill, w, h, cx, cy, r, rng, max_count, bend=variety == "uneven")
            if fill == "solid" or 0.15 <= (np.asarray(pattern)[on_object] > 0).mean() <= 0.85:
                break
    face = Image.composite(_solid(marks, (w, h)), _solid(inside, (w, h)), pattern)
    if variety == "uneven" and rng.uniform() < 1 / 3:
        face = _uneven(face, bg_mean, rng)
    img = Image.composite(face, img, silhouette)

    if pen or rng.uniform() < 0.45:
        width_px = max(1, round(rng.uniform(0.05, 0.14) * r))
        pick = 0 if pen else rng.choice(3, p=[0.6, 0.2, 0.2])
        line = rgb if pick == 0 else (rgb * 0.4 if pick == 1 else np.zeros(3, dtype=np.float32))
        draw(ImageDraw.Draw(img), outline=tuple(int(v) for v in line.round()), width=width_px)
        draw(ImageDraw.Draw(silhouette), outline=255, width=width_px)

    if ss > 1:
        img, silhouette = img.reduce(ss), silhouette.reduce(ss)
    if rng.uniform() < 0.5:
        noisy = np.asarray(img, dtype=np.float32) + rng.normal(0.0, rng.uniform(2.0, 10.0), size=(height, width, 3))
        img = Image.fromarray(np.clip(noisy, 0, 255).round().astype(np.uint8), mode="RGB")
    if rng.uniform() < 0.35:
        buffer = io.BytesIO()
        img.save(buffer, format="JPEG", quality=int(rng.integers(45, 91)))
        buffer.seek(0)
        img = Image.open(buffer).convert("RGB")
    mask = np.asarray(silhouette) >= 128
    return ShapeSample(image=img, mask=mask, colour=colour, fill=fill, shape=shape)


def draw_swatch(fill: str, rng: np.random.Generator, variety: str = "standard") -> ShapeSample:
    """A texture swatch: an irregular blob of any hue with the fill ``fill``, drawn as the class
    objects are (same canvases, backgrounds, fill styles and finish). It is an image of no class
    (neither its colour nor its shape is one of the classes'), only of a fill; training shows it
    so that the fill is learnt from the texture, not from the colour and shape it came with."""
    return draw_sample(ANY_COLOUR, fill, BLOB, rng, variety)
