"""zeromamba: zero-shot image classification with ZeroMamba (Hou et al., AAAI 2025).

Importing the package registers its architectures with timm (``vmamba_tiny``, ``vmamba_small``,
``vmamba_base``, ``zeromamba_small``, ``zeromamba_nano``), so ``timm.create_model`` finds them too.
"""

from __future__ import annotations

from fnmatch import fnmatch
from typing import Any

import timm
import torch.nn as nn

from . import models, ops
from .architectures import VMAMBA_ARCHITECTURES, ZEROMAMBA_ARCHITECTURES
from .errors import CheckpointError, ZeroMambaError
from .hub import from_pretrained
from .models import VMamba, ZeroMamba, ZeroMambaOutput
from .official import load_official
from .predictor import ClassificationResult, Predictor
from .zoo import PretrainedVariant, list_pretrained

__version__ = "0.1.0"

# the architectures this package registers with timm
_ARCHITECTURES = (*VMAMBA_ARCHITECTURES, *ZEROMAMBA_ARCHITECTURES)


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Architectures (or, with ``pretrained=True``, ``architecture.tag`` weights) this package provides."""
    names = timm.list_models(pattern, pretrained=pretrained)
    return sorted(n for n in names if n.split(".")[0] in _ARCHITECTURES and fnmatch(n, pattern))


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a registered architecture by name (``timm.create_model`` restricted to this package).

    Example: ``create_model("zeromamba_small", num_attributes=312, semantic_dim=300)``.
    """
    if name.split(".")[0] not in _ARCHITECTURES:
        from difflib import get_close_matches

        close = get_close_matches(name.split(".")[0], _ARCHITECTURES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown architecture {name!r}; zeromamba provides {', '.join(_ARCHITECTURES)}.{hint}")
    return timm.create_model(name, pretrained=pretrained, **kwargs)


__all__ = [
    "CheckpointError",
    "ClassificationResult",
    "Predictor",
    "VMamba",
    "ZeroMamba",
    "ZeroMambaError",
    "ZeroMambaOutput",
    "PretrainedVariant",
    "create_model",
    "from_pretrained",
    "list_pretrained",
    "list_models",
    "load_official",
    "models",
    "ops",
]
