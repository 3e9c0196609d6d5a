"""How a predicted attribute vector scores classes, and GZSL calibrated stacking.

A leaf used by the model, the metrics and the predictor alike, so all three rank classes the same
way.
"""

from __future__ import annotations

import torch

__all__ = ["calibrated_stacking", "class_scores"]


def class_scores(attributes: torch.Tensor, class_attributes: torch.Tensor) -> torch.Tensor:
    """``(N, A) @ (C, A).T -> (N, C)``: each class scores the dot product with its attribute row."""
    return attributes @ class_attributes.to(attributes.dtype).T


def calibrated_stacking(scores: torch.Tensor, seen: torch.Tensor, gamma: float) -> torch.Tensor:
    """``softmax(scores) - gamma * seen``: GZSL calibrated stacking in probability units."""
    return torch.softmax(scores, dim=-1) - gamma * seen.to(scores.dtype)
