"""Shapes: a procedural zero-shot dataset, rendered on the fly (no files, no download).

Each image shows one object on a background. Its class is a combination of three
attributes: a **colour** (red, green, blue, yellow), a **fill pattern** (solid, striped, dotted)
and a **shape** (circle, triangle, bar), named like ``"red striped triangle"``:
4 x 3 x 3 = 36 classes and 10 attributes. Everything a person varies when drawing one is random:
the canvas's size and aspect ratio, the background, the object's size, position, rotation and
exact colour, how its stripes or dots and its outline are drawn, anti-aliasing, noise and JPEG
compression (:mod:`~zeromamba.data.shapes_draw`). Every image comes with the object's exact mask
(:meth:`ShapesRenderer.sample`), which the explanation metrics use.

The split of classes is fixed (it does not depend on the seed): 9 classes are **unseen** (never
shown in training; :data:`UNSEEN_CLASSES`), 27 are seen. Each shape and each fill is unseen in
three classes, and every unseen class is a new combination of attribute values whose pairs
(colour-fill, colour-shape, fill-shape) all occur in seen classes. For model selection 6 of the
seen classes are set aside as validation classes (the ``val`` split), again such that every
attribute value occurs among the remaining 21 ``train`` classes.

Why these shapes: with a star as the third shape, the small model learnt triangle-versus-star
only relative to the colour and fill around it and named unseen stars and triangles at chance;
a bar differs from the other two in a way that does not depend on the context.

Images are a pure function of ``(seed, image index)``: the same seed gives the same images in any
order, in any process, and another seed gives a fresh set of the same classes (a held-out test
set). Use it like any other dataset::

    data = load_dataset("shapes")        # seed 0, the training set of the shipped model
    data = load_dataset("shapes:123")     # the same classes, other images
    zeromamba train --dataset shapes ...  /  zeromamba evaluate shapes-zsl --dataset shapes:123

Class-attribute matrix: the 0/1 indicator of a class's three attribute values, rows
L2-normalised (as xlsa17's ``att``). There are no word embeddings for these attributes; a model
trained on them starts its SLP's semantic matrix ``V`` at random (with the training seed).
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from .dataset import ZSLData
from .shapes_draw import VARIETIES, ShapeSample, draw_sample, draw_swatch

__all__ = [
    "COLOURS",
    "FILLS",
    "SHAPES",
    "SHAPES_ATTRIBUTES",
    "SHAPES_DATASET",
    "SHAPES_GROUPS",
    "UNSEEN_CLASSES",
    "VALIDATION_CLASSES",
    "ShapeSample",
    "ShapesRenderer",
    "SWATCH_GROUP",
    "SwatchRenderer",
    "class_name",
    "class_role",
    "load_shapes",
    "parse_shapes_spec",
    "render_sample",
    "render_shape",
    "shapes_class_attributes",
    "shapes_classes",
]

SHAPES_DATASET = "shapes"
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow")
FILLS: tuple[str, ...] = ("solid", "striped", "dotted")
SHAPES: tuple[str, ...] = ("circle", "triangle", "bar")
#: attribute names, in the column order of the class-attribute matrix
SHAPES_ATTRIBUTES: tuple[str, ...] = SHAPES + COLOURS + FILLS
#: the attribute groups: every class has exactly one value of each
SHAPES_GROUPS: dict[str, tuple[str, ...]] = {"shape": SHAPES, "colour": COLOURS, "fill": FILLS}

#: the unseen classes as ``(colour, fill, shape)``: three per shape and per fill, two or three per colour
UNSEEN_CLASSES: tuple[tuple[str, str, str], ...] = (
    ("red", "solid", "circle"),
    ("red", "striped", "bar"),
    ("red", "dotted", "triangle"),
    ("green", "solid", "bar"),
    ("green", "striped", "triangle"),
    ("blue", "striped", "circle"),
    ("blue", "dotted", "bar"),
    ("yellow", "solid", "circle"),
    ("yellow", "dotted", "triangle"),
)
#: seen classes held out for model selection (the ``val`` split)
VALIDATION_CLASSES: tuple[tuple[str, str, str], ...] = (
    ("red", "solid", "triangle"),
    ("red", "striped", "circle"),
    ("red", "dotted", "bar"),
    ("blue", "solid", "bar"),
    ("blue", "striped", "triangle"),
    ("blue", "dotted", "circle"),
)


def class_name(colour: str, fill: str, shape: str) -> str:
    """``"red striped triangle"``."""
    return f"{colour} {fill} {shape}"


def shapes_classes() -> list[tuple[str, str, str]]:
    """The 36 classes as ``(colour, fill, shape)``, in class-index order."""
    return list(itertools.product(COLOURS, FILLS, SHAPES))


def class_role(colour: str, fill: str, shape: str) -> str:
    """``unseen`` (:data:`UNSEEN_CLASSES`), ``val`` (:data:`VALIDATION_CLASSES`, seen classes held out
    for model selection) or ``train``: a fixed table, so the split never depends on a seed."""
    triple = (colour, fill, shape)
    for value, values in zip(triple, (COLOURS, FILLS, SHAPES)):
        if value not in values:
            raise ValueError(f"unknown attribute value {value!r}; expected one of {', '.join(values)}")
    if triple in UNSEEN_CLASSES:
        return "unseen"
    if triple in VALIDATION_CLASSES:
        return "val"
    return "train"


def shapes_class_attributes(classes: list[tuple[str, str, str]] | None = None) -> torch.Tensor:
    """``(C, 10)`` float32: the indicator of each class's three attribute values, rows L2-normalised."""
    classes = shapes_classes() if classes is None else classes
    att = torch.zeros(len(classes), len(SHAPES_ATTRIBUTES))
    for i, triple in enumerate(classes):
        for value in triple:
            att[i, SHAPES_ATTRIBUTES.index(value)] = 1.0
    return torch.nn.functional.normalize(att, dim=1)


