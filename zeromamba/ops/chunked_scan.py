"""SS2D's cross selective scan with graph-friendly ops only: the ``"chunked"`` backend.

What ONNX, TorchScript tracing, ``torch.export`` and ``torch.compile`` need: no C extension, no
Triton, no in-place scratch buffers, no Python loop whose length depends on the data. The four
scan orders are flips and transposes (static), the projections are batched matmuls, and the
recurrence ``h_t = a_t h_{t-1} + b_t`` (``a_t = exp(dt_t A) in (0, 1]``) is a hierarchical scan
built from ``cumsum`` and ``exp`` (:func:`log_space_scan`), whose depth is ``log_T(L)``: about
five levels for the 12544 positions of a 448 px image's first stage, each a dozen whole-tensor
ops, so the graph stays small and every op runs on a large slab.

Within a chunk of ``T`` positions with ``c_t = sum_{s<=t} log a_s`` (``c`` decreases, ``c <= 0``)::

    h_t = sum_{s<=t} exp(c_t - c_s) b_s = exp(c_t - m) * cumsum_s(exp(m - c_s) b_s)

with ``m = c_{T-1} / 2`` the chunk's mid log-decay, so both exponents lie in
``[-|c_{T-1}| / 2, |c_{T-1}| / 2]``. Each step's log-decay is clamped at :data:`LOG_DECAY_FLOOR`
(``-20``: a decay below ``exp(-20) = 2e-9`` becomes ``2e-9``, which changes ``h`` by less than float32
resolves), so with ``T = 8`` no exponent passes ``80`` and nothing overflows (float32 ends at
``exp(88)``). The chunks' end states then follow the same recurrence one level up (decay
``exp(c_{T-1})``, clamped the same way), and each position adds ``exp(c_t)`` times the state
entering its chunk. Everything runs in float32, as the other backends do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CHUNK", "LOG_DECAY_FLOOR", "cross_scan_chunked", "log_space_scan"]

#: each step's log-decay is clamped here; exp(-20) = 2e-9 is below float32's resolution of a state
LOG_DECAY_FLOOR = -20.0
#: positions per chunk: the largest with CHUNK * |LOG_DECAY_FLOOR| / 2 <= 80 (no float32 overflow);
#: measured by benchmarks/export_speed.py at the first stage of ZeroMamba-S at 448 (chunks 2 / 4 / 8:
#: 5.9 / 4.1 / 4.0 s on a saturated machine, results/export_speed_2026-12-02.json): 8, the largest allowed
CHUNK = 8


def log_space_scan(log_a: torch.Tensor, b: torch.Tensor, chunk: int = CHUNK) -> torch.Tensor:
    """``h_t = exp(log_a_t) * h_{t-1} + b_t`` (``h_{-1} = 0``) along dim 1 of ``(P, L, Q)`` tensors.

    ``log_a`` must be ``<= 0`` (a decay). Returns float32 ``h``, shape ``(P, L, Q)``. Pure tensor ops
    (``cumsum``, ``exp``, reshapes, a pad): traceable and exportable; the recursion depth depends on
    ``L`` only, which is static in an exported graph.
    """
    if chunk < 1 or chunk * -LOG_DECAY_FLOOR / 2 > 80:
        raise ValueError(f"chunk must be between 1 and {int(160 / -LOG_DECAY_FLOOR)}, got {chunk}")
    P, L, Q = log_a.shape
    T = min(chunk, L)
    nc = -(-L // T)
    pad = nc * T - L
    log_a = log_a.clamp(min=LOG_DECAY_FLOOR)
    if pad:  # padding at the end: a causal scan never lets it reach a real position
        log_a = F.pad(log_a, (0, 0, 0, pad))
        b = F.pad(b, (0, 0, 0, pad))
    log_a = log_a.reshape(P, nc, T, Q)
    b = b.reshape(P, nc, T, Q)
    c = torch.cumsum(log_a, dim=2)  # (P, nc, T, Q), c <= 0, decreasing along T
    c_end = c[:, :, T - 1 :]  # (P, nc, 1, Q)
    mid = 0.5 * c_end
    h = torch.exp(c - mid) * torch.cumsum(torch.exp(mid - c) * b, dim=2)
    if nc > 1:
        # the state at the end of each chunk, one level up; the state entering chunk j is chunk j-1's
        ends = log_space_scan(c_end.reshape(P, nc, Q), h[:, :, T - 1].reshape(P, nc, Q), chunk)
        entering = F.pad(ends[:, : nc - 1], (0, 0, 1, 0))  # (P, nc, Q), zero before the first chunk
        h = h + torch.exp(c) * entering.unsqueeze(2)
    h = h.reshape(P, nc * T, Q)
    return h[:, :L] if pad else h


def _directions(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C) -> (B, 4, L, C)``: row-major, column-major, and both reversed."""
    B, H, W, C = x.shape
    rows = x.reshape(B, H * W, C)
    cols = x.transpose(1, 2).reshape(B, H * W, C)
    fwd = torch.stack([rows, cols], dim=1)
    return torch.cat([fwd, fwd.flip(2)], dim=1)


def _merge(y: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """``(B, 4, L, C)`` in each direction's order -> ``(B, H, W, C)`` summed at each position."""
    B, _, L, C = y.shape
    back = y[:, 2:].flip(2)
    rows = y[:, 0] + back[:, 0]
    cols = y[:, 1] + back[:, 1]
    return rows.reshape(B, H, W, C) + cols.reshape(B, W, H, C).transpose(1, 2)


def cross_scan_chunked(
    x: torch.Tensor,
    x_proj_weight: torch.Tensor,
    dt_projs_weight: torch.Tensor,
    dt_projs_bias: torch.Tensor,
    A_logs: torch.Tensor,
    Ds: torch.Tensor,
    chunk: int = CHUNK,
) -> torch.Tensor:
    """SS2D's four-direction scan (arguments as :func:`~zeromamba.ops.cross_selective_scan`), any
    ``d_state``, differentiable. Returns ``(B, H, W, D)`` float32."""
    B, H, W, D = x.shape
    K, _, R = dt_projs_weight.shape
    N = A_logs.shape[1]
    L = H * W
    f32 = torch.float32
    xs = _directions(x)  # (B, K, L, D), input dtype: the projections run in it, as the official code's
    x_dbl = torch.matmul(xs, x_proj_weight.to(x.dtype).transpose(1, 2))  # (B, K, L, R + 2N)
    dt_low, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=3)
    delta = torch.matmul(dt_low, dt_projs_weight.to(x.dtype).transpose(1, 2)).to(f32)  # (B, K, L, D)
    dt = F.softplus(delta + dt_projs_bias.to(f32).view(1, K, 1, D))
    u = xs.to(f32)
    A = -torch.exp(A_logs.to(f32)).view(1, K, 1, D, N)
    Bs, Cs = Bs.to(f32), Cs.to(f32)
    if N == 1:
        log_a = dt * A[..., 0]
        b = dt * u * Bs
        h = log_space_scan(log_a.reshape(B * K, L, D), b.reshape(B * K, L, D), chunk).view(B, K, L, D)
        y = h * Cs
    else:
        log_a = dt.unsqueeze(-1) * A  # (B, K, L, D, N)
        b = (dt * u).unsqueeze(-1) * Bs.unsqueeze(3)
        h = log_space_scan(log_a.reshape(B * K, L, D * N), b.reshape(B * K, L, D * N), chunk)
        y = (h.view(B, K, L, D, N) * Cs.unsqueeze(3)).sum(-1)
    y = y + u * Ds.to(f32).view(1, K, 1, D)
    return _merge(y, H, W)
