"""Saving, loading, converting and publishing zeromamba models.

The on-disk format (one folder, the same locally and in a Hugging Face Hub repository):

* ``model.safetensors``: the model's state dict under this package's parameter names (the
  names timm's ``hf-hub:`` loader expects). Never a pickle.
* ``config.json``: what the weights are (see :data:`FORMAT_VERSION` and the README of ``hub/``):
  ``zeromamba_format``, ``architecture`` (the timm name), ``model_args`` (every constructor
  argument), ``pretrained_cfg`` (timm's preprocessing/head description), and for zero-shot models
  ``dataset``, ``gamma``, ``attribute_names``, ``class_names``, ``seen_classes`` (class indices)
  and ``class_attributes`` (a pointer to the matrix, below).
* ``class_attributes.safetensors``: the ``(C, A)`` float32 class-attribute matrix (tensor
  ``class_attributes``). It is a side file, not part of ``model.safetensors``, so timm loads the
  weights strictly, and not inlined in ``config.json``, which would grow by megabytes of text
  (SUN: 717 x 102). ``config.json`` records its shape and SHA-256.
* ``README.md``: the model card (Hub YAML front matter + description).

Every file is written to a temporary file in the target folder and renamed into place, and
``config.json`` is written last: a folder never holds a half-written file, and a folder with a
``config.json`` is complete.

Downloads go through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT``, progress
bars, token); only safetensors files are ever loaded from a download.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import re
import string
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from . import zoo
from .architectures import VMAMBA_ARCHITECTURES, ZEROMAMBA_ARCHITECTURES, architecture_for
from .constants import PREPROCESS_KEYS
from .errors import (
    CheckpointError,
    ConfigError,
    DataError,
    ModelNotAvailableError,
    UnknownModelError,
    ZeroMambaError,
)

if TYPE_CHECKING:  # pragma: no cover
    from .predictor import Predictor

__all__ = [
    "FORMAT_VERSION",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "CLASS_ATTRIBUTES_NAME",
    "MODEL_CARD_NAME",
    "MODEL_CARD_TEMPLATE",
    "save_pretrained",
    "from_pretrained",
    "load_model",
    "resolve_model_dir",
    "read_config",
    "convert_official",
    "verify_conversion",
    "read_xlsa17",
    "render_model_card",
    "push_to_hub",
    "register_cli",
]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CLASS_ATTRIBUTES_NAME = "class_attributes.safetensors"
MODEL_CARD_NAME = "README.md"

_ZEROMAMBA_ARCHS = tuple(ZEROMAMBA_ARCHITECTURES)
_VMAMBA_ARCHS = tuple(VMAMBA_ARCHITECTURES)
_ZSL_PREPROCESS = dict(
    input_size=(3, 448, 448),
    interpolation="bilinear",
    crop_pct=1.0,
    crop_mode="squash",
    mean=zoo.IMAGENET_MEAN,
    std=zoo.IMAGENET_STD,
)
_IMAGENET_PREPROCESS = dict(
    input_size=(3, 224, 224),
    interpolation="bicubic",
    crop_pct=0.875,
    crop_mode="center",
    mean=zoo.IMAGENET_MEAN,
    std=zoo.IMAGENET_STD,
)
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# --- small helpers ---------------------------------------------------------------------------


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path`` (same folder, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(path, lambda tmp: tmp.write_bytes(data))


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _json_safe(value.tolist())
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars/arrays
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"cannot store the non-finite value {value!r} in config.json")
    return value


def _pretrained_cfg_fields() -> set[str]:
    from timm.models import PretrainedCfg

    return {f.name for f in fields(PretrainedCfg)}


def _seen_indices(seen: Any, num_classes: int | None) -> list[int] | None:
    """A boolean mask or a list of class indices -> sorted unique indices."""
    if seen is None:
        return None
    t = torch.as_tensor(seen.tolist() if hasattr(seen, "tolist") and not isinstance(seen, torch.Tensor) else seen)
    if t.dtype == torch.bool:
        if num_classes is not None and t.numel() != num_classes:
            raise DataError(f"the seen mask has {t.numel()} entries but there are {num_classes} classes")
        idx = torch.nonzero(t.flatten()).flatten().tolist()
    else:
        idx = sorted({int(i) for i in t.flatten().tolist()})
    if num_classes is not None and any(i < 0 or i >= num_classes for i in idx):
        raise DataError(f"seen class indices must lie in [0, {num_classes}) (got {idx})")
    return idx


def _tensor_2d(matrix: Any, what: str) -> torch.Tensor:
    t = matrix if isinstance(matrix, torch.Tensor) else torch.as_tensor(matrix)
    t = t.detach().to("cpu", torch.float32)
    if t.dim() != 2 or t.shape[0] == 0 or t.shape[1] == 0:
        raise DataError(f"{what} must be a non-empty 2-D (classes x attributes) matrix (got shape {tuple(t.shape)})")
    if not torch.isfinite(t).all():
        raise DataError(f"{what} holds NaN or inf values")
    return t.contiguous()


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


# --- describing a model by its constructor arguments -----------------------------------------


def model_config(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(timm architecture, constructor arguments)`` of a :class:`ZeroMamba` or :class:`VMamba`.

    The arguments are read off the modules and checked by rebuilding the model and comparing every
    parameter shape, so ``Class(**args)`` always loads the saved state dict.
    """
    from .models import SS2D, VMamba, ZeroMamba

    if isinstance(model, ZeroMamba):
        backbone = model.backbone
    elif isinstance(model, VMamba):
        backbone = model
    else:
        raise TypeError(f"expected a ZeroMamba or VMamba model, got {type(model).__name__}")
    ops = [m for m in backbone.modules() if isinstance(m, SS2D)]
    if not ops:
        raise CheckpointError("the model has no VSS blocks (all depths are 0): nothing to save")
    embed_dim = int(backbone.dims[0])
    first = ops[0]
    auto = all(op.dt_rank == math.ceil(op.out_proj.out_features / 16) for op in ops)
    mlp = next(m for m in backbone.modules() if m.__class__.__name__ == "Mlp")
    args: dict[str, Any] = dict(
        embed_dim=embed_dim,
        depths=[int(d) for d in backbone.depths],
        d_state=int(first.d_state),
        ssm_ratio=first.d_inner / first.out_proj.out_features,
        mlp_ratio=mlp.fc1.out_features / mlp.fc1.in_features,
        ssm_conv_bias=first.conv2d.bias is not None,
    )
    if not auto:
        args["dt_rank"] = int(first.dt_rank)
    if int(backbone.in_chans) != 3:
        args["in_chans"] = int(backbone.in_chans)
    if isinstance(model, ZeroMamba):
        # other backbone sizes are saved as zeromamba_small with their own (always explicit) model_args
        arch = architecture_for("zeromamba", embed_dim, args["depths"], args["ssm_ratio"]) or "zeromamba_small"
        args.update(
            num_attributes=int(model.num_attributes),
            semantic_dim=int(model.slp.V.shape[1]),
            fusion_hidden=int(model.fusion.mlp[0].out_features),
            num_imagenet_classes=int(model.global_head.in_features),
        )
        cls: type[nn.Module] = ZeroMamba
    else:
        arch = architecture_for("vmamba", embed_dim, args["depths"], args["ssm_ratio"]) or "vmamba_small"
        args["num_classes"] = int(backbone.num_classes)
        if backbone.global_pool != "avg":
            args["global_pool"] = backbone.global_pool
        cls = VMamba
    rebuilt = cls(**args).state_dict()
    own = model.state_dict()
    if {k: tuple(v.shape) for k, v in rebuilt.items()} != {k: tuple(v.shape) for k, v in own.items()}:
        raise CheckpointError(
            f"cannot describe this {type(model).__name__} by constructor arguments (rebuilding it with {args} "
            "gives different parameters); was it modified after construction?"
        )
    return arch, args


