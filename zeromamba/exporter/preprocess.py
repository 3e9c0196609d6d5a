"""``preprocess.json``: everything a runtime needs to feed an exported model, and to read its outputs.

The predictor's preprocessing (:func:`zeromamba.images.prepare_image`) as a list of ``steps``, each
with its numbers and an exact description, so that a client in any language reproduces the tensors
zeromamba feeds the model (``examples/onnx_client.py`` is one, written from this file alone): decode
with the EXIF orientation applied, 8-bit RGB with transparency composited onto white, the object
framing of models that have it (:mod:`zeromamba.framing`), the resize and the padding or crop of the
crop mode (:mod:`zeromamba.letterbox`), and the normalisation. Rounding is Python's ``round`` (half
to even, as ``numpy.round``) and ``//`` is floor division throughout. The outputs are described with
their meaning, the class names and the calibration.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..framing import DETECT_SIDE, FOREGROUND_THRESHOLD, MAX_FOREGROUND
from ..letterbox import fill_colour
from ..version import __version__

__all__ = ["PREPROCESS_FORMAT", "OUTPUT_MEANINGS", "preprocess_spec", "preprocess_steps"]

#: version of the preprocess.json layout (2: the ``steps`` list)
PREPROCESS_FORMAT = 2

OUTPUT_MEANINGS: dict[str, str] = {
    "attributes": "(batch, num_attributes) the predicted attribute vector (predictor.predict_attributes)",
    "class_scores": "(batch, num_classes) attributes @ class_attributes.T, rows L2-normalised: the raw class scores",
    "calibrated_scores": "(batch, num_classes) softmax(class_scores) - gamma * seen (GZSL calibrated stacking): "
    "what zeromamba classify ranks by",
    "logits": "(batch, num_classes) the classifier's logits",
}

_ROUNDING = "round() is Python's round, half to even (numpy.round); // is floor division"

_DECODE = (
    "Decode the file with Pillow (PIL.Image.open, fully loaded) and apply its EXIF Orientation tag "
    "(PIL.ImageOps.exif_transpose; an image whose EXIF block cannot be read keeps its stored orientation)."
)
_TO_RGB = (
    "Make 8-bit RGB: an image with transparency (mode RGBA, RGBa, LA, La or PA, or mode P with a 'transparency' "
    "entry in its info) is converted to RGBA and alpha-composited onto an opaque image of alpha_background "
    "(PIL.Image.alpha_composite), then the alpha is dropped; 16-bit greyscale (modes I;16*, I) becomes "
    "clip(round(value / sixteen_bit_divisor), 0, 255) and then RGB; mode F becomes clip(round(value * 255), 0, 255) "
    "when its largest value is at most 1, else clip(round(value), 0, 255) (NaN and inf as 0); every other mode is "
    "converted with Pillow's convert('RGB')."
)
_FRAME = (
    "Frame a lone small object at the size the model was trained on. Let w x h be the image's size and L = max(w, h). "
    "(1) A detection copy: if L > detect_side, the image resized with Pillow's bilinear filter to "
    "(max(1, round(w * s)), max(1, round(h * s))) with s = detect_side / L; otherwise the image itself. "
    "(2) The background colour c: the per-channel median of the copy's outermost pixels (its first row, last row, "
    "first column and last column, concatenated in that order, so corner pixels count twice), rounded. "
    "(3) The mask: the copy's pixels whose largest channel difference |pixel - c| exceeds threshold. "
    "(4) Leave the image as it is if the mask is empty, if the mask's share of the copy's pixels exceeds "
    "max_foreground, or if the mask touches the copy's first or last row or column. "
    "(5) The object's box in the image's pixels: x0 = min_col * sx, y0 = min_row * sy, x1 = (max_col + 1) * sx, "
    "y1 = (max_row + 1) * sy, with sx = w / copy width and sy = h / copy height. "
    "(6) half = max(x1 - x0, y1 - y0) / 2; leave the image as it is if half / L >= smallest. "
    "(7) Otherwise side = max(1, round(half / target)), left = round((x0 + x1) / 2 - side / 2), "
    "top = round((y0 + y1) / 2 - side / 2), and the image becomes a new side x side image filled with c on which "
    "the image's pixels are placed with their (left, top) at (0, 0) (a crop at the image's own resolution; what "
    "lies outside the image stays c; nothing is resampled)."
)
_FIT = (
    "Scale the image to fit box_height x box_width keeping its aspect ratio: ratio = max(h / box_height, "
    "w / box_width), new size (max(1, round(w / ratio)), max(1, round(h / ratio))), resized with Pillow's "
    "Image.resize and the interpolation filter (skipped when the size does not change)."
)
_COVER = (
    "Scale the image to cover box_height x box_width keeping its aspect ratio: ratio = min(h / box_height, "
    "w / box_width), new size (max(1, round(w / ratio)), max(1, round(h / ratio))), resized with Pillow's "
    "Image.resize and the interpolation filter."
)
_SHORTER = (
    "Resize the shorter side to size keeping the aspect ratio: the longer side becomes max(size, int(size * longer "
    "/ shorter)) (int truncates), with Pillow's Image.resize and the interpolation filter (torchvision's Resize(int))."
)
_SQUASH = "Resize to exactly box_height x box_width (aspect ratio not kept) with Pillow's Image.resize and the filter."
_PAD_CROP = (
    "Pad and crop to height x width about the centre: where the image (w x h) is narrower or lower than the frame, "
    "place it at ((width - w) // 2, (height - h) // 2) on a larger image filled with fill ('border_median': the "
    "per-channel median of the outermost rows and columns of the image as it was before the resize step, as in "
    "frame_object's step 2, rounded; null: no padding can occur); then take the height x width crop whose top-left "
    "corner is at (round((W - width) / 2), round((H - height) / 2)) of the W x H result."
)
_NORMALISE = (
    "As float32: (pixel / 255 - mean) / std per channel, the channels first (3 x height x width), then the images "
    "stacked into a batch (N x 3 x height x width), named 'images'."
)


def preprocess_steps(preprocess: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The steps of a complete predictor ``preprocess`` dict (see
    :func:`zeromamba.preprocess_config.resolve_preprocess`)."""
    _, height, width = (int(v) for v in preprocess["input_size"])
    mode, crop_pct, interpolation = preprocess["crop_mode"], float(preprocess["crop_pct"]), preprocess["interpolation"]
    box_h, box_w = math.floor(height / crop_pct), math.floor(width / crop_pct)
    steps: list[dict[str, Any]] = [
        {"op": "decode", "exif_orientation": True, "text": _DECODE},
        {"op": "to_rgb", "alpha_background": [255, 255, 255], "sixteen_bit_divisor": 257, "text": _TO_RGB},
    ]
    extent = preprocess.get("object_extent")
    if extent is not None:
        steps.append(
            {
                "op": "frame_object",
                "smallest": float(extent[0]),
                "target": float(extent[1]),
                "detect_side": DETECT_SIDE,
                "detect_interpolation": "bilinear",
                "threshold": FOREGROUND_THRESHOLD,
                "max_foreground": MAX_FOREGROUND,
                "text": _FRAME,
            }
        )
    fill: Any = None
    if mode in ("border", "letterbox"):
        steps.append({"op": "resize_to_fit", "box_height": box_h, "box_width": box_w, "text": _FIT})
        fill = list(fill_colour(preprocess["mean"])) if mode == "border" else "border_median"
    elif mode == "squash":
        steps.append({"op": "resize", "box_height": box_h, "box_width": box_w, "text": _SQUASH})
    elif height == width:
        steps.append({"op": "resize_shorter", "size": box_h, "text": _SHORTER})
    else:
        steps.append({"op": "resize_to_cover", "box_height": box_h, "box_width": box_w, "text": _COVER})
    steps[-1]["interpolation"] = interpolation
    steps.append({"op": "center_pad_crop", "height": height, "width": width, "fill": fill, "text": _PAD_CROP})
    steps.append(
        {
            "op": "normalize",
            "mean": [float(v) for v in preprocess["mean"]],
            "std": [float(v) for v in preprocess["std"]],
            "text": _NORMALISE,
        }
    )
    return steps


