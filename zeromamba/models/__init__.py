"""Model definitions: the VMamba v2 and Vim backbones and ZeroMamba on each (registered with timm on import)."""

from ..scoring import calibrated_stacking, class_scores
from .vim import Vim
from .vmamba import SS2D, VMamba, VMambaStage, VSSBlock
from .zeromamba import SemanticFusion, SemanticLocalProjection, ZeroMamba, ZeroMambaOutput
from .zeromamba_vim import ZeroMambaVim

__all__ = [
    "SS2D",
    "SemanticFusion",
    "SemanticLocalProjection",
    "VMamba",
    "VMambaStage",
    "VSSBlock",
    "Vim",
    "ZeroMamba",
    "ZeroMambaOutput",
    "ZeroMambaVim",
    "calibrated_stacking",
    "class_scores",
]
