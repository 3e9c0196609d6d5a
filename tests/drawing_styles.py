"""Drawings of the Shapes classes in styles the training renderer never uses, for evaluation only.

Each style is its own drawing routine (none shares code with :mod:`zeromamba.data.shapes_draw` or
:mod:`tests.drawings`, and nothing in the package imports this module): it varies one thing a
person or a camera varies that the training data keeps in a narrower range or never shows, and
draws the rest plainly. A style is a function ``(colour, fill, shape, rng) -> PIL image``:

* ``fine_marks``: 5.5-8.5 stripes or dots across the object (training: 2.5-4.5), thin, on large objects;
* ``coarse_marks``: 1.6-2.3 broad bands, or 2-2.6 large dots across;
* ``hand_drawn``: wobbly outlines, stripes as uneven marker strokes, dots as irregular blobs
  scattered by hand, a black outline;
* ``irregular_marks``: wavy stripes, or dots of mixed sizes at random places;
* ``tinted_marks``: stripes or dots in a light tint of the colour or in mid grey (training: a dark
  shade, black, white or the colour on white); solids with a soft highlight;
* ``pixel_art``: drawn at 20-40 px without anti-aliasing and enlarged 6-12 x with nearest neighbour;
* ``degraded``: strong noise, blur and JPEG quality 6-25 (training: 45-90);
* ``coloured_paper``: backgrounds of saturated pastel tints or kraft paper (training: tints of
  saturation up to 0.18, or dim greys);
* ``textured_paper``: graph paper, ruled notebook lines, dotted grids or paper grain behind the
  object (training: plain, gradients, smooth blotches);
* ``shaded``: a linear or radial shading across the object and a drop shadow;
* ``placement``: very large objects (0.42-0.48 of the shorter side), off-centre small ones
  (0.16-0.2 of the longer side), canvases of aspect ratio up to 3;
* ``photographed``: a plain drawing on a page seen at an angle (a perspective of up to 8% of the
  side at each corner), lit unevenly and off-white, slightly blurred and noisy;
* ``watercolour``: the body a wash of uneven density with a soft edge, the marks a darker shade of
  the colour, all slightly bled, on grainy paper.
* ``marker``: coloured in with a broad felt-tip: solids as overlapping parallel strokes that show
  as faint streaks, stripes as a few broad strokes each at its own slight angle, dots as dabs;
* ``collage``: cut from paper and glued on: the object and its marks each with a drop shadow, stripes
  as separate strips of uneven width at angles a few degrees apart, dots as punched discs;
* ``worn_stamp``: printed with a worn rubber stamp: flecks of paper show through the ink of the body
  and of the marks, the edges a little ragged.

Images are a pure function of ``(seed, style, class, index)`` (:func:`style_set`).
"""

from __future__ import annotations

import colorsys
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# colours as design tools name them (each inside the hue range a person calls by that name)
PALETTE = {
    "red": ["#d32f2f", "#e53935", "#c62828", "#ff1a1a", "#cc0000", "#b22222"],
    "green": ["#43a047", "#2e7d32", "#00a651", "#4caf50", "#1b8a3a", "#228b22"],
    "blue": ["#1e88e5", "#1565c0", "#2962ff", "#0d47a1", "#1976d2", "#4169e1"],
    "yellow": ["#fdd835", "#ffeb3b", "#ffe600", "#f9e43a", "#ffd600", "#eedd00"],
}


