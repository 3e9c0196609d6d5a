"""State-dict handling shared by the model files, the saved format and the checkpoint readers."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..hubcheck import require_weights
from ..zoo import timm_hub_overlay, timm_model_args, variant_for_tag

__all__ = [
    "entry_tag",
    "factory_device",
    "hub_cfg_overlay",
    "linear_like",
    "load_state_dict_strict",
    "set_factory_dtype",
    "tag_model_args",
    "unwrap_state_dict",
]

# pretrained_cfg keys that say where the weights are: a caller who sets one chose the weights
_WEIGHT_SOURCES = ("file", "hf_hub_id", "url", "state_dict")

# containers trainers wrap a state dict in (timm / DeiT / VMamba release files use "model")
_WRAPPER_KEYS = ("model", "state_dict")


@contextlib.contextmanager
def factory_device(device: torch.device | str | None) -> Iterator[None]:
    """Build a model's tensors on ``device`` (timm's ``create_model(..., device=...)``; ``"meta"``
    too); the current default device when ``None``."""
    if device is None:
        yield
        return
    with torch.device(device):
        yield


def set_factory_dtype(model: nn.Module, dtype: torch.dtype | None) -> None:
    """Cast a freshly built model's floating parameters and buffers to ``dtype`` (timm's
    ``create_model(..., dtype=...)``); nothing when ``None``."""
    if dtype is not None:
        model.to(dtype=dtype)


def linear_like(reference: nn.Module, in_features: int, out_features: int) -> nn.Module:
    """A new head ``nn.Linear(in_features, out_features)`` on ``reference``'s device and dtype (those of
    its first parameter), in its train/eval mode, or ``nn.Identity()`` for ``out_features == 0``:
    ``reset_classifier`` after ``model.to(torch.bfloat16)`` or on another device must not build a
    float32 CPU head."""
    if out_features <= 0:
        head: nn.Module = nn.Identity()
    else:
        first = next(reference.parameters(), None)
        where = {} if first is None else {"device": first.device, "dtype": first.dtype}
        head = nn.Linear(in_features, out_features, **where)
    return head.train(reference.training)  # an eval model gets an eval head


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


def entry_tag(architecture: str, default_cfgs: Mapping[str, Any], kwargs: Mapping[str, Any]) -> str | None:
    """The pretrained tag an entry point call asks for: ``kwargs["pretrained_cfg"]`` when it is a
    string (``timm.create_model("zeromamba_small.cub_gzsl")`` passes ``"cub_gzsl"``), the
    architecture's default tag when it is absent, ``None`` when the caller passed a whole cfg."""
    tag = kwargs.get("pretrained_cfg")
    if tag is not None:
        return tag if isinstance(tag, str) else None
    default = default_cfgs.get(architecture)
    return default.tags[0] if default is not None and default.tags else None


def tag_model_args(
    architecture: str, default_cfgs: Mapping[str, Any], kwargs: Mapping[str, Any], pretrained: bool
) -> dict[str, Any]:
    """Constructor arguments the weights of the call's tag need (e.g. ``num_attributes=102`` for
    ``sun_gzsl``): for a tag named explicitly, or for the default tag when ``pretrained=True``."""
    explicit = isinstance(kwargs.get("pretrained_cfg"), str)
    if not (explicit or pretrained):
        return {}
    return timm_model_args(architecture, entry_tag(architecture, default_cfgs, kwargs))


def hub_cfg_overlay(
    architecture: str, default_cfgs: Mapping[str, Any], kwargs: Mapping[str, Any], pretrained: bool = False
) -> dict[str, Any]:
    """timm's ``pretrained_cfg_overlay`` for an entry point call: where the tag's weights are as the
    zoo says now (the Hub namespace may change after import; a shipped variant's file), under the
    caller's own overlay.

    ``kwargs`` are the entry point's; the tag is :func:`entry_tag`'s. A whole pretrained cfg passed
    by the caller (timm's ``hf-hub:`` loading does) is left as it is. With ``pretrained=True`` and
    zoo weights, :func:`~zeromamba.hubcheck.require_weights` runs first, so an unpublished variant
    fails at once and an unreachable Hub within the timeout, both saying what to do.
    """
    own = dict(kwargs.get("pretrained_cfg_overlay") or {})
    tag = entry_tag(architecture, default_cfgs, kwargs)
    if tag is None:
        return own
    variant = variant_for_tag(architecture, tag)
    where = timm_hub_overlay(architecture, tag)
    if pretrained and variant is not None and not any(own.get(k) for k in _WEIGHT_SOURCES):
        cached = require_weights(variant)
        if cached is not None:  # known not to be on the Hub: the cached file, no request
            where = {"file": str(cached)}
    return {**where, **own}
