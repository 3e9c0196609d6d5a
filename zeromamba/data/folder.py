"""A plain format for your own attribute-labelled data.

::

    images/                 one folder per class, named as in the CSV
        zebra/ *.jpg
        horse/ *.png
    attributes.csv          header: class,<attribute 1>,<attribute 2>,...; one row per class
    unseen.txt              the unseen class names, one per line (lines starting with '#' are comments)

Seen-class images are divided (per class, with a fixed seed) into ``trainval`` and ``test_seen``;
every image of an unseen class is ``test_unseen``. For model selection a fraction of the seen
classes becomes the ``val`` classes (all their images) and the rest ``train``, mirroring xlsa17.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..classes import read_attribute_table, read_names
from ..errors import DataError
from .dataset import ZSLData

__all__ = ["IMAGE_EXTENSIONS", "load_folder"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def load_folder(
    image_root: str | os.PathLike,
    attributes_csv: str | os.PathLike,
    unseen: str | os.PathLike | Sequence[str],
    test_seen_fraction: float = 0.2,
    val_class_fraction: float = 0.2,
    seed: int = 0,
    normalize_attributes: bool = True,
    name: str | None = None,
) -> ZSLData:
    """Load the own-data format (module docstring).

    Args:
        image_root: folder with one sub-folder of images per class.
        attributes_csv: the class-attribute CSV.
        unseen: a file listing the unseen classes (:func:`~zeromamba.classes.read_names`), or the list itself.
        test_seen_fraction: share of each seen class's images held out as ``test_seen``.
        val_class_fraction: share of the seen classes used as validation-unseen classes.
        seed: seed of both random divisions (fixed, so every run sees the same splits).
        normalize_attributes: L2-normalise each class's attribute row.

    Raises:
        DataError: a missing folder, a class without images, an unknown unseen class, folders that
            are not in the CSV; :class:`~zeromamba.errors.AttributeMatrixError` (a ``DataError``) for
            a missing or malformed CSV or unseen list.
    """
    root = os.fspath(image_root)
    csv_path = os.fspath(attributes_csv)
    if not os.path.isdir(root):
        raise DataError(f"image folder not found: {root!r}")
    table = read_attribute_table(csv_path, require_header=True)
    class_names, attr_names, att = table.class_names, table.attribute_names, table.values
    unseen_ids = _unseen_ids(unseen, class_names, csv_path)
    paths, labels = _class_images(root, class_names, csv_path)
    splits = _splits(labels, len(class_names), unseen_ids, test_seen_fraction, val_class_fraction, seed)
    cls_att = torch.from_numpy(att.astype(np.float32))
    if normalize_attributes:
        if torch.any(cls_att.norm(dim=1) == 0):
            raise DataError(f"{csv_path!r}: a class has all-zero attributes, which cannot be normalised")
        cls_att = F.normalize(cls_att, dim=1)
    return ZSLData(
        name=name or os.path.basename(os.path.normpath(root)),
        image_paths=paths,
        labels=labels,
        class_names=class_names,
        class_attributes=cls_att,
        splits=splits,
        attribute_names=attr_names,
        source=csv_path,
    )


def _unseen_ids(unseen: str | os.PathLike | Sequence[str], class_names: list[str], csv_path: str) -> np.ndarray:
    """The sorted class indices of the unseen classes, checked against the CSV's classes."""
    unseen_names = read_names(unseen, "unseen classes")
    unseen_src = repr(os.fspath(unseen)) if isinstance(unseen, (str, os.PathLike)) else "the unseen list"
    unknown = [u for u in unseen_names if u not in class_names]
    if unknown:
        raise DataError(f"{unseen_src}: unseen classes not in {csv_path!r}: {', '.join(unknown[:5])}")
    if not unseen_names:
        raise DataError(f"{unseen_src} names no unseen class")
    if len(set(unseen_names)) == len(class_names):
        raise DataError(f"{unseen_src}: every class is unseen; some classes must be seen to train on")
    return np.asarray(sorted(class_names.index(u) for u in set(unseen_names)))


def _class_images(root: str, class_names: list[str], csv_path: str) -> tuple[list[str], np.ndarray]:
    """Every image of every class folder (sorted by name) and its class index."""
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    extra = [d for d in folders if d not in class_names]
    if extra:
        raise DataError(f"{root!r} has class folders that are not rows of {csv_path!r}: {', '.join(extra[:5])}")
    paths: list[str] = []
    labels: list[int] = []
    empty = []
    for c, cname in enumerate(class_names):
        d = os.path.join(root, cname)
        files = sorted(f for f in os.listdir(d) if f.lower().endswith(IMAGE_EXTENSIONS)) if os.path.isdir(d) else []
        if not files:
            empty.append(d)
        paths += [os.path.join(d, f) for f in files]
        labels += [c] * len(files)
    if empty:
        raise DataError(
            f"{len(empty)} classes of {csv_path!r} have no images: " + ", ".join(repr(e) for e in empty[:5])
        )
    return paths, np.asarray(labels, dtype=np.int64)


def _splits(
    labels: np.ndarray,
    num_classes: int,
    unseen_ids: np.ndarray,
    test_seen_fraction: float,
    val_class_fraction: float,
    seed: int,
) -> dict[str, np.ndarray]:
    """The xlsa17-like splits (module docstring), drawn with ``seed``."""
    seen_ids = np.setdiff1d(np.arange(num_classes), unseen_ids)
    rng = np.random.default_rng(seed)
    trainval: list[np.ndarray] = []
    test_seen: list[np.ndarray] = []
    for c in seen_ids:
        idx = rng.permutation(np.flatnonzero(labels == c))
        n = int(round(len(idx) * test_seen_fraction)) if len(idx) >= 2 else 0
        n = min(max(n, 1 if len(idx) >= 2 and test_seen_fraction > 0 else 0), len(idx) - 1)
        test_seen.append(idx[:n])
        trainval.append(idx[n:])
    n_val = min(max(int(round(len(seen_ids) * val_class_fraction)), 1), len(seen_ids) - 1)
    val_ids = np.sort(rng.permutation(seen_ids)[:n_val]) if n_val > 0 else np.zeros(0, np.int64)
    seen_imgs = np.flatnonzero(np.isin(labels, seen_ids))
    return {
        "trainval": np.sort(np.concatenate(trainval)),
        "test_seen": np.sort(np.concatenate(test_seen)),
        "test_unseen": np.flatnonzero(np.isin(labels, unseen_ids)),
        "train": seen_imgs[~np.isin(labels[seen_imgs], val_ids)],
        "val": seen_imgs[np.isin(labels[seen_imgs], val_ids)],
    }
