"""Model definitions: the VMamba v2 backbone and ZeroMamba (registered with timm on import)."""

from .vmamba import SS2D, VMamba, VMambaStage, VSSBlock
from .zeromamba import (
    SemanticFusion,
    SemanticLocalProjection,
    ZeroMamba,
    ZeroMambaOutput,
    calibrated_stacking,
    class_scores,
)

__all__ = [
    "SS2D",
    "SemanticFusion",
    "SemanticLocalProjection",
    "VMamba",
    "VMambaStage",
    "VSSBlock",
    "ZeroMamba",
    "ZeroMambaOutput",
    "calibrated_stacking",
    "class_scores",
]
