"""``preprocess.json``: everything a runtime needs to feed an exported model, and to read its outputs.

The predictor's preprocessing (:func:`zeromamba.images.preprocess_image`) in words and numbers, so
that it can be reproduced in any language: decode to 8-bit RGB, then one of

* ``squash``: resize the whole image to ``size / crop_pct`` (aspect ignored), take the centre
  ``height x width`` crop (no crop when ``crop_pct`` is 1);
* ``center``: resize the shorter side to ``floor(size / crop_pct)``, take the centre crop;
* ``letterbox``: scale the image so its longer side fills the frame (``round`` of the scaled
  sizes), centre it (``floor`` of the offsets) on a frame filled with the per-channel median of the
  image's outermost rows and columns of pixels;

with ``interpolation`` (PIL's filters), then ``(pixel / 255 - mean) / std`` per channel, channels
first. The outputs are described with their meaning, the class names and the calibration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..version import __version__

__all__ = ["PREPROCESS_FORMAT", "OUTPUT_MEANINGS", "preprocess_spec"]

#: version of the preprocess.json layout
PREPROCESS_FORMAT = 1

OUTPUT_MEANINGS: dict[str, str] = {
    "attributes": "(batch, num_attributes) the predicted attribute vector (predictor.predict_attributes)",
    "class_scores": "(batch, num_classes) attributes @ class_attributes.T, rows L2-normalised: the raw class scores",
    "calibrated_scores": "(batch, num_classes) softmax(class_scores) - gamma * seen (GZSL calibrated stacking): "
    "what zeromamba classify ranks by",
    "logits": "(batch, num_classes) the classifier's logits",
}

_RESIZE = {
    "squash": "resize the whole image to (floor(height / crop_pct), floor(width / crop_pct)) ignoring its aspect "
    "ratio, then take the centre height x width crop",
    "center": "resize the shorter side to floor(size / crop_pct) keeping the aspect ratio, then take the centre crop",
    "letterbox": "scale to fit the frame keeping the aspect ratio (scaled sizes rounded), centre it (offsets "
    "floored) on a frame filled with the per-channel median of the image's outermost rows and columns",
}


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
    """The content of ``preprocess.json`` for a complete predictor ``preprocess`` dict."""
    _, height, width = preprocess["input_size"]
    mode = preprocess["crop_mode"]
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
            "height": int(height),
            "width": int(width),
            "crop_mode": mode,
            "resize": _RESIZE[mode],
            "interpolation": preprocess["interpolation"],
            "crop_pct": float(preprocess["crop_pct"]),
            "fill": "border median" if mode == "letterbox" else None,
            "scale": 1.0 / 255.0,
            "mean": [float(v) for v in preprocess["mean"]],
            "std": [float(v) for v in preprocess["std"]],
            "formula": "(pixel / 255 - mean) / std, per channel",
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
