"""bfloat16 inference on CPU (bfloat16 weights, the scan in float32) against float32 on the fixtures."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import zeromamba
from zeromamba.models import calibrated_stacking, class_scores
from zeromamba.ops import resolve_backend

from ..helpers import fixture_dirs, scaled_error

# measured: at most 0.018 (benchmarks/bf16_agreement.py); bfloat16 keeps 8 bits of mantissa
ATTRIBUTE_TOLERANCE = 0.05


@pytest.mark.parametrize("root", fixture_dirs(), ids=lambda p: p.name)
def test_bfloat16_weights_follow_float32(root):
    expected = load_file(root / "expected.safetensors")
    meta = json.loads((root / "meta.json").read_text())
    fp32 = zeromamba.load_official(root / "zeromamba_official_format.pth")
    bf16 = zeromamba.load_official(root / "zeromamba_official_format.pth").to(torch.bfloat16)
    att = expected["class_attributes"]
    seen = torch.zeros(att.shape[0], dtype=torch.bool)
    seen[meta["seen_classes"]] = True
    for key in sorted(k for k in expected if k.startswith("input") and "." not in k):
        x = expected[key]
        if meta["config"]["d_state"] == 1:  # the fused kernel's bfloat16 entry point runs
            assert resolve_backend("auto", x.to(torch.bfloat16).permute(0, 2, 3, 1), 1) == "fused_cpu"
        with torch.inference_mode():
            a, b = fp32(x), bf16(x.to(torch.bfloat16))
        assert b.attributes.dtype == torch.bfloat16
        assert scaled_error(b.attributes, a.attributes) < ATTRIBUTE_TOLERANCE, key
        sa, sb = class_scores(a.attributes, att), class_scores(b.attributes.float(), att)
        gzsl_a, gzsl_b = (calibrated_stacking(s, seen, meta["gamma"]).argmax(1) for s in (sa, sb))
        assert torch.equal(gzsl_a, gzsl_b)
