"""The four-direction 2-D selective scan of VMamba's SS2D (cross-scan, scan, cross-merge).

Directions, over an ``H x W`` map flattened to ``L = H * W`` positions:
``0`` row-major, ``1`` column-major, ``2`` row-major reversed, ``3`` column-major reversed.
Each direction has its own projections; the four outputs are mapped back to row-major positions
and summed.

:func:`cross_selective_scan` is the entry point; ``backend`` picks the implementation:

* ``"reference"`` -- the official layout (cross-scan copies, per-direction einsums, the sequential
  float32 recurrence, cross-merge). Slow; kept as the ground truth for the tests.
* ``"torch"`` -- the fast pure-PyTorch path, differentiable, on any device (what ``"auto"`` picks
  for training and wherever the fused kernels do not apply): everything stays sequence-major,
  the four directions become index arithmetic (one gather in, one gather out), and the
  recurrence is the two-level scan of :func:`two_level_scan`.
* ``"fused_cpu"`` -- a one-pass C kernel for ``d_state == 1`` inference on CPU, built on first use
  with the system compiler (:mod:`zeromamba.ops.fused_cpu`); forward only.
* ``"triton"`` -- the same one-pass scan as a Triton kernel for CUDA inference with ``d_state == 1``
  (:mod:`zeromamba.ops.fused_triton`); forward only.
* ``"mamba"`` -- mamba-ssm's fused CUDA kernel on the official layout.
* ``"auto"`` -- on CUDA: ``"mamba"`` when mamba-ssm imports, else ``"triton"`` for inference with
  ``d_state == 1`` when its self-check passes; on CPU: ``"fused_cpu"`` for inference with
  ``d_state == 1`` when the kernel builds; otherwise ``"torch"``.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F

from .fused_cpu import cross_scan_fused_cpu, fused_cpu_available, kernel_status
from .fused_triton import cross_scan_fused_triton, fused_triton_available
from .scratch import scratch_buffer
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

SCAN_BACKENDS = ("auto", "reference", "torch", "fused_cpu", "triton", "mamba")
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
def _fast_indices_cpu(B: int, H: int, W: int) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """Gather indices between row-major rows ``(B * L)`` and the scan layout ``(K, B, T, nc)``.

    Direction ``k``'s step ``t = c * T + j`` of image ``b`` lives at ``[k, b, j, c]`` (each in-chunk
    step is one slab over all chunks). ``gather_in[k, (b, j, c)]`` is the row-major source row;
    steps past ``L`` (padding) re-read the last real step, harmless because the scan is causal and
    padding sits at the end. ``gather_out[k, b * L + p]`` is the flat scan-layout row that holds
    position ``p`` of direction ``k``.
    """
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
def _fast_indices(B: int, H: int, W: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    # cached per device too: no host-to-device copy on every block of every forward
    gather_in, gather_out, T, nc = _fast_indices_cpu(B, H, W)
    return gather_in.to(device), gather_out.to(device), T, nc


def resolve_backend(backend: str, x: torch.Tensor, d_state: int = 1, needs_grad: bool = False) -> str:
    """Turn ``"auto"`` (or the ``ZEROMAMBA_SCAN_BACKEND`` override) into a concrete backend."""
    if backend == "auto":
        backend = os.environ.get("ZEROMAMBA_SCAN_BACKEND", "auto") or "auto"
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"unknown scan backend {backend!r}; choose one of {', '.join(SCAN_BACKENDS)}")
    if backend == "auto":
        if x.is_cuda:
            if mamba_ssm_available():
                return "mamba"
            if d_state == 1 and not needs_grad and fused_triton_available(x.device):
                return "triton"
            return "torch"
        if x.device.type == "cpu" and d_state == 1 and not needs_grad and fused_cpu_available():
            return "fused_cpu"
        return "torch"
    if backend == "triton":
        if not x.is_cuda or d_state != 1 or needs_grad:
            raise RuntimeError(
                "scan backend 'triton' runs CUDA inference with d_state=1 only; use 'torch' for training, "
                "other d_state values or other devices"
            )
        if not fused_triton_available(x.device):
            raise RuntimeError("scan backend 'triton' is unavailable (Triton missing or its self-check failed)")
    if backend == "fused_cpu":
        if x.device.type != "cpu" or d_state != 1 or needs_grad:
            raise RuntimeError(
                "scan backend 'fused_cpu' runs CPU inference with d_state=1 only; use 'torch' for training, "
                "other d_state values or other devices"
            )
        if not fused_cpu_available():
            raise RuntimeError(f"scan backend 'fused_cpu' is unavailable ({kernel_status()}); use 'torch'")
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
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    )
    backend = resolve_backend(backend, x, A_logs.shape[1], needs_grad)
    if backend == "triton":
        return cross_scan_fused_triton(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    if backend == "fused_cpu":
        return cross_scan_fused_cpu(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
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


def us_gather(u: torch.Tensor, gather_in: torch.Tensor, K: int, S: int, D: int) -> torch.Tensor:
    """``u`` (rows in row-major order) laid out in each direction's scan order: ``(K, S, D)``."""
    return u.index_select(0, gather_in.reshape(-1)).view(K, S, D)


def _softplus(x: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        return F.softplus(x)
    try:
        return torch._C._nn.softplus(x, 1.0, 20.0, out=out)  # no public out= variant
    except (AttributeError, TypeError, RuntimeError):
        return out.copy_(F.softplus(x))


def _cross_scan_fast(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds):
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
    gather_in, gather_out, T, nc = _fast_indices(B, H, W, x.device)
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
        b = dt * us_gather(u, gather_in, K, S, D) * Bs
        a = torch.exp(dt * A[..., 0])
        h = two_level_scan(a.view(K * B, T, nc, D), b.view(K * B, T, nc, D)).view(K, S, D)
        y = h * Cs
    else:
        delta = torch.bmm(dt_low, dt_w).to(dtype) + bias
        dt = F.softplus(delta)
        a = torch.exp(dt.unsqueeze(-1) * A)
        b = (dt * us_gather(u, gather_in, K, S, D)).unsqueeze(-1) * Bs.unsqueeze(2)
        h = two_level_scan(a.view(K * B, T, nc, D, N), b.view(K * B, T, nc, D, N)).view(K, S, D, N)
        y = torch.einsum("ksdn,ksn->ksd", h, Cs)

    # back to row-major positions and sum the directions; the skip term once for all four
    y = y.reshape(K * S, D).index_select(0, gather_out.reshape(-1)).view(K, B * L, D).sum(0)
    y = torch.addcmul(y, u, Ds.to(dtype).view(K, D).sum(0))
    return y.view(B, H, W, D)
