"""The paper's training recipe: the model with its initialisation, the optimiser's learning-rate
groups, and the loss."""

from __future__ import annotations

import os
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..architectures import ZEROMAMBA_VIM_ARCHITECTURES
from ..constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import CheckpointError, ConfigError, TrainingError
from ..hub import load_model
from ..models._helpers import load_state_dict_strict
from ..models.zeromamba import ZeroMamba, checkpoint_filter_fn
from ..models.zeromamba_vim import ZeroMambaVim
from ..models.zeromamba_vim import checkpoint_filter_fn as vim_checkpoint_filter_fn
from ..official import read_official_state_dict
from ..scoring import class_scores
from .config import TrainConfig

__all__ = ["build_model", "compute_loss", "group_cross_entropy", "init_weights", "make_optimizer", "rotate_hue"]


def build_model(
    cfg: TrainConfig, num_attributes: int, embeddings: torch.Tensor | None = None, load_init: bool = True
) -> ZeroMamba:
    """A :class:`ZeroMamba` (or, for a Vim ``cfg.architecture``, a :class:`ZeroMambaVim` built at
    ``cfg.image_size``) for ``cfg``, its SLP initialised from ``embeddings`` (row-normalised as the
    authors do) and, with ``load_init``, its backbone (or, with ``cfg.init_scope == "model"``, all of
    it) from ``cfg.init``.

    Raises:
        ConfigError: ``cfg.model`` holds arguments ZeroMamba does not take.
        CheckpointError: an ``init`` that cannot be read or does not fit.
    """
    args = dict(cfg.model)
    if "depths" in args:
        args["depths"] = tuple(args["depths"])
    args.setdefault("drop_path_rate", cfg.drop_path_rate)
    args.setdefault("scan_backend", cfg.scan_backend)
    emb = F.normalize(embeddings.float(), dim=1) if embeddings is not None else None
    if emb is not None:
        args["semantic_dim"] = int(emb.shape[1])
    cls: type[ZeroMamba] = ZeroMamba
    if cfg.architecture in ZEROMAMBA_VIM_ARCHITECTURES:
        cls = ZeroMambaVim
        args.setdefault("img_size", cfg.image_size)
    try:
        model = cls(num_attributes=num_attributes, attribute_embeddings=emb, **args)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"bad model arguments {cfg.model}: {e}") from None
    if load_init:
        init_weights(model, cfg.init, cfg.init_scope)
    if cfg.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def _init_state_dict(init: str) -> dict[str, torch.Tensor]:
    if os.path.isfile(init):
        if not init.endswith(".safetensors"):
            return read_official_state_dict(init)  # an authors' VMamba release (weights_only)
        from safetensors.torch import load_file

        try:
            return load_file(init)
        except Exception as e:  # truncated, not safetensors ...
            raise CheckpointError(f"cannot read {init!r}: {e}") from None
    if init.endswith((".pth", ".pt", ".bin", ".safetensors")) and not os.path.isdir(init):
        raise CheckpointError(f"init checkpoint not found: {init!r}")
    return load_model(init).state_dict()  # a zoo name, Hub repository or model folder


def init_weights(model: ZeroMamba, init: str | None, scope: str = "backbone") -> None:
    """Load ``init``'s weights: ImageNet weights into ``model.backbone`` (``scope="backbone"``), or a
    whole trained ZeroMamba of the same architecture and size into ``model`` (``scope="model"``: its
    heads and semantic matrix too; a second, fine-tuning stage starts where the first ended).

    ``init``: ``"none"`` (random, with a warning), a local file (an authors' VMamba or Vim release
    ``.pth`` read with ``weights_only``, or a ``.safetensors`` state dict), or a name
    :func:`zeromamba.hub.load_model` resolves (zoo name such as ``vmamba-small`` or ``vim-small``,
    Hub repository, or a folder in the zoo format). A Vim backbone's position embedding is resized
    to the model's patch grid (224 -> 448 px: 14 x 14 -> 28 x 28).
    """
    if not init or str(init).lower() == "none":
        warnings.warn("init='none': the backbone starts from random weights, not ImageNet", stacklevel=2)
        return
    init = str(init)
    filter_fn = vim_checkpoint_filter_fn if isinstance(model, ZeroMambaVim) else checkpoint_filter_fn
    mapped = filter_fn(dict(_init_state_dict(init)), model)
    if scope == "model":
        load_state_dict_strict(model, mapped, f"init {init!r} (init_scope 'model': the whole model)")
        return
    backbone = {k[len("backbone.") :]: v for k, v in mapped.items() if k.startswith("backbone.")}
    load_state_dict_strict(model.backbone, backbone, f"init {init!r}")