def render_shape(colour: str, fill: str, shape: str, rng: np.random.Generator) -> Image.Image:
    """One random RGB image of a class, drawn with ``rng`` (its mask: :func:`render_sample`)."""
    return draw_sample(colour, fill, shape, rng).image


def render_sample(colour: str, fill: str, shape: str, rng: np.random.Generator) -> ShapeSample:
    """One random image of a class with the object's mask (see :mod:`~zeromamba.data.shapes_draw`)."""
    for value, values in zip((colour, fill, shape), (COLOURS, FILLS, SHAPES)):
        if value not in values:
            raise ValueError(f"unknown attribute value {value!r}; expected one of {', '.join(values)}")
    return draw_sample(colour, fill, shape, rng)


def _checked_variety(variety: str) -> str:
    if variety not in VARIETIES:
        raise DataError(f"shapes: unknown variety {variety!r}; use one of {', '.join(VARIETIES)}")
    return variety


class ShapesRenderer:
    """Image index -> PIL image for one generated set: a pure function of ``(seed, index)``.

    A class (not a closure) so that DataLoader worker processes can pickle it.
    """

    def __init__(self, seed: int, labels: np.ndarray, variety: str = "standard"):
        self.seed = int(seed)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = shapes_classes()
        self.variety = _checked_variety(variety)

    def sample(self, index: int) -> ShapeSample:
        """The image of ``index`` with its object's mask and class."""
        # a generator per image from (seed, index): the same image in any order and any worker
        rng = np.random.default_rng([self.seed, int(index)])
        colour, fill, shape = self.classes[int(self.labels[index])]
        return draw_sample(colour, fill, shape, rng, self.variety)

    def __call__(self, index: int) -> Image.Image:
        return self.sample(index).image


#: the attribute group texture swatches show (:class:`SwatchRenderer`)
SWATCH_GROUP = "fill"


class SwatchRenderer:
    """Texture swatches (:func:`~zeromamba.data.shapes_draw.draw_swatch`): index -> image of an
    irregular blob of any hue whose fill is ``FILLS[index % 3]``; a pure function of
    ``(seed, index)``, drawn from a stream of its own (no class image of that seed is repeated)."""

    group = SWATCH_GROUP
    values = FILLS

    def __init__(self, seed: int, variety: str = "standard"):
        self.seed = int(seed)
        self.variety = _checked_variety(variety)

    @staticmethod
    def value_index(index: int) -> int:
        """The position in ``FILLS`` of swatch ``index``'s fill."""
        return int(index) % len(FILLS)

    def sample(self, index: int) -> ShapeSample:
        rng = np.random.default_rng([self.seed, 0x5A7C, int(index)])
        return draw_swatch(FILLS[self.value_index(index)], rng, self.variety)

    def batch(self, indices: list[int], transform) -> tuple[torch.Tensor, torch.Tensor]:
        """``(images (N, 3, H, W) through transform, fill value indices (N,))``."""
        images = torch.stack([transform(self.sample(i).image) for i in indices])
        return images, torch.tensor([self.value_index(i) for i in indices], dtype=torch.long)


