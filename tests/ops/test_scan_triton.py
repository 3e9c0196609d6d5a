"""The Triton scan kernel's logic, run by Triton's CPU interpreter (no GPU needed).

The GPU run itself is checked by ``benchmarks/gpu_check.py`` on a CUDA machine; here the same
kernel code runs through ``TRITON_INTERPRET=1`` in a subprocess (the variable must be set before
the kernel is defined) and is compared with the reference scan.
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
g = torch.Generator().manual_seed(0)
errors = {}
cases = [(1, 5, 7, 8, 2, False), (2, 3, 70, 40, 3, False), (1, 6, 5, 16, 2, True), (1, 1, 1, 4, 1, False)]
for B, H, W, D, R, extreme in cases:
    p = dict(
        x=torch.randn(B, H, W, D, generator=g), x_proj_weight=torch.randn(4, R + 2, D, generator=g) * 0.3,
        dt_projs_weight=torch.randn(4, D, R, generator=g) * 0.3, dt_projs_bias=torch.randn(4, D, generator=g) * 0.3,
        A_logs=torch.randn(4 * D, 1, generator=g) * 0.5, Ds=torch.randn(4 * D, generator=g),
    )
    if extreme:  # softplus threshold and strong decay
        p["dt_projs_bias"] = torch.linspace(-30, 30, 4 * D).view(4, D)
        p["A_logs"] = torch.linspace(-4, 3, 4 * D).view(4 * D, 1)
    ref = cross_selective_scan(**p, backend="reference")
    got = cross_scan_fused_triton(*p.values())
    errors[f"{B}x{H}x{W}x{D}{'-extreme' if extreme else ''}"] = ((got - ref).abs().max() / ref.abs().max()).item()
print(json.dumps(errors))
"""


@pytest.mark.slow
def test_triton_kernel_matches_reference_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    res = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    errors = json.loads(res.stdout.strip().splitlines()[-1])
    assert len(errors) == 4
    for case, err in errors.items():
        assert err < 1e-5, (case, err)
