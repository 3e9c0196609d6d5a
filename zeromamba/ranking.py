"""The candidate classes of a prediction and how they are ranked: a frozen snapshot per call
(:class:`Candidates`), the ranking into :class:`~zeromamba.results.ClassificationResult`
(:func:`rank_classes`, GZSL calibrated stacking when some class is seen), and what ``explain``'s
``target`` names (:func:`resolve_targets`) and shows (:func:`explanation_target`)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .confidence import confidence_note
from .errors import AttributeMatrixError, ConfigError
from .results import ClassificationResult
from .scoring import calibrated_stacking, class_scores

__all__ = [
    "Candidates",
    "ExplanationTarget",
    "as_targets",
    "check_gamma",
    "explanation_target",
    "rank_classes",
    "resolve_targets",
]


@dataclass(frozen=True)
class Candidates:
    """The candidate classes of one call, frozen (so calls never share mutable state): the
    normalised matrix (``None`` for a plain classifier), names, seen mask and the gamma that
    applies (``None``: no calibration)."""

    matrix: torch.Tensor | None  # (C, A) normalised; None for a plain classifier
    names: list[str]
    seen: torch.Tensor | None
    gamma: float | None  # None: no calibration
    num_classes: int = field(default=0)


def rank_classes(
    scores: torch.Tensor, classes: Candidates, top_k: int | None, sources: list[str]
) -> list[ClassificationResult]:
    """One result per row of ``scores`` (B, C): the classes ordered by the calibrated score when
    ``classes`` calibrate, else by the raw score; ties by class index."""
    scores = scores.float()
    probs = torch.softmax(scores, dim=-1)
    calibrated = None
    ranking = scores
    if classes.gamma is not None and classes.seen is not None:
        calibrated = calibrated_stacking(scores, classes.seen, classes.gamma)
        ranking = calibrated
    k = scores.shape[-1] if top_k is None else min(int(top_k), scores.shape[-1])
    # a stable sort so ties rank by class index, the same in every call
    full_order = torch.argsort(ranking, dim=-1, descending=True, stable=True)
    order = full_order[:, :k]
    # the confidence rule compares the first two in probability units (the calibrated value, or the probability)
    values = calibrated if calibrated is not None else probs
    results = []
    for b, src in enumerate(sources):
        idx = order[b].tolist()
        first = int(full_order[b, 0])
        second = int(full_order[b, 1]) if full_order.shape[1] > 1 else None
        note = confidence_note(
            float(probs[b, first]),
            float(values[b, first]),
            None if second is None else float(values[b, second]),
            scores.shape[-1],
            "" if second is None else classes.names[second],
        )
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
                low_confidence=bool(note),
                confidence_note=note,
            )
        )
    return results


def check_gamma(gamma: Any) -> float:
    try:
        value = float(gamma)
    except (TypeError, ValueError):
        raise ConfigError(f"gamma must be a number, got {gamma!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"gamma must be finite, got {gamma!r}")
    return value


def resolve_targets(
    targets: list[Any], names: list[str], classes: Candidates | None, class_index: int | None
) -> tuple[list[int], int | None]:
    """``(attribute indices, class index)`` that ``explain`` targets name: attribute indices or names,
    or a single class name (then no attributes: the class's top contributors are chosen)."""
    attr_lookup = {n: i for i, n in enumerate(names)}
    class_lookup = {n: i for i, n in enumerate(classes.names)} if classes is not None else {}
    chosen: list[int] = []
    for t in targets:
        if isinstance(t, (int, np.integer)) and not isinstance(t, bool):
            if not 0 <= int(t) < len(names):
                raise AttributeMatrixError(f"attribute index {t} out of range 0..{len(names) - 1}")
            chosen.append(int(t))
        elif str(t) in attr_lookup:
            chosen.append(attr_lookup[str(t)])
        elif str(t) in class_lookup and len(targets) == 1:
            return [], class_lookup[str(t)]
        else:
            raise AttributeMatrixError(
                f"{t!r} is neither an attribute name nor a class name; use names from "
                "predictor.attribute_names / class_names, or attribute indices"
            )
    return chosen, class_index


def as_targets(targets: Any) -> list[Any]:
    if targets is None:
        return []
    if isinstance(targets, (str, int, np.integer)):
        return [targets]
    return list(targets)


@dataclass(frozen=True)
class ExplanationTarget:
    """What an explanation shows: the attributes (indices), each attribute's contribution
    ``value * class attribute`` to the explained class's score, and that class (index, name,
    score, probability, rank, the predicted class); the last two ``None`` without a class."""

    attributes: list[int]
    contributions: torch.Tensor | None
    class_info: dict[str, Any] | None


def explanation_target(
    values: torch.Tensor, classes: Candidates | None, target: Any, names: list[str], top_k: int, source: str
) -> ExplanationTarget:
    """The attributes and class that ``explain(image, target, top_k)`` shows for one image's predicted
    attribute ``values`` (A,): the named attributes, else the ``top_k`` largest contributors to the
    named (or predicted) class's score, leaving out attributes that contribute nothing, else (no
    classes) the ``top_k`` highest predicted attributes."""
    ranked = None
    if classes is not None:
        ranked = rank_classes(class_scores(values[None], classes.matrix), classes, None, [source])[0]
    class_index = ranked.index if ranked is not None else None
    chosen, class_index = resolve_targets(as_targets(target), names, classes, class_index)
    contributions = None
    if class_index is not None and classes is not None:
        contributions = values * classes.matrix[class_index]
        if not chosen:
            # attributes the class does not have (a 0 in its row) contribute nothing: never shown
            order = torch.argsort(contributions, descending=True, stable=True).tolist()
            chosen = [i for i in order if contributions[i] != 0][:top_k]
    if not chosen:
        chosen = torch.argsort(values, descending=True, stable=True)[:top_k].tolist()
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
    return ExplanationTarget(chosen, contributions, class_info)
