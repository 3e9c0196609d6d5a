"""The four-direction 2-D selective scan of VMamba's SS2D (cross-scan, scan, cross-merge).

Directions, over an ``H x W`` map flattened to ``L = H * W`` positions:
``0`` row-major, ``1`` column-major, ``2`` row-major reversed, ``3`` column-major reversed.
Each direction has its own projections; the four outputs are mapped back to row-major positions
and summed.

:func:`cross_selective_scan` is the entry point; ``backend`` picks the implementation:

* ``"reference"`` -- the official layout (cross-scan copies, per-direction einsums, the sequential
  float32 recurrence, cross-merge). Slow; kept as the ground truth for the tests.
* ``"torch"`` -- the fast pure-PyTorch path (default on CPU, and on CUDA without mamba-ssm):
  everything stays sequence-major, the four directions become index arithmetic (one gather in,
  one gather out), and the recurrence is the two-level scan of :func:`two_level_scan`.
* ``"mamba"`` -- mamba-ssm's fused CUDA kernel on the official layout.
* ``"auto"`` -- ``"mamba"`` for CUDA tensors when mamba-ssm imports, else ``"torch"``.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F

from .selective_scan import (
    chunk_layout,
    mamba_ssm_available,
    selective_scan_mamba,
    selective_scan_reference,
    two_level_scan,
)

__all__ = [
    "SCAN_BACKENDS",
    "cross_scan",
    "cross_merge",
    "cross_selective_scan",
    "resolve_backend",
    "scan_order",
]

SCAN_BACKENDS = ("auto", "reference", "torch", "mamba")
K_DIRECTIONS = 4


def cross_scan(x: torch.Tensor) -> torch.Tensor:
    """``(B, D, H, W) -> (B, 4, D, L)``: the four scan orders of a channels-first map."""
    B, D, H, W = x.shape
    rows = x.reshape(B, D, H * W)
    cols = x.transpose(2, 3).reshape(B, D, H * W)
    fwd = torch.stack([rows, cols], dim=1)
    return torch.cat([fwd, fwd.flip(-1)], dim=1)


def cross_merge(ys: torch.Tensor) -> torch.Tensor:
    """``(B, 4, D, H, W) -> (B, D, L)``: undo :func:`cross_scan`'s orders and sum the directions.

    ``ys[:, k]`` holds direction ``k``'s outputs in its own scan order, reshaped to ``(H, W)``.
    """
    B, K, D, H, W = ys.shape
    L = H * W
    ys = ys.reshape(B, K, D, L)
    back = ys[:, 2:].flip(-1)
    rows = ys[:, 0] + back[:, 0]
    cols = ys[:, 1] + back[:, 1]
    # column-major order -> row-major positions
    cols = cols.reshape(B, D, W, H).transpose(2, 3).reshape(B, D, L)
    return rows + cols


@functools.lru_cache(maxsize=64)
def _scan_order_cpu(H: int, W: int) -> torch.Tensor:
    L = H * W
    rows = torch.arange(L)
    cols = rows.view(H, W).t().reshape(-1)
    return torch.stack([rows, cols, rows.flip(0), cols.flip(0)])


def scan_order(H: int, W: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(4, L)`` long tensor: ``order[k, t]`` is the row-major position visited at step ``t``."""
    return _scan_order_cpu(H, W).to(device)


@functools.lru_cache(maxsize=64)
def _fast_indices_cpu(H: int, W: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """Gather indices between row-major ``(L, K)`` rows and the chunked scan layout ``(T, nc, K)``.

    ``gather_in[(j * nc + c) * K + k]`` is the source row ``p * K + k`` of step ``t = c * T + j``
    of direction ``k``; steps past ``L`` (padding) read a real row, which is harmless because the
    scan is causal and padding sits at the end. ``gather_out[p * K + k]`` is where position ``p`` of
    direction ``k`` sits in the scan layout. ``gather_u`` is ``gather_in`` for a tensor shared by
    all directions (one row per position).
    """
    L = H * W
    K = K_DIRECTIONS
    T, nc = chunk_layout(L)
    order = _scan_order_cpu(H, W)  # (K, L)
    t = torch.arange(T * nc).view(nc, T).t()  # t[j, c] = c * T + j
    t = t.clamp(max=L - 1)
    pos = order[:, t]  # (K, T, nc)
    k = torch.arange(K).view(K, 1, 1)
    gather_in = (pos * K + k).permute(1, 2, 0).reshape(-1)
    gather_u = pos.permute(1, 2, 0).reshape(-1)
    # inverse: slot of (position, direction)
    inv = torch.empty(K, L, dtype=torch.long)
    inv.scatter_(1, order, torch.arange(L).expand(K, L).contiguous())  # inv[k, p] = step of p
    step = inv  # (K, L)
    j, c = step % T, step // T
    slot = (j * nc + c) * K + torch.arange(K).view(K, 1)
    gather_out = slot.t().reshape(-1)  # (L * K,) ordered p-major, k-minor
    return gather_in, gather_u, gather_out, T, nc


def _fast_indices(H: int, W: int, device: torch.device):
    gather_in, gather_u, gather_out, T, nc = _fast_indices_cpu(H, W)
    return gather_in.to(device), gather_u.to(device), gather_out.to(device), T, nc


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """Turn ``"auto"`` (or the ``ZEROMAMBA_SCAN_BACKEND`` override) into a concrete backend."""
    if backend == "auto":
        backend = os.environ.get("ZEROMAMBA_SCAN_BACKEND", "auto") or "auto"
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"unknown scan backend {backend!r}; choose one of {', '.join(SCAN_BACKENDS)}")
    if backend == "auto":
        return "mamba" if (x.is_cuda and mamba_ssm_available()) else "torch"
    if backend == "mamba" and not mamba_ssm_available():
        raise RuntimeError(
            "scan backend 'mamba' needs mamba-ssm with its CUDA extension "
            "(pip install 'zeromamba[cuda]'); use backend='torch' or 'auto' instead"
        )
    return backend


