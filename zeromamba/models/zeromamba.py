"""ZeroMamba (Hou et al., AAAI 2025): a VMamba v2 backbone with three semantic heads.

* :class:`SemanticLocalProjection` (SLP): one attention map per attribute over the feature map,
  pooled features projected onto the attribute's semantic vector.
* GRL (global representation learning): the backbone's own 1000-way ImageNet logits, projected
  linearly to the attributes (``global_head``).
* SeF (semantic fusion): ``global + l2norm(MLP(local))`` (``fusion_mlp``).

The model predicts an attribute vector per image; a class scores the dot product with its row of
the class-attribute matrix (see :func:`class_scores`).

Our names differ from the authors' checkpoint in four prefixes, mapped by
:func:`checkpoint_filter_fn` (``OFFICIAL_PREFIXES``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model

from ..architectures import VMAMBA_VARIANTS, ZEROMAMBA_ARCHITECTURES
from ..constants import ZSL_PREPROCESS
from ..zoo import timm_pretrained_cfgs
from ._helpers import (
    checked_filter,
    factory_device,
    hub_cfg_overlay,
    set_factory_dtype,
    split_zeromamba_keys,
    tag_model_args,
    unwrap_state_dict,
    with_zeromamba_keys,
)
from .vmamba import VMamba
from .vmamba import checkpoint_filter_fn as vmamba_filter_fn

__all__ = [
    "ZeroMamba",
    "ZeroMambaOutput",
    "SemanticLocalProjection",
    "SemanticFusion",
    "OFFICIAL_PREFIXES",
    "checkpoint_filter_fn",
]

# (official prefix, ours): the authors' checkpoint names -> this module's names
OFFICIAL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("VisionMamba.classifier2.", "slp."),
    ("VisionMamba.", "backbone."),
    ("clf_head2.", "fusion.mlp."),
    ("clf_head.", "global_head."),
)


@dataclass
class ZeroMambaOutput:
    """Everything one forward pass computes.

    Attributes:
        attributes: ``(B, A)`` the fused attribute prediction (what scores classes).
        local_attributes: ``(B, A)`` SLP output, before the fusion MLP.
        global_attributes: ``(B, A)`` GRL output.
        attention: ``(B, A, h*w)`` SLP attention of each attribute over the feature map.
        features: ``(B, C, h, w)`` backbone features before its classifier.
        logits: ``(B, 1000)`` the backbone's ImageNet logits.
    """

    attributes: torch.Tensor
    local_attributes: torch.Tensor
    global_attributes: torch.Tensor
    attention: torch.Tensor
    features: torch.Tensor
    logits: torch.Tensor

    def to_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.__dict__)


class SemanticLocalProjection(nn.Module):
    """SLP: attribute-guided attention over the positions of a feature map.

    ``S = rownorm(V)``; features are L2-normalised over channels per position (``Fn``);
    ``M = softmax_positions(S W1 Fn)``; ``P = M Fn^T``; ``local_i = (S W2)_i . P_i``.

    Args:
        num_attributes: ``A``.
        feature_dim: backbone channels ``D``.
        semantic_dim: width of the attribute embeddings (300 for word2vec).
        attribute_embeddings: optional ``(A, semantic_dim)`` initial ``V`` (e.g. word2vec vectors).
    """

    def __init__(
        self,
        num_attributes: int,
        feature_dim: int,
        semantic_dim: int = 300,
        attribute_embeddings: torch.Tensor | None = None,
    ):
        super().__init__()
        self.V = nn.Parameter(torch.empty(num_attributes, semantic_dim))
        self.W1 = nn.Parameter(torch.empty(semantic_dim, feature_dim))
        self.W2 = nn.Parameter(torch.empty(semantic_dim, feature_dim))
        self.reset_parameters(attribute_embeddings)

    @torch.no_grad()
    def reset_parameters(self, attribute_embeddings: torch.Tensor | None = None) -> None:
        nn.init.normal_(self.W1)
        nn.init.normal_(self.W2)
        if attribute_embeddings is None:
            nn.init.normal_(self.V)
        else:
            emb = torch.as_tensor(attribute_embeddings, dtype=self.V.dtype)
            if emb.shape != self.V.shape:
                raise ValueError(
                    f"attribute_embeddings must have shape {tuple(self.V.shape)} "
                    f"(num_attributes x semantic_dim), got {tuple(emb.shape)}"
                )
            self.V.copy_(emb)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features`` ``(B, D, h, w)`` -> ``(local (B, A), attention (B, A, h*w))``."""
        fn = F.normalize(features.flatten(2), dim=1)  # (B, D, R)
        s = F.normalize(self.V, dim=1)
        query = s @ self.W1  # (A, D)
        attention = torch.softmax(torch.matmul(query, fn), dim=-1)  # (B, A, R)
        pooled = torch.matmul(attention, fn.transpose(1, 2))  # (B, A, D)
        local = (pooled * (s @ self.W2)).sum(-1)
        return local, attention


