"""The exceptions zeromamba raises. Each message says what went wrong and what to do about it."""

from __future__ import annotations

__all__ = ["ZeroMambaError", "CheckpointError"]


class ZeroMambaError(Exception):
    """Base class of every error zeromamba raises on bad input."""


class CheckpointError(ZeroMambaError, ValueError):
    """A checkpoint cannot be read safely, or does not fit the model (names and shapes listed)."""
