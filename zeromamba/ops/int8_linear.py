"""Int8 linear layers for CPU inference (dynamic quantization).

:class:`Int8Linear` replaces an ``nn.Linear``: its weight is quantized once to int8, symmetric,
one scale per output channel; its input is quantized on every call to uint8 with one scale and zero
point per image (the range of that image's activations: so an image's answer never depends on the
other images of its batch); the products accumulate in int32 and come back as float32, with the
bias, and a GELU or a residual add when asked. Everything else in a model (the selective scan,
norms, convolutions) stays float32.

Two kernels, the first that passes its check is used:

* ``onednn``: oneDNN's int8 matmul (PyTorch's ``onednn::qlinear_pointwise``, the kernel behind
  PyTorch's x86 int8 path): AMX or AVX-512 VNNI where the CPU has them, GELU and residual add fused
  into the product. x86 only.
* ``dynamic``: PyTorch's ``quantized::linear_dynamic`` through its quantized engine (fbgemm on
  x86, qnnpack on ARM); GELU and residual add run after it.

Each kernel is checked once per process against an exact integer reference. On CPUs without VNNI
(AVX2 only) the int8 products add pairs of uint8 x int8 products in saturating 16-bit sums and
return wrong values for large inputs; the check sees this and the weights then use 7 bits
(``|q| <= 63``), which cannot saturate with 8-bit activations. (On the trained models measured,
7-bit weights moved the attributes less than 7-bit activations did: an activation range is one per
image, a weight range one per output channel; see the speed documentation.) A kernel that is
wrong either way is not used; with none left, int8 is refused with
:class:`~zeromamba.errors.Int8UnavailableError`, never run in float32 instead.
``ZEROMAMBA_INT8_KERNEL=onednn|dynamic`` chooses a kernel.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import threading
import warnings
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import Int8UnavailableError

__all__ = ["INT8_KERNELS", "INT8_SCHEMES", "Int8Linear", "Int8Scheme", "int8_kernel", "int8_status"]

log = logging.getLogger(__name__)

#: the kernels, in order of preference
INT8_KERNELS = ("onednn", "dynamic")
#: relative error the kernels may show against the exact integer reference (float32 rescaling only)
_TOLERANCE = 1e-4
_GELU = {"none": "none", "tanh": "tanh"}


class Int8Scheme(NamedTuple):
    """The integer ranges of an int8 product: weights in ``-weight_max..weight_max``, activations
    in ``0..levels``."""

    weight_max: int
    levels: int

    @property
    def weight_bits(self) -> int:
        return (2 * self.weight_max + 1).bit_length()

    @property
    def activation_bits(self) -> int:
        return self.levels.bit_length()


#: the schemes in order of preference: 8-bit weights, else 7 (no VNNI: 255 x 63 x 2 fits in 16 bits)
INT8_SCHEMES = (Int8Scheme(127, 255), Int8Scheme(63, 255))

_lock = threading.Lock()
_pack_lock = threading.Lock()
_verdicts: dict[str, Int8Scheme | str] = {}  # kernel -> the scheme it computes exactly, or why it is not used


# --- quantization ------------------------------------------------------------------------------


def quantize_weight(weight: torch.Tensor, weight_max: int = 127) -> tuple[torch.Tensor, torch.Tensor]:
    """``(int8 weight, float32 scale per output channel)``: symmetric, ``w ~ q * scale``,
    ``|q| <= weight_max``."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1) / float(weight_max)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.round(w / scale[:, None]).clamp_(-weight_max, weight_max).to(torch.int8)
    return q, scale


def _activation_params(lo: float, hi: float, levels: int) -> tuple[float, int] | None:
    """``(scale, zero point)`` mapping ``lo..hi`` (widened to hold 0) onto ``0..levels``; ``None``
    when the range is not finite (NaN or inf in the activations)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / levels if hi > lo else 1.0
    return scale, min(levels, max(0, round(-lo / scale)))


def _uint8_view(q: torch.Tensor) -> torch.Tensor:
    """A quantized tensor's bytes, which are its uint8 values, as a plain uint8 tensor (no copy)."""
    return torch.empty(0, dtype=torch.uint8, device=q.device).set_(
        q.untyped_storage(), q.storage_offset(), q.shape, q.stride()
    )


def activation_params(x: torch.Tensor, levels: int) -> list[tuple[float, int] | None]:
    """The ``(scale, zero point)`` of each row of ``x`` ``(B, n)`` (``None``: NaN or inf in the row)."""
    # a whole-tensor aminmax per row: PyTorch's aminmax(dim=1) is several times slower on long rows
    return [_activation_params(*(float(v) for v in torch.aminmax(row)), levels) for row in x]


