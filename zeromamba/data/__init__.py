"""Datasets for zero-shot training and evaluation: xlsa17 (CUB, SUN, AWA2, FLO), attribute
embeddings, a plain folder + CSV format for your own data, and the generated Shapes set."""

from .dataset import (
    EvalSplit,
    ImageDataset,
    SelectionSplits,
    ZSLData,
    build_transform,
    check_images,
    selection_splits,
)
from .embeddings import load_attribute_embeddings
from .folder import load_folder
from .load import FOLDER, add_data_arguments, load_dataset
from .matlab import cell_strings, load_mat
from .xlsa17 import XLSA17_DATASETS, find_mat_folder, load_xlsa17, reroot_paths

__all__ = [
    "FOLDER",
    "XLSA17_DATASETS",
    "EvalSplit",
    "ImageDataset",
    "SelectionSplits",
    "ZSLData",
    "add_data_arguments",
    "build_transform",
    "cell_strings",
    "check_images",
    "find_mat_folder",
    "load_attribute_embeddings",
    "load_dataset",
    "load_folder",
    "load_mat",
    "load_xlsa17",
    "reroot_paths",
    "selection_splits",
]
