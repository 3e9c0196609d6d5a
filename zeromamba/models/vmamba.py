"""VMamba v2 (Liu et al., "VMamba: Visual State Space Model", NeurIPS 2024), the backbone of ZeroMamba.

Parameter names follow the authors' release files exactly (``patch_embed.5.weight``,
``layers.2.blocks.7.op.x_proj_weight``, ``layers.0.downsample.1.weight``, ``classifier.head.weight``),
so their ImageNet checkpoints load after :func:`checkpoint_filter_fn` strips the ``{"model": ...}``
wrapper. Internally every block works channels-last (``B, H, W, C``) with plain ``nn.Linear``
layers: the authors' 1x1 convolutions on NCHW tensors were most of the non-scan time on CPU.
``forward_features`` returns the usual NCHW map.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn as nn
from timm.layers import DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch.utils.checkpoint import checkpoint

from ..architectures import VMAMBA_ARCHITECTURES, VMAMBA_VARIANTS, default_dt_rank, vmamba_reduction
from ..constants import IMAGENET_PREPROCESS
from ..ops import SCAN_BACKENDS, cross_selective_scan
from ..ops.fused_linear import linear
from ..ops.packed_weights import release_packed_weights
from ..zoo import timm_pretrained_cfgs
from ._conv_stem import Downsample, PatchEmbed
from ._features import take_indices
from ._helpers import checked_filter, factory_device, hub_cfg_overlay, linear_like, set_factory_dtype, unwrap_state_dict
from ._layout import conv_channels_last
from ._micro_batch import MMAP_THRESHOLD_BYTES, run_in_micro_batches

__all__ = ["VMamba", "SS2D", "VSSBlock", "VMambaStage", "VMAMBA_VARIANTS", "checkpoint_filter_fn"]

# torch.fx (torchvision's create_feature_extractor, timm's fx tests) records these as single calls:
# they choose their kernel from the tensors' device, dtype and grad state, which a trace cannot branch
# on. The choice then happens when the traced graph runs, so eager and traced run the same kernels.
torch.fx.wrap("linear")
torch.fx.wrap("cross_selective_scan")


def _project(
    layer: nn.Module, x: torch.Tensor, activation: str | None = None, residual: torch.Tensor | None = None
) -> torch.Tensor:
    """``layer(x)`` with a GELU or a residual add fused in: an ``nn.Linear`` through :func:`linear`, an
    int8 layer (:func:`~zeromamba.models.int8.quantize_int8`) through its own kernel."""
    if isinstance(layer, nn.Linear):
        return linear(x, layer.weight, layer.bias, activation=activation, residual=residual)
    return layer(x, activation=activation, residual=residual)


class SS2D(nn.Module):
    """2-D selective scan (VMamba v2 ``forward_type="v05_noz"``): in_proj, depthwise conv, SiLU,
    four-direction selective scan, LayerNorm, out_proj. Channels-last in and out."""

    #: the linear layers int8 inference quantizes (see zeromamba.models.int8)
    int8_linears = ("in_proj", "out_proj")

    def __init__(
        self,
        dim: int,
        d_state: int = 1,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        d_conv: int = 3,
        conv_bias: bool = False,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        scan_backend: str = "auto",
    ):
        super().__init__()
        d_inner = int(ssm_ratio * dim)
        self.dt_rank = default_dt_rank(dim) if dt_rank == "auto" else int(dt_rank)
        self.d_state = d_state
        self.d_inner = d_inner
        self.scan_backend = scan_backend
        k = 4
        # official parameter order and names
        self.x_proj_weight = nn.Parameter(torch.empty(k, self.dt_rank + 2 * d_state, d_inner))
        self.A_logs = nn.Parameter(torch.empty(k * d_inner, d_state))
        self.Ds = nn.Parameter(torch.empty(k * d_inner))
        self.dt_projs_weight = nn.Parameter(torch.empty(k, d_inner, self.dt_rank))
        self.dt_projs_bias = nn.Parameter(torch.empty(k, d_inner))
        self.out_norm = nn.LayerNorm(d_inner)
        self.in_proj = nn.Linear(dim, d_inner, bias=False)
        self.conv2d = nn.Conv2d(
            d_inner, d_inner, kernel_size=d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=conv_bias
        )
        self.out_proj = nn.Linear(d_inner, dim, bias=False)
        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self) -> None:
        """Mamba's S4D-real initialisation: ``A = -(1..N)``, ``D = 1``, dt log-uniform in range."""
        dt_min, dt_max, floor = self._dt_range
        bound = self.d_inner**-0.5
        nn.init.uniform_(self.x_proj_weight, -bound, bound)
        std = self.dt_rank**-0.5
        nn.init.uniform_(self.dt_projs_weight, -std, std)
        dt = torch.exp(torch.rand_like(self.dt_projs_bias) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=floor)
        self.dt_projs_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        A = torch.arange(1, self.d_state + 1, dtype=torch.float32).expand_as(self.A_logs)
        self.A_logs.copy_(torch.log(A))
        self.Ds.fill_(1.0)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``(B, H, W, C) -> (B, H, W, C)``; ``residual`` (same shape) is added to the output
        (fused into ``out_proj`` during CPU inference)."""
        x = _project(self.in_proj, x)
        x = conv_channels_last(self.conv2d, x, activation="silu")
        y = cross_selective_scan(
            x,
            self.x_proj_weight,
            self.dt_projs_weight,
            self.dt_projs_bias,
            self.A_logs,
            self.Ds,
            backend=self.scan_backend,
        )
        # the scan returns float32; the norm runs in the weights' dtype (bf16 models included)
        y = self.out_norm(y.to(self.out_norm.weight.dtype)).to(x.dtype)
        return _project(self.out_proj, y, residual=residual)


class Mlp(nn.Module):
    """Two linear layers with GELU (official ``mlp.fc1`` / ``mlp.fc2``)."""

    int8_linears = ("fc1", "fc2")

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``fc2(gelu(fc1(x)))`` (+ ``residual``); GELU and the add fused into the products on CPU."""
        if not isinstance(self.act, nn.GELU):  # a replaced activation: no fusion
            y = self.fc2(self.act(self.fc1(x)))
            return y if residual is None else y + residual
        h = _project(self.fc1, x, activation=self.act.approximate)
        return _project(self.fc2, h, residual=residual)


