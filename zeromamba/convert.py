"""Converting the authors' checkpoints into model folders (open_clip's ``convert``).

A ZeroMamba ``{DATASET}_best{CZSL,GZSL}.pth`` becomes a zero-shot folder with its dataset's
classes (read from the xlsa17 ``.mat`` files); a VMamba v2 ImageNet release file becomes a
backbone folder. :func:`verify_conversion` checks that a folder reproduces its checkpoint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .classes import as_class_matrix, read_names
from .data.matlab import cell_strings, load_mat
from .errors import CheckpointError, DataError
from .format import load_folder, model_config, save_pretrained
from .models import ZeroMamba
from .official import load_official
from .zoo import PretrainedVariant, get_variant

__all__ = ["convert_official", "read_xlsa17", "verify_conversion"]


def read_xlsa17(
    att_splits: str | os.PathLike, res101: str | os.PathLike | None = None
) -> tuple[torch.Tensor, list[str] | None, list[int] | None]:
    """Read an xlsa17 ``att_splits.mat`` (+ ``res101.mat``): ``(class_attributes (C, A), class
    names, seen class indices)``.

    ``att`` is stored attributes x classes; the seen classes are the labels of ``trainval_loc``
    (1-based indices into ``res101.mat``'s 1-based ``labels``). Without ``res101`` the seen
    classes are ``None``.
    """
    optional = ["allclasses_names", "trainval_loc"]
    mat = load_mat(att_splits, ["att"], optional, what="att_splits.mat (xlsa17)")
    att = np.asarray(mat["att"], dtype=np.float64)
    if att.ndim != 2:
        raise DataError(f"'att' in {os.fspath(att_splits)!r} must be 2-D (attributes x classes)")
    matrix = as_class_matrix(torch.from_numpy(att.T.copy()), "att (from att_splits.mat)")
    names = cell_strings(mat["allclasses_names"], att_splits, "allclasses_names") if "allclasses_names" in mat else None
    if names is not None and len(names) != matrix.shape[0]:
        raise DataError(f"{len(names)} allclasses_names for {matrix.shape[0]} classes in att")
    seen = None
    if res101 is not None:
        if "trainval_loc" not in mat:
            raise DataError(f"{os.fspath(att_splits)!r} has no 'trainval_loc'")
        res = load_mat(res101, ["labels"], what="res101.mat (xlsa17)")
        labels = np.asarray(res["labels"]).astype(np.int64).ravel()
        loc = np.asarray(mat["trainval_loc"]).astype(np.int64).ravel()
        if loc.size == 0 or loc.min() < 1 or loc.max() > labels.size:
            raise DataError(f"trainval_loc indexes outside res101.mat's {labels.size} labels")
        seen_labels = np.unique(labels[loc - 1]) - 1
        if seen_labels.min() < 0 or seen_labels.max() >= matrix.shape[0]:
            raise DataError(f"res101.mat labels must be 1..{matrix.shape[0]}")
        seen = [int(i) for i in seen_labels]
    return matrix, names, seen


def convert_official(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    variant: PretrainedVariant | str | None = None,
    att_splits: str | os.PathLike | None = None,
    res101: str | os.PathLike | None = None,
    class_attributes: Any = None,
    seen_classes: Any = None,
    class_names: str | os.PathLike | Sequence[str] | None = None,
    attribute_names: str | os.PathLike | Sequence[str] | None = None,
    gamma: float | None = None,
    dataset: str | None = None,
    model_card: bool | str | None = True,
    **model_args: Any,
) -> Path:
    """Convert an authors' checkpoint into a zeromamba model folder (see :func:`save_pretrained`).

    * A ZeroMamba ``{DATASET}_best{CZSL,GZSL}.pth``: the classes come from the xlsa17
      ``att_splits`` (``att``, ``allclasses_names``) or ``class_attributes`` (C x A); the seen
      classes from ``res101`` (labels of ``trainval_loc``) or ``seen_classes`` (indices or mask).
    * A VMamba v2 ImageNet release file (``{"model": ...}``): a backbone folder.

    Args:
        variant: the zoo variant this file is the source of (gamma, dataset, preprocessing,
            provenance and the model card come from it; the checkpoint must match its shape).
        class_names, attribute_names: a list, or a text file with one name per line.
        gamma: calibrated-stacking gamma (default: the variant's, else 0).
        **model_args: passed to :func:`zeromamba.load_official` (e.g. ``scan_backend``).

    Raises:
        CheckpointError: unreadable checkpoint, or one that does not match the variant.
        DataError: inconsistent or unreadable class data.
    """
    if isinstance(variant, str):
        variant = get_variant(variant)
    model = load_official(checkpoint, **model_args)
    source = os.fspath(checkpoint)
    if variant is not None:
        if isinstance(model, ZeroMamba) != variant.is_zero_shot:
            kind = "a ZeroMamba" if isinstance(model, ZeroMamba) else "a VMamba backbone"
            raise CheckpointError(f"{source!r} is {kind} checkpoint, but variant {variant.name!r} is not")
        _, got = model_config(model)
        for k, v in variant.model_args.items():
            want = list(v) if isinstance(v, tuple) else v
            if k in got and got[k] != want:
                raise CheckpointError(
                    f"{source!r} does not match variant {variant.name!r}: {k} is {got[k]!r}, expected {want!r}"
                )
    if not isinstance(model, ZeroMamba):
        if any(x is not None for x in (att_splits, class_attributes, seen_classes, class_names)):
            raise DataError(f"{source!r} is a VMamba backbone: class data only applies to ZeroMamba checkpoints")
        return save_pretrained(model, out_dir, variant=variant, dataset=dataset, model_card=model_card)

    names = None
    seen = seen_classes
    if att_splits is not None:
        if class_attributes is not None:
            raise DataError("give either att_splits or class_attributes, not both")
        class_attributes, names, mat_seen = read_xlsa17(att_splits, res101)
        if seen is None:
            seen = mat_seen
        if seen is None:
            raise DataError(
                "the seen classes are unknown: pass res101.mat (its labels of trainval_loc are the seen classes) "
                "or list them explicitly (seen_classes / --seen)"
            )
    elif res101 is not None:
        raise DataError("res101.mat is only used together with att_splits.mat")
    if class_names is not None:
        names = read_names(class_names, "class names")
    attr_names = read_names(attribute_names, "attribute names") if attribute_names is not None else None
    if variant is not None and class_attributes is not None and variant.num_classes:
        c = as_class_matrix(class_attributes, "class_attributes").shape[0]
        if c != variant.num_classes:
            raise DataError(f"variant {variant.name!r} has {variant.num_classes} classes; the class data has {c}")
    return save_pretrained(
        model,
        out_dir,
        class_attributes=class_attributes,
        class_names=names,
        attribute_names=attr_names,
        seen=seen,
        gamma=gamma,
        dataset=dataset,
        variant=variant,
        model_card=model_card,
    )


def verify_conversion(
    checkpoint: str | os.PathLike, folder: str | os.PathLike, *, image_size: int = 64, seed: int = 0
) -> float:
    """Check a converted folder against the authors' checkpoint: both models (``load_official``
    and the folder's) run on the same random batch and must give identical outputs.

    Returns:
        The largest absolute difference (0.0 for an exact conversion).

    Raises:
        CheckpointError: the outputs differ by more than float32 rounding.
    """
    official = load_official(checkpoint)
    converted, source = load_folder(folder).model, os.fspath(folder)
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a, b = official(x), converted(x)
    a = getattr(a, "attributes", a)
    b = getattr(b, "attributes", b)
    diff = float((a - b).abs().max())
    if diff > 1e-5 * max(1.0, float(a.abs().max())):
        raise CheckpointError(f"{source!r} does not reproduce {os.fspath(checkpoint)!r}: max difference {diff:.3g}")
    return diff
