"""Loading the authors' checkpoints: ZeroMamba ``{DATASET}_best{CZSL,GZSL}.pth`` files, the VMamba
v2 ImageNet release files (``{"model": state_dict}``) and the Vim release files
(``hustvl/Vim-*-midclstok``: ``{"model": ..., "optimizer": ..., "epoch": ..., "args": Namespace}``).

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, plus
exactly one class, ``argparse.Namespace`` (the training arguments DeiT-style trainers store under
``args``). Any other pickled object is refused before it is built, so no code in the file runs
(:mod:`zeromamba.format.torch_checkpoint`). The architecture is read off the tensor shapes, so
``load_official(path)`` needs no arguments for the published files; keyword arguments override (a
Vim file's ``img_size`` / ``stride`` when they are not the release's 224 / 16). Read off a file, it
gets the limits of a model folder's ``model_args`` (each field's range, the parameter cap), and the
state dict must fit the model built on the ``meta`` device, before a real model is allocated.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn as nn

from .architectures import default_dt_rank
from .errors import CheckpointError
from .format.model_args import check_model_args, checked_arg_names
from .format.torch_checkpoint import SAFE_GLOBALS, check_tensors, read_torch_checkpoint
from .models._helpers import load_state_dict_strict, require_fit, unwrap_state_dict
from .models.vim import Vim
from .models.vim import checkpoint_filter_fn as vim_filter_fn
from .models.vmamba import VMamba
from .models.vmamba import checkpoint_filter_fn as vmamba_filter_fn
from .models.zeromamba import ZeroMamba
from .models.zeromamba import checkpoint_filter_fn as zeromamba_filter_fn

__all__ = [
    "SAFE_GLOBALS",
    "build_checked",
    "infer_architecture",
    "infer_vim_architecture",
    "is_vim_state_dict",
    "load_official",
    "read_official_state_dict",
]


def read_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` safely and unwrap ``{"model": ...}`` / ``{"state_dict": ...}``.

    Before any unpickler runs, the file must be a regular file, its container is read as
    ``torch.load`` reads it, and its pickle's imports and calls are read without running it: any
    import outside tensors, plain containers and ``argparse.Namespace``, any call that would allocate
    from a number in the file, and any pickle that cannot be read exactly is refused, by name
    (:mod:`zeromamba.format.torch_checkpoint`). ``torch.load(weights_only=True)`` then loads it as a
    second guard, and every tensor of the state dict must be dense, on the CPU, without stride 0 and
    within its storage.

    Raises:
        CheckpointError: for all of these, and for a file that holds no state dict.
    """
    path = os.fspath(path)
    obj = unwrap_state_dict(read_torch_checkpoint(path))
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path!r} does not hold a state dict (a mapping of names to tensors)")
    state = {str(k): v for k, v in obj.items()}
    check_tensors(state, repr(path))
    return state


def build_checked(
    cls: type[nn.Module],
    args: Mapping[str, Any],
    state_dict: dict[str, torch.Tensor],
    filter_fn: Callable[[dict[str, torch.Tensor], Any], dict[str, torch.Tensor]],
    source: str,
) -> nn.Module:
    """``cls(**args)`` loaded strictly with ``filter_fn(state_dict, model)``, in eval mode, built only
    after the arguments passed the limits of a model folder's ``model_args`` (each field's range, the
    parameter cap) and the state dict was found to fit the model built on the ``meta`` device.

    Raises:
        CheckpointError: an argument out of range, a model over the parameter cap, a state dict that
            does not fit (every key and shape named), or values that cannot be loaded.
    """
    names = checked_arg_names(cls)
    checked = {k: list(v) if isinstance(v, tuple) else v for k, v in args.items() if k in names}
    meta = check_model_args(
        cls, checked, source, origin="the architecture read off its tensor shapes:", error=CheckpointError
    )
    require_fit(meta, filter_fn(state_dict, meta), source)
    try:
        model = cls(**args)
    except (TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"bad model arguments for {source}: {e}") from None
    load_state_dict_strict(model, filter_fn(state_dict, model), source)
    return model.eval()


def is_vim_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """True for a Vim state dict (its class token, position embedding and bidirectional mixers)."""
    return "pos_embed" in state_dict and "layers.0.mixer.A_b_log" in state_dict


def infer_vim_architecture(state_dict: Mapping[str, torch.Tensor], stride: int = 16) -> dict[str, Any]:
    """:class:`~zeromamba.models.Vim` arguments read off a Vim state dict's shapes.

    The patch stride cannot be seen in the shapes (give it when it is not 16); the input size is
    the square one whose patch grid (at that stride) has as many positions as ``pos_embed``.

    Raises:
        CheckpointError: a parameter is missing, or the position embedding covers no square grid
            (then ``img_size`` must be given).
    """
    try:
        proj = state_dict["patch_embed.proj.weight"]
        A_log = state_dict["layers.0.mixer.A_log"]
        conv = state_dict["layers.0.mixer.conv1d.weight"]
        dt_rank = state_dict["layers.0.mixer.dt_proj.weight"].shape[1]
        positions = state_dict["pos_embed"].shape[1] - 1
    except KeyError as e:
        raise CheckpointError(f"not a Vim checkpoint: parameter {e.args[0]!r} is missing") from None
    embed_dim, patch = int(proj.shape[0]), int(proj.shape[-1])
    depth = 1 + max(int(m.group(1)) for k in state_dict if (m := re.match(r"layers\.(\d+)\.", k)))
    args: dict[str, Any] = dict(
        embed_dim=embed_dim,
        depth=depth,
        d_state=int(A_log.shape[1]),
        patch_size=patch,
        stride=int(stride),
        expand=int(A_log.shape[0]) // embed_dim,
        d_conv=int(conv.shape[-1]),
        num_classes=int(state_dict["head.weight"].shape[0]) if "head.weight" in state_dict else 0,
    )
    side = math.isqrt(positions)
    if side * side == positions:
        args["img_size"] = (side - 1) * int(stride) + patch
    if default_dt_rank(embed_dim) != dt_rank:
        args["dt_rank"] = int(dt_rank)
    if int(proj.shape[1]) != 3:
        args["in_chans"] = int(proj.shape[1])
    return args


