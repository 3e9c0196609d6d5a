"""The saved format's ``config.json``: file names, the format version, reading and validating a
config, and describing a model by its constructor arguments (and building it back)."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..architectures import (
    VIM_ARCHITECTURES,
    VMAMBA_ARCHITECTURES,
    ZEROMAMBA_ARCHITECTURES,
    ZEROMAMBA_VIM_ARCHITECTURES,
    architecture_for,
    default_dt_rank,
)
from ..errors import CheckpointError, ConfigError
from ..fileio import read_regular_text
from ..models import SS2D, Vim, VMamba, ZeroMamba, ZeroMambaVim
from ..version import __version__
from .config_values import check_config_values
from .model_args import check_model_args

__all__ = [
    "ARCHITECTURES",
    "CLASS_ATTRIBUTES_NAME",
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "MAX_CONFIG_BYTES",
    "build_model",
    "describe_model",
    "json_safe",
    "model_config",
    "pretrained_cfg_fields",
    "read_config",
]

FORMAT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CLASS_ATTRIBUTES_NAME = "class_attributes.safetensors"
MODEL_CARD_NAME = "README.md"
#: the largest config.json read (class names of 100k classes fit many times over)
MAX_CONFIG_BYTES = 64 << 20

#: the architectures a config may name
ARCHITECTURES: tuple[str, ...] = (
    *ZEROMAMBA_ARCHITECTURES,
    *VMAMBA_ARCHITECTURES,
    *ZEROMAMBA_VIM_ARCHITECTURES,
    *VIM_ARCHITECTURES,
)


def json_safe(value: Any) -> Any:
    """``value`` with tensors and numpy values turned into plain JSON types.

    Raises:
        ConfigError: a NaN or infinite float (JSON cannot hold it).
    """
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return json_safe(value.tolist())
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars/arrays
        return json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"cannot store the non-finite value {value!r} in config.json")
    return value


def pretrained_cfg_fields() -> set[str]:
    """The field names of timm's ``PretrainedCfg`` (what ``pretrained_cfg`` may hold)."""
    from timm.models import PretrainedCfg

    return {f.name for f in fields(PretrainedCfg)}


