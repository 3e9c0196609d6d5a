"""Where an attribute's evidence is in an image: three ways to make a map per attribute.

* ``attention``: the SLP's own attention over the feature map (the paper's view). It shows where
  the SLP branch pooled features from, which need not be where the evidence is: the fused
  prediction also reads the global branch, and a softmax over positions can put its weight on
  background cells whose features happen to carry the information.
* ``gradient``: gradient x activation on the last feature map: for every feature cell, the
  first-order change of the attribute's (fused) predicted value if that cell's features were
  removed, ``sum_c dvalue/dF_c * F_c``. One backward pass through the heads only.
* ``occlusion``: two passes over the same windows (an eighth of the frame wide, moved a sixteenth
  at a time: 15 x 15 = 225 windows). *Hide*: paint the window in the image's median colour and
  take how much the attribute's value drops. *Keep the colour*: take the image in greyscale with
  only the window in colour, and how much the value rises over the all-grey image. Each pixel gets,
  of the two, the larger average over the windows that cover it. Hiding alone misses evidence that
  is spread over a region, where any part of it suffices (an object's colour: hiding an eighth of
  the object changes nothing); keeping the colour of one window alone finds that, and adds nothing
  to the maps of what the grey image still shows (shape, texture). It measures what the model's
  output depends on; it costs two forward passes per window. (Hiding alone pointed at the object
  for the colour in 67% of images of the shipped model, both 100%; windows a quarter of the frame
  wide hid too little of an object's colour.)

Maps are returned over the model's input frame; :func:`maps_on_image` places them on the original
image (the region the preprocessing showed the model). :mod:`zeromamba.explanation_metrics`
measures how well they point at an object.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .constants import (
    DEFAULT_EXPLAIN_METHOD,
    EXPLAIN_METHODS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LARGE_INPUT_EXPLAIN_METHOD,
    OCCLUSION_DEFAULT_MAX_SIDE,
)
from .errors import ConfigError

__all__ = [
    "DEFAULT_EXPLAIN_METHOD",
    "EXPLAIN_METHODS",
    "OCCLUSION_STRIDES",
    "attribute_maps",
    "default_method",
    "maps_on_image",
    "resolve_method",
]


#: occlusion cuts each side of the frame into this many strides; a window is two strides wide
OCCLUSION_STRIDES = 16
_LUMA = (0.299, 0.587, 0.114)


def default_method(input_size: Sequence[int] | None = None) -> str:
    """The method used when none is named, for a model whose input is ``(..., H, W)``:
    :data:`DEFAULT_EXPLAIN_METHOD` (occlusion) up to :data:`OCCLUSION_DEFAULT_MAX_SIDE` pixels a
    side (or when the size is not known), :data:`LARGE_INPUT_EXPLAIN_METHOD` (attention) above,
    where occlusion's forward passes would cost minutes per image on a CPU."""
    if input_size is not None and max(int(v) for v in tuple(input_size)[-2:]) > OCCLUSION_DEFAULT_MAX_SIDE:
        return LARGE_INPUT_EXPLAIN_METHOD
    return DEFAULT_EXPLAIN_METHOD


def resolve_method(method: str | None, input_size: Sequence[int] | None = None) -> str:
    """``method`` checked (``None``: :func:`default_method` for a model input of ``input_size``).

    Raises:
        ConfigError: an unknown method.
    """
    if method is None:
        return default_method(input_size)
    name = str(method).lower()
    if name not in EXPLAIN_METHODS:
        raise ConfigError(f"unknown explanation method {method!r}; choose one of {', '.join(EXPLAIN_METHODS)}")
    return name


def _targets(attributes: torch.Tensor | Sequence[int], batch: int, device: torch.device) -> torch.Tensor:
    idx = torch.as_tensor(attributes, dtype=torch.long, device=device)
    if idx.ndim == 1:
        idx = idx[None].expand(batch, -1)
    if idx.ndim != 2 or idx.shape[0] != batch:
        raise ValueError(f"attributes must be (K,) or (B, K) indices for a batch of {batch}, got {tuple(idx.shape)}")
    return idx


