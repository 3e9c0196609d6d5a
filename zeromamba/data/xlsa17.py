"""The xlsa17 "proposed splits" format (Xian et al.) for CUB, SUN, AWA2 and FLO.

Per dataset, a folder with ``res101.mat`` (``image_files``: N x 1 cell of the original absolute
paths, ``labels``: N x 1, 1-based) and ``att_splits.mat`` (``att``: A x C, ``trainval_loc``,
``test_seen_loc``, ``test_unseen_loc``, ``train_loc``, ``val_loc``: 1-based indices into res101,
``allclasses_names``). The original paths point at the authors' machines; each is re-rooted onto a
local image folder (see :func:`reroot_paths`). The ResNet features in ``res101.mat`` are not read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import DataError
from .dataset import ZSLData, check_images
from .matlab import cell_strings, load_mat

__all__ = ["XLSA17_DATASETS", "load_xlsa17", "reroot_paths", "find_mat_folder"]

# name -> (attributes, classes, seen, unseen) as in xlsa17; used to catch a wrong folder early
XLSA17_DATASETS: dict[str, tuple[int, int, int, int]] = {
    "CUB": (312, 200, 150, 50),
    "SUN": (102, 717, 645, 72),
    "AWA2": (85, 50, 40, 10),
    "FLO": (1024, 102, 82, 20),
}

PathRule = int | str | Callable[[str], str] | None
_WHAT = "xlsa17 file"  # how .mat errors name the files
_SPLITS = ("trainval_loc", "test_seen_loc", "test_unseen_loc")
_SELECTION_SPLITS = ("train_loc", "val_loc")  # optional: only validation-based selection needs them


def find_mat_folder(data_root: str | os.PathLike, dataset: str) -> str:
    """The folder holding ``res101.mat``: ``data_root`` itself or ``data_root/<dataset>``."""
    root = os.fspath(data_root)
    for cand in (root, os.path.join(root, dataset), os.path.join(root, "data", dataset)):
        if os.path.isfile(os.path.join(cand, "res101.mat")):
            return cand
    raise DataError(
        f"res101.mat not found for {dataset}: looked in {root!r}, {os.path.join(root, dataset)!r} "
        f"and {os.path.join(root, 'data', dataset)!r}. Point data_root at the xlsa17 'data' folder."
    )


def _indices(mat: dict[str, Any], key: str, n: int, path: str) -> np.ndarray:
    raw = np.asarray(mat[key]).reshape(-1)
    if raw.size and (not np.all(np.isfinite(raw.astype(np.float64))) or np.any(raw != np.round(raw))):
        raise DataError(f"{path!r}: '{key}' holds non-integer indices")
    idx = raw.astype(np.int64) - 1  # MATLAB indices are 1-based
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DataError(
            f"{path!r}: '{key}' has indices outside 1..{n} (res101.mat lists {n} images; "
            f"found {idx.min() + 1}..{idx.max() + 1}). Are the two .mat files from the same dataset?"
        )
    return idx


def _parts(path: str) -> list[str]:
    # split like the authors' loader (on '/', empty parts kept), so strip_components counts the same
    return path.replace("\\", "/").split("/")


def reroot_paths(
    original: Sequence[str],
    image_root: str | os.PathLike,
    rule: PathRule = None,
    source: str = "res101.mat",
) -> list[str]:
    """Map the original absolute image paths onto ``image_root``.

    Args:
        original: the paths as stored in ``res101.mat``.
        image_root: the local folder that holds the images.
        rule: how to cut each path:

            * ``None`` (default): find, by looking at the disk, how many leading parts to drop so
              that the rest exists under ``image_root`` (the first few paths decide, the longest
              remainder wins). This locates the dataset's own folder whatever the prefix was.
            * ``int`` k: drop the first k '/'-separated parts, counted like the authors' loader
              (``path.split('/')[k:]``; they use 6 for CUB, 5 for AWA2, 7 for SUN).
            * ``str``: a regular expression searched in each path; the local relative path is its
              first group if it has one, else what follows the match.
            * callable: ``f(original_path) -> path`` (relative paths are joined to ``image_root``).
        source: the file named in error messages.

    Raises:
        DataError: no rule makes the first image resolve, or a regex that does not match.
    """
    root = os.fspath(image_root)
    if not os.path.isdir(root):
        raise DataError(f"image folder not found: {root!r}")
    if callable(rule):
        return [os.path.join(root, rule(p)) for p in original]
    if isinstance(rule, str):
        pattern = re.compile(rule)
        out = []
        for p in original:
            m = pattern.search(p)
            if m is None:
                raise DataError(f"path_regex {rule!r} does not match {p!r} (from {source})")
            rel = m.group(1) if pattern.groups else p[m.end() :]
            out.append(os.path.join(root, *[s for s in _parts(rel) if s]))
        return out
    if rule is None:
        rule = _probe_strip(original, root, source)
    if not isinstance(rule, int) or isinstance(rule, bool) or rule < 0:
        raise DataError(f"strip_components must be a non-negative int, got {rule!r}")
    return [os.path.join(root, *[s for s in _parts(p)[rule:] if s]) for p in original]


def _probe_strip(original: Sequence[str], root: str, source: str) -> int:
    if not original:
        raise DataError(f"{source} lists no images")
    n = len(original)
    samples = [original[i] for i in sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1})]
    votes: dict[int, int] = {}
    for p in samples:
        parts = _parts(p)
        for k in range(len(parts)):
            rest = [s for s in parts[k:] if s]
            if rest and os.path.isfile(os.path.join(root, *rest)):
                votes[k] = votes.get(k, 0) + 1
                break  # the longest remainder that exists
    if not votes:
        tail = "/".join([s for s in _parts(original[0]) if s][-3:])
        raise DataError(
            f"cannot locate the images of {source} under {root!r}: no trailing part of {original[0]!r} exists "
            f"there (e.g. {os.path.join(root, tail)!r}). Point image_root at the folder that contains the "
            "dataset's image folder, or give strip_components / path_regex."
        )
    return max(votes, key=lambda k: (votes[k], -k))


def load_xlsa17(
    data_root: str | os.PathLike,
    image_root: str | os.PathLike,
    dataset: str,
    path_rule: PathRule = None,
    normalize_attributes: bool = True,
    check: bool = True,
) -> ZSLData:
    """Load one xlsa17 dataset.

    Args:
        data_root: the xlsa17 ``data`` folder (holding ``CUB/``, ``SUN/``...) or the dataset's own
            folder with ``res101.mat`` and ``att_splits.mat``.
        image_root: the local image folder of this dataset (see :func:`reroot_paths`).
        dataset: ``CUB``, ``SUN``, ``AWA2``, ``FLO`` (other names are accepted without the size check).
        path_rule: how to re-root the image paths (:func:`reroot_paths`'s ``rule``).
        normalize_attributes: L2-normalise each class's attribute row (xlsa17's ``att`` already is).
        check: verify that every image exists (a missing image raises, naming the first few).

    Raises:
        DataError: missing or unreadable files, shapes that do not agree, indices out of range,
            images that cannot be found.
    """
    name = dataset.upper()
    folder = find_mat_folder(data_root, name)
    res_path = os.path.join(folder, "res101.mat")
    att_path = os.path.join(folder, "att_splits.mat")
    res = load_mat(res_path, ["image_files", "labels"], what=_WHAT)
    att_mat = load_mat(att_path, ["att", *_SPLITS], [*_SELECTION_SPLITS, "allclasses_names"], what=_WHAT)

    files, labels, att = _images_and_attributes(res, att_mat, res_path, att_path, name)
    splits = _splits(att_mat, labels, len(files), att_path)
    class_names = _class_names(att_mat, att_path, att.shape[1])
    paths = reroot_paths(files, image_root, path_rule, source=res_path)
    if check:
        used = np.unique(np.concatenate(list(splits.values())))
        check_images([paths[i] for i in used], res_path)
    cls_att = torch.from_numpy(att.T.astype(np.float32))
    if normalize_attributes:
        cls_att = F.normalize(cls_att, dim=1)
    return ZSLData(
        name=name,
        image_paths=paths,
        labels=labels,
        class_names=class_names,
        class_attributes=cls_att,
        splits=splits,
        attribute_names=None,
        source=att_path,
    )


def _images_and_attributes(
    res: dict[str, Any], att_mat: dict[str, Any], res_path: str, att_path: str, name: str
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The original image paths, 0-based labels and the ``A x C`` matrix, checked against each other."""
    files = cell_strings(res["image_files"], res_path, "image_files")
    labels_raw = np.asarray(res["labels"]).reshape(-1)
    if len(labels_raw) != len(files):
        raise DataError(f"{res_path!r}: {len(files)} image_files but {len(labels_raw)} labels")
    att = np.asarray(att_mat["att"], dtype=np.float64)
    if att.ndim != 2 or att.size == 0:
        raise DataError(f"{att_path!r}: 'att' must be a 2-D A x C matrix, got shape {att.shape}")
    if not np.all(np.isfinite(att)):
        raise DataError(f"{att_path!r}: 'att' contains NaN or inf")
    num_attr, num_classes = att.shape
    labels = labels_raw.astype(np.int64) - 1
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataError(
            f"{res_path!r}: labels range {labels.min() + 1}..{labels.max() + 1} but {att_path!r} has "
            f"{num_classes} classes (att is {num_attr} x {num_classes}); are the files from the same dataset?"
        )
    expected = XLSA17_DATASETS.get(name)
    if expected is not None and (num_attr, num_classes) != expected[:2]:
        raise DataError(
            f"{att_path!r}: att is {num_attr} x {num_classes}, but {name} has {expected[0]} attributes x "
            f"{expected[1]} classes in xlsa17 (wrong folder, or att transposed?)"
        )
    return files, labels, att


def _splits(att_mat: dict[str, Any], labels: np.ndarray, n: int, att_path: str) -> dict[str, np.ndarray]:
    """Split name (``trainval``, ``test_seen``, ``test_unseen``, and ``train``/``val`` when present)
    -> 0-based image indices."""
    keys = [*_SPLITS, *(k for k in _SELECTION_SPLITS if k in att_mat)]
    splits = {k.replace("_loc", ""): _indices(att_mat, k, n, att_path) for k in keys}
    seen = np.unique(labels[splits["trainval"]])
    unseen = np.unique(labels[splits["test_unseen"]])
    if np.intersect1d(seen, unseen).size:
        raise DataError(f"{att_path!r}: trainval and test_unseen share classes")
    return splits


def _class_names(att_mat: dict[str, Any], att_path: str, num_classes: int) -> list[str]:
    if "allclasses_names" not in att_mat:
        return [f"class_{i}" for i in range(num_classes)]
    names = cell_strings(att_mat["allclasses_names"], att_path, "allclasses_names")
    if len(names) != num_classes:
        raise DataError(f"{att_path!r}: {len(names)} allclasses_names but att has {num_classes} classes")
    return names
