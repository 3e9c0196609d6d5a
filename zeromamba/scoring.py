"""How a predicted attribute vector scores classes, and GZSL calibrated stacking.

A leaf used by the model, the metrics and the predictor alike, so all three rank classes the same
way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from .errors import NonFiniteOutputError

__all__ = ["calibrated_stacking", "class_scores", "require_finite"]


def class_scores(attributes: torch.Tensor, class_attributes: torch.Tensor) -> torch.Tensor:
    """``(N, A) @ (C, A).T -> (N, C)``: each class scores the dot product with its attribute row."""
    return attributes @ class_attributes.to(attributes.dtype).T


def calibrated_stacking(scores: torch.Tensor, seen: torch.Tensor, gamma: float) -> torch.Tensor:
    """``softmax(scores) - gamma * seen``: GZSL calibrated stacking in probability units."""
    return torch.softmax(scores, dim=-1) - gamma * seen.to(scores.dtype)


def require_finite(values: torch.Tensor, what: str, sources: Sequence[Any], dtype: torch.dtype | None = None) -> None:
    """Raise :class:`~zeromamba.errors.NonFiniteOutputError` when a row of ``values`` (one per source)
    holds NaN or inf, naming the inputs; a result with such scores never leaves the predictor."""
    finite = torch.isfinite(values.reshape(values.shape[0], -1)).all(dim=1)
    if bool(finite.all()):
        return
    bad = [str(sources[i]) for i in torch.nonzero(~finite).flatten().tolist()]
    low = dtype in (torch.float16, torch.bfloat16)
    raise NonFiniteOutputError(
        f"the model produced NaN or inf {what} for {len(bad)} of {len(sources)} input(s) "
        f"({', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}), so no class can be ranked. This usually means "
        "the weights hold NaN/inf or extreme values (a damaged file, or a training run that diverged), "
        + ("or that this low-precision dtype overflowed (try dtype=torch.float32), " if low else "")
        + "or that the input is far outside what the model was trained on (e.g. a tensor not normalised "
        "as predictor.transform does)."
    )
