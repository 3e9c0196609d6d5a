"""The Mamba mixer's operations as C kernels for CPU inference (``csrc/mamba_mixer.c``).

The PyTorch scan materialises ``(batch, L, E, N)`` decay and input tensors and passes over them
several times; the kernel keeps one tile of the state in L1 and makes one pass. It is:

* built on first use with the system compiler (:mod:`zeromamba.ops.cpu_build`);
* checked once against the PyTorch path on small awkward problems before it is trusted, and the
  scan timed against it on a small Vim-sized problem: a build slower than the PyTorch path is not
  used (a warning gives both timings);
* built for the CPU's best instruction set, or the one ``$ZEROMAMBA_CPU_ISA`` names;
  :func:`select_mixer_kernels` swaps in another build (the benchmarks compare them);
* used for CPU inference only (no autograd); inputs are computed in float32. Any failure to build
  or to agree falls back to the PyTorch path (``ZEROMAMBA_DISABLE_CPU_KERNEL=1`` turns it off).

Channels are split over threads: in the OpenMP build (where PyTorch runs on an OpenMP runtime, as its
Linux wheels do) over PyTorch's own worker threads inside the kernel, else over a pool of Python threads
(ctypes releases the GIL during a call). Both kernels are also
registered as custom ops (``torch.ops.zeromamba.mamba_scan_cpu``, ``torch.ops.zeromamba.causal_conv1d_cpu``,
with shape-only fakes), which is how a ``torch.compile``-d Vim keeps them: inductor calls each as one node.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import torch

from .cpu_build import build_library
from .mixer_torch import causal_conv1d_torch, selective_scan_torch
from .self_check import speed_check

__all__ = [
    "causal_conv1d_cpu",
    "mixer_cpu_available",
    "mixer_cpu_available_when_compiling",
    "mixer_cpu_info",
    "mixer_cpu_status",
    "select_mixer_kernels",
    "selective_scan_cpu",
]

log = logging.getLogger(__name__)

#: relative error (max abs difference over max abs value) the kernels must stay under on the check
TOLERANCE = 1e-5
MAX_STATE = 256  # the kernel's limit on d_state (MAX_STATE in the C source)

_lock = threading.Lock()
_state: dict[str, Any] = {}  # "ready", "lib" (None when unusable), "error", "build", "lanes", "fma"
_pool: ThreadPoolExecutor | None = None
_checking = threading.local()
_SPEED_SHAPE = (1, 197, 192, 16)  # (batch, L, E, N) of the speed check: Vim-S at 224, a quarter of its channels

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p


def _build(isa: str | None = None, compiler: str | None = None) -> dict[str, Any]:
    # the OpenMP build runs on PyTorch's own worker threads; without it the caller splits the channels
    lib, build = build_library("mamba_mixer.c", isa=isa, compiler=compiler)
    scan_args = (
        [_ptr, _i64, _ptr, _i64, _ptr, ctypes.c_int, _ptr, _ptr, _i64, _ptr, _ptr, _ptr, _i64, _ptr]
        + [_i64] * 6
        + [ctypes.c_int]
    )
    conv_args = [_ptr, _i64, _ptr, _ptr, _ptr] + [_i64] * 6 + [ctypes.c_int, ctypes.c_int]
    lib.mamba_scan_f32.restype = lib.mamba_scan_f32_threads.restype = ctypes.c_int
    lib.mamba_scan_f32.argtypes, lib.mamba_scan_f32_threads.argtypes = scan_args, [*scan_args, _i64]
    lib.causal_conv1d_f32.restype = lib.causal_conv1d_f32_threads.restype = None
    lib.causal_conv1d_f32.argtypes, lib.causal_conv1d_f32_threads.argtypes = conv_args, [*conv_args, _i64]
    lanes, fma = int(lib.mamba_mixer_vector_lanes()), bool(lib.mamba_mixer_has_fma())
    return {"lib": lib, "build": build, "lanes": lanes, "fma": fma}


def _checked(isa: str | None = None, compiler: str | None = None) -> dict[str, Any]:
    """A fresh build's state: built, checked against the PyTorch path and timed against it."""
    if os.environ.get("ZEROMAMBA_DISABLE_CPU_KERNEL", "") not in ("", "0"):
        return {"ready": True, "lib": None, "error": "disabled by ZEROMAMBA_DISABLE_CPU_KERNEL"}
    try:
        state = _build(isa, compiler)
    except Exception as e:  # no compiler, odd platform, read-only cache, an ISA this CPU lacks...
        level = log.warning if isinstance(e, ValueError) else log.info
        level("zeromamba: Mamba mixer CPU kernels unavailable, using the PyTorch path (%s)", e)
        return {"ready": True, "lib": None, "error": str(e)}
    _checking.lib = state["lib"]  # the wrappers below use it for the checks before it is trusted
    try:
        error = _self_check()
        if error is None:
            build = state["build"]
            name = f"the Mamba mixer CPU scan kernel ({build.isa}, {state['lanes']} lanes, {build.compiler})"
            error = speed_check(name, selective_scan_cpu, selective_scan_torch, _speed_problem())
    finally:
        _checking.lib = None
    if error is not None:
        log.warning("zeromamba: Mamba mixer CPU kernels disabled, using the PyTorch path: %s", error)
        return {**state, "ready": True, "lib": None, "error": error}
    return {**state, "ready": True, "error": None}