def cross_selective_scan(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    backend: str = "auto",
) -> torch.Tensor:
    """SS2D's core on a channels-last map.

    Args:
        x: ``(B, H, W, D)`` input (after SS2D's depthwise conv and SiLU).
        x_proj_weight: ``(4, R + 2N, D)`` per-direction projection to ``(dt_low, B, C)``.
        dt_projs_weight: ``(4, D, R)``; dt_projs_bias: ``(4, D)``.
        A_logs: ``(4 * D, N)``, ``A = -exp(A_logs)``; Ds: ``(4 * D,)`` skip weights.
        backend: see the module docstring.

    Returns:
        ``(B, H, W, D)`` float32: the four directions' outputs summed at each position.
    """
    if x.dim() != 4:
        raise ValueError(f"expected a (B, H, W, D) tensor, got shape {tuple(x.shape)}")
    backend = resolve_backend(backend, x)
    if backend == "torch":
        return _cross_scan_fast(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    scan = selective_scan_reference if backend == "reference" else selective_scan_mamba
    return _cross_scan_official(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scan)


def _cross_scan_official(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds, scan):
    """The official layout: channels-first copies per direction, then mamba-style scan."""
    B, H, W, D = x.shape
    K, D_, R = dt_projs_weight.shape
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


def _block_diagonal(w: torch.Tensor) -> torch.Tensor:
    """``(K, D, R) -> (K * D, K * R)`` block-diagonal, so K small matmuls become one GEMM."""
    K, D, R = w.shape
    out = w.new_zeros(K, D, K, R)
    idx = torch.arange(K, device=w.device)
    out[idx, :, idx, :] = w
    return out.reshape(K * D, K * R)


def _cross_scan_fast(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds):
    B, H, W, D = x.shape
    K, _, R = dt_projs_weight.shape
    N = A_logs.shape[1]
    L = H * W
    dtype = torch.float32
    u = x.reshape(B, L, D).to(dtype)

    # per-position projections in row-major order (they commute with the scan permutations)
    x_dbl = F.linear(u, x_proj_weight.to(dtype).reshape(K * (R + 2 * N), D)).view(B, L, K, R + 2 * N)
    dt_low, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=3)
    delta = F.linear(
        dt_low.reshape(B, L, K * R),
        _block_diagonal(dt_projs_weight.to(dtype)),
        dt_projs_bias.to(dtype).reshape(K * D),
    )  # (B, L, K * D), bias included

    gather_in, gather_u, gather_out, T, nc = _fast_indices(H, W, x.device)
    # into scan layout (B, T, nc, K, ...): direction k's step c * T + j at [:, j, c, k]
    delta = delta.view(B, L * K, D).index_select(1, gather_in).view(B, T, nc, K, D)
    us = u.index_select(1, gather_u).view(B, T, nc, K, D)
    Bs = Bs.reshape(B, L * K, N).index_select(1, gather_in).view(B, T, nc, K, N)
    Cs = Cs.reshape(B, L * K, N).index_select(1, gather_in).view(B, T, nc, K, N)

    A = -torch.exp(A_logs.to(dtype)).view(K, D, N)
    dt = F.softplus(delta)
    if N == 1:
        dA = torch.exp(dt * A[..., 0])
        dBu = dt * us * Bs
        h = two_level_scan(dA, dBu)
        y = h * Cs
    else:
        dA = torch.exp(dt.unsqueeze(-1) * A)
        dBu = (dt * us).unsqueeze(-1) * Bs.unsqueeze(-2)
        h = two_level_scan(dA, dBu)
        y = torch.einsum("btckdn,btckn->btckd", h, Cs)

    # back to row-major positions, sum the directions, add the skip term once for all four
    y = y.reshape(B, T * nc * K, D).index_select(1, gather_out).view(B, L, K, D).sum(2)
    y = torch.addcmul(y, u, Ds.to(dtype).view(K, D).sum(0))
    return y.view(B, H, W, D)