# --- saving ----------------------------------------------------------------------------------


def save_pretrained(
    predictor_or_model: Predictor | nn.Module,
    directory: str | os.PathLike,
    *,
    class_attributes: Any = None,
    class_names: Sequence[str] | None = None,
    attribute_names: Sequence[str] | None = None,
    seen: Any = None,
    gamma: float | None = None,
    dataset: str | None = None,
    preprocess: Mapping[str, Any] | None = None,
    variant: zoo.PretrainedVariant | str | None = None,
    model_card: bool | str | None = None,
) -> Path:
    """Write a predictor (or a bare model) as ``model.safetensors`` + ``config.json`` (+ side files).

    Args:
        predictor_or_model: a :class:`~zeromamba.predictor.Predictor` (its model, classes, seen
            mask, gamma, attribute names and preprocessing are saved) or a ``ZeroMamba`` /
            ``VMamba`` module.
        directory: the folder to write (created if needed; files in it are replaced atomically).
        class_attributes, class_names, attribute_names, seen, gamma, preprocess: override (or, for
            a bare model, supply) what the predictor holds. ``seen`` is a boolean mask over the
            classes or a list of class indices.
        dataset: dataset name recorded in the config and the model card.
        variant: a zoo variant (or its name) whose provenance (source file, licence, the authors'
            reported metrics) goes into ``config.json`` and the model card.
        model_card: ``None`` writes ``README.md`` only if the folder has none; ``True`` always
            (re)writes it; ``False`` never; a string is written as the card.

    Returns:
        The folder's path.

    Raises:
        DataError: class attributes, names or the seen set are inconsistent with each other or
            with the model.
    """
    import safetensors.torch

    from .version import __version__
    from .models import ZeroMamba

    obj = predictor_or_model
    model = obj if isinstance(obj, nn.Module) else getattr(obj, "model", None)
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a Predictor or a model, got {type(obj).__name__}")
    if isinstance(variant, str):
        variant = zoo.get_variant(variant)

    def pick(value: Any, attr: str) -> Any:
        return value if value is not None else getattr(obj, attr, None) if obj is not model else None

    class_attributes = pick(class_attributes, "class_attributes")
    class_names = pick(class_names, "class_names")
    attribute_names = pick(attribute_names, "attribute_names")
    seen = pick(seen, "seen")
    gamma = pick(gamma, "gamma")
    preprocess = pick(preprocess, "preprocess")

    arch, model_args = model_config(model)
    is_zsl = isinstance(model, ZeroMamba)
    directory = Path(directory)
    _refuse_hf_cache(directory)

    # the preprocessing, in timm's pretrained_cfg vocabulary
    base = dict(_ZSL_PREPROCESS if is_zsl else _IMAGENET_PREPROCESS)
    if variant is not None:
        base.update({k: v for k, v in variant.pretrained_cfg().items() if k in PREPROCESS_KEYS})
    if preprocess:
        base.update({k: v for k, v in dict(preprocess).items() if k in PREPROCESS_KEYS and v is not None})
    h, w = int(base["input_size"][-2]), int(base["input_size"][-1])
    pretrained_cfg: dict[str, Any] = dict(
        input_size=[int(model_args.get("in_chans", 3)), h, w],
        interpolation=str(base["interpolation"]),
        crop_pct=float(base["crop_pct"]),
        crop_mode=str(base["crop_mode"]),
        mean=[float(x) for x in base["mean"]],
        std=[float(x) for x in base["std"]],
        pool_size=[h // 32, w // 32],
        num_classes=int(model.num_classes),
        first_conv="backbone.patch_embed.0" if is_zsl else "patch_embed.0",
        classifier="fusion" if is_zsl else "classifier.head",
    )
    if variant is not None:
        pretrained_cfg.update(license=variant.license, description=variant.description)
        if variant.source_url:
            pretrained_cfg["origin_url"] = variant.source_url
    allowed = _pretrained_cfg_fields()
    pretrained_cfg = {k: v for k, v in pretrained_cfg.items() if k in allowed}

    config: dict[str, Any] = {
        "zeromamba_format": FORMAT_VERSION,
        "zeromamba_version": __version__,
        "architecture": arch,
        "model_args": model_args,
        "num_features": int(getattr(model, "num_features", 0)),
        "pretrained_cfg": pretrained_cfg,
        "task": variant.task if variant is not None else ("zsl" if is_zsl else "imagenet"),
        "dataset": dataset or (variant.dataset if variant is not None else None),
    }

    class_tensor = None
    if is_zsl:
        num_attributes = int(model.num_attributes)
        if attribute_names is not None:
            attribute_names = [str(a) for a in attribute_names]
            if len(attribute_names) != num_attributes:
                raise DataError(f"{len(attribute_names)} attribute names for a model with {num_attributes} attributes")
        if class_attributes is not None:
            class_tensor = _tensor_2d(class_attributes, "class_attributes")
            if class_tensor.shape[1] != num_attributes:
                raise DataError(
                    f"class_attributes has {class_tensor.shape[1]} columns but the model predicts "
                    f"{num_attributes} attributes"
                )
        num_classes = None if class_tensor is None else int(class_tensor.shape[0])
        if class_names is not None:
            class_names = [str(c) for c in class_names]
            if num_classes is None:
                raise DataError("class names were given without a class-attribute matrix")
            if len(class_names) != num_classes:
                raise DataError(f"{len(class_names)} class names for {num_classes} rows of class_attributes")
        seen_idx = _seen_indices(seen, num_classes)
        if seen_idx is not None and num_classes is None:
            raise DataError("seen classes were given without a class-attribute matrix")
        if gamma is None:
            gamma = variant.gamma if variant is not None and variant.gamma is not None else 0.0
        gamma = float(gamma)
        if not math.isfinite(gamma):
            raise DataError(f"gamma must be a finite number (got {gamma})")
        config.update(
            gamma=gamma,
            attribute_names=attribute_names,
            class_names=class_names,
            seen_classes=seen_idx,
            class_attributes=None,
        )
    elif class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(class_names) != int(model.num_classes):
            raise DataError(f"{len(class_names)} class names for a classifier with {model.num_classes} outputs")
        config["class_names"] = class_names
    if variant is not None:
        config["variant"] = dict(
            name=variant.name,
            repo_id=variant.repo_id,
            timm_name=variant.timm_name,
            source_file=variant.source_file,
            source_url=variant.source_url,
            license=variant.license,
            license_note=variant.license_note,
            authors_metrics=dict(variant.authors_metrics),
            authors_metrics_source=variant.authors_metrics_source,
        )

    directory.mkdir(parents=True, exist_ok=True)  # only now: a refused save leaves nothing behind
    # 1. weights (clone: safetensors refuses tensors that share storage)
    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    meta = {"format": "pt", "zeromamba_format": str(FORMAT_VERSION), "architecture": arch}
    _atomic_write(directory / WEIGHTS_NAME, lambda tmp: safetensors.torch.save_file(state, str(tmp), metadata=meta))
    # 2. the class-attribute matrix
    if class_tensor is not None:
        data = safetensors.torch.save({"class_attributes": class_tensor}, metadata={"format": "pt"})
        _write_bytes(directory / CLASS_ATTRIBUTES_NAME, data)
        config["class_attributes"] = dict(
            file=CLASS_ATTRIBUTES_NAME,
            tensor="class_attributes",
            shape=list(class_tensor.shape),
            sha256=hashlib.sha256(data).hexdigest(),
        )
    # 3. the model card
    card_path = directory / MODEL_CARD_NAME
    if isinstance(model_card, str):
        _write_bytes(card_path, model_card.encode("utf-8"))
    elif model_card or (model_card is None and not card_path.exists()):
        _write_bytes(card_path, render_model_card(config, variant).encode("utf-8"))
    # 4. config.json last: its presence marks a complete folder
    text = json.dumps(_json_safe(config), indent=2, ensure_ascii=False) + "\n"
    _write_bytes(directory / CONFIG_NAME, text.encode("utf-8"))
    if class_tensor is None and (directory / CLASS_ATTRIBUTES_NAME).exists():
        (directory / CLASS_ATTRIBUTES_NAME).unlink()  # stale from an earlier save into this folder
    return directory


# --- reading ---------------------------------------------------------------------------------


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a ``config.json`` (a file, or a folder holding one).

    Raises:
        ConfigError: unreadable JSON, missing keys, or a format version this release does not know.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{str(path)!r} does not exist: not a zeromamba model folder") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read {str(path)!r} as JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{str(path)!r} must hold a JSON object")
    version = cfg.get("zeromamba_format")
    if version is None:
        raise ConfigError(
            f"{str(path)!r} has no 'zeromamba_format' key: it was not written by zeromamba. Convert the weights with "
            "`zeromamba convert` (authors' .pth) or load the model with timm instead."
        )
    try:
        major = int(str(version).split(".")[0])
    except ValueError:
        raise ConfigError(f"{str(path)!r}: zeromamba_format {version!r} is not a version number") from None
    if major != FORMAT_VERSION:
        from .version import __version__

        newer = major > FORMAT_VERSION
        raise ConfigError(
            f"{str(path)!r} uses zeromamba format {version}, but zeromamba {__version__} reads format "
            f"{FORMAT_VERSION} only. "
            + (
                "Upgrade zeromamba (pip install -U zeromamba) to load it."
                if newer
                else "Re-save it with a current zeromamba."
            )
        )
    arch = cfg.get("architecture")
    if arch not in _ZEROMAMBA_ARCHS + _VMAMBA_ARCHS:
        raise ConfigError(
            f"{str(path)!r}: unknown architecture {arch!r}; this zeromamba knows "
            f"{', '.join(_ZEROMAMBA_ARCHS + _VMAMBA_ARCHS)}. Upgrade zeromamba if the model is newer."
        )
    if not isinstance(cfg.get("model_args"), dict):
        raise ConfigError(f"{str(path)!r}: 'model_args' must be an object of constructor arguments")
    if not isinstance(cfg.get("pretrained_cfg", {}), dict):
        raise ConfigError(f"{str(path)!r}: 'pretrained_cfg' must be an object")
    return cfg


