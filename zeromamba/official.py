"""Loading the authors' checkpoints: ZeroMamba ``{DATASET}_best{CZSL,GZSL}.pth`` files and the VMamba
v2 ImageNet release files (``{"model": state_dict}``).

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, never
arbitrary pickled objects. The architecture is read off the tensor shapes, so
``load_official(path)`` needs no arguments for the published files; keyword arguments override.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from typing import Any

import torch

from .architectures import default_dt_rank
from .errors import CheckpointError
from .models._helpers import load_state_dict_strict, unwrap_state_dict
from .models.vmamba import VMamba
from .models.vmamba import checkpoint_filter_fn as vmamba_filter_fn
from .models.zeromamba import ZeroMamba
from .models.zeromamba import checkpoint_filter_fn as zeromamba_filter_fn

__all__ = ["load_official", "read_official_state_dict", "infer_architecture"]


def _refused_global(message: str) -> str:
    for line in message.splitlines():
        if "Unsupported global" in line:
            return line.strip().split(" was not")[0]
    return message.splitlines()[0]


def read_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a ``.pth`` safely and unwrap ``{"model": ...}`` / ``{"state_dict": ...}``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # not a refused object: a damaged or foreign file
            raise CheckpointError(
                f"cannot read {path!r} as a PyTorch checkpoint (damaged or not a .pth file)"
            ) from None
        raise CheckpointError(
            f"{path!r} needs arbitrary unpickling to load, which zeromamba refuses (it could run code). "
            "Re-save it as a plain state dict (torch.save(model.state_dict(), ...)) or as safetensors. "
            f"Detail: {_refused_global(str(e))}"
        ) from None
    except Exception as e:  # truncated zip, not a torch file, ...
        raise CheckpointError(f"cannot read {path!r} as a PyTorch checkpoint: {e}") from None
    obj = unwrap_state_dict(obj)
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path!r} does not hold a state dict (a mapping of names to tensors)")
    return {str(k): v for k, v in obj.items()}


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


def load_official(path: str | os.PathLike, **model_args: Any) -> ZeroMamba | VMamba:
    """Load an authors' checkpoint into our model, in eval mode.

    Args:
        path: an official ZeroMamba state dict (``.pth``, with or without ``clf_head.bias``) or an
            official VMamba v2 release file (``{"model": state_dict}``).
        **model_args: override what is read off the tensor shapes (``scan_backend``, ``attribute
            embeddings`` etc. are passed through to the constructor).

    Returns:
        :class:`~zeromamba.models.ZeroMamba` for ZeroMamba files, :class:`~zeromamba.models.VMamba`
        for backbone release files.

    Raises:
        CheckpointError: unreadable file, a file that needs arbitrary unpickling, or parameters that
            do not match the architecture (each listed by name).
    """
    sd = read_official_state_dict(path)
    args = {**infer_architecture(sd), **model_args}
    is_zeromamba = any(k.startswith(("VisionMamba.", "clf_head")) for k in sd)
    try:
        if is_zeromamba:
            model: ZeroMamba | VMamba = ZeroMamba(**args)
            mapped = zeromamba_filter_fn(sd, model)
        else:
            model = VMamba(**args)
            mapped = vmamba_filter_fn(sd, model)
    except TypeError as e:
        raise CheckpointError(f"bad model arguments for {os.fspath(path)!r}: {e}") from None
    load_state_dict_strict(model, mapped, repr(os.fspath(path)))
    return model.eval()