def preprocess_spec(
    preprocess: Mapping[str, Any],
    output_names: Sequence[str],
    *,
    model_file: str,
    model_format: str,
    opset: int | None = None,
    architecture: str | None = None,
    class_names: Sequence[str] | None = None,
    attribute_names: Sequence[str] | None = None,
    seen: Sequence[bool] | None = None,
    gamma: float | None = None,
) -> dict[str, Any]:
    """The content of ``preprocess.json`` for a complete predictor ``preprocess`` dict; ``opset`` is
    the one the written ONNX file declares."""
    _, height, width = preprocess["input_size"]
    mode = preprocess["crop_mode"]
    extent = preprocess.get("object_extent")
    spec: dict[str, Any] = {
        "format": PREPROCESS_FORMAT,
        "zeromamba_version": __version__,
        "model_file": model_file,
        "model_format": model_format,
        "architecture": architecture,
        "input": {
            "name": "images",
            "shape": ["batch", 3, int(height), int(width)],
            "dtype": "float32",
            "layout": "NCHW",
            "channel_order": "RGB",
            "dynamic": ["batch"],
        },
        "preprocess": {
            # the summary (timm's pretrained_cfg names); "steps" is the exact recipe
            "height": int(height),
            "width": int(width),
            "crop_mode": mode,
            "interpolation": preprocess["interpolation"],
            "crop_pct": float(preprocess["crop_pct"]),
            "fill": list(fill_colour(preprocess["mean"]))
            if mode == "border"
            else ("border_median" if mode == "letterbox" else None),
            "object_extent": [float(v) for v in extent] if extent is not None else None,
            "mean": [float(v) for v in preprocess["mean"]],
            "std": [float(v) for v in preprocess["std"]],
            "rounding": _ROUNDING,
            "steps": preprocess_steps(preprocess),
        },
        "outputs": [{"name": n, "meaning": OUTPUT_MEANINGS[n]} for n in output_names],
    }
    if opset is not None:
        spec["opset"] = int(opset)
    if class_names is not None:
        spec["class_names"] = list(class_names)
    if attribute_names is not None:
        spec["attribute_names"] = list(attribute_names)
    if "calibrated_scores" in output_names and seen is not None:
        spec["seen"] = [bool(s) for s in seen]
        spec["gamma"] = float(gamma or 0.0)
    return spec
