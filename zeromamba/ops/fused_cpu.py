"""A fused CPU kernel for SS2D's scan with ``d_state == 1``, compiled on first use.

The eager PyTorch path needs about a dozen passes over the scan's data (each one a full read and
write of ``4 * d_inner * L`` floats); this C kernel makes one, the dt projection included, with
inline vectorisable ``exp`` and ``softplus`` (within 2.5 and 4.5 ulp of the exact values). It reads x_proj's
output as the matrix product leaves it, so nothing is permuted or copied on the way in.
It is an optional accelerator for inference:

* built with the system C compiler (``$CC``, else ``cc``/``gcc``) into the user cache, atomically,
  by :mod:`zeromamba.ops.cpu_build`; where it can, parallel on PyTorch's own OpenMP threads (else
  on a small pool of Python threads, one channel range each);
* checked once against the PyTorch path on a small random problem before it is trusted, and
  timed against it on a small stage-sized problem: a build slower than the PyTorch path is not
  used (:mod:`zeromamba.ops.self_check`; a warning gives both timings);
* built for the best instruction set of the CPU it runs on, or the one ``$ZEROMAMBA_CPU_ISA``
  names (``x86-64-v3`` etc., :func:`zeromamba.ops.cpu_build.isa_levels`); :func:`select_kernel`
  swaps in another build (the benchmarks compare them);
* used only for float32 or bfloat16 CPU tensors (the scan itself always runs in float32),
  ``d_state == 1`` and no autograd; everything else, or any failure to build, falls back to the
  pure-PyTorch backend (``ZEROMAMBA_DISABLE_CPU_KERNEL=1`` turns it off);
* registered as the custom op ``torch.ops.zeromamba.ss2d_scan_dstate1`` (with a shape-only fake
  for tracing), so that a ``torch.compile``-d model keeps the kernel: inductor sees one opaque op
  in the graph instead of tracing into ctypes, which it cannot.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from .cpu_build import build_library
from .fused_linear import linear
from .packed_weights import kept_form
from .self_check import self_check, speed_check
from .torch_scan import cross_scan_torch
from .tracing import is_tracing

__all__ = [
    "cross_scan_fused_cpu",
    "fused_cpu_available",
    "fused_cpu_available_when_compiling",
    "kernel_build",
    "kernel_info",
    "kernel_status",
    "select_kernel",
    "ss2d_scan_dstate1",
]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_state: dict[str, Any] = {}  # "fn" (dtype of u -> kernel), "openmp" (bool), "build", "lanes", "error"
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_CHECK_SHAPE = (2, 9, 7, 40, 3)  # (B, H, W, D, dt_rank) of the self-check: odd sizes, several chunks
_SPEED_SHAPE = (1, 14, 14, 384, 12)  # the speed check: ZeroMamba-S's third stage at 224, half its channels


def _build(isa: str | None = None, compiler: str | None = None) -> dict[str, Any]:
    lib, build = build_library("ss2d_scan.c", isa=isa, compiler=compiler)
    fns = {}
    for dtype, symbol in ((torch.float32, "ss2d_scan_dstate1"), (torch.bfloat16, "ss2d_scan_dstate1_bf16")):
        fn = getattr(lib, symbol)
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p] * 7 + [ctypes.c_int64] * 8
        fns[dtype] = fn
    return {
        "fn": fns,
        "openmp": bool(lib.ss2d_scan_uses_openmp()),
        "build": build,
        "lanes": int(lib.ss2d_scan_vector_lanes()),
        "fma": bool(lib.ss2d_scan_has_fma()),
    }


def _checked(isa: str | None = None, compiler: str | None = None) -> dict[str, Any]:
    """A fresh build's state: built, checked against the PyTorch path and timed against it."""
    if os.environ.get("ZEROMAMBA_DISABLE_CPU_KERNEL", "") not in ("", "0"):
        return {"error": "disabled by ZEROMAMBA_DISABLE_CPU_KERNEL"}
    try:
        state = _build(isa, compiler)
    except ValueError as e:  # an instruction set this CPU cannot run: the user asked for it, say so
        log.warning("zeromamba: fused CPU scan kernel unavailable, using the PyTorch path (%s)", e)
        return {"error": str(e)}
    except Exception as e:  # no compiler, odd platform, read-only cache...
        log.info("zeromamba: fused CPU scan kernel unavailable, using the PyTorch path (%s)", e)
        return {"error": str(e)}
    name = f"fused CPU ({_describe(state)})"
    kernel = functools.partial(_cross_scan_with, state)
    error = self_check(name, kernel, torch.device("cpu"), _CHECK_SHAPE)
    if error is None:
        error = speed_check(f"the {name} scan kernel", kernel, cross_scan_torch, _speed_problem())
        if error is not None:
            log.warning("zeromamba: %s; using the PyTorch path", error)
    return {**state, "error": error} if error is not None else state


