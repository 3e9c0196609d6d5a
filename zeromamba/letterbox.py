"""Letterboxing: fit a whole image into a fixed frame without distorting it.

The image is scaled so that its longer side fills the frame (the frame over ``crop_pct``, then the
centre of it is kept) and the rest of the frame is padded. Two fills, two crop modes:

* ``border`` (timm's own ``crop_mode="border"``): a constant colour, ``round(255 * mean)`` per
  channel, which is 0 after normalisation. ``timm.data.create_transform`` builds exactly this
  transform from a model's ``pretrained_cfg`` (``ResizeKeepRatio(longest=1)`` + ``CenterCropOrPad``),
  so a model preprocessed this way gives the same tensors in timm and here.
* ``letterbox`` (zeromamba's): the per-channel median of the image's border pixels, so a drawing on
  a plain background continues into the padding. timm has no such mode.

The geometry is timm's in both: ``ratio = max(h / box_h, w / box_w)``, scaled sizes
``round(w / ratio)``, ``round(h / ratio)`` (at least 1), padded to the frame with ``(frame - size) // 2``
on the left / top, then the centre crop at ``round((padded - frame) / 2)``; Python's ``round``
(half to even) throughout.

A leaf module (PIL and numpy only): the predictor's preprocessing (:mod:`zeromamba.images`) and the
training data pipeline (:mod:`zeromamba.data`) use the same function, so a model sees at inference
exactly the kind of input it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

__all__ = ["border_colour", "fill_colour", "letterbox", "letterbox_box", "letterbox_geometry"]


def fill_colour(mean: Sequence[float]) -> tuple[int, int, int]:
    """The ``border`` mode's padding: ``round(255 * mean)`` per channel (0 after normalisation), as timm pads."""
    return tuple(round(255 * float(v)) for v in mean)  # type: ignore[return-value]


def letterbox_geometry(
    width: int, height: int, out_width: int, out_height: int, crop_pct: float = 1.0
) -> tuple[int, int, int, int]:
    """``(scaled width, scaled height, left, top)``: the image's size once scaled to fit the frame over
    ``crop_pct``, and where its top-left corner lands in the ``out_width x out_height`` frame (negative
    where the centre crop cuts the image)."""
    if width < 1 or height < 1 or out_width < 1 or out_height < 1:
        raise ValueError(f"sizes must be positive: image {width} x {height}, frame {out_width} x {out_height}")
    box_w, box_h = math.floor(out_width / crop_pct), math.floor(out_height / crop_pct)
    ratio = max(height / box_h, width / box_w)
    new_w, new_h = max(1, round(width / ratio)), max(1, round(height / ratio))
    pad_left = (out_width - new_w) // 2 if out_width > new_w else 0
    pad_top = (out_height - new_h) // 2 if out_height > new_h else 0
    crop_left = int(round((max(new_w, out_width) - out_width) / 2.0))
    crop_top = int(round((max(new_h, out_height) - out_height) / 2.0))
    return new_w, new_h, pad_left - crop_left, pad_top - crop_top


def letterbox_box(
    width: int, height: int, out_width: int, out_height: int, crop_pct: float = 1.0
) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)``: the whole frame in the original image's pixel coordinates (it
    reaches past the image on the padded sides)."""
    new_w, new_h, left, top = letterbox_geometry(width, height, out_width, out_height, crop_pct)
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
    *,
    fill: Sequence[int] | None = None,
    crop_pct: float = 1.0,
) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """Scale ``image`` (RGB) to fit ``out_width x out_height`` (over ``crop_pct``) and pad it.

    Args:
        fill: the padding colour (``border`` mode: :func:`fill_colour` of the mean); ``None``: the
            image's :func:`border_colour` (``letterbox`` mode).

    Returns:
        ``(framed image, box)``: ``box`` is ``(left, top, right, bottom)``, the whole frame in the
        original image's pixel coordinates (it reaches past the image on the padded sides).
    """
    width, height = image.size
    new_w, new_h, left, top = letterbox_geometry(width, height, out_width, out_height, crop_pct)
    resized = image.resize((new_w, new_h), resample=resample) if (new_w, new_h) != (width, height) else image
    if (new_w, new_h, left, top) == (out_width, out_height, 0, 0):
        framed = resized
    else:
        colour = tuple(int(v) for v in fill) if fill is not None else border_colour(image)
        framed = Image.new("RGB", (out_width, out_height), colour)
        framed.paste(resized, (left, top))  # PIL clips what falls outside the frame
    return framed, letterbox_box(width, height, out_width, out_height, crop_pct)
