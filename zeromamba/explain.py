"""Explanations: one map per attribute of where its evidence is, placed on the image, and a PIL-only
renderer that draws them as heat-map overlays in a titled grid.

The maps come from one of the methods of :mod:`zeromamba.attribution`: ``occlusion`` (the default:
how much hiding each part of the image lowers the attribute), ``gradient`` (gradient x activation
on the feature map) or ``attention`` (the SLP head's softmax over the positions of the backbone's
feature map, the paper's view). :meth:`zeromamba.Predictor.explain` picks the attributes that
matter for a prediction and returns an :class:`Explanation`; :meth:`Explanation.save_png` (or
:func:`render_explanation`) draws it.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

from .attribution import maps_on_image
from .terminal import terminal_safe

__all__ = ["COLORMAPS", "Explanation", "apply_colormap", "build_explanation", "pretty_name", "render_explanation"]

# Control points sampled from matplotlib's perceptually uniform maps (value, RGB 0..255);
# linear interpolation between 9 points stays within a few levels of the originals.
COLORMAPS: dict[str, tuple[tuple[int, int, int], ...]] = {
    "inferno": (
        (0, 0, 4),
        (31, 12, 72),
        (85, 15, 109),
        (136, 34, 106),
        (186, 54, 85),
        (227, 89, 51),
        (249, 140, 10),
        (249, 201, 50),
        (252, 255, 164),
    ),
    "viridis": (
        (68, 1, 84),
        (71, 45, 123),
        (59, 82, 139),
        (44, 114, 142),
        (33, 145, 140),
        (40, 174, 128),
        (94, 201, 98),
        (173, 220, 48),
        (253, 231, 37),
    ),
    "magma": (
        (0, 0, 4),
        (28, 16, 68),
        (79, 18, 123),
        (129, 37, 129),
        (181, 54, 122),
        (229, 80, 100),
        (251, 135, 97),
        (254, 194, 135),
        (252, 253, 191),
    ),
}


@lru_cache(maxsize=8)
def _lut(name: str) -> np.ndarray:
    """A 256 x 3 uint8 lookup table for a colormap."""
    if name not in COLORMAPS:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    points = np.asarray(COLORMAPS[name], dtype=np.float64)
    xs = np.linspace(0.0, 1.0, len(points))
    t = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(t, xs, points[:, c]) for c in range(3)], axis=1)
    return np.round(lut).astype(np.uint8)


def apply_colormap(values: np.ndarray, name: str = "inferno") -> np.ndarray:
    """Values in [0, 1] (any shape) -> uint8 RGB of shape ``values.shape + (3,)``."""
    idx = np.clip(np.round(np.nan_to_num(values) * 255.0), 0, 255).astype(np.uint8)
    return _lut(name)[idx]


def pretty_name(name: str) -> str:
    """Display form of a name: ``has_bill_shape::curved_(up_or_down)`` -> ``bill shape: curved (up or down)``,
    ``001.Black_footed_Albatross`` -> ``Black footed Albatross``; one line, control characters shown
    as escapes (:func:`~zeromamba.terminal.terminal_safe`)."""
    s = re.sub(r"^\d+\.(?=\D)", "", name).replace("::", ": ").replace("_", " ")
    for prefix in ("has ",):
        if s.startswith(prefix) and len(s) > len(prefix):
            s = s[len(prefix) :]
    return terminal_safe(" ".join(s.split()))


@dataclass
class Explanation:
    """Maps of where some attributes' evidence is, for one image.

    Attributes:
        image: the RGB image at its original size (EXIF orientation applied).
        maps: ``(K, H, W)`` float32, each attribute's map placed (bilinear) on the image; larger
            means more evidence. For ``attention`` the values are the attention mass per feature
            cell (each map of ``h x w`` cells sums to 1); ``occlusion`` and ``gradient`` maps are
            signed changes of the attribute's predicted value.
        attention: ``(K, h, w)`` the maps over the model's input frame, as the method made them
            (the feature grid for ``attention`` and ``gradient``, the input's pixels for ``occlusion``).
        attribute_indices, attribute_names: which attributes, in display order.
        attribute_values: the model's predicted value of each attribute.
        contributions: ``value * class attribute`` for the explained class (its score is the sum
            over all attributes), or ``None`` when no class is explained.
        class_info: ``{"index", "name", "score", "probability", "rank", "predicted"}`` of the
            explained class, or ``None``.
        source: the image's name.
        box: ``(left, top, right, bottom)``, the region of the image the model saw (``None``: all).
        method: how the maps were made (``occlusion``, ``gradient`` or ``attention``).
    """

    image: Image.Image
    maps: np.ndarray
    attention: np.ndarray
    attribute_indices: list[int]
    attribute_names: list[str]
    attribute_values: list[float]
    contributions: list[float] | None = None
    class_info: dict[str, Any] | None = None
    source: str = ""
    box: tuple[float, float, float, float] | None = None
    method: str = "attention"

    def __len__(self) -> int:
        return len(self.attribute_indices)

    def to_dict(self) -> dict[str, Any]:
        """Everything but the image and the full-size maps (``attention`` as nested lists)."""
        return {
            "source": self.source,
            "method": self.method,
            "image_size": list(self.image.size),
            "class": dict(self.class_info) if self.class_info else None,
            "attributes": [
                {
                    "index": i,
                    "name": n,
                    "value": v,
                    "contribution": self.contributions[k] if self.contributions is not None else None,
                    "attention": self.attention[k].tolist(),
                }
                for k, (i, n, v) in enumerate(zip(self.attribute_indices, self.attribute_names, self.attribute_values))
            ],
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def render(self, **kwargs: Any) -> Image.Image:
        """The figure as a PIL image (keyword arguments: see :func:`render_explanation`)."""
        return render_explanation(self, **kwargs)

    def save_png(self, path: str | os.PathLike, **kwargs: Any) -> Image.Image:
        """Render (see :func:`render_explanation`) and save as PNG; returns the rendered image."""
        figure = self.render(**kwargs)
        figure.save(os.fspath(path), format="PNG", optimize=True)
        return figure

    def __str__(self) -> str:
        safe = terminal_safe  # names from the model or the user: no control characters on the terminal
        lines = [f"{safe(self.source or 'image')}  {self.image.size[0]}x{self.image.size[1]}"]
        if self.class_info:
            c = self.class_info
            rank = f"rank {c['rank']}, p={c['probability']:.3f}; predicted: {safe(c['predicted'])}"
            lines.append(f"class {safe(c['name'])} ({rank})")
        for k, (n, v) in enumerate(zip(self.attribute_names, self.attribute_values)):
            extra = f"  contribution {self.contributions[k]:+.4f}" if self.contributions is not None else ""
            lines.append(f"  {safe(n)}: value {v:.4f}{extra}")
        return "\n".join(lines)


def build_explanation(
    *,
    image: Image.Image,
    attention: torch.Tensor,
    box: Sequence[float],
    attribute_indices: list[int],
    attribute_names: list[str],
    attribute_values: list[float],
    contributions: list[float] | None = None,
    class_info: dict[str, Any] | None = None,
    source: str = "",
    method: str = "attention",
) -> Explanation:
    """Place ``attention`` ``(K, h, w)`` (maps over the model's input frame) onto ``image``: the frame
    is the region ``box`` of the image (zero outside it for centre crops; past the image for letterbox)."""
    att = attention.float()
    maps = maps_on_image(att, box, *image.size)
    return Explanation(
        image=image,
        maps=maps.numpy().astype(np.float32, copy=False),
        attention=att.numpy().astype(np.float32, copy=False),
        attribute_indices=list(attribute_indices),
        attribute_names=list(attribute_names),
        attribute_values=[float(v) for v in attribute_values],
        contributions=[float(c) for c in contributions] if contributions is not None else None,
        class_info=class_info,
        source=source,
        box=tuple(float(v) for v in box),
        method=method,
    )


# --- rendering --------------------------------------------------------------------------------------

_BG = (255, 255, 255)
_TEXT = (30, 30, 36)
_MUTED = (110, 110, 120)


@lru_cache(maxsize=16)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu if installed (for bold), else Pillow's bundled scalable default, else its bitmap font."""
    names = ("DejaVuSans-Bold.ttf", "Arial Bold.ttf") if bold else ("DejaVuSans.ttf", "Arial.ttf")
    for name in names:
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: no scalable default font
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str, font: Any) -> float:
    return draw.textlength(text, font=font)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float) -> str:
    """Cut ``text`` with an ellipsis so it fits ``width`` pixels."""
    if _text_width(draw, text, font) <= width:
        return text
    while text and _text_width(draw, text + "…", font) > width:
        text = text[:-1]
    return text.rstrip() + "…"


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, width: float, lines: int) -> list[str]:
    """Word-wrap into at most ``lines`` lines of ``width`` pixels (the last one cut with an ellipsis)."""
    chars = max(8, int(width / max(1.0, _text_width(draw, "n", font))))
    wrapped = textwrap.wrap(text, width=chars) or [""]
    out = [_fit(draw, ln, font, width) for ln in wrapped[:lines]]
    if len(wrapped) > lines:
        out[-1] = _fit(draw, " ".join([wrapped[lines - 1], *wrapped[lines:]]), font, width)
    return out


