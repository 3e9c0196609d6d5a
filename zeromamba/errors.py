"""The exceptions zeromamba raises. Each message says what went wrong and what to do about it.

All derive from :class:`ZeroMambaError`, so ``except zeromamba.ZeroMambaError`` catches every
bad-input error; most also derive from the matching builtin (``ValueError``, ``FileNotFoundError``)
so generic handlers keep working.

A message may quote text from outside (a class or tensor name, a file name, a URL): ``str(error)``
shows its control characters as escapes (``\\x1b``, see :func:`zeromamba.terminal.terminal_safe`),
so a traceback or an error line cannot act on the terminal; ``error.args[0]`` keeps the exact text.
"""

from __future__ import annotations

from .terminal import terminal_safe

__all__ = [
    "ZeroMambaError",
    "CheckpointError",
    "UnknownModelError",
    "ModelNotAvailableError",
    "ConfigError",
    "ImageError",
    "DeviceError",
    "AttributeMatrixError",
    "DataError",
    "TrainingError",
    "NonFiniteOutputError",
    "ReadOnlyTargetError",
    "RequestTimeoutError",
    "ExportError",
    "Int8UnavailableError",
]


class ZeroMambaError(Exception):
    """Base class of every error zeromamba raises on bad input."""

    def __str__(self) -> str:  # the message's own line breaks stay; every other control is escaped
        return terminal_safe(super().__str__(), keep_newlines=True)


class CheckpointError(ZeroMambaError, ValueError):
    """A checkpoint cannot be read safely, is corrupt or truncated, or does not fit the model."""


class UnknownModelError(ZeroMambaError, KeyError):
    """A variant or architecture name that is not registered (the message suggests close names)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return terminal_safe(self.args[0], keep_newlines=True) if self.args else ""


class ModelNotAvailableError(ZeroMambaError, OSError):
    """Weights cannot be fetched: a zoo repository that is not published, no network (or no answer
    within the timeout) and nothing cached, or no such repository/revision."""


class ConfigError(ZeroMambaError, ValueError):
    """A ``config.json`` that is malformed or of a format version this release does not understand."""


class ImageError(ZeroMambaError, ValueError):
    """An image that cannot be read: missing, zero-byte, truncated, unsupported, or over the pixel limit."""


class DeviceError(ZeroMambaError, RuntimeError):
    """A device that does not exist or is not available here (``cuda`` without a GPU, a GPU index
    out of range, a misspelt device name)."""


class DataError(ZeroMambaError, ValueError):
    """Dataset files that are missing, unreadable or inconsistent (the message names the file)."""


class AttributeMatrixError(DataError):
    """A class-attribute matrix, names list or seen set that cannot be read or does not fit: wrong
    width, NaN/inf, no rows, or names that do not match (a :class:`DataError`)."""


class TrainingError(ZeroMambaError, RuntimeError):
    """Training cannot continue (e.g. a NaN or inf loss); the last good checkpoint is kept."""


class NonFiniteOutputError(ZeroMambaError, FloatingPointError):
    """The model produced NaN or inf for an input, so no class can be ranked: the predictor raises this
    instead of returning a result with non-finite scores (the message says why it usually happens)."""


class ReadOnlyTargetError(ZeroMambaError, PermissionError):
    """A write would replace a read-only file (``--output`` onto a file marked read-only): refused,
    and the file is left as it was."""

    def __str__(self) -> str:  # PermissionError would print an errno
        return terminal_safe(self.args[0], keep_newlines=True) if self.args else ""


class RequestTimeoutError(ZeroMambaError, TimeoutError):
    """A request to ``zeromamba app`` got no answer within its time limit (the server is busy, or the
    request is too heavy)."""


class ExportError(ZeroMambaError, RuntimeError):
    """A model that cannot be exported to the requested format (an unsupported model or format, a
    missing ``export`` extra, or an exported graph that does not reproduce the model)."""


class Int8UnavailableError(DeviceError):
    """int8 inference cannot run here: no int8 CPU kernel in this PyTorch build or on this CPU, a
    device other than the CPU, or a gradient asked of int8 layers. zeromamba never falls back to
    float32 in its place: choose ``dtype="float32"`` (or ``bfloat16``) instead."""
