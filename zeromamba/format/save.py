"""Writing a model folder: ``model.safetensors`` + ``config.json`` (+ class matrix, model card).

Every file is written under a temporary name and renamed into place, and ``config.json`` is
written last: a folder never holds a half-written file, and a folder with a ``config.json`` is
complete.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn as nn

from ..architectures import vmamba_reduction
from ..classes import as_class_matrix, seen_indices
from ..constants import IMAGENET_PREPROCESS, PREPROCESS_KEYS, ZSL_PREPROCESS
from ..errors import ConfigError, DataError
from ..fileio import atomic_write, write_bytes, write_json
from ..models import Vim, ZeroMamba
from ..models.int8 import is_int8
from ..version import __version__
from ..zoo import PretrainedVariant, get_variant, variant_for_tag
from .config import (
    CLASS_ATTRIBUTES_NAME,
    CONFIG_NAME,
    FORMAT_VERSION,
    MODEL_CARD_NAME,
    WEIGHTS_NAME,
    json_safe,
    model_config,
    pretrained_cfg_fields,
)
from .model_card import render_model_card

__all__ = ["SavableModel", "save_pretrained"]


class SavableModel(Protocol):
    """What :func:`save_pretrained` reads from a predictor-like object (any attribute may be ``None``)."""

    model: nn.Module
    class_attributes: Any
    class_names: Sequence[str] | None
    attribute_names: Sequence[str] | None
    seen: Any
    gamma: float | None
    preprocess: Mapping[str, Any] | None


def _refuse_hf_cache(directory: Path) -> None:
    """Never write into the Hugging Face cache (its snapshot files are links to shared blobs)."""
    from huggingface_hub import constants

    target = directory.resolve()
    for cache in {constants.HF_HUB_CACHE, os.path.join(constants.HF_HOME, "hub")}:
        root = Path(cache).expanduser().resolve()
        if target == root or root in target.parents:
            raise ConfigError(
                f"refusing to write into the Hugging Face cache ({root}); save to a folder of your own instead"
            )


def _pretrained_cfg(
    model: nn.Module,
    model_args: Mapping[str, Any],
    variant: PretrainedVariant | None,
    preprocess: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The preprocessing and head description, in timm's ``pretrained_cfg`` vocabulary."""
    is_zsl = isinstance(model, ZeroMamba)
    base = dict(ZSL_PREPROCESS if is_zsl else IMAGENET_PREPROCESS)
    if variant is not None:
        base.update({k: v for k, v in variant.pretrained_cfg().items() if k in PREPROCESS_KEYS})
    if preprocess:
        base.update({k: v for k, v in dict(preprocess).items() if k in PREPROCESS_KEYS and v is not None})
    h, w = int(base["input_size"][-2]), int(base["input_size"][-1])
    stride = vmamba_reduction(len(model_args.get("depths", (0, 0, 0, 0))) - 1)
    cfg: dict[str, Any] = dict(
        input_size=[int(model_args.get("in_chans", 3)), h, w],
        interpolation=str(base["interpolation"]),
        crop_pct=float(base["crop_pct"]),
        crop_mode=str(base["crop_mode"]),
        mean=[float(x) for x in base["mean"]],
        std=[float(x) for x in base["std"]],
        pool_size=[max(1, h // stride), max(1, w // stride)],
        num_classes=int(model.num_classes),
        first_conv="backbone.patch_embed.0" if is_zsl else "patch_embed.0",
        classifier="fusion" if is_zsl else "classifier.head",
    )
    backbone = getattr(model, "backbone", model)
    if isinstance(backbone, Vim):  # patch tokens: the grid is the input over the stride, no /32 map
        embed = backbone.patch_embed
        cfg.update(
            pool_size=[(h - embed.patch_size) // embed.stride + 1, (w - embed.patch_size) // embed.stride + 1],
            first_conv="backbone.patch_embed.proj" if is_zsl else "patch_embed.proj",
            classifier="fusion" if is_zsl else "head",
        )
    if variant is not None:
        cfg.update(license=variant.license, description=variant.description)
        if variant.source_url:
            cfg["origin_url"] = variant.source_url
    allowed = pretrained_cfg_fields()
    return {k: v for k, v in cfg.items() if k in allowed}


def _zero_shot_fields(
    model: ZeroMamba,
    class_attributes: Any,
    class_names: Sequence[str] | None,
    attribute_names: Sequence[str] | None,
    seen: Any,
    gamma: float | None,
    variant: PretrainedVariant | None,
) -> tuple[dict[str, Any], torch.Tensor | None]:
    """The config entries of a zero-shot model's classes, checked against each other and the model."""
    num_attributes = int(model.num_attributes)
    if attribute_names is not None:
        attribute_names = [str(a) for a in attribute_names]
        if len(attribute_names) != num_attributes:
            raise DataError(f"{len(attribute_names)} attribute names for a model with {num_attributes} attributes")
    matrix = None
    if class_attributes is not None:
        matrix = as_class_matrix(class_attributes, "class_attributes")
        if matrix.shape[1] != num_attributes:
            raise DataError(
                f"class_attributes has {matrix.shape[1]} columns but the model predicts {num_attributes} attributes"
            )
    num_classes = None if matrix is None else int(matrix.shape[0])
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if num_classes is None:
            raise DataError("class names were given without a class-attribute matrix")
        if len(class_names) != num_classes:
            raise DataError(f"{len(class_names)} class names for {num_classes} rows of class_attributes")
    if seen is not None and num_classes is None:
        raise DataError("seen classes were given without a class-attribute matrix")
    seen_idx = seen_indices(seen, num_classes, class_names) if num_classes is not None else None
    if gamma is None:
        gamma = variant.gamma if variant is not None and variant.gamma is not None else 0.0
    gamma = float(gamma)
    if not math.isfinite(gamma):
        raise DataError(f"gamma must be a finite number (got {gamma})")
    fields = dict(
        gamma=gamma,
        attribute_names=attribute_names,
        class_names=class_names,
        seen_classes=seen_idx,
        class_attributes=None,
    )
    return fields, matrix


# the fields of a zoo variant's description (PretrainedVariant.to_dict) kept as its provenance
_VARIANT_RECORD_KEYS = (
    "name",
    "repo_id",
    "timm_name",
    "source_file",
    "source_url",
    "license",
    "license_note",
    "authors_metrics",
    "authors_metrics_source",
    "trained_by",
    "measured_metrics",
    "measured_metrics_source",
)


def _variant_record(variant: PretrainedVariant) -> dict[str, Any]:
    """Provenance of a zoo variant, as stored under ``variant`` in ``config.json``."""
    described = variant.to_dict()
    return {key: described[key] for key in _VARIANT_RECORD_KEYS}


def _own_variant(model: nn.Module, architecture: str) -> PretrainedVariant | None:
    """The zoo variant a model was loaded as (its ``pretrained_cfg``'s ``architecture.tag``, as timm
    and :func:`~zeromamba.load_model` record it), when it still has that variant's head."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, Mapping) or cfg.get("architecture") != architecture:
        return None
    variant = variant_for_tag(architecture, cfg.get("tag"))
    if variant is None:
        return None
    width = variant.num_attributes if variant.is_zero_shot else variant.num_classes
    return variant if width in (None, int(getattr(model, "num_classes", -1))) else None


def _own_preprocess(model: nn.Module) -> dict[str, Any] | None:
    """A bare model's own preprocessing (its ``pretrained_cfg``'s), or ``None``."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, Mapping):
        return None
    return {k: cfg[k] for k in (*PREPROCESS_KEYS, "object_extent") if k in cfg}


def _write_folder(
    directory: Path,
    model: nn.Module,
    config: dict[str, Any],
    matrix: torch.Tensor | None,
    variant: PretrainedVariant | None,
    model_card: bool | str | None,
) -> None:
    import safetensors.torch

    directory.mkdir(parents=True, exist_ok=True)
    # 1. weights (clone: safetensors refuses tensors that share storage)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "zeromamba_format": str(FORMAT_VERSION), "architecture": config["architecture"]}
    atomic_write(directory / WEIGHTS_NAME, lambda tmp: safetensors.torch.save_file(state, str(tmp), metadata=meta))
    # 2. the class-attribute matrix
    if matrix is not None:
        data = safetensors.torch.save({"class_attributes": matrix}, metadata={"format": "pt"})
        write_bytes(directory / CLASS_ATTRIBUTES_NAME, data)
        config["class_attributes"] = dict(
            file=CLASS_ATTRIBUTES_NAME,
            tensor="class_attributes",
            shape=list(matrix.shape),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    # 3. the model card
    card_path = directory / MODEL_CARD_NAME
    if isinstance(model_card, str):
        write_bytes(card_path, model_card.encode("utf-8"))
    elif model_card or (model_card is None and not card_path.exists()):
        write_bytes(card_path, render_model_card(config, variant).encode("utf-8"))
    # 4. config.json last: its presence marks a complete folder
    write_json(json_safe(config), directory / CONFIG_NAME)
    if matrix is None and (directory / CLASS_ATTRIBUTES_NAME).exists():
        (directory / CLASS_ATTRIBUTES_NAME).unlink()  # stale from an earlier save into this folder


def save_pretrained(
    predictor_or_model: SavableModel | nn.Module,
    directory: str | os.PathLike,
    *,
    class_attributes: Any = None,
    class_names: Sequence[str] | None = None,
    attribute_names: Sequence[str] | None = None,
    seen: Any = None,
    gamma: float | None = None,
    dataset: str | None = None,
    preprocess: Mapping[str, Any] | None = None,
    variant: PretrainedVariant | str | None = None,
    model_card: bool | str | None = None,
) -> Path:
    """Write a predictor (or a bare model) as ``model.safetensors`` + ``config.json`` (+ side files).

    Args:
        predictor_or_model: a :class:`~zeromamba.predictor.Predictor` (its model, classes, seen
            mask, gamma, attribute names and preprocessing are saved) or a ``ZeroMamba`` /
            ``VMamba`` module.
        directory: the folder to write (created if needed; files in it are replaced atomically).
        class_attributes: override (or, for a bare model, supply) the predictor's class attributes,
            as the next five do for what else it holds.
        class_names: the classes' names.
        attribute_names: the attributes' names.
        seen: a boolean mask over the classes or a list of class indices.
        gamma: the calibrated-stacking gamma.
        preprocess: the preprocessing (``preprocess.json`` keys).
        dataset: dataset name recorded in the config and the model card (default: the variant's,
            or the one the model was loaded with).
        variant: a zoo variant (or its name) whose provenance (who trained the weights, the source
            file, licence, the metrics and who measured them) goes into ``config.json`` and the model
            card. Default: the variant the model was loaded as (``from_pretrained("shapes-zsl")``,
            ``timm.create_model("zeromamba_nano_s8.shapes_zsl")``), if any.
        model_card: ``None`` writes ``README.md`` only if the folder has none; ``True`` always
            (re)writes it; ``False`` never; a string is written as the card.

    A model running int8 layers (``dtype="int8"``) is saved with its float32 weights, with a
    ``UserWarning`` saying so: the folder format is float32, and int8 is chosen when loading.

    Returns:
        The folder's path.

    Raises:
        DataError: class attributes, names or the seen set are inconsistent with each other or
            with the model.
    """
    obj = predictor_or_model
    model = obj if isinstance(obj, nn.Module) else getattr(obj, "model", None)
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a Predictor or a model, got {type(obj).__name__}")
    if isinstance(variant, str):
        variant = get_variant(variant)
    if is_int8(model):
        warnings.warn(
            "this model runs int8 layers; the folder gets its float32 weights (int8 is chosen when loading: "
            "from_pretrained(folder, dtype='int8'))",
            UserWarning,
            stacklevel=2,
        )

    def pick(value: Any, attr: str) -> Any:
        return value if value is not None else getattr(obj, attr, None) if obj is not model else None

    arch, model_args = model_config(model)
    directory = Path(directory)
    _refuse_hf_cache(directory)
    is_zsl = isinstance(model, ZeroMamba)
    if variant is None:
        variant = _own_variant(model, arch)
    chosen_preprocess = pick(preprocess, "preprocess")
    if chosen_preprocess is None:
        chosen_preprocess = _own_preprocess(model)
    own_dataset = (getattr(model, "pretrained_cfg", None) or {}).get("dataset")
    config: dict[str, Any] = {
        "zeromamba_format": FORMAT_VERSION,
        "zeromamba_version": __version__,
        "architecture": arch,
        "model_args": model_args,
        "num_features": int(getattr(model, "num_features", 0)),
        "pretrained_cfg": _pretrained_cfg(model, model_args, variant, chosen_preprocess),
        "task": variant.task if variant is not None else ("zsl" if is_zsl else "imagenet"),
        "dataset": dataset or (variant.dataset if variant is not None else own_dataset),
    }
    if variant is not None:
        config["trained_by"] = variant.trained_by
    framing = (chosen_preprocess or {}).get("object_extent")
    if variant is not None and "object_extent" not in (chosen_preprocess or {}):
        framing = variant.object_extent
    if framing is not None:  # zeromamba's own (zeromamba.framing): beside timm's pretrained_cfg, not in it
        config["object_extent"] = [float(v) for v in framing]
    matrix = None
    class_names = pick(class_names, "class_names")
    if is_zsl:
        fields, matrix = _zero_shot_fields(
            model,
            pick(class_attributes, "class_attributes"),
            class_names,
            pick(attribute_names, "attribute_names"),
            pick(seen, "seen"),
            pick(gamma, "gamma"),
            variant,
        )
        config.update(fields)
    elif class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != int(model.num_classes):
            raise DataError(f"{len(class_names)} class names for a classifier with {model.num_classes} outputs")
        config["class_names"] = class_names
    if variant is not None:
        config["variant"] = _variant_record(variant)
    _write_folder(directory, model, config, matrix, variant, model_card)  # only now: a refused save leaves nothing
    return directory
