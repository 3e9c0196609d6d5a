"""The first-use checks of the compiled scan kernels (C and Triton) against the PyTorch path.

A kernel is trusted on a device only once it has agreed with :func:`~zeromamba.ops.torch_scan.cross_scan_torch`
on a small, awkward random problem (odd sizes, several chunks or tiles, a partial channel block).
The verdict is cached per kernel and device, and a failure is logged once.

A CPU kernel must also be faster than the PyTorch path it replaces (:func:`speed_check`): a build
that is slower on the same problem (a compiler that failed to vectorise it, say) is not used, and
a warning says so once, with both timings.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

import torch

from .torch_scan import cross_scan_torch

__all__ = ["self_check", "speed_check"]

log = logging.getLogger(__name__)

#: relative error (max abs difference over max abs value) a kernel must stay under
TOLERANCE = 1e-5
#: the same for gradients (longer sums: the backward accumulates over positions and channels)
GRADIENT_TOLERANCE = 1e-4

_lock = threading.Lock()
_verdicts: dict[tuple[str, str], str | None] = {}  # (kernel, device) -> None, or why it failed


def _problem(device: torch.device, shape: tuple[int, int, int, int, int]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    B, H, W, D, R = shape
    p = [
        torch.randn(B, H, W, D, generator=g),
        torch.randn(4, R + 2, D, generator=g) * 0.3,
        torch.randn(4, D, R, generator=g) * 0.3,
        torch.randn(4, D, generator=g) * 0.3,
        torch.randn(4 * D, 1, generator=g) * 0.5,
        torch.randn(4 * D, generator=g),
    ]
    return [t.to(device) for t in p]


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max().clamp_min(1e-12)).item()


def _compare(kernel: Callable[..., torch.Tensor], device: torch.device, shape: tuple[int, int, int, int, int]) -> None:
    p = _problem(device, shape)
    with torch.no_grad(), torch.autocast(device.type, enabled=False):
        want = cross_scan_torch(*p)
        got = kernel(*p)
    err = _relative(got, want)
    if not err < TOLERANCE:
        raise RuntimeError(f"self-check failed: relative error {err:.2e}")


def _compare_gradients(
    kernel: Callable[..., torch.Tensor], device: torch.device, shape: tuple[int, int, int, int, int]
) -> None:
    p = _problem(device, shape)
    weight = torch.randn(shape[:4], generator=torch.Generator().manual_seed(1)).to(device)
    grads = []
    for fn in (cross_scan_torch, kernel):
        leaves = [t.clone().requires_grad_() for t in p]
        with torch.enable_grad(), torch.autocast(device.type, enabled=False):
            out = fn(*leaves)
            grads.append(torch.autograd.grad((out * weight).sum(), leaves))
    for i, (want, got) in enumerate(zip(*grads)):
        err = _relative(got, want)
        if not err < GRADIENT_TOLERANCE:
            raise RuntimeError(f"gradient self-check failed: relative error {err:.2e} in argument {i}")


def self_check(
    name: str,
    kernel: Callable[..., torch.Tensor],
    device: torch.device,
    shape: tuple[int, int, int, int, int],
    gradients: bool = False,
) -> str | None:
    """``None`` when ``kernel`` agrees with the PyTorch path on ``device``, else why it does not.

    ``kernel`` takes :func:`~zeromamba.ops.cross_selective_scan`'s tensors (``d_state == 1``);
    ``shape`` is the problem's ``(B, H, W, D, dt_rank)``. A kernel that raises (a compile or
    launch error) fails the check too. ``gradients`` checks the gradients of all six inputs instead
    of the output (a separate verdict).
    """
    key = (name + (" backward" if gradients else ""), str(device))
    with _lock:
        if key in _verdicts:
            return _verdicts[key]
    # outside the lock: a check can take a while (a Triton compile) and must not hold up other kernels
    try:
        (_compare_gradients if gradients else _compare)(kernel, device, shape)
        verdict = None
    except Exception as e:  # a compile error, a launch failure or a wrong result
        verdict = str(e)
    with _lock:
        first = key not in _verdicts  # else a thread that checked at the same time came first
        verdict = _verdicts.setdefault(key, verdict)
    if first and verdict is not None:
        log.warning("zeromamba: %s scan kernel disabled on %s, using the PyTorch path: %s", key[0], device, verdict)
    return verdict


def speed_check(
    name: str, kernel: Callable[..., object], reference: Callable[..., object], args: Sequence[object], rounds: int = 5
) -> str | None:
    """``None`` when ``kernel(*args)`` costs no more than ``reference(*args)``, else why not (both
    best times, in milliseconds).

    Both run on one thread (PyTorch's thread count is 1 for the few milliseconds this takes, then
    restored), timed by that thread's CPU time: the work each path does, which neither a busy
    machine nor idle worker threads spinning can distort. Interleaved rounds after a warm-up call
    each; the best round of each counts.
    """
    best = {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for fn in (kernel, reference):
                fn(*args)
            for _ in range(rounds):
                for which, fn in (("kernel", kernel), ("torch", reference)):
                    start = time.thread_time()
                    fn(*args)
                    best[which] = min(best.get(which, float("inf")), time.thread_time() - start)
    finally:
        torch.set_num_threads(threads)
    if best["kernel"] <= best["torch"]:
        return None
    return (
        f"{name} is slower than the torch backend on the same problem: {best['kernel'] * 1e3:.2f} ms against "
        f"{best['torch'] * 1e3:.2f} ms on one thread (best of {rounds})"
    )
