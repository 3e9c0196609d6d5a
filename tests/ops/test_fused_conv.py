"""oneDNN convolutions on packed weights (SiLU fused in) against F.conv2d, and when they step aside."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from zeromamba.models._layout import conv_channels_last, run_conv
from zeromamba.ops.fused_conv import conv2d, fused_conv_available
from zeromamba.ops.packed_weights import packed_weight_count, release_packed_weights

from ..helpers import scaled_error

pytestmark = pytest.mark.skipif(not fused_conv_available(), reason="oneDNN convolution unavailable here")


def _ops_run(fn) -> set[str]:
    with torch.profiler.profile() as prof:
        fn()
    return {e.name for e in prof.events()}


def _conv(cin: int, cout: int, groups: int, stride: int, seed: int = 0) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, groups=groups).eval()


def _run(conv: nn.Conv2d, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    with torch.inference_mode():
        return conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups, activation)


def _want(conv: nn.Conv2d, x: torch.Tensor, activation: str | None = None) -> torch.Tensor:
    with torch.no_grad():
        y = F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
        return F.silu(y) if activation == "silu" else y


@pytest.mark.parametrize(
    ("cin", "cout", "groups", "stride", "activation"),
    [(16, 24, 1, 2, None), (24, 24, 24, 1, "silu"), (24, 24, 24, 1, None), (3, 8, 1, 2, None)],
    ids=["dense-stride2", "depthwise-silu", "depthwise", "rgb-stem"],
)
@pytest.mark.parametrize("channels_last", [True, False], ids=["nhwc", "nchw"])
def test_matches_plain_pytorch(cin, cout, groups, stride, activation, channels_last):
    conv = _conv(cin, cout, groups, stride)
    x = torch.randn(2, cin, 13, 11)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    got, want = _run(conv, x, activation), _want(conv, x, activation)
    assert got.shape == want.shape
    assert scaled_error(got, want) < 1e-5


def test_inference_takes_onednn_on_a_packed_weight_repacked_for_a_new_input_shape():
    release_packed_weights()
    conv = _conv(16, 24, 1, 2)
    x = torch.randn(1, 16, 20, 20).contiguous(memory_format=torch.channels_last)
    assert "mkldnn::_convolution_pointwise" in _ops_run(lambda: _run(conv, x))
    assert packed_weight_count() == 1
    for shape in ((3, 16, 9, 31), (1, 16, 20, 20)):  # a new shape, then the first again
        y = torch.randn(*shape).contiguous(memory_format=torch.channels_last)
        assert scaled_error(_run(conv, y), _want(conv, y)) < 1e-5
    assert packed_weight_count() == 1  # one copy a weight, for the latest shape
    with torch.no_grad():
        conv.weight.mul_(-1.0)
    assert scaled_error(_run(conv, x), _want(conv, x)) < 1e-5


def test_training_tracing_and_hooks_take_the_plain_path(monkeypatch):
    conv = _conv(8, 8, 8, 1)
    x = torch.randn(1, 8, 6, 6).contiguous(memory_format=torch.channels_last)
    # autograd: F.conv2d and F.silu, gradients as PyTorch's
    out = conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups, "silu")
    assert out.requires_grad
    (grad,) = torch.autograd.grad(out.sum(), [conv.weight])
    w2 = conv.weight.detach().clone().requires_grad_()
    (want,) = torch.autograd.grad(F.silu(F.conv2d(x, w2, conv.bias, 1, 1, 1, 8)).sum(), [w2])
    assert torch.allclose(grad, want, atol=1e-6)
    # packing off: PyTorch's convolution
    monkeypatch.setenv("ZEROMAMBA_PACK_WEIGHTS", "0")
    assert "mkldnn::_convolution_pointwise" not in _ops_run(lambda: _run(conv, x, "silu"))
    monkeypatch.delenv("ZEROMAMBA_PACK_WEIGHTS")

    # a traced graph records the plain operators
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = conv

        def forward(self, t):
            return run_conv(self.conv, t, "silu")

    with torch.no_grad():
        traced = torch.jit.trace(Block(), (x,), check_trace=False)
    assert "_convolution_pointwise" not in str(traced.graph) and "conv" in str(traced.graph)
    # a conv with a hook runs as the module, so the hook sees its call
    seen = []
    conv.register_forward_hook(lambda mod, args, output: seen.append(output.shape))
    with torch.inference_mode():
        y = conv_channels_last(conv, x.permute(0, 2, 3, 1), activation="silu")
    assert seen == [torch.Size([1, 8, 6, 6])] and y.shape == (1, 6, 6, 8)


def test_other_padding_modes_and_bad_activations():
    conv = nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect").eval()
    x = torch.randn(1, 4, 5, 5)
    with torch.inference_mode():
        assert torch.equal(run_conv(conv, x), conv(x))
    with pytest.raises(ValueError, match="activation"):
        conv2d(x, conv.weight, conv.bias, (1, 1), (1, 1), (1, 1), 1, "relu")
