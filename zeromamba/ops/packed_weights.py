"""oneDNN's own layout for the weights of CPU linear layers and convolutions, made once and kept.

oneDNN reads a weight in plain row-major order more slowly than in the blocked order its kernels
are written for, and PyTorch's own convolution reorders its weight on every call. Packed once, the
linear layers and convolutions of ZeroMamba-S run ~5% faster at 448 x 448 (AVX-512 and AVX2 alike).
:func:`packed_weight` (linear) and :func:`packed_conv_weight` return the packed copy of an
``nn.Parameter`` and keep it beside the parameter until the parameter is freed; a parameter changed
in place (an optimiser step, ``load_state_dict``, ``.to()``) is packed again on its next use, as its
storage or version counter tells, and a VMamba model drops its copies whenever ``.to()``,
``.cpu()``, ``.half()`` and the like convert it. A copy costs as much memory as its weight (about
140 MiB for ZeroMamba-S). Other tensors (views, temporaries, inference tensors, whose version counter
cannot be read) are not packed.

:func:`kept_form` keeps other fixed forms of a parameter the same way: the CPU scan kernel's
constants (its decay rates ``-exp(A_logs)``, the dt projection transposed, the skip weights summed),
which would otherwise be computed again by a few small operators in every block of every forward pass.

``ZEROMAMBA_PACK_WEIGHTS=0`` turns packing off (the plain weights give the same values to float32
rounding, a few per cent more slowly); :func:`release_packed_weights` drops every kept copy.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence

import torch

__all__ = ["kept_form", "packed_conv_weight", "packed_weight", "packed_weight_count", "release_packed_weights"]

_lock = threading.Lock()
#: id(parameter) -> (what the copy was made from, the copy)
_copies: dict[int, tuple[tuple, torch.Tensor]] = {}


def _enabled() -> bool:
    return os.environ.get("ZEROMAMBA_PACK_WEIGHTS", "1").strip() not in ("0", "false", "no")


def _drop(key: int) -> None:
    with _lock:
        _copies.pop(key, None)


def _packable(weight: torch.Tensor, dims: int) -> bool:
    return (
        isinstance(weight, torch.nn.Parameter)
        and weight.device.type == "cpu"
        and weight.dim() == dims
        and not weight.is_inference()
        and _enabled()
    )


def _kept(weight: torch.Tensor, layout: tuple, make: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor | None:
    """The copy of ``weight`` kept for ``layout`` (made now if missing or stale), or None where this
    PyTorch cannot make it."""
    made_from = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape), tuple(weight.stride()), layout)
    with _lock:
        kept = _copies.get(id(weight))
    if kept is not None and kept[0] == made_from:
        return kept[1]
    try:
        with torch.inference_mode():
            copy = make(weight.detach())
    except (RuntimeError, AttributeError, NotImplementedError):  # a PyTorch or CPU without it
        return None
    with _lock:
        if id(weight) not in _copies:
            weakref.finalize(weight, _drop, id(weight))
        _copies[id(weight)] = (made_from, copy)
    return copy


def packed_weight(weight: torch.Tensor) -> torch.Tensor:
    """A linear layer's ``weight`` in oneDNN's blocked layout for ``torch.ops.mkldnn._linear_pointwise``
    (made on first use, kept while ``weight`` lives and is unchanged), or ``weight`` itself where it
    is not an ``nn.Parameter`` on the CPU, packing is off or this PyTorch cannot pack it."""
    if not _packable(weight, 2):
        return weight
    copy = _kept(weight, ("linear",), lambda w: torch.ops.mkldnn._reorder_linear_weight(w, None))
    return weight if copy is None else copy


def packed_conv_weight(
    weight: torch.Tensor,
    padding: Sequence[int],
    stride: Sequence[int],
    dilation: Sequence[int],
    groups: int,
    input_shape: Sequence[int],
) -> torch.Tensor | None:
    """A 2-D convolution's ``weight`` in the layout oneDNN chooses for ``torch.ops.mkldnn._convolution_pointwise``
    with these settings on inputs of ``input_shape`` (the choice depends on it: made for no shape in
    particular, some layouts ran 2-4x slower), kept like :func:`packed_weight`'s copies (one shape at a
    time), or None where it is not an ``nn.Parameter`` on the CPU, packing is off or this PyTorch
    cannot pack it."""
    if not _packable(weight, 4):
        return None
    settings = (tuple(padding), tuple(stride), tuple(dilation), int(groups), tuple(input_shape))

    def make(w: torch.Tensor) -> torch.Tensor:
        pad, st, dil, g, shape = settings
        return torch._C._nn.mkldnn_reorder_conv2d_weight(w.to_mkldnn(), list(pad), list(st), list(dil), g, list(shape))

    return _kept(weight, ("conv2d", settings), make)


def kept_form(weight: torch.Tensor, name: str, make: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``make(weight)``, kept like :func:`packed_weight`'s copies (made on first use, again when
    ``weight`` changes, dropped with it) where ``weight`` is an ``nn.Parameter`` on the CPU and
    packing is on; else computed now. ``name`` says which form it is (one per parameter): ``make``
    must be a fixed function of the weight's values, and is run without autograd."""
    if not _packable(weight, weight.dim()):
        return make(weight)
    copy = _kept(weight, ("form", name), make)
    return make(weight) if copy is None else copy


def packed_weight_count() -> int:
    """How many packed copies are kept now."""
    with _lock:
        return len(_copies)


def release_packed_weights(parameters: Iterable[torch.Tensor] | None = None) -> None:
    """Drop the packed copies of ``parameters`` (default: every copy); they are made again on next
    use. For memory, e.g. after moving a model off the CPU, where its copies would otherwise stay
    until the model is freed."""
    with _lock:
        if parameters is None:
            _copies.clear()
        else:
            for p in parameters:
                _copies.pop(id(p), None)
