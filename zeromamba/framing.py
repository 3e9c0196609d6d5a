"""Framing a lone object at the size a model was trained on.

A model trained on objects of some size relative to the frame (the shipped ``shapes-zsl``: radius
0.2-0.36 of the canvas's longer side) misreads the same object drawn smaller: on a 6000 x 4000 photo
of a blue circle 2000 px wide (0.17 of the longer side) an earlier version of it scored a triangle a
hair above the circle, at every resolution from 300 px up (today's version does so for a circle 0.13
of the longer side wide). The resolution is not the cause (PIL's resampling filters widen with the
reduction, so every source pixel counts at any size); the object's share of the frame is.
:func:`frame_object` finds a lone object on a plain background and, when it is smaller than the model
knows, crops a frame around it in which it has the training size.

The object is what differs from the background colour (the median of the border pixels, as the
letterbox pads with): the bounding box of the pixels whose largest channel difference exceeds
:data:`FOREGROUND_THRESHOLD`, found on a copy at most :data:`DETECT_SIDE` px a side. Its *extent*
is half the longer side of that box over the image's longer side (a circle's radius; a triangle's
or bar's is 0.8-1.1 of the radius it was drawn with). Images with no clear background (the
object touches the border, or more than :data:`MAX_FOREGROUND` of the pixels differ) are left as they
are, as are objects at least the smallest extent given.

A leaf (PIL and numpy); :mod:`zeromamba.images` applies it when a model's preprocessing has
``object_extent`` (the shipped ``shapes-zsl`` model: ``[0.17, 0.28]``).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .letterbox import border_colour

__all__ = ["DETECT_SIDE", "FOREGROUND_THRESHOLD", "MAX_FOREGROUND", "frame_object", "object_extent"]

#: the largest channel difference from the background colour that still counts as background
FOREGROUND_THRESHOLD = 48
#: the object is looked for on a copy at most this many pixels a side
DETECT_SIDE = 256
#: more of the image than this differing from the border: no plain background, nothing to frame
MAX_FOREGROUND = 0.9


def _object_box(image: Image.Image) -> tuple[tuple[float, float, float, float], tuple[int, int, int]] | None:
    """``((left, top, right, bottom) of the lone object in image's pixels, background colour)``, or ``None``."""
    w, h = image.size
    scale = min(1.0, DETECT_SIDE / max(w, h))
    small = image
    if scale < 1.0:
        small = image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.BILINEAR)
    arr = np.asarray(small.convert("RGB"), dtype=np.int16)
    colour = border_colour(small)
    background = np.asarray(colour, dtype=np.int16)
    mask = np.abs(arr - background).max(axis=-1) > FOREGROUND_THRESHOLD
    share = float(mask.mean())
    if share == 0.0 or share > MAX_FOREGROUND:
        return None
    if mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any():
        return None  # it reaches the border: not a lone object on a background
    ys, xs = np.nonzero(mask)
    sx, sy = w / small.width, h / small.height
    return (xs.min() * sx, ys.min() * sy, (xs.max() + 1) * sx, (ys.max() + 1) * sy), colour


def object_extent(image: Image.Image) -> float | None:
    """Half the longer side of the lone object's bounding box over the image's longer side, or
    ``None`` when there is no lone object on a plain background."""
    found = _object_box(image)
    if found is None:
        return None
    box = found[0]
    return max(box[2] - box[0], box[3] - box[1]) / 2.0 / max(image.size)


def frame_object(image: Image.Image, smallest: float, target: float) -> tuple[Image.Image, tuple[float, float]]:
    """``(image, (x, y))``: ``image`` itself, or when its lone object's extent is under ``smallest``
    a square frame around the object in which its extent is ``target`` (the frame's outside of the
    image painted in the background colour), and the frame's top-left corner in ``image``'s pixels.

    Nothing is resampled: the frame is a crop at the image's own resolution, which the model's
    resize then brings to its input size as it would any image.
    """
    if not 0.0 < smallest <= target < 0.5:
        raise ValueError(f"need 0 < smallest <= target < 0.5, got smallest={smallest}, target={target}")
    found = _object_box(image)
    if found is None:
        return image, (0.0, 0.0)
    box, colour = found
    half = max(box[2] - box[0], box[3] - box[1]) / 2.0
    if half / max(image.size) >= smallest:
        return image, (0.0, 0.0)
    side = max(1, round(half / target))
    left = round((box[0] + box[2]) / 2.0 - side / 2.0)
    top = round((box[1] + box[3]) / 2.0 - side / 2.0)
    frame = Image.new("RGB", (side, side), colour)
    inside = (max(0, left), max(0, top), min(image.width, left + side), min(image.height, top + side))
    frame.paste(image.crop(inside), (inside[0] - left, inside[1] - top))
    return frame, (float(left), float(top))
