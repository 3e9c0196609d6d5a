"""2-D convolutions through oneDNN with their weights packed once, and a SiLU fused in (CPU inference).

PyTorch's own CPU convolution hands oneDNN the weight in plain order and oneDNN reorders it on every
call: for VMamba's last stride-2 convolution (384 -> 768 channels, 2.6 M weights) that reorder cost
more than the convolution itself. :func:`conv2d` runs ``torch.ops.mkldnn._convolution_pointwise``
on the weight's kept packed copy (:mod:`.packed_weights`, packed for the input's shape), with the
depthwise convolution's SiLU in oneDNN's epilogue, for float32 / bfloat16 CPU tensors when no
gradient is needed and no graph is being traced. Otherwise, and where packing is off
(``ZEROMAMBA_PACK_WEIGHTS=0``) or unavailable, it is ``F.conv2d`` then ``F.silu``. The operator is
checked once per dtype against that plain path.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .first_use import FirstUseCheck
from .fused_linear import fused_linear_available
from .packed_weights import packed_conv_weight
from .tracing import is_tracing

__all__ = ["PACK_FROM_INPUT_CHANNELS", "conv2d", "fused_conv_available"]

log = logging.getLogger(__name__)

_ACTIVATIONS = {None: "none", "silu": "swish"}
_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}
#: dense convolutions with fewer input channels than this (an RGB stem) keep PyTorch's path: oneDNN's
#: kernel for them read its packed weight more slowly (at 448 x 448: 4.2 against 1.3 ms)
PACK_FROM_INPUT_CHANNELS = 8


def _plain(x, weight, bias, stride, padding, dilation, groups, activation):
    y = F.conv2d(x, weight, bias, stride, padding, dilation, groups)
    # in place where no gradient is recorded: the conv's output is this call's own
    return F.silu(y, inplace=not torch.is_grad_enabled()) if activation == "silu" else y


def _check(dtype: torch.dtype) -> bool:
    """oneDNN's convolution on a packed weight agrees with the plain path (dense and depthwise, with
    and without SiLU) on a small random problem of ``dtype``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 9, 7, generator=g).to(dtype).contiguous(memory_format=torch.channels_last)
    for groups, stride in ((1, 2), (8, 1)):
        w = (torch.randn(8, 8 // groups, 3, 3, generator=g) * 0.3).to(dtype)
        b = torch.randn(8, generator=g).to(dtype)
        packed = torch._C._nn.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), [1, 1], [stride] * 2, [1, 1], groups, None)
        for act in (None, "silu"):
            got = torch.ops.mkldnn._convolution_pointwise(
                x, packed, b, [1, 1], [stride] * 2, [1, 1], groups, _ACTIVATIONS[act], [], ""
            ).float()
            want = _plain(x, w, b, stride, 1, 1, groups, act).float()
            if got.shape != want.shape or not (got - want).abs().max() <= _TOLERANCE[dtype] * want.abs().max():
                return False
    return True


def _usable(dtype: torch.dtype) -> bool:
    with torch.no_grad():
        return _check(dtype)


_available = FirstUseCheck(_usable, "oneDNN convolution", "F.conv2d", log)


def fused_conv_available(dtype: torch.dtype = torch.float32) -> bool:
    """True when oneDNN's convolution on packed weights is usable for ``dtype`` here and passed its
    first-use check."""
    return dtype in _TOLERANCE and fused_linear_available(dtype) and _available(dtype)


def conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    activation: str | None = None,
) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, stride, padding, dilation, groups)``, then ``F.silu`` when
    ``activation == "silu"``; through oneDNN on a packed weight for CPU inference (the output keeps
    ``x``'s memory format)."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be None or 'silu', got {activation!r}")
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias))
    fusable = (
        not needs_grad
        and x.device.type == "cpu"
        and x.dim() == 4
        and x.dtype == weight.dtype
        and (bias is None or bias.dtype == x.dtype)
        and not isinstance(padding, str)
        and not is_tracing()
        and fused_conv_available(x.dtype)
    )
    depthwise = groups > 1 and weight.shape[1] == 1
    if fusable and (depthwise or weight.shape[1] >= PACK_FROM_INPUT_CHANNELS):
        packed = packed_conv_weight(weight, padding, stride, dilation, groups, x.shape)
    else:
        packed = None
    if packed is None:
        return _plain(x, weight, bias, stride, padding, dilation, groups, activation)
    return torch.ops.mkldnn._convolution_pointwise(
        x, packed, bias, list(padding), list(stride), list(dilation), groups, _ACTIVATIONS[activation], [], ""
    )
