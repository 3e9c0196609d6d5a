"""oneDNN-packed copies of linear weights: made once, never stale, dropped with their parameter."""

from __future__ import annotations

import gc

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from zeromamba.ops.fused_linear import fused_linear_available, linear
from zeromamba.ops.packed_weights import packed_weight, packed_weight_count, release_packed_weights

pytestmark = pytest.mark.skipif(not fused_linear_available(), reason="oneDNN fused linear unavailable here")


def _layer(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(48, 40).eval()


def _run(layer: nn.Linear, x: torch.Tensor, **kw) -> torch.Tensor:
    with torch.inference_mode():
        return linear(x, layer.weight, layer.bias, **kw)


def test_a_parameter_is_packed_once_and_gives_the_plain_values(monkeypatch):
    layer, x = _layer(), torch.randn(33, 48)
    release_packed_weights()
    got = _run(layer, x, activation="none")
    assert packed_weight_count() == 1
    first = packed_weight(layer.weight)
    assert first is not layer.weight and first.is_mkldnn
    assert packed_weight(layer.weight) is first  # kept, not made again
    monkeypatch.setenv("ZEROMAMBA_PACK_WEIGHTS", "0")
    assert packed_weight(layer.weight) is layer.weight
    plain = _run(layer, x, activation="none")
    assert torch.allclose(got, plain, rtol=0, atol=1e-6)
    assert torch.allclose(got, F.gelu(F.linear(x, layer.weight, layer.bias)).detach(), atol=1e-5)


def test_a_weight_changed_in_place_is_packed_again():
    layer, x = _layer(), torch.randn(9, 48)
    before = _run(layer, x)
    with torch.no_grad():
        layer.weight.mul_(-2.0)  # an optimiser step would do the same to the version counter
    after = _run(layer, x)
    want = F.linear(x, layer.weight, layer.bias).detach()
    assert not torch.allclose(before, want, atol=1e-3)
    assert torch.allclose(after, want, atol=1e-5)
    layer.load_state_dict(_layer(seed=1).state_dict())
    assert torch.allclose(_run(layer, x), F.linear(x, layer.weight, layer.bias).detach(), atol=1e-5)


def test_other_tensors_are_left_as_they_are():
    layer = _layer()
    view = layer.weight[:, :24]
    plain = torch.randn(40, 48)
    with torch.inference_mode():
        made_here = nn.Parameter(torch.randn(40, 48))
    for t in (view, plain, made_here, layer.bias):
        assert packed_weight(t) is t


def test_copies_go_with_their_parameter_or_on_request():
    release_packed_weights()
    layers = [_layer(seed) for seed in range(3)]
    for layer in layers:
        _run(layer, torch.randn(4, 48))
    assert packed_weight_count() == 3
    release_packed_weights([layers[0].weight])
    assert packed_weight_count() == 2
    del layers[1]
    gc.collect()
    assert packed_weight_count() == 1
    release_packed_weights()
    assert packed_weight_count() == 0


def test_a_vmamba_model_packs_its_layers_and_drops_the_copies_when_converted():
    from zeromamba.models.vmamba import VMamba

    release_packed_weights()
    model = VMamba(num_classes=4, embed_dim=16, depths=(1, 1)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        first = model(x)
    assert packed_weight_count() > 8  # in_proj, out_proj, fc1, fc2 per block, the convolutions
    model.cpu()  # any conversion (.to, .float, .half, ...) goes through nn.Module._apply
    assert packed_weight_count() == 0
    with torch.inference_mode():
        again = model(x)
    assert torch.equal(first, again) and packed_weight_count() > 8
