"""A model's preprocessing settings: what the keys of a ``preprocess`` dict mean, their defaults
(the authors' 448 x 448 resize), their validation, and the settings a model carries in its
``pretrained_cfg``. :mod:`zeromamba.images` applies them to an image."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from PIL import Image

from .constants import ZSL_PREPROCESS
from .errors import ConfigError

__all__ = ["CROP_MODES", "DEFAULT_PREPROCESS", "INTERPOLATIONS", "model_preprocess", "resolve_preprocess"]

#: The authors' evaluation preprocessing: a plain 448 x 448 resize (no crop), ImageNet mean/std; no
#: object framing (``object_extent``, see :func:`resolve_preprocess`).
DEFAULT_PREPROCESS: dict[str, Any] = {**ZSL_PREPROCESS, "object_extent": None}

#: the resampling filters by their timm names
INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
#: timm's crop modes, and zeromamba's letterbox
CROP_MODES = ("squash", "center", "border", "letterbox")


def resolve_preprocess(
    preprocess: Mapping[str, Any] | None = None, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Complete and validate a preprocessing dict: the keys of ``preprocess`` over those of ``base``
    (e.g. a model's own, :func:`model_preprocess`) over :data:`DEFAULT_PREPROCESS`.

    Keys: ``input_size`` ``(3, H, W)`` (an int or ``(H, W)`` is accepted), ``mean`` and ``std``
    (three floats), ``interpolation`` (``bilinear``, ``bicubic``, ``nearest``, ``lanczos``, ``box``,
    ``hamming``), ``crop_pct`` (in (0, 1]) and ``crop_mode``, timm's names and meanings:
    ``squash`` resizes the whole image to ``size / crop_pct`` ignoring its aspect ratio, then takes
    the centre ``H x W`` (the authors' plain resize at ``crop_pct`` 1); ``center`` resizes the
    shorter side to ``size / crop_pct`` and takes the centre crop; ``border`` fits the whole image
    into ``size / crop_pct`` keeping its aspect ratio and pads it to ``H x W`` with
    ``round(255 * mean)`` (0 after normalisation), then takes the centre crop. These three are
    exactly what ``timm.data.create_transform`` builds from the same values. ``letterbox`` is
    ``border`` padded with the image's border colour instead (zeromamba's own; timm has no such
    mode; :mod:`zeromamba.letterbox`). ``object_extent`` ``(smallest, target)`` (or ``None``, the
    default; an explicit ``None`` switches a model's framing off): before all that, a lone object
    on a plain background smaller than ``smallest`` (half its bounding box's longer side over the
    image's longer side) is framed so that it has ``target`` (:func:`zeromamba.framing.frame_object`);
    for models trained on objects of a known size, such as the shipped ``shapes-zsl``. timm's
    transforms have no such step.

    Raises:
        ConfigError: an unknown key or a value out of range.
    """
    cfg = dict(DEFAULT_PREPROCESS)
    for layer in (base, preprocess):
        if layer:
            # other keys (a timm pretrained_cfg carries url, num_classes, ...) are ignored
            cfg.update({k: v for k, v in layer.items() if k in DEFAULT_PREPROCESS and v is not None})
            if "object_extent" in layer:
                cfg["object_extent"] = layer["object_extent"]
    size = cfg["input_size"]
    if isinstance(size, int):
        size = (3, size, size)
    size = tuple(int(s) for s in size)
    if len(size) == 2:
        size = (3, *size)
    if len(size) != 3 or size[0] != 3 or min(size) < 1:
        raise ConfigError(f"preprocess input_size must be (3, H, W) with positive H and W, got {cfg['input_size']!r}")
    cfg["input_size"] = size
    for key in ("mean", "std"):
        try:
            values = tuple(float(v) for v in cfg[key])
        except (TypeError, ValueError):
            raise ConfigError(f"preprocess {key} must be three numbers, got {cfg[key]!r}") from None
        if len(values) != 3 or not all(math.isfinite(v) for v in values):
            raise ConfigError(f"preprocess {key} must be three finite numbers, got {cfg[key]!r}")
        cfg[key] = values
    if any(s <= 0 for s in cfg["std"]):
        raise ConfigError(f"preprocess std must be positive, got {cfg['std']!r}")
    interp = str(cfg["interpolation"]).lower()
    if interp not in INTERPOLATIONS:
        raise ConfigError(
            f"preprocess interpolation {interp!r} is not supported; use one of {', '.join(INTERPOLATIONS)}"
        )
    cfg["interpolation"] = interp
    crop_pct = float(cfg["crop_pct"])
    if not 0.0 < crop_pct <= 1.0:
        raise ConfigError(f"preprocess crop_pct must be in (0, 1], got {cfg['crop_pct']!r}")
    cfg["crop_pct"] = crop_pct
    mode = str(cfg["crop_mode"]).lower()
    if mode not in CROP_MODES:
        raise ConfigError(f"preprocess crop_mode {mode!r} is not supported; use one of {', '.join(CROP_MODES)}")
    cfg["crop_mode"] = mode
    extent = cfg["object_extent"]
    if extent is not None:
        try:
            smallest, target = (float(v) for v in extent)
        except (TypeError, ValueError):
            raise ConfigError(
                f"preprocess object_extent must be two numbers (smallest, target), got {extent!r}"
            ) from None
        if not 0.0 < smallest <= target < 0.5:
            raise ConfigError(f"preprocess object_extent needs 0 < smallest <= target < 0.5, got {extent!r}")
        cfg["object_extent"] = (smallest, target)
    return cfg


def model_preprocess(model: Any) -> dict[str, Any]:
    """A model's own preprocessing, complete (see :func:`resolve_preprocess`).

    A model built by timm or loaded by zeromamba carries it in ``model.pretrained_cfg``: read as
    ``timm.data.resolve_data_config(model=model)`` reads it (timm's defaults for what it leaves out),
    plus zeromamba's ``object_extent`` (:mod:`zeromamba.framing`). A model without one (built
    directly, or read from the authors' ``.pth``) gets :data:`DEFAULT_PREPROCESS`, the authors'
    448 x 448 resize.
    """
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, Mapping) or not cfg.get("input_size"):
        return resolve_preprocess()
    from timm.data import resolve_data_config

    own = dict(resolve_data_config({}, pretrained_cfg=dict(cfg)))
    own["object_extent"] = cfg.get("object_extent")
    return resolve_preprocess(own)
