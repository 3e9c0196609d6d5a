"""The Mamba mixer's two operations in PyTorch: the plain references and the fast differentiable path.

Layout (all backends): token-major ``(batch, L, E)`` for the sequences, ``A`` ``(E, N)``, ``B`` and
``C`` ``(batch, L, N)``. ``reverse=True`` runs the operation on the reversed sequence and reverses
the result back: the backward direction of Vim's bidirectional mixer, without flipped copies in
the fused kernels.

* :func:`selective_scan_ref` / :func:`causal_conv1d_ref` -- the ground truth: the sequential
  recurrence of :func:`~zeromamba.ops.selective_scan.selective_scan_reference` in mamba-ssm's
  channel-first layout, and ``F.conv1d`` with left padding, as the authors' reference functions do.
* :func:`selective_scan_torch` / :func:`causal_conv1d_torch` -- the fast pure-PyTorch versions for
  any device and for training: the two-level scan of
  :func:`~zeromamba.ops.selective_scan.two_level_scan` (its autograd keeps no graph node per
  step, also for short sequences), and the convolution as ``K`` shifted multiply-adds on the
  token-major tensor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .selective_scan import chunk_layout, selective_scan_reference, two_level_scan

__all__ = ["causal_conv1d_ref", "causal_conv1d_torch", "selective_scan_ref", "selective_scan_torch"]


def _flip(t: torch.Tensor | None, reverse: bool) -> torch.Tensor | None:
    return t.flip(1) if reverse and t is not None else t


def selective_scan_ref(
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
    """The sequential float32 recurrence (see :func:`~zeromamba.ops.mixer_selective_scan`)."""
    x, dt, B, C, z = (_flip(t, reverse) for t in (x, dt, B, C, z))
    y = selective_scan_reference(
        x.transpose(1, 2),
        dt.transpose(1, 2),
        A,
        B.transpose(1, 2).unsqueeze(1),
        C.transpose(1, 2).unsqueeze(1),
        D,
        delta_bias=dt_bias,
        delta_softplus=softplus,
    ).transpose(1, 2)
    if z is not None:
        y = y * F.silu(z.float())
    return _flip(y, reverse)


def _recurrence(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``h_t = a_t h_{t-1} + b_t`` along dim 1 of ``(batch, L, ...)`` tensors, with the two-level scan."""
    batch, length, *rest = a.shape
    chunk, n_chunks = chunk_layout(length)
    pad = n_chunks * chunk - length
    if pad:  # at the end, where a causal scan never lets it reach a real position
        a = torch.cat([a, a.new_zeros(batch, pad, *rest)], dim=1)
        b = torch.cat([b, b.new_zeros(batch, pad, *rest)], dim=1)
    # position t = c * chunk + j lives at [:, j, c]
    a = a.view(batch, n_chunks, chunk, *rest).transpose(1, 2).contiguous()
    b = b.view(batch, n_chunks, chunk, *rest).transpose(1, 2).contiguous()
    h = two_level_scan(a, b)
    return h.transpose(1, 2).reshape(batch, n_chunks * chunk, *rest)[:, :length]


def selective_scan_torch(
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
    """The same result as :func:`selective_scan_ref` through the two-level scan (differentiable)."""
    x, dt = x.float(), dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    if softplus:
        dt = F.softplus(dt)
    x, dt, B, C, z = (_flip(t, reverse) for t in (x, dt, B, C, z))
    # (batch, L, E, N): decay and input of h_t = a_t h_{t-1} + b_t
    a = torch.exp(dt.unsqueeze(-1) * A.float())
    b = (dt * x).unsqueeze(-1) * B.float().unsqueeze(2)
    h = _recurrence(a, b)
    y = torch.einsum("blen,bln->ble", h, C.float())
    if D is not None:
        y = y + D.float() * x
    if z is not None:
        y = y * F.silu(z.float())
    return _flip(y, reverse)


def _weight_2d(weight: torch.Tensor) -> torch.Tensor:
    return weight.reshape(weight.shape[0], weight.shape[-1])


def causal_conv1d_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    reverse: bool = False,
) -> torch.Tensor:
    """Depthwise causal conv1d as the authors' reference computes it: ``F.conv1d`` with ``K - 1``
    zeros of padding on the left of the channel-first sequence (see
    :func:`~zeromamba.ops.mixer_causal_conv1d`)."""
    w = _weight_2d(weight)
    E, K = w.shape
    xc = _flip(x, reverse).transpose(1, 2)  # (batch, E, L)
    y = F.conv1d(
        F.pad(xc, (K - 1, 0)), w.unsqueeze(1).to(xc.dtype), None if bias is None else bias.to(xc.dtype), groups=E
    )
    y = y.transpose(1, 2)
    if activation == "silu":
        y = F.silu(y)
    return _flip(y, reverse)


def causal_conv1d_torch(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    reverse: bool = False,
) -> torch.Tensor:
    """The same convolution as ``K`` shifted multiply-adds on the token-major tensor (no transposes)."""
    w = _weight_2d(weight).to(x.dtype)
    K = w.shape[1]
    L = x.shape[1]
    # pad K - 1 zero positions before (causal) or after (reverse) the sequence
    padded = F.pad(x, (0, 0, 0, K - 1) if reverse else (0, 0, K - 1, 0))
    y = None
    for k in range(K):
        # forward: y_t += w_k x_{t-K+1+k}; reverse: y_t += w_k x_{t+K-1-k}
        start = K - 1 - k if reverse else k
        term = padded[:, start : start + L] * w[:, k]
        y = term if y is None else y + term
    assert y is not None
    if bias is not None:
        y = y + bias.to(x.dtype)
    if activation == "silu":
        y = F.silu(y)
    return y
