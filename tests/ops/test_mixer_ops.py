"""The Mamba mixer's ops (Vim): every CPU backend against the plain reference, over many shapes,
both directions, with gradients for the differentiable ones; dispatch rules and input checks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from zeromamba.ops import MIXER_BACKENDS, mixer_causal_conv1d, mixer_selective_scan, resolve_mixer_backend
from zeromamba.ops.cpu_build import openmp_runtime
from zeromamba.ops.mixer_cpu import mixer_cpu_available, mixer_cpu_status

from ..helpers import scaled_error

# (batch, L, E, N): single position, short, odd, longer than one chunk, several channel tiles, N = 1 and 64
SHAPES = [(1, 1, 4, 16), (2, 5, 7, 4), (1, 17, 40, 16), (2, 46, 33, 3), (1, 97, 70, 1), (1, 12, 9, 64)]


def _inputs(batch: int, L: int, E: int, N: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    xz = torch.randn(batch, L, 2 * E, generator=g)
    bc = torch.randn(batch, L, 3 + 2 * N, generator=g)
    return dict(
        x=xz[..., :E],  # views into wider tensors, as in the model
        dt=torch.randn(batch, L, E, generator=g) * 0.7,
        A=-torch.exp(torch.randn(E, N, generator=g) * 0.5),
        B=bc[..., 3 : 3 + N],
        C=bc[..., 3 + N :],
        D=torch.randn(E, generator=g),
        z=xz[..., E:],
        dt_bias=torch.linspace(-25, 25, E),  # both sides of softplus' threshold
    )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "backward"])
def test_scan_torch_matches_reference_with_gradients(shape: tuple[int, ...], reverse: bool) -> None:
    p = _inputs(*shape)
    leaves = {k: v.clone().requires_grad_() for k, v in p.items()}
    ref = mixer_selective_scan(**leaves, reverse=reverse, backend="reference")
    ref_grads = torch.autograd.grad(ref.square().sum(), list(leaves.values()))
    leaves2 = {k: v.clone().requires_grad_() for k, v in p.items()}
    out = mixer_selective_scan(**leaves2, reverse=reverse, backend="torch")
    grads = torch.autograd.grad(out.square().sum(), list(leaves2.values()))
    assert out.dtype == torch.float32 and out.shape == p["x"].shape
    assert scaled_error(out, ref) < 1e-5
    for name, g, r in zip(leaves, grads, ref_grads):
        assert scaled_error(g, r) < 1e-4, name


@pytest.mark.skipif(not mixer_cpu_available(), reason=f"CPU kernels unavailable: {mixer_cpu_status()}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "backward"])
def test_fused_cpu_matches_reference(shape: tuple[int, ...], reverse: bool) -> None:
    p = _inputs(*shape, seed=1)
    with torch.no_grad():
        ref = mixer_selective_scan(**p, reverse=reverse, backend="reference")
        out = mixer_selective_scan(**p, reverse=reverse, backend="fused_cpu")
        assert scaled_error(out, ref) < 1e-5
        bare = {**p, "z": None, "D": None, "dt_bias": None}  # no gate, no skip, no bias
        bare["dt"] = bare["dt"].abs()  # without softplus dt must stay positive for a decay
        ref = mixer_selective_scan(**bare, softplus=False, reverse=reverse, backend="reference")
        out = mixer_selective_scan(**bare, softplus=False, reverse=reverse, backend="fused_cpu")
        assert scaled_error(out, ref) < 1e-5


@pytest.mark.parametrize("backend", ["torch", "fused_cpu"])
@pytest.mark.parametrize("reverse", [False, True], ids=["causal", "anticausal"])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_causal_conv1d_backends(backend: str, reverse: bool, activation: str | None) -> None:
    if backend == "fused_cpu" and not mixer_cpu_available():
        pytest.skip(f"CPU kernels unavailable: {mixer_cpu_status()}")
    g = torch.Generator().manual_seed(2)
    for batch, L, E, K in [(2, 1, 5, 4), (1, 3, 8, 4), (2, 37, 45, 4), (1, 20, 6, 2)]:
        x = torch.randn(batch, L, 2 * E, generator=g)[..., E:]
        w, b = torch.randn(E, 1, K, generator=g), torch.randn(E, generator=g)
        leaves = [t.clone().requires_grad_(backend == "torch") for t in (x, w, b)]
        ref_leaves = [t.clone().requires_grad_(backend == "torch") for t in (x, w, b)]
        out = mixer_causal_conv1d(*leaves, activation=activation, reverse=reverse, backend=backend)
        ref = mixer_causal_conv1d(*ref_leaves, activation=activation, reverse=reverse, backend="reference")
        assert scaled_error(out, ref) < 1e-6
        if backend == "torch":
            grads = torch.autograd.grad(out.square().sum(), leaves)
            ref_grads = torch.autograd.grad(ref.square().sum(), ref_leaves)
            assert all(scaled_error(a, r) < 1e-5 for a, r in zip(grads, ref_grads))


def test_causality_and_the_reverse_direction() -> None:
    """Changing the input at one position changes the forward outputs only from there on and the
    backward ones only up to there."""
    p = _inputs(1, 30, 8, 4, seed=3)
    changed = {**p, "x": p["x"].clone()}
    changed["x"][:, 12] += 1.0
    for reverse, untouched in ((False, slice(0, 12)), (True, slice(13, 30))):
        for backend in ("reference", "torch"):
            a = mixer_selective_scan(**p, reverse=reverse, backend=backend)
            b = mixer_selective_scan(**changed, reverse=reverse, backend=backend)
            assert torch.equal(a[:, untouched], b[:, untouched])
            assert not torch.equal(a[:, 12], b[:, 12])
            ca = mixer_causal_conv1d(p["x"], torch.ones(8, 4), reverse=reverse, backend=backend)
            cb = mixer_causal_conv1d(changed["x"], torch.ones(8, 4), reverse=reverse, backend=backend)
            assert torch.equal(ca[:, untouched], cb[:, untouched])


def test_dispatch_choices_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    x = torch.zeros(1, 3, 4)
    assert MIXER_BACKENDS == ("auto", "reference", "torch", "fused_cpu", "triton", "mamba", "chunked")
    expected = "fused_cpu" if mixer_cpu_available() else "torch"
    assert resolve_mixer_backend("auto", x) == expected
    assert resolve_mixer_backend("auto", x, needs_grad=True) == "torch"  # the kernels are forward only
    monkeypatch.setenv("ZEROMAMBA_SCAN_BACKEND", "reference")
    assert resolve_mixer_backend("auto", x) == "reference"
    monkeypatch.delenv("ZEROMAMBA_SCAN_BACKEND")
    with pytest.raises(ValueError, match="unknown mixer backend"):
        resolve_mixer_backend("fast", x)
    with pytest.raises(RuntimeError, match="forward only"):
        resolve_mixer_backend("fused_cpu", x, needs_grad=True)
    with pytest.raises(RuntimeError, match="needs CUDA tensors"):
        resolve_mixer_backend("mamba", x)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="'triton' needs CUDA"):
        resolve_mixer_backend("triton", x)
    p = _inputs(1, 4, 3, 2)
    with pytest.raises(ValueError, match="B and C must be"):
        mixer_selective_scan(**{**p, "B": p["B"][..., :1]})
    with pytest.raises(ValueError, match="activation"):
        mixer_causal_conv1d(p["x"], torch.ones(3, 4), activation="relu")


def test_training_under_auto_takes_the_differentiable_path() -> None:
    p = _inputs(1, 9, 5, 3)
    leaves = {k: v.clone().requires_grad_() for k, v in p.items()}
    out = mixer_selective_scan(**leaves)  # "auto" with autograd on: torch, not the forward-only kernel
    assert out.requires_grad
    out.sum().backward()
    assert all(v.grad is not None for v in leaves.values())


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "mamba"])
def test_cuda_backends_match_reference(backend: str) -> None:
    from zeromamba.ops.mixer_cuda import causal_conv1d_available, mamba_ssm_available

    if backend == "mamba" and not (mamba_ssm_available() and causal_conv1d_available()):
        pytest.skip("mamba-ssm / causal-conv1d not installed (pip install 'zeromamba[cuda]')")
    for shape in SHAPES:
        p = _inputs(*shape)
        for reverse in (False, True):
            ref = mixer_selective_scan(**p, reverse=reverse, backend="reference")
            with torch.no_grad():
                out = mixer_selective_scan(**{k: v.cuda() for k, v in p.items()}, reverse=reverse, backend=backend)
            assert scaled_error(out.cpu(), ref) < 1e-5
            w = torch.randn(shape[2], 4)
            ref = mixer_causal_conv1d(p["x"], w, p["D"], reverse=reverse, backend="reference")
            with torch.no_grad():
                out = mixer_causal_conv1d(p["x"].cuda(), w.cuda(), p["D"].cuda(), reverse=reverse, backend=backend)
            assert scaled_error(out.cpu(), ref) < 1e-5


MIXER_THREADS_PROBE = """
import torch
from zeromamba.ops import mixer_causal_conv1d, mixer_selective_scan
from zeromamba.ops.mixer_cpu import mixer_cpu_info
g = torch.Generator().manual_seed(3)
batch, L, E, N = 2, 29, 200, 4  # 200 channels: split over 1, 2 and 3 threads, the last tile partial
xz = torch.randn(batch, L, 2 * E, generator=g)
bc = torch.randn(batch, L, 2 * N, generator=g)
p = dict(x=xz[..., :E], dt=torch.randn(batch, L, E, generator=g) * 0.7, A=-torch.rand(E, N, generator=g) - 0.1,
         B=bc[..., :N], C=bc[..., N:], D=torch.randn(E, generator=g), z=xz[..., E:],
         dt_bias=torch.randn(E, generator=g))
