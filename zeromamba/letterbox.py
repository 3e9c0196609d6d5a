"""Letterboxing: fit a whole image into a fixed frame without distorting it.

The image is scaled so that its longer side fills the frame and the rest of the frame is padded
with the median colour of the image's border pixels, so a drawing on a plain background continues
into the padding instead of meeting a grey bar. A circle stays a circle on any canvas.

A leaf module (PIL and numpy only): the predictor's preprocessing (:mod:`zeromamba.images`) and the
training data pipeline (:mod:`zeromamba.data`) use the same function, so a model sees at inference
exactly the kind of input it was trained on.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["border_colour", "letterbox", "letterbox_box", "letterbox_geometry"]


def letterbox_geometry(width: int, height: int, out_width: int, out_height: int) -> tuple[int, int, int, int]:
    """``(scaled width, scaled height, left, top)``: the image's size inside the frame and where it sits."""
    if width < 1 or height < 1 or out_width < 1 or out_height < 1:
        raise ValueError(f"sizes must be positive: image {width} x {height}, frame {out_width} x {out_height}")
    scale = min(out_width / width, out_height / height)
    new_w = min(out_width, max(1, round(width * scale)))
    new_h = min(out_height, max(1, round(height * scale)))
    return new_w, new_h, (out_width - new_w) // 2, (out_height - new_h) // 2


def letterbox_box(width: int, height: int, out_width: int, out_height: int) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)``: the whole frame in the original image's pixel coordinates (it
    reaches past the image on the padded sides)."""
    new_w, new_h, left, top = letterbox_geometry(width, height, out_width, out_height)
    sx, sy = width / new_w, height / new_h
    return (-left * sx, -top * sy, (out_width - left) * sx, (out_height - top) * sy)


def border_colour(image: Image.Image) -> tuple[int, int, int]:
    """The per-channel median of the outermost row and column of pixels of an RGB image."""
    arr = np.asarray(image.convert("RGB"))
    edge = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    return tuple(int(v) for v in np.median(edge, axis=0).round())  # type: ignore[return-value]


def letterbox(
    image: Image.Image,
    out_width: int,
    out_height: int,
    resample: Image.Resampling = Image.Resampling.BILINEAR,
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Scale ``image`` (RGB) to fit ``out_width x out_height`` and pad it with its border colour.

    Returns:
        ``(framed image, box)``: ``box`` is ``(left, top, right, bottom)``, the whole frame in the
        original image's pixel coordinates (it reaches past the image on the padded sides).
    """
    width, height = image.size
    new_w, new_h, left, top = letterbox_geometry(width, height, out_width, out_height)
    resized = image.resize((new_w, new_h), resample=resample) if (new_w, new_h) != (width, height) else image
    if (new_w, new_h) == (out_width, out_height):
        framed = resized
    else:
        framed = Image.new("RGB", (out_width, out_height), border_colour(image))
        framed.paste(resized, (left, top))
    return framed, letterbox_box(width, height, out_width, out_height)