class SemanticFusion(nn.Module):
    """SeF: ``global + l2norm(MLP(local))`` with a bias-free ``A -> hidden -> A`` ReLU MLP."""

    def __init__(self, num_attributes: int, hidden: int = 512):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(num_attributes, hidden, bias=False),
            nn.ReLU(),
            nn.Linear(hidden, num_attributes, bias=False),
        )

    def forward(self, global_attributes: torch.Tensor, local_attributes: torch.Tensor) -> torch.Tensor:
        return global_attributes + F.normalize(self.mlp(local_attributes), dim=-1)


class ZeroMamba(nn.Module):
    """VMamba backbone + SLP + GRL + SeF, predicting a class-attribute vector per image.

    Args:
        num_attributes: ``A``, the width of the attribute space (312 CUB, 102 SUN, 85 AWA2).
        semantic_dim: width of the attribute embeddings ``V`` (300 for word2vec).
        attribute_embeddings: optional ``(A, semantic_dim)`` tensor to initialise ``V``.
        variant: backbone size, ``"tiny"``, ``"small"`` (the published ZeroMamba) or ``"base"``
            (``"vmamba_small"`` etc. also accepted); sets ``embed_dim``, ``depths``, ``ssm_ratio``.
        embed_dim: passed to :class:`~zeromamba.models.vmamba.VMamba`, as are the next eight;
            ``None`` takes the variant's value.
        depths: VSS blocks per stage (``None``: the variant's).
        d_state: SSM state size ``N``.
        ssm_ratio: SS2D inner width over block width (``None``: the variant's).
        dt_rank: rank of the dt projection.
        mlp_ratio: MLP hidden width over block width.
        ssm_conv_bias: bias on SS2D's depthwise conv.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        scan_backend: the selective-scan backend (see :mod:`zeromamba.ops`).
        fusion_hidden: hidden width of the fusion MLP (512).
        num_imagenet_classes: width of the backbone's classifier that GRL reads (1000).
        in_chans: input channels.
        device: where to build the parameters (timm's factory argument).
        dtype: the parameters' dtype (timm's factory argument).

    timm's classifier interface does not apply: the output is a :class:`ZeroMambaOutput`, not logits,
    and its width is ``num_attributes`` (``num_classes`` is accepted only as that number or 0).
    ``timm.create_model(..., features_only=True)`` gives the backbone's feature stages.
    """

    def __init__(
        self,
        num_attributes: int = 312,
        semantic_dim: int = 300,
        attribute_embeddings: torch.Tensor | None = None,
        variant: str = "small",
        embed_dim: int | None = None,
        depths: Sequence[int] | None = None,
        d_state: int = 1,
        ssm_ratio: float | None = None,
        dt_rank: int | str = "auto",
        mlp_ratio: float = 4.0,
        ssm_conv_bias: bool = False,
        drop_path_rate: float = 0.0,
        scan_backend: str = "auto",
        fusion_hidden: int = 512,
        num_imagenet_classes: int = 1000,
        in_chans: int = 3,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        with factory_device(device):
            if kwargs.pop("num_classes", num_attributes) not in (num_attributes, 0):
                raise ValueError("ZeroMamba predicts attributes: set num_attributes, not num_classes")
            kwargs.pop("global_pool", None)
            if kwargs:
                raise TypeError(f"unexpected arguments for ZeroMamba: {', '.join(sorted(kwargs))}")
            size = variant.removeprefix("vmamba_")
            if size not in VMAMBA_VARIANTS:
                raise ValueError(f"unknown backbone variant {variant!r}; choose one of {', '.join(VMAMBA_VARIANTS)}")
            preset = VMAMBA_VARIANTS[size]  # explicit arguments override the variant's
            embed_dim = preset["embed_dim"] if embed_dim is None else embed_dim
            depths = preset["depths"] if depths is None else depths
            ssm_ratio = preset["ssm_ratio"] if ssm_ratio is None else ssm_ratio
            self.backbone = VMamba(
                num_classes=num_imagenet_classes,
                in_chans=in_chans,
                embed_dim=embed_dim,
                depths=depths,
                d_state=d_state,
                ssm_ratio=ssm_ratio,
                dt_rank=dt_rank,
                mlp_ratio=mlp_ratio,
                ssm_conv_bias=ssm_conv_bias,
                drop_path_rate=drop_path_rate,
                scan_backend=scan_backend,
            )
            self._init_heads(num_attributes, semantic_dim, attribute_embeddings, fusion_hidden, num_imagenet_classes)
        set_factory_dtype(self, dtype)

    def _init_heads(
        self,
        num_attributes: int,
        semantic_dim: int,
        attribute_embeddings: torch.Tensor | None,
        fusion_hidden: int,
        num_imagenet_classes: int,
    ) -> None:
        """SLP, GRL and SeF over ``self.backbone`` (any backbone with ``num_features`` and ``feature_info``)."""
        feat = self.backbone.num_features
        self.slp = SemanticLocalProjection(num_attributes, feat, semantic_dim, attribute_embeddings)
        self.global_head = nn.Linear(num_imagenet_classes, num_attributes)
        self.fusion = SemanticFusion(num_attributes, fusion_hidden)
        self.num_attributes = self.num_classes = num_attributes
        self.num_features = self.head_hidden_size = feat
        self.in_chans = self.backbone.in_chans
        self.feature_info = self.backbone.feature_info
        for m in (self.global_head, *self.fusion.mlp):
            if isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=5**0.5)  # PyTorch's Linear default
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # --- timm-style interface ---------------------------------------------------------------
    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.backbone.set_grad_checkpointing(enable)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {"backbone." + n for n in self.backbone.no_weight_decay()}

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.fusion

    def set_scan_backend(self, backend: str) -> None:
        """Choose the selective-scan implementation (``auto``/``torch``/``reference``/``mamba``)."""
        self.backbone.set_scan_backend(backend)

    def forward_intermediates(
        self, x: torch.Tensor, indices: int | Sequence[int] | None = None, **kwargs: Any
    ) -> list[Any] | tuple[torch.Tensor, list[Any]]:
        """The backbone's intermediate features (its ``forward_intermediates``, same arguments): what
        ``timm.create_model(..., features_only=True)`` returns for a ZeroMamba."""
        return self.backbone.forward_intermediates(x, indices, **kwargs)

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Prune the backbone after the last of ``indices`` (its ``prune_intermediate_layers``). The
        semantic heads read the backbone's last stage, so pruning takes them off, ``prune_head`` or not:
        what is left is a feature extractor (``features_only``)."""
        take = self.backbone.prune_intermediate_layers(indices, prune_norm=prune_norm, prune_head=True)
        self.slp = self.global_head = self.fusion = nn.Identity()
        self.feature_info = self.backbone.feature_info
        self.num_features = self.head_hidden_size = self.backbone.num_features
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, C, H/32, W/32)`` backbone features."""
        return self.backbone.forward_features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> ZeroMambaOutput | torch.Tensor:
        """The three semantic heads on backbone features; ``pre_logits`` gives the pooled features."""
        if pre_logits:
            return self.backbone.forward_head(features, pre_logits=True)
        return self._semantic_heads(features, self.backbone.forward_head(features))

    def _semantic_heads(self, features: torch.Tensor, logits: torch.Tensor) -> ZeroMambaOutput:
        """SLP on the ``(B, C, h, w)`` feature map, GRL on the backbone's ImageNet ``logits``, SeF."""
        local, attention = self.slp(features)
        global_ = self.global_head(logits)
        fused = self.fusion(global_, local)
        return ZeroMambaOutput(
            attributes=fused,
            local_attributes=local,
            global_attributes=global_,
            attention=attention,
            features=features,
            logits=logits,
        )

    def forward(self, x: torch.Tensor) -> ZeroMambaOutput:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: ZeroMamba) -> dict[str, torch.Tensor]:
    """Map an official ZeroMamba state dict (or an official VMamba release) onto :class:`ZeroMamba`.

    * ZeroMamba checkpoints: ``VisionMamba.classifier2.* -> slp.*``, ``VisionMamba.* -> backbone.*``,
      ``clf_head2.* -> fusion.mlp.*``, ``clf_head.* -> global_head.*``. A checkpoint without
      ``clf_head.bias`` (the official training script builds none) gets a zero bias.
    * VMamba release files (``{"model": ...}``, no heads): loaded into ``backbone.*``; the heads keep
      their initialisation.
    * Our own state dicts pass through unchanged.
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(k.startswith(("backbone.", "slp.")) for k in state_dict):
        return dict(state_dict)
    if not any(k.startswith(("VisionMamba.", "clf_head")) for k in state_dict):
        # a bare VMamba backbone: map into backbone.*, heads stay as initialised
        backbone = vmamba_filter_fn(state_dict, model.backbone)
        out = {"backbone." + k: v for k, v in backbone.items()}
        for k, v in model.state_dict().items():
            if not k.startswith("backbone."):
                out[k] = v
        return out
    out = {}
    for k, v in state_dict.items():
        for official, ours in OFFICIAL_PREFIXES:
            if k.startswith(official):
                k = ours + k[len(official) :]
                break
        out[k] = v
    if "global_head.weight" in out and "global_head.bias" not in out:
        out["global_head.bias"] = out["global_head.weight"].new_zeros(out["global_head.weight"].shape[0])
    heads = {k: v for k, v in out.items() if not k.startswith("backbone.")}
    backbone = {k[len("backbone.") :]: v for k, v in out.items() if k.startswith("backbone.")}
    backbone = vmamba_filter_fn(backbone, model.backbone)
    return {**heads, **{"backbone." + k: v for k, v in backbone.items()}}


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 0,
        **ZSL_PREPROCESS,
        "pool_size": (14, 14),
        "first_conv": "backbone.patch_embed.0",
        "classifier": "fusion",
        "license": "mit",
        **kwargs,
    }


# the pretrained tags (zeromamba_small.cub_gzsl, ...) come from the zoo's table; each entry point
# re-reads the tag's Hub repository when it builds a model (the namespace may change after import)
default_cfgs = generate_default_cfgs(
    {
        "zeromamba_small": _cfg(),
        **{name: _cfg(**cfg) for name, cfg in timm_pretrained_cfgs("zeromamba_small").items()},
        "zeromamba_nano": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
        **{name: _cfg(**cfg) for name, cfg in timm_pretrained_cfgs("zeromamba_nano").items()},
        "zeromamba_nano_s8": _cfg(input_size=(3, 80, 80), pool_size=(10, 10), crop_mode="border"),
        **{name: _cfg(**cfg) for name, cfg in timm_pretrained_cfgs("zeromamba_nano_s8").items()},
    }
)


def _create_zeromamba(variant: str, pretrained: bool = False, **kwargs: Any) -> ZeroMamba:
    extras = split_zeromamba_keys(kwargs)
    kwargs["pretrained_cfg_overlay"] = hub_cfg_overlay(variant, default_cfgs, kwargs, pretrained=pretrained)
    size = str(kwargs.get("variant", "small")).removeprefix("vmamba_")
    depths = kwargs.get("depths") or VMAMBA_VARIANTS.get(size, VMAMBA_VARIANTS["small"])["depths"]
    model = build_model_with_cfg(
        ZeroMamba,
        variant,
        pretrained,
        pretrained_filter_fn=checked_filter(checkpoint_filter_fn),
        # features_only: the backbone's stages, through forward_intermediates (the weights load first)
        feature_cfg=dict(feature_cls="getter", out_indices=tuple(range(len(depths)))),
        **kwargs,
    )
    return with_zeromamba_keys(model, kwargs.get("cache_dir"), extras)


@register_model
def zeromamba_small(pretrained: bool = False, **kwargs: Any) -> ZeroMamba:
    """ZeroMamba with a VMamba-S backbone (the published configuration)."""
    # e.g. "sun_gzsl": its weights need num_attributes=102
    args = dict(
        ZEROMAMBA_ARCHITECTURES["zeromamba_small"],
        **tag_model_args("zeromamba_small", default_cfgs, kwargs, pretrained),
    )
    return _create_zeromamba("zeromamba_small", pretrained, **dict(args, **kwargs))


@register_model
def zeromamba_nano(pretrained: bool = False, **kwargs: Any) -> ZeroMamba:
    """A tiny ZeroMamba (embed_dim 24, depths 1-1-2-1, 64 x 64 input) for CPU training and demos.

    Its weights are the ``shapes-zsl`` variant shipped inside the package:
    ``timm.create_model("zeromamba_nano.shapes_zsl", pretrained=True)`` loads them offline (the
    model only; ``zeromamba.from_pretrained("shapes-zsl")`` adds its classes).
    """
    args = dict(
        ZEROMAMBA_ARCHITECTURES["zeromamba_nano"], **tag_model_args("zeromamba_nano", default_cfgs, kwargs, pretrained)
    )
    return _create_zeromamba("zeromamba_nano", pretrained, **dict(args, **kwargs))


@register_model
def zeromamba_nano_s8(pretrained: bool = False, **kwargs: Any) -> ZeroMamba:
    """A tiny ZeroMamba with two stages (output stride 8: a 10 x 10 feature map at its 80 x 80 input),
    embed_dim 32, depths 1-2; letterboxed input (timm's ``crop_mode="border"``). The embedded
    ``shapes-zsl`` model, loaded with ``zeromamba.from_pretrained("shapes-zsl")``.
    """
    args = dict(
        ZEROMAMBA_ARCHITECTURES["zeromamba_nano_s8"],
        **tag_model_args("zeromamba_nano_s8", default_cfgs, kwargs, pretrained),
    )
    return _create_zeromamba("zeromamba_nano_s8", pretrained, **dict(args, **kwargs))
