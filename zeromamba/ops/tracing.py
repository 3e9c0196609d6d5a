"""Whether a graph is being traced: the kernels of this package (C, Triton, oneDNN's fused linear
layers, in-place scratch buffers) are opaque to a graph, so while one is traced the plain-op paths
are taken instead (the ``"chunked"`` scan, ``F.linear``)."""

from __future__ import annotations

import torch

__all__ = ["is_compiling_in_process", "is_tracing"]


def is_tracing() -> bool:
    """True while ``torch.compile`` / ``torch.export`` (dynamo), ``torch.jit.trace`` or the ONNX
    exporter traces."""
    return bool(torch.compiler.is_compiling() or torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


def is_compiling_in_process() -> bool:
    """True while ``torch.compile`` traces (not ``torch.export`` or the ONNX exporter): the graph runs
    in this process, where this package's custom ops are registered, so they may stand in it."""
    return bool(torch.compiler.is_compiling() and not torch.compiler.is_exporting())
