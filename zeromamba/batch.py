"""Many images at once: decoding them in batches, in DataLoader worker processes when asked, with
unreadable images reported rather than fatal (:func:`iter_batches`), and running a model over the
prepared images in batches of same-size inputs (:func:`run_model`), which is what
:meth:`~zeromamba.predictor.Predictor.classify_iter` does with what :func:`iter_batches` yields.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from .errors import ConfigError, ImageError
from .images import PreparedImage, prepare_image
from .models.zeromamba import ZeroMamba
from .runtime import inference_autocast, inference_input_dtype
from .scoring import require_finite

__all__ = ["DecodedItem", "check_batch_size", "iter_batches", "run_model"]


@dataclass
class DecodedItem:
    """One input after decoding: its position, the prepared images (several for a 4-D tensor),
    or why it could not be read."""

    index: int
    source: str
    prepared: list[PreparedImage]
    error: str | None = None


class _Images(Dataset):
    """Inputs -> :class:`DecodedItem` (an :class:`ImageError` becomes an item with ``error``)."""

    def __init__(self, sources: Sequence[Any], preprocess: Mapping[str, Any], max_pixels: int | None, keep: bool):
        self.sources, self.preprocess, self.max_pixels, self.keep = list(sources), dict(preprocess), max_pixels, keep

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> DecodedItem:
        src = self.sources[i]
        name = os.fspath(src) if isinstance(src, (str, os.PathLike)) else f"image {i}"
        try:
            prepared = prepare_image(src, self.preprocess, index=i, max_pixels=self.max_pixels, keep_image=self.keep)
        except ImageError as e:
            return DecodedItem(i, name, [], str(e))
        return DecodedItem(i, prepared[0].source if len(prepared) == 1 else name, prepared)


def _as_list(items: list[DecodedItem]) -> list[DecodedItem]:
    return items


def iter_batches(
    sources: Sequence[Any],
    preprocess: Mapping[str, Any],
    *,
    batch_size: int,
    num_workers: int = 0,
    max_pixels: int | None = None,
    keep_image: bool = False,
) -> Iterator[list[DecodedItem]]:
    """Decode and preprocess ``sources`` in order, ``batch_size`` inputs at a time; with
    ``num_workers > 0`` in that many DataLoader worker processes, decoding ahead of the model."""
    dataset = _Images(sources, preprocess, max_pixels, keep_image)
    if num_workers <= 0 or len(dataset) <= batch_size:
        for start in range(0, len(dataset), batch_size):
            yield [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        return
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=min(num_workers, -(-len(dataset) // batch_size)),
        collate_fn=_as_list,
        prefetch_factor=2,
    )
    yield from loader


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` as a whole number of at least 1, else a :class:`~zeromamba.errors.ConfigError`."""
    try:
        value = int(batch_size)
    except (TypeError, ValueError):
        raise ConfigError(f"batch_size must be a whole number, got {batch_size!r}") from None
    if value < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    return value


def run_model(
    model: nn.Module,
    prepared: list[PreparedImage],
    *,
    device: torch.device,
    dtype: torch.dtype,
    attention: bool,
    batch_size: int,
) -> dict[str, Any]:
    """Forward passes of ``model`` (in eval mode, on ``device``) over ``prepared`` in batches of at
    most ``batch_size`` consecutive same-size inputs; float32 CPU outputs: ``attributes`` (N, A) of a
    ZeroMamba (and ``attention``, one (A, h, w) map per image, when asked), or ``scores`` (N, C) of a
    plain classifier. ``dtype`` is the compute precision (float16 / bfloat16 with float32 weights
    run under autocast: :func:`~zeromamba.runtime.inference_autocast`).

    Raises:
        NonFiniteOutputError: an output holds NaN or infinity (it names the images).
    """
    is_zeromamba = isinstance(model, ZeroMamba)
    attrs, scores, maps = [], [], []
    autocast = torch.autocast(device.type, dtype=dtype, enabled=inference_autocast(dtype, device))
    i = 0
    with torch.inference_mode(), autocast:
        while i < len(prepared):
            shape = prepared[i].tensor.shape
            j = i
            while j < len(prepared) and j - i < batch_size and prepared[j].tensor.shape == shape:
                j += 1
            x = torch.stack([p.tensor for p in prepared[i:j]])
            out = model(x.to(device, inference_input_dtype(dtype), non_blocking=True))
            sources = [p.source for p in prepared[i:j]]
            if is_zeromamba:
                attrs.append(out.attributes.float().cpu())
                require_finite(attrs[-1], "attribute values", sources, dtype)
                if attention:
                    h, w = out.features.shape[-2:]
                    maps.extend(out.attention.float().cpu().unflatten(-1, (h, w)))
            else:
                logits = out if isinstance(out, torch.Tensor) else out[0]
                scores.append(logits.float().cpu())
                require_finite(scores[-1], "class scores", sources, dtype)
            i = j
    result: dict[str, Any] = {}
    if attrs:
        result["attributes"] = torch.cat(attrs)
    if scores:
        result["scores"] = torch.cat(scores)
    if attention:
        result["attention"] = maps
    return result
