"""The in-memory description of a zero-shot dataset, its image dataset, transforms and splits.

Every loader (:mod:`~zeromamba.data.xlsa17`, :mod:`~zeromamba.data.folder`) returns a
:class:`ZSLData`: local image paths, 0-based labels, the class-attribute matrix and named splits of
image indices. Split names follow xlsa17: ``trainval`` (training images of seen classes),
``test_seen``, ``test_unseen``, and ``train``/``val`` (seen classes divided into
train classes and validation classes that play the unseen role for model selection).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..constants import IMAGENET_MEAN, IMAGENET_STD, ZSL_IMAGE_SIZE
from ..errors import DataError
from ..letterbox import fill_colour, letterbox
from .augment import build_augmentations

__all__ = [
    "EvalSplit",
    "ZSLData",
    "ImageDataset",
    "SelectionSplits",
    "build_transform",
    "check_images",
    "selection_splits",
]


@dataclass
class EvalSplit:
    """Images to evaluate on and the classes that play the seen and the unseen role there.

    ``name`` is ``"test"`` (:meth:`ZSLData.test_split`) or ``"val"`` (:meth:`SelectionSplits.val_split`);
    ``indices`` are image indices, ``seen``/``unseen`` class indices (the candidate classes).
    """

    name: str
    indices: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray


@dataclass
class ZSLData:
    """A zero-shot dataset: images, labels, class attributes and splits.

    Attributes:
        name: dataset name (``CUB``, ``SUN``, ``AWA2``, ``FLO`` or a folder's name).
        image_paths: local path of every image.
        labels: ``(N,)`` 0-based class index of every image.
        class_names: ``C`` class names.
        class_attributes: ``(C, A)`` float32 class-attribute matrix (rows L2-normalised by default).
        splits: split name -> 0-based image indices (see module docstring).
        attribute_names: ``A`` attribute names when the format has them (own data), else ``None``.
        source: where the data came from, for messages.
        render: for generated datasets (:mod:`~zeromamba.data.shapes`): image index -> PIL image,
            used instead of reading ``image_paths`` (which then only name the images).
    """

    name: str
    image_paths: list[str]
    labels: np.ndarray
    class_names: list[str]
    class_attributes: torch.Tensor
    splits: dict[str, np.ndarray]
    attribute_names: list[str] | None = None
    source: str = ""
    extra: dict[str, object] = field(default_factory=dict)
    render: Callable[[int], Image.Image] | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_attributes(self) -> int:
        return int(self.class_attributes.shape[1])

    def classes_of(self, split: str) -> np.ndarray:
        """Sorted class indices that occur in a split."""
        return np.unique(self.labels[self.splits[split]])

    @property
    def seen_classes(self) -> np.ndarray:
        return self.classes_of("trainval")

    @property
    def unseen_classes(self) -> np.ndarray:
        return self.classes_of("test_unseen")

    def seen_mask(self, seen: np.ndarray | None = None) -> torch.Tensor:
        """``(C,)`` bool mask of the seen classes (default: the trainval classes)."""
        mask = torch.zeros(self.num_classes, dtype=torch.bool)
        mask[torch.as_tensor(self.seen_classes if seen is None else seen, dtype=torch.long)] = True
        return mask

    def test_split(self) -> EvalSplit:
        """``test_seen`` + ``test_unseen`` images; seen = the trainval classes, unseen = the test_unseen ones."""
        indices = np.concatenate([self.splits["test_seen"], self.splits["test_unseen"]])
        return EvalSplit("test", indices, self.seen_classes, self.unseen_classes)

    def dataset(self, indices: np.ndarray, transform: Callable | None = None) -> ImageDataset:
        """An :class:`ImageDataset` over some image indices."""
        indices = np.asarray(indices, dtype=np.int64)
        render = _RenderSubset(self.render, indices) if self.render is not None else None
        return ImageDataset([self.image_paths[i] for i in indices], self.labels[indices], transform, render=render)


class _RenderSubset:
    """``render`` restricted to some image indices (a class, not a closure, so DataLoader workers can pickle it)."""

    def __init__(self, render: Callable[[int], Image.Image], indices: np.ndarray):
        self.render = render
        self.indices = indices

    def __call__(self, i: int) -> Image.Image:
        return self.render(int(self.indices[i]))


class ImageDataset(Dataset):
    """Images from paths with their labels; items are ``(image, label, position)``.

    ``position`` is the item's index in this dataset, so predictions gathered from several
    processes can be put back in order. With ``render`` (position -> PIL image) the images are
    generated instead of read, and ``paths`` only name them.
    """

    def __init__(
        self,
        paths: Sequence[str],
        labels: Sequence[int] | np.ndarray,
        transform: Callable | None = None,
        render: Callable[[int], Image.Image] | None = None,
    ):
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        self.paths = list(paths)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.transform = transform
        self.render = render

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        if self.render is not None:
            img = self.render(i)
            x = self.transform(img) if self.transform is not None else img
            return x, int(self.labels[i]), i
        path = self.paths[i]
        try:
            with Image.open(path) as im:
                img = im.convert("RGB")
        except FileNotFoundError:
            raise DataError(f"image not found: {path!r} (it was present when the dataset was loaded)") from None
        except Exception as e:  # truncated, not an image, ...
            raise DataError(f"cannot read image {path!r}: {e}") from None
        x = self.transform(img) if self.transform is not None else img
        return x, int(self.labels[i]), i


class _Letterbox:
    """The predictor's ``border`` / ``letterbox`` preprocessing as a transform (a class, so workers can
    pickle it): padded with ``fill`` (``border``: the mean colour) or the border colour (``None``)."""

    def __init__(self, size: int, fill: tuple[int, int, int] | None = None):
        self.size = int(size)
        self.fill = fill

    def __call__(self, img: Image.Image) -> Image.Image:
        return letterbox(img.convert("RGB"), self.size, self.size, fill=self.fill)[0]


#: the crop modes a dataset's images can be preprocessed with (see :func:`build_transform`)
DATASET_CROP_MODES = ("squash", "border", "letterbox")


def build_transform(
    image_size: int = ZSL_IMAGE_SIZE, train: bool = False, crop_mode: str = "squash", augment: Sequence[str] = ()
) -> Callable:
    """The paper's preprocessing: plain resize to a square (no crop; ``crop_mode="squash"``) or the
    whole image fitted into the square with its aspect ratio kept (:func:`zeromamba.letterbox.letterbox`),
    padded with the ImageNet mean colour (``"border"``, timm's mode of that name) or with the image's
    border colour (``"letterbox"``); a random horizontal flip in training, then the training
    augmentations ``augment`` names (:mod:`~zeromamba.data.augment`; training only), ImageNet mean/std
    normalisation."""
    from torchvision import transforms as T

    if crop_mode not in DATASET_CROP_MODES:
        raise ValueError(f"crop_mode must be one of {', '.join(DATASET_CROP_MODES)} for datasets, got {crop_mode!r}")
    steps: list[Callable] = [
        T.Resize((image_size, image_size), interpolation=T.InterpolationMode.BILINEAR)
        if crop_mode == "squash"
        else _Letterbox(image_size, fill_colour(IMAGENET_MEAN) if crop_mode == "border" else None)
    ]
    if train:
        steps.append(T.RandomHorizontalFlip())
    steps.append(T.ToTensor())
    if augment:
        if not train:
            raise ValueError("augmentations are for training transforms (train=True)")
        steps += build_augmentations(augment)
    steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return T.Compose(steps)


def check_images(paths: Sequence[str], source: str, show: int = 5) -> None:
    """Raise :class:`DataError` naming the first missing images and how many are missing."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        listed = "\n  ".join(missing[:show])
        more = f"\n  ... and {len(missing) - show} more" if len(missing) > show else ""
        raise DataError(
            f"{len(missing)} of {len(paths)} images listed by {source} are missing:\n  {listed}{more}\n"
            "Check the image folder (and the path rule: strip_components / path_regex)."
        )


@dataclass
class SelectionSplits:
    """Splits for model selection that never touch a test image.

    ``train`` (images of the train classes), ``val_seen`` (held-out images of the train classes)
    and ``val_unseen`` (images of the validation classes); ``seen``/``unseen`` are class indices.
    """

    train: np.ndarray
    val_seen: np.ndarray
    val_unseen: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray

    def val_split(self) -> EvalSplit:
        """``val_seen`` + ``val_unseen`` images, with the train classes seen and the val classes unseen."""
        return EvalSplit("val", np.concatenate([self.val_seen, self.val_unseen]), self.seen, self.unseen)


def selection_splits(data: ZSLData, holdout_fraction: float = 0.2, seed: int = 0) -> SelectionSplits:
    """Derive train / val-seen / val-unseen from the ``train``/``val`` splits, minus every test image.

    xlsa17's ``train_loc``/``val_loc`` cover all images of the seen classes, test_seen images
    included, so those are removed here. ``holdout_fraction`` of each train class's images (at least
    one when the class has two or more) become ``val_seen``, chosen with ``seed``.
    """
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {holdout_fraction}")
    for key in ("train", "val"):
        if key not in data.splits or len(data.splits[key]) == 0:
            raise DataError(f"{data.source}: no '{key}' split, needed for validation-based model selection")
    test = np.union1d(data.splits.get("test_seen", []), data.splits.get("test_unseen", []))
    train = np.setdiff1d(data.splits["train"], test)
    val_unseen = np.setdiff1d(data.splits["val"], test)
    seen = np.unique(data.labels[train])
    unseen = np.unique(data.labels[val_unseen])
    if np.intersect1d(seen, unseen).size:
        raise DataError(f"{data.source}: the train and val splits share classes; val classes must be disjoint")
    if seen.size == 0 or unseen.size == 0:
        raise DataError(f"{data.source}: the train/val splits have no images left once test images are removed")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for c in seen:
        idx = train[data.labels[train] == c]
        n = int(round(len(idx) * holdout_fraction))
        if len(idx) >= 2:
            n = min(max(n, 1), len(idx) - 1)
        else:
            n = 0
        held.append(rng.permutation(idx)[:n])
    val_seen = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
    train = np.setdiff1d(train, val_seen)
    return SelectionSplits(train=train, val_seen=val_seen, val_unseen=val_unseen, seen=seen, unseen=unseen)
