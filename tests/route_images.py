"""Image files that exercise every step of the shipped model's preprocessing, for the tests that check
that every route to an answer (the predictor built each documented way, ``zeromamba classify``, an
exported ONNX file fed by a client of its own) gives the same one.

Drawings of the Shapes classes in another hand (:mod:`tests.drawings`), the same drawings with the
object made small (the framing step), a large photo with a small object (framing on a reduced
detection copy), transparency (RGBA, LA, a palette with a transparent colour: composited onto white),
an EXIF-rotated JPEG and 16-bit greyscale.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .drawings import draw_one

# a spread of the 36 classes: every colour, fill and shape
CLASSES = [
    ("red", "solid", "circle"),
    ("green", "striped", "triangle"),
    ("blue", "dotted", "bar"),
    ("yellow", "solid", "triangle"),
    ("red", "striped", "bar"),
    ("green", "dotted", "circle"),
    ("blue", "solid", "bar"),
    ("yellow", "striped", "circle"),
    ("red", "dotted", "triangle"),
    ("blue", "striped", "circle"),
]


def small_object(image: Image.Image, factor: float) -> Image.Image:
    """``image`` in the middle of a canvas ``factor`` times its size, filled with its corner colour."""
    w, h = image.size
    canvas = Image.new("RGB", (round(w * factor), round(h * factor)), image.getpixel((0, 0)))
    canvas.paste(image, ((canvas.width - w) // 2, (canvas.height - h) // 2))
    return canvas


def write_route_images(folder: Path) -> list[Path]:
    """Write the images into ``folder``; their paths, in a fixed order."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(26)
    files: dict[str, Image.Image] = {}
    drawings = [draw_one(*cls, rnd) for cls in CLASSES]
    for d in drawings:
        files[f"{d.name.replace(' ', '_')}.png"] = d.image
    for d, factor in zip(drawings[:6], (3.0, 3.5, 4.0, 3.0, 3.5, 4.0)):
        files[f"small_{d.name.replace(' ', '_')}.png"] = small_object(d.image, factor)
    photo = Image.new("RGB", (3000, 2000), "white")
    ImageDraw.Draw(photo).rectangle((1380, 960, 1660, 1050), fill=(220, 30, 30))
    files["photo_small_red_bar.png"] = photo

    rgba = Image.new("RGBA", (240, 180), (0, 0, 0, 0))  # a transparent background: white once composited
    ImageDraw.Draw(rgba).ellipse((60, 30, 180, 150), fill=(30, 60, 230, 255))
    files["transparent_blue_circle.png"] = rgba
    palette = rgba.convert("P")
    palette.info["transparency"] = palette.getpixel((0, 0))
    files["palette_blue_circle.png"] = palette
    la = Image.new("LA", (160, 160), (0, 0))
    ImageDraw.Draw(la).polygon([(80, 20), (140, 130), (20, 130)], fill=(90, 255))
    files["grey_alpha_triangle.png"] = la
    grey = np.full((150, 200), 60000, dtype=np.uint16)
    grey[50:100, 30:170] = 2000
    files["grey16_bar.png"] = Image.fromarray(grey)

    paths = []
    for name, image in files.items():
        path = folder / name
        image.save(path, **({"transparency": image.info["transparency"]} if "transparency" in image.info else {}))
        paths.append(path)
    # stored sideways, upright once the EXIF orientation (6: rotate 90 degrees clockwise) is applied
    upright = Image.new("RGB", (200, 300), "white")
    ImageDraw.Draw(upright).polygon([(100, 40), (170, 240), (30, 240)], fill=(20, 150, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = folder / "exif_rotated_green_triangle.jpg"
    upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=92)
    paths.append(path)
    return paths
