"""What an exported file computes: the predictor's head as one module, images in, named outputs out.

:class:`PredictorGraph` wraps a copy of the model set up for graphs (float32, CPU, eval, the
``"chunked"`` scan of :mod:`zeromamba.ops.chunked_scan`, plain linear layers) with the predictor's
classes baked in as constants:

* ``attributes`` ``(B, A)``: the fused attribute prediction (``predictor.predict_attributes``);
* ``class_scores`` ``(B, C)``: ``attributes @ class_attributes.T`` (rows L2-normalised, as the
  predictor scores), when the predictor has classes;
* ``calibrated_scores`` ``(B, C)``: ``softmax(class_scores) - gamma * seen`` (GZSL calibrated
  stacking, what ``classify`` ranks by), when some class is seen and ``gamma`` is not 0;
* ``logits`` ``(B, K)`` for a plain classifier (a VMamba or Vim ImageNet backbone).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn as nn

from ..errors import ExportError
from ..models.vim import Vim
from ..models.vmamba import VMamba
from ..models.zeromamba import ZeroMamba
from ..predictor import Predictor
from ..scoring import calibrated_stacking, class_scores

__all__ = ["GRAPH_SCAN_BACKEND", "PredictorGraph", "graph_copy"]

#: the scan backend of every exported / compiled copy: plain tensor ops only
GRAPH_SCAN_BACKEND = "chunked"


def graph_copy(model: nn.Module) -> nn.Module:
    """A float32 CPU eval copy of ``model`` that traces into plain ops (the ``"chunked"`` scan; the
    oneDNN linear layers switch themselves off while a graph is traced)."""
    if not isinstance(model, (ZeroMamba, VMamba, Vim)):
        raise ExportError(
            f"zeromamba exports its own architectures (ZeroMamba, VMamba, Vim); got a {type(model).__name__}. "
            "Use torch.onnx.export for other models"
        )
    clone = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    clone.set_scan_backend(GRAPH_SCAN_BACKEND)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


class PredictorGraph(nn.Module):
    """``images (B, 3, H, W) float32 -> tuple of outputs`` named by :attr:`output_names` (see the
    module docs). Build it with :meth:`from_predictor` or :meth:`from_model`."""

    def __init__(
        self,
        model: nn.Module,
        class_attributes: torch.Tensor | None = None,
        seen: torch.Tensor | None = None,
        gamma: float = 0.0,
    ):
        super().__init__()
        self.model = graph_copy(model)
        self.is_zeromamba = isinstance(model, ZeroMamba)
        self.has_classes = self.is_zeromamba and class_attributes is not None
        self.calibrates = self.has_classes and seen is not None and bool(seen.any()) and float(gamma) != 0.0
        self.gamma = float(gamma)
        if self.has_classes:
            self.register_buffer("class_attributes", class_attributes.detach().float().cpu().clone())
        if self.calibrates:
            self.register_buffer("seen", seen.detach().cpu().to(torch.float32).clone())

    @classmethod
    def from_predictor(cls, predictor: Predictor) -> PredictorGraph:
        """The predictor's model with its own classes, seen mask and ``gamma``."""
        return cls(predictor.model, predictor.class_attributes, predictor.seen, predictor.gamma)

    @classmethod
    def from_model(cls, model: nn.Module) -> PredictorGraph:
        """A model alone: attributes (ZeroMamba) or logits (a classifier)."""
        return cls(model)

    @property
    def output_names(self) -> list[str]:
        if not self.is_zeromamba:
            return ["logits"]
        names = ["attributes"]
        if self.has_classes:
            names.append("class_scores")
        if self.calibrates:
            names.append("calibrated_scores")
        return names

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.heads(self.model(images))

    def heads(self, out: Any) -> tuple[torch.Tensor, ...]:
        """The outputs from the model's own output (a ZeroMambaOutput, or logits)."""
        if not self.is_zeromamba:
            return (out if isinstance(out, torch.Tensor) else out[0],)
        attributes = out.attributes.float()
        if not self.has_classes:
            return (attributes,)
        scores = class_scores(attributes, self.class_attributes)
        if not self.calibrates:
            return attributes, scores
        return attributes, scores, calibrated_stacking(scores, self.seen, self.gamma)