def _overlay(base: Image.Image, heat: np.ndarray, colormap: str, alpha: float) -> Image.Image:
    """Blend a [0, 1] heat map over a dimmed image; weak attention stays see-through."""
    rgb = np.asarray(base, dtype=np.float32)
    # dim and desaturate the photo so the colours of the map read clearly
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    muted = 0.55 * (0.35 * rgb + 0.65 * grey[..., None]) + 20.0
    colour = apply_colormap(heat, colormap).astype(np.float32)
    a = (alpha * (0.25 + 0.75 * np.sqrt(np.clip(heat, 0.0, 1.0))))[..., None]
    out = muted * (1.0 - a) + colour * a
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), mode="RGB")


def _scaled(image: Image.Image, panel: int) -> Image.Image:
    w, h = image.size
    s = panel / max(w, h)
    return image.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.LANCZOS)


def _blur(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(K, H, W)`` maps (edges replicated)."""
    radius = int(min(3 * sigma, (min(maps.shape[-2:]) - 1) // 2))
    if sigma < 0.5 or radius < 1:
        return maps
    x = torch.arange(-radius, radius + 1, dtype=maps.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = maps[:, None]
    out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return out[:, 0]


def _panel_maps(explanation: Explanation, pw: int, ph: int) -> list[np.ndarray]:
    """The grids resized straight to the panel (bicubic: smoother than resizing the bilinear
    full-size maps), placed on the region the model saw. Only positive evidence is drawn."""
    if len(explanation) == 0:
        return []
    width, height = explanation.image.size
    left, top, right, bottom = explanation.box or (0.0, 0.0, float(width), float(height))
    sx, sy = pw / width, ph / height
    grid = torch.from_numpy(np.ascontiguousarray(explanation.attention, dtype=np.float32))
    panel = maps_on_image(grid, (left * sx, top * sy, right * sx, bottom * sy), pw, ph, mode="bicubic")
    # a light blur of about a third of a grid cell hides the grid's seams
    cells = (8, 8) if explanation.method == "occlusion" else grid.shape[-2:]  # occlusion: windows an eighth apart
    cell = min((right - left) * sx / cells[-1], (bottom - top) * sy / cells[-2])
    seen = maps_on_image(torch.ones(1, 1, 1), (left * sx, top * sy, right * sx, bottom * sy), pw, ph, mode="nearest")
    # bicubic overshoots below zero near peaks; negative (counter-)evidence is not drawn
    return list((_blur(panel, 0.35 * cell).clamp_min(0) * seen).numpy())


def render_explanation(
    explanation: Explanation,
    *,
    panel_size: int = 256,
    columns: int | None = None,
    colormap: str = "inferno",
    alpha: float = 0.75,
    normalize: str = "each",
    title: str | None = None,
) -> Image.Image:
    """Draw the image and one heat-map overlay per attribute in a grid with titles.

    Args:
        explanation: from :meth:`zeromamba.Predictor.explain`.
        panel_size: the longer side of each panel in pixels.
        columns: panels per row (default: up to 4, balanced).
        colormap: ``inferno``, ``magma`` or ``viridis``.
        alpha: opacity of the strongest attention.
        normalize: ``each`` scales every map to its own maximum; ``shared`` uses one scale for all,
            so maps can be compared.
        title: the figure title (default: the class and image name).
    """
    if normalize not in ("each", "shared"):
        raise ValueError(f"normalize must be 'each' or 'shared', got {normalize!r}")
    _lut(colormap)  # validate early
    panel_size = max(64, int(panel_size))
    base = _scaled(explanation.image, panel_size)
    pw, ph = base.size
    heat_small = _panel_maps(explanation, pw, ph)
    shared_max = max((float(h.max()) for h in heat_small), default=1.0)
    n = len(heat_small) + 1
    cols = columns or (n if n <= 4 else min(4, -(-n // -(-n // 4))))
    cols = max(1, min(cols, n))
    rows = -(-n // cols)

    scale = panel_size / 256.0
    f_title = _font(max(12, round(17 * scale)), bold=True)
    f_label = _font(max(10, round(13 * scale)), bold=True)
    f_small = _font(max(9, round(11 * scale)))
    pad = max(8, round(12 * scale))
    label_lines, line_h = 2, round(16 * scale) + 2
    label_h = label_lines * line_h + round(15 * scale) + 4
    header_h = round(30 * scale) + pad
    legend_h = round(30 * scale)
    cell_w, cell_h = pw + pad, ph + label_h + pad
    width = cols * cell_w + pad
    height = header_h + rows * cell_h + legend_h + pad
    fig = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(fig)

    info = explanation.class_info
    if title is None:
        if info:
            title = f"{pretty_name(info['name'])}  ·  p = {info['probability']:.2f}"
            if info.get("rank", 1) != 1:
                title += f"  (rank {info['rank']}; predicted {pretty_name(info['predicted'])})"
        else:
            title = "Attribute attention"
    draw.text((pad, pad), _fit(draw, title, f_title, width - 2 * pad), fill=_TEXT, font=f_title)
    source = terminal_safe(os.path.basename(explanation.source)) if explanation.source else ""  # one line
    if source:
        sw = _text_width(draw, source, f_small)
        tw = _text_width(draw, title, f_title)
        if pad + tw + 2 * pad + sw < width - pad:
            draw.text((width - pad - sw, pad + round(5 * scale)), source, fill=_MUTED, font=f_small)

    def cell_origin(k: int) -> tuple[int, int]:
        r, c = divmod(k, cols)
        return pad + c * cell_w, header_h + r * cell_h

    # panel 0: the image itself
    x, y = cell_origin(0)
    fig.paste(base, (x, y))
    draw.text((x, y + ph + 6), _fit(draw, "input", f_label, pw), fill=_TEXT, font=f_label)
    w0, h0 = explanation.image.size
    draw.text((x, y + ph + 6 + line_h), f"{w0} x {h0} px", fill=_MUTED, font=f_small)

    for k, heat in enumerate(heat_small):
        top = shared_max if normalize == "shared" else float(heat.max())
        low = 0.0 if normalize == "shared" else float(heat.min())
        norm = (heat - low) / (top - low) if top > low else np.zeros_like(heat)
        x, y = cell_origin(k + 1)
        fig.paste(_overlay(base, norm, colormap, alpha), (x, y))
        name = pretty_name(explanation.attribute_names[k])
        lines = _wrap(draw, name, f_label, pw, label_lines)
        for li, line in enumerate(lines):
            draw.text((x, y + ph + 6 + li * line_h), line, fill=_TEXT, font=f_label)
        detail = f"value {explanation.attribute_values[k]:.3f}"
        if explanation.contributions is not None:
            detail += f"  ·  contrib {explanation.contributions[k]:+.3f}"
        draw.text((x, y + ph + 6 + len(lines) * line_h), _fit(draw, detail, f_small, pw), fill=_MUTED, font=f_small)
        # rank badge in the corner of the panel
        badge = str(k + 1)
        bw = _text_width(draw, badge, f_small) + round(10 * scale)
        bh = round(18 * scale)
        draw.rounded_rectangle((x + 5, y + 5, x + 5 + bw, y + 5 + bh), radius=bh // 2, fill=(255, 255, 255))
        draw.text((x + 5 + round(5 * scale), y + 5 + round(2 * scale)), badge, fill=_TEXT, font=f_small)

    # legend: the colour scale
    lx, ly = pad, height - legend_h - pad // 2
    bar_w, bar_h = min(220 * scale, width - 2 * pad - 200 * scale), max(6, round(9 * scale))
    bar_w = int(max(60, bar_w))
    gradient = apply_colormap(np.tile(np.linspace(0, 1, bar_w, dtype=np.float32), (bar_h, 1)), colormap)
    text_y = ly + (bar_h - round(11 * scale)) // 2 - 1
    low = f"{'attention' if explanation.method == 'attention' else explanation.method}  low"
    draw.text((lx, text_y), low, fill=_MUTED, font=f_small)
    gx = lx + int(_text_width(draw, low, f_small)) + 6
    fig.paste(Image.fromarray(gradient, mode="RGB"), (gx, ly))
    scale_note = "high (each map scaled to its max)" if normalize == "each" else "high (one scale for all maps)"
    draw.text((gx + bar_w + 6, text_y), scale_note, fill=_MUTED, font=f_small)
    return fig