def _load_safetensors(path: Path, what: str) -> dict[str, torch.Tensor]:
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


def _build_model(cfg: Mapping[str, Any], source: str) -> nn.Module:
    from .models import VMamba, ZeroMamba

    cls = ZeroMamba if cfg["architecture"] in _ZEROMAMBA_ARCHS else VMamba
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["model_args"].items()}
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: config.json's model_args do not build a {cls.__name__}: {e}") from None


def _load_folder(folder: Path, source: str) -> tuple[dict[str, Any], nn.Module, torch.Tensor | None]:
    """Read a complete model folder: config, weights (strictly), class-attribute matrix."""
    from .models._helpers import load_state_dict_strict

    cfg = read_config(folder / CONFIG_NAME)
    state = _load_safetensors(folder / WEIGHTS_NAME, source)
    model = _build_model(cfg, source)
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
        tensors = _load_safetensors(file, source)
        name = str(ca.get("tensor", "class_attributes"))
        if name not in tensors:
            raise CheckpointError(f"{source}: {ca['file']} has no tensor {name!r}")
        matrix = tensors[name].float()
        if ca.get("shape") and list(matrix.shape) != list(ca["shape"]):
            raise CheckpointError(
                f"{source}: {ca['file']} holds a {list(matrix.shape)} matrix, config.json says {ca['shape']}"
            )
    _check_classes(cfg, model, matrix, source)
    return cfg, model, matrix


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


