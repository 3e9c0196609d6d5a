"""Checking a config's constructor arguments before anything is built.

A ``config.json`` comes from outside (a downloaded folder, a Hub repository), so its ``model_args``
are checked field by field (type and range) and the model's size is estimated from them alone,
building it on PyTorch's ``meta`` device (shapes only, no memory), before a real model is
allocated: ``embed_dim: 1e9``, a negative depth or ``depths: [1000000]`` is a :class:`ConfigError`
naming the field and its allowed range in milliseconds, not an allocator error or a hang.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from ..errors import ConfigError, ZeroMambaError

__all__ = ["MAX_PARAMETERS", "check_model_args", "checked_arg_names", "meta_model"]

#: the largest model a config may describe: 1e9 parameters (4 GB in float32); the published
#: models have 30-100 million
MAX_PARAMETERS = 1_000_000_000


@dataclass(frozen=True)
class _Int:
    low: int
    high: int

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"model_args.{name} must be an integer in [{self.low}, {self.high}], got {_show(value)}")
        if not self.low <= value <= self.high:
            raise ConfigError(
                f"model_args.{name} = {_show(value)} is outside the allowed range [{self.low}, {self.high}]"
            )


@dataclass(frozen=True)
class _Float:
    low: float
    high: float
    low_open: bool = False

    def check(self, name: str, value: Any) -> None:
        bracket = "(" if self.low_open else "["
        allowed = f"{bracket}{self.low}, {self.high}]"
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"model_args.{name} must be a number in {allowed}, got {_show(value)}")
        # NaN fails both comparisons, so it is out of range too
        if not ((value > self.low if self.low_open else value >= self.low) and value <= self.high):
            raise ConfigError(f"model_args.{name} = {_show(value)} is outside the allowed range {allowed}")


@dataclass(frozen=True)
class _Bool:
    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, bool):
            raise ConfigError(f"model_args.{name} must be true or false, got {_show(value)}")


@dataclass(frozen=True)
class _Choice:
    choices: tuple[str, ...]

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or value not in self.choices:
            raise ConfigError(
                f"model_args.{name} must be one of {', '.join(map(repr, self.choices))}, got {_show(value)}"
            )


@dataclass(frozen=True)
class _Name:
    """A short string (the constructor checks which ones it knows)."""

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str) or not 0 < len(value) <= 64:
            raise ConfigError(f"model_args.{name} must be a name (a short string), got {_show(value)}")


@dataclass(frozen=True)
class _IntList:
    """A list of ``min_len..max_len`` integers in ``[low, high]`` summing to at most ``max_sum``."""

    min_len: int
    max_len: int
    low: int
    high: int
    max_sum: int

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, (list, tuple)) or not self.min_len <= len(value) <= self.max_len:
            raise ConfigError(
                f"model_args.{name} must be a list of {self.min_len} to {self.max_len} integers, got {_show(value)}"
            )
        for i, v in enumerate(value):
            _Int(self.low, self.high).check(f"{name}[{i}]", v)
        if sum(value) > self.max_sum:
            raise ConfigError(f"model_args.{name} sums to {sum(value)}, more than the allowed {self.max_sum}")


@dataclass(frozen=True)
class _Size:
    """An image size: one integer, or ``[H, W]``."""

    low: int
    high: int

    def check(self, name: str, value: Any) -> None:
        if isinstance(value, (list, tuple)):
            if len(value) != 2:
                raise ConfigError(f"model_args.{name} must be an integer or [H, W], got {_show(value)}")
            for i, v in enumerate(value):
                _Int(self.low, self.high).check(f"{name}[{i}]", v)
        else:
            _Int(self.low, self.high).check(name, value)


@dataclass(frozen=True)
class _Rank:
    """``"auto"`` or an integer."""

    high: int

    def check(self, name: str, value: Any) -> None:
        if value != "auto":
            _Int(1, self.high).check(name, value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_WIDTH = _Int(1, 8192)
_CLASSES = _Int(0, 1_000_000)
_COMMON: dict[str, Any] = dict(
    in_chans=_Int(1, 64),
    d_state=_Int(1, 256),
    dt_rank=_Rank(8192),
    drop_rate=_Float(0.0, 1.0),
    drop_path_rate=_Float(0.0, 1.0),
    scan_backend=_Name(),
    variant=_Name(),
)
_VMAMBA: dict[str, Any] = dict(
    _COMMON,
    embed_dim=_WIDTH,
    depths=_IntList(1, 8, 0, 64, 128),
    ssm_ratio=_Float(0.0, 16.0, low_open=True),
    mlp_ratio=_Float(0.0, 16.0),
    ssm_conv_bias=_Bool(),
    num_classes=_CLASSES,
    global_pool=_Choice(("avg", "")),
)
_VIM: dict[str, Any] = dict(
    _COMMON,
    embed_dim=_WIDTH,
    depth=_Int(1, 128),
    img_size=_Size(1, 4096),
    patch_size=_Int(1, 256),
    stride=_Int(1, 256),
    expand=_Int(1, 16),
    d_conv=_Int(1, 64),
    num_classes=_CLASSES,
    dynamic_img_size=_Bool(),
    global_pool=_Choice(("token",)),
)
_HEADS: dict[str, Any] = dict(
    num_attributes=_Int(1, 100_000),
    semantic_dim=_Int(1, 8192),
    fusion_hidden=_Int(1, 65536),
    num_imagenet_classes=_Int(1, 1_000_000),
)
_RULES: dict[str, dict[str, Any]] = {
    "VMamba": _VMAMBA,
    "ZeroMamba": dict(_VMAMBA, **_HEADS),
    "Vim": _VIM,
    "ZeroMambaVim": dict(_VIM, **_HEADS),
}


class _SkipInPlace(torch.overrides.TorchFunctionMode):
    """In-place ops on meta tensors (weight initialisers: ``normal_``, ``clamp_``, ``copy_`` ...) return
    their tensor untouched: they change no shape, and meta's reference kernels for them are slow."""

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        name = getattr(func, "__name__", "")
        if name.endswith("_") and not name.endswith("__") and args and getattr(args[0], "is_meta", False):
            return args[0]
        return func(*args, **(kwargs or {}))


