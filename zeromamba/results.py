"""What the predictor returns: per-image results that print as tables and convert to dicts/JSON,
and :class:`ImageFailure`, an image that could not be read in a run that skips such images."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from .terminal import terminal_safe

__all__ = [
    "AttributePrediction",
    "ClassificationResult",
    "ImageFailure",
    "ResultList",
    "format_table",
    "spreadsheet_safe",
]

T = TypeVar("T")


def _fmt(x: float) -> str:
    return f"{x:.4f}" if abs(x) < 1000 else f"{x:.4g}"


def _prob(x: float) -> str:
    return f"{x:.4f}"


# a spreadsheet reads a cell starting with one of these as a formula (=HYPERLINK(...), +cmd|...)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: Any) -> Any:
    """A CSV cell that a spreadsheet shows as text, never runs as a formula (OWASP's advice on CSV
    injection): a string starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a
    leading apostrophe (``'=HYPERLINK(...)``). Numbers and other strings are returned as they are;
    the CSV writer quotes separators and quotes."""
    if isinstance(cell, str) and cell.startswith(_FORMULA_START):
        return "'" + cell
    return cell


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> list[str]:
    """Plain-text columns; ``align`` has one ``<``/``>`` per column. Cells are shown terminal-safe
    (a control character in a name is an escape, never a line break or a terminal command)."""
    header = [terminal_safe(h) for h in header]
    rows = [[terminal_safe(c) for c in r] for r in rows]
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
        low_confidence: the answer should not be trusted: its probability is near chance (the
            image fits none of the classes well) or it leads the second class by a hair
            (the rule: :mod:`zeromamba.confidence`).
        confidence_note: why it is low confidence (``""`` when it is not).
        attribute_values: the image's predicted attribute vector, when it was asked for
            (``classify_iter(..., with_attribute_values=True)``), else ``None``.
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
    low_confidence: bool = False
    confidence_note: str = ""
    attribute_values: list[float] | None = None

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

    @property
    def ranked_by(self) -> str:
        """What ordered the classes: ``"calibrated"`` (probability minus gamma for seen classes) or
        ``"score"`` (the raw score; the probability orders them the same way)."""
        return "calibrated" if self.calibrated is not None else "score"

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types only (JSON-serialisable); :meth:`from_dict` reverses it."""
        return asdict(self)

    def to_record(self) -> dict[str, Any]:
        """One JSON-able record for this image, one entry per listed class (what ``zeromamba
        classify --format json/jsonl`` writes)::

            {"image": "a.jpg", "ranked_by": "calibrated", "gamma": 0.3, "num_classes": 200,
             "low_confidence": false, "confidence_note": "",
             "predictions": [{"rank": 1, "class": "...", "index": 3, "score": 5.7,
                              "probability": 0.61, "calibrated": 0.61, "seen": false}, ...]}

        plus ``"attribute_values": [...]`` when the result carries them.
        """
        predictions = []
        for r in range(self.top_k):
            entry: dict[str, Any] = {
                "rank": r + 1,
                "class": self.names[r],
                "index": self.indices[r],
                "score": self.scores[r],
                "probability": self.probabilities[r],
            }
            if self.calibrated is not None:
                entry["calibrated"] = self.calibrated[r]
            if self.seen is not None:
                entry["seen"] = self.seen[r]
            predictions.append(entry)
        record = {
            "image": self.source,
            "ranked_by": self.ranked_by,
            "gamma": self.gamma,
            "num_classes": self.num_classes,
            "low_confidence": self.low_confidence,
            "confidence_note": self.confidence_note,
            "predictions": predictions,
        }
        if self.attribute_values is not None:
            record["attribute_values"] = self.attribute_values
        return record

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassificationResult:
        return cls(**dict(data))

    def __str__(self) -> str:
        # the column that ranks comes first after the class, and the heading names it
        if self.calibrated is not None:
            mode = f"ranked by calibrated = prob - {self.gamma:g} x seen (GZSL calibrated stacking)"
            columns = [("calibrated", self.calibrated, _fmt), ("prob", self.probabilities, _prob)]
            columns.append(("score", self.scores, _fmt))
        else:
            mode = "ranked by score, uncalibrated"
            columns = [("score", self.scores, _fmt), ("prob", self.probabilities, _prob)]
        head = f"{terminal_safe(self.source or 'image')}  ({self.num_classes} classes, {mode})"
        if self.low_confidence:
            head += "  [LOW CONFIDENCE]"
        header = ["rank", "class", "index", *(c[0] for c in columns)]
        align = "><>" + ">" * len(columns)
        if self.seen is not None:
            header.append("seen")
            align += "<"
        rows = []
        for r in range(self.top_k):
            row = [str(r + 1), self.names[r], str(self.indices[r]), *(f(values[r]) for _, values, f in columns)]
            if self.seen is not None:
                row.append("seen" if self.seen[r] else "unseen")
            rows.append(row)
        lines = [head, *format_table(header, rows, align)]
        if self.low_confidence:
            lines.append(f"low confidence: {terminal_safe(self.confidence_note)}")
        return "\n".join(lines)


@dataclass
class ImageFailure:
    """An image that could not be read, in a run that reports and skips such images
    (:meth:`~zeromamba.predictor.Predictor.classify_iter` with ``skip_errors=True``).

    Attributes:
        source: which image (its path or URL, or ``image <i>``).
        reason: why, as the :class:`~zeromamba.errors.ImageError` said it.
    """

    source: str
    reason: str

    def to_record(self) -> dict[str, Any]:
        """``{"image": source, "error": reason}``."""
        return {"image": self.source, "error": self.reason}

    def __str__(self) -> str:
        return terminal_safe(f"{self.source}: skipped: {self.reason}")


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
        head = f"{terminal_safe(self.source or 'image')}  (top {len(top)} of {len(self.values)} attributes)"
        return "\n".join([head, *format_table(["rank", "attribute", "value"], rows, "><>")])


class ResultList(list, Generic[T]):
    """A list of per-image results that prints as tables and converts to dicts/JSON."""

    def to_dict(self) -> dict[str, Any]:
        """``{"results": [result.to_dict(), ...]}``."""
        return {"results": [r.to_dict() for r in self]}

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def __str__(self) -> str:
        return "\n\n".join(str(r) for r in self)
