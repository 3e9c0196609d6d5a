"""Running a large CPU inference batch in micro-batches whose activations stay below glibc's
``mmap`` threshold.

glibc serves every allocation of 32 MiB or more with fresh pages from the kernel and returns them on
``free``, so a tensor that size costs a page fault per 4 KiB on every forward pass. VMamba's first
stage at 448 x 448 holds 19 MB per image in its widest tensor (the MLP's hidden layer), so a batch of
8 pays that for almost every tensor of the stage, and one or two images at a time run faster than the
whole batch (``benchmarks/results/cpu_forward_*micro_batch*.json``). Each image's computation is the
same either way; only how many rows each matrix product sees changes (results agree to float32
rounding).

Only eager CPU inference is split: under autograd the batch is kept whole (the activations are kept
for the backward pass anyway), and under tracing, scripting, ``torch.compile`` or ``torch.export`` a
split would unroll the batch into the recorded graph.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..ops.tracing import is_tracing

__all__ = ["MMAP_THRESHOLD_BYTES", "micro_batch_count", "run_in_micro_batches"]

#: glibc's largest dynamic ``mmap`` threshold on 64-bit Linux (``DEFAULT_MMAP_THRESHOLD_MAX``)
MMAP_THRESHOLD_BYTES = 32 << 20


def micro_batch_count(batch: int, bytes_per_sample: int, budget: int | None) -> int:
    """How many micro-batches keep ``batch`` samples' widest tensor within ``budget`` bytes (1: one
    pass; ``budget`` ``None`` or 0: never split). Never more than one per sample."""
    if not budget or batch <= 1 or bytes_per_sample <= 0:
        return 1
    per_chunk = max(1, budget // bytes_per_sample)
    return min(batch, -(-batch // per_chunk))


def _splittable(x: torch.Tensor) -> bool:
    if isinstance(x, torch.fx.Proxy):  # torch.fx records the model (timm's feature extraction)
        return False
    return x.device.type == "cpu" and not torch.is_grad_enabled() and not is_tracing()


def run_in_micro_batches(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    bytes_per_sample: Callable[[torch.Tensor], int],
    budget: int | None,
) -> torch.Tensor:
    """``forward(x)``, computed over near-equal slices of the batch (concatenated in order) when ``x``
    is a CPU inference batch whose widest tensor, ``bytes_per_sample(x)`` per sample, would exceed
    ``budget``; in one call otherwise."""
    if not budget or not _splittable(x):
        return forward(x)
    count = micro_batch_count(x.shape[0], bytes_per_sample(x), budget)
    if count == 1:
        return forward(x)
    return torch.cat([forward(part) for part in x.tensor_split(count)])