def checked_arg_names(cls: type[nn.Module]) -> frozenset[str]:
    """The constructor arguments of ``cls`` that :func:`check_model_args` knows (and checks)."""
    return frozenset(_RULES.get(cls.__name__, {}))


def meta_model(cls: type[nn.Module], args: Mapping[str, Any]) -> nn.Module:
    """``cls(**args)`` on the ``meta`` device: every parameter's shape and dtype, no memory, no init."""
    with torch.device("meta"), _SkipInPlace(), torch.no_grad():
        return cls(**args)


def check_model_args(
    cls: type[nn.Module],
    args: Mapping[str, Any],
    source: str,
    *,
    origin: str = "config.json's",
    error: type[ZeroMambaError] = ConfigError,
) -> nn.Module:
    """Check ``model_args`` for ``cls`` (type and range of every field, then the size of the model they
    describe) and return the model built on the ``meta`` device, whose state dict is what the weights
    file must hold.

    ``origin`` says where the arguments come from in messages, ``error`` is the exception raised (a
    checkpoint's architecture read off its tensor shapes gets the same limits, as a
    :class:`~zeromamba.errors.CheckpointError`).

    Raises:
        ConfigError: a field of the wrong type or out of its range (the message names it and the range),
            an argument the architecture does not take, or a model of more than :data:`MAX_PARAMETERS`.
    """
    rules = _RULES.get(cls.__name__, {})
    try:
        for name, value in args.items():
            rule = rules.get(name)
            if rule is None:
                raise ConfigError(
                    f"model_args.{name} is not an argument of {cls.__name__}; it takes {', '.join(sorted(rules))}"
                )
            rule.check(name, value)
    except ConfigError as e:
        raise error(f"{source}: {origin} {e}") from None
    low = _parameters_lower_bound(cls.__name__, args)
    if low > MAX_PARAMETERS:
        raise _too_large(source, cls, low, origin, error, "at least ")
    built = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}
    try:
        model = meta_model(cls, built)
    except (TypeError, ValueError, RuntimeError) as e:
        raise error(f"{source}: {origin} model_args do not build a {cls.__name__}: {e}") from None
    n = sum(p.numel() for p in model.state_dict().values())
    if n > MAX_PARAMETERS:
        raise _too_large(source, cls, n, origin, error)
    return model


def _too_large(
    source: str, cls: type[nn.Module], n: int, origin: str, error: type[ZeroMambaError], qualifier: str = ""
) -> ZeroMambaError:
    return error(
        f"{source}: {origin} model_args describe a {cls.__name__} of {qualifier}{n:,} parameters "
        f"({4 * n / 2**30:.1f} GiB in float32), more than the {MAX_PARAMETERS:,} zeromamba builds: "
        "the file is damaged or not a zeromamba model"
    )


def _parameters_lower_bound(family: str, args: Mapping[str, Any]) -> int:
    """A quick lower bound on the parameter count (the blocks' projection matrices alone), so that a
    config of absurd size is refused before even the meta build, whose time grows with the size."""
    if family in ("Vim", "ZeroMambaVim"):
        width, depth = int(args.get("embed_dim") or 192), int(args.get("depth") or 24)
        return depth * 3 * int(args.get("expand", 2)) * width * width
    width = int(args.get("embed_dim") or 96)
    depths = args.get("depths") or (2, 2, 15, 2)
    ssm, mlp = float(args.get("ssm_ratio") or 1.0), float(args.get("mlp_ratio", 4.0))
    # per block: in_proj + out_proj (2 * ssm * c^2) and the MLP (2 * mlp * c^2); stage i is 2**i wider
    return int(sum(d * (2 * ssm + 2 * mlp) * (width * 2**i) ** 2 for i, d in enumerate(depths)))