def _speed_problem() -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    B, H, W, D, R = _SPEED_SHAPE
    return [
        torch.randn(B, H, W, D, generator=g),
        torch.randn(4, R + 2, D, generator=g) * 0.3,
        torch.randn(4, D, R, generator=g) * 0.3,
        torch.randn(4, D, generator=g) * 0.3,
        torch.randn(4 * D, 1, generator=g) * 0.5,
        torch.randn(4 * D, generator=g),
    ]


def _describe(state: dict[str, Any]) -> str:
    build = state["build"]
    return f"{build.isa}, {state['lanes']} lanes, {os.path.basename(build.compiler)}"


def _load() -> dict[torch.dtype, Any] | None:
    with _lock:
        if "fn" in _state or "error" in _state:
            return None if _state.get("error") else _state.get("fn")
    state = _checked()  # outside the lock: the checks run the kernel and the PyTorch path
    with _lock:
        if not _state:  # another thread may have finished first: keep its verdict
            _state.update(state)
        return None if _state.get("error") else _state.get("fn")


def select_kernel(isa: str | None = None, compiler: str | None = None) -> str:
    """Build the kernel for ``isa`` with ``compiler`` (defaults as in
    :func:`~zeromamba.ops.cpu_build.build_library`), check it, and make it the one in use from now
    on; returns :func:`kernel_status`. A build that fails to compile, agree or keep up with the
    PyTorch path leaves the PyTorch path in use."""
    state = _checked(isa, compiler)
    with _lock:
        _state.clear()
        _state.update(state)
    return kernel_status()


def fused_cpu_available() -> bool:
    """True when the kernel is built (building it now if needed) and passed its self-check."""
    return _load() is not None


def kernel_status() -> str:
    """``"ok"`` or why the kernel is not in use."""
    _load()
    return str(_state["error"]) if _state.get("error") else "ok"


def kernel_build() -> str | None:
    """Which build of the kernel is in use (``"openmp"``, ``"native"`` or ``"portable"``, see
    :mod:`zeromamba.ops.cpu_build`), or ``None`` when it is unavailable."""
    return None if _load() is None else _state["build"].variant


def kernel_info() -> dict[str, Any]:
    """What the kernel in use is: ``status``, and when built ``variant``, ``isa``, ``compiler``,
    ``compiler_version``, ``vector_lanes`` (floats per SIMD register) and ``fma``."""
    _load()
    info: dict[str, Any] = {"status": kernel_status()}
    build = _state.get("build")
    if build is not None:
        info.update(
            variant=build.variant,
            isa=build.isa,
            compiler=build.compiler,
            compiler_version=build.compiler_version,
            vector_lanes=_state["lanes"],
            fma=_state["fma"],
        )
    return info


def _forget_pool_after_fork() -> None:
    global _pool
    _pool = None  # the parent's worker threads do not exist in a forked child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _threads() -> ThreadPoolExecutor:
    """The helper threads (one fewer than PyTorch's intra-op threads: the caller works too); a
    bigger pool replaces the old one when the thread count has grown since."""
    global _pool, _pool_size
    want = max(1, torch.get_num_threads() - 1)
    with _lock:
        if _pool is None or _pool_size < want:
            old, _pool, _pool_size = _pool, ThreadPoolExecutor(max_workers=want, thread_name_prefix="zm-scan"), want
            if old is not None:
                old.shutdown(wait=False)  # its queued work still runs
        return _pool


def _require_kernel() -> dict[str, Any]:
    if _load() is None:
        raise RuntimeError(f"the fused CPU scan kernel is unavailable: {kernel_status()}")
    return _state


def ss2d_scan_dstate1(
    u: torch.Tensor,
    xdbl: torch.Tensor,
    w_dt: torch.Tensor,
    bias: torch.Tensor,
    A: torch.Tensor,
    Dsum: torch.Tensor,
    H: int,
    W: int,
) -> torch.Tensor:
    """Run the kernel on ``B`` images of ``H x W`` positions and ``D`` channels, dt rank ``R``.

    Shapes: ``u`` ``(B, L, D)`` float32 or bfloat16; ``xdbl`` ``(B, L, 4, R + 2)`` (x_proj's output:
    ``dt_low, B, C`` per direction), ``w_dt`` ``(4, R, D)``, ``bias`` and ``A`` ``(4, D)``, ``Dsum``
    ``(D,)``, all float32. Returns ``y`` ``(B, L, D)`` float32.
    """
    return _run(_require_kernel(), u, xdbl, w_dt, bias, A, Dsum, H, W)