def _load() -> Any:
    """The checked library, or ``None`` (building and checking it on the first call)."""
    with _lock:
        if "ready" in _state:
            return _state.get("lib")
    state = _checked()
    with _lock:
        if "ready" not in _state:  # another thread may have finished first: keep its verdict
            _state.update(state)
        return _state.get("lib")


def select_mixer_kernels(isa: str | None = None, compiler: str | None = None) -> str:
    """Build the kernels for ``isa`` with ``compiler`` (defaults as in
    :func:`~zeromamba.ops.cpu_build.build_library`), check them, and make them the ones in use from
    now on; returns :func:`mixer_cpu_status`. A build that fails to compile, agree or keep up with
    the PyTorch path leaves the PyTorch path in use."""
    state = _checked(isa, compiler)
    with _lock:
        _state.clear()
        _state.update(state)
    return mixer_cpu_status()


def mixer_cpu_info() -> dict[str, Any]:
    """What the kernels in use are: ``status``, and when built ``variant`` (``"openmp"``: parallel on
    PyTorch's OpenMP threads; ``"native"`` / ``"portable"``: on a pool of threads), ``isa``, ``compiler``,
    ``compiler_version``, ``vector_lanes`` and ``fma``."""
    info: dict[str, Any] = {"status": mixer_cpu_status()}
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


def _speed_problem() -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(0)
    batch, L, E, N = _SPEED_SHAPE
    x, z = torch.randn(batch, L, E, generator=g), torch.randn(batch, L, E, generator=g)
    dt = torch.randn(batch, L, E, generator=g) * 0.5
    A = -torch.rand(E, N, generator=g) * 2
    B, C = torch.randn(batch, L, N, generator=g), torch.randn(batch, L, N, generator=g)
    return (x, dt, A, B, C, torch.randn(E, generator=g), z, torch.randn(E, generator=g))


def _self_check() -> str | None:
    """``None`` when both kernels agree with the PyTorch path on small awkward problems."""
    g = torch.Generator().manual_seed(0)
    batch, L, E, N, K = 2, 37, 45, 5, 4  # odd sizes, a partial channel tile
    try:
        with torch.no_grad():
            x = torch.randn(batch, L, 2 * E, generator=g)[..., :E]  # a strided view, as in the model
            dt = torch.randn(batch, L, E, generator=g) * 0.5
            A = -torch.rand(E, N, generator=g) * 2
            bc = torch.randn(batch, L, 3 * N, generator=g)
            D, bias, z = torch.randn(E, generator=g), torch.randn(E, generator=g), torch.randn(batch, L, E, generator=g)
            w = torch.randn(E, 1, K, generator=g) * 0.5
            for reverse in (False, True):
                args = (x, dt, A, bc[..., N : 2 * N], bc[..., 2 * N :], D, z, bias)
                want = selective_scan_torch(*args, reverse=reverse)
                got = selective_scan_cpu(*args, reverse=reverse)
                _agree(got, want, "selective scan")
                want = causal_conv1d_torch(x, w, bias, "silu", reverse)
                _agree(causal_conv1d_cpu(x, w, bias, "silu", reverse), want, "causal conv1d")
    except Exception as e:  # a wrong result, or a crash inside the kernel wrappers
        return f"self-check failed: {e}"
    return None


def _agree(got: torch.Tensor, want: torch.Tensor, what: str) -> None:
    err = ((got - want).abs().max() / want.abs().max()).item()
    if not err < TOLERANCE:
        raise RuntimeError(f"{what}: relative error {err:.2e}")


def mixer_cpu_available() -> bool:
    """True when the kernels are built (building them now if needed) and passed their self-check."""
    return _load() is not None


def mixer_cpu_status() -> str:
    """``"ok"`` or why the kernels are not in use."""
    return "ok" if _load() is not None else str(_state.get("error") or "not loaded")


