"""A fused GPU kernel (Triton) for SS2D's scan with ``d_state == 1``: inference on CUDA without
mamba-ssm.

The pure-PyTorch path launches a few thousand small kernels per forward and makes about ten
passes over the scan's data; this kernel makes one. Each program owns one (image, direction,
channel block) and walks its direction's sequence in tiles of ``BLOCK_T`` positions: within a tile
the recurrence ``h = a * h + b`` is an associative scan (``tl.associative_scan``), across tiles the
state is carried. Positions come from index arithmetic (row-major, column-major, reversed), so no
cross-scan copies are made. Each direction writes its own output slab and the four are summed
afterwards, which keeps results deterministic (no atomics).

Like the CPU kernel it is checked against the PyTorch path on first use
(:mod:`zeromamba.ops.self_check`) and disabled (with a warning) if it does not agree or fails to
compile; without Triton it is unavailable. Forward only.
"""

from __future__ import annotations

import torch

from .self_check import self_check
from .ss2d_inputs import dstate1_inputs

__all__ = ["cross_scan_fused_triton", "fused_triton_available"]

_CHECK_SHAPE = (2, 9, 70, 40, 3)  # (B, H, W, D, dt_rank) of the self-check: several tiles, a partial channel block

try:  # Triton is optional (it ships with CUDA builds of PyTorch on Linux)
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - depends on the install
    triton = None


if triton is not None:

    @triton.jit
    def _combine(a1, b1, a2, b2):
        # (a1, b1) then (a2, b2): h -> a2 * (a1 * h + b1) + b2
        return a1 * a2, a2 * b1 + b2

    @triton.jit
    def _ss2d_scan_dstate1_kernel(
        delta_ptr,  # (4, B, L, D) dt projection, bias not added
        bias_ptr,  # (4, D)
        u_ptr,  # (B, L, D)
        bs_ptr,  # (4, B, L)
        cs_ptr,  # (4, B, L)
        a_ptr,  # (4, D) A = -exp(A_logs)
        y_ptr,  # (4, B, L, D) per-direction outputs
        n_batch,
        H,
        W,
        D,
        BLOCK_T: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        pid = tl.program_id(0)
        b = pid // 4
        k = pid % 4
        L = H * W
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        bias = tl.load(bias_ptr + k * D + offs_d, mask=mask_d, other=0.0)
        A = tl.load(a_ptr + k * D + offs_d, mask=mask_d, other=0.0)
        h = tl.zeros([BLOCK_D], dtype=tl.float32)
        seq = (k * n_batch + b) * L
        rows = tl.arange(0, BLOCK_T)
        for t0 in range(0, L, BLOCK_T):
            t = t0 + rows
            mask_t = t < L
            s = tl.where(k >= 2, L - 1 - t, t)  # directions 2 and 3 run backwards
            p = tl.where((k % 2) == 1, (s % H) * W + s // H, s)  # 1 and 3 are column-major
            p = tl.where(mask_t, p, 0)
            m2 = mask_t[:, None] & mask_d[None, :]
            z = tl.load(delta_ptr + (seq + p)[:, None] * D + offs_d[None, :], mask=m2, other=0.0) + bias[None, :]
            e = tl.exp(tl.minimum(z, 20.0))
            one_e = 1.0 + e
            # softplus = log1p(exp(z)), accurate also where 1 + e rounds (Goldberg's log1p)
            lp = tl.where(one_e == 1.0, e, tl.log(one_e) * (e / (one_e - 1.0)))
            dt = tl.where(z > 20.0, z, lp)
            uu = tl.load(u_ptr + (b * L + p)[:, None] * D + offs_d[None, :], mask=m2, other=0.0)
            bb = tl.load(bs_ptr + seq + p, mask=mask_t, other=0.0)
            cc = tl.load(cs_ptr + seq + p, mask=mask_t, other=0.0)
            a = tl.where(m2, tl.exp(dt * A[None, :]), 1.0)
            x = tl.where(m2, dt * bb[:, None] * uu, 0.0)
            a_run, x_run = tl.associative_scan((a, x), 0, _combine)
            hs = a_run * h[None, :] + x_run
            tl.store(y_ptr + (seq + p)[:, None] * D + offs_d[None, :], cc[:, None] * hs, mask=m2)
            last = tl.minimum(L - t0, BLOCK_T) - 1
            h = tl.sum(tl.where((rows == last)[:, None], hs, 0.0), axis=0)


def _launch(delta, bias, u, Bs, Cs, A, H: int, W: int) -> torch.Tensor:
    K, B, L, D = delta.shape
    y = torch.empty_like(delta)
    block_d = 32 if D >= 32 else triton.next_power_of_2(D)
    grid = (B * K, triton.cdiv(D, block_d))
    _ss2d_scan_dstate1_kernel[grid](delta, bias, u, Bs, Cs, A, y, B, H, W, D, BLOCK_T=64, BLOCK_D=block_d)
    return y


def cross_scan_fused_triton(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds) -> torch.Tensor:
    """:func:`~zeromamba.ops.cross_selective_scan` through the Triton kernel (``d_state == 1``)."""
    B, H, W, D = x.shape
    inp = dstate1_inputs(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    ys = _launch(inp.delta, inp.bias, inp.u, inp.Bs, inp.Cs, inp.A, H, W)
    y = torch.addcmul(ys.sum(0), inp.u.view(B, H * W, D), inp.Dsum)
    return y.view(B, H, W, D)


def fused_triton_available(device: torch.device | None = None) -> bool:
    """True when Triton is importable and the kernel passed its self-check on ``device``."""
    if triton is None:
        return False
    device = torch.device(device if device is not None else "cuda")
    return self_check("Triton", cross_scan_fused_triton, device, _CHECK_SHAPE) is None
