"""A plain format for your own attribute-labelled data.

::

    images/                 one folder per class, named as in the CSV
        zebra/ *.jpg
        horse/ *.png
    attributes.csv          header: class,<attribute 1>,<attribute 2>,...; one row per class
    unseen.txt              the unseen class names, one per line ('#' starts a comment)

Seen-class images are divided (per class, with a fixed seed) into ``trainval`` and ``test_seen``;
every image of an unseen class is ``test_unseen``. For model selection a fraction of the seen
classes becomes the ``val`` classes (all their images) and the rest ``train``, mirroring xlsa17.
"""

from __future__ import annotations

import csv
import os

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .dataset import ZSLData

__all__ = ["IMAGE_EXTENSIONS", "load_folder", "read_class_attributes_csv", "read_class_list"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif", ".tif", ".tiff")


def read_class_attributes_csv(path: str | os.PathLike) -> tuple[list[str], list[str], np.ndarray]:
    """Read ``class,<attr>,...`` -> ``(class_names, attribute_names, (C, A) matrix)``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"class-attribute CSV not found: {path!r}")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"cannot read {path!r}: {e}") from None
    if len(rows) < 2 or len(rows[0]) < 2:
        raise DataError(f"{path!r}: need a header 'class,<attribute>,...' and at least one class row")
    header = [c.strip() for c in rows[0]]
    attr_names = header[1:]
    names: list[str] = []
    values = []
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise DataError(f"{path!r} line {line}: {len(row)} fields, the header has {len(header)}")
        try:
            values.append([float(v) for v in row[1:]])
        except ValueError as e:
            raise DataError(f"{path!r} line {line}: {e}") from None
        names.append(row[0].strip())
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"{path!r}: duplicate class rows: {', '.join(dup[:5])}")
    mat = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(mat)):
        raise DataError(f"{path!r}: attribute values contain NaN or inf")
    return names, attr_names, mat


def read_class_list(path: str | os.PathLike) -> list[str]:
    """Class names, one per line (commas also separate; '#' starts a comment)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"class list not found: {path!r}")
    out: list[str] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0]
            out += [c.strip() for c in line.split(",") if c.strip()]
    return out


def load_folder(
    image_root: str | os.PathLike,
    attributes_csv: str | os.PathLike,
    unseen: str | os.PathLike | list[str],
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
        unseen: a file listing the unseen classes, or the list itself.
        test_seen_fraction: share of each seen class's images held out as ``test_seen``.
        val_class_fraction: share of the seen classes used as validation-unseen classes.
        seed: seed of both random divisions (fixed, so every run sees the same splits).
        normalize_attributes: L2-normalise each class's attribute row.

    Raises:
        DataError: a missing folder or file, a class without images, an unknown unseen class,
            folders that are not in the CSV.
    """
    root = os.fspath(image_root)
    csv_path = os.fspath(attributes_csv)
    if not os.path.isdir(root):
        raise DataError(f"image folder not found: {root!r}")
    class_names, attr_names, att = read_class_attributes_csv(csv_path)
    unseen_names = unseen if isinstance(unseen, list) else read_class_list(unseen)
    unseen_src = "the unseen list" if isinstance(unseen, list) else repr(os.fspath(unseen))
    unknown = [u for u in unseen_names if u not in class_names]
    if unknown:
        raise DataError(f"{unseen_src}: unseen classes not in {csv_path!r}: {', '.join(unknown[:5])}")
    if not unseen_names:
        raise DataError(f"{unseen_src} names no unseen class")
    if len(set(unseen_names)) == len(class_names):
        raise DataError(f"{unseen_src}: every class is unseen; some classes must be seen to train on")
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
    labels_arr = np.asarray(labels, dtype=np.int64)
    unseen_ids = np.asarray(sorted(class_names.index(u) for u in set(unseen_names)))
    seen_ids = np.setdiff1d(np.arange(len(class_names)), unseen_ids)
    rng = np.random.default_rng(seed)
    trainval: list[np.ndarray] = []
    test_seen: list[np.ndarray] = []
    for c in seen_ids:
        idx = rng.permutation(np.flatnonzero(labels_arr == c))
        n = int(round(len(idx) * test_seen_fraction)) if len(idx) >= 2 else 0
        n = min(max(n, 1 if len(idx) >= 2 and test_seen_fraction > 0 else 0), len(idx) - 1)
        test_seen.append(idx[:n])
        trainval.append(idx[n:])
    n_val = min(max(int(round(len(seen_ids) * val_class_fraction)), 1), len(seen_ids) - 1)
    val_ids = np.sort(rng.permutation(seen_ids)[:n_val]) if n_val > 0 else np.zeros(0, np.int64)
    seen_imgs = np.flatnonzero(np.isin(labels_arr, seen_ids))
    splits = {
        "trainval": np.sort(np.concatenate(trainval)),
        "test_seen": np.sort(np.concatenate(test_seen)),
        "test_unseen": np.flatnonzero(np.isin(labels_arr, unseen_ids)),
        "train": seen_imgs[~np.isin(labels_arr[seen_imgs], val_ids)],
        "val": seen_imgs[np.isin(labels_arr[seen_imgs], val_ids)],
    }
    cls_att = torch.from_numpy(att.astype(np.float32))
    if normalize_attributes:
        if torch.any(cls_att.norm(dim=1) == 0):
            raise DataError(f"{csv_path!r}: a class has all-zero attributes, which cannot be normalised")
        cls_att = F.normalize(cls_att, dim=1)
    return ZSLData(
        name=name or os.path.basename(os.path.normpath(root)),
        image_paths=paths,
        labels=labels_arr,
        class_names=class_names,
        class_attributes=cls_att,
        splits=splits,
        attribute_names=attr_names,
        source=csv_path,
    )
