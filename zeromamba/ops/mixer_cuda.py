"""The Mamba mixer's operations through the ``cuda`` extra: mamba-ssm's ``selective_scan_fn`` and
causal-conv1d's ``causal_conv1d_fn``, the kernels the Vim authors' code runs on.

Both packages are imported lazily (neither imports without its compiled CUDA extension). They
work channel-first ``(batch, E, L)``; the token-major inputs are transposed (and, for the backward
direction, flipped) here. Both are differentiable.
"""

from __future__ import annotations

import functools

import torch

from .selective_scan import mamba_ssm_available

__all__ = ["causal_conv1d_available", "causal_conv1d_cuda", "mamba_ssm_available", "selective_scan_cuda"]  # noqa: E501


@functools.lru_cache(maxsize=1)
def causal_conv1d_available() -> bool:
    """True when causal-conv1d's compiled extension can be imported (checked once)."""
    try:
        from causal_conv1d import causal_conv1d_fn  # noqa: F401
    except Exception:  # ImportError, or an OSError/RuntimeError from a broken CUDA build
        return False
    return True


def _channels_first(t: torch.Tensor, reverse: bool) -> torch.Tensor:
    t = t.flip(1) if reverse else t
    return t.transpose(1, 2).contiguous()


def _token_major(t: torch.Tensor, reverse: bool) -> torch.Tensor:
    t = t.transpose(1, 2)
    return t.flip(1) if reverse else t


def selective_scan_cuda(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    softplus: bool = True,
    reverse: bool = False,
) -> torch.Tensor:
    """:func:`~zeromamba.ops.mixer_selective_scan` through mamba-ssm (CUDA tensors, float32 out)."""
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    if not x.is_cuda:
        raise RuntimeError("the 'mamba' backend needs CUDA tensors; use backend='torch' or 'fused_cpu' on CPU")
    y = selective_scan_fn(
        _channels_first(x, reverse),
        _channels_first(dt, reverse),
        A.float().contiguous(),
        _channels_first(B, reverse),
        _channels_first(C, reverse),
        None if D is None else D.float().contiguous(),
        z=None if z is None else _channels_first(z, reverse),
        delta_bias=None if dt_bias is None else dt_bias.float().contiguous(),
        delta_softplus=softplus,
    )
    return _token_major(y.float(), reverse)


def causal_conv1d_cuda(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    reverse: bool = False,
) -> torch.Tensor:
    """:func:`~zeromamba.ops.mixer_causal_conv1d` through causal-conv1d (CUDA tensors)."""
    from causal_conv1d import causal_conv1d_fn

    if not x.is_cuda:
        raise RuntimeError("the 'mamba' backend needs CUDA tensors; use backend='torch' or 'fused_cpu' on CPU")
    E = x.shape[-1]
    y = causal_conv1d_fn(
        _channels_first(x, reverse),
        weight.reshape(E, -1).to(x.dtype).contiguous(),
        None if bias is None else bias.to(x.dtype).contiguous(),
        activation=activation,
    )
    return _token_major(y, reverse)
