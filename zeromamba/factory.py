"""Building things by name: architectures (:func:`create_model`, :func:`list_models`) and ready
predictors of pretrained models (:func:`from_pretrained`).

The top of the library: it joins the models, the Hub/format layer and the predictor, as
open_clip's ``factory`` does.
"""

from __future__ import annotations

import fnmatch
import os
from difflib import get_close_matches
from typing import Any

import timm
import torch
import torch.nn as nn

from .architectures import VIM_ARCHITECTURES, VMAMBA_ARCHITECTURES, ZEROMAMBA_ARCHITECTURES, ZEROMAMBA_VIM_ARCHITECTURES
from .errors import UnknownModelError
from .hub import load_pretrained
from .predictor import Predictor

__all__ = ["create_model", "from_pretrained", "list_models"]

# the architectures this package registers with timm
ARCHITECTURES: tuple[str, ...] = (
    *VMAMBA_ARCHITECTURES,
    *ZEROMAMBA_ARCHITECTURES,
    *VIM_ARCHITECTURES,
    *ZEROMAMBA_VIM_ARCHITECTURES,
)


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Architectures (or, with ``pretrained=True``, ``architecture.tag`` weights) this package provides."""
    from . import models  # noqa: F401  (registers the architectures with timm)

    names = timm.list_models(pattern, pretrained=pretrained)
    return sorted(n for n in names if n.split(".")[0] in ARCHITECTURES and fnmatch.fnmatch(n, pattern))


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build a registered architecture by name (``timm.create_model`` restricted to this package).

    Example: ``create_model("zeromamba_small", num_attributes=312, semantic_dim=300)``.

    Raises:
        UnknownModelError: not an architecture of this package (close names are suggested).
    """
    from . import models  # noqa: F401  (registers the architectures with timm)

    if not isinstance(name, str):
        raise UnknownModelError(f"an architecture name must be a string, got {type(name).__name__}")
    architecture, _, tag = name.partition(".")
    if architecture not in ARCHITECTURES:
        close = get_close_matches(architecture, ARCHITECTURES, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown architecture {name!r}; zeromamba provides {', '.join(ARCHITECTURES)}.{hint}")
    if tag:
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{architecture}.*")]
        if tag not in tags:
            close = get_close_matches(tag, tags, n=3)
            hint = f" Did you mean {', '.join(f'{architecture}.{c}' for c in close)}?" if close else ""
            known = ", ".join(tags) or "none"
            raise UnknownModelError(f"unknown pretrained tag {name!r}; the tags of {architecture} are {known}.{hint}")
    return timm.create_model(name, pretrained=pretrained, **kwargs)


def from_pretrained(
    name_or_repo_or_dir: str | os.PathLike,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: str | bool | None = None,
    timeout: float | None = None,
    batch_size: int = 8,
) -> Predictor:
    """A ready :class:`~zeromamba.predictor.Predictor` for a zoo name, Hub repository or local folder.

    Args:
        name_or_repo_or_dir: ``"cub-gzsl"`` (see :func:`zeromamba.list_pretrained`),
            ``"hf-hub:owner/repo"`` (optionally ``@revision``), ``"owner/repo"``, or a folder
            written by :func:`save_pretrained`.
        revision: branch, tag or commit of a Hub repository (default ``main``).
        cache_dir: the Hugging Face cache to use (default: huggingface_hub's).
        device: where the predictor runs.
        dtype: its compute precision (may be a name such as ``"bfloat16"``).
        force_download: download again even if cached (e.g. after a corrupt download).
        local_files_only: never touch the network (like ``HF_HUB_OFFLINE=1``).
        token: Hub token (default: huggingface_hub's, e.g. from ``hf auth login``).
        timeout: seconds to wait for the Hub's first answer before giving up (default
            ``$ZEROMAMBA_HUB_TIMEOUT``, else 10); a zoo variant known not to be published fails at once.
        batch_size: images per forward pass of the predictor.

    Raises:
        UnknownModelError: not a zoo name, repository id or folder (close names are suggested).
        ModelNotAvailableError: a zoo variant not published yet (with the ``zeromamba convert``
            steps), no answer from the Hub within ``timeout`` and not cached, no such repository,
            revision, file or folder.
        DeviceError: ``device`` is not available here.
        CheckpointError: corrupt or truncated safetensors, or weights that do not fit the config.
        ConfigError: a config.json this release does not understand.

    An ImageNet backbone (``vmamba-small``) gives a predictor that ranks its 1000 logits.
    """
    loaded = load_pretrained(
        name_or_repo_or_dir,
        revision=revision,
        cache_dir=cache_dir,
        force_download=force_download,
        local_files_only=local_files_only,
        token=token,
        timeout=timeout,
    )
    return Predictor(
        loaded.model,
        class_attributes=loaded.class_attributes,
        class_names=loaded.config.get("class_names"),
        seen=loaded.seen,
        gamma=loaded.gamma,
        attribute_names=loaded.config.get("attribute_names"),
        device=device,
        dtype=dtype,
        batch_size=batch_size,
    )
