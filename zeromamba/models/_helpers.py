"""State-dict handling shared by the model files, the saved format and the checkpoint readers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.nn as nn

from ..errors import CheckpointError
from ..hubcheck import require_weights
from ..terminal import terminal_safe
from ..zoo import timm_hub_overlay, timm_model_args, variant_for_tag

__all__ = [
    "REDOWNLOAD_HINT",
    "ZEROMAMBA_CFG_KEYS",
    "check_finite",
    "checked_filter",
    "entry_tag",
    "factory_device",
    "hub_cfg_overlay",
    "linear_like",
    "load_state_dict_strict",
    "require_fit",
    "set_factory_dtype",
    "split_zeromamba_keys",
    "tag_model_args",
    "unwrap_state_dict",
    "with_zeromamba_keys",
]

#: what to do about a damaged weights file, said by every loader
REDOWNLOAD_HINT = (
    "If it was downloaded, download it again (from_pretrained(..., force_download=True)); otherwise "
    "re-save or re-convert the model."
)

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


def check_finite(tensors: Mapping[str, torch.Tensor], what: str) -> None:
    """Every floating tensor in ``tensors`` holds only finite values.

    Raises:
        CheckpointError: naming the tensors with NaN or inf and how many of their values are.
    """
    bad = []
    for name, t in tensors.items():
        if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() and t.device.type != "meta":
            finite = torch.isfinite(t)
            if not bool(finite.all()):
                bad.append(f"{terminal_safe(name)} ({int((~finite).sum())} of {t.numel()} values)")
    if bad:
        raise CheckpointError(
            f"{what} holds NaN or inf in {len(bad)} tensor(s): "
            + ", ".join(bad[:10])
            + (" ..." if len(bad) > 10 else "")
            + ". A model cannot give meaningful scores with them: the file is damaged, or the training run "
            "that wrote it diverged. " + REDOWNLOAD_HINT
        )


def _dtype_mismatches(model_state: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Tensors whose kind of dtype differs from the model's: a float parameter stored as int or bool
    (or the reverse) would be cast silently by ``load_state_dict``."""
    return [
        f"{k}: checkpoint {state_dict[k].dtype} vs model {v.dtype}"
        for k, v in model_state.items()
        if k in state_dict
        and isinstance(state_dict[k], torch.Tensor)
        and state_dict[k].is_floating_point() != v.is_floating_point()
    ]


def checked_filter(
    filter_fn: Callable[[dict[str, torch.Tensor], Any], dict[str, torch.Tensor]],
) -> Callable[[dict[str, torch.Tensor], Any], dict[str, torch.Tensor]]:
    """``filter_fn`` (a timm ``pretrained_filter_fn``) followed by the value checks of
    :func:`load_state_dict_strict`: weights that timm loads get the same refusals (NaN/inf, a float
    parameter stored as int or bool) as weights zeromamba loads."""

    def checked(state_dict: dict[str, torch.Tensor], model: Any) -> dict[str, torch.Tensor]:
        out = filter_fn(state_dict, model)
        _check_values(model, out, "the pretrained weights")
        return out

    checked.__doc__ = filter_fn.__doc__
    return checked


def _check_values(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    wrong = _dtype_mismatches(model.state_dict(), state_dict)
    if wrong:
        raise CheckpointError(
            f"{source}: {len(wrong)} tensor(s) of the wrong kind of dtype (float parameters must be stored as "
            "floats; an int or bool tensor is refused, not cast): " + "; ".join(wrong[:10])
        )
    check_finite(state_dict, source)


def load_state_dict_strict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """``load_state_dict(strict=True)`` whose error names every missing key, unexpected key and
    shape mismatch, and that refuses (instead of casting) a float parameter stored as int or bool, and
    any NaN or inf.

    Raises:
        CheckpointError: the state dict does not fit ``model`` exactly, or holds such values.
    """
    require_fit(model, state_dict, source)
    _check_values(model, state_dict, source)
    model.load_state_dict(state_dict, strict=True)


def require_fit(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """The key and shape checks of :func:`load_state_dict_strict` alone: they work on a model built on
    the ``meta`` device, so a checkpoint that does not fit is refused before a real model is allocated.

    Raises:
        CheckpointError: naming every missing key, unexpected key and shape mismatch.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = [terminal_safe(k) for k in sorted(set(state_dict) - set(own))]  # names from the file
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


#: zeromamba's own keys in a model's ``pretrained_cfg``, beside timm's (whose ``PretrainedCfg`` has no field for them)
ZEROMAMBA_CFG_KEYS = ("object_extent", "dataset")


def split_zeromamba_keys(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take zeromamba's own keys (:data:`ZEROMAMBA_CFG_KEYS`) out of a ``pretrained_cfg`` dict passed to
    an entry point (timm's ``PretrainedCfg`` would refuse them; a config that timm's ``push_to_hub``
    wrote for a model carrying them holds them) and return them."""
    cfg = kwargs.get("pretrained_cfg")
    if not isinstance(cfg, Mapping) or not any(k in cfg for k in ZEROMAMBA_CFG_KEYS):
        return {}
    cfg = dict(cfg)
    extras = {k: cfg.pop(k) for k in ZEROMAMBA_CFG_KEYS if k in cfg}
    kwargs["pretrained_cfg"] = cfg
    return extras


def with_zeromamba_keys(model: nn.Module, cache_dir: Any = None, extras: Mapping[str, Any] | None = None) -> nn.Module:
    """Put zeromamba's own keys into a timm-built model's ``pretrained_cfg`` beside timm's, so that
    the model carries all of its preprocessing (timm's transforms ignore them): ``object_extent``
    (:mod:`zeromamba.framing`) and ``dataset``. They are ``extras`` when given
    (:func:`split_zeromamba_keys`), else those of the zoo variant of the cfg's ``architecture.tag``,
    or for ``hf-hub:`` models those in the repository's ``config.json``, which timm has just
    downloaded into the Hugging Face cache (``cache_dir``)."""
    cfg = getattr(model, "pretrained_cfg", None)
    if not isinstance(cfg, Mapping):
        return model
    found = dict(extras or {})
    if not found and cfg.get("source") == "hf-hub" and cfg.get("hf_hub_id"):
        found = _hub_extras(str(cfg["hf_hub_id"]), cache_dir)
    elif not found:
        variant = variant_for_tag(str(cfg.get("architecture", "")), cfg.get("tag"))
        if variant is not None:
            found = {"object_extent": variant.object_extent, "dataset": variant.dataset}
    found = {k: v for k, v in found.items() if v is not None}
    if "object_extent" in found:
        found["object_extent"] = [float(v) for v in found["object_extent"]]
    if found:
        model.pretrained_cfg = model.default_cfg = {**cfg, **found}
    return model


def _hub_extras(hub_id: str, cache_dir: Any) -> dict[str, Any]:
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = hub_id.partition("@")
    path = try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir, revision=revision or None)
    if not isinstance(path, str):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return {}  # timm read it a moment ago; a file that cannot be read now adds nothing
    if not isinstance(config, dict):
        return {}
    extent, dataset = config.get("object_extent"), config.get("dataset")
    return {
        "object_extent": extent if isinstance(extent, list) and len(extent) == 2 else None,
        "dataset": dataset if isinstance(dataset, str) else None,
    }
