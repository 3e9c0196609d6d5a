"""The :class:`Predictor`: classify images with a ZeroMamba model against any set of classes.

A ZeroMamba model predicts an attribute vector per image; a class scores the dot product of that
vector with its row of a class-attribute matrix. The predictor wraps a model with its own classes
(names, attribute matrix, which classes were seen in training, the calibration ``gamma``) and the
image preprocessing, and handles every input kind (see :mod:`zeromamba.images`)::

    predictor = Predictor(model, class_attributes=att, class_names=names, seen=seen_idx, gamma=0.3)
    predictor.classify("bird.jpg")                        # one ClassificationResult
    predictor.classify(["a.jpg", "b.png"], attributes={"zebra": z, "horse": h})   # a ResultList
    predictor.predict_attributes("bird.jpg")
    predictor.explain("bird.jpg").save_png("why.png")

Class-attribute matrices (``class_attributes`` and the ``attributes`` argument of
:meth:`Predictor.classify`) may be a ``C x A`` numpy array, tensor or nested list, a dict
``class name -> vector``, or a file: ``.npy`` or CSV (see :func:`load_class_attributes`). Their rows
are L2-normalised, as in the xlsa17 ``att`` matrices the published models were trained with, so
only the direction of a class's attribute vector matters, not its scale (``original_att`` in
0..100 works as well as ``att``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np
import torch
import torch.nn as nn

from .errors import AttributeMatrixError, ConfigError, ImageError
from .images import (
    DEFAULT_MAX_PIXELS,
    ImageInput,
    PreparedImage,
    prepare_image,
    resolve_preprocess,
)
from .models.zeromamba import ZeroMamba
from .scoring import calibrated_stacking, class_scores

if TYPE_CHECKING:
    from .explain import Explanation

__all__ = [
    "AttributePrediction",
    "ClassificationResult",
    "Predictor",
    "ResultList",
    "load_class_attributes",
    "load_class_names",
]

ClassAttributes = Any  # array-like (C x A), Mapping[str, vector], or a path to a .csv / .npy file
T = TypeVar("T")

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


# --- results ---------------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.4g}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Plain-text columns; ``align`` has one ``<``/``>`` per column."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


@dataclass
class ClassificationResult:
    """The top classes for one image.

    Attributes:
        indices: class indices (rows of the class-attribute matrix), best first.
        names: their names (``"class <i>"`` where the classes have no names).
        scores: raw class scores, the dot product of the predicted attributes with the class's
            (L2-normalised) attribute row.
        probabilities: softmax of the raw scores over all candidate classes.
        calibrated: ``probability - gamma * seen`` per class when GZSL calibrated stacking ranked
            the classes, else ``None``.
        seen: for each listed class, whether it was seen in training (``None`` when unknown).
        gamma: the calibration gamma that was applied, or ``None`` when none was.
        num_classes: how many classes were candidates.
        source: which image this is (its path, or ``image <i>``).
    """

    indices: list[int]
    names: list[str]
    scores: list[float]
    probabilities: list[float]
    calibrated: list[float] | None = None
    seen: list[bool] | None = None
    gamma: float | None = None
    num_classes: int = 0
    source: str = ""

    @property
    def top_k(self) -> int:
        """How many classes are listed."""
        return len(self.indices)

    @property
    def index(self) -> int:
        """The predicted (top-1) class index."""
        return self.indices[0]

    @property
    def label(self) -> str:
        """The predicted (top-1) class name."""
        return self.names[0]

    name = label

    @property
    def score(self) -> float:
        """The top-1 raw score."""
        return self.scores[0]

    @property
    def probability(self) -> float:
        """The top-1 probability."""
        return self.probabilities[0]

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only (JSON-serialisable); :meth:`from_dict` reverses it."""
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassificationResult:
        return cls(**dict(data))

    def __str__(self) -> str:
        mode = f"GZSL calibrated, gamma {self.gamma:g}" if self.gamma is not None else "uncalibrated"
        head = f"{self.source or 'image'}  ({self.num_classes} classes, {mode})"
        header = ["rank", "class", "index", "score", "prob"]
        align = ">", "<", ">", ">", ">"
        if self.calibrated is not None:
            header.append("calibrated")
            align += (">",)
        if self.seen is not None:
            header.append("seen")
            align += ("<",)
        rows = []
        for r in range(self.top_k):
            row = [
                str(r + 1),
                self.names[r],
                str(self.indices[r]),
                _fmt(self.scores[r]),
                f"{self.probabilities[r]:.4f}",
            ]
            if self.calibrated is not None:
                row.append(_fmt(self.calibrated[r]))
            if self.seen is not None:
                row.append("seen" if self.seen[r] else "unseen")
            rows.append(row)
        return "\n".join([head, *_table(header, rows, "".join(align))])


