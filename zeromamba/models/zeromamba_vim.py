"""ZeroMamba on a Vim backbone: the same three semantic heads as :class:`~zeromamba.models.ZeroMamba`,
over Vim's patch tokens and class token.

No ZeroMamba-Vim checkpoint has been published and the authors' code builds none; this is the
natural composition (see ``docs/vim-reference.md`` of the project's shared notes):

* SLP: the ``M`` patch tokens of Vim's normalised output (class token removed), laid out on the
  ``(h, w)`` patch grid, play the part of VMamba's final feature map: one attention map per
  attribute over ``h * w`` positions (a 28 x 28 grid at 448 px, finer than VMamba-S's 14 x 14);
* GRL: Vim's own ImageNet logits (its ``head`` on the class token) projected to the attributes,
  exactly as ZeroMamba's GRL reads VMamba's logits;
* SeF: unchanged.

It is a :class:`ZeroMamba` (same output, same heads and parameter names ``slp.*``,
``global_head.*``, ``fusion.*``), so the predictor, explanations, saving and loading take it as
they are. The backbone's parameters are Vim's release names under ``backbone.``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from ..architectures import VIM_VARIANTS, ZEROMAMBA_VIM_ARCHITECTURES
from ..constants import ZSL_PREPROCESS
from ._helpers import (
    checked_filter,
    factory_device,
    set_factory_dtype,
    split_zeromamba_keys,
    unwrap_state_dict,
    with_zeromamba_keys,
)
from .vim import Vim, resample_pos_embed
from .zeromamba import ZeroMamba, ZeroMambaOutput

__all__ = ["ZeroMambaVim", "checkpoint_filter_fn"]


class ZeroMambaVim(ZeroMamba):
    """Vim backbone + SLP + GRL + SeF, predicting a class-attribute vector per image.

    Args:
        num_attributes, semantic_dim, attribute_embeddings, fusion_hidden, num_imagenet_classes:
            the heads, as for :class:`ZeroMamba`.
        variant: backbone size, ``"tiny"`` or ``"small"`` (``"base"`` too; ``"vim_small"`` also
            accepted); sets ``embed_dim``, ``depth`` and ``d_state`` unless they are given.
        img_size: input size (448: the zero-shot resolution); the backbone's position embedding
            covers its patch grid.
        patch_size, stride, expand, d_conv, dt_rank, drop_path_rate, scan_backend, dynamic_img_size,
            in_chans: passed to :class:`~zeromamba.models.Vim`.
        device, dtype: where and in which dtype to build the parameters (timm's factory arguments).
    """

    def __init__(
        self,
        num_attributes: int = 312,
        semantic_dim: int = 300,
        attribute_embeddings: torch.Tensor | None = None,
        variant: str = "small",
        img_size: int | tuple[int, int] = 448,
        patch_size: int = 16,
        stride: int = 16,
        embed_dim: int | None = None,
        depth: int | None = None,
        d_state: int | None = None,
        expand: int = 2,
        d_conv: int = 4,
        dt_rank: int | str = "auto",
        drop_path_rate: float = 0.0,
        scan_backend: str = "auto",
        dynamic_img_size: bool = False,
        fusion_hidden: int = 512,
        num_imagenet_classes: int = 1000,
        in_chans: int = 3,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ):
        nn.Module.__init__(self)  # ZeroMamba's own __init__ builds a VMamba; only its heads are shared
        with factory_device(device):
            if kwargs.pop("num_classes", num_attributes) not in (num_attributes, 0):
                raise ValueError("ZeroMamba predicts attributes: set num_attributes, not num_classes")
            kwargs.pop("global_pool", None)
            if kwargs:
                raise TypeError(f"unexpected arguments for ZeroMambaVim: {', '.join(sorted(kwargs))}")
            size = variant.removeprefix("vim_")
            if size not in VIM_VARIANTS:
                raise ValueError(f"unknown Vim variant {variant!r}; choose one of {', '.join(VIM_VARIANTS)}")
            preset = VIM_VARIANTS[size]
            self.backbone = Vim(
                img_size=img_size,
                patch_size=patch_size,
                stride=stride,
                in_chans=in_chans,
                num_classes=num_imagenet_classes,
                embed_dim=preset["embed_dim"] if embed_dim is None else embed_dim,
                depth=preset["depth"] if depth is None else depth,
                d_state=preset["d_state"] if d_state is None else d_state,
                expand=expand,
                d_conv=d_conv,
                dt_rank=dt_rank,
                drop_path_rate=drop_path_rate,
                scan_backend=scan_backend,
                dynamic_img_size=dynamic_img_size,
            )
            self._init_heads(num_attributes, semantic_dim, attribute_embeddings, fusion_hidden, num_imagenet_classes)
        set_factory_dtype(self, dtype)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, M + 1, D)``: Vim's normalised tokens, class token at ``M // 2``."""
        return self.backbone.forward_features(x)

    def patch_grid(self, tokens: torch.Tensor, grid: tuple[int, int] | None = None) -> torch.Tensor:
        """The patch tokens of a ``(B, M + 1, D)`` sequence as a ``(B, D, h, w)`` map (class token removed).

        ``grid`` defaults to the backbone's patch grid (or a square one for another ``M``).
        """
        B, L, D = tokens.shape
        M = L - 1
        if grid is None:
            grid = self.backbone.patch_embed.grid_size
            if grid[0] * grid[1] != M:
                side = int(round(M**0.5))
                if side * side != M:
                    raise ValueError(f"cannot lay {M} patch tokens on a grid: pass grid=(h, w)")
                grid = (side, side)
        middle = M // 2
        patches = torch.cat([tokens[:, :middle], tokens[:, middle + 1 :]], dim=1)
        return patches.transpose(1, 2).reshape(B, D, grid[0], grid[1])

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> ZeroMambaOutput | torch.Tensor:
        """The semantic heads on a ``forward_features`` sequence; ``pre_logits`` gives the class-token feature."""
        if pre_logits:
            return self.backbone.forward_head(features, pre_logits=True)
        logits = self.backbone.forward_head(features)
        return self._semantic_heads(self.patch_grid(features), logits)

    def forward(self, x: torch.Tensor) -> ZeroMambaOutput:
        tokens = self.forward_features(x)
        grid = self.backbone.patch_embed.grid_for(x.shape[-2], x.shape[-1])
        return self._semantic_heads(self.patch_grid(tokens, grid), self.backbone.forward_head(tokens))


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: ZeroMambaVim) -> dict[str, torch.Tensor]:
    """Our own ZeroMamba-Vim state dicts, or a Vim release / Vim state dict for the backbone.

    * ``backbone.*`` / ``slp.*`` keys: ours; the backbone's position embedding is resized to the
      model's patch grid when the sizes differ.
    * A Vim state dict (``{"model": ...}`` of the release files, or a bare one): loaded into
      ``backbone.*`` with its position embedding resized (224 -> 448 px: 14 x 14 -> 28 x 28); the
      heads keep the model's current values.
    """
    state_dict = dict(unwrap_state_dict(state_dict))
    if not any(k.startswith(("backbone.", "slp.")) for k in state_dict):
        state_dict = {
            **{"backbone." + k: v for k, v in state_dict.items()},
            **{k: v for k, v in model.state_dict().items() if not k.startswith("backbone.")},
        }
    pos = state_dict.get("backbone.pos_embed")
    if isinstance(pos, torch.Tensor) and tuple(pos.shape) != tuple(model.backbone.pos_embed.shape):
        state_dict["backbone.pos_embed"] = resample_pos_embed(pos, model.backbone.patch_embed.grid_size)
    return state_dict


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 0,
        **ZSL_PREPROCESS,
        "pool_size": (28, 28),
        "first_conv": "backbone.patch_embed.proj",
        "classifier": "fusion",
        "license": "apache-2.0",
        "fixed_input_size": True,  # Vim's position embedding covers the built patch grid
        **kwargs,
    }


