"""oneDNN linear layers with GELU / residual add fused in, against F.linear and friends."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from zeromamba.ops.fused_linear import fused_linear_available, linear

from ..helpers import scaled_error

TOL = {torch.float32: 1e-5, torch.bfloat16: 2e-2}


def _dtypes() -> list[torch.dtype]:
    return [d for d in (torch.float32, torch.bfloat16) if fused_linear_available(d)]


def _ops_run(fn) -> set[str]:
    with torch.profiler.profile() as prof:
        fn()
    return {e.name for e in prof.events()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("shape", [(5, 24), (2, 3, 7, 24)], ids=["2d", "4d"])
def test_matches_plain_pytorch(dtype, shape):
    if not fused_linear_available(dtype):
        pytest.skip(f"oneDNN fused linear unavailable for {dtype} here")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g).to(dtype)
    w = (torch.randn(40, 24, generator=g) * 0.2).to(dtype)
    b = torch.randn(40, generator=g).to(dtype)
    r = torch.randn(*shape[:-1], 40, generator=g).to(dtype)
    with torch.inference_mode():
        cases = {
            "bias": (linear(x, w, b), F.linear(x, w, b)),
            "no bias": (linear(x, w), F.linear(x, w)),
            "gelu": (linear(x, w, b, activation="none"), F.gelu(F.linear(x, w, b))),
            "gelu tanh": (linear(x, w, b, activation="tanh"), F.gelu(F.linear(x, w, b), approximate="tanh")),
            "residual": (linear(x, w, b, residual=r), F.linear(x, w, b) + r),
        }
    for name, (got, want) in cases.items():
        assert got.shape == want.shape and got.dtype == dtype, name
        assert scaled_error(got, want) < TOL[dtype], name


def test_inference_takes_the_fused_path_and_training_the_plain_one():
    if not fused_linear_available(torch.float32):
        pytest.skip("oneDNN fused linear unavailable here")
    x, w = torch.randn(8, 16), torch.randn(12, 16, requires_grad=True)
    with torch.inference_mode():
        assert "mkldnn::_linear_pointwise" in _ops_run(lambda: linear(x, w, activation="none"))
    out = linear(x, w, activation="none")
    assert out.requires_grad  # the plain path keeps autograd
    (grad,) = torch.autograd.grad(out.sum(), [w])
    w2 = w.detach().clone().requires_grad_()
    (want,) = torch.autograd.grad(F.gelu(F.linear(x, w2)).sum(), [w2])
    assert torch.allclose(grad, want)
    assert "mkldnn::_linear_pointwise" not in _ops_run(lambda: linear(x, w, activation="none"))


def test_rejects_what_it_cannot_fuse():
    x, w = torch.randn(2, 4), torch.randn(3, 4)
    with pytest.raises(ValueError, match="activation"):
        linear(x, w, activation="relu")
    with pytest.raises(ValueError, match="not both"):
        linear(x, w, activation="none", residual=torch.zeros(2, 3))


def test_other_dtypes_and_mixed_dtypes_fall_back():
    x, w = torch.randn(3, 4, dtype=torch.float64), torch.randn(5, 4, dtype=torch.float64)
    with torch.inference_mode():
        assert torch.allclose(linear(x, w, activation="none"), F.gelu(F.linear(x, w)))
        mixed = linear(x.float(), w.float(), residual=torch.ones(3, 5, dtype=torch.float64))
    assert mixed.dtype == torch.float64  # the plain path's type promotion, not an error


def test_can_be_turned_off():
    code = (
        "import torch; from zeromamba.ops import fused_linear_available; "
        "from zeromamba.ops.fused_linear import linear; "
        "x, w = torch.randn(3, 4), torch.randn(5, 4); "
        "print(fused_linear_available(), torch.allclose(linear(x, w, activation='none'), "
        "torch.nn.functional.gelu(x @ w.t())))"
    )
    env = dict(os.environ, ZEROMAMBA_DISABLE_ONEDNN="1")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["False", "True"]


_GELU_PLACEMENT = r"""
import json, torch, torch.nn.functional as F
from zeromamba.ops.fused_linear import fused_linear_available, gelu_in_epilogue, linear
out = {"available": fused_linear_available()}
for k in (96, 192):
    x, w, b = torch.randn(50, k), torch.randn(64, k) * 0.1, torch.randn(64)
    with torch.inference_mode(), torch.profiler.profile() as prof:
        got = linear(x, w, b, activation="none")
    ops = {e.name for e in prof.events()}
    out[k] = {
        "epilogue": gelu_in_epilogue(k),
        "fused_product": "mkldnn::_linear_pointwise" in ops,
        # apart, in place on the product's output (no second output-sized tensor)
        "separate_gelu": "aten::gelu_" in ops and "aten::gelu" not in ops,
        "error": float((got - F.gelu(F.linear(x, w, b))).abs().max()),
    }
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    ("onednn_isa", "separate_from_192"), [("AVX2", True), ("AVX512_CORE", False)], ids=["avx2", "avx512"]
)
def test_gelu_leaves_the_avx2_epilogue_for_wide_inputs(onednn_isa, separate_from_192):
    # oneDNN's AVX2 GELU epilogue costs about a third of the product; apart it costs 1/in_features of it
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA=onednn_isa)
    res = subprocess.run([sys.executable, "-c", _GELU_PLACEMENT], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if not out["available"]:
        pytest.skip("oneDNN fused linear unavailable here")
    narrow, wide = out["96"], out["192"]
    assert narrow["epilogue"] and narrow["fused_product"] and not narrow["separate_gelu"]
    assert wide["epilogue"] is not separate_from_192
    assert wide["fused_product"] and wide["separate_gelu"] is separate_from_192
    assert narrow["error"] < 1e-5 and wide["error"] < 1e-5
