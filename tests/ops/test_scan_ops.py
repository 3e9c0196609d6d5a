"""The scan kernels against the plain reference: outputs and gradients over many shapes."""

from __future__ import annotations

import pytest
import torch

from zeromamba.ops import (
    cross_merge,
    cross_scan,
    cross_selective_scan,
    linear_recurrence,
    resolve_backend,
    scan_order,
    selective_scan_chunked,
    selective_scan_reference,
)
from zeromamba.ops.fused_cpu import cross_scan_fused_cpu
from zeromamba.ops.self_check import self_check

from ..helpers import scaled_error

# (B, H, W, D, N, R): square, non-square, odd, a single row/column, a single position, long sequences
SHAPES = [
    (2, 5, 7, 6, 1, 2),
    (1, 9, 4, 8, 3, 2),
    (1, 1, 1, 4, 1, 1),
    (1, 1, 13, 5, 1, 1),
    (2, 11, 1, 4, 2, 1),
    (3, 13, 11, 4, 1, 2),
    (1, 40, 35, 16, 1, 3),
    (1, 17, 19, 8, 4, 2),
]


def _params(B, H, W, D, N, R, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)

    def r(*s, scale=1.0):
        return (torch.randn(*s, generator=g) * scale).to(dtype)

    return dict(
        x=r(B, H, W, D),
        x_proj_weight=r(4, R + 2 * N, D, scale=0.3),
        dt_projs_weight=r(4, D, R, scale=0.3),
        dt_projs_bias=r(4, D, scale=0.5),
        A_logs=r(4 * D, N, scale=0.5),
        Ds=r(4 * D),
    )


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_torch_backend_matches_reference_outputs_and_grads(shape):
    p = _params(*shape)
    leaves = {k: v.clone().requires_grad_() for k, v in p.items()}
    ref = cross_selective_scan(**leaves, backend="reference")
    ref_grads = torch.autograd.grad(ref.square().sum(), list(leaves.values()))
    leaves2 = {k: v.clone().requires_grad_() for k, v in p.items()}
    out = cross_selective_scan(**leaves2, backend="torch")
    grads = torch.autograd.grad(out.square().sum(), list(leaves2.values()))
    assert scaled_error(out, ref) < 1e-5
    for name, g, gr in zip(leaves, grads, ref_grads):
        assert scaled_error(g, gr) < 1e-4, name
    with torch.no_grad():  # the in-place inference path
        assert scaled_error(cross_selective_scan(**p, backend="torch"), ref.detach()) < 1e-5


@pytest.mark.parametrize("shape", [s for s in SHAPES if s[4] == 1], ids=lambda s: "x".join(map(str, s)))
def test_fused_cpu_matches_reference(shape):
    p = _params(*shape)
    ref = cross_selective_scan(**p, backend="reference")
    with torch.inference_mode():
        out = cross_scan_fused_cpu(**p)
        auto = cross_selective_scan(**p, backend="auto")
    assert scaled_error(out, ref) < 1e-5
    assert scaled_error(auto, ref) < 1e-5


def test_fused_cpu_handles_extreme_dt():
    # softplus threshold (z > 20) and strong decay must agree with the reference too
    p = _params(1, 6, 5, 16, 1, 2)
    p["dt_projs_bias"] = torch.linspace(-30, 30, 64).view(4, 16)
    p["A_logs"] = torch.linspace(-4, 3, 64).view(64, 1)
    ref = cross_selective_scan(**p, backend="reference")
    with torch.no_grad():
        assert scaled_error(cross_scan_fused_cpu(**p), ref) < 1e-5
        assert scaled_error(cross_selective_scan(**p, backend="torch"), ref) < 1e-5


