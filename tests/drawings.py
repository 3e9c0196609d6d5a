"""Test drawings of the Shapes classes in another hand than the training renderer.

This is its own drawing routine, written the way a person draws with PIL's ImageDraw, and shares
no code with :mod:`zeromamba.data.shapes_draw`: named colours and hex codes ("red", "#0000ff",
"forestgreen", "gold"...), plain light backgrounds, canvases of fixed sizes such as 300 x 200,
shapes drawn at their final size (no supersampling, so edges are aliased), stripes drawn as thick
``ImageDraw.line`` strokes clipped to the shape, dots as small ellipses in a grid, outlines with
``width=``. Some drawings are then saved as JPEG or shrunk with LANCZOS. Each drawing comes with
the object's mask.
"""

from __future__ import annotations

import io
import itertools
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw

# how people name these colours
NAMED_COLOURS = {
    "red": ["red", "#e00000", "crimson", "#ff3030", "firebrick"],
    "green": ["green", "#00c000", "forestgreen", "limegreen", "#2e8b57"],
    "blue": ["blue", "#0050ff", "royalblue", "#1e90ff", "navy"],
    "yellow": ["yellow", "gold", "#ffd700", "#f5e000", "#ffeb3b"],
}
BACKGROUNDS = ["white", "#fafafa", "ivory", "#eeeeee", "#f0f8ff", "#fff8e7", "#f5f5dc", "#e8f4e8"]
CANVASES = [(300, 200), (200, 300), (256, 256), (400, 250), (150, 150), (320, 240), (180, 260), (500, 500)]


@dataclass
class Drawing:
    image: Image.Image
    mask: np.ndarray  # (H, W) bool: the object's pixels
    colour: str
    fill: str
    shape: str

    @property
    def name(self) -> str:
        return f"{self.colour} {self.fill} {self.shape}"


def _shape_layer(shape: str, size: tuple[int, int], cx: float, cy: float, r: float, rnd: random.Random):
    """``(mask image, a function drawing the outline)``."""
    if shape == "circle":
        box = [cx - r, cy - r, cx + r, cy + r]
        points = None
    elif shape == "triangle":
        tilt = math.radians(rnd.uniform(-25, 25))
        points = [
            (
                cx + r * math.cos(-math.pi / 2 + tilt + k * 2 * math.pi / 3),
                cy + r * math.sin(-math.pi / 2 + tilt + k * 2 * math.pi / 3),
            )
            for k in range(3)
        ]
    else:  # a bar: a long rectangle, horizontal, vertical or slanted
        angle = math.radians(rnd.choice([0, 90, 30, 135, rnd.uniform(0, 180)]))
        length, thick = r * 1.05, r * rnd.uniform(0.35, 0.5)
        c, s = math.cos(angle), math.sin(angle)
        points = [
            (cx + u * c - v * s, cy + u * s + v * c)
            for u, v in ((length, thick), (-length, thick), (-length, -thick), (length, -thick))
        ]
    mask = Image.new("L", size, 0)
    md = ImageDraw.Draw(mask)
    if points is None:
        md.ellipse(box, fill=255)
    else:
        md.polygon(points, fill=255)

    def outline(draw: ImageDraw.ImageDraw, colour: str, width: int) -> None:
        if points is None:
            draw.ellipse(box, outline=colour, width=width)
        else:
            draw.line(points + points[:1], fill=colour, width=width, joint="curve")

    return mask, outline


def _pattern_layer(fill: str, size: tuple[int, int], cx: float, cy: float, r: float, rnd: random.Random) -> Image.Image:
    """Where the marks are, as an ``L`` image (stripes as lines, dots as small discs)."""
    layer = Image.new("L", size, 0)
    draw = ImageDraw.Draw(layer)
    if fill == "striped":
        n = rnd.randint(3, 5)
        gap = 2 * r / n
        width = max(2, int(gap * rnd.uniform(0.35, 0.55)))
        angle = math.radians(rnd.choice([0, 45, 90, 135, rnd.uniform(0, 180)]))
        c, s = math.cos(angle), math.sin(angle)
        for k in range(-n - 1, n + 2):
            off = k * gap
            x0, y0 = cx + off * -s - 2 * r * c, cy + off * c - 2 * r * s
            x1, y1 = cx + off * -s + 2 * r * c, cy + off * c + 2 * r * s
            draw.line([(x0, y0), (x1, y1)], fill=255, width=width)
    elif fill == "dotted":
        n = rnd.randint(3, 5)
        gap = 2 * r / n
        dot = gap * rnd.uniform(0.22, 0.32)
        for i, j in itertools.product(range(-n, n + 1), repeat=2):
            x, y = cx + i * gap + (gap / 2 if j % 2 else 0), cy + j * gap
            draw.ellipse([x - dot, y - dot, x + dot, y + dot], fill=255)
    return layer


def draw_one(colour: str, fill: str, shape: str, rnd: random.Random) -> Drawing:
    """One drawing of a class, in this module's hand."""
    size = rnd.choice(CANVASES)
    w, h = size
    background = rnd.choice(BACKGROUNDS)
    ink = rnd.choice(NAMED_COLOURS[colour])
    r = min(w, h) * rnd.uniform(0.25, 0.4)
    cx, cy = rnd.uniform(r * 1.1, w - r * 1.1), rnd.uniform(r * 1.1, h - r * 1.1)
    image = Image.new("RGB", size, background)
    mask, outline = _shape_layer(shape, size, cx, cy, r, rnd)
    style = rnd.choice(["pen", "filled"]) if fill != "solid" else "filled"
    if style == "filled":
        image.paste(ink, mask=mask)
        if fill != "solid":
            marks = rnd.choice(["black", "white", "#333333"])
            image.paste(marks, mask=ImageChops.multiply(mask, _pattern_layer(fill, size, cx, cy, r, rnd)))
    else:  # coloured marks inside an outline on the plain background
        image.paste(ink, mask=ImageChops.multiply(mask, _pattern_layer(fill, size, cx, cy, r, rnd)))
    line_width = max(2, int(r * rnd.uniform(0.05, 0.1)))
    if style == "pen" or rnd.random() < 0.4:
        outline(ImageDraw.Draw(image), ink if style == "pen" or rnd.random() < 0.5 else "black", line_width)
        ring = Image.new("L", size, 0)
        outline(ImageDraw.Draw(ring), 255, line_width)
        mask = ImageChops.lighter(mask, ring)
    finish = rnd.random()
    if finish < 0.25:  # shrunk, as a thumbnail
        factor = rnd.uniform(0.35, 0.6)
        small = (max(16, round(w * factor)), max(16, round(h * factor)))
        image, mask = image.resize(small, Image.Resampling.LANCZOS), mask.resize(small, Image.Resampling.BILINEAR)
    elif finish < 0.5:  # saved as a JPEG
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=rnd.randint(40, 85))
        buf.seek(0)
        image = Image.open(buf).convert("RGB")
    return Drawing(image=image, mask=np.asarray(mask) >= 128, colour=colour, fill=fill, shape=shape)


def draw_test_set(classes: list[tuple[str, str, str]], per_class: int = 4, seed: int = 13) -> list[Drawing]:
    """``per_class`` drawings of each ``(colour, fill, shape)`` class (deterministic for a seed)."""
    rnd = random.Random(seed)
    return [draw_one(*triple, rnd) for triple in classes for _ in range(per_class)]