def _run(state: dict[str, Any], u, xdbl, w_dt, bias, A, Dsum, H: int, W: int) -> torch.Tensor:
    """:func:`ss2d_scan_dstate1` with the build in ``state`` (the self-check runs a build before it
    is the one in use)."""
    fns = state["fn"]
    B, L, D = u.shape
    R = w_dt.shape[1]
    if u.dtype not in fns:
        u = u.float()
    u = u.contiguous()
    xdbl, w_dt, bias, A, Dsum = (t.to(torch.float32).contiguous() for t in (xdbl, w_dt, bias, A, Dsum))
    if any(t.device.type != "cpu" for t in (u, xdbl, w_dt, bias, A, Dsum)):
        raise RuntimeError("the fused CPU scan kernel needs CPU tensors")
    if xdbl.shape != (B, L, 4, R + 2) or w_dt.shape != (4, R, D) or L != H * W:
        raise ValueError("inconsistent shapes for the fused CPU scan kernel")
    fn = fns[u.dtype]
    y = torch.empty(B, L, D, dtype=torch.float32)
    ptrs = [t.data_ptr() for t in (u, xdbl, w_dt, bias, A, Dsum, y)]
    n_threads = max(1, torch.get_num_threads())
    if state["openmp"]:  # the kernel splits its work over PyTorch's own OpenMP threads
        _ok(fn(*ptrs, B, H, W, D, R, 0, D, n_threads))
        return y
    # whole channel tiles (32) per thread, so that no two threads write the same cache line
    tiles = -(-D // 32)
    n_threads = min(n_threads, tiles)
    bounds = [min(D, 32 * (tiles * i // n_threads)) for i in range(n_threads)] + [D]

    def run(i: int) -> None:
        _ok(fn(*ptrs, B, H, W, D, R, bounds[i], bounds[i + 1], 1))

    # ctypes drops the GIL during the call, so the pool's threads and this one run channel ranges
    # in parallel (this thread takes the first range instead of waiting idle)
    others = [_threads().submit(run, i) for i in range(1, n_threads)]
    run(0)
    for f in others:
        f.result()
    return y


def _ok(status: int) -> None:
    if status != 0:
        raise MemoryError("the fused CPU scan kernel could not allocate its per-thread buffers")


@torch.library.custom_op("zeromamba::ss2d_scan_dstate1", mutates_args=())
def _ss2d_scan_op(
    u: torch.Tensor,
    xdbl: torch.Tensor,
    w_dt: torch.Tensor,
    bias: torch.Tensor,
    A: torch.Tensor,
    Dsum: torch.Tensor,
    H: int,
    W: int,
) -> torch.Tensor:
    return ss2d_scan_dstate1(u, xdbl, w_dt, bias, A, Dsum, H, W)


@_ss2d_scan_op.register_fake
def _ss2d_scan_shape(u, xdbl, w_dt, bias, A, Dsum, H, W) -> torch.Tensor:
    return u.new_empty(u.shape, dtype=torch.float32)


@torch.compiler.assume_constant_result
def fused_cpu_available_when_compiling() -> bool:
    """:func:`fused_cpu_available`, run once while ``torch.compile`` traces and kept as a constant
    (tracing into the build and its lock would break the graph)."""
    return fused_cpu_available()


def cross_scan_fused_cpu(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds) -> torch.Tensor:
    """:func:`~zeromamba.ops.cross_selective_scan` through the fused kernel (``d_state == 1``).

    The projections run in the input dtype, as the official code does; the scan reads float32
    (a bfloat16 ``x`` is read as it is and widened inside the kernel).
    """
    # the custom op in eager mode too (its dispatch costs nothing next to the kernel): torch.compile
    # meets the same call and keeps it as one node
    args = _kernel_inputs(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    return _ss2d_scan_op(*args).view(x.shape)


def _cross_scan_with(state: dict[str, Any], x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds):
    """:func:`cross_scan_fused_cpu` with the build in ``state``, before it is the one in use."""
    args = _kernel_inputs(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds)
    return _run(state, *args).view(x.shape)


def _kernel_inputs(x, x_proj_weight, dt_projs_weight, dt_projs_bias, A_logs, Ds) -> tuple:
    """The kernel's arguments from :func:`~zeromamba.ops.cross_selective_scan`'s: x_proj applied."""
    B, H, W, D = x.shape
    K, _, R = dt_projs_weight.shape
    f32 = torch.float32
    u = x.reshape(B, H * W, D)
    xdbl = linear(u, x_proj_weight.to(x.dtype).reshape(K * (R + 2), D)).view(B, H * W, K, R + 2)
    forms: tuple[tuple[torch.Tensor, str, Any], ...] = (
        (dt_projs_weight, "scan_w_dt", lambda w: w.to(f32).transpose(1, 2).contiguous()),
        (dt_projs_bias, "scan_bias", lambda b: b.to(f32).contiguous()),
        (A_logs, "scan_A", lambda a: -torch.exp(a.to(f32)).view(K, D)),
        (Ds, "scan_Dsum", lambda d: d.to(f32).view(K, D).sum(0)),
    )
    # fixed functions of the weights: kept beside them (a few small operators a block otherwise),
    # computed in the graph while one is traced
    tracing = is_tracing()
    constants = [make(t) if tracing else kept_form(t, name, make) for t, name, make in forms]
    return (u, xdbl, *constants, H, W)