def test_fused_cpu_keeps_its_constants_and_sees_changed_weights():
    # -exp(A_logs), the dt projection transposed and the summed skip weights are kept beside the
    # parameters (made once), and made again when a parameter changes in place (an optimiser step)
    from zeromamba.ops.packed_weights import packed_weight_count, release_packed_weights

    p = {k: torch.nn.Parameter(v) for k, v in _params(2, 5, 7, 6, 1, 2).items()}
    release_packed_weights()
    with torch.inference_mode():
        first = cross_scan_fused_cpu(**p)
        kept = packed_weight_count()
        again = cross_scan_fused_cpu(**p)
    assert kept >= 3 and packed_weight_count() == kept and torch.equal(first, again)
    with torch.no_grad():
        p["A_logs"].add_(0.7)
        p["Ds"].mul_(-1.5)
        p["dt_projs_weight"].mul_(2.0)
    with torch.inference_mode():
        changed = cross_scan_fused_cpu(**p)
    ref = cross_selective_scan(**{k: v.detach() for k, v in p.items()}, backend="reference")
    assert scaled_error(changed, ref) < 1e-5 and scaled_error(first, ref) > 1e-2
    release_packed_weights(p.values())
    assert packed_weight_count() == 0


@pytest.mark.parametrize("backend", ["torch", "fused_cpu"])
def test_bfloat16_inputs(backend):
    p = _params(2, 7, 6, 16, 1, 2, dtype=torch.bfloat16)
    ref = cross_selective_scan(**p, backend="reference")
    with torch.no_grad():
        out = cross_selective_scan(**p, backend=backend)
    assert out.dtype == torch.float32 and ref.dtype == torch.float32
    assert scaled_error(out, ref) < 1e-5


def test_bfloat16_gradients():
    p = _params(1, 6, 9, 8, 2, 2, dtype=torch.bfloat16)
    a = {k: v.clone().requires_grad_() for k, v in p.items()}
    b = {k: v.clone().requires_grad_() for k, v in p.items()}
    ga = torch.autograd.grad(cross_selective_scan(**a, backend="reference").sum(), list(a.values()))
    gb = torch.autograd.grad(cross_selective_scan(**b, backend="torch").sum(), list(b.values()))
    for x, y in zip(ga, gb):
        assert x.dtype == torch.bfloat16
        assert scaled_error(y, x) < 2e-2  # gradients are rounded to bfloat16 at the end


@pytest.mark.parametrize("length", [1, 2, 31, 33, 64, 100, 257])
def test_linear_recurrence_matches_loop(length):
    a = torch.rand(3, length, 5)
    b = torch.randn(3, length, 5)
    h, want = torch.zeros(3, 5), []
    for t in range(length):
        h = a[:, t] * h + b[:, t]
        want.append(h)
    want = torch.stack(want, 1)
    assert torch.allclose(linear_recurrence(a, b, dim=1), want, atol=1e-5)
    a.requires_grad_()
    b.requires_grad_()
    h = linear_recurrence(a, b, dim=1)
    ga, gb = torch.autograd.grad(h.sum(), [a, b], allow_unused=True, materialize_grads=True)
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    h2, hs = torch.zeros(3, 5), []
    for t in range(length):
        h2 = a2[:, t] * h2 + b2[:, t]
        hs.append(h2)
    ga2, gb2 = torch.autograd.grad(torch.stack(hs, 1).sum(), [a2, b2], allow_unused=True, materialize_grads=True)
    assert torch.allclose(ga, ga2, atol=1e-4) and torch.allclose(gb, gb2, atol=1e-4)


@pytest.mark.parametrize("N, groups", [(1, 1), (4, 1), (2, 2)])
def test_selective_scan_chunked_matches_reference(N, groups):
    batch, dim, L = 2, 6, 70
    u = torch.randn(batch, dim, L, requires_grad=True)
    delta = torch.randn(batch, dim, L, requires_grad=True)
    A = (-torch.rand(dim, N) - 0.1).requires_grad_()
    B = torch.randn(batch, groups, N, L, requires_grad=True)
    C = torch.randn(batch, groups, N, L, requires_grad=True)
    D = torch.randn(dim, requires_grad=True)
    bias = torch.randn(dim, requires_grad=True)
    args = (u, delta, A, B, C, D, bias, True)
    ref = selective_scan_reference(*args)
    out = selective_scan_chunked(*args)
    assert scaled_error(out, ref) < 1e-5
    g_ref = torch.autograd.grad(ref.sum(), [u, delta, A, B, C, D, bias])
    g_out = torch.autograd.grad(out.sum(), [u, delta, A, B, C, D, bias])
    for x, y in zip(g_out, g_ref):
        assert scaled_error(x, y) < 1e-4


