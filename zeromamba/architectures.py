"""The constructor arguments of every named architecture, in one place.

The timm entry points (:mod:`zeromamba.models`), the zoo's variants (:mod:`zeromamba.zoo`) and the
saved format (:mod:`zeromamba.format`) all read them from here. A leaf module: it imports nothing
from the package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "VIM_ARCHITECTURES",
    "VIM_VARIANTS",
    "VMAMBA_ARCHITECTURES",
    "VMAMBA_VARIANTS",
    "ZEROMAMBA_ARCHITECTURES",
    "ZEROMAMBA_VIM_ARCHITECTURES",
    "architecture_for",
    "default_dt_rank",
    "vmamba_reduction",
]

#: backbone sizes of the published VMamba v2 releases
VMAMBA_VARIANTS: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=96, depths=(2, 2, 8, 2), ssm_ratio=1.0),
    "small": dict(embed_dim=96, depths=(2, 2, 15, 2), ssm_ratio=2.0),
    "base": dict(embed_dim=128, depths=(2, 2, 15, 2), ssm_ratio=2.0),
}

# every published configuration uses d_state 1 and an MLP ratio of 4
_BLOCK = dict(d_state=1, mlp_ratio=4.0)

#: ``vmamba_tiny`` / ``vmamba_small`` / ``vmamba_base`` -> :class:`~zeromamba.models.VMamba` arguments
VMAMBA_ARCHITECTURES: dict[str, dict[str, Any]] = {
    f"vmamba_{size}": dict(args, **_BLOCK) for size, args in VMAMBA_VARIANTS.items()
}

#: ``zeromamba_*`` -> :class:`~zeromamba.models.ZeroMamba` arguments (without ``num_attributes``,
#: which depends on the dataset)
ZEROMAMBA_ARCHITECTURES: dict[str, dict[str, Any]] = {
    # the published model: word2vec (300-d) attribute vectors, GRL on the 1000-way ImageNet head
    "zeromamba_small": dict(
        VMAMBA_VARIANTS["small"], **_BLOCK, semantic_dim=300, fusion_hidden=512, num_imagenet_classes=1000
    ),
    # this project's first CPU-sized model (the first embedded shapes-zsl demo model)
    "zeromamba_nano": dict(
        embed_dim=24,
        depths=(1, 1, 2, 1),
        ssm_ratio=1.0,
        **_BLOCK,
        semantic_dim=16,
        fusion_hidden=64,
        num_imagenet_classes=64,
    ),
    # the shipped shapes-zsl demo model: two stages (output stride 8), so its attribute
    # maps are 10 x 10 at its 80 px input instead of 2 x 2
    "zeromamba_nano_s8": dict(
        embed_dim=32,
        depths=(1, 2),
        ssm_ratio=1.0,
        **_BLOCK,
        semantic_dim=16,
        fusion_hidden=64,
        num_imagenet_classes=64,
    ),
}


#: widths of the released Vim models (Zhu et al., ICML 2024; every one: 24 layers, d_state 16)
VIM_VARIANTS: dict[str, dict[str, Any]] = {
    "tiny": dict(embed_dim=192, depth=24, d_state=16),
    "small": dict(embed_dim=384, depth=24, d_state=16),
    "base": dict(embed_dim=768, depth=24, d_state=16),
}

#: ``vim_*`` -> :class:`~zeromamba.models.Vim` arguments: patch 16 with stride 16 (the releases)
#: or stride 8 (overlapping patches, 4x the tokens)
VIM_ARCHITECTURES: dict[str, dict[str, Any]] = {
    **{f"vim_{size}": dict(args, patch_size=16, stride=16) for size, args in VIM_VARIANTS.items()},
    **{f"vim_{size}_stride8": dict(VIM_VARIANTS[size], patch_size=16, stride=8) for size in ("tiny", "small")},
}

#: ``zeromamba_vim_*`` -> :class:`~zeromamba.models.ZeroMambaVim` arguments (without
#: ``num_attributes``): ZeroMamba's heads on a Vim backbone at 448 px (a 28 x 28 patch grid)
ZEROMAMBA_VIM_ARCHITECTURES: dict[str, dict[str, Any]] = {
    f"zeromamba_vim_{size}": dict(
        VIM_ARCHITECTURES[f"vim_{size}"], img_size=448, semantic_dim=300, fusion_hidden=512, num_imagenet_classes=1000
    )
    for size in ("tiny", "small")
}


def default_dt_rank(dim: int) -> int:
    """The rank of an SS2D block's dt projection when none is given: ``ceil(dim / 16)`` of the
    block's (outer) width, as in VMamba and Mamba."""
    return -(-int(dim) // 16)


def vmamba_reduction(stage: int) -> int:
    """Input pixels per feature-map cell after VMamba stage ``stage`` (0-based): the stem divides
    by 4, every later stage's downsampling by 2 more. A backbone of ``len(depths)`` stages ends at
    ``vmamba_reduction(len(depths) - 1)``."""
    return 4 * 2 ** int(stage)


def _backbone_key(args: Mapping[str, Any]) -> tuple[int, tuple[int, ...], float]:
    return int(args["embed_dim"]), tuple(int(d) for d in args["depths"]), float(args["ssm_ratio"])


def architecture_for(family: str, embed_dim: int, depths: Sequence[int], ssm_ratio: float) -> str | None:
    """The name of the ``family`` (``"zeromamba"`` or ``"vmamba"``) architecture with this backbone
    size, or ``None`` when no named one has it."""
    table = {"zeromamba": ZEROMAMBA_ARCHITECTURES, "vmamba": VMAMBA_ARCHITECTURES}[family]
    key = _backbone_key(dict(embed_dim=embed_dim, depths=depths, ssm_ratio=ssm_ratio))
    return next((name for name, args in table.items() if _backbone_key(args) == key), None)
