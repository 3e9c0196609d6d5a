"""One entry point for every dataset format, shared by ``zeromamba train`` and ``zeromamba evaluate``."""

from __future__ import annotations

import argparse
import os

from ..errors import DataError
from .dataset import ZSLData
from .folder import load_folder
from .shapes import SHAPES_DATASET, load_shapes, parse_shapes_spec
from .xlsa17 import XLSA17_DATASETS, PathRule, load_xlsa17

__all__ = ["load_dataset", "add_data_arguments", "FOLDER"]

FOLDER = "folder"


def load_dataset(
    dataset: str,
    image_root: str | os.PathLike | None = None,
    data_root: str | os.PathLike | None = None,
    strip_components: int | None = None,
    path_regex: str | None = None,
    attributes_csv: str | os.PathLike | None = None,
    unseen_classes: str | os.PathLike | None = None,
    test_seen_fraction: float = 0.2,
    val_class_fraction: float = 0.2,
    split_seed: int = 0,
    shapes_variety: str = "standard",
) -> ZSLData:
    """Load xlsa17 (``dataset`` = CUB, SUN, AWA2, FLO or another xlsa17 folder name), the own-data
    format (``dataset="folder"``, with ``attributes_csv`` and ``unseen_classes``) or the generated
    Shapes dataset (``dataset="shapes"`` or ``"shapes:<seed>"``, no folders; see
    :mod:`~zeromamba.data.shapes`; ``shapes_variety`` says how widely its renderer varies fills and
    backgrounds).

    Raises:
        DataError: missing arguments or files, inconsistent data (see the loaders).
    """
    shapes_seed = parse_shapes_spec(dataset)
    if shapes_seed is not None:  # generated on the fly: no folders
        return load_shapes(seed=shapes_seed, variety=shapes_variety)
    if shapes_variety != "standard":
        raise DataError(f"shapes_variety is for the shapes dataset, not {dataset!r}")
    if not image_root:
        raise DataError("no image folder given (image_root / --image-root)")
    if dataset.lower() == FOLDER:
        if not attributes_csv or not unseen_classes:
            raise DataError("the folder format needs attributes_csv (--attributes-csv) and unseen_classes (--unseen)")
        return load_folder(
            image_root,
            attributes_csv,
            unseen_classes,
            test_seen_fraction=test_seen_fraction,
            val_class_fraction=val_class_fraction,
            seed=split_seed,
        )
    if not data_root:
        raise DataError(f"no xlsa17 folder given for {dataset} (data_root / --data-root)")
    if strip_components is not None and path_regex:
        raise DataError("give strip_components or path_regex, not both")
    rule: PathRule = strip_components if strip_components is not None else (path_regex or None)
    return load_xlsa17(data_root, image_root, dataset, path_rule=rule)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The data options of ``train`` and ``evaluate`` (default ``None``: config/preset values apply)."""
    g = parser.add_argument_group("data")
    g.add_argument(
        "--dataset",
        help=f"{', '.join(XLSA17_DATASETS)} (xlsa17), '{FOLDER}' (own data) or "
        f"'{SHAPES_DATASET}[:seed]' (generated, no download)",
    )
    g.add_argument("--data-root", help="xlsa17 'data' folder (with CUB/, SUN/, ...) or one dataset's folder")
    g.add_argument("--image-root", help="local image folder of the dataset (own data: one sub-folder per class)")
    g.add_argument(
        "--strip-components",
        type=int,
        help="drop this many leading '/'-parts of xlsa17 image paths (authors: CUB 6, AWA2 5, SUN 7); default: found",
    )
    g.add_argument("--path-regex", help="regex searched in each xlsa17 path; group 1 (or the rest) is the local path")
    g.add_argument("--attributes-csv", help="own data: CSV 'class,<attr>,...' with one row per class")
    g.add_argument("--unseen", dest="unseen_classes", help="own data: file listing the unseen classes")