class VSSBlock(nn.Module):
    """``x + SS2D(LN(x))`` then ``x + MLP(LN(x))``, channels-last."""

    def __init__(
        self,
        dim: int,
        drop_path: float = 0.0,
        mlp_ratio: float = 4.0,
        **ssm_kwargs: Any,
    ):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.op = SS2D(dim, **ssm_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_grad_enabled() and not self.training:
            # inference: the residual adds ride on out_proj's and fc2's products
            x = self.op(self.norm(x), residual=x)
            return self.mlp(self.norm2(x), residual=x)
        x = x + self.drop_path(self.op(self.norm(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VMambaStage(nn.Module):
    """``blocks`` then (between stages) ``downsample``, matching the official ``layers.i`` names."""

    def __init__(self, dim: int, out_dim: int | None, depth: int, drop_path: Sequence[float], **block_kwargs: Any):
        super().__init__()
        self.blocks = nn.Sequential(*[VSSBlock(dim, drop_path=drop_path[i], **block_kwargs) for i in range(depth)])
        self.downsample = Downsample(dim, out_dim) if out_dim is not None else nn.Identity()
        self.grad_checkpointing = False

    def forward_blocks(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(self.forward_blocks(x))


class ClassifierHead(nn.Module):
    """LayerNorm over channels, global average pool, linear (official ``classifier.norm/head``)."""

    def __init__(self, dim: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``x``: NCHW. The norm runs before the pool, as in the official code."""
        x = self.norm(x.permute(0, 2, 3, 1)).mean(dim=(1, 2))
        x = self.drop(x)
        return x if pre_logits else self.head(x)


class VMamba(nn.Module):
    """VMamba v2 image classifier / backbone, with timm's model interface.

    Args:
        num_classes: classifier outputs (0 for no head).
        in_chans: input channels.
        embed_dim: width of the first stage; stage ``i`` has ``embed_dim * 2**i`` channels.
        depths: VSS blocks per stage.
        d_state: SSM state size ``N`` (1 in every published checkpoint).
        ssm_ratio: SS2D inner width over block width.
        dt_rank: rank of the dt projection, ``"auto"`` = ``ceil(dim / 16)``.
        mlp_ratio: MLP hidden width over block width.
        ssm_conv_bias: bias on SS2D's depthwise conv (False in the v2 releases).
        drop_rate: dropout before the classifier.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        scan_backend: ``"auto"``, ``"torch"``, ``"reference"`` or ``"mamba"`` (see :mod:`zeromamba.ops`).
        global_pool: ``"avg"``, or ``""`` for no pooling and no head (``forward`` returns the feature map).
        device: where to build the parameters (timm's factory argument).
        dtype: the parameters' dtype (timm's factory argument).

    Eager CPU inference on a batch whose first-stage activations would exceed
    :attr:`cpu_micro_batch_bytes` runs the backbone a few images at a time (ZeroMamba-S at 448 x 448,
    batch 8: 1.1x faster, a third of the memory per pass; :mod:`zeromamba.models._micro_batch`); set
    it to ``None`` to keep batches whole.
    """

    #: widest first-stage tensor of one micro-batch in bytes (``None``: never split a batch)
    cpu_micro_batch_bytes: int | None = MMAP_THRESHOLD_BYTES

    def __init__(
        self,
        num_classes: int = 1000,
        in_chans: int = 3,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 15, 2),
        d_state: int = 1,
        ssm_ratio: float = 2.0,
        dt_rank: int | str = "auto",
        mlp_ratio: float = 4.0,
        ssm_conv_bias: bool = False,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        scan_backend: str = "auto",
        global_pool: str = "avg",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ):
        super().__init__()
        with factory_device(device):
            if scan_backend not in SCAN_BACKENDS:
                raise ValueError(f"unknown scan_backend {scan_backend!r}; choose one of {', '.join(SCAN_BACKENDS)}")
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '' (got {global_pool!r})")
            self.num_classes = num_classes
            self.in_chans = in_chans
            self.global_pool = global_pool
            self.drop_rate = drop_rate
            self.depths = tuple(depths)
            dims = [int(embed_dim * 2**i) for i in range(len(depths))]
            self.dims = dims
            self._stage1_widths = (int(dims[0] * mlp_ratio), int(dims[0] * ssm_ratio))  # MLP hidden, SS2D inner
            self.num_features = self.head_hidden_size = dims[-1]
            self.grad_checkpointing = False

            self.patch_embed = PatchEmbed(in_chans, embed_dim)
            n_blocks = sum(depths)
            dpr = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]  # linear, as timm
            self.layers = nn.ModuleList()
            self.feature_info = []
            start = 0
            for i, depth in enumerate(depths):
                self.layers.append(
                    VMambaStage(
                        dims[i],
                        dims[i + 1] if i + 1 < len(depths) else None,
                        depth,
                        dpr[start : start + depth],
                        mlp_ratio=mlp_ratio,
                        d_state=d_state,
                        ssm_ratio=ssm_ratio,
                        dt_rank=dt_rank,
                        conv_bias=ssm_conv_bias,
                        scan_backend=scan_backend,
                    )
                )
                start += depth
                self.feature_info.append(dict(num_chs=dims[i], reduction=vmamba_reduction(i), module=f"layers.{i}"))
            self.classifier = ClassifierHead(dims[-1], num_classes, drop_rate)
            self.apply(self._init_weights)
        set_factory_dtype(self, dtype)

    def _apply(self, fn: Any, *args: Any, **kwargs: Any) -> VMamba:
        # .to() / .cpu() / .half() ...: oneDNN's packed copies of the CPU weights are stale now
        # (made again on the next CPU inference pass)
        out = super()._apply(fn, *args, **kwargs)
        release_packed_weights(self.parameters())
        return out

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # --- timm interface -------------------------------------------------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        return {n for n, _ in self.named_parameters() if n.endswith(("A_logs", "Ds"))}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^patch_embed",
            blocks=r"^layers\.(\d+)"
            if coarse
            else [(r"^layers\.(\d+)\.blocks\.(\d+)", None), (r"^layers\.(\d+)\.downsample", (99999,))],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for stage in self.layers:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.classifier.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '' (got {global_pool!r})")
            self.global_pool = global_pool
        self.num_classes = num_classes
        self.classifier.head = linear_like(self, self.num_features, num_classes)

    def set_scan_backend(self, backend: str) -> None:
        """Choose the selective-scan implementation for every block (see :mod:`zeromamba.ops`)."""
        if backend not in SCAN_BACKENDS:
            raise ValueError(f"unknown scan backend {backend!r}; choose one of {', '.join(SCAN_BACKENDS)}")
        for m in self.modules():
            if isinstance(m, SS2D):
                m.scan_backend = backend

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage outputs (after each stage's blocks, before its downsample), NCHW or NHWC."""
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError("output_fmt must be 'NCHW' or 'NHWC'")
        take, max_index = take_indices(len(self.layers), indices, unit="stage")
        x = self.patch_embed(x)
        intermediates = []
        stages = self.layers[: max_index + 1] if stop_early else self.layers
        for i, stage in enumerate(stages):
            x = stage.forward_blocks(x)
            if i in take:
                intermediates.append(x.permute(0, 3, 1, 2) if output_fmt == "NCHW" else x)
            x = stage.downsample(x)
        if intermediates_only:
            return intermediates
        return x.permute(0, 3, 1, 2), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Keep the stages up to the last of ``indices`` (timm's convention) and drop what follows
        them: the last kept stage's downsample (forward_features then ends at that stage's output,
        as ``feature_info`` says), with ``prune_head`` the classifier, with ``prune_norm`` its norm."""
        take, max_index = take_indices(len(self.layers), indices, unit="stage")
        self.layers = self.layers[: max_index + 1]
        self.layers[max_index].downsample = nn.Identity()
        self.feature_info = self.feature_info[: max_index + 1]
        self.num_features = self.head_hidden_size = self.dims[max_index]
        if prune_norm or prune_head:
            self.classifier.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        elif max_index + 1 < len(self.dims):
            raise ValueError(
                f"prune_head=False keeps a head for {self.dims[-1]} channels, but stage {max_index} has "
                f"{self.dims[max_index]}: prune to the last stage or pass prune_head=True"
            )
        return take

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W) -> (B, C, H/32, W/32)``: the last stage's map, before the classifier norm."""
        return run_in_micro_batches(self._forward_features, x, self._stage1_bytes, self.cpu_micro_batch_bytes)

    def _stage1_bytes(self, x: torch.Tensor) -> int:
        """One image's widest first-stage tensor: the MLP's hidden layer in the input's dtype, or the
        scan's output (float32 in any dtype)."""
        hidden, inner = self._stage1_widths
        positions = math.ceil(x.shape[-2] / 4) * math.ceil(x.shape[-1] / 4)
        return positions * max(hidden * x.element_size(), inner * 4)

    def _forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        for stage in self.layers:
            x = stage(x)
        return x.permute(0, 3, 1, 2)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if not self.global_pool:
            return x
        return self.classifier(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: VMamba) -> dict[str, torch.Tensor]:
    """Accept an official VMamba v2 release (``{"model": state_dict}``) or a bare state dict.

    The official names are ours, so the mapping is: unwrap ``"model"``/``"state_dict"``, drop a
    ``module.`` prefix (DDP saves), take a ZeroMamba ``VisionMamba.`` backbone prefix off, drop the
    ZeroMamba heads, and reshape 1x1-conv weights ``(out, in, 1, 1)`` to ``(out, in)``.
    """
    own = model.state_dict()
    out = {}
    for k, v in unwrap_state_dict(state_dict).items():
        if k.startswith("VisionMamba."):
            k = k[len("VisionMamba.") :]
        if k.startswith(("classifier2.", "clf_head")):
            continue
        if k in own and v.dim() == 4 and own[k].dim() == 2:
            v = v.flatten(1)
        out[k] = v
    return out


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 1000,
        **IMAGENET_PREPROCESS,
        "pool_size": (7, 7),
        "first_conv": "patch_embed.0",
        "classifier": "classifier.head",
        "license": "mit",
        **kwargs,
    }


# the pretrained tags (vmamba_{tiny,small,base}.in1k) come from the zoo's table; each entry point
# re-reads the tag's Hub repository when it builds a model (the namespace may change after import)
default_cfgs = generate_default_cfgs(
    {
        name: _cfg(**cfg)
        for arch in ("vmamba_tiny", "vmamba_small", "vmamba_base")
        for name, cfg in timm_pretrained_cfgs(arch).items()
    }
)


def _create_vmamba(variant: str, pretrained: bool = False, **kwargs: Any) -> VMamba:
    kwargs["pretrained_cfg_overlay"] = hub_cfg_overlay(variant, default_cfgs, kwargs, pretrained=pretrained)
    return build_model_with_cfg(
        VMamba,
        variant,
        pretrained,
        pretrained_filter_fn=checked_filter(checkpoint_filter_fn),
        feature_cfg=dict(out_indices=(0, 1, 2, 3), feature_cls="getter"),
        **kwargs,
    )


@register_model
def vmamba_tiny(pretrained: bool = False, **kwargs: Any) -> VMamba:
    """VMamba v2 tiny: 96 wide, depths 2-2-8-2, ssm_ratio 1 (30.2M parameters)."""
    return _create_vmamba("vmamba_tiny", pretrained, **{**VMAMBA_ARCHITECTURES["vmamba_tiny"], **kwargs})


@register_model
def vmamba_small(pretrained: bool = False, **kwargs: Any) -> VMamba:
    """VMamba v2 small: 96 wide, depths 2-2-15-2, ssm_ratio 2 (50.1M parameters)."""
    return _create_vmamba("vmamba_small", pretrained, **{**VMAMBA_ARCHITECTURES["vmamba_small"], **kwargs})


@register_model
def vmamba_base(pretrained: bool = False, **kwargs: Any) -> VMamba:
    """VMamba v2 base: 128 wide, depths 2-2-15-2, ssm_ratio 2 (88.6M parameters)."""
    return _create_vmamba("vmamba_base", pretrained, **{**VMAMBA_ARCHITECTURES["vmamba_base"], **kwargs})
