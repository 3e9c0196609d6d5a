"""Many images at once: finding them (folders, globs, URLs) and decoding them in batches, in
DataLoader worker processes when asked, with unreadable images reported rather than fatal.

:meth:`~zeromamba.predictor.Predictor.classify_iter` runs the model on what :func:`iter_batches`
yields; ``zeromamba classify`` expands its arguments with :func:`find_images`.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader, Dataset

from .errors import ImageError
from .fetch import is_url
from .images import PreparedImage, prepare_image

__all__ = ["IMAGE_EXTENSIONS", "DecodedItem", "find_images", "iter_batches"]

#: the file extensions a folder is searched for (case-insensitive)
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".jfif", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
)  # fmt: skip
_GLOB_CHARS = ("*", "?", "[")


def _folder_images(folder: str) -> list[str]:
    found = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, f) for f in sorted(files) if f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def find_images(inputs: Sequence[str | os.PathLike]) -> list[str]:
    """The image files and URLs that ``inputs`` name, in order: a file or URL as it is, a folder as
    the images inside it (recursively, by :data:`IMAGE_EXTENSIONS`, sorted; hidden folders
    skipped), a glob pattern (``photos/**/*.jpg``) as its matches, sorted. A file that does not
    exist is kept, to be reported as unreadable with the others.

    Raises:
        ImageError: a folder that does not exist or holds no image, a pattern matching nothing.
    """
    out: list[str] = []
    for item in inputs:
        name = os.fspath(item)
        if is_url(name):
            out.append(name)
        elif os.path.isdir(name):
            images = _folder_images(name)
            if not images:
                raise ImageError(f"no images in the folder {name} (looked for {', '.join(IMAGE_EXTENSIONS)})")
            out += images
        elif os.path.exists(name):
            out.append(name)
        elif any(c in name for c in _GLOB_CHARS):
            matches = sorted(p for p in glob.glob(name, recursive=True) if os.path.isfile(p))
            if not matches:
                raise ImageError(f"no file matches {name!r}")
            out += matches
        elif name.endswith(("/", os.sep)):
            raise ImageError(f"folder not found: {name} (from {os.getcwd()})")
        else:
            out.append(name)
    return out


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
