"""The Triton scan kernels' logic, run by Triton's CPU interpreter (no GPU needed).

The GPU run itself is checked by ``benchmarks/gpu_check.py`` on a CUDA machine; here the same
kernel code runs through ``TRITON_INTERPRET=1`` in a subprocess (the variable must be set before
the kernels are defined) and is compared with the reference scan: the inference forward, the
training forward and the backward kernel's gradients of all six inputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

SCRIPT = r"""
import json, torch
from zeromamba.ops import cross_selective_scan
from zeromamba.ops.fused_triton import cross_scan_fused_triton

def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()

g = torch.Generator().manual_seed(0)
errors = {}
# (B, H, W, D, R, extreme): several tiles of 64 steps and channel blocks of 32 (2x3x70x40), a single
# position, the softplus threshold and strong decay
cases = [(1, 5, 7, 8, 2, False), (2, 3, 70, 40, 3, False), (1, 6, 5, 16, 2, True), (1, 1, 1, 4, 1, False)]
for B, H, W, D, R, extreme in cases:
    p = dict(
        x=torch.randn(B, H, W, D, generator=g), x_proj_weight=torch.randn(4, R + 2, D, generator=g) * 0.3,
        dt_projs_weight=torch.randn(4, D, R, generator=g) * 0.3, dt_projs_bias=torch.randn(4, D, generator=g) * 0.3,
        A_logs=torch.randn(4 * D, 1, generator=g) * 0.5, Ds=torch.randn(4 * D, generator=g),
    )
    if extreme:
        p["dt_projs_bias"] = torch.linspace(-30, 30, 4 * D).view(4, D)
        p["A_logs"] = torch.linspace(-4, 3, 4 * D).view(4 * D, 1)
    weight = torch.randn(B, H, W, D, generator=g)
    ref_leaves = {k: v.clone().requires_grad_() for k, v in p.items()}
    ref = cross_selective_scan(**ref_leaves, backend="reference")
    ref_grads = torch.autograd.grad((ref * weight).sum(), list(ref_leaves.values()))
    leaves = {k: v.clone().requires_grad_() for k, v in p.items()}
    out = cross_scan_fused_triton(*leaves.values())
    grads = torch.autograd.grad((out * weight).sum(), list(leaves.values()))
    with torch.no_grad():
        inference = cross_scan_fused_triton(*p.values())
    case = f"{B}x{H}x{W}x{D}{'-extreme' if extreme else ''}"
    errors[case] = {"inference": rel(inference, ref.detach()), "training": rel(out.detach(), ref.detach())}
    errors[case].update({f"grad_{k}": rel(a, b) for k, a, b in zip(p, grads, ref_grads)})
print(json.dumps(errors))
"""


@pytest.mark.slow
def test_triton_kernels_match_reference_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    errors = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(errors) == 4
    for case, errs in errors.items():
        assert len(errs) == 8  # inference, training forward, six gradients
        for what, err in errs.items():
            assert err < 1e-5, (case, what, err)
