"""The Mamba mixer's operations as Triton kernels: CUDA inference without mamba-ssm / causal-conv1d.

* the selective scan for any state size: one program per (sequence, channel block) walks the
  sequence (forwards or backwards) with the ``(BLOCK_E, N)`` state in registers; softplus, the
  skip term and the SiLU gate are applied in the same pass;
* the depthwise causal conv1d: one program per (sequence, position block, channel block), the
  ``K`` taps unrolled, SiLU fused.

Both read token-major ``(batch, L, E)`` tensors through their row strides (views into the
projections' outputs are fine) and write contiguous float32. Forward only. Without a GPU the same
kernel code runs under ``TRITON_INTERPRET=1`` (tests/ops/test_mixer_triton.py); on CUDA a first-use
self-check against the PyTorch path guards :func:`mixer_triton_available`.
"""

from __future__ import annotations

import logging
import os
import threading

import torch

from .mixer_torch import causal_conv1d_torch, selective_scan_torch

__all__ = ["causal_conv1d_triton", "mixer_triton_available", "mixer_triton_interpreted", "selective_scan_triton"]

log = logging.getLogger(__name__)

try:  # Triton is optional (it ships with CUDA builds of PyTorch on Linux)
    import triton
    import triton.language as tl
except Exception:  # pragma: no cover - depends on the install
    triton = None

TOLERANCE = 1e-5
_lock = threading.Lock()
_verdicts: dict[str, str | None] = {}  # device -> None, or why the kernels are not used there


