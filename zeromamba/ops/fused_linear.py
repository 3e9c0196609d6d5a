"""Linear layers with their activation or residual add fused into the matrix product (CPU inference).

oneDNN (PyTorch's ``mkldnn`` operators, the ones ``torch.compile`` uses on CPU) applies a GELU or
adds a residual while the product's output is still in registers, so the separate elementwise
pass over the output, and the memory traffic of it, disappear. At 448 x 448 the MLP's hidden
activation and the block's residual adds are large enough for this to show.

:func:`linear` takes that path for float32 and bfloat16 CPU tensors when no gradient is needed, and
falls back to ``F.linear`` plus the plain operation otherwise (training, other devices, dtypes, or
a PyTorch build without these operators). The fused operators are checked once per dtype against the
plain path before they are used; ``ZEROMAMBA_DISABLE_ONEDNN=1`` turns them off. A layer's weight goes
to oneDNN in its own blocked layout (:mod:`.packed_weights`), made once and kept.

Where oneDNN runs its AVX2 kernels (a CPU without AVX-512, or ``ONEDNN_MAX_CPU_ISA=AVX2``) its
exact-GELU epilogue slows the product by about a third of the product's own time, whatever its
shape, while a separate GELU costs in proportion to the output alone, i.e. ``1 / in_features`` of
the product's work: there, from :data:`AVX2_SEPARATE_GELU_FROM` input features on, the GELU runs
after the fused product instead, in place on its output (the same values; ``benchmarks/gelu_epilogue.py``
measures both).
"""

from __future__ import annotations

import logging
import os

import torch
import torch.nn.functional as F

from .first_use import FirstUseCheck
from .packed_weights import packed_weight
from .tracing import is_tracing

__all__ = ["AVX2_SEPARATE_GELU_FROM", "fused_linear_available", "gelu_in_epilogue", "linear"]

log = logging.getLogger(__name__)

#: GELU flavours oneDNN fuses, by ``nn.GELU``'s ``approximate`` argument
_GELU_ALGORITHM = {"none": "none", "tanh": "tanh"}
_TOLERANCE = {torch.float32: 1e-5, torch.bfloat16: 2e-2}
#: with oneDNN's AVX2 kernels, products of at least this many input features take their GELU
#: separately (measured: 96 input features faster fused, 192 and more faster apart)
AVX2_SEPARATE_GELU_FROM = 160
_avx2_only: bool | None = None


def _onednn_runs_avx2() -> bool:
    """oneDNN's float32 products run its AVX2 kernels here: ``ONEDNN_MAX_CPU_ISA`` caps it at an AVX2
    level, or (not set) PyTorch's own CPU capability is AVX2, i.e. the CPU has no AVX-512."""
    global _avx2_only
    if _avx2_only is None:
        cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
        if cap and cap != "ALL":
            _avx2_only = cap.startswith("AVX2")
        else:
            _avx2_only = torch.backends.cpu.get_cpu_capability() == "AVX2"
    return _avx2_only


def gelu_in_epilogue(in_features: int) -> bool:
    """Whether a GELU after a fused float32 product of ``in_features`` inputs rides in oneDNN's
    epilogue (else it runs as a separate operator, which is faster there; same values)."""
    return not (_onednn_runs_avx2() and in_features >= AVX2_SEPARATE_GELU_FROM)


def _ops():
    return torch.ops.mkldnn._linear_pointwise


def _fused(x2d, weight, bias, activation: str | None, residual2d):
    weight = packed_weight(weight)
    if residual2d is not None:
        return _ops().binary(x2d, residual2d, weight, bias, "add")
    if activation is None:
        return _ops()(x2d, weight, bias, "none", [], "")
    return _ops()(x2d, weight, bias, "gelu", [], _GELU_ALGORITHM[activation])


def _plain(x, weight, bias, activation: str | None, residual):
    y = F.linear(x, weight, bias)
    if activation is not None:
        y = F.gelu(y, approximate=activation)
    return y if residual is None else y + residual


def _check(dtype: torch.dtype) -> bool:
    """The fused operators agree with the plain path on a small random problem of ``dtype``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(37, 24, generator=g).to(dtype)
    w = (torch.randn(40, 24, generator=g) * 0.2).to(dtype)
    b = torch.randn(40, generator=g).to(dtype)
    r = torch.randn(37, 40, generator=g).to(dtype)
    with torch.no_grad():
        for act, res in ((None, None), ("none", None), ("tanh", None), (None, r)):
            got, want = _fused(x, w, b, act, res).float(), _plain(x, w, b, act, res).float()
            if got.shape != want.shape or not (got - want).abs().max() <= _TOLERANCE[dtype] * want.abs().max():
                return False
    return True


def _usable(dtype: torch.dtype) -> bool | None:
    if os.environ.get("ZEROMAMBA_DISABLE_ONEDNN", "") not in ("", "0") or not torch.backends.mkldnn.is_available():
        return None  # turned off, or no oneDNN in this PyTorch: nothing to report
    if dtype == torch.bfloat16 and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        raise RuntimeError("no bfloat16 support in oneDNN on this CPU")
    return _check(dtype)


_available = FirstUseCheck(_usable, "oneDNN fused linear", "F.linear", log)


def fused_linear_available(dtype: torch.dtype = torch.float32) -> bool:
    """True when this PyTorch has the oneDNN fused linear operators for ``dtype`` on this CPU and they
    passed their first-use check (bfloat16 needs a CPU with AVX-512 BF16, AMX or similar)."""
    return dtype in _TOLERANCE and _available(dtype)


def linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = None,
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, then ``gelu(approximate=activation)`` when ``activation`` is
    ``"none"`` or ``"tanh"``, plus ``residual`` (same shape as the output) when given.

    Fused through oneDNN for CPU inference in float32 / bfloat16; plain PyTorch otherwise.
    """
    if activation is not None and activation not in _GELU_ALGORITHM:
        raise ValueError(f"activation must be None, 'none' or 'tanh' (GELU flavours), got {activation!r}")
    if activation is not None and residual is not None:
        raise ValueError("fuse either a GELU or a residual add, not both")
    needs_grad = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, weight, bias, residual))
    fusable = (
        not needs_grad
        and x.device.type == "cpu"
        and x.dtype == weight.dtype
        and (bias is None or bias.dtype == x.dtype)
        and (residual is None or residual.dtype == x.dtype)
        and x.dim() >= 2
        and not is_tracing()  # opaque to ONNX / torch.export graphs; inductor fuses on its own
        and fused_linear_available(x.dtype)
    )
    if not fusable:
        return _plain(x, weight, bias, activation, residual)
    lead = x.shape[:-1]
    x2d = x.reshape(-1, x.shape[-1])
    res2d = None if residual is None else residual.reshape(-1, weight.shape[0])
    if activation is not None and not gelu_in_epilogue(x.shape[-1]):
        # in place on the product's own output: no second tensor of its size to allocate (and fault in)
        y = torch.ops.aten.gelu_(_fused(x2d, weight, bias, None, None), approximate=activation)
        return y.view(*lead, weight.shape[0])
    return _fused(x2d, weight, bias, activation, res2d).view(*lead, weight.shape[0])
