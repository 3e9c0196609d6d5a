"""Which weights and whether autocast, for inference in a dtype on a device (runtime's rule)."""

from __future__ import annotations

import pytest
import torch

from zeromamba.runtime import inference_autocast, inference_weight_dtype

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    "dtype, device, weights, autocast",
    [
        (torch.float32, CPU, torch.float32, False),
        (torch.bfloat16, CPU, torch.bfloat16, False),  # oneDNN's bfloat16 kernels need bfloat16 weights
        (torch.float16, CPU, torch.float32, True),
        (torch.bfloat16, CUDA, torch.float32, True),
        (torch.float16, CUDA, torch.float32, True),
        (torch.float64, CPU, torch.float64, False),
    ],
)
def test_inference_dtype_rule(dtype, device, weights, autocast):
    assert inference_weight_dtype(dtype, device) == weights
    assert inference_autocast(dtype, device) is autocast


def test_emulated_bfloat16_says_so(monkeypatch):
    import zeromamba.runtime as runtime

    monkeypatch.setattr(runtime, "_native_cpu_bfloat16", lambda: False)
    with pytest.warns(RuntimeWarning, match="no native bfloat16"):
        assert inference_weight_dtype(torch.bfloat16, CPU) == torch.bfloat16


def test_emulated_bfloat16_warns_once_for_one_predictor(monkeypatch):
    """One cause, one warning: building the predictor and classifying do not repeat it."""
    import warnings

    import zeromamba.runtime as runtime
    from zeromamba import Predictor, ZeroMamba

    from ..helpers import TINY

    monkeypatch.setattr(runtime, "_native_cpu_bfloat16", lambda: False)
    model = ZeroMamba(num_attributes=4, semantic_dim=4, fusion_hidden=8, num_imagenet_classes=8, **TINY)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every emission counts, not once per line
        predictor = Predictor(model, class_attributes=torch.rand(3, 4), dtype="bfloat16")
        predictor.classify([torch.randn(3, 64, 64), torch.randn(3, 64, 64)])
    emulated = [w for w in caught if "no native bfloat16" in str(w.message)]
    assert len(emulated) == 1, [str(w.message) for w in caught]
