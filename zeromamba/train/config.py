"""The training configuration: :class:`TrainConfig`, the per-dataset presets, config files, and
how given values are turned into a checked configuration.

Precedence: defaults < the dataset's preset (:data:`PRESETS`) < a JSON/TOML file < explicit
values. With ``resume`` the run folder's saved ``config.json`` takes the place of defaults + preset.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from ..architectures import (
    VIM_ARCHITECTURES,
    VMAMBA_ARCHITECTURES,
    ZEROMAMBA_ARCHITECTURES,
    ZEROMAMBA_VIM_ARCHITECTURES,
)
from ..constants import ZSL_IMAGE_SIZE
from ..data.augment import augmentation_problem
from ..data.shapes import parse_shapes_spec
from ..data.shapes_draw import VARIETIES
from ..errors import ConfigError

__all__ = [
    "CONFIG_FIELDS",
    "PRESETS",
    "SELECTION_LABELS",
    "TrainConfig",
    "load_config_file",
    "resolve_config",
]

#: Per-dataset values from the paper / the authors' scripts (FLO: not run by the authors; a guess)
PRESETS: dict[str, dict[str, Any]] = {
    "CUB": {"l1_weight": 1.0, "gamma": 0.3},
    "SUN": {"l1_weight": 0.2, "gamma": 0.35},
    "AWA2": {"l1_weight": 0.0, "gamma": 0.98},
    "FLO": {"l1_weight": 0.0, "gamma": 0.5},
    "folder": {"l1_weight": 0.0, "gamma": 0.5},
}

#: the model-selection protocols and what their reported numbers mean
SELECTION_LABELS: dict[str, str] = {
    "validation": "epoch and gamma chosen on a validation split of the seen classes; test evaluated once",
    "authors": "authors' protocol: epoch chosen on the test set (best H at the preset gamma; CZSL separately)",
    "last": "no selection: the last epoch at the preset gamma; test evaluated once",
}


def _vmamba_small() -> dict[str, Any]:
    # the published model's backbone (drop-path 0.3, as in the VMamba config the authors load)
    args = dict(VMAMBA_ARCHITECTURES["vmamba_small"])
    args["depths"] = list(args["depths"])
    return args


@dataclass
class TrainConfig:
    """Everything a training run needs. Field names are the config-file keys (``--set key=value``).

    Data: ``dataset`` (CUB, SUN, AWA2, FLO, ``folder`` or ``shapes``), ``data_root`` (xlsa17
    ``data`` folder), ``image_root``, ``strip_components``/``path_regex`` (xlsa17 path rule),
    ``attributes_csv`` and ``unseen_classes`` (own data), ``embeddings`` (word2vec attribute
    vectors, ``A x 300``; ``allow_pickle`` to read the authors' ``.pkl``).

    Model: ``architecture`` (``zeromamba_small``: ZeroMamba on VMamba, the published model, its
    backbone set by ``model``; ``zeromamba_vim_tiny`` / ``zeromamba_vim_small``: ZeroMamba on Vim,
    built at ``image_size``), ``init`` (ImageNet backbone: a zoo name such as ``vmamba-small`` or
    ``vim-small``, a Hub repository or model folder, a local VMamba / Vim release
    ``.pth``/``.safetensors``, or ``"none"``; a Vim architecture defaults to its own Vim release),
    ``init_scope`` (``backbone``: only the backbone comes from ``init``; ``model``: ``init`` is a
    whole trained ZeroMamba of the same architecture and size, heads and semantic matrix included,
    for a second, fine-tuning stage),
    ``model`` (architecture arguments of :class:`~zeromamba.models.ZeroMamba`, or of
    :class:`~zeromamba.models.ZeroMambaVim` for the Vim architectures, which default to the
    matching Vim size), ``drop_path_rate``, ``scan_backend``, ``grad_checkpointing``.

    Input: ``image_size`` (square side) and ``crop_mode``: ``squash`` (the paper's plain resize),
    ``border`` (aspect ratio kept, padded with the mean colour: timm's mode, so timm's transforms
    reproduce it) or ``letterbox`` (aspect ratio kept, padded with the border colour); saved with
    the model, so its predictor preprocesses the same way.

    Optimisation (the paper's recipe): SGD (``optimizer``: ``sgd``, or ``adamw`` for small models
    trained from scratch), ``momentum`` 0.9, ``weight_decay`` 1e-3; ``lr`` for the
    backbone + SLP, ``lr_global`` for the GRL head, ``lr_fusion`` for the fusion MLP; MultiStepLR
    ``milestones`` x ``lr_decay``; ``batch_size`` is the global batch (split over processes);
    loss ``CE + l1_weight * L1``; ``gamma`` the calibrated-stacking gamma.

    Attribute groups (datasets whose attributes form groups of exclusive values, such as
    ``shapes``: a shape, a colour, a fill; both default off, so the published recipes are the
    paper's): ``group_ce_weight`` adds that weight times a cross-entropy per group on the predicted
    attribute vector (each group's values as logits, the class's value as the label);
    ``shapes_variety`` (``shapes`` only: ``standard``, ``wide`` or ``uneven``, how widely the renderer varies
    fills and backgrounds, :mod:`~zeromamba.data.shapes_draw`);
    ``augment``: training augmentations by name, applied after the flip (:mod:`~zeromamba.data.augment`:
    ``warp`` bends the image smoothly by a few pixels, ``pixelate`` redraws it on a coarser grid);
    ``hue_rotate_fraction`` of each batch is shown at a random hue (a rotation of the chroma plane
    in YIQ) and learns only through the group cross-entropy of the groups other than
    ``colour_group``, so that no other attribute can be read from the colour;
    ``swatches_per_batch`` texture swatches (``shapes`` only: blobs of any hue that show a fill and
    are of no class, :class:`~zeromamba.data.shapes.SwatchRenderer`) join each batch and learn
    ``swatch_weight`` times a cross-entropy on their group alone, so that the fill is learnt from
    the texture rather than from the colour and shape it comes with in the seen classes.
    """

    dataset: str = "CUB"
    data_root: str | None = None
    image_root: str | None = None
    strip_components: int | None = None
    path_regex: str | None = None
    attributes_csv: str | None = None
    unseen_classes: str | None = None
    test_seen_fraction: float = 0.2
    val_class_fraction: float = 0.2
    embeddings: str | None = None
    allow_pickle: bool = False
    output_dir: str = "runs/zeromamba"
    architecture: str = "zeromamba_small"
    init: str = "vmamba-small"
    init_scope: str = "backbone"
    model: dict[str, Any] = field(default_factory=_vmamba_small)
    drop_path_rate: float = 0.3
    scan_backend: str = "auto"
    grad_checkpointing: bool = False
    image_size: int = ZSL_IMAGE_SIZE
    crop_mode: str = "squash"
    batch_size: int = 32
    optimizer: str = "sgd"
    epochs: int = 100
    lr: float = 1e-3
    lr_global: float = 1e-3
    lr_fusion: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 1e-3
    milestones: list[int] = field(default_factory=lambda: [10, 20, 30, 40])
    lr_decay: float = 0.5
    l1_weight: float = 1.0
    group_ce_weight: float = 0.0
    hue_rotate_fraction: float = 0.0
    colour_group: str = "colour"
    swatches_per_batch: int = 0
    shapes_variety: str = "standard"
    swatch_weight: float = 1.0
    augment: list[str] = field(default_factory=list)
    gamma: float = 0.3
    seed: int = 0
    amp: str = "auto"
    selection: str = "validation"
    select_metric: str = "harmonic"
    holdout_fraction: float = 0.2
    retrain: bool = True
    eval_every: int = 1
    eval_batch_size: int = 64
    num_workers: int = 4
    device: str = "auto"
    progress: str = "auto"
    max_steps_per_epoch: int | None = None
    resume: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


#: field name -> :class:`dataclasses.Field` of every :class:`TrainConfig` key
CONFIG_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}

# keys that may differ on --resume without changing the run
_RESUME_FREE = {"resume", "num_workers", "device", "progress", "eval_batch_size", "data_root", "image_root"}


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a JSON (``.json``) or TOML (``.toml``) configuration file into a dict.

    Raises:
        ConfigError: a missing or unparsable file, or one that is not a table / JSON object.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path!r}")
    toml = _toml_module(path) if path.endswith(".toml") else None
    try:
        if toml is not None:
            with open(path, "rb") as f:
                obj = toml.load(f)
        else:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
    except Exception as e:  # JSON / TOML syntax, encoding, I/O
        raise ConfigError(f"cannot parse config file {path!r}: {e}") from None
    if not isinstance(obj, dict):
        raise ConfigError(f"{path!r}: the configuration must be a table / JSON object")
    return obj


def _toml_module(path: str) -> Any:
    try:
        import tomllib  # Python 3.11+

        return tomllib
    except ModuleNotFoundError:  # pragma: no cover - 3.10
        try:
            import tomli

            return tomli
        except ModuleNotFoundError:
            raise ConfigError(f"{path!r}: TOML needs Python 3.11+ (or tomli); use JSON") from None


# --- values --------------------------------------------------------------------------------------


def _to_bool(value: Any) -> bool:
    if isinstance(value, str):
        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(value)
        return value.lower() in ("true", "1", "yes")
    return bool(value)


def _to_int(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _to_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(value)
    return dict(value)


# a field's annotation (without "| None") -> how a given value becomes one
_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "bool": _to_bool,
    "int": _to_int,
    "float": float,
    "str": str,
    "list[int]": lambda value: [int(v) for v in value],
    "list[str]": lambda value: (
        [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else [str(v) for v in value]
    ),
    "dict[str, Any]": _to_dict,
}


def _coerce(key: str, value: Any) -> Any:
    """``value`` as the type of field ``key`` (``None`` stays ``None``)."""
    if value is None:
        return None
    kind = str(CONFIG_FIELDS[key].type).split(" | ")[0]
    try:
        return _CONVERTERS[kind](value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key {key!r}: bad value {value!r}") from None


def _check_keys(given: Mapping[str, Any]) -> None:
    unknown = sorted(set(given) - set(CONFIG_FIELDS))
    if unknown:
        hints = []
        for k in unknown:
            close = get_close_matches(k, CONFIG_FIELDS, 1)
            hints.append(f"{k} (did you mean {close[0]}?)" if close else k)
        raise ConfigError(f"unknown config keys: {', '.join(hints)}")


def _base_values(given: Mapping[str, Any]) -> dict[str, Any]:
    """What ``given`` overrides: the saved run's configuration (``resume``), else the dataset's preset."""
    saved = Path(given.get("output_dir") or TrainConfig.output_dir) / "config.json"
    if given.get("resume") and saved.is_file():
        base = {k: _coerce(k, v) for k, v in load_config_file(saved).items() if k in CONFIG_FIELDS}
        changed = {k for k, v in given.items() if k in base and base[k] != v and k not in _RESUME_FREE}
        if changed:
            warnings.warn(f"--resume with changed settings {sorted(changed)}: the new values apply", stacklevel=3)
        return base
    dataset = str(given.get("dataset", TrainConfig.dataset))
    base = dict(PRESETS.get(dataset.upper(), PRESETS["folder"] if dataset.lower() == "folder" else {}))
    arch = str(given.get("architecture", TrainConfig.architecture))
    if arch in ZEROMAMBA_VIM_ARCHITECTURES:  # the Vim backbone of that size, from its ImageNet release
        size = arch.removeprefix("zeromamba_vim_")
        base.update(model=dict(VIM_ARCHITECTURES[f"vim_{size}"]), init=f"vim-{size}")
    return base


def resolve_config(config: TrainConfig | Mapping[str, Any] | str | os.PathLike) -> TrainConfig:
    """Turn a :class:`TrainConfig`, a mapping of overrides, or a config-file path into a checked config.

    A mapping starts from the defaults and the dataset's preset. With ``resume`` and an
    ``output_dir`` that holds a run, it starts from that run's saved ``config.json`` instead.

    Raises:
        ConfigError: unknown keys (close names are suggested), values of the wrong type, or
            settings out of range.
    """
    if isinstance(config, TrainConfig):
        cfg = config
    else:
        given = load_config_file(config) if isinstance(config, (str, os.PathLike)) else dict(config)
        _check_keys(given)
        given = {k: _coerce(k, v) for k, v in given.items()}
        cfg = TrainConfig(**{**_base_values(given), **given})
    _check_config(cfg)
    return cfg


def _check_config(cfg: TrainConfig) -> None:
    problems = []
    architectures = (*ZEROMAMBA_ARCHITECTURES, *ZEROMAMBA_VIM_ARCHITECTURES)
    if cfg.architecture not in architectures:
        problems.append(f"architecture must be one of {', '.join(architectures)} (got {cfg.architecture!r})")
    if cfg.selection not in SELECTION_LABELS:
        problems.append(f"selection must be one of {', '.join(SELECTION_LABELS)} (got {cfg.selection!r})")
    if cfg.select_metric not in ("harmonic", "czsl"):
        problems.append(f"select_metric must be 'harmonic' or 'czsl' (got {cfg.select_metric!r})")
    for key in ("epochs", "batch_size", "image_size", "eval_every", "eval_batch_size"):
        if getattr(cfg, key) < 1:
            problems.append(f"{key} must be at least 1 (got {getattr(cfg, key)})")
    for key in (
        "lr",
        "lr_global",
        "lr_fusion",
        "weight_decay",
        "momentum",
        "l1_weight",
        "group_ce_weight",
        "swatch_weight",
    ):
        v = getattr(cfg, key)
        if not math.isfinite(v) or v < 0:
            problems.append(f"{key} must be a finite non-negative number (got {v})")
    if cfg.init_scope not in ("backbone", "model"):
        problems.append(f"init_scope must be 'backbone' or 'model' (got {cfg.init_scope!r})")
    if cfg.init_scope == "model" and (not cfg.init or str(cfg.init).lower() == "none"):
        problems.append("init_scope 'model' needs an init: the trained model to start from")
    if cfg.shapes_variety not in VARIETIES:
        problems.append(f"shapes_variety must be one of {', '.join(VARIETIES)} (got {cfg.shapes_variety!r})")
    elif cfg.shapes_variety != "standard" and parse_shapes_spec(cfg.dataset) is None:
        problems.append(f"shapes_variety is for the shapes dataset (got dataset {cfg.dataset!r})")
    augment_problem = augmentation_problem(cfg.augment)
    if augment_problem is not None:
        problems.append(f"augment: {augment_problem}")
    if cfg.swatches_per_batch < 0:
        problems.append(f"swatches_per_batch must be non-negative (got {cfg.swatches_per_batch})")
    if cfg.num_workers < 0:
        problems.append(f"num_workers must be non-negative (got {cfg.num_workers})")
    if not 0.0 <= cfg.hue_rotate_fraction < 1.0:
        problems.append(f"hue_rotate_fraction must be in [0, 1) (got {cfg.hue_rotate_fraction})")
    if cfg.hue_rotate_fraction > 0 and not cfg.group_ce_weight > 0:
        problems.append("hue_rotate_fraction needs group_ce_weight > 0 (hue-rotated images learn only through it)")
    if not math.isfinite(cfg.gamma):
        problems.append(f"gamma must be finite (got {cfg.gamma})")
    if cfg.optimizer not in ("sgd", "adamw"):
        problems.append(f"optimizer must be 'sgd' or 'adamw' (got {cfg.optimizer!r})")
    if cfg.crop_mode not in ("squash", "border", "letterbox"):
        problems.append(f"crop_mode must be 'squash', 'border' or 'letterbox' (got {cfg.crop_mode!r})")
    if cfg.amp not in ("auto", "bf16", "fp16", "off"):
        problems.append(f"amp must be auto, bf16, fp16 or off (got {cfg.amp!r})")
    if cfg.progress not in ("auto", "on", "off"):
        problems.append(f"progress must be auto, on or off (got {cfg.progress!r})")
    if cfg.max_steps_per_epoch is not None and cfg.max_steps_per_epoch < 1:
        problems.append("max_steps_per_epoch must be at least 1")
    if problems:
        raise ConfigError("bad training configuration: " + "; ".join(problems))
