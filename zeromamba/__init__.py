"""zeromamba: zero-shot image classification with ZeroMamba (Hou et al., AAAI 2025).

Importing the package registers its architectures with timm (``vmamba_tiny``, ``vmamba_small``,
``vmamba_base``, ``zeromamba_small``, ``zeromamba_nano``), so ``timm.create_model`` finds them too.
The map of the package is ``docs/architecture.md``.
"""

from __future__ import annotations

from . import models, ops
from .errors import (
    AttributeMatrixError,
    CheckpointError,
    ConfigError,
    DataError,
    ImageError,
    ModelNotAvailableError,
    TrainingError,
    UnknownModelError,
    ZeroMambaError,
)
from .factory import create_model, from_pretrained, list_models
from .format import save_pretrained
from .hub import load_model
from .models import VMamba, ZeroMamba, ZeroMambaOutput
from .official import load_official
from .predictor import ClassificationResult, Predictor
from .version import __version__
from .zoo import PretrainedVariant, list_pretrained

__all__ = [
    "AttributeMatrixError",
    "CheckpointError",
    "ClassificationResult",
    "ConfigError",
    "DataError",
    "ImageError",
    "ModelNotAvailableError",
    "Predictor",
    "PretrainedVariant",
    "TrainingError",
    "UnknownModelError",
    "VMamba",
    "ZeroMamba",
    "ZeroMambaError",
    "ZeroMambaOutput",
    "__version__",
    "create_model",
    "from_pretrained",
    "list_models",
    "list_pretrained",
    "load_model",
    "load_official",
    "models",
    "ops",
    "save_pretrained",
]