w, b = torch.randn(E, 1, 4, generator=g), torch.randn(E, generator=g)
with torch.inference_mode():
    ref_scan = mixer_selective_scan(**p, reverse=True, backend="reference")
    ref_conv = mixer_causal_conv1d(p["x"], w, b, activation="silu", backend="reference")
    outs = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        outs.append((mixer_selective_scan(**p, reverse=True, backend="fused_cpu"),
                     mixer_causal_conv1d(p["x"], w, b, activation="silu", backend="fused_cpu")))
same = all(torch.equal(s, outs[0][0]) and torch.equal(c, outs[0][1]) for s, c in outs)
err_scan = float((outs[0][0] - ref_scan).abs().max() / ref_scan.abs().max())
err_conv = float((outs[0][1] - ref_conv).abs().max() / ref_conv.abs().max())
print(mixer_cpu_info()["variant"], same, err_scan < 1e-5 and err_conv < 1e-6)
"""


@pytest.mark.skipif(not mixer_cpu_available(), reason=f"CPU kernels unavailable: {mixer_cpu_status()}")
@pytest.mark.parametrize("openmp", ["1", "0"])
def test_mixer_kernels_split_channels_over_threads_without_changing_the_result(tmp_path, openmp: str) -> None:
    # the OpenMP build runs on PyTorch's own worker threads, the other on a pool of Python threads;
    # each thread owns whole channel tiles either way, so any thread count gives the same bits
    env = dict(os.environ, ZEROMAMBA_CACHE_DIR=str(tmp_path), ZEROMAMBA_CPU_KERNEL_OPENMP=openmp)
    cmd = [sys.executable, "-c", MIXER_THREADS_PROBE]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    variant, same, close = run.stdout.split()
    want = "openmp" if openmp == "1" and openmp_runtime() is not None else "native"
    assert (variant, same, close) == (want, "True", "True")
