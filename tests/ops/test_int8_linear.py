"""Int8 linear layers: agreement with float32, per-image activation scales, the kernels' self-check
(saturating 16-bit sums on CPUs without VNNI), and refusals instead of a float32 fallback."""

from __future__ import annotations

import copy
import json
import os
import pickle
import platform
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from zeromamba.errors import Int8UnavailableError
from zeromamba.ops import int8_linear
from zeromamba.ops.int8_linear import INT8_KERNELS, Int8Linear, int8_kernel, int8_status

X86 = platform.machine().lower() in ("x86_64", "amd64")
#: int8 against float32 on these random layers: max abs difference over max abs value
TOLERANCE = 0.03


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got - want).abs().max() / want.abs().max()).item()


@pytest.fixture
def kernel(request, monkeypatch):
    """Run the test with the int8 kernel ``request.param`` (skipped where it does not work)."""
    monkeypatch.setenv("ZEROMAMBA_INT8_KERNEL", request.param)
    try:
        return int8_kernel()
    except Int8UnavailableError as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("kernel", INT8_KERNELS, indirect=True)
def test_agrees_with_float32_with_gelu_and_residual(kernel):
    layer = nn.Linear(96, 200)
    x, residual = torch.randn(3, 7, 9, 96), torch.randn(3, 7, 9, 200)
    q = Int8Linear(layer)
    assert q.kernel == kernel[0]
    with torch.inference_mode():
        for activation, res in ((None, None), ("none", None), ("tanh", None), (None, residual)):
            want = F.linear(x, layer.weight, layer.bias)
            want = F.gelu(want, approximate=activation) if activation else want
            want = want + res if res is not None else want
            got = q(x, activation=activation, residual=res)
            assert got.shape == want.shape and got.dtype == torch.float32
            assert _relative(got, want) < TOLERANCE, (activation, res is not None)


@pytest.mark.parametrize("kernel", INT8_KERNELS, indirect=True)
def test_each_image_has_its_own_scale(kernel):
    # an image's result does not depend on the other images of its batch, even a 100x brighter one
    q = Int8Linear(nn.Linear(32, 16))
    x = torch.randn(3, 50, 32)
    x[1] *= 100
    with torch.inference_mode():
        batched = q(x)
        for i in range(3):
            torch.testing.assert_close(batched[i : i + 1], q(x[i : i + 1]), rtol=1e-6, atol=1e-6)
        assert _relative(batched[0], F.linear(x[0], q.weight, q.bias)) < TOLERANCE


def test_nan_in_one_image_gives_nan_there_only():
    q = Int8Linear(nn.Linear(8, 4))
    x = torch.randn(2, 5, 8)
    x[0, 3, 2] = float("nan")
    with torch.inference_mode():
        y = q(x)
    assert y[0].isnan().all() and y[1].isfinite().all()


def test_same_state_dict_copies_and_weight_changes():
    layer = nn.Linear(24, 12)
    q = Int8Linear(layer)
    assert q.weight is layer.weight and q.bias is layer.bias
    assert list(q.state_dict()) == ["weight", "bias"]
    x = torch.randn(1, 10, 24)
    with torch.inference_mode():
        before = q(x)
    for twin in (copy.deepcopy(q), pickle.loads(pickle.dumps(q))):  # oneDNN's packed weight is rebuilt
        with torch.inference_mode():
            assert torch.equal(twin(x), before)
    new = {"weight": torch.randn(12, 24), "bias": torch.randn(12)}
    q.load_state_dict(new)  # in place: the int8 weight follows
    with torch.inference_mode():
        assert _relative(q(x), F.linear(x, new["weight"], new["bias"])) < TOLERANCE
    assert q.to_float().weight is q.weight


def test_refuses_gradients_and_other_dtypes():
    q = Int8Linear(nn.Linear(8, 4))
    with pytest.raises(Int8UnavailableError, match="no gradients"):
        q(torch.randn(2, 8))  # the weights require grad here
    q.requires_grad_(False)
    with pytest.raises(Int8UnavailableError, match="no gradients"):
        q(torch.randn(2, 8, requires_grad=True))
    with torch.inference_mode(), pytest.raises(Int8UnavailableError, match="float32 CPU"):
        q(torch.randn(2, 8, dtype=torch.bfloat16))


def test_no_working_kernel_is_refused_with_the_reasons(monkeypatch):
    monkeypatch.setattr(int8_linear, "_verdicts", {})
    for name, impl in int8_linear._KERNELS.items():
        monkeypatch.setattr(impl, "available", staticmethod(lambda name=name: f"no {name} here"))
    with pytest.raises(Int8UnavailableError, match=r"onednn: no onednn here; dynamic: no dynamic here"):
        Int8Linear(nn.Linear(4, 4))
    assert int8_status()["kernel"] is None
    monkeypatch.setenv("ZEROMAMBA_INT8_KERNEL", "fbgemm2")
    with pytest.raises(Int8UnavailableError, match="not an int8 kernel"):
        int8_kernel()


def test_a_kernel_with_wrong_results_is_not_used(monkeypatch):
    # a kernel whose products come back wrong (as saturating 16-bit sums do) fails its exact check
    monkeypatch.setattr(int8_linear, "_verdicts", {})
    monkeypatch.setenv("ZEROMAMBA_INT8_KERNEL", "dynamic")
    real = int8_linear._Dynamic.run
    monkeypatch.setattr(int8_linear._Dynamic, "run", staticmethod(lambda *a: real(*a).clamp(-30, 30)))
    with pytest.raises(Int8UnavailableError, match="self-check failed: wrong results"):
        int8_kernel()


AVX2_PROBE = """
import json, torch
from zeromamba.ops.int8_linear import INT8_SCHEMES, _check, int8_status
print(json.dumps({"status": int8_status(), "full_range": _check("onednn", INT8_SCHEMES[0]),
                  "seven_bit_weights": _check("onednn", INT8_SCHEMES[1])}))
"""


@pytest.mark.skipif(not X86, reason="oneDNN's int8 matmul is used on x86 only")
def test_avx2_machines_get_7_bit_weights_where_8_bits_saturate():
    # oneDNN limited to AVX2 (no VNNI) multiplies u8 x s8 pairs into saturating 16-bit sums: the
    # self-check sees the wrong products and the layers use 7-bit weights (8-bit activations),
    # which cannot saturate
    env = dict(os.environ, ATEN_CPU_CAPABILITY="avx2", ONEDNN_MAX_CPU_ISA="AVX2")
    env.pop("ZEROMAMBA_INT8_KERNEL", None)
    out = subprocess.run([sys.executable, "-c", AVX2_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["status"]["kernel"] == "onednn"
    saturates = report["full_range"] is not None
    assert report["status"]["weight_bits"] == (7 if saturates else 8), report
    assert report["status"]["activation_bits"] == 8, report
    if saturates:  # and the 7-bit weights are computed exactly
        assert report["seven_bit_weights"] is None, report
