"""Fused GPU kernels (Triton) for SS2D's scan with ``d_state == 1``: inference and training on CUDA
without mamba-ssm.

The pure-PyTorch path launches a few thousand small kernels per forward and makes about ten
passes over the scan's data; this kernel makes one. Each program owns one (image, direction,
channel block) and walks its direction's sequence in tiles of ``BLOCK_T`` positions: within a tile
the recurrence ``h = a * h + b`` is an associative scan (``tl.associative_scan``), across tiles the
state is carried. Positions come from index arithmetic (row-major, column-major, reversed), so no
cross-scan copies are made. Each direction writes its own output slab and the four are summed
afterwards, which keeps results deterministic (no atomics).

Like the CPU kernel it is checked against the PyTorch path on first use
(:mod:`zeromamba.ops.self_check`) and disabled (with a warning) if it does not agree or fails to
compile; without Triton it is unavailable.

Training runs through it too: the forward then keeps the states ``h`` and a backward kernel walks
each direction from its end, with the adjoint recurrence ``g_t = C_t dy_t + a_{t+1} g_{t+1}`` as the
same tiled associative scan, and writes the gradients of ``delta``, ``u``, ``B``, ``C`` and ``A``
(per-block partial sums where a gradient sums over channels or positions, so again no atomics).
Its gradients are checked against the PyTorch path before the first training step on a device.
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
    def _position(k, t, H, W, L):
        # the row-major position direction k visits at step t (0 row-major, 1 column-major, 2 and 3
        # the same reversed); steps outside [0, L) map to 0 and must be masked by the caller
        s = tl.where(k >= 2, L - 1 - t, t)
        p = tl.where((k % 2) == 1, (s % H) * W + s // H, s)
        return tl.where((t >= 0) & (t < L), p, 0)

    @triton.jit
    def _softplus(z):
        # log1p(exp(z)), accurate also where 1 + e rounds (Goldberg's log1p); z itself above 20
        e = tl.exp(tl.minimum(z, 20.0))
        one_e = 1.0 + e
        lp = tl.where(one_e == 1.0, e, tl.log(one_e) * (e / (one_e - 1.0)))
        return tl.where(z > 20.0, z, lp)

    @triton.jit
    def _ss2d_scan_dstate1_kernel(
        delta_ptr,  # (4, B, L, D) dt projection, bias not added
        bias_ptr,  # (4, D)
        u_ptr,  # (B, L, D)
        bs_ptr,  # (4, B, L)
        cs_ptr,  # (4, B, L)
        a_ptr,  # (4, D) A = -exp(A_logs)
        y_ptr,  # (4, B, L, D) per-direction outputs
        h_ptr,  # (4, B, L, D) the states, written when STORE_H (for the backward)
        n_batch,
        H,
        W,
        D,
        BLOCK_T: tl.constexpr,
        BLOCK_D: tl.constexpr,
        STORE_H: tl.constexpr,
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
            p = _position(k, t, H, W, L)
            m2 = mask_t[:, None] & mask_d[None, :]
            z = tl.load(delta_ptr + (seq + p)[:, None] * D + offs_d[None, :], mask=m2, other=0.0) + bias[None, :]
            dt = _softplus(z)
            uu = tl.load(u_ptr + (b * L + p)[:, None] * D + offs_d[None, :], mask=m2, other=0.0)
            bb = tl.load(bs_ptr + seq + p, mask=mask_t, other=0.0)
            cc = tl.load(cs_ptr + seq + p, mask=mask_t, other=0.0)
            a = tl.where(m2, tl.exp(dt * A[None, :]), 1.0)
            x = tl.where(m2, dt * bb[:, None] * uu, 0.0)
            a_run, x_run = tl.associative_scan((a, x), 0, _combine)
            hs = a_run * h[None, :] + x_run
            tl.store(y_ptr + (seq + p)[:, None] * D + offs_d[None, :], cc[:, None] * hs, mask=m2)
            if STORE_H:
                tl.store(h_ptr + (seq + p)[:, None] * D + offs_d[None, :], hs, mask=m2)
            last = tl.minimum(L - t0, BLOCK_T) - 1
            h = tl.sum(tl.where((rows == last)[:, None], hs, 0.0), axis=0)

    @triton.jit
    def _ss2d_scan_dstate1_bwd_kernel(
        delta_ptr,  # (4, B, L, D) as in the forward
        bias_ptr,  # (4, D)
        u_ptr,  # (B, L, D)
        bs_ptr,  # (4, B, L)
        cs_ptr,  # (4, B, L)
        a_ptr,  # (4, D)
        h_ptr,  # (4, B, L, D) the forward's states
        gy_ptr,  # (B, L, D) gradient of the summed output
        ddelta_ptr,  # (4, B, L, D) out: gradient of delta (and, summed, of the bias)
        du_ptr,  # (4, B, L, D) out: each direction's part of the gradient of u
        dbs_ptr,  # (n_dblocks, 4, B, L) out: each channel block's part of the gradient of B
        dcs_ptr,  # (n_dblocks, 4, B, L) out: the same for C
        dA_ptr,  # (4, B, D) out: each image's part of the gradient of A
        n_batch,
        H,
        W,
        D,
        BLOCK_T: tl.constexpr,
        BLOCK_D: tl.constexpr,
    ):
        # the adjoint of h_t = a_t h_{t-1} + b_t, y_t = c_t h_t is g_t = c_t gy_t + a_{t+1} g_{t+1}:
        # the same kind of recurrence run from the end, here tile by tile with the rows of a tile in
        # descending step order (so a forward associative scan along the rows runs it backwards)
        pid = tl.program_id(0)
        b = pid // 4
        k = pid % 4
        dblk = tl.program_id(1)
        L = H * W
        offs_d = dblk * BLOCK_D + tl.arange(0, BLOCK_D)
        mask_d = offs_d < D
        bias = tl.load(bias_ptr + k * D + offs_d, mask=mask_d, other=0.0)
        A = tl.load(a_ptr + k * D + offs_d, mask=mask_d, other=0.0)
        g_next = tl.zeros([BLOCK_D], dtype=tl.float32)  # g at the step after this tile's first row
        dA_acc = tl.zeros([BLOCK_D], dtype=tl.float32)
        seq = (k * n_batch + b) * L
        part = (dblk * 4 + k) * n_batch * L + b * L  # this block's slab of dbs / dcs
        rows = tl.arange(0, BLOCK_T)
        for i in range(0, tl.cdiv(L, BLOCK_T)):
            t_hi = L - 1 - i * BLOCK_T
            t = t_hi - rows
            mask_t = t >= 0
            m2 = mask_t[:, None] & mask_d[None, :]
            p = _position(k, t, H, W, L)
            rows_p = (seq + p)[:, None] * D + offs_d[None, :]
            z = tl.load(delta_ptr + rows_p, mask=m2, other=0.0) + bias[None, :]
            dt = _softplus(z)
            a = tl.exp(dt * A[None, :])
            uu = tl.load(u_ptr + (b * L + p)[:, None] * D + offs_d[None, :], mask=m2, other=0.0)
            bb = tl.load(bs_ptr + seq + p, mask=mask_t, other=0.0)
            cc = tl.load(cs_ptr + seq + p, mask=mask_t, other=0.0)
            gy = tl.load(gy_ptr + (b * L + p)[:, None] * D + offs_d[None, :], mask=m2, other=0.0)
            hs = tl.load(h_ptr + rows_p, mask=m2, other=0.0)
            # h_{t-1} (zero before the first step) and a_{t+1} (zero after the last)
            m_prev = m2 & (t >= 1)[:, None]
            p_prev = _position(k, t - 1, H, W, L)
            h_prev = tl.load(h_ptr + (seq + p_prev)[:, None] * D + offs_d[None, :], mask=m_prev, other=0.0)
            m_next = m2 & (t + 1 < L)[:, None]
            p_next = _position(k, t + 1, H, W, L)
            z_next = tl.load(delta_ptr + (seq + p_next)[:, None] * D + offs_d[None, :], mask=m_next, other=0.0)
            a_next = tl.where(m_next, tl.exp(_softplus(z_next + bias[None, :]) * A[None, :]), 0.0)
            # rows past the first step (t < 0) come last along the rows: neutral, they change nothing
            a_next = tl.where(m2, a_next, 1.0)
            x = tl.where(m2, cc[:, None] * gy, 0.0)
            a_run, x_run = tl.associative_scan((a_next, x), 0, _combine)
            g = a_run * g_next[None, :] + x_run
            last = tl.minimum(t_hi + 1, BLOCK_T) - 1
            g_next = tl.sum(tl.where((rows == last)[:, None], g, 0.0), axis=0)
            da = g * h_prev
            ddt = da * a * A[None, :] + g * bb[:, None] * uu
            dz = ddt * tl.sigmoid(z)
            tl.store(ddelta_ptr + rows_p, dz, mask=m2)
            tl.store(du_ptr + rows_p, tl.where(m2, g * dt * bb[:, None], 0.0), mask=m2)
            dA_acc += tl.sum(tl.where(m2, da * a * dt, 0.0), axis=0)
            tl.store(dbs_ptr + part + p, tl.sum(tl.where(m2, g * dt * uu, 0.0), axis=1), mask=mask_t)
            tl.store(dcs_ptr + part + p, tl.sum(tl.where(m2, gy * hs, 0.0), axis=1), mask=mask_t)
        tl.store(dA_ptr + (k * n_batch + b) * D + offs_d, dA_acc, mask=mask_d)


_BLOCK_T = 64


def _block_d(D: int) -> int:
    return 32 if D >= 32 else triton.next_power_of_2(D)


def _launch(delta, bias, u, Bs, Cs, A, H: int, W: int, store_h: bool = False):
    K, B, L, D = delta.shape
    y = torch.empty_like(delta)
    h = torch.empty_like(delta) if store_h else y  # y stands in for the unused pointer
    block_d = _block_d(D)
    grid = (B * K, triton.cdiv(D, block_d))
    _ss2d_scan_dstate1_kernel[grid](
        delta, bias, u, Bs, Cs, A, y, h, B, H, W, D, BLOCK_T=_BLOCK_T, BLOCK_D=block_d, STORE_H=store_h
    )
    return (y, h) if store_h else y


class _TritonScan(torch.autograd.Function):
    """The d_state-1 scan core, ``sum_k C_k h_k``, with both directions in Triton.

    Inputs are :class:`~zeromamba.ops.ss2d_inputs.DState1Inputs`' ``delta, bias, u, Bs, Cs, A``;
    the projections before it and the skip term after it are ordinary differentiable PyTorch.
    """

    @staticmethod
    def forward(ctx, delta, bias, u, Bs, Cs, A, H: int, W: int):
        ys, h = _launch(delta, bias, u, Bs, Cs, A, H, W, store_h=True)
        ctx.save_for_backward(delta, bias, u, Bs, Cs, A, h)
        ctx.hw = (H, W)
        return ys.sum(0)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gy):
        delta, bias, u, Bs, Cs, A, h = ctx.saved_tensors
        H, W = ctx.hw
        K, B, L, D = delta.shape
        block_d = _block_d(D)
        n_dblocks = triton.cdiv(D, block_d)
        ddelta = torch.empty_like(delta)
        du = torch.empty_like(delta)
        dbs = torch.empty(n_dblocks, K, B, L, device=delta.device, dtype=torch.float32)
        dcs = torch.empty_like(dbs)
        dA = torch.empty(K, B, D, device=delta.device, dtype=torch.float32)
        grid = (B * K, n_dblocks)
        _ss2d_scan_dstate1_bwd_kernel[grid](
            delta, bias, u, Bs, Cs, A, h, gy.float().contiguous(), ddelta, du, dbs, dcs, dA,
            B, H, W, D, BLOCK_T=_BLOCK_T, BLOCK_D=block_d,
        )  # fmt: skip
        du = du.sum(0).view(u.shape)
        return ddelta, ddelta.sum((1, 2)), du, dbs.sum(0), dcs.sum(0), dA.sum(1), None, None


def cross_scan_fused_triton(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds) -> torch.Tensor:
    """:func:`~zeromamba.ops.cross_selective_scan` through the Triton kernels (``d_state == 1``).

    Differentiable: with autograd the forward keeps the states and a Triton backward kernel runs
    the adjoint recurrence; the projections around the scan are differentiated by PyTorch.
    """
    B, H, W, D = x.shape
    params = (x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    inp = dstate1_inputs(*params)
    if torch.is_grad_enabled() and any(t.requires_grad for t in params):
        y = _TritonScan.apply(inp.delta, inp.bias, inp.u, inp.Bs, inp.Cs, inp.A, H, W)
    else:
        y = _launch(inp.delta, inp.bias, inp.u, inp.Bs, inp.Cs, inp.A, H, W).sum(0)
    y = torch.addcmul(y, inp.u.view(B, H * W, D), inp.Dsum)
    return y.view(B, H, W, D)


def fused_triton_available(device: torch.device | None = None, gradients: bool = False) -> bool:
    """True when Triton is importable and the kernel passed its self-check on ``device``
    (``gradients``: the backward kernel's too)."""
    if triton is None:
        return False
    device = torch.device(device if device is not None else "cuda")
    if self_check("Triton", cross_scan_fused_triton, device, _CHECK_SHAPE) is not None:
        return False
    return not gradients or self_check("Triton", cross_scan_fused_triton, device, _CHECK_SHAPE, gradients=True) is None
