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
from ..models._helpers import check_finite, load_state_dict_strict
from .config import CONFIG_NAME, WEIGHTS_NAME, build_model, describe_model, read_config
from .config_values import confined_file_name
from .weights import read_weights

__all__ = ["LoadedModel", "attach_pretrained_cfg", "load_folder", "load_safetensors"]


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


def attach_pretrained_cfg(model: nn.Module, config: Mapping[str, Any], tag: str | None = None) -> nn.Module:
    """Give a loaded model its ``pretrained_cfg``, as timm gives the models it builds: the config's
    (timm's keys: preprocessing, head), its ``architecture``, the zoo ``tag`` (given, or that of the
    config's ``variant`` record), and zeromamba's ``object_extent`` and ``dataset``; so that the
    model alone carries its preprocessing (``timm.data.resolve_data_config(model=model)``,
    ``Predictor(model)``) and what it is (``save_pretrained``)."""
    cfg: dict[str, Any] = {
        k: tuple(v) if isinstance(v, list) else v for k, v in (config.get("pretrained_cfg") or {}).items()
    }
    cfg["architecture"] = config["architecture"]
    record = config.get("variant")
    timm_name = record.get("timm_name") if isinstance(record, Mapping) else None
    tag = tag or (str(timm_name).partition(".")[2] if timm_name else None)
    if tag:
        cfg["tag"] = tag
    if config.get("object_extent") is not None:
        cfg["object_extent"] = [float(v) for v in config["object_extent"]]
    if config.get("dataset"):
        cfg["dataset"] = str(config["dataset"])
    model.pretrained_cfg = model.default_cfg = cfg  # type: ignore[assignment]
    return model


def load_safetensors(
    path: Path, what: str, expected: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors, read as :func:`~zeromamba.format.weights.read_weights` reads them
    (a regular file, a valid header, names/shapes/dtype kinds against ``expected`` when given, finite)."""
    return read_weights(Path(path), what, expected)


def load_folder(folder: str | os.PathLike, source: str | None = None) -> LoadedModel:
    """Load a complete model folder: config, weights (strictly, eval mode), class-attribute matrix.

    ``source`` names the folder in error messages (default: its path). Nothing large is allocated
    before the config's arguments and the weights file's header have been checked: the model is first
    described on the ``meta`` device, and the weights' names, shapes and dtypes compared with it.

    Raises:
        ConfigError: a config this release cannot read (a value of the wrong type or range, a model too
            large to build, a file named outside the folder), or class data that disagrees with the model.
        CheckpointError: missing, corrupt or truncated safetensors, a tensor of the wrong dtype or with
            NaN/inf, a class matrix that does not match its recorded SHA-256, or weights that do not fit
            the config.
    """
    folder = Path(folder)
    source = source or repr(os.fspath(folder))
    cfg = read_config(folder / CONFIG_NAME)
    expected = describe_model(cfg, source).state_dict()
    state = load_safetensors(folder / WEIGHTS_NAME, source, expected)
    model = build_model(cfg, source, described=True)
    load_state_dict_strict(model, state, f"{source} ({WEIGHTS_NAME})")
    model.eval()
    matrix = None
    ca = cfg.get("class_attributes")
    if ca:
        name = confined_file_name(ca.get("file"), source, "class_attributes.file")
        file = folder / name
        tensors = load_safetensors(file, source)
        if ca.get("sha256"):
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            if digest != ca["sha256"]:
                raise CheckpointError(
                    f"{source}: {name} does not match the SHA-256 recorded in config.json (corrupt or "
                    "replaced); download or re-save the model"
                )
        key = str(ca.get("tensor", "class_attributes"))
        if key not in tensors:
            raise CheckpointError(f"{source}: {name} has no tensor {key!r}")
        if not tensors[key].is_floating_point() or tensors[key].dim() != 2:
            raise CheckpointError(
                f"{source}: {name}'s {key!r} must be a 2-D float matrix (classes x attributes), "
                f"got {tensors[key].dtype} of shape {list(tensors[key].shape)}"
            )
        matrix = tensors[key].float()
        check_finite({f"{name}'s {key!r} as float32": matrix}, source)  # a float64 of 1e300 becomes inf
        if ca.get("shape") and list(matrix.shape) != list(ca["shape"]):
            raise CheckpointError(
                f"{source}: {name} holds a {list(matrix.shape)} matrix, config.json says {ca['shape']}"
            )
    _check_classes(cfg, model, matrix, source)
    attach_pretrained_cfg(model, cfg)
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