def load_shapes(
    seed: int = 0,
    train_per_class: int = 400,
    test_seen_per_class: int = 50,
    test_unseen_per_class: int = 100,
    variety: str = "standard",
) -> ZSLData:
    """Generate the Shapes dataset (nothing is drawn until an image is read).

    Args:
        seed: the images' seed; the classes and their split never change.
        train_per_class: training images of each seen class (``trainval``).
        test_seen_per_class: held-out images of each seen class (``test_seen``).
        test_unseen_per_class: images of each unseen class (``test_unseen``).
        variety: how widely the renderer varies fills and backgrounds (``"standard"`` or ``"wide"``,
            :data:`~zeromamba.data.shapes_draw.VARIETIES`).

    Images have different sizes and aspect ratios (longer side 64-160 px); models see them through
    their own preprocessing (the shipped one letterboxes them).

    Splits follow xlsa17: ``trainval`` and ``test_seen`` cover the 27 seen classes,
    ``test_unseen`` the 9 unseen ones; ``train``/``val`` cover all images of the 21 train
    classes and the 6 validation classes (test_seen included, as in xlsa17;
    :func:`~zeromamba.data.selection_splits` removes those).
    """
    for name, n in (("train_per_class", train_per_class), ("test_seen_per_class", test_seen_per_class)):
        if n < 1:
            raise DataError(f"shapes: {name} must be at least 1 (got {n})")
    if test_unseen_per_class < 1:
        raise DataError("shapes: test_unseen_per_class must be at least 1")
    variety = _checked_variety(variety)
    classes = shapes_classes()
    labels: list[int] = []
    splits: dict[str, list[int]] = {k: [] for k in ("trainval", "test_seen", "test_unseen", "train", "val")}
    for c, triple in enumerate(classes):
        role = class_role(*triple)
        if role == "unseen":
            start = len(labels)
            labels += [c] * test_unseen_per_class
            splits["test_unseen"] += range(start, len(labels))
            continue
        start = len(labels)
        labels += [c] * train_per_class
        splits["trainval"] += range(start, len(labels))
        mid = len(labels)
        labels += [c] * test_seen_per_class
        splits["test_seen"] += range(mid, len(labels))
        splits["train" if role == "train" else "val"] += range(start, len(labels))
    label_arr = np.asarray(labels, dtype=np.int64)
    names = [class_name(*t) for t in classes]
    paths = [f"shapes-{seed}/{names[y].replace(' ', '_')}/{i:06d}.png" for i, y in enumerate(labels)]
    return ZSLData(
        name=SHAPES_DATASET,
        image_paths=paths,
        labels=label_arr,
        class_names=names,
        class_attributes=shapes_class_attributes(classes),
        splits={k: np.asarray(v, dtype=np.int64) for k, v in splits.items()},
        attribute_names=list(SHAPES_ATTRIBUTES),
        source=f"generated shapes (seed {seed})" + ("" if variety == "standard" else f", {variety} variety"),
        extra={
            "seed": int(seed),
            "variety": variety,
            "attribute_groups": {g: list(v) for g, v in SHAPES_GROUPS.items()},
        },
        render=ShapesRenderer(seed, label_arr, variety),
    )


def parse_shapes_spec(dataset: str) -> int | None:
    """The seed of a dataset name ``shapes`` (0) or ``shapes:<seed>``; ``None`` for other datasets."""
    name, _, seed = dataset.strip().partition(":")
    if name.lower() != SHAPES_DATASET:
        return None
    if not seed:
        return 0
    try:
        return int(seed)
    except ValueError:
        raise DataError(f"bad shapes dataset {dataset!r}: write 'shapes' or 'shapes:<integer seed>'") from None