def model_config(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """``(timm architecture, constructor arguments)`` of a :class:`ZeroMamba` or :class:`VMamba`
    (or of their Vim counterparts, :class:`ZeroMambaVim` and :class:`Vim`).

    The arguments are read off the modules and checked by rebuilding the model and comparing every
    parameter shape, so ``Class(**args)`` always loads the saved state dict.
    """
    if isinstance(model, (Vim, ZeroMambaVim)):
        return _vim_config(model)
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
    auto = all(op.dt_rank == default_dt_rank(op.out_proj.out_features) for op in ops)
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
    _check_rebuild(model, cls, args)
    return arch, args


def _check_rebuild(model: nn.Module, cls: type[nn.Module], args: dict[str, Any]) -> None:
    rebuilt = cls(**args).state_dict()
    own = model.state_dict()
    if {k: tuple(v.shape) for k, v in rebuilt.items()} != {k: tuple(v.shape) for k, v in own.items()}:
        raise CheckpointError(
            f"cannot describe this {type(model).__name__} by constructor arguments (rebuilding it with {args} "
            "gives different parameters); was it modified after construction?"
        )


def _vim_config(model: Vim | ZeroMambaVim) -> tuple[str, dict[str, Any]]:
    """:func:`model_config` for the Vim family."""
    backbone = model.backbone if isinstance(model, ZeroMambaVim) else model
    embed, mixer = backbone.patch_embed, backbone.layers[0].mixer if len(backbone.layers) else None
    if mixer is None:
        raise CheckpointError("the model has no Vim layers (depth 0): nothing to save")
    args: dict[str, Any] = dict(
        embed_dim=int(backbone.embed_dim),
        depth=len(backbone.layers),
        d_state=int(mixer.d_state),
        patch_size=int(embed.patch_size),
        stride=int(embed.stride),
        img_size=[int(v) for v in embed.img_size],
        expand=mixer.d_inner // int(backbone.embed_dim),
        d_conv=int(mixer.conv1d.kernel_size[0]),
    )
    if mixer.dt_rank != default_dt_rank(backbone.embed_dim):
        args["dt_rank"] = int(mixer.dt_rank)
    if int(backbone.in_chans) != 3:
        args["in_chans"] = int(backbone.in_chans)
    if embed.dynamic_img_size:
        args["dynamic_img_size"] = True
    size = {k: args[k] for k in ("embed_dim", "depth", "d_state", "patch_size", "stride")}
    if isinstance(model, ZeroMambaVim):
        table, fallback, cls = ZEROMAMBA_VIM_ARCHITECTURES, "zeromamba_vim_small", ZeroMambaVim
        args.update(
            num_attributes=int(model.num_attributes),
            semantic_dim=int(model.slp.V.shape[1]),
            fusion_hidden=int(model.fusion.mlp[0].out_features),
            num_imagenet_classes=int(model.global_head.in_features),
        )
    else:
        table, fallback, cls = VIM_ARCHITECTURES, "vim_small", Vim
        args["num_classes"] = int(backbone.num_classes)
    # other sizes are saved under the family's default name with their own (always explicit) model_args
    arch = next((n for n, a in table.items() if all(a.get(k) == v for k, v in size.items())), fallback)
    _check_rebuild(model, cls, {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()})
    return arch, args


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a ``config.json`` (a file, or a folder holding one).

    Only a regular file of at most :data:`MAX_CONFIG_BYTES` is read (a FIFO or device is refused
    without blocking); every value the loader uses is checked for its type and range
    (:mod:`~zeromamba.format.config_values`); ``model_args`` are checked when the model is described
    (:func:`describe_model`).

    Raises:
        ConfigError: unreadable JSON, missing keys, a value of the wrong type or range, or a format
            version this release does not know.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    try:
        text = read_regular_text(path, MAX_CONFIG_BYTES, ConfigError, "config.json")
    except FileNotFoundError:
        raise ConfigError(f"{str(path)!r} does not exist: not a zeromamba model folder") from None
    try:
        cfg = json.loads(text)
    except RecursionError:
        raise ConfigError(f"cannot read {str(path)!r}: its JSON is nested too deeply to be a config") from None
    except ValueError as e:  # JSONDecodeError, or an integer of more digits than Python converts
        raise ConfigError(f"cannot read {str(path)!r} as JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{str(path)!r} must hold a JSON object")
    version = cfg.get("zeromamba_format")
    if version is None:
        raise ConfigError(
            f"{str(path)!r} has no 'zeromamba_format' key: it was not written by zeromamba. Convert the weights with "
            "`zeromamba convert` (authors' .pth) or load the model with timm instead."
        )
    # an integer, or a "MAJOR.MINOR" string (a newer minor version of the same major reads the same)
    if isinstance(version, str) and re.fullmatch(r"[0-9]{1,6}(\.[0-9]{1,6})?", version):
        major = int(version.split(".")[0])
    elif isinstance(version, int) and not isinstance(version, bool):
        major = version
    else:
        raise ConfigError(
            f"{str(path)!r}: zeromamba_format must be the format version, an integer or a 'MAJOR.MINOR' string; "
            f"got {version!r}"
        )
    if major != FORMAT_VERSION:
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
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise ConfigError(
            f"{str(path)!r}: unknown architecture {arch!r}; this zeromamba knows "
            f"{', '.join(ARCHITECTURES)}. Upgrade zeromamba if the model is newer."
        )
    if not isinstance(cfg.get("model_args"), dict):
        raise ConfigError(f"{str(path)!r}: 'model_args' must be an object of constructor arguments")
    if not isinstance(cfg.get("pretrained_cfg", {}), dict):
        raise ConfigError(f"{str(path)!r}: 'pretrained_cfg' must be an object")
    check_config_values(cfg, repr(str(path)))
    return cfg


def _model_class(cfg: Mapping[str, Any]) -> type[nn.Module]:
    classes: dict[str, type[nn.Module]] = {
        **dict.fromkeys(ZEROMAMBA_ARCHITECTURES, ZeroMamba),
        **dict.fromkeys(ZEROMAMBA_VIM_ARCHITECTURES, ZeroMambaVim),
        **dict.fromkeys(VIM_ARCHITECTURES, Vim),
    }
    return classes.get(cfg["architecture"], VMamba)


def describe_model(cfg: Mapping[str, Any], source: str) -> nn.Module:
    """The model a config describes, built on the ``meta`` device (shapes and dtypes, no memory)
    after every ``model_args`` field was checked (:func:`~zeromamba.format.model_args.check_model_args`).

    Raises:
        ConfigError: ``model_args`` of the wrong type or range, too large a model, or arguments the
            architecture's constructor refuses.
    """
    return check_model_args(_model_class(cfg), cfg["model_args"], source)


def build_model(cfg: Mapping[str, Any], source: str, *, described: bool = False) -> nn.Module:
    """The (randomly initialised) model a config describes, built only after :func:`describe_model`
    accepted its arguments (``described=True``: the caller already called it).

    Raises:
        ConfigError: ``model_args`` that are refused (see :func:`describe_model`).
    """
    if not described:
        describe_model(cfg, source)
    cls = _model_class(cfg)
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg["model_args"].items()}
    try:
        return cls(**args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{source}: config.json's model_args do not build a {cls.__name__}: {e}") from None
