"""State-dict handling shared by the model files, the saved format and the checkpoint readers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..zoo import timm_hub_overlay

__all__ = ["hub_cfg_overlay", "load_state_dict_strict", "unwrap_state_dict"]

# containers trainers wrap a state dict in (timm / DeiT / VMamba release files use "model")
_WRAPPER_KEYS = ("model", "state_dict")


def unwrap_state_dict(obj: Any) -> Any:
    """``{"model": sd}`` / ``{"state_dict": sd}`` -> ``sd`` with DDP's ``module.`` prefix removed.

    Anything that is not such a mapping is returned unchanged (the caller decides whether it is a
    state dict).
    """
    if not isinstance(obj, Mapping):
        return obj
    for key in _WRAPPER_KEYS:
        if key in obj and isinstance(obj[key], Mapping):
            obj = obj[key]
            break
    return {(k[len("module.") :] if isinstance(k, str) and k.startswith("module.") else k): v for k, v in obj.items()}


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` whose error names every missing key, unexpected key and
    shape mismatch.

    Raises:
        CheckpointError: the state dict does not fit ``model`` exactly.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(own[k].shape) != tuple(state_dict[k].shape)
    ]
    if missing or unexpected or mismatched:
        lines = [f"{source} does not fit {type(model).__name__}:"]
        for what, keys in (("missing", missing), ("unexpected", unexpected)):
            if keys:
                more = " ..." if len(keys) > 20 else ""
                lines.append(f"  {what} ({len(keys)}): " + ", ".join(keys[:20]) + more)
        if mismatched:
            lines.append(f"  shape mismatch ({len(mismatched)}): " + "; ".join(mismatched[:20]))
        lines.append("Pass the matching architecture arguments (embed_dim, depths, d_state, ssm_ratio, ...).")
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state_dict, strict=True)


def hub_cfg_overlay(architecture: str, default_cfgs: Mapping[str, Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """timm's ``pretrained_cfg_overlay`` for an entry point call: the tag's Hub repository as the
    zoo names it now (the namespace may change after import), under the caller's own overlay.

    ``kwargs`` are the entry point's; the tag is ``kwargs["pretrained_cfg"]`` when it is a string,
    else the architecture's default tag in ``default_cfgs`` (what ``generate_default_cfgs`` returned).
    A whole pretrained cfg passed by the caller (timm's ``hf-hub:`` loading does) is left as it is.
    """
    tag = kwargs.get("pretrained_cfg")
    own = dict(kwargs.get("pretrained_cfg_overlay") or {})
    if tag is not None and not isinstance(tag, str):
        return own
    if tag is None:
        default = default_cfgs.get(architecture)
        tag = default.tags[0] if default is not None and default.tags else None
    return {**timm_hub_overlay(architecture, tag), **own}
