"""Loading a saved model folder (see :mod:`zeromamba.format`): never a pickle, always strict."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..constants import PREPROCESS_KEYS
from ..errors import CheckpointError, ConfigError
from ..models._helpers import load_state_dict_strict
from .config import CONFIG_NAME, WEIGHTS_NAME, build_model, read_config

__all__ = ["LoadedModel", "load_folder", "load_safetensors"]


@dataclass
class LoadedModel:
    """A model folder as loaded: its ``config`` (``config.json``), the ``model`` (eval mode), the
    ``class_attributes`` matrix (``None`` when the folder has none) and a description of the ``source``."""

    config: dict[str, Any]
    model: nn.Module
    class_attributes: torch.Tensor | None
    source: str

    @property
    def gamma(self) -> float:
        """The calibrated-stacking gamma saved with the model (0 when none was)."""
        return float(self.config.get("gamma") or 0.0)

    @property
    def preprocess(self) -> dict[str, Any]:
        """The saved preprocessing (``input_size``, ``mean``, ``std``, ...), as tuples."""
        pc = self.config.get("pretrained_cfg", {})
        out = {k: tuple(pc[k]) if isinstance(pc[k], list) else pc[k] for k in PREPROCESS_KEYS if k in pc}
        if self.config.get("object_extent") is not None:  # object framing (zeromamba.framing)
            out["object_extent"] = tuple(self.config["object_extent"])
        return out

    @property
    def seen(self) -> torch.Tensor | None:
        """A boolean mask of the seen classes, or ``None``."""
        if self.config.get("seen_classes") is None or self.class_attributes is None:
            return None
        mask = torch.zeros(self.class_attributes.shape[0], dtype=torch.bool)
        mask[torch.as_tensor(self.config["seen_classes"], dtype=torch.long)] = True
        return mask


def load_safetensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    import safetensors.torch

    try:
        return safetensors.torch.load_file(str(path), device="cpu")
    except FileNotFoundError:
        raise CheckpointError(f"{what}: {str(path)!r} is missing") from None
    except Exception as e:  # SafetensorError: truncated, corrupt header, not a safetensors file
        raise CheckpointError(
            f"{what}: {str(path)!r} is not a valid safetensors file (corrupt or truncated: {e}). "
            "If it was downloaded, download it again (from_pretrained(..., force_download=True)); "
            "otherwise re-save or re-convert the model."
        ) from None


def load_folder(folder: str | os.PathLike, source: str | None = None) -> LoadedModel:
    """Load a complete model folder: config, weights (strictly, eval mode), class-attribute matrix.

    ``source`` names the folder in error messages (default: its path).

    Raises:
        ConfigError: a config this release cannot read, or class data that disagrees with the model.
        CheckpointError: missing, corrupt or truncated safetensors, a class matrix that does not match
            its recorded SHA-256, or weights that do not fit the config.
    """
    folder = Path(folder)
    source = source or repr(os.fspath(folder))
    cfg = read_config(folder / CONFIG_NAME)
    state = load_safetensors(folder / WEIGHTS_NAME, source)
    model = build_model(cfg, source)
    load_state_dict_strict(model, state, f"{source} ({WEIGHTS_NAME})")
    model.eval()
    matrix = None
    ca = cfg.get("class_attributes")
    if ca:
        if not isinstance(ca, dict) or "file" not in ca:
            raise ConfigError(f"{source}: 'class_attributes' must be an object naming its file")
        file = folder / str(ca["file"])
        if file.exists() and ca.get("sha256"):
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            if digest != ca["sha256"]:
                raise CheckpointError(
                    f"{source}: {ca['file']} does not match the SHA-256 recorded in config.json (corrupt or "
                    "replaced); download or re-save the model"
                )
        tensors = load_safetensors(file, source)
        name = str(ca.get("tensor", "class_attributes"))
        if name not in tensors:
            raise CheckpointError(f"{source}: {ca['file']} has no tensor {name!r}")
        matrix = tensors[name].float()
        if ca.get("shape") and list(matrix.shape) != list(ca["shape"]):
            raise CheckpointError(
                f"{source}: {ca['file']} holds a {list(matrix.shape)} matrix, config.json says {ca['shape']}"
            )
    _check_classes(cfg, model, matrix, source)
    return LoadedModel(cfg, model, matrix, source)


def _check_classes(cfg: Mapping[str, Any], model: nn.Module, matrix: torch.Tensor | None, source: str) -> None:
    """The class data in a config agrees with itself and with the model."""
    n = int(matrix.shape[0]) if matrix is not None else None
    if matrix is not None and matrix.shape[1] != getattr(model, "num_attributes", -1):
        raise ConfigError(
            f"{source}: the class-attribute matrix has {matrix.shape[1]} columns, the model predicts "
            f"{getattr(model, 'num_attributes', None)} attributes"
        )
    names = cfg.get("class_names")
    if names is not None:
        expected = n if matrix is not None else getattr(model, "num_classes", None)
        if not isinstance(names, list) or (expected is not None and len(names) != expected):
            raise ConfigError(f"{source}: config.json's class_names must list {expected} names")
    seen = cfg.get("seen_classes")
    if seen is not None:
        if n is None or not isinstance(seen, list) or not all(isinstance(i, int) and 0 <= i < n for i in seen):
            raise ConfigError(f"{source}: config.json's seen_classes must be class indices in [0, {n})")
    attrs = cfg.get("attribute_names")
    if attrs is not None and (not isinstance(attrs, list) or len(attrs) != getattr(model, "num_attributes", -1)):
        raise ConfigError(f"{source}: config.json's attribute_names must list one name per attribute")