# --- resolving names to folders --------------------------------------------------------------


def _hub_error(
    e: BaseException, repo_id: str, revision: str | None, filename: str, variant: zoo.PretrainedVariant | None
) -> ZeroMambaError:
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    rev = revision or "main"
    where = f"{constants.ENDPOINT}"
    if variant is not None and variant.source_file:
        convert = (
            f"if you have the authors' checkpoint ({variant.source_file}, from {variant.source_url}), convert it "
            f"and load the folder instead: `zeromamba convert {variant.source_file} --variant {variant.name}"
            + (" --att-splits att_splits.mat --res101 res101.mat" if variant.is_zero_shot else "")
            + f" --out {variant.name}/` then `zeromamba.from_pretrained('{variant.name}/')`."
        )
    else:
        convert = (
            "if you have a checkpoint file, convert it and load the folder instead: `zeromamba convert "
            "CHECKPOINT.pth --out DIR/` then `zeromamba.from_pretrained('DIR/')`."
        )
    if isinstance(e, RevisionNotFoundError):
        return ModelNotAvailableError(
            f"revision {rev!r} does not exist in the Hub repository {repo_id!r} ({where}). "
            "Check the branch, tag or commit, or leave revision unset for 'main'."
        )
    if isinstance(e, RepositoryNotFoundError):
        return ModelNotAvailableError(
            f"the Hub repository {repo_id!r} does not exist at {where} (or it is private or gated: log in with "
            f"`hf auth login` or pass a token). Known zoo variants: {', '.join(v.name for v in zoo.list_pretrained())}."
        )
    if isinstance(e, RemoteEntryNotFoundError):
        extra = " zeromamba loads safetensors only, never pickled weights." if filename.endswith(".safetensors") else ""
        return ModelNotAvailableError(
            f"the Hub repository {repo_id!r} (revision {rev!r}) has no {filename}: it is not a zeromamba model folder."
            f"{extra} {convert[0].upper() + convert[1:]}"
        )
    if isinstance(e, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
        offline = constants.HF_HUB_OFFLINE
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if offline else f"the Hub ({where}) cannot be reached"
        fix = "unset HF_HUB_OFFLINE" if offline else "connect to the network"
        return ModelNotAvailableError(
            f"cannot get {filename} of {repo_id!r} (revision {rev!r}): {why}, and it is not in the local Hugging "
            f"Face cache. Either {fix} and load it once to cache it, or: {convert}"
        )
    if isinstance(e, HfHubHTTPError):
        return ModelNotAvailableError(f"downloading {filename} of {repo_id!r} (revision {rev!r}) failed: {e}")
    return ModelNotAvailableError(f"cannot download {filename} of {repo_id!r} (revision {rev!r}): {e}")


def _download(
    repo_id: str,
    filename: str,
    revision: str | None,
    cache_dir: str | os.PathLike | None,
    variant: zoo.PretrainedVariant | None,
    force_download: bool,
    local_files_only: bool,
    token: str | bool | None,
) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HFValidationError

    from .version import __version__

    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                library_name="zeromamba",
                library_version=__version__,
                force_download=force_download,
                local_files_only=local_files_only,
                token=token,
            )
        )
    except HFValidationError as e:
        raise UnknownModelError(f"{repo_id!r} is not a valid Hub repository id: {e}") from None
    except (OSError, ValueError) as e:  # every huggingface_hub download error derives from these
        raise _hub_error(e, repo_id, revision, filename, variant) from None


