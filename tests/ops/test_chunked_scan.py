"""The "chunked" scan (plain ops, for exported graphs and torch.compile) against the reference."""

from __future__ import annotations

import pytest
import torch

from zeromamba.ops import cross_selective_scan, resolve_backend
from zeromamba.ops.chunked_scan import CHUNK, LOG_DECAY_FLOOR, log_space_scan
from zeromamba.ops.mixer_dispatch import mixer_selective_scan
from zeromamba.ops.selective_scan import linear_recurrence

from ..helpers import scaled_error
from .test_scan_ops import SHAPES, _params


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cross_scan_matches_reference_outputs_and_grads(shape):
    p = _params(*shape)
    leaves = {k: v.clone().requires_grad_() for k, v in p.items()}
    ref = cross_selective_scan(**leaves, backend="reference")
    ref_grads = torch.autograd.grad(ref.square().sum(), list(leaves.values()))
    leaves2 = {k: v.clone().requires_grad_() for k, v in p.items()}
    out = cross_selective_scan(**leaves2, backend="chunked")
    grads = torch.autograd.grad(out.square().sum(), list(leaves2.values()))
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert scaled_error(out, ref) < 1e-5
    for name, g, gr in zip(leaves, grads, ref_grads):
        # (one position: A's true gradient is exactly 0, ours is float32 round-off of it)
        assert scaled_error(g, gr) < 1e-4 or (g - gr).abs().max() < 1e-6, name


@pytest.mark.parametrize("length", [1, 2, 7, 8, 9, 63, 64, 65, 600, 12544])
def test_log_space_scan_is_the_recurrence(length):
    g = torch.Generator().manual_seed(length)
    log_a = -torch.rand(2, length, 3, generator=g) * 3  # decays in (exp(-3), 1]
    b = torch.randn(2, length, 3, generator=g)
    want = linear_recurrence(log_a.exp(), b, dim=1)
    assert scaled_error(log_space_scan(log_a, b), want) < 1e-5


def test_log_space_scan_stays_finite_and_exact_with_extreme_decays():
    # steps that keep everything (log a = 0), forget everything (log a = -1e4) and all between:
    # the clamp at LOG_DECAY_FLOOR keeps every exponent in range; the result is still the recurrence
    g = torch.Generator().manual_seed(0)
    L = 500
    choice = torch.randint(0, 3, (1, L, 4), generator=g)
    log_a = torch.where(choice == 0, 0.0, torch.where(choice == 1, -1e4, -torch.rand(1, L, 4, generator=g) * 30))
    b = torch.randn(1, L, 4, generator=g) * 100
    h = log_space_scan(log_a, b)
    assert torch.isfinite(h).all()
    want = torch.zeros(1, 4)
    rows = []
    for t in range(L):
        want = log_a[:, t].double().exp() * want.double() + b[:, t].double()
        rows.append(want)
    assert scaled_error(h, torch.stack(rows, 1)) < 1e-5


def test_chunk_bound():
    assert CHUNK * -LOG_DECAY_FLOOR / 2 <= 80  # no exponent can pass exp(80) < float32's max
    with pytest.raises(ValueError, match="chunk must be"):
        log_space_scan(torch.zeros(1, 4, 1), torch.zeros(1, 4, 1), chunk=9)


def test_large_state_decays_do_not_overflow():
    p = _params(1, 12, 10, 4, 4, 2)
    p["A_logs"] = p["A_logs"] + 4.0  # A = -exp(A_log) down to about -400: steps far below exp(-20)
    p["dt_projs_bias"] = p["dt_projs_bias"] + 3.0
    ref = cross_selective_scan(**p, backend="reference")
    out = cross_selective_scan(**p, backend="chunked")
    assert torch.isfinite(out).all()
    assert scaled_error(out, ref) < 1e-5


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("n_state", [1, 16])
def test_mixer_scan_matches_reference(reverse, n_state):
    g = torch.Generator().manual_seed(n_state)
    batch, L, E = 2, 37, 6
    x, dt, z = (torch.randn(batch, L, E, generator=g) for _ in range(3))
    A = -torch.exp(torch.randn(E, n_state, generator=g))
    B, C = (torch.randn(batch, L, n_state, generator=g) for _ in range(2))
    D, bias = torch.randn(E, generator=g), torch.randn(E, generator=g)
    args = (x, dt, A, B, C, D, z, bias)
    ref = mixer_selective_scan(*args, reverse=reverse, backend="reference")
    out = mixer_selective_scan(*args, reverse=reverse, backend="chunked")
    assert scaled_error(out, ref) < 1e-5


def test_auto_is_chunked_while_a_graph_is_traced():
    p = _params(2, 6, 5, 4, 1, 2)
    seen = []

    class Scan(torch.nn.Module):
        def forward(self, x):
            seen.append(resolve_backend("auto", x, 1, needs_grad=False))
            return cross_selective_scan(x, *[p[k] for k in list(p)[1:]], backend="auto")

    program = torch.export.export(Scan(), (p["x"],))  # the C kernel could not be traced
    assert seen == ["chunked"]
    assert resolve_backend("auto", p["x"], 1) != "chunked"  # eager CPU inference keeps the kernels
    ref = cross_selective_scan(**p, backend="reference")
    assert scaled_error(program.module()(p["x"]), ref) < 1e-5


def test_graph_softplus_is_torch_softplus():
    from zeromamba.ops.chunked_scan import softplus

    x = torch.cat([torch.linspace(-100, 100, 20001), torch.tensor([-1e30, 19.999, 20.0, 20.001, 1e30])])
    want = torch.nn.functional.softplus(x.double())
    got = softplus(x)
    assert got.dtype == torch.float32
    # float32 round-off, relative where the value is large, absolute (float32's tiny values) where not
    assert ((got.double() - want).abs() / want.abs().clamp(min=1e-30)).max() < 1e-6
    assert torch.isfinite(got).all() and got[-1] == 1e30