def infer_architecture(state_dict: Mapping[str, torch.Tensor]) -> dict[str, Any]:
    """Read ``embed_dim``, ``depths``, ``d_state``, ``ssm_ratio`` (and, for ZeroMamba,
    ``num_attributes``, ``semantic_dim``, ``fusion_hidden``) off an official state dict's shapes."""
    prefix = "VisionMamba." if any(k.startswith("VisionMamba.") for k in state_dict) else ""
    try:
        embed_dim = state_dict[prefix + "patch_embed.5.weight"].shape[0]
        depths: dict[int, int] = {}
        for k in state_dict:
            m = re.match(re.escape(prefix) + r"layers\.(\d+)\.blocks\.(\d+)\.", k)
            if m:
                i, j = int(m.group(1)), int(m.group(2))
                depths[i] = max(depths.get(i, 0), j + 1)
        first = prefix + "layers.0.blocks.0.op."
        d_state = state_dict[first + "A_logs"].shape[1]
        d_inner = state_dict[first + "in_proj.weight"].shape[0]
        dt_rank = state_dict[first + "dt_projs_weight"].shape[2]
        num_imagenet = state_dict[prefix + "classifier.head.weight"].shape[0]
        mlp_hidden = state_dict[prefix + "layers.0.blocks.0.mlp.fc1.weight"].shape[0]
    except KeyError as e:
        raise CheckpointError(f"not a VMamba v2 / ZeroMamba checkpoint: parameter {e.args[0]!r} is missing") from None
    args: dict[str, Any] = dict(
        embed_dim=int(embed_dim),
        depths=tuple(depths[i] for i in sorted(depths)),
        d_state=int(d_state),
        ssm_ratio=d_inner / embed_dim,
        mlp_ratio=mlp_hidden / embed_dim,
        ssm_conv_bias=(first + "conv2d.bias") in state_dict,
    )
    if default_dt_rank(embed_dim) != dt_rank:
        args["dt_rank"] = int(dt_rank)
    if prefix:
        args["num_attributes"] = int(state_dict[prefix + "classifier2.V"].shape[0])
        args["semantic_dim"] = int(state_dict[prefix + "classifier2.V"].shape[1])
        if "clf_head2.0.weight" in state_dict:
            args["fusion_hidden"] = int(state_dict["clf_head2.0.weight"].shape[0])
        args["num_imagenet_classes"] = int(num_imagenet)
    else:
        args["num_classes"] = int(num_imagenet)
    return args


def load_official(path: str | os.PathLike, **model_args: Any) -> ZeroMamba | VMamba | Vim:
    """Load an authors' checkpoint into our model, in eval mode.

    Args:
        path: an official ZeroMamba state dict (``.pth``, with or without ``clf_head.bias``), an
            official VMamba v2 release file (``{"model": state_dict}``) or a Vim release file.
        **model_args: override what is read off the tensor shapes (``scan_backend``, ``attribute
            embeddings`` etc. are passed through to the constructor). For Vim: ``stride`` when the
            file is a stride-8 model, ``img_size`` (int or ``(H, W)``) to build the model at another
            input size (the position embedding is resized as a 2-D grid) or when the file's grid
            is not square.

    Returns:
        :class:`~zeromamba.models.ZeroMamba` for ZeroMamba files, :class:`~zeromamba.models.VMamba`
        for VMamba release files, :class:`~zeromamba.models.Vim` for Vim release files.

    Raises:
        CheckpointError: unreadable file, a file that needs arbitrary unpickling, or parameters that
            do not match the architecture (each listed by name).
    """
    sd = read_official_state_dict(path)
    source = repr(os.fspath(path))
    try:
        cls, filter_fn, args = _architecture(sd, source, model_args)
    except (IndexError, TypeError, ValueError, ArithmeticError) as e:
        if isinstance(e, CheckpointError):
            raise
        raise CheckpointError(f"{source}: a tensor has a shape no VMamba, ZeroMamba or Vim has ({e})") from None
    return build_checked(cls, args, sd, filter_fn, source)  # type: ignore[return-value]


def _architecture(
    sd: dict[str, torch.Tensor], source: str, model_args: dict[str, Any]
) -> tuple[type[nn.Module], Callable[[dict[str, torch.Tensor], Any], dict[str, torch.Tensor]], dict[str, Any]]:
    """``(model class, checkpoint filter, constructor arguments)`` for an official state dict."""
    cls: type[nn.Module]
    if is_vim_state_dict(sd):
        args = {**infer_vim_architecture(sd, _int_arg(model_args.get("stride", 16), "stride")), **model_args}
        if "img_size" not in args:
            raise CheckpointError(
                f"{source}: the position embedding covers {sd['pos_embed'].shape[1] - 1} patches, "
                "not a square grid; pass img_size=(H, W) (and stride=...) as the model was trained"
            )
        cls, filter_fn = Vim, vim_filter_fn
    elif any(k.startswith(("VisionMamba.", "clf_head")) for k in sd):
        cls, filter_fn, args = ZeroMamba, zeromamba_filter_fn, {**infer_architecture(sd), **model_args}
    else:
        cls, filter_fn, args = VMamba, vmamba_filter_fn, {**infer_architecture(sd), **model_args}
    return cls, filter_fn, args


def _int_arg(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"{name} must be an integer, got {value!r}")
    return value