@dataclass
class AttributePrediction:
    """The predicted attribute vector of one image.

    Attributes:
        values: one value per attribute, in the model's attribute order.
        attribute_names: their names (``"attribute <i>"`` where the model has none).
        source: which image this is.
    """

    values: list[float]
    attribute_names: list[str]
    source: str = ""

    def as_dict(self) -> dict[str, float]:
        """``{attribute name: value}``."""
        return dict(zip(self.attribute_names, self.values))

    def top(self, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` highest attributes as ``(name, value)``, highest first."""
        order = np.argsort(-np.asarray(self.values), kind="stable")[:k]
        return [(self.attribute_names[i], self.values[i]) for i in order]

    def numpy(self) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AttributePrediction:
        return cls(**dict(data))

    def __str__(self, k: int = 10) -> str:
        top = self.top(k)
        rows = [[str(i + 1), name, _fmt(v)] for i, (name, v) in enumerate(top)]
        head = f"{self.source or 'image'}  (top {len(top)} of {len(self.values)} attributes)"
        return "\n".join([head, *_table(["rank", "attribute", "value"], rows, "><>")])


class ResultList(list, Generic[T]):
    """A list of per-image results that prints as tables and converts to dicts/JSON."""

    def to_dict(self) -> dict[str, Any]:
        """``{"results": [result.to_dict(), ...]}``."""
        return {"results": [r.to_dict() for r in self]}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        return "\n\n".join(str(r) for r in self)


# --- class-attribute matrices ----------------------------------------------------------------------


def load_class_names(source: str | os.PathLike | Iterable[str]) -> list[str]:
    """Class names from a text file (one per line; blank lines and ``#`` comments skipped) or an iterable."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise AttributeMatrixError(f"class-names file not found: {path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise AttributeMatrixError(f"cannot read class-names file {path}: {e}") from e
        return [s.strip() for s in text.splitlines() if s.strip() and not s.lstrip().startswith("#")]
    return [str(s) for s in source]


def _is_number(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, attribute_names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise AttributeMatrixError(f"cannot read attribute file {path}: {e}") from e
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        raise AttributeMatrixError(f"attribute file {path} has no rows; it needs one row per class")
    try:
        dialect: Any = csv.Sniffer().sniff(lines[0], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO("\n".join(lines)), dialect)]
    header = None
    if len(rows[0]) > 1 and not all(_is_number(c) for c in rows[0][1:]):
        header, rows = rows[0][1:], rows[1:]
    if not rows:
        raise AttributeMatrixError(f"attribute file {path} has a header but no class rows")
    width = len(header) if header is not None else len(rows[0]) - 1
    names, values = [], []
    for n, row in enumerate(rows, start=2 if header is not None else 1):
        if len(row) - 1 != width:
            raise AttributeMatrixError(
                f"{path}, row {n}: {len(row) - 1} values, expected {width} (one column per attribute after the "
                "class name)"
            )
        try:
            values.append([float(c) for c in row[1:]])
        except ValueError:
            raise AttributeMatrixError(f"{path}, row {n}: a value that is not a number: {row[1:]}") from None
        names.append(row[0])
    matrix = np.asarray(values, dtype=np.float64).reshape(len(values), width)
    # columns named like the model's attributes are matched by name, so their order may differ
    if header is not None and attribute_names is not None and list(header) != list(attribute_names):
        if len(set(header)) == len(header) and set(header) == set(attribute_names):
            matrix = matrix[:, [header.index(a) for a in attribute_names]]
    return matrix, names


def load_class_attributes(
    source: ClassAttributes,
    num_attributes: int | None = None,
    *,
    class_names: Sequence[str] | str | os.PathLike | None = None,
    attribute_names: Sequence[str] | None = None,
    normalize: bool = True,
) -> tuple[torch.Tensor, list[str] | None]:
    """Read and validate a class-attribute matrix; returns ``(C x A float32 tensor, names or None)``.

    ``source`` may be:

    * a ``C x A`` numpy array, torch tensor or nested list (row ``i`` describes class ``i``);
    * a dict ``{class name: vector of A values}``;
    * a ``.npy`` file (a ``C x A`` array, loaded without pickle);
    * a CSV file (``,``, ``;`` or tab separated; blank lines and lines starting with ``#`` are
      skipped). The first column is the class name; the other ``A`` columns are its attribute
      values. An optional header row names the attribute columns (its first cell, e.g. ``class``,
      is ignored); when the header names are exactly the model's ``attribute_names`` in another
      order, columns are matched by name. Example::

          class,has_stripes,has_hooves,is_black
          zebra,1,1,0.5
          horse,0,1,0.2

    ``class_names`` (a list or a text file, one name per line), when given, replace the names the
    matrix came with. Rows are L2-normalised unless ``normalize=False``.

    Raises:
        AttributeMatrixError: unreadable file, not two-dimensional, no rows, a column count other
            than ``num_attributes``, NaN or inf values, an all-zero row, or names whose count does
            not match the rows.
    """
    names: list[str] | None = None
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise AttributeMatrixError(f"attribute file not found: {path}; pass a .csv or .npy file")
        if path.suffix.lower() == ".npy":
            try:
                matrix = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise AttributeMatrixError(f"cannot read {path} as a numeric .npy array: {e}") from e
        else:
            matrix, names = _read_csv(path, attribute_names)
    elif isinstance(source, Mapping):
        if not source:
            raise AttributeMatrixError("the attribute dict is empty; it needs one entry per class")
        names = [str(k) for k in source]
        rows = []
        for k, v in source.items():
            row = v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
            if row.ndim != 1:
                raise AttributeMatrixError(f"class {k!r}: expected a vector of attribute values, got shape {row.shape}")
            rows.append(row)
        if len({r.shape for r in rows}) > 1:
            lengths = sorted({len(r) for r in rows})
            raise AttributeMatrixError(
                f"the attribute vectors have different lengths {lengths}; give each class all of them"
            )
        matrix = np.stack(rows)
    elif isinstance(source, torch.Tensor):
        matrix = source.detach().cpu().float().numpy()
    else:
        try:
            matrix = np.asarray(source)
        except (TypeError, ValueError) as e:
            raise AttributeMatrixError(f"cannot read the class-attribute matrix: {e}") from e
    if not (np.issubdtype(matrix.dtype, np.number) or matrix.dtype == np.bool_):
        raise AttributeMatrixError(f"the class-attribute matrix must be numeric, got dtype {matrix.dtype}")
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2:
        raise AttributeMatrixError(
            f"the class-attribute matrix must be 2-D (classes x attributes), got shape {matrix.shape}"
            + ("; for one class use a 1 x A matrix" if matrix.ndim == 1 else "")
        )
    if matrix.shape[0] == 0:
        raise AttributeMatrixError("the class-attribute matrix has no rows; it needs one row per class")
    if num_attributes is not None and matrix.shape[1] != num_attributes:
        hint = " (it looks transposed: rows must be classes)" if matrix.shape[0] == num_attributes else ""
        raise AttributeMatrixError(
            f"the class-attribute matrix has {matrix.shape[1]} columns but the model predicts {num_attributes} "
            f"attributes{hint}; give one row per class with the model's {num_attributes} attributes in its order"
        )
    bad = ~np.isfinite(matrix)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise AttributeMatrixError(
            f"the class-attribute matrix has {int(bad.sum())} NaN or inf values (first at row {r}, column {c}); "
            "fill in every value"
        )
    norms = np.linalg.norm(matrix, axis=1)
    if (norms == 0).any():
        r = int(np.argmax(norms == 0))
        who = f" ({names[r]!r})" if names else ""
        raise AttributeMatrixError(f"row {r}{who} of the class-attribute matrix is all zeros; a class needs attributes")
    if class_names is not None:
        names = load_class_names(class_names)
    if names is not None and len(names) != matrix.shape[0]:
        raise AttributeMatrixError(
            f"{len(names)} class names for {matrix.shape[0]} rows of the class-attribute matrix; give one name per row"
        )
    if normalize:
        matrix = matrix / norms[:, None]
    return torch.from_numpy(matrix.astype(np.float32)), names


def _resolve_seen(seen: Any, num_classes: int, class_names: Sequence[str] | None) -> torch.Tensor | None:
    """A boolean mask over the classes from a mask, indices or class names."""
    if seen is None:
        return None
    if isinstance(seen, torch.Tensor):
        seen = seen.detach().cpu().numpy()
    items = list(seen) if not isinstance(seen, np.ndarray) else None
    if items is not None and items and all(isinstance(s, str) for s in items):
        if class_names is None:
            raise AttributeMatrixError("seen classes given by name, but the classes have no names; pass indices")
        lookup = {n: i for i, n in enumerate(class_names)}
        missing = [s for s in items if s not in lookup]
        if missing:
            raise AttributeMatrixError(f"seen classes not among the class names: {missing[:5]}")
        seen = [lookup[s] for s in items]
    arr = np.asarray(seen)
    if arr.dtype == np.bool_:
        if arr.ndim != 1 or arr.shape[0] != num_classes:
            raise AttributeMatrixError(
                f"the seen mask has shape {arr.shape} but there are {num_classes} classes; give one boolean per class "
                "or a list of seen class indices"
            )
        return torch.from_numpy(arr.copy())
    if arr.size == 0:
        return torch.zeros(num_classes, dtype=torch.bool)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise AttributeMatrixError(
            "seen must be a boolean mask over the classes or a list of class indices, "
            f"got {arr.dtype} of shape {arr.shape}"
        )
    if arr.min() < 0 or arr.max() >= num_classes:
        raise AttributeMatrixError(f"seen class indices must be in 0..{num_classes - 1}, got {arr.min()}..{arr.max()}")
    mask = torch.zeros(num_classes, dtype=torch.bool)
    mask[torch.from_numpy(arr.astype(np.int64))] = True
    return mask


@dataclass(frozen=True)
class _Classes:
    """A snapshot of the candidate classes for one call (so calls never share mutable state)."""

    matrix: torch.Tensor | None  # (C, A) normalised; None for a plain classifier
    names: list[str]
    seen: torch.Tensor | None
    gamma: float | None  # None: no calibration
    num_classes: int = field(default=0)


# --- the predictor ---------------------------------------------------------------------------------


class Predictor:
    """Zero-shot image classification with a ZeroMamba model.

    Args:
        model: a :class:`~zeromamba.models.ZeroMamba` (or any timm classifier returning logits, e.g.
            a VMamba backbone; then ``classify`` ranks its logits and ``class_names`` name them).
        class_attributes: the predictor's own classes, ``C x A`` (any form
            :func:`load_class_attributes` reads); rows are L2-normalised.
        class_names: one name per class (default ``"class <i>"`` in results).
        seen: which classes were seen in training: a boolean mask of length ``C`` or a list of class
            indices (or names). With ``gamma``, classification uses GZSL calibrated stacking.
        gamma: calibration strength in probability units: ``softmax(scores) - gamma * seen``.
        attribute_names: one name per attribute (``A``).
        preprocess: ``input_size``, ``mean``, ``std``, ``interpolation``, ``crop_pct``, ``crop_mode``
            (see :func:`zeromamba.images.resolve_preprocess`); default: plain 448 x 448 resize,
            ImageNet mean/std, as the authors evaluate.
        device: where the model runs (default: where its parameters are).
        dtype: the compute precision (default: the model's). ``torch.bfloat16`` / ``torch.float16``
            (or their names) run the model under :func:`torch.autocast` with float32 weights, which
            is what the selective scan needs; meant for CUDA.
        batch_size: images per forward pass.

    The model is moved to ``device`` in place and put in eval mode. Calls never modify the
    predictor, so one predictor may serve several threads at once. Set :attr:`max_pixels` to change
    the largest image accepted (default 100 million pixels).
    """

    #: images with more pixels are refused with :class:`~zeromamba.errors.ImageError` (None: no limit)
    max_pixels: int | None = DEFAULT_MAX_PIXELS

    def __init__(
        self,
        model: nn.Module,
        class_attributes: ClassAttributes | None = None,
        class_names: Sequence[str] | None = None,
        seen: Any = None,
        gamma: float = 0.0,
        attribute_names: Sequence[str] | None = None,
        preprocess: Mapping[str, Any] | None = None,
        device: str | torch.device | None = None,
        dtype: str | torch.dtype | None = None,
        batch_size: int = 8,
    ):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module (a ZeroMamba), got {type(model).__name__}")
        self.is_zeromamba = isinstance(model, ZeroMamba)
        if device is None:
            param = next(model.parameters(), None)
            device = param.device if param is not None else torch.device("cpu")
        self.device = torch.device(device)
        self.dtype = _resolve_dtype(dtype, model)
        # float16/bfloat16 is the compute precision, through torch.autocast: the weights stay float32
        # because the selective scan and the LayerNorms after it need float32 parameters
        weights = torch.float32 if self.dtype in (torch.float16, torch.bfloat16) else self.dtype
        if dtype is None:
            weights = None
        self.model = model.to(device=self.device, dtype=weights).eval()
        self.num_attributes: int | None = int(model.num_attributes) if self.is_zeromamba else None

        if attribute_names is not None:
            attribute_names = [str(a) for a in attribute_names]
            if self.num_attributes is not None and len(attribute_names) != self.num_attributes:
                raise AttributeMatrixError(
                    f"{len(attribute_names)} attribute names for a model with {self.num_attributes} attributes"
                )
        self.attribute_names: list[str] | None = attribute_names

        self.class_attributes: torch.Tensor | None = None
        names = [str(n) for n in class_names] if class_names is not None else None
        if class_attributes is not None:
            if not self.is_zeromamba:
                raise AttributeMatrixError(
                    "class_attributes need a ZeroMamba model; this model is a plain classifier (give class_names only)"
                )
            self.class_attributes, names = load_class_attributes(
                class_attributes, self.num_attributes, class_names=names, attribute_names=attribute_names
            )
        elif names is not None and self.is_zeromamba:
            raise AttributeMatrixError("class_names given without class_attributes; pass both")
        elif names is not None:
            n_out = getattr(model, "num_classes", None)
            if n_out is not None and n_out != len(names):
                raise AttributeMatrixError(f"{len(names)} class names for a classifier with {n_out} outputs")
        self.class_names: list[str] | None = names
        num_classes = self._num_own_classes()
        if seen is not None and num_classes is None:
            raise AttributeMatrixError("seen classes given but the predictor has no classes; pass class_attributes")
        self.seen: torch.Tensor | None = _resolve_seen(seen, num_classes or 0, names) if seen is not None else None
        self.gamma = _check_gamma(gamma)
        self.preprocess: dict[str, Any] = resolve_preprocess(preprocess)
        if int(batch_size) < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)

    # --- public API --------------------------------------------------------------------------------

    @property
    def num_classes(self) -> int | None:
        """How many classes the predictor has of its own (``None``: none)."""
        return self._num_own_classes()

    def save_pretrained(self, directory: str | os.PathLike) -> Any:
        """Write ``model.safetensors`` + ``config.json`` (see :func:`zeromamba.hub.save_pretrained`)."""
        from .format import save_pretrained

        return save_pretrained(self, directory)

    def classify(
        self,
        images: ImageInput | Sequence[ImageInput],
        attributes: ClassAttributes | None = None,
        class_names: Sequence[str] | str | os.PathLike | None = None,
        top_k: int | None = 5,
        gamma: float | None = None,
        seen: Any = None,
    ) -> ClassificationResult | ResultList[ClassificationResult]:
        """Rank classes for each image.

        Args:
            images: one input or a list (see :mod:`zeromamba.images` for the conventions; float
                tensors are taken as already preprocessed).
            attributes: classes to score against instead of the predictor's own: a ``C x A``
                matrix, a dict name -> vector, or a ``.csv`` / ``.npy`` file
                (see :func:`load_class_attributes`). Rows are L2-normalised.
            class_names: names for the rows (override names from a dict or CSV).
            top_k: how many classes to list (``None``: all).
            gamma: calibration strength (default: the predictor's).
            seen: which classes count as seen (mask or indices; default: the predictor's own for
                its own classes, none for ``attributes``). Calibrated stacking applies when some
                class is seen and ``gamma`` is non-zero.

        Returns:
            A :class:`ClassificationResult` for a single image (a path, PIL image, array or 3-D
            tensor), else a :class:`ResultList` of them.

        Raises:
            ImageError: an image cannot be read. AttributeMatrixError: bad classes or seen mask.
        """
        if top_k is not None and int(top_k) < 1:
            raise ValueError(f"top_k must be at least 1 (or None for all classes), got {top_k}")
        classes = self._classes(attributes, class_names, seen, gamma)
        sources, single = _as_list(images)
        prepared = self._prepare(sources)
        results: ResultList[ClassificationResult] = ResultList()
        if prepared:
            out = self._run(prepared, attention=False)
            scores = out["scores"] if classes.matrix is None else class_scores(out["attributes"], classes.matrix)
            results.extend(self._rank(scores, classes, top_k, [p.source for p in prepared]))
        return results[0] if single else results

    def predict_attributes(
        self, images: ImageInput | Sequence[ImageInput]
    ) -> AttributePrediction | ResultList[AttributePrediction]:
        """The predicted attribute vector of each image (one result for a single image, else a list)."""
        self._require_zeromamba("predict_attributes")
        sources, single = _as_list(images)
        prepared = self._prepare(sources)
        names = self._attribute_names()
        results: ResultList[AttributePrediction] = ResultList()
        if prepared:
            attrs = self._run(prepared, attention=False)["attributes"]
            for p, row in zip(prepared, attrs.tolist()):
                results.append(AttributePrediction(values=row, attribute_names=list(names), source=p.source))
        return results[0] if single else results

    def explain(
        self,
        image: ImageInput,
        classes_or_attributes: str | int | Sequence[str | int] | None = None,
        top_k: int = 6,
        *,
        attributes: ClassAttributes | None = None,
        class_names: Sequence[str] | str | os.PathLike | None = None,
        gamma: float | None = None,
        seen: Any = None,
    ) -> Explanation:
        """Where the model looked: the SLP attention maps of some attributes, at the image's size.

        Args:
            image: one image.
            classes_or_attributes: what to explain:

                * ``None``: the predicted class, through its ``top_k`` attributes with the largest
                  contribution ``attribute value * class attribute`` to its score (without classes:
                  the ``top_k`` highest predicted attributes);
                * a class name: that class, the same way;
                * attribute names or indices (ints are attribute indices): those attributes.
            top_k: how many attributes to show when choosing them automatically.
            attributes, class_names, gamma, seen: candidate classes, as in :meth:`classify`.

        Returns:
            An :class:`~zeromamba.explain.Explanation`; ``.save_png(path)`` renders it.
        """
        from .explain import build_explanation

        self._require_zeromamba("explain")
        if int(top_k) < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        have_classes = attributes is not None or self.class_attributes is not None
        classes = self._classes(attributes, class_names, seen, gamma) if have_classes else None
        sources, single = _as_list(image)
        prepared = self._prepare(sources, keep_image=True)
        if len(prepared) != 1:
            raise ImageError(f"explain takes one image, got {len(prepared)}; call it once per image")
        item = prepared[0]
        out = self._run(prepared, attention=True)
        values = out["attributes"][0]
        attention = out["attention"][0]  # (A, h, w)
        names = self._attribute_names()

        ranked = None
        if classes is not None:
            ranked = self._rank(class_scores(values[None], classes.matrix), classes, None, [item.source])[0]
        class_index = ranked.index if ranked is not None else None
        targets = _as_targets(classes_or_attributes)
        chosen: list[int]
        if targets:
            attr_lookup = {n: i for i, n in enumerate(names)}
            class_lookup = {n: i for i, n in enumerate(classes.names)} if classes is not None else {}
            chosen = []
            for t in targets:
                if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
                    if not 0 <= int(t) < len(names):
                        raise AttributeMatrixError(f"attribute index {t} out of range 0..{len(names) - 1}")
                    chosen.append(int(t))
                elif str(t) in attr_lookup:
                    chosen.append(attr_lookup[str(t)])
                elif str(t) in class_lookup and len(targets) == 1:
                    class_index = class_lookup[str(t)]
                    chosen = []
                    break
                else:
                    raise AttributeMatrixError(
                        f"{t!r} is neither an attribute name nor a class name; use names from "
                        "predictor.attribute_names / class_names, or attribute indices"
                    )
        else:
            chosen = []
        contributions = None
        if class_index is not None and classes is not None:
            contrib = values * classes.matrix[class_index]
            contributions = contrib
            if not chosen:
                chosen = torch.argsort(contrib, descending=True, stable=True)[: int(top_k)].tolist()
        if not chosen:
            chosen = torch.argsort(values, descending=True, stable=True)[: int(top_k)].tolist()

        class_info = None
        if class_index is not None and ranked is not None and classes is not None:
            pos = ranked.indices.index(class_index)
            class_info = {
                "index": class_index,
                "name": classes.names[class_index],
                "score": ranked.scores[pos],
                "probability": ranked.probabilities[pos],
                "rank": pos + 1,
                "predicted": ranked.names[0],
            }
        return build_explanation(
            image=item.display_image(self.preprocess["mean"], self.preprocess["std"]),
            attention=attention[chosen],
            box=item.box,
            attribute_indices=chosen,
            attribute_names=[names[i] for i in chosen],
            attribute_values=values[chosen].tolist(),
            contributions=contributions[chosen].tolist() if contributions is not None else None,
            class_info=class_info,
            source=item.source,
        )

    def __repr__(self) -> str:
        kind = type(self.model).__name__
        n = self.num_classes
        return (
            f"Predictor({kind}, classes={n if n is not None else 'none'}, attributes={self.num_attributes}, "
            f"seen={int(self.seen.sum()) if self.seen is not None else 'none'}, gamma={self.gamma}, "
            f"input={self.preprocess['input_size'][1:]}, device={self.device}, dtype={self.dtype})"
        )

    # --- internals ---------------------------------------------------------------------------------

    def _num_own_classes(self) -> int | None:
        if self.class_attributes is not None:
            return int(self.class_attributes.shape[0])
        if not self.is_zeromamba:
            n = getattr(self.model, "num_classes", None)
            return int(n) if n else (len(self.class_names) if self.class_names else None)
        return None

    def _require_zeromamba(self, what: str) -> None:
        if not self.is_zeromamba:
            raise ConfigError(f"{what} needs a ZeroMamba model; this predictor wraps a {type(self.model).__name__}")

    def _attribute_names(self) -> list[str]:
        if self.attribute_names is not None:
            return list(self.attribute_names)
        return [f"attribute {i}" for i in range(self.num_attributes or 0)]

    def _classes(self, attributes: Any, class_names: Any, seen: Any, gamma: float | None) -> _Classes:
        """Resolve the candidate classes of one call into an immutable snapshot."""
        gamma_value = _check_gamma(self.gamma if gamma is None else gamma)
        if attributes is not None:
            if not self.is_zeromamba:
                raise AttributeMatrixError(
                    f"attributes need a ZeroMamba model; this predictor wraps a {type(self.model).__name__}"
                )
            matrix, names = load_class_attributes(
                attributes, self.num_attributes, class_names=class_names, attribute_names=self.attribute_names
            )
            seen_mask = _resolve_seen(seen, matrix.shape[0], names)
        else:
            num = self._num_own_classes()
            if num is None:
                raise AttributeMatrixError(
                    "this predictor has no classes of its own; pass attributes= (a class-attribute matrix, dict or CSV)"
                )
            matrix = self.class_attributes
            names = self.class_names
            if class_names is not None:
                names = load_class_names(class_names)
                if len(names) != num:
                    raise AttributeMatrixError(f"{len(names)} class names for {num} classes; give one name per class")
            seen_mask = self.seen if seen is None else _resolve_seen(seen, num, names)
        num_classes = int(matrix.shape[0]) if matrix is not None else int(self._num_own_classes() or 0)
        names = list(names) if names is not None else [f"class {i}" for i in range(num_classes)]
        calibrate = seen_mask is not None and bool(seen_mask.any()) and gamma_value != 0.0
        return _Classes(matrix, names, seen_mask, gamma_value if calibrate else None, num_classes)

    def _prepare(self, sources: list[Any], keep_image: bool = False) -> list[PreparedImage]:
        prepared: list[PreparedImage] = []
        for i, src in enumerate(sources):
            prepared.extend(
                prepare_image(src, self.preprocess, index=i, max_pixels=self.max_pixels, keep_image=keep_image)
            )
        return prepared

    def _run(self, prepared: list[PreparedImage], attention: bool) -> dict[str, Any]:
        """Forward passes in batches of consecutive same-size inputs; float32 CPU outputs."""
        attrs, scores, maps = [], [], []
        i = 0
        # reduced precision runs under autocast as well: the model keeps its float32 islands
        # (the selective scan, LayerNorm) working with bfloat16/float16 weights
        low = self.dtype in (torch.float16, torch.bfloat16)
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=low)
        with torch.inference_mode(), autocast:
            while i < len(prepared):
                shape = prepared[i].tensor.shape
                j = i
                while j < len(prepared) and j - i < self.batch_size and prepared[j].tensor.shape == shape:
                    j += 1
                x = torch.stack([p.tensor for p in prepared[i:j]]).to(self.device, self.dtype, non_blocking=True)
                out = self.model(x)
                if self.is_zeromamba:
                    attrs.append(out.attributes.float().cpu())
                    if attention:
                        h, w = out.features.shape[-2:]
                        maps.extend(out.attention.float().cpu().unflatten(-1, (h, w)))
                else:
                    logits = out if isinstance(out, torch.Tensor) else out[0]
                    scores.append(logits.float().cpu())
                i = j
        result: dict[str, Any] = {}
        if attrs:
            result["attributes"] = torch.cat(attrs)
        if scores:
            result["scores"] = torch.cat(scores)
        if attention:
            result["attention"] = maps
        return result

    def _rank(
        self, scores: torch.Tensor, classes: _Classes, top_k: int | None, sources: list[str]
    ) -> list[ClassificationResult]:
        scores = scores.float()
        probs = torch.softmax(scores, dim=-1)
        calibrated = None
        ranking = scores
        if classes.gamma is not None and classes.seen is not None:
            calibrated = calibrated_stacking(scores, classes.seen, classes.gamma)
            ranking = calibrated
        k = scores.shape[-1] if top_k is None else min(int(top_k), scores.shape[-1])
        # a stable sort so ties rank by class index, the same in every call
        order = torch.argsort(ranking, dim=-1, descending=True, stable=True)[:, :k]
        results = []
        for b, src in enumerate(sources):
            idx = order[b].tolist()
            results.append(
                ClassificationResult(
                    indices=idx,
                    names=[classes.names[i] for i in idx],
                    scores=scores[b, idx].tolist(),
                    probabilities=probs[b, idx].tolist(),
                    calibrated=calibrated[b, idx].tolist() if calibrated is not None else None,
                    seen=classes.seen[idx].tolist() if classes.seen is not None else None,
                    gamma=classes.gamma,
                    num_classes=classes.num_classes,
                    source=src,
                )
            )
        return results


def _resolve_dtype(dtype: str | torch.dtype | None, model: nn.Module) -> torch.dtype:
    if dtype is None:
        param = next(model.parameters(), None)
        return param.dtype if param is not None else torch.float32
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating point type, got {dtype}")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    return _DTYPES[key]


def _check_gamma(gamma: Any) -> float:
    try:
        value = float(gamma)
    except (TypeError, ValueError):
        raise ConfigError(f"gamma must be a number, got {gamma!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"gamma must be finite, got {gamma!r}")
    return value


def _as_list(images: Any) -> tuple[list[Any], bool]:
    """``(inputs, single)``: a list/tuple is many images; anything else (a 4-D tensor too) is one input."""
    if isinstance(images, (list, tuple)):
        return list(images), False
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return [images], False
    return [images], True


def _as_targets(targets: Any) -> list[Any]:
    if targets is None:
        return []
    if isinstance(targets, (str, int, np.integer)):
        return [targets]
    return list(targets)
