"""One reusable float32 CPU scratch buffer per thread, shared by the scan backends.

Fresh multi-MB allocations are above glibc's mmap threshold and page-fault on first touch, which at
448 px costs about as much as the scan's arithmetic; reusing one buffer per thread avoids that.
Callers must not return tensors that alias the buffer (the next call overwrites it).
"""

from __future__ import annotations

import threading

import torch

__all__ = ["SCRATCH_MAX", "scratch_buffer"]

#: floats (384 MiB) held per thread at most; larger requests get ``None`` and allocate themselves
SCRATCH_MAX = 96 * 1024 * 1024

_local = threading.local()


def scratch_buffer(numel: int, device: torch.device | None = None) -> torch.Tensor | None:
    """A float32 buffer of ``numel`` elements for the calling thread, or ``None`` when ``device`` is
    not the CPU or ``numel`` exceeds :data:`SCRATCH_MAX`."""
    if (device is not None and device.type != "cpu") or numel > SCRATCH_MAX:
        return None
    buf = getattr(_local, "buf", None)
    if buf is None or buf.numel() < numel:
        with torch.inference_mode(False):  # usable from inference and no-grad code alike
            buf = torch.empty(numel, dtype=torch.float32)
        _local.buf = buf
    return buf[:numel]
