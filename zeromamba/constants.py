"""Constants shared by every layer: normalisation statistics and the two preprocessing presets.

A leaf module: it imports nothing, so the models, the zoo, the saved format, the predictor and
the data pipeline all read the same values.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "DEFAULT_EXPLAIN_METHOD",
    "EXPLAIN_DEFAULT_RULE",
    "EXPLAIN_METHODS",
    "LARGE_INPUT_EXPLAIN_METHOD",
    "OCCLUSION_DEFAULT_MAX_SIDE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "IMAGENET_PREPROCESS",
    "PREPROCESS_KEYS",
    "ZSL_IMAGE_SIZE",
    "ZSL_PREPROCESS",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

#: the resolution the published ZeroMamba models are trained and evaluated at
ZSL_IMAGE_SIZE = 448

#: the keys of a preprocessing description (timm's ``pretrained_cfg`` names)
PREPROCESS_KEYS: tuple[str, ...] = ("input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std")

#: the authors' zero-shot preprocessing: a plain 448 x 448 resize (no crop), ImageNet mean/std
ZSL_PREPROCESS: dict[str, Any] = dict(
    input_size=(3, ZSL_IMAGE_SIZE, ZSL_IMAGE_SIZE),
    interpolation="bilinear",
    crop_pct=1.0,
    crop_mode="squash",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)

#: timm's ImageNet evaluation transform for the VMamba backbones (224, bicubic, centre crop 0.875)
IMAGENET_PREPROCESS: dict[str, Any] = dict(
    input_size=(3, 224, 224),
    interpolation="bicubic",
    crop_pct=0.875,
    crop_mode="center",
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
)

#: the explanation methods of ``explain(..., method=...)`` (:mod:`zeromamba.attribution`), in help-text order
EXPLAIN_METHODS: tuple[str, ...] = ("occlusion", "gradient", "attention")
#: the method used when none is named, for model inputs up to OCCLUSION_DEFAULT_MAX_SIDE pixels a side
#: (the one that points at the object best; see MODEL_CARD.md)
DEFAULT_EXPLAIN_METHOD = "occlusion"
#: ... and above that size: occlusion's 452 forward passes would take minutes per image on a CPU
#: (ZeroMamba-S at 448), the SLP attention (the paper's own view) comes with the one forward pass
LARGE_INPUT_EXPLAIN_METHOD = "attention"
OCCLUSION_DEFAULT_MAX_SIDE = 224
#: that rule in words, for help texts
EXPLAIN_DEFAULT_RULE = (
    f"{DEFAULT_EXPLAIN_METHOD} for model inputs up to {OCCLUSION_DEFAULT_MAX_SIDE} px a side, "
    f"{LARGE_INPUT_EXPLAIN_METHOD} above"
)
