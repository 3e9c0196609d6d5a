"""The PyTorch implementations of SS2D's cross selective scan.

* :func:`cross_scan_official` -- the official layout (cross-scan copies, per-direction einsums, a
  mamba-style selective scan, cross-merge); the ``"reference"`` and ``"mamba"`` backends.
* :func:`cross_scan_torch` -- the fast sequence-major path (the ``"torch"`` backend),
  differentiable, on any device: the four directions become index arithmetic (one gather in, one
  gather out) and the recurrence is :func:`~zeromamba.ops.selective_scan.two_level_scan`.

Both take the arguments of :func:`~zeromamba.ops.cross_selective_scan` and return ``(B, H, W, D)``
float32.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .cross_scan import cross_merge, cross_scan, gather_indices
from .scratch import scratch_buffer
from .selective_scan import two_level_scan

__all__ = ["cross_scan_official", "cross_scan_torch"]


def cross_scan_official(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    scan: Callable[..., torch.Tensor],
) -> torch.Tensor:
    """The official layout: channels-first copies per direction, then ``scan`` (mamba-ssm's signature)."""
    B, H, W, D = x.shape
    K, _, R = dt_projs_weight.shape
    N = A_logs.shape[1]
    L = H * W
    xs = cross_scan(x.permute(0, 3, 1, 2))  # (B, K, D, L)
    x_dbl = torch.einsum("bkdl,kcd->bkcl", xs, x_proj_weight.to(xs.dtype))
    dts, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    dts = torch.einsum("bkrl,kdr->bkdl", dts, dt_projs_weight.to(xs.dtype))
    ys = scan(
        xs.reshape(B, K * D, L),
        dts.reshape(B, K * D, L),
        -torch.exp(A_logs.float()),
        Bs.contiguous(),
        Cs.contiguous(),
        Ds.float(),
        delta_bias=dt_projs_bias.reshape(-1).float(),
        delta_softplus=True,
    )
    y = cross_merge(ys.reshape(B, K, D, H, W))  # (B, D, L)
    return y.transpose(1, 2).reshape(B, H, W, D)


def _us_gather(u: torch.Tensor, gather_in: torch.Tensor, K: int, S: int, D: int) -> torch.Tensor:
    """``u`` (rows in row-major order) laid out in each direction's scan order: ``(K, S, D)``."""
    return u.index_select(0, gather_in.reshape(-1)).view(K, S, D)


def _softplus(x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        return F.softplus(x)
    try:
        return torch._C._nn.softplus(x, 1.0, 20.0, out=out)  # no public out= variant
    except (AttributeError, TypeError, RuntimeError):
        return out.copy_(F.softplus(x))


def cross_scan_torch(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
) -> torch.Tensor:
    """Sequence-major fast path: gather once into the scan layout, scan, gather back once."""
    B, H, W, D = x.shape
    K, _, R = dt_projs_weight.shape
    N = A_logs.shape[1]
    L = H * W
    dtype = torch.float32
    inplace = not (
        torch.is_grad_enabled()
        and any(t.requires_grad for t in (x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds))
    )
    xr = x.reshape(B * L, D)
    u = xr.to(dtype).contiguous()
    gather_in, gather_out, T, nc = gather_indices(B, H, W, x.device)
    S = B * T * nc  # scan-layout rows per direction

    # per-position projection in row-major order (it commutes with the scan orders), then the
    # small (R + 2N)-wide result is gathered per direction: far cheaper than gathering D-wide rows.
    # Projections run in the input dtype, as the official code does; the scan runs in float32.
    x_dbl = F.linear(xr, x_proj_weight.to(x.dtype).reshape(K * (R + 2 * N), D)).view(B * L, K, R + 2 * N)
    k_index = torch.arange(K, device=x.device).view(K, 1)
    x_dbl = x_dbl[gather_in, k_index]  # (K, S, R + 2N)
    dt_low, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=2)
    Bs, Cs = Bs.to(dtype), Cs.to(dtype)
    dt_w = dt_projs_weight.to(x.dtype).transpose(1, 2)
    bias = dt_projs_bias.to(dtype).view(K, 1, D)
    A = -torch.exp(A_logs.to(dtype)).view(K, 1, D, N)

    if N == 1 and inplace:
        # inference: three (K, S, D) work buffers reused across calls (CPU), every step in place;
        # the result below is gathered into a new tensor, so nothing returned aliases them
        work = scratch_buffer(3 * K * S * D, x.device)
        bufs = work.view(3, K, S, D).unbind(0) if work is not None else (None, None, None)
        if x.dtype == dtype:
            delta = torch.baddbmm(bias, dt_low, dt_w, out=bufs[0])
        else:
            delta = torch.bmm(dt_low, dt_w).to(dtype).add_(bias)
        dt = _softplus(delta, out=bufs[1])
        us = torch.index_select(u, 0, gather_in.reshape(-1), out=None if bufs[2] is None else bufs[2].view(-1, D))
        b = us.view(K, S, D).mul_(dt).mul_(Bs)  # dt * u * B
        a = dt.mul_(A[..., 0]).exp_()  # exp(dt * A)
        h = two_level_scan(a.view(K * B, T, nc, D), b.view(K * B, T, nc, D)).view(K, S, D)
        y = h.mul_(Cs)
    elif N == 1:
        delta = torch.bmm(dt_low, dt_w).to(dtype) + bias
        dt = F.softplus(delta)
        b = dt * _us_gather(u, gather_in, K, S, D) * Bs
        a = torch.exp(dt * A[..., 0])
        h = two_level_scan(a.view(K * B, T, nc, D), b.view(K * B, T, nc, D)).view(K, S, D)
        y = h * Cs
    else:
        delta = torch.bmm(dt_low, dt_w).to(dtype) + bias
        dt = F.softplus(delta)
        a = torch.exp(dt.unsqueeze(-1) * A)
        b = (dt * _us_gather(u, gather_in, K, S, D)).unsqueeze(-1) * Bs.unsqueeze(2)
        h = two_level_scan(a.view(K * B, T, nc, D, N), b.view(K * B, T, nc, D, N)).view(K, S, D, N)
        y = torch.einsum("ksdn,ksn->ksd", h, Cs)

    # back to row-major positions and sum the directions; the skip term once for all four
    y = y.reshape(K * S, D).index_select(0, gather_out.reshape(-1)).view(K, B * L, D).sum(0)
    y = torch.addcmul(y, u, Ds.to(dtype).view(K, D).sum(0))
    return y.view(B, H, W, D)