def quantize_rows(x: torch.Tensor, params: list[tuple[float, int] | None]) -> torch.Tensor:
    """Each row of ``x`` ``(B, n)`` to uint8 with its own ``(scale, zero point)``, in one pass
    (a ``None`` row gets meaningless values)."""
    usable = [p or (1.0, 0) for p in params]
    if len(usable) == 1:
        q = torch.quantize_per_tensor(x, usable[0][0], usable[0][1], torch.quint8)
    else:
        scales = torch.tensor([p[0] for p in usable], dtype=torch.float64)
        zero_points = torch.tensor([p[1] for p in usable], dtype=torch.long)
        q = torch.quantize_per_channel(x, scales, zero_points, 0, torch.quint8)
    return _uint8_view(q)


# --- the kernels -----------------------------------------------------------------------------------


class _OneDNN:
    """oneDNN int8 matmul; the weight is packed into oneDNN's blocked layout once."""

    name = "onednn"

    @staticmethod
    def available() -> str | None:
        if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
            return "oneDNN's int8 matmul is used on x86 only"
        if not torch.backends.mkldnn.is_available():
            return "this PyTorch is built without oneDNN"
        if not hasattr(torch.ops.onednn, "qlinear_pointwise"):
            return "this PyTorch has no onednn::qlinear_pointwise"
        return None

    @staticmethod
    def pack(q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> Any:
        packed = torch.ops.onednn.qlinear_prepack(q, None)
        return packed, scale, torch.zeros(q.shape[0], dtype=torch.long), bias

    @staticmethod
    def run(
        packed: Any, qx: torch.Tensor, scale: float, zp: int, activation: str | None, residual: torch.Tensor | None
    ) -> torch.Tensor:
        w, w_scale, w_zp, bias = packed
        ops = torch.ops.onednn.qlinear_pointwise
        if residual is not None:
            return ops.binary(
                qx,
                scale,
                zp,
                w,
                w_scale,
                w_zp,
                residual,
                bias,
                1.0,
                0,
                torch.float32,
                1.0,
                0,
                "add",
                1.0,
                "none",
                [],
                "",
            )
        if activation is None:
            return ops(qx, scale, zp, w, w_scale, w_zp, bias, 1.0, 0, torch.float32, "none", [], "")
        return ops(qx, scale, zp, w, w_scale, w_zp, bias, 1.0, 0, torch.float32, "gelu", [], _GELU[activation])


class _Dynamic:
    """``quantized::linear_dynamic``: the quantized engine quantizes the input itself."""

    name = "dynamic"

    @staticmethod
    def available() -> str | None:
        engines = [e for e in torch.backends.quantized.supported_engines if e != "none"]
        if not engines:
            return "this PyTorch has no quantized engine (torch.backends.quantized.supported_engines)"
        return None

    @staticmethod
    def engine() -> str:
        engines = torch.backends.quantized.supported_engines
        current = torch.backends.quantized.engine
        if current != "none":
            return current
        return next(e for e in ("x86", "fbgemm", "qnnpack", "onednn") if e in engines)

    @staticmethod
    def pack(q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> Any:
        previous = torch.backends.quantized.engine
        torch.backends.quantized.engine = _Dynamic.engine()
        try:
            zeros = torch.zeros(q.shape[0], dtype=torch.long)
            qw = torch._make_per_channel_quantized_tensor(q, scale.double(), zeros, 0)
            return torch.ops.quantized.linear_prepack(qw, bias)
        finally:
            torch.backends.quantized.engine = previous

    @staticmethod
    def run(packed: Any, x: torch.Tensor, levels: int, activation: str | None, residual: torch.Tensor | None):
        y = torch.ops.quantized.linear_dynamic(x, packed, levels < 255)
        if activation is not None:
            y = F.gelu(y, approximate=activation)
        return y if residual is None else y.add_(residual)


_KERNELS = {"onednn": _OneDNN, "dynamic": _Dynamic}


def _exact(x: torch.Tensor, q: torch.Tensor, w_scale: torch.Tensor, a_scale: float, zp: int) -> torch.Tensor:
    """The product the kernels must return for integer activations ``x`` (float64, exact)."""
    return ((x.double() - zp) @ q.double().T) * a_scale * w_scale.double()


def _check(kernel: str, scheme: Int8Scheme) -> str | None:
    """``None`` when ``kernel`` computes exactly what it should with integers in ``scheme``'s
    ranges, with the GELU and the residual add; else what went wrong."""
    g = torch.Generator().manual_seed(0)
    impl = _KERNELS[kernel]
    levels, weight_max = scheme.levels, scheme.weight_max
    # full-range integers: on CPUs without VNNI this is where 16-bit intermediate sums saturate
    q = torch.randint(-weight_max, weight_max + 1, (40, 72), generator=g, dtype=torch.int8)
    q[0] = weight_max  # a row and an input that reach the extremes everywhere
    w_scale = torch.rand(40, generator=g) * 0.02 + 0.001
    x = torch.randint(0, levels + 1, (37, 72), generator=g).float()
    x[0] = levels
    x[1, 0] = 0.0  # range exactly 0..levels: the dynamic kernel picks scale 1, zero point 0
    residual = torch.randn(37, 40, generator=g)
    bias = torch.randn(40, generator=g)
    exact = _exact(x, q, w_scale, 1.0, 0) + bias.double()
    cases: list[tuple[str | None, torch.Tensor | None, torch.Tensor]] = [
        (None, None, exact),
        ("none", None, F.gelu(exact)),
        ("tanh", None, F.gelu(exact, approximate="tanh")),
        (None, residual, exact + residual.double()),
    ]
    try:
        # PyTorch's quantized tensors are deprecated (not gone): it says so once per process, here,
        # where the warning is silenced (warnings.catch_warnings is not thread-safe in forward passes)
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            packed = impl.pack(q, w_scale, bias)
            for activation, res, want in cases:
                if kernel == "onednn":
                    params = activation_params(x.reshape(1, -1), levels)
                    assert params == [(1.0, 0)], params  # the range is exactly 0..levels
                    got = impl.run(
                        packed, quantize_rows(x.reshape(1, -1), params).view(x.shape), 1.0, 0, activation, res
                    )
                else:
                    got = impl.run(packed, x, levels, activation, res)
                err = ((got.double() - want).abs().max() / want.abs().max()).item()
                if not err < _TOLERANCE:
                    return (
                        f"wrong results with {scheme.weight_bits}-bit weights and {scheme.activation_bits}-bit "
                        f"activations (relative error {err:.1e})"
                    )
    except Exception as e:  # an operator missing from this build, an unsupported CPU
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return None


def _verdict(kernel: str) -> Int8Scheme | str:
    with _lock:
        if kernel in _verdicts:
            return _verdicts[kernel]
    why = _KERNELS[kernel].available()
    verdict: Int8Scheme | str = why or ""
    if why is None:
        for scheme in INT8_SCHEMES:
            why = _check(kernel, scheme)
            if why is None:
                verdict = scheme
                break
            log.info("zeromamba: int8 kernel %s: %s", kernel, why)
        else:
            verdict = f"its self-check failed: {why}"
    with _lock:
        return _verdicts.setdefault(kernel, verdict)


def int8_kernel() -> tuple[str, Int8Scheme]:
    """``(kernel, scheme)`` int8 layers use in this process.

    Raises:
        Int8UnavailableError: no kernel works here (the message says why for each).
    """
    forced = os.environ.get("ZEROMAMBA_INT8_KERNEL", "").strip().lower()
    if forced and forced not in INT8_KERNELS:
        raise Int8UnavailableError(
            f"ZEROMAMBA_INT8_KERNEL={forced!r} is not an int8 kernel; use one of {', '.join(INT8_KERNELS)}"
        )
    reasons = []
    for kernel in (forced,) if forced else INT8_KERNELS:
        verdict = _verdict(kernel)
        if isinstance(verdict, Int8Scheme):
            return kernel, verdict
        reasons.append(f"{kernel}: {verdict}")
    raise Int8UnavailableError(
        "int8 inference is not available on this machine ("
        + "; ".join(reasons)
        + "); use dtype='float32'"
        + (" or unset ZEROMAMBA_INT8_KERNEL" if forced else "")
    )


def int8_status() -> dict[str, Any]:
    """What the int8 path does here: the kernel, the bits of weights and activations, and why other
    kernels are not used."""
    try:
        kernel, scheme = int8_kernel()
    except Int8UnavailableError as e:
        return {"kernel": None, "reason": str(e)}
    out: dict[str, Any] = {
        "kernel": kernel,
        "weight_bits": scheme.weight_bits,
        "activation_bits": scheme.activation_bits,
    }
    if kernel == "dynamic":
        out["engine"] = _Dynamic.engine()
    out["others"] = {k: v for k in INT8_KERNELS if k != kernel and isinstance(v := _verdict(k), str)}
    return out


# --- the layer ---------------------------------------------------------------------------------


class Int8Linear(nn.Module):
    """An ``nn.Linear`` that computes in int8 (see the module docs); inference on the CPU only.

    It keeps the float32 ``weight`` and ``bias`` of the layer it replaces as its parameters, under
    the same names, so a model's ``state_dict`` is unchanged (saving writes the float32 weights)
    and :meth:`to_float` gives the original layer back exactly. The int8 weight is made from them
    on first use and again whenever they change through PyTorch's own in-place operations
    (``load_state_dict``, ``copy_`` under ``torch.no_grad()``); a change through ``weight.data``
    is not seen (PyTorch counts no version for it): go back to float32 first
    (:func:`~zeromamba.models.int8.dequantize_int8`) to edit weights.

    Raises:
        Int8UnavailableError: (when built) no int8 kernel works here; (when called) a gradient is
            needed, or the input or weights are not float32 on the CPU.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"Int8Linear replaces an nn.Linear, got {type(linear).__name__}")
        self.kernel, self.scheme = int8_kernel()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.register_parameter("bias", linear.bias)
        self._packed: Any = None
        self._packed_from: tuple[int, ...] = ()
        self._pack()

    def _weight_state(self) -> tuple[int, ...]:
        # in-place changes bump _version (inference tensors, made in inference_mode, have none)
        tensors = [t for t in (self.weight, self.bias) if t is not None]
        return tuple(v for t in tensors for v in (-1 if t.is_inference() else t._version, t.data_ptr()))

    def _pack(self) -> Any:
        state = self._weight_state()
        if self._packed is None or state != self._packed_from:
            q, scale = quantize_weight(self.weight, self.scheme.weight_max)
            bias = None if self.bias is None else self.bias.detach().float().contiguous()
            with _pack_lock:  # the dynamic kernel sets PyTorch's global quantized engine while packing
                self._packed, self._packed_from = _KERNELS[self.kernel].pack(q, scale, bias), state
        return self._packed

    def _check_call(self, x: torch.Tensor, residual: torch.Tensor | None) -> None:
        tensors = [x, self.weight, *(t for t in (self.bias, residual) if t is not None)]
        if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
            raise Int8UnavailableError(
                "int8 layers compute no gradients; run under torch.no_grad() / inference_mode, or use float32 "
                "(explain(..., method='occlusion' or 'attention') needs none)"
            )
        if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in tensors):
            found = ", ".join(sorted({f"{t.dtype} on {t.device}" for t in tensors}))
            raise Int8UnavailableError(
                f"int8 layers take float32 CPU tensors and keep float32 CPU weights, got {found}; to change the "
                "device or precision, go back to float32 first (predictor.to(dtype='float32'))"
            )

    def forward(
        self, x: torch.Tensor, activation: str | None = None, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``linear(x)``, then ``gelu(approximate=activation)`` when ``activation`` is ``"none"`` or
        ``"tanh"``, plus ``residual`` when given. ``x``'s first dimension is the batch."""
        if activation is not None and activation not in _GELU:
            raise ValueError(f"activation must be None, 'none' or 'tanh' (GELU flavours), got {activation!r}")
        self._check_call(x, residual)
        packed = self._pack()
        lead = x.shape[:-1]
        items = x.reshape(x.shape[0] if x.dim() > 1 else 1, -1, self.in_features).contiguous()
        res = None if residual is None else residual.reshape(items.shape[0], -1, self.out_features).contiguous()
        rows = items.view(items.shape[0], -1)
        params = activation_params(rows, self.scheme.levels)
        qx = quantize_rows(rows, params) if self.kernel == "onednn" else None
        outs = []
        for i, p in enumerate(params):
            r = None if res is None else res[i]
            if p is None:  # NaN/inf in: NaN out, which the predictor reports
                outs.append(torch.full((items.shape[1], self.out_features), math.nan))
            elif self.kernel == "dynamic":
                outs.append(_Dynamic.run(packed, items[i], self.scheme.levels, activation, r))
            else:
                assert qx is not None
                outs.append(_OneDNN.run(packed, qx[i].view(items.shape[1:]), *p, activation, r))
        y = outs[0] if len(outs) == 1 else torch.cat(outs)
        return y.view(*lead, self.out_features)

    def to_float(self) -> nn.Linear:
        """The float32 ``nn.Linear`` with this layer's own weight and bias (no copy)."""
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None, device="meta")
        linear.weight = self.weight
        linear.bias = self.bias
        return linear

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_packed"], state["_packed_from"] = None, ()  # oneDNN's packed weight cannot be copied
        return state

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"kernel={self.kernel}, weights={self.scheme.weight_bits}-bit, "
            f"activations={self.scheme.activation_bits}-bit"
        )