# no published weights: the architectures only (train them with `zeromamba train --architecture ...`)
default_cfgs = generate_default_cfgs({name: _cfg() for name in ZEROMAMBA_VIM_ARCHITECTURES})


def _create(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> ZeroMambaVim:
    extras = split_zeromamba_keys(kwargs)
    args = {**ZEROMAMBA_VIM_ARCHITECTURES[variant], **kwargs}
    step = max(int(args["depth"]) // 4, 1)  # features_only: four evenly spaced layers, the last included
    model = build_model_with_cfg(
        ZeroMambaVim,
        variant,
        pretrained,
        pretrained_filter_fn=checked_filter(checkpoint_filter_fn),
        feature_cfg=dict(feature_cls="getter", out_indices=tuple(range(int(args["depth"]) - 1, -1, -step))[::-1]),
        **args,
    )
    return with_zeromamba_keys(model, args.get("cache_dir"), extras)


@register_model
def zeromamba_vim_tiny(pretrained: bool = False, **kwargs: Any) -> ZeroMambaVim:
    """ZeroMamba on Vim-Ti (192 wide, 24 layers), 448 px: attention over a 28 x 28 patch grid.
    No published weights: train it from the Vim ImageNet release (``--init vim-tiny``)."""
    return _create("zeromamba_vim_tiny", pretrained, kwargs)


@register_model
def zeromamba_vim_small(pretrained: bool = False, **kwargs: Any) -> ZeroMambaVim:
    """ZeroMamba on Vim-S (384 wide, 24 layers), 448 px: attention over a 28 x 28 patch grid.
    No published weights: train it from the Vim ImageNet release (``--init vim-small``)."""
    return _create("zeromamba_vim_small", pretrained, kwargs)