@pytest.mark.parametrize("H, W", [(1, 1), (1, 5), (4, 1), (3, 5), (6, 6), (7, 4)])
def test_cross_scan_orders_and_merge_are_exact(H, W):
    x = torch.arange(2 * 3 * H * W, dtype=torch.float32).view(2, 3, H, W)
    xs = cross_scan(x)
    flat = x.flatten(2)
    order = scan_order(H, W)
    for k in range(4):
        assert torch.equal(xs[:, k], flat[:, :, order[k]])
    # row-major then column-major visit every position exactly once; reverses are reverses
    assert torch.equal(order[2], order[0].flip(0)) and torch.equal(order[3], order[1].flip(0))
    assert torch.equal(order[1].sort().values, torch.arange(H * W))
    if H > 1 and W > 1:
        assert order[1][1].item() == W  # column-major: second step is one row down
    # merging the four scans of x gives back 4x at every position
    merged = cross_merge(xs.view(2, 4, 3, H, W))
    assert torch.equal(merged, 4 * flat)


def test_backend_selection():
    x = torch.zeros(1, 2, 2, 4)
    assert resolve_backend("torch", x) == "torch"
    assert resolve_backend("auto", x, d_state=1, needs_grad=False) == "fused_cpu"
    assert resolve_backend("auto", x, d_state=4, needs_grad=False) == "torch"
    assert resolve_backend("auto", x, d_state=1, needs_grad=True) == "torch"
    with pytest.raises(ValueError, match="unknown scan backend"):
        resolve_backend("cuda-magic", x)
    with pytest.raises(RuntimeError, match="mamba-ssm"):
        resolve_backend("mamba", x)  # not installed on CPU machines


def test_backend_env_override(monkeypatch):
    x = torch.zeros(1, 2, 2, 4)
    monkeypatch.setenv("ZEROMAMBA_SCAN_BACKEND", "reference")
    assert resolve_backend("auto", x) == "reference"
    assert resolve_backend("torch", x) == "torch"  # an explicit choice wins over the environment


def test_self_check_rejects_a_wrong_kernel_once(caplog):
    calls = []

    def wrong(x, *weights):
        calls.append(1)
        return torch.zeros_like(x)

    cpu = torch.device("cpu")
    with caplog.at_level("WARNING", logger="zeromamba.ops.self_check"):
        first = self_check("test-wrong", wrong, cpu, (1, 3, 4, 8, 2))
        again = self_check("test-wrong", wrong, cpu, (1, 3, 4, 8, 2))
    assert first == again and first.startswith("self-check failed")
    assert len(calls) == 1 and len(caplog.records) == 1  # checked, and warned about, once
    assert self_check("test-right", cross_selective_scan, cpu, (1, 3, 4, 8, 2)) is None


def test_gradient_self_check_accepts_the_torch_path_and_rejects_a_wrong_backward():
    cpu = torch.device("cpu")

    class WrongBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return 2 * g  # the output is right, its gradient is not

    def wrong(x, *weights):
        return cross_selective_scan(WrongBackward.apply(x), *weights, backend="torch")

    def right(x, *weights):
        return cross_selective_scan(x, *weights, backend="reference")

    assert self_check("test-grad-right", right, cpu, (1, 3, 4, 8, 2), gradients=True) is None
    assert self_check("test-grad-wrong", wrong, cpu, (1, 3, 4, 8, 2)) is None  # the forward agrees
    verdict = self_check("test-grad-wrong", wrong, cpu, (1, 3, 4, 8, 2), gradients=True)
    assert verdict is not None and verdict.startswith("gradient self-check failed") and "argument 0" in verdict
