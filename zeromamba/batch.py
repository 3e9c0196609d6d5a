"""Many images at once: decoding them in batches, in DataLoader worker processes when asked, with
unreadable images reported rather than fatal. :meth:`~zeromamba.predictor.Predictor.classify_iter`
runs the model on what :func:`iter_batches` yields.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader, Dataset

from .errors import ImageError
from .images import PreparedImage, prepare_image

__all__ = ["DecodedItem", "iter_batches"]


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