def _parse_source(name: str) -> tuple[str, str | None, str | None]:
    """``(kind, repo_or_path, revision)`` with kind ``dir``, ``repo`` or ``zoo``."""
    if name.startswith("hf-hub:") or name.startswith("hf_hub:"):
        repo = name.split(":", 1)[1]
        rev = None
        if "@" in repo:
            repo, rev = repo.split("@", 1)
        return "repo", repo, rev
    if os.path.isdir(name):
        return "dir", name, None
    return "zoo", name, None


def resolve_model_dir(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> tuple[Path, str]:
    """Find (downloading if needed) the folder of a model: ``(folder, description of the source)``.

    Accepts a zoo name (``cub-gzsl``), ``hf-hub:owner/repo[@revision]``, ``owner/repo``, or a local
    folder (a folder wins over a repository id of the same spelling).
    """
    name = os.fspath(name_or_repo_or_dir)
    kind, target, rev = _parse_source(name)
    variant = None
    if kind == "dir":
        return Path(target), repr(target)
    if kind == "zoo":
        try:
            variant = zoo.get_variant(target)
        except UnknownModelError:
            if not _REPO_ID.match(target):
                if os.path.exists(target):
                    raise ConfigError(f"{target!r} is a file; give the model's folder (with config.json)") from None
                raise
            kind = "repo"
        else:
            if variant.is_local:
                folder = variant.local_path()
                assert folder is not None
                return folder, f"the embedded variant {variant.name!r} ({folder})"
            target, rev = variant.repo_id, variant.revision
    revision = revision or rev
    args = (revision, cache_dir, variant, force_download, local_files_only, token)
    config_path = _download(target, CONFIG_NAME, *args)
    folder = config_path.parent
    # pin the remaining files to the commit config.json came from, so a push between two
    # downloads cannot mix files of different commits
    commit = folder.name if re.fullmatch(r"[0-9a-f]{40}", folder.name) else revision
    cfg = read_config(config_path)
    files = [WEIGHTS_NAME]
    ca = cfg.get("class_attributes")
    if isinstance(ca, dict) and ca.get("file"):
        files.append(str(ca["file"]))
    for f in files:
        got = _download(target, f, commit, *args[1:])
        if got.parent != folder:  # a different snapshot folder: copy-free fallback is not possible
            raise ModelNotAvailableError(f"{target!r}: {f} and {CONFIG_NAME} resolved to different commits; retry")
    source = f"{target!r}" + (f" (revision {revision!r})" if revision else "")
    return folder, source


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
        return {k: tuple(pc[k]) if isinstance(pc[k], list) else pc[k] for k in PREPROCESS_KEYS if k in pc}

    @property
    def seen(self) -> torch.Tensor | None:
        """A boolean mask of the seen classes, or ``None``."""
        if self.config.get("seen_classes") is None or self.class_attributes is None:
            return None
        mask = torch.zeros(self.class_attributes.shape[0], dtype=torch.bool)
        mask[torch.as_tensor(self.config["seen_classes"], dtype=torch.long)] = True
        return mask


def load_pretrained(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> LoadedModel:
    """Resolve a zoo name, Hub repository or folder (downloading if needed) and load it: config,
    model (strictly, eval mode) and class-attribute matrix."""
    folder, source = resolve_model_dir(
        name_or_repo_or_dir,
        revision=revision,
        cache_dir=cache_dir,
        force_download=force_download,
        local_files_only=local_files_only,
        token=token,
    )
    cfg, model, matrix = _load_folder(folder, source)
    return LoadedModel(cfg, model, matrix, source)


def load_model(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> nn.Module:
    """The bare model (``ZeroMamba`` or ``VMamba``, eval mode) of a zoo name, Hub repository or folder."""
    model = load_pretrained(
        name_or_repo_or_dir,
        revision=revision,
        cache_dir=cache_dir,
        force_download=force_download,
        local_files_only=local_files_only,
        token=token,
    ).model
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise ConfigError(f"unknown dtype {dtype!r} (e.g. 'float32', 'bfloat16')")
        dtype = resolved
    return model.to(device=device, dtype=dtype)


# --- converting the authors' files ----------------------------------------------------------


def _strings(obj: Any) -> list[str]:
    """Flatten a MATLAB cell array of strings (as scipy.io.loadmat returns it) to a list."""
    import numpy as np

    out: list[str] = []
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, bytes):
        return [obj.decode("utf-8", "replace")]
    arr = np.asarray(obj)
    if arr.dtype.kind in "US":
        return [str(x).strip() for x in arr.flatten()]
    for item in arr.flatten():
        out.extend(_strings(item))
    return out


def _read_names(source: str | os.PathLike | Sequence[str], what: str) -> list[str]:
    """Names from a list, or a text file with one per line (a leading ``<index> `` is dropped, as in
    CUB's ``attributes.txt`` / AwA2's ``predicates.txt``)."""
    if isinstance(source, (list, tuple)):
        return [str(s) for s in source]
    path = Path(os.fspath(source))
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read the {what} file {str(path)!r}: {e}") from None
    names = [re.sub(r"^\s*\d+[\s.:]+", "", ln).strip() if re.match(r"^\s*\d+\s", ln) else ln.strip() for ln in lines]
    return [n for n in names if n]


def _loadmat(path: str | os.PathLike, what: str) -> dict[str, Any]:
    try:
        from scipy.io import loadmat
    except ImportError:  # pragma: no cover
        raise DataError("reading .mat files needs scipy: pip install 'zeromamba[train]'") from None
    try:
        return loadmat(os.fspath(path))
    except FileNotFoundError:
        raise DataError(f"{what} not found: {os.fspath(path)!r}") from None
    except Exception as e:  # scipy raises ValueError/TypeError/MatReadError on bad files
        raise DataError(f"cannot read {what} {os.fspath(path)!r}: {e}") from None


def read_xlsa17(
    att_splits: str | os.PathLike, res101: str | os.PathLike | None = None
) -> tuple[torch.Tensor, list[str] | None, list[int] | None]:
    """Read an xlsa17 ``att_splits.mat`` (+ ``res101.mat``): ``(class_attributes (C, A), class
    names, seen class indices)``.

    ``att`` is stored attributes x classes; the seen classes are the labels of ``trainval_loc``
    (1-based indices into ``res101.mat``'s 1-based ``labels``). Without ``res101`` the seen
    classes are ``None``.
    """
    import numpy as np

    mat = _loadmat(att_splits, "att_splits.mat")
    if "att" not in mat:
        raise DataError(f"{os.fspath(att_splits)!r} has no 'att' matrix: not an xlsa17 att_splits.mat")
    att = np.asarray(mat["att"], dtype=np.float64)
    if att.ndim != 2:
        raise DataError(f"'att' in {os.fspath(att_splits)!r} must be 2-D (attributes x classes)")
    matrix = _tensor_2d(torch.from_numpy(att.T.copy()), "att (from att_splits.mat)")
    names = _strings(mat["allclasses_names"]) if "allclasses_names" in mat else None
    if names is not None and len(names) != matrix.shape[0]:
        raise DataError(f"{len(names)} allclasses_names for {matrix.shape[0]} classes in att")
    seen = None
    if res101 is not None:
        if "trainval_loc" not in mat:
            raise DataError(f"{os.fspath(att_splits)!r} has no 'trainval_loc'")
        res = _loadmat(res101, "res101.mat")
        if "labels" not in res:
            raise DataError(f"{os.fspath(res101)!r} has no 'labels'")
        labels = np.asarray(res["labels"]).astype(np.int64).ravel()
        loc = np.asarray(mat["trainval_loc"]).astype(np.int64).ravel()
        if loc.size == 0 or loc.min() < 1 or loc.max() > labels.size:
            raise DataError(f"trainval_loc indexes outside res101.mat's {labels.size} labels")
        seen_labels = np.unique(labels[loc - 1]) - 1
        if seen_labels.min() < 0 or seen_labels.max() >= matrix.shape[0]:
            raise DataError(f"res101.mat labels must be 1..{matrix.shape[0]}")
        seen = [int(i) for i in seen_labels]
    return matrix, names, seen


def convert_official(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    variant: zoo.PretrainedVariant | str | None = None,
    att_splits: str | os.PathLike | None = None,
    res101: str | os.PathLike | None = None,
    class_attributes: Any = None,
    seen_classes: Any = None,
    class_names: str | os.PathLike | Sequence[str] | None = None,
    attribute_names: str | os.PathLike | Sequence[str] | None = None,
    gamma: float | None = None,
    dataset: str | None = None,
    model_card: bool | str | None = True,
    **model_args: Any,
) -> Path:
    """Convert an authors' checkpoint into a zeromamba model folder (see :func:`save_pretrained`).

    * A ZeroMamba ``{DATASET}_best{CZSL,GZSL}.pth``: the classes come from the xlsa17
      ``att_splits`` (``att``, ``allclasses_names``) or ``class_attributes`` (C x A); the seen
      classes from ``res101`` (labels of ``trainval_loc``) or ``seen_classes`` (indices or mask).
    * A VMamba v2 ImageNet release file (``{"model": ...}``): a backbone folder.

    Args:
        variant: the zoo variant this file is the source of (gamma, dataset, preprocessing,
            provenance and the model card come from it; the checkpoint must match its shape).
        class_names, attribute_names: a list, or a text file with one name per line.
        gamma: calibrated-stacking gamma (default: the variant's, else 0).
        **model_args: passed to :func:`zeromamba.load_official` (e.g. ``scan_backend``).

    Raises:
        CheckpointError: unreadable checkpoint, or one that does not match the variant.
        DataError: inconsistent or unreadable class data.
    """
    from .models import ZeroMamba
    from .official import load_official

    if isinstance(variant, str):
        variant = zoo.get_variant(variant)
    model = load_official(checkpoint, **model_args)
    source = os.fspath(checkpoint)
    if variant is not None:
        if isinstance(model, ZeroMamba) != variant.is_zero_shot:
            kind = "a ZeroMamba" if isinstance(model, ZeroMamba) else "a VMamba backbone"
            raise CheckpointError(f"{source!r} is {kind} checkpoint, but variant {variant.name!r} is not")
        _, got = model_config(model)
        for k, v in variant.model_args.items():
            want = list(v) if isinstance(v, tuple) else v
            if k in got and got[k] != want:
                raise CheckpointError(
                    f"{source!r} does not match variant {variant.name!r}: {k} is {got[k]!r}, expected {want!r}"
                )
    if not isinstance(model, ZeroMamba):
        if any(x is not None for x in (att_splits, class_attributes, seen_classes, class_names)):
            raise DataError(f"{source!r} is a VMamba backbone: class data only applies to ZeroMamba checkpoints")
        return save_pretrained(model, out_dir, variant=variant, dataset=dataset, model_card=model_card)

    names = None
    seen = seen_classes
    if att_splits is not None:
        if class_attributes is not None:
            raise DataError("give either att_splits or class_attributes, not both")
        class_attributes, names, mat_seen = read_xlsa17(att_splits, res101)
        if seen is None:
            seen = mat_seen
        if seen is None:
            raise DataError(
                "the seen classes are unknown: pass res101.mat (its labels of trainval_loc are the seen classes) "
                "or list them explicitly (seen_classes / --seen)"
            )
    elif res101 is not None:
        raise DataError("res101.mat is only used together with att_splits.mat")
    if class_names is not None:
        names = _read_names(class_names, "class names")
    attr_names = _read_names(attribute_names, "attribute names") if attribute_names is not None else None
    if variant is not None and class_attributes is not None and variant.num_classes:
        c = _tensor_2d(class_attributes, "class_attributes").shape[0]
        if c != variant.num_classes:
            raise DataError(f"variant {variant.name!r} has {variant.num_classes} classes; the class data has {c}")
    return save_pretrained(
        model,
        out_dir,
        class_attributes=class_attributes,
        class_names=names,
        attribute_names=attr_names,
        seen=seen,
        gamma=gamma,
        dataset=dataset,
        variant=variant,
        model_card=model_card,
    )


def verify_conversion(
    checkpoint: str | os.PathLike, folder: str | os.PathLike, *, image_size: int = 64, seed: int = 0
) -> float:
    """Check a converted folder against the authors' checkpoint: both models (``load_official``
    and the folder's) run on the same random batch and must give identical outputs.

    Returns:
        The largest absolute difference (0.0 for an exact conversion).

    Raises:
        CheckpointError: the outputs differ by more than float32 rounding.
    """
    from .official import load_official

    official = load_official(checkpoint)
    converted, source = _load_folder(Path(folder), repr(os.fspath(folder)))[1], os.fspath(folder)
    x = torch.randn(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        a, b = official(x), converted(x)
    a = getattr(a, "attributes", a)
    b = getattr(b, "attributes", b)
    diff = float((a - b).abs().max())
    if diff > 1e-5 * max(1.0, float(a.abs().max())):
        raise CheckpointError(f"{source!r} does not reproduce {os.fspath(checkpoint)!r}: max difference {diff:.3g}")
    return diff


# --- model cards -----------------------------------------------------------------------------

MODEL_CARD_TEMPLATE = """---
license: $license_id
$license_extra
library_name: zeromamba
pipeline_tag: $pipeline_tag
tags:
- zeromamba
- vmamba
- mamba
- state-space-model
- timm
- $task_tag
datasets:
- $dataset_id
---

# $title

$description

## What this is

$what

## How to use it

```python
$usage
```

Preprocessing: resize to $height x $width ($interpolation interpolation, crop mode `$crop_mode`,
crop_pct $crop_pct), ImageNet mean/std normalisation.

## Reported results (the authors' figures)

$metrics

## Where the weights come from

$provenance

## Licence

$license_text

## Citation

```bibtex
@inproceedings{hou2025zeromamba,
  title     = {ZeroMamba: Exploring Visual State Space Model for Zero-Shot Learning},
  author    = {Hou, Wenjin and Fu, Dingjie and Li, Kun and Chen, Shiming and Fan, Hehe and Yang, Yi},
  booktitle = {Proceedings of the AAAI Conference on Artificial Intelligence},
  volume    = {39},
  number    = {4},
  pages     = {3527--3535},
  year      = {2025}
}
@article{liu2024vmamba,
  title   = {VMamba: Visual State Space Model},
  author  = {Liu, Yue and Tian, Yunjie and Zhao, Yuzhong and Yu, Hongtian and Xie, Lingxi and Wang, Yaowei and
             Ye, Qixiang and Liu, Yunfan},
  journal = {arXiv preprint arXiv:2401.10166},
  year    = {2024}
}
```
"""

_METRIC_NAMES = {
    "czsl_acc": "CZSL accuracy (mean per-class top-1, unseen classes)",
    "gzsl_u": "GZSL U (unseen classes)",
    "gzsl_s": "GZSL S (seen classes)",
    "gzsl_h": "GZSL H (harmonic mean)",
    "imagenet_top1": "ImageNet-1k top-1 (224x224)",
}
_DATASET_IDS = {"CUB": "cub-200-2011", "SUN": "sun-attribute", "AWA2": "awa2", "ImageNet-1k": "imagenet-1k"}


def render_model_card(config: Mapping[str, Any], variant: zoo.PretrainedVariant | None = None) -> str:
    """The model card (``README.md``) for a folder's config, from :data:`MODEL_CARD_TEMPLATE`."""
    is_zsl = config.get("architecture") in _ZEROMAMBA_ARCHS
    pc = config.get("pretrained_cfg", {})
    dataset = config.get("dataset") or (variant.dataset if variant else None) or "unknown"
    args = config.get("model_args", {})
    if variant is not None:
        title = f"ZeroMamba {variant.name}" if is_zsl else f"VMamba v2 {variant.name.split('-', 1)[-1]} (ImageNet-1k)"
        description = variant.description + "."
        repo = variant.repo_id
    else:
        title = f"ZeroMamba ({dataset})" if is_zsl else "VMamba v2 backbone"
        description = f"A {config.get('architecture')} model saved with zeromamba."
        repo = "OWNER/REPO"
    if is_zsl:
        n_cls = len(config.get("class_names") or []) or (config.get("class_attributes") or {}).get("shape", [0])[0]
        n_seen = len(config.get("seen_classes") or [])
        what = (
            "A zero-shot image classifier (ZeroMamba, Hou et al., AAAI 2025): a VMamba v2 backbone with three "
            "semantic heads (SLP attention per attribute, GRL, SeF fusion) that predicts a vector of "
            f"{args.get('num_attributes')} class attributes per image. A class scores the dot product of its "
            f"attribute row with that vector, so any class described in the same attribute space can be "
            "recognised. "
            + (
                f"The folder carries the {dataset} class-attribute matrix ({n_cls} classes, {n_seen} seen in "
                f"training) and the calibrated-stacking gamma {config.get('gamma')} used for generalised ZSL."
                if n_cls
                else "The folder carries no class-attribute matrix: pass your classes' attribute vectors to classify."
            )
        )
        usage = (
            "import zeromamba\n"
            f'predictor = zeromamba.from_pretrained("{variant.name if variant else "hf-hub:" + repo}")\n'
            'print(predictor.classify("image.jpg", top_k=5))\n\n'
            "import timm  # the weights alone, through timm\n"
            f'model = timm.create_model("hf-hub:{repo}", pretrained=True)'
        )
        pipeline, task_tag = "zero-shot-image-classification", "zero-shot-learning"
    else:
        what = (
            "A VMamba v2 ImageNet-1k classifier (Liu et al., 2024), the backbone ZeroMamba is fine-tuned from. "
            "Useful as a timm backbone (`features_only=True`) or an ImageNet classifier."
        )
        timm_name = variant.timm_name if variant else "vmamba_small"
        usage = (
            "import timm, zeromamba  # importing zeromamba registers the architectures with timm\n"
            f'model = timm.create_model("{timm_name}", pretrained=True)\n'
            f'model = timm.create_model("hf-hub:{repo}", pretrained=True)  # the same weights'
        )
        pipeline, task_tag = "image-classification", "image-classification"
    if variant is not None and variant.authors_metrics:
        rows = "\n".join(f"| {_METRIC_NAMES.get(k, k)} | {v:.1f} |" for k, v in variant.authors_metrics.items())
        metrics = (
            f"| metric (%) | value |\n|---|---|\n{rows}\n\n"
            f"These are the authors' figures, {variant.authors_metrics_source}. This project has not re-measured them."
        )
    else:
        metrics = "No reported results are attached to this model."
    if variant is not None and variant.source_file:
        provenance = (
            f"Converted with zeromamba from the authors' release file `{variant.source_file}` ({variant.source_url}) "
            "by `zeromamba convert`: parameters renamed to zeromamba's names and stored as safetensors; values "
            "unchanged. The converter is tested to reproduce the official implementation's outputs."
        )
    else:
        provenance = "Saved with `zeromamba` (`save_pretrained`); the origin of the weights is not recorded."
    lic = variant.license if variant is not None else str(pc.get("license") or "unknown")
    if lic in ("unknown", "other", ""):
        license_id = "other"
        license_extra = "license_name: unknown\nlicense_link: " + (
            zoo.ZEROMAMBA_CODE_URL if is_zsl else zoo.VMAMBA_CODE_URL
        )
    else:
        license_id, license_extra = lic, ""
    license_text = (variant.license_note if variant is not None and variant.license_note else f"Licence: {lic}.") + (
        " The zeromamba code is MIT-licensed."
    )
    text = string.Template(MODEL_CARD_TEMPLATE).substitute(
        license_id=license_id,
        license_extra=license_extra,
        pipeline_tag=pipeline,
        task_tag=task_tag,
        dataset_id=_DATASET_IDS.get(dataset, str(dataset).lower()),
        title=title,
        description=description,
        what=what,
        usage=usage,
        height=pc.get("input_size", [3, 0, 0])[1],
        width=pc.get("input_size", [3, 0, 0])[2],
        interpolation=pc.get("interpolation", "bilinear"),
        crop_mode=pc.get("crop_mode", "squash"),
        crop_pct=pc.get("crop_pct", 1.0),
        metrics=metrics,
        provenance=provenance,
        license_text=license_text,
    )
    return re.sub(r"\n{2,}(?=library_name)", "\n", text)  # drop the blank line an empty license_extra leaves


# --- publishing ------------------------------------------------------------------------------


def _check_folder(folder: Path) -> dict[str, Any]:
    """Validate a folder before upload: the config parses and every safetensors header reads."""
    import safetensors

    cfg = read_config(folder / CONFIG_NAME)
    files = [WEIGHTS_NAME]
    if isinstance(cfg.get("class_attributes"), dict):
        files.append(str(cfg["class_attributes"]["file"]))
    for f in files:
        try:
            with safetensors.safe_open(str(folder / f), framework="pt") as fh:
                fh.keys()
        except Exception as e:
            raise CheckpointError(f"{str(folder / f)!r} is missing or not a valid safetensors file: {e}") from None
    return cfg


def push_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a model folder to the Hugging Face Hub (creating the repository if needed).

    The folder is validated first; only ``config.json``, ``*.safetensors`` and ``README.md`` are
    uploaded. The token defaults to huggingface_hub's (``HF_TOKEN`` or ``hf auth login``).

    Returns:
        The URL of the commit.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{str(folder)!r} is not a folder")
    cfg = _check_folder(folder)
    if not _REPO_ID.match(repo_id):
        raise UnknownModelError(f"{repo_id!r} is not a Hub repository id (expected 'owner/name')")
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        revision=revision,
        allow_patterns=[CONFIG_NAME, "*.safetensors", MODEL_CARD_NAME],
        commit_message=commit_message or f"Upload {cfg['architecture']} (zeromamba format {FORMAT_VERSION})",
    )
    return str(getattr(info, "commit_url", info))
