"""The layout of VMamba's four-direction 2-D scan: cross-scan, cross-merge and the scan orders.

Directions, over an ``H x W`` map flattened to ``L = H * W`` positions:
``0`` row-major, ``1`` column-major, ``2`` row-major reversed, ``3`` column-major reversed.
Each direction has its own projections; the four outputs are mapped back to row-major positions
and summed.
"""

from __future__ import annotations

import functools

import torch

from .selective_scan import chunk_layout

__all__ = ["K_DIRECTIONS", "cross_merge", "cross_scan", "gather_indices", "scan_order"]

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
@torch.inference_mode(False)  # cached: must stay usable by later autograd calls
def _scan_order_cpu(H: int, W: int) -> torch.Tensor:
    L = H * W
    rows = torch.arange(L)
    cols = rows.view(H, W).t().reshape(-1)
    return torch.stack([rows, cols, rows.flip(0), cols.flip(0)])


def scan_order(H: int, W: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """``(4, L)`` long tensor: ``order[k, t]`` is the row-major position visited at step ``t``."""
    return _scan_order_cpu(H, W).to(device)


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def _gather_indices_cpu(B: int, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    L = H * W
    K = K_DIRECTIONS
    T, nc = chunk_layout(L)
    order = _scan_order_cpu(H, W)  # (K, L)
    t = (torch.arange(T * nc).view(nc, T).t()).clamp(max=L - 1)  # t[j, c] = c * T + j
    pos = order[:, t]  # (K, T, nc)
    base = (torch.arange(B) * L).view(1, B, 1, 1)
    gather_in = (pos.unsqueeze(1) + base).reshape(K, B * T * nc)
    step = torch.empty(K, L, dtype=torch.long)
    step.scatter_(1, order, torch.arange(L).expand(K, L).contiguous())  # step[k, p]
    slot = (step % T) * nc + step // T  # (K, L) within one image
    k_off = (torch.arange(K) * (B * T * nc)).view(K, 1, 1)
    b_off = (torch.arange(B) * (T * nc)).view(1, B, 1)
    gather_out = (slot.unsqueeze(1) + b_off + k_off).reshape(K, B * L)
    return gather_in, gather_out, T, nc


@functools.lru_cache(maxsize=64)
@torch.inference_mode(False)
def gather_indices(B: int, H: int, W: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Gather indices between row-major rows ``(B * L)`` and the scan layout ``(K, B, T, nc)``.

    ``(T, nc)`` is :func:`~zeromamba.ops.selective_scan.chunk_layout` of ``L``. Direction ``k``'s
    step ``t = c * T + j`` of image ``b`` lives at ``[k, b, j, c]`` (each in-chunk step is one slab
    over all chunks). ``gather_in[k, (b, j, c)]`` is the row-major source row; steps past ``L``
    (padding) re-read the last real step, harmless because the scan is causal and padding sits at
    the end. ``gather_out[k, b * L + p]`` is the flat scan-layout row that holds position ``p`` of
    direction ``k``. Cached per device too: no host-to-device copy on every block of every forward.
    """
    gather_in, gather_out, T, nc = _gather_indices_cpu(B, H, W)
    return gather_in.to(device), gather_out.to(device), T, nc
