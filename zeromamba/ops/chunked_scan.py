"""SS2D's cross selective scan with graph-friendly ops only: the ``"chunked"`` backend.

What ONNX, TorchScript tracing, ``torch.export`` (and ``torch.compile`` with gradients) need: no C
extension, no Triton, no in-place scratch buffers, no Python loop whose length depends on the data.
The four scan orders are one static gather in and one out, the projections are batched matmuls, and
the recurrence ``h_t = a_t h_{t-1} + b_t`` (``a_t = exp(dt_t A) in (0, 1]``) is a hierarchical scan
built from ``cumsum`` and ``exp`` (:func:`log_space_scan`), whose depth is ``log_T(L)``: about
five levels for the 12544 positions of a 448 px image's first stage, each a handful of whole-tensor
ops, so the graph stays small and every op runs on a large slab.

Within a chunk of ``T`` positions with ``c_t = sum_{s<=t} log a_s`` (``c`` decreases, ``c <= 0``)
and the state ``g`` entering the chunk::

    h_t = exp(c_t) g + sum_{s<=t} exp(c_t - c_s) b_s = (exp(m) g + cumsum_s(e_s b_s)) / e_t,   e = exp(m - c)

with ``m = c_{T-1} / 2`` the chunk's mid log-decay, so every exponent lies in
``[-|c_{T-1}| / 2, |c_{T-1}| / 2]``: one ``exp`` per element, and a division. Each step's log-decay
is clamped at :data:`LOG_DECAY_FLOOR` (``-20``: a decay below ``exp(-20) = 2e-9`` becomes ``2e-9``,
which changes ``h`` by less than float32 resolves), so with ``T = 8`` no exponent passes ``80`` and
nothing overflows (float32 ends at ``exp(88)``). The chunks' end states follow the same recurrence
one level up (decay ``exp(c_{T-1})``, clamped the same way), which gives each chunk's ``g``.
Everything runs in float32, as the other backends do.

:func:`softplus` is ``F.softplus`` in five elementwise ops: ONNX Runtime's ``Softplus`` and the
``Where`` of torch's threshold cost five times as much (measured at the first stage's shape).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["CHUNK", "LOG_DECAY_FLOOR", "cross_scan_chunked", "log_space_scan", "softplus"]

#: each step's log-decay is clamped here; exp(-20) = 2e-9 is below float32's resolution of a state
LOG_DECAY_FLOOR = -20.0
#: positions per chunk: the largest with CHUNK * |LOG_DECAY_FLOOR| / 2 <= 80 (no float32 overflow), and the
#: fastest in ONNX Runtime: the cross scan alone at ZeroMamba-S's first stage at 448 took 108 / 79 / 74 ms
#: with chunks 2 / 4 / 8 (benchmarks/chunk_choice.py, 2 threads, quiet; results/chunk_choice_2026-12-02.json)
CHUNK = 8


def softplus(x: torch.Tensor) -> torch.Tensor:
    """``log(1 + exp(x))``, as ``F.softplus`` (threshold 20): ``max(x, log1p(exp(min(x, 20))))``.

    Above 20, ``log1p(exp(20))`` is below ``x``, so ``x`` itself is returned, as torch does."""
    return torch.maximum(x, torch.log1p(torch.exp(torch.clamp(x, max=20.0))))


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
    c = torch.cumsum(log_a.reshape(P, nc, T, Q), dim=2)  # (P, nc, T, Q), c <= 0, decreasing along T
    c_end = c[:, :, T - 1]  # (P, nc, Q)
    mid = 0.5 * c_end
    e = torch.exp(mid.unsqueeze(2) - c)
    s = torch.cumsum(e * b.reshape(P, nc, T, Q), dim=2)
    if nc > 1:
        # each chunk's end state without what entered it, then the end states one level up
        local_end = s[:, :, T - 1] / e[:, :, T - 1]
        ends = log_space_scan(c_end, local_end, chunk)
        entering = F.pad(ends[:, : nc - 1], (0, 0, 1, 0))  # (P, nc, Q), zero before the first chunk
        s = s + (torch.exp(mid) * entering).unsqueeze(2)
    h = (s / e).reshape(P, nc * T, Q)
    return h[:, :L] if pad else h


def _scan_orders(H: int, W: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The four scan orders (as :func:`~zeromamba.ops.cross_scan.scan_order`, built from ``arange`` so
    that a graph traces them and folds them into constants) as one gather each way.

    ``read`` ``(4L,)``: the position each step of the four scans reads (row-major, column-major, both
    reversed); ``back`` ``(4L,)``: for each direction and position, the flat index of the step that
    read it, so that gathering with it puts every direction back in row-major order. One ``Gather``
    replaces the transpose, stack, flip and concatenation (and their inverses): fewer and cheaper
    passes in ONNX Runtime.
    """
    L = H * W
    pos = torch.arange(L, device=device)
    cols = pos.view(H, W).t().reshape(L)  # step j of the column-major scan reads position cols[j]
    cols_back = pos.view(W, H).t().reshape(L)  # position p is read at step cols_back[p]
    read = torch.cat([pos, cols, pos.flip(0), cols.flip(0)])
    back = torch.cat([pos, cols_back + L, (L - 1 - pos) + 2 * L, (L - 1 - cols_back) + 3 * L])
    return read, back


def _directions(x: torch.Tensor, read: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C) -> (B, 4, L, C)``: row-major, column-major, and both reversed."""
    B, H, W, C = x.shape
    return x.reshape(B, H * W, C).index_select(1, read).view(B, 4, H * W, C)


def _merge(y: torch.Tensor, back: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """``(B, 4, L, C)`` in each direction's order -> ``(B, H, W, C)`` summed at each position."""
    B, _, L, C = y.shape
    return y.reshape(B, 4 * L, C).index_select(1, back).view(B, 4, L, C).sum(1).view(B, H, W, C)


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
    read, back = _scan_orders(H, W, x.device)
    xs = _directions(x, read)  # (B, K, L, D), input dtype: the projections run in it, as the official code's
    x_dbl = torch.matmul(xs, x_proj_weight.to(x.dtype).transpose(1, 2))  # (B, K, L, R + 2N)
    dt_low, Bs, Cs = torch.split(x_dbl, [R, N, N], dim=3)
    delta = torch.matmul(dt_low, dt_projs_weight.to(x.dtype).transpose(1, 2)).to(f32)  # (B, K, L, D)
    dt = softplus(delta + dt_projs_bias.to(f32).view(1, K, 1, D))
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
    # the skip term after the merge: each direction's u, put back in row-major order, is x itself, so
    # sum_k D_k u_k = x * sum_k D_k (one pass over (B, L, D) instead of two over (B, 4, L, D))
    skip = x.to(f32) * Ds.to(f32).view(K, D).sum(0)
    return _merge(y, back, H, W) + skip