def make_optimizer(model: ZeroMamba, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The paper's three learning-rate groups (backbone + SLP, GRL head, fusion MLP) under SGD with
    momentum (the paper's optimiser) or, with ``cfg.optimizer == "adamw"``, AdamW (steadier for a
    small model trained from random weights)."""
    groups: dict[str, list[nn.Parameter]] = {"backbone_slp": [], "global_head": [], "fusion": []}
    for name, p in model.named_parameters():
        if name.startswith(("backbone.", "slp.")):
            groups["backbone_slp"].append(p)
        elif name.startswith("global_head."):
            groups["global_head"].append(p)
        elif name.startswith("fusion."):
            groups["fusion"].append(p)
        else:  # pragma: no cover - a new module would need a group
            raise TrainingError(f"parameter {name!r} belongs to no learning-rate group")
    lrs = {"backbone_slp": cfg.lr, "global_head": cfg.lr_global, "fusion": cfg.lr_fusion}
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(
            [{"params": ps, "lr": lrs[n], "name": n} for n, ps in groups.items()],
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.SGD(
        [{"params": ps, "lr": lrs[n], "name": n} for n, ps in groups.items()],
        lr=cfg.lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


def compute_loss(
    attributes: torch.Tensor, targets: torch.Tensor, seen_attributes: torch.Tensor, l1_weight: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``CE(fused @ att_seen.T, y) + l1_weight * L1(fused, att_seen[y])`` -> ``(loss, ce, l1)``.

    ``targets`` index the rows of ``seen_attributes``.
    """
    attributes = attributes.float()
    ce = F.cross_entropy(class_scores(attributes, seen_attributes), targets)
    l1 = F.l1_loss(attributes, seen_attributes[targets])
    return ce + l1_weight * l1, ce, l1


def group_cross_entropy(
    attributes: torch.Tensor,
    class_rows: torch.Tensor,
    groups: list[torch.Tensor],
    unsupervised: list[torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """The mean over attribute groups of a cross-entropy on the predicted attribute vector.

    Args:
        attributes: ``(B, A)`` predicted attributes; a group's values are its logits.
        class_rows: ``(B, A)`` each image's class-attribute row (its largest value in a group is
            the label).
        groups: the attribute indices of each group (exclusive values: a class has one of them).
        unsupervised: per group, ``None`` or a ``(B,)`` bool mask of images that group does not
            learn from.
    """
    losses = []
    for g, idx in enumerate(groups):
        logits, labels = attributes[:, idx].float(), class_rows[:, idx].argmax(1)
        skip = unsupervised[g] if unsupervised is not None else None
        if skip is not None:
            logits, labels = logits[~skip], labels[~skip]
        if len(labels):
            losses.append(F.cross_entropy(logits, labels))
    return torch.stack(losses).mean() if losses else attributes.float().sum() * 0.0


# RGB -> YIQ (NTSC); a rotation of the (I, Q) plane turns the hue and keeps the brightness
_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def rotate_hue(images: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` images normalised with ImageNet mean/std, their hues turned by ``angles``
    (``(B,)`` radians), clamped to the displayable range and normalised again."""
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    to_yiq = _RGB_TO_YIQ.to(images.device, images.dtype)
    cos, sin = torch.cos(angles).to(images.dtype), torch.sin(angles).to(images.dtype)
    turn = torch.zeros(len(angles), 3, 3, dtype=images.dtype, device=images.device)
    turn[:, 0, 0] = 1.0
    turn[:, 1, 1], turn[:, 1, 2], turn[:, 2, 1], turn[:, 2, 2] = cos, -sin, sin, cos
    matrix = torch.linalg.inv(to_yiq) @ turn @ to_yiq  # (B, 3, 3) on RGB
    rgb = images * std + mean
    turned = torch.einsum("bij,bjhw->bihw", matrix, rgb).clamp(0.0, 1.0)
    return (turned - mean) / std
