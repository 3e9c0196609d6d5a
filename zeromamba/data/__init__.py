"""Datasets for zero-shot training and evaluation: xlsa17 (CUB, SUN, AWA2, FLO), attribute
embeddings, and a plain folder + CSV format for your own data."""

from .dataset import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageDataset,
    SelectionSplits,
    ZSLData,
    build_transform,
    check_images,
    selection_splits,
)
from .embeddings import load_attribute_embeddings
from .folder import load_folder, read_class_attributes_csv, read_class_list
from .load import FOLDER, add_data_arguments, load_dataset
from .xlsa17 import XLSA17_DATASETS, find_mat_folder, load_xlsa17, reroot_paths

__all__ = [
    "FOLDER",
    "add_data_arguments",
    "load_dataset",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "XLSA17_DATASETS",
    "ImageDataset",
    "SelectionSplits",
    "ZSLData",
    "build_transform",
    "check_images",
    "find_mat_folder",
    "load_attribute_embeddings",
    "load_folder",
    "load_xlsa17",
    "read_class_attributes_csv",
    "read_class_list",
    "reroot_paths",
    "selection_splits",
]
