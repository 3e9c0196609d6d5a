"""Selective scan (the S6 recurrence) in three flavours.

* :func:`selective_scan_reference` -- the plain sequential float32 recurrence, written to be obviously
  right. Tests compare everything else against it.
* :func:`selective_scan_chunked` -- a fast, differentiable pure-PyTorch version: a two-level scan
  whose Python step count is about ``2 * sqrt(L)`` instead of ``L``.
* :func:`selective_scan_mamba` -- mamba-ssm's CUDA kernel, imported lazily (it cannot even be
  imported without its compiled extension).

All three share mamba-ssm's signature and layout: ``u, delta`` are ``(batch, dim, L)``, ``A`` is
``(dim, N)``, ``B, C`` are ``(batch, G, N, L)`` with ``dim`` divisible by ``G`` (one group of channels
shares one B/C), ``D`` and ``delta_bias`` are ``(dim,)``. The result is float32 ``(batch, dim, L)``.

The recurrence, per channel ``d`` and state ``n``::

    dt_t = softplus(delta_t + delta_bias)          (softplus only when delta_softplus)
    h_t  = exp(dt_t * A[d, n]) * h_{t-1} + dt_t * B_t[n] * u_t
    y_t  = sum_n C_t[n] * h_t[n] + D[d] * u_t
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

__all__ = [
    "selective_scan_reference",
    "selective_scan_chunked",
    "selective_scan_mamba",
    "linear_recurrence",
    "two_level_scan",
    "chunk_layout",
    "mamba_ssm_available",
]


def _prepare(u, delta, A, B, C, D, delta_bias, delta_softplus):
    u = u.float()
    delta = delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    dim = u.shape[1]
    groups = B.shape[1]
    # expand the per-group B/C to per-channel: (batch, dim, N, L)
    Bc = B.float().repeat_interleave(dim // groups, dim=1)
    Cc = C.float().repeat_interleave(dim // groups, dim=1)
    return u, delta, A.float(), Bc, Cc, (None if D is None else D.float())


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The sequential float32 recurrence, one position at a time. Slow; the ground truth."""
    u, dt, A, Bc, Cc, D = _prepare(u, delta, A, B, C, D, delta_bias, delta_softplus)
    batch, dim, length = u.shape
    h = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        dA = torch.exp(dt[:, :, t, None] * A)
        h = dA * h + (dt[:, :, t] * u[:, :, t])[..., None] * Bc[:, :, :, t]
        ys.append((h * Cc[:, :, :, t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + D[:, None] * u
    return y


def linear_recurrence(a: torch.Tensor, b: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` (``h_{-1} = 0``) along ``dim``, differentiable.

    Two-level scan: the sequence is cut into chunks of ``T ~ sqrt(L)``; a loop over the ``T``
    in-chunk steps runs all chunks at once, a loop over the chunks carries the state across, and
    one vectorised pass adds the carried state (scaled by the in-chunk running product of ``a``).
    That is about ``2 * sqrt(L)`` Python steps, each on a contiguous slab, instead of ``L``.
    ``a`` must be finite and is expected in ``[0, 1]`` (a decay), which keeps every term bounded.
    """
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    a = a.movedim(dim, 0)
    b = b.movedim(dim, 0)
    length = a.shape[0]
    if length <= 32:
        return _sequential(a, b).movedim(0, dim)
    chunk, n_chunks = chunk_layout(length)
    pad = n_chunks * chunk - length
    if pad:
        # padding goes at the end: a causal scan never lets it reach a real position
        a = torch.cat([a, a.new_zeros(pad, *a.shape[1:])], dim=0)
        b = torch.cat([b, b.new_zeros(pad, *b.shape[1:])], dim=0)
    rest = a.shape[1:]
    # (n_chunks, chunk, ...) -> (1, chunk, n_chunks, ...): each in-chunk step is one contiguous slab
    a = a.reshape(n_chunks, chunk, *rest).transpose(0, 1).contiguous().unsqueeze(0)
    b = b.reshape(n_chunks, chunk, *rest).transpose(0, 1).contiguous().unsqueeze(0)
    h = two_level_scan(a, b)[0]
    h = h.transpose(0, 1).reshape(n_chunks * chunk, *rest)[:length]
    return h.movedim(0, dim)


def chunk_layout(length: int) -> tuple[int, int]:
    """``(chunk, n_chunks)`` for a two-level scan of ``length`` steps: both about ``sqrt(length)``."""
    chunk = max(1, int(math.ceil(math.sqrt(length))))
    return chunk, int(math.ceil(length / chunk))


def two_level_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The recurrence on tensors laid out ``(batch, chunk, n_chunks, ...)``.

    Sequence position ``t = c * chunk + j`` lives at ``[:, j, c]``. Returns ``h`` in the same
    layout. Without autograd it works in place: ``b`` becomes ``h`` and ``a`` is overwritten.
    """
    if not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
        return _two_level_scan_inplace(a, b)
    return _TwoLevelScan.apply(a, b)


class _TwoLevelScan(torch.autograd.Function):
    """Autograd for the recurrence without a graph node per step.

    ``h_t = a_t h_{t-1} + b_t`` has the adjoint ``g_t = dL/dh_t + a_{t+1} g_{t+1}`` -- the same
    recurrence run backwards -- and then ``dL/db_t = g_t``, ``dL/da_t = g_t h_{t-1}``. Both
    directions use the in-place two-level scan; only ``a`` and ``h`` are kept for the backward.
    """

    @staticmethod
    def forward(ctx, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        h = _two_level_scan_inplace(a.clone(), b.clone())
        ctx.save_for_backward(a, h)
        return h

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, h = ctx.saved_tensors
        reverse = (1, 2)  # flipping both chunk axes reverses the sequence
        g = _two_level_scan_inplace(_shift(a, 1).flip(reverse), grad_h.flip(reverse)).flip(reverse)
        return g * _shift(h, -1), g


def _shift(x: torch.Tensor, step: int) -> torch.Tensor:
    """``out_t = x_{t + step}`` (``step`` is +1 or -1) in the chunked layout, zero past either end."""
    out = torch.empty_like(x)
    if step == 1:
        out[:, :-1] = x[:, 1:]
        out[:, -1, :-1] = x[:, 0, 1:]
        out[:, -1, -1] = 0
    else:
        out[:, 1:] = x[:, :-1]
        out[:, 0, 1:] = x[:, -1, :-1]
        out[:, 0, 0] = 0
    return out


def _two_level_scan_inplace(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    hs, ps = b.unbind(1), a.unbind(1)
    for j in range(1, len(hs)):
        hs[j].addcmul_(ps[j], hs[j - 1])  # in-chunk state
        ps[j].mul_(ps[j - 1])  # a becomes its running product within the chunk
    n_chunks = b.shape[2]
    if n_chunks == 1:
        return b
    last_h, last_p = hs[-1], ps[-1]  # (batch, n_chunks, ...)
    carry = b.new_zeros(b.shape[0], *b.shape[2:])  # state entering each chunk
    cs, lh, lp = carry.unbind(1), last_h.unbind(1), last_p.unbind(1)
    for c in range(1, n_chunks):
        torch.addcmul(lh[c - 1], lp[c - 1], cs[c - 1], out=cs[c])
    return b.addcmul_(a, carry.unsqueeze(1))


def _sequential(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Plain loop along dim 0. In place (one op a step) when no gradient is needed."""
    if not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad)):
        h = b.clone()
        hs, as_ = h.unbind(0), a.unbind(0)
        for t in range(1, len(hs)):
            hs[t].addcmul_(as_[t], hs[t - 1])
        return h
    bs, as_ = b.unbind(0), a.unbind(0)
    hs = [bs[0]]
    for t in range(1, len(bs)):
        hs.append(torch.addcmul(bs[t], as_[t], hs[-1]))
    return torch.stack(hs, dim=0)


def selective_scan_chunked(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """Same result as :func:`selective_scan_reference`, computed with :func:`linear_recurrence`."""
    u, dt, A, Bc, Cc, D = _prepare(u, delta, A, B, C, D, delta_bias, delta_softplus)
    # (batch, dim, N, L)
    dA = torch.exp(dt[:, :, None, :] * A[None, :, :, None])
    dBu = (dt * u)[:, :, None, :] * Bc
    h = linear_recurrence(dA, dBu, dim=-1)
    y = (h * Cc).sum(2)
    if D is not None:
        y = y + D[:, None] * u
    return y


@functools.lru_cache(maxsize=1)
def mamba_ssm_available() -> bool:
    """True when mamba-ssm's compiled selective-scan extension can be imported (checked once)."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn  # noqa: F401
    except Exception:  # ImportError, or an OSError/RuntimeError from a broken CUDA build
        return False
    return True


def selective_scan_mamba(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """mamba-ssm's fused CUDA kernel (float32 output). Needs mamba-ssm and CUDA tensors."""
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn

    if not u.is_cuda:
        raise RuntimeError("the 'mamba' scan backend needs CUDA tensors; use backend='torch' on CPU")
    y = selective_scan_fn(
        u.contiguous(),
        delta.contiguous(),
        A.float().contiguous(),
        B.contiguous(),
        C.contiguous(),
        None if D is None else D.float().contiguous(),
        z=None,
        delta_bias=None if delta_bias is None else delta_bias.float().contiguous(),
        delta_softplus=delta_softplus,
    )
    return y.float()
