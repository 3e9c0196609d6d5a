"""Where and how computation runs: devices, dtypes, mixed precision and the process group.

One place for what prediction, training and evaluation all decide: which device ``"auto"``
means (this rank's GPU under ``torchrun``), how dtype names are read, which autocast dtype AMP
uses, and how a ``torchrun`` process group is joined (NCCL on CUDA, gloo on CPU).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn

from .errors import ConfigError, DeviceError

__all__ = [
    "DistEnv",
    "amp_dtype",
    "autocast",
    "check_device",
    "collective_device",
    "inference_autocast",
    "inference_weight_dtype",
    "inference_input_dtype",
    "parse_dtype",
    "parse_inference_dtype",
    "requested_dtype",
    "resolve_device",
    "setup_distributed",
    "unwrap_model",
    "world_and_rank",
]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None``/``"auto"``: this rank's GPU under torchrun (``LOCAL_RANK``), else ``cuda``, else CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(device)


def check_device(device: str | torch.device | None) -> torch.device | None:
    """``device`` as a :class:`torch.device` that exists on this machine (``"auto"`` resolved as in
    :func:`resolve_device`; ``None`` stays ``None``).

    Raises:
        DeviceError: a misspelt device, ``cuda`` / ``mps`` where there is none, or a GPU index out of range.
    """
    if device is None:
        return None
    if str(device) == "auto":
        return resolve_device(device)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or auto") from None
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise DeviceError(
                f"device {str(device)!r} is not available: PyTorch sees no CUDA GPU on this machine "
                "(torch.cuda.is_available() is False); use cpu (or auto)"
            )
        if dev.index is not None and dev.index >= count:
            raise DeviceError(
                f"device {str(device)!r} does not exist: this machine has {count} CUDA GPU(s), 0..{count - 1}"
            )
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise DeviceError(f"device {str(device)!r} is not available on this machine (no Apple MPS); use cpu")
    elif dev.type not in ("cpu", "cuda", "mps", "meta"):
        available = getattr(getattr(torch, dev.type, None), "is_available", None)
        if available is None or not available():
            raise DeviceError(f"device {str(device)!r} is not available on this machine; use cpu (or auto)")
    return dev


def parse_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """A floating-point dtype from a :class:`torch.dtype` or a name (``"bfloat16"``, ``"bf16"``,
    ``"torch.float16"``, ``"fp32"`` ...).

    Raises:
        ConfigError: an unknown name or a non-floating-point dtype.
    """
    if isinstance(dtype, torch.dtype):
        if not dtype.is_floating_point:
            raise ConfigError(f"dtype must be a floating point type, got {dtype}")
        return dtype
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; use float32, float16 or bfloat16")
    return _DTYPES[key]


def requested_dtype(dtype: str | torch.dtype | None, model: nn.Module) -> torch.dtype:
    """``dtype`` parsed (:func:`parse_dtype`), or the dtype of ``model``'s parameters when ``None``
    (float32 for a model without any)."""
    if dtype is None:
        param = next(model.parameters(), None)
        return param.dtype if param is not None else torch.float32
    return parse_dtype(dtype)


def parse_inference_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """:func:`parse_dtype`, plus int8 inference on the CPU: ``"int8"``, ``torch.int8`` or
    ``torch.qint8`` give ``torch.int8`` (see :mod:`zeromamba.models.int8`).

    Raises:
        ConfigError: an unknown name or dtype.
    """
    if dtype in (torch.int8, torch.qint8) or str(dtype).lower().removeprefix("torch.") in ("int8", "qint8"):
        return torch.int8
    try:
        return parse_dtype(dtype)
    except ConfigError:
        raise ConfigError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 (GPU) or int8 (CPU)") from None


def inference_input_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a model's input takes for inference in ``dtype`` (float32 for int8)."""
    return torch.float32 if dtype == torch.int8 else dtype


def amp_dtype(amp: str | bool | None, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: ``auto`` is bfloat16 (or float16 where bf16 is missing) on CUDA and off on CPU."""
    if amp in (None, False, "off", "none", "fp32", "float32") or device.type != "cuda":
        return None
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        return torch.float16
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def inference_weight_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    """The dtype a model's weights take so that inference computes in ``dtype`` on ``device``.

    bfloat16 on a CPU: bfloat16 weights, so that oneDNN's bfloat16 kernels run (autocast would
    convert every weight on every call); the selective scan widens to float32 inside. float16 or
    bfloat16 on CUDA, and float16 on a CPU: float32 weights under :func:`torch.autocast`.
    """
    if dtype == torch.bfloat16 and device.type == "cpu" and not _native_cpu_bfloat16():
        warnings.warn(
            "this CPU has no native bfloat16 (AVX-512 BF16 / AMX): bfloat16 inference runs emulated, "
            "slower than float32",
            RuntimeWarning,
            stacklevel=2,
        )
    return _weight_dtype(dtype, device)


def _weight_dtype(dtype: torch.dtype, device: torch.device) -> torch.dtype:
    if dtype == torch.bfloat16 and device.type == "cpu":
        return torch.bfloat16
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _native_cpu_bfloat16() -> bool:
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # an older PyTorch without the query
        return False


def inference_autocast(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether inference in ``dtype`` on ``device`` runs under :func:`torch.autocast` (see
    :func:`inference_weight_dtype`)."""
    return dtype in (torch.float16, torch.bfloat16) and _weight_dtype(dtype, device) != dtype  # no second warning


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` when ``dtype`` is set, a no-op otherwise."""
    if dtype is None:
        yield
    else:
        with torch.autocast(device.type, dtype=dtype):
            yield


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside a ``DistributedDataParallel`` (or ``DataParallel``) wrapper."""
    inner = getattr(model, "module", None)
    return inner if isinstance(inner, nn.Module) else model


def world_and_rank() -> tuple[int, int]:
    """``(world size, rank)`` of the initialised process group, ``(1, 0)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def collective_device(device: torch.device) -> torch.device:
    """Where tensors of a collective must live: on the GPU for NCCL, on the CPU for gloo."""
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


@dataclass
class DistEnv:
    """This process's place in the run: ``world`` processes, this one ``rank``, on ``device``.

    ``owns_group`` is true when :func:`setup_distributed` created the process group (and so must
    destroy it).
    """

    world: int
    rank: int
    device: torch.device
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def all_sum(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over every rank."""
        if self.world == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=collective_device(self.device))
        dist.all_reduce(t)
        return t.tolist()

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank."""
        if self.world == 1:
            return flag
        t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=collective_device(self.device))
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def close(self) -> None:
        """Destroy the process group if this environment created it."""
        if self.owns_group:
            dist.destroy_process_group()
            self.owns_group = False


def setup_distributed(device: str | torch.device | None = "auto") -> DistEnv:
    """Join the process group torchrun describes (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``).

    NCCL on CUDA, gloo on CPU; a group that already exists is joined as it is. Without
    ``WORLD_SIZE`` > 1 this is a one-process environment on ``device``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return DistEnv(1, 0, dev, False)
    owns = False
    if not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
        owns = True
    return DistEnv(dist.get_world_size(), dist.get_rank(), dev, owns)
