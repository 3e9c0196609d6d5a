"""Vim, "Vision Mamba" (Zhu et al., ICML 2024): a plain stack of bidirectional Mamba blocks over
patch tokens with a class token in the middle of the sequence.

Parameter names are those of the authors' release files (``checkpoint["model"]`` of
``hustvl/Vim-{tiny,small,base}-midclstok``: ``layers.3.mixer.A_b_log``, ``norm_f.weight``, ...),
so they load without renaming; :func:`checkpoint_filter_fn` only unwraps them and resizes the
position embedding as a 2-D grid for another input size. The released configuration: RMSNorm
(eps 1e-5), "add then norm" with the residual stream in float32, bimamba v2 (a forward and a
backward scan sharing ``in_proj``, their sum halved), absolute position embedding, class token at
``M // 2``. The mixer's scan and convolution are :mod:`zeromamba.ops` (``mixer_*``) with a choice
of backends. ``forward_features`` returns the normalised token sequence ``(B, M + 1, D)``,
``forward_head(x, pre_logits=True)`` the class-token feature, ``forward`` the logits.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, lecun_normal_, to_2tuple, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch.utils.checkpoint import checkpoint

from ..architectures import VIM_ARCHITECTURES, default_dt_rank
from ..constants import IMAGENET_PREPROCESS
from ..ops import MIXER_BACKENDS, mixer_causal_conv1d, mixer_selective_scan
from ..zoo import timm_pretrained_cfgs
from ._features import take_indices
from ._helpers import checked_filter, factory_device, hub_cfg_overlay, linear_like, set_factory_dtype, unwrap_state_dict
from ._pos_embed import resample_pos_embed

__all__ = [
    "BiMambaMixer",
    "RMSNorm",
    "Vim",
    "VimBlock",
    "VimPatchEmbed",
    "checkpoint_filter_fn",
    "resample_pos_embed",
    "set_release_file_resolver",
]


def _checked_input(x: torch.Tensor, img_size: tuple[int, int], dynamic: bool) -> torch.Tensor:
    """``x`` itself, after refusing an input of another size than ``img_size`` unless ``dynamic``."""
    H, W = x.shape[-2:]
    if not dynamic and (H, W) != img_size:
        raise ValueError(
            f"input is {H} x {W} but this Vim was built for {img_size[0]} x {img_size[1]}: resize the input, build "
            "the model with img_size=(H, W) (pretrained position embeddings are resized when loaded), or pass "
            "dynamic_img_size=True"
        )
    return x


def _position_embedding(pos_embed: torch.Tensor, grid: tuple[int, int], built_grid: tuple[int, int]) -> torch.Tensor:
    """The position embedding for a ``grid`` of patches: as built, or resized from ``built_grid``."""
    if tuple(grid) == tuple(built_grid):
        return pos_embed
    return resample_pos_embed(pos_embed, grid, built_grid)


# torch.fx (torchvision's create_feature_extractor, timm's fx tests) records these as single calls:
# the size check and the position-embedding choice look at the input's shape, the mixer ops choose
# their kernel from the tensors' device and dtype; a trace cannot branch on either. They run, and
# choose, when the traced graph runs.
torch.fx.wrap("_checked_input")
torch.fx.wrap("_position_embedding")
torch.fx.wrap("mixer_causal_conv1d")
torch.fx.wrap("mixer_selective_scan")


class VimPatchEmbed(nn.Module):
    """``proj``: a ``patch_size`` convolution with ``stride`` (16, or 8 for overlapping patches);
    tokens come out row-major, ``(B, M, D)``, with the ``(h, w)`` grid they cover."""

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        stride: int = 16,
        in_chans: int = 3,
        embed_dim: int = 192,
        dynamic_img_size: bool = False,
    ):
        super().__init__()
        self.img_size = to_2tuple(img_size)
        self.patch_size, self.stride = int(patch_size), int(stride)
        if min(self.img_size) < self.patch_size:
            raise ValueError(f"img_size {self.img_size} is smaller than a patch ({self.patch_size})")
        self.grid_size = self.grid_for(*self.img_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.dynamic_img_size = dynamic_img_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=stride)

    def grid_for(self, height: int, width: int) -> tuple[int, int]:
        """The ``(h, w)`` patch grid of an input of this size."""
        return (height - self.patch_size) // self.stride + 1, (width - self.patch_size) // self.stride + 1

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        x = self.proj(_checked_input(x, self.img_size, self.dynamic_img_size))
        grid = (x.shape[-2], x.shape[-1])
        return x.flatten(2).transpose(1, 2), grid


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight``, computed in float32, returned in the weight's dtype."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        x = x * torch.rsqrt(x.square().mean(-1, keepdim=True) + self.eps)
        return (x * self.weight.float()).to(self.weight.dtype)


class BiMambaMixer(nn.Module):
    """The bidirectional Mamba mixer (bimamba v2) of a Vim block.

    ``in_proj`` gives ``x`` and the gate ``z`` (``E = expand * dim`` each). The forward direction
    (``conv1d``, ``x_proj``, ``dt_proj``, ``A_log``, ``D``) and the backward one (the same names
    with ``_b``) each run a depthwise causal conv + SiLU and a selective scan gated by ``silu(z)``;
    the backward one on the reversed sequence. ``out_proj`` maps their mean back to ``dim``.
    """

    #: the linear layers int8 inference quantizes (see zeromamba.models.int8)
    int8_linears = ("in_proj", "out_proj")

    def __init__(
        self,
        dim: int,
        d_state: int = 16,
        expand: int = 2,
        d_conv: int = 4,
        dt_rank: int | str = "auto",
        scan_backend: str = "auto",
    ):
        super().__init__()
        self.d_inner = E = int(expand * dim)
        self.d_state = N = int(d_state)
        self.dt_rank = R = default_dt_rank(dim) if dt_rank == "auto" else int(dt_rank)
        self.scan_backend = scan_backend
        # state and skip parameters first: the release files list them before the projections
        self.A_log = nn.Parameter(torch.empty(E, N))
        self.D = nn.Parameter(torch.empty(E))
        self.A_b_log = nn.Parameter(torch.empty(E, N))
        self.D_b = nn.Parameter(torch.empty(E))
        self.in_proj = nn.Linear(dim, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, d_conv, groups=E, padding=d_conv - 1)
        self.x_proj = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj = nn.Linear(R, E)
        self.conv1d_b = nn.Conv1d(E, E, d_conv, groups=E, padding=d_conv - 1)
        self.x_proj_b = nn.Linear(E, R + 2 * N, bias=False)
        self.dt_proj_b = nn.Linear(R, E)
        self.out_proj = nn.Linear(E, dim, bias=False)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min: float = 1e-3, dt_max: float = 0.1, dt_floor: float = 1e-4) -> None:
        """Mamba's initialisation: ``A = -(1..N)`` per channel, ``D = 1``, dt biases such that
        ``softplus(bias)`` is log-uniform in ``[dt_min, dt_max]``, dt weights uniform in ``+-R^-0.5``."""
        E, N, R = self.d_inner, self.d_state, self.dt_rank
        for A_log, D, dt_proj in ((self.A_log, self.D, self.dt_proj), (self.A_b_log, self.D_b, self.dt_proj_b)):
            A_log.copy_(torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(E, 1))
            D.fill_(1.0)
            nn.init.uniform_(dt_proj.weight, -(R**-0.5), R**-0.5)
            dt = torch.exp(torch.rand(E) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
            dt = dt.clamp(min=dt_floor)
            dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # the inverse of softplus

    def _directions(self) -> tuple[tuple[nn.Conv1d, nn.Linear, nn.Linear, nn.Parameter, nn.Parameter], ...]:
        return (
            (self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D),
            (self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b),
        )

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """``(B, L, dim) -> (B, L, dim)``."""
        E, N, R = self.d_inner, self.d_state, self.dt_rank
        x, z = self.in_proj(u).split(E, dim=-1)  # views of one (B, L, 2E) tensor
        y = None
        for reverse, (conv, x_proj, dt_proj, A_log, D) in enumerate(self._directions()):
            back = bool(reverse)
            xc = mixer_causal_conv1d(x, conv.weight, conv.bias, reverse=back, backend=self.scan_backend)
            x_dbl = F.linear(xc.to(x_proj.weight.dtype), x_proj.weight)
            dt_low, B, C = x_dbl.split([R, N, N], dim=-1)
            dt = F.linear(dt_low, dt_proj.weight)  # the bias is added inside the scan, before softplus
            A = -torch.exp(A_log.float())
            out = mixer_selective_scan(xc, dt, A, B, C, D, z, dt_proj.bias, reverse=back, backend=self.scan_backend)
            y = out if y is None else y + out
        assert y is not None
        return self.out_proj((y * 0.5).to(self.out_proj.weight.dtype))


class VimBlock(nn.Module):
    """One layer: ``residual += drop_path(hidden)`` (the first layer starts the residual stream),
    then ``hidden = mixer(norm(residual))``. The residual stream is kept in float32."""

    def __init__(self, dim: int, drop_path: float = 0.0, **mixer_kwargs: Any):
        super().__init__()
        self.mixer = BiMambaMixer(dim, **mixer_kwargs)
        self.norm = RMSNorm(dim)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        residual = hidden.float() if residual is None else residual + self.drop_path(hidden).float()
        return self.mixer(self.norm(residual)), residual


class Vim(nn.Module):
    """Vision Mamba.

    Args:
        img_size: input ``H`` (int) or ``(H, W)``; sets the position embedding's grid.
        patch_size, stride: the patch convolution (16 / 16 released; stride 8 overlaps patches).
        in_chans: input channels. num_classes: classes of ``head`` (0: no head).
        embed_dim, depth: width ``D`` and number of layers.
        d_state, expand, d_conv, dt_rank: the Mamba mixer (16, 2, 4, ``ceil(D / 16)`` released).
        drop_rate: dropout after the position embedding. drop_path_rate: stochastic depth, rising
            linearly over the layers as in the authors' code.
        scan_backend: the mixer ops' backend (see :mod:`zeromamba.ops.mixer_dispatch`).
        dynamic_img_size: accept other input sizes, resizing the position embedding on the fly.
        global_pool: ``"token"`` (the class token; the only pooling the released models use).
        device, dtype: where and in which dtype to build the parameters (timm's factory arguments).
    """

    def __init__(
        self,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        stride: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 192,
        depth: int = 24,
        d_state: int = 16,
        expand: int = 2,
        d_conv: int = 4,
        dt_rank: int | str = "auto",
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        scan_backend: str = "auto",
        dynamic_img_size: bool = False,
        global_pool: str = "token",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ):
        super().__init__()
        with factory_device(device):
            if kwargs:
                raise TypeError(f"unexpected arguments for Vim: {', '.join(sorted(kwargs))}")
            if global_pool != "token":
                raise ValueError("Vim pools with its class token: global_pool must be 'token'")
            if scan_backend not in MIXER_BACKENDS:
                raise ValueError(f"unknown scan backend {scan_backend!r}; choose one of {', '.join(MIXER_BACKENDS)}")
            self.num_classes = num_classes
            self.global_pool = global_pool
            self.in_chans = in_chans
            self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
            self.num_prefix_tokens = 1
            self.grad_checkpointing = False
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.patch_embed = VimPatchEmbed(img_size, patch_size, stride, in_chans, embed_dim, dynamic_img_size)
            self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
            self.pos_drop = nn.Dropout(drop_rate)
            self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
            rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear, 0 to drop_path_rate
            layer_rates = [0.0, *rates][:depth]  # the authors shift the schedule by one layer
            mixer = dict(d_state=d_state, expand=expand, d_conv=d_conv, dt_rank=dt_rank, scan_backend=scan_backend)
            self.layers = nn.ModuleList(VimBlock(embed_dim, layer_rates[i], **mixer) for i in range(depth))
            self.norm_f = RMSNorm(embed_dim)
            self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
            self.feature_info = [dict(num_chs=embed_dim, reduction=stride, module=f"layers.{i}") for i in range(depth)]
            self._init_weights(depth)
        set_factory_dtype(self, dtype)

    @torch.no_grad()
    def _init_weights(self, depth: int) -> None:
        trunc_normal_(self.pos_embed, std=0.02)
        trunc_normal_(self.cls_token, std=0.02)
        lecun_normal_(self.patch_embed.proj.weight)
        nn.init.zeros_(self.patch_embed.proj.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=0.02)
            nn.init.zeros_(self.head.bias)
        for layer in self.layers:
            out = layer.mixer.out_proj.weight
            nn.init.kaiming_uniform_(out, a=math.sqrt(5))
            out.div_(math.sqrt(depth))  # GPT-2's rescaling of residual projections, as in Mamba

    # --- timm-style interface ---------------------------------------------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        names = {"pos_embed", "cls_token"}
        for i in range(len(self.layers)):
            names |= {f"layers.{i}.mixer.{p}" for p in ("A_log", "A_b_log", "D", "D_b")}
        return names

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        return dict(
            stem=r"^cls_token|^pos_embed|^patch_embed", blocks=[(r"^layers\.(\d+)", None), (r"^norm_f", (99999,))]
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        if global_pool not in (None, "token"):
            raise ValueError("Vim pools with its class token: global_pool must be 'token'")
        self.num_classes = num_classes
        self.head = linear_like(self, self.embed_dim, num_classes)

    def set_scan_backend(self, backend: str) -> None:
        """Choose the mixer ops' implementation for every layer (see :mod:`zeromamba.ops.mixer_dispatch`)."""
        if backend not in MIXER_BACKENDS:
            raise ValueError(f"unknown scan backend {backend!r}; choose one of {', '.join(MIXER_BACKENDS)}")
        for layer in self.layers:
            layer.mixer.scan_backend = backend

    @property
    def cls_position(self) -> int:
        """Where the class token sits in the sequence at the built input size (``M // 2``)."""
        return self.patch_embed.num_patches // 2

    def _embed(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        tokens, grid = self.patch_embed(x)
        pos = _position_embedding(self.pos_embed, grid, self.patch_embed.grid_size)
        middle = tokens.shape[1] // 2
        cls = self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
        x = torch.cat([tokens[:, :middle], cls, tokens[:, middle:]], dim=1) + pos.to(tokens.dtype)
        return self.pos_drop(x), grid

    def _run_layer(
        self, layer: VimBlock, hidden: torch.Tensor, residual: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.grad_checkpointing and torch.is_grad_enabled() and not torch.jit.is_scripting():
            return checkpoint(layer, hidden, residual, use_reentrant=False)
        return layer(hidden, residual)

    def _final(self, hidden: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        stream = hidden.float() if residual is None else residual + self.drop_path(hidden).float()
        return self.norm_f(stream)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W) -> (B, M + 1, D)``: the normalised token sequence, class token at ``M // 2``."""
        hidden, _ = self._embed(x)
        residual = None
        for layer in self.layers:
            hidden, residual = self._run_layer(layer, hidden, residual)
        return self._final(hidden, residual)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The class token of a ``forward_features`` sequence (``pre_logits``), or its logits."""
        feature = x[:, (x.shape[1] - 1) // 2]
        return feature if pre_logits else self.head(feature)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
        return_prefix_tokens: bool = False,
    ) -> list[Any] | tuple[torch.Tensor, list[Any]]:
        """The residual stream after the chosen layers (``norm``: through ``norm_f``), without the
        class token, as ``NCHW`` patch grids or ``NLC`` sequences; with ``return_prefix_tokens``
        each entry is ``(patches, class token (B, 1, D))``."""
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError("output_fmt must be 'NCHW' or 'NLC'")
        take, last = take_indices(len(self.layers), indices)
        hidden, grid = self._embed(x)
        residual = None
        intermediates: list[Any] = []
        layers = self.layers[: last + 1] if stop_early else self.layers
        for i, layer in enumerate(layers):
            hidden, residual = self._run_layer(layer, hidden, residual)
            if i in take:
                stream = self._final(hidden, residual) if norm else residual + hidden.float()
                intermediates.append(self._split_tokens(stream, grid, output_fmt, return_prefix_tokens))
        if intermediates_only:
            return intermediates
        return self._final(hidden, residual), intermediates

    @staticmethod
    def _split_tokens(stream: torch.Tensor, grid: tuple[int, int], output_fmt: str, with_cls: bool) -> Any:
        middle = (stream.shape[1] - 1) // 2
        cls = stream[:, middle : middle + 1]
        patches = torch.cat([stream[:, :middle], stream[:, middle + 1 :]], dim=1)
        if output_fmt == "NCHW":
            patches = patches.transpose(1, 2).reshape(stream.shape[0], -1, *grid)
        return (patches, cls) if with_cls else patches

    def prune_intermediate_layers(
        self, indices: int | Sequence[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        take, last = take_indices(len(self.layers), indices)
        self.layers = self.layers[: last + 1]
        self.feature_info = self.feature_info[: last + 1]
        if prune_norm:
            self.norm_f = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor], model: Vim) -> dict[str, torch.Tensor]:
    """An authors' release (``{"model": state_dict, ...}``) or a bare Vim state dict, for ``model``:
    unwrapped (``model``/``state_dict``, DDP's ``module.``), position embedding resized to the
    model's patch grid when the sizes differ (:func:`resample_pos_embed`)."""
    out = dict(unwrap_state_dict(state_dict))
    pos = out.get("pos_embed")
    if isinstance(pos, torch.Tensor) and tuple(pos.shape) != tuple(model.pos_embed.shape):
        out["pos_embed"] = resample_pos_embed(pos, model.patch_embed.grid_size)
    return out


# --- timm registration ----------------------------------------------------------------------

#: ``(architecture, tag) -> local safetensors file of the release, or None``; set by
#: :mod:`zeromamba.hub.release` so that ``pretrained=True`` reads the authors' files safely
_release_file_resolver: Callable[[str, str], str | None] | None = None


def set_release_file_resolver(resolver: Callable[[str, str], str | None] | None) -> None:
    """Install the function that turns a pretrained tag into a local safetensors file (the Hub layer's)."""
    global _release_file_resolver
    _release_file_resolver = resolver


def _cfg(**kwargs: Any) -> dict[str, Any]:
    return {
        "url": "",
        "num_classes": 1000,
        **IMAGENET_PREPROCESS,
        "license": "apache-2.0",
        **kwargs,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "pool_size": None,
        # the position embedding covers the built patch grid: other sizes need img_size= or dynamic_img_size=True
        "fixed_input_size": True,
        "paper_ids": "arXiv:2401.09417",
    }


# the pretrained tags (vim_small.in1k, ...) come from the zoo's table
default_cfgs = generate_default_cfgs(
    {
        **{name: _cfg(**cfg) for arch in VIM_ARCHITECTURES for name, cfg in timm_pretrained_cfgs(arch).items()},
        **{arch: _cfg() for arch in VIM_ARCHITECTURES if not timm_pretrained_cfgs(arch)},
    }
)


def _create_vim(variant: str, pretrained: bool = False, **kwargs: Any) -> Vim:
    overlay = hub_cfg_overlay(variant, default_cfgs, kwargs)
    tag = kwargs.get("pretrained_cfg")
    if tag is None and variant in default_cfgs:
        tag = default_cfgs[variant].tags[0] if default_cfgs[variant].tags else None
    if pretrained and isinstance(tag, str) and "hf_hub_id" in overlay and "file" not in overlay:
        if _release_file_resolver is None:
            raise RuntimeError("import zeromamba (its Hub layer reads the Vim release files) before pretrained=True")
        local = _release_file_resolver(variant, tag)
        if local is not None:  # timm reads a local file before it tries the Hub
            overlay["file"] = local
    kwargs["pretrained_cfg_overlay"] = overlay
    return build_model_with_cfg(
        Vim,
        variant,
        pretrained,
        pretrained_filter_fn=checked_filter(checkpoint_filter_fn),
        feature_cfg=dict(feature_cls="getter", out_indices=(5, 11, 17, 23)),
        **kwargs,
    )


def _entry(arch: str, pretrained: bool, kwargs: dict[str, Any]) -> Vim:
    return _create_vim(arch, pretrained, **{**VIM_ARCHITECTURES[arch], **kwargs})


@register_model
def vim_tiny(pretrained: bool = False, **kwargs: Any) -> Vim:
    """Vim-Ti: 192 wide, 24 layers, d_state 16, patch 16 (7.15M parameters; ImageNet weights ``in1k``)."""
    return _entry("vim_tiny", pretrained, kwargs)


@register_model
def vim_small(pretrained: bool = False, **kwargs: Any) -> Vim:
    """Vim-S: 384 wide, 24 layers, d_state 16, patch 16 (25.8M parameters; ImageNet weights ``in1k``)."""
    return _entry("vim_small", pretrained, kwargs)


@register_model
def vim_base(pretrained: bool = False, **kwargs: Any) -> Vim:
    """Vim-B: 768 wide, 24 layers, d_state 16, patch 16 (97.6M parameters; ImageNet weights ``in1k``)."""
    return _entry("vim_base", pretrained, kwargs)


@register_model
def vim_tiny_stride8(pretrained: bool = False, **kwargs: Any) -> Vim:
    """Vim-Ti with overlapping patches (patch 16, stride 8: 729 tokens at 224 px). No released weights here."""
    return _entry("vim_tiny_stride8", pretrained, kwargs)


@register_model
def vim_small_stride8(pretrained: bool = False, **kwargs: Any) -> Vim:
    """Vim-S with overlapping patches (patch 16, stride 8: 729 tokens at 224 px). No released weights here."""
    return _entry("vim_small_stride8", pretrained, kwargs)