if triton is not None:

    @triton.jit
    def _softplus(v):
        # log(1 + e^v) = max(v, 0) + log(1 + w), w = e^-|v|; written with the correction that keeps
        # log(1 + w) accurate where 1 + w rounds (Goldberg's log1p)
        w = tl.exp(-tl.abs(v))
        one_w = 1.0 + w
        exact = one_w == 1.0
        lp = tl.where(exact, w, tl.log(one_w) * (w / tl.where(exact, 1.0, one_w - 1.0)))
        return tl.maximum(v, 0.0) + lp

    @triton.jit
    def _scan_kernel(
        x_ptr,
        dt_ptr,
        bias_ptr,
        a_ptr,  # (E, N)
        b_ptr,
        c_ptr,
        d_ptr,
        z_ptr,
        y_ptr,
        L,
        E,
        N,
        x_stride,
        dt_stride,
        bc_stride,
        z_stride,
        HAS_BIAS: tl.constexpr,
        HAS_Z: tl.constexpr,
        SOFTPLUS: tl.constexpr,
        REVERSE: tl.constexpr,
        BLOCK_E: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        seq = tl.program_id(0)
        offs_e = tl.program_id(1) * BLOCK_E + tl.arange(0, BLOCK_E)
        offs_n = tl.arange(0, BLOCK_N)
        mask_e = offs_e < E
        mask_n = offs_n < N
        mask_en = mask_e[:, None] & mask_n[None, :]
        # masked (channel, state) pairs get A = 0 and B = C = 0: their state stays 0 and adds nothing
        A = tl.load(a_ptr + offs_e[:, None] * N + offs_n[None, :], mask=mask_en, other=0.0)
        skip = tl.load(d_ptr + offs_e, mask=mask_e, other=0.0)
        if HAS_BIAS:
            bias = tl.load(bias_ptr + offs_e, mask=mask_e, other=0.0)
        h = tl.zeros([BLOCK_E, BLOCK_N], dtype=tl.float32)
        for step in range(0, L):
            if REVERSE:
                t = L - 1 - step
            else:
                t = step
            row = seq * L + t
            dt = tl.load(dt_ptr + row * dt_stride + offs_e, mask=mask_e, other=0.0)
            if HAS_BIAS:
                dt = dt + bias
            if SOFTPLUS:
                dt = _softplus(dt)
            dt = tl.where(mask_e, dt, 0.0)
            x = tl.load(x_ptr + row * x_stride + offs_e, mask=mask_e, other=0.0)
            Bt = tl.load(b_ptr + row * bc_stride + offs_n, mask=mask_n, other=0.0)
            Ct = tl.load(c_ptr + row * bc_stride + offs_n, mask=mask_n, other=0.0)
            h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * Bt[None, :]
            y = tl.sum(h * Ct[None, :], axis=1) + skip * x
            if HAS_Z:
                z = tl.load(z_ptr + row * z_stride + offs_e, mask=mask_e, other=0.0)
                y = y * (z / (1.0 + tl.exp(-z)))
            tl.store(y_ptr + row * E + offs_e, y, mask=mask_e)

    @triton.jit
    def _conv_kernel(
        x_ptr,
        w_ptr,  # (E, K)
        bias_ptr,
        y_ptr,
        L,
        E,
        x_stride,
        K: tl.constexpr,
        HAS_BIAS: tl.constexpr,
        SILU: tl.constexpr,
        REVERSE: tl.constexpr,
        BLOCK_L: tl.constexpr,
        BLOCK_E: tl.constexpr,
    ):
        seq = tl.program_id(0)
        offs_t = tl.program_id(1) * BLOCK_L + tl.arange(0, BLOCK_L)
        offs_e = tl.program_id(2) * BLOCK_E + tl.arange(0, BLOCK_E)
        mask_t = offs_t < L
        mask_e = offs_e < E
        acc = tl.zeros([BLOCK_L, BLOCK_E], dtype=tl.float32)
        if HAS_BIAS:
            acc += tl.load(bias_ptr + offs_e, mask=mask_e, other=0.0)[None, :]
        for k in tl.static_range(K):
            # forward: tap k reads position t - (K - 1 - k); reverse: t + (K - 1 - k)
            if REVERSE:
                src = offs_t + (K - 1 - k)
            else:
                src = offs_t - (K - 1 - k)
            ok = mask_t & (src >= 0) & (src < L)
            src = tl.where(ok, src, 0)
            xv = tl.load(
                x_ptr + (seq * L + src)[:, None] * x_stride + offs_e[None, :],
                mask=ok[:, None] & mask_e[None, :],
                other=0.0,
            )
            wk = tl.load(w_ptr + offs_e * K + k, mask=mask_e, other=0.0)
            acc += xv * wk[None, :]
        if SILU:
            acc = acc / (1.0 + tl.exp(-acc))
        tl.store(y_ptr + (seq * L + offs_t)[:, None] * E + offs_e[None, :], acc, mask=mask_t[:, None] & mask_e[None, :])


def _rows(t: torch.Tensor) -> torch.Tensor:
    t = t.float()
    if t.stride(-1) != 1 or t.stride(0) != t.shape[1] * t.stride(1):
        t = t.contiguous()
    return t


def _require_triton() -> None:
    if triton is None:
        raise RuntimeError("Triton is not installed")


def mixer_triton_interpreted() -> bool:
    """True when Triton's interpreter is on (``TRITON_INTERPRET=1``): the kernels then run on CPU
    tensors, which is how they are tested without a GPU."""
    return triton is not None and os.environ.get("TRITON_INTERPRET", "") == "1"


def selective_scan_triton(
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
    """:func:`~zeromamba.ops.mixer_selective_scan` through the Triton kernel (forward only)."""
    _require_triton()
    batch, L, E = x.shape
    N = A.shape[1]
    x, dt, B, C = _rows(x), _rows(dt), _rows(B), _rows(C)
    if B.stride(1) != C.stride(1):
        B, C = B.contiguous(), C.contiguous()
    z = _rows(z) if z is not None else None
    A = A.float().contiguous()
    D = (D.float() if D is not None else x.new_zeros(E)).contiguous()
    bias = dt_bias.float().contiguous() if dt_bias is not None else None
    y = torch.empty(batch, L, E, dtype=torch.float32, device=x.device)
    block_n = triton.next_power_of_2(N)
    block_e = max(1, min(triton.next_power_of_2(E), max(16, 2048 // block_n)))
    grid = (batch, triton.cdiv(E, block_e))
    _scan_kernel[grid](
        x, dt, bias if bias is not None else D, A, B, C, D, z if z is not None else x, y,
        L, E, N, x.stride(1), dt.stride(1), B.stride(1), z.stride(1) if z is not None else 0,
        HAS_BIAS=bias is not None, HAS_Z=z is not None, SOFTPLUS=softplus, REVERSE=reverse,
        BLOCK_E=block_e, BLOCK_N=block_n,
    )  # fmt: skip
    return y


def causal_conv1d_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    reverse: bool = False,
) -> torch.Tensor:
    """:func:`~zeromamba.ops.mixer_causal_conv1d` through the Triton kernel (forward only)."""
    _require_triton()
    if activation not in (None, "silu"):
        raise ValueError(f"activation must be None or 'silu' (got {activation!r})")
    batch, L, E = x.shape
    x = _rows(x)
    w = weight.reshape(E, -1).float().contiguous()
    b = bias.float().contiguous() if bias is not None else None
    y = torch.empty(batch, L, E, dtype=torch.float32, device=x.device)
    block_l, block_e = 32, min(64, triton.next_power_of_2(E))
    grid = (batch, triton.cdiv(L, block_l), triton.cdiv(E, block_e))
    _conv_kernel[grid](
        x, w, b if b is not None else w, y, L, E, x.stride(1),
        K=w.shape[1], HAS_BIAS=b is not None, SILU=activation == "silu", REVERSE=reverse,
        BLOCK_L=block_l, BLOCK_E=block_e,
    )  # fmt: skip
    return y


def _check(device: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    batch, L, E, N, K = 2, 37, 45, 5, 4
    x = torch.randn(batch, L, 2 * E, generator=g)[..., :E]
    dt = torch.randn(batch, L, E, generator=g) * 0.5
    A = -torch.rand(E, N, generator=g) * 2
    bc = torch.randn(batch, L, 3 * N, generator=g)
    D, bias, z = torch.randn(E, generator=g), torch.randn(E, generator=g), torch.randn(batch, L, E, generator=g)
    w = torch.randn(E, 1, K, generator=g) * 0.5
    cpu = (x, dt, A, bc[..., N : 2 * N], bc[..., 2 * N :], D, z, bias)
    dev = tuple(t.to(device) for t in cpu)
    with torch.no_grad():
        for reverse in (False, True):
            pairs = [
                (selective_scan_triton(*dev, reverse=reverse), selective_scan_torch(*cpu, reverse=reverse)),
                (
                    causal_conv1d_triton(dev[0], w.to(device), dev[7], "silu", reverse),
                    causal_conv1d_torch(x, w, bias, "silu", reverse),
                ),
            ]
            for got, want in pairs:
                err = ((got.cpu() - want).abs().max() / want.abs().max()).item()
                if not err < TOLERANCE:
                    raise RuntimeError(f"relative error {err:.2e}")


def mixer_triton_available(device: torch.device | str | None = None) -> bool:
    """True when Triton imports and both kernels agreed with the PyTorch path on ``device`` (CUDA)."""
    if triton is None:
        return False
    device = torch.device(device if device is not None else "cuda")
    key = str(device)
    with _lock:
        if key in _verdicts:
            return _verdicts[key] is None
    try:
        _check(device)
        verdict = None
    except Exception as e:  # compile or launch error, or a wrong result
        verdict = str(e)
        log.warning("zeromamba: Triton Mamba mixer kernels disabled on %s, using the PyTorch path: %s", device, e)
    with _lock:
        _verdicts.setdefault(key, verdict)
        return _verdicts[key] is None
