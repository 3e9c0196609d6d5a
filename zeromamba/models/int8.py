"""Int8 inference on the CPU for a model of this package: its large linear layers in int8.

Each block names the linear layers that carry its matrix products in ``int8_linears``
(VMamba's ``SS2D``: ``in_proj``, ``out_proj``; its MLP: ``fc1``, ``fc2``; Vim's mixer: ``in_proj``,
``out_proj``): :func:`quantize_int8` replaces those with :class:`~zeromamba.ops.int8_linear.Int8Linear`,
in place. The rest (the selective scan, the small projections feeding it, norms, convolutions, the
heads) stays float32. The float32 weights stay in the model under their own names, so its
``state_dict`` is the float32 one and :func:`dequantize_int8` restores the original model exactly.
An int8 model is for inference: its parameters are frozen (``requires_grad=False``) until then.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from ..errors import Int8UnavailableError
from ..ops.int8_linear import Int8Linear, int8_kernel

__all__ = ["dequantize_int8", "int8_layers", "is_int8", "quantize_int8"]

# where a quantized model keeps its parameters' requires_grad flags, restored by dequantize_int8
_GRAD_FLAGS = "_zeromamba_int8_requires_grad"


def _slots(model: nn.Module) -> list[tuple[nn.Module, str]]:
    return [(m, name) for m in model.modules() for name in getattr(type(m), "int8_linears", ())]


def int8_layers(model: nn.Module) -> list[Int8Linear]:
    """The int8 layers of ``model`` (empty for a float model)."""
    return [m for m in model.modules() if isinstance(m, Int8Linear)]


def is_int8(model: nn.Module) -> bool:
    """Whether ``model`` runs its linear layers in int8 (see :func:`quantize_int8`)."""
    return any(isinstance(m, Int8Linear) for m in model.modules())


def quantize_int8(model: nn.Module) -> nn.Module:
    """Put ``model``'s large linear layers in int8 for CPU inference, in place (again: no change).

    The model must be on the CPU; its parameters are made float32 first (a bfloat16 model too)
    and frozen. Returns the model, in eval mode.

    Raises:
        Int8UnavailableError: the model is not on the CPU, no int8 kernel works on this machine,
            or the model has no layers this conversion knows (not a model of this package).
    """
    devices = {p.device.type for p in model.parameters()}
    if devices - {"cpu"}:
        raise Int8UnavailableError(
            f"int8 inference runs on the CPU; this model is on {', '.join(sorted(devices))}: use device='cpu' "
            "(or a float dtype on the GPU)"
        )
    slots = _slots(model)
    if not slots:
        raise Int8UnavailableError(
            f"{type(model).__name__} has no layers zeromamba runs in int8; int8 is for the models of this package "
            "(ZeroMamba, VMamba, Vim, ZeroMamba on Vim)"
        )
    int8_kernel()  # refuse before anything changes
    model.to(torch.float32).eval()
    if not hasattr(model, _GRAD_FLAGS):
        setattr(model, _GRAD_FLAGS, {n: p.requires_grad for n, p in model.named_parameters()})
    model.requires_grad_(False)
    for parent, name in slots:
        layer = getattr(parent, name)
        if isinstance(layer, nn.Linear):
            setattr(parent, name, Int8Linear(layer))
    return model


def dequantize_int8(model: nn.Module) -> nn.Module:
    """Undo :func:`quantize_int8` in place: the original float32 ``nn.Linear`` layers (same
    parameters, no copy), their ``requires_grad`` as before. Returns the model."""
    for parent, name in _slots(model):
        layer = getattr(parent, name)
        if isinstance(layer, Int8Linear):
            setattr(parent, name, layer.to_float())
    flags = model.__dict__.pop(_GRAD_FLAGS, None)
    if flags is not None:
        for n, p in model.named_parameters():
            p.requires_grad_(flags.get(n, p.requires_grad))
    return model