def _forget_pool_after_fork() -> None:
    global _pool
    _pool = None  # the parent's worker threads do not exist in a forked child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _run_over_channels(E: int, call: Any, lib: Any) -> None:
    """``call(e0, e1)`` on channel ranges, in parallel threads when there are enough channels: the
    kernel's own OpenMP threads (``call(0, E, n)``) where ``lib`` was built with OpenMP, else a pool."""
    global _pool
    n = max(1, min(torch.get_num_threads(), E // 32))
    if n > 1 and lib.mamba_mixer_uses_openmp():
        call(0, E, n)
        return
    bounds = [E * i // n for i in range(n)] + [E]
    if n == 1:
        call(0, E)
        return
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()), thread_name_prefix="zm-mixer")
        pool = _pool
    for f in [pool.submit(call, bounds[i], bounds[i + 1]) for i in range(n)]:
        f.result()


def _lib() -> Any:
    lib = getattr(_checking, "lib", None)
    if lib is not None:  # this thread is running the self-check
        return lib
    lib = _load()
    if lib is None:
        raise RuntimeError(f"the Mamba mixer CPU kernels are unavailable: {mixer_cpu_status()}")
    return lib


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32 ``(batch, L, W)`` whose last dim is contiguous and rows evenly strided."""
    t = t.float()
    if t.stride(-1) != 1 or t.stride(0) != t.shape[1] * t.stride(1):
        t = t.contiguous()
    return t


# The kernels are custom ops, called as such in eager mode too (the dispatcher's cost is lost in the
# kernel's noise), so that torch.compile meets the same call and keeps it as one node.
@torch.library.custom_op("zeromamba::mamba_scan_cpu", mutates_args=())
def _mamba_scan_op(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    dt_bias: torch.Tensor | None,
    softplus: bool,
    reverse: bool,
) -> torch.Tensor:
    lib = _lib()
    batch, L, E = x.shape
    N = A.shape[1]
    if N > MAX_STATE:
        raise RuntimeError(f"the CPU kernel supports d_state up to {MAX_STATE} (got {N})")
    x, dt = _rows(x), _rows(dt)
    B, C = _rows(B), _rows(C)
    if B.stride(1) != C.stride(1):
        B, C = B.contiguous(), C.contiguous()
    z = _rows(z) if z is not None else None
    bias = dt_bias.float().contiguous() if dt_bias is not None else None
    At = A.float().t().contiguous()
    D = (D.float() if D is not None else x.new_zeros(E)).contiguous()
    y = torch.empty(batch, L, E, dtype=torch.float32)
    keep = (x, dt, B, C, z, bias, At, D)  # alive until the threads are done

    def call(e0: int, e1: int, *threads: int) -> None:
        status = (lib.mamba_scan_f32_threads if threads else lib.mamba_scan_f32)(
            x.data_ptr(),
            x.stride(1),
            dt.data_ptr(),
            dt.stride(1),
            None if bias is None else bias.data_ptr(),
            int(softplus),
            B.data_ptr(),
            C.data_ptr(),
            B.stride(1),
            At.data_ptr(),
            D.data_ptr(),
            None if z is None else z.data_ptr(),
            0 if z is None else z.stride(1),
            y.data_ptr(),
            batch,
            L,
            E,
            N,
            e0,
            e1,
            int(reverse),
            *threads,
        )
        if status != 0:
            raise RuntimeError(f"the CPU scan kernel refused d_state={N}")

    _run_over_channels(E, call, lib)
    del keep
    return y


@torch.library.custom_op("zeromamba::causal_conv1d_cpu", mutates_args=())
def _causal_conv1d_op(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, activation: str | None, reverse: bool
) -> torch.Tensor:
    lib = _lib()
    if activation not in (None, "silu"):
        raise ValueError(f"activation must be None or 'silu' (got {activation!r})")
    batch, L, E = x.shape
    x = _rows(x)
    wt = weight.reshape(E, -1).float().t().contiguous()  # (K, E)
    b = bias.float().contiguous() if bias is not None else None
    y = torch.empty(batch, L, E, dtype=torch.float32)

    def call(e0: int, e1: int, *threads: int) -> None:
        (lib.causal_conv1d_f32_threads if threads else lib.causal_conv1d_f32)(
            x.data_ptr(),
            x.stride(1),
            wt.data_ptr(),
            None if b is None else b.data_ptr(),
            y.data_ptr(),
            batch,
            L,
            E,
            wt.shape[0],
            e0,
            e1,
            int(reverse),
            int(activation == "silu"),
            *threads,
        )

    _run_over_channels(E, call, lib)
    return y


@_mamba_scan_op.register_fake
def _mamba_scan_shape(x, dt, A, B, C, D, z, dt_bias, softplus, reverse) -> torch.Tensor:
    return x.new_empty(x.shape, dtype=torch.float32)


@_causal_conv1d_op.register_fake
def _causal_conv1d_shape(x, weight, bias, activation, reverse) -> torch.Tensor:
    return x.new_empty(x.shape, dtype=torch.float32)


@torch.compiler.assume_constant_result
def mixer_cpu_available_when_compiling() -> bool:
    """:func:`mixer_cpu_available`, run once while ``torch.compile`` traces and kept as a constant."""
    return mixer_cpu_available()


def selective_scan_cpu(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    dt_bias: torch.Tensor | None = None,
    softplus: bool = True,
    reverse: bool = False,
) -> torch.Tensor:
    """:func:`~zeromamba.ops.mixer_selective_scan` through the C kernel (CPU, forward only)."""
    return _mamba_scan_op(x, dt, A, B, C, D, z, dt_bias, softplus, reverse)


def causal_conv1d_cpu(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    activation: str | None = "silu",
    reverse: bool = False,
) -> torch.Tensor:
    """:func:`~zeromamba.ops.mixer_causal_conv1d` through the C kernel (CPU, forward only)."""
    return _causal_conv1d_op(x, weight, bias, activation, reverse)