def _rgb(hex_code: str) -> tuple[int, int, int]:
    return tuple(int(hex_code[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


def _mix(a: tuple[int, ...], b: tuple[int, ...], t: float) -> tuple[int, int, int]:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _ink(colour: str, rng: np.random.Generator) -> tuple[int, int, int]:
    return _rgb(PALETTE[colour][int(rng.integers(len(PALETTE[colour])))])


@dataclass
class Layout:
    """Where the object goes on a canvas of ``size``, at ``ss`` x supersampling."""

    size: tuple[int, int]
    cx: float
    cy: float
    r: float
    ss: int = 3

    @property
    def big(self) -> tuple[int, int]:
        return self.size[0] * self.ss, self.size[1] * self.ss


def _layout(rng: np.random.Generator, ss: int = 3, radius: tuple[float, float] = (0.26, 0.38)) -> Layout:
    w, h = [(320, 240), (240, 320), (300, 300), (360, 220), (200, 200), (280, 210)][int(rng.integers(6))]
    r = min(w, h) * rng.uniform(*radius)
    cx, cy = rng.uniform(1.15 * r, w - 1.15 * r), rng.uniform(1.15 * r, h - 1.15 * r)
    return Layout((w, h), cx * ss, cy * ss, r * ss, ss)


def _outline(shape: str, lay: Layout, rng: np.random.Generator, wobble: float = 0.0) -> list[tuple[float, float]]:
    """The object's outline as a closed polygon (at supersampled scale), optionally wobbly."""
    cx, cy, r = lay.cx, lay.cy, lay.r
    if shape == "circle":
        n = 96
        base = [(math.cos(2 * math.pi * k / n), math.sin(2 * math.pi * k / n)) for k in range(n)]
        pts = [(cx + r * x, cy + r * y) for x, y in base]
    elif shape == "triangle":
        tilt = rng.uniform(-0.35, 0.35)
        corners = [
            (
                cx + r * math.cos(-math.pi / 2 + tilt + 2 * math.pi * k / 3),
                cy + r * math.sin(-math.pi / 2 + tilt + 2 * math.pi * k / 3),
            )
            for k in range(3)
        ]
        pts = _densify(corners, 32)
    else:
        angle = rng.uniform(0, math.pi)
        half_len, half_wid = r * 1.05, r * rng.uniform(0.32, 0.45)
        c, s = math.cos(angle), math.sin(angle)
        corners = [
            (cx + u * c - v * s, cy + u * s + v * c)
            for u, v in ((half_len, half_wid), (-half_len, half_wid), (-half_len, -half_wid), (half_len, -half_wid))
        ]
        pts = _densify(corners, 32)
    if wobble <= 0:
        return pts
    # smooth radial wobble: a few low-frequency waves along the outline
    n = len(pts)
    waves = [(int(rng.integers(2, 7)), rng.uniform(0, 2 * math.pi), rng.uniform(0.3, 1.0)) for _ in range(3)]
    out = []
    for k, (x, y) in enumerate(pts):
        t = 2 * math.pi * k / n
        d = wobble * r * sum(a * math.sin(f * t + p) for f, p, a in waves) / 2.0
        dx, dy = x - cx, y - cy
        norm = math.hypot(dx, dy) or 1.0
        out.append((x + d * dx / norm, y + d * dy / norm))
    return out


def _densify(corners: list[tuple[float, float]], per_edge: int) -> list[tuple[float, float]]:
    pts = []
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        pts += [(x0 + (x1 - x0) * t / per_edge, y0 + (y1 - y0) * t / per_edge) for t in range(per_edge)]
    return pts


def _mask(pts: list[tuple[float, float]], size: tuple[int, int]) -> Image.Image:
    m = Image.new("L", size, 0)
    ImageDraw.Draw(m).polygon(pts, fill=255)
    return m


def _stripes(lay: Layout, count: float, duty: float, rng: np.random.Generator, wave: float = 0.0) -> np.ndarray:
    """Bool marks over the supersampled canvas: ``count`` stripes across the object's diameter."""
    w, h = lay.big
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = ((xx - lay.cx) * math.cos(theta) + (yy - lay.cy) * math.sin(theta)) / (2 * lay.r)
    v = (-(xx - lay.cx) * math.sin(theta) + (yy - lay.cy) * math.cos(theta)) / (2 * lay.r)
    if wave:
        u = u + wave / count * np.sin(2 * math.pi * v * rng.uniform(1.0, 2.0) + rng.uniform(0, 6.3))
    return np.mod(u * count + rng.uniform(0, 1), 1.0) < duty


def _grid_dots(lay: Layout, count: float, radius: float, rng: np.random.Generator, hexagonal: bool) -> np.ndarray:
    """Bool marks: dots of ``radius`` (in units of the spacing) on a square or hexagonal grid."""
    w, h = lay.big
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, math.pi)
    u = ((xx - lay.cx) * math.cos(theta) + (yy - lay.cy) * math.sin(theta)) / (2 * lay.r) * count
    v = (-(xx - lay.cx) * math.sin(theta) + (yy - lay.cy) * math.cos(theta)) / (2 * lay.r) * count
    if hexagonal:
        v = v / 0.866
        row = np.floor(v + 0.5)
        u = u + 0.5 * np.mod(row, 2)
    du, dv = u - np.round(u), v - np.round(v)
    if hexagonal:
        dv = dv * 0.866
    return du * du + dv * dv < radius * radius


def _scattered_dots(lay: Layout, count: float, rng: np.random.Generator, sizes: tuple[float, float]) -> Image.Image:
    """Dots at random places (kept apart), of random sizes: an ``L`` image at supersampled scale."""
    spacing = 2 * lay.r / count
    layer = Image.new("L", lay.big, 0)
    draw = ImageDraw.Draw(layer)
    placed: list[tuple[float, float]] = []
    for _ in range(int(12 * count * count)):
        x, y = lay.cx + rng.uniform(-1.1, 1.1) * lay.r, lay.cy + rng.uniform(-1.1, 1.1) * lay.r
        if all((x - a) ** 2 + (y - b) ** 2 > (0.8 * spacing) ** 2 for a, b in placed):
            placed.append((x, y))
            d = spacing * rng.uniform(*sizes)
            if rng.uniform() < 0.5:
                draw.ellipse([x - d, y - d, x + d, y + d], fill=255)
            else:  # an irregular blob, as a felt-tip dot
                k = int(rng.integers(6, 10))
                draw.polygon(
                    [
                        (
                            x + d * rng.uniform(0.7, 1.2) * math.cos(2 * math.pi * i / k),
                            y + d * rng.uniform(0.7, 1.2) * math.sin(2 * math.pi * i / k),
                        )
                        for i in range(k)
                    ],
                    fill=255,
                )
    return layer


def _hand_stripes(lay: Layout, rng: np.random.Generator) -> Image.Image:
    """Uneven marker strokes across the object."""
    layer = Image.new("L", lay.big, 0)
    draw = ImageDraw.Draw(layer)
    count = rng.uniform(3.0, 5.0)
    gap = 2 * lay.r / count
    angle = rng.uniform(0, math.pi)
    c, s = math.cos(angle), math.sin(angle)
    for k in range(-int(count), int(count) + 1):
        off = k * gap + rng.uniform(-0.12, 0.12) * gap
        width = max(2, int(gap * rng.uniform(0.3, 0.55)))
        pts = []
        for t in np.linspace(-1.3, 1.3, 14):
            jitter = rng.uniform(-0.06, 0.06) * gap
            along = t * lay.r
            pts.append((lay.cx + along * c - (off + jitter) * s, lay.cy + along * s + (off + jitter) * c))
        draw.line(pts, fill=255, width=width, joint="curve")
    return layer


def _paste_marks(
    image: Image.Image, ink: tuple[int, int, int], marks: np.ndarray | Image.Image, mask: Image.Image
) -> None:
    layer = marks if isinstance(marks, Image.Image) else Image.fromarray(marks.astype(np.uint8) * 255)
    inside = Image.fromarray(
        (np.asarray(layer, dtype=np.uint16) * np.asarray(mask, dtype=np.uint16) // 255).astype(np.uint8)
    )
    image.paste(ink, mask=inside)


def _finish(image: Image.Image, ss: int) -> Image.Image:
    return image.reduce(ss) if ss > 1 else image


def _plain_background(rng: np.random.Generator) -> tuple[int, int, int]:
    return [(255, 255, 255), (250, 250, 250), (255, 255, 240), (245, 245, 245), (248, 250, 255)][int(rng.integers(5))]


def _object(
    colour: str,
    fill: str,
    shape: str,
    rng: np.random.Generator,
    *,
    lay: Layout | None = None,
    background: Image.Image | tuple[int, int, int] | None = None,
    marks: Callable[[Layout, np.random.Generator], np.ndarray | Image.Image] | None = None,
    mark_ink: Callable[[tuple[int, int, int], np.random.Generator], tuple[int, int, int]] | None = None,
    wobble: float = 0.0,
    outline: tuple[int, int, int] | None = None,
    base: Callable[[Image.Image, Image.Image, Layout, tuple[int, int, int]], None] | None = None,
) -> tuple[Image.Image, Layout]:
    """The shared plain drawing: an object on a background at supersampled scale (not reduced)."""
    lay = lay or _layout(rng)
    ink = _ink(colour, rng)
    if isinstance(background, Image.Image):
        image = (
            background.resize(lay.big, Image.Resampling.BILINEAR) if background.size != lay.big else background.copy()
        )
    else:
        image = Image.new("RGB", lay.big, background or _plain_background(rng))
    pts = _outline(shape, lay, rng, wobble)
    mask = _mask(pts, lay.big)
    if base is not None:
        base(image, mask, lay, ink)
    else:
        image.paste(ink, mask=mask)
    if fill != "solid":
        if marks is None:
            count = rng.uniform(3.0, 4.5)
            marks_fn = (
                (lambda lay_, rng_: _stripes(lay_, count, 0.45, rng_))
                if fill == "striped"
                else (lambda lay_, rng_: _grid_dots(lay_, count, 0.3, rng_, hexagonal=False))
            )
        else:
            marks_fn = marks
        colour_of_marks = (mark_ink or (lambda c, r: (25, 25, 25)))(ink, rng)
        # the marks must show as a pattern on this object (not one band covering a thin bar): redraw
        # until they cover 20-80% of it
        inside = np.asarray(mask) >= 128
        for _ in range(20):
            layer = marks_fn(lay, rng)
            on = np.asarray(layer) > 127 if isinstance(layer, Image.Image) else layer
            if 0.2 <= on[inside].mean() <= 0.8:
                break
        _paste_marks(image, colour_of_marks, layer, mask)
        if outline is None and min(colour_of_marks) > 200:  # light marks: outlined, or the shape falls apart
            outline = ink
    if outline is not None:
        ImageDraw.Draw(image).line(pts + pts[:1], fill=outline, width=max(2, int(lay.r * 0.07)), joint="curve")
    return image, lay


def _dark_or_white(ink: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    return [(20, 20, 20), (255, 255, 255), _mix(ink, (0, 0, 0), 0.6)][int(rng.integers(3))]


# --- the styles ---


def fine_marks(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    lay = _layout(rng, radius=(0.34, 0.42))
    # fine, but at least 4.5 px a period where an 80 px input has the object (finer is lost in any
    # model's resize, not a question of style)
    across_80px = 2 * lay.r / lay.ss * 80 / max(lay.size)
    count = min(rng.uniform(5.5, 8.5), across_80px / 4.5)
    marks = (
        (lambda lay, r: _stripes(lay, count, r.uniform(0.3, 0.45), r))
        if fill == "striped"
        else (lambda lay, r: _grid_dots(lay, count, r.uniform(0.22, 0.3), r, hexagonal=bool(r.integers(2))))
    )
    image, lay = _object(colour, fill, shape, rng, lay=lay, marks=marks, mark_ink=_dark_or_white)
    return _finish(image, lay.ss)


def coarse_marks(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    marks = (
        (lambda lay, r: _stripes(lay, r.uniform(1.6, 2.3), r.uniform(0.4, 0.55), r))
        if fill == "striped"
        else (
            lambda lay, r: _grid_dots(lay, r.uniform(2.0, 2.6), r.uniform(0.3, 0.38), r, hexagonal=bool(r.integers(2)))
        )
    )
    image, lay = _object(colour, fill, shape, rng, marks=marks, mark_ink=_dark_or_white)
    return _finish(image, lay.ss)


def hand_drawn(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    marks = (
        _hand_stripes
        if fill == "striped"
        else (lambda lay, r: _scattered_dots(lay, r.uniform(3.0, 4.5), r, (0.18, 0.3)))
    )
    pen = rng.uniform() < 0.5 and fill != "solid"

    def base(image: Image.Image, mask: Image.Image, lay: Layout, ink: tuple[int, int, int]) -> None:
        if not pen:
            image.paste(ink, mask=mask)

    mark_ink = (
        (lambda ink, r: ink) if pen else (lambda ink, r: [(15, 15, 15), _mix(ink, (0, 0, 0), 0.55)][int(r.integers(2))])
    )
    image, lay = _object(
        colour,
        fill,
        shape,
        rng,
        marks=marks,
        mark_ink=mark_ink,
        wobble=rng.uniform(0.04, 0.09),
        outline=(20, 20, 20),
        base=base,
    )
    return _finish(image, lay.ss)


def irregular_marks(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    marks = (
        (lambda lay, r: _stripes(lay, r.uniform(3.0, 4.5), 0.45, r, wave=r.uniform(0.25, 0.5)))
        if fill == "striped"
        else (lambda lay, r: _scattered_dots(lay, r.uniform(3.5, 5.0), r, (0.12, 0.38)))
    )
    image, lay = _object(colour, fill, shape, rng, marks=marks, mark_ink=_dark_or_white)
    return _finish(image, lay.ss)


def tinted_marks(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    def tint(ink: tuple[int, int, int], r: np.random.Generator) -> tuple[int, int, int]:
        return _mix(ink, (255, 255, 255), r.uniform(0.45, 0.7)) if r.uniform() < 0.7 else (128, 128, 128)

    def highlighted(image: Image.Image, mask: Image.Image, lay: Layout, ink: tuple[int, int, int]) -> None:
        image.paste(ink, mask=mask)
        if fill == "solid" and rng.uniform() < 0.6:  # a soft highlight, as glossy clip art has
            glow = Image.new("L", lay.big, 0)
            hx, hy, hr = lay.cx - 0.35 * lay.r, lay.cy - 0.35 * lay.r, 0.35 * lay.r
            ImageDraw.Draw(glow).ellipse([hx - hr, hy - hr, hx + hr, hy + hr], fill=110)
            glow = glow.filter(ImageFilter.GaussianBlur(hr * 0.6))
            inside = Image.fromarray(
                (np.asarray(glow, np.uint16) * np.asarray(mask, np.uint16) // 255).astype(np.uint8)
            )
            image.paste((255, 255, 255), mask=inside)

    image, lay = _object(colour, fill, shape, rng, mark_ink=tint, base=highlighted)
    return _finish(image, lay.ss)


def pixel_art(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    small = int(rng.integers(20, 41))
    lay = Layout((small, small), 0, 0, 0, 1)
    lay.r = small * rng.uniform(0.3, 0.4)
    lay.cx, lay.cy = rng.uniform(1.1 * lay.r, small - 1.1 * lay.r), rng.uniform(1.1 * lay.r, small - 1.1 * lay.r)
    count = rng.uniform(2.5, 3.5)
    marks = (
        (lambda la, r: _stripes(la, count, 0.5, r))
        if fill == "striped"
        else (lambda la, r: _grid_dots(la, count, 0.32, r, hexagonal=False))
    )
    image, _ = _object(
        colour,
        fill,
        shape,
        rng,
        lay=lay,
        marks=marks,
        mark_ink=lambda ink, r: (0, 0, 0) if r.uniform() < 0.6 else (255, 255, 255),
    )
    scale = int(rng.integers(6, 13))
    return image.resize((small * scale, small * scale), Image.Resampling.NEAREST)


def degraded(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    image, lay = _object(colour, fill, shape, rng, mark_ink=_dark_or_white)
    image = _finish(image, lay.ss)
    if rng.uniform() < 0.5:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.2)))
    noisy = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(10, 22), size=(image.height, image.width, 3))
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=int(rng.integers(6, 26)))
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def coloured_paper(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    if rng.uniform() < 0.25:  # kraft / manila
        paper = [(205, 170, 125), (222, 196, 150), (240, 225, 180)][int(rng.integers(3))]
    else:
        r, g, b = colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.25, 0.5), rng.uniform(0.85, 1.0))
        paper = (int(r * 255), int(g * 255), int(b * 255))
    image, lay = _object(colour, fill, shape, rng, background=paper, mark_ink=_dark_or_white)
    return _finish(image, lay.ss)


def textured_paper(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    lay = _layout(rng)
    w, h = lay.big
    paper = Image.new("RGB", (w, h), (252, 252, 248))
    draw = ImageDraw.Draw(paper)
    kind = int(rng.integers(4))
    step = int(rng.uniform(8, 18) * lay.ss)
    line = [(170, 200, 230), (200, 200, 200), (150, 180, 220)][int(rng.integers(3))]
    if kind == 0:  # graph paper
        for x in range(0, w, step):
            draw.line([(x, 0), (x, h)], fill=line, width=lay.ss)
        for y in range(0, h, step):
            draw.line([(0, y), (w, y)], fill=line, width=lay.ss)
    elif kind == 1:  # ruled notebook, with a red margin
        for y in range(step, h, int(step * 1.6)):
            draw.line([(0, y), (w, y)], fill=line, width=lay.ss)
        draw.line([(int(w * 0.12), 0), (int(w * 0.12), h)], fill=(230, 150, 150), width=lay.ss)
    elif kind == 2:  # dot grid
        for x in range(step // 2, w, step):
            for y in range(step // 2, h, step):
                draw.ellipse([x - lay.ss, y - lay.ss, x + lay.ss, y + lay.ss], fill=line)
    else:  # paper grain
        grain = rng.normal(0, 9, size=(h // lay.ss, w // lay.ss, 1)).repeat(3, axis=2)
        grain = Image.fromarray(np.clip(245 + grain, 0, 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
        paper = grain
    image, lay = _object(colour, fill, shape, rng, lay=lay, background=paper, mark_ink=_dark_or_white)
    return _finish(image, lay.ss)


def shaded(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    def shade(image: Image.Image, mask: Image.Image, lay: Layout, ink: tuple[int, int, int]) -> None:
        w, h = lay.big
        # a drop shadow first, then the object shaded from light to dark
        shadow = mask.transform(mask.size, Image.Transform.AFFINE, (1, 0, -0.08 * lay.r, 0, 1, -0.08 * lay.r))
        shadow = shadow.filter(ImageFilter.GaussianBlur(0.05 * lay.r)).point(lambda p: p * 0.45)
        image.paste((60, 60, 60), mask=shadow)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        if rng.uniform() < 0.5:
            a = rng.uniform(0, 2 * math.pi)
            t = ((xx - lay.cx) * math.cos(a) + (yy - lay.cy) * math.sin(a)) / (2 * lay.r) + 0.5
        else:
            hx, hy = lay.cx - 0.4 * lay.r, lay.cy - 0.4 * lay.r
            t = np.hypot(xx - hx, yy - hy) / (1.8 * lay.r)
        t = np.clip(t, 0, 1)[..., None]
        light, dark = (
            np.array(_mix(ink, (255, 255, 255), 0.35), np.float32),
            np.array(_mix(ink, (0, 0, 0), 0.35), np.float32),
        )
        body = Image.fromarray((light * (1 - t) + dark * t).astype(np.uint8))
        image.paste(body, mask=mask)

    image, lay = _object(colour, fill, shape, rng, base=shade, mark_ink=_dark_or_white)
    return _finish(image, lay.ss)


def placement(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    ss = 3
    if rng.uniform() < 0.5:  # very large, nearly filling the shorter side
        w, h = [(300, 300), (320, 260), (260, 320)][int(rng.integers(3))]
        r = min(w, h) * rng.uniform(0.42, 0.46)
        cx, cy = (
            w / 2 + rng.uniform(-1, 1) * (w / 2 - 1.05 * r),
            h / 2 + rng.uniform(-1, 1) * max(0.0, h / 2 - 1.05 * r),
        )
    else:  # small, off-centre, on a wide or tall canvas
        w, h = [(480, 160), (160, 480), (420, 200), (400, 400)][int(rng.integers(4))]
        r = max(w, h) * rng.uniform(0.16, 0.2)
        r = min(r, 0.45 * min(w, h))
        cx, cy = rng.uniform(1.1 * r, w - 1.1 * r), rng.uniform(1.1 * r, h - 1.1 * r)
    lay = Layout((w, h), cx * ss, cy * ss, r * ss, ss)
    image, lay = _object(colour, fill, shape, rng, lay=lay, mark_ink=_dark_or_white)
    return _finish(image, lay.ss)


def photographed(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    """A plain drawing photographed: tilted (a perspective), lit unevenly, slightly soft and noisy."""
    image, lay = _object(colour, fill, shape, rng, mark_ink=_dark_or_white)
    image = _finish(image, lay.ss)
    # the page with a margin, seen at an angle: each corner of the output samples a point up to 8% of
    # the side inside, so the object stays whole
    margin = int(0.1 * max(image.size))
    page = Image.new("RGB", (image.width + 2 * margin, image.height + 2 * margin), image.getpixel((0, 0)))
    page.paste(image, (margin, margin))
    image = page
    w, h = image.size
    quad: list[float] = []
    for x, y in [(0, 0), (0, h), (w, h), (w, 0)]:
        quad += [
            x + (1 if x == 0 else -1) * rng.uniform(0, 0.08) * w,
            y + (1 if y == 0 else -1) * rng.uniform(0, 0.08) * h,
        ]
    image = image.transform((w, h), Image.Transform.QUAD, quad, Image.Resampling.BILINEAR)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    t = ((xx - w / 2) * math.cos(a) + (yy - h / 2) * math.sin(a)) / max(w, h) + 0.5
    light = rng.uniform(0.95, 1.05) - rng.uniform(0.15, 0.3) * t
    white_balance = np.array([rng.uniform(0.92, 1.04), 1.0, rng.uniform(0.88, 1.04)], np.float32)
    pixels = np.asarray(image, np.float32) * light[..., None] * white_balance
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(rng.uniform(0.4, 0.9))
    )
    noisy = np.asarray(image, np.float32) + rng.normal(0, rng.uniform(3, 8), size=(h, w, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def watercolour(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    """A wash of uneven density for the body, marks in a darker shade, soft edges, grainy paper."""
    lay = _layout(rng)
    w, h = lay.big

    def blotches(strength: float) -> np.ndarray:
        coarse = rng.uniform(0, 1, size=(max(2, h // (lay.ss * 24)), max(2, w // (lay.ss * 24))))
        smooth = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((w, h), Image.Resampling.BICUBIC))
        return 1.0 - strength * smooth.astype(np.float32) / 255.0

    def wash(image: Image.Image, mask: Image.Image, lay_: Layout, ink: tuple[int, int, int]) -> None:
        density = blotches(rng.uniform(0.25, 0.45))[..., None]
        paper = np.asarray(image, np.float32)
        body = paper * (1 - density) + np.array(ink, np.float32) * density
        soft = mask.filter(ImageFilter.GaussianBlur(0.02 * lay_.r))
        image.paste(Image.fromarray(np.clip(body, 0, 255).astype(np.uint8)), mask=soft)

    grain = rng.normal(0, 6, size=(h // lay.ss, w // lay.ss, 1)).repeat(3, axis=2)
    paper = Image.fromarray(np.clip(247 + grain, 0, 255).astype(np.uint8)).resize((w, h), Image.Resampling.BILINEAR)
    image, lay = _object(
        colour,
        fill,
        shape,
        rng,
        lay=lay,
        background=paper,
        base=wash,
        mark_ink=lambda ink, r: _mix(ink, (0, 0, 0), r.uniform(0.45, 0.65)),
    )
    # the marks bleed a little into the wash around them
    image = image.filter(ImageFilter.GaussianBlur(0.006 * lay.r))
    return _finish(image, lay.ss)


def _strip(draw: ImageDraw.ImageDraw, lay: Layout, angle: float, offset: float, width: float, fill: int) -> None:
    """A straight band across the object at ``angle``, ``offset`` from its centre, ``width`` wide."""
    c, s = math.cos(angle), math.sin(angle)
    half = 1.4 * lay.r
    ends = [
        (-half, offset - width / 2),
        (half, offset - width / 2),
        (half, offset + width / 2),
        (-half, offset + width / 2),
    ]
    draw.polygon([(lay.cx + u * c - v * s, lay.cy + u * s + v * c) for u, v in ends], fill=fill)


def _strips(
    draw: ImageDraw.ImageDraw,
    lay: Layout,
    count: float,
    angle: float,
    rng: np.random.Generator,
    tilt: float,
    shift: float,
    widths: tuple[float, float],
) -> None:
    """Separate bands, ``count`` to the object's diameter, each turned by up to ``tilt`` from ``angle``,
    moved by up to ``shift`` of the spacing and ``widths`` of the spacing wide (drawn as 255)."""
    gap = 2 * lay.r / count
    for k in range(-int(count), int(count) + 1):
        turn = rng.uniform(-tilt, tilt)
        offset = (k + rng.uniform(-shift, shift)) * gap if shift else k * gap
        _strip(draw, lay, angle + turn, offset, gap * rng.uniform(*widths), 255)


def marker(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    lay = _layout(rng)
    angle = rng.uniform(0, math.pi)

    def strokes(image: Image.Image, mask: Image.Image, lay_: Layout, ink: tuple[int, int, int]) -> None:
        # overlapping strokes across the body; where two overlap the ink is a little darker
        body = Image.new("RGB", lay_.big, ink)
        draw = ImageDraw.Draw(body)
        width = lay_.r * rng.uniform(0.16, 0.26)
        offset = -1.2 * lay_.r
        while offset < 1.2 * lay_.r:
            shade = _mix(ink, (0, 0, 0), rng.uniform(0.0, 0.12))
            c, s = math.cos(angle + rng.uniform(-0.04, 0.04)), math.sin(angle + rng.uniform(-0.04, 0.04))
            pts = [(lay_.cx + t * lay_.r * c - offset * s, lay_.cy + t * lay_.r * s + offset * c) for t in (-1.3, 1.3)]
            draw.line(pts, fill=shade, width=int(width))
            offset += width * rng.uniform(0.6, 0.8)
        image.paste(body, mask=mask)

    def stripes(lay_: Layout, r: np.random.Generator) -> Image.Image:
        layer = Image.new("L", lay_.big, 0)
        _strips(ImageDraw.Draw(layer), lay_, r.uniform(2.5, 4.0), angle, r, tilt=0.1, shift=0.1, widths=(0.35, 0.5))
        return layer

    marks = (
        stripes if fill == "striped" else (lambda lay_, r: _scattered_dots(lay_, r.uniform(3.0, 4.0), r, (0.25, 0.38)))
    )
    mark_ink = lambda ink, r: [(20, 20, 20), _mix(ink, (0, 0, 0), 0.55)][int(r.integers(2))]  # noqa: E731
    image, lay = _object(colour, fill, shape, rng, lay=lay, marks=marks, mark_ink=mark_ink, base=strokes)
    return _finish(image, lay.ss)


def collage(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    lay = _layout(rng)
    w, h = lay.big
    paper = Image.new("RGB", (w, h), _plain_background(rng))
    ink = _ink(colour, rng)
    pts = _outline(shape, lay, rng, wobble=rng.uniform(0.0, 0.02))
    mask = _mask(pts, (w, h))

    def shadow_of(layer: Image.Image, depth: float) -> Image.Image:
        moved = layer.transform(layer.size, Image.Transform.AFFINE, (1, 0, -depth * lay.r, 0, 1, -depth * lay.r))
        return moved.filter(ImageFilter.GaussianBlur(0.03 * lay.r)).point(lambda p: int(p * 0.4))

    paper.paste((70, 70, 70), mask=shadow_of(mask, 0.05))
    paper.paste(ink, mask=mask)
    if fill != "solid":
        layer = Image.new("L", (w, h), 0)
        draw = ImageDraw.Draw(layer)
        if fill == "striped":
            count = rng.uniform(2.5, 4.0)
            _strips(draw, lay, count, rng.uniform(0, math.pi), rng, tilt=0.09, shift=0.0, widths=(0.3, 0.5))
        else:
            count = rng.uniform(3.0, 4.5)
            gap = 2 * lay.r / count
            for i in range(-int(count) - 1, int(count) + 2):
                for j in range(-int(count) - 1, int(count) + 2):
                    x = lay.cx + (i + 0.5 * (j % 2)) * gap + rng.uniform(-0.08, 0.08) * gap
                    y = lay.cy + j * gap * 0.9 + rng.uniform(-0.08, 0.08) * gap
                    d = gap * 0.3
                    draw.ellipse([x - d, y - d, x + d, y + d], fill=255)
        inside = Image.fromarray((np.asarray(layer, np.uint16) * np.asarray(mask, np.uint16) // 255).astype(np.uint8))
        piece = [(245, 245, 240), (25, 25, 25), _mix(ink, (0, 0, 0), 0.5)][int(rng.integers(3))]
        paper.paste((40, 40, 40), mask=shadow_of(inside, 0.025))
        paper.paste(piece, mask=inside)
    return _finish(paper, lay.ss)


def worn_stamp(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    lay = _layout(rng)
    w, h = lay.big

    def flecks(density: float) -> np.ndarray:
        # paper showing through: small clustered voids (thresholded smooth noise)
        coarse = rng.uniform(0, 1, size=(h // (lay.ss * 3), w // (lay.ss * 3))).astype(np.float32)
        field = np.asarray(Image.fromarray(coarse, mode="F").resize((w, h), Image.Resampling.BILINEAR), np.float32)
        return field < density

    def stamp(image: Image.Image, mask: Image.Image, lay_: Layout, ink: tuple[int, int, int]) -> None:
        ragged = mask.filter(ImageFilter.GaussianBlur(0.02 * lay_.r)).point(lambda p: 255 if p > 110 else 0)
        inked = np.asarray(ragged) > 0
        inked &= ~flecks(rng.uniform(0.06, 0.14))
        image.paste(ink, mask=Image.fromarray(inked.astype(np.uint8) * 255))

    def worn(
        marks_fn: Callable[[Layout, np.random.Generator], np.ndarray],
    ) -> Callable[[Layout, np.random.Generator], np.ndarray]:
        return lambda lay_, r: marks_fn(lay_, r) & ~flecks(r.uniform(0.04, 0.1))

    count = rng.uniform(3.0, 4.5)
    marks = (
        worn(lambda lay_, r: _stripes(lay_, count, 0.45, r))
        if fill == "striped"
        else worn(lambda lay_, r: _grid_dots(lay_, count, 0.3, r, hexagonal=bool(r.integers(2))))
    )
    mark_ink = lambda ink, r: [(25, 25, 25), _mix(ink, (0, 0, 0), 0.55)][int(r.integers(2))]  # noqa: E731
    image, lay = _object(
        colour, fill, shape, rng, lay=lay, background=(248, 246, 240), marks=marks, mark_ink=mark_ink, base=stamp
    )
    return _finish(image, lay.ss)


STYLES: dict[str, Callable[[str, str, str, np.random.Generator], Image.Image]] = {
    "fine_marks": fine_marks,
    "coarse_marks": coarse_marks,
    "hand_drawn": hand_drawn,
    "irregular_marks": irregular_marks,
    "tinted_marks": tinted_marks,
    "pixel_art": pixel_art,
    "degraded": degraded,
    "coloured_paper": coloured_paper,
    "textured_paper": textured_paper,
    "shaded": shaded,
    "placement": placement,
    "photographed": photographed,
    "watercolour": watercolour,
    "marker": marker,
    "collage": collage,
    "worn_stamp": worn_stamp,
}


def style_set(
    style: str, classes: list[tuple[str, str, str]], per_class: int, seed: int
) -> list[tuple[Image.Image, tuple[str, str, str]]]:
    """``per_class`` images of each ``(colour, fill, shape)`` class in ``style``: ``(image, class)``."""
    draw = STYLES[style]
    index = list(STYLES).index(style)
    return [
        (draw(*triple, np.random.default_rng([seed, index, c, i])), triple)
        for c, triple in enumerate(classes)
        for i in range(per_class)
    ]