@torch.no_grad()
def _attention(model: nn.Module, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    out = model(x)
    h, w = out.features.shape[-2:]
    att = out.attention.float().unflatten(-1, (h, w))  # (B, A, h, w)
    return torch.gather(att, 1, idx[:, :, None, None].expand(-1, -1, h, w))


def _gradient(model: nn.Module, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        features = model.forward_features(x).float()
    features.requires_grad_(True)
    maps = features.new_zeros(idx.shape[0], idx.shape[1], *features.shape[-2:])
    with torch.enable_grad():
        values = model.forward_head(features).attributes.float()
        for k in range(idx.shape[1]):
            target = values.gather(1, idx[:, k : k + 1]).sum()  # images are independent: one pass for the batch
            (grad,) = torch.autograd.grad(target, features, retain_graph=k + 1 < idx.shape[1])
            maps[:, k] = (grad * features).sum(1).detach()
    return maps


def _greyscale(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised images -> the same images in greyscale (Rec. 601 luma in all three channels), normalised."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    luma = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    grey = ((x * s + m) * luma).sum(1, keepdim=True)
    return (grey - m) / s


@torch.no_grad()
def _occlusion(
    model: nn.Module, x: torch.Tensor, idx: torch.Tensor, batch_size: int, mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    b, _, height, width = x.shape
    grey = _greyscale(x, mean, std)
    base = model(x).attributes.float().gather(1, idx)  # (B, K)
    base_grey = model(grey).attributes.float().gather(1, idx)
    # windows an eighth of the frame wide, a sixteenth apart: 15 x 15 windows at any input size
    step_h, step_w = max(1, height // OCCLUSION_STRIDES), max(1, width // OCCLUSION_STRIDES)
    win_h, win_w = 2 * step_h, 2 * step_w
    tops = list(range(0, height - win_h + 1, step_h))
    lefts = list(range(0, width - win_w + 1, step_w))
    windows = [(t, le) for t in tops for le in lefts]
    fill = x.flatten(2).median(dim=2).values[:, :, None, None]  # the image's median colour, per image
    hidden_maps = x.new_zeros(b, idx.shape[1], height, width, dtype=torch.float32)
    colour_maps = torch.zeros_like(hidden_maps)
    count = x.new_zeros(height, width, dtype=torch.float32)
    for t, le in windows:
        count[t : t + win_h, le : le + win_w] += 1
    per_pass = max(1, batch_size // (2 * b))
    for start in range(0, len(windows), per_pass):
        chunk = windows[start : start + per_pass]
        hidden = x.repeat(len(chunk), 1, 1, 1)  # (len(chunk) * B, 3, H, W), window-major
        coloured = grey.repeat(len(chunk), 1, 1, 1)
        for j, (t, le) in enumerate(chunk):
            hidden[j * b : (j + 1) * b, :, t : t + win_h, le : le + win_w] = fill
            coloured[j * b : (j + 1) * b, :, t : t + win_h, le : le + win_w] = x[:, :, t : t + win_h, le : le + win_w]
        values = model(torch.cat([hidden, coloured])).attributes.float().view(2, len(chunk), b, -1)
        for j, (t, le) in enumerate(chunk):
            drop = base - values[0, j].gather(1, idx)  # (B, K)
            rise = values[1, j].gather(1, idx) - base_grey
            hidden_maps[:, :, t : t + win_h, le : le + win_w] += drop[:, :, None, None]
            colour_maps[:, :, t : t + win_h, le : le + win_w] += rise[:, :, None, None]
    return torch.maximum(hidden_maps, colour_maps) / count


def attribute_maps(
    model: nn.Module,
    x: torch.Tensor,
    attributes: torch.Tensor | Sequence[int],
    method: str | None = None,
    batch_size: int = 64,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """One map per image and attribute over the model's input frame.

    Args:
        model: a :class:`~zeromamba.models.ZeroMamba` in eval mode.
        x: ``(B, 3, H, W)`` preprocessed images.
        attributes: attribute indices, ``(K,)`` for every image or ``(B, K)`` per image.
        method: ``occlusion``, ``gradient`` or ``attention`` (``None``: :func:`default_method` for ``x``'s size).
        batch_size: images per forward pass for ``occlusion``.
        mean, std: the normalisation ``x`` went through (``occlusion`` turns images grey).

    Returns:
        ``(B, K, h, w)`` float32 on ``x``'s device: the feature grid for ``attention`` (softmax
        weights, each map sums to 1) and ``gradient`` (signed), the input's pixels for
        ``occlusion`` (signed changes of the attribute's value). Larger means more evidence.
    """
    name = resolve_method(method, x.shape)
    idx = _targets(attributes, x.shape[0], x.device)
    if name == "attention":
        return _attention(model, x, idx)
    if name == "gradient":
        return _gradient(model, x, idx)
    return _occlusion(model, x, idx, batch_size, mean, std)


def maps_on_image(
    maps: torch.Tensor, box: Sequence[float], width: int, height: int, mode: str = "bilinear"
) -> torch.Tensor:
    """Place ``(K, h, w)`` maps over the model's input frame onto a ``width x height`` image.

    ``box`` is ``(left, top, right, bottom)``, the frame in the image's pixel coordinates (see
    :class:`zeromamba.images.PreparedImage`): the maps are resized to it and the part inside the
    image is kept; pixels the model did not see (outside a centre crop) are 0.
    """
    left, top, right, bottom = (float(v) for v in box)
    box_w, box_h = max(1, round(right - left)), max(1, round(bottom - top))
    ox, oy = round(left), round(top)
    grid = maps.float()[None]
    corners = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    region = F.interpolate(grid, size=(box_h, box_w), mode=mode, **corners)[0]
    out = maps.new_zeros(maps.shape[0], height, width, dtype=torch.float32)
    x0, y0 = max(0, ox), max(0, oy)
    x1, y1 = min(width, ox + box_w), min(height, oy + box_h)
    if x1 > x0 and y1 > y0:
        out[:, y0:y1, x0:x1] = region[:, y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out
